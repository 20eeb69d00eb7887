"""The mapping job of a volume (E, Z, Y, X): prepare every slice, train once, map voxel by voxel, write 3-D maps.

``xafsmap map VOLUME`` (and :func:`~xafsmap.core.job.mapjob.run_map`) come here when the
input is a volume (:func:`~xafsmap.core.io.volume.volume_kind`). The contract is the map
job's: the same files, all-or-nothing under the rule of :mod:`xafsmap.core.io.folders`,
but 3-D maps (``labels.tif`` (Z, Y, X), ``fractions.tif`` (K, Z, Y, X), ...).

* **Preparation per slice.** An energy-shift map (``--shift-map``, ``--calibration``)
  is a map of the detector's (Y, X) grid and applies to every slice. ``--register``
  measures the drift across energies once, on the projection of the volume along Z
  (the mean of its slices), and corrects every slice by it: a reconstructed volume
  moves as a whole between energies, the projection holds Z times the signal of one
  slice, and one drift keeps neighbouring slices from shearing against each other by
  their own noise. A drift along Z is not corrected. ROI and binning act within slices.
* **One model** trained on the survey of all slices (:func:`~xafsmap.core.mapping.volume.tall_stack`).
* **Out of core**: one slice (and its maps) in memory at a time; the maps go to a
  Zarr store of 3-D maps inside the output folder, then into the TIFFs a slice at a
  time; the store is removed before the folder is complete, unless ``--zarr`` asked
  for it: then it is ``maps.ome.zarr`` (OME-Zarr, axes ``z, y, x``, ``c`` for the
  fractions; one chunk per slice) with the class legend, as a 2-D map's.
* **On a cluster** (``--workers``, ``--scheduler``): the preparation and the training
  are done here, then every slice is a task on a worker, which opens the volume from
  its path (:mod:`~xafsmap.core.mapping.volumecluster`); the same maps.

Examples
--------
>>> import tempfile, pathlib
>>> from xafsmap.core.io.volume import write_volume
>>> from xafsmap.core.settings import ReferenceSpec
>>> from xafsmap.core.simulate.sample import bundled_reference_paths
>>> from xafsmap.core.simulate.volume import make_volume
>>> v = make_volume((3, 24, 24), n_grains=8, rng=2)
>>> f = write_volume(pathlib.Path(tempfile.mkdtemp()) / "v.tif", v.absorbance(), v.energies)
>>> refs = tuple(ReferenceSpec(str(bundled_reference_paths()[name])) for name in ("Fe", "FeO", "Fe2O3"))
>>> run = run_volume(Settings(stack=str(f), references=refs, n_per_class=40, n_trees=5), out=f.parent / "maps")
>>> import tifffile
>>> tifffile.imread(run.out / "labels.tif").shape, tifffile.imread(run.out / "fractions.tif").shape
((3, 24, 24), (3, 3, 24, 24))
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.folders import atomic_folder, claim_output
from ..io.stack import Stack
from ..io.volume import Volume, read_volume, volume_slice
from ..mapping.output import file_sha256
from ..mapping.pipeline import after_training, count_bands, drive
from ..mapping.volume import iter_map_volume, open_volume_store, tall_stack, write_volume_files
from ..mapping.zarrmaps import MAPS_ZARR, describe_map_store, open_map_store
from ..settings.limits import check_training
from ..settings.recipe import missing_paths, settings_to_dict
from ..settings.schema import Settings
from ..settings.values import check_settings
from .steps import classes_for, input_paths, prepare, references_for, shift_map_for, train

if TYPE_CHECKING:
    from distributed import Client

    from ..io.references import Reference
    from ..mapping.pipeline import MapResult

__all__ = ["PreparedVolume", "VolumeRun", "hash_volume", "iter_volume_settings", "open_volume", "prepare_volume",
           "run_volume"]

#: The scratch store of 3-D maps inside the temporary output folder (removed before it completes).
SCRATCH = "volume-maps.zarr"


@dataclass(frozen=True)
class VolumeRun:
    """What a volume mapping job wrote (the fields of :class:`~xafsmap.core.job.mapjob.MapRun`)."""

    out: Path
    accuracy: float
    class_counts: dict
    warnings: tuple = ()
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedVolume:
    """A volume prepared slice by slice (lazily).

    Attributes
    ----------
    volume : Volume
        As read.
    slices : tuple of xafsmap.core.job.steps.Prepared
        Every slice drift-corrected, calibrated, cropped and binned.
    drift : ndarray, shape (E, 2), or None
        The drift measured on the projection along Z (applied to every slice).
    extra : dict
        What report.json says about the preparation.
    """

    volume: Volume
    slices: tuple
    drift: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def stacks(self) -> list[Stack]:
        """The prepared slices as stacks (E, Y, X)."""
        return [p.stack for p in self.slices]


def open_volume(settings: Settings) -> Volume:
    """The volume the settings name, opened lazily; flat, dark and I0 are refused (a
    reconstructed volume is absorbance already)."""
    given = [name for name in ("flat", "dark", "i0") if getattr(settings, name) is not None]
    if given:
        raise ValueError(f"a volume is mapped as reconstructed absorbance: {', '.join(given)} do not apply to "
                         f"{Path(str(settings.stack)).name}")
    return read_volume(settings.stack, energies=settings.energies, axes=settings.axes)


def prepare_volume(settings: Settings, volume: Volume) -> PreparedVolume:
    """Prepare every slice as the settings say (see the module notes for drift and calibration)."""
    from ..prepare.register import measure_drift

    shift_map = shift_map_for(settings)
    drift, extra = None, {}
    if settings.register:
        import dask.array as da

        # computed once (one pass over the volume, (E, Y, X) in memory): measure_drift reads
        # image by image, which on a lazy projection would read the volume once per energy
        projection = np.asarray(da.nanmean(volume.data, axis=1), dtype=np.float32)
        drift = measure_drift(projection, volume.energies)
        extra["drift_measured_on"] = f"the mean of the {volume.data.shape[1]} slices (projection along Z)"
    slices = tuple(prepare(settings, volume_slice(volume, z), shift_map=shift_map, drift=drift)
                   for z in range(volume.data.shape[1]))
    return PreparedVolume(volume, slices, drift, {**slices[0].extra, **extra})


def hash_volume(volume: Volume, reference_specs: Iterable[str], *, stop: threading.Event | None = None) -> dict:
    """sha256 of every file of a volume (each file of a folder of folders) and of its references.

    ``stop`` (a :class:`threading.Event`) ends the hashing once set (remaining hashes None).
    """
    from ..io.references import split_spec

    inputs = {}
    for role, spec in volume.sources.items():
        if role == "axes":
            continue
        path = split_spec(spec)[0] if ":" in spec and not Path(spec).exists() else Path(spec)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        inputs[role] = {"path": spec, "sha256": {str(f.relative_to(path) if path.is_dir() else f.name):
                                                 file_sha256(f, stop=stop) for f in files if f.is_file()}}
    inputs["references"] = [{"spec": spec, "sha256": file_sha256(split_spec(spec)[0], stop=stop)}
                            for spec in reference_specs]
    return inputs


def iter_volume_settings(settings: Settings, prepared: PreparedVolume, references: Sequence[Reference], maps: dict, *,
                         client: Client | None = None) -> Generator[tuple[int, int], None, MapResult]:
    """Train on the survey of every slice, then map the slices into ``maps`` (here, or on
    ``client``'s cluster: one task per slice, the same maps).

    Yields
    ------
    (done, total) : tuple of int
        Training counts as the first step, then one step per band of every slice (per
        slice on a cluster).

    Returns
    -------
    MapResult
        With 3-D maps.
    """
    tic = time.perf_counter()
    model = train(settings, tall_stack(prepared.stacks), references)
    train_s = time.perf_counter() - tic
    if client is None:
        bands = iter_map_volume(prepared.stacks, model, maps, metric=settings.metric)
        yield 1, 1 + count_bands(prepared.stacks[0].data.shape) * len(prepared.slices)
    else:
        from ..mapping.volumecluster import iter_map_volume_distributed, volume_source

        source = volume_source(prepared.volume, prepared.stacks)
        bands = iter_map_volume_distributed(source, len(prepared.slices), model, maps, client=client,
                                            metric=settings.metric)
        yield 1, 1 + len(prepared.slices)
    return (yield from after_training(bands, train_s))


def run_volume(settings: Settings, *, out: str | os.PathLike, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None, sources: Iterable[str | os.PathLike] = (),
               extra: dict | None = None, client: Client | None = None) -> VolumeRun:
    """Map a volume as ``settings`` say and write its 3-D maps into ``out``.

    Parameters
    ----------
    settings : Settings
        ``stack`` names the volume (a 4-D TIFF, a folder of energy folders of slice
        TIFFs, ``FILE.h5:/path``; ``axes`` a permutation of EZYX).
    out : str or Path
        Output folder, written all-or-nothing.
    overwrite : bool
    progress : callable, optional
        ``progress(done, total)``.
    sources : sequence of path
        Inputs besides the settings' own (a recipe file).
    extra : dict, optional
        More report.json fields.
    client : distributed.Client, optional
        Map the slices on this cluster (one task per slice); default one from
        ``settings.workers`` or ``settings.scheduler``, else in this process.

    Returns
    -------
    VolumeRun

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`~xafsmap.core.job.mapjob.run_map`, and for inputs that are not a
        volume or settings that do not apply to one.
    """
    check_settings(settings)
    if settings.model is not None:
        raise ValueError(f"a volume trains its own model on all its slices: --model {settings.model} does not apply "
                         "to it yet")
    missing = missing_paths(settings)
    if missing:
        raise FileNotFoundError(f"the settings name files that do not exist: {', '.join(missing)}")
    sources = [*map(str, sources), *input_paths(settings)]
    claim_output(out, sources=sources, overwrite=overwrite)
    tic = time.perf_counter()
    volume = open_volume(settings)
    prepared = prepare_volume(settings, volume)
    references = references_for(settings)
    check_training(n_classes=len(classes_for(settings, [r.name for r in references])),
                   n_per_class=settings.n_per_class, n_energies=len(prepared.stacks[0].energies),
                   n_trees=settings.n_trees)
    e, rows, cols = prepared.stacks[0].data.shape
    stop, pool = threading.Event(), ThreadPoolExecutor(max_workers=1)
    # the input's sha256 is read beside the job (the disk at its own pace while training uses a core)
    hashed = pool.submit(hash_volume, volume, [ref.spec for ref in settings.references], stop=stop)
    with contextlib.ExitStack() as context:
        context.callback(pool.shutdown, wait=False, cancel_futures=True)
        if client is None and (settings.workers or settings.scheduler):
            from ..mapping.parallel import open_client

            client = context.enter_context(open_client(scheduler=settings.scheduler, workers=settings.workers))
        folder = context.enter_context(atomic_folder(out, overwrite=overwrite, sources=sources))
        context.callback(stop.set)  # first on the way out: an error exit does not wait for the hash
        if settings.zarr:  # the 3-D maps go to the OME-Zarr store that stays with the TIFFs
            maps = open_map_store(folder / MAPS_ZARR, len(references), rows, cols, band=rows,
                                  slices=len(prepared.slices))
        else:
            maps = open_volume_store(folder / SCRATCH, len(references), len(prepared.slices), rows, cols)
        result = drive(iter_volume_settings(settings, prepared, references, maps, client=client), progress)
        result.timings["total_s"] = time.perf_counter() - tic
        report = {**prepared.extra, "volume": {"shape": list(volume.data.shape), "notes": list(volume.notes)},
                  "recipe": settings_to_dict(settings), **(extra or {})}
        write_volume_files(result, folder, inputs=hashed.result(), extra=report,
                           shift_map=prepared.slices[0].shift_map)
        counts = result.class_counts
        if settings.zarr:
            describe_map_store(folder / MAPS_ZARR, result.classifier.classes)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder / SCRATCH)
    return VolumeRun(Path(out), result.classifier.accuracy, counts, result.warnings, result.params)

