"""The Explore dock driven through its handlers in a real viewer (Xvfb): explore, use a spectrum as a
reference, regions, scatter with lasso, RGB."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _gui import wait_for


@pytest.fixture
def explored(make_napari_viewer, qtbot, small_sample_file):
    viewer = make_napari_viewer()
    viewer.open(str(small_sample_file), plugin="xafsmap")
    _, measurement = viewer.window.add_plugin_dock_widget("xafsmap", "1 Stack")
    _, references = viewer.window.add_plugin_dock_widget("xafsmap", "3 References")
    _, dock = viewer.window.add_plugin_dock_widget("xafsmap", "2b Explore")
    measurement.use_button.click()
    dock.controls["nmf"].setValue(4)
    dock.explore_button.click()
    assert not dock.explore_button.isEnabled()
    wait_for(qtbot, dock)
    assert dock.explore_button.isEnabled()
    return viewer, dock, references


def test_explore_puts_components_clusters_nmf_and_edge_maps_in_the_viewer(explored, small_sample):
    viewer, dock, _ = explored
    result = dock.result
    assert result.learned.components.n_significant == 4
    assert "4 significant components" in dock.status.text()
    clusters = viewer.layers["clusters"]
    assert clusters.data.shape == (48, 64) and clusters.data.dtype == np.uint16
    assert list(clusters.features["class"][:2]) == ["no sample", "cluster 1"]
    for name in ("PC 1", "PC 4", "NMF 1", "NMF 4", "E50 (eV)", "white line energy (eV)", "pre-edge centroid (eV)"):
        assert viewer.layers[name].data.shape == (48, 64)
    assert viewer.layers["E50 (eV)"].colorbar.visible
    scree, spectra = dock.scree.axes
    assert scree.get_ylabel() == "eigenvalue (noise units)" and len(spectra.lines) == 4
    # the pure grains of each phase fall in one cluster each
    sample = small_sample.mask & (result.mask == 1) & (small_sample.fractions.max(axis=0) == 1)
    truth = small_sample.fractions.argmax(axis=0)[sample]
    for phase in np.unique(truth):
        labels = clusters.data[sample][truth == phase]
        assert np.mean(labels == np.bincount(labels).argmax()) > 0.95


def test_use_as_reference_adds_a_ticked_reference_a_recipe_names(explored, tmp_path):
    from xafsmap.core.settings.recipe import read_recipe, write_recipe
    from xafsmap.core.io.references import read_reference

    viewer, dock, references = explored
    dock.tabs.setCurrentIndex(1)
    assert dock.pick_box.count() == dock.result.learned.clustering.k + 4
    dock.spectra_box.setCurrentText("NMF")
    assert len(dock.spectra_plot.axes[0].lines) == 4
    assert dock.edge_edit.text() == "Fe K"  # guessed from e0
    path = dock.use_as_reference("NMF 2", name="phase B", path=tmp_path / "phase B.xdi")
    entry = dock.session.entries[-1]
    assert (entry.name, entry.use, entry.spec) == ("phase B", True, str(path))
    assert references.table.rowCount() == len(dock.session.entries)
    np.testing.assert_allclose(read_reference(path).mu, dock.result.learned.unmixing.spectra[1])
    recipe = write_recipe(tmp_path / "recipe.toml", dock.session.recipe())
    assert [r.name for r in read_recipe(recipe).references] == ["phase B"]
    seen = []
    import napari.utils.notifications as notes

    notes.notification_manager.notification_ready.connect(lambda n: seen.append(str(n.message)))
    dock.use_as_reference("NMF 3", name="phase B", path=tmp_path / "again.xdi")
    assert any("already has a 'phase B'" in m for m in seen)
    assert not (tmp_path / "again.xdi").exists()


def test_regions_from_shapes_are_measured_fitted_saved_and_reloaded(explored, qtbot, tmp_path):
    from xafsmap.core.simulate.sample import bundled_reference_paths

    viewer, dock, references = explored
    for name in ("Fe", "FeO", "Fe2O3"):
        references.add_path(str(bundled_reference_paths()[name]))
    viewer.add_shapes([[[5, 5], [5, 20], [20, 20], [20, 5]], [[30, 40], [30, 60], [45, 60], [45, 40]]],
                      shape_type=["rectangle", "ellipse"], name="my regions", features={"name": ["left", "right"]})
    panel = dock.rois
    panel.layer_box.setCurrentText("my regions")
    panel.measure()
    wait_for(qtbot, dock)
    found = panel.found
    assert found.names == ["left", "right"] and found.reference_names == ("Fe", "FeO", "Fe2O3")
    assert 200 < found.pixels[0] <= 256 and 150 < found.pixels[1] < 300
    np.testing.assert_allclose(found.fractions.sum(axis=1), 1.0, atol=0.01)
    assert panel.table.rowCount() == 2 and panel.table.columnCount() == 6
    assert "region left" in dock.spectra()
    written = panel.save(tmp_path, element_edge="Fe K")
    assert {p.name for p in written} >= {"regions.json", "region_spectra.csv", "01_left.xdi"}
    assert json.loads((tmp_path / "regions.json").read_text())["shape"] == [48, 64]
    panel.load(tmp_path / "regions.json")
    assert len(viewer.layers["regions"].data) == 2
    panel.refresh_layers()
    panel.layer_box.setCurrentText("regions")
    panel.measure()
    wait_for(qtbot, dock)
    np.testing.assert_array_equal(panel.found.pixels, found.pixels)


def test_scatter_lasso_selects_pixels_into_labels_and_rgb(explored, qtbot):
    viewer, dock, _ = explored
    panel = dock.scatter
    assert "E50 (eV)" in panel.maps() and "PC 2" in panel.maps()
    panel.draw("E50 (eV)", "PC 2")
    assert panel.lasso is not None and panel.plot.axes[0].get_xlabel() == "E50 (eV)"
    x, y = panel.x, panel.y
    middle = np.nanmedian(x)
    box = [(np.nanmin(x) - 1, np.nanmin(y) - 1), (middle, np.nanmin(y) - 1), (middle, np.nanmax(y) + 1),
           (np.nanmin(x) - 1, np.nanmax(y) + 1)]
    chosen = panel.lasso.onselect(box)  # what a drawn lasso calls
    selection = viewer.layers["scatter selection"].data
    assert np.array_equal(selection == 1, chosen) and np.array_equal(chosen, np.isfinite(y) & (x < middle))
    panel.select_polygon([(middle, np.nanmin(y) - 1), (np.nanmax(x) + 1, np.nanmin(y) - 1),
                          (np.nanmax(x) + 1, np.nanmax(y) + 1), (middle, np.nanmax(y) + 1)])
    assert set(np.unique(viewer.layers["scatter selection"].data)) == {0, 1, 2}
    rgb = panel.composite(["NMF 1", "NMF 2", "NMF 3"])
    assert viewer.layers["RGB composite"].rgb and rgb.shape == (48, 64, 3)
    # the selection is a regions layer too
    dock.rois.refresh_layers()
    dock.rois.layer_box.setCurrentText("scatter selection")
    dock.rois.measure()
    wait_for(qtbot, dock)
    assert dock.rois.found.names == ["ROI 1", "ROI 2"]
