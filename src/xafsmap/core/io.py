"""Read imaging-XAFS measurements lazily: stacks ``(E, M, N)`` and their energies in eV.

Supported inputs of :func:`read_stack`: one multi-page TIFF or BigTIFF, a folder or a glob
of one TIFF per energy, and an STXM SDF ``.hdr`` header with its ``.xim`` images. Pixel
data are never read up front: an uncompressed contiguous TIFF is streamed in row bands
that keep the whole energy axis in one chunk (one positioned read per page and band),
any other TIFF one page per chunk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Stack",
    "absorbance_from_transmission",
    "count_invalid",
    "find_energies_file",
    "natural_sort_key",
    "plane_view",
    "read_energies",
    "read_stack",
    "stack_info",
    "write_stack",
]

#: Target size of one row band (E, rows, N) of float32 for streamed per-pixel work.
BAND_BYTES = 96 * 2**20
_TIFF_SUFFIXES = (".tif", ".tiff")
_SIDECARS = ("energies.txt", "energy.txt")
_ENERGY_COLUMN = re.compile(r"^(e|energy|energies)([_ ]?\(?\[?ev\]?\)?)?$")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NUMBER_EV = re.compile(r"(\d+(?:\.\d+)?)\s*[-_]?ev(?![a-z])", re.I)
_SUPPORTED = "a .tif/.tiff file, a folder or glob ('*') of per-energy TIFFs, or an STXM .hdr header"


@dataclass(frozen=True, eq=False)
class Stack:
    """A lazily read stack and where it came from.

    Attributes
    ----------
    data : dask.array.Array, shape (E, M, N), float32
        Absorbance (optical density), not computed.
    energies : ndarray, shape (E,), float64
        Energies in eV, strictly increasing.
    sources : dict of str to str
        Role (``"stack"``, ``"energies"``, ``"flat"``, ``"dark"``, ``"i0"``) to the path
        used; arrays given directly are recorded as ``"<array>"``.
    """

    data: object
    energies: np.ndarray
    sources: dict

    def __repr__(self) -> str:
        e = self.energies
        return (
            f"Stack(shape={tuple(self.data.shape)}, dtype={self.data.dtype}, "
            f"energies={e[0]:g}–{e[-1]:g} eV ({e.size}), stack={self.sources.get('stack')!r})"
        )


def natural_sort_key(name: str) -> list:
    """Sort key that orders numbers by value: ``img_2.tif`` before ``img_10.tif``.

    >>> sorted(["img_10.tif", "img_2.tif", "img_1.5.tif"], key=natural_sort_key)
    ['img_1.5.tif', 'img_2.tif', 'img_10.tif']
    """
    parts = _NUMBER.split(name.lower())
    numbers = _NUMBER.findall(name)
    key: list = [parts[0]]
    for number, text in zip(numbers, parts[1:]):
        key += [float(number), text]
    return key


def _validate_energies(values, *, source: str) -> np.ndarray:
    energies = np.asarray(values, dtype=np.float64)
    if energies.ndim != 1 or energies.size == 0:
        raise ValueError(f"{source}: energies must be a non-empty 1-D list, got shape {energies.shape}")
    bad = np.flatnonzero(~np.isfinite(energies))
    if bad.size:
        raise ValueError(f"{source}: energy {bad[0]} is {energies[bad[0]]}; energies must be finite numbers in eV")
    step = np.diff(energies)
    if np.any(step <= 0):
        i = int(np.flatnonzero(step <= 0)[0])
        a, b = energies[i], energies[i + 1]
        what = f"are both {a:g} eV (duplicate)" if a == b else f"go from {a:g} eV down to {b:g} eV"
        raise ValueError(
            f"{source}: energies {i} and {i + 1} {what}; energies must be strictly increasing: "
            "sort them (with their images) and remove duplicates"
        )
    return energies


def _split_fields(line: str) -> list[str]:
    if re.search(r"[,;\t]", line):
        return [field.strip().strip("\"'") for field in re.split(r"[,;\t]", line)]
    return line.split()


def read_energies(path: str | Path) -> np.ndarray:
    """Read energies (eV) from a text or CSV/TSV file.

    Parameters
    ----------
    path : str or Path
        One value per line, or columns separated by commas, semicolons, tabs or spaces
        with an optional header; the column named ``energy``, ``energies``, ``E`` or
        ``energy_eV`` (any case) is used, else the first column. ``#`` starts a comment.

    Returns
    -------
    energies : ndarray, shape (E,), float64
        Strictly increasing energies in eV.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a value is not a number, not finite, or the energies are not strictly increasing.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "energies.csv"
    >>> _ = f.write_text("# scan 12\\nindex,Energy_eV\\n0,7100.0\\n1,7100.5\\n")
    >>> read_energies(f)
    array([7100. , 7100.5])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"energies file not found: {path}")
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        fields = _split_fields(line.split("#", 1)[0].strip())
        if fields and fields != [""]:
            rows.append((number, fields))
    if not rows:
        raise ValueError(f"{path.name} holds no energies")
    column = 0
    try:
        float(rows[0][1][0])
    except ValueError:
        names = [name.lower() for name in rows[0][1]]
        matches = [i for i, name in enumerate(names) if _ENERGY_COLUMN.match(name)]
        if not matches:
            raise ValueError(
                f"{path.name} has a header {rows[0][1]} but no column named energy, energies, E or energy_eV"
            ) from None
        column, rows = matches[0], rows[1:]
    values = []
    for number, fields in rows:
        try:
            values.append(float(fields[column]))
        except (ValueError, IndexError):
            raise ValueError(f"{path.name} line {number}: {fields!r} has no number in column {column}") from None
    return _validate_energies(values, source=path.name)


def _is_glob(path) -> bool:
    return isinstance(path, str) and any(c in path for c in "*?[")


def find_energies_file(stack_path: str | Path) -> Path | None:
    """Find the energies sidecar of a stack.

    Looks for ``<stem>.energies.txt``, then ``energies.txt``, then ``energy.txt`` beside a
    stack file, or inside a folder (``<folder name>.energies.txt`` first), or in the folder
    of a glob pattern.

    Returns
    -------
    path : Path or None
        The first file found, or None.

    >>> find_energies_file("/nonexistent/sample.tif") is None
    True
    """
    if _is_glob(stack_path):
        folder, names = Path(stack_path).parent, list(_SIDECARS)
    else:
        path = Path(stack_path)
        if path.is_dir():
            folder, names = path, [f"{path.name}.energies.txt", *_SIDECARS]
        else:
            folder, names = path.parent, [f"{path.stem}.energies.txt", *_SIDECARS]
    return next((folder / name for name in names if (folder / name).is_file()), None)


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
    except (ValueError, struct.error, EOFError, IndexError, KeyError) as error:
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
        if len(key) == 3 and all(isinstance(k, slice) and k.step in (None, 1) for k in key):
            return self._read_band(*(k.indices(n)[:2] for k, n in zip(key, self.shape)))
        image = np.memmap(self.path, self.file_dtype, "r", self.offset, self.shape)
        return np.array(image[key], dtype=np.float32)

    def _read_band(self, energies, rows, cols) -> np.ndarray:
        (e0, e1), (r0, r1), (c0, c1) = energies, rows, cols
        _, m, n = self.shape
        out = np.empty((max(e1 - e0, 0), max(r1 - r0, 0), n), dtype=self.file_dtype)
        size = self.file_dtype.itemsize
        with open(self.path, "rb", buffering=0) as file:
            for i, e in enumerate(range(e0, e1)):  # one positioned read per page, not per pixel
                start, view = self.offset + (e * m + r0) * n * size, memoryview(out[i]).cast("B")
                if hasattr(os, "preadv"):
                    got = os.preadv(file.fileno(), [view], start)
                else:
                    file.seek(start)
                    got = file.readinto(view)
                if got != out[i].nbytes:
                    raise ValueError(f"cannot read {self.path}: page {e} is truncated")
        return out[:, :, c0:c1].astype(np.float32, copy=False)


def _read_page(path: str, index: int) -> np.ndarray:
    import tifffile

    return tifffile.imread(path, key=index).astype(np.float32)


def _read_image(path: str, shape: tuple) -> np.ndarray:
    import tifffile

    return tifffile.imread(path).reshape(shape).astype(np.float32)


def _read_series(path: str) -> np.ndarray:
    import tifffile

    return tifffile.imread(path, series=0).astype(np.float32)


def _open_tiff(path: Path, *, role: str = "stack", planes: bool = False):
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
    stack_shape = shape if len(shape) == 3 else (1, *shape)
    if len(stack_shape) != 3 or dtype.kind not in "fiub":
        raise ValueError(f"{path.name} holds {dtype} images of shape {shape}; expected a stack (E, M, N) of numbers")
    if offset is not None and offset + math.prod(shape) * dtype.itemsize > size or any(end > size for end in ends):
        raise ValueError(
            f"cannot read {path}: it is not a TIFF file or it is truncated "
            f"(image data end past the file's {size} bytes)"
        )
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


def plane_view(stack: Stack):
    """The stack's data chunked one energy image per chunk, for display.

    napari reads whole chunks (it turns dask's slice fusion off), so a viewer given
    the band-chunked :attr:`Stack.data` would read every energy to draw one image.
    This view reads one page per image shown. Per-pixel work should keep using
    :attr:`Stack.data` (bands with every energy). Stacks that are not a single raw
    TIFF (flat-field corrected, STXM, per-energy files) are returned as they are:
    their chunks are already one energy each, or derived from such.

    Parameters
    ----------
    stack : Stack

    Returns
    -------
    dask.array.Array, shape (E, M, N), float32
    """
    path = stack.sources.get("stack")
    if set(stack.sources) - {"stack", "energies"} or not path or Path(path).suffix.lower() not in _TIFF_SUFFIXES:
        return stack.data
    if not Path(path).is_file():
        return stack.data
    data, _ = _open_tiff(Path(path), planes=True)
    return data if tuple(data.shape) == tuple(stack.data.shape) else stack.data


def _metadata_energies(description: str | None):
    try:
        values = json.loads(description or "").get("energies")
    except (ValueError, AttributeError):
        return None
    return None if values is None else np.asarray(values, dtype=np.float64)


def _tiff_files(path) -> list[Path]:
    import glob

    if _is_glob(path):
        files = [Path(f) for f in glob.glob(path) if f.lower().endswith(_TIFF_SUFFIXES)]
        where = f"glob {path}"
    else:
        files = [f for f in Path(path).iterdir() if f.suffix.lower() in _TIFF_SUFFIXES and f.is_file()]
        where = f"folder {path}"
    if not files:
        raise FileNotFoundError(f"no .tif/.tiff files match {where}")
    return sorted(files, key=lambda f: natural_sort_key(f.name))


def _open_tiff_files(files: list[Path]):
    """Stack one 2-D TIFF per energy lazily, checking every shape from the headers."""
    import dask
    import dask.array as da
    import tifffile

    shapes = []
    for file in files:
        with _tiff_errors(file), tifffile.TiffFile(file) as tif:
            shape = tuple(tif.series[0].shape)
        while len(shape) > 2 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 2:
            raise ValueError(f"{file.name} holds shape {shape}; a folder of TIFFs must hold one 2-D image per energy")
        if shapes and shape != shapes[0]:
            raise ValueError(f"{file.name} has shape {shape} but {files[0].name} has shape {shapes[0]}")
        shapes.append(shape)
    read = dask.delayed(_read_image, pure=True)
    return da.stack([da.from_delayed(read(str(f), shapes[0]), shapes[0], np.float32) for f in files])


def _energies_from_names(files: list[Path], *, where: str) -> np.ndarray:
    values, texts = [], []
    for file in files:
        tagged = _NUMBER_EV.findall(file.stem)
        numbers = tagged or _NUMBER.findall(file.stem)
        if not numbers:
            raise ValueError(f"{file.name} has no number in its name, so {where} needs energies: give energies=...")
        texts.append(numbers[-1])
        values.append(float(numbers[-1]))
    first = values[0]
    if all("." not in t for t in texts) and first in (0, 1) and values == list(np.arange(first, first + len(values))):
        raise ValueError(
            f"the files of {where} ({files[0].name} … {files[-1].name}) carry an index, not energies: "
            "give energies=... or put energies.txt beside them"
        )
    return _validate_energies(values, source=f"energies in the file names of {where}")


def _as_array(value, *, role: str, sources: dict):
    if isinstance(value, (str, Path)):
        sources[role] = str(value)
        data, _ = _open_tiff(Path(value), role=role)
        return data
    sources[role] = "<array>"
    return value


def _read_i0(value, energies: np.ndarray, *, sources: dict) -> np.ndarray:
    """Incident intensity on the stack's energies, from a two-column file or an array."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"i0 file not found: {path}")
        sources["i0"], name = str(path), path.name
        table = np.loadtxt(path, comments="#", ndmin=2, dtype=np.float64)
    else:
        sources["i0"], name = "<array>", "i0"
        table = np.asarray(value, dtype=np.float64)
        if table.ndim == 1:
            if table.size != energies.size:
                raise ValueError(f"i0 has {table.size} values but the stack has {energies.size} energies")
            return table
    if table.ndim != 2 or table.shape[1] < 2:
        raise ValueError(f"{name} must have two columns (energy in eV, counts), got shape {table.shape}")
    grid, counts = table[:, 0], table[:, 1]
    if grid.size == energies.size and np.allclose(grid, energies, rtol=0, atol=1e-3):
        return counts
    order = np.argsort(grid)
    if energies[0] < grid.min() - 1e-6 or energies[-1] > grid.max() + 1e-6:
        raise ValueError(
            f"{name} covers {grid.min():g}–{grid.max():g} eV but the stack spans {energies[0]:g}–{energies[-1]:g} eV"
        )
    return np.interp(energies, grid[order], counts[order])


def _stack_kind(path) -> str:
    if _is_glob(path):
        return "files"
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"stack not found: {p}")
    if p.is_dir():
        return "files"
    if p.suffix.lower() in _TIFF_SUFFIXES:
        return "tiff"
    if p.suffix.lower() == ".hdr":
        return "stxm"
    raise ValueError(f"cannot read {p.name}: supported inputs are {_SUPPORTED}")


def read_stack(path: str | Path, *, energies=None, flat=None, dark=None, i0=None) -> Stack:
    """Open an imaging-XAFS stack lazily as absorbance with its energies.

    Parameters
    ----------
    path : str or Path
        A ``.tif``/``.tiff`` file (multi-page, BigTIFF, float or integer), a folder or a
        glob (``"scan/*.tif"``) of one TIFF per energy (natural sort of names), or an
        STXM ``.hdr`` header with ``<stem>_a*.xim`` images.
    energies : str, Path or array-like of float, optional
        Energies in eV, or a file of them (see :func:`read_energies`). None looks for a
        sidecar (:func:`find_energies_file`), then the TIFF's metadata or STXM header,
        then numbers in per-energy file names (``fe_7112.5eV.tif``).
    flat : str, Path or array, optional
        Flat-field (I0) images: (E, M, N) or one (M, N) image for all energies. With it
        ``path`` holds transmitted counts and the result is ``-ln((I-D)/(F-D))``.
    dark : str, Path or array, optional
        Dark images (M, N) or (E, M, N), subtracted from counts and flat.
    i0 : str, Path or array, optional
        Incident-beam spectrum, a two-column file (energy eV, counts; e.g. ``i0.xsp``)
        interpolated onto the stack's energies, or (E,) counts; result ``-ln(I/I0(E))``.

    Returns
    -------
    Stack
        ``data`` (E, M, N) float32 dask array of absorbance (not computed; NaN where it
        is undefined), ``energies`` (E,) float64 eV, ``sources``.

    Raises
    ------
    FileNotFoundError
        If the stack or a named file is missing.
    ValueError
        For an unsupported input, a corrupt or truncated TIFF, energies that are missing,
        not finite, not strictly increasing or not one per image, mismatched shapes, or
        an STXM stack without ``i0``/``flat``.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> f = write_stack(pathlib.Path(tempfile.mkdtemp()) / "s.tif",
    ...                 np.ones((3, 4, 5), np.float32), [7100.0, 7110.0, 7120.0])
    >>> read_stack(f).data.shape
    (3, 4, 5)
    """
    from xafsmap.core import stxm

    kind, sources, embedded, files = _stack_kind(path), {"stack": str(path)}, None, None
    if kind == "stxm":
        data, embedded = stxm.read_sdf_counts(path)
        if i0 is None and flat is None:
            raise ValueError(
                f"STXM stack {Path(path).name} holds transmitted counts: give the incident-beam "
                "spectrum with i0=... (e.g. i0.xsp)"
            )
    elif kind == "tiff":
        data, embedded = _open_tiff(Path(path))
    else:
        files = _tiff_files(path)
        data = _open_tiff_files(files)
    stack_name = Path(path).name
    if energies is not None:
        if isinstance(energies, (str, Path)):
            values, sources["energies"], source = read_energies(energies), str(energies), Path(energies).name
        else:
            values, sources["energies"], source = _validate_energies(energies, source="energies"), "<array>", "energies"
    elif (found := find_energies_file(path)) is not None:
        values, sources["energies"], source = read_energies(found), str(found), found.name
    elif embedded is not None:
        values, sources["energies"], source = _validate_energies(embedded, source=stack_name), str(path), "its metadata"
    elif files is not None:
        values = _energies_from_names(files, where=stack_name)
        sources["energies"], source = str(path), "its file names"
    else:
        raise ValueError(
            f"no energies for {stack_name}: give energies=..., or put {Path(path).stem}.energies.txt "
            "or energies.txt beside it"
        )
    if values.size != data.shape[0]:
        raise ValueError(f"stack {stack_name} has {data.shape[0]} energies but {source} lists {values.size}")
    if flat is not None and i0 is not None:
        raise ValueError("give flat= (flat-field images) or i0= (incident-beam spectrum), not both")
    if dark is not None and flat is None and i0 is None:
        raise ValueError("dark= needs flat= or i0=: without them the stack is taken as absorbance already")
    if flat is not None or i0 is not None:
        reference = (
            _as_array(flat, role="flat", sources=sources)
            if flat is not None
            else _read_i0(i0, values, sources=sources)[:, None, None]
        )
        dark = None if dark is None else _as_array(dark, role="dark", sources=sources)
        data = absorbance_from_transmission(data, reference, dark=dark)
    return Stack(data=data, energies=values, sources=sources)


def _absorbance_block(counts, flat, dark=None):
    counts, flat = counts.astype(np.float32, copy=False), flat.astype(np.float32, copy=False)
    if dark is not None:
        dark = dark.astype(np.float32, copy=False)
        counts, flat = counts - dark, flat - dark
    with np.errstate(divide="ignore", invalid="ignore"):
        od = -np.log(counts / flat)
    return np.where((counts > 0) & (flat > 0), od, np.float32(np.nan)).astype(np.float32, copy=False)


def absorbance_from_transmission(counts, flat, *, dark=None):
    """Absorbance (optical density) ``-ln((I - D) / (F - D))`` from transmitted counts, lazily.

    Parameters
    ----------
    counts : array or dask array, shape (E, M, N)
        Transmitted counts I, any numeric dtype.
    flat : array or dask array, shape (E, M, N), (M, N) or broadcastable such as (E, 1, 1)
        Flat-field (incident) counts F; a 2-D image serves every energy.
    dark : array or dask array, shape (M, N) or (E, M, N), optional
        Dark counts D, subtracted from I and F.

    Returns
    -------
    od : dask.array.Array, shape (E, M, N), float32
        NaN where ``I - D <= 0`` or ``F - D <= 0`` (undefined; never clipped).

    Raises
    ------
    ValueError
        If ``flat`` or ``dark`` does not broadcast to the shape of ``counts``.

    Notes
    -----
    Larch's ``mu = ln(i0 / itrans)`` for each pixel; computed in float32.

    Examples
    --------
    >>> import numpy as np
    >>> od = absorbance_from_transmission(np.full((2, 1, 2), 50.0), np.full((1, 2), 100.0))
    >>> np.round(od.compute().ravel(), 4)
    array([0.6931, 0.6931, 0.6931, 0.6931], dtype=float32)
    """
    import dask.array as da

    arrays = [da.asarray(counts)]
    for role, value in (("flat", flat), ("dark", dark)):
        if value is None:
            continue
        array = da.asarray(value)
        try:
            fits = np.broadcast_shapes(array.shape, arrays[0].shape) == arrays[0].shape
        except ValueError:
            fits = False
        if not fits or array.ndim < 2:
            raise ValueError(
                f"{role} has shape {array.shape} but the stack has shape {arrays[0].shape}; {role} must be "
                "one image (M, N) or one image per energy (E, M, N)"
            )
        # explicit chunks matching the stack's: broadcast dimensions stay one block of size 1
        array = array.reshape((1,) * (arrays[0].ndim - array.ndim) + array.shape)
        arrays.append(array.rechunk([c if s > 1 else (1,) for s, c in zip(array.shape, arrays[0].chunks)]))
    return da.map_blocks(_absorbance_block, *arrays, dtype=np.float32, meta=np.empty((0,) * arrays[0].ndim, np.float32))


def count_invalid(data) -> int:
    """Count the NaN (undefined absorbance) values of a numpy or dask array; computes.

    >>> count_invalid(np.array([0.1, np.nan, 2.0]))
    1
    """
    import dask.array as da

    return int(da.isnan(da.asarray(data)).sum().compute())


def _atomic_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_stack(path: str | Path, data, energies, *, bigtiff: bool | None = None) -> Path:
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
    values = _validate_energies(energies, source="write_stack energies")
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
    temporary, sidecar = _atomic_path(path), path.with_name(f"{path.stem}.energies.txt")
    try:
        tifffile.imwrite(temporary, pages(), shape=(e, m, n), dtype=np.float32, photometric="minisblack",
                         metadata={"energies": values.tolist()}, **options)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    temporary = _atomic_path(sidecar)
    temporary.write_text("".join(f"{value!r}\n" for value in values.tolist()))
    os.replace(temporary, sidecar)
    return path


def stack_info(stack: Stack) -> dict:
    """Summarize a stack without computing it.

    Returns
    -------
    info : dict
        ``shape``, ``dtype``, ``n_energies``, ``energy_min_ev``, ``energy_max_ev``,
        ``size_bytes`` (of the lazy array), ``chunksize``, ``n_chunks``,
        ``energy_in_one_chunk``, ``mapping_memory_bytes`` (rough peak when a mapping
        pipeline streams row bands of :data:`BAND_BYTES`: eight band buffers plus sixteen
        float32 maps (M, N)), and ``sources``.

    >>> import numpy as np, dask.array as da
    >>> s = Stack(da.zeros((3, 4, 5), dtype=np.float32), np.array([1.0, 2.0, 3.0]), {})
    >>> stack_info(s)["size_bytes"]
    240
    """
    data = stack.data
    e, m, n = data.shape
    band = min(int(data.nbytes), BAND_BYTES)
    return {
        "shape": tuple(data.shape),
        "dtype": str(data.dtype),
        "n_energies": int(stack.energies.size),
        "energy_min_ev": float(stack.energies[0]),
        "energy_max_ev": float(stack.energies[-1]),
        "size_bytes": int(data.nbytes),
        "chunksize": tuple(data.chunksize),
        "n_chunks": int(data.npartitions),
        "energy_in_one_chunk": len(data.chunks[0]) == 1,
        "mapping_memory_bytes": int(8 * band + 16 * m * n * 4),
        "sources": dict(stack.sources),
    }
