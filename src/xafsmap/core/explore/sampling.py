"""The pixels exploration learns from: the survey's regular grid, normalized, with the noise of every point.

Components, clusters and NMF spectra are learned on a sample of the stack's pixels and
then applied to every pixel band by band (:mod:`xafsmap.core.explore.pipeline`). The
sample is the survey's own grid (:func:`~xafsmap.core.training.survey`), so the one
sparse read that gives the stack its e0, normalization, noise model and mask rule also
gives the spectra (the second read of the same pixels comes from the page cache). Only
the pixels with an edge (the mask of ``xafsmap map``) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..spectra.mask import SIGNIFICANCE, edge_jump, edge_mask
from ..spectra.noise import NoiseModel
from ..spectra.normalize import normalize
from ..spectra.survey import SURVEY_ASPECT, SURVEY_PIXELS, Survey, survey
from .calibration import calibrated_indices, resample_spectra

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["PixelSample", "sample_grid", "sample_pixels"]


@dataclass(frozen=True, eq=False)
class PixelSample:
    """Normalized spectra of the sample pixels of a regular grid, and their noise.

    Attributes
    ----------
    spectra : ndarray, shape (E, P), float32
        Normalized spectra (Larch ``flat``, the survey's shared e0 and windows).
    variance : ndarray, shape (E, P), float32
        Variance of every point from the stack's noise model, edge-step units.
    rows, cols : ndarray of int, shape (P,)
        Pixel coordinates in the stack.
    edge_step : ndarray, shape (P,), float32
    energies : ndarray, shape (E,), float64
    params : dict
        The normalization's resolved parameters (``pre1`` ... ``nnorm``) and ``e0``.
    survey : xafsmap.core.training.Survey
    n_read : int
        Finite pixels read (sample or not).
    energy_index : ndarray of int, shape (E,)
        Indices of ``energies`` in the stack's own (nominal) energies: all of them, or
        with a shift map those every pixel covers (:mod:`~xafsmap.core.explore.calibration`).
    nominal_energies : ndarray, shape (E0,)
        The stack's own energies.
    stride : int
        Energies this far apart have independent noise (2 for resampled spectra).
    noise : xafsmap.core.noise.NoiseModel
        The survey's noise model on ``energies`` (for bands resampled the same way).
    """

    spectra: np.ndarray
    variance: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    edge_step: np.ndarray
    energies: np.ndarray
    params: dict
    survey: Survey
    n_read: int
    energy_index: np.ndarray
    nominal_energies: np.ndarray
    stride: int
    noise: NoiseModel

    @property
    def n_pixels(self) -> int:
        return int(self.spectra.shape[1])


def sample_grid(shape: tuple[int, int], n_pixels: int = SURVEY_PIXELS) -> tuple[slice, slice]:
    """Row and column slices of the survey's regular grid of about ``n_pixels`` pixels.

    :data:`~xafsmap.core.training.SURVEY_ASPECT` times sparser in rows than in columns:
    a file is read a row of a page at a time, so fewer rows cost fewer reads.

    Examples
    --------
    >>> sample_grid((4000, 1700))
    (slice(36, None, 73), slice(2, None, 4))
    >>> sample_grid((48, 64))
    (slice(0, None, 1), slice(0, None, 1))
    """
    rows, cols = shape
    stride = np.sqrt(rows * cols / n_pixels)
    row_stride = max(1, int(stride * np.sqrt(SURVEY_ASPECT)))
    col_stride = max(1, int(stride / np.sqrt(SURVEY_ASPECT)))
    return slice(row_stride // 2, None, row_stride), slice(col_stride // 2, None, col_stride)


def sample_pixels(data: np.ndarray | da.Array, energies: np.ndarray, *, threshold: float | None = None,
                  significance: float = SIGNIFICANCE, norm_params: dict | None = None, n_pixels: int = SURVEY_PIXELS,
                  shift: np.ndarray | None = None) -> PixelSample:
    """Survey a stack and keep the normalized spectra of the grid's sample pixels.

    Parameters
    ----------
    data : array_like, shape (E, M, N)
        Absorbance (numpy or dask: only the grid is read).
    energies : ndarray, shape (E,)
        eV.
    threshold, significance, norm_params
        The mask rule and normalization, as :func:`~xafsmap.core.training.survey`.
    n_pixels : int
        About this many pixels are read (:func:`sample_grid`).
    shift : ndarray, shape (M, N), optional
        Energy shift of every pixel (true = nominal + shift): the noise model and the
        mask come from the measured spectra, the spectra are then resampled onto the
        true energies every pixel covers with their variance
        (:mod:`~xafsmap.core.explore.calibration`).

    Returns
    -------
    PixelSample

    Raises
    ------
    ValueError
        If no surveyed pixel is finite or has an edge (the survey's messages), or fewer
        than 10 pixels of the grid hold sample.

    Examples
    --------
    >>> from xafsmap.core.simulate.sample import make_sample
    >>> s = make_sample((40, 48), n_grains=8, rng=1)
    >>> found = sample_pixels(s.stack, s.energies)
    >>> found.spectra.shape[0] == s.energies.size, 0.5 < found.n_pixels / found.n_read < 1.0
    (True, True)
    """
    energies = np.asarray(energies, dtype=np.float64)
    found = survey(data, energies, threshold=threshold, significance=significance, norm_params=norm_params,
                   n_pixels=n_pixels)
    row_slice, col_slice = sample_grid(data.shape[1:], n_pixels)
    block = np.asarray(data[:, row_slice, col_slice], dtype=np.float32)
    rows, cols = np.meshgrid(np.arange(data.shape[1])[row_slice], np.arange(data.shape[2])[col_slice],
                             indexing="ij")
    flat = block.reshape(energies.size, -1)
    finite = np.all(np.isfinite(flat), axis=0)
    flat, rows, cols = flat[:, finite], rows.ravel()[finite], cols.ravel()[finite]
    model = found.noise_model
    variance = model.variance(flat, model.scale(rows, cols))
    result = normalize(flat, energies, **found.normalization)
    step = np.asarray(result.edge_step, dtype=np.float32)
    jump, sigma = edge_jump(flat, variance, energies, found.e0)
    keep = edge_mask(jump, sigma, significance=found.significance, threshold=found.threshold, edge_step=step)
    keep &= np.isfinite(step) & (step > 0)
    if np.count_nonzero(keep) < 10:
        raise ValueError(f"only {np.count_nonzero(keep)} of the {flat.shape[1]} surveyed pixels hold sample; "
                         "exploring needs at least 10: crop to the sample or lower the significance")
    index, stride = np.arange(energies.size), 1
    if shift is not None:
        index, stride = calibrated_indices(energies, shift), 2
        flat, variance = resample_spectra(flat, variance, energies, np.asarray(shift)[rows, cols], index)
        result = normalize(flat, energies[index], **found.normalization)
        step = np.asarray(result.edge_step, dtype=np.float32)
        keep &= np.isfinite(step) & (step > 0)
        model = replace(model, energy_profile=model.energy_profile[index])
    return PixelSample(
        spectra=np.ascontiguousarray(result.norm[:, keep], dtype=np.float32),
        variance=(variance[:, keep] / step[keep] ** 2).astype(np.float32),
        rows=rows[keep], cols=cols[keep], edge_step=step[keep], energies=energies[index],
        params={**result.params, "e0": float(found.e0)}, survey=found, n_read=int(flat.shape[1]),
        energy_index=index, nominal_energies=energies, stride=stride, noise=model)
