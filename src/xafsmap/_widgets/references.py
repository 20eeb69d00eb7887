"""Dock 3, References: add files, Athena records or a library folder; tick, name, offset; align; compare."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QTableWidget, QTableWidgetItem, QWidget

from ._base import Dock, hbox, notify_errors
from ._controls import control
from ._plot import PlotCanvas

COLUMNS = ("use", "name", "offset (eV)", "source")


def compare_spectra(stack, references, settings):
    """Worker: the references over the prepared stack's mean spectrum, with their energy-scale check
    (:func:`~xafsmap.core.model.preview.compare_references`, as training prepares them)."""
    from ..core.model.preview import compare_references

    return compare_references(stack, references, offsets=[ref.offset for ref in settings.references],
                              normalization=settings.normalization, threshold=settings.threshold,
                              significance=settings.significance, fit_range=settings.fit_range,
                              align=settings.align_references)


class ReferencesWidget(Dock):
    """A table of reference spectra (tick to use, rename, shift) and a comparison plot."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.path_edit = QLineEdit()
        self.path_edit.setToolTip("reference file (XDI, columns, .nor, .prj) or a library folder")
        self.form.addRow("File or folder", self.path_edit)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.button("Add", lambda: self.add_path(self.path_edit.text().strip())))
        line.addWidget(self.button("Add file…", self._browse_file))
        line.addWidget(self.button("Add folder…", self._browse_folder))
        self.form.addRow(row)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(140)
        self.body.addWidget(self.table)
        self.controls = {"align_references": control("align_references")}
        self.align_box = self.controls["align_references"].editor
        self.controls["align_references"].changed.connect(
            lambda: self.session.update("alignment", align_references=self.controls["align_references"].value()))
        self.alignment = QLabel("")
        self.alignment.setWordWrap(True)
        self.body.addWidget(self.controls["align_references"])
        self.body.addWidget(self.alignment)
        self.plot_button = self.button("Plot over the mean spectrum", self.plot_references,
                                       tip="ticked references over the mean spectrum of the prepared stack")
        self.trust_button = self.button("Check them (7 Trust)…", self.open_trust, tip="unexplained pixels, a "
                                        "library search for what is missing, and reference-set comparison")
        self.body.addWidget(hbox(self.plot_button, self.trust_button))
        self.plot = PlotCanvas(1)
        self.body.addWidget(self.plot)
        self.body.addWidget(self.status)
        self.table.itemChanged.connect(self._edited)
        self.listen(self.session.changed, self._on_session)
        self._fill()
        self._show_align()

    def open_trust(self):
        """Dock the Trust widget (or raise it), which checks the ticked references against the data."""
        dock, widget = self.viewer.window.add_plugin_dock_widget("xafsmap", "7 Trust")
        dock.show()
        dock.raise_()
        return widget

    def _browse_file(self):
        path, _ = QFileDialog.getOpenFileName(self, "Reference file")
        if path:
            self.add_path(path)

    def _browse_folder(self):
        path = QFileDialog.getExistingDirectory(self, "Reference library folder")
        if path:
            self.add_path(path)

    @notify_errors("Add reference")
    def add_path(self, path: str):
        """Add every reference of a file or folder (single-spectrum files come ticked)."""
        if not path:
            raise ValueError("give a reference file or folder")
        new = self.session.add_references(path)
        unticked = sum(not entry.use for entry in new)
        self.report(f"added {len(new)} reference(s) from {Path(path).name}" +
                    (f"; {unticked} not ticked: tick the ones to use" if unticked else ""))

    def set_used(self, names) -> None:
        """Tick exactly the references called ``names``."""
        for entry in self.session.entries:
            entry.use = entry.name in names
        self.session.set_entries(self.session.entries)

    def _fill(self):
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.session.entries))
        for i, entry in enumerate(self.session.entries):
            use = QTableWidgetItem()
            use.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            use.setCheckState(Qt.CheckState.Checked if entry.use else Qt.CheckState.Unchecked)
            source = QTableWidgetItem(entry.spec)
            source.setFlags(Qt.ItemFlag.ItemIsEnabled)
            source.setToolTip(entry.spec)
            for column, item in enumerate((use, QTableWidgetItem(entry.name),
                                           QTableWidgetItem(f"{entry.offset:g}"), source)):
                self.table.setItem(i, column, item)
        self.table.resizeColumnsToContents()
        self.table.blockSignals(False)

    @notify_errors("References")
    def _edited(self, item):
        entry = self.session.entries[item.row()]
        column = COLUMNS[item.column()]
        if column == "use":
            entry.use = item.checkState() == Qt.CheckState.Checked
        elif column == "name":
            entry.name = item.text().strip() or entry.name
        elif column == "offset (eV)":
            try:
                entry.offset = float(item.text())
            except ValueError:
                self._fill()
                raise ValueError(f"offset {item.text()!r} is not a number of eV") from None
        self.session.set_entries(self.session.entries)

    def _on_session(self, part: str):
        if part in ("references", "recipe", "measurement"):
            self._fill()
        if part == "recipe":
            self._show_align()
            self.plot.clear()  # drawn for the choices before the recipe
            self.plot.draw()
            self.alignment.setText("")
        if part in ("model", "result") and self.session.model is not None:
            self.show_offset(self.session.model.params.get("alignment"), source="the trained model")

    def _show_align(self):
        self.controls["align_references"].show_value(self.session.settings.align_references)

    def show_offset(self, alignment, *, source: str, best=None, warnings=()):
        """Say which common offset was applied (``alignment``, a report record) or found (``best``)."""
        from ..core.spectra.energyscale import format_offset

        if alignment:
            text = (f"common offset {format_offset(alignment['offset_eV'], alignment['sigma_eV'])} applied "
                    f"({source}, {alignment['pixels']} pixels)")
        elif best is not None:
            text = f"best common offset {format_offset(best.offset, best.sigma)} ({source}); not applied"
        else:
            text = "no common offset applied"
        self.alignment.setText("\n".join([text, *warnings]))

    @notify_errors("Plot references")
    def plot_references(self):
        """Plot the ticked references over the mean spectrum, both normalized alike (worker)."""
        stack = self.session.prepared_stack()
        references = self.session.references()
        self.launch(compare_spectra, stack, references, self.session.settings,
                    done=lambda value: self._draw(value, [r.name for r in references]),
                    what="Comparing references", buttons=(self.plot_button,))

    def _draw(self, value, names):
        from ..core.mapping.legend import label_colors

        energies, mean, refs, e0, scale = value.energies, value.mean, value.references, value.e0, value.scale
        self.show_offset(scale.alignment, source="surveyed pixels", best=scale.fit, warnings=scale.warnings)
        [ax] = self.plot.clear()
        colors = label_colors(len(names)) / 255.0
        ax.plot(energies, mean, color="white", lw=2, label="mean of the stack")
        for i, (name, spectrum) in enumerate(zip(names, refs)):
            ax.plot(energies, spectrum, color=colors[i + 1], lw=1, label=name)
        ax.axvline(e0, color="gray", lw=0.5, ls="--")
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel("normalized μ")
        ax.legend(fontsize=7)
        self.plot.draw()
        self.report(f"edge of the mean spectrum at {e0:.1f} eV")

