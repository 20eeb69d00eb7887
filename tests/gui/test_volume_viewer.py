"""Volumes in napari: a volume opens as one lazy 4-D layer (energy and Z sliders) with its energies;
its maps open as 3-D labels and images that render with ``viewer.dims.ndisplay = 3``."""

from __future__ import annotations

import numpy as np
import pytest

from xafsmap.core.io.volume import write_volume
from xafsmap.core.job import run_map
from xafsmap.core.settings import ReferenceSpec, Settings
from xafsmap.core.simulate.sample import bundled_reference_paths
from xafsmap.core.simulate.volume import make_volume


@pytest.fixture(scope="module")
def volume_file(tmp_path_factory):
    v = make_volume((4, 24, 28), n_grains=10, rng=7)
    data = v.absorbance()
    return write_volume(tmp_path_factory.mktemp("vol") / "tomo.tif", data, v.energies), data, v


def test_a_volume_opens_as_one_lazy_4d_layer(make_napari_viewer, volume_file):
    path, data, v = volume_file
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="xafsmap")
    assert layer.data.shape == (141, 4, 24, 28) and layer.data.chunksize == (1, 1, 24, 28)
    np.testing.assert_array_equal(layer.metadata["energies"], v.energies)
    assert layer.metadata["xafsmap"] == "volume"
    assert viewer.dims.ndim == 4  # energy and Z sliders
    viewer.dims.set_point(0, v.energies[100])
    np.testing.assert_array_equal(np.asarray(layer.data[100, 2]), data[100, 2])


def test_volume_maps_open_in_3d(make_napari_viewer, volume_file, tmp_path):
    path, _, _ = volume_file
    paths = bundled_reference_paths()
    refs = tuple(ReferenceSpec(str(paths[name])) for name in ("Fe", "FeO", "Fe2O3"))
    run = run_map(Settings(stack=str(path), references=refs, n_per_class=60, n_trees=8), out=tmp_path / "maps")
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(run.out), plugin="xafsmap")
    labels = layers[0]
    assert labels.data.shape == (4, 24, 28) and labels.data.max() >= 1
    fractions = [layer for layer in layers if layer.name.startswith("fraction ")]
    assert [layer.data.shape for layer in fractions] == [(4, 24, 28)] * 3
    viewer.dims.ndisplay = 3
    shot = viewer.screenshot(canvas_only=True)
    assert viewer.dims.ndisplay == 3 and shot.ndim == 3
    assert len(np.unique(shot.reshape(-1, shot.shape[-1]), axis=0)) > 3  # classes drawn, not a blank canvas
