"""Reference spectra (XAFS standards) from the files users already keep.

Readable formats, recognised by content rather than by extension:

* XDI (``# XDI/1.0`` header, ``# Column.N: name units`` tags);
* Athena/Demeter multicolumn exports (``.nor``: one reference per column);
* Athena projects (``.prj``, gzip'd or plain; see :mod:`xafsmap.core.io.athena`);
* plain whitespace/comma separated columns (``.e``, ``.dat``, ``.txt``,
  ``.xmu``, STXM ``.r`` …): energy first, mu second, ``#`` header lines.

A *spec* names a file, or one record of it as ``FILE:NAME``
(``"FeLibNov2021.nor:Goethite"``, ``"Fe.prj:Fe foil"``).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xafsmap.core.io.athena import athena_records
from .bounds import ENERGY_RANGE_EV, MAX_PROJECT_BYTES

__all__ = ["Reference", "read_references", "read_reference", "split_spec"]

# XDI column labels holding mu(E), in order of preference (XDI dictionary,
# plus the bare ``mu``/``norm`` and Athena's ``xmu``). ``murefer`` is the
# reference-foil channel, never the sample, so it is not used.
_MU_LABELS = ("mutrans", "mufluor", "mu", "xmu", "normtrans", "normfluor", "norm")
_TAG = re.compile(r"^([A-Za-z][\w-]*)\.([\w-]+)\s*:\s*(.*)$")
_SEP = re.compile(r"[\s,;]+")


@dataclass(frozen=True, eq=False)
class Reference:
    """One reference spectrum.

    Attributes
    ----------
    name : str
        File stem, or the column/record name in multi-reference files.
    energies : ndarray, shape (n,), float64
        eV, strictly increasing (read-only).
    mu : ndarray, shape (n,), float64
        Absorbance as stored in the file: raw or normalized mu(E) (read-only).
    source : str
        ``"path"`` or ``"path:record"``.
    """

    name: str
    energies: np.ndarray
    mu: np.ndarray
    source: str


def _make_reference(name: str, energies, mu, source: str, where: str) -> Reference:
    """Sort by energy, drop exact duplicate energies (first kept), validate."""
    e = np.asarray(energies, dtype=np.float64)
    m = np.asarray(mu, dtype=np.float64)
    for what, arr in (("energies", e), ("mu values", m)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"{where}: reference {name!r} has {bad.size} non-finite "
                             f"{what} (first at data row {bad[0] + 1})")
    low, high = ENERGY_RANGE_EV
    if e.size and not (low <= e.min() and e.max() <= high):
        raise ValueError(f"{where}: reference {name!r} has energies {e.min():g}–{e.max():g} eV; energies must lie "
                         f"between {low:g} and {high:g} eV")
    order = np.argsort(e, kind="stable")
    e, m = e[order], m[order]
    keep = np.concatenate([[True], np.diff(e) > 0])
    e, m = e[keep], m[keep]
    if e.size < 2:
        raise ValueError(f"{where}: reference {name!r} has {e.size} distinct energies; need at least 2")
    e.setflags(write=False)
    m.setflags(write=False)
    return Reference(name, e, m, source)


def unique_names(names: list[str]) -> list[str]:
    """Append `` (2)``, `` (3)`` … to repeated names."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _parse_table(text: str, where: str):
    """Header tags, last comment line, first-data line number and rows of a column file."""
    tags: dict[str, str] = {}
    last_comment, rows, ncol, first = "", [], 0, 0
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if not rows:
                body = s.lstrip("#%").strip()
                m = _TAG.match(body)
                if m:
                    tags[f"{m[1]}.{m[2]}".lower()] = m[3].strip()
                last_comment = body
            continue
        tokens = [t for t in _SEP.split(s) if t]
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            if not rows:  # free-text header lines without '#', e.g. '======'
                continue
            bad = next(t for t in tokens if not _is_float(t))
            raise ValueError(f"{where} line {lineno}: expected {ncol} numbers, found {bad!r}") from None
        if not rows:
            ncol, first = len(values), lineno
        elif len(values) != ncol:
            raise ValueError(f"{where} line {lineno}: expected {ncol} numbers, found {len(values)}")
        rows.append(values)
    if not rows:
        raise ValueError(f"{where}: no rows of numbers found; not a recognised reference file "
                         "(XDI, Athena .prj/.nor, or energy/mu columns)")
    if ncol < 2:
        raise ValueError(f"{where} line {first}: only 1 column; a reference needs energy and mu columns")
    return tags, last_comment, np.array(rows, dtype=np.float64)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _column_labels(tags: dict[str, str], last_comment: str, ncol: int):
    """Column names and units from ``Column.N`` tags, else from the label line."""
    labels, units = [None] * ncol, [""] * ncol
    for key, value in tags.items():
        ns, _, idx = key.partition(".")
        if ns == "column" and idx.isdigit() and 1 <= int(idx) <= ncol and value:
            words = value.split()
            labels[int(idx) - 1] = words[0]
            units[int(idx) - 1] = " ".join(words[1:])
    if any(lab is not None for lab in labels):
        return [lab or f"column {i + 1}" for i, lab in enumerate(labels)], units
    words = last_comment.split()
    return (words if len(words) == ncol else None), units


def _energy_scale(e: np.ndarray, unit: str) -> np.ndarray:
    # keV: said by the unit, or obvious (every value within 0.1-100, no XAFS edge in eV is there)
    if unit.lower() == "kev" or (not unit and np.all((e > 0.1) & (e < 100))):
        return e * 1000.0
    return e


def _choose_columns(data, labels, units, where: str, strict: bool):
    """(energies, mu, how) by XDI conventions; ``strict`` for declared XDI files."""
    low = [str(lab).lower() for lab in labels] if labels else []
    if "energy" in low:
        ie = low.index("energy")
    elif "angle" in low:
        raise ValueError(f"{where}: has an 'angle' column but no 'energy' column; "
                         "convert the monochromator angle to energy (eV) first")
    elif strict:
        raise ValueError(f"{where}: no 'energy' column among {labels}")
    else:
        ie = 0
    energies = _energy_scale(data[:, ie], units[ie] if units else "")
    for name in _MU_LABELS:
        if name in low:
            return energies, data[:, low.index(name)], name
    cols = {name: data[:, low.index(name)] for name in ("i0", "itrans", "ifluor") if name in low}
    if "i0" in cols and ("itrans" in cols or "ifluor" in cols):
        other = "itrans" if "itrans" in cols else "ifluor"
        bad = int(np.count_nonzero((cols["i0"] <= 0) | (cols[other] <= 0)))
        if bad:
            raise ValueError(f"{where}: cannot compute mu from i0 and {other}: "
                             f"{bad} rows have a count <= 0")
        if other == "itrans":
            return energies, np.log(cols["i0"] / cols["itrans"]), "ln(i0/itrans)"
        return energies, cols["ifluor"] / cols["i0"], "ifluor/i0"
    if strict:
        raise ValueError(f"{where}: no absorbance column among {labels}; expected one of "
                         f"{', '.join(_MU_LABELS)}, or i0 with itrans or ifluor")
    return energies, data[:, 1 if ie == 0 else 0], "second column"


def _read_columns(path: Path, text: str) -> list[Reference]:
    where = path.name
    tags, last_comment, data = _parse_table(text, where)
    ncol = data.shape[1]
    labels, units = _column_labels(tags, last_comment, ncol)
    multi = "multicolumn" in tags.get("demeter.output_filetype", "").lower() or (
        path.suffix.lower() == ".nor" and ncol > 2)
    if multi:
        low = [str(lab).lower() for lab in labels] if labels else []
        ie = low.index("energy") if "energy" in low else 0
        energies = _energy_scale(data[:, ie], units[ie])
        cols = [i for i in range(ncol) if i != ie]
        names = unique_names([labels[i] if labels else f"column {i + 1}" for i in cols])
        return [_make_reference(n, energies, data[:, i], f"{path}:{n}", where)
                for n, i in zip(names, cols)]
    is_xdi = text.lstrip().upper().startswith("# XDI/") or any(k.startswith("column.") for k in tags)
    energies, mu, _ = _choose_columns(data, labels, units, where, strict=is_xdi)
    return [_make_reference(path.stem, energies, mu, str(path), where)]


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    """The file's bytes, gunzipped if gzip'd (and whether it was); at most MAX_PROJECT_BYTES
    are read or decompressed."""
    size = path.stat().st_size
    if size > MAX_PROJECT_BYTES:
        raise ValueError(f"{path.name} is {size / 2**20:.0f} MB, too large for a reference file "
                         f"(at most {MAX_PROJECT_BYTES // 2**20} MB)")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw, False
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            raw = f.read(MAX_PROJECT_BYTES + 1)  # decompressed in bounded pieces
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path.name}: damaged gzip file ({err})") from None
    if len(raw) > MAX_PROJECT_BYTES:
        raise ValueError(f"{path.name} decompresses to more than {MAX_PROJECT_BYTES // 2**20} MB, too large "
                         "for a reference file (or a damaged one)")
    return raw, True


def read_reference_file(path: Path) -> tuple[list[Reference], list[tuple[str, str]]]:
    """All references of one file and the records skipped as (source, reason)."""
    raw, gzipped = _read_bytes(path)
    if gzipped and not raw.lstrip().startswith(b"# Athena project file") and path.suffix.lower() != ".prj":
        raise ValueError(f"{path.name}: gzip-compressed but not an Athena project; not a recognised reference file")
    if b"\x00" in raw[:65536]:
        raise ValueError(f"{path.name}: binary file; not a recognised reference file")
    text = raw.decode("utf-8", errors="replace")  # headers may hold Latin-1 bytes
    if path.suffix.lower() == ".prj" or text.lstrip().startswith("# Athena project file"):
        spectra, skipped = athena_records(text, label=path.name)
        names = unique_names([name for name, _, _ in spectra])
        refs = [_make_reference(n, e, m, f"{path}:{n}", f"{path.name} record {n!r}")
                for n, (_, e, m) in zip(names, spectra)]
        return refs, [(f"{path}:{name}", reason) for name, reason in skipped]
    return _read_columns(path, text), []


def split_spec(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """``FILE`` or ``FILE:NAME`` -> (file, name or None); split at a ':' only where the part
    before it is a file (names and paths may hold ':'). FileNotFoundError if no file."""
    s = os.fspath(spec)
    if Path(s).is_file():
        return Path(s), None
    for i in reversed([i for i, c in enumerate(s) if c == ":"]):
        if i > 0 and Path(s[:i]).is_file():
            return Path(s[:i]), s[i + 1:]
    raise FileNotFoundError(f"no reference file {s!r}")


def read_references(spec: str | os.PathLike) -> list[Reference]:
    """Read every reference in a file, or the one named by ``FILE:NAME``.

    Parameters
    ----------
    spec : str or path-like
        A file, or ``"FILE:NAME"`` to select one column/record by name. The
        split is made at the last ``':'`` whose left part is an existing file,
        so drive letters and names containing ``':'`` or spaces work.

    Returns
    -------
    list of Reference
        In file order. Energies are converted keV -> eV when the XDI unit says
        keV, or when every energy lies between 0.1 and 100 (obviously keV).

    Raises
    ------
    FileNotFoundError
        If no file matches.
    ValueError
        Malformed file (message names the file and line), unrecognised
        format, no mu column, non-finite energies, unknown NAME (message
        lists the names available).

    Notes
    -----
    XDI column choice follows the XDI dictionary: ``mutrans``, ``mufluor``,
    ``mu``, then ``normtrans``, ``normfluor``, ``norm``; else
    ln(``i0``/``itrans``); else ``ifluor``/``i0`` (Larch ``read_xdi`` +
    Athena column selection). Athena projects: see
    :func:`xafsmap.core.io.athena.athena_records` (``bkg_eshift`` applied).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "FeO.dat"
    >>> _ = p.write_text("# energy mu\\n7100 0.1\\n7110 0.5\\n7120 1.0\\n")
    >>> [(r.name, r.mu.tolist()) for r in read_references(p)]
    [('FeO', [0.1, 0.5, 1.0])]
    """
    path, name = split_spec(spec)
    refs, skipped = read_reference_file(path)
    if name is None:
        if not refs:
            why = "; ".join(f"{s}: {r}" for s, r in skipped)
            raise ValueError(f"{path.name}: no mu(E) spectra found ({why})")
        return refs
    return [select_record(refs, skipped, name, path)]


def select_record(refs: list[Reference], skipped: Sequence[tuple[str, str]], name: str, path: Path) -> Reference:
    for ref in refs:
        if ref.name == name:
            return ref
    folded = [r for r in refs if r.name.strip().casefold() == name.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    for source, reason in skipped:
        if source.rpartition(":")[2] == name:
            raise ValueError(f"{path.name}: record {name!r} cannot be used: {reason}")
    raise ValueError(f"{path.name} has no reference named {name!r}; "
                     f"available: {', '.join(repr(r.name) for r in refs)}")


def read_reference(spec: str | os.PathLike) -> Reference:
    """Read exactly one reference: a single-spectrum file or ``FILE:NAME``.

    Raises ``ValueError`` listing the names when a multi-reference file is
    given without ``:NAME``. See :func:`read_references` for the formats.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "Fe foil.txt"
    >>> _ = p.write_text("7100 0.1\\n7110 0.5\\n")
    >>> read_reference(p).name
    'Fe foil'
    """
    refs = read_references(spec)
    if len(refs) != 1:
        raise ValueError(f"{os.fspath(spec)} holds {len(refs)} references; choose one with "
                         f"FILE:NAME from {', '.join(repr(r.name) for r in refs)}")
    return refs[0]



