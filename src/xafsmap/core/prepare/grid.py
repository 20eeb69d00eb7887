"""The grid of a prepared stack: region of interest, binning, and the subgrids read for previews.

:func:`crop_stack` and :func:`bin_stack` keep the energy axis whole and never read pixel
data of a lazy stack (a slice, a blockwise mean); :func:`grid_of` describes the result
for report.json, and :func:`map_transform`, :func:`pixel_block` and :func:`map_pixel`
place the prepared grid over the measurement (napari layers, clicked pixels).
:func:`subgrid` is the one rule for the sparse regular grids read to learn about a
stack quickly (the survey, the mask preview, the mean spectrum).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .._arrays import is_dask

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["Subgrid", "bin_stack", "crop_stack", "grid_of", "map_pixel", "map_transform", "pixel_block", "subgrid"]


def crop_stack(data: np.ndarray | da.Array, roi: Sequence[int]) -> np.ndarray | da.Array:
    """Crop a stack to ``roi = (row_start, row_stop, col_start, col_stop)`` (pixels).

    Parameters
    ----------
    data : array_like, shape (E, M, N)
    roi : sequence of 4 int
        Half-open pixel ranges, as Python slices; stops beyond the image are refused.

    Returns
    -------
    array_like, shape (E, row_stop - row_start, col_stop - col_start)
        A view (numpy) or a lazy slice (dask).

    Examples
    --------
    >>> crop_stack(np.zeros((3, 10, 20)), (2, 6, 5, 15)).shape
    (3, 4, 10)
    """
    r0, r1, c0, c1 = (int(v) for v in roi)
    _, rows, cols = data.shape
    if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
        raise ValueError(
            f"region rows {r0}:{r1}, columns {c0}:{c1} does not fit in the {rows} x {cols} image"
        )
    return data[:, r0:r1, c0:c1]


def bin_stack(data: np.ndarray | da.Array, factor: int) -> np.ndarray | da.Array:
    """Average ``factor x factor`` neighbouring pixels (NaN-aware), for signal to noise.

    Parameters
    ----------
    data : array_like, shape (E, M, N)
    factor : int
        Bin size; rows and columns that do not fill a whole bin at the bottom and
        right edges are dropped.

    Returns
    -------
    array_like, shape (E, M // factor, N // factor), float32
        A pixel whose neighbours are all NaN at an energy stays NaN there; a dead
        pixel among live ones is left out of the mean.

    Examples
    --------
    >>> bin_stack(np.arange(16.0).reshape(1, 4, 4), 2)[0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"bin factor must be a positive whole number, got {factor}")
    if factor == 1:
        return data
    n_energies, rows, cols = data.shape
    if rows < factor or cols < factor:
        raise ValueError(f"cannot bin a {rows} x {cols} image by {factor}")
    if is_dask(data):
        import dask.array as da

        chunks = (-1, max(factor, data.chunksize[1] // factor * factor), -1)
        trimmed = data[:, : rows // factor * factor, : cols // factor * factor].rechunk(chunks)
        return da.map_blocks(_bin_block, trimmed, factor, dtype=np.float32,
                             chunks=(n_energies, tuple(c // factor for c in trimmed.chunks[1]),
                                     (cols // factor,)),
                             meta=np.empty((0, 0, 0), np.float32))
    return _bin_block(np.asarray(data), factor)


def _bin_block(block: np.ndarray, factor: int) -> np.ndarray:
    n_energies, rows, cols = block.shape
    rows, cols = rows // factor * factor, cols // factor * factor
    view = block[:, :rows, :cols].reshape(n_energies, rows // factor, factor, cols // factor, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins stay NaN
        return np.nanmean(view, axis=(2, 4)).astype(np.float32)


def grid_of(shape: tuple[int, ...], *, roi: Sequence[int] | None = None, factor: int = 1) -> dict:
    """The output grid of a crop then bin of an image of ``shape`` (rows, columns)."""
    rows, cols = shape
    r0, r1, c0, c1 = roi if roi is not None else (0, rows, 0, cols)
    return {
        "source_shape": [int(rows), int(cols)],
        "roi": [int(r0), int(r1), int(c0), int(c1)],
        "bin": int(factor),
        "shape": [int((r1 - r0) // factor), int((c1 - c0) // factor)],
    }




def map_transform(roi: Sequence[int] | None = None, factor: int = 1, *, scale: tuple[float, float] = (1.0, 1.0),
                  translate: tuple[float, float] = (0.0, 0.0)) -> dict:
    """``scale`` and ``translate`` that put maps of the prepared grid over the measurement.

    ``scale``/``translate`` are the measurement layer's (per row and column); a map
    pixel sits at the centre of the ``factor x factor`` block it averages.

    >>> map_transform((10, 50, 4, 60), 2)
    {'scale': (2.0, 2.0), 'translate': (10.5, 4.5)}
    """
    r0, _, c0, _ = roi or (0, 0, 0, 0)
    scale = np.asarray(scale, float)
    start = np.asarray(translate, float) + (np.array([r0, c0]) + (factor - 1) / 2) * scale
    return {"scale": tuple(float(v) for v in scale * factor), "translate": tuple(float(v) for v in start)}


def pixel_block(row: int, col: int, roi: Sequence[int] | None = None, factor: int = 1) -> tuple[slice, slice]:
    """Rows and columns of the measurement averaged into map pixel ``(row, col)``.

    >>> pixel_block(3, 1, (10, 50, 4, 60), 2)
    (slice(16, 18, None), slice(6, 8, None))
    """
    r0, _, c0, _ = roi or (0, 0, 0, 0)
    return (slice(r0 + row * factor, r0 + (row + 1) * factor), slice(c0 + col * factor, c0 + (col + 1) * factor))


def map_pixel(data_row: float, data_col: float, shape: tuple[int, ...], roi: Sequence[int] | None = None,
              factor: int = 1) -> tuple[int, int] | None:
    """Pixel of the prepared grid holding measurement pixel ``(data_row, data_col)``, or None outside it.

    ``shape`` is the measurement's (rows, columns).

    >>> map_pixel(16.7, 7.2, (64, 64), (10, 50, 4, 60), 2), map_pixel(5.0, 7.0, (64, 64), (10, 50, 4, 60), 2)
    ((3, 1), None)
    """
    r0, r1, c0, c1 = roi or (0, shape[0], 0, shape[1])
    row = int(np.floor((round(data_row) - r0) / factor))
    col = int(np.floor((round(data_col) - c0) / factor))
    rows, cols = (r1 - r0) // factor, (c1 - c0) // factor
    return (row, col) if 0 <= row < rows and 0 <= col < cols else None


@dataclass(frozen=True)
class Subgrid:
    """A regular grid of pixels of an image: every ``row_stride``-th row from ``row_start``,
    every ``col_stride``-th column from ``col_start``, of an image of ``shape``."""

    shape: tuple[int, int]
    row_start: int
    row_stride: int
    col_start: int
    col_stride: int

    @property
    def rows(self) -> np.ndarray:
        """Row of the image of each subgrid row."""
        return np.arange(self.row_start, self.shape[0], self.row_stride)

    @property
    def cols(self) -> np.ndarray:
        """Column of the image of each subgrid column."""
        return np.arange(self.col_start, self.shape[1], self.col_stride)

    @property
    def full(self) -> bool:
        """Every pixel of the image."""
        return self.row_stride == 1 and self.col_stride == 1

    def read(self, data: np.ndarray | da.Array) -> np.ndarray:
        """The subgrid's pixels of a stack (E, M, N), numpy float32 (E, rows, columns); computes."""
        return np.asarray(data[:, self.row_start :: self.row_stride, self.col_start :: self.col_stride],
                          dtype=np.float32)

    def transform(self, *, scale: tuple[float, float] = (1.0, 1.0),
                  translate: tuple[float, float] = (0.0, 0.0)) -> dict:
        """``scale`` and ``translate`` of a layer of the subgrid over a layer of the image."""
        scale, translate = np.asarray(scale, float), np.asarray(translate, float)
        return {"scale": tuple(float(v) for v in scale * [self.row_stride, self.col_stride]),
                "translate": tuple(float(v) for v in translate + scale * [self.row_start, self.col_start])}


def subgrid(shape: tuple[int, ...], n_pixels: int, *, aspect: float = 1.0) -> Subgrid:
    """A regular subgrid of about ``n_pixels`` pixels of an image of ``shape`` (rows, columns).

    The strides are ``s * sqrt(aspect)`` rows and ``s / sqrt(aspect)`` columns with
    ``s = sqrt(rows * columns / n_pixels)``, rounded down (at least 1), starting half a
    stride in. An ``aspect`` above 1 reads fewer rows for the same pixels: a TIFF is read
    a row of a page at a time, so fewer rows cost fewer reads (the survey uses 16).

    Examples
    --------
    >>> g = subgrid((1000, 1700), 20_000, aspect=16)
    >>> g.row_stride, g.col_stride, g.row_start, g.col_start
    (36, 2, 18, 1)
    >>> subgrid((48, 64), 40_000).full
    True
    """
    rows, cols = (int(n) for n in shape)
    stride = np.sqrt(rows * cols / n_pixels)
    row_stride = max(1, int(stride * np.sqrt(aspect)))
    col_stride = max(1, int(stride / np.sqrt(aspect)))
    return Subgrid((rows, cols), row_stride // 2, row_stride, col_stride // 2, col_stride)
