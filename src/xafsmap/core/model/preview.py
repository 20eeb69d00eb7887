"""What the docks show before training: references over the stack, and a few training spectra.

Both start from :func:`~xafsmap.core.model.training.training_setup`, the first half of
training itself, so what the References and Classes docks draw is what the forest will
learn from: the same survey, normalization, energy-scale check and prepared references.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..io.references import Reference
from ..io.stack import Stack
from ..prepare.grid import subgrid
from ..settings.schema import DEFAULTS
from ..spectra.energyscale import EnergyScale
from ..spectra.normalize import normalize
from ..spectra.survey import Survey
from .synthesize import Classes, synthesize_spectra
from .training import training_setup

__all__ = ["MEAN_PIXELS", "PREVIEW_PER_CLASS", "ReferencesOverStack", "TrainingPreview", "compare_references",
           "preview_training"]

#: Pixels averaged into the mean spectrum the references are drawn over.
MEAN_PIXELS = 4096
#: Synthetic spectra drawn per class in the training preview.
PREVIEW_PER_CLASS = 3


@dataclass(frozen=True)
class ReferencesOverStack:
    """The stack's mean spectrum and the references on its energies, normalized alike.

    Attributes
    ----------
    energies : ndarray, shape (E,)
    mean : ndarray, shape (E,)
        Normalized mean spectrum of a subgrid of :data:`MEAN_PIXELS` finite pixels.
    references : ndarray, shape (K, E)
        As the training prepares them (offsets, alignment, normalization).
    e0 : float
        Edge energy of the mean spectrum, eV.
    scale : EnergyScale
        The energy-scale check of the references against the surveyed pixels.
    """

    energies: np.ndarray
    mean: np.ndarray
    references: np.ndarray
    e0: float
    scale: EnergyScale


def compare_references(stack: Stack, references: list[Reference], *,
                       offsets: Sequence[float] | np.ndarray | None = None, normalization: dict | None = None,
                       threshold: float | None = None, significance: float = DEFAULTS.significance,
                       fit_range: tuple[float, float] = DEFAULTS.fit_range, align: bool = False,
                       rng: int | np.random.Generator | None = 0) -> ReferencesOverStack:
    """The references over the mean spectrum of a prepared stack, with their energy-scale check.

    Parameters are :func:`~xafsmap.core.model.training.training_setup`'s; ``align``
    applies the common offset as training with ``align_references`` does.

    Returns
    -------
    ReferencesOverStack

    Raises
    ------
    ValueError
        If every pixel of the subgrid has a non-finite value.
    """
    block = subgrid(stack.data.shape[1:], MEAN_PIXELS).read(stack.data).reshape(stack.data.shape[0], -1)
    good = np.all(np.isfinite(block), axis=0)
    if not good.any():
        raise ValueError("every pixel read has a NaN or infinite value")
    setup = training_setup(stack, references, offsets=offsets, threshold=threshold, significance=significance,
                           fit_range=fit_range, normalization=normalization, align_references=align, rng=rng)
    mean = normalize(block[:, good].mean(axis=1), setup.energies, **setup.normalization)
    return ReferencesOverStack(setup.energies, np.asarray(mean.norm), setup.references, float(np.asarray(mean.e0)),
                               setup.scale)


@dataclass(frozen=True)
class TrainingPreview:
    """A few synthetic training spectra per class, as the forest will see them.

    Attributes
    ----------
    energies : ndarray, shape (E,)
    spectra : ndarray, shape (n, E)
        Normalized noisy spectra.
    labels : ndarray of int, shape (n,)
        Class index (0-based) of each.
    survey : Survey
        Its noise levels (``survey.noise``), e0 and surveyed pixels.
    """

    energies: np.ndarray
    spectra: np.ndarray
    labels: np.ndarray
    survey: Survey


def preview_training(stack: Stack, references: list[Reference], classes: Classes, *,
                     offsets: Sequence[float] | np.ndarray | None = None, normalization: dict | None = None,
                     threshold: float | None = None, significance: float = DEFAULTS.significance,
                     fit_range: tuple[float, float] = DEFAULTS.fit_range, align_references: bool = False,
                     noise: float | ArrayLike | None = None, n_per_class: int = PREVIEW_PER_CLASS,
                     rng: int | np.random.Generator | None = 0) -> TrainingPreview:
    """Draw a few training spectra per class, made as :func:`~xafsmap.core.model.training.train_model` makes them.

    ``noise`` is one level for every spectrum (edge steps), or None for the levels
    measured pixel by pixel in the survey; the other parameters are ``train_model``'s.

    Returns
    -------
    TrainingPreview
    """
    setup = training_setup(stack, references, offsets=offsets, threshold=threshold, significance=significance,
                           fit_range=fit_range, normalization=normalization, align_references=align_references,
                           rng=rng)
    noise = setup.survey.profiles if noise is None else noise
    spectra, labels, _ = synthesize_spectra(setup.references, classes.compositions, noise=noise,
                                            n_per_class=n_per_class, rng=setup.seed)
    return TrainingPreview(setup.energies, setup.prepare(spectra.T).T, labels, setup.survey)
