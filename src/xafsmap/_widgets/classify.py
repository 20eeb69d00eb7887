"""Dock 5, Classify: train (accuracy, confusion, importances), map in a worker, save, recipes."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QWidget

from ._base import Dock, find_layer, hbox, notify_errors, set_layer
from ._controls import control, controls
from ._plot import PlotCanvas
from .classtable import ClassTable
from ._session import training_key
from .volumemap import display_maps, train_volume, train_volume_and_map, volume_grid

MAP_IMAGES = ("probability", "distance", "residual", "edge_step", "e0")
#: Layers hidden when the first map appears (they would tint it).
COVERED = ("mask preview", "shift (eV)", "shift residual (eV)", "shift uncertainty (eV)")
#: While mapping, visible maps are redrawn at most this often (seconds).
REDRAW_S = 0.5


#: The Map dock's settings, in the order of its form.
SETTINGS_SHOWN = ("features", "smooth", "n_per_class", "n_trees", "fit_range", "metric", "seed", "thick")


def train_steps(settings, stack, references, stop=None):
    """Worker generator: train (:func:`xafsmap.core.job.train`, as every front end), then yield
    once so a Cancel pressed meanwhile discards the model.

    ``stop`` (Cancel's flag) is polled while the forest grows: Cancel ends training there;
    while the survey reads the stack it takes effect when the forest starts.
    """
    from ..core.job import train
    from ..core.model.forest import TrainingStopped

    try:
        model = train(settings, stack, references, stop=stop)
    except TrainingStopped:
        model = None
    yield ("model", None)
    return model


def train_and_map(settings, stack, references, model=None, reuse=None, stop=None):
    """Worker generator: train unless ``model`` is given (yields ``("model", model)``), yield
    ``("maps", (model, maps))`` — the empty maps the bands are written into, for the viewer to
    show while they fill (``reuse``: the maps shown before, refilled when their shapes fit) —
    then map band by band (yielding ``(done, total)``).

    Returns ``(result, limits, counts)``: the MapResult, contrast limits of its float maps and
    pixels per class, measured here so the GUI thread never reads a whole map.
    """
    from .._reader import contrast_limits
    from ..core.job import train
    from ..core.mapping.maps import new_maps
    from ..core.model.forest import TrainingStopped
    from ..core.mapping.pipeline import iter_classify

    if model is None:
        try:
            model = train(settings, stack, references, stop=stop)
        except TrainingStopped:
            yield ("stopped", None)  # Cancel quit the worker: this yield ends it
            return None
        yield ("model", model)
    _, rows, cols = stack.data.shape
    maps = new_maps(model.classifier.references.shape[0], rows, cols)
    if reuse is not None and all(name in reuse and reuse[name].shape == empty.shape and reuse[name].dtype == empty.dtype
                                 for name, empty in maps.items()):
        for name, empty in maps.items():  # the arrays the viewer shows: refilled, the layers only redrawn
            reuse[name][...] = empty.flat[0]
        maps = {name: reuse[name] for name in maps}
    yield ("maps", (model, maps))
    result = yield from iter_classify(stack, model, metric=settings.metric, maps=maps)
    return result, {name: contrast_limits(getattr(result, name)) for name in MAP_IMAGES}, result.class_counts


def save_maps(result, out, settings, prepared, overwrite: bool):
    """Worker: the files of ``xafsmap map`` (report with the settings and the inputs' sha256)."""
    from ..core.job import write_result

    return write_result(settings, result, out, prepared=prepared, overwrite=overwrite)


class ClassifyWidget(Dock):
    """Classifier settings, Train / Map / Cancel, save all maps, export and load recipes."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.controls = controls(self.form, SETTINGS_SHOWN, on_change=self._changed)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        self.train_button = self.button("Train", self.train, tip="train on synthetic spectra; held-out accuracy")
        self.map_button = self.button("Map", self.map, tip="classify every pixel (trains first if needed)")
        self.cancel_button = self.button("Cancel", self.cancel)
        self.cancel_button.setEnabled(False)
        for button in (self.train_button, self.map_button, self.cancel_button):
            line.addWidget(button)
        self.form.addRow(row)
        self.accuracy = QLabel("not trained")
        self.form.addRow("Held-out accuracy", self.accuracy)
        self.warnings = QLabel("")  # the model's warnings (energy scale, accuracy), also notified
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #f0a030")
        self.form.addRow(self.warnings)
        self._shown_maps = None  # the maps the layers show (refilled by the next Map)
        self.class_table = ClassTable()
        self.class_table.setToolTip("click a class to show it alone in the map; click again to show all")
        self.body.addWidget(self.class_table)
        self.plot = PlotCanvas(2, height=4.6)
        self.body.addWidget(self.plot)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        self.save_button = self.button("Save all maps…", self._save_dialog, tip="the files of `xafsmap map`")
        self.controls["zarr"] = control("zarr")
        self.controls["zarr"].changed.connect(lambda: self._changed("zarr"))
        line.addWidget(self.save_button)
        line.addWidget(self.controls["zarr"])
        self.body.addWidget(row)
        self.body.addWidget(hbox(self.button("Export recipe…", self._export_dialog),
                                 self.button("Load recipe…", self._load_dialog)))
        self.body.addWidget(self.status)
        self.listen(self.session.changed, self._on_session)
        self._on_session("recipe")

    # settings ------------------------------------------------------------
    @notify_errors("Classifier settings")
    def _changed(self, name: str):
        self.session.update("classifier", **{name: self.controls[name].value()})

    def _on_session(self, part: str):
        if part == "recipe":
            for name, widget in self.controls.items():
                widget.show_value(getattr(self.session.settings, name))
        if part in ("recipe", "measurement") and self.session.model is None:  # results of other choices
            self.accuracy.setText("not trained")
            self.warnings.setText("")
            self.class_table.show_classes(None, [], [], [])
            self.plot.clear()
            self.plot.draw()
            self.report("")

    # actions -------------------------------------------------------------
    def _inputs(self):
        """Settings, the prepared measurement (a volume's: None, prepared in the worker) and the references."""
        prepared = None if self.session.volume is not None else self.session.prepared()
        return self.session.settings, prepared, self.session.references()

    @notify_errors("Train")
    def train(self):
        """Train the classifier in a worker; show accuracy, confusion matrix and importances."""
        settings, prepared, references = self._inputs()
        self.report("training…")
        self.cancel_button.setEnabled(True)
        tic = time.perf_counter()
        self._stop = threading.Event()
        if prepared is not None:
            work, args = train_steps, (settings, prepared.stack, references, self._stop.is_set)
        else:  # a volume: its slices prepared and laid one under another in the worker (as the job)
            work, args = train_volume, (settings, self.session.prepared_volume, references, self._stop.is_set)
        self.launch(work, *args,
                    done=lambda model: model is not None and self._trained(model, settings, time.perf_counter() - tic),
                    what="Training",
                    buttons=(self.train_button, self.map_button), finished=lambda: self.cancel_button.setEnabled(False),
                    aborted=lambda: self.report("training cancelled; the previous model is kept"))

    def _trained(self, model, settings, seconds=None):
        self.session.model, self.session.model_settings = model, training_key(settings)
        classifier = model.classifier
        names = list(classifier.classes.names)
        self.accuracy.setText(f"{classifier.accuracy:.3f} on {classifier.confusion.sum()} synthetic spectra")
        confusion_ax, importance_ax = self.plot.clear()
        matrix = classifier.confusion / np.maximum(classifier.confusion.sum(axis=1, keepdims=True), 1)
        confusion_ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
        ticks = np.arange(len(names))
        short = [name if len(name) <= 14 else name[:13] + "…" for name in names]
        confusion_ax.set_xticks(ticks, short, rotation=90, fontsize=6)
        confusion_ax.set_yticks(ticks, short, fontsize=6)
        confusion_ax.set_title("held-out confusion (rows: true class)")
        importance_ax.plot(classifier.energies, classifier.importances, color="#f0a030")
        importance_ax.set_xlabel("energy (eV)")
        importance_ax.set_ylabel("feature importance")
        self.plot.draw()
        self.class_table.show_classes(self._labels_layer(), names, classifier.classes.compositions,
                                      list(classifier.classes.references))
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        self.report(f"trained {len(names)} classes{took}")
        self.show_warnings(model.warnings, notify=True)
        self.session.changed.emit("model")

    def _labels_layer(self):
        return find_layer(self.viewer, self.session.layer_title("classes"))

    def show_warnings(self, warnings, *, notify: bool = False):
        """Show the model's warnings under the accuracy (and as napari notifications)."""
        from napari.utils.notifications import show_warning

        self.warnings.setText("\n".join(f"⚠ {w}" for w in warnings))
        for warning in warnings if notify else ():
            show_warning(warning)

    @notify_errors("Map")
    def map(self):
        """Map every pixel in a worker (training first unless the trained model is current); the
        maps are shown at once and fill band by band."""
        settings, prepared, references = self._inputs()
        current = self.session.model is not None and self.session.model_settings == training_key(settings)
        model = self.session.model if current else None
        self._map_settings, self._map_started, self._drawn_at = settings, time.perf_counter(), 0.0
        self._train_s = None
        self.cancel_button.setEnabled(True)
        self.report("training…" if model is None else "mapping…")
        reuse = self._shown_maps if self._shown_maps is not None and self.session.result is not None and \
            self.session.result.labels is self._shown_maps["labels"] else None
        if reuse is not None:
            self.session.result = None  # its arrays are refilled now
        self._stop = threading.Event()
        self._map_prepared = prepared
        if prepared is None:  # a volume: the volume job's steps, into a scratch store of 3-D maps
            work, args = train_volume_and_map, (settings, self.session.prepared_volume, references, model,
                                                self._stop.is_set)
        else:
            work, args = train_and_map, (settings, prepared.stack, references, model, reuse, self._stop.is_set)
        self.launch(work, *args,
                    done=lambda value: value is not None and self._mapped(*value, settings, self._map_prepared),
                    yielded=self._yielded,
                    what="Mapping", buttons=(self.train_button, self.map_button),
                    finished=lambda: self.cancel_button.setEnabled(False),
                    aborted=lambda: self.report("mapping cancelled; " + ("the bands mapped so far are shown" if
                                                self._train_s is not None or model is not None else
                                                "training stopped, nothing mapped")))

    def _yielded(self, value):
        kind, payload = value
        if kind == "model":
            self._train_s = time.perf_counter() - self._map_started
            self._trained(payload, self._map_settings, self._train_s)
        elif kind == "prepared":
            self._map_prepared = payload
        elif kind == "stopped":
            self.report("training stopped")
        elif kind == "maps":
            model, maps = payload
            self._show_maps(model.classifier, maps, limits={}, floats=False)
        else:
            self.report(f"mapping band {kind} of {payload}")
            if time.perf_counter() > self._drawn_at:
                tic = time.perf_counter()
                for layer in self._map_layers.values():
                    if layer.visible:
                        layer.refresh()
                # a redraw of a large map takes long: redraw less often, the viewer stays free 4/5 of the time
                self._drawn_at = time.perf_counter() + max(REDRAW_S, 4 * (time.perf_counter() - tic))

    def cancel(self):
        """Stop training (between groups of trees) or the running map (at the end of the current band)."""
        if getattr(self, "_stop", None) is not None:
            self._stop.set()
        if self.worker is not None and hasattr(self.worker, "quit"):
            self.worker.quit()

    def _show_maps(self, classifier, maps, *, limits, floats: bool = True):
        """Show (or update in place) the classes now and, with ``floats``, the float maps of
        ``maps`` over the next turns of the event loop (one layer per turn); returns the
        classes layer. While a map runs only the classes are added: each new layer costs
        napari 0.2-0.8 s of the GUI thread (its controls and visuals), which the mapping
        threads would stretch; the hidden float maps follow when the last band is done."""
        from .._reader import labels_layer

        classes = classifier.classes
        grid, title = self.session.map_transform(), self.session.layer_title
        if maps["labels"].ndim == 3:  # a volume's maps: shown lazily from their store
            grid, maps = volume_grid(grid), display_maps(maps, classes.references)
        data, meta, _ = labels_layer(maps["labels"], list(classes.names), compositions=classes.compositions,
                                     references=list(classes.references), name=title("classes"))
        self._shown_maps = maps
        new = find_layer(self.viewer, title("classes")) is None
        labels = set_layer(self.viewer, data, kind="labels", **meta, **grid)
        for name in COVERED if new else ():  # the first map goes on top of the mask preview and shift map
            covered = find_layer(self.viewer, title(name))
            if covered is not None:
                covered.visible = False
        self._map_layers = {**getattr(self, "_map_layers", {}), "classes": labels}

        def image(plane, name, **style):
            def show():
                active = self.viewer.layers.selection.active  # a new layer would take the selection
                self._map_layers[name] = set_layer(self.viewer, plane, name=title(name), visible=False, **style, **grid)
                self.viewer.layers.selection.active = active

            return show

        if not floats:
            return labels
        self.later({**{name: image(maps[name], name, colormap="viridis", colorbar=True,
                                   contrast_limits=limits.get(name, (0.0, 1.0))) for name in MAP_IMAGES},
                    **{f"fraction {ref}": image(plane, f"fraction {ref}", colormap="magma", colorbar=True, contrast_limits=(0.0, 1.0))
                       for ref, plane in zip(classes.references, maps["fractions"])}})
        return labels

    def _mapped(self, result, limits, counts, settings, prepared):
        self.session.result, self.session.result_settings, self.session.result_prepared = result, settings, prepared
        classes = result.classifier.classes
        from ..core.mapping.maps import new_maps

        labels = self._show_maps(result.classifier, {name: getattr(result, name) for name in new_maps(1, 1, 1)},
                                 limits=limits)
        self.class_table.show_classes(labels, list(classes.names), classes.compositions, list(classes.references),
                                      [counts[name] for name in classes.names])
        waited = time.perf_counter() - self._map_started
        trained = f" (training {self._train_s:.1f} s)" if self._train_s is not None else ""
        self.report(f"mapped in {waited:.1f} s{trained}: {sum(counts.values()):,} sample pixels in "
                    f"{sum(1 for n in counts.values() if n)} classes")
        self.show_warnings(result.warnings)
        self.session.changed.emit("result")

    # saving --------------------------------------------------------------
    def _save_dialog(self):
        folder = QFileDialog.getExistingDirectory(self, "Folder for the maps (new or empty)")
        if folder:
            self.save_all(folder, overwrite=False)

    @notify_errors("Save maps")
    def save_all(self, folder, *, overwrite: bool = False):
        """Write the files of ``xafsmap map`` into ``folder`` (worker)."""
        if self.session.result is None:
            raise ValueError("nothing to save yet: click Map first")
        settings = replace(self.session.result_settings, zarr=self.session.settings.zarr)
        if self.session.result.labels.ndim == 3:
            from ..core.job.volumeapply import write_volume_result

            return self.launch(write_volume_result, replace(settings, zarr=False), self.session.result, folder,
                               prepared=self.session.result_prepared, overwrite=overwrite,
                               done=lambda out: self.report(f"maps written to {out}"), what="Saving the maps",
                               buttons=(self.save_button,))
        self.launch(save_maps, self.session.result, folder, settings, self.session.result_prepared, overwrite,
                    done=lambda out: self.report(f"maps written to {out}"), what="Saving the maps",
                    buttons=(self.save_button,))

    def _export_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Export recipe", "recipe.toml", "TOML (*.toml)")
        if path:
            self.export_recipe(path)

    @notify_errors("Export recipe")
    def export_recipe(self, path):
        """Write every choice of the docks to a TOML recipe (``xafsmap run RECIPE`` replays it)."""
        from ..core.settings.recipe import write_recipe

        written = write_recipe(path, self.session.recipe_for(path))
        self.report(f"recipe written to {written}")
        return written

    def _load_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load recipe", "", "TOML (*.toml)")
        if path:
            self.load_recipe(path)

    @notify_errors("Load recipe")
    def load_recipe(self, path):
        """Validate a recipe and restore every dock from it; missing files are reported."""
        from napari.utils.notifications import show_warning

        from ..core.settings.recipe import missing_paths, read_recipe

        recipe = read_recipe(path)
        missing = missing_paths(recipe)
        if missing:
            show_warning("the recipe names files that no longer exist: " + ", ".join(missing))
        self.session.apply_recipe(recipe)
        self.report(f"recipe {path} loaded")
        return recipe
