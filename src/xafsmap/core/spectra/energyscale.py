"""Energy scales: do the references sit on the stack's, and the one offset that puts them there.

Reference files 1-6 eV off a new measurement's scale are common (two beamlines, two
monochromator calibrations), and an LCF of shifted references gives a confident, wrong
map. :func:`reference_edges` gives each reference's own edge after its offset;
:func:`fit_common_offset` the one offset of *all* references (Athena's "align to a
common standard") that best explains the stack's normalized sample spectra;
:func:`check_energy_scale` turns both into warnings in the user's terms and, when asked,
the offsets to apply. :func:`~xafsmap.core.model.training.train_model` and
:func:`~xafsmap.core.trust.fitsetup.setup_fit` call it on the survey's sample spectra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .normalize import estimate_noise
from .edge import find_e0
from .offsets import SEARCH, OffsetFit, fit_common_offset, reference_edges

if TYPE_CHECKING:
    from ..io.references import Reference

__all__ = [
    "EDGE_MARGIN",
    "MISFIT_RATIO",
    "OFFSET_WARN",
    "SIGNIFICANT",
    "EnergyScale",
    "check_energy_scale",
    "energy_scale_warnings",
    "format_offset",
]

#: The stack's edge may lie this far outside the span of the references' edges, eV.
EDGE_MARGIN = 2.0
#: A best common offset this large (eV), lowering the total chi-square significantly and
#: the typical (median) pixel's misfit, is reported as a calibration problem ...
OFFSET_WARN, SIGNIFICANT = 1.0, 25.0
#: ... and a median LCF residual this many times the noise as a misfit ("far above the
#: noise": matched data give 0.7-1.0 on synthetic stacks, 1.7-1.9 on the real STXM stack
#: with its own references).
MISFIT_RATIO = 5.0



def format_offset(offset: float, sigma: float) -> str:
    """``'+5.2 ± 0.1 eV'``: one decimal, two where the uncertainty is below 0.05 eV.

    Examples
    --------
    >>> format_offset(5.2301, 0.12), format_offset(-1.9734, 0.004)
    ('+5.2 ± 0.1 eV', '-1.97 ± 0.00 eV')
    """
    digits = 2 if not sigma >= 0.05 else 1
    return f"{offset:+.{digits}f} ± {sigma:.{digits}f} eV"


def energy_scale_warnings(stack_e0: float, edges: ArrayLike, fit: OffsetFit | None, *, aligned: bool = False,
                          margin: float = EDGE_MARGIN) -> tuple[str, ...]:
    """Warnings, in the user's terms, that the references and the stack disagree on energy.

    Parameters
    ----------
    stack_e0 : float
        The stack's edge (Larch's e0 of its mean sample spectrum), eV.
    edges : array_like, shape (K,)
        The references' edges with the offsets applied (:func:`reference_edges`), eV.
    fit : OffsetFit or None
        The common-offset fit, relative to the offsets given.
    aligned : bool
        The fitted offset was applied: then only an offset at the end of the search
        range is worth a warning.
    margin : float
        How far outside the span of ``edges`` the stack's edge may lie, eV.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> energy_scale_warnings(7126.1, [7112.0, 7116.9, 7120.8], None)[0][:60]
    "the stack's edge at 7126.1 eV lies 5.3 eV above every refere"
    """
    edges = np.asarray(edges, dtype=np.float64)
    low, high = float(edges.min()), float(edges.max())
    hint = "pass --align-references to fit one common offset (a check box in References), or --offset NAME=EV"
    out = []
    if stack_e0 > high + margin or stack_e0 < low - margin:
        above = stack_e0 > high
        gap = stack_e0 - high if above else low - stack_e0
        span = f"{low:.1f} eV" if low == high else f"{low:.1f}-{high:.1f} eV"
        out.append(f"the stack's edge at {stack_e0:.1f} eV lies {gap:.1f} eV {'above' if above else 'below'} "
                   f"every reference's edge ({span}): the references may be on another energy scale (or the sample "
                   f"holds a phase whose edge lies beyond theirs); {hint}")
    if fit is None:
        return tuple(out)
    found = format_offset(fit.offset, fit.sigma)
    if aligned:
        if fit.at_limit:
            out.append(f"the common offset found ({found}) lies at the end of the search range "
                       f"{fit.search[0]:g} to {fit.search[1]:g} eV: the references may be further off, or this "
                       "is not the right edge; check them with --offset NAME=EV")
        return tuple(out)
    if abs(fit.offset) >= OFFSET_WARN and fit.gain > SIGNIFICANT and fit.ratio_best < fit.ratio_given:
        still = (f"; even shifted the residual stays {fit.ratio_best:.1f} times the noise: a phase may also be "
                 "missing" if fit.ratio_best > MISFIT_RATIO else "")
        out.append(f"the references fit the stack best shifted by {found} (median LCF residual "
                   f"{fit.ratio_given:.1f} times the noise as given, {fit.ratio_best:.1f} times shifted{still}): "
                   f"{hint}")
    elif fit.ratio_given > MISFIT_RATIO:
        out.append(f"the median LCF residual of the sample pixels is {fit.ratio_given:.1f} times their noise and "
                   f"no common energy offset explains it (best {found}): a phase may be missing from the "
                   "references, or they were measured differently (xafsmap search-references finds where)")
    return tuple(out)


@dataclass(frozen=True)
class EnergyScale:
    """What :func:`check_energy_scale` decides for a map.

    Attributes
    ----------
    offsets : list of float
        Per-reference offsets to apply, eV (the given ones, plus the common offset
        when aligning).
    stack_edge : float
        Larch's e0 of the mean of the sample spectra, eV.
    edges : ndarray, shape (K,)
        The references' own edges with ``offsets`` (:func:`reference_edges`), eV.
    fit : OffsetFit or None
        The common-offset fit (None where no spectrum had a usable noise level and no
        alignment was asked for).
    alignment : dict or None
        ``fit.record()`` when aligned (report.json ``parameters.alignment``).
    warnings : tuple of str
    """

    offsets: list
    stack_edge: float
    edges: np.ndarray
    fit: OffsetFit | None
    alignment: dict | None
    warnings: tuple


def check_energy_scale(spectra: np.ndarray, energies: np.ndarray, references: Sequence[Reference], *, norm_params: dict,
                       window: tuple[int, int], offsets: Sequence[float] | np.ndarray | None = None,
                       align: bool = False, search: tuple[float, float] = SEARCH,
                       rng: int | np.random.Generator | None = None) -> EnergyScale:
    """Check (and with ``align`` correct) the references' energy scale against the stack's.

    Parameters
    ----------
    spectra : ndarray, shape (E, P)
        Normalized sample spectra of the stack (the survey's), no NaN.
    energies : ndarray, shape (E,)
    references : sequence of Reference
    norm_params : dict
        The stack's normalization (with its scalar ``e0``).
    window : (int, int)
        Energy indices ``[start, stop)`` of the fits.
    offsets : sequence of float, optional
        Per-reference offsets given by the user, eV.
    align : bool
        Add the fitted common offset to every reference's offset.
    search : (float, float)
        Offsets searched, eV.
    rng : int or Generator, optional
        Seed of the bootstrap.

    Returns
    -------
    EnergyScale

    Raises
    ------
    ValueError
        With ``align``, if no spectrum has a finite noise level.

    Notes
    -----
    The stack's edge is Larch's e0 of the mean sample spectrum: the pixels' own e0 jump
    between Fe metal's two near-equal derivative peaks from 2 % noise on (their median:
    7111 -> 7118.5 eV), the mean's does not. Warns (:func:`energy_scale_warnings`) when
    that edge lies over :data:`EDGE_MARGIN` eV outside the references' own edges, when
    the best common offset is :data:`OFFSET_WARN` eV or more, significant
    (:data:`SIGNIFICANT`) and better for the median pixel, or when the median LCF residual is over :data:`MISFIT_RATIO`
    times the noise and no offset explains it.

    Examples
    --------
    >>> from xafsmap.core.io.references import Reference
    >>> from xafsmap.core.spectra.offsets import shifted_references
    >>> e = np.linspace(7050.0, 7250.0, 201)
    >>> ref = Reference("a", e, 1 / (1 + np.exp(-(e - 7112.0) / 2.0)), "x")
    >>> low = Reference("a", e - 5.0, ref.mu, "x")  # measured 5 eV low
    >>> spectra = shifted_references([ref], e, [0.0], norm_params={"e0": 7112.0})[0].T
    >>> spectra = spectra + np.random.default_rng(1).normal(0, 0.01, (201, 50))
    >>> out = check_energy_scale(spectra, e, [low], norm_params={"e0": 7112.0}, window=(30, 150))
    >>> out.warnings[0][:52]
    "the stack's edge at 7112.0 eV lies 5.0 eV above ever"
    >>> aligned = check_energy_scale(spectra, e, [low], norm_params={"e0": 7112.0}, window=(30, 150), align=True)
    >>> round(aligned.offsets[0], 1), aligned.warnings
    (5.0, ())
    """
    spectra = np.asarray(spectra, dtype=np.float64)
    given = np.zeros(len(references)) if offsets is None else np.asarray(offsets, dtype=np.float64)
    noise = estimate_noise(spectra, energies, e0=norm_params["e0"])
    fit = None
    if align or np.isfinite(noise).any():  # a stack without a noise estimate is only checked by its edge
        fit = fit_common_offset(spectra, energies, references, norm_params=norm_params, window=window,
                                offsets=given, noise=noise, search=search, rng=rng)
    applied = given + fit.offset if align else given
    edges = reference_edges(references, offsets=applied)
    stack_edge = float(find_e0(spectra.mean(axis=1), energies))
    warnings = energy_scale_warnings(stack_edge, edges, fit, aligned=align)
    return EnergyScale(offsets=[float(v) for v in applied], stack_edge=stack_edge, edges=edges, fit=fit,
                       alignment=fit.record() if align else None, warnings=warnings)
