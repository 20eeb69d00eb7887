"""Unexplained pixels: where no mixture of the references reproduces the spectrum.

A classifier always answers, even where none of its references is present. Here every
sample pixel is fitted with non-negative mixtures of the references (the LCF of
:func:`~xafsmap.core.lcf.fit_fractions`, on the raw normalized spectrum) and its misfit
``chi2 = RSS / sigma**2`` is measured against the pixel's own noise ``sigma``. Which
``chi2`` is "too large" is learned, not assumed: synthetic mixtures of the references
with noise at the measured levels go through the very same normalization, noise
estimate and fit, and the distribution of their ``chi2`` (a scaled chi-square
``a * chi2(d)`` fitted by moments at each noise level) turns every pixel's misfit into a
p-value. Pixels below the chosen false-alarm rate are *unexplained*; connected groups of
them are regions, each with its mean normalized spectrum (the input of
:mod:`xafsmap.core.discover`).

The stack-level functions read the stack band by band (all energies of a few rows),
so memory is bounded by one band plus the 2-D maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .lcf import fit_fractions
from .normalize import estimate_noise, normalize
from .pipeline import BAND_BYTES, MASK_INVALID, MASK_SAMPLE, band_rows, drive
from .training import prepare_references, survey

__all__ = [
    "FitSetup",
    "NullModel",
    "Unexplained",
    "calibrate_misfit",
    "find_regions",
    "find_unexplained",
    "fit_misfit",
    "iter_unexplained",
    "score_misfit",
    "setup_fit",
    "smooth_noise",
]

#: Default false-alarm rate: the fraction of well-explained pixels flagged by chance.
FALSE_ALARM = 1e-3


@dataclass(frozen=True)
class FitSetup:
    """What every band of a stack is normalized and fitted with.

    Attributes
    ----------
    energies : ndarray, shape (E,)
    references : ndarray, shape (K, E)
        Normalized references on the measurement's energies.
    names : tuple of str
    window : (int, int)
        Energy indices ``[start, stop)`` of the fits.
    e0 : float
        Median edge energy of the sample pixels, eV.
    threshold : float
        Edge-step threshold of the no-sample mask.
    survey_noise : ndarray
        Noise levels (edge-step units) of the surveyed sample pixels.
    normalization : dict
        Normalization parameters given (Larch names); missing ones are derived.
    """

    energies: np.ndarray
    references: np.ndarray
    names: tuple
    window: tuple
    e0: float
    threshold: float
    survey_noise: np.ndarray
    normalization: dict

    def fit(self, spectra, references=None):
        """:func:`fit_misfit` of (window E, ...) spectra with these (or other) references."""
        start, stop = self.window
        refs = self.references if references is None else np.asarray(references)
        return fit_misfit(spectra, refs[:, start:stop], self.energies[start:stop], e0=self.e0)

    def prepare(self, spectra: np.ndarray) -> np.ndarray:
        """Normalize (E, n) spectra exactly as the measured pixels are."""
        return normalize(spectra, self.energies, **self.normalization).norm


def setup_fit(stack, references, *, offsets=None, threshold=None, fit_range=(-30.0, 70.0),
              e0=None, pre1=None, pre2=None, norm1=None, norm2=None, nnorm=None) -> FitSetup:
    """Survey a stack and put the references on its energies, as the mapping does.

    Parameters
    ----------
    stack : xafsmap.core.io.Stack
    references : sequence of Reference
    offsets : sequence of float, optional
        Energy offset per reference, eV.
    threshold : float, optional
        Edge-step threshold of the no-sample mask; default automatic.
    fit_range : (float, float)
        Energies relative to the median e0 used by the fits, eV.
    e0, pre1, pre2, norm1, norm2, nnorm : optional
        Normalization parameters with Larch's meaning.

    Returns
    -------
    FitSetup
    """
    if not references:
        raise ValueError("at least one reference is needed")
    energies = np.asarray(stack.energies, dtype=np.float64)
    if stack.data.shape[0] != energies.size:
        raise ValueError(f"stack has {stack.data.shape[0]} energies but {energies.size} energies are given")
    given = dict(e0=e0, pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2, nnorm=nnorm)
    params = {name: value for name, value in given.items() if value is not None}
    # one e0 for every spectrum (module notes); Larch's windows: the free baseline of
    # the fits absorbs the pre-edge line, and the misfit null model is calibrated on them
    found = survey(stack.data, energies, threshold=threshold, norm_params=params, pre_edge=False)
    params = found.normalization
    refs = prepare_references(references, energies, e0=found.e0, offsets=offsets, norm_params=params)
    inside = np.flatnonzero((energies >= found.e0 + fit_range[0]) & (energies <= found.e0 + fit_range[1]))
    if inside.size < 5:
        raise ValueError(f"only {inside.size} energies lie within {tuple(fit_range)} eV of the edge at {found.e0:.1f} eV")
    return FitSetup(energies=energies, references=refs, names=tuple(r.name for r in references),
                    window=(int(inside[0]), int(inside[-1]) + 1), e0=found.e0, threshold=found.threshold,
                    survey_noise=found.noise, normalization=params)


def fit_misfit(spectra, references, energies, *, e0: float, baseline: bool = True):
    """Non-negative mixture fit with a free baseline: the misfit the references leave.

    Parameters
    ----------
    spectra : ndarray, shape (E, ...)
        Normalized spectra on ``energies`` (usually the fit window only).
    references : ndarray, shape (K, E)
        Normalized references on the same energies.
    energies : ndarray, shape (E,)
    e0 : float
        Edge energy of the normalization, eV.
    baseline : bool
        Fit, besides the references, a free baseline ``a + b min(E - e0, 0) +
        c max(E - e0, 0)``.

    Returns
    -------
    weights : ndarray, shape (K, ...), float32
        Non-negative amplitudes (not forced to sum to 1).
    rss : ndarray, shape (...), float64
        Residual sum of squares over the E energies (edge-step units squared).

    Notes
    -----
    Why the baseline and the free amplitudes: with noise, the pre-edge line of the
    normalization is fitted to a few points and extrapolated to the edge, its error
    adds ``-(a + b min(E, e0))`` to the normalized spectrum (the post-edge fit and
    flattening absorb it above e0, leaving a constant), the post-edge fit adds a
    kink ``b' max(E - e0, 0)`` and the edge step a scale error of a few %. None of
    that is chemistry, yet it misfits by several sigma over tens of points; leaving
    it in makes the misfit of explained spectra heavy-tailed. The baseline is
    removed by projection (Frisch–Waugh–Lovell), which is exact for a free linear
    term, then the amplitudes are the non-negative least squares of the rest.

    Examples
    --------
    >>> e = np.linspace(7100.0, 7160.0, 61)
    >>> refs = np.stack([1 / (1 + np.exp(-(e - 7120) / 2)), 1 / (1 + np.exp(-(e - 7125) / 2))])
    >>> y = 0.3 * refs[0] + 0.8 * refs[1] + 0.05 + 0.001 * (e - 7120)
    >>> w, rss = fit_misfit(y, refs, e, e0=7120.0)
    >>> np.round(w.astype(float), 3).tolist(), float(rss) < 1e-12
    ([0.3, 0.8], True)
    """
    spectra = np.asarray(spectra)
    references = np.asarray(references, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    shape = spectra.shape[1:]
    y = spectra.reshape(spectra.shape[0], -1).astype(np.float64)
    a = references.T
    if baseline:
        x = (energies - e0) / 50.0
        q, _ = np.linalg.qr(np.stack([np.ones_like(x), np.minimum(x, 0.0), np.maximum(x, 0.0)], axis=1))
        y = y - q @ (q.T @ np.where(np.isfinite(y), y, 0.0)) + np.where(np.isfinite(y), 0.0, np.nan)
        a = a - q @ (q.T @ a)
    weights, residual = fit_fractions(y, a.T, sum_to_one=False)
    rss = energies.size * residual.astype(np.float64) ** 2
    return weights.reshape(references.shape[0], *shape), rss.reshape(shape)


def normalize_band(band: np.ndarray, setup: FitSetup):
    """Normalize one band (E, m, N): returns norm, edge_step, e0, mask (0/1/2), noise."""
    finite = np.all(np.isfinite(band), axis=0)
    result = normalize(np.where(finite, band, 0.0).astype(np.float32), setup.energies, **setup.normalization)
    sample = finite & (result.edge_step > setup.threshold)
    mask = np.where(finite, sample.astype(np.uint8) * MASK_SAMPLE, MASK_INVALID).astype(np.uint8)
    noise = np.full(sample.shape, np.nan, np.float32)
    noise[sample] = estimate_noise(result.norm[:, sample], setup.energies, e0=result.e0[sample])
    return result.norm, np.where(finite, result.edge_step, np.nan).astype(np.float32), mask, noise


def smooth_noise(noise, edge_step, *, size: int = 5) -> np.ndarray:
    """Average the per-pixel noise over ``size x size`` neighbours, in absorbance units.

    The noise of one pixel's estimate (a robust deviation from ~50 smooth points) is
    itself uncertain by ~15 %, enough to make a chi-square test on its own noise heavy
    tailed. Absorbance noise varies slowly across an image while the edge step (and
    so the noise in edge-step units) varies from pixel to pixel; so the variance
    ``(sigma * edge_step)**2`` is averaged over the neighbours that have one, and
    divided by each pixel's own edge step again.

    Parameters
    ----------
    noise, edge_step : ndarray, shape (M, N)
        Per-pixel noise (edge-step units, NaN where unknown) and edge step.
    size : int
        Window side in pixels; 1 returns ``noise`` unchanged.

    Returns
    -------
    ndarray, shape (M, N), float32

    Examples
    --------
    >>> noise = np.array([[0.02, 0.04], [np.nan, 0.02]]); step = np.array([[1.0, 0.5], [1.0, 1.0]])
    >>> np.round(smooth_noise(noise, step, size=3).astype(float), 3).tolist()
    [[0.02, 0.04], [0.02, 0.02]]
    """
    from scipy.ndimage import uniform_filter

    noise = np.asarray(noise, dtype=np.float64)
    if size <= 1:
        return noise.astype(np.float32)
    variance = (noise * np.asarray(edge_step, dtype=np.float64)) ** 2
    known = np.isfinite(variance)
    total = uniform_filter(np.where(known, variance, 0.0), size, mode="constant")
    count = uniform_filter(known.astype(np.float64), size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        smoothed = np.sqrt(total / count) / edge_step
    return np.where(count > 0, smoothed, np.nan).astype(np.float32)


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

    def at(self, noise) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, dof)`` at each noise level of ``noise`` (any shape)."""
        x = np.log(np.clip(np.asarray(noise, dtype=np.float64), 1e-12, None))
        grid = np.log(self.levels)
        return np.interp(x, grid, self.scale), np.interp(x, grid, self.dof)


def calibrate_misfit(setup: FitSetup, *, noise=None, n_spectra: int = 6000, n_levels: int = 3,
                     per_pixel_noise: bool = False, rng=None) -> NullModel:
    """Learn the misfit distribution of spectra the references *do* explain.

    Parameters
    ----------
    setup : FitSetup
        References, energies, window and normalization of the measurement.
    noise : array_like, optional
        Noise levels (edge-step units) to cover; default the survey's. The levels
        simulated are ``n_levels`` geometric steps between its 2nd and 98th percentile.
    n_spectra : int
        Synthetic spectra in all.
    per_pixel_noise : bool
        Divide each synthetic misfit by the spectrum's own noise estimate (as for data
        whose noise is not smoothed, ``noise_window=1``) instead of the estimator's
        typical value at that level.
    rng : int or Generator, optional

    Returns
    -------
    NullModel

    Notes
    -----
    Compositions are drawn from a Dirichlet(0.5) over the references (mostly one or
    two dominant phases, as in real samples), noise is white in edge-step units,
    then each spectrum is normalized, its noise estimated and its LCF residual
    computed exactly as for a pixel. ``scale`` and ``dof`` match the mean ``m`` and
    variance ``v`` of its ``chi2``: ``scale = v / (2 m)``, ``dof = 2 m**2 / v``.
    """
    rng = np.random.default_rng(rng)
    levels = np.asarray(setup.survey_noise if noise is None else noise, dtype=np.float64).ravel()
    levels = levels[np.isfinite(levels) & (levels > 0)]
    if levels.size == 0:
        raise ValueError("no finite positive noise level to calibrate the misfit with")
    lo, hi = np.percentile(levels, [2, 98])
    grid = np.geomspace(lo, max(hi, lo * 1.001), max(int(n_levels), 1))
    per_level = max(int(n_spectra) // grid.size, 50)
    k, n_energies = setup.references.shape
    start, stop = setup.window
    scale, dof = [], []
    for sigma in grid:
        weights = rng.dirichlet(np.full(k, 0.5), per_level)
        clean = weights @ setup.references
        noisy = (clean + sigma * rng.standard_normal(clean.shape)).T
        result = normalize(noisy, setup.energies, **setup.normalization)
        estimated = estimate_noise(result.norm, setup.energies, e0=result.e0)
        _, rss = setup.fit(result.norm[start:stop])
        used = estimated if per_pixel_noise else sigma * np.nanmedian(estimated / sigma)
        chi2 = rss / used**2
        chi2 = chi2[np.isfinite(chi2)]
        mean, var = chi2.mean(), chi2.var()
        scale.append(var / (2 * mean))
        dof.append(2 * mean**2 / var)
    return NullModel(levels=grid, scale=np.array(scale), dof=np.array(dof),
                     n_energies=stop - start, n_spectra=per_level * grid.size)


def score_misfit(chi2, noise, null: NullModel, *, pool: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """p-values and z-scores of per-pixel misfits under the references' null model.

    Parameters
    ----------
    chi2 : ndarray, shape (M, N)
        Misfit ``RSS / sigma**2`` per pixel, NaN where there is no sample.
    noise : ndarray, shape (M, N)
        The noise level each ``chi2`` was computed with (edge-step units).
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


def find_regions(flags, *, min_size: int = 5, connectivity: int = 2) -> np.ndarray:
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
    ``fractions`` (K, M, N); ``flags`` bool (M, N) = p below the false-alarm rate;
    ``regions`` uint16 (M, N) (0 = explained); ``spectra`` (R, E) the mean normalized
    spectrum of each region with ``sizes`` (R,) its pixel count.
    """

    p_value: np.ndarray
    z: np.ndarray
    chi2: np.ndarray
    flags: np.ndarray
    regions: np.ndarray
    spectra: np.ndarray
    sizes: np.ndarray
    noise: np.ndarray
    residual: np.ndarray
    fractions: np.ndarray
    edge_step: np.ndarray
    mask: np.ndarray
    setup: FitSetup
    null: NullModel
    params: dict = field(default_factory=dict)


def iter_unexplained(stack, references, *, false_alarm: float = FALSE_ALARM, pool: int = 1,
                     noise_window: int = 5, min_size: int = 5, n_calibration: int = 6000,
                     band_bytes: int = BAND_BYTES, rng=0, **fit_options):
    """Flag the pixels no mixture of ``references`` explains (see module notes).

    Parameters
    ----------
    stack : xafsmap.core.io.Stack
    references : sequence of Reference
        The references the map is made with.
    false_alarm : float
        Per-pixel probability of flagging a spectrum the references explain.
    pool : int
        Pool the evidence of ``pool x pool`` pixels (see :func:`score_misfit`).
    noise_window : int
        Neighbourhood over which the noise is averaged (see :func:`smooth_noise`).
    min_size : int
        Smallest region kept, pixels.
    n_calibration : int
        Synthetic spectra of the null model.
    rng : int or Generator
        Seed of the null model.
    **fit_options
        ``offsets``, ``threshold``, ``fit_range``, ``e0``, ``pre1`` ... of :func:`setup_fit`.

    Yields
    ------
    (done, total) : tuple of int
        Calibration, one step per band, then the region spectra.

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
    null = calibrate_misfit(setup, n_spectra=n_calibration, per_pixel_noise=noise_window <= 1, rng=rng)
    yield 1, total
    start, stop = setup.window
    k = setup.references.shape[0]
    rss = np.full((rows, cols), np.nan, np.float64)
    noise = np.full((rows, cols), np.nan, np.float32)
    edge_step = np.full((rows, cols), np.nan, np.float32)
    mask = np.zeros((rows, cols), np.uint8)
    fractions = np.full((k, rows, cols), np.nan, np.float32)
    for step, r0 in enumerate(range(0, rows, band), start=2):
        r1 = min(rows, r0 + band)
        norm, edge_step[r0:r1], mask[r0:r1], noise[r0:r1] = normalize_band(
            np.asarray(data[:, r0:r1], dtype=np.float32), setup)
        sample = mask[r0:r1] == MASK_SAMPLE
        w, rss[r0:r1][sample] = setup.fit(norm[start:stop, sample])
        with np.errstate(invalid="ignore", divide="ignore"):
            fractions[:, r0:r1][:, sample] = w / w.sum(axis=0)
        yield step, total
    sigma = smooth_noise(noise, edge_step, size=noise_window)
    sigma = np.where(mask == MASK_SAMPLE, sigma, np.nan)
    chi2 = rss / sigma.astype(np.float64) ** 2
    p_value, z = score_misfit(chi2, sigma, null, pool=pool)
    flags = np.nan_to_num(p_value, nan=1.0) < false_alarm
    regions = find_regions(flags, min_size=min_size)
    spectra, sizes = region_spectra(stack, regions, setup, band_bytes=band_bytes)
    yield total, total
    params = dict(references=list(setup.names), false_alarm=false_alarm, pool=pool, noise_window=noise_window,
                  min_size=min_size, n_calibration=null.n_spectra, seed=rng if isinstance(rng, int) else None,
                  fit_window_eV=[float(setup.energies[start]), float(setup.energies[stop - 1])],
                  e0=setup.e0, threshold=setup.threshold, normalization=setup.normalization)
    return Unexplained(p_value=p_value, z=z, chi2=chi2.astype(np.float32), flags=flags, regions=regions,
                       spectra=spectra, sizes=sizes, noise=sigma, residual=np.sqrt(rss / (stop - start)).astype(np.float32),
                       fractions=fractions, edge_step=edge_step, mask=mask, setup=setup, null=null, params=params)


def region_spectra(stack, regions, setup: FitSetup, *, band_bytes: int = BAND_BYTES):
    """Mean normalized spectrum of each labelled region, reading only bands that hold one.

    Returns
    -------
    spectra : ndarray, shape (R, E), float64
    sizes : ndarray, shape (R,), int
    """
    n_regions = int(regions.max()) if regions.size else 0
    n_energies = setup.energies.size
    sums = np.zeros((n_regions + 1, n_energies))
    counts = np.zeros(n_regions + 1)
    band = band_rows(stack.data.shape, band_bytes)
    for r0 in range(0, regions.shape[0], band):
        labels = regions[r0 : r0 + band]
        if not labels.any():
            continue
        norm, *_ = normalize_band(np.asarray(stack.data[:, r0 : r0 + band], dtype=np.float32), setup)
        inside = labels.ravel() > 0
        lab = labels.ravel()[inside]
        flat = norm.reshape(n_energies, -1)[:, inside].astype(np.float64)
        counts += np.bincount(lab, minlength=n_regions + 1)
        for i in range(n_energies):  # a loop over energies, not pixels
            sums[:, i] += np.bincount(lab, weights=flat[i], minlength=n_regions + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        spectra = sums[1:] / counts[1:, None]
    return spectra, counts[1:].astype(int)


def find_unexplained(stack, references, **options) -> Unexplained:
    """Run :func:`iter_unexplained` to the end and return its :class:`Unexplained`."""
    return drive(iter_unexplained(stack, references, **options))
