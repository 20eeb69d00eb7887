"""The files of a series: its list (``--list FILE.csv``), ``series.csv`` and the fractions plot.

:func:`read_series_list` reads the user's list (a ``path`` column and any others) and
:func:`series_entries` checks the stacks it names (or those given);
:func:`summarize_maps` reads one stack's map folder back into one row of ``series.csv``
(pixel counts, the mean fraction of each reference and its spread over the sample
pixels, the share of the sample in each class); :func:`write_series_table` and
:func:`write_series_plot` write the table and the plot, each to a temporary name first.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_file
from ..mapping.maps import MASK_INVALID, MASK_SAMPLE
from ..settings.schema import Settings

__all__ = ["STACK_PATTERNS", "find_stacks", "read_series_list", "series_entries", "series_name", "summarize", "summarize_maps",
           "write_series_plot", "write_series_table"]


def series_name(path: str | Path) -> str:
    """The folder name of a stack's maps: its file name without the extension.

    >>> series_name("/data/step_03.tif"), series_name("/data/scan7.h5:/exchange/data"), series_name("/d/run2/")
    ('step_03', 'scan7', 'run2')
    """
    text = str(path)
    if ".h5:" in text or ".nxs:" in text or ".hdf5:" in text:
        text = text.rsplit(":", 1)[0]
    path = Path(text)
    name = path.name
    for suffix in (".ome.tif", ".ome.tiff"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.suffix else name


def read_series_list(path: str | os.PathLike) -> list[dict]:
    """The rows of a series list: a CSV with a ``path`` column and any others.

    Parameters
    ----------
    path : str or Path
        Paths in it are relative to the CSV's folder (or absolute).

    Returns
    -------
    list of dict
        One per row, in order: ``{"path": absolute path, **the other columns as text}``.

    Raises
    ------
    ValueError
        No ``path`` column, an empty path, or no row; named with the file and line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "series.csv"
    >>> _ = f.write_text("path,time_min\\na.tif,0\\nb.tif,30\\n")
    >>> [(pathlib.Path(r["path"]).name, r["time_min"]) for r in read_series_list(f)]
    [('a.tif', '0'), ('b.tif', '30')]
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "path" not in columns:
            raise ValueError(f"{path} has no 'path' column (its columns: {', '.join(columns) or 'none'}): the "
                             "first line must name the columns, one of them 'path'")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row = {key.strip(): (value or "").strip() for key, value in raw.items() if key is not None}
            if not row["path"]:
                raise ValueError(f"{path} line {line} has no path")
            stack = Path(row["path"]).expanduser()
            row["path"] = str(stack if stack.is_absolute() else path.parent / stack)
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} lists no stack")
    return rows


def series_entries(settings: Settings) -> list[dict]:
    """The stacks of a series (``settings.stacks`` or the ``series_list`` CSV), checked.

    Returns
    -------
    list of dict
        ``{"name": folder name, "path": absolute path, **list columns}`` in order.

    Raises
    ------
    ValueError
        Neither or both given; two stacks with one name; stacks that do not exist.

    Examples
    --------
    >>> series_entries(Settings(stacks=("/d/a.tif", "/e/a.tif")))
    Traceback (most recent call last):
    ValueError: two stacks of the series share the name 'a' (/d/a.tif, /e/a.tif): their maps would go to one folder; rename one
    """
    if bool(settings.stacks) == (settings.series_list is not None):
        raise ValueError("give the stacks of the series or --list FILE.csv (one of them)")
    entries = ([{"path": str(Path(p).expanduser().absolute())} for p in settings.stacks] if settings.stacks
               else read_series_list(settings.series_list))
    seen = {}
    for entry in entries:
        name = series_name(entry["path"])
        if name in seen:
            raise ValueError(f"two stacks of the series share the name {name!r} ({seen[name]}, {entry['path']}): "
                             "their maps would go to one folder; rename one")
        seen[name] = entry["path"]
    missing = [entry["path"] for entry in entries if not _exists(entry["path"])]
    if missing:
        raise ValueError(f"{len(missing)} stack(s) of the series do not exist: {', '.join(missing)}")
    return [{"name": series_name(entry["path"]), **entry} for entry in entries]


def _exists(spec: str) -> bool:
    """A stack file or folder, a glob of per-energy files, or FILE.h5:/dataset."""
    path = Path(spec)
    if path.exists():
        return True
    if any(char in path.name for char in "*?["):
        return any(path.parent.glob(path.name))
    return any(i > 0 and Path(spec[:i]).is_file() for i, c in enumerate(spec) if c == ":")


def _read(folder: Path, name: str) -> np.ndarray:
    import tifffile

    return tifffile.imread(folder / f"{name}.tif")


def summarize_maps(folder: str | os.PathLike) -> dict:
    """One row of ``series.csv`` from a map folder (``xafsmap map``'s files): see :func:`summarize`."""
    folder = Path(folder)
    report = json.loads((folder / "report.json").read_text())
    labels = _read(folder, "labels")
    return summarize(labels, _read(folder, "mask"), _read(folder, "fractions").reshape(-1, *labels.shape),
                     _read(folder, "fraction_sigma").reshape(-1, *labels.shape), _read(folder, "e0"),
                     references=report["parameters"]["references"], classes=[c["name"] for c in report["classes"]])


def summarize(labels: np.ndarray, mask: np.ndarray, fractions: np.ndarray, fraction_sigma: np.ndarray, e0: np.ndarray,
              *, references: Sequence[str], classes: Sequence[str]) -> dict:
    """One row of ``series.csv`` from one stack's maps.

    Parameters
    ----------
    labels, mask : ndarray, shape (M, N)
        The class (0 none) and mask (:data:`~xafsmap.core.mapping.maps.MASK_SAMPLE` = 1) maps.
    fractions, fraction_sigma : ndarray, shape (K, M, N)
        Fractions of the K references and their 1-sigma uncertainty.
    e0 : ndarray, shape (M, N)
        Edge energy, eV.
    references, classes : sequence of str
        Names of the K references and of the classes (label 1, 2, ...).

    Returns
    -------
    dict
        ``pixels``, ``sample_pixels``, ``no_sample_pixels``, ``invalid_pixels``,
        ``e0_mean_eV`` (mean of the e0 map over the sample), ``fraction_<ref>`` and
        ``fraction_<ref>_sd`` (mean and standard deviation over the sample pixels of
        each reference's fraction: the spread of the sample), ``fraction_<ref>_sigma``
        (the mean of the pixels' own 1-sigma uncertainty of it: the noise), ``share_<class>``
        (the class's pixels / the sample's).

    Examples
    --------
    >>> labels = np.array([[1, 2], [0, 1]]); mask = np.array([[1, 1], [0, 1]])
    >>> fractions = np.array([[[1.0, 0.2], [0, 0.9]], [[0.0, 0.8], [0, 0.1]]])
    >>> row = summarize(labels, mask, fractions, fractions * 0 + 0.01, labels * 0 + 7120.0,
    ...                 references=["A", "B"], classes=["A", "B"])
    >>> row["sample_pixels"], row["fraction_A"], row["share_A"]
    (3, 0.7, 0.6667)
    """
    sample = np.asarray(mask) == MASK_SAMPLE
    n = int(sample.sum())
    row = {"pixels": int(sample.size), "sample_pixels": n, "no_sample_pixels": int(np.sum(np.asarray(mask) == 0)),
           "invalid_pixels": int(np.sum(np.asarray(mask) == MASK_INVALID)),
           "e0_mean_eV": _round(np.nanmean(np.asarray(e0)[sample]) if n else math.nan, 3)}
    for name, values, sigmas in zip(references, fractions, fraction_sigma):
        for suffix, kept in (("", np.asarray(values)[sample]), ("_sigma", np.asarray(sigmas)[sample])):
            kept = kept[np.isfinite(kept)]
            row[f"fraction_{name}{suffix}"] = _round(kept.mean() if kept.size else math.nan, 4)
            if not suffix:
                row[f"fraction_{name}_sd"] = _round(kept.std() if kept.size else math.nan, 4)
    counts = np.bincount(np.asarray(labels)[sample].ravel().astype(np.int64), minlength=len(classes) + 1)
    for label, name in enumerate(classes, start=1):
        row[f"share_{name}"] = _round(counts[label] / n if n else math.nan, 4)
    return row


#: File names a folder of stacks is searched for (one stack per file).
STACK_PATTERNS = ("*.tif", "*.tiff", "*.h5", "*.hdf5", "*.nxs", "*.txrm", "*.hdr")


def find_stacks(folder: str | os.PathLike) -> list[str]:
    """The stack files of a folder, sorted by name (for a series of a folder).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.tif", "a.tif", "a.energies.txt", "notes.md"):
    ...     _ = (d / name).write_text("")
    >>> [pathlib.Path(p).name for p in find_stacks(d)]
    ['a.tif', 'b.tif']
    """
    folder = Path(folder)
    found = {path for pattern in STACK_PATTERNS for path in folder.glob(pattern) if path.is_file()}
    if not found:
        raise ValueError(f"{folder} holds no stack file ({', '.join(STACK_PATTERNS)})")
    return [str(path) for path in sorted(found)]


def _round(value: float, digits: int) -> float | str:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else ""


def write_series_table(path: str | os.PathLike, rows: list[dict]) -> Path:
    """``series.csv``: one row per stack, the union of the rows' columns in first-seen order."""
    columns = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    path = Path(path)
    with atomic_file(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
    return path


def _axis(rows: list[dict]) -> tuple[np.ndarray, str]:
    """The x of the plot: the first list column every row gives as a number, else the order."""
    skip = {"path", "name", "status"}
    for key in rows[0] if rows else ():
        if key in skip or key.startswith(("fraction_", "share_")) or key.endswith("_pixels") or key in (
                "pixels", "e0_mean_eV"):
            continue
        try:
            return np.array([float(row[key]) for row in rows]), key
        except (KeyError, TypeError, ValueError):
            continue
    return np.arange(1, len(rows) + 1, dtype=float), "stack"


def write_series_plot(path: str | os.PathLike, rows: list[dict], references: Iterable[str]) -> Path | None:
    """``series.png``: mean fraction of each reference across the series (± its spread).

    Needs matplotlib (the napari extra); without it nothing is written and None returned.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError:
        return None
    x, label = _axis(rows)
    figure = Figure(figsize=(6.4, 4.0), dpi=120)
    axes = figure.add_subplot()
    for name in references:
        mean = np.array([_number(row.get(f"fraction_{name}")) for row in rows])
        sd = np.array([_number(row.get(f"fraction_{name}_sd")) for row in rows])
        axes.errorbar(x, mean, yerr=sd, fmt="o-", capsize=3, elinewidth=0.8, alpha=0.9, label=name)
    axes.set_xlabel(label)
    axes.set_ylabel("mean fraction over the sample (± SD of pixels)")
    axes.set_ylim(-0.05, 1.05)
    if label == "stack":
        axes.set_xticks(x, [row.get("name", "") for row in rows], rotation=30, ha="right")
    elif np.all(x == np.round(x)):
        from matplotlib.ticker import MaxNLocator

        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="best", fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
