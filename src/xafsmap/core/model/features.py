"""Feature space: what the forest sees of a spectrum, and distances in it.

:func:`compute_features` turns normalized spectra into the forest's features (their
smoothed energy derivative, or the spectra); :func:`feature_operator` is that map as one
(E, E) matrix (smoothing and differentiation are linear), which the fused band kernel
(:mod:`~xafsmap.core.model.kernels`) applies too; :func:`slope_operator` gives the e0
map; :func:`feature_distance` measures how far a pixel is from its class in units of
its noise. The kinds and metrics are the settings' choices.
"""

from __future__ import annotations

import functools

import numpy as np

from ..settings.schema import DEFAULTS, SETTINGS

__all__ = ["FEATURES", "METRICS", "compute_features", "feature_distance", "feature_operator", "slope_operator"]

#: Feature kinds: what the forest sees of a normalized spectrum (the ``features`` setting's choices).
FEATURES = SETTINGS["features"].choices
#: Distance metrics in feature space (the ``metric`` setting's choices).
METRICS = SETTINGS["metric"].choices


def compute_features(norm: np.ndarray, energies: np.ndarray, *, kind: str = DEFAULTS.features,
                     smooth: int = DEFAULTS.smooth) -> np.ndarray:
    """Features of normalized spectra: their energy derivative, or the spectra.

    Parameters
    ----------
    norm : ndarray, shape (E, ...)
        Normalized spectra.
    energies : ndarray, shape (E,)
        Energies in eV.
    kind : {'derivative', 'spectrum'}
        ``'derivative'`` is d(norm)/dE in 1/eV (``numpy.gradient`` on the possibly
        non-uniform grid), as in the fingerprinting method; ``'spectrum'`` is the
        normalized spectrum itself.
    smooth : int
        Savitzky–Golay window (points, odd, quadratic) applied along energy before
        differentiating; 0 or 1 turns it off. Differentiation amplifies noise in
        proportion to 1/step; a short quadratic window keeps the edge shape while
        cutting that noise several-fold.

    Returns
    -------
    ndarray, shape (..., E), float32

    Examples
    --------
    >>> e = np.arange(5.0)
    >>> compute_features(np.stack([e, 2 * e], axis=1), e, smooth=0)[:, 0].tolist()
    [1.0, 2.0]
    """
    if kind not in FEATURES:
        raise ValueError(f"unknown feature kind {kind!r}; choose one of {FEATURES}")
    norm = np.asarray(norm, dtype=np.float32)
    energies = np.asarray(energies, dtype=np.float64)
    if norm.shape[0] != energies.size:
        raise ValueError(f"spectra have {norm.shape[0]} energies but {energies.size} energies are given")
    operator = feature_operator(energies.tobytes(), kind, int(smooth or 0))
    if operator is not None:
        shape = norm.shape
        norm = (operator @ norm.reshape(shape[0], -1)).reshape(shape)
    return np.moveaxis(norm, 0, -1)


@functools.lru_cache(maxsize=32)
def feature_operator(energies_bytes: bytes, kind: str, smooth: int) -> np.ndarray | None:
    """The (E, E) float32 matrix of smoothing then differentiation (both linear along
    energy), so features of a band are one matrix product; None for the identity.

    ``energies_bytes`` is ``energies.tobytes()`` of the float64 energies (hashable, so
    the matrix is computed once per grid).

    >>> feature_operator(np.arange(5.0).tobytes(), "derivative", 0).shape
    (5, 5)
    """
    from scipy.signal import savgol_filter

    energies = np.frombuffer(energies_bytes, dtype=np.float64)
    operator = np.eye(energies.size)
    if smooth > 1 and energies.size > smooth:
        operator = savgol_filter(operator, smooth + 1 - smooth % 2, 2, axis=0, mode="interp")
    elif kind == "spectrum":
        return None
    if kind == "derivative":
        operator = np.gradient(operator, energies, axis=0)
    return operator.astype(np.float32)


def slope_operator(energies: np.ndarray, *, smooth: int, larch_e0: float | None = None) -> np.ndarray:
    """(E, E) operator whose argmax over a spectrum is the e0 map's edge energy.

    Larch's definition (:func:`~xafsmap.core.spectra.edge.larch_slope_operator`, the derivative
    smoothed by its narrow Lorentzian) where ``larch_e0`` is given; otherwise the
    derivative after the features' Savitzky–Golay smoothing of ``smooth`` points,
    which steadies noisy pixels.

    >>> e = np.linspace(7090.0, 7140.0, 101)
    >>> slope_operator(e, smooth=9).shape
    (101, 101)
    """
    energies = np.asarray(energies, dtype=np.float64)
    if larch_e0 is not None:
        from ..spectra.edge import larch_slope_operator

        return larch_slope_operator(energies, larch_e0).astype(np.float32)
    return feature_operator(energies.tobytes(), "derivative", int(smooth or 0))


def feature_distance(features: np.ndarray, centroids: np.ndarray, *, metric: str = "euclidean",
                     sd: np.ndarray | None = None) -> np.ndarray:
    """Distance between each feature vector and its own centroid, in units of the noise.

    Parameters
    ----------
    features, centroids : ndarray, shape (n, F)
        Row i of ``features`` is compared with row i of ``centroids``.
    metric : {'euclidean', 'manhattan', 'jensen-shannon'}
        Euclidean is the root mean square and Manhattan the mean absolute difference per
        feature, each in units of that feature's noise ``sd`` (about 1 and 0.8 for a
        spectrum its class explains at its noise, whatever the thickness or dose).
        Jensen–Shannon compares the features as distributions: negative values are
        clipped to 0 and each vector is scaled to unit sum; the result is the
        Jensen–Shannon distance (square root of the divergence, log base 2, 0…1).
    sd : ndarray, shape (n, F), optional
        Noise standard deviation of every feature (default 1).

    Returns
    -------
    ndarray, shape (n,), float32

    Examples
    --------
    >>> a = np.array([[0.0, 3.0]]); b = np.array([[4.0, 0.0]])
    >>> feature_distance(a, b).tolist(), feature_distance(a, b, metric="manhattan").tolist()
    ([3.535533905029297], [3.5])
    """
    features = np.asarray(features, dtype=np.float32)
    centroids = np.asarray(centroids, dtype=np.float32)
    sd = np.float32(1) if sd is None else np.asarray(sd, dtype=np.float32)
    if metric == "euclidean":
        return np.sqrt(np.mean(((features - centroids) / sd) ** 2, axis=-1))
    if metric == "manhattan":
        return np.mean(np.abs(features - centroids) / sd, axis=-1)
    if metric == "jensen-shannon":
        p = _as_distribution(features)
        q = _as_distribution(centroids)
        m = 0.5 * (p + q)
        divergence = 0.5 * (_kl(p, m) + _kl(q, m))
        return np.sqrt(np.clip(divergence, 0, 1)).astype(np.float32)
    raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")


def _as_distribution(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, None)
    total = x.sum(axis=-1, keepdims=True)
    return np.divide(x, total, out=np.full_like(x, 1.0 / x.shape[-1]), where=total > 0)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    ratio = np.divide(p, q, out=np.ones_like(p), where=(p > 0) & (q > 0))
    return np.sum(p * np.log2(ratio), axis=-1)


