"""Dock 2, Prepare: ROI from a shape, n × n binning, mask preview, energy calibration and drift."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QWidget

from ._base import Dock, notify_errors, set_layer
from ._plot import PlotCanvas
from ._controls import controls
from .calibration import CalibrationPanel

MASK_LAYER = "mask preview"
NORMALIZATION = ("e0", "pre1", "pre2", "norm1", "norm2", "nnorm")


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
        self.controls = controls(self.form, ("bin", "threshold", "significance"), on_change=self._changed)
        self.preview_button = self.button("Preview mask", self.preview_mask,
                                          tip="edge step of a subgrid and the no-sample mask, as a layer")
        self.form.addRow(self.preview_button)
        self.histogram = PlotCanvas(height=1.8)
        self.histogram.hide()
        self.body.addWidget(self.histogram)
        normalization = QGroupBox("Normalization (Larch's pre_edge)")
        normalization.setCheckable(False)
        self.controls.update(controls(QFormLayout(normalization), NORMALIZATION, on_change=self._changed))
        self.body.addWidget(normalization)
        self.calibration = CalibrationPanel(self)
        self.body.addWidget(self.calibration)
        self.body.addWidget(self.status)
        self.body.addStretch()
        self.preview = None
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            self.listen(event, lambda *_: self.refresh_layers())
        self.listen(self.session.changed, self._on_session)
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
            raise ValueError("pick the measurement first (Stack dock)")
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
            from ..core.prepare.grid import crop_stack

            crop_stack(self.session.stack.data, roi)  # refuses a ROI outside the image
        self.session.update("prepare", roi=None if roi is None else tuple(int(v) for v in roi))

    @notify_errors("Prepare")
    def _changed(self, name: str):
        self.session.update("prepare", **{name: self.controls[name].value()})
        if name in ("threshold", "significance"):
            self._show_mask()

    @notify_errors("Mask preview")
    def preview_mask(self):
        """Noise model, edge steps and their significance on a subgrid (worker), then the mask as a layer."""
        from ..core.spectra.maskpreview import preview_mask

        stack = self.session.prepared_stack()
        settings = self.session.settings
        self.launch(preview_mask, stack, norm_params=settings.normalization, significance=settings.significance,
                    done=self._previewed, what="Mask preview", buttons=(self.preview_button,), total=0)

    def _previewed(self, preview):
        self.preview = preview
        self._show_mask()

    def _show_mask(self):
        from ..core.spectra.mask import dropped_regions

        if self.preview is None:
            return
        preview, threshold = self.preview, self.session.settings.threshold
        mask = preview.mask(threshold)
        grid = preview.grid
        labels = mask.astype(np.uint8)
        set_layer(self.viewer, labels, kind="labels", update=True, name=self.session.layer_title(MASK_LAYER), opacity=0.4,
                  colormap={None: (0, 0, 0, 0), 0: (0, 0, 0, 0), 1: (0.0, 0.8, 1.0, 1.0)},
                  **grid.transform(**self.session.map_transform()))
        self._draw_histogram(preview, threshold)
        rule = (f"edge step above {threshold:.4g}" if threshold is not None else
                f"edge at least {preview.survey.significance:g} of its noise sigmas above zero")
        read = "all pixels read" if grid.full else f"1 pixel in {grid.row_stride} × {grid.col_stride} read"
        lines = [f"{rule}: {100 * labels.mean():.0f} % of the previewed pixels hold sample ({read})"]
        lines += [f"⚠ {w}" for w in dropped_regions(preview.jump, preview.jump_sigma, mask)]
        self.report("\n".join(lines))

    def _draw_histogram(self, preview, threshold):
        """Histogram of the edge significance (or of the edge step, with a manual cut) and the cut."""
        [ax] = self.histogram.clear()
        if threshold is None:
            values = preview.significance
            values = np.log10(np.clip(values[np.isfinite(values)], 0.1, None))
            cut, label = np.log10(preview.survey.significance), "log10 (edge jump / its sigma)"
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
        settings = self.session.settings
        roi = settings.roi
        self.roi_label.setText("whole image" if roi is None else f"{roi[0]}:{roi[1]}, {roi[2]}:{roi[3]}")
        for name, widget in self.controls.items():
            widget.show_value(getattr(settings, name))
