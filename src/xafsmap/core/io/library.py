"""Reference libraries: every spectrum in folders of reference files, and what could not be read.

:func:`scan_library` reads every file of the formats :mod:`~xafsmap.core.io.references`
knows under some folders (or files), skipping what it cannot read with the reason;
the Trust dock and ``xafsmap search-references`` rank these candidates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .references import Reference, read_reference_file, read_references, select_record, split_spec, unique_names

__all__ = ["list_references", "read_library", "scan_library"]


def list_references(path: str | os.PathLike) -> list[str]:
    """Names of the references in a file (one for single-spectrum files).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "lib.nor"
    >>> _ = p.write_text("# energy a b\\n7100 0.1 0.2\\n7110 0.5 0.6\\n")
    >>> list_references(p)
    ['a', 'b']
    """
    return [r.name for r in read_references(path)]


def _library_files(paths) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += [str(f) for f in sorted(p.rglob("*"))
                    if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)]
        else:
            out.append(os.fspath(p))
    return out


def scan_library(paths: str | os.PathLike | Iterable[str | os.PathLike]
                 ) -> tuple[list[Reference], list[tuple[str, str]]]:
    """Read a reference library: folders (recursively, sorted), files and ``FILE:NAME`` specs.

    Parameters
    ----------
    paths : path-like or iterable of path-like
        Folders, files (any supported format) or ``FILE:NAME`` specs.

    Returns
    -------
    references : list of Reference
        Every readable spectrum; repeated names across the library get
        `` (2)``, `` (3)`` … appended so each name selects one spectrum.
    skipped : list of (str, str)
        ``(file or file:record, reason)`` for files that could not be read
        and Athena records that are not mu(E).

    Raises
    ------
    FileNotFoundError
        If a given path does not exist (a typo is not a skipped file).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.dat").write_text("7100 0.1\\n7110 0.5\\n")
    >>> _ = (d / "notes.txt").write_text("measured in 2007\\n")
    >>> refs, skipped = scan_library(d)
    >>> [r.name for r in refs], [pathlib.Path(s).name for s, _ in skipped]
    (['a'], ['notes.txt'])
    """
    refs: list[Reference] = []
    skipped: list[tuple[str, str]] = []
    for spec in _library_files(paths):
        path, name = split_spec(spec)
        try:
            found, bad = read_reference_file(path)
            refs += [select_record(found, bad, name, path)] if name is not None else found
            skipped += bad if name is None else []
        except (ValueError, OSError, UnicodeError) as err:
            skipped.append((spec, str(err)))
    names = unique_names([r.name for r in refs])
    return [r if n == r.name else Reference(n, r.energies, r.mu, r.source)
            for r, n in zip(refs, names)], skipped


def read_library(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Reference]:
    """The readable references of :func:`scan_library` (unreadable files are left out).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.dat").write_text("7100 0.1\\n7110 0.5\\n")
    >>> [r.name for r in read_library([d])]
    ['a']
    """
    return scan_library(paths)[0]
