"""Dock 8, Series: one model over other open stacks or a folder of stacks; the fractions across them.

The model is the session's (trained in the Map dock) or a saved model file
(``xafsmap train``, or saved here). "Map ticked layers" maps other image layers in
memory (:func:`xafsmap.core.job.iter_apply`) and adds their label maps; "Map a folder…"
runs ``xafsmap series`` on every stack of a folder into an output folder
(:func:`xafsmap.core.job.iter_series`: the map files, series.csv, series.png, resumable).
Either way the table shows one row per stack and the plot the mean fraction of each
reference across the series.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QLabel, QListWidget, QListWidgetItem, QTableWidget, QTableWidgetItem

from ._base import Dock, hbox, notify_errors, set_layer
from ._controls import controls
from ._plot import PlotCanvas
from .volumemap import apply_model, is_volume_layer, volume_of

#: Columns of series.csv the table leaves out (the file has them).
HIDDEN = ("path", "pixels", "no_sample_pixels", "invalid_pixels")


def stack_of(layer):
    """The core Stack of an image layer that carries energies (as the reader and the sample give)."""
    from ..core.io.stack import Stack

    return Stack(layer.data, np.asarray(layer.metadata["energies"], dtype=np.float64),
                 dict(layer.metadata.get("sources") or {}))


class SeriesWidget(Dock):
    """The model, the stacks to map with it, and the series' table and fractions plot."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.controls = controls(self.form, ("model",), on_change=self._changed)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self.form.addRow("Model", self.model_label)
        self.save_model_button = self.button("Save model…", self._save_model_dialog,
                                             tip="write the session's trained model as a file (for --model)")
        self.form.addRow(hbox(self.save_model_button))
        self.layers = QListWidget()
        self.layers.setMaximumHeight(120)
        self.form.addRow("Stacks (image layers)", self.layers)
        self.map_button = self.button("Map ticked layers", self.map_layers, tip="one model, every ticked layer")
        self.folder_button = self.button("Map a folder…", self._folder_dialog,
                                         tip="xafsmap series: every stack of a folder into an output folder")
        self.form.addRow(hbox(self.map_button, self.folder_button))
        self.table = QTableWidget(0, 0)
        self.table.setMinimumHeight(140)
        self.layout().addWidget(self.table)
        self.plot = PlotCanvas(1, height=3.0)
        self.layout().addWidget(self.plot)
        self.layout().addWidget(self.status)
        self.rows: list[dict] = []
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(lambda *_: self.refresh_layers())
        self.session.changed.connect(self._on_session)
        self.refresh_layers()
        self._on_session("recipe")

    # state ---------------------------------------------------------------
    @notify_errors("Series settings")
    def _changed(self, name: str):
        self.session.update("series", **{name: self.controls[name].value()})

    def _on_session(self, part: str):
        if part == "recipe":
            self.controls["model"].show_value(self.session.settings.model)
        self.model_label.setText(self.describe_model())

    def describe_model(self) -> str:
        if self.session.settings.model:
            return f"the file {self.session.settings.model}"
        if self.session.model is not None:
            classes = self.session.model.classifier.classes
            return f"the session's trained model ({len(classes)} classes over {', '.join(classes.references)})"
        return "none yet: train in the Map dock, or choose a model file"

    def refresh_layers(self):
        """List the image layers with energies (the measurement's too), keeping the ticks."""
        import napari.layers

        ticked = set(self.ticked())
        self.layers.clear()
        for layer in self.viewer.layers:
            if isinstance(layer, napari.layers.Image) and layer.ndim == 3 and "energies" in layer.metadata \
                    or is_volume_layer(layer):
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if layer.name in ticked else Qt.CheckState.Unchecked)
                self.layers.addItem(item)

    def ticked(self) -> list[str]:
        return [self.layers.item(i).text() for i in range(self.layers.count())
                if self.layers.item(i).checkState() == Qt.CheckState.Checked]

    def tick(self, *names: str) -> None:
        """Tick the layers named (scripts and tests)."""
        for i in range(self.layers.count()):
            item = self.layers.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def model(self):
        """The model to map with: the file chosen, else the session's."""
        from ..core.job import load_model_for

        if self.session.settings.model:
            return load_model_for(self.session.settings, self.session.references()).model
        if self.session.model is None:
            raise ValueError("no model: train one in the Map dock, or choose a model file")
        return self.session.model

    # actions -------------------------------------------------------------
    @notify_errors("Map layers")
    def map_layers(self):
        """Map every ticked layer with the model (worker); add their labels, fill the table and plot.

        A volume layer is mapped voxel by voxel (its labels a 3-D layer), stacks first.
        """
        names = self.ticked()
        if not names:
            raise ValueError("tick the image layers to map")
        layers = {name: self.viewer.layers[name] for name in names}
        stacks = {name: stack_of(layer) for name, layer in layers.items() if not is_volume_layer(layer)}
        volumes = {name: volume_of(layer) for name, layer in layers.items() if is_volume_layer(layer)}
        settings = replace(self.session.settings, model=None)
        self.report(f"mapping {len(names)} stacks…")
        self.launch(apply_model, settings, self.model(), stacks, volumes, done=self._mapped_layers,
                    what="Mapping the series", buttons=(self.map_button, self.folder_button))

    def _mapped_layers(self, found):
        from .._reader import labels_layer

        for name, result, _ in found:
            classes = result.classifier.classes
            data, meta, _ = labels_layer(result.labels, list(classes.names), compositions=classes.compositions,
                                         references=list(classes.references))
            set_layer(self.viewer, data, kind="labels", **{**meta, "name": f"{name} labels"})
        self.show_rows([row for _, _, row in found], list(found[0][1].classifier.classes.references) if found else [])
        self.report(f"mapped {len(found)} stacks with one model")

    def _folder_dialog(self):
        folder = QFileDialog.getExistingDirectory(self, "Folder of stacks")
        if not folder:
            return
        out = QFileDialog.getExistingDirectory(self, "Output folder (new, empty or a series to resume)")
        if out:
            self.map_folder(folder, out)

    @notify_errors("Map folder")
    def map_folder(self, folder, out):
        """``xafsmap series`` on every stack of ``folder`` into ``out`` (worker), with the model file."""
        from ..core.job import iter_series
        from ..core.job.seriestable import find_stacks

        if not self.session.settings.model:
            raise ValueError("save the model first (Save model…) or choose a model file: the series' maps record "
                             "the file they were mapped with")
        from ..core.io.volume import volume_kind

        volumes = [Path(path).name for path in find_stacks(folder) if volume_kind(path)]
        if volumes:  # the series job maps (E, M, N) stacks; it would stop at the first volume
            raise ValueError(f"{folder} holds volumes ({', '.join(volumes)}): a series of volumes is not mapped yet; "
                             "open each volume and use Map ticked layers, or map it with xafsmap map")
        settings = replace(self.session.settings, stack=None, sample=None, stacks=tuple(find_stacks(folder)),
                           series_list=None, energies=None, flat=None, dark=None, i0=None)
        self.report(f"mapping {len(settings.stacks)} stacks of {folder} into {out}…")
        self.launch(iter_series, settings, out=out, done=self._mapped_folder, what="Mapping the series",
                    total=len(settings.stacks) + 1, buttons=(self.map_button, self.folder_button))

    def _mapped_folder(self, run):
        self.show_rows(run.rows, list(run.references))
        skipped = f", {len(run.skipped)} already done" if run.skipped else ""
        self.report(f"{len(run.mapped)} stacks mapped into {run.out}{skipped}: series.csv, series.png")

    @notify_errors("Save model")
    def save_model(self, path):
        """Write the session's trained model as a file and use it (the Map dock's settings recorded)."""
        from ..core.job import reference_records
        from ..core.model.modelfile import write_model
        from ..core.settings.recipe import settings_to_dict

        if self.session.model is None:
            raise ValueError("no trained model in this session: train one in the Map dock")
        settings = self.session.model_settings or self.session.settings
        extra = {"references": reference_records(self.session.settings, self.session.references()),
                 "recipe": settings_to_dict(replace(settings, model=None))}
        written = write_model(path, self.session.model, extra=extra)
        self.session.update("series", model=str(written))
        self.controls["model"].show_value(str(written))
        self.report(f"model written to {written}")
        return written

    def _save_model_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.npz", "xafsmap model (*.npz)")
        if path:
            self.save_model(path)

    # views ---------------------------------------------------------------
    def show_rows(self, rows: list[dict], references: list[str]) -> None:
        """The series table and the plot of each reference's mean fraction (± its spread)."""
        self.rows = list(rows)
        columns = [key for key in (rows[0] if rows else {}) if key not in HIDDEN]
        self.table.setColumnCount(len(columns))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(columns)
        for r, row in enumerate(rows):
            for c, key in enumerate(columns):
                self.table.setItem(r, c, QTableWidgetItem(str(row.get(key, ""))))
        (ax,) = self.plot.clear()
        x = np.arange(1, len(rows) + 1)
        for name in references:
            mean = np.array([float(row.get(f"fraction_{name}") or np.nan) for row in rows])
            sd = np.array([float(row.get(f"fraction_{name}_sd") or np.nan) for row in rows])
            ax.errorbar(x, mean, yerr=sd, fmt="o-", capsize=3, label=name)
        ax.set_xticks(x, [str(row.get("name", i)) for i, row in zip(x, rows)], rotation=30, ha="right")
        ax.set_ylabel("mean fraction (± SD)")
        ax.set_ylim(-0.05, 1.05)
        if references:
            ax.legend(fontsize="small")
        self.plot.draw()
