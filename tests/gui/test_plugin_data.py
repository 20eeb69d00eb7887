"""The manifest, reader, writer and sample in a real napari viewer."""

import subprocess
import sys

import numpy as np
import pytest

from xafsmap._reader import get_reader


def test_manifest_validates_with_imports():
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", "--imports", "xafsmap"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_reader_gives_a_lazy_stack_with_energies(small_sample_file, small_sample):
    import dask.array as da

    reader = get_reader(str(small_sample_file))
    assert reader is not None
    [(data, meta, kind)] = reader(str(small_sample_file))
    assert kind == "image" and isinstance(data, da.Array)
    assert data.shape == small_sample.stack.shape
    np.testing.assert_allclose(meta["metadata"]["energies"], small_sample.energies)
    low, high = meta["contrast_limits"]
    assert low < high


@pytest.mark.parametrize("name, content", [("notes.txt", b"hello"), ("broken.tif", b"II*\x00garbage")])
def test_reader_declines_what_it_cannot_read(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert get_reader(str(path)) is None


def test_sample_opens_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("xafsmap", "fe_sample")
    assert layers[0].data.ndim == 3 and "energies" in layers[0].metadata


def test_labels_written_and_read_back_through_the_plugin(make_napari_viewer, tmp_path):
    from xafsmap._reader import labels_layer

    viewer = make_napari_viewer()
    labels = np.zeros((10, 12), np.uint16)
    labels[2:5, 3:9] = 1
    labels[6:9, 1:4] = 2
    data, meta, _ = labels_layer(labels, ["Fe", "FeO"], compositions=np.eye(2), references=["Fe", "FeO"])
    layer = viewer.add_labels(data, **meta)
    written = viewer.layers.save(str(tmp_path / "phases.tif"), selected=False, plugin="xafsmap") \
        if False else layer.save(str(tmp_path / "phases.tif"), plugin="xafsmap")
    assert sorted(p.split("/")[-1] for p in written) == ["phases.classes.csv", "phases.tif"]
    assert (tmp_path / "phases.classes.csv").read_text().splitlines()[:2] == ["label,name,color,Fe,FeO", "1,Fe,#f24949,1,0"]
    [reread] = viewer.open(str(tmp_path / "phases.tif"), plugin="xafsmap")
    np.testing.assert_array_equal(reread.data, labels)
    assert list(reread.features["class"]) == ["no sample", "Fe", "FeO"]



def test_saved_labels_keep_the_layer_colours_and_need_no_csv(make_napari_viewer, tmp_path):
    """The legend is inside the TIFF: names and the colours the layer showed come back without the CSV."""
    from napari.utils.colormaps import DirectLabelColormap

    from xafsmap._reader import labels_layer
    from xafsmap.core.mapping.legend import read_legend_csv

    viewer = make_napari_viewer()
    labels = np.zeros((6, 6), np.uint16)
    labels[1:3, 1:3], labels[3:5, 3:5] = 1, 2
    data, meta, _ = labels_layer(labels, ["Fe", "Fe₂O₃"], compositions=np.eye(2), references=["Fe", "Fe2O3"])
    layer = viewer.add_labels(data, **meta)
    layer.colormap = DirectLabelColormap(color_dict={None: (0, 0, 0, 0), 0: (0, 0, 0, 0), 1: (0.0, 0.0, 1.0, 1.0),
                                                     2: (1.0, 0.5, 0.0, 1.0)})
    layer.save(str(tmp_path / "phases.tif"), plugin="xafsmap")
    saved = read_legend_csv(tmp_path / "phases.classes.csv")
    np.testing.assert_array_equal(saved.colors, [[0, 0, 255], [255, 128, 0]])
    (tmp_path / "phases.classes.csv").unlink()
    [reread] = viewer.open(str(tmp_path / "phases.tif"), plugin="xafsmap")
    assert list(reread.features["class"]) == ["no sample", "Fe", "Fe₂O₃"]
    np.testing.assert_allclose(reread.colormap.map(np.array([1, 2]))[:, :3], [[0, 0, 1], [1, 128 / 255, 0]], atol=1e-6)
    np.testing.assert_array_equal(reread.features["Fe2O3"][1:], [0, 1])

def test_demo_viewer_shows_the_stack_and_every_map(tmp_path, small_sample_file, qtbot):
    """What `xafsmap demo` opens on a display: the stack and the maps of its run."""
    from xafsmap._view import view_maps
    from xafsmap.cli import main
    from xafsmap.core.simulate.sample import bundled_reference_paths

    paths = bundled_reference_paths()
    refs = [arg for name in ("Fe", "FeO", "Fe2O3") for arg in ("--reference", str(paths[name]))]
    out = tmp_path / "maps"
    assert main(["map", str(small_sample_file), *refs, "--out", str(out), "--spectra-per-class", "50",
                 "--trees", "5", "--quiet"]) == 0
    viewer = view_maps(small_sample_file, out, block=False)
    try:
        names = [layer.name for layer in viewer.layers]
        assert names[:2] == ["sample", "classes"]
        assert {"probability", "distance", "fraction Fe", "fraction FeO", "fraction Fe2O3"} <= set(names)
        assert viewer.layers["classes"].data.dtype == np.uint16
    finally:
        viewer.close()
