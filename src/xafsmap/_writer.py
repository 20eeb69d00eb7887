"""napari writer: a Labels layer as TIFF plus its class legend CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core.mapping.output import write_classes_csv, write_tiff


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write ``<stem>.tif`` (uint16 labels) and ``<stem>.classes.csv`` (label,name,...)."""
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
    legend = path.with_suffix(".classes.csv")
    write_classes_csv(legend, names, compositions, references if compositions is not None else ())
    write_tiff(path, labels.astype(np.uint16))
    return [str(path), str(legend)]
