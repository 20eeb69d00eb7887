"""The spectrum of one pixel or block of a measurement, prepared as the whole stack is.

The Inspect dock shows the spectrum under the mouse; reading it must not read bands of a
multi-GB stack, and it must equal the prepared stack's pixel: the drift corrected from
the pixels around the block (:func:`~xafsmap.core.prepare.drift.correct_drift`), the
energy calibration applied with the block's shift and the energies every pixel keeps
(:func:`~xafsmap.core.prepare.steps.calibrated_energies`), then normalized.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..io.pixel import read_pixel_spectrum
from ..io.stack import Stack
from ..prepare.drift import correct_drift
from ..prepare.resample import apply_shift
from ..prepare.steps import calibrated_energies
from .normalize import normalize

__all__ = ["BlockSpectrum", "block_spectrum"]


@dataclass(frozen=True)
class BlockSpectrum:
    """The mean spectrum of a block of pixels.

    Attributes
    ----------
    energies : ndarray, shape (E',)
        Its energies, eV (the calibrated stack's, with an energy calibration).
    mu : ndarray, shape (E',)
        Absorbance, NaN where every pixel of the block is.
    norm : ndarray, shape (E',) or None
        Normalized (the given normalization), None when ``mu`` is not finite everywhere.
    """

    energies: np.ndarray
    mu: np.ndarray
    norm: np.ndarray | None


def block_spectrum(stack: Stack, rows: slice, cols: slice, *, normalization: dict | None = None,
                   drift: np.ndarray | None = None, shift: np.ndarray | None = None) -> BlockSpectrum:
    """Mean spectrum of the measurement's pixels ``rows, cols`` (all energies), prepared and normalized.

    Parameters
    ----------
    stack : Stack
        The measurement as opened (not cropped or binned).
    rows, cols : slice
        The block, in the measurement's pixels (a map pixel's block:
        :func:`~xafsmap.core.prepare.grid.pixel_block`).
    normalization : dict, optional
        Larch-named parameters of :func:`~xafsmap.core.spectra.normalize.normalize`.
    drift : ndarray, shape (E, 2), optional
        Correct the drift across energies as the prepared stack does.
    shift : ndarray, shape (M, N), optional
        The energy-shift map (full grid): the block's mean shift is applied and the
        energies the calibrated stack keeps are kept.

    Returns
    -------
    BlockSpectrum
        ``mu`` equals the prepared stack's pixel (within float32 rounding).

    Examples
    --------
    >>> import dask.array as da
    >>> e = np.linspace(7080.0, 7180.0, 60)
    >>> data = np.broadcast_to((np.arctan((e - 7112) / 2) / np.pi + 0.5)[:, None, None], (60, 4, 4))
    >>> b = block_spectrum(Stack(da.from_array(data.astype(np.float32)), e, {}), slice(0, 2), slice(0, 2))
    >>> b.mu.shape, round(float(b.norm[-1]), 1)
    ((60,), 1.0)
    """
    energies = np.asarray(stack.energies, dtype=np.float64)
    if drift is not None:
        _, n_rows, n_cols = stack.data.shape
        margin = int(np.ceil(np.abs(drift).max())) + 1
        r0, c0 = max(rows.start - margin, 0), max(cols.start - margin, 0)
        around = np.asarray(stack.data[:, r0 : min(rows.stop + margin, n_rows), c0 : min(cols.stop + margin, n_cols)],
                            dtype=np.float32)
        block = correct_drift(around, drift)[:, rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0]
        block = block.reshape(block.shape[0], -1)
    elif rows.stop - rows.start == 1 and cols.stop - cols.start == 1:  # one positioned read per page
        block = read_pixel_spectrum(stack, rows.start, cols.start)[:, None]
    else:
        block = np.asarray(stack.data[:, rows, cols], dtype=np.float32).reshape(stack.data.shape[0], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN energy stays NaN
        mu = np.nanmean(block, axis=1)
    if shift is not None:
        here = np.full((1, 1), np.nanmean(np.asarray(shift)[rows, cols]), np.float32)
        mu = apply_shift(mu[:, None, None], energies, here)[:, 0, 0]
        keep = calibrated_energies(energies, shift)
        energies, mu = energies[keep], mu[keep]
    if not np.all(np.isfinite(mu)):
        return BlockSpectrum(energies, mu, None)
    return BlockSpectrum(energies, mu, np.asarray(normalize(mu, energies, **(normalization or {})).norm))
