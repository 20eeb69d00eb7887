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
module measures.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .edgealign import MIN_R2, MIN_STEP_FRACTION, align_shifts, clean_reference, edge_e0, edge_scale, pre_post_masks
from .resample import shift_spectra, check_stack_energies
from .shiftmap import ShiftMap, check_degree, fit_points, evaluate_shift_model

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["calibrate", "measure_shift"]

#: default fitting window relative to e0 (eV), Larch-style.
_DEFAULT_WINDOW = (-20.0, 40.0)


# ------------------------------------------------------------------ edge scaling


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
    pre, post = pre_post_masks(energies, e0)
    step = np.empty(stack.shape[1:], np.float64)
    for r0, r1, band in _bands(stack):
        step[r0:r1] = band[post].mean(axis=0, dtype=np.float64) - band[pre].mean(axis=0, dtype=np.float64)
    big = float(np.percentile(step[~dead], 90))
    if not big > 0:
        raise ValueError(
            f"no pixel shows an absorption edge at e0={e0:.1f} eV (90th-percentile edge step"
            f" {big:.3g}); is the stack absorbance (mu), not transmitted counts?"
        )
    return ~(step > MIN_STEP_FRACTION * big)


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
        ref_e, ref_mu = clean_reference(reference, reference_energies)
    dead, mean = _dead_pixels(stack, region)
    if dead.all():
        raise ValueError(
            f"stack has no usable pixel: all {m * n} spectra contain NaN/inf, are constant"
            " or lie outside region"
        )
    e0 = edge_e0(ref_e, ref_mu) if reference is not None else edge_e0(energies, mean)
    # holes are dropped per pixel, so bins at a hole's edge average foil pixels only
    excluded = dead | _hole_pixels(stack, energies, e0, dead)
    binned = _bin_mean(stack, excluded, b)
    mb, nb = binned.shape[1:]
    spectra = binned.reshape(e, mb * nb)
    usable = np.isfinite(spectra).all(axis=0)
    _, step = edge_scale(energies, np.where(usable, spectra, 0.0), e0)
    usable &= step > 0

    shift = np.full(mb * nb, np.nan)
    var = np.full(mb * nb, np.nan)
    sp = spectra[:, usable]
    if reference is not None:
        s, v = align_shifts(energies, sp, ref_e, ref_mu, window, e0)
    else:
        # relative calibration: align to the field's mean normalized spectrum, then
        # once more to the mean of the aligned spectra (sharper than the blurred mean)
        pre_mean, st = edge_scale(energies, sp, e0)
        norm = (sp - pre_mean) / st
        ref_mu = norm.mean(axis=1)
        s, v = align_shifts(energies, sp, energies, ref_mu, window, e0)
        good = np.isfinite(s)
        if good.any():
            s = s - np.median(s[good])
            aligned = shift_spectra(norm[:, good], energies, s[good].astype(np.float64))
            with np.errstate(invalid="ignore"):
                cnt = np.isfinite(aligned).sum(axis=1)
                ref_mu = np.nansum(aligned, axis=1) / cnt
            keep = cnt > 0
            s, v = align_shifts(energies, sp, energies[keep], ref_mu[keep], window, e0)
            if np.isfinite(s).any():
                s = s - np.nanmedian(s)
    shift[usable], var[usable] = s, v
    if not np.isfinite(shift).any():
        raise ValueError(
            f"no {b}x{b} bin of the {m}x{n} stack gives a reliable absorption edge alignment"
            f" (edge fit R^2 > {MIN_R2} and best shift inside -5..+5 eV); window {window} eV"
            f" around e0={e0:.1f} eV"
        )
    return shift.reshape(mb, nb), var.reshape(mb, nb), excluded, b


def _upsample_blocks(binned: np.ndarray, b: int, shape: tuple[int, int]) -> np.ndarray:
    full = np.repeat(np.repeat(binned, b, axis=0), b, axis=1)
    return full[: shape[0], : shape[1]]


def measure_shift(
    stack: np.ndarray | da.Array,
    energies: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    reference_energies: ArrayLike | None = None,
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
    stack: ArrayLike,
    energies: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    reference_energies: ArrayLike | None = None,
    degree: int = 3,
    region: tuple[int, int, int, int] | None = None,
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


