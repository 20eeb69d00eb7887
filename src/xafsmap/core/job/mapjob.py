"""One mapping job from settings: prepare, references, train, map, write; locally or on a cluster.

``xafsmap map`` builds :class:`~xafsmap.core.settings.schema.Settings` from its options
and calls :func:`run_map`; ``xafsmap run`` reads them from a recipe and calls it; a
script calls it; the Classify dock calls its steps (:mod:`~xafsmap.core.job.steps`) and
:func:`write_result`. So every front end writes the same maps and the same report:
every parameter, the settings as a recipe (``"recipe"``) and the sha256 of the inputs.

Examples
--------
>>> import tempfile, pathlib
>>> from xafsmap.core.settings import ReferenceSpec
>>> from xafsmap.core.simulate.sample import bundled_reference_paths
>>> refs = tuple(ReferenceSpec(str(p)) for p in bundled_reference_paths().values())
>>> settings = Settings(sample="fe_sample", references=refs, n_per_class=40, n_trees=5, bin=4)
>>> run = run_map(settings, out=pathlib.Path(tempfile.mkdtemp()) / "maps")
>>> sorted(p.name for p in run.out.glob("*.tif"))[:3]
['distance.tif', 'e0.tif', 'edge_step.tif']
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..mapping.output import map_output, write_map_files, write_maps
from ..mapping.pipeline import MapResult, band_rows, drive, iter_train_and_classify
from ..model.training import Model
from ..io.folders import claim_output
from ..settings.recipe import missing_paths, settings_to_dict
from ..settings.schema import Settings
from ..settings.values import check_settings
from .inputs import hash_inputs, hashing_inputs
from .modeljob import load_model_for, model_settings, stack_model
from .steps import Prepared, check_sizes, input_paths, prepare, references_for, train

if TYPE_CHECKING:
    from distributed import Client, Future

    from ..io.references import Reference
    from ..io.stack import Stack
    from .volumejob import VolumeRun

__all__ = ["MapRun", "iter_map_settings", "map_into", "run_map", "write_result"]


@dataclass(frozen=True)
class MapRun:
    """What a mapping job wrote, and what to tell its user.

    Attributes
    ----------
    out : Path
    accuracy : float
        Held-out accuracy of the classifier.
    class_counts : dict of str to int
    warnings : tuple of str
    params : dict
        report.json's ``parameters``.
    """

    out: Path
    accuracy: float
    class_counts: dict
    warnings: tuple = ()
    params: dict = field(default_factory=dict)


def iter_map_settings(settings: Settings, stack: Stack, references: Sequence[Reference], *, maps: dict | None = None,
                      model: Model | None = None) -> Generator[tuple[int, int], None, MapResult]:
    """Train (unless ``model`` is given), then map every band of a prepared stack.

    Yields
    ------
    (done, total) : tuple of int
        Training counts as the first step, then one step per band.

    Returns
    -------
    MapResult
    """
    return (yield from iter_train_and_classify(lambda: train(settings, stack, references) if model is None else model,
                                               stack, metric=settings.metric, maps=maps))


def _map_distributed(settings: Settings, stack: Stack, references: Sequence[Reference], client: Client,
                     model: Model | None = None,
                     classifier: Future | None = None) -> Generator[tuple[int, int], None, MapResult]:
    """Train here (unless ``model`` is given), then map the bands on a dask.distributed cluster (the same maps)."""
    from ..mapping.parallel import iter_map_distributed

    tic = time.perf_counter()
    model = train(settings, stack, references) if model is None else model
    train_s = time.perf_counter() - tic
    result = yield from iter_map_distributed(stack, model, client=client, metric=settings.metric,
                                             classifier=classifier)
    result.timings["train_s"] = train_s
    return result


def map_into(settings: Settings, prepared: Prepared, references: Sequence[Reference], folder: str | os.PathLike,
             maps: dict | None = None, *, progress: Callable[[int, int], None] | None = None,
             client: Client | None = None, extra: dict | None = None, moved: tuple[Path, Path] | None = None,
             model: Model | None = None, classifier: Future | None = None) -> MapRun:
    """Map as the settings say and write every file into an existing ``folder``.

    ``maps`` are the arrays to map into (:func:`~xafsmap.core.mapping.output.map_output`'s
    store), ``client`` a dask.distributed client, ``extra`` more report.json fields,
    ``moved = (tmp, out)`` records inputs inside a temporary folder at their final place,
    ``model`` a model for this stack instead of training (a saved model, a series'),
    ``classifier`` its classifier already on the cluster's workers (a series sends it once:
    :func:`~xafsmap.core.mapping.parallel.scatter_classifier`).
    """
    tic = time.perf_counter()
    stack = prepared.stack
    with hashing_inputs(stack, [ref.spec for ref in settings.references], moved=moved) as inputs:
        if client is None:
            generator = iter_map_settings(settings, stack, references, maps=maps, model=model)
        else:
            generator = _map_distributed(settings, stack, references, client, model, classifier)
        result = drive(generator, progress)
        result.timings["total_s"] = time.perf_counter() - tic
        report = {**prepared.extra, "recipe": settings_to_dict(settings), **(extra or {})}
        write_map_files(result, folder, maps=maps, inputs=inputs.result(), extra=report,
                        shift_map=prepared.shift_map)
        counts = result.class_counts  # before the store moves with the folder
    return MapRun(Path(folder), result.classifier.accuracy, counts, result.warnings, result.params)


def run_map(settings: Settings, *, out: str | os.PathLike, overwrite: bool = False,
            progress: Callable[[int, int], None] | None = None, client: Client | None = None,
            sources: Iterable[str | os.PathLike] = (), extra: dict | None = None) -> MapRun | VolumeRun:
    """Map a measurement as ``settings`` say and write the maps into ``out``.

    Parameters
    ----------
    settings : Settings
        From a recipe, the command line or a script.
    out : str or Path
        Output folder, written all-or-nothing (:func:`~xafsmap.core.io.folders.atomic_folder`).
    overwrite : bool
        Replace a folder xafsmap wrote before.
    progress : callable, optional
        ``progress(done, total)`` after training and after each band.
    client : distributed.Client, optional
        Map the bands on this cluster; default one from ``settings.workers`` or
        ``settings.scheduler``, else in this process.
    sources : sequence of path
        Inputs besides the settings' own files (a recipe file): ``out`` may not hold one.
    extra : dict, optional
        More report.json fields (the command line adds its ``command``).

    Returns
    -------
    MapRun
        (a :class:`~xafsmap.core.job.volumejob.VolumeRun` with the same fields when the
        stack is a volume (E, Z, Y, X): :func:`~xafsmap.core.job.volumejob.run_volume`
        maps it voxel by voxel)

    Raises
    ------
    FileNotFoundError
        If files the settings name do not exist (all are listed).
    ValueError
        For settings a job cannot run with, or from reading, training or writing.
    """
    from ..io.volumefiles import volume_kind
    from ..mapping.parallel import open_client

    if settings.stack is not None and volume_kind(settings.stack, axes=settings.axes):
        from .volumejob import run_volume

        return run_volume(settings, out=out, overwrite=overwrite, progress=progress, sources=sources, extra=extra,
                          client=client)
    check_settings(settings)
    missing = missing_paths(settings)
    if missing:
        raise FileNotFoundError(f"the settings name files that do not exist: {', '.join(missing)}")
    sources = [*map(str, sources), *input_paths(settings)]
    claim_output(out, sources=sources, overwrite=overwrite)
    with contextlib.ExitStack() as context:
        if client is None and (settings.workers or settings.scheduler):
            client = context.enter_context(open_client(scheduler=settings.scheduler, workers=settings.workers))
        references = references_for(settings)
        saved = None if settings.model is None else load_model_for(settings, references)  # refused before any work
        settings = settings if saved is None else model_settings(settings, saved)
        prepared = prepare(settings)
        check_sizes(settings, prepared.stack, references, distributed=client is not None)
        model = None if saved is None else stack_model(settings, saved, prepared.stack)
        extra = extra if saved is None else {**(extra or {}), "model": {"path": str(saved.path), "sha256": saved.sha256}}
        shape = prepared.stack.data.shape
        with map_output(out, k=len(references), rows=shape[1], cols=shape[2], band=band_rows(shape),
                        zarr=settings.zarr, overwrite=overwrite, sources=sources) as (folder, maps):
            run = map_into(settings, prepared, references, folder, maps, progress=progress, client=client, extra=extra,
                           model=model)
    return MapRun(Path(out), run.accuracy, run.class_counts, run.warnings, run.params)


def write_result(settings: Settings, result: MapResult, out: str | os.PathLike, *, prepared: Prepared | None = None,
                 overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write a result mapped elsewhere (the Classify dock's) as :func:`run_map` writes its own:
    the same files and report (the settings as a recipe, the inputs' sha256)."""
    stack_inputs = {} if prepared is None else hash_inputs(prepared.stack, [r.spec for r in settings.references])
    report = {**({} if prepared is None else prepared.extra), "recipe": settings_to_dict(settings), **(extra or {})}
    return write_maps(result, out, overwrite=overwrite, inputs=stack_inputs, extra=report,
                      shift_map=None if prepared is None else prepared.shift_map, zarr=settings.zarr,
                      sources=input_paths(settings))
