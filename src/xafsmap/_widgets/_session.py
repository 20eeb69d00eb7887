"""The scriptable state behind the xafsmap docks of one viewer (no Qt).

The six docks are views of one :class:`Session`: each writes its choices into it and
listens to :attr:`Session.changed` to show choices made elsewhere (a loaded recipe).
Everything a dock computes goes through the same core functions as ``xafsmap run``
(:func:`~xafsmap.core.settings.recipe.recipe_stack` and friends), which is why a recipe
exported from the docks reproduces their labels headless.

>>> s = Session()
>>> s.update("prepare", bin=2)
>>> s.choices["bin"]
2
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, fields, replace

import numpy as np
from psygnal import Signal

from ..core.settings.recipe import Recipe, RecipeReference

_PATH_KEYS = ("stack", "energies", "flat", "dark", "i0")
_CHOICES = [f.name for f in fields(Recipe) if f.name not in ("references", "sample", *_PATH_KEYS)]


@dataclass
class Entry:
    """One row of the References dock: a reference that may or may not be used."""

    spec: str
    name: str
    offset: float = 0.0
    use: bool = True
    reference: object = None  # the core Reference, read once


class Session:
    """Choices (recipe fields), the measurement, references and results of one viewer."""

    changed = Signal(str)  # the part that changed: measurement, prepare, references, classes, ...

    def __init__(self):
        defaults = Recipe(references=())
        self.choices = {name: getattr(defaults, name) for name in _CHOICES}
        self.source: dict = {}
        self.wanted_source: dict = {}  # the measurement a loaded recipe asks for
        self.stack = None  # core Stack as opened (before crop and bin)
        self.layer_name: str | None = None
        self.base_scale = (1.0, 1.0)
        self.base_translate = (0.0, 0.0)
        self.entries: list[Entry] = []
        self.model = None
        self.model_recipe: Recipe | None = None
        self.result = None
        self.result_recipe: Recipe | None = None
        self.shift_map = None  # core ShiftMap in the measurement's full grid, or None
        self.shift_origin: str | None = None  # "foil", "file" or "region" (self-calibration)
        self.drift = None  # (E, 2) image drift measured on the measurement, or None

    # choices -------------------------------------------------------------
    def update(self, part: str, **choices) -> None:
        """Set recipe fields (see :class:`~xafsmap.core.settings.recipe.Recipe`) and announce ``part``."""
        unknown = set(choices) - set(self.choices)
        if unknown:
            raise ValueError(f"unknown choice {sorted(unknown)}")
        self.choices.update(choices)
        self.changed.emit(part)

    def set_measurement(self, stack, *, source: dict, layer_name=None, scale=(1.0, 1.0), translate=(0.0, 0.0)):
        """Use ``stack`` (a core Stack) as the measurement; ``source`` says how to reopen it."""
        self.stack, self.source, self.layer_name = stack, dict(source), layer_name
        self.base_scale, self.base_translate = tuple(scale), tuple(translate)
        self.model = self.result = self.drift = None
        self.changed.emit("measurement")

    def set_entries(self, entries) -> None:
        self.entries = list(entries)
        self.changed.emit("references")

    def set_shift_map(self, shift_map, *, origin: str | None = None, foil=None, reference=None, path=None) -> None:
        """Use an energy-shift map (``None``: no calibration); the recipe records where it came from.

        ``origin`` is ``"foil"`` (measured from ``foil``, with ``reference``), ``"file"``
        (read from ``path``) or ``"region"`` (self-calibration; saved beside an exported recipe).
        """
        if shift_map is not None and origin not in ("foil", "file", "region"):
            raise ValueError(f"unknown origin {origin!r} of a shift map")
        self.shift_map, self.shift_origin = shift_map, origin if shift_map is not None else None
        self.choices.update(calibration=str(foil) if origin == "foil" else None,
                            calibration_reference=str(reference) if origin == "foil" and reference else None,
                            shift_map=str(path) if origin == "file" else None)
        self.model = self.result = None
        self.changed.emit("calibration")

    def set_drift(self, drift, *, register: bool = True) -> None:
        """Keep the measured drift (E, 2) and whether the prepared stack is corrected for it."""
        self.drift = drift
        self.choices["register"] = bool(register and drift is not None)
        self.model = self.result = None
        self.changed.emit("calibration")

    def save_shift_map(self, path) -> str:
        """Write the shift map (shift and uncertainty pages) and use that file from now on."""
        from ..core.prepare.shiftmap import write_shift_map

        if self.shift_map is None:
            raise ValueError("no energy-shift map to save: compute or load one first")
        write_shift_map(path, self.shift_map)
        self.choices.update(calibration=None, calibration_reference=None, shift_map=str(path))
        self.shift_origin = "file"
        self.changed.emit("calibration")
        return str(path)

    # derived -------------------------------------------------------------
    def prepared_stack(self):
        """The measurement drift-corrected, energy-calibrated, cropped and binned as chosen."""
        from ..core.settings.recipe import prepare_recipe

        if self.stack is None:
            raise ValueError("no measurement yet: pick an image layer in the Measurement dock")
        recipe = Recipe(references=(), sample="-", **self.choices)
        return prepare_recipe(recipe, self.stack, shift_map=self.shift_map, drift=self.drift)[0]

    def references(self) -> list:
        """The references in use, read once and named as in the dock."""
        from ..core.io.references import read_reference

        used = [entry for entry in self.entries if entry.use]
        if not used:
            raise ValueError("no reference is ticked: add or tick references in the References dock")
        out = []
        for entry in used:
            if entry.reference is None:
                entry.reference = read_reference(entry.spec)
            ref = entry.reference
            out.append(replace(ref, name=entry.name) if entry.name != ref.name else ref)
        names = [ref.name for ref in out]
        if len(set(names)) != len(names):
            raise ValueError(f"two ticked references share the name {names}: rename one in the table")
        return out

    def reference_named(self, name: str):
        """The reference of the table row called ``name`` (ticked or not), read once."""
        from ..core.io.references import read_reference

        for entry in self.entries:
            if entry.name == name:
                if entry.reference is None:
                    entry.reference = read_reference(entry.spec)
                ref = entry.reference
                return replace(ref, name=entry.name) if entry.name != ref.name else ref
        raise ValueError(f"no reference called {name!r} in the References table")

    def recipe(self, *, strict: bool = True) -> Recipe:
        """Every choice as a :class:`Recipe`.

        With ``strict`` the measurement must come from files or the sample (so the recipe
        can reopen it); otherwise its input is left as ``sample="<layer>"``.
        """
        refs = tuple(RecipeReference(e.spec, e.name, float(e.offset)) for e in self.entries if e.use)
        source = {k: v for k, v in self.source.items() if k in (*_PATH_KEYS, "sample")}
        if strict and self.shift_origin == "region" and self.choices["shift_map"] is None:
            raise ValueError("the self-calibrated shift map is not saved yet: save it (Prepare dock) so the "
                             "recipe can name it")
        if any(str(v).startswith("<") for v in source.values()) or not source:
            if not strict:
                return Recipe(references=refs, sample="<layer>", **self.choices)
            raise ValueError("the measurement was not opened from files, so a recipe cannot reopen it: "
                             "open the stack from its file (Measurement dock) first")
        return Recipe(references=refs, **source, **self.choices)

    def apply_recipe(self, recipe: Recipe) -> None:
        """Restore every choice of a recipe (the docks follow through :attr:`changed`)."""
        self.choices = {name: getattr(recipe, name) for name in _CHOICES}
        self.entries = [Entry(r.spec, r.name or "", r.offset, True) for r in recipe.references]
        self.wanted_source = self.source_of(recipe)
        self.model = self.result = self.shift_map = self.shift_origin = self.drift = None
        self.changed.emit("recipe")

    def recipe_for(self, path) -> Recipe:
        """The recipe to write at ``path``: a self-calibrated shift map is saved beside it first."""
        from pathlib import Path

        if self.shift_origin == "region" and self.choices["shift_map"] is None:
            path = Path(path)
            self.save_shift_map(path.with_name(f"{path.stem}.shift.tif"))
        return self.recipe()

    def source_of(self, recipe: Recipe) -> dict:
        return {k: getattr(recipe, k) for k in (*_PATH_KEYS, "sample") if getattr(recipe, k)}

    def map_transform(self) -> dict:
        """``scale`` and ``translate`` that put maps of the prepared grid over the measurement."""
        factor = self.choices["bin"]
        r0, _, c0, _ = self.choices["roi"] or (0, 0, 0, 0)
        scale = np.asarray(self.base_scale, float)
        start = np.asarray(self.base_translate, float) + (np.array([r0, c0]) + (factor - 1) / 2) * scale
        return {"scale": tuple(scale * factor), "translate": tuple(start)}

    def pixel_block(self, row: int, col: int) -> tuple[slice, slice]:
        """Rows and columns of the measurement averaged into map pixel ``(row, col)``."""
        factor = self.choices["bin"]
        r0, _, c0, _ = self.choices["roi"] or (0, 0, 0, 0)
        return (slice(r0 + row * factor, r0 + (row + 1) * factor),
                slice(c0 + col * factor, c0 + (col + 1) * factor))

    def map_pixel(self, data_row: float, data_col: float) -> tuple[int, int] | None:
        """Pixel of the prepared grid holding measurement pixel ``(data_row, data_col)``, or None."""
        if self.stack is None:
            return None
        factor = self.choices["bin"]
        r0, r1, c0, c1 = self.choices["roi"] or (0, self.stack.data.shape[1], 0, self.stack.data.shape[2])
        row = int(np.floor((round(data_row) - r0) / factor))
        col = int(np.floor((round(data_col) - c0) / factor))
        rows, cols = (r1 - r0) // factor, (c1 - c0) // factor
        return (row, col) if 0 <= row < rows and 0 <= col < cols else None


_SESSIONS: dict[int, Session] = {}


def session_for(viewer) -> Session:
    """The one session of ``viewer`` (created on first use, dropped with the viewer)."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # napari hands plugins a proxy per widget
    key = id(viewer)
    if key not in _SESSIONS:
        _SESSIONS[key] = Session()
        weakref.finalize(viewer, _SESSIONS.pop, key, None)
    return _SESSIONS[key]
