"""One pixel's spectrum from a big stack file, without reading bands of it.

A page-per-energy TIFF stores a pixel's spectrum as one value on every page. The lazy
dask stack reads whole (E, band, N) chunks (tens of MB) to return those E values;
:func:`read_pixel_spectrum` reads just the E values, one positioned read per page, for the
Inspect dock's click-to-plot.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .stack import Stack

__all__ = ["read_pixel_spectrum"]


@lru_cache(maxsize=8)
def _layout(path: str, size: int, mtime_ns: int):
    """(data offset, (E, M, N), file dtype) of a contiguous uncompressed TIFF series, or None."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        if series.dataoffset is None or len(series.shape) != 3:
            return None
        return series.dataoffset, tuple(series.shape), np.dtype(tif.byteorder + series.dtype.char)


def _raw_file(stack):
    """The stack's TIFF layout when ``stack.data`` is that file's pixels, unchanged."""
    data, path = stack.data, stack.sources.get("stack")
    if not (isinstance(path, str) and str(getattr(data, "name", "")).startswith("tiff-")):
        return None
    if any(not layer.endswith(data.name) for layer in data.dask.layers):
        return None  # absorbance from counts, a crop, a correction...: not the file's values
    stat = os.stat(path)
    layout = _layout(path, stat.st_size, stat.st_mtime_ns)
    if layout is None or layout[1] != tuple(data.shape):
        return None
    return path, layout


def read_pixel_spectrum(stack: Stack, row: int, col: int) -> np.ndarray:
    """The spectrum of pixel (row, col): E values, one positioned read per energy page.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
    row, col : int
        Pixel, 0-based; negative values count from the end as in numpy.

    Returns
    -------
    ndarray, shape (E,), float32
        Equal to ``stack.data[:, row, col].compute()``.

    Raises
    ------
    IndexError
        If the pixel lies outside the image.

    Notes
    -----
    For a stack read straight from one uncompressed contiguous TIFF (what
    :func:`~xafsmap.core.io.tiff.write_stack` and most beamline software write), reads
    4 bytes per page at ``offset + ((e * M + row) * N + col) * 4``, all of them requested
    from the operating system first (``posix_fadvise WILLNEED``: on a file not in the page
    cache the disk serves the E reads in parallel, ~2x faster); any other stack
    (absorbance computed from counts and flats, folders of TIFFs, STXM, corrected
    stacks) is indexed through dask.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xafsmap.core.io.stack import read_stack, write_stack
    >>> data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    >>> f = write_stack(pathlib.Path(tempfile.mkdtemp()) / "s.tif", data, [1.0, 2.0, 3.0])
    >>> read_pixel_spectrum(read_stack(f), 1, 2).tolist()
    [7.0, 27.0, 47.0]
    """
    n_e, rows, cols = stack.data.shape
    if not (-rows <= row < rows and -cols <= col < cols):
        raise IndexError(f"pixel ({row}, {col}) is outside the {rows} x {cols} image")
    row, col = row % rows, col % cols
    raw = _raw_file(stack)
    if raw is None:
        return np.asarray(stack.data[:, row, col], dtype=np.float32)
    path, (offset, _, dtype) = raw
    size = dtype.itemsize
    out = np.empty(n_e, dtype)
    view = memoryview(out).cast("B")
    starts = [offset + ((e * rows + row) * cols + col) * size for e in range(n_e)]
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):  # ask for every page at once: the disk fetches them in parallel
            for start in starts:
                os.posix_fadvise(fd, start, size, os.POSIX_FADV_WILLNEED)
        for e, start in enumerate(starts):
            if os.preadv(fd, [view[e * size : (e + 1) * size]], start) != size:
                raise ValueError(f"cannot read {path}: page {e} is truncated")
    finally:
        os.close(fd)
    return out.astype(np.float32)
