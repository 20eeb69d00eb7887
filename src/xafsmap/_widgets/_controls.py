"""Dock controls generated from the settings' declarations (range, choices, default, help, unit).

:func:`control` makes the Qt editor of one setting
(:class:`~xafsmap.core.settings.declare.Setting`): a spin box with the declared range,
step and decimals, a combo box of the declared choices, a check box, a line edit or a
file field, and for a setting whose ``None`` means ``auto`` a check box saying what
``auto`` is beside it. Its tooltip is the declared help. The docks place these; none of
them declares a range, a choice or a default of its own.
"""

from __future__ import annotations

import math

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..core.settings.schema import SETTINGS
from ..core.settings.declare import Setting

__all__ = ["SettingControl", "control", "controls", "spin_range"]

#: Largest value a spin box shows for a setting without an upper bound.
UNBOUNDED = 1e9


def spin_range(item: Setting) -> tuple[float, float]:
    """The (minimum, maximum) of a setting's spin box: its bounds, an open bound moved in by one
    step of its precision, no upper bound shown as :data:`UNBOUNDED`.

    >>> spin_range(SETTINGS["false_alarm"]), spin_range(SETTINGS["threshold"])
    ((1e-05, 0.5), (0.0, 1000000000.0))
    """
    tick = 1 if item.kind == "int" else 10.0 ** -item.decimals
    low = item.low + tick if item.open_low else item.low
    high = UNBOUNDED if item.high is None or math.isinf(item.high) else item.high
    high = high - tick if item.open_high else high
    return (int(low), int(high)) if item.kind == "int" else (float(low), float(high))


def _spin(item: Setting):
    spin = QSpinBox() if item.kind == "int" else QDoubleSpinBox()
    if item.kind != "int":
        spin.setDecimals(item.decimals)
    spin.setRange(*spin_range(item))
    spin.setSingleStep(item.step if item.kind != "int" else max(1, int(item.step)))
    if item.unit and item.kind in ("int", "float"):
        spin.setSuffix(f" {item.unit}" if len(item.unit) < 12 else "")
    return spin


class SettingControl(QWidget):
    """The editor of one setting: ``value()``, ``setValue(value)`` and ``changed``.

    Attributes
    ----------
    setting : Setting
    editor : QWidget
        The spin box, combo box, check box or line edit.
    auto : QCheckBox or None
        Ticked when the value is ``None`` (the setting's ``auto``).
    """

    changed = Signal()

    def __init__(self, item: Setting):
        super().__init__()
        self.setting = item
        self.auto = None
        line = QHBoxLayout(self)
        line.setContentsMargins(0, 0, 0, 0)
        kind = item.kind
        if kind in ("int", "float"):
            self.editor = _spin(item)
            self.editor.valueChanged.connect(self._emit)
        elif kind == "range":
            self.editor = _spin(item)  # the low end
            self.high = _spin(item)
            for spin in (self.editor, self.high):
                spin.valueChanged.connect(self._emit)
        elif kind == "choice":
            self.editor = QComboBox()
            self.editor.addItems(list(item.choices))
            self.editor.currentTextChanged.connect(self._emit)
        elif kind == "flag":
            self.editor = QCheckBox(item.label)
            self.editor.toggled.connect(self._emit)
        elif kind in ("text", "path", "paths"):
            self.editor = QLineEdit()
            self.editor.editingFinished.connect(self._emit)
        else:
            raise ValueError(f"no generated control for a {kind!r} setting ({item.name})")
        self.editor.setToolTip(item.help)
        if item.optional and kind in ("int", "float"):
            self.auto = QCheckBox(item.auto.split(" (")[0])  # the words in brackets go to the tooltip
            self.auto.setToolTip(f"{item.auto}. {item.help}: untick to give a value")
            self.auto.toggled.connect(self._auto_toggled)
            line.addWidget(self.auto)
        line.addWidget(self.editor)
        if kind == "range":
            line.addWidget(self.high)
        if kind == "path":
            browse = QPushButton("…")
            browse.setMaximumWidth(28)
            browse.clicked.connect(lambda *_: self._browse())
            line.addWidget(browse)
        self.show_value(item.default)

    def _browse(self):
        path = QFileDialog.getOpenFileName(self, self.setting.help)[0]
        if path:
            self.editor.setText(path)
            self._emit()

    def _auto_toggled(self, on: bool):
        self.editor.setEnabled(not on)
        self._emit()

    def _emit(self, *_):
        self.changed.emit()

    def value(self):
        """The setting's value as shown (``None`` for ``auto`` or an empty field)."""
        kind = self.setting.kind
        if self.auto is not None and self.auto.isChecked():
            return None
        if kind == "int":
            return int(self.editor.value())
        if kind == "float":
            return float(self.editor.value())
        if kind == "range":
            return (float(self.editor.value()), float(self.high.value()))
        if kind == "choice":
            return self.editor.currentText()
        if kind == "flag":
            return self.editor.isChecked()
        text = self.editor.text().strip()
        if kind == "paths":
            return tuple(p.strip() for p in text.split(";") if p.strip())
        return text or (None if self.setting.optional else self.setting.default)

    def setValue(self, value) -> None:  # noqa: N802 - Qt's spelling, as the editors it wraps
        """Set ``value`` as a user would: shown, then ``changed`` emitted."""
        self.show_value(value)
        self.changed.emit()

    def show_value(self, value) -> None:
        """Show ``value`` without announcing a change (a setting changed elsewhere)."""
        kind = self.setting.kind
        widgets = [w for w in (self.editor, self.auto, getattr(self, "high", None)) if w is not None]
        for widget in widgets:
            widget.blockSignals(True)
        try:
            if self.auto is not None:
                self.auto.setChecked(value is None)
                self.editor.setEnabled(value is not None)
            if kind in ("int", "float") and value is not None:
                self.editor.setValue(value)
            elif kind == "range":
                self.editor.setValue(value[0])
                self.high.setValue(value[1])
            elif kind == "choice":
                self.editor.setCurrentText(value)
            elif kind == "flag":
                self.editor.setChecked(bool(value))
            elif kind == "paths":
                self.editor.setText("; ".join(value or ()))
            elif kind in ("text", "path"):
                self.editor.setText("" if value is None else str(value))
        finally:
            for widget in widgets:
                widget.blockSignals(False)


def control(name: str) -> SettingControl:
    """The control of setting ``name``."""
    return SettingControl(SETTINGS[name])


def controls(form, names, on_change=None) -> dict[str, SettingControl]:
    """Controls of ``names`` added to a form layout (label: the declaration's); ``on_change(name)``
    is called when the user changes one."""
    made = {}
    for name in names:
        widget = control(name)
        item = widget.setting
        form.addRow("" if item.kind == "flag" else (item.label or name), widget)
        if on_change is not None:
            widget.changed.connect(lambda name=name: on_change(name))
        made[name] = widget
    return made
