"""Checking setting values, and reading the text forms the command line and docks use.

:func:`check_field` checks one value against its declaration
(:class:`~xafsmap.core.settings.declare.Setting`): its kind, range or choices. Every
message names the value as the user wrote it (``--trees 0``, ``r.toml: [classifier]
n_trees = 0``, a dock's label): callers pass that name. :func:`check_settings` checks a
whole :class:`~xafsmap.core.settings.schema.Settings` before a job runs (an input
given, no two settings that exclude each other). The ``parse_*`` functions read the
text forms of the command line (``--roi 0:40,2:50``, ``--set two=a.xdi,b.xdi``).

Standard library only.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Callable

from .declare import OFFSET_RANGE, ReferenceSpec, Setting

__all__ = [
    "check_field",
    "check_mixtures",
    "check_number",
    "check_settings",
    "normalize_field",
    "parse_compositions",
    "parse_offset",
    "parse_roi",
    "parse_set",
]


def check_number(item: Setting, value: Any, where: str) -> int | float:
    """Check a number against ``item``'s range; return it as its kind.

    ``where`` is how the user wrote it; the value follows, or takes the place of ``{}``
    (``"--trees"``, ``"r.toml: [classifier] n_trees ="``, ``"--offset Fe={}"``).

    Examples
    --------
    >>> from xafsmap.core.settings.schema import SETTINGS
    >>> check_number(SETTINGS["n_trees"], 50, "--trees")
    50
    >>> check_number(SETTINGS["n_trees"], 10**9, "--trees")
    Traceback (most recent call last):
    ValueError: --trees 1000000000 is out of range: it must lie between 1 and 10000
    """
    shown = where.replace("{}", str(value)) if "{}" in where else f"{where} {value}"
    whole = item.kind == "int"
    what = "a whole number" if whole else "a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{shown} is not {what}")
    if whole and value != int(value):
        raise ValueError(f"{shown} is not {what}")
    below = value <= item.low if item.open_low else value < item.low
    above = item.high is not None and (value >= item.high if item.open_high else value > item.high)
    if below or above:
        raise ValueError(f"{shown} is out of range: it must {item.describe_range()}")
    return int(value) if whole else float(value)


def normalize_field(item: Setting, value: Any) -> Any:
    """A value in its canonical form: paths as str, sequences as tuples, numbers as their kind."""
    if value is None:
        return None
    kind = item.kind
    if kind == "path" and isinstance(value, os.PathLike):
        return os.fspath(value)
    if kind == "paths" and not isinstance(value, str):
        return tuple(os.fspath(v) if isinstance(v, os.PathLike) else v for v in value)
    if kind == "range" and isinstance(value, (list, tuple)):
        return tuple(float(v) if _is_number(v) else v for v in value)
    if kind in ("roi", "names") and isinstance(value, (list, tuple)):
        return tuple(int(v) if kind == "roi" and _is_number(v) and float(v).is_integer() else v for v in value)
    if kind == "matrix" and isinstance(value, (list, tuple)):
        return tuple(tuple(float(v) if _is_number(v) else v for v in row) if isinstance(row, (list, tuple)) else row
                     for row in value)
    if kind == "references" and isinstance(value, (list, tuple)):
        return tuple(ReferenceSpec(os.fspath(v)) if isinstance(v, (str, os.PathLike)) else v for v in value)
    if kind == "sets" and isinstance(value, dict):
        value = tuple(value.items())
    if kind == "sets" and isinstance(value, (list, tuple)):
        return tuple((name, tuple(os.fspath(s) for s in specs)) for name, specs in value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_field(item: Setting, value: Any, where: str) -> None:
    """Check one setting's value (its kind, range or choices); ``where`` names it.

    Raises
    ------
    ValueError
        ``'<where> must be ...'`` or ``'<where> = 0 is out of range: ...'``.

    Examples
    --------
    >>> from xafsmap.core.settings.schema import SETTINGS
    >>> check_field(SETTINGS["metric"], "cosine", "--metric")
    Traceback (most recent call last):
    ValueError: --metric = 'cosine' is not one of ['euclidean', 'manhattan', 'jensen-shannon']
    """
    def bad(expected):
        return ValueError(f"{where} must be {expected}, got {value!r}")

    kind = item.kind
    if value is None:
        if item.optional:
            return
        raise bad("given")
    if kind in ("path", "text", "choice") and (not isinstance(value, str) or not value.strip()):
        raise bad("a non-empty string")
    if kind == "choice" and value not in item.choices:
        raise ValueError(f"{where} = {value!r} is not one of {list(item.choices)}")
    if kind == "text" and item.name == "mixtures":
        check_mixtures(value, where=where)
    if kind == "text" and item.name == "axes" and sorted(value.upper()) not in (sorted("EYX"), sorted("EZYX")):
        raise ValueError(f"{where} = {value!r} must be a permutation of EYX, e.g. XYE (or of EZYX for a volume)")
    if kind == "flag" and not isinstance(value, bool):
        raise bad("true or false")
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad("a whole number")
    if kind == "float" and not (_is_number(value) and math.isfinite(value)):
        raise bad("a finite number")
    if kind in ("int", "float"):
        check_number(item, value, f"{where} =")
    if kind == "paths" and (not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value)):
        raise bad("a list of paths")
    if kind == "names" and (not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value)):
        raise bad("a list of names")
    if kind == "roi":
        if not (isinstance(value, tuple) and len(value) == 4 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    for v in value)):
            raise bad("a list of 4 whole numbers")
        if not (0 <= value[0] < value[1] and 0 <= value[2] < value[3]):
            raise ValueError(f"{where} = {list(value)} must read [row0, row1, col0, col1] with 0 <= row0 < row1 "
                             "and 0 <= col0 < col1")
    if kind == "range":
        if not (isinstance(value, tuple) and len(value) == 2 and all(_is_number(v) for v in value)):
            raise bad("a list of 2 numbers")
        if not value[0] < value[1]:
            raise ValueError(f"{where} = {list(value)}: the first number must be below the second")
        for v in value:
            check_number(item, v, f"{where} = {list(value)}: {{}}")
    if kind == "matrix" and (not isinstance(value, tuple) or not value
                             or not all(isinstance(row, tuple) and all(_is_number(v) for v in row) for row in value)):
        raise bad("a list of rows of fractions")
    if kind == "references":
        _check_references(value, where)
    if kind == "sets":
        _check_sets(value, where)


def _check_references(value, where: str) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, ReferenceSpec) for v in value):
        raise ValueError(f"{where} must be a list of references, got {value!r}")
    for i, ref in enumerate(value, start=1):
        if not isinstance(ref.spec, str) or not ref.spec.strip():
            raise ValueError(f"{where} #{i}: spec must be a non-empty string, got {ref.spec!r}")
        if ref.name is not None and (not isinstance(ref.name, str) or not ref.name.strip()):
            raise ValueError(f"{where} #{i}: name must be a non-empty string, got {ref.name!r}")
        low, high = OFFSET_RANGE
        if not (_is_number(ref.offset) and math.isfinite(ref.offset)):
            raise ValueError(f"{where} #{i}: offset must be a finite number, got {ref.offset!r}")
        if not low <= ref.offset <= high:
            raise ValueError(f"{where} #{i} offset = {float(ref.offset)} is out of range: it must lie between "
                             f"{low:g} and {high:g} eV")


def _check_sets(value, where: str) -> None:
    if not isinstance(value, tuple):
        raise ValueError(f"{where} must be named lists of references, got {value!r}")
    names = [name for name, _ in value]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: two sets are named alike: {names}")
    for name, specs in value:
        if not isinstance(name, str) or not name.strip() or not specs or not all(isinstance(s, str) and s
                                                                                 for s in specs):
            raise ValueError(f"{where}: set {name!r} must name one or more references")


# settings is a Settings (.schema imports this module; a type-only import back would be a cycle)
def check_settings(settings: Any, *, name: Callable[[str], str] = str, job: str = "map", where: str = "") -> None:
    """Check that a job can run with these settings (each field is checked on construction).

    Parameters
    ----------
    settings : Settings
    name : callable
        The user's name of a setting (``"--shift-map"``, ``"[prepare] shift_map"``).
    job : {'map', 'search-references', 'compare-models'}
        What runs: a search needs a library, a comparison sets.
    where : str
        Where the settings come from (a recipe file), put before the message.

    Raises
    ------
    ValueError
        For a missing input or reference, two settings that exclude each other, or
        classes that do not fit the references.

    Examples
    --------
    >>> from xafsmap.core.settings import ReferenceSpec, Settings
    >>> check_settings(Settings(references=(ReferenceSpec("Fe.xdi"),), stack="s.tif", shift_map="a.tif",
    ...                         calibration="foil.tif"), name=lambda s: "--" + s.replace("_", "-"))
    Traceback (most recent call last):
    ValueError: --shift-map and --calibration exclude each other: give one of them
    """
    try:
        _check_whole(settings, name, job)
    except ValueError as error:
        if not where:
            raise
        raise ValueError(f"{where}: {error}") from None


def _check_whole(s, name, job: str) -> None:
    if (s.stack is None) == (s.sample is None):
        raise ValueError(f"give exactly one of {name('stack')} (a stack file) or {name('sample')} = \"fe_sample\"")
    if s.sample is not None and any(getattr(s, p) for p in ("energies", "flat", "dark", "i0", "axes")):
        raise ValueError(f"{name('sample')} takes no energies, flat, dark, i0 or axes")
    for one, other in (("shift_map", "calibration"), ("workers", "scheduler")):
        if getattr(s, one) is not None and getattr(s, other) is not None:
            raise ValueError(f"{name(one)} and {name(other)} exclude each other: give one of them")
    if s.calibration_reference is not None and s.calibration is None:
        raise ValueError(f"{name('calibration_reference')} needs {name('calibration')} (a foil stack)")
    if job == "compare-models":
        if len(s.sets) < 2:
            raise ValueError(f"give at least two {name('sets')} to compare (got {len(s.sets)})")
        return
    if not s.references:
        raise ValueError(f"missing {name('references')}: name at least one reference")
    names = [ref.name for ref in s.references if ref.name]
    if len(set(names)) != len(names):
        raise ValueError(f"two references share a name: {names}")
    if job == "search-references" and not s.library:
        raise ValueError(f"give a {name('library')} of candidate spectra to search")
    _check_classes(s, name)


def _check_classes(s, name) -> None:
    if (s.class_names is None) != (s.compositions is None):
        raise ValueError(f"{name('class_names')} and {name('compositions')} go together: give both or neither")
    if s.compositions is None:
        return
    k = len(s.references)
    if len(s.class_names) != len(s.compositions):
        raise ValueError(f"{len(s.class_names)} {name('class_names')} but {len(s.compositions)} "
                         f"{name('compositions')}")
    for label, row in zip(s.class_names, s.compositions):
        if len(row) != k:
            raise ValueError(f"class {label!r} has {len(row)} fractions but there are {k} references")
        if min(row) < 0 or sum(row) <= 0:
            raise ValueError(f"class {label!r} fractions {list(row)} must be >= 0 with a positive sum")


_TERM = re.compile(r"^\s*([^=]+?)\s*=\s*(\S+)\s*$")


def check_mixtures(spec: str, *, where: str = "--mixtures") -> str:
    """Check a mixture specification before any work (the names are checked with the references).

    Each explicit mixture must mix at least two references, with finite, non-negative
    fractions (or percentages) summing to 1 (100 %): ``"Fe=50"`` alone is refused
    rather than read as pure Fe.

    Examples
    --------
    >>> check_mixtures("Fe=50,FeO=50;FeO=0.25,Fe2O3=0.75")
    'Fe=50,FeO=50;FeO=0.25,Fe2O3=0.75'
    >>> check_mixtures("Fe=50")
    Traceback (most recent call last):
    ValueError: --mixtures 'Fe=50' sums to 50 %, not 100 %: give every part, e.g. Fe=50,FeO=50
    """
    text = spec.strip()
    if text.lower() in ("none", "pairs"):
        return spec
    if text.lower().startswith("pairs:"):
        for part in text.partition(":")[2].split(","):
            value = _number(part, where, text)
            if not 0 < value < 100:
                raise ValueError(f"{where} {text!r}: {part.strip()} must lie strictly between 0 and 100 (%)")
        return spec
    for item in filter(None, (s.strip() for s in text.split(";"))):
        values = []
        for term in item.split(","):
            match = _TERM.match(term)
            if match is None:
                raise ValueError(f"{where} {item!r} must read NAME=PERCENT,NAME=PERCENT (e.g. Fe=50,FeO=50)")
            values.append(_number(match[2], where, item))
        if any(v < 0 for v in values):
            raise ValueError(f"{where} {item!r} has a negative fraction")
        total = sum(v / 100 if v > 1 else v for v in values)
        if abs(total - 1) > 0.01:
            raise ValueError(f"{where} {item!r} sums to {100 * total:g} %, not 100 %: give every part, "
                             "e.g. Fe=50,FeO=50")
        if sum(v > 0 for v in values) < 2:
            raise ValueError(f"{where} {item!r} is a pure reference, which is always a class; "
                             "a mixture needs two or more references")
    return spec


def _number(text: str, where: str, context: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where} {context!r}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where} {context!r}: {text.strip()!r} is not a finite number")
    return value


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """Parse ``"ROW0:ROW1,COL0:COL1"`` (pixels, half-open) into a 4-tuple.

    >>> parse_roi("100:900, 0:1700")
    (100, 900, 0, 1700)
    """
    try:
        rows, cols = (part.split(":") for part in text.replace(" ", "").split(","))
        r0, r1, c0, c1 = (int(v) for v in (*rows, *cols))
    except ValueError:
        raise ValueError(f"region {text!r} must read ROW0:ROW1,COL0:COL1, e.g. 100:900,0:1700") from None
    return r0, r1, c0, c1


def parse_offset(item: str, *, where: str = "--offset") -> tuple[str, float]:
    """``NAME=EV`` -> (name, offset in eV within its range).

    >>> parse_offset("Fe=0.5")
    ('Fe', 0.5)
    """
    name, eq, value = item.rpartition("=")
    if not eq or not name:
        raise ValueError(f"{where} {item!r} must read NAME=EV")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{where} {item!r}: {value!r} is not a number of eV") from None
    low, high = OFFSET_RANGE
    if not math.isfinite(number):
        raise ValueError(f"{where} {name}={value} is not a finite number")
    if not low <= number <= high:
        raise ValueError(f"{where} {name}={value} is out of range: it must lie between {low:g} and {high:g}")
    return name, number


def parse_set(item: str, *, where: str = "--set") -> tuple[str, tuple[str, ...]]:
    """``NAME=REF,REF`` -> (name, specs).

    >>> parse_set("two=FeO.xdi,Fe2O3.xdi")
    ('two', ('FeO.xdi', 'Fe2O3.xdi'))
    """
    name, eq, specs = item.partition("=")
    members = tuple(s.strip() for s in specs.split(",") if s.strip())
    if not eq or not name.strip() or not members:
        raise ValueError(f"{where} {item!r} must read NAME=REF,REF,...")
    return name.strip(), members


def parse_compositions(text: str, *, where: str = "--compositions") -> tuple[tuple[float, ...], ...]:
    """``"1,0;0.5,0.5"`` -> rows of fractions.

    >>> parse_compositions("1,0; 0.5,0.5")
    ((1.0, 0.0), (0.5, 0.5))
    """
    rows = []
    for row in filter(None, (r.strip() for r in text.split(";"))):
        try:
            rows.append(tuple(float(v) for v in row.split(",")))
        except ValueError:
            raise ValueError(f"{where} {text!r}: row {row!r} must be numbers separated by commas") from None
    return tuple(rows)
