"""Energy calibration across the field of view.

On full-field imaging-XAFS beamlines the incident energy is not the same at every
pixel (up to ~2 eV across the image at the Fe K edge), so every pixel's edge sits at
a slightly different nominal energy. This module measures that offset from a
calibration stack (a uniform foil), models it as a smooth 2-D field and resamples
sample stacks onto the nominal energy grid.

Sign convention used throughout: ``shift`` (eV) at a pixel is such that

    true energy at the pixel = nominal energy + shift,

so the measured spectrum is ``m(E_nominal) = s(E_nominal + shift)`` where ``s`` is the
material's spectrum against true energy.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ShiftMap",
    "measure_shift",
    "fit_shift",
    "calibrate",
    "apply_shift",
    "evaluate_shift_model",
    "read_shift_map",
    "write_shift_map",
]

#: candidate shifts of the grid search (eV); a minimum on either end is rejected.
_SEARCH_HALF_WIDTH = 5.0
_SEARCH_STEP = 0.1
#: a binned pixel whose edge step is below this fraction of the field's 90th
#: percentile step is a hole (no foil) and gets NaN.
_MIN_STEP_FRACTION = 0.1
#: a bin whose best edge fit explains less of its variance than this is unreliable.
_MIN_R2 = 0.5
#: default fitting window relative to e0 (eV), Larch-style.
_DEFAULT_WINDOW = (-20.0, 40.0)
#: pixels processed at once by apply_shift's numpy kernel and the alignment (bounds memory).
_APPLY_BLOCK = 1 << 16


@dataclass(frozen=True)
class ShiftMap:
    """A smooth per-pixel energy offset and what it was fitted from.

    Attributes
    ----------
    shift : ndarray, shape (M, N), float32
        Smooth model of the offset (eV), evaluated at every pixel:
        true energy = nominal energy + shift.
    measured : ndarray, shape (M, N), float32
        Raw per-pixel estimate (eV); NaN where not measurable (holes in the foil,
        dead pixels, pixels outside the calibration region).
    uncertainty : ndarray, shape (M, N), float32
        1-sigma uncertainty of the smooth model at each pixel (eV).
    residual_rms : float
        RMS of ``measured - shift`` (eV) over the points the model was fitted to.
    model : dict
        JSON-serialisable description of the model (``kind``, ``degree``, ``terms``,
        ``coefficients``, ``x_offset``, ``x_scale``, ``y_offset``, ``y_scale``,
        ``covariance``, ``shape``...), enough for :func:`evaluate_shift_model`.
    """

    shift: np.ndarray
    measured: np.ndarray
    uncertainty: np.ndarray
    residual_rms: float
    model: dict


# --------------------------------------------------------------------------- checks


def _is_dask(a) -> bool:
    return type(a).__module__.split(".")[0] == "dask"


def _check_stack(stack, energies) -> np.ndarray:
    energies = np.asarray(energies, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (E, M, N) but has shape {tuple(stack.shape)}")
    if energies.ndim != 1 or energies.size != stack.shape[0]:
        raise ValueError(
            f"stack has {stack.shape[0]} energies but energies has shape {energies.shape}"
        )
    steps = np.diff(energies)
    if not np.all(steps > 0):
        k = int(np.argmin(steps))
        raise ValueError(
            f"energies must be strictly increasing, but energies[{k + 1}]={energies[k + 1]:g}"
            f" <= energies[{k}]={energies[k]:g}"
        )
    return energies


def _float_dtype(dtype) -> np.dtype:
    """float32 stays float32, float64 stays float64, integer counts are promoted."""
    return np.result_type(dtype, np.float32)


# ------------------------------------------------------------------ edge scaling


def _edge_e0(energies: np.ndarray, mu: np.ndarray) -> float:
    """Energy of the maximum of the (lightly smoothed) derivative of one spectrum."""
    d = np.gradient(mu, energies)
    if d.size >= 5:
        d = np.convolve(d, np.ones(3) / 3.0, mode="same")
    return float(energies[int(np.nanargmax(d))])


def _pre_post_masks(energies: np.ndarray, e0: float) -> tuple[np.ndarray, np.ndarray]:
    """Pre-edge (<= e0-10 eV) and post-edge (e0+20 .. e0+150 eV) points, at least 3 each."""
    pre = energies <= e0 - 10.0
    post = (energies >= e0 + 20.0) & (energies <= e0 + 150.0)
    if pre.sum() < 1:
        pre = np.zeros(energies.size, bool)
        pre[: min(3, energies.size)] = True
    if post.sum() < 1:
        post = np.zeros(energies.size, bool)
        post[-min(3, energies.size):] = True
    return pre, post


def _edge_scale(energies: np.ndarray, spectra: np.ndarray, e0: float):
    """Pre-edge mean and edge step of spectra (E, P): a simple flat normalization.

    Kept local (not :mod:`xafsmap.core.normalize`) because only the step size and a
    rough scale are needed here; the alignment itself fits offset, slope and scale.
    """
    pre, post = _pre_post_masks(energies, e0)
    pre_mean = spectra[pre].mean(axis=0)
    step = spectra[post].mean(axis=0) - pre_mean
    return pre_mean, step


# ---------------------------------------------------------------------- binning


#: At most this many bins are aligned: bins grow on large fields (memory stays bounded).
MAX_BINS = 50_000
#: Bytes of one band of rows (all energies) read at a time from a large stack.
_BAND_BYTES = 64 * 2**20


def _bands(stack, rows_multiple: int = 1):
    """Yield ``(r0, r1, band)``: float32 numpy bands of rows with every energy, each read
    once; rows per band a multiple of ``rows_multiple`` (so bins never straddle bands)."""
    e, m, n = stack.shape
    rows = max(1, _BAND_BYTES // (e * n * 4)) // rows_multiple * rows_multiple or rows_multiple
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        yield r0, r1, np.asarray(stack[:, r0:r1], dtype=np.float32)


def _dead_pixels(stack, region):
    """(M, N) bool of dead pixels (any non-finite value, or a constant spectrum) or outside region,
    and the field's mean spectrum (E,) over the other pixels (to locate e0 in relative mode).
    One pass over the stack in bands: memory is one band, whatever the stack's size."""
    e, m, n = stack.shape
    bad = np.zeros((m, n), bool)
    total = np.zeros(e, np.float64)
    for r0, r1, band in _bands(stack):
        finite = np.isfinite(band).all(axis=0)
        dead = ~finite
        dead[finite] = (band.max(axis=0) == band.min(axis=0))[finite]
        if region is not None:
            dead |= ~region[r0:r1]
        bad[r0:r1] = dead
        total += np.where(dead, 0.0, band).sum(axis=(1, 2), dtype=np.float64)
    good = np.count_nonzero(~bad)
    return bad, (total / good if good else np.full(e, np.nan))


def _hole_pixels(stack, energies, e0, dead):
    """(M, N) bool: pixels whose edge step is below 10 % of the field's 90th percentile."""
    pre, post = _pre_post_masks(energies, e0)
    step = np.empty(stack.shape[1:], np.float64)
    for r0, r1, band in _bands(stack):
        step[r0:r1] = band[post].mean(axis=0, dtype=np.float64) - band[pre].mean(axis=0, dtype=np.float64)
    big = float(np.percentile(step[~dead], 90))
    if not big > 0:
        raise ValueError(
            f"no pixel shows an absorption edge at e0={e0:.1f} eV (90th-percentile edge step"
            f" {big:.3g}); is the stack absorbance (mu), not transmitted counts?"
        )
    return ~(step > _MIN_STEP_FRACTION * big)


def _bin_mean(stack, excluded: np.ndarray, b: int) -> np.ndarray:
    """NaN-aware b x b mean of (E, M, N) -> (E, ceil(M/b), ceil(N/b)) float64, excluded pixels skipped."""
    e, m, n = stack.shape
    mb, nb = -(-m // b), -(-n // b)
    keep = np.zeros((mb * b, nb * b), bool)
    keep[:m, :n] = ~excluded
    count = keep.reshape(mb, b, nb, b).sum(axis=(1, 3))
    total = np.zeros((e, mb, nb), np.float64)
    for r0, r1, band in _bands(stack, rows_multiple=b):
        rows = -(-(r1 - r0) // b) * b
        padded = np.zeros((e, rows, nb * b), np.float32)
        padded[:, : r1 - r0, :n] = np.where(keep[r0:r1, :n], band, 0.0)
        total[:, r0 // b : r0 // b + rows // b] = padded.reshape(e, rows // b, b, nb, b).sum(
            axis=(2, 4), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


# -------------------------------------------------------------------- alignment


def _align(
    energies: np.ndarray,
    spectra: np.ndarray,
    ref_e: np.ndarray,
    ref_mu: np.ndarray,
    window: tuple[float, float],
    e0: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Shift (eV) and its variance for every column of spectra (E, P) against one reference.

    Each spectrum is fitted in the window as ``a + b*E + c*ref(E + shift)`` with ``c > 0``;
    for a candidate shift the best (a, b, c) is a linear projection, so the sum of
    squared residuals of all pixels for all candidates is two matrix products.
    """
    from scipy.interpolate import CubicSpline

    cand = np.arange(-_SEARCH_HALF_WIDTH, _SEARCH_HALF_WIDTH + _SEARCH_STEP / 2, _SEARCH_STEP)
    lo = max(e0 + window[0], ref_e[0] + _SEARCH_HALF_WIDTH)
    hi = min(e0 + window[1], ref_e[-1] - _SEARCH_HALF_WIDTH)
    sel = (energies >= lo) & (energies <= hi)
    if sel.sum() < 8:
        raise ValueError(
            f"only {int(sel.sum())} energies lie in the fitting window {lo:.1f}..{hi:.1f} eV"
            f" (e0={e0:.1f} eV, reference covers {ref_e[0]:.1f}..{ref_e[-1]:.1f} eV); need >= 8"
        )
    e_w = energies[sel]
    m = spectra[sel]  # (W, P)
    basis = np.stack([np.ones_like(e_w), (e_w - e_w.mean()) / max(np.ptp(e_w), 1e-12)], axis=1)
    q, _ = np.linalg.qr(basis)
    m_perp = m - q @ (q.T @ m)
    ref = CubicSpline(ref_e, ref_mu)(e_w[None, :] + cand[:, None])  # (S, W)
    r_perp = ref - (ref @ q) @ q.T
    rr = np.einsum("sw,sw->s", r_perp, r_perp)
    blocks = [
        _best_shift(m_perp[:, k : k + _APPLY_BLOCK], r_perp, rr, cand, e_w.size)
        for k in range(0, m_perp.shape[1], _APPLY_BLOCK)
    ]
    if not blocks:
        return np.empty(0), np.empty(0)
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


def _best_shift(m_perp, r_perp, rr, cand, n_w):
    """Grid minimum of the misfit over candidate shifts, refined by a parabola, per column."""
    mm = np.einsum("wp,wp->p", m_perp, m_perp)
    mr = m_perp.T @ r_perp.T  # (P, S)
    with np.errstate(invalid="ignore", divide="ignore"):
        sse = mm[:, None] - np.where(mr > 0, mr, 0.0) ** 2 / rr[None, :]
    k = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    inner = (k > 0) & (k < cand.size - 1)
    kk = np.clip(k, 1, cand.size - 2)
    rows = np.arange(sse.shape[0])
    y0, y1, y2 = sse[rows, kk - 1], sse[rows, kk], sse[rows, kk + 1]
    curv = y0 - 2.0 * y1 + y2
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = 0.5 * (y0 - y2) / curv
        shift = cand[kk] + delta * _SEARCH_STEP
        # var(shift) = 2 sigma^2 / SSE''; dof: offset, slope, scale, shift
        sigma2 = np.maximum(y1, 0.0) / max(n_w - 4, 1)
        var = 2.0 * sigma2 / (curv / _SEARCH_STEP**2)
        r2 = 1.0 - y1 / mm  # share of the window's variance the shifted edge explains
    ok = inner & np.isfinite(shift) & (curv > 0) & (np.abs(delta) <= 1.0) & (r2 > _MIN_R2)
    return np.where(ok, shift, np.nan), np.where(ok, var, np.nan)


def _clean_reference(reference, reference_energies) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(reference, dtype=np.float64).ravel()
    if reference_energies is None:
        raise ValueError("reference is given but reference_energies is None")
    e = np.asarray(reference_energies, dtype=np.float64).ravel()
    if e.size != mu.size:
        raise ValueError(
            f"reference has {mu.size} points but reference_energies has {e.size}"
        )
    ok = np.isfinite(e) & np.isfinite(mu)
    e, mu = e[ok], mu[ok]
    order = np.argsort(e)
    e, mu = e[order], mu[order]
    if e.size < 8 or np.any(np.diff(e) <= 0):
        raise ValueError(
            f"reference needs >= 8 finite points on strictly increasing energies, got {e.size}"
        )
    return e, mu


def _measure_binned(stack, energies, reference, reference_energies, b, window, region):
    """Per-bin shift (Mb, Nb), its variance, and the (M, N) excluded-pixel mask."""
    energies = _check_stack(stack, energies)
    if int(b) != b or b < 1:
        raise ValueError(f"bin must be a positive integer, got {b!r}")
    e, m, n = stack.shape
    # large fields: bins grow so at most MAX_BINS spectra are aligned (a smooth model of a
    # few coefficients needs no more), which bounds memory and time by the bin count
    b = max(int(b), math.ceil(math.sqrt(m * n / MAX_BINS)))
    if region is not None:
        region = np.asarray(region, dtype=bool)
        if region.shape != (m, n):
            raise ValueError(f"region has shape {region.shape} but the stack's images are {(m, n)}")
    window = _DEFAULT_WINDOW if window is None else tuple(float(w) for w in window)
    if len(window) != 2 or window[0] >= window[1]:
        raise ValueError(f"window must be (low, high) eV relative to e0 with low < high, got {window}")
    if reference is not None:
        ref_e, ref_mu = _clean_reference(reference, reference_energies)
    dead, mean = _dead_pixels(stack, region)
    if dead.all():
        raise ValueError(
            f"stack has no usable pixel: all {m * n} spectra contain NaN/inf, are constant"
            " or lie outside region"
        )
    e0 = _edge_e0(ref_e, ref_mu) if reference is not None else _edge_e0(energies, mean)
    # holes are dropped per pixel, so bins at a hole's edge average foil pixels only
    excluded = dead | _hole_pixels(stack, energies, e0, dead)
    binned = _bin_mean(stack, excluded, b)
    mb, nb = binned.shape[1:]
    spectra = binned.reshape(e, mb * nb)
    usable = np.isfinite(spectra).all(axis=0)
    _, step = _edge_scale(energies, np.where(usable, spectra, 0.0), e0)
    usable &= step > 0

    shift = np.full(mb * nb, np.nan)
    var = np.full(mb * nb, np.nan)
    sp = spectra[:, usable]
    if reference is not None:
        s, v = _align(energies, sp, ref_e, ref_mu, window, e0)
    else:
        # relative calibration: align to the field's mean normalized spectrum, then
        # once more to the mean of the aligned spectra (sharper than the blurred mean)
        pre_mean, st = _edge_scale(energies, sp, e0)
        norm = (sp - pre_mean) / st
        ref_mu = norm.mean(axis=1)
        s, v = _align(energies, sp, energies, ref_mu, window, e0)
        good = np.isfinite(s)
        if good.any():
            s = s - np.median(s[good])
            aligned = _apply_shift_2d(norm[:, good], energies, s[good].astype(np.float64))
            with np.errstate(invalid="ignore"):
                cnt = np.isfinite(aligned).sum(axis=1)
                ref_mu = np.nansum(aligned, axis=1) / cnt
            keep = cnt > 0
            s, v = _align(energies, sp, energies[keep], ref_mu[keep], window, e0)
            if np.isfinite(s).any():
                s = s - np.nanmedian(s)
    shift[usable], var[usable] = s, v
    if not np.isfinite(shift).any():
        raise ValueError(
            f"no {b}x{b} bin of the {m}x{n} stack gives a reliable absorption edge alignment"
            f" (edge fit R^2 > {_MIN_R2} and best shift inside -5..+5 eV); window {window} eV"
            f" around e0={e0:.1f} eV"
        )
    return shift.reshape(mb, nb), var.reshape(mb, nb), excluded, b


def _upsample_blocks(binned: np.ndarray, b: int, shape: tuple[int, int]) -> np.ndarray:
    full = np.repeat(np.repeat(binned, b, axis=0), b, axis=1)
    return full[: shape[0], : shape[1]]


def measure_shift(
    stack,
    energies,
    *,
    reference=None,
    reference_energies=None,
    bin: int = 4,
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """Per-pixel energy offset from a calibration stack (a uniform foil).

    Parameters
    ----------
    stack : ndarray or dask array, shape (E, M, N)
        Absorbance (mu, optical density) of a uniform calibration foil.
    energies : ndarray, shape (E,)
        Nominal energies (eV), strictly increasing.
    reference : ndarray, shape (K,), optional
        mu of the same material against true energy: absolute calibration. ``None``
        calibrates relative to the field's own mean spectrum; the returned shifts are
        then relative and their median is 0.
    reference_energies : ndarray, shape (K,), optional
        Energies (eV) of ``reference``.
    bin : int
        Pixels are averaged in ``bin x bin`` blocks (NaN-aware) before fitting, for S/N;
        larger on big fields, so that at most ``MAX_BINS`` (50 000) bins are aligned.
    window : (float, float), optional
        Fitting window (eV) relative to e0 (the maximum of the reference's derivative);
        default (-20, 40).

    Returns
    -------
    shift : ndarray, shape (M, N), float32
        Estimated offset (eV), true energy = nominal + shift, constant within each bin;
        NaN for dead pixels (non-finite or constant spectra), holes (edge step below
        10 % of the field's 90th percentile), and bins whose best shift lies on the
        edge of the -5..+5 eV search.

    Raises
    ------
    ValueError
        Wrong shapes, non-increasing energies, or no usable pixel.

    Notes
    -----
    Each binned spectrum is fitted in the window as ``a + b*E + c*ref(E + shift)``
    (c > 0) — equivalent to aligning normalized spectra, but insensitive to how well
    the pre/post-edge lines are drawn and exact for a shifted copy. All pixels are
    scored at once for 101 candidate shifts (0.1 eV step, the reference is
    cubic-spline interpolated, it is 1-D and cheap), then the minimum is refined by a
    parabola. In Athena terms this is "align to standard" with fitted offset, slope
    and scale, done for every pixel. In relative mode a second pass aligns to the
    mean of the aligned spectra.

    Examples
    --------
    >>> e = np.linspace(7080.0, 7180.0, 120)
    >>> edge = lambda x: np.arctan((x - 7112.0) / 1.5) / np.pi + 0.5
    >>> true = np.full((8, 8), 1.2)
    >>> stack = edge(e[:, None, None] + true[None]).astype(np.float32)
    >>> s = measure_shift(stack, e, reference=edge(e), reference_energies=e)
    >>> bool(np.allclose(s, 1.2, atol=0.02))
    True
    """
    shift_b, _, excluded, b = _measure_binned(
        stack, energies, reference, reference_energies, bin, window, None
    )
    full = _upsample_blocks(shift_b, b, stack.shape[1:])
    full[excluded] = np.nan
    return full.astype(np.float32)


# -------------------------------------------------------------------- the model


def _poly_terms(degree: int) -> list[tuple[int, int]]:
    return [(i, t - i) for t in range(degree + 1) for i in range(t, -1, -1)]


def _design(model: dict, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    x = (cols - model["x_offset"]) / model["x_scale"]
    y = (rows - model["y_offset"]) / model["y_scale"]
    return np.stack([x**i * y**j for i, j in model["terms"]], axis=1)


def evaluate_shift_model(model: dict, *, shape: tuple[int, int] | None = None):
    """Evaluate a stored shift model (``ShiftMap.model``) on a pixel grid.

    Parameters
    ----------
    model : dict
        As in :attr:`ShiftMap.model` (or report.json).
    shape : (int, int), optional
        (M, N) of the grid; default the shape the model was fitted on.

    Returns
    -------
    shift, uncertainty : ndarray, shape (M, N), float32
        Modelled offset and its 1-sigma uncertainty (eV).

    Examples
    --------
    >>> sm = fit_shift(np.fromfunction(lambda r, c: 0.01 * c, (20, 30)), degree=1)
    >>> s, u = evaluate_shift_model(sm.model)
    >>> round(float(s[0, 29]), 3)
    0.29
    """
    if model.get("kind") != "poly2d":
        raise ValueError(f"unknown shift model kind {model.get('kind')!r}; expected 'poly2d'")
    m, n = tuple(model["shape"]) if shape is None else tuple(shape)
    coef = np.asarray(model["coefficients"], dtype=np.float64)
    cov = np.asarray(model["covariance"], dtype=np.float64)
    shift = np.empty((m, n), np.float32)
    unc = np.empty((m, n), np.float32)
    cols = np.arange(n, dtype=np.float64)
    step = max(1, 2**20 // max(n, 1))  # rows per block: the design matrix stays small
    for r0 in range(0, m, step):
        rows = np.arange(r0, min(m, r0 + step), dtype=np.float64)
        x = _design(model, np.repeat(rows, n), np.tile(cols, rows.size))
        shift[r0 : r0 + rows.size] = (x @ coef).reshape(rows.size, n)
        unc[r0 : r0 + rows.size] = np.sqrt(np.maximum(np.einsum("pi,ij,pj->p", x, cov, x), 0.0)).reshape(rows.size, n)
    return shift, unc


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    return np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]


def _irls(x, y, w0, robust: bool):
    """Weighted LSQ, then Huber (c=1.345) and Tukey biweight (c=4.685) IRLS on top."""
    beta = _wls(x, y, w0)
    wr = np.ones_like(y)
    if not robust:
        return beta, wr
    for c, tukey in ((1.345, False), (4.685, True)):
        for _ in range(50):
            z = (y - x @ beta) * np.sqrt(w0)
            scale = 1.4826 * np.median(np.abs(z - np.median(z)))
            if not scale > 0:
                return beta, wr
            u = np.abs(z) / (c * scale)
            wr = np.where(u < 1, (1 - u**2) ** 2, 0.0) if tukey else np.minimum(1.0, 1.0 / np.maximum(u, 1e-12))
            new = _wls(x, y, w0 * wr)
            done = np.max(np.abs(new - beta)) < 1e-7 * (1.0 + np.max(np.abs(beta)))
            beta = new
            if done:
                break
    return beta, wr


def _fit_points(rows, cols, values, weights, shape, degree: int, robust: bool) -> dict:
    terms = _poly_terms(degree)
    m, n = shape
    model = {
        "kind": "poly2d",
        "degree": int(degree),
        "terms": [list(t) for t in terms],
        "x_offset": (n - 1) / 2.0,
        "x_scale": max((n - 1) / 2.0, 1.0),
        "y_offset": (m - 1) / 2.0,
        "y_scale": max((m - 1) / 2.0, 1.0),
        "shape": [int(m), int(n)],
    }
    if values.size <= len(terms):
        raise ValueError(
            f"a degree-{degree} 2-D polynomial has {len(terms)} coefficients but only"
            f" {values.size} finite shift estimates are available"
        )
    x = _design(model, rows, cols)
    beta, wr = _irls(x, values, weights, robust)
    w = weights * wr
    r = values - x @ beta
    n_eff = float(wr.sum())
    sigma2 = float(np.sum(w * r**2) / max(n_eff - len(terms), 1.0))
    cov = sigma2 * np.linalg.pinv((x * w[:, None]).T @ x)
    model.update(
        coefficients=beta.tolist(),
        covariance=cov.tolist(),
        sigma=float(np.sqrt(sigma2)),
        loss="huber+tukey" if robust else "least-squares",
        n_points=int(values.size),
        n_outliers=int(np.sum(wr == 0)),
        residual_rms=float(np.sqrt(np.mean(r**2))),
    )
    return model


def _check_degree(degree) -> int:
    if int(degree) != degree or not 0 <= degree <= 6:
        raise ValueError(f"degree must be an integer in 0..6, got {degree!r}")
    return int(degree)


def fit_shift(measured, *, degree: int = 3, weights=None, robust: bool = True) -> ShiftMap:
    """Smooth 2-D model of a per-pixel shift map.

    Parameters
    ----------
    measured : ndarray, shape (M, N)
        Raw offsets (eV); NaN where not measured.
    degree : int
        Total degree of the 2-D polynomial (3: 10 coefficients).
    weights : ndarray, shape (M, N), optional
        Relative inverse-variance weights; non-finite or <= 0 drops the pixel.
    robust : bool
        Down-weight outliers (Huber, then Tukey biweight IRLS).

    Returns
    -------
    ShiftMap
        ``shift`` and ``uncertainty`` evaluated at every pixel; ``measured`` echoed.

    Raises
    ------
    ValueError
        Not 2-D, weights of another shape, or fewer finite values than coefficients.

    Notes
    -----
    The monochromator's geometry (beam divergence across the Bragg angle) makes the
    offset a smooth field dominated by a gradient along one axis with a little
    curvature, so a low-order polynomial in normalized coordinates (x, y in [-1, 1])
    captures it with few parameters and no tuning, and extrapolates gently into holes.
    Robust IRLS (Huber to converge, Tukey to reject) keeps bad pixels at hole edges
    from bending it. The uncertainty is ``sqrt(diag(X C X^T))`` with
    ``C = s^2 (X^T W X)^-1`` and ``s^2`` the weighted residual variance, i.e. it
    assumes independent estimates (true for binned pixels) and an adequate model.

    Examples
    --------
    >>> r, c = np.mgrid[0:30, 0:40]
    >>> sm = fit_shift(-1.0 + 0.05 * c + 0.001 * r**2, degree=2)
    >>> round(float(sm.shift[10, 20]), 3), sm.residual_rms < 1e-6
    (0.1, True)
    """
    measured = np.asarray(measured, dtype=np.float64)
    if measured.ndim != 2:
        raise ValueError(f"measured must be a 2-D (M, N) map but has shape {measured.shape}")
    degree = _check_degree(degree)
    if weights is None:
        w = np.ones_like(measured)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != measured.shape:
            raise ValueError(f"weights has shape {w.shape} but measured has shape {measured.shape}")
    ok = np.isfinite(measured) & np.isfinite(w) & (w > 0)
    rows, cols = np.nonzero(ok)
    model = _fit_points(
        rows.astype(np.float64), cols.astype(np.float64), measured[ok], w[ok],
        measured.shape, degree, robust,
    )
    shift, unc = evaluate_shift_model(model)
    return ShiftMap(shift, measured.astype(np.float32), unc, model["residual_rms"], model)


def calibrate(
    stack,
    energies,
    *,
    reference=None,
    reference_energies=None,
    degree: int = 3,
    region=None,
    bin: int = 4,
    window: tuple[float, float] | None = None,
) -> ShiftMap:
    """Measure the per-pixel energy offset of a calibration stack and fit a smooth model.

    Parameters
    ----------
    stack : ndarray or dask array, shape (E, M, N)
        Absorbance of a uniform foil, or of a sample with a known uniform phase
        (then pass ``region``).
    energies : ndarray, shape (E,)
        Nominal energies (eV), strictly increasing.
    reference, reference_energies : ndarray, shape (K,), optional
        mu of the material against true energy (absolute calibration); ``None``
        calibrates relative to the field's mean (median shift 0).
    degree : int
        Degree of the 2-D polynomial model.
    region : ndarray of bool, shape (M, N), optional
        Pixels to use (self-calibration on a known/uniform phase); default all.
    bin, window
        As in :func:`measure_shift`.

    Returns
    -------
    ShiftMap
        ``measured`` is the binned estimate spread over its pixels (NaN where not
        measurable); ``shift``/``uncertainty`` the model at every pixel.

    Raises
    ------
    ValueError
        As :func:`measure_shift`, or too few usable bins for the model.

    Notes
    -----
    The model is fitted to the bin centres (independent measurements), weighted by
    each bin's inverse variance from the curvature of its alignment misfit, so
    partly covered bins at the edge of a hole count less. ``residual_rms`` is over
    those bins.

    Examples
    --------
    >>> e = np.linspace(7080.0, 7180.0, 120)
    >>> edge = lambda x: np.arctan((x - 7112.0) / 1.5) / np.pi + 0.5
    >>> true = np.fromfunction(lambda r, c: -1.0 + 0.05 * c, (16, 40))
    >>> sm = calibrate(edge(e[:, None, None] + true[None]), e, reference=edge(e),
    ...                reference_energies=e, degree=1)
    >>> bool(np.abs(sm.shift - true).max() < 0.05)
    True
    """
    degree = _check_degree(degree)
    shift_b, var_b, excluded, b = _measure_binned(
        stack, energies, reference, reference_energies, bin, window, region
    )
    m, n = stack.shape[1:]
    mb, nb = shift_b.shape
    # centre of the part of each bin that lies inside the image
    rc = (np.arange(mb) * b + (np.minimum(np.arange(mb) * b + b, m) - 1)) / 2.0
    cc = (np.arange(nb) * b + (np.minimum(np.arange(nb) * b + b, n) - 1)) / 2.0
    rows, cols = np.meshgrid(rc, cc, indexing="ij")
    ok = np.isfinite(shift_b) & np.isfinite(var_b) & (var_b > 0)
    w = 1.0 / var_b[ok]
    # the variances are themselves noisy: cap lucky bins so none dominates the fit
    w = np.minimum(w / np.median(w), 10.0) if w.size else w
    model = _fit_points(rows[ok], cols[ok], shift_b[ok], w, (m, n), degree, True)
    model["bin"] = b
    model["calibration"] = "absolute" if reference is not None else "relative (median 0)"
    shift, unc = evaluate_shift_model(model)
    measured = _upsample_blocks(np.where(ok, shift_b, np.nan), b, (m, n))
    measured[excluded] = np.nan
    return ShiftMap(shift, measured.astype(np.float32), unc, model["residual_rms"], model)


# ------------------------------------------------------------------ resampling


def _apply_shift_2d(spectra: np.ndarray, energies: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """corrected[:, p] = spectra[:, p] linearly interpolated at energies - shift[p]; NaN outside."""
    out_dtype = spectra.dtype
    e = energies.size
    out = np.empty(spectra.shape, out_dtype)
    for start in range(0, spectra.shape[1], _APPLY_BLOCK):
        sl = slice(start, start + _APPLY_BLOCK)
        q = energies[:, None] - shift[None, sl].astype(np.float64)  # nominal energy to read
        idx = np.clip(np.searchsorted(energies, q, side="right") - 1, 0, e - 2)
        e_lo = energies[idx]
        t = ((q - e_lo) / (energies[idx + 1] - e_lo)).astype(out_dtype)
        block = spectra[:, sl]
        lo = np.take_along_axis(block, idx, axis=0)
        hi = np.take_along_axis(block, idx + 1, axis=0)
        val = lo + t * (hi - lo)
        covered = (q >= energies[0]) & (q <= energies[-1])
        out[:, sl] = np.where(covered, val, np.nan)
    return out


def _apply_shift_block(block: np.ndarray, shift_block: np.ndarray, *, energies, out_dtype):
    e, m, n = block.shape
    flat = np.asarray(block).reshape(e, m * n).astype(out_dtype, copy=False)
    return _apply_shift_2d(flat, energies, np.asarray(shift_block).reshape(m * n)).reshape(e, m, n)


def apply_shift(stack, energies, shift):
    """Resample every pixel's spectrum onto the nominal energy grid.

    Parameters
    ----------
    stack : ndarray or dask array, shape (E, M, N)
        Measured spectra against nominal energy.
    energies : ndarray, shape (E,)
        Nominal energies (eV), strictly increasing.
    shift : ndarray or dask array, shape (M, N)
        Offset (eV): true energy = nominal + shift (e.g. ``ShiftMap.shift``).

    Returns
    -------
    ndarray or dask array, shape (E, M, N)
        Same kind as ``stack``; float32 stays float32 (integers are promoted).
        ``corrected[k] = measured at nominal energy energies[k] - shift``, i.e. the
        spectrum against true energy sampled on the nominal grid; NaN where
        ``energies[k] - shift`` falls outside the measured range (no extrapolation).

    Raises
    ------
    ValueError
        Stack not 3-D, energies of the wrong length or not increasing, shift of
        another shape than the images.

    Notes
    -----
    Linear interpolation along energy, vectorized: one ``searchsorted`` of all
    (energy, pixel) query points. Dask stacks are processed per spatial chunk with the
    energy axis in one chunk. Athena's per-spectrum ``e0`` shift, done per pixel.

    Examples
    --------
    >>> e = np.arange(10.0)
    >>> stack = np.broadcast_to(e[:, None, None], (10, 1, 2)).astype(np.float32)
    >>> out = apply_shift(stack, e, np.array([[0.5, -1.0]]))
    >>> out[:3, 0, 0].tolist(), out[-2:, 0, 1].tolist()
    ([nan, 0.5, 1.5], [9.0, nan])
    """
    energies = _check_stack(stack, energies)
    if tuple(shift.shape) != tuple(stack.shape[1:]):
        raise ValueError(
            f"shift has shape {tuple(shift.shape)} but the stack's images are {tuple(stack.shape[1:])}"
        )
    dtype = _float_dtype(stack.dtype)
    if _is_dask(stack):
        import dask.array as da

        stack = stack.rechunk({0: -1})
        shift_d = da.asarray(shift).astype(np.float64).rechunk(stack.chunks[1:])
        return da.map_blocks(
            _apply_shift_block,
            stack,
            shift_d[None],
            energies=energies,
            out_dtype=dtype,
            dtype=dtype,
            meta=np.empty((0, 0, 0), dtype),
        )
    shift = np.asarray(shift, dtype=np.float64)
    return _apply_shift_block(np.asarray(stack), shift, energies=energies, out_dtype=dtype)


# ------------------------------------------------------------------------ files


def write_shift_map(path, shift_map: ShiftMap) -> None:
    """Write a shift map as a float32 TIFF: page 0 shift (eV), page 1 uncertainty (eV).

    The model (JSON) is stored in page 0's ImageDescription. The file is written
    under a temporary name and moved into place, so readers never see half a file.

    Examples
    --------
    >>> import tempfile, os
    >>> sm = fit_shift(np.fromfunction(lambda r, c: 0.01 * c, (4, 5)), degree=1)
    >>> p = os.path.join(tempfile.mkdtemp(), "shift.tif")
    >>> write_shift_map(p, sm)
    >>> bool(np.allclose(read_shift_map(p), sm.shift))
    True
    """
    import tifffile

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tifffile.TiffWriter(tmp) as tif:
            tif.write(
                np.asarray(shift_map.shift, dtype=np.float32),
                # "shape" makes the JSON valid tifffile shaped metadata, so any reader opens it
                description=json.dumps({"shape": list(np.shape(shift_map.shift)),
                                        "xafsmap": "shift map (eV)", "model": shift_map.model}),
                metadata=None,
            )
            tif.write(np.asarray(shift_map.uncertainty, dtype=np.float32), metadata=None)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_shift_map(path) -> np.ndarray:
    """Read the shift (eV) from a TIFF written by :func:`write_shift_map` (or any 2-D TIFF).

    Returns
    -------
    ndarray, shape (M, N), float32

    Examples
    --------
    See :func:`write_shift_map`.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        shift = tif.pages[0].asarray()
    if shift.ndim != 2:
        raise ValueError(f"{path}: first page has shape {shift.shape}, expected a 2-D shift map")
    return shift.astype(np.float32)
