"""How well maps recover a known truth: the scores behind issue 10's "done when" list.

A :class:`Truth` says what every pixel of a synthetic measurement really holds (the
generators :func:`~xafsmap.core.simulate.generator.simulate_measurement` and
:func:`~xafsmap.core.simulate.sample.make_sample` make one); the functions here compare maps
with it. Pixel sets, used by every score the same way:

* *sample*: pixels with the element's edge (edge step > 0); holes, cracks and grains
  of matrix without the element are background;
* *known*: sample pixels made only of phases given as references;
* *left out*: sample pixels at least half made of phases not among the references;
* *distorted*: pixels whose normalized spectrum a harmonic leak changes by more than
  the generator's stated tolerance (too thick to measure; see
  :func:`~xafsmap.core.simulate.generator.simulate_measurement`). Fraction scores leave them out;
  the unexplained map's rate on them is reported apart.

:func:`score_maps` computes every score at once; :data:`TARGETS` and
:func:`check_targets` say which pass.
"""

from __future__ import annotations


from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .truth import Truth

__all__ = [
    "DETECTABLE",
    "TARGETS",
    "THICKNESS_BINS",
    "check_targets",
    "coverage",
    "dominant_accuracy",
    "fraction_rmse",
    "mask_iou",
    "roc_auc",
    "score_maps",
    "unexplained_rates",
]

#: Edges of the true edge-step bins the unexplained rates are broken down by.
THICKNESS_BINS = (0.0, 0.3, 0.6, 1.2, np.inf)
#: A thickness bin needs this many pixels of a kind for its rate to count (else NaN).
MIN_BIN_PIXELS = 20

#: Issue 10's "done when": score name -> (lowest, highest) acceptable value.
TARGETS = {
    "mask_iou": (0.98, 1.0),
    "dominant_accuracy": (0.97, 1.0),
    "fraction_rmse": (0.0, 0.03),
    "distance_auc": (0.95, 1.0),
    "unexplained_known": (0.0, 0.02),
    "unexplained_left_out": (0.80, 1.0),
    "unexplained_known_worst_bin": (0.0, 0.02),
    "unexplained_left_out_worst_bin": (0.80, 1.0),
    "coverage_1sigma": (0.5, 0.85),
    "coverage_2sigma": (0.85, 1.0),
}
#: Left-out pixels an ideal test finds with a power of at least DETECTABLE are "detectable".
DETECTABLE = 0.9
#: Fraction RMSE allowed at low dose (<= LOW_DOSE counts per pixel per energy).
LOW_DOSE, LOW_DOSE_RMSE = 1000.0, 0.04



def mask_iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of an estimated and a true sample mask.

    Examples
    --------
    >>> mask_iou(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    0.3333333333333333
    """
    mask, truth = np.asarray(mask, bool), np.asarray(truth, bool)
    union = np.count_nonzero(mask | truth)
    return float(np.count_nonzero(mask & truth) / union) if union else float("nan")


def _scored(fractions, true_fractions, pixels):
    """(K, n) estimated and true fractions of ``pixels`` whose estimates are all finite."""
    fractions = np.asarray(fractions, dtype=np.float64)
    true_fractions = np.asarray(true_fractions, dtype=np.float64)
    if fractions.shape != true_fractions.shape:
        raise ValueError(f"estimated fractions have shape {fractions.shape} but the true ones {true_fractions.shape}")
    pick = np.asarray(pixels, bool) & np.all(np.isfinite(fractions), axis=0)
    return fractions[:, pick], true_fractions[:, pick]


def dominant_accuracy(fractions: np.ndarray, true_fractions: np.ndarray, pixels: np.ndarray, *,
                      min_fraction: float = 0.7) -> float:
    """Share of clearly dominated pixels whose largest estimated fraction is the true one.

    Parameters
    ----------
    fractions : ndarray, shape (K, M, N)
        Estimated fractions (NaN where not mapped).
    true_fractions : ndarray, shape (K, M, N)
        True fractions of the same K phases.
    pixels : ndarray, shape (M, N), bool
        Pixels scored (e.g. :attr:`Truth.known` without the distorted ones).
    min_fraction : float
        A pixel counts when its true largest fraction is at least this.

    Returns
    -------
    float
        ``argmax`` of the estimate == ``argmax`` of the truth, over the scored pixels
        that are mapped (finite estimate); NaN without any.

    Examples
    --------
    >>> t = np.array([[[1.0, 0.8]], [[0.0, 0.2]]])
    >>> e = np.array([[[0.9, 0.3]], [[0.1, 0.7]]])
    >>> dominant_accuracy(e, t, np.ones((1, 2), bool))
    0.5
    """
    est, true = _scored(fractions, true_fractions, pixels)
    clear = true.max(axis=0) >= min_fraction
    if not clear.any():
        return float("nan")
    return float(np.mean(est[:, clear].argmax(axis=0) == true[:, clear].argmax(axis=0)))


def fraction_rmse(fractions: np.ndarray, true_fractions: np.ndarray, pixels: np.ndarray) -> float:
    """Root-mean-square error of the fractions over the mapped ``pixels`` and every phase.

    Examples
    --------
    >>> t = np.zeros((2, 1, 2)); e = t + 0.1
    >>> round(fraction_rmse(e, t, np.ones((1, 2), bool)), 6)
    0.1
    """
    est, true = _scored(fractions, true_fractions, pixels)
    return float(np.sqrt(np.mean((est - true) ** 2))) if est.size else float("nan")


def coverage(fractions: np.ndarray, sigma: np.ndarray, true_fractions: np.ndarray, pixels: np.ndarray, *,
             k: float = 1.0) -> float:
    """Share of fractions whose error lies within ``k`` of their stated 1-sigma.

    ``|f - f_true| <= k * sigma`` over the mapped ``pixels`` and every phase; a
    calibrated sigma covers ~68 % at k = 1 and ~95 % at k = 2.

    Parameters
    ----------
    fractions, sigma, true_fractions : ndarray, shape (K, M, N)
    pixels : ndarray, shape (M, N), bool
    k : float

    Examples
    --------
    >>> t = np.zeros((1, 1, 4)); e = np.array([[[0.1, -0.1, 0.3, 0.0]]])
    >>> coverage(e, np.full((1, 1, 4), 0.2), t, np.ones((1, 4), bool))
    0.75
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.shape != np.shape(fractions):
        raise ValueError(f"sigma has shape {sigma.shape} but the fractions {np.shape(fractions)}")
    pixels = np.asarray(pixels, bool) & np.all(np.isfinite(sigma), axis=0)
    est, true = _scored(fractions, true_fractions, pixels)
    sig = sigma[:, pixels & np.all(np.isfinite(fractions), axis=0)]
    return float(np.mean(np.abs(est - true) <= k * sig)) if est.size else float("nan")


def roc_auc(negatives: ArrayLike, positives: ArrayLike) -> float:
    """Area under the ROC curve: probability that a positive scores above a negative.

    Ties count one half (average ranks). NaN values are dropped.

    Examples
    --------
    >>> roc_auc(np.array([0.1, 0.2, 0.3]), np.array([0.25, 0.5]))
    0.8333333333333334
    """
    from scipy.stats import rankdata

    negatives = np.asarray(negatives, dtype=np.float64).ravel()
    positives = np.asarray(positives, dtype=np.float64).ravel()
    negatives, positives = negatives[np.isfinite(negatives)], positives[np.isfinite(positives)]
    n, p = negatives.size, positives.size
    if n == 0 or p == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([negatives, positives]))
    return float((ranks[n:].sum() - p * (p + 1) / 2) / (n * p))


def _rate(flags, pixels) -> float:
    count = np.count_nonzero(pixels)
    return float(np.count_nonzero(flags & pixels) / count) if count else float("nan")


def unexplained_rates(flags: np.ndarray, truth: Truth, *, bins: Sequence[float] = THICKNESS_BINS) -> dict:
    """Shares of known-phase and left-out-phase pixels an unexplained map flags.

    Parameters
    ----------
    flags : ndarray, shape (M, N), bool
        Pixels flagged unexplained.
    truth : Truth
    bins : sequence of float
        Edges of the true edge-step bins.

    Returns
    -------
    dict
        ``known`` (flagged share of known, undistorted pixels: false alarms),
        ``left_out`` (flagged share of left-out pixels: detections), ``distorted``
        (flagged share of leak-distorted known pixels; they should be flagged too
        thick instead), ``known_worst_bin`` / ``left_out_worst_bin`` (the largest
        false-alarm / smallest detection rate over the thickness bins with at least
        :data:`MIN_BIN_PIXELS` pixels) and ``by_thickness``: per bin ``"lo-hi"`` its
        ``known`` and ``left_out`` rates and pixel counts.

    Examples
    --------
    >>> from xafsmap.core.simulate.specimen import SAMPLE
    >>> t = Truth(("A", "X"), ("A",), np.array([[[1, 1, 0, 0]], [[0, 0, 1, 1]]], np.float32),
    ...           np.array([[0.2, 1.0, 0.2, 1.0]], np.float32), np.full((1, 4), SAMPLE, np.uint8),
    ...           np.zeros((1, 4), bool))
    >>> r = unexplained_rates(np.array([[False, True, True, True]]), t)
    >>> r["known"], r["left_out"]
    (0.5, 1.0)
    """
    flags = np.asarray(flags, bool)
    known = truth.known & ~truth.distorted
    left_out = truth.left_out
    out = {"known": _rate(flags, known), "left_out": _rate(flags, left_out),
           "distorted": _rate(flags, truth.known & truth.distorted), "by_thickness": {}}
    worst_known, worst_left = [], []
    for lo, hi in zip(bins[:-1], bins[1:]):
        inside = (truth.edge_step >= lo) & (truth.edge_step < hi)
        n_known, n_left = int(np.count_nonzero(known & inside)), int(np.count_nonzero(left_out & inside))
        row = {"known": _rate(flags, known & inside), "left_out": _rate(flags, left_out & inside),
               "known_pixels": n_known, "left_out_pixels": n_left}
        out["by_thickness"][f"{lo:g}-{hi:g}"] = row
        if n_known >= MIN_BIN_PIXELS:
            worst_known.append(row["known"])
        if n_left >= MIN_BIN_PIXELS:
            worst_left.append(row["left_out"])
    out["known_worst_bin"] = max(worst_known) if worst_known else float("nan")
    out["left_out_worst_bin"] = min(worst_left) if worst_left else float("nan")
    return out


def score_maps(truth: Truth, *, mask: np.ndarray | None = None, fractions: np.ndarray | None = None,
               distance: np.ndarray | None = None, unexplained: np.ndarray | None = None,
               fraction_sigma: np.ndarray | None = None, crlb: np.ndarray | None = None,
               power: np.ndarray | None = None, min_fraction: float = 0.7) -> dict:
    """Every score of the maps given, against ``truth``.

    Parameters
    ----------
    truth : Truth
    mask : ndarray, shape (M, N), bool, optional
        Estimated sample mask (e.g. ``MapResult.mask == 1``).
    fractions : ndarray, shape (K, M, N), optional
        Estimated fractions of the references, in ``truth.references`` order; NaN
        where not mapped.
    distance : ndarray, shape (M, N), optional
        Distance (or any score that should be larger for the left-out phase).
    unexplained : ndarray, shape (M, N), bool, optional
        Pixels flagged unexplained.
    fraction_sigma : ndarray, shape (K, M, N), optional
        Stated 1-sigma of the fractions.
    crlb : ndarray, shape (K, M, N), optional
        Cramér-Rao bound of the fractions' 1-sigma for an unconstrained fit
        (:meth:`~xafsmap.core.simulate.measurement.Measurement.fraction_crlb`).
    power : ndarray, shape (M, N), optional
        Power of an ideal test for a misfit
        (:meth:`~xafsmap.core.simulate.measurement.Measurement.detection_power`).
    min_fraction : float
        See :func:`dominant_accuracy`.

    Returns
    -------
    dict
        Only the scores the given maps allow: ``mask_iou``, ``mask_dropped`` (share of
        the sample outside the mask), ``mask_dropped_left_out`` (of the left-out
        phase), ``mask_extra`` (share of the background inside it); ``dominant_accuracy``,
        ``fraction_rmse`` and ``scored_pixels`` (known, undistorted, mapped pixels),
        ``unmapped_known`` (known undistorted pixels without fractions);
        ``distance_auc`` (left-out pixels against the known undistorted ones, mapped
        pixels only); ``unexplained_*`` (see :func:`unexplained_rates`, the thickness
        breakdown as ``unexplained_by_thickness``); ``coverage_1sigma`` and
        ``coverage_2sigma``. With ``crlb``: ``fraction_crlb`` (its RMS over the
        known, undistorted pixels: the RMSE of an efficient unconstrained fit; fits
        constrained to non-negative fractions of a few phases do better on pure and
        binary pixels) and, with ``fraction_sigma`` too, ``sigma_over_crlb`` (median
        ratio of the stated sigma to the bound: 1 for a weighted LCF's covariance).
        With ``power``: ``ideal_detection`` (mean power over
        the left-out pixels), ``detectable_share`` (share of them with power at least
        :data:`DETECTABLE`) and ``unexplained_left_out_detectable`` (flagged share of
        those).
    """
    scores = {}
    known = truth.known & ~truth.distorted
    if mask is not None:
        mask = np.asarray(mask, bool)
        scores["mask_iou"] = mask_iou(mask, truth.sample)
        scores["mask_dropped"] = _rate(~mask, truth.sample)
        scores["mask_dropped_left_out"] = _rate(~mask, truth.left_out)
        scores["mask_extra"] = _rate(mask, ~truth.sample)
    if fractions is not None:
        true = truth.reference_fractions
        mapped = np.all(np.isfinite(fractions), axis=0)
        scores["dominant_accuracy"] = dominant_accuracy(fractions, true, known, min_fraction=min_fraction)
        scores["fraction_rmse"] = fraction_rmse(fractions, true, known)
        scores["scored_pixels"] = int(np.count_nonzero(known & mapped))
        scores["unmapped_known"] = int(np.count_nonzero(known & ~mapped))
        if fraction_sigma is not None:
            for k in (1, 2):
                scores[f"coverage_{k}sigma"] = coverage(fractions, fraction_sigma, true, known, k=k)
    if crlb is not None:
        crlb = np.asarray(crlb, dtype=np.float64)
        scores["fraction_crlb"] = float(np.sqrt(np.nanmean(crlb[:, known] ** 2))) if known.any() else np.nan
        if fraction_sigma is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                scores["sigma_over_crlb"] = float(np.nanmedian((np.asarray(fraction_sigma) / crlb)[:, known]))
    if power is not None:
        detectable = truth.left_out & (np.nan_to_num(power) >= DETECTABLE)
        scores["ideal_detection"] = float(np.nanmean(power[truth.left_out])) if truth.left_out.any() else np.nan
        scores["detectable_share"] = _rate(detectable, truth.left_out)
        if unexplained is not None:
            scores["unexplained_left_out_detectable"] = _rate(np.asarray(unexplained, bool), detectable)
    if distance is not None:
        distance = np.asarray(distance, dtype=np.float64)
        scores["distance_auc"] = roc_auc(distance[known], distance[truth.left_out])
    if unexplained is not None:
        rates = unexplained_rates(unexplained, truth)
        for key in ("known", "left_out", "distorted", "known_worst_bin", "left_out_worst_bin"):
            scores[f"unexplained_{key}"] = rates[key]
        scores["unexplained_by_thickness"] = rates["by_thickness"]
    return scores


def check_targets(scores: dict, *, dose: float | None = None) -> dict:
    """PASS (True) / FAIL (False) of each score against :data:`TARGETS`.

    Scores that are absent or NaN are left out. At a dose of at most
    :data:`LOW_DOSE` counts the fraction RMSE may reach :data:`LOW_DOSE_RMSE`.

    Examples
    --------
    >>> check_targets({"mask_iou": 0.99, "fraction_rmse": 0.035}, dose=900)
    {'mask_iou': True, 'fraction_rmse': True}
    """
    verdicts = {}
    for name, (lo, hi) in TARGETS.items():
        value = scores.get(name)
        if value is None or not np.isfinite(value):
            continue
        if name == "fraction_rmse" and dose is not None and dose <= LOW_DOSE:
            hi = LOW_DOSE_RMSE
        verdicts[name] = bool(lo <= value <= hi)
    return verdicts
