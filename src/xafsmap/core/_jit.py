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


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def point_variance(y, m, scale, profile, level0, inv_step, table, width, csum, out):
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
def step_jump(xx, xy):
    """Third coefficient of the 3 x 3 symmetric system (upper triangle ``xx``) and its
    standard deviation: the edge jump of :func:`xafsmap.core.mask.edge_jump`."""
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
def reduce_band(mu, thick, p1, p2, q1, q2, ie0, flatten, powers, pinv_pre, pinv_post, post_of_pre,
                start, f_start, f_weights, s_start, s_weights, refs, pairs, block,
                scale, profile, level0, inv_step, table, width, design,
                finite, too_thick, edge_step, edge_jump, jump_sigma, e0_index, features, feature_sd, aty, yy,
                gram_w, atwy, ywy):
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


# reassociated sums: a strict left-to-right sum waits on each addition (0.25 us per pixel)
@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def row_distance(x, sd, c, metric, p, q):
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
def class_distance(x, sd, centroids, best, metric, out):
    p = np.empty(x.shape[1], np.float32)
    q = np.empty(x.shape[1], np.float32)
    for i in range(x.shape[0]):
        out[i] = row_distance(x[i], sd[i], centroids[best[i]], metric, p, q)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def cholesky(a, k, lower):
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
def cholesky_solve(lower, k, b, x):
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
def subset_factor(gram, mask, k, idx, a, lower):
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
def subset_variance(lower, size, target, sum_to_one, unit, x, v):
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
def label_pixels(x, sd, proba, centroids, metric, present, support, aty, yy, gram_w, atwy, ywy, pair_of, gram,
                 sum_to_one, n_energies, labels, probability, distance, fractions, sigma, residual, chi2):
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
