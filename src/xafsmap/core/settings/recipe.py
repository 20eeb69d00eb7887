"""Recipes: every choice of a mapping session as a TOML file that reproduces it headless.

A recipe is data. :func:`read_recipe` validates it field by field and names any unknown,
missing or out-of-range field; files it names that no longer exist are listed by
:func:`missing_paths` (and refused by :func:`run_recipe`), never guessed. The napari docks
and ``xafsmap run RECIPE`` build the stack, references and model through the same
functions here (:func:`recipe_stack`, :func:`recipe_references`, :func:`train_recipe`), so
a recipe gives the labels of the session that wrote it.

Layout (every section but ``[input]`` and ``[[reference]]`` is optional)::

    xafsmap_recipe = 1
    [input]            # stack = "path" (+ energies, flat, dark, i0) or sample = "fe_sample"
    [prepare]          # roi = [row0, row1, col0, col1], bin = 1, threshold = 0.05, register = true,
                       # shift_map = "shift.tif" or calibration = "foil.tif" (+ calibration_reference),
                       # align_references = true (one common energy offset of the references)
    [normalization]    # e0, pre1, pre2, norm1, norm2 (eV), nnorm (Larch meaning)
    [[reference]]      # spec = "file" or "file:NAME", name = "Fe", offset = 0.0 (eV)
    [classes]          # mixtures = "pairs", or names = [...] and compositions = [[...], ...];
                       # noise = 0.01 (edge steps; default: measured per pixel)
    [classifier]       # features, smooth, n_per_class, n_trees, fit_range, metric, seed
    [output]           # zarr = true: map band by band into maps.ome.zarr (maps larger than memory)
"""

from __future__ import annotations

import inspect
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..io.files import atomic_file
from .limits import LIMITS, MAX_RECIPE_BYTES, check_mixtures, check_training, check_value
from ..mapping.pipeline import drive, iter_classify
from ..model.training import train_model
from ..prepare.steps import prepare_stack

__all__ = [
    "Recipe",
    "RecipeReference",
    "calibration_shift_map",
    "missing_paths",
    "prepare_recipe",
    "read_recipe",
    "recipe_classes",
    "recipe_paths",
    "recipe_stack",
    "recipe_references",
    "recipe_shift_map",
    "run_recipe",
    "train_recipe",
    "write_recipe",
]

VERSION = 1
SAMPLES = ("fe_sample",)
_FEATURES = ("derivative", "spectrum")
_METRICS = ("euclidean", "manhattan", "jensen-shannon")
_PATHS = ("stack", "energies", "flat", "dark", "i0")
_PREPARE_PATHS = ("shift_map", "calibration", "calibration_reference")
# a recipe's defaults are the pipeline's, so a recipe and `xafsmap map` agree
_TRAIN = {name: p.default for name, p in inspect.signature(train_model).parameters.items()}
_METRIC = inspect.signature(iter_classify).parameters["metric"].default


@dataclass(frozen=True)
class RecipeReference:
    """One reference: ``spec`` is ``FILE`` or ``FILE:NAME``; ``name`` its name in the maps."""

    spec: str
    name: str | None = None
    offset: float = 0.0


@dataclass(frozen=True)
class Recipe:
    """Every choice needed to reproduce a map (see the module docstring for the TOML).

    Paths are absolute (relative ones in a file are taken relative to the file).
    ``class_names``/``compositions`` (C, K) replace ``mixtures`` when given; each
    reference alone is always a class, first, as in :func:`~xafsmap.core.model.synthesize.make_classes`.
    """

    references: tuple[RecipeReference, ...]
    stack: str | None = None
    sample: str | None = None
    energies: str | None = None
    flat: str | None = None
    dark: str | None = None
    i0: str | None = None
    roi: tuple[int, int, int, int] | None = None
    bin: int = 1
    threshold: float | None = None
    register: bool = False
    shift_map: str | None = None
    calibration: str | None = None
    calibration_reference: str | None = None
    align_references: bool = _TRAIN["align_references"]
    normalization: dict = field(default_factory=dict)
    mixtures: str = _TRAIN["mixtures"]
    class_names: tuple[str, ...] | None = None
    compositions: tuple[tuple[float, ...], ...] | None = None
    noise: float | None = None
    features: str = _TRAIN["features"]
    smooth: int = _TRAIN["smooth"]
    n_per_class: int = _TRAIN["n_per_class"]
    n_trees: int = _TRAIN["n_trees"]
    fit_range: tuple[float, float] = tuple(_TRAIN["fit_range"])
    metric: str = _METRIC
    seed: int = 0
    zarr: bool = False


# section -> key -> kind of value (see _check_value); ranges and choices below
_SCHEMA = {
    "input": {"stack": "path", "sample": "str", "energies": "path", "flat": "path", "dark": "path", "i0": "path"},
    "prepare": {"roi": "roi", "bin": "int", "threshold": "float", "register": "bool", "shift_map": "path",
                "calibration": "path", "calibration_reference": "path", "align_references": "bool"},
    "normalization": {"e0": "float", "pre1": "float", "pre2": "float", "norm1": "float", "norm2": "float",
                      "nnorm": "int"},
    "classes": {"mixtures": "str", "names": "strs", "compositions": "matrix", "noise": "float"},
    "classifier": {"features": "str", "smooth": "int", "n_per_class": "int", "n_trees": "int",
                   "fit_range": "pair", "metric": "str", "seed": "int"},
    "output": {"zarr": "bool"},
}
_REFERENCE_KEYS = {"spec": "path", "name": "str", "offset": "float"}
_ATTRIBUTE = {("classes", "names"): "class_names"}
_CHOICES = {"features": _FEATURES, "metric": _METRICS, "sample": SAMPLES}


def _check_value(where: str, kind: str, value, base: Path | None):
    def bad(expected):
        return ValueError(f"{where} must be {expected}, got {value!r}")

    if kind in ("str", "path"):
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
        return _absolute(value, base) if kind == "path" else value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise bad("a list of names")
        return tuple(value)
    if kind in ("roi", "pair"):
        n = 4 if kind == "roi" else 2
        number = int if kind == "roi" else (int, float)
        if (not isinstance(value, list) or len(value) != n
                or not all(isinstance(v, number) and not isinstance(v, bool) for v in value)):
            raise bad(f"a list of {n} {'whole numbers' if kind == 'roi' else 'numbers'}")
        if kind == "roi" and not (0 <= value[0] < value[1] and 0 <= value[2] < value[3]):
            raise ValueError(f"{where} = {value} must read [row0, row1, col0, col1] with 0 <= row0 < row1 "
                             "and 0 <= col0 < col1")
        if kind == "pair" and not value[0] < value[1]:
            raise ValueError(f"{where} = {value}: the first number must be below the second")
        return tuple(int(v) for v in value) if kind == "roi" else tuple(float(v) for v in value)
    if kind == "matrix":
        if (not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for r in value for v in r)):
            raise bad("a list of rows of fractions")
        return tuple(tuple(float(v) for v in row) for row in value)
    raise AssertionError(kind)


def _absolute(path: str, base: Path | None) -> str:
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        # FILE:NAME stays FILE:NAME; only the file part is resolved
        p = base / p
    return os.fspath(p)


def _check_range(where: str, attribute: str, value) -> None:
    if attribute in LIMITS:
        check_value(attribute, value, where=f"{where} =")
    if attribute == "mixtures":
        check_mixtures(value, where=where)
    if attribute in _CHOICES and value not in _CHOICES[attribute]:
        raise ValueError(f"{where} = {value!r} is not one of {list(_CHOICES[attribute])}")


def recipe_from_dict(data: dict, *, base: Path | None = None, where: str = "recipe") -> Recipe:
    """Validate parsed TOML (a dict) into a :class:`Recipe`; see :func:`read_recipe`."""
    data = dict(data)
    version = data.pop("xafsmap_recipe", None)
    if version != VERSION:
        raise ValueError(f"{where}: xafsmap_recipe = {version!r} is missing or unknown; this xafsmap reads "
                         f"version {VERSION}")
    known = set(_SCHEMA) | {"reference"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} (known sections: {sorted(known)})")
    values: dict = {}
    normalization = {}
    for section, keys in _SCHEMA.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ValueError(f"{where}: [{section}] must be a table")
        for key in sorted(set(table) - set(keys)):
            raise ValueError(f"{where}: unknown field [{section}] {key!r} (known: {', '.join(keys)})")
        for key, kind in keys.items():
            if key not in table:
                continue
            label = f"{where}: [{section}] {key}"
            attribute = _ATTRIBUTE.get((section, key), key)
            value = _check_value(label, kind, table[key], base)
            _check_range(label, attribute, value)
            if section == "normalization":
                normalization[key] = value
            else:
                values[attribute] = value
    values["normalization"] = normalization
    values["references"] = _references_from(data.get("reference"), base, where)
    recipe = Recipe(**values)
    _check_whole(recipe, where)
    return recipe


def _references_from(items, base, where) -> tuple[RecipeReference, ...]:
    if not items:
        raise ValueError(f"{where}: missing field [[reference]]: name at least one reference with spec = \"FILE\"")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"{where}: [[reference]] must be a list of tables")
    refs = []
    for i, item in enumerate(items, start=1):
        label = f"{where}: [[reference]] #{i}"
        for key in sorted(set(item) - set(_REFERENCE_KEYS)):
            raise ValueError(f"{label}: unknown field {key!r} (known: {', '.join(_REFERENCE_KEYS)})")
        if "spec" not in item:
            raise ValueError(f"{label}: missing field 'spec' (the reference file, or FILE:NAME)")
        checked = {key: _check_value(f"{label} {key}", kind, item[key], base)
                   for key, kind in _REFERENCE_KEYS.items() if key in item}
        if "offset" in checked:
            _check_range(f"{label} offset", "offset", checked["offset"])
        refs.append(RecipeReference(**checked))
    return tuple(refs)


def _check_whole(recipe: Recipe, where: str) -> None:
    if (recipe.stack is None) == (recipe.sample is None):
        raise ValueError(f"{where}: [input] needs exactly one of stack = \"PATH\" or sample = \"fe_sample\"")
    if recipe.sample is not None and any(getattr(recipe, p) for p in _PATHS[1:]):
        raise ValueError(f"{where}: [input] sample takes no energies, flat, dark or i0")
    if recipe.shift_map is not None and recipe.calibration is not None:
        raise ValueError(f"{where}: [prepare] shift_map and calibration exclude each other: give one of them")
    if recipe.calibration_reference is not None and recipe.calibration is None:
        raise ValueError(f"{where}: [prepare] calibration_reference needs calibration = \"FOIL_STACK\"")
    if (recipe.class_names is None) != (recipe.compositions is None):
        raise ValueError(f"{where}: [classes] names and compositions go together: give both or neither")
    names = [ref.name for ref in recipe.references if ref.name]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: two references share a name: {names}")
    if recipe.compositions is not None:
        k = len(recipe.references)
        if len(recipe.class_names) != len(recipe.compositions):
            raise ValueError(f"{where}: [classes] has {len(recipe.class_names)} names but "
                             f"{len(recipe.compositions)} compositions")
        for name, row in zip(recipe.class_names, recipe.compositions):
            if len(row) != k:
                raise ValueError(f"{where}: class {name!r} has {len(row)} fractions but there are {k} references")
            if min(row) < 0 or sum(row) <= 0:
                raise ValueError(f"{where}: class {name!r} fractions {list(row)} must be >= 0 with a positive sum")


def read_recipe(path) -> Recipe:
    """Read and validate a recipe TOML file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Recipe
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
    ValueError: r.toml: unknown field [prepare] 'bins' (known: roi, bin, threshold, register, shift_map, calibration, calibration_reference, align_references)
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

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
    return recipe_from_dict(data, base=path.absolute().parent, where=path.name)


def _exists(spec: str) -> bool:
    """A file or folder, or a reference ``FILE:NAME`` whose file exists."""
    from ..io.references import split_spec

    if Path(spec).exists():
        return True
    try:
        split_spec(spec)
    except FileNotFoundError:
        return False
    return True


def recipe_paths(recipe: Recipe) -> list[str]:
    """Every file a recipe names: inputs, calibration, references (as specs, ``FILE:NAME`` kept).

    >>> recipe_paths(Recipe(references=(RecipeReference("/refs/Fe.xdi"),), stack="/data/s.tif"))
    ['/data/s.tif', '/refs/Fe.xdi']
    """
    named = [getattr(recipe, p) for p in (*_PATHS, *_PREPARE_PATHS) if getattr(recipe, p)]
    return named + [ref.spec for ref in recipe.references]


def missing_paths(recipe: Recipe) -> list[str]:
    """The files named by a recipe that do not exist now (reference specs without ``:NAME``)."""
    return [spec for spec in recipe_paths(recipe) if not _exists(spec)]


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} to a recipe")
        return repr(float(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to a recipe")


def recipe_to_dict(recipe: Recipe) -> dict:
    """The recipe as TOML-ready sections (``None`` fields left out)."""
    out: dict = {"xafsmap_recipe": VERSION}
    for section, keys in _SCHEMA.items():
        table = {}
        for key in keys:
            attribute = _ATTRIBUTE.get((section, key), key)
            value = recipe.normalization.get(key) if section == "normalization" else getattr(recipe, attribute)
            if value is not None and not (key in ("register", "zarr", "align_references") and value is False):
                table[key] = [list(r) for r in value] if key == "compositions" else value
        if table:
            out[section] = table
    out["reference"] = [{k: v for k, v in (("spec", r.spec), ("name", r.name), ("offset", r.offset))
                         if v is not None} for r in recipe.references]
    return out


def write_recipe(path, recipe: Recipe) -> Path:
    """Write a recipe as TOML (under a temporary name, then renamed into place).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.toml"
    >>> r = Recipe(references=(RecipeReference(str(p.parent / "Fe.xdi")),), sample="fe_sample", bin=2)
    >>> read_recipe(write_recipe(p, r)) == r
    True
    """
    path = Path(path)
    data = recipe_to_dict(recipe)
    lines = [f"xafsmap_recipe = {VERSION}", ""]
    for section in _SCHEMA:
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


def _measurement(recipe: Recipe):
    from ..io.stack import Stack, read_stack

    if recipe.sample is not None:
        from ..simulate.sample import make_sample

        sample = make_sample()
        return Stack(sample.stack, sample.energies, {"sample": recipe.sample})
    return read_stack(recipe.stack, energies=recipe.energies, flat=recipe.flat, dark=recipe.dark, i0=recipe.i0)


def calibration_shift_map(foil, reference=None):
    """The energy-shift map measured from a foil stack, as ``xafsmap map --calibration``.

    Parameters
    ----------
    foil : str or Path
        Calibration stack (uniform foil, same geometry as the measurement).
    reference : str or Path, optional
        Reference spectrum of the foil (``FILE`` or ``FILE:NAME``): absolute
        calibration; ``None`` calibrates relative to the field (median shift 0).

    Returns
    -------
    xafsmap.core.prepare.calibrate.ShiftMap
    """
    from ..prepare.calibrate import calibrate
    from ..io.stack import read_stack
    from ..io.references import read_reference

    stack = read_stack(foil)
    ref = read_reference(reference) if reference else None
    return calibrate(stack.data, stack.energies, reference=None if ref is None else ref.mu,
                     reference_energies=None if ref is None else ref.energies)


def shift_map_file(path):
    """A shift map read from a TIFF of :func:`~xafsmap.core.prepare.calibrate.write_shift_map`.

    The uncertainty comes from the file's second page when it has one (NaN otherwise);
    ``measured`` is the shift itself (the raw measurement is not in the file).
    """
    import tifffile

    from ..prepare.shiftmap import ShiftMap, read_shift_map

    shift = read_shift_map(path)
    uncertainty = np.full_like(shift, np.nan)
    with tifffile.TiffFile(path) as tif:
        if len(tif.pages) > 1 and tif.pages[1].shape == shift.shape:
            uncertainty = tif.pages[1].asarray().astype(np.float32)
    return ShiftMap(shift=shift, measured=shift, uncertainty=uncertainty, residual_rms=float("nan"),
                    model={"source": str(path)})


def recipe_shift_map(recipe: Recipe):
    """The recipe's energy-shift map (``shift_map`` file or ``calibration`` foil), or None."""
    if recipe.shift_map is not None:
        return shift_map_file(recipe.shift_map)
    if recipe.calibration is not None:
        return calibration_shift_map(recipe.calibration, recipe.calibration_reference)
    return None


def prepare_recipe(recipe: Recipe, stack, *, shift_map=None, drift=None):
    """Register, calibrate, crop and bin a measurement as the recipe says.

    The one place where the docks and ``xafsmap run`` prepare a stack: ``drift`` (E, 2)
    must be given when ``recipe.register`` (see
    :func:`~xafsmap.core.prepare.register.measure_drift`), ``shift_map`` when the recipe names a
    calibration (see :func:`recipe_shift_map`).

    Returns
    -------
    stack : Stack
    grid : dict
        :func:`~xafsmap.core.prepare.steps.prepare_stack`'s grid.
    """
    wants_shift = recipe.shift_map is not None or recipe.calibration is not None
    if recipe.register and drift is None:
        raise ValueError("the drift across energies is not measured yet (the recipe asks for drift correction)")
    if wants_shift and shift_map is None:
        raise ValueError("the energy-shift map is not computed yet (the recipe asks for an energy calibration)")
    return prepare_stack(stack, drift=drift if recipe.register else None,
                         shift=shift_map.shift if shift_map is not None else None, roi=recipe.roi, factor=recipe.bin)


def _recipe_prepared(recipe: Recipe):
    """(prepared stack, shift map, report extras) of a recipe, as ``xafsmap map`` makes them."""
    from ..prepare.steps import prepare_measurement

    shift_map = recipe_shift_map(recipe)
    prepared, extra = prepare_measurement(
        _measurement(recipe), shift_map=shift_map, register=recipe.register, roi=recipe.roi, factor=recipe.bin,
        calibration={"source": recipe.shift_map or recipe.calibration, "reference": recipe.calibration_reference},
    )
    return prepared, shift_map, extra


def recipe_stack(recipe: Recipe):
    """The recipe's measurement registered, calibrated, cropped and binned: a :class:`~xafsmap.core.io.stack.Stack`."""
    return _recipe_prepared(recipe)[0]


def recipe_references(recipe: Recipe) -> list:
    """The recipe's references, read and renamed as the recipe names them."""
    from ..io.references import read_reference

    refs = []
    for item in recipe.references:
        ref = read_reference(item.spec)
        refs.append(replace(ref, name=item.name) if item.name and item.name != ref.name else ref)
    names = [ref.name for ref in refs]
    if len(set(names)) != len(names):
        raise ValueError(f"two references share a name: {names}; give each a name in the recipe")
    return refs


def train_recipe(recipe: Recipe, stack, references):
    """Train the recipe's :class:`~xafsmap.core.model.training.Model` for a (prepared) stack."""
    mixtures = recipe.mixtures if recipe.compositions is None else np.array(recipe.compositions, dtype=float)
    check_training(n_classes=len(recipe_classes(recipe, [ref.name for ref in references])),
                   n_per_class=recipe.n_per_class, n_energies=len(stack.energies), n_trees=recipe.n_trees)
    model = train_model(
        stack, references, offsets=[ref.offset for ref in recipe.references], mixtures=mixtures,
        features=recipe.features, smooth=recipe.smooth, n_per_class=recipe.n_per_class, n_trees=recipe.n_trees,
        threshold=recipe.threshold, fit_range=recipe.fit_range, noise=recipe.noise, rng=recipe.seed,
        align_references=recipe.align_references, **recipe.normalization,
    )
    return _rename_classes(model, recipe)


def recipe_classes(recipe: Recipe, reference_names):
    """The recipe's :class:`~xafsmap.core.model.synthesize.Classes` over ``reference_names``.

    Pure references first, then the mixtures (spec or table rows), named as the
    recipe's table names them (automatic names otherwise).

    >>> r = Recipe(references=(), sample="fe_sample", class_names=("metal", "half"),
    ...            compositions=((1.0, 0.0), (0.5, 0.5)))
    >>> recipe_classes(r, ["Fe", "FeO"]).names
    ('metal', 'FeO', 'half')
    """
    from ..model.synthesize import make_classes

    if recipe.compositions is None:
        return make_classes(list(reference_names), mixtures=recipe.mixtures)
    rows = np.array(recipe.compositions, dtype=float)
    classes = make_classes(list(reference_names), mixtures=rows)
    rows = np.round(rows / rows.sum(axis=1, keepdims=True), 6)
    lookup = {tuple(row): name for row, name in zip(rows.tolist(), recipe.class_names)}
    names = tuple(lookup.get(tuple(np.round(row, 6).tolist()), old)
                  for row, old in zip(classes.compositions, classes.names))
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be unique, got {list(names)}")
    return replace(classes, names=names)


def _rename_classes(model, recipe: Recipe):
    if recipe.class_names is None:
        return model
    classes = recipe_classes(recipe, model.classifier.classes.references)
    classifier = replace(model.classifier, classes=classes)
    return replace(model, classifier=classifier, params=dict(model.params, class_names=list(classes.names)))


def run_recipe(recipe: Recipe, *, out, overwrite: bool = False, progress=None, client=None, sources=()) -> Path:
    """Reproduce a recipe's maps headless and write them like ``xafsmap map``.

    Parameters
    ----------
    recipe : Recipe
        From :func:`read_recipe` or a napari session.
    out : str or Path
        Output folder (written all-or-nothing, see :func:`~xafsmap.core.mapping.output.write_maps`).
    overwrite : bool
        Replace an existing non-empty ``out``.
    progress : callable, optional
        ``progress(done, total)`` after each band of rows is mapped (training comes first).
    client : distributed.Client, optional
        Map the bands on this dask.distributed cluster (same maps; workers re-read the
        measurement's files and redo its registration, calibration, ROI and binning).
    sources : sequence of path, optional
        Inputs besides the recipe's own files (the recipe file itself): ``out`` may not
        be or hold any of them (see :mod:`~xafsmap.core.io.folders`).

    Returns
    -------
    Path
        ``out``; its report.json holds the recipe under ``"recipe"``. With
        ``[output] zarr = true`` the bands are mapped straight into
        ``out/maps.ome.zarr`` (see :func:`~xafsmap.core.mapping.output.map_output`).

    Raises
    ------
    FileNotFoundError
        If files named by the recipe no longer exist (all are listed).
    ValueError
        From reading, training or writing (existing ``out`` without ``overwrite``).
    """
    from ..mapping.output import check_output_folder, map_output, write_map_files
    from ..mapping.pipeline import band_rows

    missing = missing_paths(recipe)
    if missing:
        raise FileNotFoundError(f"the recipe names files that no longer exist: {', '.join(missing)}")
    sources = [*sources, *recipe_paths(recipe)]
    check_output_folder(out, overwrite=overwrite, sources=sources)
    stack, shift_map, extra = _recipe_prepared(recipe)
    references = recipe_references(recipe)
    model = train_recipe(recipe, stack, references)
    inputs = {p: getattr(recipe, p) for p in (*_PATHS, "sample", *_PREPARE_PATHS) if getattr(recipe, p)}
    inputs["references"] = [ref.spec for ref in recipe.references]
    _, rows, cols = stack.data.shape
    with map_output(out, k=len(references), rows=rows, cols=cols, band=band_rows(stack.data.shape),
                    zarr=recipe.zarr, overwrite=overwrite, sources=sources) as (folder, maps):
        if client is None:
            result = drive(iter_classify(stack, model, metric=recipe.metric, maps=maps), progress)
        else:
            from ..mapping.parallel import iter_map_distributed

            result = drive(iter_map_distributed(stack, model, client=client, metric=recipe.metric), progress)
        write_map_files(result, folder, maps=maps, inputs=inputs, extra={**extra, "recipe": recipe_to_dict(recipe)},
                        shift_map=shift_map)
    return Path(out)

