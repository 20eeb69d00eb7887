"""One trained model over many stacks: the classifier stays, each stack brings its own survey.

A model trained on one stack (or read from a file, :mod:`~xafsmap.core.model.modelfile`)
holds two kinds of things. The classifier — classes, forest, the references on the
energies, the normalization every spectrum is put through, the feature window — is what
makes the classes of a series mean the same in every map. The survey — the noise model
over the detector, which pixels hold sample, the absorbance above which pixels are too
thick — belongs to each measurement. :func:`model_for_stack` keeps the first and
surveys the stack for the second, exactly as training surveyed its own stack: applied
to the stack it was trained on, it gives back the model that training made.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..settings.schema import DEFAULTS
from ..spectra.survey import survey
from .training import Model, thick_limit

if TYPE_CHECKING:
    from ..io.stack import Stack

__all__ = ["check_energies", "check_normalization", "model_for_stack"]


def check_energies(model: Model, energies: ArrayLike, *, what: str = "the stack") -> None:
    """Refuse a stack whose energies are not the model's, in one line.

    Raises
    ------
    ValueError
        ``'the stack has 141 energies (7050.0–7300.0 eV) but the model was trained on 120
        (...): map it with a model trained on its own energy grid'``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> m = SimpleNamespace(classifier=SimpleNamespace(energies=np.array([1.0, 2.0])))
    >>> check_energies(m, [1.0, 2.5])
    Traceback (most recent call last):
    ValueError: the stack's energies differ from the model's by up to 0.5 eV (2 energies, 1–2.5 eV; the model: 1–2 eV): map it with a model trained on its own energy grid
    """
    energies = np.asarray(energies, dtype=np.float64)
    trained = np.asarray(model.classifier.energies, dtype=np.float64)
    if energies.shape == trained.shape and np.array_equal(energies, trained):
        return
    span = f"{energies[0]:g}–{energies[-1]:g} eV" if energies.size else "none"
    model_span = f"{trained[0]:g}–{trained[-1]:g} eV"
    if energies.shape != trained.shape:
        raise ValueError(f"{what} has {energies.size} energies ({span}) but the model was trained on {trained.size} "
                         f"({model_span}): map it with a model trained on its own energy grid")
    worst = float(np.max(np.abs(energies - trained)))
    raise ValueError(f"{what}'s energies differ from the model's by up to {worst:.3g} eV ({energies.size} energies, "
                     f"{span}; the model: {model_span}): map it with a model trained on its own energy grid")


def check_normalization(model: Model, given: dict) -> None:
    """Refuse normalization parameters that are not the model's (the ones given only).

    >>> from types import SimpleNamespace
    >>> check_normalization(SimpleNamespace(normalization={"e0": 7120.0, "pre1": -150.0}), {"e0": 7125.0})
    Traceback (most recent call last):
    ValueError: the model normalizes with e0 = 7120 but e0 = 7125 is given: leave the normalization to the model or train a new one
    """
    for name, value in given.items():
        if value is None:
            continue
        trained = model.normalization.get(name)
        if trained is None or not np.isclose(float(trained), float(value), rtol=0, atol=1e-9):
            shown = "derived per spectrum" if trained is None else f"{name} = {float(trained):g}"
            raise ValueError(f"the model normalizes with {shown} but {name} = {float(value):g} is given: leave the "
                             "normalization to the model or train a new one")


def model_for_stack(model: Model, stack: Stack, *, threshold: float | None = DEFAULTS.threshold,
                    significance: float = DEFAULTS.significance, normalization: dict | None = None,
                    thick: float | None = DEFAULTS.thick) -> Model:
    """The model's classifier with ``stack``'s own survey: ready to map ``stack``.

    Parameters
    ----------
    model : Model
        Trained on another stack of the series, or read from a file.
    stack : Stack
        Prepared (its energies must be the model's exactly).
    threshold, significance : float
        The mask rule (see :func:`~xafsmap.core.spectra.survey.survey`).
    normalization : dict, optional
        The normalization parameters the user gave (as training took them): they steer
        the survey as they steered training's; they must agree with the model's.
    thick : float, optional
        Absorbance above which pixels are too thick; default measured on this stack.

    Returns
    -------
    Model
        Same classifier, normalization, warnings and training parameters; this stack's
        survey (noise model, sample share) and thick limit. Applied to the stack the
        model was trained on, every array equals the trained model's.

    Raises
    ------
    ValueError
        For other energies (:func:`check_energies`) or normalization
        (:func:`check_normalization`), or a stack the survey finds no sample in.

    Examples
    --------
    >>> from xafsmap.core.simulate.sample import make_sample
    >>> from xafsmap.core.io.stack import Stack
    >>> from xafsmap.core.model.training import train_model
    >>> s = make_sample((24, 32), n_grains=6, rng=1)
    >>> stack = Stack(s.stack, s.energies, {})
    >>> model = train_model(stack, s.references, n_per_class=30, n_trees=3, rng=0)
    >>> again = model_for_stack(model, stack)
    >>> again.classifier is model.classifier, again.thick.limit == model.thick.limit
    (True, True)
    """
    given = {name: value for name, value in (normalization or {}).items() if value is not None}
    check_energies(model, stack.energies)
    check_normalization(model, given)
    energies = np.asarray(stack.energies, dtype=np.float64)
    found = survey(stack.data, energies, threshold=threshold, significance=significance, norm_params=given)
    classifier = model.classifier
    limit = thick_limit(found, classifier.references, energies, window=classifier.window, stated=thick)
    params = dict(model.params, threshold=threshold, significance=significance, noise_model=found.noise_model.info,
                  thick=limit.describe())
    return replace(model, survey=found, params=params, thick=limit)
