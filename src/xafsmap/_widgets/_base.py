"""What every xafsmap dock shares: the viewer's session and running core work off the GUI thread."""

from __future__ import annotations

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ._session import session_for


class Dock(QWidget):
    """Base of the docks: ``self.viewer``, ``self.session`` and :meth:`launch` for workers.

    ``self.worker`` is the running (or last) worker, so Cancel and tests can reach it;
    the worker starts on the next turn of the event loop, after callers have connected
    to its signals.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = None
        self.setLayout(QVBoxLayout())
        self.form = QFormLayout()
        self.layout().addLayout(self.form)
        self.status = QLabel("")
        self.status.setWordWrap(True)

    def button(self, text: str, slot, *, tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.clicked.connect(lambda *_: slot())
        button.setToolTip(tip)
        return button

    def launch(self, function, *args, done=None, what: str, buttons=(), yielded=None, total=None, **kwargs):
        """Run ``function(*args, **kwargs)`` (a function or a generator) in a worker thread.

        ``done(result)`` runs on the GUI thread; errors become a notification naming
        ``what`` failed; ``buttons`` are disabled meanwhile. A generator yielding
        ``(done, total)`` drives a :class:`napari.utils.progress` bar.
        """
        from napari.qt.threading import create_worker
        from napari.utils import progress
        from napari.utils.notifications import show_error

        worker = create_worker(function, *args, _start_thread=False, _ignore_errors=True, **kwargs)
        for button in buttons:
            button.setEnabled(False)
        bar = progress(total=total, desc=what) if total is not None else None

        def on_yield(value):
            if bar is not None and isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
                bar.total = value[1]
                bar.n = value[0]
                bar.refresh()
            if yielded is not None:
                yielded(value)

        def on_error(error):
            show_error(f"{what} failed: {error}")

        def on_finish():
            for button in buttons:
                button.setEnabled(True)
            if bar is not None:
                bar.close()

        if done is not None:
            worker.returned.connect(lambda value: _guard(done, value, what))
        if hasattr(worker, "yielded"):
            worker.yielded.connect(on_yield)
        worker.errored.connect(on_error)
        worker.finished.connect(on_finish)
        self.worker = worker
        QTimer.singleShot(0, worker.start)
        return worker

    def report(self, text: str) -> None:
        self.status.setText(text)


def _guard(slot, value, what):
    from napari.utils.notifications import show_error

    try:
        slot(value)
    except (ValueError, OSError, KeyError) as error:
        show_error(f"{what} failed: {error}")


def notify_errors(what: str):
    """Decorator: a ValueError/OSError in a GUI-thread handler becomes a notification."""
    import functools

    def wrap(handler):
        @functools.wraps(handler)
        def run(*args, **kwargs):
            from napari.utils.notifications import show_error

            try:
                return handler(*args, **kwargs)
            except (ValueError, OSError, KeyError) as error:
                show_error(f"{what}: {error}")
                return None

        return run

    return wrap


def set_layer(viewer, data, *, kind: str = "image", update: bool = False, **meta):
    """Add a layer, replacing the one of the same name (``update``: keep it, set data and grid)."""
    import napari.layers

    name = meta["name"]
    kinds = {"image": napari.layers.Image, "labels": napari.layers.Labels}
    if update and name in viewer.layers and isinstance(viewer.layers[name], kinds[kind]):
        layer = viewer.layers[name]
        layer.data = data
        layer.scale, layer.translate = meta.get("scale", layer.scale), meta.get("translate", layer.translate)
        return layer
    if name in viewer.layers:
        viewer.layers.remove(name)
    return getattr(viewer, f"add_{kind}")(data, **meta)


def hbox(*widgets) -> QWidget:
    """Widgets side by side, without margins (a row of a form)."""
    row = QWidget()
    line = QHBoxLayout(row)
    line.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        line.addWidget(widget)
    return row
