"""The files a volume (E, Z, Y, X) comes in, opened lazily (used by :mod:`xafsmap.core.io.volume`).

Three forms of a XANES tomography:

* **a 4-D TIFF** (``volume.tif``): series 0 of shape (E, Z, Y, X) (or another order, given
  as ``axes``); an uncompressed contiguous file is read with one positioned read per
  image and band of rows, anything else one page per chunk;
* **a folder per energy** of slice TIFFs (``scan/7112.0eV/slice_000.tif`` ...): energy
  folders and slices in natural order, every folder holding the same number of slices
  of the same shape;
* **an HDF5 dataset** ``FILE.h5:/path`` of 4 dimensions, in (E, Z, Y, X) order unless
  ``axes`` or the dataset's ``@axes`` attribute say otherwise.

Each opener returns a :class:`RawVolume`: the voxels as a float32 dask array (E, Z, Y, X)
chunked for mapping (every energy of one slice and a band of rows per chunk) or for
display (one image per chunk), and the energies the file holds, if any.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .energies import natural_sort_key
from .tiff import BAND_BYTES, TIFF_SUFFIXES, open_tiff_files

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["RawVolume", "energy_folders", "open_volume_folders", "open_volume_hdf5", "open_volume_tiff",
           "parse_volume_axes", "volume_chunks", "volume_kind"]

#: Names of the dimensions of a volume, in the order of its arrays.
VOLUME_AXES = "EZYX"
#: What a dataset's ``@axes`` names may be called, per dimension.
_ROLES = {"E": ("e", "energy", "energies", "eng", "x_eng"), "Z": ("z", "slice", "slices", "sample_z"),
          "Y": ("y", "row", "rows", "sample_y"), "X": ("x", "col", "cols", "column", "columns", "sample_x")}
#: 1-D datasets beside a 4-D dataset that hold its energies.
_ENERGY_NAMES = ("energy", "energies", "eng_list", "X_eng")


@dataclass(frozen=True, eq=False)
class RawVolume:
    """What a volume's files hold.

    Attributes
    ----------
    data : dask.array.Array, shape (E, Z, Y, X), float32
    energies : ndarray, shape (E,), or None
        The energies the file holds (eV), None if it holds none.
    energies_source : str or None
    notes : tuple of str
    """

    data: object
    energies: np.ndarray | None = None
    energies_source: str | None = None
    notes: tuple = ()


def parse_volume_axes(axes: str) -> str:
    """Validate a volume's axis order: a permutation of ``"EZYX"`` (case-insensitive).

    >>> parse_volume_axes("zeyx")
    'ZEYX'
    """
    order = str(axes).strip().upper()
    if sorted(order) != sorted(VOLUME_AXES):
        raise ValueError(f"axes {axes!r} must name the 4 dimensions of a volume as a permutation of EZYX "
                         "(E energy, Z slice, Y row, X column), e.g. --axes ZEYX")
    return order


def volume_chunks(shape: tuple[int, ...], order: str = VOLUME_AXES, *, planes: bool = False) -> tuple:
    """Dask chunks of a volume stored in ``order``: one slice's energies and a band of rows, or one image.

    >>> volume_chunks((141, 32, 512, 512))
    (141, 1, 58, 512)
    >>> volume_chunks((32, 141, 512, 512), "ZEYX", planes=True)
    (1, 1, 512, 512)
    """
    size = dict(zip(order, shape))
    if planes:
        want = {"E": 1, "Z": 1, "Y": size["Y"], "X": size["X"]}
    else:
        band = max(1, min(size["Y"], BAND_BYTES // max(1, size["E"] * size["X"] * 4)))
        want = {"E": size["E"], "Z": 1, "Y": band, "X": size["X"]}
    return tuple(want[c] for c in order)


def _lazy(source: Any, shape: tuple[int, ...], order: str, *, planes: bool, token: str) -> da.Array:
    """A float32 dask array (E, Z, Y, X) over an array-like stored in ``order``."""
    import dask.array as da

    data = da.from_array(source, chunks=volume_chunks(shape, order, planes=planes), name=f"volume-{token}-{planes}",
                         lock=False, meta=np.empty((0,) * 4, np.float32))
    return data.transpose(tuple(order.index(c) for c in VOLUME_AXES))


class _ContiguousVolume:
    """Array-like over an uncompressed contiguous 4-D TIFF series: positioned reads of row runs."""

    def __init__(self, path: str, offset: int, shape: tuple, dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.file_dtype = path, offset, tuple(shape), dtype
        self.dtype, self.ndim = np.dtype(np.float32), 4

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) != 4 or not all(isinstance(k, slice) for k in key):
            image = np.memmap(self.path, self.file_dtype, "r", self.offset, self.shape)
            return np.array(image[key], dtype=np.float32)
        ranges = [range(*k.indices(n)) for k, n in zip(key, self.shape)]
        _, n1, m, n = self.shape
        rows = ranges[2]
        runs = [(rows.start, len(rows))] if rows.step == 1 else [(r, 1) for r in rows]
        out = np.empty((len(ranges[0]), len(ranges[1]), len(rows), n), self.file_dtype)
        size = self.file_dtype.itemsize
        with open(self.path, "rb", buffering=0) as file:
            for i, a in enumerate(ranges[0]):
                for j, b in enumerate(ranges[1]):
                    for r, (row, count) in enumerate(runs):
                        start = self.offset + (((a * n1 + b) * m) + row) * n * size
                        view = memoryview(out[i, j, r : r + count]).cast("B")
                        if os.preadv(file.fileno(), [view], start) != view.nbytes:
                            raise ValueError(f"cannot read {self.path}: image ({a}, {b}) is truncated")
        return out[..., ranges[3].start : ranges[3].stop : ranges[3].step].astype(np.float32, copy=False)


class _TiffPages:
    """Array-like over a 4-D TIFF stored one page per image (compressed or scattered)."""

    def __init__(self, path: str, shape: tuple) -> None:
        self.path, self.shape, self.dtype, self.ndim = path, tuple(shape), np.dtype(np.float32), 4

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        import tifffile

        ranges = [range(*k.indices(n)) for k, n in zip(key, self.shape)]
        pages = [a * self.shape[1] + b for a in ranges[0] for b in ranges[1]]
        images = tifffile.imread(self.path, key=pages) if pages else np.empty((0, *self.shape[2:]))
        images = np.asarray(images, np.float32).reshape(len(ranges[0]), len(ranges[1]), *self.shape[2:])
        return images[:, :, key[2], key[3]]


def open_volume_tiff(path: str | os.PathLike, *, axes: str | None = None, planes: bool = False) -> RawVolume:
    """Open a 4-D TIFF lazily as (E, Z, Y, X).

    Raises
    ------
    ValueError
        If series 0 is not 4-D numbers, or its images run past the end of the file.

    Examples
    --------
    >>> import tempfile, pathlib, tifffile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "v.tif"
    >>> tifffile.imwrite(f, np.ones((3, 2, 4, 5), np.float32))
    >>> open_volume_tiff(f).data.shape
    (3, 2, 4, 5)
    """
    import json

    import tifffile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"volume file not found: {path}")
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, dtype = tuple(series.shape), np.dtype(tif.byteorder + series.dtype.char)
        offset, description = series.dataoffset, tif.pages[0].description
    if len(shape) != 4 or dtype.kind not in "fiu":
        raise ValueError(f"{path.name} holds {dtype} images of shape {shape}; a volume is 4-D (E, Z, Y, X)")
    if offset is not None and offset + int(np.prod(shape)) * dtype.itemsize > path.stat().st_size:
        raise ValueError(f"cannot read {path}: it is truncated (its images end past the file's "
                         f"{path.stat().st_size} bytes)")
    order = parse_volume_axes(axes or VOLUME_AXES)
    source = _ContiguousVolume(str(path), offset, shape, dtype) if offset is not None else _TiffPages(str(path), shape)
    stat = path.stat()
    data = _lazy(source, shape, order, planes=planes, token=f"{stat.st_ino}-{stat.st_size}-{stat.st_mtime_ns}")
    try:
        values = json.loads(description or "").get("energies")
    except (ValueError, AttributeError):
        values = None
    energies = None if values is None else np.asarray(values, np.float64)
    notes = () if order == VOLUME_AXES else (f"{path.name} read as ({', '.join(order)})",)
    return RawVolume(data, energies, None if energies is None else f"{path.name} metadata", notes)


def energy_folders(path: str | os.PathLike) -> list[Path]:
    """The energy folders of a volume folder (natural order): sub-folders holding TIFFs.

    Returns an empty list when ``path`` is not a folder of such folders (it holds
    TIFFs itself, or no sub-folder with TIFFs).

    >>> import tempfile, pathlib, tifffile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("7112.5eV", "7100eV", "notes"):
    ...     (root / name).mkdir()
    >>> for name in ("7112.5eV", "7100eV"):
    ...     tifffile.imwrite(root / name / "slice_0.tif", np.zeros((2, 3), np.float32))
    >>> [p.name for p in energy_folders(root)]
    ['7100eV', '7112.5eV']
    """
    path = Path(path)
    if not path.is_dir() or any(p.suffix.lower() in TIFF_SUFFIXES and p.is_file() for p in path.iterdir()):
        return []
    folders = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    folders = [p for p in folders if any(f.suffix.lower() in TIFF_SUFFIXES for f in p.iterdir())]
    return sorted(folders, key=lambda p: natural_sort_key(p.name))


def open_volume_folders(path: str | os.PathLike) -> RawVolume:
    """Open a folder of energy folders of slice TIFFs lazily as (E, Z, Y, X).

    Raises
    ------
    ValueError
        If the energy folders hold different numbers of slices, or slices of different
        shapes (one line naming the folders).
    """
    import dask.array as da

    folders = energy_folders(path)
    if not folders:
        raise ValueError(f"{path} holds no folders of slice TIFFs (one folder per energy)")
    slices = [sorted((f for f in folder.iterdir() if f.suffix.lower() in TIFF_SUFFIXES and f.is_file()),
                     key=lambda f: natural_sort_key(f.name)) for folder in folders]
    counts = [len(files) for files in slices]
    if len(set(counts)) > 1:
        odd = next(i for i, n in enumerate(counts) if n != counts[0])
        raise ValueError(f"energy folder {folders[odd].name} holds {counts[odd]} slice TIFFs but "
                         f"{folders[0].name} holds {counts[0]}: every energy needs the same slices")
    images = [open_tiff_files(files) for files in slices]
    shapes = [tuple(image.shape[1:]) for image in images]
    if len(set(shapes)) > 1:
        odd = next(i for i, s in enumerate(shapes) if s != shapes[0])
        raise ValueError(f"the slices of {folders[odd].name} are {shapes[odd][0]} x {shapes[odd][1]} but those of "
                         f"{folders[0].name} are {shapes[0][0]} x {shapes[0][1]}")
    return RawVolume(da.stack(images), notes=(f"{len(folders)} energy folders of {counts[0]} slices",))


class _H5Volume:
    """Array-like over one 4-D HDF5 dataset; indexing opens the file and reads float32 (picklable)."""

    def __init__(self, path: str, name: str, shape: tuple) -> None:
        self.path, self.name, self.shape, self.dtype, self.ndim = path, name, tuple(shape), np.dtype(np.float32), 4

    def __getitem__(self, key: Any) -> np.ndarray:
        import h5py

        with h5py.File(self.path, "r", locking=False) as f:
            return np.asarray(f[self.name][key], dtype=np.float32)


def _stated_order(ds: Any) -> str | None:
    """The order a dataset's ``@axes`` attribute states (``"energy:z:y:x"`` or a list), or None."""
    value = ds.attrs.get("axes")
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    names = value.replace(",", ":").split(":") if isinstance(value, str) else [
        v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(value)]
    roles = [next((r for r, known in _ROLES.items() if n.strip().lower() in known), "?") for n in names]
    order = "".join(roles)
    return order if sorted(order) == sorted(VOLUME_AXES) else None


def open_volume_hdf5(spec: str | Path, *, axes: str | None = None, planes: bool = False) -> RawVolume:
    """Open a 4-D HDF5 dataset ``FILE.h5:/path`` lazily as (E, Z, Y, X).

    The order is ``axes``, else the dataset's ``@axes`` (e.g. ``"energy:z:y:x"``), else
    (E, Z, Y, X); the energies a 1-D dataset beside it (``energy``, ``energies``,
    ``eng_list``, ``X_eng``; keV converted) holds, if any.

    Examples
    --------
    >>> import h5py, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "v.h5"
    >>> with h5py.File(f, "w") as h:
    ...     h["tomo/volume"] = np.ones((2, 3, 4, 5), np.float32)
    ...     h["tomo/energy"] = [7.11, 7.12, 7.13]
    >>> raw = open_volume_hdf5(f"{f}:/tomo/volume", axes="ZEYX")
    >>> raw.data.shape, raw.energies.tolist()
    ((3, 2, 4, 5), [7110.0, 7120.0, 7130.0])
    """
    import h5py

    from .hdf5 import split_spec
    from .hdf5_layouts import energies_of

    path, inner = split_spec(spec)
    if not path.is_file():
        raise FileNotFoundError(f"HDF5 file not found: {path}")
    with h5py.File(path, "r", locking=False) as f:
        ds = f.get(inner) if inner else None
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 4:
            found = "nothing" if ds is None else f"shape {getattr(ds, 'shape', 'a group')}"
            raise ValueError(f"{path.name}:{inner} is not a 4-D dataset (found {found}); name a volume as "
                             f"{path.name}:/path/to/dataset")
        stated = _stated_order(ds)
        order = parse_volume_axes(axes) if axes else stated or VOLUME_AXES
        notes = [f"{inner} read as ({', '.join(order)})" + (" as its @axes say" if not axes and stated else "")]
        n_e = ds.shape[order.index("E")]
        energies, source = None, None
        for name in _ENERGY_NAMES:
            found = ds.parent.get(name)
            if isinstance(found, h5py.Dataset) and found.ndim == 1 and found.shape[0] == n_e:
                energies, source = energies_of(found, notes), f"{path.name}:{found.name}"
                break
        shape = ds.shape
    stat = path.stat()
    data = _lazy(_H5Volume(str(path), inner, shape), shape, order, planes=planes,
                 token=f"{stat.st_ino}-{stat.st_size}-{stat.st_mtime_ns}-{inner}-{order}")
    return RawVolume(data, energies, source, tuple(notes))


def volume_kind(path: str | Path | None, *, axes: str | None = None) -> str | None:
    """``"tiff"``, ``"folders"`` or ``"hdf5"`` for a volume input, else None; reads headers only.

    A volume is a TIFF whose series 0 has four dimensions, a folder of energy folders
    of slice TIFFs, or an HDF5 dataset ``FILE.h5:/path`` of four dimensions (or any
    input given with four ``axes``). Missing or unreadable inputs are None:
    :func:`~xafsmap.core.io.stack.read_stack` then says what is wrong with them.

    >>> volume_kind("missing.tif"), volume_kind("scan.h5:/x", axes="EYX")
    (None, None)
    """
    from .hdf5 import split_spec
    from .rawstack import HDF5_SUFFIXES

    if path is None or (axes is not None and len(str(axes).strip()) != 4):
        return None
    file, inner = split_spec(str(path))
    try:
        if file.suffix.lower() in HDF5_SUFFIXES:
            return "hdf5" if inner and (axes or _hdf5_ndim(file, inner) == 4) else None
        p = Path(str(path))
        if p.is_dir():
            return "folders" if energy_folders(p) else None
        if p.suffix.lower() in TIFF_SUFFIXES and p.is_file():
            return "tiff" if _tiff_ndim(p) == 4 else None
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return None


def _hdf5_ndim(file: Path, inner: str) -> int | None:
    import h5py

    if not file.is_file() or not h5py.is_hdf5(file):
        return None
    with h5py.File(file, "r", locking=False) as f:
        ds = f.get(inner)
        return getattr(ds, "ndim", None)


def _tiff_ndim(path: Path) -> int | None:
    """Dimensions of a TIFF's series 0 (None if tifffile cannot tell); damage is left for
    :func:`~xafsmap.core.io.tiff.open_tiff` to report, so tifffile's log stays quiet here."""
    import logging
    import struct

    import tifffile

    logger, quiet = logging.getLogger("tifffile"), logging.NullHandler()
    logger.addHandler(quiet)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            # a dimension of 3 before (Y, X) may be taken for planar RGB samples ("S"): still a volume
            return None if series.axes.endswith("S") else len(series.shape)
    except (ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError, EOFError, struct.error):
        return None
    finally:
        logger.removeHandler(quiet)
