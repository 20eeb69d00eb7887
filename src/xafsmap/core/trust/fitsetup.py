"""What every band of a stack is normalized and fitted with, for the trust maps.

:func:`setup_fit` surveys a stack and puts the references on its energies as the mapping
does; :class:`FitSetup` fits spectra with non-negative mixtures of them plus a free
baseline, each point weighted by its inverse variance; :func:`normalize_band` normalizes
one band of rows and says which pixels are sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..mapping.maps import MASK_INVALID, MASK_SAMPLE
from ..model.standards import prepare_references
from ..model.training import thick_limit
from ..spectra.energyscale import check_energy_scale
from ..spectra.lcf import fit_weighted, weighted_moments
from ..spectra.sharedfit import BASELINE_TERMS, baseline
from ..spectra.mask import edge_jump, edge_mask
from ..spectra.normalize import normalize
from ..spectra.survey import survey

if TYPE_CHECKING:
    from ..io.references import Reference
    from ..io.stack import Stack

__all__ = ["FitSetup", "normalize_band", "setup_fit"]


@dataclass(frozen=True)
class FitSetup:
    """What every band of a stack is normalized and fitted with.

    Attributes
    ----------
    energies : ndarray, shape (E,)
    references : ndarray, shape (K, E)
        Normalized references on the measurement's energies.
    names : tuple of str
    window : (int, int)
        Energy indices ``[start, stop)`` of the fits.
    survey : xafsmap.core.spectra.survey.Survey
        The stack's survey: e0, mask rule, noise model and noise profiles.
    normalization : dict
        The normalization parameters every spectrum shares (Larch names).
    thick : float
        Absorbance above which a pixel is too thick to judge.
    """

    energies: np.ndarray
    references: np.ndarray
    names: tuple
    window: tuple
    survey: object
    normalization: dict
    thick: float = np.inf
    #: Per-reference offsets applied (eV), the common-offset fit when aligned, and the
    #: energy-scale warnings (:func:`~xafsmap.core.spectra.energyscale.check_energy_scale`).
    offsets: tuple = ()
    alignment: dict | None = None
    warnings: tuple = ()

    @property
    def e0(self) -> float:
        return self.survey.e0

    def fit(self, spectra: np.ndarray, variance: np.ndarray,
            references: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Weighted non-negative fit with a free baseline of (window E, n) spectra whose
        points have ``variance`` (window E, n), with these (or other (K, window E)) references.

        Returns
        -------
        weights : ndarray, shape (K, n)
            Non-negative amplitudes (not forced to sum to 1).
        chi2 : ndarray, shape (n,)
            ``sum(r**2 / variance)`` at the optimum.
        """
        start, stop = self.window
        refs = self.references[:, start:stop] if references is None else np.asarray(references)
        columns = np.vstack([refs, baseline(self.energies[start:stop], self.e0)])
        spectra = np.asarray(spectra, dtype=np.float64)
        found = fit_weighted(*weighted_moments(spectra, columns, 1.0 / np.asarray(variance, np.float64)),
                             n_points=stop - start, sum_to_one=False, free=BASELINE_TERMS)
        return found.fractions, found.chi2

    def prepare(self, spectra: np.ndarray) -> np.ndarray:
        """Normalize (E, n) spectra exactly as the measured pixels are."""
        return normalize(spectra, self.energies, **self.normalization).norm


def setup_fit(stack: Stack, references: Sequence[Reference], *, offsets: Sequence[float] | np.ndarray | None = None,
              threshold: float | None = None, significance: float | None = None,
              fit_range: tuple[float, float] = (-30.0, 70.0), thick: float | None = None, e0: float | None = None,
              pre1: float | None = None, pre2: float | None = None, norm1: float | None = None,
              norm2: float | None = None, nnorm: int | None = None, align_references: bool = False) -> FitSetup:
    """Survey a stack and put the references on its energies, as the mapping does.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
    references : sequence of Reference
    offsets : sequence of float, optional
        Energy offset per reference, eV.
    threshold : float, optional
        A manual edge-step cut of the mask; default the significance rule.
    significance : float, optional
        Edge steps this many of their standard deviations above zero are sample.
    fit_range : (float, float)
        Energies relative to the median e0 used by the fits, eV.
    thick : float, optional
        Absorbance above which a pixel is too thick to judge; default measured
        (:func:`~xafsmap.core.model.training.thick_limit`).
    e0, pre1, pre2, norm1, norm2, nnorm : optional
        Normalization parameters with Larch's meaning.
    align_references : bool
        Fit one common energy offset of all references and add it to ``offsets``, as
        :func:`~xafsmap.core.model.training.train_model` does.

    Returns
    -------
    FitSetup
    """
    if not references:
        raise ValueError("at least one reference is needed")
    energies = np.asarray(stack.energies, dtype=np.float64)
    if stack.data.shape[0] != energies.size:
        raise ValueError(f"stack has {stack.data.shape[0]} energies but {energies.size} energies are given")
    given = dict(e0=e0, pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2, nnorm=nnorm)
    params = {name: value for name, value in given.items() if value is not None}
    rule = {} if significance is None else {"significance": significance}
    found = survey(stack.data, energies, threshold=threshold, norm_params=params, **rule)
    params = found.normalization
    inside = np.flatnonzero((energies >= found.e0 + fit_range[0]) & (energies <= found.e0 + fit_range[1]))
    if inside.size < 5 + BASELINE_TERMS:
        raise ValueError(f"only {inside.size} energies lie within {tuple(fit_range)} eV of the edge at {found.e0:.1f} eV")
    window = (int(inside[0]), int(inside[-1]) + 1)
    scale = check_energy_scale(found.spectra, energies, references, norm_params=params, window=window,
                               offsets=offsets, align=align_references, rng=0)
    refs = prepare_references(references, energies, e0=found.e0, offsets=scale.offsets, norm_params=params)
    limit = thick_limit(found, refs, energies, window=window, stated=thick)
    return FitSetup(energies=energies, references=refs, names=tuple(r.name for r in references),
                    window=window, survey=found, normalization=params, thick=limit.limit,
                    offsets=tuple(scale.offsets), alignment=scale.alignment, warnings=scale.warnings)


def normalize_band(band: np.ndarray, setup: FitSetup, *, origin: int = 0) -> dict:
    """Normalize one band (E, m, N) starting at stack row ``origin``.

    Returns
    -------
    dict
        ``norm`` (E, m, N), ``variance`` (E, m, N) of every normalized point (edge-step
        units squared), ``edge_step`` (m, N), ``mask`` (m, N) uint8 (0 no sample, 1
        sample, 2 invalid), ``thick`` (m, N) bool.
    """
    rows, cols = band.shape[1:]
    finite = np.all(np.isfinite(band), axis=0)
    band = np.where(finite, band, 0.0).astype(np.float32)
    result = normalize(band, setup.energies, **setup.normalization)
    model = setup.survey.noise_model
    variance = model.variance(band, model.band_scale(origin, origin + rows, cols))
    jump, jump_sigma = edge_jump(band, variance, setup.energies, setup.e0)
    sample = finite & edge_mask(jump, jump_sigma, significance=setup.survey.significance,
                                threshold=setup.survey.threshold, edge_step=result.edge_step, neighbours=True)
    mask = np.where(finite, sample.astype(np.uint8) * MASK_SAMPLE, MASK_INVALID).astype(np.uint8)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = variance / result.edge_step[None] ** 2
    return dict(norm=result.norm, variance=variance, edge_step=np.where(finite, result.edge_step, np.nan).astype(
        np.float32), mask=mask, thick=finite & (band.max(axis=0) > setup.thick))
