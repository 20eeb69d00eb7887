"""Run by test_lifecycle.py in a fresh interpreter: start a long task in a dock, close the
viewer while it runs, keep the Qt loop alive until the task has ended; print "survived".

A task touching a deleted widget used to abort the whole process ("Fatal Python error:
Aborted"), which is why this runs outside pytest's own process.
"""

import sys
import time

import napari
from qtpy.QtWidgets import QApplication

TASKS = {"train": ("5 Map", "train_button"), "map": ("5 Map", "map_button"),
         "find": ("7 Trust", "find_button"), "preview": ("2 Prepare", "preview_button")}


def main(task: str) -> None:
    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=True)
    viewer.open_sample("xafsmap", "fe_sample")
    _, stack = viewer.window.add_plugin_dock_widget("xafsmap", "1 Stack")
    stack.use_button.click()
    title, button = TASKS[task]
    _, dock = viewer.window.add_plugin_dock_widget("xafsmap", title)
    for name, value in {"n_per_class": 60, "n_trees": 12}.items():
        if hasattr(dock, "controls") and name in dock.controls:
            dock.controls[name].setValue(value)
    getattr(dock, button).click()
    for _ in range(20):  # let the worker start
        app.processEvents()
        time.sleep(0.01)
    worker = dock.worker
    assert worker.is_running, f"{task}: the task ended before the viewer closed"
    viewer.close()
    end = time.perf_counter() + 120
    while worker.is_running and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(50):  # the finished task's queued signals
        app.processEvents()
        time.sleep(0.01)
    print("survived" if not worker.is_running else "still running", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
