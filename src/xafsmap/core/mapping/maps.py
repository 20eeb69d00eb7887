"""The maps of a mapping run: what they are, how empty ones are made, and reading them in row blocks.

:func:`new_maps` makes the arrays of a :class:`~xafsmap.core.mapping.pipeline.MapResult`
(names, dtypes, fill values); a store larger than memory
(:mod:`~xafsmap.core.mapping.zarrmaps`) holds the same arrays, checked by
:func:`check_maps`. :func:`row_blocks` and :func:`value_counts` read any of them (numpy,
zarr) a block of whole rows at a time, so maps larger than memory are never whole in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import zarr

__all__ = ["BLOCK_PIXELS", "CHANNEL_MAPS", "FLAGS", "FLAG_INVALID", "FLAG_NO_SAMPLE", "FLAG_THICK", "MASK_BACKGROUND",
           "MASK_INVALID", "MASK_SAMPLE", "block_rows", "check_maps", "chunk_rows", "new_maps", "row_blocks",
           "value_counts"]


#: mask.tif values.
MASK_BACKGROUND, MASK_SAMPLE, MASK_INVALID = 0, 1, 2


#: flags.tif bits, with the legend written to flags.csv.
FLAGS = {1: "no sample (edge step below threshold)", 2: "too thick (absorbance above the limit)",
         4: "invalid (NaN/inf or undefined absorbance at some energy)"}


FLAG_NO_SAMPLE, FLAG_THICK, FLAG_INVALID = 1, 2, 4


#: Maps with one channel per reference, (K, rows, columns).
CHANNEL_MAPS = ("fractions", "fraction_sigma")


def new_maps(k: int, rows: int, cols: int) -> dict:
    """Empty maps of a :class:`~xafsmap.core.mapping.pipeline.MapResult` (everything but the classifier and survey)."""
    maps = {
        "labels": np.zeros((rows, cols), np.uint16),
        "mask": np.zeros((rows, cols), np.uint8),
        "flags": np.zeros((rows, cols), np.uint8),
        "fractions": np.full((k, rows, cols), np.nan, np.float32),
        "fraction_sigma": np.full((k, rows, cols), np.nan, np.float32),
    }
    for name in ("probability", "distance", "residual", "edge_step", "e0"):
        maps[name] = np.full((rows, cols), np.nan, np.float32)
    return maps


def check_maps(maps: dict, k: int, rows: int, cols: int, *, band: int) -> dict:
    """Check that given maps can receive bands of ``band`` rows: names, shapes, chunks.

    Chunked arrays (zarr) must hold whole bands of rows (chunk rows dividing ``band``),
    so the bands mapped at once never write the same chunk, unless they buffer rows
    into whole chunks themselves (``buffers_rows``, :class:`~xafsmap.core.mapping.chunkwriter.BufferedArray`).
    """
    for name, empty in new_maps(k, 1, 1).items():
        shape = (k, rows, cols) if name in CHANNEL_MAPS else (rows, cols)
        if name not in maps or tuple(maps[name].shape) != shape or maps[name].dtype != empty.dtype:
            found = (tuple(maps[name].shape), str(maps[name].dtype)) if name in maps else "nothing"
            raise ValueError(f"maps[{name!r}] must be {shape} {empty.dtype}, got {found}")
        chunks = getattr(maps[name], "chunks", None)
        if getattr(maps[name], "buffers_rows", False):  # collects whole chunks before writing them
            continue
        if isinstance(chunks, tuple) and chunks and isinstance(chunks[-2], int) and band % chunks[-2] and rows > band:
            raise ValueError(f"maps[{name!r}] has chunks of {chunks[-2]} rows but bands of {band} rows: "
                             f"two bands would write the same chunk")
    return maps


#: Pixels per block when a map is read in row blocks (about 64 MB of float32).
BLOCK_PIXELS = 2**24


def block_rows(array: np.ndarray | zarr.Array, *, planes: bool = True) -> int:
    """Rows per block of :func:`row_blocks`: whole chunks, about :data:`BLOCK_PIXELS` pixels.

    With ``planes`` the pixels of every leading plane (e.g. the K fraction maps) count.

    >>> block_rows(np.zeros((3, 10_000, 2_000)))
    2796
    """
    width = array.shape[-1] * (int(np.prod(array.shape[:-2])) if planes else 1)
    step = chunk_rows(array) or 1
    rows = max(1, BLOCK_PIXELS // max(1, width))
    return max(step, rows // step * step)


def row_blocks(array: np.ndarray | zarr.Array, *, rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(r0, block)``: consecutive blocks of whole rows of a map, as numpy arrays.

    The row axis is the second to last; a block holds ``rows`` rows (default
    :func:`block_rows`), so a map larger than memory is read a block at a time.

    Examples
    --------
    >>> [(r0, b.shape) for r0, b in row_blocks(np.zeros((2, 5, 3)), rows=2)]
    [(0, (2, 2, 3)), (2, (2, 2, 3)), (4, (2, 1, 3))]
    """
    rows = rows or block_rows(array)
    for r0 in range(0, array.shape[-2], rows):
        yield r0, np.asarray(array[..., r0 : r0 + rows, :])


def value_counts(array: np.ndarray | zarr.Array, n: int) -> np.ndarray:
    """Pixels of each value 0..n-1 of an integer map, counted in :func:`row_blocks`.

    >>> value_counts(np.array([[0, 2], [2, 1]]), 3).tolist()
    [1, 1, 2]
    """
    counts = np.zeros(n, np.int64)
    for _, block in row_blocks(array):
        counts += np.bincount(block.ravel(), minlength=n)[:n]
    return counts


def chunk_rows(array: object) -> int | None:
    """Rows per chunk of a chunked (zarr) map, None for numpy."""
    chunks = getattr(array, "chunks", None)
    return chunks[-2] if isinstance(chunks, tuple) and chunks and isinstance(chunks[-2], int) else None
