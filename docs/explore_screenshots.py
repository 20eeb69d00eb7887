"""Take the screenshots and the STXM figure of docs/explore.md.

Run on a display or under Xvfb::

    xvfb-run -s "-screen 0 1920x1200x24" python docs/explore_screenshots.py [STXM_FOLDER]

It opens the plugin's sample measurement, explores it with the Explore dock as a user
would (components, clusters, NMF, edge maps; a spectrum used as a reference; two
regions; a lasso on the scatter plot; an RGB composite) and shoots each view; then
explores the real STXM Fe L stack headless and draws its clusters against the
oxidized/reduced references (``images/explore-stxm.png``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "images"
STXM = Path(__file__).resolve().parents[2] / "shared" / "data" / "stxm-fe-l" / "71214078"


def settle(widget=None):
    from qtpy.QtWidgets import QApplication

    app, done = QApplication.instance(), []
    if widget is not None and widget.worker is not None:
        widget.worker.finished.connect(lambda: done.append(True))
        while not done:
            app.processEvents()
            time.sleep(0.01)
    for _ in range(40):
        app.processEvents()


def shoot(viewer, dock, name):
    settle()
    dock.raise_()
    settle()
    path = HERE / f"explore-{name}.png"
    viewer.screenshot(str(path), canvas_only=False)
    print(path, file=sys.stderr)


def screenshots():
    import napari

    from xafsmap.core.simulate.sample import bundled_reference_paths

    viewer = napari.Viewer(title="xafsmap")
    viewer.window.resize(1700, 1050)
    [stack_layer] = viewer.open_sample("xafsmap", "fe_sample")
    _, measurement = viewer.window.add_plugin_dock_widget("xafsmap", "1 Stack", tabify=True)
    _, references = viewer.window.add_plugin_dock_widget("xafsmap", "3 References", tabify=True)
    dock_widget, dock = viewer.window.add_plugin_dock_widget("xafsmap", "2b Explore", tabify=True)
    viewer.dims.set_point(0, 60)
    measurement.use_button.click()
    dock.controls["nmf"].setValue(4)
    dock.explore_button.click()
    settle(dock)
    stack_layer.visible = False
    shoot(viewer, dock_widget, "explore")

    viewer.layers["clusters"].visible = False
    viewer.layers["E50 (eV)"].visible = True
    viewer.layers.selection.active = viewer.layers["E50 (eV)"]
    dock.tabs.setCurrentIndex(1)
    dock.spectra_box.setCurrentText("clusters")
    dock.pick_box.setCurrentText("NMF 2")
    shoot(viewer, dock_widget, "spectra")
    dock.use_as_reference("NMF 2", name="NMF 2 (sample)", path=Path(tempfile.mkdtemp()) / "NMF 2 (sample).xdi")

    viewer.layers["E50 (eV)"].visible = False
    viewer.layers["clusters"].visible = True
    for name in ("Fe", "FeO", "Fe2O3"):
        references.add_path(str(bundled_reference_paths()[name]))
    rows, cols = np.nonzero(viewer.layers["clusters"].data == 1)
    r, c = int(np.median(rows)), int(np.median(cols))
    viewer.add_shapes([[[r - 6, c - 6], [r - 6, c + 6], [r + 6, c + 6], [r + 6, c - 6]],
                       [[10, 100], [10, 150], [40, 150], [40, 100]]], shape_type=["rectangle", "ellipse"],
                      name="my regions", features={"name": ["grain A", "corner"]}, edge_color="yellow",
                      face_color="transparent", edge_width=1.5)
    dock.tabs.setCurrentIndex(2)
    dock.rois.refresh_layers()
    dock.rois.layer_box.setCurrentText("my regions")
    dock.rois.measure()
    settle(dock)
    shoot(viewer, dock_widget, "regions")

    viewer.layers["my regions"].visible = False
    viewer.layers["clusters"].visible = False
    dock.tabs.setCurrentIndex(3)
    panel = dock.scatter
    panel.refresh()
    panel.draw("E50 (eV)", "white line energy (eV)")
    x = panel.x[np.isfinite(panel.x)]
    lo, hi = np.percentile(x, [2, 40])
    y = panel.y[np.isfinite(panel.y)]
    panel.select_polygon([(lo, y.min()), (hi, y.min()), (hi, y.max()), (lo, y.max())])
    panel.composite(["NMF 1", "NMF 2", "NMF 3"])
    viewer.layers["RGB composite"].visible = False
    shoot(viewer, dock_widget, "scatter")
    viewer.layers["RGB composite"].visible = True
    viewer.layers["scatter selection"].visible = False
    shoot(viewer, dock_widget, "rgb")
    viewer.close()


def stxm_figure(folder: Path = STXM):
    """Clusters of the real STXM Fe L stack and their mean spectra against the two references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xafsmap.core.explore import explore_stack
    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.mapping.legend import label_colors
    from xafsmap.core.io.references import read_reference

    stack = read_stack(folder / "71214078.hdr", i0=folder / "i0.xsp")
    result = explore_stack(stack, nmf=2)
    e = stack.energies
    ox, red = (np.interp(e, r.energies, r.mu) for r in (read_reference(folder / n) for n in ("oxidized.r",
                                                                                               "reduced.r")))
    window = (e >= 704) & (e <= 714)
    design = np.stack([ox[window], red[window], np.ones(window.sum())], 1)
    shares = []
    for spectrum in result.cluster_spectra:
        coef = np.linalg.lstsq(design, spectrum[window], rcond=None)[0]
        shares.append(coef[1] / (coef[0] + coef[1]))
    k = result.learned.clustering.k
    colors = label_colors(k) / 255.0
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    mean = np.nanmean(np.asarray(stack.data), axis=0)
    left.imshow(mean, cmap="gray")
    overlay = np.zeros((*result.clusters.shape, 4))
    overlay[result.clusters > 0, :3] = colors[result.clusters[result.clusters > 0]]
    overlay[result.clusters > 0, 3] = 0.9
    left.imshow(overlay, interpolation="nearest")
    left.set_title(f"{k} clusters ('auto': centres >= 4 noise sigmas apart) over the mean OD", fontsize=9)
    left.set_axis_off()
    shade = plt.get_cmap("coolwarm")
    for i in np.argsort(shares):
        if result.cluster_pixels[i] < 50:
            continue
        spectrum = result.cluster_spectra[i] / result.cluster_spectra[i][window].max()
        right.plot(e, spectrum, color=shade(np.clip(shares[i], 0, 1)), lw=1.2,
                   label=f"cluster {i + 1} ({result.cluster_pixels[i]} px): Fe(II) share {shares[i]:.2f}")
    for ref, style, label in ((ox, "k--", "oxidized.r, Fe(III)"), (red, "k:", "reduced.r, Fe(II)")):
        base = ref - np.median(ref[e < 705])
        right.plot(e, base / base[window].max(), style, lw=1.6, label=label)
    right.set_xlim(703, 716)
    right.set_xlabel("energy (eV)")
    right.set_ylabel("optical density / its L3 maximum")
    right.legend(fontsize=6, loc="upper left")
    right.set_title("cluster means (>= 50 px) coloured by their Fe(II) share\n(least squares by the two "
                    "references over 704-714 eV)", fontsize=9)
    path = HERE / "explore-stxm.png"
    fig.savefig(path, dpi=110)
    print(path, file=sys.stderr)


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    if (STXM / "71214078.hdr").is_file():
        stxm_figure(Path(sys.argv[1]) if len(sys.argv) > 1 else STXM)
    screenshots()
