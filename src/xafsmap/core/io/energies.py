"""Energies of a stack: sidecar files, file names, validation, natural sort.

Energies are a 1-D float64 array in eV, finite and strictly increasing. A sidecar is one
value per line, or a CSV/TSV whose column is named ``energy``/``energies``/``E``/
``energy_eV``; ``#`` starts a comment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .bounds import ENERGY_RANGE_EV

__all__ = ["find_energies_file", "natural_sort_key", "read_energies"]

SIDECARS = ("energies.txt", "energy.txt")
#: Largest energies file read (a million energies with comments fit easily).
MAX_ENERGIES_BYTES = 64 * 2**20
_ENERGY_COLUMN = re.compile(r"^(e|energy|energies)([_ ]?\(?\[?ev\]?\)?)?$")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NUMBER_EV = re.compile(r"(\d+(?:\.\d+)?)\s*[-_]?ev(?![a-z])", re.I)


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


def validate_energies(values: ArrayLike, *, source: str) -> np.ndarray:
    energies = np.asarray(values, dtype=np.float64)
    if energies.ndim != 1 or energies.size == 0:
        raise ValueError(f"{source}: energies must be a non-empty 1-D list, got shape {energies.shape}")
    low, high = ENERGY_RANGE_EV
    bad = np.flatnonzero(~(np.isfinite(energies) & (energies >= low) & (energies <= high)))
    if bad.size:
        raise ValueError(f"{source}: energy {bad[0]} is {energies[bad[0]]}; energies must be finite numbers in eV "
                         f"between {low:g} and {high:g}")
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
    if path.stat().st_size > MAX_ENERGIES_BYTES:
        raise ValueError(f"{path.name} is {path.stat().st_size} bytes, too large for an energies file "
                         f"(at most {MAX_ENERGIES_BYTES}); is it the right file?")
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
    return validate_energies(values, source=path.name)


def is_glob(path: str | os.PathLike) -> bool:
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
    if is_glob(stack_path):
        folder, names = Path(stack_path).parent, list(SIDECARS)
    else:
        path = Path(stack_path)
        if path.is_dir():
            folder, names = path, [f"{path.name}.energies.txt", *SIDECARS]
        else:
            folder, names = path.parent, [f"{path.stem}.energies.txt", *SIDECARS]
    return next((folder / name for name in names if (folder / name).is_file()), None)



def energies_from_names(files: list[Path], *, where: str) -> np.ndarray:
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
    return validate_energies(values, source=f"energies in the file names of {where}")


