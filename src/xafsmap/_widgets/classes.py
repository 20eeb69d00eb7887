"""Dock 4, Classes: pure references and mixtures as an editable table; training spectra preview."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ._base import Dock, notify_errors
from ._plot import PlotCanvas

#: Synthetic spectra drawn per class in the preview.
PREVIEW_PER_CLASS = 3


def preview_training(stack, references, offsets, classes, *, recipe):
    """Worker: survey the stack, then a few synthetic training spectra per class, normalized."""
    from ..core.spectra.normalize import normalize
    from ..core.model.training import prepare_references, survey
    from ..core.model.synthesize import synthesize_spectra

    params = recipe.normalization
    found = survey(stack.data, stack.energies, threshold=recipe.threshold, norm_params=params)
    refs = prepare_references(references, stack.energies, e0=found.e0, offsets=offsets, norm_params=params)
    noise = found.profiles if recipe.noise is None else recipe.noise
    spectra, labels, _ = synthesize_spectra(refs, classes.compositions, noise=noise,
                                            n_per_class=PREVIEW_PER_CLASS, rng=recipe.seed)
    norm = np.asarray(normalize(spectra.T, stack.energies, **params).norm).T
    return stack.energies, norm, labels, found


class ClassesWidget(Dock):
    """Classes = each reference alone plus mixtures; edit names and fractions in the table."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.mixtures_edit = QLineEdit("pairs")
        self.mixtures_edit.setToolTip("'pairs' (25/50/75 %), 'pairs:20,40,60,80', 'none', or "
                                      "'A=50,B=50;B=25,C=75'")
        self.form.addRow("Mixtures", self.mixtures_edit)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.button("Build table", self.build_table, tip="classes from the mixtures rule"))
        line.addWidget(self.button("Add row", self.add_row))
        line.addWidget(self.button("Remove rows", self.remove_rows))
        self.form.addRow(row)
        self.table = QTableWidget(0, 1)
        self.table.setMinimumHeight(160)
        self.layout().addWidget(self.table)
        self.measured_box = QCheckBox("measured per pixel")
        self.measured_box.setChecked(True)
        self.measured_box.setToolTip("train at each surveyed pixel's own noise level, or at one level you set")
        self.noise_spin = QDoubleSpinBox()
        self.noise_spin.setDecimals(4)
        self.noise_spin.setRange(0.0001, 1.0)
        self.noise_spin.setSingleStep(0.001)
        self.noise_spin.setValue(0.01)
        self.noise_spin.setEnabled(False)
        self.noise_spin.setToolTip("noise of the training spectra per energy point, in edge steps")
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.measured_box)
        line.addWidget(self.noise_spin)
        noise_form = QFormLayout()
        noise_form.addRow("Training noise (edge steps)", row)
        self.layout().addLayout(noise_form)
        self.measured_box.toggled.connect(lambda *_: self._noise_changed())
        self.noise_spin.valueChanged.connect(lambda *_: self._noise_changed())
        self.preview_button = self.button("Preview training spectra", self.preview,
                                          tip="estimate the noise from the data and draw a few training spectra")
        self.layout().addWidget(self.preview_button)
        self.plot = PlotCanvas(1, height=3.2)
        self.layout().addWidget(self.plot)
        self.layout().addWidget(self.status)
        self.table.itemChanged.connect(lambda *_: self._table_edited())
        self.session.changed.connect(self._on_session)
        self._show()

    def names(self) -> list[str]:
        return [entry.name for entry in self.session.entries if entry.use]

    def classes(self):
        """The current :class:`~xafsmap.core.model.synthesize.Classes` (shown in the table)."""
        from ..core.settings.recipe import Recipe, recipe_classes

        recipe = Recipe(references=(), sample="-", **{k: self.session.choices[k] for k in
                                                         ("mixtures", "class_names", "compositions")})
        return recipe_classes(recipe, self.names())

    @notify_errors("Classes")
    def build_table(self):
        """Classes from the mixtures rule (drops table edits)."""
        from ..core.model.synthesize import parse_mixtures

        spec = self.mixtures_edit.text().strip() or "pairs"
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

    def _noise_changed(self):
        self.noise_spin.setEnabled(not self.measured_box.isChecked())
        noise = None if self.measured_box.isChecked() else float(self.noise_spin.value())
        if noise != self.session.choices["noise"]:
            self.session.update("noise", noise=noise)

    def set_noise(self, noise: float | None) -> None:
        """One training noise level (edge steps), or ``None`` for the per-pixel measured levels."""
        self.measured_box.setChecked(noise is None)
        if noise is not None:
            self.noise_spin.setValue(float(noise))

    def _show_noise(self):
        noise = self.session.choices["noise"]
        for widget in (self.measured_box, self.noise_spin):
            widget.blockSignals(True)
        self.measured_box.setChecked(noise is None)
        self.noise_spin.setEnabled(noise is not None)
        if noise is not None:
            self.noise_spin.setValue(noise)
        for widget in (self.measured_box, self.noise_spin):
            widget.blockSignals(False)

    def _on_session(self, part: str):
        if part == "recipe":
            self.mixtures_edit.setText(self.session.choices["mixtures"])
            self._show_noise()
        rows = self.session.choices["compositions"]
        if part == "references" and rows is not None and len(rows[0]) != len(self.names()):
            # the table's columns follow the ticked references: start again from the rule
            self.session.choices.update(class_names=None, compositions=None)
            rows = None
        if part in ("references", "recipe", "measurement") or (part == "classes" and rows is None):
            self._show()

    @notify_errors("Preview")
    def preview(self):
        """Survey the data for its noise and draw a few training spectra per class (worker)."""
        stack = self.session.prepared_stack()
        references = self.session.references()
        offsets = [entry.offset for entry in self.session.entries if entry.use]
        classes = self.classes()
        from ..core.settings.recipe import Recipe

        recipe = Recipe(references=(), sample="-", **self.session.choices)
        self.launch(preview_training, stack, references, offsets, classes, recipe=recipe,
                    done=lambda value: self._draw(value, classes), what="Training preview",
                    buttons=(self.preview_button,))

    def _draw(self, value, classes):
        from ..core.mapping.quicklook import label_colors

        energies, norm, labels, found = value
        [ax] = self.plot.clear()
        colors = label_colors(len(classes)) / 255.0
        for c, name in enumerate(classes.names):
            for k, spectrum in enumerate(norm[labels == c]):
                ax.plot(energies, spectrum + 0.6 * c, color=colors[c + 1], lw=0.8, label=name if k == 0 else None)
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel("normalized μ (offset per class)")
        ax.legend(fontsize=6, ncol=2, loc="upper left")
        self.plot.draw()
        noise = float(np.median(found.noise)) if found.noise.size else float("nan")
        if self.measured_box.isChecked() and np.isfinite(noise):
            self.noise_spin.blockSignals(True)  # prefill with the estimate; the choice stays "measured"
            self.noise_spin.setValue(noise)
            self.noise_spin.blockSignals(False)
        used = "each pixel's own level" if self.session.choices["noise"] is None else \
            f"{self.session.choices['noise']:.4g} everywhere"
        self.report(f"noise estimated from {found.n_pixels} pixels: median {noise:.4f} edge steps per energy "
                    f"point (S/N ≈ {1 / noise:.0f}); training at {used}; edge at {found.e0:.1f} eV")
