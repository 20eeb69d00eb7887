"""Too thick to trust: the absorbance above which the references stop explaining the pixels.

Harmonics (lambda/3 from the monochromator) and scattered light reach the detector almost
unabsorbed. A leak of a few % flattens the spectra of thick regions (the white line damped,
the edge step compressed) once the total absorbance passes ~2-3, and such pixels resemble
no reference: they must be flagged as too thick, not searched for a new phase. The leak is
rarely known, so the limit is measured: the surveyed sample pixels are fitted with the
references (weighted, with a free baseline, as the unexplained map fits), and the median
reduced chi-square is followed as their largest absorbance grows. Where it rises above the
thin pixels' level and stays there, the pixels are too thick. A stated limit
(``--thick``) replaces the measured one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .lcf import fit_weighted, weighted_moments
from .sharedfit import BASELINE_TERMS, baseline

__all__ = ["ThickLimit", "measure_thick_limit"]

#: Pixels per absorbance bin of the measurement, and the most bins.
BIN_PIXELS, MAX_BINS = 60, 12
#: A bin is distorted when its median reduced chi-square exceeds the thin pixels' level by
#: this many standard deviations of one pixel's reduced chi-square, sqrt(2 / dof): then
#: about half its pixels would misfit at the unexplained map's detection level.
RISE_SIGMAS = 3.0


@dataclass(frozen=True)
class ThickLimit:
    """The absorbance above which pixels are too thick, and the evidence.

    Attributes
    ----------
    limit : float
        Largest absorbance of a pixel below which the references explain it (``inf``:
        no limit found or stated).
    source : str
        ``"measured"``, ``"stated"`` or ``"none"`` (too few pixels to measure).
    absorbance : ndarray
        Median largest absorbance of each bin of surveyed sample pixels.
    chi2 : ndarray
        Their median reduced chi-square against the references.
    baseline_chi2 : float
        The thin pixels' level it is compared with.
    """

    limit: float
    source: str
    absorbance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chi2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    baseline_chi2: float = float("nan")

    def describe(self) -> dict:
        """JSON-ready summary for report.json."""
        return {"limit": None if not np.isfinite(self.limit) else round(float(self.limit), 4),
                "source": self.source, "bins_absorbance": np.round(self.absorbance, 4).tolist(),
                "bins_chi2": np.round(self.chi2, 3).tolist(),
                "thin_chi2": None if not np.isfinite(self.baseline_chi2) else round(self.baseline_chi2, 3)}


def measure_thick_limit(norm, variance, absorbance_max, references, energies, *, window, e0: float) -> ThickLimit:
    """The largest absorbance at which the references still explain the pixels.

    Parameters
    ----------
    norm, variance : ndarray, shape (E, P)
        Normalized spectra of surveyed sample pixels and the variance of every point
        (edge-step units squared).
    absorbance_max : ndarray, shape (P,)
        Each pixel's largest absorbance over the energies.
    references : ndarray, shape (K, E)
        Normalized references on the same energies.
    energies : ndarray, shape (E,)
    window : (int, int)
        Energy indices of the fit.
    e0 : float

    Returns
    -------
    ThickLimit
        ``limit`` the lower absorbance edge of the first bin from which every thicker
        bin's median reduced chi-square exceeds the thinner half of the bins' median by
        ``RISE_SIGMAS`` (relative) standard deviations ``sqrt(2 / dof)`` of one pixel's;
        ``inf`` when none does, or with fewer than 3 bins of ``BIN_PIXELS``.

    Examples
    --------
    >>> e = np.linspace(7050.0, 7250.0, 201)
    >>> ref = 1 / (1 + np.exp(-(e - 7112.0) / 2.0))
    >>> a = np.linspace(0.5, 4.0, 600)
    >>> rng = np.random.default_rng(0)
    >>> damp = np.clip(a - 2.5, 0, None)[None] * 0.05 * np.exp(-((e - 7118.0) / 4.0) ** 2)[:, None]
    >>> y = ref[:, None] + damp + rng.normal(0, 0.01, (201, 600))
    >>> found = measure_thick_limit(y, np.full(y.shape, 1e-4), a, ref[None], e, window=(0, 201), e0=7112.0)
    >>> found.source, 2.5 <= found.limit < 3.5   # distorted from 2.5, detectably from ~3.3
    ('measured', True)
    """
    norm = np.asarray(norm, dtype=np.float64)
    absorbance_max = np.asarray(absorbance_max, dtype=np.float64)
    usable = np.all(np.isfinite(norm), axis=0) & np.all(np.isfinite(variance), axis=0) & np.isfinite(absorbance_max)
    n_bins = min(MAX_BINS, int(usable.sum()) // BIN_PIXELS)
    if n_bins < 3:
        return ThickLimit(np.inf, "none")
    start, stop = window
    columns = np.vstack([np.asarray(references, np.float64)[:, start:stop], baseline(energies[start:stop], e0)])
    y, var = norm[start:stop, usable], np.asarray(variance, np.float64)[start:stop, usable]
    fit = fit_weighted(*weighted_moments(y, columns, 1.0 / var), n_points=stop - start, sum_to_one=False,
                       free=BASELINE_TERMS)
    dof = np.maximum(stop - start - fit.support.sum(axis=0) - BASELINE_TERMS, 1)
    chi2 = fit.chi2 / dof
    a = absorbance_max[usable]
    order = np.argsort(a)
    bins = np.array_split(order, n_bins)
    level = np.array([np.median(a[b]) for b in bins])
    median = np.array([np.nanmedian(chi2[b]) for b in bins])
    thin = float(np.median(median[: max(1, n_bins // 2)]))
    high = median > thin * (1 + RISE_SIGMAS * np.sqrt(2.0 / np.median(dof)))
    # the first bin from which every thicker one is distorted (the thinnest half never is)
    tail = np.flatnonzero(~high)
    first = int(tail[-1]) + 1 if tail.size else 0
    if first >= n_bins or first < max(1, n_bins // 2):
        return ThickLimit(np.inf, "measured", level, median, thin)
    limit = float(a[bins[first]].min())
    return ThickLimit(limit, "measured", level, median, thin)
