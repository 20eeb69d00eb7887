"""Resampling every pixel's spectrum onto the nominal energies with its energy shift."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .._arrays import is_dask

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["apply_shift"]

#: pixels processed at once by apply_shift's numpy kernel and the alignment (bounds memory).
APPLY_BLOCK = 1 << 16


def check_stack_energies(stack: np.ndarray | da.Array, energies: ArrayLike) -> np.ndarray:
    energies = np.asarray(energies, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (E, M, N) but has shape {tuple(stack.shape)}")
    if energies.ndim != 1 or energies.size != stack.shape[0]:
        raise ValueError(
            f"stack has {stack.shape[0]} energies but energies has shape {energies.shape}"
        )
    steps = np.diff(energies)
    if not np.all(steps > 0):
        k = int(np.argmin(steps))
        raise ValueError(
            f"energies must be strictly increasing, but energies[{k + 1}]={energies[k + 1]:g}"
            f" <= energies[{k}]={energies[k]:g}"
        )
    return energies


def _float_dtype(dtype) -> np.dtype:
    """float32 stays float32, float64 stays float64, integer counts are promoted."""
    return np.result_type(dtype, np.float32)


def shift_spectra(spectra: np.ndarray, energies: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """corrected[:, p] = spectra[:, p] linearly interpolated at energies - shift[p]; NaN outside."""
    out_dtype = spectra.dtype
    e = energies.size
    out = np.empty(spectra.shape, out_dtype)
    for start in range(0, spectra.shape[1], APPLY_BLOCK):
        sl = slice(start, start + APPLY_BLOCK)
        q = energies[:, None] - shift[None, sl].astype(np.float64)  # nominal energy to read
        idx = np.clip(np.searchsorted(energies, q, side="right") - 1, 0, e - 2)
        e_lo = energies[idx]
        t = ((q - e_lo) / (energies[idx + 1] - e_lo)).astype(out_dtype)
        block = spectra[:, sl]
        lo = np.take_along_axis(block, idx, axis=0)
        hi = np.take_along_axis(block, idx + 1, axis=0)
        val = lo + t * (hi - lo)
        covered = (q >= energies[0]) & (q <= energies[-1])
        out[:, sl] = np.where(covered, val, np.nan)
    return out


def _apply_shift_block(block: np.ndarray, shift_block: np.ndarray, *, energies, out_dtype):
    e, m, n = block.shape
    flat = np.asarray(block).reshape(e, m * n).astype(out_dtype, copy=False)
    return shift_spectra(flat, energies, np.asarray(shift_block).reshape(m * n)).reshape(e, m, n)


def apply_shift(stack: np.ndarray | da.Array, energies: np.ndarray,
                shift: np.ndarray | da.Array) -> np.ndarray | da.Array:
    """Resample every pixel's spectrum onto the nominal energy grid.

    Parameters
    ----------
    stack : ndarray or dask array, shape (E, M, N)
        Measured spectra against nominal energy.
    energies : ndarray, shape (E,)
        Nominal energies (eV), strictly increasing.
    shift : ndarray or dask array, shape (M, N)
        Offset (eV): true energy = nominal + shift (e.g. ``ShiftMap.shift``).

    Returns
    -------
    ndarray or dask array, shape (E, M, N)
        Same kind as ``stack``; float32 stays float32 (integers are promoted).
        ``corrected[k] = measured at nominal energy energies[k] - shift``, i.e. the
        spectrum against true energy sampled on the nominal grid; NaN where
        ``energies[k] - shift`` falls outside the measured range (no extrapolation).

    Raises
    ------
    ValueError
        Stack not 3-D, energies of the wrong length or not increasing, shift of
        another shape than the images.

    Notes
    -----
    Linear interpolation along energy, vectorized: one ``searchsorted`` of all
    (energy, pixel) query points. Dask stacks are processed per spatial chunk with the
    energy axis in one chunk. Athena's per-spectrum ``e0`` shift, done per pixel.

    Examples
    --------
    >>> e = np.arange(10.0)
    >>> stack = np.broadcast_to(e[:, None, None], (10, 1, 2)).astype(np.float32)
    >>> out = apply_shift(stack, e, np.array([[0.5, -1.0]]))
    >>> out[:3, 0, 0].tolist(), out[-2:, 0, 1].tolist()
    ([nan, 0.5, 1.5], [9.0, nan])
    """
    energies = check_stack_energies(stack, energies)
    if tuple(shift.shape) != tuple(stack.shape[1:]):
        raise ValueError(
            f"shift has shape {tuple(shift.shape)} but the stack's images are {tuple(stack.shape[1:])}"
        )
    dtype = _float_dtype(stack.dtype)
    if is_dask(stack):
        import dask.array as da

        stack = stack.rechunk({0: -1})
        shift_d = da.asarray(shift).astype(np.float64).rechunk(stack.chunks[1:])
        return da.map_blocks(
            _apply_shift_block,
            stack,
            shift_d[None],
            energies=energies,
            out_dtype=dtype,
            dtype=dtype,
            meta=np.empty((0, 0, 0), dtype),
        )
    shift = np.asarray(shift, dtype=np.float64)
    return _apply_shift_block(np.asarray(stack), shift, energies=energies, out_dtype=dtype)
