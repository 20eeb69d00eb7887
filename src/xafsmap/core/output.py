"""Writing maps: TIFFs, the class legend and report.json, all-or-nothing.

Everything is written into a temporary folder beside the destination and moved into
place only when complete, so an interrupted or failed run never leaves half a result,
and an existing result is replaced only with ``overwrite`` (and only at the very end).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from ._files import atomic_file

__all__ = [
    "atomic_folder",
    "check_output_folder",
    "file_sha256",
    "library_versions",
    "make_report",
    "write_classes_csv",
    "write_maps",
    "write_rows",
    "write_tiff",
]

def file_sha256(path, *, chunk: int = 16 * 2**20) -> str:
    """SHA-256 of a file, read in chunks (bounded memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a result depends on."""
    versions = {"python": platform.python_version()}
    for name in ("xafsmap", "numpy", "scipy", "scikit-learn", "dask", "tifffile"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def check_output_folder(out, *, overwrite: bool = False) -> Path:
    """Refuse an existing non-empty folder unless ``overwrite``; refuse a file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"output folder {out} exists and is not empty; choose another or pass --overwrite")
    return out


@contextlib.contextmanager
def atomic_folder(out, *, overwrite: bool = False):
    """Yield a temporary folder that replaces ``out`` only if the block succeeds."""
    out = check_output_folder(out, overwrite=overwrite).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_tiff(path, data) -> Path:
    """Write an array as a (Big)TIFF, to a temporary name first."""
    import tifffile

    path = Path(path)
    data = np.asarray(data)
    with atomic_file(path) as tmp:
        tifffile.imwrite(tmp, data, photometric="minisblack", bigtiff=data.nbytes > 2**31)
    return path


def write_classes_csv(path, names, compositions=None, references=()) -> Path:
    """Legend of a label image: ``label,name,<reference fractions...>`` (0 is no class)."""
    path = Path(path)
    rows = [[label, name, *([] if compositions is None else [f"{v:.6g}" for v in compositions[label - 1]])]
            for label, name in enumerate(names, start=1)]
    with atomic_file(path) as tmp:
        write_rows(tmp, ["label", "name", *references], rows)
    return path


def make_report(result, *, inputs: dict | None = None, extra: dict | None = None) -> dict:
    """Everything needed to trust and reproduce a map, as JSON-ready data."""
    classifier = result.classifier
    invalid = int(np.count_nonzero(result.mask == 2))
    return {
        "xafsmap_report": 1,
        "inputs": inputs or {},
        "parameters": result.params,
        "versions": library_versions(),
        "timings_s": {name: round(value, 3) for name, value in result.timings.items()},
        "grid": {"rows": int(result.labels.shape[0]), "columns": int(result.labels.shape[1])},
        "survey": {
            "pixels": result.survey.n_pixels,
            "e0_median_eV": round(result.survey.e0, 3),
            "edge_step_threshold": result.survey.threshold,
            "noise_median": float(np.median(result.survey.noise)) if result.survey.noise.size else None,
            "noise_quartiles": np.percentile(result.survey.noise, [25, 75]).tolist()
            if result.survey.noise.size else None,
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
            "total": int(result.labels.size),
            "sample": int(np.count_nonzero(result.mask == 1)),
            "no_sample": int(np.count_nonzero(result.mask == 0)),
            "invalid": invalid,
            "per_class": result.class_counts,
        },
        **(extra or {}),
    }


def write_maps(result, out, *, overwrite: bool = False, inputs: dict | None = None,
               extra: dict | None = None, shift_map=None) -> Path:
    """Write every map of a :class:`~xafsmap.core.pipeline.MapResult` into ``out``.

    Files: ``labels.tif`` (uint16, 0 = no sample), ``classes.csv``, ``probability.tif``,
    ``distance.tif``, ``fractions.tif`` (K pages in reference order), ``residual.tif``,
    ``edge_step.tif``, ``e0.tif``, ``mask.tif`` (uint8: 0 no sample, 1 sample,
    2 invalid), ``flags.tif`` (uint8 bits, legend in ``flags.csv``), ``report.json``
    and, with a ``shift_map`` (:class:`~xafsmap.core.calibrate.ShiftMap`), ``shift.tif``
    (shift and its uncertainty). Nothing appears in ``out`` unless all succeed.
    """
    from .pipeline import FLAGS

    classes = result.classifier.classes
    report = make_report(result, inputs=inputs, extra=extra)
    with atomic_folder(out, overwrite=overwrite) as tmp:
        for name in ("labels", "probability", "distance", "fractions", "residual", "edge_step", "e0", "mask",
                     "flags"):
            write_tiff(tmp / f"{name}.tif", getattr(result, name))
        write_rows(tmp / "flags.csv", ["bit", "meaning", "pixels"],
                    [[bit, meaning, int(np.count_nonzero(result.flags & bit))] for bit, meaning in FLAGS.items()])
        if shift_map is not None:
            from .shiftmap import write_shift_map

            write_shift_map(tmp / "shift.tif", shift_map)
        write_classes_csv(tmp / "classes.csv", classes.names, classes.compositions, classes.references)
        (tmp / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False, default=_json_default))
    return Path(out)


def write_rows(path, header, rows) -> None:
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
