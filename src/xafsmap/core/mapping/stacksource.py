"""A stack described by its files, so that a cluster worker can open it (and redo its preparation).

:func:`stack_source` turns a :class:`~xafsmap.core.io.stack.Stack` read from files (and
perhaps prepared with :func:`~xafsmap.core.prepare.steps.prepare_stack`) into a small
:class:`StackSource`: paths cross the network, never pixels. :func:`open_source`
re-reads the files and redoes the recorded preparation, once per worker process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..io.stack import IN_MEMORY

if TYPE_CHECKING:
    from ..io.stack import Stack

__all__ = ["StackSource", "open_source", "stack_source"]

_ROLES = ("flat", "dark", "i0")


@dataclass(frozen=True, eq=False)
class StackSource:
    """How a worker re-opens a stack: its files, its preparation, and what the client saw.

    Attributes
    ----------
    path : str
        The stack (as given to :func:`~xafsmap.core.io.stack.read_stack`).
    energies : ndarray, shape (E,), float64
        Energies in eV of the stack to map (after preparation).
    flat, dark, i0 : str or None
        Files of the flat field, dark and incident-beam spectrum, if any.
    shape : tuple of int
        (E, M, N) of the stack to map as the client built it; a worker that builds
        another shape refuses.
    name : str
        The client's dask name of the stack to map: identifies the files and the
        preparation (a worker's cache key).
    read_energies : ndarray, shape (E0,), float64
        Energies in eV given to ``read_stack`` (before preparation).
    preparation : tuple of xafsmap.core.prepare.steps.Preparation
        The ``prepare_stack`` steps to redo after reading, oldest first.
    axes : str or None
        The order of an HDF5 dataset's dimensions as given to ``read_stack`` (``"XYE"``).
    """

    path: str
    energies: np.ndarray
    flat: str | None
    dark: str | None
    i0: str | None
    shape: tuple
    name: str
    read_energies: np.ndarray
    preparation: tuple = ()
    axes: str | None = None

    def key(self) -> tuple:
        """Hashable identity (for the per-worker cache of opened stacks)."""
        return (self.path, self.axes, self.flat, self.dark, self.i0, self.shape, self.name, self.energies.tobytes(),
                self.read_energies.tobytes())


def stack_source(stack: Stack) -> StackSource:
    """Describe a stack opened with :func:`~xafsmap.core.io.stack.read_stack` by its files.

    The stack may have been prepared with :func:`~xafsmap.core.prepare.steps.prepare_stack`
    (drift, shift map, region of interest, binning, in one call or several): the
    steps recorded on it travel along, and a worker redoes them after reading.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack

    Returns
    -------
    StackSource

    Raises
    ------
    ValueError
        If the stack, or its flat, dark or i0, was given as an in-memory array (a
        worker on another machine cannot read it), or if the stack was changed after
        reading in any other way than ``prepare_stack`` (sliced, scaled, replaced):
        its lazy graph differs from the one ``read_stack`` and the recorded
        ``prepare_stack`` steps build from the files, which is what workers would map.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xafsmap.core.io.stack import read_stack, write_stack
    >>> from xafsmap.core.prepare.steps import prepare_stack
    >>> f = write_stack(pathlib.Path(tempfile.mkdtemp()) / "s.tif",
    ...                 np.ones((3, 4, 6), np.float32), [7100.0, 7110.0, 7120.0])
    >>> stack_source(read_stack(f)).shape
    (3, 4, 6)
    >>> stack_source(prepare_stack(read_stack(f), roi=(0, 4, 2, 6), factor=2)[0]).shape
    (3, 2, 2)
    """
    sources = stack.sources
    path = sources.get("stack")
    given = {role: sources.get(role) for role in _ROLES}
    arrays = [role for role in ("stack", *_ROLES) if sources.get(role) == IN_MEMORY]
    if path is None or arrays:
        arrays = arrays or ["stack"]
        raise ValueError(
            f"the {', '.join(arrays)} of this stack {'was' if len(arrays) == 1 else 'were'} given as an array: "
            "a distributed run needs files that workers can open (read_stack(path, flat=path, ...))"
        )
    steps = tuple(getattr(stack, "preparation", ()))
    name = getattr(stack.data, "name", None)
    source = StackSource(path=str(path), energies=np.asarray(stack.energies, dtype=np.float64),
                         shape=tuple(int(n) for n in stack.data.shape), name=str(name),
                         read_energies=np.asarray(steps[0].energies if steps else stack.energies, dtype=np.float64),
                         preparation=steps, axes=sources.get("axes"), **given)
    if name is None or _reopen(source).data.name != name:
        redo = f" and its {len(steps)} recorded prepare_stack step{'s' * (len(steps) != 1)}" if steps else ""
        raise ValueError(
            f"this stack {source.shape} is not what read_stack gives from its files{redo}: it was changed "
            "after reading in another way (sliced, scaled, replaced), which workers cannot redo; prepare it "
            "with xafsmap.core.prepare.steps.prepare_stack (drift, shift, roi, factor) or map it without a cluster"
        )
    return source


def _reopen(source: StackSource, *, band: int | None = None):
    """Read the stack's files and redo its preparation (lazily; no pixel is read).

    With ``band`` (rows of the prepared stack per task) the raw rows are chunked so
    that each band of the prepared stack is built from exactly the raw rows it needs:
    then computing one band reads only those (see :func:`_raw_edges`).
    """
    from ..io.stack import read_stack
    from ..prepare.steps import prepare_stack

    stack = read_stack(source.path, energies=source.read_energies, flat=source.flat, dark=source.dark,
                       i0=source.i0, axes=source.axes)
    if band is not None and source.preparation:
        edges = _raw_edges(source.preparation, source.shape[1], band, stack.data.shape[1])
        stack = replace(stack, data=stack.data.rechunk({1: tuple(np.diff(edges).tolist())}))
    for step in source.preparation:
        stack, _ = prepare_stack(stack, drift=step.drift, shift=step.shift, roi=step.roi, factor=step.factor)
    return stack


def _raw_edges(steps, rows: int, band: int, raw_rows: int) -> np.ndarray:
    """Raw row boundaries of the bands ``[0, band), [band, 2 band), ...`` of the prepared stack.

    Each step maps a row boundary of its output back to its input: binning by f
    multiplies it by f, a region of interest adds its first row; drift and shift keep
    rows. Raw chunks cut at these boundaries line up with the bands through every
    step (binning rechunks to its largest chunk, which is then one band).
    """
    edges = np.append(np.arange(0, rows, band), rows).astype(np.int64)
    for step in reversed(steps):
        edges = edges * int(step.factor) + (int(step.roi[0]) if step.roi is not None else 0)
    return np.unique(np.clip(np.concatenate([[0], edges, [raw_rows]]), 0, raw_rows))


_OPENED: dict = {}


def open_source(source: StackSource, band: int | None = None) -> Stack:
    """The stack behind ``source``, opened (and prepared) once per worker process."""
    key = (source.key(), band)
    stack = _OPENED.get(key)
    if stack is None:
        stack = _reopen(source, band=band)
        if tuple(stack.data.shape) != source.shape or not np.array_equal(stack.energies, source.energies):
            raise ValueError(
                f"worker on {os.uname().nodename} builds {source.path} as shape {tuple(stack.data.shape)} with "
                f"{stack.energies.size} energies, the client as {source.shape}: is it the same file there?"
            )
        _OPENED.clear()  # one stack at a time: keep the worker's memory flat
        _OPENED[key] = stack
    return stack


