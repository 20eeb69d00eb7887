"""Training for one measurement: survey the stack, prepare the references, fit the forest.

:func:`survey` reads a sparse grid of pixels for the stack's noise model, e0 and sample
pixels; :func:`prepare_references` puts the standards on the measurement's
energies with the same normalization; :func:`train_model` makes the classes, the
synthetic training spectra and the forest, and returns the :class:`Model` that
:mod:`xafsmap.core.mapping.pipeline` maps every pixel with.
"""

from __future__ import annotations

import functools
import importlib
import threading
from dataclasses import dataclass, field

import numpy as np

from .checks import model_warnings
from .classify import Classifier, train_classifier
from ..spectra.energyscale import check_energy_scale
from .kernels import band_plan
from ..spectra.noise import NoiseModel, fit_noise_model
from ..spectra.mask import SIGNIFICANCE, edge_jump, edge_mask
from ..spectra.normalize import find_e0, normalize
from ..io.references import resample_reference
from .synthesize import make_classes
from ..spectra.thickness import ThickLimit, measure_thick_limit

__all__ = ["Model", "Survey", "e0_map_rule", "thick_limit", "pre_edge_rule", "pre_edge_window", "prepare_references", "survey", "train_model"]

#: Pixels read for the survey that sets the mask threshold, e0 and noise level; how
#: many of its sample pixels vote for the stack's e0, and how many give noise levels
#: (the training spectra draw theirs from them).
SURVEY_PIXELS = 20_000
E0_PIXELS = 1_000
NOISE_PIXELS = 5_000
SURVEY_ASPECT = 16
#: Normalized sample spectra the survey keeps (energy-scale checks and alignment).
KEPT_SPECTRA = 2_000

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
    noise_model : xafsmap.core.spectra.noise.NoiseModel
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
    #: (E, <= KEPT_SPECTRA) float32 normalized spectra of sample pixels, evenly spread,
    #: the variance of their points (edge-step units squared) and their largest absorbance.
    spectra: np.ndarray | None = None
    spectra_variance: np.ndarray | None = None
    spectra_max: np.ndarray | None = None
    #: Which pre-edge rule chose the windows, and why (:func:`pre_edge_rule`).
    rule: dict = field(default_factory=dict)


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
        (:func:`~xafsmap.core.spectra.mask.edge_mask`).
    significance : float
        Edge steps this many of their standard deviations above zero are sample.
    norm_params : dict, optional
        Keyword arguments for :func:`~xafsmap.core.spectra.normalize.normalize`.
    pre_edge : bool
        Use :func:`pre_edge_rule` unless ``pre1``/``pre2`` are given; False keeps
        Larch's default windows.

    Returns
    -------
    Survey
        The noise model (:func:`~xafsmap.core.spectra.noise.fit_noise_model`, from every finite
        surveyed pixel, holes included), the median e0 of the sample pixels, the
        normalization parameters every spectrum of the stack shares (``e0`` and the
        :func:`pre_edge_rule`'s window unless given) and that rule, the mask rule, the
        noise of the sample pixels under that normalization and up to
        ``KEPT_SPECTRA`` of their normalized spectra.
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
    window, rule = _pre_edge_choice(result, variance, _spread(np.flatnonzero(is_sample), E0_PIXELS), energies,
                                    e0=e0, pre_edge=pre_edge, given=given)
    final = {**window, **given, "e0": e0}
    result = normalize(flat, energies, **final)
    is_sample = _sample_pixels(flat, result, energies, variance, threshold, significance)
    pick = _spread(np.flatnonzero(is_sample), NOISE_PIXELS)
    profiles = (np.sqrt(variance[:, pick]) / np.abs(result.edge_step[pick])).T.astype(np.float32)
    where = np.flatnonzero(is_sample & (result.edge_step > 0))  # an inverted edge is no spectrum to fit
    kept = where[np.linspace(0, where.size - 1, min(where.size, KEPT_SPECTRA)).astype(int)]
    return Survey(e0=e0, threshold=threshold, significance=float(significance),
                  noise=np.median(profiles, axis=1), profiles=profiles, noise_model=model,
                  n_pixels=int(flat.shape[1]), sample_share=float(is_sample.mean()), normalization=final,
                  spectra=result.norm[:, kept].astype(np.float32),
                  spectra_variance=(variance[:, kept] / result.edge_step[kept] ** 2).astype(np.float32),
                  spectra_max=flat[:, kept].max(axis=0), rule=rule)


def _pre_edge_choice(result, variance, pick, energies, *, e0, pre_edge, given):
    """The survey's pre-edge window and rule, from the noise (edge steps) of the sample pixels
    ``pick`` under the first normalization ``result``."""
    if "pre1" in given or "pre2" in given:
        return {}, {"rule": "given", "why": "pre1/pre2 were given"}
    if not pre_edge:
        return {}, {"rule": "larch-default", "why": "pre_edge=False"}
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = np.median(np.sqrt(variance[:, pick]) / np.abs(result.edge_step[pick]), axis=0)
    noise = float(np.median(noise[np.isfinite(noise)])) if np.isfinite(noise).any() else None
    return pre_edge_rule(energies, e0, noise=noise)


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
        Keyword arguments for :func:`~xafsmap.core.spectra.normalize.normalize`.
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
#: Larch's default pre-edge window is kept when its line, extrapolated to e0, is
#: uncertain by at most this much (edge steps) at the sample pixels' median noise.
LARCH_WINDOW_ERROR = 0.005


def pre_edge_window(energies, e0: float, *, noise: float | None = None) -> dict:
    """The pre-edge fit window of :func:`pre_edge_rule` (``{}``: Larch's defaults).

    Examples
    --------
    >>> pre_edge_window(np.arange(7050.0, 7300.0, 5.0), 7120.0, noise=0.02)
    {'pre1': -70.0, 'pre2': -15.0}
    >>> pre_edge_window(np.arange(7050.0, 7300.0, 5.0), 7120.0, noise=1e-4)
    {}
    >>> pre_edge_window(np.arange(700.0, 730.0, 0.5), 709.0)
    {'pre1': -9.0, 'pre2': -2.5}
    >>> pre_edge_window(np.arange(7100.0, 7300.0, 5.0), 7120.0)
    {}
    """
    return pre_edge_rule(energies, e0, noise=noise)[0]


def _extrapolation(x, at):
    """Standard error of a least-squares line through points ``x`` at ``at``, per unit point noise."""
    if x.size < 3:
        return np.inf
    return float(np.sqrt(1.0 / x.size + (at - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2)))


def pre_edge_rule(energies, e0: float, *, noise: float | None = None) -> tuple[dict, dict]:
    """Pre-edge fit window for a stack: Larch's default where it is good enough, else the whole pre-edge.

    Parameters
    ----------
    energies : ndarray, shape (E,)
        The stack's energies, eV.
    e0 : float
        The stack's edge energy, eV.
    noise : float, optional
        Typical noise of one point of a sample pixel, edge-step units (the survey's
        median). None: unknown, the whole pre-edge is used wherever it can be.

    Returns
    -------
    window : dict
        ``{}`` for Larch's defaults (:func:`~xafsmap.core.spectra.normalize.normalize` derives
        ``pre1``, ``pre2``), or ``pre1`` = first energy - e0, ``pre2`` = -15 eV (-2.5 eV
        below 4 keV).
    rule : dict
        ``{"rule": "larch-default" | "whole-pre-edge", "why": ...}`` for report.json.

    Notes
    -----
    Larch's default window (``pre1`` = second energy - e0 rounded to 5 eV, ``pre2 =
    pre1 / 2``) keeps clear of the approach to the edge, but on an imaging stack it holds
    a handful of points far below e0, and the error of its line, extrapolated to e0,
    becomes the edge step's error. A line fitted to ``n`` points ``x_i`` with noise
    ``sigma`` each is uncertain at ``e0`` by ``sigma * sqrt(1/n + (e0 - mean x)**2 /
    sum (x_i - mean x)**2)``; Larch's window is kept when that is at most
    :data:`LARCH_WINDOW_ERROR` (0.5 % of the edge step, half the 1 % at which maps and
    Larch should agree) at the median noise of the sample pixels. Dense, quiet scans
    pass (a Mn foil scan: 262 points, 0.33 sigma, sigma ~1e-4); imaging stacks do not
    (the sample grid: 7 points, 2.1 sigma, sigma ~0.02). Otherwise all pre-edge points
    up to 15 eV below e0 are used (their line is 3-6 times steadier there; the fraction
    error of noisy stacks halves, docs/method.md), or Larch's window when fewer than
    ``PRE_EDGE_POINTS`` energies lie there.

    Examples
    --------
    >>> window, rule = pre_edge_rule(np.arange(7050.0, 7300.0, 5.0), 7120.0, noise=0.02)
    >>> window, rule["rule"]
    ({'pre1': -70.0, 'pre2': -15.0}, 'whole-pre-edge')
    """
    energies = np.asarray(energies, dtype=np.float64)
    gap = PRE_EDGE_GAP if e0 >= HARD_EDGE_EV else SOFT_PRE_EDGE_GAP
    whole = energies[energies <= e0 - gap]
    try:  # Larch's defaults, as normalize resolves them
        larch = normalize(np.ones(energies.size), energies, e0=e0).params
    except ValueError:
        larch = None
    lx = energies[(energies >= e0 + larch["pre1"]) & (energies < e0 + larch["pre2"])] if larch else energies[:0]
    spread = _extrapolation(lx, e0)
    where = (f"Larch's pre-edge window e0 + [{larch['pre1']:g}, {larch['pre2']:g}] eV holds {lx.size} energies"
             if larch else "Larch's pre-edge window holds fewer than 2 energies")
    if whole.size < PRE_EDGE_POINTS:
        return {}, {"rule": "larch-default", "why": f"only {whole.size} energies lie {gap:g} eV or more below e0 "
                    f"(fewer than {PRE_EDGE_POINTS}), too few for the whole pre-edge rule; {where}"}
    if noise is not None and np.isfinite(noise) and larch and spread * noise <= LARCH_WINDOW_ERROR:
        return {}, {"rule": "larch-default", "why": f"{where}: its line, extrapolated to e0, is uncertain by "
                    f"{spread:.2f} times one point's noise, {spread * noise:.2g} edge steps at the sample pixels' "
                    f"median noise {noise:.2g} (limit {LARCH_WINDOW_ERROR:g})"}
    window = {"pre1": float(energies[0] - e0), "pre2": -gap}
    if noise is None or not np.isfinite(noise):
        why = f"the noise is unknown; the whole pre-edge ({whole.size} energies) is the steadier line"
    else:
        why = (f"{where}: its line, extrapolated to e0, would be uncertain by {spread:.2f} times one point's "
               f"noise, {spread * noise:.2g} edge steps at the sample pixels' median noise {noise:.2g} (limit "
               f"{LARCH_WINDOW_ERROR:g}); the whole pre-edge up to {gap:g} eV below e0 ({whole.size} energies) "
               f"gives {_extrapolation(whole, e0):.2f} times")
    return window, {"rule": "whole-pre-edge", "why": why}


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
    align_references: bool = False,
    thick: float | None = None,
    rng=None,
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
        Feature kind and smoothing window (see :func:`~xafsmap.core.model.classify.compute_features`).
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
    inside = np.flatnonzero((energies >= found.e0 + fit_range[0]) & (energies <= found.e0 + fit_range[1]))
    if inside.size < 5:
        raise ValueError(
            f"only {inside.size} energies lie within {fit_range} eV of the edge at {found.e0:.1f} eV"
        )
    # energy scales: the references' against the stack's, checked (and aligned if asked)
    scale = check_energy_scale(found.spectra, energies, references, norm_params=params, offsets=offsets,
                               window=(int(inside[0]), int(inside[-1]) + 1), align=align_references, rng=seed)
    offsets = scale.offsets
    refs = prepare_references(references, energies, e0=found.e0, offsets=offsets, norm_params=params)
    too_thick = thick_limit(found, refs, energies, window=(int(inside[0]), int(inside[-1]) + 1), stated=thick)
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
        offsets=offsets, alignment=scale.alignment, normalization_rule=found.rule,
        mixtures=mixtures if isinstance(mixtures, str) else np.asarray(mixtures).tolist(),
        features=features, smooth=smooth, n_per_class=n_per_class, n_trees=n_trees,
        threshold=threshold, significance=significance, fit_range=list(fit_range), normalization=params,
        seed=seed, noise_model=found.noise_model.info, thick=too_thick.describe(),
        e0_map=e0_map_rule(found, energies, window=(int(inside[0]), int(inside[-1]) + 1), smooth=smooth),
        noise=None if noise is None else np.atleast_1d(np.asarray(noise, dtype=float)).tolist(),
    )
    warnings = model_warnings(classifier) + scale.warnings
    return Model(classifier=classifier, survey=found, normalization=params, params=settings, warnings=warnings,
                 thick=too_thick)


#: The e0 map follows Larch's definition when the noise of its derivative at the edge is
#: at most this share of the edge's derivative (elsewhere noise would move the maximum).
LARCH_E0_NOISE = 0.02


def e0_map_rule(found: Survey, energies, *, window, smooth: int) -> dict:
    """How the e0 map finds each pixel's edge: ``{"rule": "larch" | "smoothed", "why": ...}``.

    Larch's ``find_e0`` takes the maximum of a narrowly smoothed derivative; on a
    dense, quiet scan that is the map's definition too. Where one pixel's noise would
    move that maximum (the noise of the derivative at the edge above
    :data:`LARCH_E0_NOISE` of its height, for the survey's median noise profile), the
    map smooths like the features (Savitzky–Golay, ``smooth`` points).
    """
    from .classify import slope_operator

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


def thick_limit(found: Survey, references, energies, *, window, stated: float | None = None) -> ThickLimit:
    """The absorbance above which pixels are too thick: ``stated``, or measured on the
    survey's sample spectra against the prepared ``references`` (K, E)
    (:func:`~xafsmap.core.spectra.thickness.measure_thick_limit`)."""
    if stated is not None:
        return ThickLimit(float(stated), "stated")
    if found.spectra is None or found.spectra.shape[1] == 0:
        return ThickLimit(np.inf, "none")
    return measure_thick_limit(found.spectra, found.spectra_variance, found.spectra_max, references, energies,
                               window=window, e0=found.e0)
