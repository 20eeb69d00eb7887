"""Writing bands of rows into a chunked array (Zarr) as whole chunks, in a background thread.

The mapping loop writes maps a band of rows at a time (~11 rows of a 1700-column stack),
two bands at once. Written straight into Zarr that is one small chunk per band and map,
each costing ~1.4 ms of zarr's machinery on the mapping threads (8 s of a 22 s run on
5.7 GB). A :class:`BufferedArray` collects the rows in memory instead; once every row of
a chunk is there, one background thread (:class:`ChunkWriter`, shared by the maps of a
store) compresses and writes that chunk, whole and once, while the next bands are mapped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["BufferedArray", "ChunkWriter"]


class ChunkWriter:
    """One background thread that writes chunks, and the writes still to finish.

    Examples
    --------
    >>> target = np.zeros(3)
    >>> writer = ChunkWriter()
    >>> writer.submit(target.__setitem__, slice(0, 2), 7.0)
    >>> writer.wait()
    >>> target.tolist()
    [7.0, 7.0, 0.0]
    """

    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._lock = threading.Lock()

    def submit(self, function: Callable[..., object], *args: Any) -> None:
        """Run ``function(*args)`` in the writer's thread (started on first use)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="xafsmap-chunks")
            self._pending = [f for f in self._pending if not f.done() or f.exception() is not None]
            self._pending.append(self._pool.submit(function, *args))

    def wait(self) -> None:
        """Wait for every write submitted so far, stop the thread; raise the first write's error."""
        with self._lock:
            pending, self._pending = self._pending, []
            pool, self._pool = self._pool, None
        try:
            for future in pending:
                future.result()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)


class BufferedArray:
    """A chunked array (rows on axis -2) that receives whole rows and writes whole chunks.

    ``array[..., r0:r1, :] = block`` (all of every other axis, as
    :func:`~xafsmap.core.mapping.pipeline.map_band_into` and
    :func:`~xafsmap.core.mapping.zarrmaps.copy_maps` write) goes into an in-memory copy
    of the chunks it touches; a chunk whose rows have all arrived is handed to the
    writer. Safe for bands written at once from several threads (disjoint rows). Any
    other assignment, and every read, first writes out what is buffered and waits, so
    reads see everything written before them. ``shape``, ``dtype``, ``chunks``,
    ``fill_value`` and any other attribute are the array's.

    Parameters
    ----------
    array : zarr.Array or array-like with ``chunks``
        The target, chunked along the row axis (axis -2).
    writer : ChunkWriter
        The thread that writes (one per store, shared by its maps).

    Examples
    --------
    >>> import zarr
    >>> target = zarr.zeros((2, 6, 3), chunks=(1, 4, 3), dtype="f4")
    >>> buffered = BufferedArray(target, ChunkWriter())
    >>> buffered[:, 0:2] = 1.0
    >>> float(target[0, 0, 0])  # rows 2 and 3 of the chunk are still missing
    0.0
    >>> buffered[:, 2:4] = 2.0; buffered.flush()
    >>> target[0, :, 0].tolist()
    [1.0, 1.0, 2.0, 2.0, 0.0, 0.0]
    """

    #: Rows may arrive in any grouping (:func:`~xafsmap.core.mapping.maps.check_maps`).
    buffers_rows = True

    def __init__(self, array, writer: ChunkWriter):
        self.array = array
        self.writer = writer
        self._rows = int(array.chunks[-2])
        self._chunks: dict[int, list] = {}  # chunk index -> [buffer, rows still missing]
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.array, name)

    def __len__(self) -> int:
        return len(self.array)

    def _row_slice(self, key) -> slice | None:
        """The rows of ``key`` if it selects whole rows (everything on every other axis)."""
        key = key if isinstance(key, tuple) else (key,)
        ndim = len(self.array.shape)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:at] + (slice(None),) * (ndim - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (ndim - len(key))
        rows = key[-2]
        whole = all(isinstance(k, slice) and k.indices(n) == (0, n, 1)
                    for i, (k, n) in enumerate(zip(key, self.array.shape)) if i != ndim - 2)
        if len(key) != ndim or not whole or not isinstance(rows, slice) or rows.step not in (None, 1):
            return None
        return slice(*rows.indices(self.array.shape[-2])[:2])

    def __setitem__(self, key, value) -> None:
        rows = self._row_slice(key)
        if rows is None:
            self.flush()
            self.array[key] = value
            return
        value = np.broadcast_to(np.asarray(value, dtype=self.array.dtype),
                                (*self.array.shape[:-2], rows.stop - rows.start, self.array.shape[-1]))
        n = self.array.shape[-2]
        for index in range(rows.start // self._rows, -(-rows.stop // self._rows)):
            c0, c1 = index * self._rows, min(n, (index + 1) * self._rows)
            lo, hi = max(c0, rows.start), min(c1, rows.stop)
            with self._lock:
                held = self._chunks.get(index)
                if held is None:
                    held = self._chunks[index] = [np.full((*self.array.shape[:-2], c1 - c0, self.array.shape[-1]),
                                                          self.array.fill_value, self.array.dtype), c1 - c0]
                held[0][..., lo - c0 : hi - c0, :] = value[..., lo - rows.start : hi - rows.start, :]
                held[1] -= hi - lo  # bands write disjoint rows, each once
                done = held[1] <= 0
                if done:
                    del self._chunks[index]
            if done:
                self.writer.submit(self._write, c0, held[0])

    def _write(self, r0: int, block: np.ndarray) -> None:
        self.array[..., r0 : r0 + block.shape[-2], :] = block

    def flush(self) -> None:
        """Write out every buffered chunk (complete or not) and wait for all writes."""
        with self._lock:
            held, self._chunks = self._chunks, {}
        for index, (block, _) in sorted(held.items()):
            self.writer.submit(self._write, index * self._rows, block)
        self.writer.wait()

    def __getitem__(self, key):
        self.flush()
        return self.array[key]

    def __array__(self, dtype=None, copy=None):
        data = self[...]
        return data if dtype is None else data.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"BufferedArray({self.array!r})"
