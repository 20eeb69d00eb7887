"""What every xafsmap dock shares: the viewer's session and running core work off the GUI thread."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ._session import session_for


class Tasks:
    """The workers of one dock and the callbacks it connected, ended with the dock.

    When the dock (or the viewer holding it) closes, :meth:`close` asks the running
    workers to stop, disconnects what the dock connected to the session and the viewer,
    and from then on every callback made through :meth:`guard` does nothing: a task
    finishing after its dock was deleted never touches the deleted widgets. It holds no
    reference to the dock, so it can be called from the dock's ``destroyed`` signal.
    """

    def __init__(self):
        self.closed = False
        self.workers: list = []
        self._undo: list = []

    def guard(self, slot):
        """``slot`` that is skipped once the dock is closed."""
        def run(*args):
            if not self.closed:
                return slot(*args)
            return None

        return run

    def connect(self, signal, slot) -> None:
        """Connect ``slot`` to a psygnal/napari ``signal`` until the dock closes."""
        signal.connect(slot)
        self._undo.append(lambda: signal.disconnect(slot))

    def on_close(self, undo) -> None:
        """Call ``undo()`` when the dock closes."""
        self._undo.append(undo)

    def close(self, *_) -> None:
        if self.closed:
            return
        self.closed = True
        for worker in self.workers:
            if hasattr(worker, "quit"):
                worker.quit()
        for undo in self._undo:
            try:
                undo()
            except (RuntimeError, ValueError, TypeError):  # already gone with the viewer
                pass
        self._undo.clear()


class Dock(QWidget):
    """Base of the docks: ``self.viewer``, ``self.session`` and :meth:`launch` for workers.

    ``self.worker`` is the running (or last) worker, so Cancel and tests can reach it;
    the worker starts on the next turn of the event loop, after callers have connected
    to its signals. ``self.tasks`` ends the dock's work when the dock is deleted.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = None
        self.tasks = Tasks()
        self.destroyed.connect(self.tasks.close)
        # everything in a scroll area: a dock fits a 1366 × 768 screen, tabbed or stacked
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        inner = QWidget()
        scroll.setWidget(inner)
        outer.addWidget(scroll)
        self._scroll, self._inner = scroll, inner
        self.body = QVBoxLayout(inner)
        self.form = QFormLayout()
        self.body.addLayout(self.form)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        warm_up()

    def showEvent(self, event):  # noqa: N802 - Qt's name
        """As wide as the content asks (up to :data:`MAX_WIDTH`): only the height scrolls."""
        if not self._scroll.minimumWidth():
            bar = self._scroll.verticalScrollBar().sizeHint().width()
            self._scroll.setMinimumWidth(min(self._inner.minimumSizeHint().width() + bar + 4, MAX_WIDTH))
        super().showEvent(event)

    def scroll_to(self, widget) -> None:
        """Scroll the dock so ``widget`` (a part of it) is in view."""
        self._scroll.ensureWidgetVisible(widget)

    def listen(self, signal, slot) -> None:
        """Connect ``slot`` to a session or viewer signal for the dock's lifetime."""
        self.tasks.connect(signal, self.tasks.guard(slot))

    def later(self, steps: dict) -> None:
        """Run ``steps`` (``{key: function}``) one per turn of the event loop: each adding a layer
        takes ~0.1 s, and the viewer answers between them. A step replaces a pending one of the
        same key (a layer updated twice before its turn is updated once)."""
        queue = self.__dict__.setdefault("_steps", {})
        idle = not queue
        for key, step in steps.items():
            queue.pop(key, None)
            queue[key] = step
        if idle and queue:
            QTimer.singleShot(0, self.tasks.guard(self._next_step))

    def _next_step(self):
        queue = self._steps
        if queue:
            queue.pop(next(iter(queue)))()
        if queue:
            QTimer.singleShot(0, self.tasks.guard(self._next_step))

    def button(self, text: str, slot, *, tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.clicked.connect(lambda *_: slot())
        button.setToolTip(tip)
        return button

    def launch(self, function, *args, done=None, what: str, buttons=(), yielded=None, total=None,
               finished=None, aborted=None, progress: bool = True, **kwargs):
        """Run ``function(*args, **kwargs)`` (a function or a generator) in a worker thread.

        ``done(result)``, ``yielded(value)``, ``finished()`` and ``aborted()`` run on the GUI
        thread, and never after the dock is closed; errors become a notification naming
        ``what`` failed; ``buttons`` are disabled meanwhile. A task still running after
        :data:`PROGRESS_AFTER` seconds shows a :class:`napari.utils.progress` bar: counting
        the ``(done, total)`` a generator yields, indeterminate until it yields one.
        ``total`` is accepted for compatibility; the bar follows what is yielded.
        """
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        worker = create_worker(function, *args, _start_thread=False, _ignore_errors=True, **kwargs)
        guard, tasks = self.tasks.guard, self.tasks
        for button in buttons:
            button.setEnabled(False)
        bar = Bar(what)

        def on_yield(value):
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
                bar.update(*value)
            if yielded is not None:
                yielded(value)

        def on_finish():
            bar.close()
            if worker in tasks.workers:
                tasks.workers.remove(worker)
            if tasks.closed:
                return
            for button in buttons:
                button.setEnabled(True)
            if finished is not None:
                finished()

        if done is not None:
            worker.returned.connect(guard(lambda value: _guard(done, value, what)))
        if hasattr(worker, "yielded"):
            worker.yielded.connect(guard(on_yield))
        if aborted is not None:
            worker.aborted.connect(guard(aborted))
        worker.errored.connect(guard(lambda error: show_error(f"{what} failed: {error}")))
        worker.finished.connect(on_finish)
        self.tasks.workers.append(worker)
        self.worker = worker
        if progress:
            QTimer.singleShot(int(PROGRESS_AFTER * 1000), lambda: bar.open() if worker.is_running else None)
        QTimer.singleShot(0, worker.start)
        return worker

    def report(self, text: str) -> None:
        self.status.setText(text)


_WARMED = []


def warm_up() -> None:
    """Compile, once per process and off the GUI thread, what napari compiles the first time
    it draws a Labels layer with given colours (its numba colour lookup: ~1.7 s, which
    otherwise freezes the viewer when the first map, mask or region layer appears)."""
    import threading

    if _WARMED:
        return
    _WARMED.append(True)

    def compile_lookup():
        import napari.layers

        colormap = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0), 1: (1.0, 0.0, 0.0, 1.0), 2: (0.0, 1.0, 0.0, 1.0)}
        for dtype in (np.uint16, np.uint8):
            napari.layers.Labels(np.zeros((2, 2), dtype), colormap=colormap)  # a model only: no Qt

    threading.Thread(target=compile_lookup, name="xafsmap warm-up", daemon=True).start()


#: Widest a dock makes itself (pixels): a 1366-pixel screen keeps half for the canvas.
MAX_WIDTH = 470

#: Tasks running longer than this (seconds) show a progress bar.
PROGRESS_AFTER = 0.5


class Bar:
    """A napari progress bar opened late (short tasks show none): indeterminate until counted."""

    def __init__(self, what: str):
        self.what, self.bar, self.done, self.total, self.closed = what, None, 0, 0, False

    def open(self):
        from napari.utils import progress

        if self.bar is None and not self.closed:
            self.bar = progress(total=self.total, desc=self.what)
            self.bar.n = self.done
            self.bar.refresh()

    def update(self, done: int, total: int):
        self.done, self.total = done, total
        if self.bar is not None:
            self.bar.total, self.bar.n = total, done
            self.bar.refresh()

    def close(self):
        self.closed = True
        if self.bar is not None:
            self.bar.close()


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


#: Metadata key marking the layers xafsmap made (value: the name it gave them).
TAG = "xafsmap_layer"
#: What :func:`set_layer` changes on a layer it updates; ``APPLIED`` records it, so unchanged
#: styles are not set again.
STYLE, APPLIED = ("scale", "translate", "features", "colormap", "contrast_limits", "opacity"), "xafsmap_style"


def find_layer(viewer, name: str):
    """The layer xafsmap made under ``name`` (perhaps renamed by napari or the user), or None."""
    for layer in viewer.layers:
        if layer.metadata.get(TAG) == name:
            return layer
    return None


def set_layer(viewer, data, *, kind: str = "image", update: bool = True, **meta):
    """Show ``data`` as xafsmap's layer ``meta["name"]``: the layer made before is updated in
    place (data, colormap, contrast, features, grid), never removed and re-added (napari
    would collect garbage and rebuild its visuals on the GUI thread each time); a user's
    layer of the same name is left alone (napari gives ours a suffix).

    ``update`` is accepted for compatibility: results are always updated in place.
    """
    import napari.layers

    name = meta["name"]
    after = {key: meta.pop(key) for key in ("contour", "colorbar") if key in meta}  # not arguments of add_*
    kinds = {"image": napari.layers.Image, "labels": napari.layers.Labels}
    layer = find_layer(viewer, name)
    meta["metadata"] = {**(layer.metadata if layer is not None else {}), **meta.get("metadata", {}), TAG: name}
    if layer is not None and isinstance(layer, kinds[kind]) and layer.ndim == np.ndim(data) \
            and getattr(layer, "rgb", False) == bool(meta.get("rgb", False)):
        applied = layer.metadata.get(APPLIED, {})
        style = {key: meta[key] for key in STYLE if key in meta}
        if layer.data is not data:
            layer.data = data
        elif not any(repr(value) != applied.get(key) for key, value in style.items()):
            layer.refresh()  # the same arrays, filled meanwhile (a map written band by band)
        for key, value in style.items():
            if repr(value) != applied.get(key):  # a colormap or features set again costs a redraw
                setattr(layer, key, value)
        meta["metadata"][APPLIED] = {key: repr(value) for key, value in style.items()}
        layer.metadata = meta["metadata"]
    else:
        if layer is not None:
            viewer.layers.remove(layer)
        meta["metadata"][APPLIED] = {key: repr(meta[key]) for key in STYLE if key in meta}
        layer = getattr(viewer, f"add_{kind}")(data, **meta)
    if "contour" in after:
        layer.contour = after["contour"]
    if after.get("colorbar") and not layer.metadata.get("xafsmap_colorbar"):
        # a colour bar while the map is shown (made when first shown: each costs a canvas overlay)
        layer.metadata["xafsmap_colorbar"] = True
        layer.colorbar.visible = layer.visible
        layer.events.visible.connect(lambda event: setattr(event.source.colorbar, "visible", event.source.visible))
    return layer


def hbox(*widgets) -> QWidget:
    """Widgets side by side, without margins (a row of a form)."""
    row = QWidget()
    line = QHBoxLayout(row)
    line.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        line.addWidget(widget)
    return row
