"""Correcting the image drift across energies, lazily, and summarizing it.

:func:`correct_drift` moves every image back by its drift (measured by
:func:`~xafsmap.core.prepare.register.measure_drift`, same convention), band by band for
a dask stack so each band reads only the rows it needs; :func:`drift_report` gives the
numbers report.json and the Prepare dock show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .._arrays import array_source, is_dask
from .register import check_drift_stack

if TYPE_CHECKING:
    import dask.array as da

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


def _margin(drift: np.ndarray) -> int:
    """Source pixels beyond a block that a bilinear move by at most ``max |drift|`` reads."""
    return int(np.ceil(np.abs(drift).max(initial=0.0))) + 1


def _runs(index: np.ndarray, margin: int) -> list:
    """Split sorted positions into runs whose source windows (``margin`` either side) touch."""
    if index.size == 0:
        return []
    cut = np.flatnonzero(np.diff(index) > 2 * margin + 1) + 1
    return np.split(index, cut)


class _DriftCorrected:
    """Array-like (E, M, N): the stack's images moved back by their drift, computed on indexing.

    ``dask.array.from_array`` over it fuses any slicing of the corrected stack into one
    indexing here, so a band reads only its raw rows plus the margin, and a sparse
    subgrid (the survey's every 36th row) reads and corrects only the rows it asks for,
    not the bands around them. The raw pixels are read in the calling thread, in one
    call from the raw stack's source when it has one (a TIFF: one positioned read per
    page, not a task per chunk under the rows and their concatenation), else by
    computing the slice of the raw dask array.
    """

    def __init__(self, raw, drift: np.ndarray, dtype):
        self.raw, self.drift, self.dtype = raw, drift, np.dtype(dtype)
        self.source = array_source(raw)
        self.shape, self.ndim = tuple(raw.shape), 3
        self.margin = (_margin(drift[:, 0]), _margin(drift[:, 1]))
        self._columns: dict = {}

    def _x(self, energies: slice, cols: np.ndarray, left: int, right: int) -> _Axis:
        """The columns' sampling, the same for every band: computed once per column selection."""
        key = (energies.indices(self.shape[0]), cols[0], cols[-1], cols.size, left, right)
        x = self._columns.get(key)
        if x is None:
            x = self._columns[key] = _sampling(cols, self.drift[energies, 1], self.shape[2], start=left,
                                               size=right - left)
        return x

    def _read(self, energies: slice, rows: slice, cols: slice) -> np.ndarray:
        if self.source is not None:
            return np.asarray(self.source[energies, rows, cols])
        region = self.raw[energies, rows, cols]
        return np.asarray(region.compute(scheduler="synchronous") if hasattr(region, "compute") else region)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3 or not all(isinstance(k, slice) for k in key) or key[0].step not in (None, 1):
            # anything but slices (not what dask's chunk reads ask): the box around it, then numpy indexing
            return self[:, :, :][key]
        energies = slice(*key[0].indices(self.shape[0])[:2])
        _, m, n = self.shape
        rows, cols = np.arange(m)[key[1]], np.arange(n)[key[2]]
        out = np.empty((energies.stop - energies.start, rows.size, cols.size), self.dtype)
        if out.size == 0:
            return out
        order = np.argsort(rows, kind="stable")  # a negative step: sorted here, put back below
        left, right = max(0, cols.min() - self.margin[1]), min(n, cols.max() + 1 + self.margin[1])
        ordered = cols if cols[0] <= cols[-1] else cols[::-1]
        x = self._x(energies, ordered, int(left), int(right))
        done = 0
        for run in _runs(rows[order], self.margin[0]):
            lo, hi = max(0, run[0] - self.margin[0]), min(m, run[-1] + 1 + self.margin[0])
            region = self._read(energies, slice(lo, hi), slice(left, right))
            y = _sampling(run, self.drift[energies, 0], m, start=int(lo), size=hi - lo, run=False)
            block = _shift_region(region, y, x, self.dtype)
            out[:, order[done : done + run.size]] = block if cols[0] <= cols[-1] else block[:, :, ::-1]
            done += run.size
        return out


def _correct_lazy(stack, drift: np.ndarray, dtype):
    """The corrected stack as a dask array with the input's chunks, read through :class:`_DriftCorrected`.

    Each block's task asks :class:`_DriftCorrected` for its pixels; a slice of the result
    is fused into that request, so only what is asked for is read and corrected (the
    previous graph of slices of the neighbouring chunks computed whole bands for a
    subgrid, i.e. read and corrected the whole stack for the survey).
    """
    import dask.array as da
    from dask.base import tokenize

    name = f"correct_drift-{tokenize(stack.name, drift, dtype)}"
    return da.from_array(_DriftCorrected(stack, drift, dtype), chunks=stack.chunks, name=name, lock=False,
                         asarray=False, meta=np.empty((0, 0, 0), dtype))


def correct_drift(stack: np.ndarray | da.Array, drift: np.ndarray) -> np.ndarray | da.Array:
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


def drift_report(drift: np.ndarray) -> dict:
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
