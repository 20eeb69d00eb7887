"""Sub-pixel phase correlation of two images, as the drift measurement uses it.

:func:`phase_correlate` finds the shift between an image and a reference by whitened
cross-correlation, then refines it on an upsampled grid computed by matrix DFT
(:func:`upsampled_dft`) and a parabola through the peak.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_PEAK", "phase_correlate", "upsampled_dft"]

#: An image whose correlation peak is not this many standard deviations above its mean has no match.
MIN_PEAK = 8.0


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # einsum for small products: threaded BLAS on a busy machine spends far longer
    # waking threads (seen: 20x) than computing them; BLAS for large ones (45 ms -> 2 ms
    # for a 1024 x 1024 window)
    return a @ b if a.size * b.shape[-1] > 2**20 else np.einsum("ij,jk->ik", a, b)


def upsampled_dft(spectrum: np.ndarray, shape: tuple, centre: np.ndarray, upsample: int,
                  half: float) -> np.ndarray:
    """Cross-correlation at offsets centre + j/upsample, |j/upsample| <= half, by matrix DFT.

    ``spectrum`` is the half (``rfft2``) spectrum of a real (m, n) correlation: each
    column but the zero and Nyquist ones stands for itself and its conjugate, so it
    counts twice in the real part.
    """
    m, n = shape
    k = int(np.ceil(half * upsample))
    offs = np.arange(-k, k + 1) / upsample
    ky, kx = np.fft.fftfreq(m), np.fft.rfftfreq(n)
    weight = np.full(kx.size, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    # single precision like the spectrum: complex128 doubles the time and changed no drift in the tests
    ey = np.exp(2j * np.pi * np.outer(centre[0] + offs, ky)).astype(spectrum.dtype)  # (P, m)
    ex = (weight[:, None] * np.exp(2j * np.pi * np.outer(kx, centre[1] + offs))).astype(spectrum.dtype)  # (n//2+1, P)
    return _product(_product(ey, spectrum), ex).real.astype(np.float64), offs


def _parabola(y0: float, y1: float, y2: float) -> float:
    den = y0 - 2.0 * y1 + y2
    return 0.0 if den >= 0 else float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))


def phase_correlate(f_ref: np.ndarray, feat: np.ndarray, upsample: int, *, near_zero: bool = False) -> np.ndarray:
    """(dy, dx) with feat(y, x) ~ ref(y - dy, x - dx): phase correlation, then upsampled refinement.

    ``f_ref`` is the complex conjugate of the reference feature's ``rfft2``; float32
    transforms (``scipy.fft`` keeps single precision). ``near_zero``: the drift is
    known to lie within 1 px of 0 (the remainder after moving the image back), so
    the whole-pixel correlation is skipped. NaN when the image has no structure at all.
    """
    import scipy.fft

    f_img = scipy.fft.rfft2(feat)
    cross = f_img * f_ref
    mag = np.abs(cross)
    top = float(mag.max())
    if not top > 0:
        return np.full(2, np.nan)
    # whitening sharpens the peak; the floor keeps empty frequencies from adding noise
    cross /= mag + np.float32(1e-2 * top)
    if near_zero and upsample > 1:
        peak = np.zeros(2)
    else:
        corr = scipy.fft.irfft2(cross, s=feat.shape)
        at = np.argmax(corr)
        # an image without structure correlates with the reference like noise: its
        # highest value is ~5 standard deviations (4-6 in the tests), a match's 10-200
        spread = float(corr.std(dtype=np.float64))
        if not corr.flat[at] - corr.mean(dtype=np.float64) >= MIN_PEAK * spread:
            return np.full(2, np.nan)
        peak = np.array(np.unravel_index(at, corr.shape), dtype=np.float64)
        size = np.array(corr.shape)
        peak = np.where(peak > size // 2, peak - size, peak)
    if upsample <= 1:
        return peak
    up, offs = upsampled_dft(cross, feat.shape, peak, upsample, 1.0)
    i, j = np.unravel_index(np.argmax(up), up.shape)
    step = 1.0 / upsample
    dy = offs[i] + (step * _parabola(up[i - 1, j], up[i, j], up[i + 1, j]) if 0 < i < up.shape[0] - 1 else 0.0)
    dx = offs[j] + (step * _parabola(up[i, j - 1], up[i, j], up[i, j + 1]) if 0 < j < up.shape[1] - 1 else 0.0)
    return peak + np.array([dy, dx])
