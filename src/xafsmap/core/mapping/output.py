"""Writing maps: TIFFs, the class legend and report.json, all-or-nothing.

Everything is written into a temporary folder beside the destination and moved into
place only when complete, so an interrupted or failed run never leaves half a result;
what may be replaced, and how, is the rule of :mod:`xafsmap.core.io.folders`.
Maps larger than memory are mapped straight into ``maps.ome.zarr`` inside that folder
(:func:`map_output`), and their TIFFs are written from it in row blocks.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import platform
import threading
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._files import atomic_file
from ..io.folders import atomic_folder
from .legend import Legend, write_legend_csv
from .maps import FLAGS, value_counts

if TYPE_CHECKING:
    from ..prepare.shiftmap import ShiftMap
    from .pipeline import MapResult
    import dask.array as da
    import zarr

__all__ = [
    "file_sha256",
    "library_versions",
    "make_report",
    "map_output",
    "write_map_files",
    "write_map_tables",
    "write_maps",
    "write_report",
    "write_rows",
    "write_tiff",
]

#: Pixels per chunk of a store filled from maps already computed (4 MB of float32).
COPY_CHUNK_PIXELS = 2**20


def file_sha256(path: str | os.PathLike, *, chunk: int = 16 * 2**20, stop: threading.Event | None = None) -> str | None:
    """SHA-256 of a file, read in chunks (bounded memory).

    ``stop`` (a :class:`threading.Event`) is checked between chunks: once set, the
    reading ends and None is returned, so an error exit does not wait for gigabytes.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            if stop is not None and stop.is_set():
                return None
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a result depends on."""
    versions = {"python": platform.python_version()}
    for name in ("xafsmap", "numpy", "scipy", "scikit-learn", "dask", "tifffile", "zarr"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def write_tiff(path: str | os.PathLike, data: np.ndarray | da.Array | zarr.Array, *,
               description: str | None = None) -> Path:
    """Write an array as a (Big)TIFF, to a temporary name first.

    A numpy array is written at once; a chunked array (zarr, dask: shape (rows, cols)
    or (pages, rows, cols)) is read and written in strips of whole row blocks, so a
    map larger than memory never is in memory. ``description`` (7-bit ASCII, e.g. the
    class legend's JSON) is stored as the first page's ImageDescription.
    """
    import tifffile

    path = Path(path)
    chunked = hasattr(data, "chunks") and not isinstance(data, np.ndarray)
    data = data if chunked else np.asarray(data)
    dtype = np.dtype(data.dtype)
    bigtiff = int(np.prod(data.shape)) * dtype.itemsize > 2**31
    with atomic_file(path) as tmp:
        if chunked:
            _write_strips(tmp, data, dtype, bigtiff=bigtiff, description=description)
        else:
            tifffile.imwrite(tmp, data, photometric="minisblack", bigtiff=bigtiff, description=description)
    return path


def _write_strips(path, data, dtype, *, bigtiff: bool, description: str | None = None) -> None:
    """One TIFF page per leading index, each written as strips of whole row blocks."""
    import tifffile

    from .maps import block_rows

    step = block_rows(data, planes=False)

    def strips():
        for page in np.ndindex(data.shape[:-2]):
            for r0 in range(0, data.shape[-2], step):
                block = np.asarray(data[(*page, slice(r0, r0 + step))], dtype=dtype)
                yield np.ascontiguousarray(block).tobytes()

    tifffile.imwrite(path, strips(), shape=data.shape, dtype=dtype, photometric="minisblack",
                     rowsperstrip=step, bigtiff=bigtiff, description=description)


def make_report(result: MapResult, *, inputs: dict | None = None, extra: dict | None = None) -> dict:
    """Everything needed to trust and reproduce a map, as JSON-ready data."""
    classifier = result.classifier
    mask = value_counts(result.mask, 3)
    rows, cols = result.labels.shape
    return {
        "xafsmap_report": 1,
        "inputs": inputs or {},
        "parameters": result.params,
        "warnings": list(result.warnings),
        "versions": library_versions(),
        "timings_s": {name: round(value, 3) for name, value in result.timings.items()},
        "grid": {"rows": int(rows), "columns": int(cols)},
        "survey": {
            "pixels": result.survey.n_pixels,
            "e0_median_eV": round(result.survey.e0, 3),
            "mask": ({"rule": "edge-step threshold", "threshold": result.survey.threshold}
                     if result.survey.threshold is not None else
                     {"rule": "edge significance", "significance": result.survey.significance}),
            "sample_share": round(result.survey.sample_share, 4),
            "noise_median": float(np.median(result.survey.noise)) if result.survey.noise.size else None,
            "noise_quartiles": np.percentile(result.survey.noise, [25, 75]).tolist()
            if result.survey.noise.size else None,
            "noise_model": result.survey.noise_model.info,
        },
        "classes": [
            {"label": i + 1, "name": name, "composition": dict(zip(classifier.classes.references, row.tolist()))}
            for i, (name, row) in enumerate(zip(classifier.classes.names, classifier.classes.compositions))
        ],
        "classifier": {
            "heldout_accuracy": classifier.accuracy,
            "confusion": classifier.confusion.tolist(),
            "features": classifier.features,
            "smooth": classifier.smooth,
            "window_eV": [float(classifier.energies[classifier.window[0]]),
                          float(classifier.energies[classifier.window[1] - 1])],
            "importances": [
                {"energy_eV": float(e), "importance": float(v)}
                for e, v in zip(classifier.energies, classifier.importances)
            ],
            **classifier.params,
        },
        "pixels": {
            "total": int(rows * cols),
            "sample": int(mask[1]),
            "no_sample": int(mask[0]),
            "invalid": int(mask[2]),
            "per_class": result.class_counts,
        },
        **(extra or {}),
    }


@contextlib.contextmanager
def map_output(out: str | os.PathLike, *, k: int, rows: int, cols: int, band: int, zarr: bool = False,
               overwrite: bool = False,
               sources: Sequence[str | os.PathLike] = ()) -> Iterator[tuple[Path, dict | None]]:
    """Yield ``(folder, maps)``: the temporary output folder of a run, and where to map.

    ``maps`` is None (map in memory) or, with ``zarr``, the arrays of a new
    ``maps.ome.zarr`` store inside the folder (:func:`~xafsmap.core.mapping.zarrmaps.open_map_store`,
    chunks of ``band`` rows) to pass as ``iter_map(..., maps=maps)``. The folder
    replaces ``out`` only if the block succeeds (see :func:`atomic_folder`; ``sources``
    are the job's inputs, which ``out`` may not be or hold), so a run that fails
    part-way leaves no output, not even half a store. Write the result into
    the folder with :func:`write_map_files` before the block ends: the zarr arrays
    point into the temporary folder, so after the block reopen the store with
    ``read_map_store(out / "maps.ome.zarr")``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "maps"
    >>> with map_output(out, k=2, rows=4, cols=5, band=2, zarr=True) as (folder, maps):
    ...     maps["labels"].shape
    (4, 5)
    """
    with atomic_folder(out, overwrite=overwrite, sources=sources) as tmp:
        maps = None
        if zarr:
            from .zarrmaps import MAPS_ZARR, open_map_store

            maps = open_map_store(tmp / MAPS_ZARR, k, rows, cols, band=band)
        yield tmp, maps
        for array in (maps or {}).values():  # the background chunk writes land before the folder moves in
            array.flush()


def write_map_tables(result: MapResult, folder: str | os.PathLike, *, shift_map: ShiftMap | None = None) -> None:
    """The map TIFFs (2-D maps or 3-D volumes, whatever the result holds), ``flags.csv``,
    ``classes.csv`` and, with a ``shift_map``, ``shift.tif`` into an existing folder.

    The class legend is written twice: ``classes.csv`` and inside ``labels.tif``
    (:mod:`~xafsmap.core.mapping.legend`)."""
    folder = Path(folder)
    classes = result.classifier.classes
    legend = Legend.of(classes.names, classes.compositions, classes.references)
    write_tiff(folder / "labels.tif", result.labels, description=legend.to_json())
    for name in ("probability", "distance", "fractions", "fraction_sigma", "residual", "edge_step", "e0",
                 "mask", "flags"):
        write_tiff(folder / f"{name}.tif", getattr(result, name))
    flags = value_counts(result.flags, 256)
    write_rows(folder / "flags.csv", ["bit", "meaning", "pixels"],
               [[bit, meaning, int(flags[np.arange(256) & bit > 0].sum())] for bit, meaning in FLAGS.items()])
    if shift_map is not None:
        from ..prepare.shiftmap import write_shift_map

        write_shift_map(folder / "shift.tif", shift_map)
    write_legend_csv(folder / "classes.csv", legend)


def write_report(folder: str | os.PathLike, report: dict) -> None:
    """``report.json`` in ``folder`` (numpy scalars and arrays as JSON numbers and lists; NaN refused)."""
    (Path(folder) / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False, default=_json_default))


def write_map_files(result: MapResult, folder: str | os.PathLike, *, maps: dict | None = None,
                    inputs: dict | None = None, extra: dict | None = None, shift_map: ShiftMap | None = None) -> Path:
    """Write every map of a :class:`~xafsmap.core.mapping.pipeline.MapResult` into an existing folder.

    Files: ``labels.tif`` (uint16, 0 = no sample), ``classes.csv``, ``probability.tif``,
    ``distance.tif``, ``fractions.tif`` and ``fraction_sigma.tif`` (K pages in reference
    order: the fractions and their 1-sigma uncertainties), ``residual.tif``,
    ``edge_step.tif``, ``e0.tif``, ``mask.tif`` (uint8: 0 no sample, 1 sample,
    2 invalid), ``flags.tif`` (uint8 bits, legend in ``flags.csv``), ``report.json``
    and, with a ``shift_map`` (:class:`~xafsmap.core.prepare.shiftmap.ShiftMap`), ``shift.tif``
    (shift and its uncertainty). With ``maps`` (the store of :func:`map_output`) the
    store gets the class legend, and the result's maps if it was mapped elsewhere (in
    memory, on a cluster); TIFFs of zarr maps are written in row blocks.
    """
    folder = Path(folder)
    classes = result.classifier.classes
    report = make_report(result, inputs=inputs, extra=extra)
    if maps is not None:
        from .zarrmaps import MAPS_ZARR, copy_maps, describe_map_store

        if result.labels is not maps["labels"]:
            copy_maps(result, maps)
        describe_map_store(folder / MAPS_ZARR, classes)
    write_map_tables(result, folder, shift_map=shift_map)
    write_report(folder, report)
    return folder


def write_maps(result: MapResult, out: str | os.PathLike, *, overwrite: bool = False, inputs: dict | None = None,
               extra: dict | None = None, shift_map: ShiftMap | None = None, zarr: bool = False,
               sources: Sequence[str] = ()) -> Path:
    """Write every map of a :class:`~xafsmap.core.mapping.pipeline.MapResult` into ``out``.

    The files of :func:`write_map_files`, plus ``maps.ome.zarr`` with ``zarr``.
    Nothing appears in ``out`` unless all succeed; ``out`` may not be or hold one of
    the ``sources`` (input paths), and is replaced only as :mod:`~xafsmap.core.io.folders` allows.
    """
    rows, cols = result.labels.shape
    with map_output(out, k=result.fractions.shape[0], rows=rows, cols=cols, band=max(1, COPY_CHUNK_PIXELS // cols),
                    zarr=zarr, overwrite=overwrite, sources=sources) as (tmp, maps):
        write_map_files(result, tmp, maps=maps, inputs=inputs, extra=extra, shift_map=shift_map)
    return Path(out)


def write_rows(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A CSV file: a header row, then the rows (inside an :func:`atomic_folder`)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to report.json")
