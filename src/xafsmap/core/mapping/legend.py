"""The class legend of a label map: each label's name, colour and composition.

The legend travels with the labels twice: as ``classes.csv`` beside them
(``label,name,color,<reference fractions...>``, readable in a spreadsheet) and inside
the labels TIFF itself (JSON in its ImageDescription), so a ``labels.tif`` copied
alone, opened in napari or read with tifffile still says what its numbers mean and
in which colours the viewer drew them. Label 0 is "no sample" and has no row.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .._files import atomic_file

__all__ = ["Legend", "label_colors", "read_legend_csv", "read_tiff_legend", "write_legend_csv"]

#: Key of the legend in the JSON a labels TIFF carries as its ImageDescription.
TIFF_KEY = "xafsmap_legend"


def label_colors(n: int) -> np.ndarray:
    """``n + 1`` distinct RGB colours (uint8); label 0 (no sample) is black.

    Examples
    --------
    >>> label_colors(2).shape
    (3, 3)
    """
    golden = 0.618033988749895
    hues = (np.arange(n) * golden) % 1.0
    value = np.where(np.arange(n) % 2, 0.75, 0.95)
    rgb = _hsv_to_rgb(hues, np.full(n, 0.7), value)
    return np.vstack([[0, 0, 0], np.round(rgb * 255)]).astype(np.uint8)


def _hsv_to_rgb(h, s, v):
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]])
    return table[i, :, np.arange(h.size)]


@dataclass(frozen=True)
class Legend:
    """Names, colours and (optionally) compositions of labels 1..n.

    Attributes
    ----------
    names : tuple of str, length n
        Label ``i`` is ``names[i - 1]``.
    colors : ndarray, shape (n, 3), uint8
        RGB colour of each label, as the viewer and labels.png draw it.
    references : tuple of str, length K
        Reference names of the composition columns (empty without compositions).
    compositions : ndarray, shape (n, K), float, or None
        Fraction of each reference in each class.

    Examples
    --------
    >>> legend = Legend.of(["Fe", "FeO"], np.eye(2), ["Fe", "FeO"])
    >>> legend.rows()[0]
    [1, 'Fe', '#f24949', '1', '0']
    >>> Legend.from_json(legend.to_json()) == legend
    True
    """

    names: tuple
    colors: np.ndarray
    references: tuple = ()
    compositions: np.ndarray | None = None

    @classmethod
    def of(cls, names: Iterable[object], compositions: ArrayLike | None = None, references: Sequence[str] = (),
           colors: ArrayLike | None = None) -> Legend:
        """A legend with xafsmap's colours (:func:`label_colors`) unless ``colors`` are given."""
        names = tuple(str(name) for name in names)
        colors = label_colors(len(names))[1:] if colors is None else np.asarray(colors, dtype=np.uint8)
        if colors.shape != (len(names), 3):
            raise ValueError(f"{len(names)} class names but {len(colors)} colours")
        if compositions is None:
            return cls(names, colors)
        compositions = np.asarray(compositions, dtype=np.float64).reshape(len(names), len(references))
        return cls(names, colors, tuple(str(ref) for ref in references), compositions)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Legend):
            return NotImplemented
        same = (self.compositions is None) == (other.compositions is None)
        return (same and self.names == other.names and self.references == other.references
                and np.array_equal(self.colors, other.colors)
                and (self.compositions is None or np.allclose(self.compositions, other.compositions, atol=1e-6)))

    __hash__ = None

    def header(self) -> list[str]:
        return ["label", "name", "color", *self.references]

    def rows(self) -> list[list]:
        """One row per label: label, name, ``#rrggbb``, then the fractions (6 significant digits)."""
        rows = []
        for i, (name, rgb) in enumerate(zip(self.names, self.colors), start=1):
            fractions = [] if self.compositions is None else [f"{v:.6g}" for v in self.compositions[i - 1]]
            rows.append([i, name, "#{:02x}{:02x}{:02x}".format(*rgb.tolist()), *fractions])
        return rows

    def to_json(self) -> str:
        """The legend as 7-bit ASCII JSON (what a TIFF ImageDescription may hold)."""
        return json.dumps({TIFF_KEY: {"header": self.header(), "rows": self.rows()}})

    @classmethod
    def from_json(cls, text: str) -> Legend:
        table = json.loads(text)[TIFF_KEY]
        return _from_table(table["header"], [[str(v) for v in row] for row in table["rows"]])


def write_legend_csv(path: str | os.PathLike, legend: Legend) -> Path:
    """Write ``classes.csv`` (to a temporary name first)."""
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(legend.header())
        writer.writerows(legend.rows())
    return path


def read_legend_csv(path: str | os.PathLike) -> Legend:
    """Read a classes CSV; files written before the colour column get xafsmap's colours.

    Raises
    ------
    ValueError
        If the file is not a class legend (no ``label,name`` header).
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:2] != ["label", "name"]:
        raise ValueError(f"{path} is not a class legend: its first line should start with 'label,name'")
    return _from_table(rows[0], rows[1:])


def read_tiff_legend(path: str | os.PathLike) -> Legend | None:
    """The legend a labels TIFF carries in its first page's ImageDescription, or None."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            text = tif.pages.first.description
        return Legend.from_json(text) if TIFF_KEY in text else None
    except (OSError, ValueError, KeyError, IndexError, TypeError, tifffile.TiffFileError):
        return None


def _from_table(header: list[str], body: list[list[str]]) -> Legend:
    colored = len(header) > 2 and header[2] == "color"
    references = header[3:] if colored else header[2:]
    names = [row[1] for row in body]
    colors = [_rgb(row[2]) for row in body] if colored else None
    first = 3 if colored else 2
    compositions = (np.array([[float(v) for v in row[first:]] for row in body]).reshape(len(body), len(references))
                    if references else None)
    return Legend.of(names, compositions, references, colors)


def _rgb(text: str) -> tuple[int, int, int]:
    text = text.strip().lstrip("#")
    if len(text) != 6:
        raise ValueError(f"colour {text!r} is not #rrggbb")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
