"""napari writer: a Labels layer as TIFF with its class legend (inside the TIFF and as CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core.mapping.legend import Legend, write_legend_csv
from .core.mapping.output import write_tiff


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write ``<stem>.tif`` (uint16 labels, the legend in its description) and
    ``<stem>.classes.csv`` (label,name,color,<compositions>), in the layer's colours."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        path = path.with_suffix(".tif")
    labels = np.asarray(data)
    if labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"label {labels.max()} does not fit in a uint16 TIFF")
    metadata = meta.get("metadata", {})
    names = metadata.get("class_names") or [str(i) for i in range(1, int(labels.max(initial=0)) + 1)]
    references = metadata.get("references") or []
    features = meta.get("features")
    compositions = None
    if references and features is not None and all(ref in features for ref in references):
        compositions = np.column_stack([np.asarray(features[ref])[1:] for ref in references])
    legend = Legend.of(names, compositions, references if compositions is not None else (),
                       colors=layer_colors(meta.get("colormap"), len(names)))
    csv_path = write_legend_csv(path.with_suffix(".classes.csv"), legend)
    write_tiff(path, labels.astype(np.uint16), description=legend.to_json())
    return [str(path), str(csv_path)]


def layer_colors(colormap, n: int):
    """RGB (uint8, shape (n, 3)) of labels 1..n as the layer draws them, or None (xafsmap's colours)."""
    if colormap is None or not hasattr(colormap, "map"):
        return None
    rgba = np.asarray(colormap.map(np.arange(1, n + 1)), dtype=np.float64).reshape(n, -1)
    return np.round(rgba[:, :3] * 255).astype(np.uint8)
