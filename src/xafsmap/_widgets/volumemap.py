"""Volumes (E, Z, Y, X) in the docks: the Map and Series docks map them as ``xafsmap map`` does.

A volume layer (the reader's 4-D image with energies) becomes the session's measurement
(:func:`volume_of`). Mapping it runs the volume job's own steps in a worker — the slices
prepared by :func:`~xafsmap.core.job.volumejob.prepare_volume`, one model trained on
their :func:`~xafsmap.core.mapping.volume.tall_stack`, the slices mapped one by one by
:func:`~xafsmap.core.mapping.volume.iter_map_volume` — so the dock's 3-D maps equal the
command line's. The maps go, out of core, into a Zarr store of 3-D maps in a scratch
folder (:func:`scratch_store`, removed when napari quits): memory holds one slice and
its maps, whatever Z. The layers read the store lazily (:func:`display_maps`);
**Save all maps…** writes the files of ``xafsmap map`` from it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

#: Float maps shown as 3-D image layers (as the 2-D ones).
FLOAT_MAPS = ("probability", "distance", "residual", "edge_step", "e0")


def is_volume_layer(layer) -> bool:
    """A 4-D image layer with energies (the reader's volumes)."""
    import napari.layers

    return isinstance(layer, napari.layers.Image) and layer.ndim == 4 and not layer.rgb \
        and "energies" in layer.metadata


def volume_of(layer):
    """The core Volume of a volume layer: reopened from its file in the chunks mapping reads
    (every energy of a slice), else the layer's data itself."""
    import dask.array as da

    from ..core.io.volume import Volume, read_volume

    energies = np.asarray(layer.metadata["energies"], dtype=np.float64)
    sources = dict(layer.metadata.get("sources") or {})
    stack = sources.get("stack")
    if stack and (Path(stack).exists() or ":" in stack and Path(stack.rsplit(":", 1)[0]).is_file()):
        volume = read_volume(stack, energies=energies, axes=sources.get("axes"))
        if tuple(volume.data.shape) == tuple(layer.data.shape):
            return Volume(volume.data, energies, sources, volume.notes)
    data = da.asarray(layer.data).astype(np.float32)
    return Volume(data.rechunk((-1, 1, *data.shape[2:])), energies, sources)


def volume_layer_of(paths: dict):
    """Layer-data tuple of the volume ``paths`` name (``stack``, and ``energies``/``axes`` if
    given), as the reader opens it: lazy, one image per chunk, energies in the metadata."""
    from .._reader import contrast_limits, volume_layer
    from ..core.io.volume import read_volume

    others = set(paths) - {"stack", "energies", "axes"}
    if others:
        raise ValueError(f"a volume is reconstructed absorbance: {', '.join(sorted(others))} do not apply to it")
    data, meta, kind = volume_layer(paths["stack"]) if set(paths) == {"stack"} else (None, None, "image")
    if data is None:  # energies or axes given: read as given, the reader's contrast and names
        volume = read_volume(paths["stack"], energies=paths.get("energies"), axes=paths.get("axes"), planes=True)
        plane = np.asarray(volume.data[volume.data.shape[0] // 2, volume.data.shape[1] // 2], dtype=np.float32)
        data, meta = volume.data, {"name": Path(str(paths["stack"])).stem, "colormap": "gray",
                                   "contrast_limits": contrast_limits(plane),
                                   "metadata": {"energies": volume.energies, "sources": dict(volume.sources),
                                                "notes": list(volume.notes), "xafsmap": "volume"}}
    return data, meta, kind


def describe_volume(volume) -> str:
    """Shape and energies of a volume, and what the docks do with it, in words."""
    e, z, y, x = volume.data.shape
    return (f"volume: {e} energies × {z} slices × {y} rows × {x} columns\n"
            f"energies {volume.energies[0]:.2f}–{volume.energies[-1]:.2f} eV\n"
            f"the Map and Series docks map it voxel by voxel into 3-D maps (as xafsmap map); "
            f"the other docks look at its middle slice ({z // 2})")


_SCRATCH: list[Path] = []


def _remove_scratch():
    for folder in _SCRATCH:
        shutil.rmtree(folder, ignore_errors=True)


def scratch_store(k: int, slices: int, rows: int, cols: int) -> dict:
    """Empty 3-D maps in a new Zarr store of a scratch folder (removed when Python exits)."""
    from ..core.mapping.volume import open_volume_store

    if not _SCRATCH:
        atexit.register(_remove_scratch)
    folder = Path(tempfile.mkdtemp(prefix="xafsmap-volume-maps-"))
    _SCRATCH.append(folder)
    return open_volume_store(folder / "maps.zarr", k, slices, rows, cols)


def train_volume(settings, prepare, references, stop=None):
    """Worker generator of Train for a volume: prepare (``prepare()``: the session's
    :func:`~xafsmap.core.job.volumejob.prepare_volume`, off the GUI thread: a drift is measured
    on the projection of the whole volume), train on the slices' tall stack as the job does,
    then yield once so a Cancel pressed meanwhile discards the model."""
    from ..core.job import train
    from ..core.mapping.volume import tall_stack
    from ..core.model.forest import TrainingStopped

    prepared = prepare()
    try:
        model = train(settings, tall_stack(prepared.stacks), references, stop=stop)
    except TrainingStopped:
        model = None
    yield ("model", None)
    return model


def train_volume_and_map(settings, prepare, references, model=None, stop=None):
    """Worker generator of the Map dock for a volume (the steps of
    :func:`~xafsmap.core.job.volumejob.iter_volume_settings`): prepare (``prepare()``, as in
    :func:`train_volume`; yields ``("prepared", prepared)``), train on the slices' tall
    stack unless ``model`` is given (yields ``("model", model)``), yield ``("maps", (model,
    maps))`` — the empty 3-D maps of a scratch store, for the viewer to show while they
    fill — then map slice by slice (yielding ``(done, total)`` bands).

    Returns ``(result, limits, counts)``: the MapResult (3-D maps in the store), contrast
    limits of its float maps (from the middle slice) and voxels per class.
    """
    from .._reader import contrast_limits
    from ..core.job import train
    from ..core.mapping.volume import iter_map_volume, tall_stack
    from ..core.model.forest import TrainingStopped

    prepared = prepare()
    yield ("prepared", prepared)
    if model is None:
        try:
            model = train(settings, tall_stack(prepared.stacks), references, stop=stop)
        except TrainingStopped:
            yield ("stopped", None)  # Cancel quit the worker: this yield ends it
            return None
        yield ("model", model)
    _, rows, cols = prepared.stacks[0].data.shape
    z = len(prepared.stacks)
    maps = scratch_store(model.classifier.references.shape[0], z, rows, cols)
    yield ("maps", (model, maps))
    result = yield from iter_map_volume(prepared.stacks, model, maps, metric=settings.metric)
    return result, {name: contrast_limits(maps[name][z // 2]) for name in FLOAT_MAPS}, result.class_counts


def apply_model(settings, model, stacks: dict, volumes: dict):
    """Worker generator of the Series dock: ``stacks`` (name -> Stack) by
    :func:`~xafsmap.core.job.iter_apply`, then each of ``volumes`` (name -> Volume) by
    :func:`~xafsmap.core.job.volumeapply.iter_apply_volume` into a scratch store.

    Yields ``(done, total)``; returns ``[(name, MapResult, series.csv row), ...]``.
    """
    from ..core.job import iter_apply
    from ..core.job.volumeapply import iter_apply_volume

    found = (yield from iter_apply(settings, model, stacks)) if stacks else []
    k = model.classifier.references.shape[0]
    for i, (name, volume) in enumerate(volumes.items()):
        try:
            maps = _volume_maps(settings, volume, k)
            result, row = yield from iter_apply_volume(settings, model, volume, maps)
        except (ValueError, OSError) as error:
            raise ValueError(f"{name} (volume {i + 1} of {len(volumes)}): {error}") from error
        found.append((name, result, {"name": name, **row}))
    return found


def _volume_maps(settings, volume, k: int) -> dict:
    """The scratch maps of a volume's prepared grid (ROI and binning act within slices)."""
    from dataclasses import replace

    from ..core.io.volume import volume_slice
    from ..core.job import prepare

    grid_only = replace(settings, register=False, shift_map=None, calibration=None, calibration_reference=None)
    _, rows, cols = prepare(grid_only, volume_slice(volume, 0)).stack.data.shape  # lazy: the shape only
    return scratch_store(k, volume.data.shape[1], rows, cols)


def display_maps(maps: dict, references) -> dict:
    """What the layers show of 3-D maps in a store: the labels as they are (redrawn while they
    fill), the float maps and each reference's fractions (Z, Y, X) as lazy dask views.

    The views get new names each time, so napari's cache of dask chunks never shows a
    slice as it was before it was mapped.
    """
    import dask.array as da

    def lazy(array):
        return da.from_zarr(array, name=f"xafsmap-map-{uuid.uuid4().hex}")

    shown = {"labels": maps["labels"], **{name: lazy(maps[name]) for name in FLOAT_MAPS}}
    fractions = lazy(maps["fractions"])
    shown["fractions"] = [fractions[i] for i in range(len(references))]
    return shown


def volume_grid(grid: dict) -> dict:
    """``scale`` and ``translate`` of the prepared (Y, X) grid with the slice axis in front."""
    return {"scale": (1.0, *grid["scale"]), "translate": (0.0, *grid["translate"])}
