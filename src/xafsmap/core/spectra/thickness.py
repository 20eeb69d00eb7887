"""Too thick to trust: the absorbance above which the references stop explaining the pixels.

Harmonics (lambda/3 from the monochromator) and scattered light reach the detector almost
unabsorbed. A leak of a few % flattens the spectra of thick regions (the white line damped,
the edge step compressed) once the total absorbance passes ~2-3, and such pixels resemble
no reference: they must be flagged as too thick, not searched for a new phase. The leak is
rarely known, so the limit is measured: the surveyed sample pixels are fitted with the
references (weighted, with a free baseline, as the unexplained map fits), and the median
reduced chi-square is followed as their largest absorbance grows. Where it rises above the
thin pixels' level and stays there, and the rise has a leak's shape, the pixels are too
thick. A stated limit (``--thick``) replaces the measured one.

A leak's shape: with a leak ``f`` the measured absorbance is ``-ln((1 - f) exp(-mu) + f)
~ mu - f (exp(mu) - 1)``, and as ``mu`` is the pre-edge plus the edge step times the
normalized spectrum ``n``, the distortion is a power series in ``n``; after the
normalization takes its constant and linear terms, ``n**2`` and ``n**3`` (``n`` the
pixel's fitted spectrum) carry it. Added to the fit, they remove most of a leak's excess
chi-square and almost none of a phase the references lack: a large grain of an
unexplained phase that happens to be the thickest part of a sample (a volume, a few
particles) sets no limit, and stays for the unexplained map to find.
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
#: A distorted bin is a leak's when the leak's columns (``n**2``, ``n**3``) remove at least
#: this share of its excess median reduced chi-square (measured: 0.8-1.0 for a 3 % leak,
#: 0.03-0.05 for magnetite beside Fe, FeO and Fe2O3 references).
LEAK_SHARE = 0.5


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
    leak_chi2 : ndarray
        Each bin's median reduced chi-square with the leak's columns added to the fit
        (unconstrained least squares; near ``chi2`` where the misfit is not a leak's).
    """

    limit: float
    source: str
    absorbance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chi2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    baseline_chi2: float = float("nan")
    leak_chi2: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def describe(self) -> dict:
        """JSON-ready summary for report.json."""
        return {"limit": None if not np.isfinite(self.limit) else round(float(self.limit), 4),
                "source": self.source, "bins_absorbance": np.round(self.absorbance, 4).tolist(),
                "bins_chi2": np.round(self.chi2, 3).tolist(),
                "bins_chi2_with_leak_terms": np.round(self.leak_chi2, 3).tolist(),
                "thin_chi2": None if not np.isfinite(self.baseline_chi2) else round(self.baseline_chi2, 3)}


def measure_thick_limit(norm: np.ndarray, variance: np.ndarray, absorbance_max: np.ndarray, references: np.ndarray,
                        energies: np.ndarray, *, window: tuple[int, int], e0: float) -> ThickLimit:
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
        ``RISE_SIGMAS`` (relative) standard deviations ``sqrt(2 / dof)`` of one pixel's
        and the leak's columns remove at least ``LEAK_SHARE`` of the excess; ``inf``
        when none does, or with fewer than 3 bins of ``BIN_PIXELS``.

    Examples
    --------
    >>> e = np.linspace(7050.0, 7250.0, 201)
    >>> ref = 1 / (1 + np.exp(-(e - 7112.0) / 2.0)) + 0.3 * np.exp(-((e - 7120.0) / 4.0) ** 2)
    >>> a = np.linspace(0.5, 4.0, 600)   # each pixel's largest absorbance
    >>> rng = np.random.default_rng(0)
    >>> mu = 0.2 + (a - 0.2)[None] * ref[:, None] / ref.max()
    >>> seen = -np.log(0.97 * np.exp(-mu) + 0.03)   # a 3 % leak
    >>> y = (seen - seen[:1]) / (seen[-1:] - seen[:1]) + rng.normal(0, 0.01, (201, 600))
    >>> found = measure_thick_limit(y, np.full(y.shape, 1e-4), a, ref[None], e, window=(0, 201), e0=7112.0)
    >>> found.source, round(found.limit, 1)
    ('measured', 2.6)

    The thickest pixels of another phase (a pre-edge peak the reference lacks) set none:

    >>> other = ref[:, None] + (a > 3.0)[None] * 0.1 * np.exp(-((e - 7105.0) / 3.0) ** 2)[:, None]
    >>> other = other + rng.normal(0, 0.01, (201, 600))
    >>> measure_thick_limit(other, np.full(y.shape, 1e-4), a, ref[None], e, window=(0, 201), e0=7112.0).limit
    inf
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
    fitted = np.asarray(references, np.float64)[:, start:stop].T @ fit.fractions
    plain, leaky = _chi2_with_columns(y, 1.0 / var, columns, (fitted**2, fitted**3))
    a = absorbance_max[usable]
    order = np.argsort(a)
    bins = np.array_split(order, n_bins)
    level = np.array([np.median(a[b]) for b in bins])
    median = np.array([np.nanmedian(chi2[b]) for b in bins])
    thin = float(np.median(median[: max(1, n_bins // 2)]))
    high = median > thin * (1 + RISE_SIGMAS * np.sqrt(2.0 / np.median(dof)))
    plain_median = np.array([np.nanmedian(plain[b]) for b in bins])
    leak_median = np.array([np.nanmedian(leaky[b]) for b in bins])
    plain_thin = float(np.median(plain_median[: max(1, n_bins // 2)]))
    leak_shaped = plain_median - leak_median >= LEAK_SHARE * (plain_median - plain_thin)
    distorted = high & leak_shaped
    # the first bin from which every thicker one is distorted (the thinnest half never is)
    tail = np.flatnonzero(~distorted)
    first = int(tail[-1]) + 1 if tail.size else 0
    if first >= n_bins or first < max(1, n_bins // 2):
        return ThickLimit(np.inf, "measured", level, median, thin, leak_median)
    limit = float(a[bins[first]].min())
    return ThickLimit(limit, "measured", level, median, thin, leak_median)


def _chi2_with_columns(y, weight, columns, extra):
    """Reduced chi-square of every pixel's unconstrained weighted fit with the shared
    ``columns`` (M, E), then with its own ``extra`` columns (each (E, P)) added.

    The pseudo-inverse keeps the nearly collinear columns of a pixel that hardly
    differs from the references stable.
    """
    shared = np.broadcast_to(columns.T[:, :, None], (*columns.T.shape, y.shape[1]))
    results = []
    for design in (shared, np.concatenate([shared, np.stack(extra, axis=1)], axis=1)):
        gram = np.einsum("emp,enp,ep->pmn", design, design, weight)
        moment = np.einsum("emp,ep,ep->pm", design, y, weight)
        coef = np.einsum("pmn,pn->pm", np.linalg.pinv(gram, rcond=1e-12, hermitian=True), moment)
        residual = y - np.einsum("emp,pm->ep", design, coef)
        results.append(np.sum(weight * residual**2, axis=0) / max(y.shape[0] - design.shape[1], 1))
    return results
