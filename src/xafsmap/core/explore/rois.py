"""Named regions of interest: their geometry (JSON), mean spectra, fits and pixel counts.

A region is a polygon (napari shapes: polygons, rectangles, ellipses as their
outlines) or a set of pixels (a label of a labels image, stored as runs of columns
per row), in the stack's pixel grid (row, column; pixel centres at whole numbers, as
napari's data coordinates). :func:`write_rois` / :func:`read_rois` keep them as JSON
so the same regions can be measured on another stack of the same grid.

:func:`roi_spectra` reads only the bands that hold a region, averages each region's
absorbance over its finite pixels, then normalizes the mean spectrum with the stack's
normalization (averaging before normalizing: the normalization of a thin, noisy pixel
does not dominate the mean), and fits it with the references (Athena-style LCF:
non-negative weights summing to 1, :func:`~xafsmap.core.lcf.fit_fractions`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._files import atomic_file
from ..io.bounds import MAX_PROJECT_BYTES
from .selection import points_in_polygon

if TYPE_CHECKING:
    from ..io.references import Reference
    import dask.array as da

__all__ = ["Roi", "RoiSpectra", "read_rois", "roi_mask", "roi_spectra", "rois_from_labels", "write_rois"]

#: Rows of a region's mask rasterized at once.
RASTER_ROWS = 256


@dataclass(frozen=True, eq=False)
class Roi:
    """One named region: a polygon (V, 2) of (row, column) vertices, or runs (R, 3) of
    ``(row, first column, column after the last)``."""

    name: str
    polygon: np.ndarray | None = None
    runs: np.ndarray | None = None

    def __post_init__(self):
        if (self.polygon is None) == (self.runs is None):
            raise ValueError(f"region {self.name!r} needs either a polygon or pixel runs")
        if not str(self.name).strip():
            raise ValueError("a region needs a name")


def roi_mask(roi: Roi, shape: tuple[int, int]) -> np.ndarray:
    """The pixels of a region in an image of ``shape`` (rows, columns); parts outside are cut.

    Examples
    --------
    >>> roi_mask(Roi("a", polygon=np.array([[0.5, 0.5], [0.5, 2.5], [2.5, 2.5], [2.5, 0.5]])), (4, 4)).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    rows, cols = (int(v) for v in shape)
    mask = np.zeros((rows, cols), bool)
    if roi.runs is not None:
        for row, c0, c1 in np.asarray(roi.runs, dtype=np.int64):  # one slice per run, not per pixel
            if 0 <= row < rows:
                mask[row, max(c0, 0) : min(c1, cols)] = True
        return mask
    vertices = np.asarray(roi.polygon, dtype=np.float64)
    r0, c0 = np.maximum(np.floor(vertices.min(axis=0)).astype(int), 0)
    r1, c1 = np.minimum(np.ceil(vertices.max(axis=0)).astype(int) + 1, (rows, cols))
    for start in range(r0, r1, RASTER_ROWS):
        stop = min(r1, start + RASTER_ROWS)
        rr, cc = np.meshgrid(np.arange(start, stop), np.arange(c0, c1), indexing="ij")
        inside = points_in_polygon(np.stack([rr.ravel(), cc.ravel()], axis=1), vertices)
        mask[start:stop, c0:c1] = inside.reshape(rr.shape)
    return mask


def rois_from_labels(labels: np.ndarray, names: dict[int, str] | None = None) -> list[Roi]:
    """One region per label value > 0 of a labels image, as runs of columns.

    Parameters
    ----------
    labels : ndarray of int, shape (M, N)
    names : dict, optional
        Label value -> name (default ``"ROI <value>"``).

    Examples
    --------
    >>> [(r.name, r.runs.tolist()) for r in rois_from_labels(np.array([[0, 2, 2], [1, 0, 2]]))]
    [('ROI 1', [[1, 0, 1]]), ('ROI 2', [[0, 1, 3], [1, 2, 3]])]
    """
    labels = np.asarray(labels)
    out = []
    for value in np.unique(labels[labels > 0]):
        inside = np.pad(labels == value, ((0, 0), (1, 1)))
        change = np.diff(inside.astype(np.int8), axis=1)
        starts, stops = np.nonzero(change == 1), np.nonzero(change == -1)
        runs = np.stack([starts[0], starts[1], stops[1]], axis=1)
        out.append(Roi((names or {}).get(int(value), f"ROI {int(value)}"), runs=runs))
    return out


def write_rois(path: str | os.PathLike, rois: Sequence[Roi], *, shape: tuple[int, int]) -> Path:
    """Write regions as JSON (all-or-nothing), with the grid ``shape`` they were drawn on.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_rois(pathlib.Path(tempfile.mkdtemp()) / "r.json", [Roi("a", runs=np.array([[0, 1, 3]]))], shape=(2, 3))
    >>> [(r.name, r.runs.tolist()) for r in read_rois(p)[0]]
    [('a', [[0, 1, 3]])]
    """
    names = [roi.name for roi in rois]
    if len(set(names)) != len(names):
        raise ValueError(f"two regions share a name: {names}")
    items = [{"name": roi.name, "polygon": np.asarray(roi.polygon, float).tolist()} if roi.polygon is not None else
             {"name": roi.name, "runs": np.asarray(roi.runs, int).tolist()} for roi in rois]
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps({"xafsmap_rois": 1, "shape": [int(v) for v in shape], "rois": items}, indent=1))
    return path


def read_rois(path: str | os.PathLike) -> tuple[list[Roi], tuple[int, int]]:
    """Regions and the grid shape from a :func:`write_rois` file.

    Raises
    ------
    ValueError
        If the file is not such a file, too large, or a region is malformed.
    """
    path = Path(path)
    if path.stat().st_size > MAX_PROJECT_BYTES:
        raise ValueError(f"{path} is larger than {MAX_PROJECT_BYTES} bytes: not a regions file")
    try:
        data = json.loads(path.read_text())
        if data.get("xafsmap_rois") != 1:
            raise ValueError
        rois = [Roi(str(item["name"]), polygon=np.array(item["polygon"], float) if "polygon" in item else None,
                    runs=np.array(item["runs"], np.int64).reshape(-1, 3) if "runs" in item else None)
                for item in data["rois"]]
        shape = tuple(int(v) for v in data["shape"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} is not an xafsmap regions file ({error or 'no xafsmap_rois: 1'})") from None
    return rois, shape


@dataclass(frozen=True, eq=False)
class RoiSpectra:
    """Mean spectra of regions: ``absorbance`` and ``spectra`` (normalized) (R, E), finite
    ``pixels`` (R,), and with references ``fractions`` (R, K) and the RMS ``residual`` (R,)."""

    names: list
    energies: np.ndarray
    absorbance: np.ndarray
    spectra: np.ndarray
    pixels: np.ndarray
    fractions: np.ndarray | None = None
    residual: np.ndarray | None = None
    reference_names: tuple = ()


def roi_spectra(data: np.ndarray | da.Array, energies: np.ndarray, rois: Sequence[Roi], *, normalization: dict,
                references: Sequence[Reference] | None = None,
                offsets: Sequence[float] | np.ndarray | None = None) -> RoiSpectra:
    """Mean absorbance, normalized mean spectrum, pixel count and LCF of each region.

    Parameters
    ----------
    data : array_like, shape (E, M, N)
        Absorbance (numpy or dask; only the bands holding a region are read).
    energies : ndarray, shape (E,)
    rois : sequence of Roi
    normalization : dict
        The stack's normalization (``e0`` and the windows), e.g. an exploration's
        ``learned.sample.params``.
    references : sequence of Reference, optional
        Standards to fit each mean spectrum with (non-negative, summing to 1).
    offsets : sequence of float, optional
        Energy offset per reference, eV.

    Returns
    -------
    RoiSpectra

    Raises
    ------
    ValueError
        If a region holds no pixel of the image.
    """
    from ..spectra.lcf import fit_fractions
    from ..spectra.normalize import normalize
    from ..io.tiff import BAND_BYTES

    energies = np.asarray(energies, dtype=np.float64)
    n_e, rows, cols = data.shape
    masks = [roi_mask(roi, (rows, cols)) for roi in rois]
    empty = [roi.name for roi, mask in zip(rois, masks) if not mask.any()]
    if empty:
        raise ValueError(f"region(s) {empty} hold no pixel of the {rows} x {cols} image")
    sums, counts = np.zeros((len(rois), n_e)), np.zeros((len(rois), n_e))
    used = np.flatnonzero(np.any([m.any(axis=1) for m in masks], axis=0))
    band = max(1, BAND_BYTES // (n_e * cols * 4))
    for r0 in range(int(used[0]) // band * band, int(used[-1]) + 1, band):
        block = np.asarray(data[:, r0 : r0 + band], dtype=np.float32)
        for i, mask in enumerate(masks):
            inside = block[:, mask[r0 : r0 + band]].astype(np.float64)
            finite = np.all(np.isfinite(inside), axis=0)
            sums[i] += inside[:, finite].sum(axis=1)
            counts[i] += finite.sum()
    pixels = counts[:, 0].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    spectra = np.full_like(mean, np.nan)
    ok = pixels > 0
    if ok.any():
        spectra[ok] = normalize(mean[ok].T, energies, **normalization).norm.T
    fractions = residual = None
    names = ()
    if references:
        from ..model.standards import prepare_references

        refs = prepare_references(references, energies, e0=float(normalization["e0"]), offsets=offsets,
                                  norm_params=normalization)
        fractions, residual = fit_fractions(np.nan_to_num(spectra.T), refs)
        fractions, residual = fractions.T.astype(np.float64), residual.astype(np.float64)
        fractions[~ok], residual[~ok] = np.nan, np.nan
        names = tuple(ref.name for ref in references)
    return RoiSpectra(names=[roi.name for roi in rois], energies=energies, absorbance=mean, spectra=spectra,
                      pixels=pixels, fractions=fractions, residual=residual, reference_names=names)
