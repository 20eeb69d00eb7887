"""Dock 2, Prepare: ROI from a shape, n × n binning, mask preview, energy calibration and drift."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QSpinBox, QWidget

from ._base import Dock, notify_errors, set_layer
from ._plot import PlotCanvas
from .calibration import CalibrationPanel

MASK_LAYER = "mask preview"


class PrepareWidget(Dock):
    """Crop to a rectangle of a Shapes layer, bin n × n, preview the background mask; calibrate energies."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.shapes_box = QComboBox()
        self.form.addRow("ROI shapes layer", self.shapes_box)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.button("ROI from shape", self.roi_from_shape, tip="bounding box of the selected "
                                   "(or last) shape"))
        line.addWidget(self.button("Whole image", lambda: self.set_roi(None)))
        self.form.addRow(row)
        self.roi_label = QLabel("whole image")
        self.form.addRow("ROI (rows, columns)", self.roi_label)
        self.bin_spin = QSpinBox()
        self.bin_spin.setRange(1, 64)
        self.bin_spin.setToolTip("average n × n neighbouring pixels (better S/N, fewer pixels)")
        self.form.addRow("Binning n × n", self.bin_spin)
        self.auto_box = QCheckBox("edge significance")
        self.auto_box.setToolTip("sample = an edge step at least 5 of its own noise sigmas above zero; "
                                 "untick for a manual edge-step threshold")
        self.auto_box.setChecked(True)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setDecimals(4)
        self.threshold_spin.setRange(0.0, 1e6)
        self.threshold_spin.setSingleStep(0.01)
        self.threshold_spin.setEnabled(False)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.auto_box)
        line.addWidget(self.threshold_spin)
        self.form.addRow("Mask", row)
        self.preview_button = self.button("Preview mask", self.preview_mask,
                                          tip="edge step of a subgrid and the no-sample mask, as a layer")
        self.form.addRow(self.preview_button)
        self.histogram = PlotCanvas(height=1.8)
        self.histogram.hide()
        self.layout().addWidget(self.histogram)
        self.calibration = CalibrationPanel(self)
        self.layout().addWidget(self.calibration)
        self.layout().addWidget(self.status)
        self.layout().addStretch()
        self.preview = None
        self.bin_spin.valueChanged.connect(lambda v: self.session.update("prepare", bin=int(v)))
        self.auto_box.toggled.connect(self._threshold_changed)
        self.threshold_spin.valueChanged.connect(self._threshold_changed)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(lambda *_: self.refresh_layers())
        self.session.changed.connect(self._on_session)
        self.refresh_layers()

    def refresh_layers(self):
        import napari.layers

        current = self.shapes_box.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Shapes)]
        self.shapes_box.clear()
        self.shapes_box.addItems(names)
        if current in names:
            self.shapes_box.setCurrentText(current)

    @notify_errors("ROI")
    def roi_from_shape(self):
        """Set the ROI to the bounding box of the selected (or last) shape, in stack pixels."""
        if self.session.stack is None:
            raise ValueError("pick the measurement first (Measurement dock)")
        name = self.shapes_box.currentText()
        if not name:
            raise ValueError("draw a rectangle in a Shapes layer first")
        shapes = self.viewer.layers[name]
        if not len(shapes.data):
            raise ValueError(f"the Shapes layer {name!r} holds no shape")
        index = max(shapes.selected_data) if shapes.selected_data else len(shapes.data) - 1
        stack_layer = self.viewer.layers[self.session.layer_name]
        corners = [stack_layer.world_to_data(shapes.data_to_world(v))[-2:] for v in shapes.data[index]]
        (lo_r, lo_c), (hi_r, hi_c) = np.min(corners, axis=0), np.max(corners, axis=0)
        _, rows, cols = self.session.stack.data.shape
        roi = (max(0, int(np.floor(lo_r + 0.5))), min(rows, int(np.ceil(hi_r + 0.5))),
               max(0, int(np.floor(lo_c + 0.5))), min(cols, int(np.ceil(hi_c + 0.5))))
        self.set_roi(roi)

    @notify_errors("ROI")
    def set_roi(self, roi):
        if roi is not None and self.session.stack is not None:
            from ..core.prepare.steps import crop_stack

            crop_stack(self.session.stack.data, roi)  # refuses a ROI outside the image
        self.session.update("prepare", roi=None if roi is None else tuple(int(v) for v in roi))

    def _threshold_changed(self, *_):
        self.threshold_spin.setEnabled(not self.auto_box.isChecked())
        threshold = None if self.auto_box.isChecked() else float(self.threshold_spin.value())
        if threshold != self.session.choices["threshold"]:
            self.session.update("prepare", threshold=threshold)
        self._show_mask()

    @notify_errors("Mask preview")
    def preview_mask(self):
        """Noise model, edge steps and their significance on a subgrid (worker), then the mask as a layer."""
        from ..core.spectra.mask import preview_mask

        stack = self.session.prepared_stack()
        self.launch(preview_mask, stack, norm_params=self.session.choices["normalization"], done=self._previewed,
                    what="Mask preview", buttons=(self.preview_button,), total=0)

    def _previewed(self, preview):
        self.preview = preview
        self._show_mask()

    def _show_mask(self):
        from ..core.spectra.mask import SIGNIFICANCE, dropped_regions

        if self.preview is None:
            return
        preview, threshold = self.preview, self.session.choices["threshold"]
        mask = preview.mask(threshold)
        stride = preview.stride
        transform = self.session.map_transform()
        scale = tuple(s * stride for s in transform["scale"])
        translate = tuple(t + (stride - 1) / 2 * s for t, s in zip(transform["translate"], transform["scale"]))
        labels = mask.astype(np.uint8)
        set_layer(self.viewer, labels, kind="labels", update=True, name=MASK_LAYER, scale=scale, translate=translate,
                  opacity=0.4, colormap={None: (0, 0, 0, 0), 0: (0, 0, 0, 0), 1: (0.0, 0.8, 1.0, 1.0)})
        self._draw_histogram(preview, threshold)
        rule = (f"edge step above {threshold:.4g}" if threshold is not None else
                f"edge at least {SIGNIFICANCE:g} of its noise sigmas above zero")
        lines = [f"{rule}: {100 * labels.mean():.0f} % of the previewed pixels hold sample "
                 + ("(all pixels read)" if stride == 1 else f"(1 pixel in {stride}² read)")]
        lines += [f"⚠ {w}" for w in dropped_regions(preview.jump, preview.jump_sigma, mask)]
        self.report("\n".join(lines))

    def _draw_histogram(self, preview, threshold):
        """Histogram of the edge significance (or of the edge step, with a manual cut) and the cut."""
        from ..core.spectra.mask import SIGNIFICANCE

        [ax] = self.histogram.clear()
        if threshold is None:
            values = preview.significance
            values = np.log10(np.clip(values[np.isfinite(values)], 0.1, None))
            cut, label = np.log10(SIGNIFICANCE), "log10 (edge jump / its sigma)"
        else:
            values, cut, label = preview.edge_step[np.isfinite(preview.edge_step)], threshold, "edge step"
        ax.hist(values, bins=80, color="#8fb4d9")
        ax.axvline(cut, color="#ff6e4a", lw=1.5)
        ax.set_xlabel(label)
        ax.set_ylabel("pixels")
        self.histogram.show()
        self.histogram.draw()

    def _on_session(self, part: str):
        if part == "measurement":
            self.preview = None
        if part not in ("recipe", "measurement", "prepare"):
            return
        roi = self.session.choices["roi"]
        self.roi_label.setText("whole image" if roi is None else f"{roi[0]}:{roi[1]}, {roi[2]}:{roi[3]}")
        self.bin_spin.blockSignals(True)
        self.bin_spin.setValue(self.session.choices["bin"])
        self.bin_spin.blockSignals(False)
        threshold = self.session.choices["threshold"]
        self.auto_box.blockSignals(True)
        self.auto_box.setChecked(threshold is None)
        self.auto_box.blockSignals(False)
        self.threshold_spin.setEnabled(threshold is not None)
        if threshold is not None:
            self.threshold_spin.blockSignals(True)
            self.threshold_spin.setValue(threshold)
            self.threshold_spin.blockSignals(False)
