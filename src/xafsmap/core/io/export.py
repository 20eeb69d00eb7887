"""Spectra out, for the tools XAS users trust: XDI 1.0 files and Athena projects.

:func:`write_xdi` writes one spectrum as an XDI 1.0 file (``Element.symbol``,
``Element.edge``, ``Column.1: energy eV``, the normalized mu column), as Larch's
``read_xdi`` and Athena read it. :func:`write_athena` writes several spectra as an
Athena project (``.prj``, gzip'd Perl-data records as Demeter writes them, which
Athena and Larch's ``read_athena`` read). :func:`write_spectra` writes a set of spectra
as both, all-or-nothing (``xafsmap export``, the GUI's spectra plots). The spectra of a
map's classes come from :mod:`xafsmap.core.mapping.mapspectra`.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .._files import atomic_file

__all__ = ["SpectrumRecord", "read_xdi_element", "write_athena", "write_spectra", "write_xdi"]

ELEMENTS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr Rb Sr Y "
    "Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re "
    "Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg "
    "Cn Nh Fl Mc Lv Ts Og"
).split()
#: Edge names of the XDI dictionary (``Element.edge``).
EDGES = ("K", "L", "L1", "L2", "L3", "M", "M1", "M2", "M3", "M4", "M5", "N", "N1", "N2", "N3", "N4", "N5",
         "N6", "N7", "O", "O1", "O2", "O3", "O4", "O5", "O6", "O7", "P", "P1", "P2", "P3")
#: Demeter's project header; Larch reads the version after it as major.minor.fix.
ATHENA_HEADER = "# Athena project file -- Demeter version 0.9.26"


@dataclass(frozen=True, eq=False)
class SpectrumRecord:
    """One spectrum to export.

    Attributes
    ----------
    name : str
        Label (class name, ROI name, ``pixel 12,40``).
    energies : ndarray, shape (n,), float64
        eV, strictly increasing.
    mu : ndarray, shape (n,), float64
        Normalized mu(E).
    e0 : float, optional
        Edge energy, eV (Athena's ``bkg_e0``).
    params : dict
        Normalization windows with Larch names (``pre1``, ``pre2``, ``norm1``,
        ``norm2``, ``nnorm``), eV relative to e0, written as Athena's ``bkg_*``.
    """

    name: str
    energies: np.ndarray
    mu: np.ndarray
    e0: float | None = None
    params: dict | None = None


def _check_element(element: str, edge: str) -> tuple[str, str]:
    symbol = str(element).strip().capitalize()
    if symbol not in ELEMENTS:
        raise ValueError(f"element {element!r} is not a chemical symbol (e.g. Fe)")
    edge = str(edge).strip().upper()
    if edge not in EDGES:
        raise ValueError(f"edge {edge!r} is not an XDI edge name ({', '.join(EDGES[:5])}, ...)")
    return symbol, edge


def _check_spectrum(name: str, energies, mu) -> tuple[np.ndarray, np.ndarray]:
    e, m = np.asarray(energies, np.float64).ravel(), np.asarray(mu, np.float64).ravel()
    if e.size != m.size or e.size < 2:
        raise ValueError(f"spectrum {name!r} has {e.size} energies and {m.size} mu values; need equal counts >= 2")
    if not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise ValueError(f"spectrum {name!r}: energies must be finite and strictly increasing")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"spectrum {name!r} has {int(np.count_nonzero(~np.isfinite(m)))} non-finite mu values")
    return e, m


def _one_line(text) -> str:
    return " ".join(str(text).split())


def write_xdi(path: str | os.PathLike, energies: ArrayLike, mu: ArrayLike, *, name: str, element: str, edge: str,
              column: str = "normtrans", fields: dict | None = None, comments: Sequence[str] = ()) -> Path:
    """Write one normalized spectrum as an XDI 1.0 file (all-or-nothing).

    Parameters
    ----------
    path : str or Path
        Output ``.xdi``.
    energies : array_like, shape (n,)
        eV, strictly increasing (``Column.1: energy eV``).
    mu : array_like, shape (n,)
        Normalized mu (``Column.2``), finite.
    name : str
        ``Sample.name``.
    element, edge : str
        ``Element.symbol`` (e.g. ``"Fe"``) and ``Element.edge`` (e.g. ``"K"``), the
        two fields XDI requires.
    column : str
        Label of the mu column from the XDI dictionary: ``normtrans`` (normalized
        transmission mu, the default), ``normfluor``, ``mutrans``...
    fields : dict, optional
        More header fields, ``{"Namespace.tag": value}``; tags outside the XDI
        dictionary should use the ``xafsmap`` namespace.
    comments : sequence of str
        Free comment lines (after the ``# ///`` line).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Unknown element or edge, energies not increasing, non-finite mu.

    Notes
    -----
    Values are written with Python's shortest round-trip repr, so reading the file
    gives the same float64 numbers. Larch: ``larch.io.read_xdi(path)``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_xdi(pathlib.Path(tempfile.mkdtemp()) / "a.xdi", [7100.0, 7110.0], [0.0, 1.0],
    ...               name="hematite", element="Fe", edge="K")
    >>> p.read_text().splitlines()[0]
    '# XDI/1.0 xafsmap/...'
    """
    from ... import __version__

    e, m = _check_spectrum(name, energies, mu)
    symbol, edge = _check_element(element, edge)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", column):
        raise ValueError(f"column label {column!r} must be one word (XDI column labels hold no spaces)")
    lines = [f"# XDI/1.0 xafsmap/{__version__}", "# Column.1: energy eV", f"# Column.2: {column}",
             f"# Element.symbol: {symbol}", f"# Element.edge: {edge}", f"# Sample.name: {_one_line(name)}"]
    for key, value in (fields or {}).items():
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*\.[A-Za-z0-9_-]+", key):
            raise ValueError(f"XDI field {key!r} must read Namespace.tag")
        lines.append(f"# {key}: {_one_line(value)}")
    lines += ["# ///", *(f"# {_one_line(c)}" for c in comments), "#----", f"# energy {column}"]
    lines += [f"{a!r}  {b!r}" for a, b in zip(e.tolist(), m.tolist())]
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def read_xdi_element(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """``Element.symbol`` and ``Element.edge`` of an XDI file (None where absent or not XDI).

    >>> read_xdi_element("/nonexistent.xdi")
    (None, None)
    """
    found = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if not line.startswith("#") or line.startswith("#--"):
                    break
                key, sep, value = line[1:].partition(":")
                if sep and key.strip().lower() in ("element.symbol", "element.edge"):
                    found[key.strip().lower()] = value.strip()
    except OSError:
        return None, None
    return found.get("element.symbol"), found.get("element.edge")


def _perl(value) -> str:
    """A Perl single-quoted string: only backslash and quote are escaped (as in Python)."""
    text = _one_line(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _written_by_xafsmap(path) -> bool:
    """Whether a project file is one :func:`write_athena` wrote (its second header line)."""
    import gzip

    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                head = f.read(4096)
    except (OSError, EOFError):
        return False
    return b"# This file created by xafsmap" in head


def _group_name(index: int) -> str:
    """Athena-style 5-letter group names, deterministic: xaaaa, xaaab, ..."""
    letters = []
    for _ in range(4):
        index, rest = divmod(index, 26)
        letters.append(chr(97 + rest))
    return "x" + "".join(reversed(letters))


def _athena_args(record: SpectrumRecord, element: str | None, edge: str | None) -> dict:
    e = record.energies
    args = {"label": record.name, "datatype": "xanes", "recordtype": "mu(E)", "is_xmu": 1, "is_nor": 1,
            "is_chi": 0, "is_kev": 0, "bkg_eshift": 0, "bkg_flatten": 1, "npts": e.size,
            "xmin": float(e[0]), "xmax": float(e[-1])}
    if record.e0 is not None:
        args["bkg_e0"] = float(record.e0)
    names = {"pre1": "bkg_pre1", "pre2": "bkg_pre2", "norm1": "bkg_nor1", "norm2": "bkg_nor2", "nnorm": "bkg_nnorm"}
    for key, value in (record.params or {}).items():
        if key in names and value is not None:
            args[names[key]] = value
    if element:
        args["bkg_z"] = element
    if edge:
        args["fft_edge"] = edge
    return args


def write_athena(path: str | os.PathLike, records: Sequence[SpectrumRecord], *, element: str | None = None,
                 edge: str | None = None, compress: bool = True) -> Path:
    """Write spectra as an Athena project file (all-or-nothing).

    Parameters
    ----------
    path : str or Path
        Output ``.prj``.
    records : sequence of SpectrumRecord
        One Athena group each, in order; labels are the records' names.
    element, edge : str, optional
        Absorber and edge (Athena's ``bkg_z`` and ``fft_edge``).
    compress : bool
        gzip the file, as Athena does (Larch and Athena read both).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        No records, a spectrum that is not finite/increasing, or a name containing
        ``undef`` (Larch's reader skips such lines, so the record would lose its label).

    Notes
    -----
    Each record is ``$old_group``, ``@args`` (label, ``datatype`` xanes, ``is_nor`` 1:
    the data are normalized mu; ``bkg_e0`` and the normalization windows as
    ``bkg_pre1``... when known), ``@x`` (energies) and ``@y`` (mu) as quoted numbers with
    round-trip precision, then ``[record]``. Larch: ``larch.io.read_athena(path)``;
    xafsmap: :func:`xafsmap.core.io.references.read_references`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rec = SpectrumRecord("Fe foil", np.array([7100.0, 7110.0]), np.array([0.0, 1.0]))
    >>> p = write_athena(pathlib.Path(tempfile.mkdtemp()) / "a.prj", [rec], compress=False)
    >>> from xafsmap.core.io.athena import athena_records
    >>> athena_records(p.read_text())[0][0][0]
    'Fe foil'
    """
    from ... import __version__

    records = list(records)
    if not records:
        raise ValueError("an Athena project needs at least one spectrum")
    if element is not None or edge is not None:
        element, edge = _check_element(element or "", edge or "")
    lines = [ATHENA_HEADER, f"# This file created by xafsmap {__version__}", ""]
    for index, record in enumerate(records):
        e, m = _check_spectrum(record.name, record.energies, record.mu)
        if "undef" in record.name:
            raise ValueError(f"spectrum name {record.name!r} contains 'undef', which Larch's project reader "
                             "skips: rename it")
        args = _athena_args(SpectrumRecord(record.name, e, m, record.e0, record.params), element, edge)
        lines += [f"$old_group = '{_group_name(index)}';",
                  "@args = (" + ",".join(f"{_perl(k)},{_perl(v)}" for k, v in args.items()) + ");",
                  "@x = (" + ",".join(f"'{v!r}'" for v in e.tolist()) + ");",
                  "@y = (" + ",".join(f"'{v!r}'" for v in m.tolist()) + ");",
                  "[record] # ", ""]
    lines += ["@journal = ();", "", "1;", ""]
    data = "\n".join(lines).encode()
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def write_spectra(records: Sequence[SpectrumRecord], *, element: str, edge: str, prj: str | os.PathLike | None = None,
                  xdi: str | os.PathLike | None = None, overwrite: bool = False, numbers: Sequence[int] | None = None,
                  fields: Sequence[dict] | None = None, comments: Sequence[Sequence[str]] | None = None) -> list[Path]:
    """Write spectra as an Athena project and/or one XDI file each, together or not at all.

    Parameters
    ----------
    records : sequence of SpectrumRecord
    element, edge : str
        Absorber and edge (XDI ``Element.symbol``/``Element.edge``, Athena ``bkg_z``).
    prj : str or Path, optional
        The project to write.
    xdi : str or Path, optional
        A folder (new, or empty, or replaced with ``overwrite``) for ``NN_<name>.xdi``
        files.
    overwrite : bool
        Replace an existing project or non-empty folder.
    numbers : sequence of int, optional
        The ``NN`` of each record's file (e.g. class labels); default 1, 2, ...
    fields, comments : sequence, optional
        Per record: extra XDI fields (dict) and comment lines.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ValueError
        Nothing to write, an output that exists (without ``overwrite``), a bad
        element/edge or spectrum. Nothing is written then, and nothing is left half
        written if a write fails: the folder is built under a temporary name and the
        project written beside it, both renamed into place at the end.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> rec = SpectrumRecord("hematite", np.array([7100.0, 7110.0]), np.array([0.0, 1.0]))
    >>> [p.name for p in write_spectra([rec], element="Fe", edge="K", prj=out / "a.prj", xdi=out / "x")]
    ['01_hematite.xdi', 'a.prj']
    """
    import contextlib
    import os

    from .folders import atomic_folder, claim_output

    records = list(records)
    if prj is None and xdi is None:
        raise ValueError("give a project (.prj) and/or an XDI folder: nothing to write")
    prj = None if prj is None else Path(prj)
    if prj is not None and prj.exists() and not overwrite:
        raise ValueError(f"{prj} exists; choose another name or pass --overwrite")
    if prj is not None and prj.exists() and not _written_by_xafsmap(prj):
        raise ValueError(f"{prj} is not a project xafsmap wrote: it is never replaced; choose another name")
    if xdi is not None:
        claim_output(xdi, overwrite=overwrite)
    _check_element(element, edge)
    written, partial = [], None if prj is None else prj.with_name(f".{prj.name}.partial")
    try:
        with contextlib.ExitStack() as outputs:
            if xdi is not None:
                folder = outputs.enter_context(atomic_folder(xdi, overwrite=overwrite))
                for i, record in enumerate(records):
                    safe = re.sub(r"[^\w.+-]+", "_", record.name).strip("_") or "spectrum"
                    name = f"{(numbers or range(1, len(records) + 1))[i]:02d}_{safe}.xdi"
                    write_xdi(folder / name, record.energies, record.mu, name=record.name, element=element,
                              edge=edge, fields=(fields or [None] * len(records))[i],
                              comments=(comments or [()] * len(records))[i])
                    written.append(Path(xdi) / name)
            if partial is not None:
                write_athena(partial, records, element=element, edge=edge)
        if partial is not None:
            os.replace(partial, prj)
            written.append(prj)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    return written
