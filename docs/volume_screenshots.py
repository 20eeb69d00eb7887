"""Take the 3-D screenshot of docs/volumes.md: a synthetic volume mapped, its class volume in napari.

Run on a display or under Xvfb (``xvfb-run -s "-screen 0 1600x1200x24" python docs/volume_screenshots.py``).
Maps a 24 x 96 x 96 volume of ellipsoid grains with ``xafsmap map`` (the library call), opens
the maps folder through the plugin's reader, and renders the class labels in 3-D.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

HERE = Path(__file__).resolve().parent / "images"


def main() -> int:
    from xafsmap.core.io.volume import write_volume
    from xafsmap.core.job import run_map
    from xafsmap.core.settings import ReferenceSpec, Settings
    from xafsmap.core.simulate.sample import bundled_reference_paths
    from xafsmap.core.simulate.volume import make_volume

    folder = Path(tempfile.mkdtemp(prefix="xafsmap-volume-shot-"))
    volume = make_volume((24, 96, 96), radius=(5.0, 16.0), rng=11)
    path = write_volume(folder / "tomo.tif", volume.absorbance(), volume.energies)
    paths = bundled_reference_paths()
    refs = tuple(ReferenceSpec(str(paths[name])) for name in ("Fe", "FeO", "Fe2O3"))
    run = run_map(Settings(stack=str(path), references=refs), out=folder / "maps")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1200, 900)
    layers = viewer.open(str(run.out), plugin="xafsmap")
    for layer in layers[1:]:
        layer.visible = False
    labels = layers[0]
    labels.scale = (1.0, 1.0, 1.0)
    viewer.dims.ndisplay = 3
    viewer.camera.angles = (-20.0, 35.0, 140.0)
    viewer.camera.zoom = 6.0
    for _ in range(5):
        QApplication.processEvents()
    HERE.mkdir(exist_ok=True)
    viewer.screenshot(str(HERE / "volume-classes-3d.png"), canvas_only=True)
    opened = viewer.open(str(path), plugin="xafsmap")[0]
    labels.visible = False
    viewer.dims.ndisplay = 2
    viewer.dims.axis_labels = ("energy", "z", "y", "x")
    viewer.dims.set_point(0, 100.0)  # index 100: 7172 eV, above the edge
    viewer.dims.set_point(1, 12.0)
    viewer.reset_view()
    for _ in range(5):
        QApplication.processEvents()
    viewer.screenshot(str(HERE / "volume-open.png"), canvas_only=False)
    print(f"wrote {HERE / 'volume-classes-3d.png'} and volume-open.png; layer {opened.name} {opened.data.shape}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
