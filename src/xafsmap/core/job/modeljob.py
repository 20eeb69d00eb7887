"""Saved models in a job: train once and save (``xafsmap train``), or load and check (``--model``).

A model file (:mod:`~xafsmap.core.model.modelfile`) carries, besides its arrays, the
sha256 and offsets of the reference files it was trained with and the recipe of its
training. :func:`load_model_for` refuses it, in one line, for other references or
normalization; :func:`~xafsmap.core.model.reuse.model_for_stack` refuses it for a stack
on other energies. :func:`model_settings` is what the maps' report.json then records:
the training choices are the model's, whatever the command line said.

Examples
--------
>>> import tempfile, pathlib
>>> from xafsmap.core.settings import ReferenceSpec
>>> from xafsmap.core.simulate.sample import bundled_reference_paths
>>> refs = tuple(ReferenceSpec(str(p)) for p in bundled_reference_paths().values())
>>> settings = Settings(sample="fe_sample", references=refs, n_per_class=40, n_trees=5, bin=4)
>>> run = run_train(settings, out=pathlib.Path(tempfile.mkdtemp()) / "model.npz")
>>> saved = load_model_for(replace(settings, model=str(run.path)), references_for(settings))
>>> saved.model.classifier.classes.names[:3]
('Fe', 'Fe2O3', 'Fe3O4')
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..io.folders import input_paths as resolved_inputs
from ..mapping.output import file_sha256, library_versions
from ..model.modelfile import SavedModel, read_model, write_model
from ..model.reuse import check_normalization, model_for_stack
from ..model.training import Model
from ..io.references import split_spec
from ..settings.recipe import settings_from_dict, settings_to_dict
from ..settings.schema import SETTINGS, Settings
from .steps import check_sizes, input_paths, prepare, references_for, train

if TYPE_CHECKING:
    from ..io.references import Reference
    from ..io.stack import Stack

__all__ = ["TRAINING", "TrainRun", "load_model_for", "model_settings", "reference_records", "run_train",
           "stack_model"]

#: The settings a saved model fixes (its classes, forest and features); the mask rule,
#: the thick limit and the distance metric stay each map's own.
TRAINING = ("references", "mixtures", "class_names", "compositions", "noise", "features", "smooth", "n_per_class",
            "n_trees", "fit_range", "seed", "align_references",
            *(name for name, item in SETTINGS.items() if item.section == "normalization"))


@dataclass(frozen=True)
class TrainRun:
    """What ``xafsmap train`` wrote: the model file, and what to tell its user."""

    path: Path
    model: Model
    sha256: str


def reference_records(settings: Settings, references: Sequence[Reference]) -> list[dict]:
    """Name, spec, offset and file sha256 of each reference, as a model file records them."""
    return [{"name": ref.name, "spec": item.spec, "offset": float(item.offset),
             "sha256": file_sha256(split_spec(item.spec)[0])}
            for item, ref in zip(settings.references, references)]


def run_train(settings: Settings, *, out: str | os.PathLike, overwrite: bool = False,
              progress: Callable[[int, int], None] | None = None) -> TrainRun:
    """Prepare the stack, train as the settings say, and write the model file ``out``.

    Parameters
    ----------
    settings : Settings
    out : str or Path
        The model file; written to a temporary name and renamed.
    overwrite : bool
        Replace an existing file.
    progress : callable, optional
        ``progress(done, total)``: 0/1 before training, 1/1 after.

    Raises
    ------
    ValueError
        If ``out`` exists (without ``overwrite``), is an input, or for the settings.
    """
    out = Path(out).expanduser().absolute()
    if out.is_dir():
        raise ValueError(f"{out} is a folder; give the model file to write, e.g. {out / 'model.npz'}")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; choose another name or pass --overwrite")
    if out in {p.resolve() for p in resolved_inputs(*input_paths(settings))}:
        raise ValueError(f"{out} is an input of the training: choose another name")
    prepared = prepare(settings)
    references = references_for(settings)
    check_sizes(settings, prepared.stack, references)
    if progress:
        progress(0, 1)
    tic = time.perf_counter()
    model = train(settings, prepared.stack, references)
    extra = {"references": reference_records(settings, references), "recipe": settings_to_dict(settings),
             "stack": {"sources": {k: str(v) for k, v in prepared.stack.sources.items()},
                       "shape": list(prepared.stack.data.shape)},
             "train_s": round(time.perf_counter() - tic, 3), "versions": library_versions(),
             "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_model(out, model, extra=extra)
    if progress:
        progress(1, 1)
    return TrainRun(out, model, file_sha256(out))


def load_model_for(settings: Settings, references: Sequence[Reference]) -> SavedModel:
    """Read ``settings.model`` and check it fits the settings' references (names, files, offsets).

    Raises
    ------
    ValueError
        ``'the model model.npz was trained on references Fe, FeO, Fe2O3; --reference gives
        Fe, FeO'`` and the like, in one line.
    """
    saved = read_model(settings.model)
    name = Path(settings.model).name
    trained = saved.header.get("references", [])
    given = reference_records(settings, references)
    names = [r["name"] for r in trained]
    if [r["name"] for r in given] != names:
        raise ValueError(f"the model {name} was trained on references {', '.join(names) or '(not recorded)'}; "
                         f"the settings give {', '.join(r['name'] for r in given)}")
    for old, new in zip(trained, given):
        if old["sha256"] != new["sha256"]:
            raise ValueError(f"the model {name} was trained on another {old['name']} (file {old['spec']}, sha256 "
                             f"{old['sha256'][:12]}…) than {new['spec']} (sha256 {new['sha256'][:12]}…)")
        if old["offset"] != new["offset"]:
            raise ValueError(f"the model {name} was trained with {old['name']} offset by {old['offset']:g} eV, "
                             f"not {new['offset']:g} eV")
    check_normalization(saved.model, settings.normalization)
    return saved


def model_settings(settings: Settings, saved: SavedModel) -> Settings:
    """The settings with the training choices of the model (:data:`TRAINING`): what the maps record."""
    recipe = saved.header.get("recipe")
    if not recipe:
        return settings
    trained = settings_from_dict(recipe, where=f"the recipe inside {saved.path.name}")
    return replace(settings, **{name: getattr(trained, name) for name in TRAINING if name != "references"})


def stack_model(settings: Settings, saved: SavedModel, stack: Stack) -> Model:
    """The saved model ready for one prepared stack (its own survey, :func:`model_for_stack`)."""
    return model_for_stack(saved.model, stack, threshold=settings.threshold, significance=settings.significance,
                           normalization=settings.normalization, thick=settings.thick)
