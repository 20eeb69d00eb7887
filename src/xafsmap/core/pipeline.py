"""The whole mapping job: survey, references, training, then every pixel band by band.

:func:`iter_map` is a generator that yields ``(done, total)`` progress and returns a
:class:`MapResult`; :func:`map_stack` drives it for scripts and the CLI, and the napari
widgets run the same generator in a worker thread. Memory stays bounded by the bands of
rows (all energies) in flight plus the 2-D maps, whatever the size of the stack.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .classify import METRICS, Classifier, classify, compute_features, label_features, train_classifier
from .kernels import band_plan, reduce_band
from .normalize import background_mask, estimate_noise, find_e0, normalize
from .references import resample_reference
from .synthesize import make_classes
from .tiff import BAND_BYTES

__all__ = [
    "MapResult",
    "Model",
    "band_rows",
    "check_maps",
    "drive",
    "iter_classify",
    "iter_map",
    "map_band",
    "map_stack",
    "pre_edge_window",
    "prepare_references",
    "survey",
    "train_model",
]

#: Bands are processed :data:`~xafsmap.core.tiff.BAND_BYTES` (of all energies) at a
#: time, BANDS_IN_FLIGHT at once (memory ~ BANDS_IN_FLIGHT x 5 x BAND_BYTES).
BANDS_IN_FLIGHT = 2
#: Pixels read for the survey that sets the mask threshold, e0 and noise level; how
#: many of its sample pixels vote for the stack's e0, and how many give noise levels
#: (the training spectra draw theirs from them).
SURVEY_PIXELS = 20_000
E0_PIXELS = 1_000
NOISE_PIXELS = 5_000
SURVEY_ASPECT = 16
#: mask.tif values.
MASK_BACKGROUND, MASK_SAMPLE, MASK_INVALID = 0, 1, 2
#: flags.tif bits, with the legend written to flags.csv.
FLAGS = {1: "no sample (edge step below threshold)", 2: "too thick (absorbance above the limit)",
         4: "invalid (NaN/inf or undefined absorbance at some energy)"}
FLAG_NO_SAMPLE, FLAG_THICK, FLAG_INVALID = 1, 2, 4
#: Absorbance above which a transmission spectrum is distorted (harmonics, leakage).
THICK_LIMIT = 4.0


@dataclass(frozen=True)
class Survey:
    """What a sparse sample of pixels says about the whole stack."""

    e0: float
    threshold: float
    noise: np.ndarray
    n_pixels: int
    normalization: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MapResult:
    """Maps of one measurement, all in the stack's (rows, columns) pixel grid.

    ``labels`` uint16 (0 = no sample or invalid, 1..C = class), ``mask`` uint8
    (0 = no sample, 1 = sample, 2 = invalid: a non-finite value at some energy),
    ``fractions`` (K, rows, columns); ``flags`` uint8 bits (:data:`FLAGS`); the
    others float32 (rows, columns).
    """

    labels: np.ndarray
    probability: np.ndarray
    distance: np.ndarray
    fractions: np.ndarray
    residual: np.ndarray
    edge_step: np.ndarray
    e0: np.ndarray
    mask: np.ndarray
    flags: np.ndarray
    classifier: Classifier
    survey: Survey
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def class_counts(self) -> dict[str, int]:
        """Pixels per class name (counted in row blocks: the labels may be larger than memory)."""
        from .zarrmaps import row_blocks

        n = len(self.classifier.classes) + 1
        counts = np.zeros(n, np.int64)
        for _, block in row_blocks(self.labels):
            counts += np.bincount(block.ravel(), minlength=n)[:n]
        return {name: int(c) for name, c in zip(self.classifier.classes.names, counts[1:])}


def survey(data, energies, *, threshold=None, norm_params=None, n_pixels=SURVEY_PIXELS,
           pre_edge: bool = True) -> Survey:
    """Normalize a regular grid of about ``n_pixels`` pixels to learn the stack's levels.

    Parameters
    ----------
    data : array_like, shape (E, M, N)
        The stack (numpy or dask: only the sampled pixels are read).
    energies : ndarray, shape (E,)
    threshold : float, optional
        Edge-step threshold of the background mask; default automatic
        (see :func:`~xafsmap.core.normalize.background_mask`).
    norm_params : dict, optional
        Keyword arguments for :func:`~xafsmap.core.normalize.normalize`.
    pre_edge : bool
        Use :func:`pre_edge_window` unless ``pre1``/``pre2`` are given; False keeps
        Larch's default windows.

    Returns
    -------
    Survey
        Median e0 of the sample pixels, the normalization parameters every spectrum
        of the stack shares (``e0`` and the :func:`pre_edge_window` unless given), the
        mask threshold and the per-pixel noise levels (edge-step units) of the sample
        pixels under that normalization.
    """
    _, rows, cols = data.shape
    # A regular grid, SURVEY_ASPECT times sparser in rows than in columns: a file is
    # read a row of a page at a time, so fewer rows cost fewer reads for the same pixels
    stride = np.sqrt(rows * cols / n_pixels)
    row_stride = max(1, int(stride * np.sqrt(SURVEY_ASPECT)))
    col_stride = max(1, int(stride / np.sqrt(SURVEY_ASPECT)))
    sample = np.asarray(data[:, row_stride // 2 :: row_stride, col_stride // 2 :: col_stride], dtype=np.float32)
    flat = sample.reshape(sample.shape[0], -1)
    flat = flat[:, np.all(np.isfinite(flat), axis=0)]
    if flat.shape[1] == 0:
        raise ValueError("every surveyed pixel has a NaN or infinite value: the stack holds no usable spectrum")
    given = dict(norm_params or {})
    # The mean spectrum's e0 windows a first shared normalization that finds the sample
    # pixels; the stack's e0 is then the median of Larch's e0 over up to E0_PIXELS of
    # them. One e0 for every spectrum (as Athena users set one for a data set): with
    # shared fit windows, normalizing a mixture equals mixing normalized references, so
    # fractions carry no bias from per-pixel windows. e0 per pixel is still mapped.
    first = given.get("e0", float(find_e0(flat.mean(axis=1), energies)))
    result = normalize(flat, energies, **{**given, "e0": first})
    is_sample, used = _sample_pixels(result.edge_step, threshold)
    if "e0" in given:
        e0 = float(given["e0"])
    else:
        e0 = float(np.median(find_e0(flat[:, _spread(np.flatnonzero(is_sample), E0_PIXELS)], energies)))
    final = {**(pre_edge_window(energies, e0) if pre_edge else {}), **given, "e0": e0}
    result = normalize(flat, energies, **final)
    is_sample, used = _sample_pixels(result.edge_step, threshold)
    noise = estimate_noise(result.norm[:, _spread(np.flatnonzero(is_sample), NOISE_PIXELS)], energies, e0=e0)
    noise = noise[np.isfinite(noise)]
    return Survey(e0=e0, threshold=float(used), noise=noise, n_pixels=int(flat.shape[1]), normalization=final)


def _spread(indices, n):
    """About ``n`` of ``indices``, evenly spread."""
    return indices[:: max(1, indices.size // n)]


def _sample_pixels(edge_step, threshold):
    if np.count_nonzero(np.isfinite(edge_step) & (edge_step > 0)) < 2:
        raise ValueError("no pixel has an edge step above 0: is this the right edge, and is it absorbance?")
    is_sample, used = background_mask(edge_step, threshold=threshold)
    if not np.any(is_sample):
        raise ValueError(
            f"no pixel has an edge step above the background threshold {used:.3g}: is this the right edge?"
        )
    return is_sample, used


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
    """

    classifier: Classifier
    survey: Survey
    normalization: dict
    params: dict


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
        Edge-step threshold of the no-sample mask; default automatic.
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
    found = survey(data, energies, threshold=threshold, norm_params=params)
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
        noise=found.noise if noise is None else noise,
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
        threshold=threshold, fit_range=list(fit_range), normalization=params, seed=seed,
        noise=None if noise is None else np.atleast_1d(np.asarray(noise, dtype=float)).tolist(),
    )
    return Model(classifier=classifier, survey=found, normalization=params, params=settings)


def iter_classify(stack, model: Model, *, metric: str = "euclidean", band_bytes: int = BAND_BYTES,
                  thick: float = THICK_LIMIT, maps: dict | None = None):
    """Classify every pixel of a stack with a trained :class:`Model`, band by band.

    Pixels whose absorbance exceeds ``thick`` at some energy are flagged too thick
    (their spectra are distorted) but still mapped. ``maps`` (a dict like
    :func:`new_maps`'s, e.g. :func:`~xafsmap.core.zarrmaps.open_map_store`'s zarr arrays)
    receives the maps instead of new in-memory arrays; the result then holds them.

    Yields
    ------
    (done, total) : tuple of int
        Bands finished out of all bands.

    Returns
    -------
    MapResult
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    data, energies = stack.data, np.asarray(stack.energies, dtype=np.float64)
    _, rows, cols = data.shape
    if not np.array_equal(energies, model.classifier.energies):
        raise ValueError("the model was trained on other energies than this stack's")
    band = band_rows(data.shape, band_bytes)
    total = _n_bands(data.shape, band_bytes)
    # maps: in memory, or arrays given (zarrmaps.open_map_store: maps larger than memory)
    k = model.classifier.references.shape[0]
    maps = new_maps(k, rows, cols) if maps is None else check_maps(maps, k, rows, cols, band=band)
    tic = time.perf_counter()

    read = _band_reader(data, band)

    def map_rows(r0):
        r1 = min(rows, r0 + band)
        _map_band(read(r0, r1), energies, r0, r1, maps, model=model, metric=metric, thick=thick)

    # Two bands in flight: while one waits for the disk or runs the (parallel) forest,
    # the other's single-threaded numpy work uses the second core. Bands write
    # disjoint rows of the maps.
    done = 0
    with ThreadPoolExecutor(max_workers=BANDS_IN_FLIGHT) as pool:
        pending = deque()
        for r0 in range(0, rows, band):
            pending.append(pool.submit(map_rows, r0))
            while len(pending) >= BANDS_IN_FLIGHT or (pending and r0 + band >= rows):
                pending.popleft().result()
                done += 1
                yield done, total
    timings = {"map_s": time.perf_counter() - tic}
    params = dict(model.params, metric=metric, threshold_used=model.survey.threshold, thick_limit=thick)
    return MapResult(classifier=model.classifier, survey=model.survey, params=params, timings=timings, **maps)


def iter_map(stack, references, *, metric: str = "euclidean", band_bytes: int = BAND_BYTES,
             thick: float = THICK_LIMIT, maps: dict | None = None, **options):
    """Train for a stack (see :func:`train_model` for the options), then map it
    (into ``maps`` if given, see :func:`iter_classify`).

    Yields
    ------
    (done, total) : tuple of int
        Training counts as the first step, then one step per band.

    Returns
    -------
    MapResult
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    total = 1 + _n_bands(stack.data.shape, band_bytes)
    tic = time.perf_counter()
    model = train_model(stack, references, **options)
    train_s = time.perf_counter() - tic
    yield 1, total
    generator = iter_classify(stack, model, metric=metric, band_bytes=band_bytes, thick=thick, maps=maps)
    while True:
        try:
            done, _ = next(generator)
        except StopIteration as stop:
            stop.value.timings["train_s"] = train_s
            return stop.value
        yield done + 1, total


def new_maps(k: int, rows: int, cols: int) -> dict:
    """Empty maps of a :class:`MapResult` (everything but the classifier and survey)."""
    maps = {
        "labels": np.zeros((rows, cols), np.uint16),
        "mask": np.zeros((rows, cols), np.uint8),
        "flags": np.zeros((rows, cols), np.uint8),
        "fractions": np.full((k, rows, cols), np.nan, np.float32),
    }
    for name in ("probability", "distance", "residual", "edge_step", "e0"):
        maps[name] = np.full((rows, cols), np.nan, np.float32)
    return maps


def check_maps(maps: dict, k: int, rows: int, cols: int, *, band: int) -> dict:
    """Check that given maps can receive bands of ``band`` rows: names, shapes, chunks.

    Chunked arrays (zarr) must hold whole bands of rows (chunk rows dividing ``band``),
    so the bands mapped at once never write the same chunk.
    """
    for name, empty in new_maps(k, 1, 1).items():
        shape = (k, rows, cols) if name == "fractions" else (rows, cols)
        if name not in maps or tuple(maps[name].shape) != shape or maps[name].dtype != empty.dtype:
            found = (tuple(maps[name].shape), str(maps[name].dtype)) if name in maps else "nothing"
            raise ValueError(f"maps[{name!r}] must be {shape} {empty.dtype}, got {found}")
        chunks = getattr(maps[name], "chunks", None)
        if isinstance(chunks, tuple) and chunks and isinstance(chunks[-2], int) and band % chunks[-2] and rows > band:
            raise ValueError(f"maps[{name!r}] has chunks of {chunks[-2]} rows but bands of {band} rows: "
                             f"two bands would write the same chunk")
    return maps


def band_rows(shape, band_bytes: int = BAND_BYTES) -> int:
    """Rows per band so that one band of all energies (float32) holds about ``band_bytes``."""
    n_energies, _, cols = shape
    return max(1, int(band_bytes // (n_energies * cols * 4)))


def _band_reader(data, band: int):
    """``read(r0, r1)`` -> float32 rows ``r0:r1`` of a stack, all energies.

    When a dask stack's row chunks are the bands (a TIFF read by
    :func:`~xafsmap.core.io.read_stack`), each band is its chunk's own task: slicing
    the dask array per band costs as much as reading it (~4 ms of graph work per 16 MB).
    """
    chunks = getattr(data, "chunks", None)
    regular = (chunks is not None and len(chunks[0]) == 1 and len(chunks[2]) == 1
               and all(size == band for size in chunks[1][:-1]) and chunks[1][-1] <= band)
    if not regular:
        return lambda r0, r1: np.asarray(data[:, r0:r1], dtype=np.float32)
    blocks = data.to_delayed().ravel()
    return lambda r0, r1: np.asarray(blocks[r0 // band].compute(scheduler="synchronous"), dtype=np.float32)


def _n_bands(shape, band_bytes: int) -> int:
    return -(-shape[1] // band_rows(shape, band_bytes))


def _map_band(band, energies, r0, r1, maps, *, model, metric, thick=THICK_LIMIT):
    """Map rows ``r0:r1`` (``band`` holds them, all energies) and write every map of
    ``maps`` with one assignment of whole rows, so any array with numpy slicing (numpy,
    memmap, zarr chunks of whole bands) can receive them."""
    out = map_band(band, energies, model=model, metric=metric, thick=thick)
    for name, block in out.items():
        if name == "fractions":
            maps[name][:, r0:r1] = block
        else:
            maps[name][r0:r1] = block


def map_band(band, energies, *, model, metric: str = "euclidean", thick: float = THICK_LIMIT) -> dict:
    """Every map of one band of pixels.

    Parameters
    ----------
    band : ndarray, shape (E, rows, N)
        Absorbance of the band, all energies.
    energies : ndarray, shape (E,)
    model : Model
    metric : str
        Feature-space distance (see :data:`~xafsmap.core.classify.METRICS`).
    thick : float
        Absorbance above which a pixel is flagged too thick.

    Returns
    -------
    dict
        The maps of :func:`new_maps` for these rows (``fractions`` (K, rows, N)).
    """
    plan = band_plan(model.classifier, model.normalization)
    if plan is None:
        return _map_band_numpy(band, energies, model=model, metric=metric, thick=thick)
    reduced = reduce_band(band, plan, thick=thick)
    classifier = model.classifier
    rows, cols = band.shape[1:]
    out = new_maps(classifier.references.shape[0], rows, cols)
    finite, step = reduced["finite"], reduced["edge_step"]
    out["edge_step"][:] = step
    window = energies[plan.window[0] : plan.window[1]]
    out["e0"][:] = np.where(reduced["e0_index"] >= 0, window[np.maximum(reduced["e0_index"], 0)], np.nan)
    _mask_band(out, finite, step > model.survey.threshold, reduced["thick"])
    sample = out["mask"] == MASK_SAMPLE
    pick = sample.ravel()
    found = label_features(classifier, reduced["features"][pick], metric=metric, parallel=False,
                           moments=(reduced["aty"][:, pick], reduced["yy"][pick]))
    for name in ("labels", "probability", "distance", "residual"):
        out[name][sample] = getattr(found, name)
    out["fractions"][:, sample] = found.fractions
    return out


def _mask_band(out, finite, sample, too_thick):
    sample = finite & sample
    out["mask"][:] = np.where(finite, sample.astype(np.uint8) * MASK_SAMPLE, MASK_INVALID)
    out["flags"][:] = (
        (finite & ~sample) * FLAG_NO_SAMPLE + (finite & too_thick) * FLAG_THICK + ~finite * FLAG_INVALID
    ).astype(np.uint8)


def _map_band_numpy(band, energies, *, model, metric, thick):
    """:func:`map_band` in numpy: the reference for the fused kernel, and the path
    without numba."""
    rows, cols = band.shape[1:]
    out = new_maps(model.classifier.references.shape[0], rows, cols)
    finite = np.all(np.isfinite(band), axis=0)
    band = np.where(finite, band, 0.0).astype(np.float32)
    result = normalize(band, energies, **model.normalization)
    classifier = model.classifier
    out["edge_step"][:] = np.where(finite, result.edge_step, np.nan)
    # e0 map: the steepest rise of the smoothed normalized spectrum in the feature window
    # (Larch's definition on the classifier's smoothing); the same slopes are the
    # forest's features when it learned on derivatives
    start, stop = classifier.window
    slope = compute_features(result.norm[start:stop], energies[start:stop], kind="derivative",
                             smooth=classifier.smooth)
    out["e0"][:] = np.where(finite, energies[start:stop][np.argmax(slope, axis=-1)], np.nan)
    _mask_band(out, finite, result.edge_step > model.survey.threshold, band.max(axis=0) > thick)
    sample = out["mask"] == MASK_SAMPLE
    features = slope[sample] if classifier.features == "derivative" else None
    found = classify(classifier, result.norm[:, sample], metric=metric, features=features)
    for name in ("labels", "probability", "distance", "residual"):
        out[name][sample] = getattr(found, name)
    out["fractions"][:, sample] = found.fractions
    return out


def drive(generator, progress=None):
    """Run a progress generator to its end; call ``progress(done, total)`` on each step.

    Returns the generator's return value (the result of the long job).
    """
    while True:
        try:
            step = next(generator)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(*step)


def map_stack(stack, references, **options) -> MapResult:
    """Run :func:`iter_map` to the end and return its :class:`MapResult` (``maps=`` too)."""
    return drive(iter_map(stack, references, **options))
