"""HDF5 image stacks as beamlines write them, read lazily (one HDF5 hyperslab per dask chunk).

Layouts recognised in a file (or in the group a ``FILE.h5:/path`` spec names):

* **NeXus NXstxm / NXdata** (Diamond I08, SLS PolLux, CLS, MAX IV SoftiMAX): an
  ``NXentry`` with an ``NXdata`` group whose signal (``@signal``, else ``data``) is 3-D;
  the dimension order from ``NXdata@axes`` (or the signal's old-style
  ``@axes = "energy:sample_y:sample_x"``, or the axis fields' lengths), energies from the
  energy axis field (``@units`` eV or keV). The entry's ``control`` ``NXmonitor`` is the
  incident-beam monitor: ``data`` of shape (nE,) is an I0 spectrum, of the signal's shape
  a flat per pixel. The NeXus ``@default`` chain picks among several NXdata groups.
* **Data Exchange spectromicroscopy** (MANTiS): ``exchange/data`` in (x, y, E) order
  (or as its ``@axes`` say), ``exchange/energy``; I0 from
  ``spectromicroscopy/normalization/white_spectrum`` (on ``white_spectrum_energy``) or
  ``exchange/white_data``, unless it is all ones (then the data are optical density).
* **NSLS-II FXI full-field XANES** (``xanes_scan2_id_N.h5``, as TXM-Sandbox and pyxas read
  it): ``img_xanes`` (E, M, N), ``img_bkg`` (flat), ``img_dark``, ``X_eng`` (keV).
* **TXM-Sandbox registered 2D XANES**:
  ``registration_results/reg_results/registered_xanes2D`` (E, M, N, absorbance) with
  ``eng_list``.
* Any other 3-D dataset, named as ``FILE.h5:/path/to/dataset``, in (E, Y, X) order unless
  ``axes`` says otherwise, with energies given separately.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .rawstack import HDF5_SUFFIXES, RawStack, apply_reference, parse_axes
from .hdf5_layouts import energies_of, find_layout

__all__ = ["is_hdf5_spec", "read_energies_dataset", "read_hdf5", "split_spec"]

_SPEC = re.compile(r"^(?P<file>.+?(?:" + "|".join(re.escape(s) for s in HDF5_SUFFIXES) + r"))(?::(?P<path>.*))?$",
                   re.IGNORECASE)
def split_spec(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """Split ``FILE.h5:/path/to/object`` into the file and the object path (None if absent).

    >>> split_spec("run/scan.nxs:/entry1/data/data")
    (PosixPath('run/scan.nxs'), '/entry1/data/data')
    >>> split_spec("scan.h5")
    (PosixPath('scan.h5'), None)
    """
    match = _SPEC.match(str(spec))
    if match is None:
        return Path(str(spec)), None
    inner = match.group("path")
    return Path(match.group("file")), None if not inner else "/" + inner.lstrip("/")


def is_hdf5_spec(spec: str | os.PathLike) -> bool:
    """True for an HDF5 file name, with or without ``:/dataset``.

    >>> is_hdf5_spec("a.h5:/x"), is_hdf5_spec("a.tif")
    (True, False)
    """
    return _SPEC.match(str(spec)) is not None


class _H5Array:
    """Array-like over one HDF5 dataset; indexing opens the file and reads float32 (picklable)."""

    def __init__(self, path: str, name: str, shape: tuple):
        self.path, self.name, self.shape = path, name, tuple(shape)
        self.dtype, self.ndim = np.dtype(np.float32), len(shape)

    def __getitem__(self, key):
        import h5py

        with h5py.File(self.path, "r", locking=False) as f:
            return np.asarray(f[self.name][key], dtype=np.float32)


def read_energies_dataset(spec: str | os.PathLike) -> np.ndarray:
    """Energies (eV) from a 1-D HDF5 dataset named as ``FILE.h5:/path``.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, missing or non-1-D dataset, energies not strictly increasing.

    Examples
    --------
    >>> import h5py, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "e.h5"
    >>> with h5py.File(f, "w") as h:
    ...     h["energy"] = [7.1, 7.2]
    >>> read_energies_dataset(f"{f}:/energy")
    array([7100., 7200.])
    """
    from .energies import validate_energies

    path, inner = split_spec(spec)
    with _open(path) as f:
        if inner is None or inner not in f:
            raise ValueError(f"{path.name} has no dataset {inner or '(none named)'}: give energies as "
                             f"{path.name}:/path/to/energies")
        values = energies_of(f[inner], [])
    return validate_energies(values, source=f"{path.name}:{inner}")


def _open(path: Path):
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"HDF5 file not found: {path}")
    if not h5py.is_hdf5(path):
        raise ValueError(f"cannot read {path}: it is not an HDF5 file")
    return h5py.File(path, "r", locking=False)


def _lazy(path: Path, name: str, shape: tuple, order: str, *, planes: bool, disk_chunks, notes=None) -> object:
    """Dask (E, M, N) over a dataset stored in ``order``: row bands holding every energy, or planes.

    Bands are whole HDF5 chunks along the rows where those are at most 4 bands tall.
    Taller chunks (one frame per chunk) are read in part by several bands: cheap when
    uncompressed, but a compressed chunk is then decompressed once per band, and a
    note (``notes``, for compressed datasets) says so and how to convert once.
    """
    import dask.array as da
    from dask.base import tokenize

    from .tiff import BAND_BYTES

    e_ax, y_ax, x_ax = (order.index(c) for c in "EYX")
    n_e, n_y, n_x = shape[e_ax], shape[y_ax], shape[x_ax]
    chunks = [0, 0, 0]
    if planes:
        chunks[e_ax], chunks[y_ax], chunks[x_ax] = 1, n_y, n_x
    else:
        band = max(1, min(n_y, BAND_BYTES // max(1, n_e * n_x * 4)))
        if disk_chunks and disk_chunks[y_ax] <= 4 * band:  # whole HDF5 chunks per band: each read once
            step = disk_chunks[y_ax]
            band = min(n_y, max(step, band // step * step))
        elif disk_chunks and notes is not None:
            reads = -(-min(n_y, disk_chunks[y_ax]) // band)
            notes.append(f"{name} is compressed in HDF5 chunks of {disk_chunks[y_ax]} rows: each is decompressed by "
                         f"{reads} row bands; for big stacks convert once, e.g. write_stack('x.tif', "
                         "plane_view(stack), stack.energies), or h5repack to chunks of fewer rows")
        chunks[e_ax], chunks[y_ax], chunks[x_ax] = n_e, band, n_x
    stat = path.stat()
    token = tokenize(str(path.resolve()), name, stat.st_size, stat.st_mtime_ns, order, planes)
    data = da.from_array(_H5Array(str(path), name, shape), chunks=tuple(chunks), name=f"hdf5-{token}",
                         lock=False, meta=np.empty((0, 0, 0), np.float32))
    return data.transpose((e_ax, y_ax, x_ax))


def _image(path: Path, f, name: str | None, order: str, *, planes: bool):
    """A flat or dark dataset as a lazy array broadcastable to the stack (E, M, N)."""
    if name is None:
        return None
    ds = f[name]
    if ds.ndim == 3:
        return _lazy(path, name, ds.shape, order, planes=planes, disk_chunks=ds.chunks)
    return np.asarray(ds[()], dtype=np.float32)


def read_hdf5(spec: str | os.PathLike, *, axes: str | None = None, planes: bool = False,
              references: bool = True) -> RawStack:
    """Open a stack in an HDF5 file lazily, recognising the beamline layouts above.

    Parameters
    ----------
    spec : str or Path
        ``FILE.h5`` (the layout is found), or ``FILE.h5:/path`` naming the stack's
        dataset or its NXdata/exchange group.
    axes : str, optional
        The dataset's dimension order as a permutation of ``"EYX"``; overrides what the
        file says (or the default (E, Y, X) of a plain dataset).
    planes : bool
        One energy image per chunk (display) instead of row bands with every energy.
    references : bool
        Apply the file's own I0/flat/dark (False: the user gives theirs; counts returned).

    Returns
    -------
    RawStack

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Not HDF5, no recognisable stack, a stack that is not 3-D, energies or a monitor
        whose length does not match; one line naming the file and what is missing.

    Examples
    --------
    >>> import h5py, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.h5"
    >>> with h5py.File(f, "w") as h:
    ...     h["cube"] = np.ones((5, 3, 4), np.float32)
    >>> raw = read_hdf5(f"{f}:/cube", axes="XYE")
    >>> raw.data.shape, raw.layout
    ((4, 3, 5), 'HDF5 dataset')
    """
    path, inner = split_spec(spec)
    where = f"{path.name}" + (f":{inner}" if inner else "")
    with _open(path) as f:
        layout = find_layout(f, inner, str(path), where)
        ds = f[layout.data]
        if axes is not None:
            order = parse_axes(axes, ndim=ds.ndim)
            if order != layout.order:
                layout.notes.append(f"axes {order} given (the file says {layout.order})")
            layout.order = order
            layout.sources["axes"] = order
        compressed = ds.chunks is not None and ds.id.get_create_plist().get_nfilters() > 0
        data = _lazy(path, layout.data, ds.shape, layout.order, planes=planes, disk_chunks=ds.chunks,
                     notes=layout.notes if compressed and not planes else None)
        n_e = data.shape[0]
        if layout.energies is not None and layout.energies.size != n_e:
            raise ValueError(f"{where}: {layout.data} has {n_e} energies along its {layout.order} axes but "
                             f"{layout.energies_source} lists {layout.energies.size}")
        counts = layout.counts
        if references and (layout.i0 is not None or layout.flat is not None):
            flat = _image(path, f, layout.flat, layout.order, planes=planes)
            dark = _image(path, f, layout.dark, layout.order, planes=planes)
            data, counts = apply_reference(data, i0=layout.i0, flat=flat, dark=dark), False
        elif not references and (layout.i0 is not None or layout.flat is not None):
            layout.notes.append(f"the file's I0 ({layout.sources.get('file_i0', layout.flat)}) is not used: "
                                "an I0 or flat was given")
            counts = True
    if inner is not None:  # report.json hashes files by their sources: name the file itself too
        layout.sources["stack_file"] = str(path)
    return RawStack(data=data, energies=layout.energies, energies_source=layout.energies_source,
                    layout=layout.name, counts=counts, sources=layout.sources,
                    notes=tuple(layout.notes))
