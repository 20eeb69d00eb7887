"""Unexplained pixels: where no mixture of the references reproduces the spectrum.

A classifier always answers, even where none of its references is present. Here every
sample pixel is fitted with non-negative mixtures of the references plus a free
baseline, each point weighted by its inverse variance under the stack's noise model
(:mod:`xafsmap.core.spectra.noise`), so the misfit ``chi2 = sum(r**2 / sigma**2)`` means the
same in thin and thick grains, bright and dim parts of the field. Which ``chi2`` is
"too large" is learned, not assumed: synthetic mixtures of the references with noise
drawn like the data's, energy by energy, go through the very same normalization and fit,
and the distribution of their ``chi2`` (a scaled chi-square ``a * chi2(d)`` fitted by
moments at each noise level) turns every pixel's misfit into a p-value. Pixels below the
chosen false-alarm rate are *unexplained*, except those too thick to trust (harmonics and
scattered light flatten their spectra: that is not a new phase); connected groups of
them are regions, each with its mean normalized spectrum (the input of
:mod:`xafsmap.core.trust.discover`).

The stack-level functions read the stack band by band (all energies of a few rows),
so memory is bounded by one band plus the 2-D maps.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..spectra.sharedfit import BASELINE_TERMS, baseline
from ..mapping.pipeline import BAND_BYTES, band_rows, drive
from ..mapping.maps import MASK_SAMPLE
from .fitsetup import FitSetup, normalize_band, setup_fit

if TYPE_CHECKING:
    from ..io.references import Reference
    from ..io.stack import Stack

__all__ = [
    "NullModel",
    "Unexplained",
    "calibrate_misfit",
    "find_regions",
    "find_unexplained",
    "iter_unexplained",
    "region_spectra",
    "score_misfit",
]

#: Default false-alarm rate: the fraction of well-explained pixels flagged by chance.
FALSE_ALARM = 1e-3
#: With pooling, a pixel is flagged only if its own misfit also has a p-value below this.
OWN_EVIDENCE = 0.1


@dataclass(frozen=True)
class NullModel:
    """Distribution of the misfit ``chi2`` of explained spectra, by noise level.

    At noise level ``levels[i]`` (edge-step units) ``chi2 ~ scale[i] * chi2(dof[i])``;
    between levels both are interpolated in log noise.
    """

    levels: np.ndarray
    scale: np.ndarray
    dof: np.ndarray
    n_energies: int
    n_spectra: int

    def at(self, noise: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, dof)`` at each noise level of ``noise`` (any shape)."""
        x = np.log(np.clip(np.asarray(noise, dtype=np.float64), 1e-12, None))
        grid = np.log(self.levels)
        return np.interp(x, grid, self.scale), np.interp(x, grid, self.dof)


def calibrate_misfit(setup: FitSetup, *, n_spectra: int = 6000, n_levels: int = 5, levels: ArrayLike | None = None,
                     rng: int | np.random.Generator | None = None) -> NullModel:
    """Learn the misfit distribution of spectra the references *do* explain.

    Parameters
    ----------
    setup : FitSetup
        References, energies, window, normalization and noise profiles of the measurement.
    n_spectra : int
        Synthetic spectra in all.
    n_levels : int
        Noise levels at which the distribution is fitted: geometric steps between the
        0.5th and 99.5th percentile of ``levels``.
    levels : array_like, optional
        The pixels' noise levels to cover (the median noise of each one's points in the
        fit window, edge-step units); default the surveyed profiles'.
    rng : int or Generator, optional

    Returns
    -------
    NullModel

    Notes
    -----
    Compositions are drawn from a Dirichlet(0.5) over the references (mostly one or
    two dominant phases, as in real samples); each spectrum takes the noise profile of
    a surveyed sample pixel, energy by energy (scaled to the level simulated), is
    normalized and fitted exactly as a pixel, with the same profile as its variance.
    ``scale`` and ``dof`` match the mean ``m`` and variance ``v`` of its ``chi2``:
    ``scale = v / (2 m)``, ``dof = 2 m**2 / v``.
    """
    rng = np.random.default_rng(rng)
    profiles = np.asarray(setup.survey.profiles, dtype=np.float64)
    profiles = profiles[np.all(np.isfinite(profiles) & (profiles > 0), axis=1)]
    if profiles.shape[0] == 0:
        raise ValueError("no finite noise profile to calibrate the misfit with")
    start, stop = setup.window
    typical = np.median(profiles[:, start:stop], axis=1) if levels is None else np.asarray(levels, np.float64)
    lo, hi = np.percentile(typical[np.isfinite(typical) & (typical > 0)], [0.5, 99.5])
    grid = np.geomspace(lo, max(hi, lo * 1.001), max(int(n_levels), 1))
    per_level = max(int(n_spectra) // grid.size, 50)
    k = setup.references.shape[0]
    scale, dof = [], []
    for level in grid:
        weights = rng.dirichlet(np.full(k, 0.5), per_level)
        shape = profiles[rng.integers(0, profiles.shape[0], per_level)]
        sigma = shape * (level / np.median(shape[:, start:stop], axis=1, keepdims=True))
        noisy = (weights @ setup.references + sigma * rng.standard_normal(sigma.shape)).T
        norm = setup.prepare(noisy)
        _, chi2 = setup.fit(norm[start:stop], (sigma.T ** 2)[start:stop])
        chi2 = chi2[np.isfinite(chi2)]
        mean, var = chi2.mean(), chi2.var()
        scale.append(var / (2 * mean))
        dof.append(2 * mean**2 / var)
    return NullModel(levels=grid, scale=np.array(scale), dof=np.array(dof),
                     n_energies=stop - start, n_spectra=per_level * grid.size)


def score_misfit(chi2: np.ndarray, noise: np.ndarray, null: NullModel, *,
                 pool: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """p-values and z-scores of per-pixel misfits under the references' null model.

    Parameters
    ----------
    chi2 : ndarray, shape (M, N)
        Weighted misfit ``sum(r**2 / sigma**2)`` per pixel, NaN where there is no sample.
    noise : ndarray, shape (M, N)
        Each pixel's noise level (median noise of its points in the fit window,
        edge-step units), where the null model is read.
    null : NullModel
    pool : int
        Pool the evidence of ``pool x pool`` neighbouring sample pixels (1 = none):
        each pixel's ``chi2 / scale`` is a chi-square with ``dof`` degrees of freedom,
        and the sum over independent pixels is a chi-square with the summed degrees
        of freedom. A phase covering whole neighbourhoods is detected at a
        ``pool``-times smaller misfit per pixel (in RSS); features smaller than the
        window are blurred.

    Returns
    -------
    p_value : ndarray, shape (M, N), float64
        Probability that an explained pixel misfits at least this much; NaN outside
        the sample.
    z : ndarray, shape (M, N), float32
        The same as a one-sided normal z-score (large = unexplained), capped at 38.

    Examples
    --------
    >>> null = NullModel(np.array([0.02]), np.array([1.0]), np.array([100.0]), 100, 1000)
    >>> p, z = score_misfit(np.array([[100.0, 160.0]]), np.full((1, 2), 0.02), null)
    >>> np.round(p, 3).tolist(), np.round(z.astype(float), 1).tolist()
    ([[0.481, 0.0]], [[0.0, 3.7]])
    """
    from scipy.ndimage import uniform_filter
    from scipy.stats import chi2 as chi2_dist
    from scipy.stats import norm as normal

    chi2 = np.asarray(chi2, dtype=np.float64)
    scale, dof = null.at(noise)
    known = np.isfinite(chi2) & np.isfinite(scale)
    u = np.where(known, chi2 / np.where(known, scale, 1.0), 0.0)
    d = np.where(known, dof, 0.0)
    if pool > 1:
        area = float(pool * pool)
        u = uniform_filter(u, pool, mode="constant") * area
        d = uniform_filter(d, pool, mode="constant") * area
    with np.errstate(invalid="ignore"):
        p = np.where(known, chi2_dist.sf(u, np.maximum(d, 1e-6)), np.nan)
    z = np.clip(normal.isf(np.clip(p, 1e-300, 1.0)), -38, 38)
    return p, np.where(known, z, np.nan).astype(np.float32)


def find_regions(flags: np.ndarray, *, min_size: int = 5, connectivity: int = 2) -> np.ndarray:
    """Connected regions of flagged pixels, largest first.

    Parameters
    ----------
    flags : ndarray of bool, shape (M, N)
    min_size : int
        Regions of fewer pixels are dropped (isolated false alarms).
    connectivity : {1, 2}
        1: edge neighbours only; 2: edges and corners.

    Returns
    -------
    ndarray, shape (M, N), uint16
        0 = not in a region, 1 = the largest region, 2 the next, ...

    Examples
    --------
    >>> flags = np.array([[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]], bool)
    >>> find_regions(flags, min_size=2).tolist()
    [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    """
    from scipy.ndimage import generate_binary_structure, label

    raw, count = label(np.asarray(flags, bool), structure=generate_binary_structure(2, connectivity))
    sizes = np.bincount(raw.ravel(), minlength=count + 1)
    sizes[0] = 0
    keep = np.flatnonzero(sizes >= max(min_size, 1))
    order = keep[np.argsort(-sizes[keep], kind="stable")]
    if order.size > np.iinfo(np.uint16).max:
        raise ValueError(f"{order.size} regions do not fit in uint16 labels; raise min_size")
    relabel = np.zeros(count + 1, np.uint16)
    relabel[order] = np.arange(1, order.size + 1)
    return relabel[raw]


@dataclass(frozen=True)
class Unexplained:
    """Per-pixel trust maps of one measurement against one set of references.

    ``p_value`` (float64), ``z``, ``chi2``, ``noise``, ``residual``, ``edge_step``
    (float32) and ``mask`` (uint8, 0 no sample / 1 sample / 2 invalid) are (M, N);
    ``fractions`` (K, M, N); ``thick`` bool (M, N) = too thick to judge; ``flags`` bool
    (M, N) = p below the false-alarm rate and not too thick; ``regions`` uint16 (M, N)
    (0 = explained); ``spectra`` (R, E) the mean normalized spectrum of each region,
    ``spectra_variance`` (R, E) the variance of that mean, ``sizes`` (R,) its pixel count.
    """

    p_value: np.ndarray
    z: np.ndarray
    chi2: np.ndarray
    flags: np.ndarray
    thick: np.ndarray
    regions: np.ndarray
    spectra: np.ndarray
    spectra_variance: np.ndarray
    sizes: np.ndarray
    noise: np.ndarray
    residual: np.ndarray
    fractions: np.ndarray
    edge_step: np.ndarray
    mask: np.ndarray
    setup: FitSetup
    null: NullModel
    params: dict = field(default_factory=dict)


def iter_unexplained(stack: Stack, references: Sequence[Reference], *, false_alarm: float = FALSE_ALARM, pool: int = 1,
                     min_size: int = 5, n_calibration: int = 6000, band_bytes: int = BAND_BYTES,
                     rng: int | np.random.Generator | None = 0,
                     **fit_options: Any) -> Generator[tuple[int, int], None, Unexplained]:
    """Flag the pixels no mixture of ``references`` explains (see module notes).

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
    references : sequence of Reference
        The references the map is made with.
    false_alarm : float
        Per-pixel probability of flagging a spectrum the references explain.
    pool : int
        Pool the evidence of ``pool x pool`` pixels (see :func:`score_misfit`); a pixel is
        then flagged when the pooled p-value is below ``false_alarm`` and its own below
        :data:`OWN_EVIDENCE` (known pixels beside an unexplained region stay explained).
    min_size : int
        Smallest region kept, pixels.
    n_calibration : int
        Synthetic spectra of the null model.
    rng : int or Generator
        Seed of the null model.
    **fit_options
        ``offsets``, ``threshold``, ``significance``, ``fit_range``, ``thick``, ``e0``,
        ``pre1`` ... of :func:`setup_fit`.

    Yields
    ------
    (done, total) : tuple of int
        One step per band, the calibration, then the region spectra.

    Returns
    -------
    Unexplained
    """
    if not 0 < false_alarm < 1:
        raise ValueError(f"false_alarm must lie between 0 and 1, got {false_alarm}")
    setup = setup_fit(stack, references, **fit_options)
    data = stack.data
    _, rows, cols = data.shape
    band = band_rows(data.shape, band_bytes)
    total = 2 + -(-rows // band)
    start, stop = setup.window
    k = setup.references.shape[0]
    chi2 = np.full((rows, cols), np.nan, np.float64)
    noise = np.full((rows, cols), np.nan, np.float32)
    edge_step = np.full((rows, cols), np.nan, np.float32)
    mask = np.zeros((rows, cols), np.uint8)
    thick = np.zeros((rows, cols), bool)
    fractions = np.full((k, rows, cols), np.nan, np.float32)
    for step, r0 in enumerate(range(0, rows, band), start=1):
        r1 = min(rows, r0 + band)
        out = normalize_band(np.asarray(data[:, r0:r1], dtype=np.float32), setup, origin=r0)
        edge_step[r0:r1], mask[r0:r1], thick[r0:r1] = out["edge_step"], out["mask"], out["thick"]
        sample = out["mask"] == MASK_SAMPLE
        variance = out["variance"][start:stop, sample]
        w, chi2[r0:r1][sample] = setup.fit(out["norm"][start:stop, sample], variance)
        noise[r0:r1][sample] = np.sqrt(np.median(variance, axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            fractions[:, r0:r1][:, sample] = w / w.sum(axis=0)
        yield step, total
    # the null model covers the noise of every sample pixel mapped (thin pixels included)
    null = calibrate_misfit(setup, n_spectra=n_calibration, levels=noise[np.isfinite(noise)], rng=rng)
    yield total - 1, total
    p_value, z = score_misfit(chi2, noise, null, pool=pool)
    flags = (np.nan_to_num(p_value, nan=1.0) < false_alarm) & ~thick
    if pool > 1:  # a pooled flag also needs the pixel's own evidence: no spill over a region's border
        own, _ = score_misfit(chi2, noise, null)
        flags &= np.nan_to_num(own, nan=1.0) < OWN_EVIDENCE
    regions = find_regions(flags, min_size=min_size)
    spectra, spectra_variance, sizes = region_spectra(stack, regions, setup, band_bytes=band_bytes)
    yield total, total
    params = dict(references=list(setup.names), false_alarm=false_alarm, pool=pool, min_size=min_size,
                  n_calibration=null.n_spectra, seed=rng if isinstance(rng, int) else None,
                  fit_window_eV=[float(setup.energies[start]), float(setup.energies[stop - 1])],
                  e0=setup.e0, threshold=setup.survey.threshold, significance=setup.survey.significance,
                  thick_limit=None if not np.isfinite(setup.thick) else setup.thick, too_thick_pixels=int(np.count_nonzero(thick & (mask == MASK_SAMPLE))),
                  normalization=setup.normalization, noise_model=setup.survey.noise_model.info,
                  offsets=list(setup.offsets), alignment=setup.alignment, warnings=list(setup.warnings))
    residual = np.sqrt(chi2 / (stop - start)) * noise
    return Unexplained(p_value=p_value, z=z, chi2=chi2.astype(np.float32), flags=flags, thick=thick,
                       regions=regions, spectra=spectra, spectra_variance=spectra_variance, sizes=sizes,
                       noise=noise, residual=residual.astype(np.float32), fractions=fractions,
                       edge_step=edge_step, mask=mask, setup=setup, null=null, params=params)


def region_spectra(stack: Stack, regions: np.ndarray, setup: FitSetup, *,
                   band_bytes: int = BAND_BYTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance weighted mean normalized spectrum of each labelled region,
    reading only bands that hold one.

    Returns
    -------
    spectra : ndarray, shape (R, E), float64
    variance : ndarray, shape (R, E), float64
        Variance of each mean (``1 / sum(1 / variance)`` over the region's pixels).
    sizes : ndarray, shape (R,), int
    """
    n_regions = int(regions.max()) if regions.size else 0
    n_energies = setup.energies.size
    sums = np.zeros((n_regions + 1, n_energies))
    weights = np.zeros((n_regions + 1, n_energies))
    counts = np.zeros(n_regions + 1)
    band = band_rows(stack.data.shape, band_bytes)
    for r0 in range(0, regions.shape[0], band):
        labels = regions[r0 : r0 + band]
        if not labels.any():
            continue
        out = normalize_band(np.asarray(stack.data[:, r0 : r0 + band], dtype=np.float32), setup, origin=r0)
        inside = labels.ravel() > 0
        lab = labels.ravel()[inside]
        y = out["norm"].reshape(n_energies, -1)[:, inside].astype(np.float64)
        w = 1.0 / out["variance"].reshape(n_energies, -1)[:, inside].astype(np.float64)
        counts += np.bincount(lab, minlength=n_regions + 1)
        for i in range(n_energies):  # a loop over energies, not pixels
            sums[:, i] += np.bincount(lab, weights=w[i] * y[i], minlength=n_regions + 1)
            weights[:, i] += np.bincount(lab, weights=w[i], minlength=n_regions + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[1:] / weights[1:], 1.0 / weights[1:], counts[1:].astype(int)


def find_unexplained(stack: Stack, references: Sequence[Reference], **options: Any) -> Unexplained:
    """Run :func:`iter_unexplained` to the end and return its :class:`Unexplained`."""
    return drive(iter_unexplained(stack, references, **options))
