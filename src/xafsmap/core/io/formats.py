"""Beamline file formats behind :func:`~xafsmap.core.io.stack.read_stack`: which reader, and what it found.

:mod:`xafsmap.core.io.hdf5` reads HDF5 files (NeXus NXstxm, Data Exchange
spectromicroscopy, full-field TXM XANES files of NSLS-II FXI and TXM-Sandbox, or any
3-D dataset named as ``FILE.h5:/path/to/dataset``); :mod:`xafsmap.core.io.xradia` reads
Zeiss/Xradia ``.txrm`` stacks and ``.xrm`` images. Both return a :class:`RawStack`:
the pixels (lazy), the energies the file holds, and what was done with the file's own
incident-beam data (I0 spectrum, flat and dark images), so that ``read_stack`` only
adds what the user gave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["RawStack", "apply_reference", "format_kind", "open_format", "spectrum_on"]

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


def format_kind(path) -> str | None:
    """``"hdf5"``, ``"xradia"`` or None (a TIFF, STXM or unknown input).

    HDF5 is recognised by the file suffix of a path or of a ``FILE.h5:/dataset`` spec;
    Xradia by ``.txrm``/``.xrm``, a glob of ``.xrm`` files, or a folder of ``.xrm``
    files without TIFFs.

    >>> format_kind("scan.nxs:/entry/data"), format_kind("a/*.xrm"), format_kind("s.tif")
    ('hdf5', 'xradia', None)
    """
    from .hdf5 import split_spec

    text = str(path)
    if split_spec(text)[0].suffix.lower() in HDF5_SUFFIXES:
        return "hdf5"
    if Path(text).suffix.lower() in XRADIA_SUFFIXES:
        return "xradia"
    folder = Path(text)
    if "*" not in text and folder.is_dir():
        names = [p.suffix.lower() for p in folder.iterdir() if p.is_file()]
        if ".xrm" in names and not {".tif", ".tiff"} & set(names):
            return "xradia"
    return None


def open_format(path, *, axes: str | None = None, planes: bool = False, references: bool = True) -> RawStack:
    """Open an HDF5 or Xradia stack lazily (see :func:`format_kind`).

    Parameters
    ----------
    path : str or Path
        File, ``FILE.h5:/path/to/dataset``, or a glob/folder of ``.xrm`` files.
    axes : str, optional
        Order of the dataset's dimensions as a permutation of ``"EYX"`` (energy, row,
        column), for datasets whose order is not (E, Y, X) or not in the file.
    planes : bool
        Chunk one energy image per chunk (display) instead of row bands that hold
        every energy (per-pixel work).
    references : bool
        Apply the file's own I0 spectrum or flat/dark images. False when the user
        gives their own: ``data`` is then the counts.

    Returns
    -------
    RawStack

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If the file's layout is not recognised or is incomplete; the message names the
        file and what is missing.
    """
    kind = format_kind(path)
    if kind == "hdf5":
        from .hdf5 import read_hdf5

        return read_hdf5(path, axes=axes, planes=planes, references=references)
    if kind == "xradia":
        from .xradia import read_xradia

        return read_xradia(path, references=references)
    raise ValueError(f"{path} is neither an HDF5 file nor a Zeiss/Xradia .txrm/.xrm")


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


def spectrum_on(energies: np.ndarray, grid, values, *, name: str) -> np.ndarray:
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


def apply_reference(counts, *, i0=None, flat=None, dark=None):
    """Absorbance from counts and a file's own reference: an (E,) I0 spectrum or flat images.

    >>> od = apply_reference(np.full((2, 1, 1), 50.0, np.float32), i0=np.array([100.0, 50.0]))
    >>> [round(float(v), 4) + 0.0 for v in od.compute().ravel()]
    [0.6931, 0.0]
    """
    from .stack import absorbance_from_transmission

    reference = np.asarray(i0, np.float64)[:, None, None] if i0 is not None else flat
    return absorbance_from_transmission(counts, reference, dark=dark)
