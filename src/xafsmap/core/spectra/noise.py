"""How uncertain every point of every spectrum is: a noise model learned from the stack.

Absorbance noise is not one number. With counting statistics the variance of
``A = -ln((I - D) / (F - D))`` is about ``1 / (I - D) + 1 / (F - D) / n_flat``: it grows as
``exp(A)`` above the edge and in thick grains, and as the illumination falls toward the
edges of the field. xafsmap therefore models the variance of one point as

    ``var_A(E, p) = g(p) * h(E) * v(L(E, p))``

with ``L`` the pixel's signal level at that energy (its absorbance smoothed over five
energies, or counts for fluorescence-like data), ``v`` a function of level, ``h`` a
smooth profile in energy (incident intensity) and ``g`` a smooth field over the image
(illumination, dose, binning). The three factors are learned from the stack itself, so
the same model serves transmission counts, absorbance from unknown processing and
fluorescence maps:

1. point-to-point residuals of the raw spectra where they are smooth (below e0 - 15 eV
   and above e0 + 40 eV; :func:`point_residuals`, the same residuals as
   :func:`~xafsmap.core.spectra.normalize.estimate_noise`), whose variance is one point's;
2. the three factors fitted to the squared residuals by alternating robust medians
   (:func:`fit_noise_model`); ``v`` is a table over level (quantile bins, interpolated
   in log), ``h`` a quadratic in log over energy, ``g`` the per-pixel scale smoothed
   over the survey grid and interpolated to every pixel.

For a transmission stack the learned ``v`` follows ``exp(A)``: :attr:`NoiseModel.info`
reports the slope of ``log v`` against the level (1 for Poisson counts, 0 for white
noise), so report.json says which physics the data showed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["NoiseModel", "fit_noise_model", "point_residuals", "smooth_levels"]

#: median of chi-square(1): the median of r**2 of Gaussian residuals is this times their variance.
_MEDIAN_CHI2_1 = 0.454936
#: Energies averaged into a pixel's signal level (odd).
LEVEL_WIDTH = 5
#: Quantile bins of the level table, and the entries of the uniform lookup table.
LEVEL_BINS, TABLE_SIZE = 24, 256
#: Gaussian smoothing of log g: at least this share of the image's larger side (the
#: illumination changes across the field, grains change within it) and 1.5 grid cells.
FIELD_SMOOTHING, FIELD_CELLS = 0.125, 1.5


def smooth_levels(mu: np.ndarray, *, width: int = LEVEL_WIDTH) -> np.ndarray:
    """Moving average of spectra over ``width`` energies (shorter windows at the ends).

    Parameters
    ----------
    mu : ndarray, shape (E, ...)
    width : int
        Odd window length in energy points.

    Returns
    -------
    ndarray, shape (E, ...), float32

    Examples
    --------
    >>> smooth_levels(np.array([0.0, 3.0, 6.0, 9.0, 12.0]), width=3).tolist()
    [1.5, 3.0, 6.0, 9.0, 10.5]
    """
    mu = np.asarray(mu, dtype=np.float32)
    half = width // 2
    csum = np.concatenate([np.zeros((1, *mu.shape[1:]), np.float64), np.cumsum(mu, axis=0, dtype=np.float64)])
    index = np.arange(mu.shape[0])
    lo, hi = np.maximum(index - half, 0), np.minimum(index + half + 1, mu.shape[0])
    shape = (-1,) + (1,) * (mu.ndim - 1)
    return ((csum[hi] - csum[lo]) / (hi - lo).reshape(shape)).astype(np.float32)


def point_residuals(mu: np.ndarray, energies: np.ndarray, *, e0: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residuals of each point from the line through its neighbours, where spectra are smooth.

    Parameters
    ----------
    mu : ndarray, shape (E, P)
        Spectra (absorbance, counts or normalized).
    energies : ndarray, shape (E,)
    e0 : float or ndarray, shape (P,)
        Edge energy, eV.

    Returns
    -------
    resid : ndarray, shape (E - 2, P), float64
        ``r_i = (y_i - (1 - t) y_{i-1} - t y_{i+1}) / sqrt(1 + t**2 + (1 - t)**2)`` for
        the point ``i = 1 .. E - 2``; its variance is one point's for white noise. NaN
        where the triplet is not smooth (within ``e0 - 15`` to ``e0 + 40`` eV) or not
        finite. Spectra with fewer than 5 smooth triplets (short soft X-ray scans) use
        all triplets: the median ignores the few on sharp features.
    usable : ndarray of bool, shape (P,)
        At least 5 residuals.

    Notes
    -----
    ``t = (E_i - E_{i-1}) / (E_{i+1} - E_{i-1})``: zero for a linear trend on any grid.
    Signal curvature biases ``r`` by about ``y'' h**2 / 4``, hence the smooth regions.
    """
    energies = np.asarray(energies, dtype=np.float64)
    y = np.asarray(mu, dtype=np.float64).reshape(energies.size, -1)
    h = np.diff(energies)
    t = (h[:-1] / (h[:-1] + h[1:]))[:, None]
    resid = (y[1:-1] - (1 - t) * y[:-2] - t * y[2:]) / np.sqrt(1 + t**2 + (1 - t) ** 2)
    e0 = np.broadcast_to(np.asarray(e0, dtype=np.float64), y.shape[1:])
    smooth = (energies[2:, None] < e0 - 15.0) | (energies[:-2, None] > e0 + 40.0)
    smooth |= (np.count_nonzero(smooth, axis=0) < 5)[None, :]
    resid = np.where(smooth & np.isfinite(resid), resid, np.nan)
    return resid, np.count_nonzero(np.isfinite(resid), axis=0) >= 5


@dataclass(frozen=True)
class NoiseModel:
    """``var_A(E, p) = g(p) * h(E) * v(L)`` for a stack (see the module notes).

    Attributes
    ----------
    levels : ndarray, shape (T,)
        Uniform grid of signal levels of the ``v`` table.
    variance_table : ndarray, shape (T,)
        ``v`` at ``levels`` (linear interpolation between, constant beyond).
    energy_profile : ndarray, shape (E,)
        ``h`` at the stack's energies (median 1).
    field : ndarray, shape (R, C)
        ``log g`` on the survey grid, smoothed.
    field_rows, field_cols : ndarray, shapes (R,) and (C,)
        Pixel coordinates (rows, columns of the stack) of the grid nodes.
    info : dict
        How the model was fitted (points used, level range, ``level_slope`` = slope of
        ``log v`` against the level, the spread of ``g``), for report.json.
    """

    levels: np.ndarray
    variance_table: np.ndarray
    energy_profile: np.ndarray
    field: np.ndarray
    field_rows: np.ndarray
    field_cols: np.ndarray
    info: dict = field(default_factory=dict)

    def scale(self, rows: ArrayLike, cols: ArrayLike) -> np.ndarray:
        """``g`` at pixel coordinates (bilinear in ``log g``, constant beyond the grid).

        Parameters
        ----------
        rows, cols : array_like
            Broadcastable pixel coordinates of the stack's grid.

        Returns
        -------
        ndarray, float32, the broadcast shape
        """
        rows, cols = np.broadcast_arrays(np.asarray(rows, np.float64), np.asarray(cols, np.float64))
        i, a = _cell(self.field_rows, rows)
        j, b = _cell(self.field_cols, cols)
        f = self.field
        log_g = ((1 - a) * ((1 - b) * f[i, j] + b * f[i, j + 1]) + a * ((1 - b) * f[i + 1, j] + b * f[i + 1, j + 1]))
        return np.exp(log_g).astype(np.float32)

    def band_scale(self, r0: int, r1: int, cols: int) -> np.ndarray:
        """``g`` of every pixel of rows ``r0:r1`` (all ``cols`` columns), shape (r1 - r0, cols)."""
        return self.scale(np.arange(r0, r1)[:, None], np.arange(cols)[None, :])

    def level_variance(self, level: ArrayLike) -> np.ndarray:
        """``v`` at signal levels (any shape), float32."""
        return np.interp(np.asarray(level, np.float64), self.levels, self.variance_table).astype(np.float32)

    def variance(self, mu: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Variance of every point of spectra ``mu`` (E, ...) whose pixels have ``scale`` g (...).

        Returns
        -------
        ndarray, shape (E, ...), float32
            In the units of ``mu`` squared.
        """
        mu = np.asarray(mu, dtype=np.float32)
        shape = (-1,) + (1,) * (mu.ndim - 1)
        h = self.energy_profile.astype(np.float32).reshape(shape)
        return np.asarray(scale, np.float32)[None] * h * self.level_variance(smooth_levels(mu))

    def lookup(self) -> tuple[float, float, np.ndarray]:
        """``(first level, 1 / level step, table)`` for compiled interpolation of ``v``."""
        step = float(self.levels[1] - self.levels[0])
        return float(self.levels[0]), 1.0 / step, self.variance_table.astype(np.float32)


def _cell(nodes, x):
    """Index of the grid cell holding x and the fraction across it (clamped)."""
    if nodes.size == 1:
        return np.zeros(x.shape, np.intp), np.zeros(x.shape)
    i = np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, nodes.size - 2)
    a = np.clip((x - nodes[i]) / (nodes[i + 1] - nodes[i]), 0.0, 1.0)
    return i, a


def fit_noise_model(mu: np.ndarray, energies: np.ndarray, *, e0: float, rows: np.ndarray, cols: np.ndarray,
                    iterations: int = 4) -> NoiseModel:
    """Learn ``var_A(E, p) = g(p) h(E) v(L)`` from surveyed spectra (see the module notes).

    Parameters
    ----------
    mu : ndarray, shape (E, P)
        Finite spectra of surveyed pixels (absorbance or counts), holes included.
    energies : ndarray, shape (E,)
    e0 : float
        The stack's edge energy, eV.
    rows, cols : ndarray of int, shape (P,)
        Pixel coordinates of the spectra in the stack.
    iterations : int
        Rounds of the alternating fit.

    Returns
    -------
    NoiseModel

    Raises
    ------
    ValueError
        If fewer than 10 pixels have 5 usable residuals.

    Notes
    -----
    ``r**2`` of a Gaussian residual has median ``0.455 var``; each factor is the median
    of ``r**2 / (0.455 x the other two)`` over the points it governs: over a pixel's
    points for ``g``, over the points of a level bin for ``v`` (24 bins of equal counts;
    ``log v`` linear between bin centres), and over each energy's points for ``h``
    (then a quadratic fit of ``log h`` against energy, median 1). ``g`` is smoothed on
    the survey grid (3 x 3 median, then a Gaussian, in log) because the illumination is
    smooth while one pixel's estimate from ~100 residuals scatters by ~15 %; the
    Gaussian spans an eighth of the image, wider than grains, so that g holds the
    illumination and ``v`` the thickness (on a fluorescence map with grains
    of 15 pixels, a 1.5-pixel smoothing let g follow the grains and underestimated the
    noise of thin pixels by 10-20 %).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = np.linspace(7000.0, 7300.0, 151)
    >>> rows, cols = np.divmod(np.arange(400), 20)
    >>> step = rng.uniform(0.1, 2.5, 400)                     # thin and thick pixels
    >>> a = 0.3 + step * (e[:, None] > 7150.0)                 # absorbance with an edge
    >>> noisy = a + rng.normal(size=a.shape) * 0.01 * np.exp(a / 2)   # Poisson-like
    >>> model = fit_noise_model(noisy, e, e0=7150.0, rows=rows, cols=cols)
    >>> round(model.info["level_slope"], 1)
    1.0
    """
    energies = np.asarray(energies, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float32).reshape(energies.size, -1)
    resid, usable = point_residuals(mu, energies, e0=e0)
    rows, cols = np.asarray(rows).ravel()[usable], np.asarray(cols).ravel()[usable]
    if usable.sum() < 10:
        raise ValueError(f"only {int(usable.sum())} surveyed pixels have enough smooth points to measure "
                         "their noise; need at least 10")
    # float32 data carry rounding noise of ~1e-7 of their level: the floor of a noiseless stack
    floor = (1e-6 * float(np.median(np.abs(mu))) + 1e-12) ** 2
    r2 = np.maximum(resid[:, usable] ** 2, floor)
    level = smooth_levels(mu[:, usable])[1:-1].astype(np.float64)
    good = np.isfinite(r2)
    lv = level[good]
    edges = np.unique(np.quantile(lv, np.linspace(0, 1, LEVEL_BINS + 1)))
    which = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, max(edges.size - 2, 0))
    bins = max(edges.size - 1, 1)
    centres = np.array([np.median(level[good & (which == b)]) for b in range(bins)])

    def variance(ratio, axis):  # median(r**2 / the other factors) / 0.455 along an axis
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows and columns
            out = np.nanmedian(np.where(good, ratio, np.nan), axis=axis) / _MEDIAN_CHI2_1
        return np.where(np.isfinite(out) & (out > 0), out, np.nan)

    # g is the illumination: smooth over the image, so that it cannot take up what the
    # level explains (a thick pixel is noisier than its thin neighbour at the same dose)
    grid = _Grid(rows, cols)
    g = np.exp(grid.smooth(np.log(variance(r2, 0))))
    h = np.ones(energies.size)
    log_v = np.zeros(centres.size)
    for _ in range(iterations):
        rest = r2 / (g[None, :] * h[1:-1, None])
        log_v = np.log([np.median(rest[good & (which == b)]) / _MEDIAN_CHI2_1 for b in range(bins)])
        v = np.exp(np.interp(level, centres, log_v))
        h = _energy_profile(variance(r2 / (g[None, :] * v), 1), energies)
        g = np.exp(grid.smooth(np.log(variance(r2 / (h[1:-1, None] * v), 0))))
    # the scale lives in g: v and h have median 1 over the points
    shift = float(np.median(np.interp(lv, centres, log_v)))
    log_v -= shift
    g = g * np.exp(shift)
    table_levels, table = _table(centres, log_v)
    field, field_rows, field_cols = grid.field(np.log(g)), grid.rows, grid.cols
    slope = np.polyfit(centres, log_v, 1)[0] if centres.size > 1 else 0.0
    info = {"pixels": int(usable.sum()), "points": int(lv.size),
            "level_range": [float(lv.min()), float(lv.max())], "level_slope": float(slope),
            "scale_quartiles": np.exp(np.percentile(field, [25, 75])).tolist(),
            "sigma_median": float(np.sqrt(np.median(r2[good]) / _MEDIAN_CHI2_1))}
    return NoiseModel(levels=table_levels, variance_table=table, energy_profile=h.astype(np.float32),
                      field=field, field_rows=field_rows, field_cols=field_cols, info=info)


def _energy_profile(per_energy, energies) -> np.ndarray:
    """``h`` at every energy from the variances of the inner energies 1..E-2 (NaN where
    no residual): a quadratic in log over energy, median 1 over the measured energies."""
    used = np.flatnonzero(np.isfinite(per_energy)) + 1
    if used.size < 4:
        return np.ones(energies.size)
    x = (energies - energies.mean()) / np.ptp(energies)
    coef = np.polyfit(x[used], np.log(per_energy[used - 1]), 2)
    log_h = np.polyval(coef, x)
    return np.exp(log_h - np.median(log_h[used]))


def _table(centres, log_v):
    """``v`` on a uniform level grid: linear in log between bin centres, the end slopes
    continued for one level range above (thicker than any surveyed pixel), flat below."""
    if centres.size < 2:
        return np.array([centres[0] - 1.0, centres[0] + 1.0]), np.exp(np.array([log_v[0], log_v[0]]))
    span = centres[-1] - centres[0]
    top = max(1, centres.size // 4)
    slope = max(np.polyfit(centres[-top - 1 :], log_v[-top - 1 :], 1)[0], 0.0)
    levels = np.linspace(centres[0], centres[-1] + span, TABLE_SIZE)
    inside = np.interp(levels, centres, log_v)
    above = log_v[-1] + slope * (levels - centres[-1])
    return levels, np.exp(np.where(levels > centres[-1], above, inside))


class _Grid:
    """The grid of the surveyed pixels' distinct rows and columns, and smoothing on it."""

    def __init__(self, rows, cols):
        self.rows, self._r = np.unique(rows, return_inverse=True)
        self.cols, self._c = np.unique(cols, return_inverse=True)
        self.rows, self.cols = self.rows.astype(np.float64), self.cols.astype(np.float64)
        spacing = [np.median(np.diff(n)) if n.size > 1 else 1.0 for n in (self.rows, self.cols)]
        # in pixels: wider than a grain, so that g cannot follow the sample's thickness
        extent = max(np.ptp(self.rows), np.ptp(self.cols)) + 1
        pixels = max(FIELD_SMOOTHING * extent, FIELD_CELLS * max(spacing))
        self._sigma = [pixels / s for s in spacing]

    def field(self, values) -> np.ndarray:
        """Per-pixel values (NaN where unknown) as a smooth (R, C) field: a 3 x 3 median,
        then a Gaussian, gaps filled with the median."""
        from scipy.ndimage import gaussian_filter, median_filter

        fill = float(np.nanmedian(values))
        grid = np.full((self.rows.size, self.cols.size), np.nan)
        grid[self._r, self._c] = values
        known = np.isfinite(grid)
        if min(grid.shape) >= 3:
            grid = np.where(known, median_filter(np.where(known, grid, fill), size=3, mode="nearest"), np.nan)
        weight = gaussian_filter(known.astype(np.float64), self._sigma, mode="nearest")
        total = gaussian_filter(np.where(known, grid, 0.0), self._sigma, mode="nearest")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weight > 1e-3, total / weight, fill)

    def smooth(self, values) -> np.ndarray:
        """Per-pixel values smoothed over the grid, back at the pixels."""
        return self.field(values)[self._r, self._c]
