"""Map a volume (E, Z, Y, X) over a dask.distributed cluster: one task per slice.

The single-process path (:func:`~xafsmap.core.mapping.volume.iter_map_volume`) maps the
slices one after another. Here each slice is a task on a worker, as a band is for a
2-D stack (:mod:`~xafsmap.core.mapping.parallel`): the worker opens the volume from its
path (paths cross the network, never voxels), takes its slice, redoes the slice's
preparation (the :func:`~xafsmap.core.prepare.steps.prepare_stack` steps recorded on it:
the drift measured on the projection, the shift map, ROI, binning), maps it with the
very code of the single-process path (:func:`~xafsmap.core.mapping.volume.map_slice`:
the 2-D band pipeline with the model seen from the slice's rows) and returns the slice's
2-D maps, which the client writes into the 3-D maps. The model and the volume's
description are scattered once. So the maps equal the single-process run's, bit for bit.

A slice rather than a band is the task: a slice whose chunks are whole images (a folder
of slice TIFFs) is read once, whole, as in one process; read in bands on several
workers every image would be read once per band.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model.training import Model
from .maps import CHANNEL_MAPS
from .pipeline import finish_map

if TYPE_CHECKING:
    from distributed import Client

    from ..io.stack import Stack
    from ..io.volume import Volume
    from ..prepare.steps import Preparation
    from .pipeline import MapResult

__all__ = ["VolumeSource", "iter_map_volume_distributed", "map_slice_from_file", "volume_source"]


@dataclass(frozen=True, eq=False)
class VolumeSource:
    """How a worker re-opens a volume's slices: its path, energies, axes and the slices' preparation.

    Attributes
    ----------
    path : str
        The volume as given to :func:`~xafsmap.core.io.volume.read_volume`.
    read_energies : ndarray, shape (E,), float64
        Its energies in eV as read.
    axes : str or None
        The stored order given to ``read_volume``.
    preparation : tuple of xafsmap.core.prepare.steps.Preparation
        The ``prepare_stack`` steps of every slice (the same for each), oldest first.
    shape : tuple of int
        (E, Y, X) of a prepared slice as the client built it.
    energies : ndarray, shape (E,), float64
        Energies of a prepared slice.
    """

    path: str
    read_energies: np.ndarray
    axes: str | None
    preparation: tuple
    shape: tuple
    energies: np.ndarray

    def key(self) -> tuple:
        """Hashable identity of the volume as read (a worker's cache key)."""
        return self.path, self.axes, self.read_energies.tobytes()


def volume_source(volume: Volume, slices: Sequence[Stack]) -> VolumeSource:
    """Describe a volume read by :func:`~xafsmap.core.io.volume.read_volume` and its prepared slices.

    Parameters
    ----------
    volume : xafsmap.core.io.volume.Volume
    slices : sequence of Stack
        Its prepared slices (all with the same preparation steps).

    Raises
    ------
    ValueError
        If the slices were prepared differently (a worker redoes one preparation for all).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xafsmap.core.io.volume import read_volume, volume_slice, write_volume
    >>> f = write_volume(pathlib.Path(tempfile.mkdtemp()) / "v.tif", np.ones((3, 2, 4, 5), np.float32),
    ...                  [7100.0, 7110.0, 7120.0])
    >>> v = read_volume(f)
    >>> volume_source(v, [volume_slice(v, z) for z in range(2)]).shape
    (3, 4, 5)
    """
    steps = [tuple(getattr(s, "preparation", ())) for s in slices]
    if any(len(s) != len(steps[0]) or not all(map(_same_step, s, steps[0])) for s in steps):
        raise ValueError("the slices of this volume were prepared differently: a cluster redoes one preparation "
                         "for every slice (prepare them with one drift, shift map, ROI and bin factor)")
    first = slices[0]
    return VolumeSource(str(volume.sources["stack"]), np.asarray(volume.energies, np.float64),
                        volume.sources.get("axes"), steps[0], tuple(int(n) for n in first.data.shape),
                        np.asarray(first.energies, np.float64))


def _same_step(a: Preparation, b: Preparation) -> bool:
    def same(x: Any, y: Any) -> bool:
        return (x is None) == (y is None) and (x is y or x is None or np.array_equal(np.asarray(x), np.asarray(y)))

    return (same(a.drift, b.drift) and (a.shift is None) == (b.shift is None) and a.roi == b.roi
            and a.factor == b.factor and np.array_equal(a.energies, b.energies))


_OPENED: dict = {}


def open_volume_slice(source: VolumeSource, z: int) -> Stack:
    """Slice ``z`` of the volume behind ``source``, prepared (the volume is opened once per worker process)."""
    from ..io.volume import read_volume, volume_slice
    from ..prepare.steps import prepare_stack

    volume = _OPENED.get(source.key())
    if volume is None:
        volume = read_volume(source.path, energies=source.read_energies, axes=source.axes)
        _OPENED.clear()  # one volume at a time: keep the worker's memory flat
        _OPENED[source.key()] = volume
    stack = volume_slice(volume, z)
    for step in source.preparation:
        stack, _ = prepare_stack(stack, drift=step.drift, shift=step.shift, roi=step.roi, factor=step.factor)
    if tuple(stack.data.shape) != source.shape or not np.array_equal(stack.energies, source.energies):
        raise ValueError(f"worker on {os.uname().nodename} builds slice {z} of {source.path} as shape "
                         f"{tuple(stack.data.shape)} with {stack.energies.size} energies, the client as "
                         f"{source.shape}: is it the same file there?")
    return stack


def map_slice_from_file(source: VolumeSource, z: int, model: Model, *, metric: str, thick: float) -> dict:
    """Read slice ``z`` of a volume from its files and map it (a worker's task).

    Returns
    -------
    dict of str to ndarray
        The slice's 2-D maps, (Y, X) each, ``fractions`` and ``fraction_sigma`` (K, Y, X).
    """
    from joblib import parallel_config

    from .volume import map_slice

    # worker processes are daemons: joblib's process pool is not allowed there, threads are
    with parallel_config(backend="threading"):
        return map_slice(open_volume_slice(source, z), model, z, metric=metric, thick=thick)


def iter_map_volume_distributed(source: VolumeSource, n_slices: int, model: Model, maps: dict, *, client: Client,
                                metric: str = "euclidean") -> Generator[tuple[int, int], None, MapResult]:
    """Map every slice of a volume on a cluster into 3-D ``maps``, one task per slice.

    Parameters
    ----------
    source : VolumeSource
    n_slices : int
        Z.
    model : Model
        Trained on the volume's :func:`~xafsmap.core.mapping.volume.tall_stack`.
    maps : dict
        The 3-D maps to fill (:func:`~xafsmap.core.mapping.volume.open_volume_store`).
    client : distributed.Client
    metric : str

    Yields
    ------
    (done, total) : tuple of int
        Slices mapped (in any order) out of all.

    Returns
    -------
    MapResult
        Equal to :func:`~xafsmap.core.mapping.volume.iter_map_volume`'s.
    """
    from distributed import as_completed

    if not np.array_equal(source.energies, model.classifier.energies):
        raise ValueError("the model was trained on other energies than this volume's")
    tic, thick = time.perf_counter(), model.thick.limit
    [shared, where] = client.scatter([model, source], broadcast=True, hash=False)
    tag = f"{os.path.basename(source.path.rstrip('/'))}-{os.getpid()}-{time.time_ns()}"
    futures = {client.submit(map_slice_from_file, where, z, shared, metric=metric, thick=thick, pure=False,
                             key=f"xafsmap-slice-{tag}-{z}"): z for z in range(n_slices)}
    try:
        for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
            z, part = futures[future], future.result()
            future.release()
            for name, value in part.items():
                if name in CHANNEL_MAPS:
                    maps[name][:, z] = value
                else:
                    maps[name][z] = value
            yield done, n_slices
    finally:
        client.cancel(list(futures))
        shared.release()
        where.release()
    timings = {"map_s": time.perf_counter() - tic, "workers": len(client.scheduler_info()["workers"])}
    return finish_map(model, maps, metric=metric, thick=thick, timings=timings)
