"""References 4 eV below the stack's energy scale, in a real viewer: warned, aligned, recorded."""

from __future__ import annotations

import re

import numpy as np

from _gui import wait_for

DOCKS = {"measurement": "1 Stack", "references": "3 References", "classify": "5 Map"}
SHIFT = 4.0


def offset_in(text: str) -> float:
    """The first offset '+4.01 ± 0.00 eV' in a text."""
    return float(re.search(r"([+-]\d+\.\d+) ± \d+\.\d+ eV", text).group(1))


def test_references_dock_aligns_and_classify_dock_warns(make_napari_viewer, qtbot, small_sample_file, tmp_path):
    from napari.utils.notifications import notification_manager

    from xafsmap.core.settings import read_recipe
    from xafsmap.core.simulate.sample import bundled_references

    for ref in bundled_references():  # the user's files, measured 4 eV low
        np.savetxt(tmp_path / f"{ref.name}.dat", np.c_[ref.energies - SHIFT, ref.mu], header="energy mu")
    viewer = make_napari_viewer()
    viewer.open(str(small_sample_file), plugin="xafsmap")
    docks = {key: viewer.window.add_plugin_dock_widget("xafsmap", name)[1] for key, name in DOCKS.items()}
    docks["measurement"].use_button.click()
    for name in ("Fe", "FeO", "Fe2O3"):
        docks["references"].add_path(str(tmp_path / f"{name}.dat"))
    classify, references = docks["classify"], docks["references"]
    for key, value in {"n_per_class": 60, "n_trees": 12}.items():
        classify.controls[key].setValue(value)

    # not aligned: the plot names the offset, training warns in the dock and as a notification
    references.plot_button.click()
    wait_for(qtbot, references)
    assert references.alignment.text().startswith("best common offset") and "not applied" in references.alignment.text()
    assert abs(offset_in(references.alignment.text()) - SHIFT) < 0.5
    seen = []
    notification_manager.notification_ready.connect(lambda n: seen.append(n.message))
    try:
        classify.train_button.click()
        wait_for(qtbot, classify)
    finally:
        notification_manager.notification_ready.disconnect()
    assert "shifted by" in classify.warnings.text() and abs(offset_in(classify.warnings.text()) - SHIFT) < 0.5
    assert any("--align-references" in message for message in seen)
    assert references.alignment.text().startswith("no common offset applied")

    # ticked: the plot and the model apply it, the warning goes, the recipe keeps the choice
    references.align_box.setChecked(True)
    assert classify.session.settings.align_references is True
    references.plot_button.click()
    wait_for(qtbot, references)
    assert "applied (surveyed pixels" in references.alignment.text()
    assert abs(offset_in(references.alignment.text()) - SHIFT) < 0.5
    classify.map_button.click()
    wait_for(qtbot, classify)
    alignment = classify.session.result.params["alignment"]
    assert abs(alignment["offset_eV"] - SHIFT) < 0.5
    assert np.allclose(classify.session.result.params["offsets"], SHIFT, atol=0.5)
    assert classify.warnings.text() == ""
    assert "applied (the trained model" in references.alignment.text()
    recipe = read_recipe(classify.export_recipe(tmp_path / "recipe.toml"))
    assert recipe.align_references is True
    references.align_box.setChecked(False)
    classify.load_recipe(tmp_path / "recipe.toml")
    assert references.align_box.isChecked()
