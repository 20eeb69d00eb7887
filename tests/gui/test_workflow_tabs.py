"""The Workflow dock's tabs show every step's whole name on a 1366 × 768 window (real viewer, Xvfb)."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QTabBar


def test_every_tab_shows_its_whole_step_name(make_napari_viewer, qtbot):
    from xafsmap._widgets.workflow import STEPS

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 768)
    _, workflow = viewer.window.add_plugin_dock_widget("xafsmap", "Workflow")
    qtbot.waitUntil(lambda: len(workflow.docks) == len(STEPS), timeout=30_000)
    qtbot.wait(200)
    window = workflow.window()
    bars = [bar for bar in window.findChildren(QTabBar) if bar.isVisible() and bar.count()]
    shown = {bar.tabText(i): (bar, i) for bar in bars for i in range(bar.count())}
    names = [title for title, _ in STEPS] + ["Workflow"]
    assert set(names) <= set(shown)  # the titles without napari's " (xafsmap)"
    for name in names:
        bar, i = shown[name]
        assert bar.elideMode() == Qt.TextElideMode.ElideNone
        rect = bar.tabRect(i)
        along = max(rect.width(), rect.height())  # the tabs stand on the side: text runs vertically
        assert along >= bar.fontMetrics().horizontalAdvance(name), name
        assert bar.rect().contains(rect), f"{name} is scrolled out of the tab bar"
    assert window.height() <= 768
