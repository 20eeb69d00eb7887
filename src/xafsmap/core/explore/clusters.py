"""Clusters of pixels with alike spectra, on the component scores, their number judged by the noise.

Coordinates: a pixel's scores ``z`` divided by its first score (``z[1:] / z[0]``, times
the sample's median first score to keep the units). The first component carries the
edge step's scale; an edge step misestimated by a few per cent (thin pixels) moves all
scores in proportion, so the ratios are free of it and a grain thinning to its rim
stays one cluster. With one component the score itself is the coordinate.

Two methods:

* **k-means** (Lloyd's iterations on the sample, mini-batches above
  :data:`~xafsmap.core.explore.defaults.MINIBATCH_ABOVE` pixels), each pixel weighted
  by its inverse noise variance so that well-measured pixels place the centres; every
  pixel of the stack then goes to the nearest centre.
* **Gaussian mixture** (full covariances, started from the k-means centres): clusters
  of unlike spread and shape, e.g. a line of binary mixtures, and a membership
  probability. Its BIC over K is reported beside the rule below.

``k="auto"`` takes the largest K, counting up from 1, whose k-means centres all lie at
least :data:`~xafsmap.core.explore.defaults.SEPARATION` noise standard deviations of a
typical (median) pixel apart: clusters a single pixel can be told apart by (at 4 sigma
a median pixel is put in the wrong one of two clusters 2 % of the time). Splitting one
spread-out cluster further gives centres about 1 sigma apart, and stops the count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .defaults import CLUSTER_METHODS, MAX_CLUSTERS, MINIBATCH_ABOVE, SEPARATION

if TYPE_CHECKING:
    from .components import Components

__all__ = ["Clustering", "assign_clusters", "cluster_coordinates", "find_clusters"]


@dataclass(frozen=True, eq=False)
class Clustering:
    """Clusters learned on a sample's component scores.

    Attributes
    ----------
    method : str
        ``"kmeans"`` or ``"gmm"``.
    k : int
    centers : ndarray, shape (k, d)
        In cluster coordinates (:func:`cluster_coordinates`), ordered by their first
        coordinate, so labels do not depend on the random start.
    reference : float
        The first score the coordinates are scaled to (the sample's median).
    model : object
        The fitted scikit-learn estimator (``predict`` gives indices into the
        estimator's own order; :func:`assign_clusters` maps them to labels).
    order : ndarray of int, shape (k,)
        Label - 1 of each of the estimator's clusters.
    sample_labels : ndarray of uint16, shape (P,)
        Labels of the sample pixels (1 .. k).
    criterion : dict
        The rule, the noise sigma of a median pixel, and per K the smallest centre
        separation (sigma) and the Gaussian mixture's BIC.
    """

    method: str
    k: int
    centers: np.ndarray
    reference: float
    model: object
    order: np.ndarray
    sample_labels: np.ndarray
    criterion: dict = field(default_factory=dict)


def cluster_coordinates(scores: np.ndarray, reference: float) -> np.ndarray:
    """Scale-free cluster coordinates of component scores (see the module notes).

    Parameters
    ----------
    scores : ndarray, shape (P, N)
    reference : float
        The first score the ratios are scaled to.

    Returns
    -------
    ndarray, shape (P, max(N - 1, 1)), float64
        NaN where the first score is not positive.

    Examples
    --------
    >>> cluster_coordinates(np.array([[2.0, 1.0], [4.0, 2.0], [-1.0, 0.0]]), 2.0).tolist()
    [[1.0], [1.0], [nan]]
    """
    z = np.asarray(scores, dtype=np.float64)
    if z.shape[1] == 1:
        return z.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(z[:, :1] > 0, z[:, 1:] / z[:, :1] * reference, np.nan)


def _kmeans(k: int, n_pixels: int, rng: int):
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n_pixels > MINIBATCH_ABOVE:
        return MiniBatchKMeans(n_clusters=k, n_init=4, random_state=rng, batch_size=4096)
    return KMeans(n_clusters=k, n_init=4, random_state=rng)


def _separation(centers) -> float:
    if len(centers) < 2:
        return np.inf
    diff = centers[:, None, :] - centers[None, :, :]
    distance = np.sqrt((diff**2).sum(axis=-1))
    return float(distance[np.triu_indices(len(centers), 1)].min())


def find_clusters(components: Components, *, k: int | str = "auto", method: str = "kmeans",
                  rng: int | np.random.Generator | None = 0) -> Clustering:
    """Cluster the sample pixels of :class:`~xafsmap.core.explore.components.Components`.

    Parameters
    ----------
    components : Components
        Its ``sample_scores`` and ``pixel_noise`` are clustered.
    k : int or "auto"
        Number of clusters, or the noise-separation rule of the module notes.
    method : {"kmeans", "gmm"}
    rng : int or Generator
        Seed of the k-means starts and the mixture.

    Returns
    -------
    Clustering

    Raises
    ------
    ValueError
        For an unknown method or a ``k`` outside 1 .. min(MAX_CLUSTERS, pixels).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> rng = np.random.default_rng(0)
    >>> z = np.concatenate([rng.normal([10, 0], 0.1, (50, 2)), rng.normal([10, 5], 0.1, (50, 2))])
    >>> found = find_clusters(SimpleNamespace(sample_scores=z, pixel_noise=np.full(100, 0.1)))
    >>> found.k, np.bincount(found.sample_labels).tolist()
    (2, [0, 50, 50])
    """
    if method not in CLUSTER_METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose one of {CLUSTER_METHODS}")
    seed = rng if isinstance(rng, (int, np.integer)) else int(np.random.default_rng(rng).integers(2**31))
    scores = np.asarray(components.sample_scores, dtype=np.float64)
    reference = float(np.median(scores[:, 0]))
    coords = cluster_coordinates(scores, reference)
    good = np.all(np.isfinite(coords), axis=1)
    x = coords[good]
    ratio = reference / scores[good, 0] if scores.shape[1] > 1 else np.ones(good.sum())
    noise = np.asarray(components.pixel_noise, dtype=np.float64)[good] * ratio
    weight = 1.0 / noise**2
    top = min(MAX_CLUSTERS, x.shape[0])
    if k != "auto" and not 1 <= int(k) <= top:
        raise ValueError(f"{k} clusters asked for; give 1 to {top}")
    sigma = float(np.median(noise))
    table, fits = [], {}
    for trial in range(1, top + 1) if k == "auto" else [int(k)]:
        fits[trial] = _kmeans(trial, x.shape[0], seed).fit(x, sample_weight=weight)
        table.append({"k": trial, "min_separation_sigma": _separation(fits[trial].cluster_centers_) / sigma})
        if k == "auto" and table[-1]["min_separation_sigma"] < SEPARATION:
            break
    # the counting stopped at the first K that failed: the others before it all passed
    chosen = int(k) if k != "auto" else max(row["k"] for row in table if row["min_separation_sigma"] >= SEPARATION)
    for row in table:  # one cluster has no separation (JSON has no infinity)
        row["min_separation_sigma"] = None if row["k"] == 1 else row["min_separation_sigma"]
    model = fits[chosen]
    if method == "gmm":
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(chosen, covariance_type="full", means_init=model.cluster_centers_, random_state=seed,
                                reg_covar=1e-6 * float(np.var(x)) + 1e-12).fit(x)
        for row in table:
            row["gmm_bic"] = float(GaussianMixture(row["k"], covariance_type="full", random_state=seed,
                                                   means_init=fits[row["k"]].cluster_centers_).fit(x).bic(x))
    centers = model.means_ if method == "gmm" else model.cluster_centers_
    order = np.argsort(np.argsort(centers[:, 0], kind="stable"), kind="stable")
    labels = np.zeros(scores.shape[0], np.uint16)
    labels[good] = order[model.predict(x)] + 1
    criterion = {"rule": f"largest K whose k-means centres are all >= {SEPARATION:g} noise sigmas of a median pixel "
                         "apart" if k == "auto" else "given", "sigma": sigma, "table": table}
    return Clustering(method=method, k=chosen, centers=centers[np.argsort(order)], reference=reference, model=model,
                      order=order, sample_labels=labels, criterion=criterion)


def assign_clusters(scores: np.ndarray, clustering: Clustering) -> np.ndarray:
    """Cluster labels (1 .. k) of component scores; 0 where the scores are not usable.

    Parameters
    ----------
    scores : ndarray, shape (P, N)
    clustering : Clustering

    Returns
    -------
    ndarray of uint16, shape (P,)
    """
    coords = cluster_coordinates(scores, clustering.reference)
    good = np.all(np.isfinite(coords), axis=1)
    labels = np.zeros(coords.shape[0], np.uint16)
    if not good.any():
        return labels
    x = coords[good]
    if clustering.method == "kmeans":  # nearest centre: |x|^2 - 2 x.c + |c|^2, without |x|^2
        centers = clustering.centers
        labels[good] = np.argmin((centers**2).sum(axis=1)[None, :] - 2 * x @ centers.T, axis=1) + 1
    else:
        labels[good] = clustering.order[clustering.model.predict(x)] + 1
    return labels
