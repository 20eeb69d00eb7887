"""The whole mapping job: training (:mod:`~xafsmap.core.model.training`), then every pixel band by band.

:func:`iter_map` is a generator that yields ``(done, total)`` progress and returns a
:class:`MapResult`; :func:`map_stack` drives it for scripts and the CLI, and the napari
widgets run the same generator in a worker thread. Memory stays bounded by the bands of
rows (all energies) in flight plus the 2-D maps, whatever the size of the stack.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..io.tiff import BAND_BYTES
from ..model.classify import Classifier, classify, label_features
from ..model.features import METRICS, slope_operator
from ..model.kernels import reduce_band
from ..model.training import Model, train_model
from ..spectra.mask import edge_jump, edge_mask
from ..spectra.normalize import normalize
from ..spectra.survey import Survey
from .maps import (CHANNEL_MAPS, FLAG_INVALID, FLAG_NO_SAMPLE, FLAG_THICK, MASK_INVALID, MASK_SAMPLE, check_maps,
                   new_maps, value_counts)

if TYPE_CHECKING:
    from ..io.references import Reference
    from ..io.stack import Stack

T = TypeVar("T")

__all__ = [
    "MapResult",
    "after_training",
    "band_rows",
    "count_bands",
    "drive",
    "iter_classify",
    "iter_map",
    "iter_train_and_classify",
    "map_band",
    "map_band_into",
    "map_stack",
]

#: Bands are processed :data:`~xafsmap.core.io.tiff.BAND_BYTES` (of all energies) at a
#: time, BANDS_IN_FLIGHT at once (memory ~ BANDS_IN_FLIGHT x 5 x BAND_BYTES).
BANDS_IN_FLIGHT = 2
#: Share of the sample flagged too thick above which the map warns.
THICK_WARNING = 0.01


@dataclass(frozen=True)
class MapResult:
    """Maps of one measurement, all in the stack's (rows, columns) pixel grid.

    ``labels`` uint16 (0 = no sample or invalid, 1..C = class), ``mask`` uint8
    (0 = no sample, 1 = sample, 2 = invalid: a non-finite value at some energy),
    ``fractions`` and ``fraction_sigma`` (their 1-sigma uncertainty) (K, rows, columns);
    ``flags`` uint8 bits (:data:`FLAGS`); the others float32 (rows, columns). ``warnings`` are the model's (see
    :attr:`~xafsmap.core.model.training.Model.warnings`).
    """

    labels: np.ndarray
    probability: np.ndarray
    distance: np.ndarray
    fractions: np.ndarray
    fraction_sigma: np.ndarray
    residual: np.ndarray
    edge_step: np.ndarray
    e0: np.ndarray
    mask: np.ndarray
    flags: np.ndarray
    classifier: Classifier
    survey: Survey
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def class_counts(self) -> dict[str, int]:
        """Pixels per class name (counted in row blocks: the labels may be larger than memory)."""
        counts = value_counts(self.labels, len(self.classifier.classes) + 1)
        return {name: int(c) for name, c in zip(self.classifier.classes.names, counts[1:])}


def iter_classify(stack: Stack, model: Model, *, metric: str = "euclidean", band_bytes: int = BAND_BYTES,
                  thick: float | None = None, maps: dict | None = None) -> Generator[tuple[int, int], None, MapResult]:
    """Classify every pixel of a stack with a trained :class:`Model`, band by band.

    Pixels whose absorbance exceeds ``thick`` (default the model's measured or stated
    limit, :attr:`~xafsmap.core.model.training.Model.thick`) at some energy are flagged too
    thick (their spectra are distorted) but still mapped. ``maps`` (a dict like
    :func:`new_maps`'s, e.g. :func:`~xafsmap.core.mapping.zarrmaps.open_map_store`'s zarr arrays)
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
    total = count_bands(data.shape, band_bytes)
    # maps: in memory, or arrays given (zarrmaps.open_map_store: maps larger than memory)
    k = model.classifier.references.shape[0]
    maps = new_maps(k, rows, cols) if maps is None else check_maps(maps, k, rows, cols, band=band)
    thick = model.thick.limit if thick is None else float(thick)
    tic = time.perf_counter()

    read = _band_reader(data, band)

    def map_rows(r0):
        r1 = min(rows, r0 + band)
        map_band_into(read(r0, r1), energies, r0, r1, maps, model=model, metric=metric, thick=thick, origin=r0)

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
    return finish_map(model, maps, metric=metric, thick=thick, timings=timings)


def finish_map(model: Model, maps: dict, *, metric: str, thick: float, timings: dict) -> MapResult:
    """The :class:`MapResult` of mapped ``maps``, with the model's warnings and one about
    the share of sample pixels too thick to trust."""
    params = dict(model.params, metric=metric, thick_limit=None if not np.isfinite(thick) else thick)
    sample = int(value_counts(maps["mask"], 3)[MASK_SAMPLE])
    too_thick = int(value_counts(maps["flags"], 256)[FLAG_THICK])  # sample (no other bit) and too thick
    warnings = model.warnings
    if sample and too_thick > THICK_WARNING * sample:
        warnings += (f"{100 * too_thick / sample:.1f} % of the sample pixels are too thick to trust (absorbance "
                     f"above {thick:.3g}, {model.thick.source if thick == model.thick.limit else 'stated'}): "
                     "harmonics or scattered light distort their spectra; they are flagged (flags.tif bit 2) "
                     "and kept out of the unexplained map",)
    return MapResult(classifier=model.classifier, survey=model.survey, params=params, timings=timings,
                     warnings=warnings, **maps)


def iter_map(stack: Stack, references: Sequence[Reference], *, metric: str = "euclidean", band_bytes: int = BAND_BYTES,
             maps: dict | None = None, **options: Any) -> Generator[tuple[int, int], None, MapResult]:
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
    return (yield from iter_train_and_classify(lambda: train_model(stack, references, **options), stack,
                                               metric=metric, band_bytes=band_bytes, maps=maps))


def iter_train_and_classify(train: Callable[[], Model], stack: Stack, *, metric: str = "euclidean",
                            band_bytes: int = BAND_BYTES,
                            maps: dict | None = None) -> Generator[tuple[int, int], None, MapResult]:
    """Call ``train()`` for the model (the first step, timed), then map every band with it.

    Yields
    ------
    (done, total) : tuple of int

    Returns
    -------
    MapResult
        With ``timings["train_s"]``.
    """
    total = 1 + count_bands(stack.data.shape, band_bytes)
    tic = time.perf_counter()
    model = train()
    train_s = time.perf_counter() - tic
    yield 1, total
    return (yield from after_training(iter_classify(stack, model, metric=metric, band_bytes=band_bytes, maps=maps),
                                      train_s))


def after_training(bands: Generator[tuple[int, int], None, MapResult],
                   train_s: float) -> Generator[tuple[int, int], None, MapResult]:
    """A mapping generator's progress one step later (training was the first step), and its
    result with ``timings["train_s"]``.

    >>> from types import SimpleNamespace
    >>> def bands():
    ...     yield 1, 2
    ...     yield 2, 2
    ...     return SimpleNamespace(timings={"map_s": 1.0})
    >>> drive(after_training(bands(), 3.5), lambda done, total: print(done, total)).timings
    2 3
    3 3
    {'map_s': 1.0, 'train_s': 3.5}
    """
    while True:
        try:
            done, total = next(bands)
        except StopIteration as stop:
            stop.value.timings["train_s"] = train_s
            return stop.value
        yield done + 1, total + 1


def band_rows(shape: tuple[int, ...], band_bytes: int = BAND_BYTES) -> int:
    """Rows per band so that one band of all energies (float32) holds about ``band_bytes``."""
    n_energies, _, cols = shape
    return max(1, int(band_bytes // (n_energies * cols * 4)))


def _band_reader(data, band: int):
    """``read(r0, r1)`` -> float32 rows ``r0:r1`` of a stack, all energies.

    When a dask stack's row chunks are the bands (a TIFF read by
    :func:`~xafsmap.core.io.stack.read_stack`), each band is its chunk's own task: slicing
    the dask array per band costs as much as reading it (~4 ms of graph work per 16 MB).
    """
    chunks = getattr(data, "chunks", None)
    regular = (chunks is not None and len(chunks[0]) == 1 and len(chunks[2]) == 1
               and all(size == band for size in chunks[1][:-1]) and chunks[1][-1] <= band)
    if not regular:
        return lambda r0, r1: np.asarray(data[:, r0:r1], dtype=np.float32)
    blocks = data.to_delayed().ravel()
    return lambda r0, r1: np.asarray(blocks[r0 // band].compute(scheduler="synchronous"), dtype=np.float32)


def count_bands(shape: tuple[int, ...], band_bytes: int = BAND_BYTES) -> int:
    """Bands of :func:`band_rows` rows in a stack of ``shape`` (E, M, N).

    >>> count_bands((210, 1000, 1700))
    91
    """
    return -(-shape[1] // band_rows(shape, band_bytes))


def map_band_into(band: np.ndarray, energies: np.ndarray, r0: int, r1: int, maps: dict, *, model: Model, metric: str,
                  thick: float, origin: int = 0) -> None:
    """Map rows ``r0:r1`` of ``maps`` (``band`` holds them, all energies; ``origin`` is
    the first row's row in the stack) and write every map with one assignment of whole
    rows, so any array with numpy slicing (numpy, memmap, zarr chunks of whole bands)
    can receive them."""
    out = map_band(band, energies, model=model, metric=metric, thick=thick, origin=origin)
    for name, block in out.items():
        if name in CHANNEL_MAPS:
            maps[name][:, r0:r1] = block
        else:
            maps[name][r0:r1] = block


def map_band(band: np.ndarray, energies: np.ndarray, *, model: Model, metric: str = "euclidean",
             thick: float | None = None, origin: int = 0) -> dict:
    """Every map of one band of pixels.

    Parameters
    ----------
    band : ndarray, shape (E, rows, N)
        Absorbance of the band, all energies.
    energies : ndarray, shape (E,)
    model : Model
    metric : str
        Feature-space distance (see :data:`~xafsmap.core.model.features.METRICS`).
    thick : float, optional
        Absorbance above which a pixel is flagged too thick (default the model's limit).
    origin : int
        Row of the stack where the band starts (for the noise model's field).

    Returns
    -------
    dict
        The maps of :func:`new_maps` for these rows (``fractions`` and
        ``fraction_sigma`` (K, rows, N)).
    """
    rows, cols = band.shape[1:]
    scale = model.survey.noise_model.band_scale(origin, origin + rows, cols)
    thick = model.thick.limit if thick is None else float(thick)
    plan = model.band_plan
    if plan is None:
        return _map_band_numpy(band, energies, model=model, metric=metric, thick=thick, scale=scale)
    reduced = reduce_band(band, plan, thick=thick, scale=scale)
    classifier = model.classifier
    out = new_maps(classifier.references.shape[0], rows, cols)
    finite, step = reduced["finite"], reduced["edge_step"]
    out["edge_step"][:] = step
    window = energies[plan.window[0] : plan.window[1]]
    out["e0"][:] = np.where(reduced["e0_index"] >= 0, window[np.maximum(reduced["e0_index"], 0)], np.nan)
    _mask_band(out, finite, _has_edge(reduced["edge_jump"], reduced["jump_sigma"], step, model.survey),
               reduced["thick"])
    sample = out["mask"] == MASK_SAMPLE
    pick = sample.ravel()
    moments = {name: reduced[name][..., pick] if name in ("aty", "atwy", "yy", "ywy") else reduced[name][pick]
               for name in ("aty", "yy", "gram_w", "atwy", "ywy")}
    found = label_features(classifier, reduced["features"][pick], metric=metric, parallel=False,
                           moments=moments, feature_sd=reduced["feature_sd"][pick])
    _put(out, sample, found)
    return out


def _put(out, sample, found):
    for name in ("labels", "probability", "distance", "residual"):
        out[name][sample] = getattr(found, name)
    out["fractions"][:, sample] = found.fractions
    out["fraction_sigma"][:, sample] = found.fraction_sigma


def _has_edge(jump, jump_sigma, step, survey):
    return edge_mask(jump, jump_sigma, significance=survey.significance, threshold=survey.threshold,
                     edge_step=step, neighbours=True)


def _mask_band(out, finite, sample, too_thick):
    sample = finite & sample
    out["mask"][:] = np.where(finite, sample.astype(np.uint8) * MASK_SAMPLE, MASK_INVALID)
    out["flags"][:] = (
        (finite & ~sample) * FLAG_NO_SAMPLE + (finite & too_thick) * FLAG_THICK + ~finite * FLAG_INVALID
    ).astype(np.uint8)


def _map_band_numpy(band, energies, *, model, metric, thick, scale):
    """:func:`map_band` in numpy: the reference for the fused kernel, and the path
    without numba."""
    rows, cols = band.shape[1:]
    out = new_maps(model.classifier.references.shape[0], rows, cols)
    finite = np.all(np.isfinite(band), axis=0)
    band = np.where(finite, band, 0.0).astype(np.float32)
    result = normalize(band, energies, **model.normalization)
    variance = model.survey.noise_model.variance(band, scale)
    jump, jump_sigma = edge_jump(band, variance, energies, model.survey.e0)
    classifier = model.classifier
    out["edge_step"][:] = np.where(finite, result.edge_step, np.nan)
    # e0 map: the steepest rise of the normalized spectrum in the feature window, by
    # Larch's definition where the noise allows (Model.larch_e0), else smoothed
    start, stop = classifier.window
    operator = slope_operator(energies[start:stop], smooth=classifier.smooth,
                              larch_e0=model.survey.e0 if model.larch_e0 else None)
    slope = np.moveaxis(np.tensordot(operator, result.norm[start:stop], axes=(1, 0)), 0, -1)
    out["e0"][:] = np.where(finite, energies[start:stop][np.argmax(slope, axis=-1)], np.nan)
    _mask_band(out, finite, _has_edge(jump, jump_sigma, result.edge_step, model.survey), band.max(axis=0) > thick)
    sample = out["mask"] == MASK_SAMPLE
    features = None
    found = classify(classifier, result.norm[:, sample], metric=metric, features=features,
                     variance=variance[:, sample] / result.edge_step[sample] ** 2)
    _put(out, sample, found)
    return out


def drive(generator: Generator[tuple[int, int], None, T], progress: Callable[[int, int], object] | None = None) -> T:
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


def map_stack(stack: Stack, references: Sequence[Reference], **options: Any) -> MapResult:
    """Run :func:`iter_map` to the end and return its :class:`MapResult` (``maps=`` too)."""
    return drive(iter_map(stack, references, **options))
