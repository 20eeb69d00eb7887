"""The legend of a label map in a dock: colour, name, composition and pixel count per class.

Clicking a row shows that class alone in its Labels layer (napari's ``show_selected_label``);
clicking it again, or selecting nothing, shows every class.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

COLUMNS = ("", "class", "composition", "pixels")


def composition_text(row, references) -> str:
    """``"Fe 0.5 + FeO 0.5"`` (references with a non-zero share), or the reference's name when pure.

    >>> composition_text([0.5, 0.5, 0.0], ["Fe", "FeO", "Fe2O3"]), composition_text([0, 1, 0], ["Fe", "FeO", "X"])
    ('Fe 0.5 + FeO 0.5', 'FeO')
    """
    parts = [(ref, float(v)) for ref, v in zip(references, row) if v > 0]
    if len(parts) == 1:
        return parts[0][0]
    return " + ".join(f"{ref} {v:.2g}" for ref, v in parts)


class ClassTable(QTableWidget):
    """One row per class of ``layer`` (a napari Labels layer); select rows to highlight them."""

    def __init__(self):
        super().__init__(0, len(COLUMNS))
        self.setHorizontalHeaderLabels(COLUMNS)
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setMinimumHeight(120)
        self.layer = None
        self._before = None  # the row highlighted when the mouse was pressed
        self.itemSelectionChanged.connect(self._highlight)
        self.cellClicked.connect(self._clicked)

    def mousePressEvent(self, event):  # noqa: N802 - Qt's name
        rows = {index.row() for index in self.selectedIndexes()}
        self._before = min(rows) if rows else None
        super().mousePressEvent(event)

    def _clicked(self, row, _column):
        if row == self._before:  # a second click on the highlighted class shows every class again
            self.clearSelection()

    def show_classes(self, layer, names, compositions, references, counts=None) -> None:
        """Fill the table: ``counts[i]`` pixels of class ``i + 1`` (``None``: not mapped yet)."""
        from ..core.mapping.legend import label_colors

        self.layer = layer
        colors = label_colors(len(names))
        self.blockSignals(True)
        self.clearSelection()
        self.setRowCount(len(names))
        for i, name in enumerate(names):
            swatch = QTableWidgetItem("")
            swatch.setBackground(QColor(*(int(c) for c in colors[i + 1][:3])))
            swatch.setFlags(Qt.ItemFlag.ItemIsEnabled)  # not selectable: the colour stays visible
            cells = (swatch, QTableWidgetItem(str(name)),
                     QTableWidgetItem(composition_text(compositions[i], references)),
                     QTableWidgetItem("" if counts is None else f"{int(counts[i]):,}"))
            for j, item in enumerate(cells):
                self.setItem(i, j, item)
        self.resizeColumnsToContents()
        self.setColumnWidth(0, 22)
        self.blockSignals(False)
        if layer is not None:
            layer.show_selected_label = False

    def rows(self) -> list[tuple[str, str, str]]:
        """(name, composition, pixels) as shown, row by row."""
        return [tuple(self.item(i, j).text() for j in (1, 2, 3)) for i in range(self.rowCount())]

    def select_class(self, label: int | None) -> None:
        """Highlight class ``label`` (1-based), or show all with ``None``."""
        if label is None:
            self.clearSelection()
        else:
            self.selectRow(label - 1)

    def _highlight(self):
        if self.layer is None:
            return
        selected = sorted({index.row() for index in self.selectedIndexes()})
        if selected:
            self.layer.selected_label = selected[0] + 1
        self.layer.show_selected_label = bool(selected)

