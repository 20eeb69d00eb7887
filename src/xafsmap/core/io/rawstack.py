"""What a beamline file holds, before :func:`~xafsmap.core.io.stack.read_stack` adds what the user gave.

The readers of :mod:`xafsmap.core.io.hdf5` and :mod:`xafsmap.core.io.xradia` return a
:class:`RawStack`: the pixels (lazy), the energies the file holds, and what was done with
the file's own incident-beam data (I0 spectrum, flat and dark images).
:func:`absorbance_from_transmission` turns counts into absorbance for them and for
``read_stack``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["HDF5_SUFFIXES", "XRADIA_SUFFIXES", "RawStack", "absorbance_from_transmission", "apply_reference",
           "parse_axes", "spectrum_on"]


HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5")


XRADIA_SUFFIXES = (".txrm", ".xrm")


@dataclass(frozen=True, eq=False)
class RawStack:
    """What a format reader found in a file.

    Attributes
    ----------
    data : dask.array.Array, shape (E, M, N), float32
        Absorbance when the file's own I0/flat was applied (or the file holds
        absorbance), else transmitted counts (``counts`` True).
    energies : ndarray, shape (E,), float64, or None
        Energies in eV from the file (converted from keV where the file says so).
    energies_source : str or None
        Where they were read, e.g. ``"scan.nxs:/entry1/data/energy"``.
    layout : str
        The layout recognised, e.g. ``"NXstxm"``, ``"Data Exchange"``.
    counts : bool
        True when ``data`` holds transmitted counts that still need an I0 or flat.
    sources : dict of str to str
        Extra provenance, e.g. ``{"file_i0": "scan.nxs:/entry1/control/data"}``.
    notes : tuple of str
        What the reader decided that the user should know (units converted, the
        file's I0 used or not, axis order).
    """

    data: object
    energies: np.ndarray | None
    energies_source: str | None
    layout: str
    counts: bool = False
    sources: dict = field(default_factory=dict)
    notes: tuple = ()


def parse_axes(axes: str, *, ndim: int = 3, where: str = "axes") -> str:
    """Validate an axis order: a permutation of ``"EYX"`` (case-insensitive).

    >>> parse_axes("xye")
    'XYE'
    """
    order = str(axes).strip().upper()
    if sorted(order) != ["E", "X", "Y"] or ndim != 3:
        raise ValueError(f"{where} {axes!r} must name the {ndim} dimensions as a permutation of EYX "
                         "(E energy, Y row, X column), e.g. --axes XYE")
    return order


def spectrum_on(energies: np.ndarray, grid: ArrayLike, values: ArrayLike, *, name: str) -> np.ndarray:
    """An incident-beam spectrum on the stack's energies (interpolated when its grid differs).

    >>> spectrum_on(np.array([1.0, 2.0]), [0.0, 4.0], [10.0, 50.0], name="i0").tolist()
    [20.0, 30.0]
    """
    grid, values = np.asarray(grid, np.float64).ravel(), np.asarray(values, np.float64).ravel()
    if grid.size != values.size:
        raise ValueError(f"{name} has {values.size} values but {grid.size} energies")
    if grid.size == energies.size and np.allclose(grid, energies, rtol=0, atol=1e-3):
        return values
    order = np.argsort(grid)
    if energies[0] < grid.min() - 1e-6 or energies[-1] > grid.max() + 1e-6:
        raise ValueError(f"{name} covers {grid.min():g}–{grid.max():g} eV but the stack spans "
                         f"{energies[0]:g}–{energies[-1]:g} eV")
    return np.interp(energies, grid[order], values[order])


def apply_reference(counts: ArrayLike, *, i0: ArrayLike | None = None, flat: ArrayLike | None = None,
                    dark: ArrayLike | None = None) -> da.Array:
    """Absorbance from counts and a file's own reference: an (E,) I0 spectrum or flat images.

    >>> od = apply_reference(np.full((2, 1, 1), 50.0, np.float32), i0=np.array([100.0, 50.0]))
    >>> [round(float(v), 4) + 0.0 for v in od.compute().ravel()]
    [0.6931, 0.0]
    """
    reference = np.asarray(i0, np.float64)[:, None, None] if i0 is not None else flat
    return absorbance_from_transmission(counts, reference, dark=dark)


def _absorbance_block(counts, flat, dark=None):
    counts, flat = counts.astype(np.float32, copy=False), flat.astype(np.float32, copy=False)
    if dark is not None:
        dark = dark.astype(np.float32, copy=False)
        counts, flat = counts - dark, flat - dark
    with np.errstate(divide="ignore", invalid="ignore"):
        od = -np.log(counts / flat)
    return np.where((counts > 0) & (flat > 0), od, np.float32(np.nan)).astype(np.float32, copy=False)


def absorbance_from_transmission(counts: ArrayLike, flat: ArrayLike, *, dark: ArrayLike | None = None) -> da.Array:
    """Absorbance (optical density) ``-ln((I - D) / (F - D))`` from transmitted counts, lazily.

    Parameters
    ----------
    counts : array or dask array, shape (E, M, N)
        Transmitted counts I, any numeric dtype.
    flat : array or dask array, shape (E, M, N), (M, N) or broadcastable such as (E, 1, 1)
        Flat-field (incident) counts F; a 2-D image serves every energy.
    dark : array or dask array, shape (M, N) or (E, M, N), optional
        Dark counts D, subtracted from I and F.

    Returns
    -------
    od : dask.array.Array, shape (E, M, N), float32
        NaN where ``I - D <= 0`` or ``F - D <= 0`` (undefined; never clipped).

    Raises
    ------
    ValueError
        If ``flat`` or ``dark`` does not broadcast to the shape of ``counts``.

    Notes
    -----
    Larch's ``mu = ln(i0 / itrans)`` for each pixel; computed in float32.

    Examples
    --------
    >>> import numpy as np
    >>> od = absorbance_from_transmission(np.full((2, 1, 2), 50.0), np.full((1, 2), 100.0))
    >>> np.round(od.compute().ravel(), 4)
    array([0.6931, 0.6931, 0.6931, 0.6931], dtype=float32)
    """
    import dask.array as da

    arrays = [da.asarray(counts)]
    for role, value in (("flat", flat), ("dark", dark)):
        if value is None:
            continue
        array = da.asarray(value)
        try:
            fits = np.broadcast_shapes(array.shape, arrays[0].shape) == arrays[0].shape
        except ValueError:
            fits = False
        if not fits or array.ndim < 2:
            raise ValueError(
                f"{role} has shape {array.shape} but the stack has shape {arrays[0].shape}; {role} must be "
                "one image (M, N) or one image per energy (E, M, N)"
            )
        # explicit chunks matching the stack's: broadcast dimensions stay one block of size 1
        array = array.reshape((1,) * (arrays[0].ndim - array.ndim) + array.shape)
        arrays.append(array.rechunk([c if s > 1 else (1,) for s, c in zip(array.shape, arrays[0].chunks)]))
    return da.map_blocks(_absorbance_block, *arrays, dtype=np.float32, meta=np.empty((0,) * arrays[0].ndim, np.float32))
