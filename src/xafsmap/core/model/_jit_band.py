"""The compiled (numba) band kernel: every pixel's normalization, features, e0, mask statistic and LCF moments in one pass.

Module-level functions for numba's on-disk cache, as :mod:`xafsmap.core.model._jit`;
their wrapper, with the documentation of what they compute, is
:func:`xafsmap.core.model.kernels.reduce_band`.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def fit_window(out: np.ndarray, pinv: np.ndarray, y: np.ndarray, first: int, m: int) -> None:
    """out[j, :m] = pinv[j] @ y[first : first + pinv.shape[1], :m] (one least-squares fit
    per pixel of a block, pixels innermost)."""
    for j in range(pinv.shape[0]):
        out[j, :m] = 0
        for e in range(pinv.shape[1]):
            c = np.float32(pinv[j, e])
            for i in range(m):
                out[j, i] += c * y[first + e, i]


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def apply_banded(out: np.ndarray, starts: np.ndarray, weights: np.ndarray, src: np.ndarray, offset: int,
                 m: int) -> None:
    """out[f, :m] = weights[f] @ src[offset + starts[f] : ... + W, :m] (a band matrix)."""
    for f in range(starts.size):
        out[f, :m] = 0
        for w in range(weights.shape[1]):
            c = np.float32(weights[f, w])
            row = offset + starts[f] + w
            for i in range(m):
                out[f, i] += c * src[row, i]


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def point_variance(y: np.ndarray, m: int, scale: np.ndarray, profile: np.ndarray, level0: np.float32,
                   inv_step: np.float32, table: np.ndarray, width: int, csum: np.ndarray, out: np.ndarray) -> None:
    """out[e, :m] = scale * profile[e] * v(level), the level being the moving average of
    y over ``width`` energies and v the table interpolated linearly (constant beyond)."""
    n_energies = y.shape[0]
    half = width // 2
    last = table.size - 1
    csum[0, :m] = 0
    for e in range(n_energies):
        for i in range(m):
            csum[e + 1, i] = csum[e, i] + y[e, i]
    for e in range(n_energies):
        lo = max(e - half, 0)
        hi = min(e + half + 1, n_energies)
        inv = np.float32(1.0 / (hi - lo))
        h = np.float32(profile[e])
        for i in range(m):
            x = ((csum[hi, i] - csum[lo, i]) * inv - level0) * inv_step
            x = min(max(x, np.float32(0)), np.float32(last))
            j = min(np.int64(x), last - 1)
            f = x - np.float32(j)
            out[e, i] = scale[i] * h * ((1 - f) * table[j] + f * table[j + 1])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def step_jump(xx: np.ndarray, xy: np.ndarray) -> tuple[float, float]:
    """Third coefficient of the 3 x 3 symmetric system (upper triangle ``xx``) and its
    standard deviation: the edge jump of :func:`xafsmap.core.spectra.mask.edge_jump`."""
    a, b, c, d, e, f = xx[0], xx[1], xx[2], xx[3], xx[4], xx[5]
    # cofactors of [[a, b, c], [b, d, e], [c, e, f]], last row of the inverse
    c20 = b * e - c * d
    c21 = b * c - a * e
    c22 = a * d - b * b
    det = a * (d * f - e * e) - b * (b * f - c * e) + c * c20
    if not det > 0:
        return np.nan, np.nan
    jump = (c20 * xy[0] + c21 * xy[1] + c22 * xy[2]) / det
    return jump, np.sqrt(max(c22 / det, 0.0))


# Every stage loops over energies (or features) outside and over the block's pixels
# inside: the inner loops are contiguous and independent, so they compile to SIMD.
@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def reduce_band(mu: np.ndarray, thick: float, p1: int, p2: int, q1: int, q2: int, ie0: int, flatten: bool,
                powers: np.ndarray, pinv_pre: np.ndarray, pinv_post: np.ndarray, post_of_pre: np.ndarray, start: int,
                f_start: np.ndarray, f_weights: np.ndarray, s_start: np.ndarray, s_weights: np.ndarray,
                refs: np.ndarray, pairs: np.ndarray, block: int, scale: np.ndarray, profile: np.ndarray,
                level0: np.float32, inv_step: np.float32, table: np.ndarray, width: int, design: np.ndarray,
                finite: np.ndarray, too_thick: np.ndarray, edge_step: np.ndarray, edge_jump: np.ndarray,
                jump_sigma: np.ndarray, e0_index: np.ndarray, features: np.ndarray, feature_sd: np.ndarray,
                aty: np.ndarray, yy: np.ndarray, gram_w: np.ndarray, atwy: np.ndarray, ywy: np.ndarray) -> None:
    n_energies, n = mu.shape
    d_pre, d_post = pinv_pre.shape[0], pinv_post.shape[0]
    n_features, n_slopes, n_refs, n_pairs = f_start.size, s_start.size, refs.shape[0], pairs.shape[1]
    same = n_features == n_slopes and np.array_equal(f_start, s_start) and np.array_equal(f_weights, s_weights)
    powers32 = powers.astype(np.float32)
    f_weights2 = (f_weights * f_weights).astype(np.float32)
    # the mask's jump fit: X^T W X (upper triangle) and X^T W y of the (E, 3) design
    xx = np.empty((6, block), np.float64)
    xy = np.empty((3, block), np.float64)
    pre = np.empty((d_pre, block), np.float32)
    post = np.empty((d_post, block), np.float32)
    norm = np.empty((n_energies, block), np.float32)
    var = np.empty((n_energies, block), np.float32)
    csum = np.empty((n_energies + 1, block), np.float32)
    feat = np.empty((n_features, block), np.float32)
    fvar = np.empty((n_features, block), np.float32)
    slope = feat if same else np.empty((n_slopes, block), np.float32)
    moments = np.empty((n_refs, block), np.float64)
    wmoments = np.empty((n_refs, block), np.float64)
    wgram = np.empty((n_pairs, block), np.float64)
    total = np.empty(block, np.float64)
    wtotal = np.empty(block, np.float64)
    step = np.empty(block, np.float32)
    step2 = np.empty(block, np.float32)
    top = np.empty(block, np.float32)
    bad = np.empty(block, np.float32)
    inverse = np.empty(block, np.float32)
    best = np.empty(block, np.float32)
    weight = np.empty(block, np.float64)
    where = np.empty(block, np.int32)
    for p0 in range(0, n, block):
        m = min(n, p0 + block) - p0
        y = mu[:, p0 : p0 + m]
        fit_window(pre, pinv_pre, y, p1, m)
        fit_window(post, pinv_post, y, q1, m)
        for j in range(d_post):
            for d in range(d_pre):
                c = np.float32(post_of_pre[j, d])
                for i in range(m):
                    post[j, i] -= c * pre[d, i]
        step[:m] = 0
        for j in range(d_post):
            c = powers32[ie0, j]
            for i in range(m):
                step[i] += c * post[j, i]
        for i in range(m):
            inverse[i] = np.float32(1) / step[i]
            step2[i] = step[i] * step[i]
        point_variance(y, m, scale[p0 : p0 + m], profile, level0, inv_step, table, width, csum, var)
        # norm = (mu - pre_edge - [flat above e0] (post_edge - step)) / step, and with each
        # energy's row still in cache: the finite test, the maximum, the edge step's
        # variance, the LCF moments plain and weighted by the point's inverse variance
        bad[:m] = 0
        top[:m] = -np.inf
        total[:m] = 0
        wtotal[:m] = 0
        xx[:, :m] = 0
        xy[:, :m] = 0
        moments[:, :m] = 0
        wmoments[:, :m] = 0
        wgram[:, :m] = 0
        for e in range(n_energies):
            d0, d1, d2 = design[e, 0], design[e, 1], design[e, 2]
            if d0 != 0:
                for i in range(m):
                    w = 1.0 / np.float64(var[e, i])
                    v = np.float64(y[e, i])
                    xx[0, i] += w * d0 * d0
                    xx[1, i] += w * d0 * d1
                    xx[2, i] += w * d0 * d2
                    xx[3, i] += w * d1 * d1
                    xx[4, i] += w * d1 * d2
                    xx[5, i] += w * d2 * d2
                    xy[0, i] += w * d0 * v
                    xy[1, i] += w * d1 * v
                    xy[2, i] += w * d2 * v
            for i in range(m):
                v = y[e, i]
                bad[i] += v - v  # stays 0 unless a value is NaN or infinite
                top[i] = v if v > top[i] else top[i]
                norm[e, i] = v
            for d in range(d_pre):
                c = powers32[e, d]
                for i in range(m):
                    norm[e, i] -= c * pre[d, i]
            if flatten and e >= ie0:
                for j in range(d_post):
                    c = powers32[e, j]
                    for i in range(m):
                        norm[e, i] -= c * post[j, i]
                for i in range(m):
                    norm[e, i] += step[i]
            for i in range(m):
                norm[e, i] *= inverse[i]
                var[e, i] = var[e, i] / step2[i]  # now in edge-step units
                z = np.float64(norm[e, i])
                weight[i] = 1.0 / np.float64(var[e, i])
                total[i] += z * z
                wtotal[i] += weight[i] * z * z
            for r in range(n_refs):
                c = refs[r, e]
                for i in range(m):
                    z = np.float64(norm[e, i])
                    moments[r, i] += c * z
                    wmoments[r, i] += c * weight[i] * z
            for q in range(n_pairs):
                c = pairs[e, q]
                for i in range(m):
                    wgram[q, i] += c * weight[i]
        apply_banded(feat, f_start, f_weights, norm, start, m)
        apply_banded(fvar, f_start, f_weights2, var, start, m)
        if not same:
            apply_banded(slope, s_start, s_weights, norm, start, m)
        best[:m] = -np.inf
        where[:m] = 0
        for f in range(n_slopes):
            for i in range(m):
                if slope[f, i] > best[i]:
                    best[i] = slope[f, i]
                    where[i] = f
        for i in range(m):
            p = p0 + i
            if bad[i] != 0:
                continue
            finite[p] = True
            too_thick[p] = top[i] > thick
            edge_jump[p], jump_sigma[p] = step_jump(xx[:, i], xy[:, i])
            if step[i] == 0 or not np.isfinite(step[i]):
                continue
            edge_step[p] = step[i]
            e0_index[p] = where[i]
            yy[p] = total[i]
            ywy[p] = wtotal[i]
            for r in range(n_refs):
                aty[r, p] = moments[r, i]
                atwy[r, p] = wmoments[r, i]
            for q in range(n_pairs):
                gram_w[p, q] = wgram[q, i]
            for f in range(n_features):
                features[p, f] = feat[f, i]
                feature_sd[p, f] = np.sqrt(fvar[f, i])
