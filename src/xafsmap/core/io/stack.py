"""Read imaging-XAFS measurements lazily: stacks ``(E, M, N)`` and their energies in eV.

Supported inputs of :func:`read_stack`: one multi-page TIFF or BigTIFF, a folder or a glob
of one TIFF per energy, an STXM SDF ``.hdr`` header with its ``.xim`` images, HDF5 files
(NeXus NXstxm, Data Exchange, FXI/TXM-Sandbox, any ``FILE.h5:/dataset``) and Zeiss/Xradia
``.txrm``/``.xrm`` files (:mod:`xafsmap.core.io.formats`). Pixel
data are never read up front: an uncompressed contiguous TIFF is streamed in row bands
that keep the whole energy axis in one chunk (one positioned read per page and band),
any other TIFF one page per chunk. TIFF access lives in :mod:`xafsmap.core.io.tiff`,
energies files in :mod:`xafsmap.core.io.energies`; this module puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .formats import format_kind, open_format
from .rawstack import absorbance_from_transmission
from .energies import (
    energies_from_names,
    is_glob,
    validate_energies,
    find_energies_file,
    natural_sort_key,
    read_energies,
)
from .tiff import BAND_BYTES, TIFF_SUFFIXES, open_tiff, open_tiff_files, tiff_files, write_stack

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "IN_MEMORY",
    "Stack",
    "count_invalid",
    "plane_view",
    "read_stack",
    "stack_info",
]

#: What ``Stack.sources`` records for a role given as an in-memory array (no file to reopen).
IN_MEMORY = "<array>"

_SUPPORTED = ("a .tif/.tiff file, a folder or glob ('*') of per-energy TIFFs, an STXM .hdr header, an HDF5/NeXus "
              "file (.h5, .hdf5, .nxs; FILE.h5:/path/to/dataset) or a Zeiss/Xradia .txrm/.xrm")


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
        used; arrays given directly are recorded as :data:`IN_MEMORY`.
    preparation : tuple of xafsmap.core.prepare.steps.Preparation
        The :func:`~xafsmap.core.prepare.steps.prepare_stack` calls that made ``data`` from
        what was read, oldest first (empty for a stack as read), so that a cluster
        worker can redo them from the files.
    notes : tuple of str
        What reading decided that the user should know: energies from the file or
        overridden, units converted, the file's own I0 used, axis order.
    """

    data: object
    energies: np.ndarray
    sources: dict
    preparation: tuple = ()
    notes: tuple = ()

    def __repr__(self) -> str:
        e = self.energies
        return (
            f"Stack(shape={tuple(self.data.shape)}, dtype={self.data.dtype}, "
            f"energies={e[0]:g}–{e[-1]:g} eV ({e.size}), stack={self.sources.get('stack')!r})"
        )


def plane_view(stack: Stack) -> da.Array:
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
    if path and format_kind(path) and not {"flat", "dark", "i0"} & set(stack.sources):
        data = open_format(path, axes=stack.sources.get("axes"), planes=True).data
        return data if tuple(data.shape) == tuple(stack.data.shape) else stack.data
    if set(stack.sources) - {"stack", "energies"} or not path or Path(path).suffix.lower() not in TIFF_SUFFIXES:
        return stack.data
    if not Path(path).is_file():
        return stack.data
    data, _ = open_tiff(Path(path), planes=True)
    return data if tuple(data.shape) == tuple(stack.data.shape) else stack.data


def _as_array(value, *, role: str, sources: dict):
    if isinstance(value, (str, Path)) and format_kind(value):
        sources[role] = str(value)
        data = open_format(value, references=False).data
        return data[0] if data.shape[0] == 1 else data
    if isinstance(value, (str, Path)):
        sources[role] = str(value)
        data, _ = open_tiff(Path(value), role=role)
        return data
    sources[role] = IN_MEMORY
    return value


def _read_i0(value, energies: np.ndarray, *, sources: dict) -> np.ndarray:
    """Incident intensity on the stack's energies, from a two-column file or an array."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"i0 file not found: {path}")
        sources["i0"], name = str(path), path.name
        try:
            table = np.loadtxt(path, comments="#", ndmin=2, dtype=np.float64)
        except ValueError as error:  # numpy names the row, not the file
            raise ValueError(f"{name}: {error}; an i0 file holds two columns of numbers (energy in eV, "
                             "counts)") from None
    else:
        sources["i0"], name = IN_MEMORY, "i0"
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
    if kind := format_kind(path):
        return kind
    if is_glob(path):
        return "files"
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"stack not found: {p}")
    if p.is_dir():
        return "files"
    if p.suffix.lower() in TIFF_SUFFIXES:
        return "tiff"
    if p.suffix.lower() == ".hdr":
        return "stxm"
    raise ValueError(f"cannot read {p.name}: supported inputs are {_SUPPORTED}")


def read_stack(path: str | Path, *, energies: str | Path | ArrayLike | None = None,
               flat: str | Path | ArrayLike | None = None, dark: str | Path | ArrayLike | None = None,
               i0: str | Path | ArrayLike | None = None, axes: str | None = None) -> Stack:
    """Open an imaging-XAFS stack lazily as absorbance with its energies.

    Parameters
    ----------
    path : str or Path
        A ``.tif``/``.tiff`` file (multi-page, BigTIFF, float or integer), a folder or a
        glob (``"scan/*.tif"``) of one TIFF per energy (natural sort of names), an
        STXM ``.hdr`` header with ``<stem>_a*.xim`` images, an HDF5 file (NXstxm, Data
        Exchange, FXI/TXM-Sandbox; or ``FILE.h5:/path/to/dataset``), or a Zeiss/Xradia
        ``.txrm`` (a glob or folder of ``.xrm``); see :mod:`xafsmap.core.io.formats`.
    energies : str, Path or array-like of float, optional
        Energies in eV, or a file of them (see :func:`read_energies`, or an HDF5
        ``FILE.h5:/path``). None takes those an HDF5/Xradia file holds, else looks for a
        sidecar (:func:`find_energies_file`), then the TIFF's metadata or STXM header,
        then numbers in per-energy file names (``fe_7112.5eV.tif``). Given energies
        override a file's own, with a note.
    flat : str, Path or array, optional
        Flat-field (I0) images: (E, M, N) or one (M, N) image for all energies. With it
        ``path`` holds transmitted counts and the result is ``-ln((I-D)/(F-D))``.
    dark : str, Path or array, optional
        Dark images (M, N) or (E, M, N), subtracted from counts and flat.
    i0 : str, Path or array, optional
        Incident-beam spectrum, a two-column file (energy eV, counts; e.g. ``i0.xsp``)
        interpolated onto the stack's energies, or (E,) counts; result ``-ln(I/I0(E))``.
        A file's own I0 (NXstxm ``control``, Data Exchange white spectrum, Xradia
        reference) is used when neither ``flat`` nor ``i0`` is given.
    axes : str, optional
        Dimension order of an HDF5 dataset as a permutation of ``"EYX"`` (e.g.
        ``"XYE"``) when it is not (E, Y, X) or not stated in the file.

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
    from xafsmap.core.io import stxm

    from .volumefiles import volume_kind

    if volume_kind(path, axes=axes):
        raise ValueError(f"{Path(str(path)).name} is a volume (E, Z, Y, X), not a stack (E, M, N): 'xafsmap map' "
                         "maps it voxel by voxel (xafsmap.read_volume opens it)")
    kind, sources, embedded, files, notes = _stack_kind(path), {"stack": str(path)}, None, None, []
    if kind in ("hdf5", "xradia"):
        raw = open_format(path, axes=axes, references=flat is None and i0 is None)
        data, embedded, notes = raw.data, raw.energies, list(raw.notes)
        sources.update(raw.sources)
        if raw.counts and flat is None and i0 is None:
            raise ValueError(f"{raw.layout} stack {path} holds transmitted counts and no I0 of its own: give the "
                             "incident-beam spectrum with i0=... or flat images with flat=...")
    elif axes is not None:
        raise ValueError(f"axes= applies to HDF5 datasets; {Path(path).name} is read in (E, Y, X) order")
    if kind == "stxm":
        data, embedded = stxm.read_sdf_counts(path)
        if i0 is None and flat is None:
            raise ValueError(
                f"STXM stack {Path(path).name} holds transmitted counts: give the incident-beam "
                "spectrum with i0=... (e.g. i0.xsp)"
            )
    elif kind == "tiff":
        data, embedded = open_tiff(Path(path))
    elif kind == "files":
        files = tiff_files(path)
        data = open_tiff_files(files)
    stack_name = Path(_file_of(path)).name
    if energies is not None:
        if isinstance(energies, (str, Path)) and format_kind(energies) == "hdf5":
            from .hdf5 import read_energies_dataset

            values, sources["energies"], source = read_energies_dataset(energies), str(energies), str(energies)
        elif isinstance(energies, (str, Path)):
            values, sources["energies"], source = read_energies(energies), str(energies), Path(energies).name
        else:
            values, sources["energies"], source = validate_energies(energies, source="energies"), IN_MEMORY, "energies"
        if kind in ("hdf5", "xradia") and embedded is not None:
            notes.append(f"energies from {source} override the {embedded.size} in the file "
                         f"({embedded[0]:g}–{embedded[-1]:g} eV)")
    elif kind in ("hdf5", "xradia") and embedded is not None:
        values, sources["energies"], source = validate_energies(embedded, source=raw.energies_source), \
            raw.energies_source, raw.energies_source
        notes.append(f"{values.size} energies ({values[0]:g}–{values[-1]:g} eV) from the file's "
                     f"{source.rpartition(':')[2]}")
    elif (found := find_energies_file(_file_of(path))) is not None:
        values, sources["energies"], source = read_energies(found), str(found), found.name
    elif embedded is not None:
        values, sources["energies"], source = validate_energies(embedded, source=stack_name), str(path), "its metadata"
    elif files is not None:
        values = energies_from_names(files, where=stack_name)
        sources["energies"], source = str(path), "its file names"
    else:
        raise ValueError(
            f"no energies for {stack_name}: give energies=..., or put {Path(_file_of(path)).stem}.energies.txt "
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
    return Stack(data=data, energies=values, sources=sources, notes=tuple(notes))


def _file_of(path):
    """The file of an ``FILE.h5:/dataset`` spec (the path itself otherwise)."""
    from .hdf5 import split_spec

    return split_spec(path)[0] if format_kind(path) == "hdf5" else path



def count_invalid(data: ArrayLike) -> int:
    """Count the NaN (undefined absorbance) values of a numpy or dask array; computes.

    >>> count_invalid(np.array([0.1, np.nan, 2.0]))
    1
    """
    import dask.array as da

    return int(da.isnan(da.asarray(data)).sum().compute())


#: Resident memory of a mapping process before its bands and maps: Python, numpy,
#: scikit-learn, numba, dask and the trained forest (measured ~0.45 GB).
MAPPING_BASE_BYTES = 450 * 2**20


def stack_info(stack: Stack) -> dict:
    """Summarize a stack without computing it.

    Returns
    -------
    info : dict
        ``shape``, ``dtype``, ``n_energies``, ``energy_min_ev``, ``energy_max_ev``,
        ``size_bytes`` (of the lazy array), ``chunksize``, ``n_chunks``,
        ``energy_in_one_chunk``, ``mapping_memory_bytes`` (rough peak when a mapping
        pipeline streams row bands of :data:`BAND_BYTES`: the libraries and the trained
        forest, eight band buffers and sixteen float32 maps (M, N)), ``sources`` and
        ``notes`` (:attr:`Stack.notes`).

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
        "mapping_memory_bytes": int(MAPPING_BASE_BYTES + 8 * band + 16 * m * n * 4),
        "sources": dict(stack.sources),
        "notes": list(getattr(stack, "notes", ())),
    }
