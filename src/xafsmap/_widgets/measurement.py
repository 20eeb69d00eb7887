"""Dock 1, Measurement: pick the stack layer, or open a stack (with flat/dark/I0) from files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

from ..core.io.stack import Stack
from ._base import Dock, notify_errors
from ._controls import controls
from .volumemap import describe_volume, is_volume_layer, volume_layer_of, volume_of

#: The measurement's files, in the order of the form (the settings of section [input]).
FILE_SETTINGS = ("stack", "energies", "flat", "dark", "i0", "axes")


def path_row(tip: str) -> tuple[QWidget, QLineEdit]:
    """A line edit with a browse button (for files that are not settings: a shift map to load)."""
    row, edit, browse = QWidget(), QLineEdit(), QPushButton("…")
    edit.setToolTip(tip)
    browse.setMaximumWidth(28)
    browse.clicked.connect(lambda *_: edit.setText(QFileDialog.getOpenFileName(row, tip)[0] or edit.text()))
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit)
    layout.addWidget(browse)
    return row, edit


def open_measurement(paths: dict):
    """Worker: open a stack (or a volume) lazily and build its layer (reads one plane for contrast)."""
    from .._reader import stack_layer
    from ..core.io.stack import read_stack
    from ..core.io.volume import volume_kind

    if volume_kind(paths["stack"], axes=paths.get("axes")):  # a recipe of a volume (the reader's layer)
        return None, volume_layer_of(paths)
    stack = read_stack(paths["stack"], **{k: v for k, v in paths.items() if k != "stack"})
    return stack, stack_layer(stack)


def compute_stack(data, energies, sources: dict):
    """The stack to compute on: re-opened from its files when it has them (chunked in
    bands with every energy, for per-pixel work) — the layer's data is chunked one
    image per energy, for display — else the layer's data itself."""
    from ..core.io.stack import read_stack

    paths = {role: value for role, value in sources.items() if role in ("stack", "flat", "dark", "i0", "axes")}
    if "stack" in paths and all(Path(str(value)).exists() for role, value in paths.items() if role != "axes"):
        stack = read_stack(paths.pop("stack"), energies=energies, **paths)
        if tuple(stack.data.shape) == tuple(data.shape):
            return Stack(stack.data, stack.energies, dict(sources))
    return Stack(data, energies, sources)


def source_path(layer) -> str | None:
    """The file a layer was opened from (napari's ``layer.source.path``), or None."""
    path = getattr(getattr(layer, "source", None), "path", None)
    return str(path) if path else None


def energies_beside(layer):
    """``(energies, file)`` for a stack layer opened by another reader (napari's builtin TIFF
    reader): the energies sidecar beside its source file (``<stem>.energies.txt``,
    ``energies.txt``, ``energy.txt``), or ``(None, None)``."""
    from ..core.io.energies import find_energies_file, read_energies

    path = source_path(layer)
    found = find_energies_file(path) if path else None
    if found is None:
        return None, None
    energies = read_energies(found)
    if len(energies) != layer.data.shape[0]:
        raise ValueError(f"{found} lists {len(energies)} energies but the layer {layer.name!r} has "
                         f"{layer.data.shape[0]} images")
    return energies, found


def describe(stack) -> str:
    """Shape, energies, dtype, size on disk and memory estimate of a stack, in words."""
    import dask.array as da

    from ..core.io.stack import stack_info

    info = stack_info(stack if isinstance(stack.data, da.Array) else Stack(da.asarray(stack.data), stack.energies,
                                                                            stack.sources))
    files = [Path(p) for k, p in stack.sources.items() if k != "energies" and Path(str(p)).exists()]
    disk = sum(f.stat().st_size for p in files for f in ([p] if p.is_file() else p.iterdir()) if f.is_file())
    e, m, n = info["shape"]
    return (f"{e} energies × {m} rows × {n} columns, {info['dtype']}\n"
            f"energies {info['energy_min_ev']:.2f}–{info['energy_max_ev']:.2f} eV\n"
            f"absorbance {_size(info['size_bytes'])} (lazy); on disk {_size(disk) if disk else '—'}\n"
            f"memory while mapping ≈ {_size(info['mapping_memory_bytes'])}")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


class MeasurementWidget(Dock):
    """Pick the measurement: an image layer (E, rows, columns) with energies, or files."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.layer_box = QComboBox()
        self.form.addRow("Stack layer", self.layer_box)
        self.use_button = self.button("Use layer", self.use_layer, tip="map this image layer")
        self.form.addRow(self.use_button)
        self.controls = controls(self.form, FILE_SETTINGS)
        self.open_button = self.button("Open stack", self.open_stack, tip="open lazily, as absorbance")
        self.form.addRow(self.open_button)
        self.body.addWidget(self.status)
        self.body.addStretch()
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            self.listen(event, lambda *_: self.refresh_layers())
        self.listen(self.session.changed, self._on_session)
        self.refresh_layers()

    def stack_layers(self) -> list:
        import napari.layers

        from ..core.io.energies import find_energies_file

        return [layer for layer in self.viewer.layers if is_volume_layer(layer) or
                isinstance(layer, napari.layers.Image) and layer.ndim == 3 and not layer.rgb and
                ("energies" in layer.metadata or source_path(layer) and find_energies_file(source_path(layer)))]

    def refresh_layers(self):
        current = self.layer_box.currentText()
        names = [layer.name for layer in self.stack_layers()]
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)

    @notify_errors("Measurement")
    def use_layer(self, name: str | None = None):
        """Make the chosen image layer the session's measurement."""
        name = name or self.layer_box.currentText()
        if not name:
            raise ValueError("no image layer with energies: open a stack (with its energies file beside it) "
                             "or the sample first")
        layer = self.viewer.layers[name]
        if is_volume_layer(layer):
            return self._use_volume(layer)
        found = None
        if "energies" in layer.metadata:
            energies = np.asarray(layer.metadata["energies"], dtype=np.float64)
            sources = dict(layer.metadata.get("sources") or {})
        else:  # opened by another reader: energies from the file beside it
            energies, found = energies_beside(layer)
            if energies is None:
                raise ValueError(f"the layer {name!r} has no energies and no energies file lies beside "
                                 f"{source_path(layer) or 'its file'}: give them in the energies field")
            sources = {"stack": source_path(layer), "energies": str(found)}
        if not sources and layer.metadata.get("references"):
            sources = {"sample": "fe_sample"}  # the plugin's sample measurement
        stack = compute_stack(layer.data, energies, sources)
        self.session.set_measurement(stack, source=sources, layer_name=name, scale=tuple(layer.scale[-2:]),
                                     translate=tuple(layer.translate[-2:]))
        if not self.session.entries:  # the layer's own references (the sample's), whichever docks are open
            for path in layer.metadata.get("references") or ():
                self.session.add_references(str(path))
        self.layer_box.setCurrentText(name)
        self.report(describe(stack) + (f"\nenergies from {found} (beside the file napari opened)" if found else ""))

    def _use_volume(self, layer):
        """A volume layer as the measurement: mapped voxel by voxel; its middle slice for the 2-D docks."""
        from ..core.io.volume import volume_slice

        volume = volume_of(layer)
        sources = dict(layer.metadata.get("sources") or {})
        self.session.set_measurement(volume_slice(volume, volume.data.shape[1] // 2), source=sources,
                                     layer_name=layer.name, scale=tuple(layer.scale[-2:]),
                                     translate=tuple(layer.translate[-2:]), volume=volume)
        self.layer_box.setCurrentText(layer.name)
        self.report(describe_volume(volume))

    @notify_errors("Open stack")
    def open_stack(self, paths: dict | None = None):
        """Open the stack named in the path fields (or ``paths``) in a worker, then use it."""
        paths = paths or {role: control.value() for role, control in self.controls.items()}
        paths = {role: value for role, value in paths.items() if value}
        if "stack" not in paths:
            raise ValueError("give the stack file or folder first")
        self.launch(open_measurement, paths, done=self._opened, what="Opening the stack",
                    buttons=(self.open_button, self.use_button))

    def _opened(self, value):
        _, (data, meta, _) = value
        layer = self.viewer.add_image(data, **meta)
        self.use_layer(layer.name)

    def _on_session(self, part: str):
        if part != "recipe":
            return
        recipe_source = {k: v for k, v in self.session.source.items()}
        wanted = self.session.wanted_source
        if wanted == recipe_source:
            return
        for role, control in self.controls.items():
            control.show_value(wanted.get(role))
        if "sample" in wanted:
            self.viewer.open_sample("xafsmap", wanted["sample"])
            self.use_layer(self.stack_layers()[-1].name)
        elif "stack" in wanted:
            self.open_stack(wanted)
