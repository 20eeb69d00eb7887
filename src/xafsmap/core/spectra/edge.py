"""The edge energy e0 of XAFS spectra, vectorized over pixels: Larch's ``find_e0``.

Also the small energy-grid helpers :mod:`xafsmap.core.spectra.normalize` shares.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .._arrays import is_dask

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["find_e0", "larch_slope_operator"]


def check_spectra(mu: np.ndarray | da.Array, energies: ArrayLike) -> np.ndarray:
    energies = np.asarray(energies, dtype=np.float64)
    if energies.ndim != 1:
        raise ValueError(f"energies must be 1-D, got shape {energies.shape}")
    if mu.ndim < 1 or mu.shape[0] != energies.size:
        raise ValueError(f"mu has {mu.shape[0] if mu.ndim else 0} energies (first axis) "
                         f"but energies lists {energies.size}")
    if energies.size < 8:
        raise ValueError(f"need at least 8 energies, got {energies.size}")
    if not np.all(np.diff(energies) > 0):
        i = int(np.argmin(np.diff(energies)))
        raise ValueError(f"energies must be strictly increasing: energies[{i}] = "
                         f"{energies[i]} eV, energies[{i + 1}] = {energies[i + 1]} eV")
    return energies


def nearest_index(energies: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Larch ``index_nearest`` for many values (first index on ties)."""
    j = np.clip(np.searchsorted(energies, values), 1, energies.size - 1)
    lower = np.abs(energies[j - 1] - values) <= np.abs(energies[j] - values)
    return np.where(lower, j - 1, j)


def index_at_or_below(energies: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Larch ``index_of``: last index with energy <= value, 0 below the range."""
    return np.maximum(np.searchsorted(energies, values, side="right") - 1, 0)


def _energy_step(energies: np.ndarray) -> float:
    """Larch ``find_energy_step``: mean of the smallest steps, ignoring the smallest 1 %."""
    nskip = int(0.01 * energies.size)
    if nskip == 0:  # Larch's empty slice gives NaN, which its min/max clip turns into 1 eV
        return 1.0
    steps = np.sort(np.diff(energies[:-1][nskip:-nskip]))
    return float(steps[nskip:nskip + 10].mean())


def _smoothing_matrix(x: np.ndarray, estep: float, sigma: float) -> np.ndarray:
    """(m, m) matrix equal to Larch's ``smooth(x, y, sigma=sigma, xstep=estep)`` (read-only).

    Remembered per energy grid: building it takes ~5 ms, and the Inspect dock normalizes
    one spectrum of the same energies at every click.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    return _cached_smoothing_matrix(x.tobytes(), float(estep), float(sigma))


@functools.lru_cache(maxsize=32)
def _cached_smoothing_matrix(x: bytes, estep: float, sigma: float) -> np.ndarray:
    matrix = _build_smoothing_matrix(np.frombuffer(x, dtype=np.float64), estep, sigma)
    matrix.setflags(write=False)
    return matrix


def _build_smoothing_matrix(x: np.ndarray, estep: float, sigma: float) -> np.ndarray:
    """(m, m) matrix equal to Larch's ``smooth(x, y, sigma=sigma, xstep=estep)``.

    Larch interpolates onto a uniform grid, mirrors it at both ends, convolves with a
    Lorentzian (half-width sigma / estep grid steps) and interpolates back; all linear.
    """
    lo = estep * int((x[0] - 5 * estep) / estep)
    hi = estep * int((x[-1] + 5 * estep) / estep)
    npts = min(1 + int(abs(hi - lo + 0.1 * estep) / estep), 50 * x.size)
    grid = np.linspace(lo, hi, npts)
    width = 2 * npts
    total = np.sum(1.0 / (1.0 + ((np.arange(width) - npts) * (estep / sigma)) ** 2))
    # back-interpolation x <- grid: two grid rows per energy
    g = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, npts - 2)
    t = (x - grid[g]) / (grid[g + 1] - grid[g])
    rows = np.concatenate([g, g + 1])
    u = rows[:, None] + np.arange(-npts + 1, npts + 1)[None, :]  # extended-grid positions
    weight = 1.0 / (1.0 + ((rows[:, None] - u) * (estep / sigma)) ** 2) / total
    src = np.where(u < 0, -u, np.where(u >= npts, 2 * npts - 1 - u, u))  # mirror padding
    flat = (np.arange(rows.size)[:, None] * npts + src).ravel()
    conv = np.bincount(flat, weight.ravel(), rows.size * npts).reshape(rows.size, npts)
    back = (1 - t)[:, None] * conv[: x.size] + t[:, None] * conv[x.size:]
    # forward interpolation grid <- x (np.interp clamps outside x)
    k = np.clip(np.searchsorted(x, grid, side="right") - 1, 0, x.size - 2)
    s = np.clip((grid - x[k]) / (x[k + 1] - x[k]), 0.0, 1.0)
    cols = (np.arange(x.size)[:, None] * x.size + np.concatenate([k, k + 1])).ravel()
    vals = np.concatenate([back * (1 - s), back * s], axis=1).ravel()
    return np.bincount(cols, vals, x.size * x.size).reshape(x.size, x.size)


def _pick_edge(d: np.ndarray) -> np.ndarray:
    """Larch ``_finde0`` selection on (n, P) derivatives (overwritten): index of the
    highest point whose neighbours are also 'high', ignoring the outer 2 % of points."""
    n = d.shape[0]
    nmin = max(3, int(0.02 * n))
    d[~np.isfinite(d)] = -1.0
    low = d[nmin:-nmin].min(axis=0)
    span = np.maximum(d[nmin:-nmin].max(axis=0) - low, 1e-10)
    d -= low
    d /= span
    thr = np.full(d.shape[1], 0.6 if n > 20 else 0.3)
    count = lambda th: (d > th).sum(axis=0)  # noqa: E731
    few = count(thr) < 3
    thr = np.where(few, np.where(count(thr / 2) > 3, thr / 2, thr / 4), thr)
    high = (d > thr) | (count(thr) < 3)
    ok = np.zeros_like(high)
    ok[1:-1] = high[1:-1] & high[:-2] & high[2:]
    ok[:nmin] = False
    ok[n - nmin + 1:] = False
    d *= ok  # Larch keeps only d > 0
    return np.where(d.max(axis=0) > 0, d.argmax(axis=0), 0)


def _find_e0_2d(mu: np.ndarray, energies: np.ndarray, sigma: float | None) -> np.ndarray:
    n = energies.size
    dmu = np.gradient(mu, axis=0) / np.gradient(energies)[:, None]
    ie1 = _pick_edge(dmu)  # pass 1: raw derivative over the whole range
    estep1 = min(max(_energy_step(energies), 0.01), 1.0)
    e0 = np.full(mu.shape[1], np.nan)
    for i in np.unique(ie1):  # pass 2 per window; windows depend only on ie1
        pix = np.flatnonzero(ie1 == i)
        e1, start, stop = energies[i], max(3, i - 75), min(i + 75, n - 3)
        if i < 0.05 * n:  # Larch's guard against glitches at the start
            e1, start, stop = energies.mean(), max(3, i - 20), n - 3
        estep = 0.5 * (estep1 + min(max(e1 / 25000.0, 0.01), 1.0))
        seg = energies[start:stop]
        d = np.gradient(mu[start:stop, pix], axis=0) / np.gradient(seg)[:, None]
        # robustness beyond Larch: a NaN point must not blank the whole window
        d[~np.isfinite(d)] = -1.0
        d = _smoothing_matrix(seg, estep, sigma or estep) @ d
        ix = _pick_edge(d)
        e0[pix] = np.where(ix < 1, energies[start + 2], seg[ix])
    e0[np.isnan(mu).all(axis=0)] = np.nan
    return e0


def find_e0(mu: ArrayLike, energies: ArrayLike, *, sigma: float | None = None) -> np.ndarray:
    """Edge energy as Larch's ``find_e0``: the maximum of the smoothed derivative.

    Parameters
    ----------
    mu : array_like or dask array, shape (E, ...)
        Absorption spectra, energy first.
    energies : array_like, shape (E,)
        Strictly increasing energies, eV.
    sigma : float, optional
        Lorentzian half-width (eV) of the pass-2 smoothing; None is Larch's (about 0.4
        eV at the Fe K edge). 1-2 eV steadies e0 of noisy pixels (and of spectra with two
        similar derivative peaks, e.g. Fe metal) but departs from Larch.

    Returns
    -------
    e0 : ndarray, shape (...)
        Edge energy per spectrum, eV (always one of ``energies``); NaN for all-NaN spectra.

    Raises
    ------
    ValueError
        If ``energies`` does not match the first axis of ``mu`` or is not increasing.

    Notes
    -----
    Larch's two passes: the largest ``gradient(mu)/gradient(E)`` whose neighbours are
    also above 60 % of its range (outer 2 % of points ignored), then the same on +-75
    points around it after Lorentzian smoothing. Identical to Larch for finite data;
    NaN derivatives count as -1 before smoothing (Larch drops NaN points).

    Examples
    --------
    >>> e = np.linspace(7050.0, 7250.0, 201)
    >>> mu = 1 / (1 + np.exp(-(e - 7112.0) / 2.0))
    >>> float(find_e0(mu, e))
    7112.0
    """
    energies = check_spectra(mu if hasattr(mu, "ndim") else np.asarray(mu), energies)
    if is_dask(mu):
        mu = mu.rechunk({0: -1})
        return mu.map_blocks(find_e0, energies, sigma=sigma, drop_axis=0, dtype=np.float64,
                             meta=np.array((), dtype=np.float64))
    mu = np.asarray(mu)
    out = _find_e0_2d(mu.reshape(mu.shape[0], -1).astype(np.float64), energies, sigma)
    return out.reshape(mu.shape[1:])


def larch_slope_operator(energies: np.ndarray, e0: float) -> np.ndarray:
    """(E, E) matrix of Larch's second ``find_e0`` pass: the derivative smoothed with its
    Lorentzian (half-width ``estep``), so ``argmax(operator @ mu)`` is Larch's e0 where
    the first pass found the edge inside ``energies``.

    Parameters
    ----------
    energies : ndarray, shape (E,)
        Strictly increasing energies, eV (e.g. a map's feature window).
    e0 : float
        About where the edge is (sets Larch's ``estep``), eV.

    Examples
    --------
    >>> e = np.linspace(7090.0, 7140.0, 201)
    >>> mu = 1 / (1 + np.exp(-(e - 7112.3) / 1.0))
    >>> float(e[np.argmax(larch_slope_operator(e, 7112.0) @ mu)])
    7112.25
    """
    energies = np.asarray(energies, dtype=np.float64)
    estep1 = min(max(_energy_step(energies), 0.01), 1.0)
    estep = 0.5 * (estep1 + min(max(e0 / 25000.0, 0.01), 1.0))
    derivative = np.gradient(np.eye(energies.size), axis=0) / np.gradient(energies)[:, None]
    return _smoothing_matrix(energies, estep, estep) @ derivative
