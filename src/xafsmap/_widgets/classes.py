"""Dock 4, Classes: pure references and mixtures as an editable table; training spectra preview."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QTableWidget, QTableWidgetItem, QWidget

from ._base import Dock, notify_errors
from ._controls import controls
from ._plot import PlotCanvas

def preview_training(stack, references, classes, settings):
    """Worker: a few synthetic training spectra per class, made as training makes them
    (:func:`~xafsmap.core.model.preview.preview_training`)."""
    from ..core.model.preview import preview_training as preview

    return preview(stack, references, classes, offsets=[ref.offset for ref in settings.references],
                   normalization=settings.normalization, threshold=settings.threshold,
                   significance=settings.significance, fit_range=settings.fit_range,
                   align_references=settings.align_references, noise=settings.noise, rng=settings.seed)


class ClassesWidget(Dock):
    """Classes = each reference alone plus mixtures; edit names and fractions in the table."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.controls = controls(self.form, ("mixtures",))
        self.mixtures_edit = self.controls["mixtures"].editor
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.button("Build table", self.build_table, tip="classes from the mixtures rule"))
        line.addWidget(self.button("Add row", self.add_row))
        line.addWidget(self.button("Remove rows", self.remove_rows))
        self.form.addRow(row)
        self.table = QTableWidget(0, 1)
        self.table.setMinimumHeight(160)
        self.body.addWidget(self.table)
        noise_form = QFormLayout()
        self.controls.update(controls(noise_form, ("noise",), on_change=self._noise_changed))
        self.body.addLayout(noise_form)
        self.preview_button = self.button("Preview training spectra", self.preview,
                                          tip="estimate the noise from the data and draw a few training spectra")
        self.body.addWidget(self.preview_button)
        self.plot = PlotCanvas(1, height=3.2)
        self.body.addWidget(self.plot)
        self.body.addWidget(self.status)
        self.table.itemChanged.connect(lambda *_: self._table_edited())
        self.listen(self.session.changed, self._on_session)
        self._show()

    def names(self) -> list[str]:
        return [entry.name for entry in self.session.entries if entry.use]

    def classes(self):
        """The current :class:`~xafsmap.core.model.synthesize.Classes` (shown in the table)."""
        from ..core.job import classes_for

        return classes_for(self.session.settings, self.names())

    @notify_errors("Classes")
    def build_table(self):
        """Classes from the mixtures rule (drops table edits)."""
        from ..core.model.synthesize import parse_mixtures

        spec = self.controls["mixtures"].value()
        parse_mixtures(spec, self.names())  # names the problem in a wrong rule
        self.session.update("classes", mixtures=spec, class_names=None, compositions=None)

    def add_row(self):
        k = len(self.names())
        self.table.blockSignals(True)
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(f"mixture {row + 1}"))
        for j in range(k):
            self.table.setItem(row, j + 1, QTableWidgetItem(f"{1 / k:.3g}"))
        self.table.blockSignals(False)
        self._table_edited()

    def remove_rows(self):
        for row in sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)
        self._table_edited()

    @notify_errors("Classes")
    def _table_edited(self):
        names, rows = [], []
        for i in range(self.table.rowCount()):
            cells = [self.table.item(i, j) for j in range(self.table.columnCount())]
            names.append(cells[0].text().strip() if cells[0] else f"class {i + 1}")
            try:
                rows.append(tuple(float(c.text()) if c and c.text().strip() else 0.0 for c in cells[1:]))
            except ValueError:
                raise ValueError(f"row {i + 1} ({names[-1]}) has a fraction that is not a number") from None
            if min(rows[-1], default=0) < 0 or sum(rows[-1]) <= 0:
                raise ValueError(f"class {names[-1]!r}: fractions must be >= 0 with a positive sum")
        self.session.update("classes", class_names=tuple(names), compositions=tuple(rows))

    def _show(self):
        names = self.names()
        self.table.blockSignals(True)
        self.table.setColumnCount(len(names) + 1)
        self.table.setHorizontalHeaderLabels(["class", *names])
        try:
            classes = self.classes() if names else None
        except ValueError as error:
            classes = None
            self.report(str(error))
        self.table.setRowCount(0 if classes is None else len(classes))
        for i, (name, row) in enumerate(zip(classes.names, classes.compositions) if classes else ()):
            self.table.setItem(i, 0, QTableWidgetItem(name))
            for j, value in enumerate(row):
                self.table.setItem(i, j + 1, QTableWidgetItem(f"{value:.3g}"))
        self.table.resizeColumnsToContents()
        self.table.blockSignals(False)
        if classes is not None:
            self.report(f"{len(classes)} classes over {len(names)} references")

    @notify_errors("Training noise")
    def _noise_changed(self, name: str = "noise"):
        noise = self.controls["noise"].value()
        if noise != self.session.settings.noise:
            self.session.update("noise", noise=noise)

    def set_noise(self, noise: float | None) -> None:
        """One training noise level (edge steps), or ``None`` for the per-pixel measured levels."""
        self.controls["noise"].setValue(noise)

    def _on_session(self, part: str):
        settings = self.session.settings
        if part == "recipe":
            for name, widget in self.controls.items():
                widget.show_value(getattr(settings, name))
            self.plot.clear()  # training spectra of the choices before the recipe
            self.plot.draw()
        rows = settings.compositions
        if part == "references" and rows is not None and len(rows[0]) != len(self.names()):
            # the table's columns follow the ticked references: start again from the rule
            self.session.settings = replace(settings, class_names=None, compositions=None)
            rows = None
        if part in ("references", "recipe", "measurement") or (part == "classes" and rows is None):
            self._show()

    @notify_errors("Preview")
    def preview(self):
        """Survey the data for its noise and draw a few training spectra per class (worker)."""
        stack = self.session.prepared_stack()
        references = self.session.references()
        classes = self.classes()
        self.launch(preview_training, stack, references, classes, self.session.settings,
                    done=lambda value: self._draw(value, classes), what="Training preview",
                    buttons=(self.preview_button,))

    def _draw(self, value, classes):
        from ..core.mapping.legend import label_colors

        found = value.survey
        [ax] = self.plot.clear()
        colors = label_colors(len(classes)) / 255.0
        for c, name in enumerate(classes.names):
            for k, spectrum in enumerate(value.spectra[value.labels == c]):
                ax.plot(value.energies, spectrum + 0.6 * c, color=colors[c + 1], lw=0.8,
                        label=name if k == 0 else None)
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel("normalized μ (offset per class)")
        ax.legend(fontsize=6, ncol=2, loc="upper left")
        self.plot.draw()
        noise = float(np.median(found.noise)) if found.noise.size else float("nan")
        if self.session.settings.noise is None and np.isfinite(noise):
            self.controls["noise"].editor.blockSignals(True)  # prefill with the estimate; the choice stays "measured"
            self.controls["noise"].editor.setValue(noise)
            self.controls["noise"].editor.blockSignals(False)
        used = "each pixel's own level" if self.session.settings.noise is None else \
            f"{self.session.settings.noise:.4g} everywhere"
        self.report(f"noise estimated from {found.n_pixels} pixels: median {noise:.4f} edge steps per energy "
                    f"point (S/N ≈ {1 / noise:.0f}); training at {used}; edge at {found.e0:.1f} eV")
