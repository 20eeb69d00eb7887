"""The band pipeline's per-pixel arithmetic fused into one compiled pass (numba).

:func:`~xafsmap.core.mapping.pipeline.map_band` in numpy makes a dozen passes over a band's
``(E, pixels)`` block: the finite test, the pre- and post-edge fits, the normalized
spectra, the smoothing-derivative product, the e0 argmax, the LCF moments, and gathers
of the sample pixels between them. Every one of those is linear in a pixel's spectrum
or needs only that spectrum, because the whole stack shares one e0 and one set of fit
windows (:func:`~xafsmap.core.spectra.sharedfit.shared_fit`). :func:`reduce_band` therefore
visits each spectrum once, keeps it in cache and returns only what the rest of the
pipeline needs per pixel: the edge step, the forest's features, the e0 index, and the
two moments an exact NNLS needs (:func:`~xafsmap.core.spectra.lcf.fractions_from_moments`).

The numpy path stays the reference and the fallback without numba; the tests hold the
two equal within float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .features import METRICS, feature_operator, slope_operator
from ..spectra.mask import jump_design
from ..spectra.noise import LEVEL_WIDTH
from ..spectra.sharedfit import SharedFit, shared_fit
from ..spectra.windows import check_windows, resolve_params

# a Classifier (.classify) is typed Any here: .classify imports this module, and a type-only
# import back would close an import cycle (tests/test_architecture.py)
if TYPE_CHECKING:
    from ..spectra.noise import NoiseModel

__all__ = ["BandPlan", "band_plan", "distance_to_class", "label_pixels", "reduce_band", "reference_pairs"]

#: Pixels processed together, innermost in every loop (so they fill the SIMD lanes).
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
    pairs : ndarray, shape (E, K (K + 1) / 2), float64
        ``references[r] * references[t]`` per energy for ``r <= t`` (the weighted Gram
        matrix of a pixel is ``pairs.T @ weights``); ``pair_of`` (K, K) their column.
    noise : xafsmap.core.spectra.noise.NoiseModel
        The stack's noise model (the variance of every point).
    jump_design : ndarray, shape (E, 3)
        The design of the edge-jump fit of the mask (:func:`~xafsmap.core.spectra.mask.jump_design`).
    """

    fit: SharedFit
    flatten: bool
    window: tuple[int, int]
    feature_start: np.ndarray
    feature_weights: np.ndarray
    slope_start: np.ndarray
    slope_weights: np.ndarray
    references: np.ndarray
    pairs: np.ndarray
    pair_of: np.ndarray
    noise: object
    jump_design: np.ndarray


def band_plan(classifier: Any, normalization: dict, noise: NoiseModel, *, flatten: bool = True,
              larch_e0: bool = False) -> BandPlan | None:
    """The :class:`BandPlan` of a trained classifier and its stack's normalization.

    Parameters
    ----------
    classifier : xafsmap.core.model.classify.Classifier
    normalization : dict
        Larch-named normalization parameters with a scalar ``e0`` (a
        :class:`~xafsmap.core.model.training.Model`'s).
    noise : xafsmap.core.spectra.noise.NoiseModel
    flatten : bool
    larch_e0 : bool
        The e0 map by Larch's definition (see :func:`~xafsmap.core.model.features.slope_operator`).

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
    params = resolve_params(energies, float(e0), **given)
    check_windows(energies, float(e0), params)
    fit = shared_fit(energies, float(e0), params)
    if fit is None:
        return None
    start, stop = classifier.window
    window = energies[start:stop].tobytes()
    feature = feature_operator(window, classifier.features, int(classifier.smooth or 0))
    slope = slope_operator(energies[start:stop], smooth=classifier.smooth, larch_e0=float(e0) if larch_e0 else None)
    feature_start, feature_weights = _banded(feature, stop - start)
    slope_start, slope_weights = _banded(slope, stop - start)
    references = np.ascontiguousarray(classifier.references, dtype=np.float64)
    pairs, pair_of = reference_pairs(references)
    return BandPlan(fit=fit, flatten=bool(flatten), window=(int(start), int(stop)),
                    feature_start=feature_start, feature_weights=feature_weights,
                    slope_start=slope_start, slope_weights=slope_weights, references=references,
                    pairs=pairs, pair_of=pair_of, noise=noise,
                    jump_design=np.ascontiguousarray(jump_design(energies, float(e0))))


def reference_pairs(references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``references[r] * references[t]`` for ``r <= t`` as (E, K (K + 1) / 2) columns, and
    the (K, K) column index of each pair (symmetric).

    >>> pairs, pair_of = reference_pairs(np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> pairs.tolist(), pair_of.tolist()
    ([[1.0, 3.0, 9.0], [4.0, 8.0, 16.0]], [[0, 1], [1, 2]])
    """
    k = references.shape[0]
    rows, cols = np.triu_indices(k)
    pair_of = np.zeros((k, k), np.int64)
    pair_of[rows, cols] = pair_of[cols, rows] = np.arange(rows.size)
    return np.ascontiguousarray((references[rows] * references[cols]).T), pair_of


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


def reduce_band(band: np.ndarray, plan: BandPlan, *, thick: float, scale: np.ndarray) -> dict:
    """What the rest of the band pipeline needs of each pixel, in one pass.

    Parameters
    ----------
    band : ndarray, shape (E, ...), float32
        Absorbance, all energies; pixels with a non-finite value are not reduced.
    plan : BandPlan
    thick : float
        Absorbance above which a pixel is too thick.
    scale : ndarray, shape (...)
        The noise model's per-pixel scale ``g`` (:meth:`~xafsmap.core.spectra.noise.NoiseModel.band_scale`).

    Returns
    -------
    dict
        Of the pixel shape ``(...)``: ``finite`` and ``thick`` (bool), ``edge_step``
        (float32, NaN where not finite or zero), ``edge_jump`` and ``jump_sigma`` (the
        mask's statistic, :func:`~xafsmap.core.spectra.mask.edge_jump`, float32), ``e0_index``
        (int32 index into the feature window of the steepest smoothed rise, -1 where not
        finite). Over the P pixels in C order: ``features``
        and ``feature_sd`` (their noise standard deviation) (P, F) float32; the LCF
        moments of the normalized spectrum y, plain ``aty`` (K, P) and ``yy`` (P,), and
        weighted by each point's inverse variance ``gram_w`` (P, K (K + 1) / 2) (see
        :func:`reference_pairs`), ``atwy`` (K, P) and ``ywy`` (P,), float64.
    """
    band = np.asarray(band)
    shape = band.shape[1:]
    flat = np.ascontiguousarray(band.reshape(band.shape[0], -1), dtype=np.float32)
    n = flat.shape[1]
    fit = plan.fit
    k = plan.references.shape[0]
    n_features = plan.feature_start.size
    out = dict(
        finite=np.zeros(n, np.bool_), thick=np.zeros(n, np.bool_),
        edge_step=np.full(n, np.nan, np.float32), edge_jump=np.full(n, np.nan, np.float32),
        jump_sigma=np.full(n, np.nan, np.float32),
        e0_index=np.full(n, -1, np.int32), features=np.zeros((n, n_features), np.float32),
        feature_sd=np.ones((n, n_features), np.float32), aty=np.zeros((k, n), np.float64),
        yy=np.zeros(n, np.float64), gram_w=np.zeros((n, plan.pairs.shape[1]), np.float64),
        atwy=np.zeros((k, n), np.float64), ywy=np.zeros(n, np.float64),
    )
    # the post fit acts on mu - pre_edge: fold the pre-edge part into one matrix
    post_of_pre = fit.pinv_post @ fit.powers[fit.q1 : fit.q2, : fit.pinv_pre.shape[0]]
    level0, inv_step, table = plan.noise.lookup()
    from ._jit_band import reduce_band as kernel

    kernel(flat, float(thick), fit.p1, fit.p2, fit.q1, fit.q2, fit.ie0, plan.flatten,
           np.ascontiguousarray(fit.powers), np.ascontiguousarray(fit.pinv_pre),
           np.ascontiguousarray(fit.pinv_post), np.ascontiguousarray(post_of_pre),
           plan.window[0], plan.feature_start, plan.feature_weights, plan.slope_start,
           plan.slope_weights, plan.references, plan.pairs, BLOCK_PIXELS,
           np.ascontiguousarray(np.broadcast_to(scale, shape), dtype=np.float32).reshape(-1),
           np.ascontiguousarray(plan.noise.energy_profile, dtype=np.float32), np.float32(level0),
           np.float32(inv_step), table, LEVEL_WIDTH, plan.jump_design,
           out["finite"], out["thick"], out["edge_step"], out["edge_jump"], out["jump_sigma"], out["e0_index"],
           out["features"],
           out["feature_sd"], out["aty"], out["yy"], out["gram_w"], out["atwy"], out["ywy"])
    for name in ("finite", "thick", "edge_step", "edge_jump", "jump_sigma", "e0_index"):
        out[name] = out[name].reshape(shape)
    return out


def distance_to_class(features: np.ndarray, sd: np.ndarray, centroids: np.ndarray, best: np.ndarray, *,
                      metric: str = "euclidean") -> np.ndarray:
    """:func:`~xafsmap.core.model.features.feature_distance` of each row to its class's
    centroid, without gathering the (n, F) centroid rows.

    Parameters
    ----------
    features, sd : ndarray, shape (n, F), float32
        Features and their noise standard deviations.
    centroids : ndarray, shape (C, F)
    best : ndarray of int, shape (n,)
        Class of each row.
    metric : {'euclidean', 'manhattan', 'jensen-shannon'}

    Returns
    -------
    ndarray, shape (n,), float32
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    features = np.ascontiguousarray(features, dtype=np.float32)
    out = np.empty(features.shape[0], np.float32)
    from ._jit import class_distance

    class_distance(features, np.ascontiguousarray(np.broadcast_to(sd, features.shape), dtype=np.float32),
                   np.ascontiguousarray(centroids, dtype=np.float32), np.asarray(best, dtype=np.int64),
                   METRICS.index(metric), out)
    return out


def label_pixels(classifier: Any, features: np.ndarray, sd: np.ndarray, proba: np.ndarray, moments: dict, *,
                 metric: str, support: float, sum_to_one: bool = True) -> tuple[np.ndarray, ...]:
    """Labels, distances and weighted NNLS fractions of pixels from their forest
    probabilities, in one compiled pass: :func:`~xafsmap.core.model.classify.label_features`'s
    numpy steps (argmax, distance to the class in noise units, references allowed by the
    likely classes, :func:`~xafsmap.core.spectra.lcf.fit_weighted` with sum-to-one) per pixel.

    Parameters
    ----------
    classifier : Classifier
    features, sd : ndarray, shape (n, F)
        Features and their noise standard deviations.
    proba : ndarray, shape (n, C)
        Forest probabilities.
    moments : dict
        ``aty``, ``yy``, ``gram_w``, ``atwy``, ``ywy`` of :func:`reduce_band` for these pixels.
    metric : str
    support : float
        Classes at least this probable lend their references to the fit.
    sum_to_one : bool

    Returns
    -------
    labels, probability, distance, fractions, sigma, residual, chi2
        uint16 (n,), float32 (n,), float32 (n,), float32 (K, n), float32 (K, n),
        float32 (n,) (RMS misfit, edge-step units), float32 (n,) (reduced chi-square).
    """
    from . import _jit
    references = np.asarray(classifier.references, dtype=np.float64)
    k, n = references.shape[0], proba.shape[0]
    _, pair_of = reference_pairs(references)
    out = (np.zeros(n, np.uint16), np.empty(n, np.float32), np.empty(n, np.float32),
           np.empty((k, n), np.float32), np.empty((k, n), np.float32), np.empty(n, np.float32),
           np.empty(n, np.float32))
    _jit.label_pixels(np.ascontiguousarray(features, dtype=np.float32),
                      np.ascontiguousarray(np.broadcast_to(sd, np.shape(features)), dtype=np.float32),
                      np.ascontiguousarray(proba), np.ascontiguousarray(classifier.centroids, dtype=np.float32),
                      METRICS.index(metric), np.ascontiguousarray(classifier.classes.compositions > 0),
                      float(support), *(np.ascontiguousarray(moments[name], dtype=np.float64)
                                        for name in ("aty", "yy", "gram_w", "atwy", "ywy")),
                      pair_of, references @ references.T, bool(sum_to_one), references.shape[1], *out)
    return out
