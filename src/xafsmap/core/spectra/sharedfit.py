"""The pre- and post-edge fits every spectrum of a stack shares, as small matrices.

With one e0 and one set of fit windows for the whole stack
(:func:`~xafsmap.core.spectra.survey.survey`), Larch's pre- and post-edge fits are the
same linear maps for every pixel: :func:`shared_fit` precomputes them once, and
:func:`normalize_shared` normalizes a block with a few matrix products (the fused band
kernel applies the same :class:`SharedFit`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .edge import nearest_index
from .windows import fit_windows

__all__ = ["BASELINE_TERMS", "SharedFit", "baseline", "normalize_shared", "shared_fit", "step_weights"]

#: Nuisance terms of a trust fit: a + b min(E - e0, 0) + c max(E - e0, 0) (:func:`baseline`).
BASELINE_TERMS = 3


@dataclass(frozen=True)
class SharedFit:
    """Normalization of spectra that share e0 and the fit windows, as linear operators.

    ``pre = pinv_pre @ mu[p1:p2]`` are the pre-edge line's coefficients over
    ``powers[:, :pre.size]``; ``post = pinv_post @ (mu - pre_edge)[q1:q2]`` the
    post-edge polynomial's (of ``mu - pre_edge``); the edge step is that polynomial at
    ``ie0``. ``powers`` (E, D) are the powers of the conditioned energy axis.
    """

    p1: int
    p2: int
    q1: int
    q2: int
    ie0: int
    powers: np.ndarray
    pinv_pre: np.ndarray
    pinv_post: np.ndarray

    @property
    def step_weights(self) -> np.ndarray:
        """(E,) weights c with ``edge_step = c @ mu``: the step is linear in the spectrum,
        so its variance is ``sum(c**2 var(mu))`` for independent points."""
        at_e0 = self.powers[self.ie0, : self.pinv_post.shape[0]] @ self.pinv_post  # on mu - pre_edge [q1:q2]
        weights = np.zeros(self.powers.shape[0])
        weights[self.q1 : self.q2] += at_e0
        pre = at_e0 @ self.powers[self.q1 : self.q2, : self.pinv_pre.shape[0]] @ self.pinv_pre
        weights[self.p1 : self.p2] -= pre
        return weights


def shared_fit(energies: np.ndarray, e0: float, params: dict) -> SharedFit | None:
    """The :class:`SharedFit` of resolved ``params`` around ``e0``, or None where the
    shared windows are too short (the per-pixel path decides then)."""
    x = (energies - energies.mean()) / np.ptp(energies)
    p1, p2, const, q1, q2 = (int(v[0]) for v in fit_windows(energies, np.array([e0]), params))
    if p2 - p1 < 2 or q2 - q1 < 2:
        return None
    p2 = max(p2, p1 + 1) if const else p2
    pre_degree = 0 if const else 1
    post_degree = min(1, params["nnorm"]) if q2 - q1 < 5 else params["nnorm"]
    if p2 - p1 <= pre_degree or q2 - q1 <= post_degree:
        return None
    powers = x[:, None] ** np.arange(max(pre_degree, post_degree) + 1)
    return SharedFit(
        p1=p1, p2=p2, q1=q1, q2=q2, ie0=int(nearest_index(energies, np.array([e0]))[0]), powers=powers,
        pinv_pre=np.linalg.pinv(powers[p1:p2, : pre_degree + 1]),
        pinv_post=np.linalg.pinv(powers[q1:q2, : post_degree + 1]),
    )


def step_weights(energies: np.ndarray, e0: float, params: dict) -> np.ndarray:
    """(E,) weights ``c`` with ``edge_step = c @ mu`` for spectra sharing ``e0`` and the
    resolved fit windows ``params`` (see :func:`shared_fit`).

    Raises
    ------
    ValueError
        If the shared windows are too short for a linear fit.

    Examples
    --------
    >>> from xafsmap.core.spectra.normalize import normalize
    >>> e = np.linspace(7000.0, 7400.0, 401)
    >>> mu = 0.1 - 1e-4 * (e - 7000) + 2.0 / (1 + np.exp(-(e - 7112.0) / 2.0))
    >>> params = normalize(mu, e).params
    >>> round(float(step_weights(e, 7112.0, params) @ mu), 2)
    2.0
    """
    energies = np.asarray(energies, dtype=np.float64)
    fit = shared_fit(energies, float(e0), params)
    if fit is None:
        raise ValueError(f"the fit windows {params} around e0 = {e0:g} eV hold too few energies for a line")
    return fit.step_weights


def normalize_shared(mu: np.ndarray, energies: np.ndarray, e0: float, params: dict,
                     flatten: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Every spectrum with the same e0 and windows: normalization is linear up to the
    division by the edge step, so each fit is one matrix product (no per-pixel
    systems) in the input's precision. Same result as :func:`_normalize_2d`.
    Returns None where the shared windows are too short (the general path decides)."""
    fit = shared_fit(energies, e0, params)
    if fit is None:
        return None
    fit_pre = fit.powers[:, : fit.pinv_pre.shape[0]] @ fit.pinv_pre
    fit_post = fit.powers[:, : fit.pinv_post.shape[0]] @ fit.pinv_post
    dtype = mu.dtype
    sub = mu - fit_pre.astype(dtype) @ mu[fit.p1 : fit.p2]
    curve = fit_post.astype(dtype) @ sub[fit.q1 : fit.q2]  # post_edge - pre_edge
    ie0 = fit.ie0
    step = curve[ie0].copy()
    step[step == 0] = np.nan
    sub /= step
    if flatten:
        curve -= curve[ie0]
        curve[:ie0] = 0
        curve /= step
        sub -= curve
    return sub, step


def baseline(energies: np.ndarray, e0: float) -> np.ndarray:
    """The (3, E) baseline terms ``1``, ``min(x, 0)``, ``max(x, 0)``, ``x = (E - e0) / 50 eV``.

    What the normalization of a noisy spectrum gets wrong is of this form: the pre-edge
    line's error extrapolated to the edge, a kink from the post-edge fit and the
    flattening; none of it is chemistry, so every trust fit (unexplained pixels, model
    comparison, library search, thickness) carries these as free nuisance columns
    (``lcf.fit_weighted(..., free=BASELINE_TERMS)``).

    >>> baseline(np.array([7100.0, 7150.0, 7200.0]), 7150.0).tolist()
    [[1.0, 1.0, 1.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    x = (np.asarray(energies, dtype=np.float64) - e0) / 50.0
    return np.stack([np.ones_like(x), np.minimum(x, 0.0), np.maximum(x, 0.0)])
