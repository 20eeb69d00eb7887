"""Linear-combination fitting (LCF) of every pixel with non-negative fractions.

Athena's LCF fits a spectrum as a weighted sum of standards with weights >= 0 that
(by default) sum to 1. Here the same fit runs on all pixels at once: for a handful of
references the exact non-negative least-squares solution is found by solving the
unconstrained problem on every subset of references (one matrix product per subset)
and keeping, per pixel, the best subset whose weights are all non-negative. That is
exact, because the NNLS optimum is the unconstrained optimum on its own support.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["WeightedFit", "fit_fractions", "fit_weighted", "fractions_from_moments", "spectrum_moments",
           "weighted_moments"]

#: Above this many references the subset search (2**K - 1 subsets) gives way to
#: scipy's active-set NNLS, one pixel at a time.
MAX_SUBSET_REFERENCES = 8


def fit_fractions(spectra: ArrayLike, references: ArrayLike, *, sum_to_one: bool = True, weight: float = 10.0,
                  allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative linear-combination fractions of references for every spectrum.

    Parameters
    ----------
    spectra : ndarray, shape (E, ...)
        Normalized spectra (energy first); pixels with non-finite values give NaN.
    references : ndarray, shape (K, E)
        Normalized reference spectra on the same energies.
    sum_to_one : bool
        Constrain the fractions to sum to 1 (Athena's default), enforced as an extra
        equation ``weight * sum(w) = weight`` appended to each fit; otherwise the
        weights are free non-negative amplitudes.
    weight : float
        Weight of the sum-to-one equation relative to one energy point.
    allowed : ndarray of bool, shape (K, ...), optional
        Which references each spectrum may use (e.g. those of the classes a
        classifier found likely); default all.

    Returns
    -------
    fractions : ndarray, shape (K, ...), float32
        Non-negative fractions.
    residual : ndarray, shape (...), float32
        Root-mean-square misfit per energy point, in units of the edge step.

    Notes
    -----
    Equivalent to Athena's / Larch's LCF with all weights >= 0 and (optionally)
    ``sum_to_one``, without an energy shift per standard.

    Examples
    --------
    >>> refs = np.array([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    >>> w, r = fit_fractions(0.3 * refs[0] + 0.7 * refs[1], refs)
    >>> [round(float(v), 3) for v in w], float(r) < 1e-6
    ([0.3, 0.7], True)
    """
    spectra = np.asarray(spectra)
    references = np.asarray(references, dtype=np.float64)
    k, n_energies = references.shape
    if spectra.shape[0] != n_energies:
        raise ValueError(f"spectra have {spectra.shape[0]} energies but the references have {n_energies}")
    shape = spectra.shape[1:]
    y = spectra.reshape(n_energies, -1)
    if not np.issubdtype(y.dtype, np.floating):
        y = y.astype(np.float64)
    good = np.all(np.isfinite(y), axis=0)
    if not good.all():
        y = np.where(good, y, 0)
    aty, yy = spectrum_moments(y, references)
    if allowed is not None:
        allowed = np.asarray(allowed, bool).reshape(k, -1)
    if k > MAX_SUBSET_REFERENCES and allowed is None:
        w = _nnls_loop(references, y, sum_to_one=sum_to_one, weight=weight)
        residual = _rms_misfit(w, aty, yy, references)
    else:
        w, residual = fractions_from_moments(aty, yy, references, sum_to_one=sum_to_one, weight=weight,
                                             allowed=allowed)
    w[:, ~good] = np.nan
    residual[~good] = np.nan
    return w.astype(np.float32).reshape(k, *shape), residual.astype(np.float32).reshape(shape)


def spectrum_moments(spectra: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The moments ``R y`` (K, P) and ``y . y`` (P,) of spectra (E, P), float64.

    Everything an exact NNLS fit needs of a spectrum: the (E, P) spectra are read once,
    by one matrix product in their own precision, and the fit works on K x P numbers.
    """
    references = np.asarray(references, dtype=np.float64)
    aty = (references.astype(spectra.dtype) @ spectra).astype(np.float64)
    return aty, np.einsum("ij,ij->j", spectra, spectra, dtype=np.float64)


def fractions_from_moments(aty: np.ndarray, yy: np.ndarray, references: np.ndarray, *, sum_to_one: bool = True,
                           weight: float = 10.0, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_fractions` from each spectrum's moments ``R y`` and ``y . y``.

    The exact NNLS needs nothing else of a spectrum, so a caller that streams pixels
    (the fused band kernel) accumulates the moments without keeping the spectra.

    Parameters
    ----------
    aty : ndarray, shape (K, P)
        ``references @ y`` per spectrum.
    yy : ndarray, shape (P,)
        ``y @ y`` per spectrum.
    references : ndarray, shape (K, E)
    sum_to_one, weight, allowed
        As :func:`fit_fractions` (``allowed`` shape (K, P)).

    Returns
    -------
    fractions : ndarray, shape (K, P), float64
    residual : ndarray, shape (P,), float64
        Root-mean-square misfit per energy point.

    Examples
    --------
    >>> refs = np.array([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    >>> y = (0.3 * refs[0] + 0.7 * refs[1])[:, None]
    >>> w, r = fractions_from_moments(refs @ y, np.sum(y * y, axis=0), refs)
    >>> [round(float(v), 3) for v in w[:, 0]]
    [0.3, 0.7]
    """
    references = np.asarray(references, dtype=np.float64)
    k = references.shape[0]
    aty = np.asarray(aty, dtype=np.float64).reshape(k, -1)
    yy = np.asarray(yy, dtype=np.float64).reshape(-1)
    if k > MAX_SUBSET_REFERENCES:
        raise ValueError(f"a restricted or moment-based fit supports at most {MAX_SUBSET_REFERENCES} "
                         f"references, got {k}")
    gram = references @ references.T
    if sum_to_one:  # the extra equation weight * sum(w) = weight
        w = _nnls_subsets(gram + weight**2, aty + weight**2, yy + weight**2, allowed)
    else:
        w = _nnls_subsets(gram, aty, yy, allowed)
    return w, _rms_misfit(w, aty, yy, references)


def _rms_misfit(w, aty, yy, references):
    # ||y - R^T w||^2 = y.y - 2 w.(R y) + w.(R R^T) w
    misfit2 = yy - 2 * np.einsum("ij,ij->j", w, aty) + np.einsum("ij,ij->j", w, (references @ references.T) @ w)
    return np.sqrt(np.clip(misfit2, 0, None) / references.shape[1])


def subset_solvers(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every non-empty subset of the K references and its least-squares solver.

    Parameters
    ----------
    gram : ndarray, shape (K, K)
        Normal-equation matrix (``R R^T``, plus the sum-to-one term).

    Returns
    -------
    members : ndarray of bool, shape (S, K)
        Subsets by size, each size in :func:`itertools.combinations` order.
    solvers : ndarray, shape (S, K, K)
        ``pinv(gram[S, S])`` placed in a K x K zero matrix: ``solvers[s] @ (R y)`` is the
        unconstrained optimum on subset s (0 outside it).
    """
    k = gram.shape[0]
    subsets = [list(c) for size in range(1, k + 1) for c in itertools.combinations(range(k), size)]
    members = np.zeros((len(subsets), k), bool)
    solvers = np.zeros((len(subsets), k, k))
    for s, rows in enumerate(subsets):
        members[s, rows] = True
        solvers[s][np.ix_(rows, rows)] = np.linalg.pinv(gram[np.ix_(rows, rows)])
    return members, solvers


def _nnls_subsets(gram: np.ndarray, aty: np.ndarray, yy: np.ndarray, allowed=None) -> np.ndarray:
    """Best non-negative least-squares solution over all subsets, from normal equations."""
    members, solvers = subset_solvers(gram)
    best_w = np.zeros(aty.shape)
    best_cost = np.full(aty.shape[1], np.inf)
    for inside, solver in zip(members, solvers):
        w = solver @ aty
        cost = yy - np.einsum("ij,ij->j", w, aty)  # at the least-squares optimum
        feasible = np.all(w[inside] >= 0, axis=0)
        if allowed is not None:
            feasible &= np.all(allowed[inside], axis=0)
        better = np.flatnonzero(feasible & (cost < best_cost))
        best_cost[better] = cost[better]
        best_w[:, better] = w[:, better]
    return best_w


def _nnls_loop(references: np.ndarray, y: np.ndarray, *, sum_to_one: bool, weight: float) -> np.ndarray:
    from scipy.optimize import nnls

    a = references.T
    if sum_to_one:
        a = np.vstack([a, np.full((1, a.shape[1]), weight)])
    columns = (np.append(column, weight) if sum_to_one else column for column in y.T.astype(np.float64))
    return np.stack([nnls(a, column)[0] for column in columns], axis=1)


def weighted_moments(spectra: np.ndarray, references: np.ndarray,
                     weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a weighted LCF needs of each spectrum: ``R W R^T``, ``R W y`` and ``y W y``.

    Parameters
    ----------
    spectra : ndarray, shape (E, P)
    references : ndarray, shape (K, E)
    weights : ndarray, shape (E, P)
        Inverse variance of every point (``1 / sigma**2``; 0 leaves a point out).

    Returns
    -------
    gram : ndarray, shape (P, K, K), float64
    aty : ndarray, shape (K, P), float64
    yy : ndarray, shape (P,), float64
    """
    references = np.asarray(references, dtype=np.float64)
    y = np.asarray(spectra, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    wy = w * y
    gram = np.einsum("ke,ep,le->pkl", references, w, references)
    return gram, references @ wy, np.einsum("ep,ep->p", wy, y)


@dataclass(frozen=True)
class WeightedFit:
    """Result of :func:`fit_weighted`, every array over P pixels.

    ``fractions`` (K, P) non-negative (summing to 1 with ``sum_to_one``); ``chi2`` (P,) the
    weighted misfit ``(y - R^T f)^T W (y - R^T f)``; ``sigma`` (K, P) the 1-sigma
    uncertainty of each fraction (see :func:`fit_weighted`); ``support`` (K, P) bool,
    the references with a free (non-zero) fraction.
    """

    fractions: np.ndarray
    chi2: np.ndarray
    sigma: np.ndarray
    support: np.ndarray


def fit_weighted(gram: np.ndarray, aty: np.ndarray, yy: np.ndarray, *, n_points: int, allowed: np.ndarray | None = None,
                 sum_to_one: bool = True, free: int = 0) -> WeightedFit:
    """Exact non-negative weighted least squares of every pixel, with its uncertainties.

    Parameters
    ----------
    gram, aty, yy : ndarray, shapes (P, K, K), (K, P), (P,)
        :func:`weighted_moments` of each pixel (each pixel has its own weights).
    n_points : int
        Energies in the fit (for the reduced chi-square).
    allowed : ndarray of bool, shape (K - free, P), optional
        References each pixel may use; default all.
    sum_to_one : bool
        Fractions of the references sum to exactly 1 (an equality constraint, Athena's
        default).
    free : int
        The last ``free`` of the K columns are nuisance terms (e.g. a baseline) that
        every fit includes, with either sign and outside the sum.

    Returns
    -------
    WeightedFit
        Over the K - free references (the nuisance coefficients are not returned).

    Notes
    -----
    The non-negative optimum is the unconstrained optimum on its own support, so every
    subset S of the allowed references is solved (``G_S u = b_S``; with sum-to-one also
    ``G_S v = 1`` and ``f = u + v (1 - sum u) / sum v``) and the best feasible one kept.
    The covariance of the fractions on S is ``G_S^-1`` (with sum-to-one ``G_S^-1 - v
    v^T / sum v``), multiplied by the reduced chi-square where that exceeds 1 (a misfit
    beyond the noise widens the uncertainty). A reference outside S gets the sigma it
    would have if it were added to S: how much of it the data could hide; and with
    sum-to-one the one reference of a pure pixel (whose fraction is exactly 1 on its own
    support) gets the largest of its sigmas with another reference added. Singular
    subsets (two identical references) are skipped.

    Examples
    --------
    >>> refs = np.array([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    >>> y = (0.3 * refs[0] + 0.7 * refs[1])[:, None]
    >>> fit = fit_weighted(*weighted_moments(y, refs, np.full((4, 1), 100.0)), n_points=4)
    >>> np.round(fit.fractions[:, 0], 3).tolist(), float(fit.chi2[0]) < 1e-9
    ([0.3, 0.7], True)
    """
    gram = np.asarray(gram, dtype=np.float64)
    aty = np.asarray(aty, dtype=np.float64)
    yy = np.asarray(yy, dtype=np.float64)
    n, total = gram.shape[0], gram.shape[1]
    k = total - free
    if k > MAX_SUBSET_REFERENCES:
        raise ValueError(f"a weighted fit supports at most {MAX_SUBSET_REFERENCES} references, got {k}")
    allowed = np.ones((k, n), bool) if allowed is None else np.asarray(allowed, bool).reshape(k, n)
    nuisance = list(range(k, total))
    best_w = np.zeros((k, n))
    best_cost = np.full(n, np.inf)
    best_subset = np.full(n, -1)
    subsets = [list(c) for size in range(0 if free and not sum_to_one else 1, k + 1)
               for c in itertools.combinations(range(k), size)]
    for s, rows in enumerate(subsets):
        ok = np.all(allowed[rows], axis=0) if rows else np.ones(n, bool)
        if not ok.any():
            continue
        cols = rows + nuisance
        w, cost = _solve_subset(gram[ok][:, cols][:, :, cols], aty[cols][:, ok], yy[ok], sum_to_one, len(rows))
        feasible = np.all(w[: len(rows)] >= 0, axis=0) & np.isfinite(cost)
        index = np.flatnonzero(ok)[feasible]
        better = cost[feasible] < best_cost[index]
        index = index[better]
        best_cost[index] = cost[feasible][better]
        best_subset[index] = s
        best_w[:, index] = 0.0
        best_w[np.ix_(rows, index)] = w[: len(rows), feasible][:, better]
    chi2 = np.where(np.isfinite(best_cost), np.maximum(best_cost, 0.0), np.nan)
    support = np.zeros((k, n), bool)
    sigma = np.full((k, n), np.nan)
    for s, rows in enumerate(subsets):
        pick = np.flatnonzero(best_subset == s)
        if not pick.size:
            continue
        support[np.ix_(rows, pick)] = True
        cols = rows + nuisance
        if rows:
            sigma[np.ix_(rows, pick)] = _subset_sigma(gram[pick][:, cols][:, :, cols], sum_to_one, len(rows))
        for extra in sorted(set(range(k)) - set(rows)):  # how much of an absent reference could hide
            wider = sorted([*rows, extra])
            cols = wider + nuisance
            spread = _subset_sigma(gram[pick][:, cols][:, :, cols], sum_to_one, len(wider))
            sigma[extra, pick] = spread[wider.index(extra)]
            if len(rows) == 1 and sum_to_one:  # a pure pixel's fraction is as uncertain as what could hide
                sigma[rows[0], pick] = np.fmax(sigma[rows[0], pick], spread[wider.index(rows[0])])
    dof = np.maximum(n_points - support.sum(axis=0) - free + int(sum_to_one), 1)
    sigma *= np.sqrt(np.maximum(chi2 / dof, 1.0))
    best_w[:, best_subset < 0] = np.nan
    return WeightedFit(fractions=best_w, chi2=chi2, sigma=sigma, support=support)


def _solve_subset(gram, aty, yy, sum_to_one, constrained):
    """Unconstrained (or sum-to-one over the first ``constrained`` columns) optimum on one
    subset for many pixels: (S, P) and cost (infinite where the subset matrix is singular)."""
    with np.errstate(all="ignore"):
        try:
            u = _optimum(gram, aty, sum_to_one, constrained)
        except np.linalg.LinAlgError:  # rare: a batch holding a singular system, pixel by pixel
            u = np.full(aty.shape[::-1], np.nan)
            for i in range(gram.shape[0]):
                try:
                    u[i] = _optimum(gram[i : i + 1], aty[:, i : i + 1], sum_to_one, constrained)[0]
                except np.linalg.LinAlgError:
                    continue
        cost = yy - 2 * np.einsum("ps,sp->p", u, aty) + np.einsum("ps,pst,pt->p", u, gram, u)
    return u.T, np.where(np.isfinite(cost), cost, np.inf)


def _optimum(gram, aty, sum_to_one, constrained):
    u = np.linalg.solve(gram, aty.T[..., None])[..., 0]
    if sum_to_one and constrained:
        ones = np.zeros(aty.shape[::-1])
        ones[:, :constrained] = 1.0
        v = np.linalg.solve(gram, ones[..., None])[..., 0]
        shortfall = 1 - u[:, :constrained].sum(axis=1)
        u = u + v * (shortfall / v[:, :constrained].sum(axis=1))[:, None]
    return u


def _subset_sigma(gram, sum_to_one, constrained):
    """Standard deviations (S, P) of the first ``constrained`` coefficients of a subset
    from the inverse Gram matrix (the others are free nuisance terms)."""
    with np.errstate(all="ignore"):
        try:
            inverse = np.linalg.inv(gram)
        except np.linalg.LinAlgError:
            return np.full((constrained, gram.shape[0]), np.nan)
        variance = np.einsum("pss->ps", inverse)[:, :constrained]
        if sum_to_one:
            v = inverse[:, :, :constrained].sum(axis=2)[:, :constrained]
            variance = variance - v**2 / v.sum(axis=1, keepdims=True)
    return np.sqrt(np.maximum(variance, 0.0)).T
