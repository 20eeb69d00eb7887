"""Training for one measurement: the references on its energies, the classes, the forest.

:func:`train_model` surveys the stack (:func:`~xafsmap.core.spectra.survey.survey`),
checks (and if asked aligns) the references' energy scale, puts them on the
measurement's energies with the same normalization (:func:`prepare_references`), makes
the classes and their synthetic training spectra, fits the forest and returns the
:class:`Model` that :mod:`xafsmap.core.mapping.pipeline` maps every pixel with.
:func:`training_setup` is everything before the forest, which the docks' previews share.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..io.references import Reference
from ..settings.schema import DEFAULTS
from ..spectra.energyscale import EnergyScale, check_energy_scale
from ..spectra.normalize import normalize
from ..spectra.survey import Survey, survey
from ..spectra.thickness import ThickLimit, measure_thick_limit
from .checks import model_warnings
from .classify import Classifier, train_classifier
from .features import slope_operator
from .kernels import band_plan
from .synthesize import make_classes
from .standards import prepare_references

if TYPE_CHECKING:
    from ..io.stack import Stack

__all__ = ["Model", "TrainingSetup", "e0_map_rule", "thick_limit", "train_model", "training_setup"]



@dataclass(frozen=True)
class Model:
    """A classifier trained for one measurement, with what it learned from the survey.

    Attributes
    ----------
    classifier : Classifier
    survey : Survey
    normalization : dict
        The normalization parameters (Larch names) given; missing ones are derived
        from each spectrum.
    params : dict
        Every training choice, seed included (for report.json and recipes).
    warnings : tuple of str
        What the survey, the references or the held-out test say may make the map
        wrong (:func:`~xafsmap.core.model.checks.model_warnings`); report.json lists them and
        the command line prints them.
    thick : ThickLimit
        The absorbance above which pixels are too thick to trust (measured or stated).
    """

    classifier: Classifier
    survey: Survey
    normalization: dict
    params: dict
    warnings: tuple[str, ...] = ()
    thick: ThickLimit = ThickLimit(np.inf, "none")

    @property
    def larch_e0(self) -> bool:
        """Whether the e0 map follows Larch's definition (:func:`e0_map_rule`)."""
        return self.params.get("e0_map", {}).get("rule") == "larch"

    @functools.cached_property
    def band_plan(self):
        """The fused kernel's :class:`~xafsmap.core.model.kernels.BandPlan` for this model (None
        where only the numpy path applies), built once rather than once per band."""
        return band_plan(self.classifier, self.normalization, self.survey.noise_model, larch_e0=self.larch_e0)


@dataclass(frozen=True)
class TrainingSetup:
    """Everything training needs before the forest: the survey and the references on the stack's energies.

    Attributes
    ----------
    survey : Survey
    energies : ndarray, shape (E,)
    window : (int, int)
        Energy indices ``[start, stop)`` of ``fit_range`` around the survey's e0.
    scale : EnergyScale
        The energy-scale check of the references (offsets applied, alignment, warnings).
    references : ndarray, shape (K, E)
        The references prepared on the stack's energies (:func:`prepare_references`).
    seed : int
    """

    survey: Survey
    energies: np.ndarray
    window: tuple[int, int]
    scale: EnergyScale
    references: np.ndarray
    seed: int

    @property
    def normalization(self) -> dict:
        """The normalization every spectrum of the stack shares."""
        return self.survey.normalization

    def prepare(self, spectra: np.ndarray) -> np.ndarray:
        """Normalize (E, n) spectra as every pixel of the stack is."""
        return normalize(spectra, self.energies, **self.normalization).norm


def training_setup(stack: Stack, references: Sequence[Reference], *,
                   offsets: Sequence[float] | np.ndarray | None = None, threshold: float | None = None,
                   significance: float = DEFAULTS.significance, fit_range: tuple[float, float] = DEFAULTS.fit_range,
                   normalization: dict | None = None, align_references: bool = DEFAULTS.align_references,
                   rng: int | np.random.Generator | None = None) -> TrainingSetup:
    """Survey a stack, check (and if asked align) the references' energy scale, and put them on its energies.

    The first half of :func:`train_model` (same parameters), shared with the docks'
    previews of the references and the training spectra.

    Returns
    -------
    TrainingSetup
    """
    if not references:
        raise ValueError("at least one reference is needed")
    seed = rng if isinstance(rng, (int, np.integer)) else int(np.random.default_rng(rng).integers(2**31))
    data, energies = stack.data, np.asarray(stack.energies, dtype=np.float64)
    if data.shape[0] != energies.size:
        raise ValueError(f"stack has {data.shape[0]} energies but {energies.size} energies are given")
    given = {name: value for name, value in (normalization or {}).items() if value is not None}
    found = survey(data, energies, threshold=threshold, significance=significance, norm_params=given)
    params = found.normalization
    inside = np.flatnonzero((energies >= found.e0 + fit_range[0]) & (energies <= found.e0 + fit_range[1]))
    if inside.size < 5:
        raise ValueError(
            f"only {inside.size} energies lie within {fit_range} eV of the edge at {found.e0:.1f} eV"
        )
    window = (int(inside[0]), int(inside[-1]) + 1)
    # energy scales: the references' against the stack's, checked (and aligned if asked)
    scale = check_energy_scale(found.spectra, energies, references, norm_params=params, offsets=offsets,
                               window=window, align=align_references, rng=seed)
    refs = prepare_references(references, energies, e0=found.e0, offsets=scale.offsets, norm_params=params)
    return TrainingSetup(found, energies, window, scale, refs, seed)


def train_model(
    stack: Stack,
    references: Sequence[Reference],
    *,
    offsets: Sequence[float] | np.ndarray | None = None,
    mixtures: str | np.ndarray | None = DEFAULTS.mixtures,
    features: str = DEFAULTS.features,
    smooth: int = DEFAULTS.smooth,
    n_per_class: int = DEFAULTS.n_per_class,
    n_trees: int = DEFAULTS.n_trees,
    threshold: float | None = DEFAULTS.threshold,
    significance: float = DEFAULTS.significance,
    fit_range: tuple[float, float] = DEFAULTS.fit_range,
    e0: float | None = None,
    pre1: float | None = None,
    pre2: float | None = None,
    norm1: float | None = None,
    norm2: float | None = None,
    nnorm: int | None = None,
    noise: float | ArrayLike | None = DEFAULTS.noise,
    align_references: bool = DEFAULTS.align_references,
    thick: float | None = DEFAULTS.thick,
    rng: int | np.random.Generator | None = None,
    stop: Callable[[], bool] | None = None,
) -> Model:
    """Survey a stack, prepare the references and train the classifier for it.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
        The measurement (absorbance, (E, M, N), lazy or not).
    references : sequence of Reference
        Standards; their order is the order of the fraction maps.
    offsets : sequence of float, optional
        Energy offset per reference, eV.
    mixtures : str or ndarray
        Mixture classes (see :func:`~xafsmap.core.model.synthesize.parse_mixtures`).
    features, smooth : str, int
        Feature kind and smoothing window (see :func:`~xafsmap.core.model.features.compute_features`).
    n_per_class, n_trees : int
        Training spectra per class, trees in the forest.
    threshold : float, optional
        A manual edge-step cut of the no-sample mask; default the significance rule.
    significance : float
        Edge steps this many of their standard deviations above zero are sample
        (:func:`~xafsmap.core.spectra.mask.edge_mask`).
    fit_range : (float, float)
        Energies relative to the stack's median e0 used for features and LCF, eV.
    e0, pre1, pre2, norm1, norm2, nnorm : optional
        Normalization parameters with Larch's meaning; ``None`` derives them from each
        spectrum.
    noise : float or array_like, optional
        Noise level(s) of the training spectra, edge-step units; default the per-pixel
        levels the survey measured in the data.
    align_references : bool
        Fit one common energy offset of all references to the stack and add it to
        ``offsets`` (:func:`~xafsmap.core.spectra.energyscale.check_energy_scale`; recorded in
        ``params["alignment"]``). Without it the offset is only checked and warned about.
    thick : float, optional
        Absorbance above which pixels are too thick to trust; default measured
        (:func:`thick_limit`).
    rng : int or Generator, optional
        Seed of the training set and forest.
    stop : callable, optional
        Polled while the forest grows; True stops training
        (:class:`~xafsmap.core.model.classify.TrainingStopped`).

    Returns
    -------
    Model

    Notes
    -----
    The defaults are the settings' (:data:`~xafsmap.core.settings.schema.DEFAULTS`).
    """
    if not references:
        raise ValueError("at least one reference is needed")
    # scikit-learn takes ~1 s to import: let it load while the survey waits on the disk
    threading.Thread(target=importlib.import_module, args=("sklearn.ensemble",), daemon=True).start()
    setup = training_setup(stack, references, offsets=offsets, threshold=threshold, significance=significance,
                           fit_range=fit_range, align_references=align_references, rng=rng,
                           normalization=dict(e0=e0, pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2, nnorm=nnorm))
    found, energies, window, scale, refs, seed = (setup.survey, setup.energies, setup.window, setup.scale,
                                                  setup.references, setup.seed)
    params = setup.normalization
    too_thick = thick_limit(found, refs, energies, window=window, stated=thick)
    classes = make_classes([ref.name for ref in references], mixtures=mixtures)
    classifier = train_classifier(
        refs,
        energies,
        classes,
        noise=found.profiles if noise is None else noise,
        prepare=setup.prepare,
        window=window,
        n_per_class=n_per_class,
        n_trees=n_trees,
        features=features,
        smooth=smooth,
        rng=seed,
        stop=stop,
    )
    settings = dict(
        references=[ref.name for ref in references],
        offsets=scale.offsets, alignment=scale.alignment, normalization_rule=found.rule,
        mixtures=mixtures if isinstance(mixtures, str) else np.asarray(mixtures).tolist(),
        features=features, smooth=smooth, n_per_class=n_per_class, n_trees=n_trees,
        threshold=threshold, significance=significance, fit_range=list(fit_range), normalization=params,
        seed=seed, noise_model=found.noise_model.info, thick=too_thick.describe(),
        e0_map=e0_map_rule(found, energies, window=window, smooth=smooth),
        noise=None if noise is None else np.atleast_1d(np.asarray(noise, dtype=float)).tolist(),
    )
    warnings = model_warnings(classifier) + scale.warnings
    return Model(classifier=classifier, survey=found, normalization=params, params=settings, warnings=warnings,
                 thick=too_thick)


#: The e0 map follows Larch's definition when the noise of its derivative at the edge is
#: at most this share of the edge's derivative (elsewhere noise would move the maximum).
LARCH_E0_NOISE = 0.02


def e0_map_rule(found: Survey, energies: np.ndarray, *, window: tuple[int, int], smooth: int) -> dict:
    """How the e0 map finds each pixel's edge: ``{"rule": "larch" | "smoothed", "why": ...}``.

    Larch's ``find_e0`` takes the maximum of a narrowly smoothed derivative; on a
    dense, quiet scan that is the map's definition too. Where one pixel's noise would
    move that maximum (the noise of the derivative at the edge above
    :data:`LARCH_E0_NOISE` of its height, for the survey's median noise profile), the
    map smooths like the features (Savitzky–Golay, ``smooth`` points).
    """
    start, stop = window
    if found.spectra is None or not found.spectra.shape[1] or found.profiles.size == 0:
        return {"rule": "smoothed", "why": "no sample spectra surveyed"}
    operator = slope_operator(energies[start:stop], smooth=smooth, larch_e0=found.e0).astype(np.float64)
    slope = operator @ np.median(found.spectra[start:stop], axis=1)
    peak = int(np.argmax(slope))
    sigma = np.median(found.profiles, axis=0)[start:stop].astype(np.float64)
    noise = float(np.sqrt(np.sum(operator[peak] ** 2 * sigma**2)))
    share = noise / slope[peak] if slope[peak] > 0 else np.inf
    if share <= LARCH_E0_NOISE:
        return {"rule": "larch", "why": f"the noise of Larch's derivative at the edge is {100 * share:.2g} % of "
                f"its height (limit {100 * LARCH_E0_NOISE:g} %)"}
    return {"rule": "smoothed", "why": f"the noise of Larch's derivative at the edge would be {100 * share:.2g} % "
            f"of its height (limit {100 * LARCH_E0_NOISE:g} %): the maximum of the derivative smoothed over "
            f"{smooth} points is used"}


def thick_limit(found: Survey, references: np.ndarray, energies: np.ndarray, *, window: tuple[int, int],
                stated: float | None = None) -> ThickLimit:
    """The absorbance above which pixels are too thick: ``stated``, or measured on the
    survey's sample spectra against the prepared ``references`` (K, E)
    (:func:`~xafsmap.core.spectra.thickness.measure_thick_limit`)."""
    if stated is not None:
        return ThickLimit(float(stated), "stated")
    if found.spectra is None or found.spectra.shape[1] == 0:
        return ThickLimit(np.inf, "none")
    return measure_thick_limit(found.spectra, found.spectra_variance, found.spectra_max, references, energies,
                               window=window, e0=found.e0)


