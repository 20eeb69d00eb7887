"""Correcting the image drift across energies, lazily, and summarizing it.

:func:`correct_drift` moves every image back by its drift (measured by
:func:`~xafsmap.core.prepare.register.measure_drift`, same convention), band by band for
a dask stack so each band reads only the rows it needs; :func:`drift_report` gives the
numbers report.json and the Prepare dock show.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from .._arrays import is_dask
from .register import check_drift_stack

__all__ = ["correct_drift", "drift_report"]


class _Axis(NamedTuple):
    """Bilinear sampling of one axis for every image (each field (images, positions)),
    source indices local to a block; ``run`` (images, 2): the positions ``lo:hi`` whose
    two sources are consecutive and inside, ``first = position + offset`` (the compiled
    loop reads them without a gather)."""

    first: np.ndarray
    second: np.ndarray
    w0: np.ndarray
    w1: np.ndarray
    inside: np.ndarray
    run: np.ndarray


def _sampling(index: np.ndarray, offset: np.ndarray, length: int, *, start: int, size: int,
              run: bool = True) -> _Axis:
    """Bilinear sampling along one axis, exactly as ``scipy.ndimage.shift(order=1, mode="constant")``.

    Output position ``k`` (whole-image index, ``index``) of image ``i`` takes the source
    at ``k + offset[i]``: the two source indices (made local to a block of ``size``
    starting at ``start``; 0 where the source is outside), their weights and whether the
    source lies inside ``[0, length - 1]``. Same double-precision steps as scipy's
    ``NI_ZoomShift`` (``cc = k + offset``, ``w0 = 1 - (cc - floor(cc))``, ``w1 = 1 - w0``;
    an index past the last pixel reflected to ``length - 2`` with weight 0), so the
    result is bit-identical to scipy's on the whole image, whatever part of it is computed.
    ``run``: find the regular stretches (for the columns, which the loop runs along).
    """
    cc = index.astype(np.float64)[None, :] + offset[:, None]
    inside = (cc >= 0.0) & (cc <= length - 1)
    cc = np.where(inside, cc, 0.0)
    low = np.floor(cc)
    w0 = 1.0 - (cc - low)
    first = low.astype(np.intp)
    second = first + 1
    second[second >= length] = max(length - 2, 0)
    first, second = (np.where(inside, i - start, 0) for i in (first, second))
    if first.size and (min(first.min(), second.min()) < 0 or max(first.max(), second.max()) >= size):
        raise ValueError(f"drift correction needs source pixels {min(first.min(), second.min())}.."
                         f"{max(first.max(), second.max())} of a block of {size}")  # a margin too small: a bug
    runs = _regular_run(first, second, inside) if run else np.zeros((first.shape[0], 2), np.intp)
    return _Axis(first, second, w0, 1.0 - w0, inside, runs)


def _regular_run(first: np.ndarray, second: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per image, the longest stretch ``lo:hi`` of positions that read sources
    ``position + c`` and ``position + c + 1`` (one c per image), all inside."""
    positions = np.arange(first.shape[1])
    run = np.zeros((first.shape[0], 2), np.intp)
    for i in range(first.shape[0]):
        offset = first[i] - positions
        common = np.bincount(offset[inside[i]] - offset.min()).argmax() + offset.min() if inside[i].any() else 0
        ok = np.r_[False, inside[i] & (offset == common) & (second[i] == first[i] + 1), False]
        edges = np.flatnonzero(np.diff(ok.astype(np.int8)))
        if edges.size:
            longest = np.argmax(edges[1::2] - edges[::2])
            run[i] = edges[2 * longest], edges[2 * longest + 1]
    return run


def _compiled_shift():
    """The compiled bilinear loop, or None without numba (the ``fast`` extra)."""
    try:
        from ._jit_drift import shift_bilinear
    except ImportError:
        return None
    return shift_bilinear


def _shift_region(region: np.ndarray, y: _Axis, x: _Axis, dtype) -> np.ndarray:
    """Every image of ``region`` (E, R, C) moved back by its drift, as sampled by ``y`` and ``x``.

    ``region`` must hold every source pixel the samplings read (their indices are local
    to it). Compiled (:func:`~xafsmap.core.prepare._jit_drift.shift_bilinear`, ~1 ns per
    pixel and energy, no GIL) when numba is there, else the same sums in numpy one image
    at a time (~25 ns); both give the same bits.
    """
    out = np.empty((region.shape[0], y.first.shape[1], x.first.shape[1]), dtype)
    # what scipy reads: the image cast to the output type, then summed in double
    region = np.asarray(region).astype(dtype, copy=False)
    kernel = _compiled_shift()
    if kernel is not None:
        kernel(region, y.first, y.second, y.w0, y.w1, y.inside, x.first, x.second, x.w0, x.w1, x.inside, x.run, out)
        return out
    for k in range(region.shape[0]):
        image = region[k].astype(np.float64)
        top, bottom = image[y.first[k]], image[y.second[k]]
        a, b = y.w0[k][:, None], y.w1[k][:, None]
        # scipy's order of operations: t = 0; t += (pixel * wy) * wx over the 2 x 2
        total = (top[:, x.first[k]] * a) * x.w0[k] + 0.0
        total += (top[:, x.second[k]] * a) * x.w1[k]
        total += (bottom[:, x.first[k]] * b) * x.w0[k]
        total += (bottom[:, x.second[k]] * b) * x.w1[k]
        out[k] = total
        out[k, ~y.inside[k]] = np.nan
        out[k][:, ~x.inside[k]] = np.nan
    return out


_SCRATCH = threading.local()


def _scratch(shape: tuple, dtype) -> np.ndarray:
    """This thread's reusable array of ``shape`` (its old contents): a fresh 40 MB
    region per band costs as much in page faults as copying into it."""
    held = getattr(_SCRATCH, "array", None)
    if held is None or held.shape != shape or held.dtype != dtype:
        held = _SCRATCH.array = np.empty(shape, dtype)
    return held


def _correct_parts(parts: list, *, drift: np.ndarray, origin: tuple, rows: tuple, x: _Axis, shape: tuple,
                   dtype) -> np.ndarray:
    """One output block from the input pieces around it (a nested list, rows by columns).

    The pieces are copied into one region (this thread's, reused) by assignment
    (``np.block`` copies along the row axis at a third of that speed); ``x``, the columns' sampling, is the
    same for every band and computed once per column chunk.
    """
    if len(parts) == 1 and len(parts[0]) == 1:
        region = parts[0][0]
    else:
        lines = [line[0] if len(line) == 1 else np.concatenate(line, axis=2) for line in parts]
        region = _scratch((lines[0].shape[0], sum(p.shape[1] for p in lines), lines[0].shape[2]), lines[0].dtype)
        r = 0
        for line in lines:
            region[:, r : r + line.shape[1]] = line
            r += line.shape[1]
    y = _sampling(np.arange(*rows), drift[:, 0], shape[0], start=origin[0], size=region.shape[1], run=False)
    return _shift_region(region, y, x, dtype)


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
    graph, columns = {}, {}
    for i, (e0, e1) in enumerate(zip(edges[0][:-1], edges[0][1:])):
        for j, (r0, r1) in enumerate(zip(edges[1][:-1], edges[1][1:])):
            lo, hi = max(0, r0 - margin[0]), min(rows, r1 + margin[0])
            for k, (c0, c1) in enumerate(zip(edges[2][:-1], edges[2][1:])):
                left, right = max(0, c0 - margin[1]), min(cols, c1 + margin[1])
                if (i, k) not in columns:
                    columns[i, k] = _sampling(np.arange(c0, c1), drift[e0:e1, 1], cols, start=left, size=right - left)
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
                                rows=(int(r0), int(r1)), x=columns[i, k], shape=(rows, cols), dtype=dtype)
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
    y = _sampling(np.arange(rows), drift[:, 0], rows, start=0, size=rows, run=False)
    x = _sampling(np.arange(cols), drift[:, 1], cols, start=0, size=cols)
    return _shift_region(stack, y, x, dtype)


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
