"""Reading one part of every energy image, in energy order, and working on two at once.

What the drift measurement (:mod:`~xafsmap.core.prepare.register`) reads: a region of
every image, a few images in memory at a time, the next read overlapping the work.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .._arrays import array_source, is_dask

if TYPE_CHECKING:
    import dask.array as da

T = TypeVar("T")

__all__ = ["map_images", "part_reader", "read_images"]

#: Images whose regions are read together.
GROUP = 2
#: Threads working on images at once.
WORKERS = 2


def map_images(stack: np.ndarray | da.Array, rows: slice, cols: slice, work: Callable[[np.ndarray], T], *,
               skip: int | None = None) -> Iterator[tuple[int, T]]:
    """Yield ``(i, work(stack[i, rows, cols]))`` for every image but ``skip``, in energy
    order, computed on ``WORKERS`` threads while the reader fetches the next images.

    The transforms, the array arithmetic, the compiled feature and the matrix products
    release the GIL, so two images are worked on at once; BLAS is held to one thread
    meanwhile: its own threads, competing with ours (and with other work on a busy
    machine), took 72 ms for the 5 ms product of the upsampled DFT. At most
    ``2 * WORKERS`` images wait in memory.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(WORKERS) as pool:
        pending = deque()
        for i, part in read_images(stack, rows, cols):
            if i != skip:
                pending.append((i, pool.submit(work, part)))
            while len(pending) > 2 * WORKERS:
                done, result = pending.popleft()
                yield done, result.result()
        for done, result in pending:
            yield done, result.result()


def part_reader(stack: np.ndarray | da.Array) -> Callable[[tuple], np.ndarray]:
    """``read(key)``: the part ``stack[key]`` (a tuple of slices) as a numpy array,
    read from the stack's source in one call when it has one
    (:func:`~xafsmap.core._arrays.array_source`), else
    a dask part computed in this thread (a few tasks per image region, for which the
    threaded scheduler's hand-offs cost more than the reads: 55 vs 34 ms)."""
    source = array_source(stack)
    if source is not None:
        return lambda key: np.asarray(source[key])
    if is_dask(stack):
        return lambda key: np.asarray(stack[key].compute(scheduler="synchronous"))
    return lambda key: np.asarray(stack[key])


def read_images(stack: np.ndarray | da.Array, rows: slice, cols: slice) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(i, stack[i, rows, cols])`` as numpy arrays for every image, in energy order.

    A dask stack is computed ``GROUP`` images at a time (a read costs per task, i.e.
    per chunk under the part, about as much for two images as for one: 31 vs 16 ms per
    image for 1056 rows of a 4000 x 1700 TIFF in 11-row bands) and in a second thread
    while the caller works on the previous group: at most 2 * ``GROUP`` parts in
    memory. One indexing per read: a chained ``stack[i][rows, cols]`` is not fused into
    the read and computes whole images.
    """
    e = stack.shape[0]
    if not is_dask(stack):
        for i in range(e):
            yield i, np.asarray(stack[i, rows, cols])
        return
    read = part_reader(stack)
    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(read, np.s_[0:GROUP, rows, cols])
        for start in range(0, e, GROUP):
            part = pending.result()
            if start + GROUP < e:
                pending = reader.submit(read, np.s_[start + GROUP : start + 2 * GROUP, rows, cols])
            yield from enumerate(part, start)
