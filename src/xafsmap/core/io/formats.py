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

import os
from pathlib import Path

from .rawstack import HDF5_SUFFIXES, XRADIA_SUFFIXES, RawStack

__all__ = ["format_kind", "open_format"]


def format_kind(path: str | os.PathLike) -> str | None:
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


def open_format(path: str | os.PathLike, *, axes: str | None = None, planes: bool = False,
                references: bool = True) -> RawStack:
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



