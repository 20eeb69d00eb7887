"""The compiled (numba) kernels: imported only when numba is installed and a fast path runs.

Module-level functions, so numba's on-disk cache (``cache=True``) finds them again in
the next process instead of compiling for ~2 s (functions built inside other functions
and calling each other are not found again). Their wrappers, with the documentation of
what they compute, are :func:`xafsmap.core.forest.predict_proba`,
:func:`xafsmap.core.kernels.reduce_band` and :func:`xafsmap.core.kernels.distance_to_class`.
"""

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, error_model="numpy")
def walk_block(x, feature, thresholds, children, code, table, roots, depths, r0, r1, node, out):
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
def forest_serial(x, feature, thresholds, children, code, table, roots, depths, block, out):
    node = np.empty(block, np.uint32)
    for r0 in range(0, x.shape[0], block):
        walk_block(x, feature, thresholds, children, code, table, roots, depths, r0,
                   min(x.shape[0], r0 + block), node, out)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def forest_parallel(x, feature, thresholds, children, code, table, roots, depths, block, out):
    for b in numba.prange((x.shape[0] + block - 1) // block):
        node = np.empty(block, np.uint32)
        walk_block(x, feature, thresholds, children, code, table, roots, depths, b * block,
                   min(x.shape[0], (b + 1) * block), node, out)


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def fit_window(out, pinv, y, first, m):
    """out[j, :m] = pinv[j] @ y[first : first + pinv.shape[1], :m] (one least-squares fit
    per pixel of a block, pixels innermost)."""
    for j in range(pinv.shape[0]):
        out[j, :m] = 0
        for e in range(pinv.shape[1]):
            c = np.float32(pinv[j, e])
            for i in range(m):
                out[j, i] += c * y[first + e, i]


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def apply_banded(out, starts, weights, src, offset, m):
    """out[f, :m] = weights[f] @ src[offset + starts[f] : ... + W, :m] (a band matrix)."""
    for f in range(starts.size):
        out[f, :m] = 0
        for w in range(weights.shape[1]):
            c = np.float32(weights[f, w])
            row = offset + starts[f] + w
            for i in range(m):
                out[f, i] += c * src[row, i]


# Every stage loops over energies (or features) outside and over the block's pixels
# inside: the inner loops are contiguous and independent, so they compile to SIMD.
@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def reduce_band(mu, thick, p1, p2, q1, q2, ie0, flatten, powers, pinv_pre, pinv_post, post_of_pre,
           start, f_start, f_weights, s_start, s_weights, refs, block,
           finite, too_thick, edge_step, e0_index, features, aty, yy):
    n_energies, n = mu.shape
    d_pre, d_post = pinv_pre.shape[0], pinv_post.shape[0]
    n_features, n_slopes, n_refs = f_start.size, s_start.size, refs.shape[0]
    same = n_features == n_slopes and np.array_equal(f_start, s_start) and np.array_equal(f_weights, s_weights)
    powers32 = powers.astype(np.float32)
    pre = np.empty((d_pre, block), np.float32)
    post = np.empty((d_post, block), np.float32)
    norm = np.empty((n_energies, block), np.float32)
    feat = np.empty((n_features, block), np.float32)
    slope = feat if same else np.empty((n_slopes, block), np.float32)
    moments = np.empty((n_refs, block), np.float64)
    total = np.empty(block, np.float64)
    step = np.empty(block, np.float32)
    top = np.empty(block, np.float32)
    bad = np.empty(block, np.float32)
    inverse = np.empty(block, np.float32)
    best = np.empty(block, np.float32)
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
        # norm = (mu - pre_edge - [flat above e0] (post_edge - step)) / step, and with each
        # energy's row still in cache: the finite test, the maximum, the LCF moments
        bad[:m] = 0
        top[:m] = -np.inf
        total[:m] = 0
        moments[:, :m] = 0
        for e in range(n_energies):
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
                total[i] += np.float64(norm[e, i]) * np.float64(norm[e, i])
            for r in range(n_refs):
                c = refs[r, e]
                for i in range(m):
                    moments[r, i] += c * np.float64(norm[e, i])
        apply_banded(feat, f_start, f_weights, norm, start, m)
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
            if step[i] == 0 or not np.isfinite(step[i]):
                continue
            edge_step[p] = step[i]
            e0_index[p] = where[i]
            yy[p] = total[i]
            for r in range(n_refs):
                aty[r, p] = moments[r, i]
            for f in range(n_features):
                features[p, f] = feat[f, i]


# reassociated sums: a strict left-to-right sum waits on each addition (0.25 us per pixel)
@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def row_distance(x, c, metric, p, q):
    """Distance of feature vector x to centroid c (metric 0 Euclidean, 1 Manhattan,
    2 Jensen-Shannon of the clipped unit-sum vectors, log base 2); p, q are scratch."""
    n_features = x.size
    if metric == 0:
        acc = np.float32(0)
        for f in range(n_features):
            d = x[f] - c[f]
            acc += d * d
        return np.sqrt(acc)
    if metric == 1:
        acc = np.float32(0)
        for f in range(n_features):
            acc += abs(x[f] - c[f])
        return acc
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
def class_distance(x, centroids, best, metric, out):
    p = np.empty(x.shape[1], np.float32)
    q = np.empty(x.shape[1], np.float32)
    for i in range(x.shape[0]):
        out[i] = row_distance(x[i], centroids[best[i]], metric, p, q)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def label_pixels(x, proba, centroids, metric, present, support, aty, yy, members, solvers, gram, extra,
                 n_energies, labels, probability, distance, fractions, residual):
    n, n_classes = proba.shape
    k = present.shape[1]
    p = np.empty(x.shape[1], np.float32)
    q = np.empty(x.shape[1], np.float32)
    allowed = np.empty(k, np.bool_)
    b = np.empty(k)
    w = np.empty(k)
    best_w = np.empty(k)
    for i in range(n):
        best, top = 0, proba[i, 0]
        for j in range(1, n_classes):
            if proba[i, j] > top:
                best, top = j, proba[i, j]
        labels[i] = best + 1
        probability[i] = top
        distance[i] = row_distance(x[i], centroids[best], metric, p, q)
        # references of the classes at least `support` likely (all when none is)
        for r in range(k):
            allowed[r] = top < support
            for j in range(n_classes):
                if proba[i, j] >= support and present[j, r]:
                    allowed[r] = True
        # exact NNLS: the best feasible unconstrained optimum over subsets of references
        for r in range(k):
            b[r] = aty[r, i] + extra
            best_w[r] = 0.0
        best_cost = np.inf
        for s in range(members.shape[0]):
            usable = True
            for r in range(k):
                if members[s, r] and not allowed[r]:
                    usable = False
            if not usable:
                continue
            cost = yy[i] + extra
            feasible = True
            for r in range(k):
                acc = 0.0
                for t in range(k):
                    acc += solvers[s, r, t] * b[t]
                w[r] = acc
                cost -= acc * b[r]
                if members[s, r] and acc < 0:
                    feasible = False
            if feasible and cost < best_cost:
                best_cost = cost
                for r in range(k):
                    best_w[r] = w[r]
        misfit = yy[i]
        for r in range(k):
            misfit -= 2.0 * best_w[r] * aty[r, i]
            for t in range(k):
                misfit += best_w[r] * gram[r, t] * best_w[t]
            fractions[r, i] = best_w[r]
        residual[i] = np.sqrt(max(misfit, 0.0) / n_energies)
