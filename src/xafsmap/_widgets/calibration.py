"""The Prepare dock's energy calibration and image drift: compute, load, show and apply.

A panel of the Prepare dock (not a dock of its own): the energy-shift map and the drift
are part of preparing the stack, and every dock's prepared stack goes through
:func:`xafsmap.core.job.prepare` with them, as ``xafsmap map`` and ``xafsmap run`` do.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QComboBox, QFileDialog, QFormLayout, QGroupBox, QLabel

from ._base import TAG, find_layer, hbox, notify_errors, set_layer
from ._controls import control, controls

SHIFT_LAYERS = ("shift (eV)", "shift residual (eV)", "shift uncertainty (eV)")
#: The shift layer's colours span at least this many eV (a uniform shift looks uniform).
MIN_SHIFT_SPAN = 0.5


def compute_shift_map(settings):
    """Worker: the shift map of the settings' foil stack (the job's, as ``xafsmap map --calibration``)."""
    from ..core.job import shift_map_for

    return shift_map_for(settings)


def self_calibrate(stack, region, reference: str | None, *, degree: int, bin_size: int):
    """Worker: the shift map measured on a region of the sample itself (a known or uniform phase)."""
    from ..core.io.references import read_reference
    from ..core.prepare.calibrate import calibrate

    ref = read_reference(reference) if reference else None
    return calibrate(stack.data, stack.energies, region=region, reference=None if ref is None else ref.mu,
                     reference_energies=None if ref is None else ref.energies, degree=degree, bin=bin_size)


def measure(stack):
    """Worker: image drift (E, 2) across energies and its summary."""
    from ..core.prepare.drift import drift_report
    from ..core.prepare.register import measure_drift

    drift = measure_drift(stack.data, stack.energies)
    return drift, drift_report(drift)



class CalibrationPanel(QGroupBox):
    """Energy-shift map (from a foil, a file or a region of the sample) and drift correction."""

    def __init__(self, dock):
        super().__init__("Energy calibration and image drift")
        self.dock, self.viewer, self.session = dock, dock.viewer, dock.session
        form = QFormLayout(self)
        self.controls = controls(form, ("calibration", "calibration_reference", "degree", "bin_size"),
                                 on_change=self._changed)
        self.foil_edit = self.controls["calibration"].editor
        self.reference_edit = self.controls["calibration_reference"].editor
        self.compute_button = dock.button("Compute from foil", self.compute, tip="measure the per-pixel shift "
                                          "and fit a smooth map (background)")
        self.region_box = QComboBox()
        self.region_box.setToolTip("Labels layer: pixels with a label > 0 hold one known or uniform phase")
        self.self_button = dock.button("Self-calibrate", self.self_calibrate, tip="measure the shift on the "
                                       "chosen region of the sample itself (no foil)")
        form.addRow(self.compute_button)
        form.addRow("Region (labels)", hbox(self.region_box, self.self_button))
        self.controls.update(controls(form, ("shift_map",)))
        self.file_edit = self.controls["shift_map"].editor
        self.load_button = dock.button("Load", lambda: self.load(self.file_edit.text().strip()))
        self.save_button = dock.button("Save…", self._save_dialog, tip="write shift.tif (shift, uncertainty)")
        self.clear_button = dock.button("None", self.clear, tip="no energy calibration")
        form.addRow(hbox(self.load_button, self.save_button, self.clear_button))
        self.shift_label = QLabel("no energy calibration")
        self.shift_label.setWordWrap(True)
        form.addRow(self.shift_label)
        self.drift_button = dock.button("Measure drift", self.measure_drift, tip="phase correlation of every "
                                        "energy image with one above the edge (background)")
        self.controls["register"] = register = control("register")
        self.register_box = register.editor
        form.addRow("Image drift", hbox(self.drift_button, register))
        self.drift_label = QLabel("not measured")
        self.drift_label.setWordWrap(True)
        form.addRow(self.drift_label)
        self.buttons = (self.compute_button, self.self_button, self.load_button, self.drift_button)
        register.changed.connect(lambda: self._register_toggled(register.value()))
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            self.dock.listen(event, lambda *_: self.refresh_layers())
        self.dock.listen(self.session.changed, self._on_session)
        self.refresh_layers()

    def refresh_layers(self):
        import napari.layers

        current = self.region_box.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Labels)
                 and layer.ndim == 2 and not str(layer.metadata.get(TAG, "")).endswith(("unexplained", "preferred"))]
        self.region_box.clear()
        self.region_box.addItems(names)
        if current in names:
            self.region_box.setCurrentText(current)

    def _reference(self) -> str | None:
        return self.controls["calibration_reference"].value()

    @notify_errors("Energy calibration")
    def _changed(self, name: str):
        if name in ("degree", "bin_size"):
            self.session.update("prepare", **{name: self.controls[name].value()})

    # energy calibration --------------------------------------------------
    @notify_errors("Energy calibration")
    def compute(self, foil: str | None = None):
        """Measure the shift map from the foil stack in a worker, then show and apply it."""
        foil = foil or self.foil_edit.text().strip()
        if not foil:
            raise ValueError("give the calibration (foil) stack first")
        reference = self._reference()
        from dataclasses import replace

        settings = replace(self.session.settings, calibration=foil, calibration_reference=reference, shift_map=None)
        self.dock.launch(compute_shift_map, settings, what="Energy calibration", buttons=self.buttons,
                         done=lambda sm: self._use(sm, origin="foil", foil=foil, reference=reference))

    @notify_errors("Self-calibration")
    def self_calibrate(self):
        """Measure the shift map on the chosen region of the measurement itself (worker)."""
        if self.session.stack is None:
            raise ValueError("pick the measurement first (Stack dock)")
        name = self.region_box.currentText()
        if not name:
            raise ValueError("paint the region of a known or uniform phase in a Labels layer first")
        region = np.asarray(self.viewer.layers[name].data) > 0
        shape = tuple(self.session.stack.data.shape[1:])
        if region.shape != shape:
            raise ValueError(f"the Labels layer {name!r} is {region.shape} pixels but the stack's images are {shape}")
        if not region.any():
            raise ValueError(f"the Labels layer {name!r} marks no pixel")
        self.dock.launch(self_calibrate, self.session.stack, region, self._reference(), what="Self-calibration",
                         degree=self.session.settings.degree, bin_size=self.session.settings.bin_size,
                         buttons=self.buttons, done=lambda sm: self._use(sm, origin="region"))

    @notify_errors("Load shift map")
    def load(self, path: str):
        """Read a shift map file (shift and uncertainty pages) and apply it."""
        from ..core.prepare.shiftmap import read_shift_map

        if not path:
            raise ValueError("give a shift map file (shift.tif) first")
        self._use(read_shift_map(path), origin="file", path=path)

    def _save_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save the shift map", "shift.tif", "TIFF (*.tif)")
        if path:
            self.save(path)

    @notify_errors("Save shift map")
    def save(self, path) -> str:
        """Write the shift map; the recipe then names this file."""
        written = self.session.save_shift_map(path)
        self.file_edit.setText(written)
        return written

    def clear(self):
        self.session.set_shift_map(None)
        self.remove_layers()

    def _use(self, shift_map, **origin):
        shape = tuple(self.session.stack.data.shape[1:]) if self.session.stack is not None else None
        if shape is not None and tuple(shift_map.shift.shape) != shape:
            raise ValueError(f"the shift map is {tuple(shift_map.shift.shape)} pixels but the stack's images "
                             f"are {shape}")
        self.session.set_shift_map(shift_map, **origin)
        self.show_layers()

    def remove_layers(self):
        """Remove the shift layers (of this measurement)."""
        for name in SHIFT_LAYERS:
            layer = find_layer(self.viewer, self.session.layer_title(name))
            if layer is not None:
                self.viewer.layers.remove(layer)

    def show_layers(self):
        """The shift, its fit residual (measured − smooth) and uncertainty as layers over the stack."""
        shift_map = self.session.shift_map
        if shift_map is None:
            return
        grid = {"scale": self.session.base_scale, "translate": self.session.base_translate}
        with np.errstate(invalid="ignore"):
            residual = (shift_map.measured - shift_map.shift).astype(np.float32)
        planes = dict(zip(SHIFT_LAYERS, (shift_map.shift, residual, shift_map.uncertainty)))
        for i, (name, plane) in enumerate(planes.items()):
            finite = plane[np.isfinite(plane)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if name == SHIFT_LAYERS[1]:
                low, high = -max(abs(low), abs(high), 1e-3), max(abs(low), abs(high), 1e-3)
            if name == SHIFT_LAYERS[0]:  # a shift of hundredths of an eV is not stretched over every colour
                middle, half = (low + high) / 2, max((high - low) / 2, MIN_SHIFT_SPAN / 2)
                low, high = middle - half, middle + half
            set_layer(self.viewer, np.asarray(plane, np.float32), name=self.session.layer_title(name), visible=i == 0,
                      opacity=0.7, colormap=("viridis", "PiYG", "magma")[i], colorbar=True,
                      contrast_limits=(low, max(high, low + 1e-6)), **grid)

    def _describe_shift(self):
        from ..core.prepare.shiftmap import describe_shift_map

        shift_map, origin, settings = self.session.shift_map, self.session.shift_origin, self.session.settings
        if shift_map is None:
            self.shift_label.setText("no energy calibration")
            return
        where = {"foil": f"from the foil {settings.calibration}", "region": "from a region "
                 "of the sample (saved beside an exported recipe)", "file": f"from {settings.shift_map}"}[origin]
        energies = self.session.stack.energies if self.session.stack is not None else None
        self.shift_label.setText(f"{describe_shift_map(shift_map, energies=energies)} ({where})")

    # drift ---------------------------------------------------------------
    @notify_errors("Drift")
    def measure_drift(self, *, register: bool | None = None):
        """Measure the drift across energies (worker); report it and correct it if ticked."""
        if self.session.stack is None:
            raise ValueError("pick the measurement first (Stack dock)")
        register = self.register_box.isChecked() if register is None else register
        self.dock.launch(measure, self.session.stack, what="Measuring the drift", buttons=self.buttons,
                         done=lambda value: self._measured(value, register))

    def _measured(self, value, register):
        drift, report = value
        self.session.set_drift(drift, register=register)
        self.drift_label.setText(f"drift over {report['n_images']} images: max {report['max']:.2f} px "
                                 f"(rows {report['max_dy']:.2f}, columns {report['max_dx']:.2f}), "
                                 f"RMS {report['rms']:.2f} px" + ("; corrected" if register else "; not corrected"))

    def _register_toggled(self, on: bool):
        if on and self.session.drift is None:
            self.measure_drift(register=True)
        elif self.session.drift is not None:
            self.session.set_drift(self.session.drift, register=on)
            text = self.drift_label.text().rsplit(";", 1)[0]
            self.drift_label.setText(f"{text}; {'corrected' if on else 'not corrected'}")

    # following the session -----------------------------------------------
    def _on_session(self, part: str):
        settings = self.session.settings
        if part == "recipe":
            for name, widget in self.controls.items():
                widget.show_value(getattr(settings, name))
            self.remove_layers()
            if settings.shift_map:
                self.load(settings.shift_map)
            elif settings.calibration:
                self.compute(settings.calibration)
        if part in ("recipe", "measurement"):
            self.controls["register"].show_value(settings.register)
            if self.session.drift is None:
                self.drift_label.setText("not measured")
            if settings.register and self.session.drift is None and self.session.stack is not None:
                self.measure_drift(register=True)
        if part in ("recipe", "measurement", "calibration", "prepare"):
            self._describe_shift()
