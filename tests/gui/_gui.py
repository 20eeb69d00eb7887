"""Helpers shared by the GUI tests (real napari viewers under Xvfb)."""


def wait_for(qtbot, dock, *, timeout=60_000):
    """Wait for the dock's worker to finish and the layers it shows; fail with the worker's error, if any."""
    errors = []
    worker = dock.worker
    worker.errored.connect(errors.append)
    with qtbot.waitSignal(worker.finished, timeout=timeout):
        pass
    assert not errors, f"worker failed: {errors[0]!r}"
    qtbot.waitUntil(lambda: not getattr(dock, "_steps", None), timeout=timeout)  # layers added turn by turn
    return worker


def result_layer(viewer, what):
    """The result layer ``what`` (e.g. ``"classes"``) of the viewer's measurement (None if absent)."""
    from xafsmap._widgets._base import find_layer
    from xafsmap._widgets._session import session_for

    return find_layer(viewer, session_for(viewer).layer_title(what))
