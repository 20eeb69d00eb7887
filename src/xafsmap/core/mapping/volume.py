"""Mapping a volume (E, Z, Y, X) voxel by voxel: one model, slice by slice, maps on disk.

A volume is mapped as the stack of its slices laid one under another, ``Z * Y`` rows of
``X`` columns (:func:`tall_stack`): the survey and the training see pixels of every slice
(noise model, mask rule, e0, thick limit), and the noise model's field ``g`` is a smooth
function of that tall grid, i.e. of (z, y, x). Each slice (E, Y, X) is then mapped by
:func:`~xafsmap.core.mapping.pipeline.iter_classify` with the model seen from its own
rows (:func:`slice_model`), so a slice mapped here equals the same slice mapped as a 2-D
stack with that model. Each slice's maps go to a Zarr store of 3-D maps (one chunk per
slice, :func:`open_volume_store`) and from there, a slice at a time, into the TIFFs
(:func:`write_volume_files`): memory holds one slice and its maps, whatever ``Z``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.stack import Stack
from ..model.training import Model
from .maps import CHANNEL_MAPS, new_maps
from .output import make_report, write_map_tables, write_report
from .pipeline import MapResult, count_bands, drive, finish_map, iter_classify

if TYPE_CHECKING:
    from ..prepare.shiftmap import ShiftMap

__all__ = ["SLICE_BYTES", "iter_map_volume", "map_slice", "map_volume", "open_volume_store", "slice_model", "tall_stack",
           "write_volume_files"]

#: A slice whose chunks are whole images (slice TIFFs, compressed pages) is read whole
#: when it holds at most this many bytes (reading it in bands would read every image
#: once per band); a larger one is read in bands.
SLICE_BYTES = 2 * 2**30


def tall_stack(slices: Sequence[Stack]) -> Stack:
    """The slices (E, Y, X) of a volume laid one under another: a lazy stack (E, Z * Y, X).

    >>> import dask.array as da
    >>> s = Stack(da.zeros((3, 4, 5), dtype=np.float32), np.array([1.0, 2.0, 3.0]), {"stack": "v.tif"})
    >>> tall_stack([s, s]).data.shape
    (3, 8, 5)
    """
    import dask.array as da

    first = slices[0]
    return Stack(da.concatenate([da.asarray(s.data) for s in slices], axis=1), first.energies,
                 dict(first.sources), notes=first.notes)


def slice_model(model: Model, z: int, rows: int) -> Model:
    """The model trained on a :func:`tall_stack` as seen from slice ``z`` of ``rows`` rows.

    The noise model's field is moved up by ``z * rows`` rows, so row ``y`` of the slice
    gets the noise scale of row ``z * rows + y`` of the tall stack; everything else is the
    model itself.
    """
    noise = model.survey.noise_model
    moved = replace(noise, field_rows=np.asarray(noise.field_rows, np.float64) - z * rows)
    return replace(model, survey=replace(model.survey, noise_model=moved))


def open_volume_store(path: str | os.PathLike, k: int, slices: int, rows: int, cols: int) -> dict:
    """Create a Zarr store of empty 3-D maps, one chunk per slice (per reference for the fractions).

    Returns
    -------
    dict of zarr.Array
        The maps of :func:`~xafsmap.core.mapping.maps.new_maps` with a slice axis:
        (Z, Y, X), and (K, Z, Y, X) for ``fractions`` and ``fraction_sigma``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> maps = open_volume_store(pathlib.Path(tempfile.mkdtemp()) / "v.zarr", 3, 4, 20, 30)
    >>> maps["fractions"].shape, maps["labels"].chunks
    ((3, 4, 20, 30), (1, 20, 30))
    """
    import zarr

    root = zarr.create_group(Path(path), zarr_format=3)
    maps = {}
    for name, empty in new_maps(k, 1, 1).items():
        channels = name in CHANNEL_MAPS
        shape = (k, slices, rows, cols) if channels else (slices, rows, cols)
        chunks = (1, 1, rows, cols) if channels else (1, rows, cols)
        fill = empty.ravel()[0].item()
        maps[name] = root.create_array(name, shape=shape, chunks=chunks, dtype=empty.dtype, fill_value=fill,
                                       compressors=None)
    return maps


def _in_memory(stack: Stack) -> Stack:
    """A slice whose chunks are whole images, read once (see :data:`SLICE_BYTES`)."""
    data = stack.data
    chunks = getattr(data, "chunks", None)
    if chunks is None or len(chunks[0]) == 1 or data.nbytes > SLICE_BYTES:
        return stack
    return replace(stack, data=np.asarray(data, dtype=np.float32))


def map_slice(stack: Stack, model: Model, z: int, *, metric: str, thick: float) -> dict:
    """Map slice ``z`` (E, Y, X) of a volume with the volume's model: its 2-D maps by name.

    The 2-D band pipeline with the model seen from the slice's rows (:func:`slice_model`),
    the slice read whole when its chunks are whole images (:data:`SLICE_BYTES`); in this
    process or on a cluster worker (:mod:`~xafsmap.core.mapping.volumecluster`).
    """
    result = drive(iter_classify(_in_memory(stack), slice_model(model, z, stack.data.shape[1]), metric=metric,
                                 thick=thick))
    return {name: getattr(result, name) for name in new_maps(1, 1, 1)}


def iter_map_volume(slices: Sequence[Stack], model: Model, maps: dict, *,
                    metric: str = "euclidean") -> Generator[tuple[int, int], None, MapResult]:
    """Map every slice of a volume with one model into 3-D ``maps`` (:func:`open_volume_store`).

    Parameters
    ----------
    slices : sequence of Stack
        The prepared slices (E, Y, X), lazy, in order; ``model`` was trained on their
        :func:`tall_stack`.
    model : Model
    maps : dict
        The 3-D maps to fill.
    metric : str

    Yields
    ------
    (done, total) : tuple of int
        Bands mapped, over all slices.

    Returns
    -------
    MapResult
        Its maps are ``maps`` (3-D); counts and warnings over the whole volume.
    """
    tic = time.perf_counter()
    shape = slices[0].data.shape
    per_slice = count_bands(shape)
    total, done = per_slice * len(slices), 0
    thick = model.thick.limit
    for z, stack in enumerate(slices):
        bands = iter_classify(_in_memory(stack), slice_model(model, z, shape[1]), metric=metric, thick=thick)
        while True:
            try:
                step, _ = next(bands)
            except StopIteration as stop:
                result = stop.value
                break
            yield done + step, total
        done += per_slice
        for name in maps:
            if name in CHANNEL_MAPS:
                maps[name][:, z] = getattr(result, name)
            else:
                maps[name][z] = getattr(result, name)
    return finish_map(model, maps, metric=metric, thick=thick, timings={"map_s": time.perf_counter() - tic})


def map_volume(slices: Sequence[Stack], model: Model, maps: dict, *, metric: str = "euclidean",
               progress: Callable[[int, int], None] | None = None) -> MapResult:
    """Run :func:`iter_map_volume` to the end."""
    return drive(iter_map_volume(slices, model, maps, metric=metric), progress)


def write_volume_files(result: MapResult, folder: str | os.PathLike, *, inputs: dict | None = None,
                       extra: dict | None = None, shift_map: ShiftMap | None = None) -> Path:
    """Write the 3-D maps of a volume into an existing folder, as ``xafsmap map`` writes 2-D ones.

    The files of :func:`~xafsmap.core.mapping.output.write_map_files`: ``labels.tif``
    (Z, Y, X) uint16, ``fractions.tif`` and ``fraction_sigma.tif`` (K, Z, Y, X),
    ``probability``, ``distance``, ``residual``, ``edge_step``, ``e0`` (Z, Y, X) float32,
    ``mask`` and ``flags`` (Z, Y, X) uint8, ``flags.csv``, ``classes.csv``,
    ``report.json`` (its ``grid`` names ``slices``, ``rows`` and ``columns``) and
    ``shift.tif`` with a shift map. TIFFs are written a slice (page) at a time.
    """
    import dask.array as da

    folder = Path(folder)
    slices, rows, cols = result.labels.shape
    write_map_tables(result, folder, shift_map=shift_map)
    tall = replace(result, labels=da.from_zarr(result.labels).reshape(slices * rows, cols),
                   mask=da.from_zarr(result.mask).reshape(slices * rows, cols))
    report = make_report(tall, inputs=inputs, extra=extra)
    report["grid"] = {"slices": int(slices), "rows": int(rows), "columns": int(cols)}
    report["pixels"]["unit"] = "voxels"
    write_report(folder, report)
    return folder
