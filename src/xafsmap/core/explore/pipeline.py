"""The whole exploration: learn on a sample of pixels, then one pass over the stack in bands.

:func:`iter_explore` is a generator like :func:`~xafsmap.core.pipeline.iter_map`: it
yields ``(done, total)`` and returns an :class:`ExploreResult`. The first step reads
the survey's grid (:func:`~xafsmap.core.explore.sampling.sample_pixels`) and learns
the components, clusters and NMF spectra from it; every later step is one band of rows
(all energies) read once and reduced to maps: component scores, cluster labels, NMF
abundances, edge maps and each cluster's running sums. Memory stays bounded by the
bands in flight and the 2-D maps, whatever the size of the stack. With numba the
normalization, the noise model's variance and the mask's edge jump of a band come from
the fused kernel of ``xafsmap map`` (:func:`~xafsmap.core.kernels.reduce_band`); the
numpy path gives the same numbers (tested).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model.kernels import BandPlan, reduce_band, reference_pairs
from ..spectra.mask import SIGNIFICANCE, edge_jump, edge_mask, jump_design
from ..spectra.normalize import normalize
from ..spectra.sharedfit import shared_fit
from ..mapping.pipeline import BANDS_IN_FLIGHT, band_rows, drive
from ..mapping.maps import MASK_INVALID, MASK_SAMPLE
from ..io.tiff import BAND_BYTES
from ..spectra.survey import SURVEY_PIXELS
from .clusters import Clustering, assign_clusters, find_clusters
from .components import Components, find_components
from .edges import edge_maps, edge_settings
from .sampling import PixelSample, sample_pixels
from .unmix import Unmixing, abundances, unmix

if TYPE_CHECKING:
    from ..io.stack import Stack
    import dask.array as da

__all__ = ["ExploreResult", "Learned", "explore_band", "explore_stack", "iter_explore", "learn"]


@dataclass(frozen=True, eq=False)
class Learned:
    """What the sample taught: everything a band needs to be explored.

    Attributes
    ----------
    sample : PixelSample
    components : Components
    clustering : Clustering
    unmixing : Unmixing or None
    plan : xafsmap.core.kernels.BandPlan or None
        The fused kernel's plan (None: the numpy path).
    """

    sample: PixelSample
    components: Components
    clustering: Clustering
    unmixing: Unmixing | None
    plan: BandPlan | None = None

    @property
    def energies(self) -> np.ndarray:
        return self.sample.energies


@dataclass(frozen=True, eq=False)
class ExploreResult:
    """Maps and spectra of one exploration, in the stack's (rows, columns) grid.

    ``scores`` (N, rows, cols) and ``nmf`` (K, rows, cols) float32 (NaN off the
    sample), ``clusters`` uint16 (0 = no sample), ``mask`` uint8 (0 no sample, 1 sample,
    2 invalid), ``edges`` a dict of float32 (rows, cols) maps (see
    :func:`~xafsmap.core.explore.edges.edge_maps`), ``edge_step`` float32. Per cluster:
    the mean normalized spectrum (``cluster_spectra``, (k, E)), its standard deviation
    over the pixels (``cluster_spread``) and ``cluster_pixels``.
    """

    learned: Learned
    scores: np.ndarray
    clusters: np.ndarray
    nmf: np.ndarray | None
    edges: dict
    mask: np.ndarray
    edge_step: np.ndarray
    cluster_spectra: np.ndarray
    cluster_spread: np.ndarray
    cluster_pixels: np.ndarray
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def energies(self) -> np.ndarray:
        return self.learned.energies

    def report(self) -> dict:
        """What ``explore.json`` records: choices, evidence and criteria."""
        learned = self.learned
        survey = learned.sample.survey
        clustering = learned.clustering
        out = {
            "n_components": learned.components.n, "components": learned.components.evidence,
            "clusters": {"k": clustering.k, "method": clustering.method, **clustering.criterion,
                         "pixels": self.cluster_pixels.tolist()},
            "nmf": None if learned.unmixing is None else learned.unmixing.info,
            "edge_maps": sorted(self.edges),
            "survey": {"e0": survey.e0, "normalization": learned.sample.params, "sample_pixels": learned.sample.n_pixels,
                       "pixels_read": learned.sample.n_read, "sample_share": survey.sample_share,
                       "noise_model": survey.noise_model.info},
            "mask": {"sample": int(np.count_nonzero(self.mask == MASK_SAMPLE)),
                     "invalid": int(np.count_nonzero(self.mask == MASK_INVALID))},
            "parameters": self.params, "timings": self.timings,
        }
        return out


def learn(data: np.ndarray | da.Array, energies: np.ndarray, *, components: int | str = "auto",
          clusters: int | str = "auto", method: str = "kmeans", nmf: int | None = None, threshold: float | None = None,
          significance: float = SIGNIFICANCE, norm_params: dict | None = None, n_pixels: int = SURVEY_PIXELS,
          shift: np.ndarray | None = None, rng: int | np.random.Generator | None = 0) -> Learned:
    """Sample the stack and learn its components, clusters and NMF spectra.

    Parameters
    ----------
    data : array_like, shape (E, M, N)
    energies : ndarray, shape (E,)
    components : int or "auto"
        See :func:`~xafsmap.core.explore.components.find_components`.
    clusters : int or "auto"
    method : {"kmeans", "gmm"}
        See :func:`~xafsmap.core.explore.clusters.find_clusters`.
    nmf : int, optional
        Number of NMF spectra (none without).
    threshold, significance, norm_params, n_pixels, shift
        See :func:`~xafsmap.core.explore.sampling.sample_pixels`.
    rng : int or Generator

    Returns
    -------
    Learned
        On the true energies every pixel covers, with a shift map.
    """
    from ..model.forest import has_numba

    sample = sample_pixels(data, energies, threshold=threshold, significance=significance,
                           norm_params={k: v for k, v in (norm_params or {}).items() if v is not None},
                           n_pixels=n_pixels, shift=shift)
    found = find_components(sample, n=components)
    clustering = find_clusters(found, k=clusters, method=method, rng=rng)
    unmixing = unmix(sample, found, int(nmf)) if nmf else None
    fit = shared_fit(sample.energies, sample.params["e0"], sample.params)
    plan = None
    if has_numba() and fit is not None:
        n_e = sample.energies.size
        pairs, pair_of = reference_pairs(np.zeros((1, n_e)))
        plan = BandPlan(fit=fit, flatten=True, window=(0, n_e), feature_start=np.arange(n_e, dtype=np.int64),
                        feature_weights=np.ones((n_e, 1)), slope_start=np.arange(n_e, dtype=np.int64),
                        slope_weights=np.ones((n_e, 1)), references=np.zeros((1, n_e)), pairs=pairs,
                        pair_of=pair_of, noise=sample.noise,
                        jump_design=np.ascontiguousarray(jump_design(sample.energies, sample.params["e0"])))
    return Learned(sample=sample, components=found, clustering=clustering, unmixing=unmixing, plan=plan)


def _reduce(band, learned: Learned, origin: int):
    """Normalized spectra (P, E), finite, sample mask and edge step of a band's P pixels."""
    energies, survey, noise = learned.energies, learned.sample.survey, learned.sample.noise
    rows, cols = band.shape[1:]
    scale = noise.band_scale(origin, origin + rows, cols)
    if learned.plan is not None:
        reduced = reduce_band(band, learned.plan, thick=np.inf, scale=scale)  # (no too-thick flag here)
        finite, step = reduced["finite"].ravel(), reduced["edge_step"].ravel()
        jump, sigma, norm = reduced["edge_jump"].ravel(), reduced["jump_sigma"].ravel(), reduced["features"]
    else:
        flat = band.reshape(energies.size, -1)
        finite = np.all(np.isfinite(flat), axis=0)
        flat = np.where(finite, flat, 0.0).astype(np.float32)
        result = normalize(flat, energies, **learned.sample.params)
        norm, step = result.norm.T, np.where(finite, result.edge_step, np.nan).astype(np.float32)
        jump, sigma = edge_jump(flat, noise.variance(flat, scale.ravel()), energies, survey.e0)
    # the mask of xafsmap map: a pixel's own edge, or its row neighbours' pooled with some of its own
    shape = (rows, cols)
    sample = finite & edge_mask(jump.reshape(shape), sigma.reshape(shape), significance=survey.significance,
                                threshold=survey.threshold, edge_step=step.reshape(shape), neighbours=True).ravel()
    sample &= np.isfinite(step) & (step > 0)
    return norm, finite, sample, step


def explore_band(band: np.ndarray, learned: Learned, *, origin: int = 0, shift: np.ndarray | None = None) -> dict:
    """Every map of one band of rows, and its clusters' spectrum sums.

    Parameters
    ----------
    band : ndarray, shape (E, rows, N), float32
        Absorbance, all energies.
    learned : Learned
    origin : int
        Row of the stack where the band starts (for the noise model's field).
    shift : ndarray, shape (rows, N), optional
        Energy shift of the band's pixels (true = nominal + shift) when the band is on
        the nominal energies: it is resampled onto the learned (true) energies first.

    Returns
    -------
    dict
        ``scores``, ``nmf`` (or None), ``clusters``, ``mask``, ``edge_step`` and the
        edge maps for these rows; ``sums`` and ``squares`` (k, E) float64 of the
        clusters' normalized spectra, ``counts`` (k,).
    """
    band = np.asarray(band, dtype=np.float32)
    if shift is not None:
        from ..prepare.resample import apply_shift

        sample = learned.sample
        band = apply_shift(band, sample.nominal_energies, np.asarray(shift, dtype=np.float64))[sample.energy_index]
    rows, cols = band.shape[1:]
    comps, clustering = learned.components, learned.clustering
    norm, finite, sample, step = _reduce(band, learned, origin)
    spectra = np.ascontiguousarray(norm[sample], dtype=np.float32)  # (S, E), pixel-major
    scores = spectra @ comps.projector
    labels = assign_clusters(scores, clustering)
    out = {"mask": np.where(finite, sample.astype(np.uint8) * MASK_SAMPLE, MASK_INVALID).astype(np.uint8),
           "edge_step": np.where(finite, step, np.nan).astype(np.float32),
           "scores": _scatter(scores.T, sample, np.nan, np.float32), "clusters": _scatter(labels, sample, 0, np.uint16),
           "nmf": None if learned.unmixing is None else _scatter(abundances(spectra.T, learned.unmixing), sample,
                                                                  np.nan, np.float32)}
    found = edge_maps(spectra.T, learned.energies, e0=learned.sample.params["e0"])
    out["edges"] = {name: _scatter(value, sample, np.nan, np.float32).reshape(rows, cols)
                    for name, value in found.items()}
    onehot = np.zeros((clustering.k, labels.size), np.float32)
    onehot[labels.astype(np.int64) - 1, np.arange(labels.size)] = labels > 0
    # float32 products over one band's pixels (a few 10^4), summed over bands in float64
    out["sums"] = (onehot @ spectra).astype(np.float64)
    out["squares"] = (onehot @ (spectra * spectra)).astype(np.float64)
    out["counts"] = onehot.sum(axis=1).astype(np.int64)
    for name in ("mask", "edge_step", "clusters"):
        out[name] = out[name].reshape(rows, cols)
    for name in ("scores", "nmf"):
        if out[name] is not None:
            out[name] = out[name].reshape(-1, rows, cols)
    return out


def _scatter(values, where, fill, dtype):
    """Values of the selected pixels (..., S) into an array over all pixels (..., P)."""
    values = np.asarray(values)
    out = np.full(values.shape[:-1] + (where.size,), fill, dtype)
    out[..., where] = values
    return out


def iter_explore(stack: Stack, *, components: int | str = "auto", clusters: int | str = "auto", method: str = "kmeans",
                 nmf: int | None = None, shift: np.ndarray | None = None, threshold: float | None = None,
                 significance: float = SIGNIFICANCE, norm_params: dict | None = None, n_pixels: int = SURVEY_PIXELS,
                 band_bytes: int = BAND_BYTES,
                 rng: int | np.random.Generator | None = 0) -> Generator[tuple[int, int], None, ExploreResult]:
    """Explore a stack: learn on a sample (:func:`learn`), then map every pixel band by band.

    Parameters
    ----------
    stack : xafsmap.core.io.Stack
        Absorbance (E, M, N), lazy or not.
    components, clusters, method, nmf, threshold, significance, norm_params, n_pixels, rng
        See :func:`learn`.
    shift : ndarray, shape (M, N), optional
        Energy shift (true = nominal + shift) of a stack on its nominal energies: every
        map is then on the true energies (:mod:`~xafsmap.core.explore.calibration`).
    band_bytes : int
        Bytes of one band of all energies.

    Yields
    ------
    (done, total) : tuple of int
        Learning is the first step, then one step per band.

    Returns
    -------
    ExploreResult

    Examples
    --------
    >>> from xafsmap.core.io.stack import Stack
    >>> from xafsmap.core.simulate.sample import make_sample
    >>> s = make_sample((60, 80), n_grains=16, rng=2)
    >>> result = explore_stack(Stack(s.stack, s.energies, {}), nmf=4)
    >>> result.learned.components.n, result.clusters.dtype.name, result.nmf.shape
    (4, 'uint16', (4, 60, 80))
    """
    data, energies = stack.data, np.asarray(stack.energies, dtype=np.float64)
    if data.shape[0] != energies.size:
        raise ValueError(f"stack has {data.shape[0]} energies but {energies.size} energies are given")
    _, rows, cols = data.shape
    if shift is not None and np.shape(shift) != (rows, cols):
        raise ValueError(f"the shift map is {np.shape(shift)} pixels but the stack's images are {(rows, cols)}")
    band = band_rows(data.shape, band_bytes)
    total = 1 + -(-rows // band)
    tic = time.perf_counter()
    learned = learn(data, energies, components=components, clusters=clusters, method=method, nmf=nmf,
                    threshold=threshold, significance=significance, norm_params=norm_params, n_pixels=n_pixels,
                    shift=shift, rng=rng)
    learn_s = time.perf_counter() - tic
    yield 1, total
    maps = _new_maps(learned, rows, cols)
    k, n_e = learned.clustering.k, learned.energies.size
    sums, squares, counts = np.zeros((k, n_e)), np.zeros((k, n_e)), np.zeros(k, np.int64)

    def explore_rows(r0):
        r1 = min(rows, r0 + band)
        block = data[:, r0:r1]
        block = block.compute(scheduler="synchronous") if hasattr(block, "compute") else block
        part = explore_band(block, learned, origin=r0, shift=None if shift is None else shift[r0:r1])
        for name in ("mask", "edge_step", "clusters"):
            maps[name][r0:r1] = part[name]
        for name in ("scores", "nmf"):
            if part[name] is not None:
                maps[name][:, r0:r1] = part[name]
        for name, value in part["edges"].items():
            maps["edges"][name][r0:r1] = value
        return part["sums"], part["squares"], part["counts"]

    done = 1
    with ThreadPoolExecutor(max_workers=BANDS_IN_FLIGHT) as pool:
        pending = deque()
        for r0 in range(0, rows, band):
            pending.append(pool.submit(explore_rows, r0))
            while len(pending) >= BANDS_IN_FLIGHT or (pending and r0 + band >= rows):
                part_sums, part_squares, part_counts = pending.popleft().result()
                sums += part_sums
                squares += part_squares
                counts += part_counts
                done += 1
                yield done, total
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts[:, None]
        spread = np.sqrt(np.maximum(squares / counts[:, None] - mean**2, 0.0))
    params = {"components": components, "clusters": clusters, "method": method, "nmf": nmf, "threshold": threshold,
              "significance": significance, "n_pixels": n_pixels, "seed": rng if isinstance(rng, int) else None,
              "shift_map": shift is not None}
    timings = {"learn_s": learn_s, "bands_s": time.perf_counter() - tic - learn_s, "total_s": time.perf_counter() - tic}
    return ExploreResult(learned=learned, cluster_spectra=mean, cluster_spread=spread, cluster_pixels=counts,
                         params=params, timings=timings, **maps)


def _new_maps(learned: Learned, rows: int, cols: int) -> dict:
    names = ["e50", "whiteline_energy", "whiteline_height"]
    if edge_settings(learned.sample.params["e0"])["preedge"] is not None:
        names += ["preedge_centroid", "preedge_intensity"]
    n_nmf = 0 if learned.unmixing is None else learned.unmixing.spectra.shape[0]
    return {"scores": np.full((learned.components.n, rows, cols), np.nan, np.float32),
            "nmf": np.full((n_nmf, rows, cols), np.nan, np.float32) if n_nmf else None,
            "clusters": np.zeros((rows, cols), np.uint16), "mask": np.zeros((rows, cols), np.uint8),
            "edge_step": np.full((rows, cols), np.nan, np.float32),
            "edges": {name: np.full((rows, cols), np.nan, np.float32) for name in names}}


def explore_stack(stack: Stack, **options: Any) -> ExploreResult:
    """Run :func:`iter_explore` to the end and return its :class:`ExploreResult`."""
    return drive(iter_explore(stack, **options))
