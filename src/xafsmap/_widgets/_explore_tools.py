"""The Explore dock's Regions and Scatter pages: thin views over :mod:`xafsmap.core.explore`.

Regions: napari Shapes (polygons, rectangles, ellipses) or a Labels layer become named
:class:`~xafsmap.core.explore.Roi` in the prepared grid; their mean spectra, fits and
pixel counts come from :func:`~xafsmap.core.explore.roi_spectra` in a worker; geometry
and spectra are saved as JSON, XDI and CSV. Scatter: a 2-D histogram of any two maps
of the grid with a lasso whose polygon selects pixels into a labels layer
(:func:`~xafsmap.core.explore.select_by_values`), and an RGB composite of three maps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ._base import hbox, notify_errors, set_layer
from ._plot import PlotCanvas

SELECTION_LAYER = "scatter selection"
RGB_LAYER = "RGB composite"
REGIONS_LAYER = "regions"


def shapes_to_rois(layer, transform) -> list:
    """Regions of a Shapes layer's polygons, rectangles and ellipses, in the prepared grid.

    ``transform`` is the session's ``map_transform()`` (grid -> world); names come from
    the layer's ``name`` feature, else ``ROI 1``, ``ROI 2``...
    """
    from ..core.explore import Roi

    scale, translate = np.asarray(transform["scale"]), np.asarray(transform["translate"])
    names = list(layer.features["name"]) if "name" in layer.features else []
    rois = []
    for i, (vertices, kind) in enumerate(zip(layer.data, layer.shape_type)):
        world = np.array([layer.data_to_world(v) for v in vertices])[:, -2:]
        grid = (world - translate) / scale
        if kind == "ellipse":  # the four corners of its box -> its outline
            centre = grid.mean(axis=0)
            a, b = (grid[1] + grid[2]) / 2 - centre, (grid[2] + grid[3]) / 2 - centre
            t = np.linspace(0, 2 * np.pi, 64, endpoint=False)[:, None]
            grid = centre + np.cos(t) * a + np.sin(t) * b
        elif kind not in ("polygon", "rectangle"):
            raise ValueError(f"shape {i + 1} is a {kind}: regions are polygons, rectangles or ellipses")
        rois.append(Roi(str(names[i]) if i < len(names) and str(names[i]) else f"ROI {i + 1}", polygon=grid))
    return rois


def measure_rois(stack, rois, normalization, references, offsets):
    """Worker: :func:`~xafsmap.core.explore.roi_spectra` of the prepared stack."""
    from ..core.explore import roi_spectra

    return roi_spectra(stack.data, stack.energies, rois, normalization=normalization, references=references or None,
                       offsets=offsets or None)


class RoiPanel(QWidget):
    """Named regions from a Shapes or Labels layer: mean spectra, fits, counts; JSON, XDI, CSV."""

    def __init__(self, dock):
        super().__init__()
        self.dock, self.viewer, self.session = dock, dock.viewer, dock.session
        self.rois, self.found = [], None
        self.setLayout(QVBoxLayout())
        form = QFormLayout()
        self.layout().addLayout(form)
        self.layer_box = QComboBox()
        self.layer_box.setToolTip("a Shapes layer (one region per shape; a 'name' feature names them) or a Labels "
                                  "layer of the explored grid (one region per label)")
        form.addRow("Regions layer", self.layer_box)
        self.measure_button = dock.button("Measure regions", self.measure, tip="mean spectrum, pixel count and a "
                                          "fit with the ticked references, per region (a worker)")
        self.save_button = dock.button("Save…", self.ask_save, tip="regions as JSON, spectra as XDI and CSV")
        self.load_button = dock.button("Load regions…", self.ask_load, tip="regions saved before, as a Shapes layer")
        form.addRow(hbox(self.measure_button, self.save_button, self.load_button))
        self.table = QTableWidget(0, 2)
        self.table.setMinimumHeight(110)
        self.layout().addWidget(self.table)
        self.plot = PlotCanvas(1, height=2.4)
        self.layout().addWidget(self.plot)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            self.dock.listen(event, lambda *_: self.refresh_layers())
        self.refresh_layers()

    def refresh_layers(self):
        import napari.layers

        current = self.layer_box.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, (napari.layers.Shapes,
                                                                                  napari.layers.Labels))]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        self.layer_box.blockSignals(False)
        if current in names:
            self.layer_box.setCurrentText(current)

    def current_rois(self) -> list:
        import napari.layers

        from ..core.explore import rois_from_labels

        name = self.layer_box.currentText()
        if not name:
            raise ValueError("draw regions in a Shapes layer (or paint a Labels layer) first")
        layer = self.viewer.layers[name]
        if isinstance(layer, napari.layers.Shapes):
            if not len(layer.data):
                raise ValueError(f"the Shapes layer {name!r} holds no shape")
            return shapes_to_rois(layer, self.session.map_transform())
        grid = self.dock.result.clusters.shape if self.dock.result is not None else None
        if grid is not None and layer.data.shape != grid:
            raise ValueError(f"the Labels layer {name!r} is {layer.data.shape} pixels, not the explored grid {grid}")
        names = dict(zip(layer.features["index"], layer.features["class"])) if "class" in layer.features else None
        rois = rois_from_labels(np.asarray(layer.data), names)
        if not rois:
            raise ValueError(f"the Labels layer {name!r} has no label above 0")
        return rois

    @notify_errors("Measure regions")
    def measure(self, rois=None):
        """Mean spectra, counts and fits of the regions (worker)."""
        if self.dock.result is None:
            raise ValueError("explore first: the regions use the exploration's normalization")
        self.rois = rois if rois is not None else self.current_rois()
        ticked = [entry for entry in self.session.entries if entry.use]
        references = self.session.references() if ticked else []
        self.dock.launch(measure_rois, self.session.prepared_stack(), self.rois,
                         self.dock.result.learned.sample.params, references, [e.offset for e in ticked],
                         done=self._measured, what="Measuring regions", buttons=(self.measure_button,))

    def _measured(self, found):
        self.found = found
        names = list(found.reference_names)
        columns = ["region", "pixels", *names, *(["residual"] if names else [])]
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setRowCount(len(found.names))
        for i, name in enumerate(found.names):
            cells = [name, str(int(found.pixels[i]))]
            if names:
                cells += [f"{v:.3f}" for v in found.fractions[i]] + [f"{found.residual[i]:.4f}"]
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.dock.extra_spectra = {f"region {n}": (found.energies, s) for n, s in zip(found.names, found.spectra)}
        [ax] = self.plot.clear()
        for name, spectrum in zip(found.names, found.spectra):
            ax.plot(found.energies, spectrum, lw=1, label=name)
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel("normalized μ")
        ax.legend(fontsize=6)
        self.plot.draw()
        self.dock.fill_spectra()
        self.dock.report(f"{len(found.names)} region(s) measured" + (f", fitted with {', '.join(names)}" if names
                                                                      else " (tick references to fit them)"))

    def ask_save(self):
        folder = QFileDialog.getExistingDirectory(self, "Folder for regions.json, the XDI files and CSV")
        if folder:
            self.save(folder)

    @notify_errors("Save regions")
    def save(self, folder, *, element_edge: str | None = None) -> list[Path]:
        """``regions.json``, ``region_spectra.csv`` and ``regions_xdi/`` in ``folder``."""
        from ..core.explore import write_rois, write_spectra_csv
        from ..core.io.export import SpectrumRecord, write_spectra

        if self.found is None:
            raise ValueError("measure the regions first")
        folder = Path(folder)
        shape = self.dock.result.clusters.shape
        written = [write_rois(folder / "regions.json", self.rois, shape=shape),
                   write_spectra_csv(folder / "region_spectra.csv", self.found.energies, self.found.spectra,
                                     self.found.names)]
        text = (element_edge if element_edge is not None else self.dock.edge_edit.text()).split()
        if len(text) == 2:
            records = [SpectrumRecord(n, self.found.energies, s) for n, s, p in
                       zip(self.found.names, self.found.spectra, self.found.pixels) if p > 0]
            written += write_spectra(records, element=text[0], edge=text[1], xdi=folder / "regions_xdi",
                                     overwrite=True)
        self.dock.report(f"wrote {len(written)} files to {folder}")
        return written

    def ask_load(self):
        path, _ = QFileDialog.getOpenFileName(self, "Regions saved before", "", "JSON (*.json)")
        if path:
            self.load(path)

    @notify_errors("Load regions")
    def load(self, path):
        """Regions from JSON as a Shapes layer (polygons) and a Labels layer (pixel runs), in this grid."""
        from ..core.explore import read_rois, roi_mask

        rois, shape = read_rois(path)
        grid = self.session.map_transform()
        polygons = [r for r in rois if r.polygon is not None]
        if polygons:
            if REGIONS_LAYER in self.viewer.layers:
                self.viewer.layers.remove(REGIONS_LAYER)
            self.viewer.add_shapes([r.polygon for r in polygons], shape_type="polygon", name=REGIONS_LAYER,
                                   features={"name": [r.name for r in polygons]}, edge_color="yellow",
                                   face_color="transparent", text={"string": "{name}", "color": "yellow"}, **grid)
        runs = [r for r in rois if r.runs is not None]
        if runs:
            labels = np.zeros(shape, np.uint16)
            for value, roi in enumerate(runs, start=1):
                labels[roi_mask(roi, shape)] = value
            set_layer(self.viewer, labels, kind="labels", name=f"{REGIONS_LAYER} (pixels)",
                      features={"index": np.arange(len(runs) + 1), "class": ["none", *[r.name for r in runs]]},
                      **grid)
        self.rois = rois
        self.dock.report(f"loaded {len(rois)} region(s) drawn on a {shape[0]} x {shape[1]} grid")


class ScatterPanel(QWidget):
    """Two maps against each other with a lasso into a labels layer; three maps as RGB."""

    def __init__(self, dock):
        super().__init__()
        self.dock, self.viewer = dock, dock.viewer
        self.lasso = None
        self.setLayout(QVBoxLayout())
        form = QFormLayout()
        self.layout().addLayout(form)
        self.x_box, self.y_box = QComboBox(), QComboBox()
        form.addRow("x, y", hbox(self.x_box, self.y_box))
        self.plot_button = dock.button("Plot", self.draw, tip="2-D histogram of the two maps over the sample "
                                       "pixels; draw around a population to select its pixels")
        form.addRow(self.plot_button)
        self.plot = PlotCanvas(1, height=3.0)
        self.layout().addWidget(self.plot)
        self.rgb_boxes = [QComboBox() for _ in range(3)]
        form2 = QFormLayout()
        self.layout().addLayout(form2)
        form2.addRow("Red, green, blue", hbox(*self.rgb_boxes))
        self.rgb_button = dock.button("RGB composite", self.composite, tip="three maps as one RGB layer, each "
                                      "stretched between its 1st and 99th percentile")
        form2.addRow(self.rgb_button)
        self.x = self.y = None

    def maps(self) -> dict:
        """2-D image layers of the explored grid, by name."""
        import napari.layers

        if self.dock.result is None:
            return {}
        shape = self.dock.result.clusters.shape
        return {layer.name: layer for layer in self.viewer.layers
                if isinstance(layer, napari.layers.Image) and not layer.rgb and layer.data.shape == shape}

    def refresh(self):
        names = list(self.maps())
        for box, default in zip((self.x_box, self.y_box, *self.rgb_boxes), (0, 1, 0, 1, 2)):
            current = box.currentText()
            box.clear()
            box.addItems(names)
            box.setCurrentText(current if current in names else names[min(default, len(names) - 1)] if names else "")

    @notify_errors("Scatter plot")
    def draw(self, x_name: str | None = None, y_name: str | None = None):
        from matplotlib.widgets import LassoSelector

        from ..core.explore import histogram_2d

        maps = self.maps()
        x_name, y_name = x_name or self.x_box.currentText(), y_name or self.y_box.currentText()
        if x_name not in maps or y_name not in maps:
            raise ValueError("explore first, then pick two maps")
        self.x_box.setCurrentText(x_name)
        self.y_box.setCurrentText(y_name)
        self.x, self.y = (np.asarray(maps[n].data, dtype=np.float64) for n in (x_name, y_name))
        counts, xe, ye = histogram_2d(self.x, self.y, bins=96, mask=self.dock.result.mask == 1)
        [ax] = self.plot.clear()
        ax.imshow(np.log1p(counts).T, origin="lower", extent=(xe[0], xe[-1], ye[0], ye[-1]), aspect="auto",
                  cmap="magma", interpolation="nearest")
        ax.set_xlabel(x_name)
        ax.set_ylabel(y_name)
        self.lasso = LassoSelector(ax, onselect=self.select_polygon)
        self.plot.draw()

    @notify_errors("Lasso selection")
    def select_polygon(self, vertices):
        """Pixels whose (x, y) lie inside the polygon become the next label of the selection layer."""
        from ..core.explore import select_by_values

        if self.x is None:
            raise ValueError("plot two maps first")
        chosen = select_by_values(self.x, self.y, np.asarray(vertices, dtype=np.float64))
        grid = self.dock.session.map_transform()
        if SELECTION_LAYER in self.viewer.layers:
            labels = np.array(self.viewer.layers[SELECTION_LAYER].data)
        else:
            labels = np.zeros(chosen.shape, np.uint16)
        labels[chosen] = labels.max() + 1
        set_layer(self.viewer, labels, kind="labels", update=True, name=SELECTION_LAYER, **grid)
        [ax] = self.plot.axes
        polygon = np.asarray(vertices)
        ax.plot(*np.vstack([polygon, polygon[:1]]).T, color="cyan", lw=1, scalex=False, scaley=False)
        self.plot.draw()
        self.dock.report(f"{int(chosen.sum())} pixels selected as label {int(labels.max())} of "
                         f"'{SELECTION_LAYER}' (use it as a regions layer)")
        return chosen

    @notify_errors("RGB composite")
    def composite(self, names=None):
        from ..core.explore import rgb_composite

        maps = self.maps()
        names = names or [box.currentText() for box in self.rgb_boxes]
        if any(name not in maps for name in names):
            raise ValueError("explore first, then pick three maps")
        for box, name in zip(self.rgb_boxes, names):
            box.setCurrentText(name)
        rgb = rgb_composite(*(np.asarray(maps[n].data) for n in names), mask=self.dock.result.mask == 1)
        set_layer(self.viewer, rgb, name=RGB_LAYER, rgb=True, metadata={"channels": list(names)},
                  **self.dock.session.map_transform())
        self.dock.report(f"RGB: {', '.join(names)}")
        return rgb
