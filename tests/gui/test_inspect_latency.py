"""Inspect follows the mouse without queueing stale reads, and its blitted plot is the plot (real viewer, Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

import xafsmap._widgets.inspect as inspect_module
from _gui import result_layer


@pytest.fixture
def inspect(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)  # blitting copies to a shown widget
    viewer.open_sample("xafsmap", "fe_sample")
    stack = viewer.window.add_plugin_dock_widget("xafsmap", "1 Stack")[1]
    dock = viewer.window.add_plugin_dock_widget("xafsmap", "6 Inspect")[1]
    stack.use_button.click()
    return dock


def inspect_and_wait(qtbot, dock, *pixels):
    """Inspect ``pixels`` (row, col) in one burst, as mouse moves arriving together; wait until idle."""
    for row, col in pixels:
        dock.inspect_position((0, row, col))
    qtbot.waitUntil(lambda: not dock._reading and dock.pending is None, timeout=30_000)
    qtbot.wait(50)  # the draw_idle of a full redraw


def rendered(dock) -> np.ndarray:
    return np.asarray(dock.plot.canvas.buffer_rgba()).copy()


def test_a_burst_of_mouse_moves_reads_the_first_and_last_pixel_only(inspect, qtbot, monkeypatch):
    reads = []
    real = inspect_module.read_spectrum

    def counted(stack, rows, cols, *args):
        reads.append((rows.start, cols.start))
        return real(stack, rows, cols, *args)

    monkeypatch.setattr(inspect_module, "read_spectrum", counted)
    path = [(10, c) for c in range(5, 45, 4)]
    inspect_and_wait(qtbot, inspect, *path)
    assert reads == [path[0], path[-1]]  # the eight in between were replaced before being read
    assert "pixel (10, 41)" in inspect.plot.axes[0].get_title() and "pixel (10, 41)" in inspect.info.text()
    np.testing.assert_allclose(result_layer(inspect.viewer, "inspected pixel").data, [path[-1]])
    # a second burst while nothing is read: again only its ends
    reads.clear()
    inspect_and_wait(qtbot, inspect, (30, 30), (31, 30), (32, 30), (33, 31))
    assert reads == [(30, 30), (33, 31)]
    assert "pixel (33, 31)" in inspect.info.text()


def test_the_blitted_plot_equals_a_full_draw_after_zoom_resize_and_save(inspect, qtbot, tmp_path):
    plot = inspect.plot
    inspect_and_wait(qtbot, inspect, (12, 30))  # the first click lays the figure out (full draw)
    blits = []
    real_refresh = plot.refresh
    plot.refresh = lambda **kwargs: blits.append(real_refresh(**kwargs)) or blits[-1]
    inspect_and_wait(qtbot, inspect, (40, 7))
    assert blits == [True]  # only the lines, titles, legend and y axes were redrawn
    title, raw = plot.axes[0].get_title(), plot.axes[0].lines[0].get_ydata().copy()
    blitted = rendered(inspect)
    plot.canvas.draw()
    np.testing.assert_array_equal(rendered(inspect), blitted)
    assert title == "pixel (40, 7)" and np.isfinite(raw).all()

    # toolbar zoom: the axes keep the user's limits, the next click blits into them
    plot.axes[1].set_xlim(7100.0, 7140.0)
    plot.canvas.draw()
    inspect_and_wait(qtbot, inspect, (20, 20))
    assert plot.axes[1].get_xlim() == (7100.0, 7140.0)
    assert blits[-1] is True
    blitted = rendered(inspect)
    plot.canvas.draw()
    np.testing.assert_array_equal(rendered(inspect), blitted)

    # resize: the figure redraws at its new size and keeps that background; a refresh that
    # comes first finds the kept background the wrong size and draws in full
    plot.canvas.resize(plot.canvas.width() - 40, plot.canvas.height() - 30)
    assert plot.refresh() is False
    qtbot.wait(100)
    inspect_and_wait(qtbot, inspect, (22, 20))
    assert blits[-1] is True
    blitted = rendered(inspect)
    assert blitted.shape[:2] == (plot.canvas.height(), plot.canvas.width())
    plot.canvas.draw()
    np.testing.assert_array_equal(rendered(inspect), blitted)

    # a saved figure holds the animated lines and title (matplotlib draws them when saving)
    plot.figure.savefig(tmp_path / "with.png", facecolor=plot.figure.get_facecolor())
    for line in plot.axes[0].lines:
        line.set_visible(False)
    plot.figure.savefig(tmp_path / "without.png", facecolor=plot.figure.get_facecolor())
    import matplotlib.image

    with_lines, without = (matplotlib.image.imread(tmp_path / f"{n}.png") for n in ("with", "without"))
    assert with_lines.shape == without.shape and np.abs(with_lines - without).max() > 0.5
