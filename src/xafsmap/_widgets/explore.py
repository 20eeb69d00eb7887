"""Dock Explore: components, clusters, NMF and edge maps before the references are known.

The headless counterpart is ``xafsmap explore`` (:mod:`xafsmap.core.explore`); this dock
runs the same generator on the stack prepared as the Prepare dock says (the shift map
applied inside, as the command line does), shows the scree plot and the spectra, and
puts every map in the viewer. Any cluster, NMF or region spectrum becomes a reference
("Use as reference"): written as an XDI file and added, ticked, to the References dock,
so a recipe names it. Regions and the scatter plot live in
:mod:`xafsmap._widgets._explore_tools`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QComboBox, QFileDialog, QLineEdit, QTabWidget, QWidget, QVBoxLayout

from ._base import Dock, notify_errors, set_layer
from ._controls import controls
from ._plot import NORMALIZED, PlotCanvas, style_axes
from ._session import Entry

#: The settings this dock edits (controls generated from their declarations).
SETTINGS_SHOWN = ("components", "clusters", "cluster_method", "nmf")
#: Edge maps as layers: result key -> (layer name, colormap).
EDGE_LAYERS = {"e50": ("E50 (eV)", "turbo"), "whiteline_energy": ("white line energy (eV)", "turbo"),
               "whiteline_height": ("white line height", "viridis"), "preedge_centroid": ("pre-edge centroid (eV)",
                                                                                          "turbo"),
               "preedge_intensity": ("pre-edge intensity", "magma")}


def explore_measurement(session):
    """Worker generator: explore the measurement as the session's settings say (its drift and shift map)."""
    from ..core.job import iter_explore_settings

    if session.stack is None:
        raise ValueError("no measurement yet: pick an image layer in the Stack dock")
    result, _ = yield from iter_explore_settings(session.settings, session.stack, shift_map=session.shift_map,
                                                 drift=session.drift)
    return result


class ExploreWidget(Dock):
    """Explore a stack: scree, components, clusters, NMF, edge maps; spectra as references; regions; scatter."""

    def __init__(self, napari_viewer):
        from ._explore_tools import RoiPanel, ScatterPanel

        super().__init__(napari_viewer)
        self.result = None
        self.extra_spectra: dict[str, tuple] = {}  # region spectra: name -> (energies, mu)
        self.tabs = QTabWidget()
        self.body.addWidget(self.tabs)
        self.body.addWidget(self.status)
        page, form = self._page("Explore")
        self.controls = controls(form, SETTINGS_SHOWN, on_change=self._changed)
        self.explore_button = self.button("Explore", self.explore, tip="learn on the survey's grid of pixels, then "
                                          "map every pixel band by band (a worker)")
        form.addRow(self.explore_button)
        self.scree = PlotCanvas(2, height=3.6)
        page.layout().addWidget(self.scree)
        page, form = self._page("Spectra")
        self.spectra_box = QComboBox()
        self.spectra_box.addItems(["clusters", "NMF", "regions"])
        self.spectra_box.currentIndexChanged.connect(lambda *_: self.draw_spectra())
        form.addRow("Show", self.spectra_box)
        self.spectra_plot = PlotCanvas(1, height=3.2)
        page.layout().addWidget(self.spectra_plot)
        self.pick_box = QComboBox()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("name in the References table")
        self.edge_edit = QLineEdit()
        self.edge_edit.setToolTip("absorber and edge for the XDI file, e.g. Fe K")
        form.addRow("Spectrum", self.pick_box)
        form.addRow("Name", self.name_edit)
        form.addRow("Element, edge", self.edge_edit)
        self.use_button = self.button("Use as reference…", self.ask_use_as_reference, tip="save the spectrum as an "
                                      "XDI file and add it, ticked, to the References dock")
        form.addRow(self.use_button)
        self.rois = RoiPanel(self)
        self.tabs.addTab(self.rois, "Regions")
        self.scatter = ScatterPanel(self)
        self.tabs.addTab(self.scatter, "Scatter")
        self.pick_box.currentTextChanged.connect(lambda text: self.name_edit.setText(text))
        self.listen(self.session.changed, self._on_session)

    def _page(self, title):
        from qtpy.QtWidgets import QFormLayout

        page = QWidget()
        page.setLayout(QVBoxLayout())
        form = QFormLayout()
        page.layout().addLayout(form)
        self.tabs.addTab(page, title)
        return page, form

    # explore -------------------------------------------------------------
    def _changed(self, name: str):
        self.session.update("explore", **{name: self.controls[name].value()})

    @notify_errors("Explore")
    def explore(self):
        """Learn and map in a worker; layers, scree and spectra when done."""
        self.launch(explore_measurement, self.session, done=self._explored, what="Exploring",
                    total=1, buttons=(self.explore_button,))

    def _explored(self, result):
        from .._reader import labels_layer

        self.result = result
        grid = self.session.map_transform()
        learned = result.learned
        for i, image in enumerate(result.scores):
            set_layer(self.viewer, image, name=f"PC {i + 1}", visible=False, colormap="twilight_shifted",
                      contrast_limits=_limits(image), **grid)
        data, meta, _ = labels_layer(result.clusters, [f"cluster {i + 1}" for i in range(learned.clustering.k)],
                                     name="clusters")
        set_layer(self.viewer, data, kind="labels", opacity=0.6, **meta, **grid)
        if result.nmf is not None:
            for i, image in enumerate(result.nmf):
                set_layer(self.viewer, image, name=f"NMF {i + 1}", visible=False, colormap="viridis",
                          contrast_limits=_limits(image), **grid)
        for key, image in result.edges.items():
            name, colormap = EDGE_LAYERS[key]
            layer = set_layer(self.viewer, image, name=name, visible=False, colormap=colormap,
                              contrast_limits=_limits(image), **grid)
            layer.colorbar.visible = True
        self.viewer.layers.selection.active = self.viewer.layers["clusters"]
        self.draw_scree()
        self.fill_spectra()
        self.scatter.refresh()
        comps = learned.components
        nmf = "" if learned.unmixing is None else (f"; NMF: {learned.unmixing.n_iter} rounds, misfit "
                                                   f"{learned.unmixing.misfit:.2f} per point")
        self.report(f"{comps.n_significant} significant components (noise floor {comps.noise_floor:.2f}; bulk of "
                    f"the eigenvalues {comps.bulk_ratio:.2f} × the noise model's), {learned.clustering.k} clusters "
                    f"({learned.clustering.method}){nmf}; {learned.sample.n_pixels} sample pixels learned from, "
                    f"{result.timings['total_s']:.1f} s")

    def draw_scree(self):
        comps = self.result.learned.components
        scree, spectra = self.scree.clear()
        values = comps.eigenvalues[: max(20, comps.n + 5)]
        index = np.arange(1, values.size + 1)
        significant = values > comps.noise_floor
        scree.semilogy(index, values, "o-", color="#8fb4d9", ms=3, lw=1)
        scree.semilogy(index[significant], values[significant], "o", color="#ff6e4a", ms=4, label="significant")
        scree.axhline(comps.noise_floor, color="#ffd24a", lw=1, ls="--", label="noise floor")
        scree.set_xlabel("component")
        scree.set_ylabel("eigenvalue (noise units)")
        scree.legend(fontsize=6)
        energies = comps.energies
        for i, spectrum in enumerate(comps.spectra):
            spectra.plot(energies, spectrum / (np.abs(spectrum).max() or 1) + i, lw=1, label=f"PC {i + 1}")
        spectra.set_xlabel("energy (eV)")
        spectra.set_ylabel("component (offset)")
        self.scree.draw()

    # spectra and use as reference -----------------------------------------
    def spectra(self) -> dict[str, tuple]:
        """Name -> (energies, normalized mu, spread or None) of every spectrum on offer."""
        out = {}
        if self.result is not None:
            energies = self.result.energies
            for i, (mean, spread) in enumerate(zip(self.result.cluster_spectra, self.result.cluster_spread)):
                out[f"cluster {i + 1}"] = (energies, mean, spread)
            if self.result.learned.unmixing is not None:
                for i, spectrum in enumerate(self.result.learned.unmixing.spectra):
                    out[f"NMF {i + 1}"] = (energies, spectrum, None)
        for name, (energies, mu) in self.extra_spectra.items():
            out[name] = (energies, mu, None)
        return out

    def fill_spectra(self):
        current = self.pick_box.currentText()
        names = list(self.spectra())
        self.pick_box.blockSignals(True)
        self.pick_box.clear()
        self.pick_box.addItems(names)
        self.pick_box.blockSignals(False)
        if current in names:
            self.pick_box.setCurrentText(current)
        self.name_edit.setText(self.pick_box.currentText())
        if not self.edge_edit.text() and self.result is not None:
            from ..core.explore import guess_edge

            guess = guess_edge(self.result.learned.sample.params["e0"])
            self.edge_edit.setText(" ".join(guess) if guess else "")
        self.draw_spectra()

    def draw_spectra(self):
        from ..core.mapping.legend import label_colors

        kind = {"clusters": "cluster", "NMF": "NMF", "regions": None}[self.spectra_box.currentText()]
        chosen = {name: value for name, value in self.spectra().items()
                  if (name.startswith(kind + " ") if kind else name in self.extra_spectra)}
        [ax] = self.spectra_plot.clear()
        colors = label_colors(max(len(chosen), 1)) / 255.0
        for i, (name, (energies, mu, spread)) in enumerate(chosen.items()):
            ax.plot(energies, mu, color=colors[i + 1], lw=1.2, label=name)
            if spread is not None:
                ax.fill_between(energies, mu - spread, mu + spread, color=colors[i + 1], alpha=0.2, lw=0)
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel(NORMALIZED)
        if chosen:
            ax.legend(fontsize=6)
        style_axes(ax)
        self.spectra_plot.draw()

    def ask_use_as_reference(self):
        name = self.name_edit.text().strip() or self.pick_box.currentText()
        path, _ = QFileDialog.getSaveFileName(self, "Save the reference as XDI", f"{name}.xdi", "XDI (*.xdi)")
        if path:
            self.use_as_reference(self.pick_box.currentText(), name=name, path=path)

    @notify_errors("Use as reference")
    def use_as_reference(self, spectrum: str, *, name: str, path, element_edge: str | None = None):
        """Save ``spectrum`` (a name of :meth:`spectra`) as XDI at ``path`` and add it, ticked, as ``name``."""
        from ..core.explore import save_reference, spectrum_reference

        offered = self.spectra()
        if spectrum not in offered:
            raise ValueError(f"no spectrum {spectrum!r}: explore first (or measure regions)")
        text = (element_edge if element_edge is not None else self.edge_edit.text()).split()
        if len(text) != 2:
            raise ValueError("give the absorber and edge for the XDI file, e.g. 'Fe K'")
        if any(entry.name == name for entry in self.session.entries):
            raise ValueError(f"the References table already has a {name!r}: choose another name")
        energies, mu, _ = offered[spectrum]
        source = f"{spectrum} of {self.session.source.get('stack', self.session.layer_name)}"
        reference = spectrum_reference(name, energies, mu, source=source)
        path = save_reference(Path(path), reference, element=text[0], edge=text[1],
                              comments=[f"xafsmap explore: {spectrum}, normalized as the stack"])
        self.session.set_entries([*self.session.entries, Entry(str(path), name, 0.0, True, reference)])
        self.report(f"{name!r} saved as {path} and added, ticked, to the References dock")
        return path

    def _on_session(self, part: str):
        if part in ("measurement", "recipe"):
            self.result = None
            self.extra_spectra = {}
        if part == "recipe":
            for name, widget in self.controls.items():
                widget.show_value(getattr(self.session.settings, name))


def _limits(image) -> tuple[float, float]:
    finite = image[np.isfinite(image)]
    if not finite.size:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    return float(low), float(high if high > low else low + 1)
