"""The survey: what a sparse grid of pixels says about a whole stack.

:func:`survey` reads a regular subgrid of about 20 000 pixels (all energies) and learns
from them the stack's noise model (:mod:`~xafsmap.core.spectra.noise`), its edge energy
e0, the normalization every spectrum shares (with :func:`~xafsmap.core.spectra.preedge.pre_edge_rule`'s
pre-edge window), which pixels hold sample (:mod:`~xafsmap.core.spectra.mask`) and how
noisy they are; training, the energy-scale check and the trust maps start from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..prepare.grid import subgrid
from .edge import find_e0
from .mask import SIGNIFICANCE, edge_jump, edge_mask
from .noise import NoiseModel, fit_noise_model
from .normalize import normalize
from .preedge import pre_edge_rule

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["E0_PIXELS", "KEPT_SPECTRA", "NOISE_PIXELS", "SURVEY_ASPECT", "SURVEY_PIXELS", "Survey", "survey"]

#: Pixels read for the survey that sets the mask threshold, e0 and noise level; how
#: many of its sample pixels vote for the stack's e0, and how many give noise levels
#: (the training spectra draw theirs from them).
SURVEY_PIXELS = 20_000
E0_PIXELS = 1_000
NOISE_PIXELS = 5_000
SURVEY_ASPECT = 16
#: Normalized sample spectra the survey keeps (energy-scale checks and alignment).
KEPT_SPECTRA = 2_000

@dataclass(frozen=True)
class Survey:
    """What a sparse sample of pixels says about the whole stack.

    Attributes
    ----------
    e0 : float
        Median edge energy of the sample pixels, eV.
    threshold : float or None
        The manual edge-step cut of the mask, or None for the significance rule.
    significance : float
        Edge steps this many standard deviations above zero are sample.
    noise : ndarray, shape (P,)
        Median noise (edge-step units) of each surveyed sample pixel's points.
    profiles : ndarray, shape (P, E), float32
        Noise of every point (edge-step units) of surveyed sample pixels: what the
        training spectra draw their noise from, energy by energy.
    noise_model : xafsmap.core.spectra.noise.NoiseModel
        The variance of every point of the stack.
    n_pixels : int
        Finite pixels surveyed.
    sample_share : float
        Share of them that are sample.
    normalization : dict
        The normalization parameters every spectrum of the stack shares.
    """

    e0: float
    threshold: float | None
    significance: float
    noise: np.ndarray
    profiles: np.ndarray
    noise_model: NoiseModel
    n_pixels: int
    sample_share: float
    normalization: dict = field(default_factory=dict)
    #: (E, <= KEPT_SPECTRA) float32 normalized spectra of sample pixels, evenly spread,
    #: the variance of their points (edge-step units squared) and their largest absorbance.
    spectra: np.ndarray | None = None
    spectra_variance: np.ndarray | None = None
    spectra_max: np.ndarray | None = None
    #: Which pre-edge rule chose the windows, and why (:func:`pre_edge_rule`).
    rule: dict = field(default_factory=dict)


def survey(data: np.ndarray | da.Array, energies: np.ndarray, *, threshold: float | None = None,
           significance: float = SIGNIFICANCE, norm_params: dict | None = None, n_pixels: int = SURVEY_PIXELS,
           pre_edge: bool = True) -> Survey:
    """Normalize a regular grid of about ``n_pixels`` pixels to learn the stack's levels.

    Parameters
    ----------
    data : array_like, shape (E, M, N)
        The stack (numpy or dask: only the sampled pixels are read).
    energies : ndarray, shape (E,)
    threshold : float, optional
        A manual edge-step cut for the mask; default the significance rule
        (:func:`~xafsmap.core.spectra.mask.edge_mask`).
    significance : float
        Edge steps this many of their standard deviations above zero are sample.
    norm_params : dict, optional
        Keyword arguments for :func:`~xafsmap.core.spectra.normalize.normalize`.
    pre_edge : bool
        Use :func:`pre_edge_rule` unless ``pre1``/``pre2`` are given; False keeps
        Larch's default windows.

    Returns
    -------
    Survey
        The noise model (:func:`~xafsmap.core.spectra.noise.fit_noise_model`, from every finite
        surveyed pixel, holes included), the median e0 of the sample pixels, the
        normalization parameters every spectrum of the stack shares (``e0`` and the
        :func:`pre_edge_rule`'s window unless given) and that rule, the mask rule, the
        noise of the sample pixels under that normalization and up to
        ``KEPT_SPECTRA`` of their normalized spectra.
    """
    _, rows, cols = data.shape
    # A regular grid, SURVEY_ASPECT times sparser in rows than in columns: a file is
    # read a row of a page at a time, so fewer rows cost fewer reads for the same pixels
    grid = subgrid((rows, cols), n_pixels, aspect=SURVEY_ASPECT)
    sample = grid.read(data)
    grid_rows, grid_cols = np.meshgrid(grid.rows, grid.cols, indexing="ij")
    flat = sample.reshape(sample.shape[0], -1)
    finite = np.all(np.isfinite(flat), axis=0)
    flat, grid_rows, grid_cols = flat[:, finite], grid_rows.ravel()[finite], grid_cols.ravel()[finite]
    if flat.shape[1] == 0:
        raise ValueError("every surveyed pixel has a NaN or infinite value: the stack holds no usable spectrum")
    given = dict(norm_params or {})
    # The mean spectrum's e0 windows a first shared normalization that finds the sample
    # pixels; the stack's e0 is then the median of Larch's e0 over up to E0_PIXELS of
    # them. One e0 for every spectrum (as Athena users set one for a data set): with
    # shared fit windows, normalizing a mixture equals mixing normalized references, so
    # fractions carry no bias from per-pixel windows. e0 per pixel is still mapped.
    first = given.get("e0", float(find_e0(flat.mean(axis=1), energies)))
    model = fit_noise_model(flat, energies, e0=first, rows=grid_rows, cols=grid_cols)
    variance = model.variance(flat, model.scale(grid_rows, grid_cols))
    result = normalize(flat, energies, **{**given, "e0": first})
    is_sample = _sample_pixels(flat, result, energies, variance, threshold, significance)
    if "e0" in given:
        e0 = float(given["e0"])
    else:
        e0 = float(np.median(find_e0(flat[:, _spread(np.flatnonzero(is_sample), E0_PIXELS)], energies)))
    window, rule = _pre_edge_choice(result, variance, _spread(np.flatnonzero(is_sample), E0_PIXELS), energies,
                                    e0=e0, pre_edge=pre_edge, given=given)
    final = {**window, **given, "e0": e0}
    result = normalize(flat, energies, **final)
    is_sample = _sample_pixels(flat, result, energies, variance, threshold, significance)
    pick = _spread(np.flatnonzero(is_sample), NOISE_PIXELS)
    profiles = (np.sqrt(variance[:, pick]) / np.abs(result.edge_step[pick])).T.astype(np.float32)
    where = np.flatnonzero(is_sample & (result.edge_step > 0))  # an inverted edge is no spectrum to fit
    kept = where[np.linspace(0, where.size - 1, min(where.size, KEPT_SPECTRA)).astype(int)]
    return Survey(e0=e0, threshold=threshold, significance=float(significance),
                  noise=np.median(profiles, axis=1), profiles=profiles, noise_model=model,
                  n_pixels=int(flat.shape[1]), sample_share=float(is_sample.mean()), normalization=final,
                  spectra=result.norm[:, kept].astype(np.float32),
                  spectra_variance=(variance[:, kept] / result.edge_step[kept] ** 2).astype(np.float32),
                  spectra_max=flat[:, kept].max(axis=0), rule=rule)


def _pre_edge_choice(result, variance, pick, energies, *, e0, pre_edge, given):
    """The survey's pre-edge window and rule, from the noise (edge steps) of the sample pixels
    ``pick`` under the first normalization ``result``."""
    if "pre1" in given or "pre2" in given:
        return {}, {"rule": "given", "why": "pre1/pre2 were given"}
    if not pre_edge:
        return {}, {"rule": "larch-default", "why": "pre_edge=False"}
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = np.median(np.sqrt(variance[:, pick]) / np.abs(result.edge_step[pick]), axis=0)
    noise = float(np.median(noise[np.isfinite(noise)])) if np.isfinite(noise).any() else None
    return pre_edge_rule(energies, e0, noise=noise)


def _spread(indices, n):
    """About ``n`` of ``indices``, evenly spread."""
    return indices[:: max(1, indices.size // n)]


def _sample_pixels(flat, result, energies, variance, threshold, significance):
    step = result.edge_step
    if np.count_nonzero(np.isfinite(step) & (step > 0)) < 2:
        raise ValueError("no pixel has an edge step above 0: is this the right edge, and is it absorbance?")
    jump, sigma = edge_jump(flat, variance, energies, float(np.median(result.e0)))
    is_sample = edge_mask(jump, sigma, significance=significance, threshold=threshold, edge_step=step)
    falling = np.count_nonzero(jump < -significance * sigma)
    if falling > max(np.count_nonzero(is_sample), 10):
        raise ValueError(f"the absorbance falls across the edge in {100 * falling / jump.size:.0f} % of the surveyed "
                         "pixels: is the stack transmission rather than absorbance? give --flat (or --i0) to "
                         "take -ln(I/I0)")
    if not np.any(is_sample):
        rule = (f"an edge step above {threshold:.3g}" if threshold is not None else
                f"an edge {significance:g} times its noise")
        raise ValueError(f"no surveyed pixel has {rule}: is this the right edge?")
    return is_sample


