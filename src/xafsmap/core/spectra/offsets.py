"""One common energy offset of all references, fitted to the stack's sample spectra.

:func:`reference_edges` gives each reference's own edge after its offset;
:func:`fit_common_offset` the one offset of *all* references (Athena's "align to a
common standard") that best explains the stack's normalized sample spectra: the total
chi-square of sum-to-one NNLS fits over a coarse then a fine grid, with a bootstrap
sigma. :mod:`~xafsmap.core.spectra.energyscale` turns it into warnings and offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .lcf import fit_fractions
from .normalize import estimate_noise, normalize
from .edge import find_e0

if TYPE_CHECKING:
    from ..io.references import Reference

__all__ = ["SEARCH", "OffsetFit", "fit_common_offset", "reference_edges", "shifted_references"]


#: Offsets searched by :func:`fit_common_offset`, eV (added to every reference's energies).
SEARCH = (-10.0, 10.0)


#: Bootstrap resamples of the pixels for the offset's uncertainty.
N_BOOTSTRAP = 200


#: Noise levels are raised to this share of their median, so quiet pixels cannot dominate.
FLOOR_SHARE = 0.25


#: Noise levels (edge steps) are raised to this floor: a noise-free spectrum weighs as one
#: with 0.01 % noise, below any measurement's.
NOISE_FLOOR = 1e-4


def reference_edges(references: Sequence[Reference], *,
                    offsets: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """Each reference's edge energy on its own energies, plus its offset.

    Parameters
    ----------
    references : sequence of Reference
    offsets : sequence of float, optional
        Energy offset per reference, eV (added to its energies); default 0.

    Returns
    -------
    ndarray, shape (K,), float64
        Larch's ``find_e0`` of each reference's ``mu`` on its own energies, plus its
        offset, eV.

    Examples
    --------
    >>> from xafsmap.core.io.references import Reference
    >>> e = np.linspace(7050.0, 7250.0, 201)
    >>> ref = Reference("step", e, 1 / (1 + np.exp(-(e - 7112.0) / 2.0)), "x")
    >>> reference_edges([ref], offsets=[1.5]).tolist()
    [7113.5]
    """
    offsets = np.zeros(len(references)) if offsets is None else np.asarray(offsets, dtype=np.float64)
    return np.array([float(find_e0(ref.mu, ref.energies)) for ref in references]) + offsets


def shifted_references(references: Sequence[Reference], energies: np.ndarray, shifts: ArrayLike, *, norm_params: dict,
                       offsets: Sequence[float] | np.ndarray | None = None,
                       own: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """The references on the stack's energies, shifted by each of ``shifts``, normalized like the stack.

    :func:`~xafsmap.core.model.standards.prepare_references` for every shift at once, without
    its coverage check: beyond a reference's energies its normalized value is repeated
    (0 before the edge, about 1 after), so a search may uncover an end.

    Parameters
    ----------
    references : sequence of Reference
    energies : ndarray, shape (E,)
        The stack's energies, eV.
    shifts : array_like, shape (S,)
        Common offsets, eV, added on top of ``offsets``.
    norm_params : dict
        The stack's normalization (:func:`~xafsmap.core.spectra.normalize.normalize` keywords,
        with a scalar ``e0``).
    offsets : sequence of float, optional
        Per-reference offsets, eV.
    own : sequence of ndarray, optional
        Each reference normalized on its own energies, if already at hand.

    Returns
    -------
    ndarray, shape (S, K, E), float64

    Examples
    --------
    >>> from xafsmap.core.io.references import Reference
    >>> e = np.linspace(7050.0, 7250.0, 201)
    >>> ref = Reference("step", e, 1 / (1 + np.exp(-(e - 7112.0) / 2.0)), "x")
    >>> out = shifted_references([ref], e, [0.0, 4.0], norm_params={"e0": 7112.0})
    >>> out.shape, [round(float(e[np.argmax(np.gradient(s[0]))]), 1) for s in out]
    ((2, 1, 201), [7112.0, 7116.0])
    """
    energies = np.asarray(energies, dtype=np.float64)
    shifts = np.atleast_1d(np.asarray(shifts, dtype=np.float64))
    offsets = np.zeros(len(references)) if offsets is None else np.asarray(offsets, dtype=np.float64)
    rows = np.empty((shifts.size, len(references), energies.size))
    own = [normalize(ref.mu, ref.energies).norm for ref in references] if own is None else own
    for k, (ref, offset) in enumerate(zip(references, offsets)):  # K references, not pixels
        for s, shift in enumerate(shifts):
            rows[s, k] = np.interp(energies, ref.energies + offset + shift, own[k])
    flat = rows.reshape(-1, energies.size).T
    return normalize(flat, energies, **norm_params).norm.T.reshape(rows.shape)


def _chi2(spectra, references, noise, window):
    """Per-pixel chi-square (S, P) of the sum-to-one NNLS fit of spectra with each reference set."""
    start, stop = window
    out = np.empty((references.shape[0], spectra.shape[1]))
    for s, refs in enumerate(references):  # one vectorized fit per offset tried
        _, rms = fit_fractions(spectra[start:stop], refs[:, start:stop])
        out[s] = (stop - start) * rms.astype(np.float64) ** 2 / noise**2
    return out


def _vertex(x, y):
    """Minimum of the parabola through the lowest point of ``y`` and its two neighbours, per row.

    ``x`` (G,) evenly spaced, ``y`` (B, G); returns (B,).
    """
    i = np.clip(np.argmin(y, axis=1), 1, x.size - 2)
    rows = np.arange(y.shape[0])
    lo, mid, hi = y[rows, i - 1], y[rows, i], y[rows, i + 1]
    curve = lo - 2 * mid + hi
    with np.errstate(invalid="ignore", divide="ignore"):
        step = np.where(curve > 0, 0.5 * (lo - hi) / curve, 0.0)
    return x[i] + np.clip(step, -1.0, 1.0) * (x[1] - x[0])


@dataclass(frozen=True)
class OffsetFit:
    """Result of :func:`fit_common_offset`.

    Attributes
    ----------
    offset : float
        Common offset to add to every reference's energies, eV.
    sigma : float
        Its 1 sigma uncertainty, eV (bootstrap over the pixels).
    search : (float, float)
        Offsets searched, eV.
    at_limit : bool
        The coarse minimum lies at an end of ``search`` (the true offset may lie beyond).
    n_pixels : int
        Spectra fitted.
    ratio_given, ratio_best : float
        Median over the pixels of RMS LCF residual / noise, with the given offsets and
        with ``offset`` added (about 1 where the references explain the spectra).
    gain : float
        How much the offset lowers the total chi-square, in units of the shifted fit's
        chi-square per point: a likelihood-ratio statistic of one parameter (above
        :data:`SIGNIFICANT`, the offset is real beyond 5 sigma).
    grid, misfit : ndarray, shape (G,)
        Coarse offsets tried and the total chi-square at each (of the coarse spectra).
    """

    offset: float
    sigma: float
    search: tuple
    at_limit: bool
    n_pixels: int
    ratio_given: float
    ratio_best: float
    gain: float
    grid: np.ndarray
    misfit: np.ndarray

    def record(self) -> dict:
        """The fit as plain numbers for report.json (``parameters.alignment``)."""
        return dict(offset_eV=round(self.offset, 3), sigma_eV=round(self.sigma, 3),
                    search_eV=[float(v) for v in self.search], at_limit=bool(self.at_limit),
                    pixels=int(self.n_pixels), misfit_ratio_before=round(self.ratio_given, 3),
                    misfit_ratio_after=round(self.ratio_best, 3),
                    method="one common offset minimizing the total chi-square of sum-to-one NNLS fits; "
                           "1 sigma from a bootstrap over the pixels")


def fit_common_offset(spectra: np.ndarray, energies: np.ndarray, references: Sequence[Reference], *, norm_params: dict,
                      window: tuple[int, int], offsets: Sequence[float] | np.ndarray | None = None,
                      noise: np.ndarray | None = None, search: tuple[float, float] = SEARCH,
                      n_bootstrap: int = N_BOOTSTRAP, rng: int | np.random.Generator | None = None) -> OffsetFit:
    """The one energy offset of all references that best explains the stack's spectra.

    Parameters
    ----------
    spectra : ndarray, shape (E, P)
        Normalized sample spectra of the stack (e.g. :attr:`Survey.spectra
        <xafsmap.core.spectra.survey.Survey>`), normalized with ``norm_params``.
    energies : ndarray, shape (E,)
        eV.
    references : sequence of Reference
    norm_params : dict
        The stack's normalization, with its scalar ``e0``.
    window : (int, int)
        Energy indices ``[start, stop)`` of the fits (the map's fit window).
    offsets : sequence of float, optional
        Per-reference offsets already given, eV; the common offset is added to them.
    noise : ndarray, shape (P,), optional
        Noise per point of each spectrum (edge-step units); default
        :func:`~xafsmap.core.spectra.normalize.estimate_noise` of each.
    search : (float, float)
        Offsets to search, eV.
    n_bootstrap : int
        Resamples of the pixels for the uncertainty.
    rng : int or Generator, optional
        Seed of the bootstrap.

    Returns
    -------
    OffsetFit

    Raises
    ------
    ValueError
        If no spectrum has a finite, positive noise level, or ``search`` is empty.

    Notes
    -----
    Each offset ``d`` shifts every reference by ``d`` (on top of its own offset); they
    are prepared as the map prepares references and every spectrum is fitted with a
    non-negative, sum-to-one combination of them (Athena's LCF defaults,
    :func:`~xafsmap.core.spectra.lcf.fit_fractions`) over ``window``. The total ``chi2(d) =
    sum_p RSS_p(d) / sigma_p**2`` is scanned on a 0.5 eV grid over ``search`` (500
    spectra: enough to find the basin), then on a 0.05 eV grid over +-0.6 eV around its
    minimum (all spectra); the offset is the vertex of the parabola through the lowest
    fine point and its neighbours (0 where the given offsets fit at least as well). Its
    uncertainty is that vertex's standard deviation over ``n_bootstrap`` resamples of
    the pixels: the noise and how differently the pixels pull, not systematic errors.
    Noise levels are raised to a quarter of their median (and :data:`NOISE_FLOOR`), so
    no pixel dominates. In Athena's terms: every standard aligned to the data with one
    shared ``eshift``, judged by the LCF misfit.

    Examples
    --------
    >>> from xafsmap.core.io.references import Reference
    >>> e = np.linspace(7050.0, 7250.0, 201)
    >>> a = Reference("a", e, 1 / (1 + np.exp(-(e - 7112.0) / 2.0)), "x")
    >>> b = Reference("b", e, 1 / (1 + np.exp(-(e - 7120.0) / 3.0)) + 0.3 * np.exp(-((e - 7125) / 3) ** 2), "x")
    >>> params = {"e0": 7116.0}
    >>> truth = shifted_references([a, b], e, [3.0], norm_params=params)[0]
    >>> spectra = (np.repeat([[0.3, 0.7], [0.8, 0.2]], 25, axis=0) @ truth).T  # 50 pixels
    >>> spectra = spectra + np.random.default_rng(0).normal(0, 0.01, spectra.shape)
    >>> fit = fit_common_offset(spectra, e, [a, b], norm_params=params, window=(30, 150), rng=0)
    >>> round(fit.offset, 1), fit.sigma < 0.1
    (3.0, True)
    """
    energies = np.asarray(energies, dtype=np.float64)
    lo, hi = (float(v) for v in search)
    if not lo < hi:
        raise ValueError(f"the offset search range {search} eV is empty")
    spectra, sigma = _weighted(np.asarray(spectra, dtype=np.float64), energies, noise, norm_params["e0"],
                               many=len(references) > MANY_REFERENCES)
    own = [normalize(ref.mu, ref.energies).norm for ref in references]
    prepare = lambda shifts: shifted_references(references, energies, shifts,  # noqa: E731
                                                norm_params=norm_params, offsets=offsets, own=own)
    grid = np.arange(lo, hi + 0.5 * COARSE_STEP, COARSE_STEP)
    few = np.linspace(0, spectra.shape[1] - 1, min(spectra.shape[1], COARSE_PIXELS)).astype(int)
    coarse = _chi2(spectra[:, few], prepare(grid), sigma[few], window).sum(axis=1)  # finds the basin
    best = int(np.argmin(coarse))
    fine = grid[best] + np.arange(-FINE_HALF_WIDTH, FINE_HALF_WIDTH + 0.5 * FINE_STEP, FINE_STEP)
    per_pixel = _chi2(spectra, prepare(fine), sigma, window)  # (F, P)
    offset = float(_vertex(fine, per_pixel.sum(axis=1)[None])[0])
    # bootstrap: each resample is a count per pixel, so its chi-square curve is one product
    p = per_pixel.shape[1]
    counts = np.random.default_rng(rng).multinomial(p, np.full(p, 1.0 / p), size=max(n_bootstrap, 2))
    spread = float(np.std(_vertex(fine, counts @ per_pixel.T), ddof=1))
    end = _chi2(spectra, prepare([0.0, offset]), sigma, window)
    if end[0].sum() <= end[1].sum():  # the given scale fits as well (a tie): keep it
        offset, end = 0.0, end[[0, 0]]
    n = window[1] - window[0]
    total = end.sum(axis=1)
    gain = (total[0] - total[1]) / max(total[1] / (p * n), 1e-300)
    ratio = np.median(np.sqrt(end / n), axis=1)
    return OffsetFit(offset=offset, sigma=spread, search=(lo, hi), at_limit=best in (0, grid.size - 1),
                     n_pixels=p, ratio_given=float(ratio[0]), ratio_best=float(ratio[1]),
                     gain=float(gain), grid=grid, misfit=coarse)


def _weighted(spectra, energies, noise, e0, *, many):
    """The spectra with a usable noise level (at most MANY_PIXELS if ``many``) and their noise,
    raised to a quarter of the median and to NOISE_FLOOR so no single pixel dominates."""
    sigma = estimate_noise(spectra, energies, e0=e0) if noise is None else np.asarray(noise, dtype=np.float64)
    keep = np.flatnonzero(np.isfinite(sigma) & np.all(np.isfinite(spectra), axis=0))
    if keep.size == 0:
        raise ValueError("no sample spectrum has a finite noise level to weigh the offset fit with")
    if many:  # the subset NNLS grows as 2**K: fewer pixels
        keep = keep[np.linspace(0, keep.size - 1, min(keep.size, MANY_PIXELS)).astype(int)]
    sigma = sigma[keep]
    return spectra[:, keep], np.maximum(sigma, max(FLOOR_SHARE * float(np.median(sigma)), NOISE_FLOOR))


#: Coarse grid step over :data:`SEARCH` (on at most COARSE_PIXELS spectra), then the fine
#: grid around the coarse minimum (on all), eV.
COARSE_STEP, FINE_STEP, FINE_HALF_WIDTH, COARSE_PIXELS = 0.5, 0.05, 0.6, 500


#: With more than MANY_REFERENCES references at most MANY_PIXELS spectra are fitted.
MANY_REFERENCES, MANY_PIXELS = 5, 500
