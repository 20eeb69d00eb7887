"""Energy calibration, drift, training noise and trust (unexplained, library search, parsimony) in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

from _gui import result_layer, wait_for

DOCKS = {"measurement": "1 Stack", "prepare": "2 Prepare", "references": "3 References",
         "classes": "4 Classes", "classify": "5 Map", "trust": "7 Trust"}


def add_docks(viewer, keys) -> dict:
    return {key: viewer.window.add_plugin_dock_widget("xafsmap", DOCKS[key])[1] for key in keys}


def add_references(docks, names=("Fe", "FeO", "Fe2O3")):
    from xafsmap.core.simulate.sample import bundled_reference_paths

    for name in names:
        docks["references"].add_path(str(bundled_reference_paths()[name]))


def test_calibration_drift_and_noise_in_the_docks_replay_headless(make_napari_viewer, qtbot, shifted, tmp_path):
    import tifffile

    from xafsmap.core.job import run_map
    from xafsmap.core.settings import read_recipe
    from xafsmap.core.simulate.sample import bundled_reference_paths

    viewer = make_napari_viewer()
    viewer.open(str(shifted["sample"]), plugin="xafsmap")
    docks = add_docks(viewer, ("measurement", "prepare", "references", "classes", "classify"))
    docks["measurement"].use_button.click()
    panel = docks["prepare"].calibration

    # compute the shift map from the foil: shown as layers over the stack, applied to the prepared stack
    panel.foil_edit.setText(str(shifted["foil"]))
    panel.reference_edit.setText(str(bundled_reference_paths()["Fe"]))
    panel.compute_button.click()
    assert not panel.compute_button.isEnabled()
    wait_for(qtbot, docks["prepare"])
    shift = result_layer(viewer, "shift (eV)").data
    assert shift.shape == (48, 64) and shift.dtype == np.float32
    inner = (slice(4, -4), slice(4, -4))
    assert np.sqrt(np.mean((shift - shifted["truth"])[inner] ** 2)) < 0.1
    residual = result_layer(viewer, "shift residual (eV)").data
    assert np.nanmax(np.abs(residual)) < 0.5 and result_layer(viewer, "shift uncertainty (eV)").data.shape == (48, 64)
    assert "energies kept" in panel.shift_label.text()
    assert docks["prepare"].session.prepared_stack().energies.size < 141

    # training noise: one level instead of the measured ones
    docks["classes"].set_noise(0.02)
    assert docks["prepare"].session.settings.noise == 0.02

    # map with the calibration, export, replay headless: identical labels
    add_references(docks)
    docks["classes"].mixtures_edit.setText("none")
    docks["classes"].build_table()
    for key, value in {"n_per_class": 40, "n_trees": 8}.items():
        docks["classify"].controls[key].setValue(value)
    docks["classify"].map_button.click()
    wait_for(qtbot, docks["classify"])
    labels = result_layer(viewer, "classes").data
    recipe = read_recipe(docks["classify"].export_recipe(tmp_path / "recipe.toml"))
    assert recipe.calibration == str(shifted["foil"]) and recipe.noise == 0.02 and not recipe.register
    out = run_map(recipe, out=tmp_path / "replayed").out
    np.testing.assert_array_equal(tifffile.imread(out / "labels.tif"), labels)

    # save the map: the recipe then names the file; loading it restores the calibration
    panel.save(tmp_path / "shift.tif")
    recipe = read_recipe(docks["classify"].export_recipe(tmp_path / "file.toml"))
    assert recipe.shift_map == str(tmp_path / "shift.tif") and recipe.calibration is None
    panel.clear()
    assert result_layer(viewer, "shift (eV)") is None and docks["prepare"].session.shift_map is None
    docks["classify"].load_recipe(tmp_path / "file.toml")
    np.testing.assert_allclose(result_layer(viewer, "shift (eV)").data, shift)
    assert docks["classes"].controls["noise"].value() == pytest.approx(0.02)

    # drift: measured, reported, applied when ticked, and recorded in the recipe
    panel.drift_button.click()
    wait_for(qtbot, docks["prepare"])
    assert "drift over 141 images: max" in panel.drift_label.text()
    assert docks["prepare"].session.drift.shape == (141, 2)
    panel.register_box.setChecked(True)
    assert docks["prepare"].session.settings.register
    assert read_recipe(docks["classify"].export_recipe(tmp_path / "drift.toml")).register


def test_cancel_discards_a_training(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample("xafsmap", "fe_sample")
    docks = add_docks(viewer, ("measurement", "references", "classify"))
    docks["measurement"].use_button.click()
    classify = docks["classify"]
    classify.train_button.click()
    assert classify.cancel_button.isEnabled()
    aborted = []
    classify.worker.aborted.connect(lambda: aborted.append(True))
    classify.cancel_button.click()
    wait_for(qtbot, classify)
    assert aborted and classify.session.model is None and classify.train_button.isEnabled()
    assert "cancelled" in classify.status.text()


def test_unexplained_search_add_and_compare(make_napari_viewer, qtbot, small_sample_file, small_sample):
    from xafsmap.core.simulate.sample import bundled_reference_paths

    viewer = make_napari_viewer()
    viewer.open(str(small_sample_file), plugin="xafsmap")
    docks = add_docks(viewer, ("measurement", "references"))
    docks["measurement"].use_button.click()
    add_references(docks)
    trust = docks["references"].open_trust()
    assert trust.sets_edit.text() == "ticked=Fe,FeO,Fe2O3; without Fe2O3=Fe,FeO"  # Compare works at once

    # the magnetite grain (not among the references) is found
    trust.find_button.click()
    wait_for(qtbot, trust)
    regions = result_layer(viewer, "unexplained")
    assert regions.data.shape == (48, 64) and regions.data.dtype == np.uint16
    assert result_layer(viewer, "z").data.dtype == np.float32
    # drawn as outlines in a colour no class has; hovering says region or "explained"
    assert regions.contour > 0 and list(regions.features["region"][:2]) == ["explained", "region 1"]
    from xafsmap.core.mapping.legend import label_colors

    outline = regions.colormap.map(1)[:3]
    assert all(np.abs(outline - label_colors(12)[i, :3] / 255).max() > 0.1 for i in range(1, 13))
    missing = small_sample.fractions[3] > 0.5
    assert (regions.data > 0)[missing].mean() > 0.9 and (regions.data > 0)[~missing].mean() < 0.01
    assert trust.region_box.count() >= 1 and "unexplained at a false-alarm rate" in trust.status.text()

    # the library (here the bundled references folder) proposes magnetite first; add it
    trust.library_edit.setText(str(bundled_reference_paths()["Fe"].parent))
    trust.search_button.click()
    wait_for(qtbot, trust)
    assert trust.table.rowCount() >= 1 and trust.table.item(0, 1).text() == "Fe3O4"
    assert len(trust.plot.axes[0].lines) >= 2
    trust.add_button.click()
    entries = trust.session.entries
    assert [e.name for e in entries if e.use] == ["Fe", "FeO", "Fe2O3", "Fe3O4"]
    assert trust.sets_edit.text() == "ticked=Fe,FeO,Fe2O3,Fe3O4; without Fe3O4=Fe,FeO,Fe2O3"
    assert docks["references"].table.rowCount() == 4

    # compare the three- and four-reference sets: a preferred map and a verdict
    trust.sets_edit.setText("three=Fe,FeO,Fe2O3; four=Fe,FeO,Fe2O3,Fe3O4")
    trust.compare_button.click()
    wait_for(qtbot, trust)
    preferred = result_layer(viewer, "preferred")
    assert preferred.data.shape == (48, 64) and set(np.unique(preferred.data)) <= {0, 1, 2}
    assert list(preferred.features["set"]) == ["no sample", "three", "four"]
    assert (preferred.data[missing & (preferred.data > 0)] == 2).mean() > 0.9
    assert trust.verdict.text().startswith("preferred: ")


@pytest.mark.parametrize("text, message", [
    ("a=Fe", "at least two sets"), ("a=Fe;b=Zn", r"names \['Zn'\], not in the References table"),
    ("a Fe; b=Fe", "must read NAME=REF"),
])
def test_bad_sets_are_named(text, message):
    from xafsmap._widgets.trust import parse_sets

    with pytest.raises(ValueError, match=message):
        parse_sets(text, ["Fe", "FeO"])
