"""Edge-step normalization of XAFS spectra, vectorized over pixels, matching Larch.

Every function takes ``(E, ...)`` data (one spectrum, an ROI or a whole stack) and
reproduces ``larch.xafs.pre_edge`` / ``find_e0`` (xraylarch 2026.3) per pixel, with the
same parameter names and defaults: ``e0``, ``pre1``, ``pre2``, ``norm1``, ``norm2``
(eV relative to ``e0``), ``nnorm`` and ``flat`` (here ``flatten``); ``nvict = 0``.
``find_e0`` lives in :mod:`xafsmap.core.spectra.edge` and is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from .._arrays import is_dask
from .edge import check_spectra, nearest_index, find_e0
from .sharedfit import normalize_shared
from .windows import check_windows, fit_windows, resolve_params

__all__ = ["Normalized", "estimate_noise", "normalize"]


@dataclass(frozen=True)
class Normalized:
    """Result of :func:`normalize`.

    Attributes
    ----------
    norm : ndarray, shape (E, ...)
        Normalized mu (flattened if requested); float32 input stays float32.
    e0 : ndarray, shape (...)
        Edge energy per spectrum, eV.
    edge_step : ndarray, shape (...)
        Post-edge polynomial minus pre-edge line at e0 (signed, unlike Larch's abs).
    params : dict
        Resolved ``pre1``, ``pre2``, ``norm1``, ``norm2`` (eV relative to e0), ``nnorm``.
    """

    norm: np.ndarray
    e0: np.ndarray
    edge_step: np.ndarray
    params: dict = field(default_factory=dict)


def _fit_poly(x, y, inside, degree):
    """Batched masked least squares: (K, P) coefficients of powers of x per pixel.

    ``inside`` (E, P) bool selects each pixel's window, ``degree`` (P,) its degree.
    """
    k = int(degree.max()) + 1
    use = inside & np.isfinite(y)
    powers = x[:, None] ** np.arange(2 * k - 1)
    sums = powers.T @ use.astype(np.float64)  # (2K-1, P)
    gram = sums[np.add.outer(np.arange(k), np.arange(k))].transpose(2, 0, 1)
    rhs = (powers[:, :k].T @ np.where(use, y, 0.0)).T  # (P, K)
    active = np.arange(k)[None, :] <= degree[:, None]
    valid = use.sum(axis=0) > degree
    active &= valid[:, None]
    pair = active[:, :, None] & active[:, None, :]
    gram = np.where(pair, gram, np.eye(k)[None])
    coefs = np.linalg.solve(gram, np.where(active, rhs, 0.0)[..., None])[..., 0].T
    coefs[:, ~valid] = np.nan
    return coefs


def _normalize_2d(mu, energies, e0, params, flatten):
    """(E, P) float64 mu and (P,) e0 -> (E, P) norm, (P,) edge step."""
    n = energies.size
    idx = np.arange(n)[:, None]
    x = (energies - energies.mean()) / np.ptp(energies)  # conditioning of the powers
    good = np.isfinite(e0)
    e0f = np.where(good, e0, energies[n // 2])
    p1, p2, const, q1, q2 = fit_windows(energies, e0f, params)
    good &= ((p2 - p1) >= 2) & ((q2 - q1) >= 2)
    p2 = np.where(const, np.maximum(p2, p1 + 1), p2)
    pre = _fit_poly(x, mu, (idx >= p1) & (idx < p2), np.where(const, 0, 1))
    sub = mu - (x[:, None] ** np.arange(pre.shape[0])) @ pre
    # post-edge polynomial of mu - pre_edge: degree at most 1 with fewer than 5 points
    deg = np.where(q2 - q1 < 5, min(1, params["nnorm"]), params["nnorm"])
    post = _fit_poly(x, sub, (idx >= q1) & (idx < q2), deg)
    ie0 = nearest_index(energies, e0f)
    curve = (x[:, None] ** np.arange(post.shape[0])) @ post  # post_edge - pre_edge
    step = np.where(good, curve[ie0, np.arange(ie0.size)], np.nan)
    step[step == 0] = np.nan
    sub /= step
    if flatten:
        curve -= curve[ie0, np.arange(ie0.size)]
        curve *= (idx >= ie0) / step  # in place: (E, P) float64 arrays are the memory
        sub -= curve
    return sub, step


def _normalize_numpy(mu, energies, e0, params, flatten):
    e0 = np.broadcast_to(e0, mu.shape[1:]).reshape(-1).astype(np.float64)
    flat = mu.reshape(mu.shape[0], -1)
    shared = None
    if e0.size and np.all(e0 == e0[0]) and np.isfinite(e0[0]) and np.isfinite(flat).all():
        work = flat.astype(np.float32 if mu.dtype == np.float32 else np.float64)
        shared = normalize_shared(work, energies, float(e0[0]), params, flatten)
    if shared is not None:
        norm, step = shared
    else:
        norm, step = _normalize_2d(flat.astype(np.float64), energies, e0, params, flatten)
    dtype = mu.dtype if mu.dtype == np.float32 else np.float64
    return norm.reshape(mu.shape).astype(dtype, copy=False), step.reshape(mu.shape[1:])


def _normalize_block(block, e0, energies, params, flatten):
    norm, step = _normalize_numpy(block, energies, e0[0], params, flatten)
    return np.concatenate([norm.astype(np.float64), e0, step[None]], axis=0)


def normalize(mu: ArrayLike, energies: ArrayLike, *, e0: float | ArrayLike | None = None,
              pre1: float | None = None,
              pre2: float | None = None, norm1: float | None = None,
              norm2: float | None = None, nnorm: int | None = None,
              flatten: bool = True) -> Normalized:
    """Pre-edge subtraction and edge-step normalization as Larch's ``pre_edge``.

    Parameters
    ----------
    mu : array_like or dask array, shape (E, ...)
        Absorption spectra, energy first (for dask, energy is rechunked to one chunk).
    energies : array_like, shape (E,)
        Strictly increasing energies, eV.
    e0 : float or array_like, shape (...), optional
        Edge energy, eV; None finds it per spectrum with :func:`find_e0`.
    pre1, pre2 : float, optional
        Pre-edge line fit range relative to e0, eV (negative).
    norm1, norm2 : float, optional
        Post-edge polynomial fit range relative to e0, eV.
    nnorm : int, optional
        Degree of the post-edge polynomial (0-5).
    flatten : bool
        Return Larch's ``flat`` (post-edge curvature above e0 removed) instead of ``norm``.

    Returns
    -------
    Normalized
        ``norm`` (E, ...), ``e0`` (...), ``edge_step`` (...) and the resolved ``params``.
        Dask input gives dask fields.

    Raises
    ------
    ValueError
        If energies do not match ``mu``, ``e0`` lies outside the energy range, or a fit
        window holds fewer than 2 energies.

    Notes
    -----
    As Larch (nvict = 0): a line is fit to mu over ``e0 + [pre1, pre2)`` (a constant
    below 3 points), a degree-``nnorm`` polynomial to ``mu - pre_edge`` over ``e0 +
    [norm1, norm2)``; ``edge_step`` is that polynomial at the energy nearest e0, ``norm
    = (mu - pre_edge) / edge_step``, ``flat`` subtracts ``(poly(E) - poly(e0)) /
    edge_step`` above e0. Defaults: ``pre1`` = second energy - e0 and ``norm2`` = last
    energy - e0, rounded to 5 eV; ``pre2 = pre1 / 2``; ``norm1 = min(25, norm2 / 15)``
    rounded to 5 eV; ``nnorm`` = 2, 1, 0 for windows >= 300, >= 30, < 30 eV. They are
    resolved once, from the e0 of the mean spectrum (or the median e0 given), and the
    same relative windows go around every pixel's e0: one spectrum gives exactly
    Larch's result. With dask that computes the mean spectrum; pass all five window
    parameters to stay lazy. Unlike Larch, ``edge_step`` keeps its sign, NaN points
    are ignored, and a window under 2 points raises (reference e0) or gives NaN (pixel).

    Examples
    --------
    >>> e = np.linspace(7000.0, 7400.0, 401)
    >>> mu = 0.1 - 1e-4 * (e - 7000) + 2.0 / (1 + np.exp(-(e - 7112.0) / 2.0))
    >>> out = normalize(mu, e)
    >>> round(float(out.e0), 1), round(float(out.edge_step), 2)
    (7112.0, 2.0)
    """
    energies = check_spectra(mu if hasattr(mu, "ndim") else np.asarray(mu), energies)
    lazy = is_dask(mu)
    mu = mu.rechunk({0: -1}) if lazy else np.asarray(mu)
    e0_arr = None if e0 is None else np.asarray(e0, dtype=np.float64)
    if e0_arr is not None:
        bad = (e0_arr < energies[0]) | (e0_arr > energies[-1])
        if np.any(bad):
            raise ValueError(f"e0 = {e0_arr[bad].ravel()[0]} eV lies outside the energy "
                             f"range {energies[0]}-{energies[-1]} eV")
    given = dict(pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2, nnorm=nnorm)
    if e0_arr is not None and e0_arr.ndim == 0:
        e_ref = float(e0_arr)
    elif e0_arr is not None:
        e_ref = float(np.nanmedian(e0_arr))
    elif any(v is None for v in given.values()):
        axes = tuple(range(1, mu.ndim))
        mean = np.nanmean(mu, axis=axes) if axes else mu  # dask: lazy until computed
        e_ref = float(find_e0(np.asarray(mean.compute() if lazy else mean), energies))
    else:
        e_ref = None  # all windows given: nothing to derive, no clamping to the range
    if e_ref is not None and not np.isfinite(e_ref):
        check_windows(energies, e_ref, {})
    params = resolve_params(energies, e_ref, **given)
    check_windows(energies, e_ref, params)
    if not lazy:
        e0_map = find_e0(mu, energies) if e0_arr is None else e0_arr
        norm, step = _normalize_numpy(mu, energies, e0_map, params, flatten)
        return Normalized(norm, np.broadcast_to(e0_map, mu.shape[1:]).copy(), step,
                          params)
    import dask.array as da

    e0_map = find_e0(mu, energies) if e0_arr is None else da.from_array(
        np.broadcast_to(e0_arr, mu.shape[1:]), chunks=mu.chunks[1:])
    dtype = mu.dtype if mu.dtype == np.float32 else np.float64
    n = energies.size
    out = da.map_blocks(_normalize_block, mu, e0_map[None], energies, params, flatten,
                        chunks=((n + 2,),) + mu.chunks[1:], dtype=np.float64,
                        meta=np.array((), dtype=np.float64))
    return Normalized(out[:n].astype(dtype), out[n], out[n + 1].astype(dtype), params)


def estimate_noise(norm: ArrayLike, energies: ArrayLike, *, e0: float | ArrayLike | None = None) -> np.ndarray:
    """Per-point noise of normalized spectra, in units of the edge step.

    Parameters
    ----------
    norm : array_like, shape (E, ...)
        Normalized spectra (e.g. ``normalize(...).norm``).
    energies : array_like, shape (E,)
        Strictly increasing energies, eV.
    e0 : float or array_like, shape (...), optional
        Edge energy, eV; None uses :func:`find_e0` on ``norm``.

    Returns
    -------
    sigma : ndarray, shape (...)
        Robust standard deviation of one point; NaN with fewer than 5 usable points.

    Notes
    -----
    Each point is compared with the line through its two neighbours, ``r_i = y_i -
    (1 - t) y_{i-1} - t y_{i+1}``, ``t = (E_i - E_{i-1}) / (E_{i+1} - E_{i-1})``: zero
    for any linear trend on any (non-uniform) grid, where plain second differences
    leave ``y' (h2 - h1)``. For white noise ``var(r_i) = sigma^2 (1 + t^2 + (1-t)^2)``
    (uniform grid: ``r = -Δ²y / 2``, ``var(Δ²y) = 6 sigma^2``), so ``r`` is divided by
    that root. Signal curvature biases by about ``y'' h^2 / 4``, hence only triplets
    below ``e0 - 15`` eV or above ``e0 + 40`` eV are used. ``sigma = 1.4826 *
    median(|r|)`` (MAD: robust to glitches); one spectrum of ~300 points: +-10 %.

    Examples
    --------
    >>> e = np.linspace(7000.0, 7400.0, 801)
    >>> rng = np.random.default_rng(0)
    >>> y = (e > 7112)[:, None] + rng.normal(0, 0.02, (e.size, 3))
    >>> np.round(estimate_noise(y, e, e0=7112.0), 2).tolist()
    [0.02, 0.02, 0.02]
    """
    energies = check_spectra(np.asarray(norm), energies)
    norm = np.asarray(norm)
    y = norm.reshape(norm.shape[0], -1).astype(np.float64)
    e0 = find_e0(norm, energies) if e0 is None else e0
    e0 = np.broadcast_to(np.asarray(e0, dtype=np.float64), norm.shape[1:]).reshape(-1)
    h = np.diff(energies)
    t = (h[:-1] / (h[:-1] + h[1:]))[:, None]
    resid = (y[1:-1] - (1 - t) * y[:-2] - t * y[2:]) / np.sqrt(1 + t**2 + (1 - t) ** 2)
    lo, hi = energies[:-2, None], energies[2:, None]
    smooth = (hi < e0 - 15.0) | (lo > e0 + 40.0)
    # Short scans (soft X-ray L edges) have no such regions: use every triplet there;
    # the median still ignores the few points on sharp features.
    smooth |= (np.count_nonzero(smooth, axis=0) < 5)[None, :]
    resid = np.where(smooth & np.isfinite(resid), np.abs(resid), np.nan)
    enough = np.isfinite(resid).sum(axis=0) >= 5
    resid[:, ~enough] = 0.0  # all-NaN columns would warn
    sigma = 1.4826 * np.nanmedian(resid, axis=0)
    return np.where(enough, sigma, np.nan).reshape(norm.shape[1:])
