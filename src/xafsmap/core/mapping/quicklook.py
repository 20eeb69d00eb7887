"""A PNG quick-look of a label map, for machines without a display.

With matplotlib installed the picture carries a legend of class names; without it a
plain indexed-colour PNG is written with the standard library alone.
"""

from __future__ import annotations

import csv
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .._files import atomic_file

__all__ = ["label_colors", "write_label_png"]


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


def _read_names(classes_csv) -> list[str]:
    with open(classes_csv, newline="") as f:
        return [row["name"] for row in csv.DictReader(f)]


def write_label_png(path, labels, classes_csv=None) -> Path:
    """Write a colour PNG of a label map (TIFF path or array), with a legend if possible."""
    import tifffile

    path = Path(path)
    labels = tifffile.imread(labels) if isinstance(labels, (str, os.PathLike)) else np.asarray(labels)
    names = _read_names(classes_csv) if classes_csv else [str(i) for i in range(1, int(labels.max()) + 1)]
    colors = label_colors(len(names))
    with atomic_file(path) as tmp:
        try:
            _matplotlib_png(tmp, labels, names, colors)
        except ImportError:
            _plain_png(tmp, colors[labels])
    return path


def _matplotlib_png(path, labels, names, colors) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    figure = Figure(figsize=(9, 5), dpi=100)
    axes = figure.add_axes([0.02, 0.05, 0.6, 0.9])
    axes.imshow(colors[labels], interpolation="nearest")
    axes.set_axis_off()
    present = np.bincount(labels.ravel(), minlength=len(names) + 1)
    handles = [Patch(color=colors[i] / 255, label=f"{name} ({present[i]} px)")
               for i, name in enumerate(names, start=1) if present[i]]
    handles.append(Patch(color="black", label=f"no sample / invalid ({present[0]} px)"))
    figure.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    figure.savefig(path, format="png")


def _plain_png(path, rgb: np.ndarray) -> None:
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(rgb, np.uint8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
