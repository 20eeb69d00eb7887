"""The scriptable state behind the xafsmap docks of one viewer (no Qt).

The seven docks are views of one :class:`Session`: each writes its choices into
:attr:`Session.settings` (:class:`~xafsmap.core.settings.schema.Settings`, typed and
checked) and listens to :attr:`Session.changed` to show choices made elsewhere (a
loaded recipe). Everything a dock computes goes through the steps of the job
(:mod:`xafsmap.core.job`: prepare, references, train), which ``xafsmap map`` and
``xafsmap run`` run too: a recipe exported from the docks reproduces their maps.

>>> s = Session()
>>> s.update("prepare", bin=2)
>>> s.settings.bin
2
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from pathlib import Path

from psygnal import Signal

from ..core.io.stack import IN_MEMORY
from ..core.prepare.grid import map_pixel, map_transform, pixel_block
from ..core.settings.schema import DEFAULTS, Settings
from ..core.settings.declare import ReferenceSpec

#: Roles of a measurement's files, as settings.
INPUTS = ("stack", "energies", "flat", "dark", "i0", "axes")
#: Settings that do not change a trained model (a model stays current when only they change).
NOT_TRAINING = ("metric", "zarr", "false_alarm", "pool", "library", "criterion", "sets", "workers", "scheduler", "model",
                "stacks", "series_list", "components", "clusters", "cluster_method", "nmf")


@dataclass
class Entry:
    """One row of the References dock: a reference that may or may not be used."""

    spec: str
    name: str
    offset: float = 0.0
    use: bool = True
    reference: object = None  # the core Reference, read once


#: A library folder with at most this many references comes ticked (more: the user picks).
TICK_FOLDER = 6


def read_entries(path) -> list[Entry]:
    """Entries of a reference file (every record; ticked when it holds one) or of a library
    folder (ticked when it holds at most :data:`TICK_FOLDER` references)."""
    from ..core.io.library import scan_library
    from ..core.io.references import read_references

    path = Path(path)
    if path.is_dir():
        refs, _ = scan_library(path)
        if not refs:
            raise ValueError(f"no readable reference spectrum in {path}")
        return [Entry(ref.source, ref.name, 0.0, len(refs) <= TICK_FOLDER, ref) for ref in refs]
    refs = read_references(path)
    return [Entry(ref.source, ref.name, 0.0, len(refs) == 1, ref) for ref in refs]


def training_key(settings: Settings) -> Settings:
    """The settings a trained model depends on (the others reset to their defaults)."""
    return replace(settings, **{name: getattr(DEFAULTS, name) for name in NOT_TRAINING})


def inputs_of(sources: dict) -> dict:
    """The settings of a measurement's sources (``Stack.sources``): the files that reopen it.

    A role given as an array, or energies read from the stack file itself, name no file.
    """
    found = {role: str(sources[role]) for role in INPUTS if sources.get(role) not in (None, IN_MEMORY)}
    stack, energies = found.get("stack", ""), found.get("energies", "")
    if energies and (energies == stack or ":" in energies and energies.rsplit(":", 1)[0] == stack.rsplit(":", 1)[0]):
        found.pop("energies")  # the stack file's own energies: reading it again finds them
    if "stack" not in found and sources.get("sample"):
        return {"sample": sources["sample"]}
    return found if "stack" in found else {}


class Session:
    """The settings, the measurement, references and results of one viewer."""

    changed = Signal(str)  # the part that changed: measurement, prepare, references, classes, ...

    def __init__(self):
        self.settings = Settings()
        self.source: dict = {}  # the measurement's sources (Stack.sources)
        self.wanted_source: dict = {}  # the measurement a loaded recipe asks for
        self.stack = None  # core Stack as opened (before crop and bin); a volume's middle slice
        self.volume = None  # core Volume (E, Z, Y, X) when the measurement is a volume
        self.layer_name: str | None = None
        self.base_scale = (1.0, 1.0)
        self.base_translate = (0.0, 0.0)
        self.entries: list[Entry] = []
        self.model = None
        self.model_settings: Settings | None = None
        self.result = None
        self.result_settings: Settings | None = None
        self.result_prepared = None  # the job's Prepared the result was mapped from
        self.shift_map = None  # core ShiftMap in the measurement's full grid, or None
        self.shift_origin: str | None = None  # "foil", "file" or "region" (self-calibration)
        self.drift = None  # (E, 2) image drift measured on the measurement, or None

    # settings -------------------------------------------------------------
    def update(self, part: str, **changes) -> None:
        """Change settings (checked as :class:`Settings` checks them) and announce ``part``."""
        self.settings = replace(self.settings, **changes)
        self.changed.emit(part)

    def set_measurement(self, stack, *, source: dict, layer_name=None, scale=(1.0, 1.0), translate=(0.0, 0.0),
                        volume=None):
        """Use ``stack`` (a core Stack) as the measurement; ``source`` says how to reopen it.

        ``volume`` (a core Volume): the measurement is that volume, mapped voxel by voxel;
        ``stack`` is then the slice the 2-D docks look at.
        """
        self.stack, self.source, self.layer_name, self.volume = stack, dict(source), layer_name, volume
        self.base_scale, self.base_translate = tuple(scale), tuple(translate)
        self.settings = replace(self.settings, **{**dict.fromkeys((*INPUTS, "sample")), **inputs_of(source)})
        self.model = self.result = self.drift = None
        self.changed.emit("measurement")

    def set_entries(self, entries) -> None:
        """The References table's rows; the ticked ones are the settings' references."""
        self.entries = list(entries)
        refs = tuple(ReferenceSpec(e.spec, e.name, float(e.offset)) for e in self.entries if e.use)
        self.settings = replace(self.settings, references=refs)
        self.changed.emit("references")

    def add_references(self, path) -> list[Entry]:
        """Add the references of a file or folder (see :func:`read_entries`) not already listed."""
        known = {entry.spec for entry in self.entries}
        new = [entry for entry in read_entries(path) if entry.spec not in known]
        self.set_entries(self.entries + new)
        return new

    def set_shift_map(self, shift_map, *, origin: str | None = None, foil=None, reference=None, path=None) -> None:
        """Use an energy-shift map (``None``: no calibration); the settings record where it came from.

        ``origin`` is ``"foil"`` (measured from ``foil``, with ``reference``), ``"file"``
        (read from ``path``) or ``"region"`` (self-calibration; saved beside an exported recipe).
        """
        if shift_map is not None and origin not in ("foil", "file", "region"):
            raise ValueError(f"unknown origin {origin!r} of a shift map")
        self.shift_map, self.shift_origin = shift_map, origin if shift_map is not None else None
        self.settings = replace(self.settings, calibration=str(foil) if origin == "foil" else None,
                                calibration_reference=str(reference) if origin == "foil" and reference else None,
                                shift_map=str(path) if origin == "file" else None)
        self.model = self.result = None
        self.changed.emit("calibration")

    def set_drift(self, drift, *, register: bool = True) -> None:
        """Keep the measured drift (E, 2) and whether the prepared stack is corrected for it."""
        self.drift = drift
        self.settings = replace(self.settings, register=bool(register and drift is not None))
        self.model = self.result = None
        self.changed.emit("calibration")

    def save_shift_map(self, path) -> str:
        """Write the shift map (shift.tif) and use that file from now on."""
        from ..core.prepare.shiftmap import write_shift_map

        if self.shift_map is None:
            raise ValueError("no energy-shift map to save: compute or load one first")
        write_shift_map(path, self.shift_map)
        self.settings = replace(self.settings, calibration=None, calibration_reference=None, shift_map=str(path))
        self.shift_origin = "file"
        self.changed.emit("calibration")
        return str(path)

    # derived -------------------------------------------------------------
    def layer_title(self, what: str) -> str:
        """Name of a result layer: ``what`` after the measurement's layer name (``sample classes``),
        so results of two stacks, or a user's layer called ``classes``, never collide."""
        return f"{self.layer_name} {what}" if self.layer_name else what

    def prepared(self):
        """The measurement drift-corrected, energy-calibrated, cropped and binned as chosen
        (:func:`xafsmap.core.job.prepare` with the drift and shift map measured in the docks)."""
        from ..core.job import prepare

        if self.stack is None:
            raise ValueError("no measurement yet: pick an image layer in the Stack dock")
        s = self.settings
        if s.register and self.drift is None:
            raise ValueError("the drift across energies is not measured yet (drift correction is ticked)")
        if (s.shift_map is not None or s.calibration is not None) and self.shift_map is None:
            raise ValueError("the energy-shift map is not computed yet (an energy calibration is chosen)")
        return prepare(s, self.stack, shift_map=self.shift_map, drift=self.drift if s.register else None)

    def prepared_volume(self):
        """The volume's slices prepared as ``xafsmap map`` prepares them
        (:func:`xafsmap.core.job.volumejob.prepare_volume`: drift measured on the projection
        along Z, a shift map from its file or foil)."""
        from ..core.job.volumejob import prepare_volume

        if self.volume is None:
            raise ValueError("the measurement is not a volume")
        if self.shift_origin == "region" and self.settings.shift_map is None:
            raise ValueError("a volume is calibrated by a shift-map file or a foil: save the self-calibrated "
                             "shift map (Prepare dock) first")
        return prepare_volume(self.settings, self.volume)

    def prepared_stack(self):
        """The prepared measurement (see :meth:`prepared`)."""
        return self.prepared().stack

    def references(self) -> list:
        """The references in use, read once and named as in the dock."""
        used = [entry for entry in self.entries if entry.use]
        if not used:
            raise ValueError("no reference is ticked: add or tick references in the References dock")
        out = [self._read(entry) for entry in used]
        names = [ref.name for ref in out]
        if len(set(names)) != len(names):
            raise ValueError(f"two ticked references share the name {names}: rename one in the table")
        return out

    def reference_named(self, name: str):
        """The reference of the table row called ``name`` (ticked or not), read once."""
        for entry in self.entries:
            if entry.name == name:
                return self._read(entry)
        raise ValueError(f"no reference called {name!r} in the References table")

    @staticmethod
    def _read(entry: Entry):
        from ..core.io.references import read_reference

        if entry.reference is None:
            entry.reference = read_reference(entry.spec)
        ref = entry.reference
        return replace(ref, name=entry.name) if entry.name != ref.name else ref

    def recipe(self) -> Settings:
        """Every choice, ready to be written as a recipe: the measurement must come from files
        or the sample, and a self-calibrated shift map must be saved first."""
        from ..core.settings.values import check_settings

        if self.shift_origin == "region" and self.settings.shift_map is None:
            raise ValueError("the self-calibrated shift map is not saved yet: save it (Prepare dock) so the "
                             "recipe can name it")
        if self.settings.stack is None and self.settings.sample is None:
            raise ValueError("the measurement was not opened from files, so a recipe cannot reopen it: "
                             "open the stack from its file (Stack dock) first")
        check_settings(self.settings)
        return self.settings

    def apply_recipe(self, settings: Settings) -> None:
        """Restore every choice of a recipe (the docks follow through :attr:`changed`)."""
        self.settings = settings
        self.entries = [self._entry(r) for r in settings.references]
        self.wanted_source = self.source_of(settings)
        self.model = self.result = self.shift_map = self.shift_origin = self.drift = None
        self.changed.emit("recipe")

    @staticmethod
    def _entry(spec) -> Entry:
        """A References row of a recipe's reference: unnamed ones take the name in their file."""
        if spec.name:
            return Entry(spec.spec, spec.name, spec.offset, True)
        from ..core.io.references import read_reference

        try:
            reference = read_reference(spec.spec)
        except (OSError, ValueError):  # named by its file; mapping will say what is wrong with it
            return Entry(spec.spec, Path(spec.spec.split(":")[0]).stem, spec.offset, True)
        return Entry(spec.spec, reference.name, spec.offset, True, reference)

    def recipe_for(self, path) -> Settings:
        """The recipe to write at ``path``: a self-calibrated shift map is saved beside it first."""
        if self.shift_origin == "region" and self.settings.shift_map is None:
            path = Path(path)
            self.save_shift_map(path.with_name(f"{path.stem}.shift.tif"))
        return self.recipe()

    @staticmethod
    def source_of(settings: Settings) -> dict:
        """The measurement files (or sample) of settings."""
        return {k: getattr(settings, k) for k in (*INPUTS, "sample") if getattr(settings, k)}

    def map_transform(self) -> dict:
        """``scale`` and ``translate`` that put maps of the prepared grid over the measurement."""
        return map_transform(self.settings.roi, self.settings.bin, scale=self.base_scale,
                             translate=self.base_translate)

    def pixel_block(self, row: int, col: int) -> tuple[slice, slice]:
        """Rows and columns of the measurement averaged into map pixel ``(row, col)``."""
        return pixel_block(row, col, self.settings.roi, self.settings.bin)

    def map_pixel(self, data_row: float, data_col: float) -> tuple[int, int] | None:
        """Pixel of the prepared grid holding measurement pixel ``(data_row, data_col)``, or None."""
        if self.stack is None:
            return None
        return map_pixel(data_row, data_col, self.stack.data.shape[1:], self.settings.roi, self.settings.bin)


_SESSIONS: dict[int, Session] = {}


def session_for(viewer) -> Session:
    """The one session of ``viewer`` (created on first use, dropped with the viewer)."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # napari hands plugins a proxy per widget
    key = id(viewer)
    if key not in _SESSIONS:
        _SESSIONS[key] = Session()
        weakref.finalize(viewer, _SESSIONS.pop, key, None)
    return _SESSIONS[key]
