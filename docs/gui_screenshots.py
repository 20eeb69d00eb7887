"""Take the screenshots of docs/gui.md from the real viewer, one per dock.

Run on a display or under Xvfb (``xvfb-run -s "-screen 0 1920x1200x24" python docs/gui_screenshots.py``).
It clicks through the six docks on the plugin's sample measurement exactly as a user would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

HERE = Path(__file__).resolve().parent / "images"
DOCKS = [("measurement", "1 Measurement"), ("prepare", "2 Prepare"), ("references", "3 References"),
         ("classes", "4 Classes"), ("classify", "5 Classify"), ("inspect", "6 Inspect")]


def wait(widget):
    """Process events until the dock's worker has finished."""
    import time

    app, done = QApplication.instance(), []
    widget.worker.finished.connect(lambda: done.append(True))
    while not done:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents()


def shoot(viewer, dock, name):
    app = QApplication.instance()
    for _ in range(2):
        for _ in range(30):
            app.processEvents()
        dock.raise_()
    for _ in range(30):
        app.processEvents()
    path = HERE / f"gui-{name}.png"
    viewer.screenshot(str(path), canvas_only=False)
    print(path, file=sys.stderr)


def main():
    HERE.mkdir(exist_ok=True)
    viewer = napari.Viewer(title="xafsmap")
    viewer.window.resize(1700, 1050)
    viewer.open_sample("xafsmap", "fe_sample")
    docks, widgets = {}, {}
    for key, name in DOCKS:
        docks[key], widgets[key] = viewer.window.add_plugin_dock_widget("xafsmap", name, tabify=True)
    viewer.dims.set_point(0, 60)

    widgets["measurement"].use_button.click()
    shoot(viewer, docks["measurement"], "measurement")

    viewer.add_shapes([[10, 20], [10, 150], [110, 150], [110, 20]], shape_type="rectangle", name="ROI",
                      edge_color="yellow", face_color="transparent", edge_width=1.5)
    widgets["prepare"].refresh_layers()
    widgets["prepare"].roi_from_shape()
    widgets["prepare"].preview_button.click()
    wait(widgets["prepare"])
    shoot(viewer, docks["prepare"], "prepare")
    viewer.layers.remove("ROI")
    viewer.layers["mask preview"].visible = False

    widgets["references"].plot_button.click()
    wait(widgets["references"])
    shoot(viewer, docks["references"], "references")

    widgets["classes"].preview_button.click()
    wait(widgets["classes"])
    shoot(viewer, docks["classes"], "classes")

    classify = widgets["classify"]
    classify.controls["n_per_class"].setValue(300)
    classify.controls["n_trees"].setValue(50)
    classify.train_button.click()
    wait(classify)
    classify.map_button.click()
    wait(classify)
    shoot(viewer, docks["classify"], "classify")

    labels = viewer.layers["classes"]
    import numpy as np

    rows, cols = np.nonzero(labels.data == 6)  # a mixed grain
    rows, cols = (rows, cols) if rows.size else np.nonzero(labels.data > 0)
    widgets["inspect"].inspect_pixel(int(rows[len(rows) // 2]), int(cols[len(cols) // 2]))
    wait(widgets["inspect"])
    shoot(viewer, docks["inspect"], "inspect")
    viewer.close()


if __name__ == "__main__":
    main()
