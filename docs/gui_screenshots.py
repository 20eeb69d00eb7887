"""Take the screenshots of docs/gui.md from the real viewer, one per dock.

Run on a display or under Xvfb (``xvfb-run -s "-screen 0 1366x768x24" python docs/gui_screenshots.py``).
The window is 1366 × 768 (a small laptop screen); the Workflow dock tabs every step, and
the script clicks through them on the plugin's sample measurement exactly as a user would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

HERE = Path(__file__).resolve().parent / "images"
DOCKS = [("measurement", "1 Stack"), ("prepare", "2 Prepare"), ("references", "3 References"),
         ("classes", "4 Classes"), ("classify", "5 Map"), ("inspect", "6 Inspect"), ("trust", "7 Trust")]
LIBRARY = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-library" / "als-10.3.2-fe-k"


def write_foil(folder: Path, stack_layer) -> Path:
    """An Fe foil measured over the sample's field with a smooth energy shift (-1.5 to +2 eV)."""
    import numpy as np

    from xafsmap.core.prepare.resample import apply_shift
    from xafsmap.core.io.tiff import write_stack
    from xafsmap.core.spectra.normalize import normalize
    from xafsmap.core.io.references import read_reference
    from xafsmap.core.model.standards import resample_reference
    from xafsmap.core.simulate.sample import bundled_reference_paths

    energies = np.asarray(stack_layer.metadata["energies"])
    rows, cols = stack_layer.data.shape[1:]
    yy, xx = np.mgrid[0:rows, 0:cols]
    truth = (-1.5 + 3.0 * xx / (cols - 1) + 0.5 * (yy / (rows - 1)) ** 2).astype(np.float32)
    foil = read_reference(bundled_reference_paths()["Fe"])
    mu = resample_reference(foil, energies, mu=normalize(foil.mu, foil.energies).norm)
    flat = (0.3 + mu[:, None, None] * np.ones((1, rows, cols))).astype(np.float32)
    measured = apply_shift(flat, energies, -truth)
    measured = measured + 0.005 * np.random.default_rng(0).standard_normal(measured.shape).astype(np.float32)
    return write_stack(folder / "foil.tif", np.nan_to_num(measured, nan=0.3), energies)


def wait(widget):
    """Process events until the dock's worker has finished."""
    import time

    app, done = QApplication.instance(), []
    widget.worker.finished.connect(lambda: done.append(True))
    while not done or getattr(widget, "_steps", None):
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents()


def result(viewer, what):
    """The result layer ``what`` of the measurement (its name starts with the stack's)."""
    from xafsmap._widgets._base import find_layer
    from xafsmap._widgets._session import session_for

    return find_layer(viewer, session_for(viewer).layer_title(what))


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
    viewer.window.resize(1366, 768)
    [stack_layer] = viewer.open_sample("xafsmap", "fe_sample")
    workflow_dock, workflow = viewer.window.add_plugin_dock_widget("xafsmap", "Workflow")
    workflow.open_all()
    docks, widgets = {}, {}
    for key, name in DOCKS:  # already docked by the Workflow dock: napari hands them back
        docks[key], widgets[key] = viewer.window.add_plugin_dock_widget("xafsmap", name, tabify=True)
    viewer.dims.set_point(0, 60)
    shoot(viewer, workflow_dock, "workflow")

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
    result(viewer, "mask preview").visible = False

    import tempfile

    from xafsmap.core.simulate.sample import bundled_reference_paths

    panel = widgets["prepare"].calibration
    widgets["prepare"].set_roi(None)
    panel.foil_edit.setText(str(write_foil(Path(tempfile.mkdtemp()), stack_layer)))
    panel.reference_edit.setText(str(bundled_reference_paths()["Fe"]))
    panel.compute_button.click()
    wait(widgets["prepare"])
    panel.drift_button.click()
    wait(widgets["prepare"])
    widgets["prepare"].scroll_to(panel.drift_label)
    shoot(viewer, docks["prepare"], "calibration")
    widgets["prepare"].scroll_to(widgets["prepare"].roi_label)
    panel.clear()  # the sample itself is not shifted

    widgets["references"].plot_button.click()
    wait(widgets["references"])
    shoot(viewer, docks["references"], "references")

    widgets["classes"].set_noise(0.01)
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
    classify.class_table.select_class(2)  # one class highlighted from the legend
    shoot(viewer, docks["classify"], "classify")
    classify.class_table.select_class(None)

    labels = result(viewer, "classes")
    import numpy as np

    probability = np.nan_to_num(np.asarray(result(viewer, "probability").data))
    mixed = labels.data >= 4  # a mixture class (1-3 are the pure references): its most certain pixel
    pick = np.where(mixed if mixed.any() else labels.data > 0, probability, -1.0)
    pick[:8], pick[-8:], pick[:, :8], pick[:, -8:] = -1.0, -1.0, -1.0, -1.0  # away from the edges
    row, col = np.unravel_index(int(np.argmax(pick)), pick.shape)
    widgets["inspect"].inspect_pixel(int(row), int(col))
    wait(widgets["inspect"])
    shoot(viewer, docks["inspect"], "inspect")

    trust = widgets["trust"]
    trust.find_button.click()
    wait(trust)
    library = LIBRARY if LIBRARY.is_dir() else bundled_reference_paths()["Fe"].parent
    trust.library_edit.setText(str(library))
    trust.search_button.click()
    wait(trust)
    trust.add_candidate(1)
    trust.sets_edit.setText(f"three=Fe,FeO,Fe2O3; four=Fe,FeO,Fe2O3,{trust.session.entries[-1].name}")
    trust.compare_button.click()
    wait(trust)
    result(viewer, "preferred").visible = False
    result(viewer, "classes").visible = False
    shoot(viewer, docks["trust"], "trust")
    viewer.close()


if __name__ == "__main__":
    main()
