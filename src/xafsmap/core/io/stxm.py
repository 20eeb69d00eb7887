"""Scanning transmission X-ray microscopy (STXM) stacks: an SDF ``.hdr`` header and its ``.xim`` images.

The header is the ALS/Canadian-Light-Source "SDF" text format: nested ``Name = {...};``
blocks. Only the fields needed for a stack are parsed, as text (never evaluated): the
energies in ``StackAxis.Points = (n, e1, ..., en)`` and the image size in
``PAxis.Points`` (columns, sample X) and ``QAxis.Points`` (rows, sample Y). Each energy has
one tab-separated text image ``<stem>_a000.xim``, ``<stem>_a001.xim``, … holding the
transmitted counts, one image row per line, as in aXis2000.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["read_sdf_counts", "read_sdf_energies"]

_NUMBER_LIST = re.compile(r"Points\s*=\s*\(([^)]*)\)")


def _axis_points(text: str, axis: str, *, name: str) -> np.ndarray:
    """Return the values of ``<axis> = { ... Points = (n, v1, ..., vn); }`` in an SDF header."""
    block = re.search(rf"\b{axis}\s*=\s*\{{(.*?)\}}", text, re.S)
    points = _NUMBER_LIST.search(block.group(1)) if block else None
    if points is None:
        raise ValueError(f"STXM header {name} has no {axis} Points = (...) list")
    try:
        numbers = [float(item) for item in points.group(1).split(",") if item.strip()]
    except ValueError as error:
        raise ValueError(f"STXM header {name}: {axis} Points hold a non-number ({error})") from None
    count, values = int(numbers[0]), np.asarray(numbers[1:], dtype=np.float64)
    if count != values.size:
        raise ValueError(f"STXM header {name}: {axis} Points announce {count} values but list {values.size}")
    return values


def read_sdf_energies(path: str | Path) -> np.ndarray:
    """Read the energies of an STXM stack from its SDF ``.hdr`` header.

    Parameters
    ----------
    path : str or Path
        The ``.hdr`` file.

    Returns
    -------
    energies : ndarray, shape (E,), float64
        Photon energies in eV, in the order of the images ``_a000``, ``_a001``, ….

    Raises
    ------
    FileNotFoundError
        If the header does not exist.
    ValueError
        If the header has no ``StackAxis`` points or they are malformed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> hdr = pathlib.Path(tempfile.mkdtemp()) / "s.hdr"
    >>> _ = hdr.write_text('StackAxis = { Name = "Energy"; Points = (3, 700.0, 700.5, 701.0);};')
    >>> read_sdf_energies(hdr)
    array([700. , 700.5, 701. ])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"STXM header not found: {path}")
    return _axis_points(path.read_text(errors="replace"), "StackAxis", name=path.name)


def _load_xim(path: str, shape: tuple[int, int]) -> np.ndarray:
    image = np.loadtxt(path, dtype=np.float32, ndmin=2)
    if image.shape != shape:
        raise ValueError(f"STXM image {Path(path).name} has shape {image.shape} but the header says {shape}")
    return image


def read_sdf_counts(path: str | Path) -> tuple[da.Array, np.ndarray]:
    """Lazily read the transmitted counts of an STXM stack described by an SDF header.

    Parameters
    ----------
    path : str or Path
        The ``.hdr`` file; its images ``<stem>_a*.xim`` lie beside it.

    Returns
    -------
    counts : dask.array.Array, shape (E, M, N), float32
        Transmitted counts, one chunk ``(1, M, N)`` per energy, rows as in the files
        (M = ``QAxis`` points, N = ``PAxis`` points). Nothing is read until computed.
    energies : ndarray, shape (E,), float64
        Energies in eV from ``StackAxis``.

    Raises
    ------
    FileNotFoundError
        If the header or its images are missing.
    ValueError
        If the number of images differs from the number of energies.
    """
    import dask
    import dask.array as da

    from .energies import natural_sort_key

    path = Path(path)
    energies = read_sdf_energies(path)
    text = path.read_text(errors="replace")
    shape = (_axis_points(text, "QAxis", name=path.name).size, _axis_points(text, "PAxis", name=path.name).size)
    files = sorted(path.parent.glob(f"{path.stem}_a*.xim"), key=lambda p: natural_sort_key(p.name))
    if not files:
        raise FileNotFoundError(f"STXM header {path.name} has no images {path.stem}_a*.xim in {path.parent}")
    if len(files) != energies.size:
        raise ValueError(
            f"STXM header {path.name} lists {energies.size} energies but {len(files)} images "
            f"{path.stem}_a*.xim were found"
        )
    load = dask.delayed(_load_xim, pure=True)
    planes = [da.from_delayed(load(str(f), shape), shape=shape, dtype=np.float32) for f in files]
    return da.stack(planes), energies
