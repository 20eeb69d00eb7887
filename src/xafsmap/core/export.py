"""Spectra out, for the tools XAS users trust: XDI 1.0 files and Athena projects.

:func:`write_xdi` writes one spectrum as an XDI 1.0 file (``Element.symbol``,
``Element.edge``, ``Column.1: energy eV``, the normalized mu column), as Larch's
``read_xdi`` and Athena read it. :func:`write_athena` writes several spectra as an
Athena project (``.prj``, gzip'd Perl-data records as Demeter writes them, which
Athena and Larch's ``read_athena`` read). :func:`mean_spectra` averages the normalized
spectra of each label of a map over its pixels, band by band, for exporting classes.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._files import atomic_file

__all__ = ["SpectrumRecord", "mean_spectra", "read_xdi_element", "write_athena", "write_xdi"]

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


def write_xdi(path, energies, mu, *, name: str, element: str, edge: str, column: str = "normtrans",
              fields: dict | None = None, comments=()) -> Path:
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
    from .. import __version__

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


def read_xdi_element(path) -> tuple[str | None, str | None]:
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


def write_athena(path, records, *, element: str | None = None, edge: str | None = None,
                 compress: bool = True) -> Path:
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
    xafsmap: :func:`xafsmap.core.references.read_references`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rec = SpectrumRecord("Fe foil", np.array([7100.0, 7110.0]), np.array([0.0, 1.0]))
    >>> p = write_athena(pathlib.Path(tempfile.mkdtemp()) / "a.prj", [rec], compress=False)
    >>> from xafsmap.core.athena import athena_records
    >>> athena_records(p.read_text())[0][0][0]
    'Fe foil'
    """
    from .. import __version__

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


def mean_spectra(data, energies, labels, *, n_labels: int, normalization: dict | None = None,
                 rows: int | None = None):
    """Mean normalized spectrum of each label of a map, over its pixels, in row bands.

    Parameters
    ----------
    data : array or dask array, shape (E, M, N)
        Absorbance on the map's grid.
    energies : array_like, shape (E,)
        eV.
    labels : array_like (numpy, zarr), shape (M, N), integer
        0 = no sample (ignored), 1..``n_labels`` = classes.
    n_labels : int
        Number of classes.
    normalization : dict, optional
        :func:`~xafsmap.core.normalize.normalize` options (the map's
        ``report.json`` ``parameters.normalization``), applied to every pixel.
    rows : int, optional
        Rows per band (default: about 16 MB of float32 per band).

    Returns
    -------
    means : ndarray, shape (n_labels, E), float64
        NaN where a label has no finite value at an energy.
    pixels : ndarray, shape (n_labels,), int64
        Pixels of each label.

    Raises
    ------
    ValueError
        If the labels' grid differs from the data's.

    Notes
    -----
    Each pixel is normalized as the map normalized it (Larch ``pre_edge`` ``flat``
    with the map's windows), then the spectra of each label are averaged, ignoring
    NaN values. Memory: one band of the stack at a time.

    Examples
    --------
    >>> e = np.linspace(7000.0, 7300.0, 61)
    >>> step = 1 / (1 + np.exp(-(e - 7112.0) / 3.0))
    >>> cube = (0.1 + np.multiply.outer(step, [[1.0, 2.0], [3.0, 4.0]])).astype(np.float32)
    >>> means, pixels = mean_spectra(cube, e, np.array([[1, 1], [2, 0]]), n_labels=2)
    >>> pixels.tolist(), bool(np.allclose(means[:, -1], 1.0, atol=0.02))
    ([2, 1], True)
    """
    from scipy import sparse

    from .normalize import normalize
    from .tiff import BAND_BYTES

    energies = np.asarray(energies, np.float64)
    n_e, m, n = data.shape
    if tuple(labels.shape) != (m, n):
        raise ValueError(f"the labels are {tuple(labels.shape)} pixels but the stack's images are {(m, n)}")
    rows = rows or max(1, BAND_BYTES // max(1, n_e * n * 4))
    sums, finite = np.zeros((n_e, n_labels)), np.zeros((n_e, n_labels))
    pixels = np.zeros(n_labels, np.int64)
    for r0 in range(0, m, rows):
        lab = np.asarray(labels[r0 : r0 + rows]).ravel().astype(np.int64)
        keep = np.flatnonzero((lab > 0) & (lab <= n_labels))
        if keep.size == 0:
            continue
        band = np.asarray(data[:, r0 : r0 + rows], dtype=np.float32).reshape(n_e, -1)[:, keep]
        norm = np.asarray(normalize(band, energies, **(normalization or {})).norm, np.float64)
        onehot = sparse.csr_matrix((np.ones(keep.size), (np.arange(keep.size), lab[keep] - 1)),
                                   shape=(keep.size, n_labels))
        ok = np.isfinite(norm)
        sums += onehot.T.dot(np.where(ok, norm, 0.0).T).T
        finite += onehot.T.dot(ok.T.astype(np.float64)).T
        pixels += np.bincount(lab[keep] - 1, minlength=n_labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(finite > 0, sums / finite, np.nan)
    return means.T, pixels
