"""Several stacks of a series mapped at once on a cluster, and the line that names those that failed.

On a dask.distributed cluster, :func:`~xafsmap.core.job.series.iter_series` hands each
stack to :func:`map_concurrently`: a few stacks (:data:`STACKS_IN_FLIGHT`) are prepared
and surveyed here at once, each in its own thread, and each submits its bands to the
cluster as soon as its survey is done. The bands of several stacks are then on the
workers together: the cluster maps stack 2 while the client still surveys stack 3, and
a stack's last few bands do not leave workers idle. Memory here stays bounded by the
stacks in flight (each holds its 2-D maps and its survey), whatever the length of the
series. A stack that fails does not stop the others; the series names it at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

__all__ = ["STACKS_IN_FLIGHT", "failure_line", "in_order", "map_concurrently"]

#: Stacks of a series mapped at once on a cluster.
STACKS_IN_FLIGHT = 3


def map_concurrently(one: Callable[[int, Any], Any], entries: Iterable[Any], *, in_flight: int = STACKS_IN_FLIGHT,
                     ) -> Iterator[tuple[int, Any, ValueError | OSError | None]]:
    """Run ``one(i, entry)`` for every entry, ``in_flight`` at once; yield each as it ends.

    Parameters
    ----------
    one : callable
        ``one(i, entry) -> result``; a ``ValueError`` or ``OSError`` it raises is the
        entry's failure, anything else is a bug and propagates.
    entries : sequence
    in_flight : int
        Entries running at once (threads).

    Yields
    ------
    (i, result, error) : tuple
        In the order they end: ``result`` and ``error`` None for a failure and a success.

    Examples
    --------
    >>> def one(i, entry):
    ...     if entry == "bad":
    ...         raise ValueError("unreadable")
    ...     return entry.upper()
    >>> sorted((i, r, str(e) if e else None) for i, r, e in map_concurrently(one, ["a", "bad", "c"]))
    [(0, 'A', None), (1, None, 'unreadable'), (2, 'C', None)]
    """
    if in_flight < 1:
        raise ValueError(f"in_flight must be at least 1, got {in_flight}")
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="xafsmap-series") as pool:
        futures = {pool.submit(one, i, entry): i for i, entry in enumerate(entries)}
        try:
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result(), None
                except (ValueError, OSError) as error:
                    yield futures[future], None, error
        finally:  # stopped early (an error, a cancel): the stacks not started are not started
            for future in futures:
                future.cancel()


def in_order(rows: dict) -> list:
    """The values of ``{index: row}`` in the order of the indices.

    >>> in_order({2: "c", 0: "a"})
    ['a', 'c']
    """
    return [rows[i] for i in sorted(rows)]


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.strerror}: {error.filename}"
    return str(error)


def failure_line(failed: Sequence[tuple[int, BaseException]], entries: Sequence[dict], rows: dict, out: Path, *,
                 table: str = "series.csv") -> str:
    """One line naming the stacks that failed and saying what is kept.

    Parameters
    ----------
    failed : list of (int, Exception)
        Index in the series and error of each failed stack.
    entries : list of dict
        The series' stacks (``path`` of each).
    rows : dict of int to dict
        The stacks mapped (or skipped as done), by index.
    out : Path
        The series folder.

    Examples
    --------
    >>> entries = [{"path": f"/d/s{i}.tif"} for i in (1, 2, 3)]
    >>> failure_line([(1, ValueError("not a TIFF"))], entries, {0: {}}, Path("/o"))
    'stack 2 of 3 (/d/s2.tif): not a TIFF; the 1 stack(s) before it are mapped in /o and listed in series.csv; rerun to resume'
    >>> failure_line([(1, ValueError("not a TIFF"))], entries, {0: {}, 2: {}}, Path("/o"))
    'stack 2 of 3 (/d/s2.tif): not a TIFF; the other 2 stack(s) are mapped in /o and listed in series.csv; rerun to resume'
    """
    n = len(entries)
    failed = sorted(failed, key=lambda item: item[0])
    named = "; ".join(f"stack {i + 1} of {n} ({entries[i]['path']}): {_reason(error)}" for i, error in failed)
    if len(failed) > 1:
        named = f"{len(failed)} stacks failed: {named}"
    if not rows:
        kept = "no stack was mapped"
    elif len(failed) == 1 and max(rows) < failed[0][0]:
        kept = f"the {len(rows)} stack(s) before it are mapped in {out} and listed in {table}"
    else:
        kept = f"the other {len(rows)} stack(s) are mapped in {out} and listed in {table}"
    return f"{named}; {kept}; rerun to resume"
