"""Maps larger than memory: an OME-Zarr 0.5 store that the mapping loop writes band by band.

:func:`open_map_store` creates ``maps.ome.zarr`` with one Zarr v3 array per map of
:func:`~xafsmap.core.mapping.maps.new_maps` (same names, dtypes, shapes and fill values)
and returns them as a dict, so ``iter_classify(stack, model, maps=open_map_store(...))``
writes the maps to disk as the bands come. A chunk holds many bands of rows (about
:data:`CHUNK_PIXELS` pixels): the bands are collected in memory and each chunk is
compressed and written once, whole, in a background thread
(:class:`~xafsmap.core.mapping.chunkwriter.BufferedArray`), while the next bands are
mapped. Layout (every group carries ``ome`` metadata)::

    maps.ome.zarr/          image (y, x): the edge step, array "0"
      labels/               labels group: ["classes", "mask", "flags"]
        classes/0           uint16 class labels (image-label: colours and class names)
        mask/0  flags/0     uint8 (image-label: meanings)
      fractions/0           image (c, y, x): one channel per reference
      fraction_sigma/0      image (c, y, x): the 1-sigma uncertainty of each fraction
      probability/0  distance/0  residual/0  e0/0     float32 images (y, x)

Zarr is imported inside the functions: ``import xafsmap`` does not load it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .chunkwriter import BufferedArray, ChunkWriter
from .maps import chunk_rows, row_blocks

if TYPE_CHECKING:
    from ..model.synthesize import Classes
    from .pipeline import MapResult

__all__ = [
    "CHUNK_PIXELS",
    "MAPS_ZARR",
    "PATHS",
    "copy_maps",
    "describe_map_store",
    "open_map_store",
    "read_map_store",
]

#: Pixels per chunk of a store (4 MB of float32; a band row was 19 k pixels, whose
#: 12 writes per band cost more than mapping it: 29.6 vs 21.8 s on 5.7 GB).
CHUNK_PIXELS = 2**20
#: Name of the store inside an output folder.
MAPS_ZARR = "maps.ome.zarr"
#: Where each map of :func:`~xafsmap.core.mapping.maps.new_maps` lives in the store.
PATHS = {
    "edge_step": "0",
    "labels": "labels/classes/0",
    "mask": "labels/mask/0",
    "flags": "labels/flags/0",
    "fractions": "fractions/0",
    "fraction_sigma": "fraction_sigma/0",
    "probability": "probability/0",
    "distance": "distance/0",
    "residual": "residual/0",
    "e0": "e0/0",
}
NGFF_VERSION = "0.5"
_MASK_COLORS = {0: (0, 0, 0, 0), 1: (80, 200, 120, 255), 2: (220, 40, 40, 255)}


def _compressors(compressor: str | None) -> Any:
    from zarr.codecs import BloscCodec, ZstdCodec

    table = {"zstd": ZstdCodec(level=1), "blosc": BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),
             None: None}
    if compressor not in table:
        raise ValueError(f"unknown compressor {compressor!r}; choose one of {list(table)}")
    return table[compressor]


def _axes(channel: bool, volume: bool = False) -> list[dict]:
    return ([{"name": "c", "type": "channel"}] * channel + [{"name": "z", "type": "space"}] * volume
            + [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}])


def _multiscales(name: str, channel: bool, volume: bool = False) -> list[dict]:
    ndim = 2 + channel + volume
    return [{"name": name, "axes": _axes(channel, volume),
             "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * ndim}]}]}]


def open_map_store(path: str | os.PathLike, k: int, rows: int, cols: int, *, band: int, compressor: str | None = "zstd",
                   chunk_pixels: int = CHUNK_PIXELS, slices: int | None = None) -> dict:
    """Create an OME-Zarr store of empty maps, chunked in whole bands of ``band`` rows.

    Parameters
    ----------
    path : str or Path
        The store folder to create (``maps.ome.zarr``); it must not exist.
    k : int
        Number of references (channels of ``fractions``).
    rows, cols : int
        The map grid, pixels.
    band : int
        Rows of one band of the mapping loop (:func:`~xafsmap.core.mapping.pipeline.band_rows`):
        a chunk holds a whole number of bands.
    compressor : {"zstd", "blosc", None}
        Chunk compression.
    chunk_pixels : int
        Pixels per chunk (per channel): the chunk's rows are the most whole bands
        within it (at least one band).
    slices : int, optional
        The maps of a volume: 3-D arrays (slices, rows, cols) (``fractions`` (K, slices,
        rows, cols)), OME axes ``z, y, x``, one chunk per slice (per channel), returned
        as the zarr arrays themselves (a volume's slice is written whole, once).

    Returns
    -------
    dict of BufferedArray
        The maps of :func:`~xafsmap.core.mapping.maps.new_maps`: ``labels`` uint16,
        ``mask``/``flags`` uint8 (fill 0), ``fractions`` (K, rows, cols) and the other
        maps (rows, cols) float32 (fill NaN), each a zarr array behind a
        :class:`~xafsmap.core.mapping.chunkwriter.BufferedArray`: rows written to it are
        collected into whole chunks, each written once in a background thread; reading
        from it first finishes the writes. Call ``flush()`` on one of them (they share
        the writer) to wait for every write.

    Raises
    ------
    ValueError
        If a size is not positive or the store exists.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> maps = open_map_store(pathlib.Path(tempfile.mkdtemp()) / "maps.ome.zarr", 3, 40, 60, band=16)
    >>> maps["fractions"].shape, maps["fractions"].chunks, str(maps["labels"].dtype)
    ((3, 40, 60), (1, 40, 60), 'uint16')
    """
    import zarr

    from .maps import CHANNEL_MAPS, new_maps

    if min(k, rows, cols, band) < 1:
        raise ValueError(f"a map store needs k, rows, cols and band >= 1, got {k}, {rows}, {cols}, {band}")
    if slices is not None and slices < 1:
        raise ValueError(f"a volume's map store needs slices >= 1, got {slices}")
    path = Path(path)
    if path.exists():
        raise ValueError(f"map store {path} exists already")
    compressors = _compressors(compressor)
    band = min(band, rows)
    chunk = min(rows, band * max(1, chunk_pixels // (band * cols)))
    volume = slices is not None
    root = zarr.create_group(path, zarr_format=3, attributes={
        "ome": {"version": NGFF_VERSION, "multiscales": _multiscales("edge_step", False, volume)},
        "xafsmap": {"maps": PATHS},
    })
    names = ["classes", "mask", "flags"]
    root.create_group("labels", attributes={"ome": {"version": NGFF_VERSION, "labels": names}})
    template = new_maps(k, 1, 1)
    writer = ChunkWriter()
    maps = {}
    for name, where in PATHS.items():
        group = where.rpartition("/")[0]
        if group:
            label = group.startswith("labels/")
            ome = {"version": NGFF_VERSION, "multiscales": _multiscales(group.rpartition("/")[2],
                                                                         template[name].ndim == 3, volume)}
            if label:  # NGFF 0.5: the version lives in "ome" only, image-label holds no "version"
                ome["image-label"] = {"source": {"image": "../../"}}
            root.create_group(group, attributes={"ome": ome})
        channels = name in CHANNEL_MAPS
        shape = (k,) * channels + (slices,) * volume + (rows, cols)
        chunks = (1,) * channels + (1,) * volume + ((rows, cols) if volume else (chunk, cols))
        array = root.create_array(
            where, shape=shape, dtype=template[name].dtype, chunks=chunks, fill_value=template[name].flat[0],
            compressors=compressors, dimension_names=[a["name"] for a in _axes(channels, volume)],
        )
        maps[name] = array if volume else BufferedArray(array, writer)
    return maps


def describe_map_store(path: str | os.PathLike, classes: Classes) -> None:
    """Write the class legend into a store: label colours, class names and compositions.

    Parameters
    ----------
    path : str or Path
        A store made by :func:`open_map_store`.
    classes : xafsmap.core.model.synthesize.Classes
        The classifier's classes: label ``i`` is ``classes.names[i - 1]``. Colours are
        those of the quick-look PNG and the napari layers
        (:func:`~xafsmap.core.mapping.legend.label_colors`); 0 (no sample) is transparent.
    """
    import zarr

    from .maps import FLAGS
    from .legend import label_colors

    root = zarr.open_group(Path(path), mode="r+", zarr_format=3)
    rgb = label_colors(len(classes.names)).tolist()
    colors = [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
    colors += [{"label-value": i, "rgba": [*rgb[i], 255]} for i in range(1, len(classes.names) + 1)]
    properties = [{"label-value": 0, "class": "no sample"}]
    properties += [{"label-value": i, "class": name, **dict(zip(classes.references, map(float, row)))}
                   for i, (name, row) in enumerate(zip(classes.names, classes.compositions), start=1)]
    _set_label(root["labels/classes"], colors, properties)
    _set_label(root["labels/mask"], [{"label-value": v, "rgba": list(c)} for v, c in _MASK_COLORS.items()],
               [{"label-value": 0, "meaning": "no sample"}, {"label-value": 1, "meaning": "sample"},
                {"label-value": 2, "meaning": "invalid"}])
    flags = [{"label-value": v, "flags": [m for bit, m in FLAGS.items() if v & bit]} for v in range(1, 8)]
    flag_rgb = label_colors(7).tolist()
    _set_label(root["labels/flags"], [{"label-value": v, "rgba": [*flag_rgb[v], 255 * (v > 0)]} for v in range(8)],
               [{"label-value": 0, "flags": []}, *flags])
    for name in ("fractions", "fraction_sigma"):
        group = root[name]
        ome = dict(group.attrs["ome"])
        ome["omero"] = {"channels": [{"label": ref, "active": True, "color": "FFFFFF",
                                      "window": {"start": 0.0, "end": 1.0, "min": 0.0, "max": 1.0}}
                                     for ref in classes.references]}
        group.attrs["ome"] = ome
    root.attrs["xafsmap"] = {**root.attrs["xafsmap"], "classes": list(classes.names),
                             "references": list(classes.references)}


def _set_label(group: Any, colors: list[dict], properties: list[dict]) -> None:
    ome = dict(group.attrs["ome"])
    ome["image-label"] = dict(ome["image-label"], colors=colors, properties=properties)
    group.attrs["ome"] = ome


def read_map_store(path: str | os.PathLike, *, mode: str = "r") -> dict:
    """The maps of a store made by :func:`open_map_store`, as zarr arrays (nothing is read).

    Raises
    ------
    ValueError
        If ``path`` is not an xafsmap map store.
    """
    import zarr

    try:
        root = zarr.open_group(Path(path), mode=mode, zarr_format=3)
        paths = root.attrs["xafsmap"]["maps"]
    except (FileNotFoundError, KeyError, TypeError, zarr.errors.GroupNotFoundError):
        raise ValueError(f"{path} is not an xafsmap map store (no zarr.json with xafsmap maps)") from None
    return {name: root[where] for name, where in paths.items()}



def copy_maps(source: MapResult | dict, maps: dict) -> None:
    """Copy every map of ``source`` (a MapResult or a dict) into ``maps``, in row blocks."""
    for name, target in maps.items():
        data = source[name] if isinstance(source, dict) else getattr(source, name)
        for r0, block in row_blocks(data, rows=chunk_rows(target)):
            target[..., r0 : r0 + block.shape[-2], :] = block


