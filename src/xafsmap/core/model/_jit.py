"""The compiled (numba) kernels: imported only when numba is installed and a fast path runs.

Module-level functions, so numba's on-disk cache (``cache=True``) finds them again in
the next process instead of compiling for ~2 s (functions built inside other functions
and calling each other are not found again). Their wrappers, with the documentation of
what they compute, are :func:`xafsmap.core.model.forest.predict_proba`,
:func:`xafsmap.core.model.kernels.distance_to_class` and :func:`xafsmap.core.model.kernels.label_pixels`;
the band kernel is :mod:`xafsmap.core.model._jit_band`.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, error_model="numpy")
def walk_block(x: np.ndarray, feature: np.ndarray, thresholds: np.ndarray, children: np.ndarray, code: np.ndarray,
               table: np.ndarray, roots: np.ndarray, depths: np.ndarray, r0: int, r1: int, node: np.ndarray,
               out: np.ndarray) -> None:
    n_features, n_classes, n_trees = x.shape[1], out.shape[1], roots.size
    flat = x.reshape(-1)
    m = r1 - r0
    base = np.uint64(r0) * np.uint64(n_features)
    for t in range(n_trees):
        node[:m] = roots[t]
        for _ in range(depths[t]):  # to full depth: no data-dependent branch
            row = base
            for i in range(m):
                k = np.uint64(node[i])
                go_right = flat[row + np.uint64(feature[k])] > thresholds[k]
                node[i] = children[np.uint64(2) * k + np.uint64(go_right)]
                row += np.uint64(n_features)
        for i in range(m):
            leaf = code[node[i]]
            if leaf >= 0:
                out[r0 + i, leaf] += 1.0
            else:
                for c in range(n_classes):
                    out[r0 + i, c] += table[-1 - leaf, c]
    for i in range(r0, r1):
        for c in range(n_classes):
            out[i, c] /= n_trees


@numba.njit(nogil=True, cache=True, error_model="numpy")
def forest_serial(x: np.ndarray, feature: np.ndarray, thresholds: np.ndarray, children: np.ndarray, code: np.ndarray,
                  table: np.ndarray, roots: np.ndarray, depths: np.ndarray, block: int, out: np.ndarray) -> None:
    node = np.empty(block, np.uint32)
    for r0 in range(0, x.shape[0], block):
        walk_block(x, feature, thresholds, children, code, table, roots, depths, r0,
                   min(x.shape[0], r0 + block), node, out)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def forest_parallel(x: np.ndarray, feature: np.ndarray, thresholds: np.ndarray, children: np.ndarray, code: np.ndarray,
                    table: np.ndarray, roots: np.ndarray, depths: np.ndarray, block: int, out: np.ndarray) -> None:
    for b in numba.prange((x.shape[0] + block - 1) // block):
        node = np.empty(block, np.uint32)
        walk_block(x, feature, thresholds, children, code, table, roots, depths, b * block,
                   min(x.shape[0], (b + 1) * block), node, out)



# reassociated sums: a strict left-to-right sum waits on each addition (0.25 us per pixel)
@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def row_distance(x: np.ndarray, sd: np.ndarray, c: np.ndarray, metric: int, p: np.ndarray, q: np.ndarray) -> float:
    """Distance of feature vector x to centroid c in units of each feature's noise sd
    (metric 0 root mean square, 1 mean absolute), or 2 the Jensen-Shannon distance of the
    clipped unit-sum vectors (log base 2, no noise units); p, q are scratch."""
    n_features = x.size
    if metric == 0:
        acc = np.float32(0)
        for f in range(n_features):
            d = (x[f] - c[f]) / sd[f]
            acc += d * d
        return np.sqrt(acc / n_features)
    if metric == 1:
        acc = np.float32(0)
        for f in range(n_features):
            acc += abs(x[f] - c[f]) / sd[f]
        return acc / n_features
    sp = np.float32(0)
    sq = np.float32(0)
    for f in range(n_features):
        p[f] = max(x[f], np.float32(0))
        q[f] = max(c[f], np.float32(0))
        sp += p[f]
        sq += q[f]
    for f in range(n_features):
        p[f] = p[f] / sp if sp > 0 else np.float32(1.0 / n_features)
        q[f] = q[f] / sq if sq > 0 else np.float32(1.0 / n_features)
    divergence = np.float32(0)
    for f in range(n_features):
        m = np.float32(0.5) * (p[f] + q[f])
        if p[f] > 0 and m > 0:
            divergence += np.float32(0.5) * p[f] * np.log2(p[f] / m)
        if q[f] > 0 and m > 0:
            divergence += np.float32(0.5) * q[f] * np.log2(q[f] / m)
    return np.sqrt(min(max(divergence, np.float32(0)), np.float32(1)))


@numba.njit(nogil=True, cache=True, error_model="numpy")
def class_distance(x: np.ndarray, sd: np.ndarray, centroids: np.ndarray, best: np.ndarray, metric: int,
                   out: np.ndarray) -> None:
    p = np.empty(x.shape[1], np.float32)
    q = np.empty(x.shape[1], np.float32)
    for i in range(x.shape[0]):
        out[i] = row_distance(x[i], sd[i], centroids[best[i]], metric, p, q)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def cholesky(a: np.ndarray, k: int, lower: np.ndarray) -> bool:
    """lower[:k, :k] = Cholesky factor of a[:k, :k]; False if not positive definite."""
    for j in range(k):
        s = a[j, j]
        for t in range(j):
            s -= lower[j, t] * lower[j, t]
        if not s > 1e-12 * abs(a[j, j]) or not np.isfinite(s):
            return False
        lower[j, j] = np.sqrt(s)
        for i in range(j + 1, k):
            s = a[i, j]
            for t in range(j):
                s -= lower[i, t] * lower[j, t]
            lower[i, j] = s / lower[j, j]
    return True


@numba.njit(nogil=True, cache=True, error_model="numpy")
def cholesky_solve(lower: np.ndarray, k: int, b: np.ndarray, x: np.ndarray) -> None:
    """x[:k] = a^-1 b[:k] for a = lower lower^T."""
    for i in range(k):
        s = b[i]
        for t in range(i):
            s -= lower[i, t] * x[t]
        x[i] = s / lower[i, i]
    for i in range(k - 1, -1, -1):
        s = x[i]
        for t in range(i + 1, k):
            s -= lower[t, i] * x[t]
        x[i] = s / lower[i, i]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def subset_factor(gram: np.ndarray, mask: int, k: int, idx: np.ndarray, a: np.ndarray, lower: np.ndarray) -> int:
    """Gather the references of bit ``mask`` into idx and factor their Gram matrix;
    returns the subset size, or -1 where it is singular."""
    size = 0
    for r in range(k):
        if (mask >> r) & 1:
            idx[size] = r
            size += 1
    for i in range(size):
        for j in range(size):
            a[i, j] = gram[idx[i], idx[j]]
    return size if cholesky(a, size, lower) else -1


@numba.njit(nogil=True, cache=True, error_model="numpy")
def subset_variance(lower: np.ndarray, size: int, target: int, sum_to_one: bool, unit: np.ndarray, x: np.ndarray,
                    v: np.ndarray) -> float:
    """Variance of fraction ``target`` (position in the subset): [a^-1]_tt, minus
    v_t**2 / sum(v) with v = a^-1 1 under the sum-to-one constraint."""
    for i in range(size):
        unit[i] = 1.0 if i == target else 0.0
    cholesky_solve(lower, size, unit, x)
    variance = x[target]
    if sum_to_one:
        for i in range(size):
            unit[i] = 1.0
        cholesky_solve(lower, size, unit, v)
        total = 0.0
        for i in range(size):
            total += v[i]
        variance -= v[target] * v[target] / total
    return max(variance, 0.0)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def label_pixels(x: np.ndarray, sd: np.ndarray, proba: np.ndarray, centroids: np.ndarray, metric: int,
                 present: np.ndarray, support: float, aty: np.ndarray, yy: np.ndarray, gram_w: np.ndarray,
                 atwy: np.ndarray, ywy: np.ndarray, pair_of: np.ndarray, gram: np.ndarray, sum_to_one: bool,
                 n_energies: int, labels: np.ndarray, probability: np.ndarray, distance: np.ndarray,
                 fractions: np.ndarray, sigma: np.ndarray, residual: np.ndarray, chi2: np.ndarray) -> None:
    n, n_classes = proba.shape
    k = present.shape[1]
    p = np.empty(x.shape[1], np.float32)
    q = np.empty(x.shape[1], np.float32)
    g = np.empty((k, k))
    a = np.empty((k, k))
    lower = np.empty((k, k))
    idx = np.empty(k, np.int64)
    b = np.empty(k)
    u = np.empty(k)
    v = np.empty(k)
    unit = np.empty(k)
    w = np.empty(k)
    for i in range(n):
        best, top = 0, proba[i, 0]
        for j in range(1, n_classes):
            if proba[i, j] > top:
                best, top = j, proba[i, j]
        labels[i] = best + 1
        probability[i] = top
        distance[i] = row_distance(x[i], sd[i], centroids[best], metric, p, q)
        # references of the classes at least `support` likely (all when none is)
        allowed = 0
        for r in range(k):
            use = top < support
            for j in range(n_classes):
                if proba[i, j] >= support and present[j, r]:
                    use = True
            if use:
                allowed |= 1 << r
        for r in range(k):
            for t in range(k):
                g[r, t] = gram_w[i, pair_of[r, t]]
        # exact weighted NNLS (sum to one): the best feasible optimum over subsets
        best_cost = np.inf
        best_mask = 0
        for mask in range(1, 1 << k):
            if mask & ~allowed:
                continue
            size = subset_factor(g, mask, k, idx, a, lower)
            if size < 0:
                continue
            for t in range(size):
                b[t] = atwy[idx[t], i]
            cholesky_solve(lower, size, b, u)
            if sum_to_one:
                for t in range(size):
                    unit[t] = 1.0
                cholesky_solve(lower, size, unit, v)
                su = 0.0
                sv = 0.0
                for t in range(size):
                    su += u[t]
                    sv += v[t]
                for t in range(size):
                    u[t] += v[t] * (1.0 - su) / sv
            feasible = True
            for t in range(size):
                if u[t] < 0:
                    feasible = False
            if not feasible:
                continue
            cost = ywy[i]
            for t in range(size):
                cost -= 2.0 * u[t] * atwy[idx[t], i]
                for s in range(size):
                    cost += u[t] * g[idx[t], idx[s]] * u[s]
            if cost < best_cost:
                best_cost = cost
                best_mask = mask
                for r in range(k):
                    w[r] = 0.0
                for t in range(size):
                    w[idx[t]] = u[t]
        if best_mask == 0:
            for r in range(k):
                fractions[r, i] = np.nan
                sigma[r, i] = np.nan
            residual[i] = np.nan
            chi2[i] = np.nan
            continue
        size = subset_factor(g, best_mask, k, idx, a, lower)
        dof = max(n_energies - size + (1 if sum_to_one else 0), 1)
        cost = max(best_cost, 0.0)
        inflate = np.sqrt(max(cost / dof, 1.0))
        for t in range(size):
            sigma[idx[t], i] = np.sqrt(subset_variance(lower, size, t, sum_to_one, unit, u, v)) * inflate
        for r in range(k):  # how much of an absent reference could hide: its sigma if added
            if (best_mask >> r) & 1:
                continue
            wider = subset_factor(g, best_mask | (1 << r), k, idx, a, lower)
            if wider < 0:
                sigma[r, i] = np.nan
                continue
            at = 0
            member = 0
            for t in range(wider):
                if idx[t] == r:
                    at = t
                elif (best_mask >> idx[t]) & 1:
                    member = t
            sigma[r, i] = np.sqrt(subset_variance(lower, wider, at, sum_to_one, unit, u, v)) * inflate
            if size == 1 and sum_to_one:  # a pure pixel's fraction is as uncertain as what could hide
                spread = np.sqrt(subset_variance(lower, wider, member, sum_to_one, unit, u, v)) * inflate
                if spread > sigma[idx[member], i]:
                    sigma[idx[member], i] = spread
        misfit = yy[i]
        for r in range(k):
            misfit -= 2.0 * w[r] * aty[r, i]
            for t in range(k):
                misfit += w[r] * gram[r, t] * w[t]
            fractions[r, i] = w[r]
        residual[i] = np.sqrt(max(misfit, 0.0) / n_energies)
        chi2[i] = cost / dof
