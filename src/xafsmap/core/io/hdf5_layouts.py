"""Which stack an HDF5 file holds, by the layouts beamlines publish (used by :mod:`xafsmap.core.io.hdf5`).

:func:`find_layout` looks at an open file (or the group or dataset a ``FILE.h5:/path``
spec names) and returns a :class:`Layout`: the dataset of the pixels and its axis
order, the energies, and the file's own incident-beam data. Recognised, in order:
NeXus NXdata (NXstxm), Data Exchange spectromicroscopy, NSLS-II FXI XANES,
TXM-Sandbox registered XANES; see :mod:`xafsmap.core.io.hdf5` for each layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .rawstack import spectrum_on

if TYPE_CHECKING:
    import h5py

__all__ = ["Layout", "energies_of", "find_layout"]

_FXI = ("img_xanes", "X_eng")
_SANDBOX = ("registration_results/reg_results/registered_xanes2D", "registration_results/reg_results/eng_list")
_WHITE = ("spectromicroscopy/normalization/white_spectrum", "spectromicroscopy/normalization/white_spectrum_energy")


@dataclass
class Layout:
    """A stack found in a file: where its pixels and energies are and what to do with them.

    Attributes
    ----------
    name : str
        The layout, e.g. ``"NXstxm"``, ``"Data Exchange"``, ``"FXI XANES"``.
    data : str
        HDF5 path of the pixels.
    order : str
        Their dimension order, a permutation of ``"EYX"``.
    energies, energies_source : ndarray (E,) eV and str, or None
        The file's energies and where they are (``FILE:/path``).
    i0 : ndarray, shape (E,), optional
        Incident-beam spectrum on those energies.
    flat, dark : str, optional
        HDF5 paths of flat/dark images (the data's shape, or one image).
    counts : bool
        The pixels are transmitted counts (an I0 or flat is needed).
    sources, notes
        Provenance (``file_i0``, ``axes``) and notes for the user.
    """

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


def energies_of(ds: h5py.Dataset, notes: list) -> np.ndarray:
    """Energies in eV from an HDF5 dataset, converted from keV where it says so.

    Parameters
    ----------
    ds : h5py.Dataset
        1-D energies; ``@units`` ``keV`` (any case) are converted, and so are values
        without units that are all below 100 (no absorption edge used for imaging
        lies below 100 eV).
    notes : list of str
        A note is appended when a conversion happens.

    Returns
    -------
    ndarray, shape (n,), float64

    Examples
    --------
    >>> import h5py, tempfile, pathlib
    >>> with h5py.File(pathlib.Path(tempfile.mkdtemp()) / "e.h5", "w") as f:
    ...     f["X_eng"] = [7.1, 7.2]
    ...     notes = []
    ...     energies_of(f["X_eng"], notes).tolist(), notes
    ([7100.0, 7200.0], ['energies in /X_eng are in keV (values below 100): converted to eV'])
    """
    values = np.asarray(ds[()], dtype=np.float64).ravel()
    units = _text(ds.attrs.get("units", "")).strip().lower()
    if units == "kev" or (not units and values.size and np.nanmax(values) < 100):
        notes.append(f"energies in {ds.name} are in keV ({'its @units' if units else 'values below 100'}): "
                     "converted to eV")
        values = values * 1000.0
    return values


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


def _nxdata(f, group, file: str, where: str) -> Layout:
    signal = _signal(group)
    if signal is None or signal.ndim != 3:
        raise ValueError(f"{where}: NXdata {group.name} has no 3-D signal (data of shape (nE, nY, nX))")
    order, fields = _nx_order(group, signal, where)
    entry = group.parent
    definition = _text(entry["definition"][()]) if "definition" in entry else ""
    stxm = "stxm" in definition.lower()
    layout = Layout("NXstxm" if stxm else "NeXus NXdata", signal.name, order)
    energy = group.get(fields.get("E", "energy"))
    if energy is not None:
        layout.energies = energies_of(energy, layout.notes)
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


def _data_exchange(f, file: str, where: str) -> Layout:
    data = f["exchange/data"]
    if data.ndim != 3:
        raise ValueError(f"{where}: exchange/data has shape {data.shape}; only 3-D (x, y, energy) "
                         "spectromicroscopy stacks are read (not 4-D with theta)")
    tokens = _names(data.attrs["axes"]) if "axes" in data.attrs else []
    roles = [_role(t) for t in tokens]
    order = "".join(roles) if len(roles) == 3 and sorted(roles) == ["E", "X", "Y"] else "XYE"
    layout = Layout("Data Exchange", data.name, order)
    if "energy" not in f["exchange"]:
        raise ValueError(f"{where}: Data Exchange file has exchange/data but no exchange/energy")
    layout.energies = energies_of(f["exchange/energy"], layout.notes)
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


def _fxi(f, file: str) -> Layout:
    """NSLS-II FXI: img_xanes is either raw counts (TXM-Sandbox reads -ln((I-D)/(F-D))) or,
    from the beamline's exporter, already (I-D)/(F-D); one subsampled image tells which."""
    layout = Layout("FXI XANES", f[_FXI[0]].name, "EYX")
    layout.energies = energies_of(f[_FXI[1]], layout.notes)
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


def find_layout(f: h5py.File, inner: str | None, file: str, where: str) -> Layout:
    """The stack an open HDF5 file holds, by the layouts of :mod:`xafsmap.core.io.hdf5`.

    Parameters
    ----------
    f : h5py.File
    inner : str or None
        The object a ``FILE.h5:/path`` spec names (a dataset, an NXdata or exchange
        group), or None for the whole file.
    file, where : str
        The file's path (for provenance) and a short name (for messages).

    Returns
    -------
    Layout

    Raises
    ------
    ValueError
        No recognisable stack (the message lists the file's 3-D datasets), several
        NXdata stacks and no ``@default``, a 4-D Data Exchange stack, a monitor of the
        wrong shape, axes that cannot be told apart.

    Examples
    --------
    >>> import h5py, tempfile, pathlib
    >>> with h5py.File(pathlib.Path(tempfile.mkdtemp()) / "dx.h5", "w") as f:
    ...     f["exchange/data"] = np.ones((4, 3, 5))
    ...     f["exchange/energy"] = np.linspace(700.0, 710.0, 5)
    ...     found = find_layout(f, None, "dx.h5", "dx.h5")
    >>> found.name, found.order, found.counts
    ('Data Exchange', 'XYE', False)
    """
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
        return Layout("HDF5 dataset", obj.name, "EYX")
    if _nx_class(obj) == "NXdata":
        return _nxdata(f, obj, file, where)
    if obj.name in ("/", "/exchange") and "exchange/data" in f:
        return _data_exchange(f, file, where)
    if obj.name == "/" and all(k in f for k in _FXI):
        return _fxi(f, file)
    if obj.name == "/" and all(k in f for k in _SANDBOX):
        layout = Layout("TXM-Sandbox registered XANES", "/" + _SANDBOX[0], "EYX")
        layout.energies = energies_of(f[_SANDBOX[1]], layout.notes)
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


