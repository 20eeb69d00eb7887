"""XAFS fingerprinting: a random forest on spectral features, and distances to classes.

The classifier learns the classes (pure references and their mixtures) from synthetic
noisy spectra, then labels every pixel. Its feature space also measures trust: the
distance from a pixel's features to the noise-free features of the class it was given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ..spectra.lcf import spectrum_moments
from .features import METRICS, compute_features, feature_distance, feature_operator
from .forest import grow_forest, predict_proba
from .synthesize import Classes, synthesize_spectra

__all__ = ["Classification", "Classifier", "classify", "label_features", "train_classifier"]


def _fused(k: int) -> bool:
    """The compiled labelling applies: numba, and few enough references for subsets."""
    from .forest import has_numba
    from ..spectra.lcf import MAX_SUBSET_REFERENCES

    return k <= MAX_SUBSET_REFERENCES and has_numba()


def _distance(x, sd, centroids, best, metric):
    from .forest import has_numba

    if has_numba():
        from .kernels import distance_to_class

        return distance_to_class(x, sd, centroids, best, metric=metric)
    return feature_distance(x, centroids[best], metric=metric, sd=sd)


@dataclass(frozen=True)
class Classifier:
    """A trained classifier with everything needed to reproduce and explain it.

    Attributes
    ----------
    forest : sklearn.ensemble.RandomForestClassifier
    classes : Classes
        Class names and compositions.
    references : ndarray, shape (K, E)
        Normalized references on the measurement's energies (for the fractions).
    energies : ndarray, shape (E,)
    window : tuple of int
        Energy indices ``[start, stop)`` the features and fits use.
    features, smooth : str, int
        Feature specification (see :func:`compute_features`).
    centroids : ndarray, shape (C, F)
        Features of each class's noise-free spectrum.
    noise : ndarray
        Noise levels (n,) or per-energy profiles (n, E) the training spectra were drawn with.
    accuracy : float
        Accuracy on a held-out synthetic test set.
    confusion : ndarray, shape (C, C)
        Held-out confusion matrix, rows = true class, columns = predicted.
    importances : ndarray, shape (E,)
        Feature importance per energy (0 outside the window).
    params : dict
        Training parameters, seed included.
    """

    forest: object
    classes: Classes
    references: np.ndarray
    energies: np.ndarray
    window: tuple[int, int]
    features: str
    smooth: int
    centroids: np.ndarray
    noise: np.ndarray
    accuracy: float
    confusion: np.ndarray
    importances: np.ndarray
    params: dict = field(default_factory=dict)

    def features_of(self, norm: ArrayLike) -> np.ndarray:
        """Features of normalized spectra (E, ...) -> (..., F)."""
        start, stop = self.window
        return compute_features(
            np.asarray(norm)[start:stop], self.energies[start:stop], kind=self.features, smooth=self.smooth
        )

    def feature_sd_of(self, variance: ArrayLike) -> np.ndarray:
        """Noise standard deviation of the features of spectra whose points have
        ``variance`` (E, ...) -> (..., F): the feature operator squared applied to it."""
        start, stop = self.window
        variance = np.asarray(variance, dtype=np.float32)[start:stop]
        operator = feature_operator(self.energies[start:stop].tobytes(), self.features, int(self.smooth or 0))
        if operator is not None:
            shape = variance.shape
            variance = ((operator**2) @ variance.reshape(shape[0], -1)).reshape(shape)
        return np.sqrt(np.moveaxis(variance, 0, -1))


def train_classifier(
    references: np.ndarray,
    energies: np.ndarray,
    classes: Classes,
    *,
    noise: float | ArrayLike,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    window: tuple[int, int] | None = None,
    n_per_class: int = 1000,
    n_trees: int = 100,
    features: str = "derivative",
    smooth: int = 9,
    spread: float = 0.1,
    max_samples: float | None = 0.25,
    test_fraction: float = 0.25,
    n_jobs: int | None = -1,
    rng: int | np.random.Generator | None = None,
    stop: Callable[[], bool] | None = None,
) -> Classifier:
    """Train a random forest on synthetic noisy mixtures of the references.

    Parameters
    ----------
    references : ndarray, shape (K, E)
        Normalized references on the measurement's energies.
    energies : ndarray, shape (E,)
    classes : Classes
        Class compositions over the K references.
    noise : float or array_like
        Noise level(s) per energy point in edge-step units, as measured in the data: a
        level, levels (n,) or per-energy profiles (n, E) of measured pixels (see
        :func:`~xafsmap.core.model.synthesize.synthesize_spectra`).
    prepare : callable, optional
        Applied to the noisy spectra, shape (E, n), before features are computed —
        the same normalization the measured pixels go through, so training and
        measured spectra share their imperfections.
    window : (int, int), optional
        Energy indices ``[start, stop)`` used for features; default all.
    n_per_class, n_trees, features, smooth, spread
        Training set size per class, forest size, feature kind and smoothing, and
        composition spread (see :func:`~xafsmap.core.model.synthesize.synthesize_spectra`).
    max_samples : float or None
        Fraction of the training set each tree draws (bootstrap); None = all. A
        quarter (250 spectra per class) trains ~4x faster than all and gives shallower
        trees, with the same known-answer accuracy as a half (benchmarks/accuracy.py,
        3 seeds: 1.000 / 0.0064 / AUC 1.000 at 2 % noise both; 0.9998 / 0.0139 / 0.985
        vs 0.9999 / 0.0137 / 0.985 at 4 %): the training set is large and synthetic.
    test_fraction : float
        Size of the held-out synthetic test set relative to the training set.
    n_jobs : int, optional
        Threads for the forest.
    rng : int or Generator, optional
        Seed; the forest's ``random_state`` is drawn from it.
    stop : callable, optional
        Polled while the forest grows; True stops training with
        :class:`~xafsmap.core.model.forest.TrainingStopped` (see :func:`~xafsmap.core.model.forest.grow_forest`).

    Returns
    -------
    Classifier
    """
    rng = np.random.default_rng(rng)
    references = np.asarray(references, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    window = tuple(window or (0, energies.size))
    n_test = max(int(round(n_per_class * test_fraction)), 1)
    spectra, labels, _ = synthesize_spectra(
        references, classes.compositions, noise=noise, n_per_class=n_per_class + n_test, spread=spread, rng=rng
    )
    spectra = spectra.T
    if prepare is not None:
        spectra = prepare(spectra)
    spec = dict(window=window, features=features, smooth=smooth)
    x = _features(spectra, energies, **spec)
    is_test = np.tile(np.arange(n_per_class + n_test) >= n_per_class, len(classes))
    # imported only now: the spectra above are made while scikit-learn's ~1 s import
    # finishes in the thread train_model started
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(
        n_estimators=n_trees, max_samples=max_samples, n_jobs=n_jobs, random_state=int(rng.integers(2**31))
    )
    grow_forest(forest, x[~is_test], labels[~is_test], stop=stop)
    predicted = forest.classes_[np.argmax(predict_proba(forest, x[is_test]), axis=1)]
    n_classes = len(classes)
    importances = np.zeros(energies.size)
    importances[window[0] : window[1]] = forest.feature_importances_
    centroids = _features((classes.compositions @ references).T, energies, **spec)
    return Classifier(
        forest=forest,
        classes=classes,
        references=references,
        energies=energies,
        window=window,
        features=features,
        smooth=smooth,
        centroids=centroids,
        noise=np.atleast_1d(np.asarray(noise, dtype=np.float32)),
        accuracy=float(np.mean(predicted == labels[is_test])),
        confusion=np.bincount(labels[is_test] * n_classes + predicted, minlength=n_classes**2).reshape(
            n_classes, n_classes),
        importances=importances,
        params=dict(n_per_class=n_per_class, n_trees=n_trees, spread=spread, max_samples=max_samples,
                    test_fraction=test_fraction),
    )


def _features(spectra, energies, *, window, features, smooth):
    start, stop = window
    return compute_features(spectra[start:stop], energies[start:stop], kind=features, smooth=smooth)


@dataclass(frozen=True)
class Classification:
    """Per-pixel results; every array has the pixel shape ``(...)`` of the input.

    ``labels`` is uint16 with 0 = not classified (non-finite spectrum) and 1..C the
    classes; ``fractions`` and ``fraction_sigma`` (the 1-sigma uncertainty of each
    fraction) have the reference axis first, shape (K, ...); ``residual`` is the RMS
    misfit of the fit in edge-step units and ``chi2`` its reduced chi-square under the
    noise model (about 1 where the references explain the pixel at its noise).
    """

    labels: np.ndarray
    probability: np.ndarray
    distance: np.ndarray
    fractions: np.ndarray
    fraction_sigma: np.ndarray
    residual: np.ndarray
    chi2: np.ndarray


#: Classes at least this probable contribute their references to a pixel's LCF.
SUPPORT_PROBABILITY = 0.2


def classify(classifier: Classifier, norm: ArrayLike, *, metric: str = "euclidean", fit: bool = True,
             features: np.ndarray | None = None, variance: np.ndarray | None = None) -> Classification:
    """Label normalized spectra and measure how well their class explains them.

    Parameters
    ----------
    classifier : Classifier
    norm : ndarray, shape (E, ...)
        Normalized spectra on the classifier's energies.
    metric : {'euclidean', 'manhattan', 'jensen-shannon'}
        Distance in feature space between a pixel and its class's noise-free spectrum,
        in units of the features' noise (Euclidean: root mean square, Manhattan: mean
        absolute, over the features; Jensen–Shannon is scale-free).
    fit : bool
        Also fit the non-negative reference fractions (LCF) over all energies (more
        points than the feature window: a smaller variance of the fractions), each
        point weighted by its inverse variance. The forest chooses which references a
        pixel may use: those present in any class with probability >=
        ``SUPPORT_PROBABILITY``; LCF then quantifies them. Without that choice, noise
        gives every absent phase a small positive fraction (NNLS cannot go below 0), a
        bias of about 0.4 sigma per phase.
    features : ndarray, shape (..., F), optional
        The classifier's features of ``norm`` when the caller already has them
        (:meth:`Classifier.features_of`); computed here otherwise.
    variance : ndarray, shape (E, ...), optional
        Variance of every point in edge-step units squared (the stack's noise model,
        :meth:`~xafsmap.core.spectra.noise.NoiseModel.variance` divided by the edge step
        squared); default white noise at each spectrum's
        :func:`~xafsmap.core.spectra.normalize.estimate_noise`.

    Returns
    -------
    Classification
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    norm = np.asarray(norm)
    shape = norm.shape[1:]
    flat = norm.reshape(norm.shape[0], -1)
    good = np.all(np.isfinite(flat), axis=0)
    y = flat[:, good]
    if variance is None:
        from ..spectra.normalize import estimate_noise

        var = np.broadcast_to(estimate_noise(y, classifier.energies) ** 2, y.shape)
    else:
        var = np.asarray(variance, dtype=np.float64).reshape(flat.shape)[:, good]
    if features is None:
        x = classifier.features_of(y)
    else:
        x = np.asarray(features, dtype=np.float32).reshape(-1, classifier.centroids.shape[1])[good]
    moments = None
    if fit:
        from ..spectra.lcf import weighted_moments

        gram_w, atwy, ywy = weighted_moments(y, classifier.references, 1.0 / var)
        aty, yy = spectrum_moments(y, classifier.references)
        moments = dict(aty=aty, yy=yy, gram_w=gram_w, atwy=atwy, ywy=ywy)
    found = label_features(classifier, x, metric=metric, moments=moments,
                           feature_sd=classifier.feature_sd_of(var))
    n, k = flat.shape[1], classifier.references.shape[0]
    labels = np.zeros(n, np.uint16)
    floats = {name: np.full(n, np.nan, np.float32) for name in ("probability", "distance", "residual", "chi2")}
    fractions, sigma = np.full((k, n), np.nan, np.float32), np.full((k, n), np.nan, np.float32)
    labels[good] = found.labels
    for name, values in floats.items():
        values[good] = getattr(found, name)
    fractions[:, good], sigma[:, good] = found.fractions, found.fraction_sigma
    return Classification(labels=labels.reshape(shape), fractions=fractions.reshape(k, *shape),
                          fraction_sigma=sigma.reshape(k, *shape),
                          **{name: values.reshape(shape) for name, values in floats.items()})


def label_features(classifier: Classifier, features: np.ndarray, *, metric: str = "euclidean",
                   moments: dict | None = None, feature_sd: np.ndarray | None = None,
                   parallel: bool = True) -> Classification:
    """:func:`classify` from the features of finite spectra (and their LCF moments).

    Parameters
    ----------
    classifier : Classifier
    features : ndarray, shape (n, F)
        The classifier's features of n finite normalized spectra.
    metric : {'euclidean', 'manhattan', 'jensen-shannon'}
    moments : dict, optional
        Of each normalized spectrum y: ``aty`` = ``R y`` (K, n) and ``yy`` = ``y . y`` (n,)
        (:func:`~xafsmap.core.spectra.lcf.spectrum_moments`), and weighted by the inverse
        variance W of every point ``gram_w`` = ``R W R^T`` ((n, K, K), or (n, K (K+1)/2)
        columns of :func:`~xafsmap.core.model.kernels.reference_pairs`), ``atwy`` = ``R W y``
        and ``ywy`` = ``y W y`` (:func:`~xafsmap.core.spectra.lcf.weighted_moments`); without
        them fractions, their sigma, residual and chi2 are NaN.
    feature_sd : ndarray, shape (n, F), optional
        Noise standard deviation of every feature (distances are in its units); default 1.
    parallel : bool
        Spread the forest over threads (False: callers that run one band per core).

    Returns
    -------
    Classification
        Arrays of shape (n,) (fractions and their sigma (K, n)).
    """
    x = np.asarray(features, dtype=np.float32)
    n, k = x.shape[0], classifier.references.shape[0]
    sd = np.ones_like(x) if feature_sd is None else np.asarray(feature_sd, dtype=np.float32)
    labels = np.zeros(n, np.uint16)
    probability, distance, residual, chi2 = (np.full(n, np.nan, np.float32) for _ in range(4))
    fractions, sigma = np.full((k, n), np.nan, np.float32), np.full((k, n), np.nan, np.float32)
    if n and moments is not None and _fused(k):
        from .kernels import label_pixels

        proba = predict_proba(classifier.forest, x, parallel=parallel)
        moments = dict(moments, gram_w=_pair_columns(moments["gram_w"], k))
        found = label_pixels(classifier, x, sd, proba, moments, metric=metric, support=SUPPORT_PROBABILITY)
        return Classification(*found)
    if n:
        proba = predict_proba(classifier.forest, x, parallel=parallel)
        best = np.argmax(proba, axis=1)
        labels[:] = best + 1
        probability[:] = proba[np.arange(n), best]
        distance[:] = _distance(x, sd, classifier.centroids, best, metric)
        if moments is not None:
            from ..spectra.lcf import fit_weighted

            present = classifier.classes.compositions > 0
            allowed = ((proba >= SUPPORT_PROBABILITY).astype(np.float32) @ present).T > 0
            allowed[:, proba.max(axis=1) < SUPPORT_PROBABILITY] = True
            n_points = classifier.references.shape[1]
            found = fit_weighted(_full_gram(moments["gram_w"], k), moments["atwy"], moments["ywy"],
                                 n_points=n_points, allowed=allowed)
            w = found.fractions
            fractions[:], sigma[:] = w, found.sigma
            dof = np.maximum(n_points - found.support.sum(axis=0) + 1, 1)
            chi2[:] = found.chi2 / dof
            refs = classifier.references
            misfit = (moments["yy"] - 2 * np.einsum("ij,ij->j", w, moments["aty"])
                      + np.einsum("ij,ij->j", w, (refs @ refs.T) @ w))
            residual[:] = np.sqrt(np.clip(misfit, 0, None) / n_points)
    return Classification(labels=labels, probability=probability, distance=distance, fractions=fractions,
                          fraction_sigma=sigma, residual=residual, chi2=chi2)


def _pair_columns(gram, k):
    """A weighted Gram matrix per pixel as (n, K (K+1)/2) pair columns (the kernel's layout)."""
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim == 3:
        rows, cols = np.triu_indices(k)
        return gram[:, rows, cols]
    return gram


def _full_gram(gram, k):
    """(n, K, K) from pair columns (or as given)."""
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim == 3:
        return gram
    rows, cols = np.triu_indices(k)
    full = np.empty((gram.shape[0], k, k))
    full[:, rows, cols] = gram
    full[:, cols, rows] = gram
    return full
