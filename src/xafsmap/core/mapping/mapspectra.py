"""Spectra of a map's classes: the measurement reopened on the map's grid, each class averaged.

``xafsmap export`` (and any script) turns a map's output folder back into spectra:
:func:`open_map_stack` reopens the stack that report.json names and prepares it onto
the map's grid as the report records (region, binning, drift, the folder's shift.tif);
:func:`mean_spectra` averages the normalized spectra of each label over its pixels,
band by band; :func:`map_class_spectra` puts them together, one
:class:`~xafsmap.core.io.export.SpectrumRecord` per class with pixels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..io.export import SpectrumRecord, read_xdi_element

if TYPE_CHECKING:
    from ..io.stack import Stack
    import dask.array as da
    import zarr

__all__ = ["ClassSpectra", "map_class_spectra", "mean_spectra", "open_map_stack", "references_element"]


def mean_spectra(data: np.ndarray | da.Array, energies: ArrayLike, labels: np.ndarray | zarr.Array, *, n_labels: int,
                 normalization: dict | None = None, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean normalized spectrum of each label of a map, over its pixels, in row bands.

    Parameters
    ----------
    data : array or dask array, shape (E, M, N)
        Absorbance on the map's grid.
    energies : array_like, shape (E,)
        eV.
    labels : array_like (numpy, zarr), shape (M, N), integer
        0 = no sample (ignored), 1..``n_labels`` = classes.
    n_labels : int
        Number of classes.
    normalization : dict, optional
        :func:`~xafsmap.core.spectra.normalize.normalize` options (the map's
        ``report.json`` ``parameters.normalization``), applied to every pixel.
    rows : int, optional
        Rows per band (default: about 16 MB of float32 per band).

    Returns
    -------
    means : ndarray, shape (n_labels, E), float64
        NaN where a label has no finite value at an energy.
    pixels : ndarray, shape (n_labels,), int64
        Pixels of each label.

    Raises
    ------
    ValueError
        If the labels' grid differs from the data's.

    Notes
    -----
    Each pixel is normalized as the map normalized it (Larch ``pre_edge`` ``flat``
    with the map's windows), then the spectra of each label are averaged, ignoring
    NaN values. Memory: one band of the stack at a time.

    Examples
    --------
    >>> e = np.linspace(7000.0, 7300.0, 61)
    >>> step = 1 / (1 + np.exp(-(e - 7112.0) / 3.0))
    >>> cube = (0.1 + np.multiply.outer(step, [[1.0, 2.0], [3.0, 4.0]])).astype(np.float32)
    >>> means, pixels = mean_spectra(cube, e, np.array([[1, 1], [2, 0]]), n_labels=2)
    >>> pixels.tolist(), bool(np.allclose(means[:, -1], 1.0, atol=0.02))
    ([2, 1], True)
    """
    from scipy import sparse

    from ..spectra.normalize import normalize
    from ..io.tiff import BAND_BYTES

    energies = np.asarray(energies, np.float64)
    n_e, m, n = data.shape
    if tuple(labels.shape) != (m, n):
        raise ValueError(f"the labels are {tuple(labels.shape)} pixels but the stack's images are {(m, n)}")
    rows = rows or max(1, BAND_BYTES // max(1, n_e * n * 4))
    sums, finite = np.zeros((n_e, n_labels)), np.zeros((n_e, n_labels))
    pixels = np.zeros(n_labels, np.int64)
    for r0 in range(0, m, rows):
        lab = np.asarray(labels[r0 : r0 + rows]).ravel().astype(np.int64)
        keep = np.flatnonzero((lab > 0) & (lab <= n_labels))
        if keep.size == 0:
            continue
        band = np.asarray(data[:, r0 : r0 + rows], dtype=np.float32).reshape(n_e, -1)[:, keep]
        norm = np.asarray(normalize(band, energies, **(normalization or {})).norm, np.float64)
        onehot = sparse.csr_matrix((np.ones(keep.size), (np.arange(keep.size), lab[keep] - 1)),
                                   shape=(keep.size, n_labels))
        ok = np.isfinite(norm)
        sums += onehot.T.dot(np.where(ok, norm, 0.0).T).T
        finite += onehot.T.dot(ok.T.astype(np.float64)).T
        pixels += np.bincount(lab[keep] - 1, minlength=n_labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(finite > 0, sums / finite, np.nan)
    return means.T, pixels


def open_map_stack(folder: str | os.PathLike, report: dict | None = None, *, stack: Stack | None = None) -> Stack:
    """The stack of a map, on the map's grid, lazily.

    Parameters
    ----------
    folder : str or Path
        An ``xafsmap map`` output folder.
    report : dict, optional
        Its report.json (read when None).
    stack : xafsmap.core.io.stack.Stack, optional
        The measurement as read (instead of the paths report.json names, e.g. moved files).

    Returns
    -------
    xafsmap.core.io.stack.Stack
        Cropped, binned, drift-corrected and energy-calibrated as report.json's
        ``grid`` and ``drift`` and the folder's ``shift.tif`` say.

    Raises
    ------
    ValueError, FileNotFoundError
        No report, no stack named in it, a missing shift.tif for a calibrated map, or
        the stack's files (as :func:`~xafsmap.core.io.stack.read_stack` raises).
    """
    from ..io.formats import format_kind
    from ..io.hdf5 import split_spec
    from ..io.stack import read_stack
    from ..prepare.steps import prepare_stack
    from ..prepare.shiftmap import read_shift_map

    folder = Path(folder)
    report = _report(folder) if report is None else report
    inputs = report.get("inputs", {})
    if stack is None:
        path = inputs.get("stack", {}).get("path")
        if not path:
            raise ValueError(f"{folder / 'report.json'} names no stack: give the stack (--stack)")
        given = {role: inputs[role]["path"] for role in ("flat", "dark", "i0") if role in inputs}
        energies = inputs.get("energies", {}).get("path")
        if energies and format_kind(path) and energies.startswith(f"{split_spec(path)[0]}:"):
            energies = None  # the file's own energies: read_stack takes them again
        stack = read_stack(path, energies=energies, axes=inputs.get("axes", {}).get("path"), **given)
    grid, (rows, cols) = report.get("grid", {}), stack.data.shape[1:]
    roi, drift, shift = grid.get("roi"), report.get("drift", {}).get("per_energy"), None
    if grid.get("energy_calibrated"):
        if not (folder / "shift.tif").is_file():
            raise ValueError(f"the map was energy-calibrated but {folder / 'shift.tif'} is missing")
        shift = read_shift_map(folder / "shift.tif").shift
    prepared, _ = prepare_stack(stack, drift=None if drift is None else np.asarray(drift, np.float64), shift=shift,
                                roi=tuple(roi) if roi and list(roi) != [0, rows, 0, cols] else None,
                                factor=int(grid.get("bin", 1)))
    return prepared


def references_element(report: dict) -> tuple[str | None, str | None]:
    """The absorber and edge the map's references' XDI headers agree on, else (None, None).

    >>> references_element({"inputs": {"references": []}})
    (None, None)
    """
    from ..io.references import split_spec

    found = {read_xdi_element(split_spec(ref["spec"])[0]) for ref in report.get("inputs", {}).get("references", [])}
    found.discard((None, None))
    return next(iter(found)) if len(found) == 1 else (None, None)


@dataclass(frozen=True)
class ClassSpectra:
    """The classes of a map as spectra.

    Attributes
    ----------
    records : list of SpectrumRecord
        One per class with pixels: its mean normalized spectrum, e0 and windows.
    classes : list of dict
        report.json's entry of each record's class (``label``, ``name``, ``composition``).
    pixels : list of int
        Pixels averaged for each record.
    empty : list of str
        Classes without pixels (not exported).
    """

    records: list
    classes: list
    pixels: list
    empty: list


def map_class_spectra(folder: str | os.PathLike, *, stack: Stack | None = None) -> ClassSpectra:
    """Each class's mean normalized spectrum of an ``xafsmap map`` output folder.

    Parameters
    ----------
    folder : str or Path
        The map's folder (report.json, and labels.tif or maps.ome.zarr).
    stack : xafsmap.core.io.stack.Stack, optional
        The measurement as read, instead of the paths in report.json.

    Returns
    -------
    ClassSpectra

    Raises
    ------
    ValueError
        Not a map folder, a stack whose grid differs from the labels', no class with
        pixels.

    Notes
    -----
    Pixels are normalized as the map normalized them (report.json
    ``parameters.normalization``; Larch ``pre_edge`` ``flat``), then averaged per class
    (:func:`mean_spectra`); each record's e0 and windows are those of
    :func:`~xafsmap.core.spectra.normalize.normalize` on its mean, for Athena.
    """
    from ..spectra.normalize import normalize

    folder = Path(folder)
    report = _report(folder)
    classes = report.get("classes") or []
    prepared = open_map_stack(folder, report, stack=stack)
    normalization = report.get("parameters", {}).get("normalization", {})
    means, pixels = mean_spectra(prepared.data, prepared.energies, _labels(folder), n_labels=len(classes),
                                 normalization=normalization)
    out = ClassSpectra([], [], [], [])
    for entry, mean, count in zip(classes, means, pixels):
        keep = np.isfinite(mean)
        if count == 0 or keep.sum() < 2:
            out.empty.append(entry["name"])
            continue
        energies = prepared.energies[keep]
        found = normalize(mean[keep], energies, **normalization)
        out.records.append(SpectrumRecord(entry["name"], energies, mean[keep], float(found.e0), found.params))
        out.classes.append(entry)
        out.pixels.append(int(count))
    if not out.records:
        raise ValueError(f"no class of {folder} has pixels: nothing to export")
    return out


def _report(folder: Path) -> dict:
    if not (folder / "report.json").is_file():
        raise ValueError(f"{folder} is not an xafsmap map folder (no report.json)")
    return json.loads((folder / "report.json").read_text())


def _labels(folder: Path):
    """The label map of an output folder, lazily where the format allows (zarr, memory map)."""
    import tifffile

    if (folder / "maps.ome.zarr").is_dir():
        from .zarrmaps import read_map_store

        return read_map_store(folder / "maps.ome.zarr")["labels"]
    if not (folder / "labels.tif").is_file():
        raise ValueError(f"{folder} has no labels.tif")
    try:
        return tifffile.memmap(folder / "labels.tif", mode="r")
    except ValueError:  # compressed or scattered strips: read it whole
        return tifffile.imread(folder / "labels.tif")
