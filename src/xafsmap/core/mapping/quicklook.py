"""A PNG quick-look of a label map, for machines without a display.

With matplotlib installed the picture carries a legend of class names; without it a
plain indexed-colour PNG is written with the standard library alone.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .._files import atomic_file
from .legend import Legend, read_legend_csv

__all__ = ["write_label_png"]


def write_label_png(path: str | os.PathLike, labels: str | os.PathLike | ArrayLike,
                    classes_csv: str | os.PathLike | None = None) -> Path:
    """Write a colour PNG of a label map (TIFF path or array), with a legend if possible."""
    import tifffile

    path = Path(path)
    labels = tifffile.imread(labels) if isinstance(labels, (str, os.PathLike)) else np.asarray(labels)
    legend = read_legend_csv(classes_csv) if classes_csv else Legend.of(range(1, int(labels.max()) + 1))
    names, colors = legend.names, np.vstack([[0, 0, 0], legend.colors]).astype(np.uint8)
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
