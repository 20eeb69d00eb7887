"""A matplotlib figure in a dock, styled like napari's dark theme.

Matplotlib's Qt canvas was chosen over a napari plotting plugin: it ships with the
``napari`` extra, draws everything the docks need (spectra, a confusion matrix,
importances over energy) and adds no plugin for users to install.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

BACKGROUND, FOREGROUND = "#262930", "#d6d0ce"
#: The y label of axes that hold normalized spectra; their named lines can be exported.
NORMALIZED = "normalized μ"


class PlotCanvas(QWidget):
    """A Figure with ``rows`` stacked axes (``self.axes``); call :meth:`draw` after plotting.

    A plot redrawn at every click marks the artists that change as animated
    (``artist.set_animated(True)``) and calls :meth:`refresh`: only those are drawn again,
    over the figure as the last full draw left it (blitting). Any full draw (the toolbar's
    zoom and pan, a resize, :meth:`draw`) draws them too and keeps the new background;
    a saved figure includes them.
    """

    def __init__(self, rows: int = 1, *, height: float = 2.6, cols: int = 1, toolbar: bool = True):
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, height), facecolor=BACKGROUND, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(int(height * 80))
        self.rows, self.cols = rows, cols
        self.axes = []
        self.clear()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        if toolbar:  # zoom, pan, home and save, as in any matplotlib window
            from matplotlib.backends.backend_qtagg import NavigationToolbar2QT

            self.toolbar = NavigationToolbar2QT(self.canvas, self, coordinates=False)
            self.toolbar.setIconSize(QSize(14, 14))
            self.toolbar.setMaximumHeight(22)
            layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas)
        self.element_edge = ""  # what the user typed last in the export dialog, e.g. "Fe K"
        self.canvas.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.canvas.customContextMenuRequested.connect(self._context_menu)
        self._background = None  # (figure size in pixels, the figure without its animated artists)
        self._axes_background = None  # (their limits, the background with the animated axes drawn)
        self.canvas.mpl_connect("draw_event", self._keep_background)

    def spectra(self) -> list:
        """The named spectra drawn on axes labelled ``normalized μ``, as SpectrumRecords.

        Offset plots (``normalized μ (offset per class)``) and unnamed lines are left out.
        """
        from ..core.io.export import SpectrumRecord

        records = []
        for ax in self.axes:
            if ax.get_ylabel() != NORMALIZED:
                continue
            for line in ax.get_lines():
                x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
                keep = np.isfinite(x) & np.isfinite(y)
                if line.get_label().startswith("_") or keep.sum() < 2 or np.any(np.diff(x[keep]) <= 0):
                    continue
                records.append(SpectrumRecord(line.get_label(), x[keep], y[keep]))
        return records

    def export_spectra(self, prj, *, element: str, edge: str) -> list[Path]:
        """Write :meth:`spectra` as the Athena project ``prj`` and ``<stem>_xdi/`` beside it."""
        from ..core.io.export import write_spectra

        prj = Path(prj)
        return write_spectra(self.spectra(), element=element, edge=edge, prj=prj,
                             xdi=prj.with_name(f"{prj.stem}_xdi"), overwrite=True)

    def _context_menu(self, position):
        from qtpy.QtWidgets import QMenu

        menu = QMenu(self)
        action = menu.addAction("Export spectra (Athena .prj + XDI files)...")
        action.setEnabled(bool(self.spectra()))
        if menu.exec(self.canvas.mapToGlobal(position)) is action:
            self._ask_and_export()

    def _ask_and_export(self):
        from napari.utils.notifications import show_error, show_info
        from qtpy.QtWidgets import QFileDialog, QInputDialog

        path, _ = QFileDialog.getSaveFileName(self, "Export spectra", "spectra.prj", "Athena project (*.prj)")
        if not path:
            return
        text, ok = QInputDialog.getText(self, "Absorber and edge", "Element and edge, e.g. Fe K:",
                                        text=self.element_edge)
        if not ok:
            return
        self.element_edge = text
        try:
            element, edge = text.split()
            written = self.export_spectra(path, element=element, edge=edge)
        except ValueError as error:
            show_error(f"spectra not exported: {error}")
            return
        show_info(f"wrote {path} and {len(written) - 1} XDI files")

    def freeze_layout(self):
        """From the next draw on, keep the axes where the layout put them.

        Constrained layout re-measures every tick label at each draw; a plot redrawn at
        every click (the Inspect dock) lays itself out once and then only redraws.
        """
        if self.figure.get_layout_engine() is None or getattr(self, "_freezing", None) is not None:
            return

        def freeze(event):
            self.canvas.mpl_disconnect(self._freezing)
            self.figure.set_layout_engine("none")

        self._freezing = self.canvas.mpl_connect("draw_event", freeze)

    def animated(self) -> list:
        """The animated artists of the axes (lines, titles, legends, axes), in drawing order."""
        artists = [a for ax in self.axes for a in ax.get_children() if a.get_animated() and a.get_visible()]
        return sorted(artists, key=lambda a: a.get_zorder())

    def _keep_background(self, event):
        """After a full draw (which leaves animated artists out): keep the figure, draw them."""
        self._background = self._axes_background = None
        if self.canvas.is_saving() or not self.animated():  # a saved figure has them already
            return
        self._background = (self._size(), self.canvas.copy_from_bbox(self.figure.bbox))
        self._draw_animated()

    def _size(self):
        return tuple(self.figure.bbox.size)

    def _draw_animated(self):
        """Animated axes (their ticks) are drawn once per change of their limits and kept
        with the background; the other animated artists are drawn every time."""
        from matplotlib.axis import Axis

        artists = self.animated()
        axes = [a for a in artists if isinstance(a, Axis)]
        limits = tuple(tuple(a.get_view_interval()) for a in axes)
        if self._axes_background is None or self._axes_background[0] != limits:
            self.canvas.restore_region(self._background[1])
            for artist in axes:
                self.figure.draw_artist(artist)
            self._axes_background = (limits, self.canvas.copy_from_bbox(self.figure.bbox))
        else:
            self.canvas.restore_region(self._axes_background[1])
        for artist in artists:
            if not isinstance(artist, Axis):
                self.figure.draw_artist(artist)

    def refresh(self, *, full: bool = False) -> bool:
        """Show the animated artists' changes: redrawn over the kept background and painted at
        once, or a full draw when ``full``, before the first full draw, or after
        a resize. True when blitted."""
        style_legends(self.axes)
        if full or self._background is None or self._background[0] != self._size():
            self._background = self._axes_background = None
            self.canvas.draw_idle()
            return False
        self._draw_animated()
        self.canvas.blit(self.figure.bbox)  # painted now, before the work that follows (the marker, napari's redraw)
        return True

    def clear(self):
        self._background = self._axes_background = None
        self.figure.clear()
        grid = self.figure.subplots(self.rows, self.cols, squeeze=False)
        self.axes = [ax for row in grid for ax in row]
        for ax in self.axes:
            style_axes(ax)
        return self.axes

    def draw(self):
        style_legends(self.axes)
        self.canvas.draw_idle()


def style_legends(axes):
    for ax in axes:
        legend = ax.get_legend()
        if legend is not None:
            legend.get_frame().set_facecolor(BACKGROUND)
            for text in legend.get_texts():
                text.set_color(FOREGROUND)


def style_axes(ax):
    ax.set_facecolor(BACKGROUND)
    for spine in ax.spines.values():
        spine.set_color(FOREGROUND)
    ax.tick_params(colors=FOREGROUND, labelsize=7)
    ax.xaxis.label.set_color(FOREGROUND)
    ax.yaxis.label.set_color(FOREGROUND)
    ax.title.set_color(FOREGROUND)
    ax.xaxis.label.set_size(8)
    ax.yaxis.label.set_size(8)
    ax.title.set_size(9)
