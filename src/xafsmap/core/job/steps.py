"""The steps of a job, each from :class:`~xafsmap.core.settings.schema.Settings`.

Open the measurement, get its energy-shift map, prepare it, read the references, train:
:func:`~xafsmap.core.job.mapjob.run_map` runs them in order, and the napari docks call
them one at a time (with a drift or shift map measured in a dock), so every front end
builds its stack, references and model the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..io.references import Reference, read_reference, split_spec
from ..io.stack import Stack, read_stack
from ..model.synthesize import Classes, make_classes
from ..model.training import Model, train_model
from ..prepare.shiftmap import ShiftMap, read_shift_map
from ..prepare.steps import prepare_measurement
from ..settings.limits import check_maps_memory, check_training
from ..settings.recipe import recipe_paths
from ..settings.schema import Settings

__all__ = ["Prepared", "check_sizes", "classes_for", "input_paths", "open_measurement", "prepare", "references_for",
           "shift_map_for", "train"]

log = logging.getLogger("xafsmap")

#: ``prepare(..., shift_map=FROM_SETTINGS)``: read or measure the shift map the settings name.
FROM_SETTINGS = object()


def open_measurement(settings: Settings) -> Stack:
    """The measurement the settings name, opened lazily (or the built-in sample).

    Examples
    --------
    >>> open_measurement(Settings(sample="fe_sample")).data.shape
    (141, 120, 160)
    """
    if settings.sample is not None:
        from ..simulate.sample import make_sample

        sample = make_sample()
        return Stack(sample.stack, sample.energies, {"sample": settings.sample})
    if settings.stack is None:
        raise ValueError("no measurement: give a stack (or the sample)")
    return read_stack(settings.stack, energies=settings.energies, flat=settings.flat, dark=settings.dark,
                      i0=settings.i0, axes=settings.axes)


def shift_map_for(settings: Settings) -> ShiftMap | None:
    """The energy-shift map the settings name: read from ``shift_map``, measured from the
    ``calibration`` foil (``degree``, ``bin_size``, ``calibration_reference``), or None."""
    from ..prepare.calibrate import calibrate

    if settings.shift_map is not None:
        return read_shift_map(settings.shift_map)
    if settings.calibration is None:
        return None
    foil = read_stack(settings.calibration)
    ref = read_reference(settings.calibration_reference) if settings.calibration_reference else None
    return calibrate(foil.data, foil.energies, reference=None if ref is None else ref.mu,
                     reference_energies=None if ref is None else ref.energies, degree=settings.degree,
                     bin=settings.bin_size)


@dataclass(frozen=True)
class Prepared:
    """A measurement prepared as the settings say.

    Attributes
    ----------
    stack : Stack
        Drift-corrected, energy-calibrated, cropped and binned (lazily).
    shift_map : ShiftMap or None
        The energy calibration applied (in the measurement's full grid).
    extra : dict
        What report.json says about the preparation (``grid``, ``drift``, ``calibration``).
    """

    stack: Stack
    shift_map: ShiftMap | None = None
    extra: dict = field(default_factory=dict)


def prepare(settings: Settings, stack: Stack | None = None, *,
            shift_map: Any = FROM_SETTINGS,  # a ShiftMap, None or FROM_SETTINGS
            drift: np.ndarray | None = None) -> Prepared:
    """Register, calibrate, crop and bin the measurement as the settings say.

    Parameters
    ----------
    settings : Settings
    stack : Stack, optional
        The measurement; default :func:`open_measurement`.
    shift_map : ShiftMap or None, optional
        An energy calibration measured elsewhere (a dock's self-calibration); default
        :func:`shift_map_for` the settings.
    drift : ndarray, shape (E, 2), optional
        The drift across energies measured before; with ``settings.register`` and no
        drift it is measured here.

    Returns
    -------
    Prepared
    """
    stack = open_measurement(settings) if stack is None else stack
    shift_map = shift_map_for(settings) if shift_map is FROM_SETTINGS else shift_map
    prepared, extra = prepare_measurement(
        stack, shift_map=shift_map, register=settings.register, drift=drift, roi=settings.roi, factor=settings.bin,
        calibration={"source": settings.shift_map or settings.calibration, "reference": settings.calibration_reference},
    )
    if stack.notes:  # what reading decided (energies from the file or overridden, an axis order)
        extra["stack_notes"] = list(stack.notes)
        for note in stack.notes:
            log.warning(note)
    return Prepared(prepared, shift_map, extra)


def references_for(settings: Settings) -> list[Reference]:
    """The settings' references, read and named as the settings name them."""
    refs = []
    for item in settings.references:
        ref = read_reference(item.spec)
        refs.append(replace(ref, name=item.name) if item.name and item.name != ref.name else ref)
    names = [ref.name for ref in refs]
    if len(set(names)) != len(names):
        raise ValueError(f"two references share a name: {names}; name records as FILE:NAME or rename a file")
    return refs


def classes_for(settings: Settings, reference_names: Iterable[str]) -> Classes:
    """The classes the settings ask for over ``reference_names``.

    Pure references first, then the mixtures (rule or table rows), named as the
    settings' ``class_names`` name them (automatic names otherwise).

    >>> s = Settings(class_names=("metal", "half"), compositions=((1.0, 0.0), (0.5, 0.5)))
    >>> classes_for(s, ["Fe", "FeO"]).names
    ('metal', 'FeO', 'half')
    """
    if settings.compositions is None:
        return make_classes(list(reference_names), mixtures=settings.mixtures)
    rows = np.array(settings.compositions, dtype=float)
    classes = make_classes(list(reference_names), mixtures=rows)
    rows = np.round(rows / rows.sum(axis=1, keepdims=True), 6)
    lookup = {tuple(row): name for row, name in zip(rows.tolist(), settings.class_names)}
    names = tuple(lookup.get(tuple(np.round(row, 6).tolist()), old)
                  for row, old in zip(classes.compositions, classes.names))
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be unique, got {list(names)}")
    return replace(classes, names=names)


def check_sizes(settings: Settings, stack: Stack, references: Sequence[Reference], *,
                distributed: bool = False) -> None:
    """Refuse, before any pixel is read, a training or maps that would not fit this machine."""
    e, rows, cols = stack.data.shape
    check_training(n_classes=len(classes_for(settings, [r.name for r in references])),
                   n_per_class=settings.n_per_class, n_energies=e, n_trees=settings.n_trees)
    check_maps_memory(rows=rows, cols=cols, k=len(references), zarr=settings.zarr and not distributed)


def train(settings: Settings, stack: Stack, references: Sequence[Reference], *,
          stop: Callable[[], bool] | None = None) -> Model:
    """The settings' :class:`~xafsmap.core.model.training.Model` for a prepared stack (``stop``:
    see :func:`~xafsmap.core.model.training.train_model`)."""
    mixtures = settings.mixtures if settings.compositions is None else np.array(settings.compositions, dtype=float)
    classes = classes_for(settings, [ref.name for ref in references])
    check_training(n_classes=len(classes), n_per_class=settings.n_per_class, n_energies=len(stack.energies),
                   n_trees=settings.n_trees)
    model = train_model(
        stack, references, offsets=[ref.offset for ref in settings.references], mixtures=mixtures,
        features=settings.features, smooth=settings.smooth, n_per_class=settings.n_per_class,
        n_trees=settings.n_trees, threshold=settings.threshold, significance=settings.significance,
        fit_range=settings.fit_range, noise=settings.noise, rng=settings.seed,
        align_references=settings.align_references, thick=settings.thick, stop=stop, **settings.normalization,
    )
    if settings.class_names is None:
        return model
    classifier = replace(model.classifier, classes=classes)
    return replace(model, classifier=classifier, params=dict(model.params, class_names=list(classes.names)))


def input_paths(settings: Settings) -> list[str]:
    """The files and folders the settings read (references by their file): an output
    folder may not be or hold any of them (:mod:`~xafsmap.core.io.folders`)."""
    found = []
    for spec in recipe_paths(settings):
        try:
            found.append(str(split_spec(spec)[0]))
        except FileNotFoundError:
            found.append(spec)
    return found

