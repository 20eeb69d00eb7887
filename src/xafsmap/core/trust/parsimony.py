"""Parsimony: which set of references does the measurement support?

Adding references always fits at least as well, so fit quality alone cannot choose the
reference set. Each set is fitted to every sample pixel (the weighted non-negative fit
with a free baseline of :meth:`~xafsmap.core.trust.fitsetup.FitSetup.fit`, on the raw
normalized spectra: smoothing would make neighbouring energies dependent and the
chi-square meaningless), and its misfit ``chi2 = sum(r**2 / sigma**2)`` under the
stack's noise model is penalized by the number of free parameters ``k``:

``AIC = chi2 + 2 k``, ``BIC = chi2 + k ln n`` (n = energies in the fit window).

``k`` is the number of references with a non-zero weight at that pixel. A reference
set is a library of allowed components: a pixel that does not use a reference pays
nothing for it (its fit is the same as without it), a pixel that does pays one
parameter. With ``k`` = set size instead, a phase present in 5 % of the image could
never win the whole-image verdict, since every other pixel would pay for it. The
baseline and the edge step are free in every set alike, so they cancel in differences.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..mapping.pipeline import BAND_BYTES, band_rows, drive
from ..mapping.maps import MASK_SAMPLE
from .fitsetup import normalize_band, setup_fit

if TYPE_CHECKING:
    from ..io.stack import Stack

__all__ = ["CRITERIA", "Comparison", "compare_sets", "iter_compare", "judge_sets", "penalty"]

CRITERIA = ("bic", "aic")
#: Kass & Raftery: a criterion difference below 2 is "not worth more than a bare mention".
WEAK_MARGIN = 2.0


def penalty(criterion: str, n_energies: int) -> float:
    """Cost of one free parameter: 2 (AIC) or ln n (BIC).

    Examples
    --------
    >>> penalty("aic", 100), round(penalty("bic", 100), 3)
    (2.0, 4.605)
    """
    if criterion == "aic":
        return 2.0
    if criterion == "bic":
        return float(np.log(n_energies))
    raise ValueError(f"unknown criterion {criterion!r}; choose one of {CRITERIA}")


def chance_level(extra: float) -> float:
    """Largest chi2 improvement ``extra`` free parameters give by chance (about 95 %).

    Fitting ``extra`` more free parameters to pure noise lowers chi2 by a chi-square
    with ``extra`` degrees of freedom: mean ``extra``, standard deviation
    ``sqrt(2 extra)``; the level is the mean plus two standard deviations (for 2
    parameters that is 6.0, exactly the 95 % point of chi2(2); for many it tends to the
    97.7 % point of the normal approximation).

    Examples
    --------
    >>> chance_level(2)
    6.0
    """
    return float(extra + 2.0 * np.sqrt(2.0 * max(extra, 0.0)))


def judge_sets(chi2: dict, k: dict, sizes: dict, *, n_energies: int, criterion: str = "bic") -> dict:
    """Whole-image verdict over the same pixels, with warnings about free parameters.

    Parameters
    ----------
    chi2, k : dict of name to ndarray, shape (P,)
        Per-pixel misfit and number of non-zero weights of each set, same pixels.
    sizes : dict of name to int
        References in each set.
    n_energies : int
        Energies in the fit window.
    criterion : {'bic', 'aic'}

    Returns
    -------
    dict
        ``preferred`` (name), ``criterion``, ``sets`` (per set: totals and per-pixel
        means of chi2, k and the criterion, and the share of pixels it wins),
        ``warnings`` (list of str, possibly empty) and ``notes``.

    Notes
    -----
    Warnings fire when

    * the preferred set has more references than another set S and its chi2 gain
      over S is within :func:`chance_level` of the extra non-zero weights it used, or
      its criterion beats S's by less than 2 (the penalty margin);
    * a larger set L fits better than the preferred one (lower chi2: the "dangerous
      case" of choosing by fit quality) but only within the chance level of its
      extra parameters.

    A larger set that fits better beyond chance but not enough to pay for its
    parameters gets a note, not a warning.

    Examples
    --------
    >>> chi2 = {"A": np.array([100.0, 100.0]), "B": np.array([99.0, 98.0])}
    >>> k = {"A": np.array([2, 2]), "B": np.array([3, 3])}
    >>> out = judge_sets(chi2, k, {"A": 2, "B": 4}, n_energies=100)
    >>> out["preferred"], len(out["warnings"])
    ('A', 1)
    """
    cost = penalty(criterion, n_energies)
    names = list(chi2)
    if not names:
        raise ValueError("no reference sets to compare")
    n_pixels = {name: np.asarray(chi2[name]).size for name in names}
    if len(set(n_pixels.values())) > 1:
        raise ValueError(f"the sets were fitted to different numbers of pixels: {n_pixels}")
    total = {name: float(np.sum(chi2[name])) for name in names}
    params = {name: float(np.sum(k[name])) for name in names}
    score = {name: total[name] + cost * params[name] for name in names}
    per_pixel = np.stack([np.asarray(chi2[n], float) + cost * np.asarray(k[n], float) for n in names])
    wins = np.bincount(_argmin_parsimonious(per_pixel, [sizes[n] for n in names]), minlength=len(names))
    best = min(names, key=lambda n: (score[n], sizes[n], names.index(n)))
    p = max(next(iter(n_pixels.values())), 1)
    summary = {
        name: {
            "references": int(sizes[name]),
            criterion: score[name],
            f"{criterion}_per_pixel": score[name] / p,
            "chi2": total[name],
            "chi2_per_pixel": total[name] / p,
            "nonzero_weights_per_pixel": params[name] / p,
            "pixels_preferring": float(wins[i] / p),
        }
        for i, name in enumerate(names)
    }
    warnings, notes = [], []
    for other in names:
        gain, extra = total[other] - total[best], params[best] - params[other]
        margin = score[other] - score[best]
        if other == best:
            continue
        if sizes[other] < sizes[best]:
            if extra > 0 and gain < chance_level(extra):
                warnings.append(
                    f"{best} ({sizes[best]} references) is preferred over {other} ({sizes[other]}) but fits "
                    f"better only by what its {extra:g} extra free parameters give by chance "
                    f"(chi2 lower by {gain:.4g}, chance level {chance_level(extra):.4g})")
            elif margin < WEAK_MARGIN:
                warnings.append(
                    f"{best} ({sizes[best]} references) wins over {other} ({sizes[other]}) only by the "
                    f"penalty margin ({criterion.upper()} lower by {margin:.3g} < {WEAK_MARGIN:g})")
        elif sizes[other] > sizes[best] and total[other] < total[best]:
            gain, extra = total[best] - total[other], params[other] - params[best]
            if gain < chance_level(max(extra, 0.0)):
                warnings.append(
                    f"{other} ({sizes[other]} references) fits better than {best} ({sizes[best]}) only by what "
                    f"its {extra:g} extra free parameters give by chance (chi2 lower by {gain:.4g}, chance "
                    f"level {chance_level(max(extra, 0.0)):.4g}): do not choose references by fit quality; "
                    f"{best} is preferred")
            else:
                notes.append(
                    f"{other} fits better than {best} beyond chance (chi2 lower by {gain:.4g} for {extra:g} "
                    f"extra parameters) but not by enough to pay for them; look where it is preferred")
    return {"preferred": best, "criterion": criterion, "n_energies": int(n_energies), "pixels": int(p),
            "sets": summary, "warnings": warnings, "notes": notes}


def _argmin_parsimonious(values: np.ndarray, sizes) -> np.ndarray:
    """Index of the smallest value along axis 0; ties go to the set with fewer references."""
    order = np.argsort(np.asarray(sizes), kind="stable")
    return order[np.argmin(values[order], axis=0)]


@dataclass(frozen=True)
class Comparison:
    """Reference sets compared on one measurement.

    ``preferred`` uint8 (M, N): 1-based index of the preferred set in the order given,
    0 = no sample; ``margin`` float32 (M, N): criterion of the runner-up minus the
    preferred's (small = undecided); ``chi2`` (S, M, N) float32 and ``k`` (S, M, N)
    uint8 per set; ``summary`` is :func:`judge_sets`'s verdict.
    """

    names: tuple
    preferred: np.ndarray
    margin: np.ndarray
    chi2: np.ndarray
    k: np.ndarray
    noise: np.ndarray
    mask: np.ndarray
    summary: dict
    params: dict = field(default_factory=dict)


def iter_compare(stack: Stack, sets: dict, *, criterion: str = "bic", band_bytes: int = BAND_BYTES,
                 **fit_options: Any) -> Generator[tuple[int, int], None, Comparison]:
    """Fit every reference set to every sample pixel and judge them (see module notes).

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
    sets : dict of str to sequence of Reference
        Named reference sets, in the order of the ``preferred`` map.
    criterion : {'bic', 'aic'}
    **fit_options
        ``threshold``, ``fit_range``, ``e0``, ``pre1`` ... of
        :func:`~xafsmap.core.trust.fitsetup.setup_fit` (not ``offsets``).

    Yields
    ------
    (done, total) : tuple of int

    Returns
    -------
    Comparison
    """
    penalty(criterion, 2)  # validates the name before any work
    if len(sets) < 2:
        raise ValueError(f"need at least 2 reference sets to compare, got {len(sets)}")
    union = {}
    for name, refs in sets.items():
        if not refs:
            raise ValueError(f"reference set {name!r} is empty")
        for ref in refs:
            if ref.name in union and not np.array_equal(union[ref.name].mu, ref.mu):
                raise ValueError(f"two different references are named {ref.name!r}")
            union.setdefault(ref.name, ref)
    setup = setup_fit(stack, list(union.values()), **fit_options)
    index = {ref: i for i, ref in enumerate(setup.names)}
    members = [[index[ref.name] for ref in refs] for refs in sets.values()]
    data = stack.data
    _, rows, cols = data.shape
    band = band_rows(data.shape, band_bytes)
    total = -(-rows // band)
    n_sets = len(members)
    chi2 = np.full((n_sets, rows, cols), np.nan)
    k = np.zeros((n_sets, rows, cols), np.uint8)
    noise = np.full((rows, cols), np.nan, np.float32)
    mask = np.zeros((rows, cols), np.uint8)
    start, stop = setup.window
    for step, r0 in enumerate(range(0, rows, band), start=1):
        r1 = min(rows, r0 + band)
        out = normalize_band(np.asarray(data[:, r0:r1], dtype=np.float32), setup, origin=r0)
        mask[r0:r1] = out["mask"]
        sample = out["mask"] == MASK_SAMPLE
        norm, variance = out["norm"][start:stop, sample], out["variance"][start:stop, sample]
        noise[r0:r1][sample] = np.sqrt(np.median(variance, axis=0))
        for s, which in enumerate(members):
            w, chi2[s, r0:r1][sample] = setup.fit(norm, variance, setup.references[which][:, start:stop])
            k[s, r0:r1][sample] = np.count_nonzero(w > 0, axis=0)
        yield step, total
    used = (mask == MASK_SAMPLE) & np.all(np.isfinite(chi2), axis=0)
    names = tuple(sets)
    sizes = {name: len(refs) for name, refs in sets.items()}
    n = stop - start
    summary = judge_sets({name: chi2[s][used] for s, name in enumerate(names)},
                         {name: k[s][used] for s, name in enumerate(names)}, sizes,
                         n_energies=n, criterion=criterion)
    values = chi2 + penalty(criterion, n) * k
    best = _argmin_parsimonious(np.where(used, values, 0.0), [sizes[name] for name in names])
    preferred = np.where(used, best + 1, 0).astype(np.uint8)
    ordered = np.sort(values, axis=0)
    margin = np.where(used, ordered[1] - ordered[0], np.nan).astype(np.float32)
    summary["undecided_pixels"] = float(np.mean(margin[used] < WEAK_MARGIN)) if used.any() else 0.0
    params = dict(sets={name: [ref.name for ref in refs] for name, refs in sets.items()}, criterion=criterion,
                  e0=setup.e0, threshold=setup.survey.threshold, significance=setup.survey.significance,
                  fit_window_eV=[float(setup.energies[start]), float(setup.energies[stop - 1])],
                  normalization=setup.normalization)
    return Comparison(names=names, preferred=preferred, margin=margin, chi2=chi2.astype(np.float32), k=k,
                      noise=noise, mask=mask, summary=summary, params=params)


def compare_sets(stack: Stack, sets: dict, **options: Any) -> Comparison:
    """Run :func:`iter_compare` to the end and return its :class:`Comparison`."""
    return drive(iter_compare(stack, sets, **options))
