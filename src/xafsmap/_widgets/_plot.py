"""A matplotlib figure in a dock, styled like napari's dark theme.

Matplotlib's Qt canvas was chosen over a napari plotting plugin: it ships with the
``napari`` extra, draws everything the docks need (spectra, a confusion matrix,
importances over energy) and adds no plugin for users to install.
"""

from __future__ import annotations

from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

BACKGROUND, FOREGROUND = "#262930", "#d6d0ce"


class PlotCanvas(QWidget):
    """A Figure with ``rows`` stacked axes (``self.axes``); call :meth:`draw` after plotting."""

    def __init__(self, rows: int = 1, *, height: float = 2.6, cols: int = 1):
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
        layout.addWidget(self.canvas)

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

    def clear(self):
        self.figure.clear()
        grid = self.figure.subplots(self.rows, self.cols, squeeze=False)
        self.axes = [ax for row in grid for ax in row]
        for ax in self.axes:
            style_axes(ax)
        return self.axes

    def draw(self):
        for ax in self.axes:
            legend = ax.get_legend()
            if legend is not None:
                legend.get_frame().set_facecolor(BACKGROUND)
                for text in legend.get_texts():
                    text.set_color(FOREGROUND)
        self.canvas.draw_idle()


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
