"""Energy calibration across the field of view.

On full-field imaging-XAFS beamlines the incident energy is not the same at every
pixel (up to ~2 eV across the image at the Fe K edge), so every pixel's edge sits at
a slightly different nominal energy. This module measures that offset from a
calibration stack (a uniform foil), models it as a smooth 2-D field and resamples
sample stacks onto the nominal energy grid.

Sign convention used throughout: ``shift`` (eV) at a pixel is such that

    true energy at the pixel = nominal energy + shift,

so the measured spectrum is ``m(E_nominal) = s(E_nominal + shift)`` where ``s`` is the
material's spectrum against true energy. The smooth model and its files live in
:mod:`xafsmap.core.prepare.shiftmap`, the resampling in :mod:`xafsmap.core.prepare.resample`; this
module measures, and re-exports both.
"""

from __future__ import annotations

import math

import numpy as np

from .resample import APPLY_BLOCK, shift_spectra, check_stack_energies, apply_shift
from .shiftmap import (
    ShiftMap,
    check_degree,
    fit_points,
    evaluate_shift_model,
    fit_shift,
    read_shift_map,
    write_shift_map,
)

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

    Kept local (not :mod:`xafsmap.core.spectra.normalize`) because only the step size and a
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
        _best_shift(m_perp[:, k : k + APPLY_BLOCK], r_perp, rr, cand, e_w.size)
        for k in range(0, m_perp.shape[1], APPLY_BLOCK)
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
    energies = check_stack_energies(stack, energies)
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
            aligned = shift_spectra(norm[:, good], energies, s[good].astype(np.float64))
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
    degree = check_degree(degree)
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
    model = fit_points(rows[ok], cols[ok], shift_b[ok], w, (m, n), degree, True)
    model["bin"] = b
    model["calibration"] = "absolute" if reference is not None else "relative (median 0)"
    shift, unc = evaluate_shift_model(model)
    measured = _upsample_blocks(np.where(ok, shift_b, np.nan), b, (m, n))
    measured[excluded] = np.nan
    return ShiftMap(shift, measured.astype(np.float32), unc, model["residual_rms"], model)


