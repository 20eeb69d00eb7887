"""Recipes: a session's :class:`~xafsmap.core.settings.schema.Settings` as a TOML file.

A recipe is data. :func:`read_recipe` checks it field by field against the declarations
and names any unknown, missing or out-of-range field; :func:`write_recipe` writes every
setting that has a value. Both are generated from
:data:`~xafsmap.core.settings.schema.SETTINGS` (sections, keys, kinds), so a new setting
is read and written without a line here. Files a recipe names that no longer exist are
listed by :func:`missing_paths`, never guessed. Layout (every section but ``[input]``
and ``[[reference]]`` is optional)::

    xafsmap_recipe = 1
    [input]            # stack = "path" (+ energies, flat, dark, i0, axes) or sample = "fe_sample"
    [prepare]          # roi = [row0, row1, col0, col1], bin, register, shift_map or calibration
                       # (+ calibration_reference), threshold, significance, align_references
    [calibration]      # degree, bin_size: the fit of a calibration foil's shift map
    [normalization]    # e0, pre1, pre2, norm1, norm2 (eV), nnorm (Larch meaning)
    [[reference]]      # spec = "file" or "file:NAME", name = "Fe", offset = 0.0 (eV)
    [classes]          # mixtures = "pairs", or names = [...] and compositions = [[...], ...]; noise
    [classifier]       # features, smooth, n_per_class, n_trees, fit_range, metric, seed, thick
    [output]           # zarr = true: map band by band into maps.ome.zarr
    [trust]            # false_alarm, pool, library, criterion, sets = {two = ["a.xdi", "b.xdi"]}
    [cluster]          # workers = 2 or scheduler = "tcp://host:8786"

Standard library only (``tomllib``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import fields
from pathlib import Path

from .schema import SECTIONS, SETTINGS, Settings
from .declare import ReferenceSpec
from .values import check_field, check_settings, normalize_field

__all__ = ["MAX_RECIPE_BYTES", "VERSION", "missing_paths", "read_recipe", "recipe_paths", "settings_from_dict",
           "settings_to_dict", "toml_name", "write_recipe"]

VERSION = 1
#: Largest recipe file, bytes.
MAX_RECIPE_BYTES = 2**20
_REFERENCE_KEYS = tuple(f.name for f in fields(ReferenceSpec))


def toml_name(name: str) -> str:
    """How a recipe names a setting: ``'[classifier] n_trees'``, ``'[[reference]]'``."""
    item = SETTINGS[name]
    return "[[reference]]" if item.kind == "references" else f"[{item.section}] {item.toml_key}"


def _absolute(path: str, base: Path | None) -> str:
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p  # FILE:NAME stays FILE:NAME; the file part is resolved with it
    return os.fspath(p)


def _read_value(item, value, base, label):
    """A TOML value as the setting's value (lists to tuples, paths absolute), unchecked."""
    kind = item.kind
    if kind == "path" and isinstance(value, str) and value.strip():
        return _absolute(value, base)
    if kind == "paths" and isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(_absolute(v, base) for v in value)
    if kind == "sets":
        if not isinstance(value, dict) or not all(isinstance(v, list) and all(isinstance(s, str) for s in v)
                                                  for v in value.values()):
            raise ValueError(f"{label} must be a table of lists of references, e.g. {{two = [\"a.xdi\", "
                             "\"b.xdi\"]}}")
        return tuple((name, tuple(_absolute(s, base) for s in specs)) for name, specs in value.items())
    if kind in ("roi", "range", "names") and isinstance(value, list):
        return tuple(value)
    if kind == "matrix" and isinstance(value, list):
        return tuple(tuple(row) if isinstance(row, list) else row for row in value)
    return value


def _references(items, base, where) -> tuple[ReferenceSpec, ...]:
    if items is None:
        return ()
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"{where}: [[reference]] must be a list of tables")
    refs = []
    for i, item in enumerate(items, start=1):
        label = f"{where}: [[reference]] #{i}"
        for key in sorted(set(item) - set(_REFERENCE_KEYS)):
            raise ValueError(f"{label}: unknown field {key!r} (known: {', '.join(_REFERENCE_KEYS)})")
        if "spec" not in item:
            raise ValueError(f"{label}: missing field 'spec' (the reference file, or FILE:NAME)")
        for key in ("spec", "name"):
            if key in item and (not isinstance(item[key], str) or not item[key].strip()):
                raise ValueError(f"{label} {key} must be a non-empty string, got {item[key]!r}")
        offset = item.get("offset", 0.0)
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset):
            raise ValueError(f"{label} offset must be a finite number, got {offset!r}")
        refs.append(ReferenceSpec(_absolute(item["spec"], base), item.get("name"), float(offset)))
    check_field(SETTINGS["references"], tuple(refs), f"{where}: [[reference]]")
    return tuple(refs)


def settings_from_dict(data: dict, *, base: Path | None = None, where: str = "recipe") -> Settings:
    """Check parsed TOML (a dict) and make the :class:`Settings` it describes; see :func:`read_recipe`."""
    data = dict(data)
    version = data.pop("xafsmap_recipe", None)
    if version != VERSION:
        raise ValueError(f"{where}: xafsmap_recipe = {version!r} is missing or unknown; this xafsmap reads "
                         f"version {VERSION}")
    known = [*SECTIONS, "reference"]
    for name in sorted(set(data) - set(known)):
        raise ValueError(f"{where}: unknown field {name!r} (known sections: {sorted(known)})")
    values = {}
    for section in SECTIONS:
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ValueError(f"{where}: [{section}] must be a table")
        declared = {item.toml_key: item for item in SETTINGS.values() if item.section == section}
        for key in sorted(set(table) - set(declared)):
            raise ValueError(f"{where}: unknown field [{section}] {key!r} (known: {', '.join(declared)})")
        for key, item in declared.items():
            if key in table:
                label = f"{where}: [{section}] {key}"
                value = normalize_field(item, _read_value(item, table[key], base, label))
                check_field(item, value, label)
                values[item.name] = value
    values["references"] = _references(data.get("reference"), base, where)
    settings = Settings(**values)
    check_settings(settings, name=toml_name, where=where)
    return settings


def read_recipe(path: str | os.PathLike) -> Settings:
    """Read and check a recipe TOML file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Settings
        Relative paths in the file are resolved against the file's folder. Files that
        no longer exist are not an error here: see :func:`missing_paths`.

    Raises
    ------
    ValueError
        For TOML syntax errors, and for any unknown, missing, mistyped or out-of-range
        field (the message names it and the allowed values).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.toml"
    >>> _ = p.write_text('xafsmap_recipe = 1\\n[input]\\nsample = "fe_sample"\\n'
    ...                  '[[reference]]\\nspec = "Fe.xdi"\\n[prepare]\\nbins = 2\\n')
    >>> read_recipe(p)
    Traceback (most recent call last):
    ValueError: r.toml: unknown field [prepare] 'bins' (known: roi, bin, register, shift_map, calibration, calibration_reference, threshold, significance, align_references)
    """
    import tomllib

    path = Path(path)
    if path.is_file() and path.stat().st_size > MAX_RECIPE_BYTES:
        raise ValueError(f"{path.name} is {path.stat().st_size} bytes, too large for a recipe "
                         f"(at most {MAX_RECIPE_BYTES}); is it the right file?")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path.name} is not UTF-8 text (byte 0x{raw[error.start]:02x} at position "
                         f"{error.start}); save the recipe as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path.name} is not valid TOML: {error}") from None
    except RecursionError:  # tomllib recurses once per nested list or table
        raise ValueError(f"{path.name} is not a recipe: its lists or tables are nested hundreds of levels "
                         "deep") from None
    return settings_from_dict(data, base=path.absolute().parent, where=path.name)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} to a recipe")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to a recipe")


def _plain(value):
    """Tuples as lists, numpy scalars as Python numbers (for TOML and JSON)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def settings_to_dict(settings: Settings) -> dict:
    """The settings as TOML-ready sections: every value set (no ``None``, no false flag, no empty list)."""
    out: dict = {"xafsmap_recipe": VERSION}
    for item in SETTINGS.values():
        value = getattr(settings, item.name)
        if item.kind == "references" or value is None or value is False or value == ():
            continue
        value = {name: list(specs) for name, specs in value} if item.kind == "sets" else _plain(value)
        out.setdefault(item.section, {})[item.toml_key] = value
    out["reference"] = [{key: value for key, value in (("spec", ref.spec), ("name", ref.name),
                                                       ("offset", float(ref.offset))) if value is not None}
                        for ref in settings.references]
    return out


def write_recipe(path: str | os.PathLike, settings: Settings) -> Path:
    """Write settings as a TOML recipe (under a temporary name, then renamed into place).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.toml"
    >>> s = Settings(references=(ReferenceSpec(str(p.parent / "Fe.xdi")),), sample="fe_sample", bin=2)
    >>> read_recipe(write_recipe(p, s)) == s
    True
    """
    from .._files import atomic_file

    path = Path(path)
    data = settings_to_dict(settings)
    lines = [f"xafsmap_recipe = {VERSION}", ""]
    for section in SECTIONS:
        if section in data:
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml(value)}" for key, value in data[section].items()]
            lines.append("")
    for item in data["reference"]:
        lines.append("[[reference]]")
        lines += [f"{key} = {_toml(value)}" for key, value in item.items()]
        lines.append("")
    with atomic_file(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return path


def recipe_paths(settings: Settings) -> list[str]:
    """Every file the settings name: inputs, calibration, references (specs, ``FILE:NAME`` kept), library.

    >>> recipe_paths(Settings(references=(ReferenceSpec("/refs/Fe.xdi"),), stack="/data/s.tif"))
    ['/data/s.tif', '/refs/Fe.xdi']
    """
    named = [getattr(settings, item.name) for item in SETTINGS.values()
             if item.kind == "path" and getattr(settings, item.name)]
    named += [ref.spec for ref in settings.references]
    named += list(settings.library) + [spec for _, specs in settings.sets for spec in specs]
    return named


def _exists(spec: str) -> bool:
    """A file or folder, or a reference ``FILE:NAME`` whose file exists."""
    if Path(spec).exists():
        return True
    if any(char in Path(spec).name for char in "*?["):  # a glob of per-energy files
        return any(Path(spec).parent.glob(Path(spec).name))
    return any(i > 0 and Path(spec[:i]).is_file() for i, c in enumerate(spec) if c == ":")


def missing_paths(settings: Settings) -> list[str]:
    """The files named by the settings that do not exist now."""
    return [spec for spec in recipe_paths(settings) if not _exists(spec)]
