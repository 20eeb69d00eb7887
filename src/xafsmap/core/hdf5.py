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

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .formats import HDF5_SUFFIXES, RawStack, apply_reference, parse_axes, spectrum_on

__all__ = ["is_hdf5_spec", "read_energies_dataset", "read_hdf5", "split_spec"]

_SPEC = re.compile(r"^(?P<file>.+?(?:" + "|".join(re.escape(s) for s in HDF5_SUFFIXES) + r"))(?::(?P<path>.*))?$",
                   re.IGNORECASE)
_FXI = ("img_xanes", "X_eng")
_SANDBOX = ("registration_results/reg_results/registered_xanes2D", "registration_results/reg_results/eng_list")
_WHITE = ("spectromicroscopy/normalization/white_spectrum", "spectromicroscopy/normalization/white_spectrum_energy")


def split_spec(spec) -> tuple[Path, str | None]:
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


def is_hdf5_spec(spec) -> bool:
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


@dataclass
class _Layout:
    """A stack found in a file: where its pixels and energies are and what to do with them."""

    name: str
    data: str
    order: str
    energies: np.ndarray | None = None
    energies_source: str | None = None
    i0: np.ndarray | None = None
    flat: str | None = None
    dark: str | None = None
    counts: bool = False
    sources: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.reshape(-1)[0])
    return str(value)


def _names(value) -> list[str]:
    """An ``@axes``-like attribute as a list of names (array, list or ``a:b:c`` string)."""
    if isinstance(value, np.ndarray) and value.size > 1:
        return [_text(v) for v in value.ravel()]
    text = _text(value)
    return [part.strip() for part in re.split(r"[:,\s]+", text.strip("[]")) if part.strip()]


def _nx_class(obj) -> str:
    return _text(obj.attrs.get("NX_class", ""))


def _role(name: str) -> str | None:
    low = name.lower()
    if "energy" in low or "eng" in low or low in ("e", "ev"):
        return "E"
    if low.endswith("y") or low in ("y", "row", "rows"):
        return "Y"
    if low.endswith("x") or low in ("x", "column", "columns"):
        return "X"
    return None


def _energies(ds, where: str, notes: list) -> np.ndarray:
    """Energies (eV) from a dataset: ``@units`` keV converted; unitless values below 100 taken as keV."""
    values = np.asarray(ds[()], dtype=np.float64).ravel()
    units = _text(ds.attrs.get("units", "")).strip().lower()
    if units == "kev" or (not units and values.size and np.nanmax(values) < 100):
        notes.append(f"energies in {ds.name} are in keV ({'its @units' if units else 'values below 100'}): "
                     "converted to eV")
        values = values * 1000.0
    return values


def read_energies_dataset(spec) -> np.ndarray:
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
    from .energies import _validate_energies

    path, inner = split_spec(spec)
    with _open(path) as f:
        if inner is None or inner not in f:
            raise ValueError(f"{path.name} has no dataset {inner or '(none named)'}: give energies as "
                             f"{path.name}:/path/to/energies")
        values = _energies(f[inner], f"{path.name}:{inner}", [])
    return _validate_energies(values, source=f"{path.name}:{inner}")


def _open(path: Path):
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"HDF5 file not found: {path}")
    if not h5py.is_hdf5(path):
        raise ValueError(f"cannot read {path}: it is not an HDF5 file")
    return h5py.File(path, "r", locking=False)


def _stacks_in(group) -> list[str]:
    """Names and shapes of the 3-D numeric datasets under a group, for error messages."""
    import h5py

    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim == 3 and obj.dtype.kind in "iuf" and len(found) < 6:
            found.append(f"{obj.name} {obj.shape}")

    group.visititems(visit)
    return found


def _signal(group):
    name = _text(group.attrs.get("signal", ""))
    if name and name in group:
        return group[name]
    for child in group.values():
        if hasattr(child, "ndim") and _text(child.attrs.get("signal", "")) in ("1", "True"):
            return child
    return group.get("data")


def _nxdata_groups(f) -> list:
    """NXdata groups of the file's NXentry groups whose signal is 3-D."""
    found = []
    for entry in f.values():
        if _nx_class(entry) != "NXentry":
            continue
        for group in entry.values():
            if _nx_class(group) == "NXdata" and (signal := _signal(group)) is not None and signal.ndim == 3:
                found.append(group)
    return found


def _nx_order(group, signal, where: str) -> tuple[str, dict]:
    """The signal's axis order (permutation of EYX) and the field name of each role."""
    names = _names(group.attrs["axes"]) if "axes" in group.attrs else (
        _names(signal.attrs["axes"]) if "axes" in signal.attrs else [])
    fields = {}
    if len(names) == 3 and all(n in group for n in names):
        roles = [_role(n) for n in names]
        fields = {r: n for r, n in zip(roles, names) if r}
    else:  # old style: each axis field says which dimension it is (@axis, 1-based), else match lengths
        for name, obj in group.items():
            if obj is signal or not hasattr(obj, "ndim") or obj.ndim != 1 or _role(name) is None:
                continue
            fields.setdefault(_role(name), name)
        dims = {}
        for role, name in fields.items():
            axis = group[name].attrs.get("axis")
            matches = [i for i, n in enumerate(signal.shape) if n == group[name].shape[0]]
            dims[role] = int(_text(axis)) - 1 if axis is not None else (matches[0] if len(matches) == 1 else None)
        if "E" in dims and dims["E"] is not None and sorted(d for d in dims.values() if d is not None) == [0, 1, 2]:
            roles = [next(r for r, d in dims.items() if d == i) for i in range(3)]
        else:
            roles = ["E", "Y", "X"]  # NXstxm's documented (NumE, NumY, NumX)
    if sorted(roles) != ["E", "X", "Y"]:
        raise ValueError(f"{where}: cannot tell energy, y and x apart in its axes {names}; give --axes "
                         "(e.g. EYX)")
    return "".join(roles), fields


def _nxdata(f, group, file: str, where: str) -> _Layout:
    signal = _signal(group)
    if signal is None or signal.ndim != 3:
        raise ValueError(f"{where}: NXdata {group.name} has no 3-D signal (data of shape (nE, nY, nX))")
    order, fields = _nx_order(group, signal, where)
    entry = group.parent
    definition = _text(entry["definition"][()]) if "definition" in entry else ""
    stxm = "stxm" in definition.lower()
    layout = _Layout("NXstxm" if stxm else "NeXus NXdata", signal.name, order)
    energy = group.get(fields.get("E", "energy"))
    if energy is not None:
        layout.energies = _energies(energy, f"{file}:{energy.name}", layout.notes)
        layout.energies_source = f"{file}:{energy.name}"
    control = entry.get("control")
    monitor = control.get("data") if control is not None and hasattr(control, "get") else None
    # NXstxm's signal is detector counts; another NXdata without a monitor is taken as it is
    layout.counts = stxm or monitor is not None
    if monitor is not None:
        layout.sources["file_i0"] = f"{file}:{monitor.name}"
        n_e = signal.shape[order.index("E")]
        if monitor.shape == signal.shape:
            layout.flat = monitor.name
            layout.notes.append(f"I0: the control monitor {monitor.name}, per pixel")
        elif monitor.ndim >= 1 and monitor.size == n_e:
            layout.i0 = np.asarray(monitor[()], dtype=np.float64).ravel()
            layout.notes.append(f"I0: the control monitor {monitor.name} ({n_e} values)")
        else:
            raise ValueError(f"{where}: control monitor {monitor.name} has shape {monitor.shape}; expected "
                             f"({n_e},) or the data's shape {signal.shape}")
    return layout


def _data_exchange(f, file: str, where: str) -> _Layout:
    data = f["exchange/data"]
    if data.ndim != 3:
        raise ValueError(f"{where}: exchange/data has shape {data.shape}; only 3-D (x, y, energy) "
                         "spectromicroscopy stacks are read (not 4-D with theta)")
    tokens = _names(data.attrs["axes"]) if "axes" in data.attrs else []
    roles = [_role(t) for t in tokens]
    order = "".join(roles) if len(roles) == 3 and sorted(roles) == ["E", "X", "Y"] else "XYE"
    layout = _Layout("Data Exchange", data.name, order)
    if "energy" not in f["exchange"]:
        raise ValueError(f"{where}: Data Exchange file has exchange/data but no exchange/energy")
    layout.energies = _energies(f["exchange/energy"], f"{file}:/exchange/energy", layout.notes)
    layout.energies_source = f"{file}:/exchange/energy"
    layout.notes.append(f"exchange/data read as ({', '.join(order)}) = "
                        f"({', '.join({'E': 'energy', 'Y': 'y', 'X': 'x'}[c] for c in order)})")
    white = f.get(_WHITE[0])
    if white is not None and not _all_ones(white):
        grid = f[_WHITE[1]][()] if _WHITE[1] in f else layout.energies
        layout.i0 = spectrum_on(layout.energies, grid, white[()], name=f"{file}:/{_WHITE[0]}")
        layout.counts, layout.sources["file_i0"] = True, f"{file}:/{_WHITE[0]}"
        layout.notes.append(f"I0: /{_WHITE[0]}")
    elif (white := f["exchange"].get("white_data")) is not None and not _all_ones(white):
        layout.counts, layout.sources["file_i0"] = True, f"{file}:{white.name}"
        if white.shape == data.shape:
            layout.flat = white.name
            dark = f["exchange"].get("dark_data")
            layout.dark = dark.name if dark is not None and dark.shape == data.shape else None
        else:
            layout.i0 = spectrum_on(layout.energies, layout.energies, white[()], name=f"{file}:{white.name}")
        layout.notes.append(f"I0: {white.name}")
    else:
        layout.notes.append("no white spectrum (or all ones): exchange/data taken as optical density")
    return layout


def _fxi(f, file: str) -> _Layout:
    """NSLS-II FXI: img_xanes is either raw counts (TXM-Sandbox reads -ln((I-D)/(F-D))) or,
    from the beamline's exporter, already (I-D)/(F-D); one subsampled image tells which."""
    layout = _Layout("FXI XANES", f[_FXI[0]].name, "EYX")
    layout.energies = _energies(f[_FXI[1]], f"{file}:/X_eng", layout.notes)
    layout.energies_source = f"{file}:/X_eng"
    data, flat, dark = f[_FXI[0]], f.get("img_bkg"), f.get("img_dark")
    if flat is None:
        layout.counts = True
        return layout
    mid = data.shape[0] // 2
    step = max(1, data.shape[1] // 64)
    sample = np.asarray(data[mid, ::step, ::step], np.float64)
    reference = np.asarray(flat[min(mid, flat.shape[0] - 1), ::step, ::step], np.float64)
    if dark is not None:
        reference = reference - np.asarray(dark[0, ::step, ::step], np.float64)
    if np.all(reference == 1):
        layout.counts = True
        layout.notes.append("img_bkg is all ones (an FXI '_img_only' export): img_xanes holds dark-subtracted "
                            "counts without a flat field")
    elif np.nanmedian(sample) <= 2 and np.nanmedian(reference) > 10:
        layout.i0 = np.ones(data.shape[0])
        layout.notes.append("img_xanes is already (I-D)/(F-D) (the FXI exporter's output): absorbance -ln(img_xanes)")
    else:
        layout.flat, layout.dark = flat.name, None if dark is None else dark.name
        layout.notes.append("img_xanes holds counts: absorbance -ln((I-D)/(F-D)) with img_bkg and img_dark, "
                            "as TXM-Sandbox")
    return layout


def _default_nxdata(f):
    """The NXdata group the NeXus ``@default`` chain (file -> entry -> data) points to, or None."""
    entry = f.get(_text(f.attrs["default"])) if "default" in f.attrs else None
    if entry is None or "default" not in entry.attrs:
        return None
    group = entry.get(_text(entry.attrs["default"]))
    return group if group is not None and _nx_class(group) == "NXdata" else None


def _find_layout(f, inner: str | None, file: str, where: str) -> _Layout:
    import h5py

    obj = f if inner is None else f.get(inner)
    if obj is None:
        raise ValueError(f"{where}: no object {inner} in the file")
    if isinstance(obj, h5py.Dataset):
        parent = obj.parent
        if _nx_class(parent) == "NXdata" and _signal(parent) is not None and _signal(parent).name == obj.name:
            return _nxdata(f, parent, file, where)
        if obj.name == "/exchange/data":
            return _data_exchange(f, file, where)
        if obj.name == "/" + _FXI[0] and _FXI[1] in f:
            return _fxi(f, file)
        if obj.ndim != 3 or obj.dtype.kind not in "iufb":
            raise ValueError(f"{where}: dataset {obj.name} holds {obj.dtype} of shape {obj.shape}; expected a "
                             "3-D stack of numbers")
        return _Layout("HDF5 dataset", obj.name, "EYX")
    if _nx_class(obj) == "NXdata":
        return _nxdata(f, obj, file, where)
    if obj.name in ("/", "/exchange") and "exchange/data" in f:
        return _data_exchange(f, file, where)
    if obj.name == "/" and all(k in f for k in _FXI):
        return _fxi(f, file)
    if obj.name == "/" and all(k in f for k in _SANDBOX):
        layout = _Layout("TXM-Sandbox registered XANES", "/" + _SANDBOX[0], "EYX")
        layout.energies = _energies(f[_SANDBOX[1]], f"{file}:/{_SANDBOX[1]}", layout.notes)
        layout.energies_source = f"{file}:/{_SANDBOX[1]}"
        return layout
    groups = [g for g in _nxdata_groups(f) if obj.name == "/" or g.name.startswith(obj.name + "/")]
    default = _default_nxdata(f)
    if default is not None and default in groups:
        return _nxdata(f, default, file, where)
    if len(groups) > 1:
        names = ", ".join(g.name for g in groups)
        raise ValueError(f"{where} holds {len(groups)} NXdata stacks ({names}); name one, e.g. "
                         f"{file}:{groups[0].name}")
    if groups:
        return _nxdata(f, groups[0], file, where)
    stacks = _stacks_in(obj)
    raise ValueError(
        f"cannot read {where}: no NXentry/NXdata with a 3-D signal (NXstxm), no exchange/data + exchange/energy "
        f"(Data Exchange), no img_xanes + X_eng (FXI); name the dataset as {file}:/path/to/dataset"
        + (f" (3-D datasets: {', '.join(stacks)})" if stacks else " (the file holds no 3-D dataset)")
    )


def _all_ones(ds) -> bool:
    """True when a dataset holds only ones (checked on at most ~10^5 values of a large one)."""
    steps = tuple(max(1, n // 46) for n in ds.shape) if ds.size > 10**5 else (1,) * ds.ndim
    return bool(np.all(np.asarray(ds[tuple(slice(None, None, s) for s in steps)]) == 1))


def _lazy(path: Path, name: str, shape: tuple, order: str, *, planes: bool, disk_chunks) -> object:
    """Dask (E, M, N) over a dataset stored in ``order``: row bands holding every energy, or planes."""
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
        if disk_chunks:  # whole HDF5 chunks per band: each is decompressed once
            step = disk_chunks[y_ax]
            band = min(n_y, max(step, band // step * step))
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


def read_hdf5(spec, *, axes: str | None = None, planes: bool = False, references: bool = True) -> RawStack:
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
        layout = _find_layout(f, inner, str(path), where)
        ds = f[layout.data]
        if axes is not None:
            order = parse_axes(axes, ndim=ds.ndim)
            if order != layout.order:
                layout.notes.append(f"axes {order} given (the file says {layout.order})")
            layout.order = order
            layout.sources["axes"] = order
        data = _lazy(path, layout.data, ds.shape, layout.order, planes=planes, disk_chunks=ds.chunks)
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
    return RawStack(data=data, energies=layout.energies, energies_source=layout.energies_source,
                    layout=layout.name, counts=counts, sources=layout.sources,
                    notes=tuple(layout.notes))
