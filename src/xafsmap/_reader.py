"""napari reader: imaging-XAFS stacks (lazy) and folders of xafsmap maps.

Volumes (E, Z, Y, X: a 4-D TIFF, a folder of energy folders of slice TIFFs, a 4-D HDF5
dataset) open as one 4-D image layer (energy and Z sliders). Stacks: TIFF, STXM ``.hdr`` (with ``i0.xsp`` beside it), HDF5/NeXus (NXstxm, Data
Exchange, FXI/TXM-Sandbox) and Zeiss/Xradia ``.txrm``/``.xrm``; an HDF5 file whose
layout is not recognised (or that holds counts without an I0) is declined.

A maps folder written with ``--zarr`` is read lazily from its ``maps.ome.zarr``
(dask arrays, one chunk per band); the store itself opens its folder.

``get_reader`` returns ``None`` for anything it cannot read, and never raises.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core.io.volumefiles import volume_kind
from .core.mapping.legend import read_legend_csv, read_tiff_legend
from .core.mapping.legend import label_colors

MAP_IMAGES = ("probability", "distance", "residual", "edge_step", "e0")


def get_reader(path):
    """Return a reader function for ``path``, or ``None`` if it is not ours."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    try:
        if path.is_dir() and path.name == "maps.ome.zarr" and (path.parent / "labels.tif").is_file():
            path = path.parent
        if path.is_dir() and (path / "labels.tif").is_file() and (path / "classes.csv").is_file():
            return lambda _: read_maps(path)
        if _legend_of(path) is not None:
            return read_labels
        if volume_kind(path):
            return lambda _: [volume_layer(path)]
        stack = _open_stack(path)
    except Exception:  # noqa: BLE001 - napari's reader contract: decline, never raise
        return None
    return lambda _: [stack_layer(stack)]


def _open_stack(path: Path):
    from .core.io.formats import format_kind
    from .core.io.energies import find_energies_file
    from .core.io.stack import read_stack

    if format_kind(path):  # HDF5/NeXus, Xradia: the file's own energies and I0
        return read_stack(path)
    energies = None if path.suffix == ".hdr" else find_energies_file(path)
    if path.suffix == ".hdr":
        i0 = path.parent / "i0.xsp"
        return read_stack(path, i0=i0 if i0.is_file() else None)
    return read_stack(path, energies=energies)


def stack_layer(stack, *, name=None):
    """Layer-data tuple of a lazy stack: energies in metadata, contrast from one plane."""
    from .core.io.stack import plane_view

    data, energies = plane_view(stack), np.asarray(stack.energies)
    plane = np.asarray(data[int(np.argmax(energies > np.median(energies)))], dtype=np.float32)
    finite = plane[np.isfinite(plane)]
    limits = np.percentile(finite, [1, 99]).tolist() if finite.size else [0.0, 1.0]
    if limits[0] == limits[1]:
        limits[1] = limits[0] + 1
    source = Path(stack.sources.get("stack", "stack"))
    meta = {
        "name": name or source.stem,
        "contrast_limits": limits,
        "metadata": {"energies": energies, "sources": dict(stack.sources), "notes": list(stack.notes),
                     "xafsmap": "stack"},
        "colormap": "gray",
    }
    return data, meta, "image"


def volume_layer(path):
    """Layer-data tuple of a volume (E, Z, Y, X), lazy (one image per chunk): the energy and
    Z sliders; energies in metadata, contrast from the middle slice above the edge."""
    from .core.io.volume import read_volume

    volume = read_volume(path, planes=True)
    energies = volume.energies
    plane = np.asarray(volume.data[int(np.argmax(energies > np.median(energies))), volume.data.shape[1] // 2])
    finite = plane[np.isfinite(plane)]
    low, high = np.percentile(finite, [1, 99]).tolist() if finite.size else (0.0, 1.0)
    meta = {"name": Path(str(path)).stem, "contrast_limits": [low, high if high > low else low + 1],
            "colormap": "gray", "metadata": {"energies": energies, "sources": dict(volume.sources),
                                             "notes": list(volume.notes), "xafsmap": "volume"}}
    return volume.data, meta, "image"


def _legend_of(path: Path):
    """The legend of a label TIFF: a classes CSV beside it, else the one inside it, else None."""
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return None
    for candidate in (path.with_suffix(".classes.csv"), path.parent / "classes.csv"):
        if candidate.is_file():
            return read_legend_csv(candidate)
    return read_tiff_legend(path)


def labels_layer(labels, names, *, name="classes", compositions=None, references=(), kind="class",
                 background="no sample", colors=None):
    """Layer-data tuple of a label map: names as features (hovering shows ``kind: name``, and
    ``kind: background`` over label 0), 0 transparent; ``colors`` (n, 3) uint8 or xafsmap's."""
    colors = (label_colors(len(names))[1:] if colors is None else np.asarray(colors)) / 255.0
    colormap = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    colormap.update({i: (*colors[i - 1], 1.0) for i in range(1, len(names) + 1)})
    features = {"index": np.arange(len(names) + 1), kind: [background, *names]}
    if compositions is not None:
        for j, ref in enumerate(references):
            features[ref] = np.concatenate([[np.nan], compositions[:, j]])
    meta = {"name": name, "features": features, "colormap": colormap,
            "metadata": {"class_names": list(names), "references": list(references)}}
    return labels, meta, "labels"


def legend_layer(labels, legend, *, name="classes"):
    """:func:`labels_layer` of a :class:`~xafsmap.core.mapping.legend.Legend` (its names, colours, compositions)."""
    return labels_layer(labels, list(legend.names), name=name, compositions=legend.compositions,
                        references=legend.references, colors=legend.colors)


def read_labels(path):
    """Read a label TIFF with its legend (CSV beside it, or inside the TIFF) into a Labels layer."""
    import tifffile

    path = Path(path[0] if isinstance(path, list) else path)
    return [legend_layer(tifffile.imread(path), _legend_of(path), name=path.stem)]


def _lazy_maps(folder: Path) -> dict:
    """The maps of the folder's ``maps.ome.zarr`` as dask arrays, or {} without one."""
    if not (folder / "maps.ome.zarr").is_dir():
        return {}
    import dask.array as da

    from .core.mapping.zarrmaps import read_map_store

    return {name: da.from_zarr(array) for name, array in read_map_store(folder / "maps.ome.zarr").items()}


def contrast_limits(image) -> list[float]:
    """1-99 % of about 64 rows (whole chunks of a lazy map are read, never the map)."""
    rows = np.asarray(image[:: max(1, image.shape[0] // 64)], dtype=np.float32)
    finite = rows[np.isfinite(rows)]
    low, high = np.percentile(finite, [1, 99]).tolist() if finite.size else (0.0, 1.0)
    return [low, high if high > low else low + 1]


def read_maps(path):
    """Read an ``xafsmap map`` output folder: labels, then the float maps (lazy from maps.ome.zarr)."""
    import tifffile

    folder = Path(path[0] if isinstance(path, list) else path)
    legend = read_legend_csv(folder / "classes.csv")
    lazy = _lazy_maps(folder)

    def read(name):
        return lazy[name] if name in lazy else tifffile.imread(folder / f"{name}.tif")

    layers = [legend_layer(read("labels"), legend)]
    for name in MAP_IMAGES:
        if name in lazy or (folder / f"{name}.tif").is_file():
            image = read(name)
            layers.append((image, {"name": name, "visible": False, "colormap": "viridis",
                                   "contrast_limits": contrast_limits(image)}, "image"))
    if "fractions" in lazy or (folder / "fractions.tif").is_file():
        fractions = read("fractions").reshape(len(legend.references), *layers[0][0].shape)
        for ref, plane in zip(legend.references, fractions):
            layers.append((plane, {"name": f"fraction {ref}", "visible": False, "colormap": "magma",
                                   "contrast_limits": (0.0, 1.0)}, "image"))
    return layers
