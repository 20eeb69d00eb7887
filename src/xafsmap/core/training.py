"""Training for one measurement: survey the stack, prepare the references, fit the forest.

:func:`survey` reads a sparse grid of pixels for the stack's noise model, e0 and sample
pixels; :func:`prepare_references` puts the standards on the measurement's
energies with the same normalization; :func:`train_model` makes the classes, the
synthetic training spectra and the forest, and returns the :class:`Model` that
:mod:`xafsmap.core.pipeline` maps every pixel with.
"""

from __future__ import annotations

import functools
import importlib
import threading
from dataclasses import dataclass, field

import numpy as np

from .checks import model_warnings
from .classify import Classifier, train_classifier
from .kernels import band_plan
from .noise import NoiseModel, fit_noise_model
from .mask import SIGNIFICANCE, edge_jump, edge_mask
from .normalize import find_e0, normalize
from .references import resample_reference
from .synthesize import make_classes

__all__ = ["Model", "Survey", "pre_edge_window", "prepare_references", "survey", "train_model"]

#: Pixels read for the survey that sets the mask threshold, e0 and noise level; how
#: many of its sample pixels vote for the stack's e0, and how many give noise levels
#: (the training spectra draw theirs from them).
SURVEY_PIXELS = 20_000
E0_PIXELS = 1_000
NOISE_PIXELS = 5_000
SURVEY_ASPECT = 16

@dataclass(frozen=True)
class Survey:
    """What a sparse sample of pixels says about the whole stack.

    Attributes
    ----------
    e0 : float
        Median edge energy of the sample pixels, eV.
    threshold : float or None
        The manual edge-step cut of the mask, or None for the significance rule.
    significance : float
        Edge steps this many standard deviations above zero are sample.
    noise : ndarray, shape (P,)
        Median noise (edge-step units) of each surveyed sample pixel's points.
    profiles : ndarray, shape (P, E), float32
        Noise of every point (edge-step units) of surveyed sample pixels: what the
        training spectra draw their noise from, energy by energy.
    noise_model : xafsmap.core.noise.NoiseModel
        The variance of every point of the stack.
    n_pixels : int
        Finite pixels surveyed.
    sample_share : float
        Share of them that are sample.
    normalization : dict
        The normalization parameters every spectrum of the stack shares.
    """

    e0: float
    threshold: float | None
    significance: float
    noise: np.ndarray
    profiles: np.ndarray
    noise_model: NoiseModel
    n_pixels: int
    sample_share: float
    normalization: dict = field(default_factory=dict)


def survey(data, energies, *, threshold=None, significance: float = SIGNIFICANCE, norm_params=None,
           n_pixels=SURVEY_PIXELS, pre_edge: bool = True) -> Survey:
    """Normalize a regular grid of about ``n_pixels`` pixels to learn the stack's levels.

    Parameters
    ----------
    data : array_like, shape (E, M, N)
        The stack (numpy or dask: only the sampled pixels are read).
    energies : ndarray, shape (E,)
    threshold : float, optional
        A manual edge-step cut for the mask; default the significance rule
        (:func:`~xafsmap.core.mask.edge_mask`).
    significance : float
        Edge steps this many of their standard deviations above zero are sample.
    norm_params : dict, optional
        Keyword arguments for :func:`~xafsmap.core.normalize.normalize`.
    pre_edge : bool
        Use :func:`pre_edge_window` unless ``pre1``/``pre2`` are given; False keeps
        Larch's default windows.

    Returns
    -------
    Survey
        The noise model (:func:`~xafsmap.core.noise.fit_noise_model`, from every finite
        surveyed pixel, holes included), the median e0 of the sample pixels, the
        normalization parameters every spectrum of the stack shares (``e0`` and the
        :func:`pre_edge_window` unless given), the mask rule and the noise of the
        sample pixels under that normalization.
    """
    _, rows, cols = data.shape
    # A regular grid, SURVEY_ASPECT times sparser in rows than in columns: a file is
    # read a row of a page at a time, so fewer rows cost fewer reads for the same pixels
    stride = np.sqrt(rows * cols / n_pixels)
    row_stride = max(1, int(stride * np.sqrt(SURVEY_ASPECT)))
    col_stride = max(1, int(stride / np.sqrt(SURVEY_ASPECT)))
    sample = np.asarray(data[:, row_stride // 2 :: row_stride, col_stride // 2 :: col_stride], dtype=np.float32)
    grid_rows, grid_cols = np.meshgrid(np.arange(row_stride // 2, rows, row_stride),
                                       np.arange(col_stride // 2, cols, col_stride), indexing="ij")
    flat = sample.reshape(sample.shape[0], -1)
    finite = np.all(np.isfinite(flat), axis=0)
    flat, grid_rows, grid_cols = flat[:, finite], grid_rows.ravel()[finite], grid_cols.ravel()[finite]
    if flat.shape[1] == 0:
        raise ValueError("every surveyed pixel has a NaN or infinite value: the stack holds no usable spectrum")
    given = dict(norm_params or {})
    # The mean spectrum's e0 windows a first shared normalization that finds the sample
    # pixels; the stack's e0 is then the median of Larch's e0 over up to E0_PIXELS of
    # them. One e0 for every spectrum (as Athena users set one for a data set): with
    # shared fit windows, normalizing a mixture equals mixing normalized references, so
    # fractions carry no bias from per-pixel windows. e0 per pixel is still mapped.
    first = given.get("e0", float(find_e0(flat.mean(axis=1), energies)))
    model = fit_noise_model(flat, energies, e0=first, rows=grid_rows, cols=grid_cols)
    variance = model.variance(flat, model.scale(grid_rows, grid_cols))
    result = normalize(flat, energies, **{**given, "e0": first})
    is_sample = _sample_pixels(flat, result, energies, variance, threshold, significance)
    if "e0" in given:
        e0 = float(given["e0"])
    else:
        e0 = float(np.median(find_e0(flat[:, _spread(np.flatnonzero(is_sample), E0_PIXELS)], energies)))
    final = {**(pre_edge_window(energies, e0) if pre_edge else {}), **given, "e0": e0}
    result = normalize(flat, energies, **final)
    is_sample = _sample_pixels(flat, result, energies, variance, threshold, significance)
    pick = _spread(np.flatnonzero(is_sample), NOISE_PIXELS)
    profiles = (np.sqrt(variance[:, pick]) / result.edge_step[pick]).T.astype(np.float32)
    return Survey(e0=e0, threshold=threshold, significance=float(significance),
                  noise=np.median(profiles, axis=1), profiles=profiles, noise_model=model,
                  n_pixels=int(flat.shape[1]), sample_share=float(is_sample.mean()), normalization=final)


def _spread(indices, n):
    """About ``n`` of ``indices``, evenly spread."""
    return indices[:: max(1, indices.size // n)]


def _sample_pixels(flat, result, energies, variance, threshold, significance):
    step = result.edge_step
    if np.count_nonzero(np.isfinite(step) & (step > 0)) < 2:
        raise ValueError("no pixel has an edge step above 0: is this the right edge, and is it absorbance?")
    jump, sigma = edge_jump(flat, variance, energies, float(np.median(result.e0)))
    is_sample = edge_mask(jump, sigma, significance=significance, threshold=threshold, edge_step=step)
    falling = np.count_nonzero(jump < -significance * sigma)
    if falling > max(np.count_nonzero(is_sample), 10):
        raise ValueError(f"the absorbance falls across the edge in {100 * falling / jump.size:.0f} % of the surveyed "
                         "pixels: is the stack transmission rather than absorbance? give --flat (or --i0) to "
                         "take -ln(I/I0)")
    if not np.any(is_sample):
        rule = (f"an edge step above {threshold:.3g}" if threshold is not None else
                f"an edge {significance:g} times its noise")
        raise ValueError(f"no surveyed pixel has {rule}: is this the right edge?")
    return is_sample


def prepare_references(
    references, energies, *, e0: float, offsets=None, norm_params=None, edge_region=(-20.0, 40.0)
) -> np.ndarray:
    """Normalize references, put them on the measurement's energies, normalize again.

    Each reference is first normalized on its own energies (so its own pre- and
    post-edge define its edge step), shifted by its offset and interpolated onto the
    measurement's energies, then normalized with the measurement's parameters so it
    carries the same normalization as every pixel.

    Parameters
    ----------
    references : sequence of Reference
    energies : ndarray, shape (E,)
        The measurement's energies.
    e0 : float
        The measurement's edge energy; ``edge_region`` is relative to it.
    offsets : sequence of float, optional
        Energy offset per reference, eV (added to the reference's energies).
    norm_params : dict, optional
        Keyword arguments for :func:`~xafsmap.core.normalize.normalize`.
    edge_region : (float, float)
        The part of the measurement, relative to ``e0``, every reference must cover.

    Returns
    -------
    ndarray, shape (K, E), float64

    Raises
    ------
    ValueError
        If a reference does not cover the edge region.
    """
    energies = np.asarray(energies, dtype=np.float64)
    offsets = list(offsets) if offsets is not None else [0.0] * len(references)
    lo = max(e0 + edge_region[0], energies[0])
    hi = min(e0 + edge_region[1], energies[-1])
    rows = []
    for ref, offset in zip(references, offsets):
        own = normalize(ref.mu, ref.energies).norm
        rows.append(resample_reference(ref, energies, offset=offset, mu=own, require=(lo, hi)))
    resampled = np.array(rows).T
    return normalize(resampled, energies, **(norm_params or {})).norm.T.astype(np.float64)


#: Imaging pre-edge window ends this far below e0 (eV), clear of the Fe K pre-edge peak;
#: soft X-ray edges (below HARD_EDGE_EV) are narrower: their window ends closer.
PRE_EDGE_GAP, SOFT_PRE_EDGE_GAP, HARD_EDGE_EV = 15.0, 2.5, 4000.0
#: ... and is used only when it holds at least this many energies.
PRE_EDGE_POINTS = 6


def pre_edge_window(energies, e0: float) -> dict:
    """Pre-edge fit window for stacks: every energy up to ``PRE_EDGE_GAP`` eV below e0.

    Larch's default pre-edge window (``pre2`` about -35 to -50 eV) suits a scan with
    dense pre-edge points; imaging stacks spend few energies there, so that line rests
    on a handful of noisy points and its extrapolation over the post-edge dominates
    the normalization error. Using all pre-edge points down to the first energy cut
    the fraction error of noisy stacks by half (docs/method.md). Soft X-ray L edges
    (e0 below 4 keV) keep a 2.5 eV gap. Returns ``{}`` (Larch's defaults) when fewer
    than ``PRE_EDGE_POINTS`` energies lie in the window.

    Examples
    --------
    >>> pre_edge_window(np.arange(7050.0, 7300.0, 5.0), 7120.0)
    {'pre1': -70.0, 'pre2': -15.0}
    >>> pre_edge_window(np.arange(700.0, 730.0, 0.5), 709.0)
    {'pre1': -9.0, 'pre2': -2.5}
    >>> pre_edge_window(np.arange(7100.0, 7300.0, 5.0), 7120.0)
    {}
    """
    energies = np.asarray(energies, dtype=np.float64)
    gap = PRE_EDGE_GAP if e0 >= HARD_EDGE_EV else SOFT_PRE_EDGE_GAP
    if np.count_nonzero(energies <= e0 - gap) < PRE_EDGE_POINTS:
        return {}
    return {"pre1": float(energies[0] - e0), "pre2": -gap}


def _norm_params(**given) -> dict:
    return {name: value for name, value in given.items() if value is not None}


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
        wrong (:func:`~xafsmap.core.checks.model_warnings`); report.json lists them and
        the command line prints them.
    """

    classifier: Classifier
    survey: Survey
    normalization: dict
    params: dict
    warnings: tuple[str, ...] = ()

    @functools.cached_property
    def band_plan(self):
        """The fused kernel's :class:`~xafsmap.core.kernels.BandPlan` for this model (None
        where only the numpy path applies), built once rather than once per band."""
        return band_plan(self.classifier, self.normalization, self.survey.noise_model)


def train_model(
    stack,
    references,
    *,
    offsets=None,
    mixtures="pairs",
    features: str = "derivative",
    smooth: int = 9,
    n_per_class: int = 1000,
    n_trees: int = 100,
    threshold: float | None = None,
    significance: float = SIGNIFICANCE,
    fit_range: tuple[float, float] = (-30.0, 70.0),
    e0: float | None = None,
    pre1: float | None = None,
    pre2: float | None = None,
    norm1: float | None = None,
    norm2: float | None = None,
    nnorm: int | None = None,
    noise=None,
    rng=None,
) -> Model:
    """Survey a stack, prepare the references and train the classifier for it.

    Parameters
    ----------
    stack : xafsmap.core.io.Stack
        The measurement (absorbance, (E, M, N), lazy or not).
    references : sequence of Reference
        Standards; their order is the order of the fraction maps.
    offsets : sequence of float, optional
        Energy offset per reference, eV.
    mixtures : str or ndarray
        Mixture classes (see :func:`~xafsmap.core.synthesize.parse_mixtures`).
    features, smooth : str, int
        Feature kind and smoothing window (see :func:`~xafsmap.core.classify.compute_features`).
    n_per_class, n_trees : int
        Training spectra per class, trees in the forest.
    threshold : float, optional
        A manual edge-step cut of the no-sample mask; default the significance rule.
    significance : float
        Edge steps this many of their standard deviations above zero are sample
        (:func:`~xafsmap.core.mask.edge_mask`).
    fit_range : (float, float)
        Energies relative to the stack's median e0 used for features and LCF, eV.
    e0, pre1, pre2, norm1, norm2, nnorm : optional
        Normalization parameters with Larch's meaning; ``None`` derives them from each
        spectrum.
    noise : float or array_like, optional
        Noise level(s) of the training spectra, edge-step units; default the per-pixel
        levels the survey measured in the data.
    rng : int or Generator, optional
        Seed of the training set and forest.

    Returns
    -------
    Model
    """
    if not references:
        raise ValueError("at least one reference is needed")
    seed = rng if isinstance(rng, (int, np.integer)) else int(np.random.default_rng(rng).integers(2**31))
    data, energies = stack.data, np.asarray(stack.energies, dtype=np.float64)
    if data.shape[0] != energies.size:
        raise ValueError(f"stack has {data.shape[0]} energies but {energies.size} energies are given")
    params = _norm_params(e0=e0, pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2, nnorm=nnorm)
    # scikit-learn takes ~1 s to import: let it load while the survey waits on the disk
    threading.Thread(target=importlib.import_module, args=("sklearn.ensemble",), daemon=True).start()
    found = survey(data, energies, threshold=threshold, significance=significance, norm_params=params)
    params = found.normalization
    refs = prepare_references(references, energies, e0=found.e0, offsets=offsets, norm_params=params)
    inside = np.flatnonzero((energies >= found.e0 + fit_range[0]) & (energies <= found.e0 + fit_range[1]))
    if inside.size < 5:
        raise ValueError(
            f"only {inside.size} energies lie within {fit_range} eV of the edge at {found.e0:.1f} eV"
        )
    classes = make_classes([ref.name for ref in references], mixtures=mixtures)
    classifier = train_classifier(
        refs,
        energies,
        classes,
        noise=found.profiles if noise is None else noise,
        prepare=lambda spectra: normalize(spectra, energies, **params).norm,
        window=(int(inside[0]), int(inside[-1]) + 1),
        n_per_class=n_per_class,
        n_trees=n_trees,
        features=features,
        smooth=smooth,
        rng=seed,
    )
    settings = dict(
        references=[ref.name for ref in references],
        offsets=[float(v) for v in offsets] if offsets is not None else [0.0] * len(references),
        mixtures=mixtures if isinstance(mixtures, str) else np.asarray(mixtures).tolist(),
        features=features, smooth=smooth, n_per_class=n_per_class, n_trees=n_trees,
        threshold=threshold, significance=significance, fit_range=list(fit_range), normalization=params,
        seed=seed, noise_model=found.noise_model.info,
        noise=None if noise is None else np.atleast_1d(np.asarray(noise, dtype=float)).tolist(),
    )
    warnings = model_warnings(classifier)
    return Model(classifier=classifier, survey=found, normalization=params, params=settings, warnings=warnings)
