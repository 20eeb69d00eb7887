"""Dock 6, Inspect: click a pixel (or pick a shape) to see its spectra, class and fractions.

With a measured drift (and registration chosen) and an energy-shift map, the pixel's
spectrum is drift-corrected and calibrated as the prepared stack is
(:func:`~xafsmap.core.spectra.block.block_spectrum`).
Only the clicked pixel's spectrum is read (all energies, one pixel or bin), in a worker,
one read at a time: requests made meanwhile (a burst of mouse moves) replace each other
and only the newest is read next, so following the mouse never queues stale reads and
the viewer never waits for a lazy multi-GB stack. In a volume the voxel under the mouse
is read from the slice the viewer shows (its Z index). A click moves only the plot's lines,
titles and legend (blitted over the figure as last drawn), and the y axes when their
limits change; the whole figure is redrawn only when the energy axis changes.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QCheckBox, QLabel

from ._base import TAG, Dock, find_layer, notify_errors
from ._plot import PlotCanvas

#: The layer outlining the inspected pixel.
MARKER = "inspected pixel"
#: References drawn besides the class spectrum: those with at least this fraction.
SHOWN_FRACTION = 0.1


def read_spectrum(stack, rows: slice, cols: slice, normalization: dict, drift=None, shift=None):
    """Worker: the block's spectrum prepared as the stack is (:func:`~xafsmap.core.spectra.block.block_spectrum`).

    One BLAS thread: the fits of one spectrum are tiny, and OpenBLAS's threads spin-waiting
    beside the viewer's drawing cost up to ~0.1 s of CPU per click on 2 cores.
    """
    from threadpoolctl import threadpool_limits

    from ..core.spectra.block import block_spectrum

    with threadpool_limits(limits=1, user_api="blas"):
        return block_spectrum(stack, rows, cols, normalization=normalization, drift=drift, shift=shift)


class InspectWidget(Dock):
    """Spectrum, class, probability, distance and fractions of the clicked pixel."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.follow_box = QCheckBox("follow the mouse (not only clicks)")
        self.form.addRow(self.follow_box)
        self.region_button = self.button("Mean of the selected shape", self.inspect_shape,
                                         tip="average the pixels inside the selected shape's bounding box")
        self.form.addRow(self.region_button)
        self.info = QLabel("click a pixel of the stack or the maps")
        self.info.setWordWrap(True)
        self.body.addWidget(self.info)
        self.plot = PlotCanvas(2, height=4.6)
        self.body.addWidget(self.plot)
        self.body.addWidget(self.status)
        self.pending = None  # the newest request not read yet: (block, title, pixel)
        self.requested = None  # the pixel asked for last
        self._reading = False
        self._raw_line = self._norm_line = None
        for callbacks, callback in ((napari_viewer.mouse_drag_callbacks, self._on_click),
                                    (napari_viewer.mouse_move_callbacks, self._on_move)):
            callbacks.append(callback)
            self.tasks.on_close(lambda callbacks=callbacks, callback=callback: callbacks.remove(callback))

    # mouse ---------------------------------------------------------------
    def _on_click(self, viewer, event):
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged:
            self.inspect_position(event.position)

    def _on_move(self, viewer, event):
        if self.follow_box.isChecked():
            self.inspect_position(event.position)

    def inspect_position(self, position):
        """Inspect the map pixel under a world ``position`` of the viewer."""
        session = self.session
        if session.stack is None or session.layer_name not in self.viewer.layers:
            return
        coords = self.viewer.layers[session.layer_name].world_to_data(position)
        pixel = session.map_pixel(*coords[-2:])
        if pixel is not None and session.volume is not None:
            n_slices = session.volume.data.shape[1]
            pixel = (int(np.clip(np.floor(coords[-3] + 0.5), 0, n_slices - 1)), *pixel)
        if pixel is not None and pixel != self.requested:
            self.inspect_pixel(*pixel)

    # reading -------------------------------------------------------------
    @notify_errors("Inspect")
    def inspect_pixel(self, *pixel: int):
        """Read and show map pixel ``(row, col)`` (of the prepared grid), or voxel ``(z, row,
        col)`` of a volume, in a worker."""
        rows, cols = self.session.pixel_block(*pixel[-2:])
        what = "voxel" if len(pixel) == 3 else "pixel"
        self._read((rows, cols), f"{what} ({', '.join(map(str, pixel))})", tuple(pixel))

    def mark(self, row: int, col: int):
        """Outline the inspected map pixel in the viewer (a Points layer, moved in place; in a
        volume it outlines the same row and column in every slice).

        Called once the pixel's spectrum is plotted: the marker shows the plotted pixel, and
        moving it (~30 ms of napari's work) does not delay the plot."""
        name = self.session.layer_title(MARKER)
        layer = find_layer(self.viewer, name)
        if layer is None:
            selection = self.viewer.layers.selection.active  # adding a layer would select it
            layer = self.viewer.add_points([[row, col]], name=name, symbol="square", size=1.4,
                                           face_color="transparent", border_color="#ff4ae0", border_width=0.15,
                                           metadata={TAG: name}, **self.session.map_transform())
            self.viewer.layers.selection.active = selection
        else:
            grid = self.session.map_transform()
            layer.scale, layer.translate = grid["scale"], grid["translate"]
            layer.data = [[row, col]]
        return layer

    @notify_errors("Inspect")
    def inspect_shape(self):
        """Average the measurement inside the selected shape's bounding box."""
        import napari.layers

        shapes = [layer for layer in self.viewer.layers.selection if isinstance(layer, napari.layers.Shapes)]
        if not shapes or not len(shapes[0].data) or self.session.stack is None:
            raise ValueError("select a Shapes layer holding a shape (and pick the measurement) first")
        layer, stack_layer = shapes[0], self.viewer.layers[self.session.layer_name]
        index = max(layer.selected_data) if layer.selected_data else len(layer.data) - 1
        corners = np.array([stack_layer.world_to_data(layer.data_to_world(v))[-2:] for v in layer.data[index]])
        _, n_rows, n_cols = self.session.stack.data.shape
        lo = np.clip(np.floor(corners.min(axis=0) + 0.5).astype(int), 0, [n_rows, n_cols])
        hi = np.clip(np.ceil(corners.max(axis=0) + 0.5).astype(int), lo + 1, [n_rows, n_cols])
        self._read((slice(lo[0], hi[0]), slice(lo[1], hi[1])), f"rows {lo[0]}:{hi[0]}, columns {lo[1]}:{hi[1]}",
                   None)

    def _read(self, block, title, pixel):
        """Read ``block`` in a worker, or after the running read (replacing any request waiting)."""
        self.requested = pixel
        self.pending = (block, title, pixel)
        if not self._reading:
            self._read_next()

    def _read_next(self):
        if self.pending is None:
            return
        (block, title, pixel), self.pending = self.pending, None
        session = self.session
        params = session.model.normalization if session.model is not None else session.settings.normalization
        shift = None if session.shift_map is None else session.shift_map.shift
        drift = session.drift if session.settings.register else None
        self._reading = True
        stack = session.stack
        if session.volume is not None and pixel is not None:
            from ..core.io.volume import volume_slice

            stack = volume_slice(session.volume, pixel[0])
        self.launch(read_spectrum, stack, *block, params, drift, shift,
                    done=lambda value: self._draw(value, title, pixel), what="Reading the spectrum",
                    finished=self._read_done, progress=False)

    def _read_done(self):
        self._reading = False
        self._read_next()

    # showing -------------------------------------------------------------
    def _draw(self, value, title, pixel):
        energies, spectrum, norm = value.energies, value.mu, value.norm
        raw_ax, norm_ax = self.plot.axes
        first = self._raw_line is None
        if first:  # axes, labels and layout once; later clicks only move lines
            self._raw_line, = raw_ax.plot([], [], color="white", lw=1)
            self._norm_line, = norm_ax.plot([], [], color="white", lw=1.2, label="this pixel")
            raw_ax.set_ylabel("absorbance")
            norm_ax.set_xlabel("energy (eV)")
            norm_ax.set_ylabel("normalized μ")
        for line in norm_ax.lines[1:]:
            line.remove()
        self._raw_line.set_data(energies, spectrum)
        self._norm_line.set_data(energies, norm if norm is not None else np.full_like(spectrum, np.nan))
        raw_ax.set_title(title)
        lines = [title]
        result = self.session.result
        if result is not None and pixel is not None and result.labels.ndim == len(pixel):
            lines += self._describe(result, pixel, norm_ax)
        legend = norm_ax.get_legend()
        if len(norm_ax.lines) > 1 or legend is None:
            norm_ax.legend(fontsize=7)
        for artist in (*raw_ax.lines, *norm_ax.lines, raw_ax.title, norm_ax.get_legend(), raw_ax.yaxis,
                       norm_ax.yaxis):
            artist.set_animated(True)  # redrawn alone at the next click (the y axis too: its limits follow the data)
        energies_changed = [self._autoscale(ax) for ax in (raw_ax, norm_ax)]
        self.plot.refresh(full=first or any(energies_changed))
        self.plot.freeze_layout()
        self.info.setText("\n".join(lines))
        if pixel is not None:
            self.mark(*pixel[-2:])

    @staticmethod
    def _autoscale(ax) -> bool:
        """Fit the axes to their lines (unless the user zoomed), the y limits on round tick
        values so that nearby pixels share them (the y axis is redrawn only when they change);
        True when the energy axis changed (drawn with the whole figure)."""
        import matplotlib as mpl

        before = ax.get_xlim()
        ax.relim()
        ax.autoscale_view(scaley=False)
        with mpl.rc_context({"axes.autolimit_mode": "round_numbers"}):
            ax.autoscale_view(scalex=False)
        return ax.get_xlim() != before

    def _describe(self, result, pixel, ax) -> list[str]:
        from ..core.mapping.legend import label_colors

        classifier = result.classifier
        classes, energies = classifier.classes, classifier.energies
        label = int(result.labels[pixel])
        if label == 0:
            return ["no sample (no significant edge)" if result.mask[pixel] == 0
                    else "invalid: a NaN or infinite value at some energy"]
        colors = label_colors(len(classes)) / 255.0
        ax.plot(energies, classes.compositions[label - 1] @ classifier.references, color=colors[label], lw=1.5,
                label=f"class {classes.names[label - 1]}")
        fractions = result.fractions[(slice(None), *pixel)]
        sigma = result.fraction_sigma[(slice(None), *pixel)]
        for k in np.argsort(fractions)[::-1]:
            if fractions[k] >= SHOWN_FRACTION:
                ax.plot(energies, classifier.references[k], lw=0.8, ls="--",
                        label=f"{classes.references[k]} ({fractions[k]:.2f} ± {sigma[k]:.2f})")
        shares = ", ".join(f"{name} {f:.2f} ± {s:.2f}" for name, f, s in zip(classes.references, fractions, sigma))
        return [f"class {label}: {classes.names[label - 1]}",
                f"probability {result.probability[pixel]:.3f}, distance {result.distance[pixel]:.3g}",
                f"fractions {shares} (residual {result.residual[pixel]:.3g})"]
