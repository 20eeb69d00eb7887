"""The Series dock in a real viewer (Xvfb): the session's model over other open stacks and a folder."""

from __future__ import annotations

import csv

import numpy as np

from _gui import wait_for


def test_series_dock_maps_layers_and_a_folder_with_the_session_model(make_napari_viewer, qtbot, tmp_path):
    from xafsmap.core.simulate.series import make_reduction_series, reference_files, write_reduction_series

    samples = make_reduction_series((40, 56), steps=3, rng=2)
    listing = write_reduction_series(tmp_path / "input", samples)
    viewer = make_napari_viewer()
    for i in (1, 2, 3):
        viewer.open(str(listing.parent / f"step_{i}.tif"), plugin="xafsmap")
    docks = {key: viewer.window.add_plugin_dock_widget("xafsmap", name)[1] for key, name in
             (("measurement", "1 Stack"), ("references", "3 References"), ("classify", "5 Map"),
              ("series", "8 Series"))}
    series = docks["series"]
    assert [series.layers.item(i).text() for i in range(series.layers.count())] == ["step_1", "step_2", "step_3"]
    assert "none yet" in series.model_label.text()

    docks["measurement"].use_layer("step_1")
    for path in reference_files():
        docks["references"].add_path(str(path))
    for key, value in {"n_per_class": 100, "n_trees": 12}.items():
        docks["classify"].controls[key].setValue(value)
    docks["classify"].train_button.click()
    wait_for(qtbot, docks["classify"])
    assert "session's trained model (12 classes" in series.model_label.text()

    # the ticked layers, mapped in memory with the session's model
    series.tick("step_2", "step_3")
    series.map_button.click()
    assert not series.map_button.isEnabled()
    wait_for(qtbot, series)
    assert series.map_button.isEnabled()
    for name in ("step_2 labels", "step_3 labels"):
        assert viewer.layers[name].data.shape == (40, 56)
    assert series.table.rowCount() == 2 and [row["name"] for row in series.rows] == ["step_2", "step_3"]
    assert series.rows[1]["fraction_Fe3O4"] > 0.95  # step 3 is magnetite
    assert len(series.plot.axes[0].lines) >= 3

    # a folder: the model saved first, then xafsmap series into an output folder
    model = series.save_model(tmp_path / "model.npz")
    assert model.is_file() and "model.npz" in series.model_label.text()
    series.map_folder(listing.parent, tmp_path / "out")
    wait_for(qtbot, series, timeout=120_000)
    with open(tmp_path / "out" / "series.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["name"] for row in table] == ["step_1", "step_2", "step_3"]
    assert series.table.rowCount() == 3 and (tmp_path / "out" / "series.png").is_file()
    # the folder's maps and the layers' maps come from the same model: equal labels
    import tifffile

    assert np.array_equal(tifffile.imread(tmp_path / "out" / "step_3" / "labels.tif"),
                          np.asarray(viewer.layers["step_3 labels"].data))
