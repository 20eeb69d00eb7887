"""A simulated measurement: its raw data, how it was taken, its truth and what follows.

:class:`Measurement` is what :func:`~xafsmap.core.simulate.generator.simulate_measurement`
returns. Beside the raw data (counts, flat, dark) it derives, from the truth, what no
real measurement tells: the noise-free signal, the true noise of every point
(:meth:`Measurement.sigma`) and the limits it sets: the Cramér-Rao bound
of the fractions (:meth:`Measurement.fraction_crlb`) and the power of an ideal test for
the phase left out of the references (:meth:`Measurement.detection_power`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ..io.stack import IN_MEMORY, Stack
from ..spectra.lcf import fit_fractions
from ..spectra.edge import find_e0
from ..spectra.normalize import normalize
from .truth import Truth

__all__ = ["MATRIX_ENERGY", "Measurement", "detection_power", "fraction_crlb"]

#: Energy (eV) at which the matrix absorbance is stated; it falls as E**-3 from there.
MATRIX_ENERGY = 7112.0


@dataclass(frozen=True, eq=False)
class Measurement:
    """A simulated measurement: raw data, how it was taken, and the truth.

    Attributes
    ----------
    mode : str
        ``"transmission"`` or ``"fluorescence"``.
    counts : ndarray, shape (E, M, N)
        Transmission: transmitted counts I including the dark current (uint16, or
        uint32 above 65535). Fluorescence: counts (float32).
    flat : ndarray, shape (E, M, N), float32, or None
        Flat (incident beam) F including the dark current, the average of
        ``flat_frames`` frames.
    dark : ndarray, shape (M, N), float32, or None
        Dark image D, the average of ``dark_frames`` frames.
    energies : ndarray, shape (E,)
        The stack's energies, eV.
    references : list of Reference
        What the user is given: the bundled standards of ``truth.references``, their
        energies shifted by ``-offset``.
    truth : Truth
    spectra : ndarray, shape (P, E), float64
        Normalized spectrum of every phase of ``truth.phases`` on ``energies``.
    matrix : ndarray, shape (M, N), float32
        Matrix absorbance at :data:`MATRIX_ENERGY` (0 in holes).
    illumination : ndarray, shape (M, N), float32
        Beam profile, 1 at its maximum (ones in fluorescence).
    beam : ndarray, shape (E,), float64
        Incident spectrum, mean 1 (ones in fluorescence).
    background : ndarray, shape (M, N), float32
        Fluorescence background at :data:`MATRIX_ENERGY` as a share of ``dose``
        (zeros in transmission).
    dark_level : ndarray, shape (M, N), float32
        Mean dark counts per frame (zeros in fluorescence).
    dose : float
        Transmission: flat counts per pixel per energy at the illumination maximum
        (times ``beam``). Fluorescence: counts of the edge jump of an edge step of 1.
    leak, offset : float
        Harmonic leak fraction; energy offset of the stack over the references, eV.
    flat_frames, dark_frames : int
    params : dict
        Every option of :func:`~xafsmap.core.simulate.generator.simulate_measurement`, for the record.
    """

    mode: str
    counts: np.ndarray | None
    flat: np.ndarray | None
    dark: np.ndarray | None
    energies: np.ndarray
    references: list
    truth: Truth
    spectra: np.ndarray
    matrix: np.ndarray
    illumination: np.ndarray
    beam: np.ndarray
    background: np.ndarray
    dark_level: np.ndarray
    dose: float
    leak: float = 0.0
    offset: float = 0.0
    flat_frames: int = 1
    dark_frames: int = 1
    params: dict = field(default_factory=dict)

    def _edge_absorbance(self) -> np.ndarray:
        fe = np.einsum("pe,pmn->emn", self.spectra, self.truth.fractions.astype(np.float64))
        return self.truth.edge_step[None].astype(np.float64) * fe

    def true_absorbance(self) -> np.ndarray:
        """(E, M, N) float32: the sample's total mu*t (leak-free, noise-free)."""
        decay = (self.energies / MATRIX_ENERGY) ** -3.0
        return (self.matrix[None] * decay[:, None, None] + self._edge_absorbance()).astype(np.float32)

    def flat_mean(self) -> np.ndarray:
        """(E, M, N) float64: the true incident counts F0 per pixel and energy (no dark)."""
        return self.dose * self.beam[:, None, None] * self.illumination[None].astype(np.float64)

    def mean_counts(self) -> np.ndarray:
        """(E, M, N) float64: the true mean of the recorded signal, without dark current.

        Transmission ``F0 ((1 - leak) exp(-mu_t) + leak)``; fluorescence
        ``dose (edge part of mu_t + background (E / 7112 eV)**2)``.
        """
        if self.mode == "fluorescence":
            rise = (self.energies / MATRIX_ENERGY)[:, None, None] ** 2
            return self.dose * (self._edge_absorbance() + self.background[None] * rise)
        mu = self.true_absorbance().astype(np.float64)
        return self.flat_mean() * ((1 - self.leak) * np.exp(-mu) + self.leak)

    def expected(self) -> np.ndarray:
        """(E, M, N) float32: the noise-free signal a user maps.

        Transmission: ``-ln((1 - leak) exp(-mu_t) + leak)``; fluorescence: mean counts.
        """
        if self.mode == "fluorescence":
            return self.mean_counts().astype(np.float32)
        return (-np.log(self.mean_counts() / self.flat_mean())).astype(np.float32)

    def absorbance(self) -> np.ndarray:
        """(E, M, N) float32: ``-ln((I - D) / (F - D))``, NaN where I - D or F - D <= 0.

        The same float32 arithmetic as :func:`~xafsmap.core.io.rawstack.absorbance_from_transmission`,
        so the files of :func:`~xafsmap.core.simulate.generator.write_measurement` read back to the same numbers.

        Raises
        ------
        ValueError
            For a fluorescence measurement (counts, not absorbance: use :meth:`stack`).
        """
        if self.mode != "transmission":
            raise ValueError("a fluorescence measurement holds counts, not absorbance: use .stack()")
        counts = self.counts.astype(np.float32) - self.dark
        flat = self.flat - self.dark
        with np.errstate(divide="ignore", invalid="ignore"):
            od = -np.log(counts / flat)
        return np.where((counts > 0) & (flat > 0), od, np.float32(np.nan)).astype(np.float32)

    def sigma(self) -> np.ndarray:
        """(E, M, N) float32: the standard deviation of the mapped signal, from the true means.

        Transmission, to first order in the counts (S = I - D and R = F - D their true
        means, D0 the dark per frame, n and m the flat and dark frames)::

            var(A) = (S + D0) / S**2 + (R + D0) / (n R**2) + (D0 / m) (1/S - 1/R)**2

        which is ``1/S + 1/(n R)`` without dark current. Fluorescence: ``sqrt(counts)``.
        """
        s = self.mean_counts()
        if self.mode == "fluorescence":
            return np.sqrt(s).astype(np.float32)
        r = self.flat_mean()
        d0 = self.dark_level.astype(np.float64)[None]
        var = (s + d0) / s**2 + (r + d0) / (self.flat_frames * r**2) + d0 / self.dark_frames * (1 / s - 1 / r) ** 2
        return np.sqrt(var).astype(np.float32)

    def fraction_crlb(self) -> np.ndarray:
        """(K, M, N): Cramér-Rao bound of the reference fractions' 1-sigma (unconstrained
        fit, true noise; :func:`fraction_crlb`) on the pixels made only of references;
        NaN elsewhere."""
        sample = self.truth.known
        known = [self.truth.phases.index(name) for name in self.truth.references]
        step = self.truth.edge_step * (self.dose if self.mode == "fluorescence" else 1.0)
        out = np.full((len(known), *sample.shape), np.nan)
        out[:, sample] = fraction_crlb(self.spectra[known], step[sample],
                                        self.truth.reference_fractions[:, sample], self.sigma()[:, sample])
        return out

    def stack(self) -> Stack:
        """The stack a user maps: absorbance (transmission) or counts (fluorescence)."""
        data = self.absorbance() if self.mode == "transmission" else self.counts
        return Stack(data, self.energies, {"stack": IN_MEMORY})


    def detection_power(self, *, false_alarm: float = 1e-3, pool: int = 1,
                        fit_range: tuple[float, float] = (-30.0, 70.0)) -> np.ndarray:
        """(M, N): power of an ideal per-pixel test for a misfit, on the sample pixels.

        The noise-free spectrum's misfit to its best non-negative mixture of the
        references (on the stack's own energy scale: alignment assumed done), over
        ``fit_range`` eV around e0, in units of the true noise, is the noncentrality
        of :func:`detection_power`. About ``false_alarm`` on known
        pixels; on a left-out phase the ceiling of any unexplained map. Approximate: an
        unweighted fit of normalized spectra, the normalization taken as exact. NaN
        off the sample.
        """
        sample = self.truth.sample
        expected = self.expected()[:, sample].astype(np.float64)
        e0 = float(find_e0(expected.mean(axis=1), self.energies))
        norm = normalize(expected, self.energies, e0=e0)
        known = [self.truth.phases.index(name) for name in self.truth.references]
        refs = normalize(self.spectra[known].T, self.energies, e0=e0).norm.T
        fractions, _ = fit_fractions(norm.norm, refs, sum_to_one=False)
        window = (self.energies >= e0 + fit_range[0]) & (self.energies <= e0 + fit_range[1])
        residual = (norm.norm - refs.T @ fractions)[window] * norm.edge_step
        noncentrality = ((residual / self.sigma()[:, sample][window]) ** 2).sum(axis=0)
        out = np.full(sample.shape, np.nan)
        dof = int(window.sum()) - len(known) - 1
        out[sample] = detection_power(noncentrality, dof, false_alarm=false_alarm, pool=pool)
        return out


def detection_power(noncentrality: ArrayLike, dof: int, *, false_alarm: float = 1e-3, pool: int = 1) -> np.ndarray:
    """Power of an ideal chi-square test for a misfit: the ceiling of any unexplained map.

    A spectrum whose noise-free misfit to the best mixture of the references is
    ``noncentrality = sum((residual / sigma)**2)`` (true sigma) gives, with Gaussian noise,
    ``chi2 ~ noncentral chi-square(dof, noncentrality)``; flagging ``chi2`` above the
    ``1 - false_alarm`` quantile of the central one finds it with this probability.

    Parameters
    ----------
    noncentrality : ndarray
        Per pixel, in units of the noise (0 for a spectrum the references explain).
    dof : int
        Degrees of freedom of the misfit (energies fitted minus parameters).
    false_alarm : float
    pool : int
        Evidence of ``pool x pool`` alike pixels pooled (noncentrality and dof times pool**2).

    Returns
    -------
    ndarray, same shape, float64

    Examples
    --------
    >>> p = detection_power(np.array([0.0, 30.0, 200.0]), 100)
    >>> [round(float(v), 3) for v in p]
    [0.001, 0.14, 1.0]
    """
    from scipy.stats import chi2, ncx2

    n = pool * pool
    critical = chi2.isf(false_alarm, dof * n)
    return ncx2.sf(critical, dof * n, n * np.asarray(noncentrality, dtype=np.float64))


def fraction_crlb(spectra: np.ndarray, edge_step: np.ndarray, fractions: np.ndarray, sigma: np.ndarray, *,
                  nuisance: np.ndarray | None = None) -> np.ndarray:
    """Cramér-Rao bound of the fractions' 1-sigma: no unbiased, unconstrained estimate does better.

    The model of a pixel's signal is ``edge_step * sum_k f_k spectra_k(E)`` (fractions
    summing to 1) plus free amplitudes of the ``nuisance`` shapes (the pre-edge line a
    normalization removes), with independent Gaussian noise ``sigma(E)``. The inverse
    Fisher information of ``(nuisance amplitudes, edge_step, f_1 .. f_K-1)`` gives the
    variance of every fraction (``f_K = 1 - sum`` of the others): the covariance a
    weighted LCF states, and its RMSE, where the references explain the pixel. Fits
    constrained to non-negative fractions of a few phases can do better on pure and
    binary pixels (the bound of their active set is smaller).

    Parameters
    ----------
    spectra : ndarray, shape (K, E)
        Normalized reference spectra (K >= 2) on the measurement's energies.
    edge_step : ndarray, shape (...)
        True edge step per pixel, in the signal's units.
    fractions : ndarray, shape (K, ...)
        True fractions (they enter through the edge-step derivative).
    sigma : ndarray, shape (E, ...)
        True noise of the signal.
    nuisance : ndarray, shape (B, E), optional
        Shapes with free amplitudes; default a constant and a line in energy index.

    Returns
    -------
    ndarray, shape (K, ...), float64
        NaN where the edge step or the fractions are all 0 (no information).

    Examples
    --------
    >>> spectra = np.array([[0, 0, 1, 1, 1, 1.0], [0, 0, 0, 0, 1, 1.0]])
    >>> bound = fraction_crlb(spectra, np.array(2.0), np.array([0.5, 0.5]), np.full(6, 0.1))
    >>> [round(float(v), 4) for v in bound]
    [0.0433, 0.0433]
    """
    spectra = np.asarray(spectra, dtype=np.float64)
    k, n_e = spectra.shape
    shape = np.shape(edge_step)
    step = np.asarray(edge_step, dtype=np.float64).reshape(-1)
    f = np.asarray(fractions, dtype=np.float64).reshape(k, -1)
    weight = 1.0 / np.asarray(sigma, dtype=np.float64).reshape(n_e, -1) ** 2
    if nuisance is None:
        nuisance = np.vstack([np.ones(n_e), np.linspace(-1.0, 1.0, n_e)])
    nuisance = np.asarray(nuisance, dtype=np.float64)
    # design (pixels, E, B + 1 + K - 1): nuisance shapes, d/d step, d/d f_i (f_K = 1 - sum)
    columns = [np.broadcast_to(b[None], (step.size, n_e)) for b in nuisance]
    columns.append((spectra.T @ f).T)
    columns += [step[:, None] * (spectra[i] - spectra[-1])[None] for i in range(k - 1)]
    design = np.stack(columns, axis=-1)
    fisher = np.einsum("peb,pe,pec->pbc", design, weight.T, design)
    out = np.full((k, step.size), np.nan)
    ok = (step > 0) & (f.sum(axis=0) > 0)
    cov = np.linalg.inv(fisher[ok])[:, -(k - 1):, -(k - 1):]
    out[:-1, ok] = np.sqrt(np.diagonal(cov, axis1=1, axis2=2)).T
    out[-1, ok] = np.sqrt(cov.sum(axis=(1, 2)))
    return out.reshape((k, *shape))
