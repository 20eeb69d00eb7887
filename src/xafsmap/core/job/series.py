"""A series: many stacks mapped with one model into one folder, a table and a plot.

``xafsmap series`` (and the Series dock) trains once on the first stack — or loads a
saved model (``--model``) — and maps every stack with the same classifier into
``OUT/<stack name>/`` with the files, report and all-or-nothing rule of ``xafsmap map``.
After each stack, ``OUT/series.csv`` gets its row (the list's columns, pixel counts,
mean fraction and spread of each reference, share of each class,
:func:`~xafsmap.core.job.seriestable.summarize_maps`); at the end ``OUT/series.png``
plots the fractions across the series. ``OUT/model.npz`` is the model the series used
(trained here), ``OUT/series.json`` the settings and the model's sha256.

Rerunning resumes: a stack whose report.json records the same model, the same settings
and the same input files (sha256) is skipped, and said so; a changed stack, or changed
settings, maps again. A stack that fails stops the series with one line naming it; the
stacks before it stay mapped and in series.csv. On a cluster several stacks are mapped
at once (:func:`~xafsmap.core.job.seriesrun.map_concurrently`); one that fails is named
after the others are done.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import atomic_file
from ..io.folders import claim_output
from ..mapping.output import file_sha256, map_output
from ..mapping.parallel import scatter_classifier
from ..mapping.pipeline import MapResult, band_rows
from ..model.modelfile import SavedModel, read_model, write_model
from ..settings.recipe import missing_paths, settings_to_dict
from ..settings.schema import Settings
from ..settings.values import check_settings
from .inputs import hash_inputs
from .mapjob import map_into
from .modeljob import load_model_for, model_settings, reference_records, stack_model
from .seriesrun import STACKS_IN_FLIGHT, failure_line, in_order, map_concurrently
from .seriestable import series_entries, summarize_maps, write_series_plot, write_series_table
from .steps import Prepared, check_sizes, input_paths, open_measurement, prepare, references_for, train

if TYPE_CHECKING:
    from distributed import Client, Future

    from ..io.references import Reference
    from ..io.stack import Stack
    from ..model.training import Model

__all__ = ["SeriesRun", "iter_apply", "iter_series", "run_series", "series_entries"]

SERIES_FILE, TABLE, PLOT, MODEL_FILE = "series.json", "series.csv", "series.png", "model.npz"


@dataclass(frozen=True)
class SeriesRun:
    """What a series wrote.

    Attributes
    ----------
    out : Path
    rows : list of dict
        series.csv's rows, in the order of the series.
    mapped, skipped : tuple of str
        Names of the stacks mapped now, and of those whose maps were already done.
    model : Path
        The model file every stack was mapped with.
    warnings : tuple of str
        The model's warnings (once, not per stack).
    references : tuple of str
        The model's references (the fraction columns of the rows).
    """

    out: Path
    rows: list
    mapped: tuple
    skipped: tuple
    model: Path
    warnings: tuple = ()
    references: tuple = ()


def _import_quietly(name: str) -> None:
    with contextlib.suppress(ImportError):
        importlib.import_module(name)


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _stack_settings(settings: Settings, entry: dict) -> Settings:
    return replace(settings, stack=entry["path"], stacks=(), series_list=None, model=None)


def _maps_key(settings: Settings, model_sha: str) -> str:
    """What makes a stack's maps: the model and every setting but where the work runs."""
    recipe = settings_to_dict(replace(settings, stack=None, workers=None, scheduler=None))
    return _digest({"model": model_sha, "recipe": recipe})


def _done(folder: Path, key: str, settings: Settings) -> bool:
    """The maps in ``folder`` were made with ``key`` from input files with today's sha256."""
    try:
        report = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError):
        return False
    if report.get("series", {}).get("key") != key:
        return False
    now = hash_inputs(open_measurement(settings), [ref.spec for ref in settings.references])
    then = report.get("inputs", {})
    same = all(then.get(role, {}).get("sha256") == value["sha256"] for role, value in now.items() if role != "references")
    return same and [r["sha256"] for r in then.get("references", [])] == [r["sha256"] for r in now["references"]]


def _is_series(out: Path) -> bool:
    """``out`` holds the series.json of an earlier series (not just any file of that name)."""
    try:
        return json.loads((out / SERIES_FILE).read_text()).get("xafsmap_series") == 1
    except (OSError, ValueError, AttributeError):
        return False


def _claim(out: Path, entries: list[dict], sources: list[str]) -> bool:
    """Check where the series may write; True when ``out`` is a series to resume."""
    resume = _is_series(out)
    if not resume:
        claim_output(out, sources=sources)
    for entry in entries:  # each stack's folder: new, empty or a map folder of ours; never an input
        claim_output(out / entry["name"], sources=sources, overwrite=True)
    return resume


def _model_for_series(settings: Settings, references: Sequence[Reference], entries: list[dict], out: Path,
                      resume: bool) -> tuple[SavedModel, Settings, tuple[Model, Prepared] | None]:
    """``(saved model, settings with its training choices, (trained Model, Prepared) of the first stack or None)``."""
    if settings.model is not None:
        saved = load_model_for(settings, references)
        return saved, model_settings(settings, saved), None
    first = _stack_settings(settings, entries[0])
    # what the model depends on: the first stack, its preparation and the training choices, not the mapping's
    training = {"recipe": settings_to_dict(replace(first, metric="euclidean", zarr=False, workers=None, scheduler=None)),
                "references": reference_records(settings, references),
                "stack": hash_inputs(open_measurement(first), [])}
    key = _digest(training)
    if resume and (out / MODEL_FILE).is_file():
        with contextlib.suppress(OSError, ValueError):
            if json.loads((out / SERIES_FILE).read_text()).get("training_key") == key:
                return read_model(out / MODEL_FILE), settings, None
    prepared = prepare(first)
    check_sizes(first, prepared.stack, references)
    model = train(first, prepared.stack, references)
    header = {"references": training["references"], "recipe": settings_to_dict(first), "training_key": key}
    path = write_model(out / MODEL_FILE, model, extra=header)
    # the model in memory maps as the file does (modelfile's contract): no need to read it back
    return SavedModel(model, header, path, file_sha256(path)), settings, (model, prepared)


def iter_series(settings: Settings, *, out: str | os.PathLike, overwrite: bool = False, client: Client | None = None,
                note: Callable[[str], None] | None = None,
                in_flight: int = STACKS_IN_FLIGHT) -> Generator[tuple[int, int], None, SeriesRun]:
    """Map a series (see the module docstring); a generator of progress.

    Parameters
    ----------
    settings : Settings
        ``stacks`` or ``series_list`` name the stacks; the other settings are a map's.
    out : str or Path
        The series folder: new, empty, or a series folder to resume.
    overwrite : bool
        Map again the stacks whose maps are done.
    client : distributed.Client, optional
        Map the stacks on this cluster: ``in_flight`` stacks at once, each prepared and
        surveyed here in its own thread, its bands tasks on the workers, so the bands of
        several stacks are on the cluster together; the classifier is sent to the
        workers once. A stack that fails does not stop the others.
    note : callable, optional
        ``note(text)`` for what the user should hear (a stack skipped).
    in_flight : int
        Stacks mapped at once on a cluster (memory here: each holds its 2-D maps and
        its survey).

    Yields
    ------
    (done, total) : tuple of int
        The model (trained or loaded) counts as the first step, then one per stack
        (on a cluster, in the order they finish).

    Returns
    -------
    SeriesRun

    Raises
    ------
    ValueError
        Bad settings or list (before any work); a stack that fails (naming it; those
        before it stay written; on a cluster, after every other stack is done).
    """
    note = note or (lambda text: None)
    entries = series_entries(settings)
    # matplotlib takes a second or two to import: let it load while the stacks are mapped
    threading.Thread(target=_import_quietly, args=("matplotlib.figure",), daemon=True).start()
    first = _stack_settings(settings, entries[0])
    check_settings(first)
    missing = missing_paths(replace(first, model=settings.model))
    if missing:
        raise FileNotFoundError(f"the settings name files that do not exist: {', '.join(missing)}")
    out = Path(out).expanduser().absolute()
    sources = [entry["path"] for entry in entries] + input_paths(replace(first, stack=None))
    resume = _claim(out, entries, sources)
    out.mkdir(parents=True, exist_ok=True)
    references = references_for(settings)
    saved, settings, trained = _model_for_series(settings, references, entries, out, resume)
    with atomic_file(out / SERIES_FILE) as tmp:
        tmp.write_text(json.dumps({
            "xafsmap_series": 1, "model": {"path": str(saved.path), "sha256": saved.sha256}, "training_key": saved.header.get("training_key"),
            "recipe": settings_to_dict(replace(settings, stacks=(), series_list=None)),
            "stacks": entries}, indent=1))
    total = len(entries) + 1
    yield 1, total
    one = partial(_map_or_skip, settings=settings, out=out, saved=saved, trained=trained, references=references,
                  sources=sources, overwrite=overwrite, note=note, client=client, n=len(entries))
    rows, mapped = {}, {}
    try:
        if client is None:
            for i, entry in enumerate(entries):
                try:
                    rows[i], mapped[i] = one(i, entry)
                except (ValueError, OSError) as error:
                    raise ValueError(failure_line([(i, error)], entries, rows, out)) from error
                write_series_table(out / TABLE, in_order(rows))
                yield i + 2, total
        else:
            failed = []
            one = partial(one, classifier=scatter_classifier(saved.model.classifier, client=client))
            for done, (i, found, error) in enumerate(map_concurrently(one, entries, in_flight=in_flight), start=2):
                if error is None:
                    rows[i], mapped[i] = found
                    write_series_table(out / TABLE, in_order(rows))
                else:
                    failed.append((i, error))
                yield done, total
            if failed:
                raise ValueError(failure_line(failed, entries, rows, out)) from failed[0][1]
    finally:
        if rows:
            write_series_plot(out / PLOT, in_order(rows), saved.model.classifier.classes.references)
    now = [entries[i]["name"] for i in sorted(mapped) if mapped[i]]
    done = [entries[i]["name"] for i in sorted(mapped) if not mapped[i]]
    return SeriesRun(out, in_order(rows), tuple(now), tuple(done), saved.path, saved.model.warnings,
                     tuple(saved.model.classifier.classes.references))


def _map_or_skip(i: int, entry: dict, *, settings: Settings, out: Path, saved: SavedModel,
                 trained: tuple[Model, Prepared] | None, references: Sequence[Reference], sources: list[str],
                 overwrite: bool, note: Callable[[str], None], client: Client | None, n: int,
                 classifier: Future | None = None) -> tuple[dict, bool]:
    """Map stack ``i`` into ``out/<name>`` unless its maps are done: its series.csv row, and whether it was mapped."""
    each = _stack_settings(settings, entry)
    key = _maps_key(each, saved.sha256)
    folder = out / entry["name"]
    now = overwrite or not _done(folder, key, each)
    if now:
        reuse = trained if trained is not None and i == 0 else None
        _map_one(each, folder, saved, reuse, references, sources, client, classifier=classifier,
                 extra={"series": {"key": key, "index": i + 1, "of": n, "folder": str(out)},
                        "model": {"path": str(saved.path), "sha256": saved.sha256}})
    else:
        note(f"skipped {entry['name']}: its maps in {folder} were made with the same inputs and settings")
    return {"name": entry["name"], **{k: v for k, v in entry.items() if k != "name"}, **summarize_maps(folder)}, now


def _map_one(settings: Settings, folder: Path, saved: SavedModel, trained: tuple[Model, Prepared] | None,
             references: Sequence[Reference], sources: list[str], client: Client | None, *, extra: dict,
             classifier: Future | None = None) -> None:
    """Prepare, survey and map one stack into ``folder`` (all-or-nothing)."""
    if trained is not None:
        model, prepared = trained
    else:
        prepared = prepare(settings)
        model = stack_model(settings, saved, prepared.stack)
    check_sizes(settings, prepared.stack, references, distributed=client is not None)
    shape = prepared.stack.data.shape
    with map_output(folder, k=len(references), rows=shape[1], cols=shape[2], band=band_rows(shape),
                    zarr=settings.zarr, overwrite=True, sources=sources) as (tmp, maps):
        map_into(settings, prepared, references, tmp, maps, client=client, extra=extra, model=model,
                 classifier=classifier)


def iter_apply(settings: Settings, model: Model, stacks: dict[str, Stack],
               ) -> Generator[tuple[int, int], None, list[tuple[str, MapResult, dict]]]:
    """Map stacks already open (napari layers) with one model, in memory; a generator of progress.

    Each stack is prepared as the settings say, gets its own survey
    (:func:`~xafsmap.core.model.reuse.model_for_stack`) and is mapped with the model's
    classifier: the classes mean the same in every map.

    Parameters
    ----------
    settings : Settings
        The preparation, mask rule, thick limit and metric (the model fixes the rest).
    model : Model
        Trained (a session's) or read from a file.
    stacks : dict of str to Stack
        Name -> measurement, in the order of the series.

    Yields
    ------
    (done, total) : tuple of int
        Stacks done out of all.

    Returns
    -------
    list of (str, MapResult, dict)
        Name, maps and series.csv row of each stack.

    Raises
    ------
    ValueError
        Naming the stack that cannot be mapped (other energies, no sample ...).
    """
    from ..mapping.pipeline import drive, iter_classify
    from ..model.reuse import model_for_stack
    from .seriestable import summarize

    found = []
    for i, (name, stack) in enumerate(stacks.items()):
        try:
            prepared = prepare(settings, stack)
            own = model_for_stack(model, prepared.stack, threshold=settings.threshold,
                                  significance=settings.significance, normalization=settings.normalization,
                                  thick=settings.thick)
            result = drive(iter_classify(prepared.stack, own, metric=settings.metric))
        except (ValueError, OSError) as error:
            raise ValueError(f"{name} (stack {i + 1} of {len(stacks)}): {error}") from error
        classes = result.classifier.classes
        row = {"name": name, **summarize(result.labels, result.mask, result.fractions, result.fraction_sigma,
                                         result.e0, references=classes.references, classes=classes.names)}
        found.append((name, result, row))
        yield i + 1, len(stacks)
    return found


def run_series(settings: Settings, *, out: str | os.PathLike, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None, client: Client | None = None,
               note: Callable[[str], None] | None = None, in_flight: int = STACKS_IN_FLIGHT) -> SeriesRun:
    """Run :func:`iter_series` to its end (with a cluster from the settings' ``workers``/``scheduler``).

    ``progress(done, total)`` after the model and after each stack.
    """
    from ..mapping.parallel import open_client
    from ..mapping.pipeline import drive

    with contextlib.ExitStack() as context:
        if client is None and (settings.workers or settings.scheduler):
            client = context.enter_context(open_client(scheduler=settings.scheduler, workers=settings.workers))
        return drive(iter_series(settings, out=out, overwrite=overwrite, client=client, note=note,
                                 in_flight=in_flight), progress)
