"""TIFF access behind :mod:`xafsmap.core.io.stack`: lazy multi-page and per-energy files, writing.

An uncompressed contiguous series is read with one positioned read per page and band of
rows (row bands keep the whole energy axis in one chunk); anything else one page per
chunk. Truncated or corrupt files are caught when they are opened.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .._files import atomic_file

from .energies import is_glob, validate_energies, natural_sort_key

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["write_stack"]

#: Target size of one row band (E, rows, N) of float32 for streamed per-pixel work: the
#: row chunks of a stack read from a TIFF, and the bands the mapping pipeline processes.
#: Equal, so a band computed through a derived graph (drift, calibration, binning)
#: computes no reader chunk more than about twice.
BAND_BYTES = 16 * 2**20
TIFF_SUFFIXES = (".tif", ".tiff")
#: TIFF compression codes whose expansion is bounded: LZW, Deflate (two codes), PackBits.
_BOUNDED_CODECS = (5, 8, 32946, 32773)
#: What a codec or a damaged page raises while decoding.
_DECODE_ERRORS = (ValueError, RuntimeError, zlib.error, struct.error, EOFError, IndexError, KeyError, OSError)


class _TiffLogCatcher(logging.Handler):
    """Collect tifffile's error log records, which is how it reports broken page chains."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tiff_errors(path: Path):
    """Turn tifffile's exceptions and logged corruption into one clear ValueError."""
    catcher, logger = _TiffLogCatcher(), logging.getLogger("tifffile")
    logger.addHandler(catcher)
    try:
        yield
    except ZeroDivisionError:  # tifffile divides by the pixels of an image
        raise ValueError(f"cannot read {path}: its header gives an image no pixels (a width or height of 0); "
                         "the file is damaged") from None
    except (ValueError, struct.error, EOFError, IndexError, KeyError, OverflowError) as error:
        raise ValueError(f"cannot read {path}: it is not a TIFF file or it is truncated ({error})") from None
    finally:
        logger.removeHandler(catcher)
    if catcher.messages:
        raise ValueError(f"cannot read {path}: it is not a TIFF file or it is truncated ({catcher.messages[0]})")


class _ContiguousTiff:
    """Array-like over an uncompressed, contiguous (E, M, N) TIFF series; indexing reads float32."""

    def __init__(self, path: str, offset: int, shape: tuple, dtype: np.dtype):
        self.path, self.offset, self.shape, self.file_dtype = path, offset, shape, dtype
        self.dtype, self.ndim = np.dtype(np.float32), len(shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if len(key) == 3 and all(isinstance(k, slice) for k in key) and key[0].step in (None, 1):
            (e0, e1, _), rows, (c0, c1, c_step) = (k.indices(n) for k, n in zip(key, self.shape))
            return self._read_rows((e0, e1), rows)[:, :, c0:c1:c_step].astype(np.float32, copy=False)
        image = np.memmap(self.path, self.file_dtype, "r", self.offset, self.shape)
        return np.array(image[key], dtype=np.float32)

    def _read_rows(self, energies, rows) -> np.ndarray:
        """Whole rows ``range(*rows)`` of pages ``range(*energies)``: one positioned read
        per page for a run of rows, one per row when they are strided (a memory map
        would read ahead around every strided row, i.e. most of the file)."""
        (e0, e1), (r0, r1, step) = energies, rows
        _, m, n = self.shape
        picked = range(r0, r1, step)
        out = np.empty((max(e1 - e0, 0), len(picked), n), dtype=self.file_dtype)
        size = self.file_dtype.itemsize
        runs = [(r0, out.shape[1])] if step == 1 else [(r, 1) for r in picked]
        if out.size == 0:
            return out
        with open(self.path, "rb", buffering=0) as file:
            for i, e in enumerate(range(e0, e1)):
                for j, (row, count) in enumerate(runs):
                    start = self.offset + (e * m + row) * n * size
                    view = memoryview(out[i, j : j + count]).cast("B")
                    if hasattr(os, "preadv"):
                        got = os.preadv(file.fileno(), [view], start)
                    else:
                        file.seek(start)
                        got = file.readinto(view)
                    if got != view.nbytes:
                        raise ValueError(f"cannot read {self.path}: page {e} is truncated")
        return out


def _read_page(path: str, index: int) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path, key=index).astype(np.float32)
    except _DECODE_ERRORS as error:
        raise ValueError(f"cannot read {path}: page {index} is damaged or truncated ({error})") from None


def _read_image(path: str, shape: tuple) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path).reshape(shape).astype(np.float32)
    except _DECODE_ERRORS as error:
        raise ValueError(f"cannot read {path}: its image is damaged or truncated ({error})") from None


def _read_series(path: str) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path, series=0).astype(np.float32)
    except _DECODE_ERRORS as error:
        raise ValueError(f"cannot read {path}: its images are damaged or truncated ({error})") from None


def open_tiff(path: Path, *, role: str = "stack", planes: bool = False) -> tuple[da.Array, np.ndarray | None]:
    """Return a lazy float32 array over series 0 of one TIFF and the energies in its metadata."""
    import dask
    import dask.array as da
    import tifffile
    from dask.base import tokenize

    if not path.is_file():
        raise FileNotFoundError(f"{role} file not found: {path}")
    size = path.stat().st_size
    with _tiff_errors(path), tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, dtype = tuple(series.shape), np.dtype(tif.byteorder + series.dtype.char)
        len(tif.pages)  # walk the page chain: a broken one is logged and caught above
        offset, pages = series.dataoffset, list(series.pages)
        ends = [max((o + c for o, c in zip(p.dataoffsets, p.databytecounts)), default=0) for p in pages if p]
        description = tif.pages[0].description
        compression = int(getattr(pages[0], "compression", 1) or 1) if pages and pages[0] else 1
        shapes = [tuple(p.shape) for p in tif.pages if not getattr(p, "is_reduced", False)]
    if role == "stack" and len(pages) < len(shapes):
        _check_page_shapes(path, shapes)
    stack_shape = shape if len(shape) == 3 else (1, *shape)
    if len(stack_shape) != 3 or dtype.kind not in "fiu":
        what = "true/false" if dtype.kind == "b" else str(dtype)
        raise ValueError(f"{path.name} holds {what} images of shape {shape}; expected a stack (E, M, N) of "
                         "absorbance or counts")
    if 0 in stack_shape:
        raise ValueError(f"{path.name} holds images of shape {shape}; a stack needs at least one energy, row and "
                         "column (the file's header is damaged)")
    if offset is not None and offset + math.prod(shape) * dtype.itemsize > size or any(end > size for end in ends):
        raise ValueError(
            f"cannot read {path}: it is not a TIFF file or it is truncated "
            f"(image data end past the file's {size} bytes)"
        )
    if offset is None:
        _check_claim(path, stack_shape, dtype, size, compression)
    name = f"tiff-{tokenize(str(path.resolve()), size, path.stat().st_mtime_ns)}"
    e, m, n = stack_shape
    if offset is not None:
        band = int(min(m, max(1, BAND_BYTES // (e * n * 4))))
        source = _ContiguousTiff(str(path), offset, stack_shape, dtype)
        chunks = (1, m, n) if planes else (e, band, n)
        data = da.from_array(source, chunks=chunks, name=f"{name}-{chunks[0]}", lock=False,
                             meta=np.empty((0, 0, 0), np.float32))
    elif len(pages) == e and len(shape) == 3:
        read = dask.delayed(_read_page, pure=True)
        data = da.stack([da.from_delayed(read(str(path), p.index), (m, n), np.float32) for p in pages])
    else:
        data = da.from_delayed(dask.delayed(_read_series, pure=True)(str(path)), stack_shape, np.float32)
    if len(shape) == 2 and role != "stack":
        data = data[0]
    return data, _metadata_energies(description)


def _check_page_shapes(path: Path, shapes: list) -> None:
    """Refuse full-resolution pages of different shapes (series 0 would hold only the first)."""
    other = next((i for i, shape in enumerate(shapes) if shape != shapes[0]), None)
    if other is not None:
        raise ValueError(f"{path.name} has pages of different shapes: page 0 is {' x '.join(map(str, shapes[0]))} "
                         f"but page {other} is {' x '.join(map(str, shapes[other]))}; every energy image must have "
                         "the same shape")


def _check_claim(path: Path, shape: tuple, dtype: np.dtype, size: int, compression: int) -> None:
    """Refuse a compressed (or scattered) TIFF whose header claims more than memory or the data can hold.

    Each such page is read whole, so one must fit in memory; and Deflate, LZW and
    PackBits cannot expand data more than about :data:`~xafsmap.core.io.bounds.MAX_COMPRESSION`
    times, so a larger claim is a damaged or forged header.
    """
    from ..settings.limits import MEMORY_SHARE, machine_memory
    from .bounds import MAX_COMPRESSION

    e, m, n = shape
    page, total = m * n * dtype.itemsize, e * m * n * dtype.itemsize
    dims = f"{e} x {m} x {n} {dtype.name}"
    if page > MEMORY_SHARE * machine_memory():
        raise ValueError(f"{path.name} claims images of {m} x {n} {dtype.name} ({page / 2**30:.1f} GiB each once "
                         f"decompressed), more than this machine's memory allows for one image")
    if compression in _BOUNDED_CODECS and total > MAX_COMPRESSION * size:
        raise ValueError(f"{path.name} claims {dims} images ({total / 2**30:.1f} GiB) in {size} bytes of "
                         f"compressed data, more than compression can give: its header is damaged")


def _metadata_energies(description: str | None):
    try:
        values = json.loads(description or "").get("energies")
    except (ValueError, AttributeError):
        return None
    return None if values is None else np.asarray(values, dtype=np.float64)


def tiff_files(path: str | os.PathLike) -> list[Path]:
    import glob

    if is_glob(path):
        files = [Path(f) for f in glob.glob(path) if f.lower().endswith(TIFF_SUFFIXES)]
        where = f"glob {path}"
    else:
        files = [f for f in Path(path).iterdir() if f.suffix.lower() in TIFF_SUFFIXES and f.is_file()]
        where = f"folder {path}"
    if not files:
        raise FileNotFoundError(f"no .tif/.tiff files match {where}")
    return sorted(files, key=lambda f: natural_sort_key(f.name))


def open_tiff_files(files: list[Path]) -> da.Array:
    """Stack one 2-D TIFF per energy lazily, checking every shape from the headers."""
    import dask
    import dask.array as da
    import tifffile

    shapes = []
    for file in files:
        with _tiff_errors(file), tifffile.TiffFile(file) as tif:
            series = tif.series[0]
            shape, dtype, page = tuple(series.shape), np.dtype(tif.byteorder + series.dtype.char), series.pages[0]
            end = max((o + c for o, c in zip(page.dataoffsets, page.databytecounts)), default=0) if page else 0
            compression = int(getattr(page, "compression", 1) or 1)
        size = file.stat().st_size
        if end > size:
            raise ValueError(f"cannot read {file}: it is truncated (image data end past the file's {size} bytes)")
        if 0 in shape or dtype.kind not in "fiu":
            raise ValueError(f"{file.name} holds a {dtype} image of shape {shape}; expected absorbance or counts")
        _check_claim(file, (1, *shape[-2:]), dtype, size, compression)
        while len(shape) > 2 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 2:
            raise ValueError(f"{file.name} holds shape {shape}; a folder of TIFFs must hold one 2-D image per energy")
        if shapes and shape != shapes[0]:
            raise ValueError(f"{file.name} has shape {shape} but {files[0].name} has shape {shapes[0]}")
        shapes.append(shape)
    read = dask.delayed(_read_image, pure=True)
    return da.stack([da.from_delayed(read(str(f), shapes[0]), shapes[0], np.float32) for f in files])


def write_stack(path: str | Path, data: ArrayLike, energies: ArrayLike, *, bigtiff: bool | None = None) -> Path:
    """Write a stack as a multi-page float32 TIFF with a ``<stem>.energies.txt`` sidecar.

    Parameters
    ----------
    path : str or Path
        Output ``.tif``; written under a temporary name, then renamed into place.
    data : array or dask array, shape (E, M, N)
        Stack; converted to float32 one group of pages at a time (dask is computed
        in pieces, never whole).
    energies : array-like, shape (E,)
        Energies in eV, strictly increasing; also stored in the TIFF's ImageDescription
        as JSON ``{"shape": [...], "energies": [...]}``.
    bigtiff : bool, optional
        Force (True) or forbid (False) BigTIFF; None: BigTIFF when the data approach 4 GB.

    Returns
    -------
    path : Path
        The TIFF written.

    Raises
    ------
    ValueError
        If ``data`` is not 3-D or the energies are invalid or not one per image.
    """
    import tifffile

    path = Path(path)
    if len(data.shape) != 3:
        raise ValueError(f"a stack must be (E, M, N), got shape {tuple(data.shape)}")
    values = validate_energies(energies, source="write_stack energies")
    e, m, n = data.shape
    if values.size != e:
        raise ValueError(f"stack has {e} energies but {values.size} energies were given")
    group = max(1, BAND_BYTES // max(1, m * n * 4))

    def pages():
        for start in range(0, e, group):
            block = np.asarray(data[start : start + group], dtype=np.float32)
            yield from block

    if bigtiff is None:  # tifffile cannot size a page generator: decide here, with room for headers
        bigtiff = e * m * n * 4 > 2**32 - 2**26
    options = {"bigtiff": bigtiff}
    with atomic_file(path) as tmp:
        tifffile.imwrite(tmp, pages(), shape=(e, m, n), dtype=np.float32, photometric="minisblack",
                         metadata={"energies": values.tolist()}, **options)
    with atomic_file(path.with_name(f"{path.stem}.energies.txt")) as tmp:
        tmp.write_text("".join(f"{value!r}\n" for value in values.tolist()))
    return path


