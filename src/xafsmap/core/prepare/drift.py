"""Correcting the image drift across energies, lazily, and summarizing it.

:func:`correct_drift` moves every image back by its drift (measured by
:func:`~xafsmap.core.prepare.register.measure_drift`, same convention), band by band for
a dask stack so each band reads only the rows it needs; :func:`drift_report` gives the
numbers report.json and the Prepare dock show.
"""

from __future__ import annotations

import numpy as np

from .._arrays import is_dask
from .register import check_drift_stack

__all__ = ["correct_drift", "drift_report"]


def _sampling(index: np.ndarray, offset: float, length: int):
    """Bilinear sampling along one axis, exactly as ``scipy.ndimage.shift(order=1, mode="constant")``.

    Output position ``k`` (whole-image index) takes the source at ``k + offset``:
    the two source indices, their weights and whether the source lies inside
    ``[0, length - 1]``. Same double-precision steps as scipy's ``NI_ZoomShift``
    (``cc = k + offset``, ``w0 = 1 - (cc - floor(cc))``, ``w1 = 1 - w0``; an index
    past the last pixel reflected to ``length - 2`` with weight 0), so the result is
    bit-identical to scipy's on the whole image, whatever part of it is computed.
    """
    cc = index.astype(np.float64) + offset
    inside = (cc >= 0.0) & (cc <= length - 1)
    cc = np.where(inside, cc, 0.0)
    low = np.floor(cc)
    w0 = 1.0 - (cc - low)
    first = low.astype(np.intp)
    second = first + 1
    second[second >= length] = max(length - 2, 0)
    return first, second, w0, 1.0 - w0, inside


def _shift_region(region: np.ndarray, drift: np.ndarray, *, origin: tuple, rows: np.ndarray,
                  cols: np.ndarray, shape: tuple, dtype) -> np.ndarray:
    """Rows ``rows`` and columns ``cols`` (whole-image indices) of each image moved back by its drift.

    ``region`` (E, R, C) holds whole-image pixels ``origin[0]:origin[0] + R``,
    ``origin[1]:origin[1] + C`` of images of ``shape``; it must cover every source
    pixel of the wanted output. One image at a time: float64 temporaries stay small.
    """
    out = np.empty((region.shape[0], rows.size, cols.size), dtype)
    for k in range(region.shape[0]):
        y0, y1, wy0, wy1, in_y = _sampling(rows, drift[k, 0], shape[0])
        x0, x1, wx0, wx1, in_x = _sampling(cols, drift[k, 1], shape[1])
        # local indices; positions whose source is outside the image read pixel 0
        y0, y1 = (np.where(in_y, i - origin[0], 0) for i in (y0, y1))
        x0, x1 = (np.where(in_x, i - origin[1], 0) for i in (x0, x1))
        for index, size in ((y0, region.shape[1]), (y1, region.shape[1]), (x0, region.shape[2]),
                            (x1, region.shape[2])):
            if index.size and (index.min() < 0 or index.max() >= size):  # a margin too small: a bug
                raise ValueError(f"drift correction needs source pixels {index.min()}..{index.max()} "
                                 f"of a block of {size}")
        # what scipy reads: the image cast to the output type, then summed in double
        image = np.asarray(region[k], dtype=dtype).astype(np.float64)
        top, bottom = image[y0], image[y1]
        wy0, wy1 = wy0[:, None], wy1[:, None]
        # scipy's order of operations: t = 0; t += (pixel * wy) * wx over the 2 x 2
        total = (top[:, x0] * wy0) * wx0 + 0.0
        total += (top[:, x1] * wy0) * wx1
        total += (bottom[:, x0] * wy1) * wx0
        total += (bottom[:, x1] * wy1) * wx1
        out[k] = total
        out[k, ~in_y] = np.nan
        out[k][:, ~in_x] = np.nan
    return out


def _correct_parts(parts: list, *, drift: np.ndarray, origin: tuple, rows: tuple, cols: tuple, shape: tuple,
                   dtype) -> np.ndarray:
    """One output block from the input pieces around it (a nested list, rows by columns)."""
    region = parts[0][0] if len(parts) == 1 and len(parts[0]) == 1 else np.block(parts)
    return _shift_region(region, drift, origin=origin, rows=np.arange(*rows), cols=np.arange(*cols),
                         shape=shape, dtype=dtype)


def _margin(drift: np.ndarray) -> int:
    """Source pixels beyond a block that a bilinear move by at most ``max |drift|`` reads."""
    return int(np.ceil(np.abs(drift).max(initial=0.0))) + 1


def _overlapping(edges: np.ndarray, lo: int, hi: int) -> range:
    """Indices of the chunks (boundaries ``edges``) that hold some of ``lo:hi``."""
    return range(int(np.searchsorted(edges, lo, side="right")) - 1, int(np.searchsorted(edges, hi, side="left")))


def _correct_lazy(stack, drift: np.ndarray, dtype):
    """Each output block from its input pixels plus the margin around them, same chunks.

    Every block's task takes its own slice of each input chunk it needs (a plain
    ``getitem`` task on that chunk): when one band is computed, a neighbour's chunk
    feeds only that slice, and dask then fuses the slice into the chunk's read, so only
    the margin rows of the neighbours are read. ``dask.array.overlap`` reads the
    neighbouring chunks whole; slicing the dask array per block instead is defeated by
    HighLevelGraph culling, which can keep every slice of a layer when the number of
    keys it looks for happens to equal the layer's size.
    """
    from functools import partial

    import dask.array as da
    from dask.array.chunk import getitem  # the getitem dask fuses into the chunk's read
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    _, rows, cols = stack.shape
    margin = (_margin(drift[:, 0]), _margin(drift[:, 1]))
    edges = [np.cumsum((0, *c)) for c in stack.chunks]
    name = f"correct_drift-{tokenize(stack.name, drift, dtype)}"
    graph = {}
    for i, (e0, e1) in enumerate(zip(edges[0][:-1], edges[0][1:])):
        for j, (r0, r1) in enumerate(zip(edges[1][:-1], edges[1][1:])):
            lo, hi = max(0, r0 - margin[0]), min(rows, r1 + margin[0])
            for k, (c0, c1) in enumerate(zip(edges[2][:-1], edges[2][1:])):
                left, right = max(0, c0 - margin[1]), min(cols, c1 + margin[1])
                parts = []
                for jj in _overlapping(edges[1], lo, hi):
                    line = []
                    for kk in _overlapping(edges[2], left, right):
                        piece = (name + "-part", i, j, k, jj, kk)
                        graph[piece] = (getitem, (stack.name, i, jj, kk), (
                            slice(None),
                            slice(max(lo, edges[1][jj]) - edges[1][jj], min(hi, edges[1][jj + 1]) - edges[1][jj]),
                            slice(max(left, edges[2][kk]) - edges[2][kk], min(right, edges[2][kk + 1]) - edges[2][kk]),
                        ))
                        line.append(piece)
                    parts.append(line)
                block = partial(_correct_parts, drift=drift[e0:e1], origin=(int(lo), int(left)),
                                rows=(int(r0), int(r1)), cols=(int(c0), int(c1)), shape=(rows, cols), dtype=dtype)
                graph[(name, i, j, k)] = (block, parts)
    layers = HighLevelGraph.from_collections(name, graph, dependencies=[stack])
    return da.Array(layers, name, chunks=stack.chunks, meta=np.empty((0, 0, 0), dtype))


def correct_drift(stack, drift):
    """Move every energy image back by its drift.

    Parameters
    ----------
    stack : ndarray or dask array, shape (E, M, N)
    drift : ndarray, shape (E, 2)
        (dy, dx) pixels, as from :func:`measure_drift`.

    Returns
    -------
    ndarray or dask array, shape (E, M, N)
        Same kind as ``stack`` (a dask array keeps its chunks); float32 stays float32
        (integers become float32); NaN where a pixel's source lies outside the image.

    Raises
    ------
    ValueError
        Stack not 3-D or drift not (E, 2) finite.

    Notes
    -----
    Bilinear interpolation: the result is bit-identical to
    ``scipy.ndimage.shift(image, -drift[i], order=1, mode="constant", cval=nan)``
    (same weights from the whole-image coordinates, same double-precision sums), so
    a NaN spreads to at most its neighbours (up and left by one pixel even at a
    whole-pixel drift, where its weight is 0, as in scipy). A dask stack is corrected
    lazily block by block (the output keeps the input's chunks), each block from
    its own input pixels plus ``ceil(max |drift|) + 1`` rows and columns of its
    neighbours, so a block reads only the raw rows under it plus that margin, not the
    whole stack; numpy and dask share the one implementation and give identical
    results.

    Examples
    --------
    >>> img = np.zeros((1, 5, 5), np.float32); img[0, 2, 2] = 1
    >>> out = correct_drift(img, np.array([[1.0, 0.0]]))
    >>> float(out[0, 1, 2]), bool(np.isnan(out[0, 4, 2]))
    (1.0, True)
    """
    check_drift_stack(stack)
    drift = np.asarray(drift, dtype=np.float64)
    if drift.shape != (stack.shape[0], 2):
        raise ValueError(
            f"drift has shape {drift.shape} but the stack has {stack.shape[0]} energies:"
            f" expected ({stack.shape[0]}, 2)"
        )
    if not np.isfinite(drift).all():
        raise ValueError(f"drift has {int((~np.isfinite(drift)).sum())} non-finite values")
    dtype = np.result_type(stack.dtype, np.float32)
    if is_dask(stack):
        return _correct_lazy(stack, drift, dtype)
    stack = np.asarray(stack)
    _, rows, cols = stack.shape
    return _shift_region(stack, drift, origin=(0, 0), rows=np.arange(rows), cols=np.arange(cols),
                         shape=(rows, cols), dtype=dtype)


def drift_report(drift) -> dict:
    """Summary of a drift series for report.json.

    Parameters
    ----------
    drift : ndarray, shape (E, 2)
        (dy, dx) pixels.

    Returns
    -------
    dict
        ``max`` and ``rms`` of the drift magnitude (px), ``max_dy``/``max_dx`` (largest
        absolute component, px), ``n_images``.

    Examples
    --------
    >>> drift_report(np.array([[0.0, 0.0], [3.0, 4.0]]))["max"]
    5.0
    """
    drift = np.asarray(drift, dtype=np.float64)
    if drift.ndim != 2 or drift.shape[1] != 2:
        raise ValueError(f"drift must have shape (E, 2) but has shape {drift.shape}")
    mag = np.hypot(drift[:, 0], drift[:, 1])
    return {
        "max": float(mag.max()) if mag.size else 0.0,
        "rms": float(np.sqrt(np.mean(mag**2))) if mag.size else 0.0,
        "max_dy": float(np.abs(drift[:, 0]).max()) if mag.size else 0.0,
        "max_dx": float(np.abs(drift[:, 1]).max()) if mag.size else 0.0,
        "n_images": int(drift.shape[0]),
    }
