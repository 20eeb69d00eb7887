"""One job, one settings schema: the docks show every setting as declared, and the same
settings mapped through ``xafsmap map``, ``xafsmap run``, the job API and the Classify
dock give identical maps and report parameters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from _gui import wait_for

from xafsmap.core.settings import SETTINGS, ReferenceSpec, Settings, write_recipe

DOCKS = ("measurement:MeasurementWidget", "prepare:PrepareWidget", "explore:ExploreWidget",
         "references:ReferencesWidget", "classes:ClassesWidget", "classify:ClassifyWidget",
         "inspect:InspectWidget", "trust:TrustWidget", "series:SeriesWidget")
#: Settings no dock shows as a control of its own, and where the docks take them from instead.
NOT_A_CONTROL = {
    "sample": "File > Open Sample",
    "roi": "a rectangle drawn in a shapes layer (Prepare)",
    "references": "the References table (ticked rows)",
    "class_names": "the Classes table", "compositions": "the Classes table",
    "library": "the Trust dock's library list", "sets": "the Trust dock's sets table",
    "stacks": "the Series dock's list of layers or folder", "series_list": "the Series dock's folder",
    "workers": "command line and recipes only (the docks map in the viewer's process)",
    "scheduler": "command line and recipes only (the docks map in the viewer's process)",
}
FAST = dict(n_per_class=60, n_trees=12, bin=2, seed=5, metric="manhattan", fit_range=(-25.0, 60.0))


def _docks(viewer) -> list:
    import importlib

    found = []
    for spec in DOCKS:
        module, name = spec.split(":")
        dock = getattr(importlib.import_module(f"xafsmap._widgets.{module}"), name)(viewer)
        viewer.window.add_dock_widget(dock, name=name)
        found.append(dock)
    return found


def test_the_docks_show_every_setting_with_its_declared_default_and_range(make_napari_viewer):
    from xafsmap._widgets._controls import SettingControl, spin_range

    viewer = make_napari_viewer()
    shown = {}
    for dock in _docks(viewer):
        for widget in dock.findChildren(SettingControl):
            shown.setdefault(widget.setting.name, widget)
    assert set(shown) | set(NOT_A_CONTROL) == set(SETTINGS), set(SETTINGS) - set(shown) - set(NOT_A_CONTROL)
    for name, widget in shown.items():
        item = SETTINGS[name]
        assert widget.value() == item.default, name
        assert widget.editor.toolTip() == item.help, name
        if item.kind in ("int", "float", "range"):
            low, high = spin_range(item)
            assert (widget.editor.minimum(), widget.editor.maximum()) == pytest.approx((low, high)), name
        if item.kind == "choice":
            assert [widget.editor.itemText(i) for i in range(widget.editor.count())] == list(item.choices), name


def _maps(folder):
    names = sorted(p.name for p in folder.glob("*.tif"))
    report = json.loads((folder / "report.json").read_text())
    return names, {name: tifffile.imread(folder / name) for name in names}, report


def test_the_same_settings_map_alike_from_options_recipe_api_and_dock(make_napari_viewer, qtbot, small_sample_file,
                                                                      tmp_path):
    from xafsmap.cli import main
    from xafsmap.core.job import run_map
    from xafsmap.core.simulate.sample import bundled_reference_paths

    paths = [str(bundled_reference_paths()[name]) for name in ("Fe", "FeO", "Fe2O3")]
    settings = Settings(stack=str(small_sample_file), references=tuple(map(ReferenceSpec, paths)), **FAST)
    recipe = write_recipe(tmp_path / "recipe.toml", settings)
    argv = ["map", str(small_sample_file), *(a for p in paths for a in ("--reference", p)), "--spectra-per-class",
            "60", "--trees", "12", "--bin", "2", "--seed", "5", "--metric", "manhattan", "--fit-range", "-25", "60"]
    assert main([*argv, "--out", str(tmp_path / "options"), "--quiet"]) == 0
    assert main(["run", str(recipe), "--out", str(tmp_path / "recipe"), "--quiet"]) == 0
    run_map(settings, out=tmp_path / "api")

    viewer = make_napari_viewer()
    viewer.open(str(small_sample_file), plugin="xafsmap")
    measurement, *_, classify, _, _, _ = _docks(viewer)
    measurement.use_button.click()
    classify.load_recipe(recipe)
    classify.map_button.click()
    wait_for(qtbot, classify)
    classify.save_all(tmp_path / "dock")
    wait_for(qtbot, classify)

    names, first, report = _maps(tmp_path / "options")
    assert "labels.tif" in names and "fractions.tif" in names
    for way in ("recipe", "api", "dock"):
        other_names, other, other_report = _maps(tmp_path / way)
        assert other_names == names, way
        for name in names:
            np.testing.assert_array_equal(other[name], first[name], err_msg=f"{way}: {name}")
        assert other_report["parameters"] == report["parameters"], way
        assert other_report["recipe"] == report["recipe"], way
