"""Aligning foil spectra to a reference edge: the per-bin shift the energy calibration fits.

Every binned spectrum is fitted as ``a + b*E + c*ref(E + shift)`` over a grid of shifts
(:func:`align_shifts`, two matrix products for all bins), refined by a parabola with its
variance (:func:`best_shift`); :func:`edge_e0` and :func:`edge_scale` give a rough edge
and step of a spectrum for finding holes and the window.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .resample import APPLY_BLOCK

__all__ = ["MIN_R2", "MIN_STEP_FRACTION", "SEARCH_HALF_WIDTH", "SEARCH_STEP", "align_shifts", "best_shift",
           "clean_reference", "edge_e0", "edge_scale", "pre_post_masks"]


#: candidate shifts of the grid search (eV); a minimum on either end is rejected.
SEARCH_HALF_WIDTH = 5.0


SEARCH_STEP = 0.1


#: a binned pixel whose edge step is below this fraction of the field's 90th
#: percentile step is a hole (no foil) and gets NaN.
MIN_STEP_FRACTION = 0.1


#: a bin whose best edge fit explains less of its variance than this is unreliable.
MIN_R2 = 0.5


def edge_e0(energies: np.ndarray, mu: np.ndarray) -> float:
    """Energy of the maximum of the (lightly smoothed) derivative of one spectrum."""
    d = np.gradient(mu, energies)
    if d.size >= 5:
        d = np.convolve(d, np.ones(3) / 3.0, mode="same")
    return float(energies[int(np.nanargmax(d))])


def pre_post_masks(energies: np.ndarray, e0: float) -> tuple[np.ndarray, np.ndarray]:
    """Pre-edge (<= e0-10 eV) and post-edge (e0+20 .. e0+150 eV) points, at least 3 each."""
    pre = energies <= e0 - 10.0
    post = (energies >= e0 + 20.0) & (energies <= e0 + 150.0)
    if pre.sum() < 1:
        pre = np.zeros(energies.size, bool)
        pre[: min(3, energies.size)] = True
    if post.sum() < 1:
        post = np.zeros(energies.size, bool)
        post[-min(3, energies.size):] = True
    return pre, post


def edge_scale(energies: np.ndarray, spectra: np.ndarray, e0: float) -> tuple[np.ndarray, np.ndarray]:
    """Pre-edge mean and edge step of spectra (E, P): a simple flat normalization.

    Kept local (not :mod:`xafsmap.core.spectra.normalize`) because only the step size and a
    rough scale are needed here; the alignment itself fits offset, slope and scale.
    """
    pre, post = pre_post_masks(energies, e0)
    pre_mean = spectra[pre].mean(axis=0)
    step = spectra[post].mean(axis=0) - pre_mean
    return pre_mean, step


def align_shifts(
    energies: np.ndarray,
    spectra: np.ndarray,
    ref_e: np.ndarray,
    ref_mu: np.ndarray,
    window: tuple[float, float],
    e0: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Shift (eV) and its variance for every column of spectra (E, P) against one reference.

    Each spectrum is fitted in the window as ``a + b*E + c*ref(E + shift)`` with ``c > 0``;
    for a candidate shift the best (a, b, c) is a linear projection, so the sum of
    squared residuals of all pixels for all candidates is two matrix products.
    """
    from scipy.interpolate import CubicSpline

    cand = np.arange(-SEARCH_HALF_WIDTH, SEARCH_HALF_WIDTH + SEARCH_STEP / 2, SEARCH_STEP)
    lo = max(e0 + window[0], ref_e[0] + SEARCH_HALF_WIDTH)
    hi = min(e0 + window[1], ref_e[-1] - SEARCH_HALF_WIDTH)
    sel = (energies >= lo) & (energies <= hi)
    if sel.sum() < 8:
        raise ValueError(
            f"only {int(sel.sum())} energies lie in the fitting window {lo:.1f}..{hi:.1f} eV"
            f" (e0={e0:.1f} eV, reference covers {ref_e[0]:.1f}..{ref_e[-1]:.1f} eV); need >= 8"
        )
    e_w = energies[sel]
    m = spectra[sel]  # (W, P)
    basis = np.stack([np.ones_like(e_w), (e_w - e_w.mean()) / max(np.ptp(e_w), 1e-12)], axis=1)
    q, _ = np.linalg.qr(basis)
    m_perp = m - q @ (q.T @ m)
    ref = CubicSpline(ref_e, ref_mu)(e_w[None, :] + cand[:, None])  # (S, W)
    r_perp = ref - (ref @ q) @ q.T
    rr = np.einsum("sw,sw->s", r_perp, r_perp)
    blocks = [
        best_shift(m_perp[:, k : k + APPLY_BLOCK], r_perp, rr, cand, e_w.size)
        for k in range(0, m_perp.shape[1], APPLY_BLOCK)
    ]
    if not blocks:
        return np.empty(0), np.empty(0)
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


def best_shift(m_perp: np.ndarray, r_perp: np.ndarray, rr: np.ndarray, cand: np.ndarray,
               n_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid minimum of the misfit over candidate shifts, refined by a parabola, per column."""
    mm = np.einsum("wp,wp->p", m_perp, m_perp)
    mr = m_perp.T @ r_perp.T  # (P, S)
    with np.errstate(invalid="ignore", divide="ignore"):
        sse = mm[:, None] - np.where(mr > 0, mr, 0.0) ** 2 / rr[None, :]
    k = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    inner = (k > 0) & (k < cand.size - 1)
    kk = np.clip(k, 1, cand.size - 2)
    rows = np.arange(sse.shape[0])
    y0, y1, y2 = sse[rows, kk - 1], sse[rows, kk], sse[rows, kk + 1]
    curv = y0 - 2.0 * y1 + y2
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = 0.5 * (y0 - y2) / curv
        shift = cand[kk] + delta * SEARCH_STEP
        # var(shift) = 2 sigma^2 / SSE''; dof: offset, slope, scale, shift
        sigma2 = np.maximum(y1, 0.0) / max(n_w - 4, 1)
        var = 2.0 * sigma2 / (curv / SEARCH_STEP**2)
        r2 = 1.0 - y1 / mm  # share of the window's variance the shifted edge explains
    ok = inner & np.isfinite(shift) & (curv > 0) & (np.abs(delta) <= 1.0) & (r2 > MIN_R2)
    return np.where(ok, shift, np.nan), np.where(ok, var, np.nan)


def clean_reference(reference: ArrayLike, reference_energies: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(reference, dtype=np.float64).ravel()
    if reference_energies is None:
        raise ValueError("reference is given but reference_energies is None")
    e = np.asarray(reference_energies, dtype=np.float64).ravel()
    if e.size != mu.size:
        raise ValueError(
            f"reference has {mu.size} points but reference_energies has {e.size}"
        )
    ok = np.isfinite(e) & np.isfinite(mu)
    e, mu = e[ok], mu[ok]
    order = np.argsort(e)
    e, mu = e[order], mu[order]
    if e.size < 8 or np.any(np.diff(e) <= 0):
        raise ValueError(
            f"reference needs >= 8 finite points on strictly increasing energies, got {e.size}"
        )
    return e, mu
