"""The six docks driven through their own buttons in a real viewer (Xvfb), 1 → 6."""

from __future__ import annotations

import numpy as np
import pytest

from _gui import wait_for

DOCKS = ("measurement", "prepare", "references", "classes", "classify", "inspect")
NAMES = ("1 Stack", "2 Prepare", "3 References", "4 Classes", "5 Map", "6 Inspect")
FAST = {"n_per_class": 60, "n_trees": 12}  # small forest so the whole file stays quick


def add_docks(viewer) -> dict:
    docks = {}
    for key, name in zip(DOCKS, NAMES):
        _, widget = viewer.window.add_plugin_dock_widget("xafsmap", name)
        docks[key] = widget
    return docks


def set_fast(classify):
    for key, value in FAST.items():
        classify.controls[key].setValue(value)


def test_docks_one_to_six_on_a_sample_file(make_napari_viewer, qtbot, small_sample_file, small_sample, tmp_path):
    from xafsmap.core.job import run_map
    from xafsmap.core.settings import read_recipe
    from xafsmap.core.simulate.sample import bundled_reference_paths

    # the window is shown only for the final screenshot: under Xvfb a shown canvas (software
    # OpenGL) slows the workers several-fold
    viewer = make_napari_viewer()
    [stack_layer] = viewer.open(str(small_sample_file), plugin="xafsmap")
    docks = add_docks(viewer)

    # 1 measurement
    docks["measurement"].use_button.click()
    assert "141 energies × 48 rows × 64 columns" in docks["measurement"].status.text()

    # 2 prepare: mask preview as a layer in the stack's grid
    docks["prepare"].preview_button.click()
    wait_for(qtbot, docks["prepare"])
    preview = viewer.layers[f"{stack_layer.name} mask preview"]
    assert preview.data.shape == (48, 64) and preview.data.dtype == np.uint8
    assert 0.5 < preview.data.mean() < 1.0  # holes are background, grains are sample

    # 3 references: three files, compared over the mean spectrum
    for name in ("Fe", "FeO", "Fe2O3"):
        docks["references"].path_edit.setText(str(bundled_reference_paths()[name]))
        docks["references"].add_path(docks["references"].path_edit.text())
    assert docks["references"].table.rowCount() == 3
    docks["references"].plot_button.click()
    wait_for(qtbot, docks["references"])
    assert len(docks["references"].plot.axes[0].lines) == 5  # mean, 3 references, e0

    # 4 classes: 3 pure + 3 pairs x 3 fractions; preview the training spectra
    assert docks["classes"].table.rowCount() == 12
    docks["classes"].preview_button.click()
    wait_for(qtbot, docks["classes"])
    assert "noise estimated" in docks["classes"].status.text()

    # 5 classify: train, then map
    set_fast(docks["classify"])
    docks["classify"].train_button.click()
    wait_for(qtbot, docks["classify"])
    assert float(docks["classify"].accuracy.text().split()[0]) > 0.7
    docks["classify"].map_button.click()
    assert not docks["classify"].map_button.isEnabled()
    wait_for(qtbot, docks["classify"])
    assert docks["classify"].map_button.isEnabled()
    labels = viewer.layers[f"{stack_layer.name} classes"]
    assert labels.data.shape == (48, 64) and labels.data.dtype == np.uint16
    assert list(labels.features["class"][:4]) == ["no sample", "Fe", "FeO", "Fe2O3"]
    assert labels.data.max() <= 12 and np.count_nonzero(labels.data) > 0.5 * labels.data.size
    for name in ("probability", "distance", "fraction Fe", "fraction FeO", "fraction Fe2O3"):
        layer = viewer.layers[f"{stack_layer.name} {name}"]
        assert layer.data.shape == (48, 64) and layer.data.dtype == np.float32
    # the dominant phase of pure grains comes out right
    truth = small_sample.fractions[:3].argmax(axis=0) + 1
    pure = (small_sample.fractions[:3].max(axis=0) > 0.99) & (labels.data > 0)
    assert np.mean(labels.data[pure] == truth[pure]) > 0.9

    # 6 inspect: a click on a sample pixel plots its spectra and names its class
    row, col = np.argwhere(labels.data > 0)[0]
    docks["inspect"].inspect_position((0, row, col))
    wait_for(qtbot, docks["inspect"])
    name = labels.features["class"][labels.data[row, col]]
    assert f"class {labels.data[row, col]}: {name}" in docks["inspect"].info.text()
    assert len(docks["inspect"].plot.axes[1].lines) >= 2

    # save all maps, export the recipe, reproduce it headless with identical labels
    docks["classify"].save_all(tmp_path / "maps")
    wait_for(qtbot, docks["classify"])
    assert (tmp_path / "maps" / "labels.tif").is_file() and (tmp_path / "maps" / "report.json").is_file()
    recipe_path = docks["classify"].export_recipe(tmp_path / "recipe.toml")
    recipe = read_recipe(recipe_path)
    assert recipe.stack == str(small_sample_file) and recipe.n_per_class == 60
    import tifffile

    out = run_map(recipe, out=tmp_path / "replayed").out
    np.testing.assert_array_equal(tifffile.imread(out / "labels.tif"), labels.data)

    # load restores the docks
    docks["classify"].controls["seed"].setValue(7)
    docks["prepare"].controls["bin"].setValue(2)
    docks["classify"].load_recipe(recipe_path)
    assert docks["classify"].controls["seed"].value() == 0 and docks["prepare"].controls["bin"].value() == 1
    assert docks["classify"].controls["n_trees"].value() == FAST["n_trees"]
    assert docks["references"].table.rowCount() == 3 and docks["classes"].table.rowCount() == 12

    # the rendered canvas shows the maps (not blank), with every dock
    viewer.window.show()
    qtbot.wait(50)
    assert all(widget.isVisible() for widget in docks.values())
    shot = viewer.screenshot(canvas_only=True)
    assert shot.ndim == 3 and shot[..., :3].std() > 5


def test_sample_references_come_from_the_layer_and_binning_keeps_the_grid(make_napari_viewer, qtbot, tmp_path):
    from xafsmap.core.job import run_map
    from xafsmap.core.settings import read_recipe

    viewer = make_napari_viewer()
    [stack_layer] = viewer.open_sample("xafsmap", "fe_sample")
    docks = add_docks(viewer)
    docks["measurement"].use_button.click()
    assert [entry.name for entry in docks["references"].session.entries] == ["Fe", "FeO", "Fe2O3"]
    docks["prepare"].controls["bin"].setValue(2)
    set_fast(docks["classify"])
    docks["classify"].map_button.click()  # trains first
    wait_for(qtbot, docks["classify"])
    labels = viewer.layers[f"{stack_layer.name} classes"]
    assert labels.data.shape == (60, 80)
    np.testing.assert_allclose(labels.scale, (2, 2))
    np.testing.assert_allclose(labels.translate, (0.5, 0.5))  # bin centres over the stack's pixels
    recipe = read_recipe(docks["classify"].export_recipe(tmp_path / "sample.toml"))
    assert recipe.sample == "fe_sample" and recipe.bin == 2
    out = run_map(recipe, out=tmp_path / "out").out
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(out / "labels.tif"), labels.data)


def test_errors_become_notifications_not_stuck_widgets(make_napari_viewer, qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    docks = add_docks(viewer)
    seen = []
    notification_manager.notification_ready.connect(lambda n: seen.append(n.message))
    try:
        docks["classify"].train_button.click()  # no measurement yet
        docks["references"].add_path(str(tmp_path / "nothing.xdi"))
        bad = tmp_path / "bad.toml"
        bad.write_text('xafsmap_recipe = 1\n[input]\nsample = "fe_sample"\n[[reference]]\nspec = "x"\n'
                       "[classifier]\nn_trees = 0\n")
        docks["classify"].load_recipe(bad)
    finally:
        notification_manager.notification_ready.disconnect()
    assert any("pick an image layer" in m for m in seen)
    assert any("nothing.xdi" in m for m in seen)
    assert any("n_trees = 0 is out of range" in m for m in seen)
    assert docks["classify"].train_button.isEnabled()


def test_real_stxm_stack_maps_into_two_oxidation_states(make_napari_viewer, qtbot, shared_data):
    folder = shared_data / "stxm-fe-l" / "71214078"
    if not (folder / "71214078.hdr").is_file():
        pytest.skip(f"STXM stack {folder} is absent")
    viewer = make_napari_viewer()
    [stack_layer] = viewer.open(str(folder / "71214078.hdr"), plugin="xafsmap")
    layer = stack_layer
    docks = add_docks(viewer)
    docks["measurement"].use_button.click()
    for name in ("oxidized.r", "reduced.r"):
        docks["references"].add_path(str(folder / name))
    set_fast(docks["classify"])
    docks["classify"].map_button.click()
    wait_for(qtbot, docks["classify"])
    labels = viewer.layers[f"{stack_layer.name} classes"]
    assert labels.data.shape == layer.data.shape[1:] == (125, 125)
    assert list(labels.features["class"][1:3]) == ["oxidized", "reduced"]
    counts = np.bincount(labels.data.ravel(), minlength=3)
    assert counts[1] > 0 and counts[2] > 0
