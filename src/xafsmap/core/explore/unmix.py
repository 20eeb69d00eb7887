"""Non-negative unmixing (NMF): K spectra and every pixel's non-negative amount of each.

For samples whose phases mix, the spectra of the pure phases are the vertices of the
cone the pixels' spectra fill. :func:`unmix` finds them on the sample pixels:

* **metric**: the biwhitened one of :mod:`~xafsmap.core.explore.components` (rows and
  energies scaled by the noise model), so noisy thin pixels and noisy energies count
  less; NMF keeps its form under positive row and column scaling.
* **initialisation**: the successive projection algorithm (SPA; Araújo et al. 2001,
  Gillis & Vavasis 2014) on the sample denoised to rank K: the pixel farthest from the
  origin, then repeatedly the one farthest from the span of those chosen. Where pure
  pixels exist (pure grains) SPA finds them; NNDSVD, scikit-learn's default, starts
  from a rotated basis and on the test stacks converged to spectra with cosines of
  0.71-0.99 to the truth, SPA to 0.98-0.9998.
* **iterations**: alternating exact non-negative least squares (the spectra given the
  abundances, then the abundances given the spectra; each is the subset-enumeration
  NNLS of :func:`~xafsmap.core.lcf.fit_fractions`), until a round lowers the misfit by
  less than :data:`~xafsmap.core.explore.defaults.NMF_TOL` of itself. NMF is not
  unique once the misfit reaches the noise: more rounds move the spectra along that
  freedom, not toward the truth, hence the loose tolerance.
* **scale**: each spectrum is scaled to 1 over the post-edge normalization window, so
  the abundances of a normalized spectrum add up to about 1, as fractions.

The abundances of every pixel then come band by band from :func:`abundances`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..spectra.lcf import fit_fractions
from .defaults import MAX_NMF, NMF_MAX_ITER, NMF_TOL

if TYPE_CHECKING:
    from .components import Components
    from .sampling import PixelSample

__all__ = ["Unmixing", "abundances", "successive_projection", "unmix"]


@dataclass(frozen=True, eq=False)
class Unmixing:
    """NMF spectra learned on a sample.

    Attributes
    ----------
    spectra : ndarray, shape (K, E), float64
        Non-negative, 1 over the post-edge window.
    energy_weights : ndarray, shape (E,)
        The whitening of each energy the abundances are fitted with.
    n_iter : int
        Alternating rounds made.
    converged : bool
        Whether the last round lowered the misfit by less than the tolerance.
    misfit : float
        Mean squared whitened residual per point at the end (about 1 when the
        spectra explain the sample to its noise).
    seeds : ndarray of int, shape (K,)
        Sample pixels SPA started from.
    info : dict
        For ``explore.json``.
    """

    spectra: np.ndarray
    energy_weights: np.ndarray
    n_iter: int
    converged: bool
    misfit: float
    seeds: np.ndarray
    info: dict


def successive_projection(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` rows of ``x`` that span its cone (SPA).

    Parameters
    ----------
    x : ndarray, shape (P, E)
    k : int

    Returns
    -------
    ndarray of int, shape (k,)

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]])
    >>> sorted(successive_projection(x, 2).tolist())
    [0, 2]
    """
    residual = np.array(x, dtype=np.float64)
    chosen = []
    for _ in range(k):
        j = int(np.argmax(np.einsum("ij,ij->i", residual, residual)))
        chosen.append(j)
        u = residual[j] / (np.linalg.norm(residual[j]) or 1.0)
        residual -= np.outer(residual @ u, u)
    return np.array(chosen)


def _nnls_rows(y, basis):
    """min ||y - w @ basis|| over w >= 0 for every row of y (P, E) with basis (K, E) -> (P, K)."""
    w, _ = fit_fractions(y.T, basis, sum_to_one=False)
    return np.nan_to_num(w.T.astype(np.float64))


def unmix(sample: PixelSample, components: Components, k: int, *, tol: float = NMF_TOL,
          max_iter: int = NMF_MAX_ITER) -> Unmixing:
    """NMF of a sample's normalized spectra into ``k`` spectra (see the module notes).

    Parameters
    ----------
    sample : PixelSample
    components : Components
        Its energy weights set the metric (with the sample's pixel weights).
    k : int
        Number of spectra, 1 to :data:`~xafsmap.core.explore.defaults.MAX_NMF`.
    tol, max_iter : float, int
        Stop when a round lowers the misfit by less than ``tol`` of it, or after
        ``max_iter`` rounds.

    Returns
    -------
    Unmixing

    Examples
    --------
    >>> from xafsmap.core.simulate.sample import make_sample
    >>> from xafsmap.core.explore.sampling import sample_pixels
    >>> from xafsmap.core.explore.components import find_components
    >>> s = make_sample((60, 80), n_grains=16, rng=2)
    >>> found = sample_pixels(s.stack, s.energies)
    >>> nmf = unmix(found, find_components(found), 4)
    >>> nmf.spectra.shape, bool(nmf.spectra.min() >= 0), nmf.converged
    ((4, 141), True, True)
    """
    from .components import biwhiten

    if not 1 <= int(k) <= MAX_NMF:
        raise ValueError(f"{k} NMF components asked for; give 1 to {MAX_NMF}")
    k = int(k)
    y = sample.spectra.T.astype(np.float64)
    a, _ = biwhiten(sample.variance.T)
    w_e = np.asarray(components.energy_weights, dtype=np.float64)
    rows = np.sqrt(a)[:, None]
    target = y * rows * w_e[None, :]
    u, s, vt = np.linalg.svd(target, full_matrices=False)
    denoised = (u[:, :k] * s[:k]) @ vt[:k] / rows
    seeds = successive_projection(denoised, k)
    basis = np.clip(denoised[seeds], 0.0, None) * rows[seeds]  # (K, E) whitened
    previous, converged, misfit, n_iter = np.inf, False, np.inf, 0
    for n_iter in range(1, max_iter + 1):
        weights = _nnls_rows(target, basis)  # (P, K)
        basis = _nnls_rows(target.T, weights.T).T  # (K, E)
        misfit = float(np.mean((target - weights @ basis) ** 2))
        if previous - misfit < tol * misfit:
            converged = True
            break
        previous = misfit
    spectra = basis / w_e[None, :]
    e0, params = sample.params["e0"], sample.params
    post = (sample.energies >= e0 + params.get("norm1", 0.0)) & (sample.energies <= e0 + params.get("norm2", np.inf))
    level = spectra[:, post].mean(axis=1) if post.any() else spectra.max(axis=1)
    spectra = spectra / np.where(level > 0, level, 1.0)[:, None]
    info = {"k": k, "initialisation": "successive projection (SPA) on the rank-K denoised sample",
            "iterations": n_iter, "converged": converged, "tolerance": tol, "misfit_per_point": misfit,
            "seed_pixels": [[int(sample.rows[j]), int(sample.cols[j])] for j in seeds]}
    return Unmixing(spectra=spectra, energy_weights=w_e, n_iter=n_iter, converged=converged, misfit=misfit,
                    seeds=seeds, info=info)


def abundances(spectra: np.ndarray, unmixing: Unmixing) -> np.ndarray:
    """Non-negative amount of each NMF spectrum in normalized spectra (exact NNLS).

    Parameters
    ----------
    spectra : ndarray, shape (E, ...)
        Normalized spectra.
    unmixing : Unmixing

    Returns
    -------
    ndarray, shape (K, ...), float32
        NaN where a spectrum has a non-finite value.

    Examples
    --------
    >>> u = Unmixing(np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]), np.ones(3), 1, True, 1.0, np.zeros(2), {})
    >>> [round(float(v), 3) for v in abundances(np.array([0.3, 1.0, 0.7]), u)]
    [0.3, 0.7]
    """
    spectra = np.asarray(spectra)
    weights = unmixing.energy_weights.astype(np.float32)
    flat = spectra.reshape(spectra.shape[0], -1) * weights[:, None]
    found, _ = fit_fractions(flat, unmixing.spectra * unmixing.energy_weights[None, :], sum_to_one=False)
    return found.reshape(unmixing.spectra.shape[0], *spectra.shape[1:])
