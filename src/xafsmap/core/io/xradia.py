"""Zeiss/Xradia transmission X-ray microscope files: ``.txrm`` stacks and ``.xrm`` images.

Both are OLE2 compound files (read with olefile, the maintained pure-Python reader
that dxchange and txrm2tiff also use). The streams used, all little-endian:

* ``ImageInfo/ImageWidth``, ``ImageInfo/ImageHeight``: uint32 columns and rows;
* ``ImageInfo/ImagesTaken`` (else ``ImageInfo/NoOfImages``): uint32 image count;
* ``ImageInfo/DataType``: uint32, 5 = uint16, 10 = float32 pixels;
* ``ImageData<k>/Image<i>``: image ``i`` (1-based), in storages of 100
  (``k = ceil(i / 100)``), rows as stored;
* ``ImageInfo/Energy``: float32 per image, eV; when it is absent or zero (some
  beamlines), the ``Energy`` motor of ``PositionInfo/MotorPositions`` (float32,
  ``PositionInfo/TotalAxis`` values per image, named by the NUL-separated
  ``PositionInfo/AxisNames``);
* ``ReferenceData/Image`` (pixel type ``ReferenceData/DataType``, else the images'):
  the reference (flat) image the microscope software recorded, used for every energy.

A glob or folder of ``.xrm`` files is a stack of one image per energy, in the order of
their energies.
"""

from __future__ import annotations

import glob
import math
import os
from pathlib import Path

import numpy as np

from .rawstack import RawStack, apply_reference

__all__ = ["read_xradia", "xradia_images"]

DATA_TYPES = {5: np.dtype("<u2"), 10: np.dtype("<f4")}


def _stream(ole, name: str, dtype, *, where: str, count: int | None = None) -> np.ndarray:
    if not ole.exists(name):
        raise ValueError(f"{where} has no {name} stream: it is not a complete Xradia file")
    values = np.frombuffer(ole.openstream(name).read(), dtype=dtype)
    if count is not None and values.size < count:
        raise ValueError(f"{where}: {name} holds {values.size} values but {count} are needed")
    return values if count is None else values[:count]


def _pixel_type(ole, name: str, where: str) -> np.dtype:
    code = int(_stream(ole, name, "<u4", where=where, count=1)[0])
    if code not in DATA_TYPES:
        raise ValueError(f"{where}: {name} is {code}; only 5 (uint16) and 10 (float32) pixels are read")
    return DATA_TYPES[code]


def _energies(ole, n: int, where: str) -> tuple[np.ndarray | None, str | None]:
    """Energies (eV) of the n images and their stream: ImageInfo/Energy, else the Energy motor."""
    if ole.exists("ImageInfo/Energy"):
        values = np.frombuffer(ole.openstream("ImageInfo/Energy").read(), "<f4")[:n].astype(np.float64)
        if values.size == n and np.all(values > 0):
            return values, "ImageInfo/Energy"
    needed = ("PositionInfo/TotalAxis", "PositionInfo/AxisNames", "PositionInfo/MotorPositions")
    if not all(ole.exists(name) for name in needed):
        return None, None
    total = int(_stream(ole, needed[0], "<u4", where=where, count=1)[0])
    names = [part for part in ole.openstream(needed[1]).read().decode("latin-1").split("\x00") if part]
    motors = _stream(ole, needed[2], "<f4", where=where, count=total * n).reshape(n, total)
    lower = [name.strip().lower() for name in names[:total]]
    if "energy" not in lower:
        return None, None
    return motors[:, lower.index("energy")].astype(np.float64), "PositionInfo/MotorPositions (Energy)"


def _read_image(path: str, name: str, shape: tuple, dtype) -> np.ndarray:
    import olefile

    with olefile.OleFileIO(path) as ole:
        raw = np.frombuffer(ole.openstream(name).read(), dtype=dtype)
    if raw.size < shape[0] * shape[1]:
        raise ValueError(f"cannot read {Path(path).name}: {name} holds {raw.size} pixels, expected "
                         f"{shape[0]} x {shape[1]}")
    return raw[: shape[0] * shape[1]].reshape(shape).astype(np.float32)


def _open(path: Path):
    import olefile

    if not path.is_file():
        raise FileNotFoundError(f"Xradia file not found: {path}")
    if not olefile.isOleFile(str(path)):
        raise ValueError(f"cannot read {path}: it is not an OLE2 (Xradia .txrm/.xrm) file")
    return olefile.OleFileIO(str(path))


def xradia_images(path: str | os.PathLike) -> dict:
    """The layout of one ``.txrm``/``.xrm`` file, without reading its pixels.

    Returns
    -------
    dict
        ``shape`` (rows, columns), ``dtype``, ``streams`` (image stream names in
        order), ``energies`` ((n,) eV or None) and the stream they came from
        (``energies_stream``), ``reference`` (stream name or None) and ``reference_dtype``.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, not an OLE2 file, or missing/inconsistent streams (named).
    """
    path = Path(path)
    with _open(path) as ole:
        where = path.name
        shape = (int(_stream(ole, "ImageInfo/ImageHeight", "<u4", where=where, count=1)[0]),
                 int(_stream(ole, "ImageInfo/ImageWidth", "<u4", where=where, count=1)[0]))
        count_name = "ImageInfo/ImagesTaken" if ole.exists("ImageInfo/ImagesTaken") else "ImageInfo/NoOfImages"
        n = int(_stream(ole, count_name, "<u4", where=where, count=1)[0])
        streams = [f"ImageData{math.ceil(i / 100)}/Image{i}" for i in range(1, n + 1)]
        missing = [name for name in streams if not ole.exists(name)]
        if n == 0 or missing:
            raise ValueError(f"{where}: {count_name} says {n} images but "
                             + (f"{missing[0]} is missing" if missing else "there are none"))
        dtype = _pixel_type(ole, "ImageInfo/DataType", where)
        reference, ref_dtype = None, dtype
        if ole.exists("ReferenceData/Image"):
            reference = "ReferenceData/Image"
            if ole.exists("ReferenceData/DataType"):
                ref_dtype = _pixel_type(ole, "ReferenceData/DataType", where)
        energies, source = _energies(ole, n, where)
        return {"shape": shape, "dtype": dtype, "streams": streams, "energies": energies,
                "energies_stream": source, "reference": reference, "reference_dtype": ref_dtype}


def _files(path) -> list[Path]:
    text = str(path)
    if "*" in text:
        files = [Path(p) for p in glob.glob(text) if p.lower().endswith(".xrm")]
    elif Path(text).is_dir():
        files = [p for p in Path(text).iterdir() if p.suffix.lower() == ".xrm"]
    else:
        return [Path(text)]
    if not files:
        raise FileNotFoundError(f"no .xrm files match {path}")
    return files


def read_xradia(path: str | os.PathLike, *, references: bool = True) -> RawStack:
    """Open a ``.txrm`` stack, or a glob/folder of ``.xrm`` images, lazily (one image per chunk).

    Parameters
    ----------
    path : str or Path
        A ``.txrm`` (or single ``.xrm``) file, a glob (``"scan/*.xrm"``) or a folder
        of ``.xrm`` files, one per energy.
    references : bool
        Divide by the file's ``ReferenceData/Image`` (False: the user gives a flat).

    Returns
    -------
    RawStack
        ``data`` (E, M, N) float32; absorbance when a reference was applied, else
        counts (``counts`` True). Energies sorted increasing (images with them).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing files, not OLE2, missing streams, images of different shapes, or
        energies missing in some ``.xrm`` files.

    Examples
    --------
    >>> read_xradia("/nonexistent/scan.txrm")
    Traceback (most recent call last):
    FileNotFoundError: Xradia file not found: /nonexistent/scan.txrm
    """
    import dask
    import dask.array as da

    files = _files(path)
    layouts = [(f, xradia_images(f)) for f in files]
    shape = layouts[0][1]["shape"]
    for file, layout in layouts:
        if layout["shape"] != shape:
            raise ValueError(f"{file.name} has images of {layout['shape']} but {files[0].name} of {shape}")
    read = dask.delayed(_read_image, pure=True)
    images = [(str(f), name, layout["dtype"]) for f, layout in layouts for name in layout["streams"]]
    energies = [layout["energies"] for _, layout in layouts]
    notes = []
    if any(e is None for e in energies):
        values = None
        if len(files) > 1:
            missing = next(f.name for f, e in zip(files, energies) if e is None)
            raise ValueError(f"{missing} has no energy (ImageInfo/Energy or an Energy motor): give energies=...")
    else:
        values = np.concatenate(energies)
        order = np.argsort(values, kind="stable")
        if len(files) > 1 or np.any(order != np.arange(values.size)):
            images, values = [images[i] for i in order], values[order]
            notes.append("images put in order of increasing energy")
    data = da.stack([da.from_delayed(read(p, name, shape, dtype), shape, np.float32) for p, name, dtype in images])
    first = layouts[0][1]
    where = str(files[0]) if len(files) == 1 else str(path)
    counts, sources = True, {}
    if references and first["reference"] is not None and len(files) == 1:
        flat = da.from_delayed(read(str(files[0]), first["reference"], shape, first["reference_dtype"]),
                               shape, np.float32)
        data, counts = apply_reference(data, flat=flat), False
        sources["file_flat"] = f"{where}:{first['reference']}"
        notes.append(f"flat: the file's {first['reference']}, for every energy")
    source = None if values is None else f"{where}:{first['energies_stream']}"
    return RawStack(data=data, energies=values, energies_source=source,
                    layout="Xradia txrm" if str(path).lower().endswith(".txrm") else "Xradia xrm",
                    counts=counts, sources=sources, notes=tuple(notes))
