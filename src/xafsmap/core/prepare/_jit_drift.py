"""Compiled (numba) loops of the drift correction.

Module-level functions for numba's on-disk cache; their wrapper, with the
documentation of what they compute, is :func:`xafsmap.core.prepare.drift.correct_drift`.
"""

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, error_model="numpy")
def shift_bilinear(region: np.ndarray, y0: np.ndarray, y1: np.ndarray, wy0: np.ndarray, wy1: np.ndarray,
                   in_y: np.ndarray, x0: np.ndarray, x1: np.ndarray, wx0: np.ndarray, wx1: np.ndarray,
                   in_x: np.ndarray, run: np.ndarray, out: np.ndarray) -> None:
    """out[k, i, j] = the bilinear sum of region[k] at rows y0/y1[k, i], columns x0/x1[k, j].

    The sum is scipy's (``NI_ZoomShift``, order 1): in double precision, ``t = 0;
    t += (pixel * wy) * wx`` over the 2 x 2 neighbours in that order, then cast to the
    output type; NaN where the source row or column lies outside the image. No
    ``fastmath``: the order of the operations is what makes it bit-identical. Within
    ``run[k]`` the columns read are consecutive (``x0 = j + c``, ``x1 = x0 + 1``), so
    that stretch is read without a gather and vectorizes.
    """
    nan = out.dtype.type(np.nan)
    for k in range(out.shape[0]):
        lo, hi = run[k, 0], run[k, 1]
        # unsigned indices: numba checks every signed one for wrap-around, which stops
        # the loop from vectorizing (5x slower); j + c wraps modulo 2**64 to the right
        # (non-negative) source column even when the offset c is negative
        c = np.uint64(x0[k, lo] - lo) if hi > lo else np.uint64(0)
        for i in range(out.shape[1]):
            row = out[k, i]
            if not in_y[k, i]:
                row[:] = nan
                continue
            top, bottom = region[k, y0[k, i]], region[k, y1[k, i]]
            a, b = wy0[k, i], wy1[k, i]
            u0, u1 = wx0[k], wx1[k]
            for jj in range(np.uint64(lo), np.uint64(hi)):
                j = np.uint64(jj)
                p = j + c
                total = (np.float64(top[p]) * a) * u0[j] + 0.0
                total += (np.float64(top[p + np.uint64(1)]) * a) * u1[j]
                total += (np.float64(bottom[p]) * b) * u0[j]
                total += (np.float64(bottom[p + np.uint64(1)]) * b) * u1[j]
                row[j] = total
            for j in range(out.shape[2]):
                if lo <= j < hi:
                    continue
                if not in_x[k, j]:
                    row[j] = nan
                    continue
                p, q = x0[k, j], x1[k, j]
                total = (np.float64(top[p]) * a) * u0[j] + 0.0
                total += (np.float64(top[q]) * a) * u1[j]
                total += (np.float64(bottom[p]) * b) * u0[j]
                total += (np.float64(bottom[q]) * b) * u1[j]
                row[j] = total


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _smooth_rows(image, weights, out, acc):
    """scipy's ``correlate1d(image, weights, axis=0, mode="nearest")`` for symmetric weights
    (``weights[0]`` the centre), its order of operations per pixel: in double,
    ``t = x[i] * w[0]; t += (x[i - d] + x[i + d]) * w[d]`` from the farthest d in, then
    cast. Whole rows at a time, so the loops over columns vectorize."""
    m, n = image.shape
    r = weights.size - 1
    for i in range(m):
        for j in range(n):
            acc[j] = np.float64(image[i, j]) * weights[0]
        for d in range(r, 0, -1):
            up, down = image[max(i - d, 0)], image[min(i + d, m - 1)]
            w = weights[d]
            for j in range(n):
                acc[j] += (np.float64(up[j]) + np.float64(down[j])) * w
        for j in range(n):
            out[i, j] = acc[j]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def gradient_feature(image: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """Half the gradient magnitude of ``image`` smoothed by a symmetric kernel, into ``out``.

    The smoothing is scipy's ``gaussian_filter`` (``correlate1d`` along axis 0, then 1,
    edges repeated, float32 in between); the gradient central differences (0 across the
    first and last row for the rows' component, column for the columns'), as
    ``register._feature``; no GIL, so two images are featured at once.
    """
    m, n = image.shape
    tmp = np.empty_like(out)
    turned = np.empty((n, m), out.dtype)
    acc = np.empty(max(m, n), np.float64)
    _smooth_rows(image, weights, tmp, acc)
    _smooth_rows(tmp.T.copy(), weights, turned, acc)  # axis 1 as the rows of the transpose
    smooth = turned.T.copy()
    zero = np.zeros(n, out.dtype)
    for i in range(m):
        above = smooth[i - 1] if i > 0 else smooth[i]
        below = smooth[i + 1] if i < m - 1 else smooth[i]
        row = smooth[i]
        edge = i == 0 or i == m - 1
        gy = zero if edge else below - above
        for j in range(n):
            gx = row[j + 1] - row[j - 1] if 0 < j < n - 1 else np.float32(0.0)
            out[i, j] = np.float32(np.sqrt(np.float64(gy[j]) * gy[j] + np.float64(gx) * gx)) * np.float32(0.5)
