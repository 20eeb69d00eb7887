"""Dock 5, Classify: train (accuracy, confusion, importances), map in a worker, save, recipes."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QLabel, QSpinBox, QWidget

from ._base import Dock, notify_errors, set_layer
from ._plot import PlotCanvas

MAP_IMAGES = ("probability", "distance", "residual", "edge_step", "e0")


def train(recipe, stack, references):
    """Worker: the recipe's model for the prepared stack (the same call as ``xafsmap run``)."""
    from ..core.settings.recipe import train_recipe

    return train_recipe(recipe, stack, references)


def train_steps(recipe, stack, references):
    """Worker generator: train, then yield once so a Cancel pressed meanwhile discards the model.

    The forest is built in one core call, so Cancel cannot stop it half-way; it takes
    effect when training ends.
    """
    model = train(recipe, stack, references)
    yield ("model", None)
    return model


def train_and_map(recipe, stack, references, model=None):
    """Worker generator: train unless ``model`` is given (yields it), then map band by band."""
    from ..core.mapping.pipeline import iter_classify

    if model is None:
        model = train(recipe, stack, references)
        yield ("model", model)
    return (yield from iter_classify(stack, model, metric=recipe.metric))


def save_maps(result, out, recipe, overwrite: bool):
    """Worker: the files of ``xafsmap map`` (with the recipe in report.json)."""
    from ..core.mapping.output import write_maps
    from ..core.settings.recipe import recipe_to_dict

    return write_maps(result, out, overwrite=overwrite, extra={"recipe": recipe_to_dict(recipe)})


def _spin(kind, low, high, *, step=None, decimals=None):
    spin = QSpinBox() if kind is int else QDoubleSpinBox()
    spin.setRange(low, high)
    if decimals is not None:
        spin.setDecimals(decimals)
    if step is not None:
        spin.setSingleStep(step)
    return spin


class ClassifyWidget(Dock):
    """Classifier settings, Train / Map / Cancel, save all maps, export and load recipes."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        from ..core.model.classify import FEATURES, METRICS

        self.controls = {
            "features": QComboBox(), "smooth": _spin(int, 1, 101), "n_per_class": _spin(int, 2, 1_000_000, step=100),
            "n_trees": _spin(int, 1, 10_000, step=10), "metric": QComboBox(), "seed": _spin(int, 0, 2**31 - 1),
            "fit_low": _spin(float, -500, 0, decimals=1), "fit_high": _spin(float, 0, 2000, decimals=1),
        }
        self.controls["features"].addItems(FEATURES)
        self.controls["metric"].addItems(METRICS)
        labels = {"features": "Features", "smooth": "Smoothing (points)", "n_per_class": "Spectra per class",
                  "n_trees": "Trees", "metric": "Distance metric", "seed": "Seed",
                  "fit_low": "Fit from e0 + (eV)", "fit_high": "Fit to e0 + (eV)"}
        for key, widget in self.controls.items():
            self.form.addRow(labels[key], widget)
            signal = widget.currentTextChanged if isinstance(widget, QComboBox) else widget.valueChanged
            signal.connect(lambda *_: self._changed())
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
        self.plot = PlotCanvas(2, height=4.6)
        self.layout().addWidget(self.plot)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        self.save_button = self.button("Save all maps…", self._save_dialog, tip="the files of `xafsmap map`")
        line.addWidget(self.save_button)
        line.addWidget(self.button("Export recipe…", self._export_dialog))
        line.addWidget(self.button("Load recipe…", self._load_dialog))
        self.layout().addWidget(row)
        self.layout().addWidget(self.status)
        self.session.changed.connect(self._on_session)
        self._show_choices()

    # settings ------------------------------------------------------------
    def _changed(self):
        c = self.controls
        low, high = float(c["fit_low"].value()), float(c["fit_high"].value())
        self.session.update(
            "classifier", features=c["features"].currentText(), smooth=int(c["smooth"].value()),
            n_per_class=int(c["n_per_class"].value()), n_trees=int(c["n_trees"].value()),
            metric=c["metric"].currentText(), seed=int(c["seed"].value()),
            fit_range=(low, high) if low < high else self.session.choices["fit_range"])

    def _show_choices(self):
        choices, c = self.session.choices, self.controls
        for widget in c.values():
            widget.blockSignals(True)
        c["features"].setCurrentText(choices["features"])
        c["metric"].setCurrentText(choices["metric"])
        for key in ("smooth", "n_per_class", "n_trees", "seed"):
            c[key].setValue(choices[key])
        c["fit_low"].setValue(choices["fit_range"][0])
        c["fit_high"].setValue(choices["fit_range"][1])
        for widget in c.values():
            widget.blockSignals(False)

    def _on_session(self, part: str):
        if part == "recipe":
            self._show_choices()

    # actions -------------------------------------------------------------
    def _inputs(self):
        return self.session.recipe(strict=False), self.session.prepared_stack(), self.session.references()

    @notify_errors("Train")
    def train(self):
        """Train the classifier in a worker; show accuracy, confusion matrix and importances."""
        recipe, stack, references = self._inputs()
        self.report("training…")
        self.cancel_button.setEnabled(True)
        worker = self.launch(train_steps, recipe, stack, references, done=lambda model: self._trained(model, recipe),
                             what="Training", buttons=(self.train_button, self.map_button))
        worker.finished.connect(lambda: self.cancel_button.setEnabled(False))
        worker.aborted.connect(lambda: self.report("training cancelled; the previous model is kept"))

    def _trained(self, model, recipe):
        self.session.model, self.session.model_recipe = model, _without_metric(recipe)
        classifier = model.classifier
        self.accuracy.setText(f"{classifier.accuracy:.3f} on {classifier.confusion.sum()} synthetic spectra")
        confusion_ax, importance_ax = self.plot.clear()
        matrix = classifier.confusion / np.maximum(classifier.confusion.sum(axis=1, keepdims=True), 1)
        confusion_ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
        ticks = np.arange(len(classifier.classes))
        confusion_ax.set_xticks(ticks, [str(i + 1) for i in ticks])
        confusion_ax.set_yticks(ticks, [str(i + 1) for i in ticks])
        confusion_ax.set_title("held-out confusion (rows: true class)")
        importance_ax.plot(classifier.energies, classifier.importances, color="#f0a030")
        importance_ax.set_xlabel("energy (eV)")
        importance_ax.set_ylabel("feature importance")
        self.plot.draw()
        self.report(f"trained {len(classifier.classes)} classes: " +
                    ", ".join(f"{i + 1} {name}" for i, name in enumerate(classifier.classes.names)))
        self.show_warnings(model.warnings, notify=True)
        self.session.changed.emit("model")

    def show_warnings(self, warnings, *, notify: bool = False):
        """Show the model's warnings under the accuracy (and as napari notifications)."""
        from napari.utils.notifications import show_warning

        self.warnings.setText("\n".join(f"⚠ {w}" for w in warnings))
        for warning in warnings if notify else ():
            show_warning(warning)

    @notify_errors("Map")
    def map(self):
        """Map every pixel in a worker (training first unless the trained model is current)."""
        recipe, stack, references = self._inputs()
        current = self.session.model is not None and self.session.model_recipe == _without_metric(recipe)
        model = self.session.model if current else None
        self._map_recipe = recipe
        self.cancel_button.setEnabled(True)
        worker = self.launch(train_and_map, recipe, stack, references, model,
                             done=lambda result: self._mapped(result, recipe), yielded=self._yielded,
                             what="Mapping", total=1, buttons=(self.train_button, self.map_button))
        worker.finished.connect(lambda: self.cancel_button.setEnabled(False))
        worker.aborted.connect(lambda: self.report("mapping cancelled; the viewer's maps are unchanged"))

    def _yielded(self, value):
        if value[0] == "model" and value[1] is not None:
            self._trained(value[1], self._map_recipe)
        else:
            self.report(f"mapping band {value[0]} of {value[1]}")

    def cancel(self):
        """Stop the running map at the end of the current band (training: when it ends, discarding it)."""
        if self.worker is not None and hasattr(self.worker, "quit"):
            self.worker.quit()

    def _mapped(self, result, recipe):
        from .._reader import labels_layer

        self.session.result, self.session.result_recipe = result, recipe
        classes = result.classifier.classes
        grid = self.session.map_transform()
        for name in MAP_IMAGES + tuple(f"fraction {ref}" for ref in classes.references):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        for name in MAP_IMAGES:
            set_layer(self.viewer, getattr(result, name), name=name, visible=False, colormap="viridis", **grid)
        for ref, plane in zip(classes.references, result.fractions):
            set_layer(self.viewer, plane, name=f"fraction {ref}", visible=False, colormap="magma",
                      contrast_limits=(0.0, 1.0), **grid)
        data, meta, _ = labels_layer(result.labels, list(classes.names), compositions=classes.compositions,
                                     references=list(classes.references))
        set_layer(self.viewer, data, kind="labels", **meta, **grid)
        counts = ", ".join(f"{name}: {n}" for name, n in result.class_counts.items() if n)
        self.report(f"mapped in {result.timings.get('map_s', 0):.1f} s — {counts}")
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
        self.launch(save_maps, self.session.result, folder, self.session.result_recipe, overwrite,
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


def _without_metric(recipe):
    """The metric does not change the model, so a model stays current when only it changes."""
    from dataclasses import replace

    return replace(recipe, metric="euclidean")
