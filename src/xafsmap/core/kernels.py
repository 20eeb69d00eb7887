"""The band pipeline's per-pixel arithmetic fused into one compiled pass (numba).

:func:`~xafsmap.core.pipeline.map_band` in numpy makes a dozen passes over a band's
``(E, pixels)`` block: the finite test, the pre- and post-edge fits, the normalized
spectra, the smoothing-derivative product, the e0 argmax, the LCF moments, and gathers
of the sample pixels between them. Every one of those is linear in a pixel's spectrum
or needs only that spectrum, because the whole stack shares one e0 and one set of fit
windows (:func:`~xafsmap.core.normalize.shared_fit`). :func:`reduce_band` therefore
visits each spectrum once, keeps it in cache and returns only what the rest of the
pipeline needs per pixel: the edge step, the forest's features, the e0 index, and the
two moments an exact NNLS needs (:func:`~xafsmap.core.lcf.fractions_from_moments`).

The numpy path stays the reference and the fallback without numba; the tests hold the
two equal within float32 rounding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .classify import _feature_operator
from .normalize import SharedFit, _check_windows, _resolve_params, shared_fit

__all__ = ["BandPlan", "band_plan", "distance_to_class", "reduce_band"]

#: Pixels transposed into a pixel-major scratch block at a time.
BLOCK_PIXELS = 64


@dataclass(frozen=True, eq=False)
class BandPlan:
    """Everything :func:`reduce_band` applies to each spectrum, as small arrays.

    Attributes
    ----------
    fit : SharedFit
        The shared pre- and post-edge fits.
    flatten : bool
        Larch's ``flat`` (post-edge curvature above e0 removed).
    window : (int, int)
        Energy indices ``[start, stop)`` of the features.
    feature_start, feature_weights : ndarray
        Row ``f`` of the classifier's feature operator is ``feature_weights[f]`` applied
        to the window's normalized values from ``feature_start[f]`` on (a band matrix).
    slope_start, slope_weights : ndarray
        The same for the smoothed derivative whose argmax is the e0 map.
    references : ndarray, shape (K, E), float64
        For the LCF moments.
    """

    fit: SharedFit
    flatten: bool
    window: tuple[int, int]
    feature_start: np.ndarray
    feature_weights: np.ndarray
    slope_start: np.ndarray
    slope_weights: np.ndarray
    references: np.ndarray


def band_plan(classifier, normalization: dict, *, flatten: bool = True) -> BandPlan | None:
    """The :class:`BandPlan` of a trained classifier and its stack's normalization.

    Parameters
    ----------
    classifier : xafsmap.core.classify.Classifier
    normalization : dict
        Larch-named normalization parameters with a scalar ``e0`` (a
        :class:`~xafsmap.core.pipeline.Model`'s).
    flatten : bool

    Returns
    -------
    BandPlan or None
        None when the fused path does not apply (no numba, no scalar e0, or fit
        windows too short to share): the caller takes the numpy path.
    """
    from .forest import has_numba

    e0 = normalization.get("e0")
    if not has_numba() or e0 is None or np.ndim(e0) != 0:
        return None
    energies = np.asarray(classifier.energies, dtype=np.float64)
    given = {name: normalization.get(name) for name in ("pre1", "pre2", "norm1", "norm2", "nnorm")}
    params = _resolve_params(energies, float(e0), **given)
    _check_windows(energies, float(e0), params)
    fit = shared_fit(energies, float(e0), params)
    if fit is None:
        return None
    start, stop = classifier.window
    window = energies[start:stop].tobytes()
    feature = _feature_operator(window, classifier.features, int(classifier.smooth or 0))
    slope = _feature_operator(window, "derivative", int(classifier.smooth or 0))
    feature_start, feature_weights = _banded(feature, stop - start)
    slope_start, slope_weights = _banded(slope, stop - start)
    return BandPlan(fit=fit, flatten=bool(flatten), window=(int(start), int(stop)),
                    feature_start=feature_start, feature_weights=feature_weights,
                    slope_start=slope_start, slope_weights=slope_weights,
                    references=np.ascontiguousarray(classifier.references, dtype=np.float64))


def _banded(operator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A dense (F, F) operator (None = identity) as per-row start and (F, W) weights."""
    if operator is None:
        return np.arange(size, dtype=np.int64), np.ones((size, 1))
    nonzero = operator != 0
    first = np.where(nonzero.any(axis=1), np.argmax(nonzero, axis=1), 0)
    last = size - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    width = int(np.max(last - first + 1))
    first = np.minimum(first, size - width)
    rows = first[:, None] + np.arange(width)
    return first.astype(np.int64), operator[np.arange(size)[:, None], rows].astype(np.float64)


def reduce_band(band, plan: BandPlan, *, thick: float) -> dict:
    """What the rest of the band pipeline needs of each pixel, in one pass.

    Parameters
    ----------
    band : ndarray, shape (E, ...), float32
        Absorbance, all energies; pixels with a non-finite value are not reduced.
    plan : BandPlan
    thick : float
        Absorbance above which a pixel is too thick.

    Returns
    -------
    dict
        ``finite`` and ``thick`` (bool), ``edge_step`` (float32, NaN where not finite
        or zero), ``e0_index`` (int32 index into the feature window of the steepest
        smoothed rise, -1 where not finite), all of the pixel shape ``(...)``;
        ``features`` (P, F) float32, ``aty`` (K, P) and ``yy`` (P,) float64 (the LCF
        moments of the normalized spectrum), over the P pixels in C order.
    """
    band = np.asarray(band)
    shape = band.shape[1:]
    flat = np.ascontiguousarray(band.reshape(band.shape[0], -1), dtype=np.float32)
    n = flat.shape[1]
    fit = plan.fit
    k = plan.references.shape[0]
    out = dict(
        finite=np.zeros(n, np.bool_), thick=np.zeros(n, np.bool_),
        edge_step=np.full(n, np.nan, np.float32), e0_index=np.full(n, -1, np.int32),
        features=np.zeros((n, plan.feature_start.size), np.float32),
        aty=np.zeros((k, n), np.float64), yy=np.zeros(n, np.float64),
    )
    # the post fit acts on mu - pre_edge: fold the pre-edge part into one matrix
    post_of_pre = fit.pinv_post @ fit.powers[fit.q1 : fit.q2, : fit.pinv_pre.shape[0]]
    _kernel()(flat, float(thick), fit.p1, fit.p2, fit.q1, fit.q2, fit.ie0, plan.flatten,
              np.ascontiguousarray(fit.powers), np.ascontiguousarray(fit.pinv_pre),
              np.ascontiguousarray(fit.pinv_post), np.ascontiguousarray(post_of_pre),
              plan.window[0], plan.feature_start, plan.feature_weights, plan.slope_start,
              plan.slope_weights, plan.references, BLOCK_PIXELS,
              out["finite"], out["thick"], out["edge_step"], out["e0_index"], out["features"],
              out["aty"], out["yy"])
    for name in ("finite", "thick", "edge_step", "e0_index"):
        out[name] = out[name].reshape(shape)
    return out


def distance_to_class(features, centroids, best, *, metric: str = "euclidean") -> np.ndarray:
    """:func:`~xafsmap.core.classify.feature_distance` of each row to its class's
    centroid, without gathering the (n, F) centroid rows.

    Parameters
    ----------
    features : ndarray, shape (n, F), float32
    centroids : ndarray, shape (C, F)
    best : ndarray of int, shape (n,)
        Class of each row.
    metric : {'euclidean', 'manhattan', 'jensen-shannon'}

    Returns
    -------
    ndarray, shape (n,), float32
    """
    from .classify import METRICS

    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    features = np.ascontiguousarray(features, dtype=np.float32)
    out = np.empty(features.shape[0], np.float32)
    _distance_kernel()(features, np.ascontiguousarray(centroids, dtype=np.float32),
                       np.asarray(best, dtype=np.int64), METRICS.index(metric), out)
    return out


@functools.lru_cache(maxsize=1)
def _distance_kernel():
    import numba

    @numba.njit(nogil=True, cache=True)
    def distance(x, centroids, best, metric, out):  # pragma: no cover - compiled
        n, n_features = x.shape
        p = np.empty(n_features, np.float32)
        q = np.empty(n_features, np.float32)
        for i in range(n):
            c = centroids[best[i]]
            if metric == 0:  # Euclidean
                acc = np.float32(0)
                for f in range(n_features):
                    d = x[i, f] - c[f]
                    acc += d * d
                out[i] = np.sqrt(acc)
            elif metric == 1:  # Manhattan
                acc = np.float32(0)
                for f in range(n_features):
                    acc += abs(x[i, f] - c[f])
                out[i] = acc
            else:  # Jensen-Shannon of the clipped, unit-sum vectors (log base 2)
                sp = np.float32(0)
                sq = np.float32(0)
                for f in range(n_features):
                    p[f] = max(x[i, f], np.float32(0))
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
                out[i] = np.sqrt(min(max(divergence, np.float32(0)), np.float32(1)))

    return distance


@functools.lru_cache(maxsize=1)
def _kernel():
    import numba

    # Every stage loops over energies (or features) outside and over the block's pixels
    # inside: the inner loops are contiguous and independent, so they compile to SIMD.
    @numba.njit(nogil=True, cache=True)
    def reduce(mu, thick, p1, p2, q1, q2, ie0, flatten, powers, pinv_pre, pinv_post, post_of_pre,
               start, f_start, f_weights, s_start, s_weights, refs, block,
               finite, too_thick, edge_step, e0_index, features, aty, yy):  # pragma: no cover - compiled
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
        ok = np.empty(block, np.bool_)
        best = np.empty(block, np.float32)
        where = np.empty(block, np.int32)
        for p0 in range(0, n, block):
            m = min(n, p0 + block) - p0
            y = mu[:, p0 : p0 + m]
            ok[:m] = True
            top[:m] = -np.inf
            for e in range(n_energies):
                for i in range(m):
                    v = y[e, i]
                    ok[i] &= (v - v) == 0  # False for NaN and infinities
                    top[i] = v if v > top[i] else top[i]
            for j in range(d_pre):
                pre[j, :m] = 0
                for e in range(p1, p2):
                    c = np.float32(pinv_pre[j, e - p1])
                    for i in range(m):
                        pre[j, i] += c * y[e, i]
            for j in range(d_post):
                post[j, :m] = 0
                for e in range(q1, q2):
                    c = np.float32(pinv_post[j, e - q1])
                    for i in range(m):
                        post[j, i] += c * y[e, i]
                for d in range(d_pre):
                    c = np.float32(post_of_pre[j, d])
                    for i in range(m):
                        post[j, i] -= c * pre[d, i]
            step[:m] = 0
            for j in range(d_post):
                c = powers32[ie0, j]
                for i in range(m):
                    step[i] += c * post[j, i]
            # norm = (mu - pre_edge - [flat above e0] (post_edge - step)) / step
            for e in range(n_energies):
                for i in range(m):
                    norm[e, i] = y[e, i]
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
                    norm[e, i] /= step[i]
            total[:m] = 0
            moments[:, :m] = 0
            for e in range(n_energies):
                for i in range(m):
                    total[i] += np.float64(norm[e, i]) * np.float64(norm[e, i])
                for r in range(n_refs):
                    c = refs[r, e]
                    for i in range(m):
                        moments[r, i] += c * np.float64(norm[e, i])
            for f in range(n_features):
                feat[f, :m] = 0
                for w in range(f_weights.shape[1]):
                    c = np.float32(f_weights[f, w])
                    row = start + f_start[f] + w
                    for i in range(m):
                        feat[f, i] += c * norm[row, i]
            if not same:
                for f in range(n_slopes):
                    slope[f, :m] = 0
                    for w in range(s_weights.shape[1]):
                        c = np.float32(s_weights[f, w])
                        row = start + s_start[f] + w
                        for i in range(m):
                            slope[f, i] += c * norm[row, i]
            best[:m] = -np.inf
            where[:m] = 0
            for f in range(n_slopes):
                for i in range(m):
                    if slope[f, i] > best[i]:
                        best[i] = slope[f, i]
                        where[i] = f
            for i in range(m):
                p = p0 + i
                if not ok[i]:
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

    return reduce
