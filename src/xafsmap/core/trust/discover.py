"""Reference discovery: which library spectrum best explains an unexplained region.

For the mean spectrum of a region (see :mod:`xafsmap.core.trust.unexplained`) every library
candidate is normalized and put on the measurement's energies as the references are,
at a few energy offsets, and added to the current references; its score is how much
it reduces the region's misfit (the same baseline-free non-negative fit). Its own
similarity to the region (correlation of the derivatives over the fit window) is
reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..spectra.normalize import normalize
from ..model.standards import resample_reference

if TYPE_CHECKING:
    from ..io.references import Reference
    from .fitsetup import FitSetup

__all__ = ["Candidates", "prepare_candidates", "rank_candidates"]

#: Energy offsets tried for every candidate, eV.
OFFSETS = tuple(np.arange(-2.0, 2.01, 0.5))


@dataclass(frozen=True)
class Candidates:
    """Library spectra ready to fit: (C, S, E) normalized at S offsets each.

    ``skipped`` lists ``(name, reason)`` of the library spectra that could not be used.
    """

    names: tuple
    spectra: np.ndarray
    offsets: np.ndarray
    skipped: list


def prepare_candidates(library: Sequence[Reference], setup: FitSetup, *,
                       offsets: Sequence[float] | np.ndarray = OFFSETS,
                       edge_region: tuple[float, float] = (-20.0, 40.0)) -> Candidates:
    """Normalize library spectra and resample them onto the measurement, per offset.

    Parameters
    ----------
    library : sequence of Reference
    setup : xafsmap.core.trust.fitsetup.FitSetup
        Energies, e0 and normalization of the measurement.
    offsets : sequence of float
        Energy offsets to try, eV (added to each candidate's energies).
    edge_region : (float, float)
        Part of the measurement, relative to e0, a candidate must cover at every
        offset; others are skipped with the reason.

    Returns
    -------
    Candidates
    """
    energies, e0 = setup.energies, setup.e0
    lo, hi = max(e0 + edge_region[0], energies[0]), min(e0 + edge_region[1], energies[-1])
    offsets = np.asarray(offsets, dtype=np.float64)
    names, rows, skipped = [], [], []
    for ref in library:
        try:
            own = normalize(ref.mu, ref.energies).norm
            if not np.all(np.isfinite(own)):
                raise ValueError(f"reference {ref.name!r} does not normalize (non-finite values)")
            rows.append([resample_reference(ref, energies, offset=dx, mu=own, require=(lo, hi)) for dx in offsets])
            names.append(ref.name)
        except ValueError as err:
            skipped.append((ref.name, str(err)))
    if not rows:
        return Candidates((), np.zeros((0, offsets.size, energies.size)), offsets, skipped)
    flat = np.array(rows).reshape(-1, energies.size).T
    spectra = setup.prepare(flat).T.reshape(len(names), offsets.size, energies.size)
    return Candidates(tuple(names), spectra, offsets, skipped)


def _derivative_correlation(a: np.ndarray, b: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Pearson correlation of d/dE of a (E,) with each row of b (..., E)."""
    da = np.gradient(a, energies)
    db = np.gradient(b, energies, axis=-1)
    da = da - da.mean()
    db = db - db.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (db @ da) / np.sqrt((db**2).sum(axis=-1) * (da**2).sum())


def rank_candidates(spectra: np.ndarray, setup: FitSetup, candidates: Candidates,
                    variance: np.ndarray) -> list[list[dict]]:
    """Rank candidates by how much adding each to the references improves a fit.

    Parameters
    ----------
    spectra : ndarray, shape (R, E) or (E,)
        Mean normalized spectra of R regions on the measurement's energies.
    setup : xafsmap.core.trust.fitsetup.FitSetup
        The current references and fit window.
    candidates : Candidates
    variance : ndarray, same shape as ``spectra``
        Variance of every point of the mean spectra (the fits weigh by its inverse).

    Returns
    -------
    list (one per region) of list of dict
        Best first; each ``name``, ``score`` (fraction of the current misfit removed,
        ``1 - RSS_with / RSS_without``, 0…1), ``offset`` (eV, the best of the
        tried offsets), ``weight`` (the candidate's share of the fitted amplitudes),
        ``similarity`` (correlation of the derivatives of the region and of the
        candidate alone over the fit window, -1…1) and ``rss`` (the weighted misfit
        with it). Ties in score are broken by similarity.

    Notes
    -----
    The improvement is the primary score because a region is often a mixture of a
    new phase and the known ones; the candidate that looks most like the region on
    its own need not be the one that completes the fit. The candidate's offset is the
    one of ``candidates.offsets`` that fits best (alignment on a 0.5 eV grid).
    """
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    start, stop = setup.window
    energies = setup.energies[start:stop]
    y = spectra[:, start:stop].T
    var = np.atleast_2d(np.asarray(variance, dtype=np.float64))[:, start:stop].T
    _, base = setup.fit(y, var)
    n_cand, n_off, _ = candidates.spectra.shape
    k, n_regions = setup.references.shape[0], spectra.shape[0]
    rss = np.full((n_cand, n_off, n_regions), np.inf)
    share = np.zeros((n_cand, n_off, n_regions))
    for c in range(n_cand):  # a loop over library spectra (tens), not pixels
        for s in range(n_off):
            w, rss[c, s] = setup.fit(y, var, np.vstack([setup.references, candidates.spectra[c, s]])[:, start:stop])
            total = w.sum(axis=0)
            share[c, s] = np.divide(w[k], total, out=np.zeros(n_regions), where=total > 0)
    tables = []
    for r in range(n_regions):
        best = np.argmin(rss[:, :, r], axis=1)
        pick = np.arange(n_cand)
        fitted = rss[pick, best, r]
        score = np.clip(1.0 - fitted / base[r], 0.0, 1.0) if base[r] > 0 else np.zeros(n_cand)
        similarity = _derivative_correlation(y[:, r], candidates.spectra[pick, best, start:stop], energies)
        order = np.lexsort((-np.nan_to_num(similarity, nan=-2.0), -score))
        tables.append([
            dict(name=candidates.names[i], score=float(score[i]), offset=float(candidates.offsets[best[i]]),
                 weight=float(share[i, best[i], r]), similarity=float(similarity[i]), rss=float(fitted[i]))
            for i in order
        ])
    return tables
