"""A volume (E, Z, Y, X) mapped from the docks in a real viewer (Xvfb): the Map dock's 3-D classes
equal ``xafsmap run`` of the recipe it exports, the class table counts voxels, Cancel stops a volume's
map, the Series dock maps an open volume with the session's model."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tifffile

from _gui import result_layer, wait_for
from xafsmap.core.io.volume import write_volume
from xafsmap.core.simulate.sample import bundled_reference_paths
from xafsmap.core.simulate.volume import make_volume

SHAPE = (12, 40, 40)  # Z, Y, X
#: Where the 3-D screenshot goes besides tmp_path (docs/images when the docs are refreshed).
SHOTS = os.environ.get("XAFSMAP_SCREENSHOTS")


@pytest.fixture(scope="module")
def volume_file(tmp_path_factory):
    v = make_volume(SHAPE, n_grains=10, rng=7)
    return write_volume(tmp_path_factory.mktemp("vol") / "tomo.tif", v.absorbance(), v.energies)


def open_docks(viewer, path, qtbot):
    """The volume opened by the reader, the docks, the volume used as the measurement and the references added."""
    [layer] = viewer.open(str(path), plugin="xafsmap")
    added = {key: viewer.window.add_plugin_dock_widget("xafsmap", name) for key, name in
             (("measurement", "1 Stack"), ("references", "3 References"), ("classify", "5 Map"),
              ("series", "8 Series"))}
    docks = {key: widget for key, (_, widget) in added.items()}
    docks["frames"] = {key: frame for key, (frame, _) in added.items()}
    measurement = docks["measurement"]
    assert layer.name in [measurement.layer_box.itemText(i) for i in range(measurement.layer_box.count())]
    measurement.layer_box.setCurrentText(layer.name)
    measurement.use_button.click()
    assert f"{SHAPE[0]} slices" in measurement.status.text()
    paths = bundled_reference_paths()
    for name in ("Fe", "FeO", "Fe2O3"):
        docks["references"].add_path(str(paths[name]))
    for key, value in {"n_per_class": 60, "n_trees": 8}.items():
        docks["classify"].controls[key].setValue(value)
    qtbot.wait(50)
    return layer, docks


def test_a_volume_maps_in_the_map_dock_as_the_command_line_maps_it(make_napari_viewer, qtbot, volume_file, tmp_path):
    from xafsmap.core.job import run_map
    from xafsmap.core.settings.recipe import read_recipe

    viewer = make_napari_viewer(show=True)
    layer, docks = open_docks(viewer, volume_file, qtbot)
    classify = docks["classify"]
    classify.map_button.click()
    assert not classify.map_button.isEnabled() and classify.cancel_button.isEnabled()
    wait_for(qtbot, classify, timeout=300_000)
    assert classify.map_button.isEnabled() and not classify.cancel_button.isEnabled()
    classes = result_layer(viewer, "classes")
    assert classes.ndim == 3 and classes.data.shape == SHAPE
    shown = np.asarray(classes.data[:])

    # the same settings headless: the recipe the docks export, run as `xafsmap run` runs it
    recipe = read_recipe(classify.export_recipe(tmp_path / "recipe.toml"))
    assert recipe.stack == str(volume_file)
    run = run_map(recipe, out=tmp_path / "maps")
    labels = tifffile.imread(run.out / "labels.tif")
    assert labels.shape == SHAPE and labels.max() >= 3
    np.testing.assert_array_equal(shown, labels)
    fractions = tifffile.imread(run.out / "fractions.tif")
    for i, ref in enumerate(("Fe", "FeO", "Fe2O3")):
        plane = result_layer(viewer, f"fraction {ref}")
        assert plane.data.shape == SHAPE
        np.testing.assert_array_equal(np.asarray(plane.data), fractions[i])
    assert result_layer(viewer, "distance").data.shape == SHAPE

    # the class table counts voxels: those of the command line's labels
    names = list(classify.session.result.classifier.classes.names)
    counts = np.bincount(labels.ravel(), minlength=len(names) + 1)[1:]
    assert [row[0] for row in classify.class_table.rows()] == names
    assert [int(row[2].replace(",", "")) for row in classify.class_table.rows()] == counts.tolist()
    assert run.class_counts == dict(zip(names, counts.tolist()))

    # Inspect reads the voxel under the mouse from the slice it is in, with its class
    frame, inspect = viewer.window.add_plugin_dock_widget("xafsmap", "6 Inspect")
    z = SHAPE[0] // 3
    row, col = (int(v) for v in np.argwhere(labels[z] > 0)[len(np.argwhere(labels[z] > 0)) // 2])
    inspect.inspect_position(layer.data_to_world((0, z, row, col)))
    qtbot.waitUntil(lambda: f"voxel ({z}, {row}, {col})" in inspect.info.text(), timeout=60_000)
    assert inspect.info.text().splitlines()[1].endswith(names[labels[z, row, col] - 1])
    np.testing.assert_allclose(inspect.plot.axes[0].lines[0].get_ydata(), np.asarray(layer.data[:, z, row, col]),
                               rtol=1e-5)
    viewer.window.remove_dock_widget(frame)

    # Save all maps writes the command line's files (3-D)
    classify.save_all(tmp_path / "saved")
    wait_for(qtbot, classify)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "saved" / "labels.tif"), labels)
    assert tifffile.imread(tmp_path / "saved" / "fractions.tif").shape == (3, *SHAPE)

    # in 3-D: the class volume drawn (the volume's image hidden), a screenshot at 1366 x 768
    for key in ("measurement", "references", "series"):  # the Map dock alone beside the canvas
        viewer.window.remove_dock_widget(docks["frames"][key])
    layer.visible = False
    viewer.layers.selection.clear()  # the Labels controls are taller than a 768-pixel window
    viewer.window.resize(1366, 768)
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    viewer.scene.camera.angles = (-20.0, 35.0, 140.0)
    qtbot.wait(300)
    shot = viewer.screenshot(path=str(tmp_path / "volume-dock-3d.png"), canvas_only=False)
    colours = np.unique(viewer.screenshot(canvas_only=True)[..., :3].reshape(-1, 3), axis=0)
    assert viewer.dims.ndisplay == 3 and len(colours) > 10, "the class volume is not drawn"
    assert shot.shape[:2] == (768, 1366), shot.shape
    if SHOTS:
        shutil.copy(tmp_path / "volume-dock-3d.png", os.path.join(SHOTS, "volume-dock-3d.png"))


def test_cancel_stops_a_volumes_map_and_the_series_dock_maps_an_open_volume(make_napari_viewer, qtbot,
                                                                            volume_file, tmp_path):
    viewer = make_napari_viewer()
    _, docks = open_docks(viewer, volume_file, qtbot)
    classify, series = docks["classify"], docks["series"]
    classify.train_button.click()
    wait_for(qtbot, classify, timeout=300_000)
    assert "trained" in classify.status.text()

    # Cancel at the first band: the worker stops, the buttons come back, nothing half-shown as a result
    def cancel_at_first_band(value):
        if isinstance(value[0], int):
            classify.cancel_button.click()

    classify.map_button.click()
    classify.worker.yielded.connect(cancel_at_first_band)
    with qtbot.waitSignal(classify.worker.aborted, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: classify.map_button.isEnabled(), timeout=10_000)
    assert "cancelled" in classify.status.text() and classify.session.result is None

    # the Series dock: the session's model over the open volume (voxel by voxel, 3-D labels)
    assert "tomo" in [series.layers.item(i).text() for i in range(series.layers.count())]
    series.tick("tomo")
    series.map_button.click()
    wait_for(qtbot, series, timeout=300_000)
    labels = viewer.layers["tomo labels"]
    assert labels.ndim == 3 and labels.data.shape == SHAPE
    [row] = series.rows
    assert row["name"] == "tomo" and row["pixels"] == int(np.prod(SHAPE))
    assert row["sample_pixels"] == int(np.count_nonzero(np.asarray(labels.data[:])))
    # the model applied to the volume it was trained on, surveyed again: the Map dock's classes
    classify.map_button.click()
    wait_for(qtbot, classify, timeout=300_000)
    np.testing.assert_array_equal(np.asarray(labels.data[:]), np.asarray(result_layer(viewer, "classes").data[:]))

    # a folder of volumes: the series job maps stacks only, and the dock says so before any work
    from napari.utils.notifications import notification_manager

    seen = []

    def note(notification):
        seen.append(notification.message)

    series.save_model(tmp_path / "model.npz")
    notification_manager.notification_ready.connect(note)
    try:
        series.map_folder(volume_file.parent, tmp_path / "series")
    finally:
        notification_manager.notification_ready.disconnect(note)
    assert any("holds volumes (tomo.tif)" in message for message in seen), seen
    assert not (tmp_path / "series").exists()


def test_a_recipe_of_a_binned_volume_reopens_it_and_maps_onto_its_voxels(make_napari_viewer, qtbot, volume_file,
                                                                          tmp_path):
    """A recipe naming a volume reopens it as a volume layer (Load recipe); binning acts within
    slices, so the 3-D classes of the binned grid sit over the volume's voxels (scale 1, 2, 2)."""
    from xafsmap.core.settings import ReferenceSpec, Settings
    from xafsmap.core.settings.recipe import write_recipe

    paths = bundled_reference_paths()
    refs = tuple(ReferenceSpec(str(paths[name])) for name in ("Fe", "FeO", "Fe2O3"))
    recipe = write_recipe(tmp_path / "binned.toml", Settings(stack=str(volume_file), references=refs, bin=2,
                                                             n_per_class=60, n_trees=8))
    viewer = make_napari_viewer()
    measurement = viewer.window.add_plugin_dock_widget("xafsmap", "1 Stack")[1]
    classify = viewer.window.add_plugin_dock_widget("xafsmap", "5 Map")[1]
    classify.load_recipe(recipe)
    wait_for(qtbot, measurement)
    assert viewer.layers["tomo"].ndim == 4 and classify.session.volume is not None
    assert f"{SHAPE[0]} slices" in measurement.status.text()
    classify.map_button.click()
    wait_for(qtbot, classify, timeout=300_000)
    classes = result_layer(viewer, "classes")
    assert classes.data.shape == (SHAPE[0], SHAPE[1] // 2, SHAPE[2] // 2)
    assert tuple(classes.scale) == (1.0, 2.0, 2.0) and tuple(classes.translate) == (0.0, 0.5, 0.5)
    counts = np.bincount(np.asarray(classes.data[:]).ravel())[1:]
    assert sum(int(row[2].replace(",", "")) for row in classify.class_table.rows()) == int(counts.sum()) > 0
