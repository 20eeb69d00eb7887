"""Exploration's machinery: the fused and numpy band paths, dask, ROIs, lasso, use-as-reference, files, bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from xafsmap.core.explore import (
    Roi,
    explore_band,
    explore_stack,
    find_clusters,
    find_components,
    histogram_2d,
    learn,
    points_in_polygon,
    read_rois,
    rgb_composite,
    roi_mask,
    roi_spectra,
    rois_from_labels,
    sample_pixels,
    save_reference,
    select_by_values,
    spectrum_reference,
    unmix,
    write_explore_files,
    write_rois,
)
from xafsmap.core.io.stack import Stack
from xafsmap.core.simulate.sample import make_sample


@pytest.fixture(scope="module")
def sample():
    return make_sample((60, 80), n_grains=16, rng=2)


@pytest.fixture(scope="module")
def explored(sample):
    return explore_stack(Stack(sample.stack, sample.energies, {}), nmf=4)


def test_fused_band_kernel_equals_the_numpy_path(sample):
    from xafsmap.core.model.forest import has_numba

    if not has_numba():
        pytest.skip("numba is not installed: only the numpy path exists")
    learned = learn(sample.stack, sample.energies, nmf=3)
    assert learned.plan is not None
    band = np.ascontiguousarray(sample.stack[:, 10:30])
    fused = explore_band(band, learned, origin=10)
    plain = explore_band(band, replace(learned, plan=None), origin=10)
    assert np.array_equal(fused["mask"], plain["mask"])
    sample_px = fused["mask"] == 1
    np.testing.assert_allclose(fused["scores"][:, sample_px], plain["scores"][:, sample_px], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(fused["nmf"][:, sample_px], plain["nmf"][:, sample_px], atol=1e-4)
    assert np.mean(fused["clusters"] == plain["clusters"]) > 0.999
    for name, value in fused["edges"].items():  # eV to 0.02, heights to 0.002 (float32 sums in another order)
        tolerance = 0.02 if name.endswith(("energy", "e50", "centroid")) else 2e-3
        np.testing.assert_allclose(value[sample_px], plain["edges"][name][sample_px], atol=tolerance, err_msg=name)


def test_dask_stack_explores_like_numpy(sample, explored):
    import dask.array as da

    lazy = Stack(da.from_array(sample.stack, chunks=(-1, 7, -1)), sample.energies, {})
    result = explore_stack(lazy, nmf=4, band_bytes=141 * 80 * 4 * 7)
    assert np.array_equal(result.clusters, explored.clusters)
    np.testing.assert_allclose(result.scores, explored.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.nmf, explored.nmf, atol=1e-5)
    np.testing.assert_allclose(result.cluster_spectra, explored.cluster_spectra, atol=1e-6)


def test_result_maps_and_cluster_statistics(sample, explored):
    assert explored.scores.shape == (explored.learned.components.n, 60, 80)
    assert explored.clusters.dtype == np.uint16 and explored.mask.dtype == np.uint8
    sample_px = explored.mask == 1
    assert np.all(explored.clusters[sample_px] > 0) and np.all(explored.clusters[~sample_px] == 0)
    assert np.all(np.isnan(explored.scores[:, ~sample_px]))
    k = explored.learned.clustering.k
    assert explored.cluster_pixels.tolist() == np.bincount(explored.clusters.ravel(), minlength=k + 1)[1:].tolist()
    # the band pass's mean spectrum of a cluster is the mean of its pixels' normalized spectra
    from xafsmap.core.spectra.normalize import normalize

    inside = explored.clusters == 1
    direct = normalize(sample.stack[:, inside], sample.energies, **explored.learned.sample.params).norm
    np.testing.assert_allclose(explored.cluster_spectra[0], direct.mean(axis=1), atol=1e-4)
    np.testing.assert_allclose(explored.cluster_spread[0], direct.std(axis=1), atol=1e-3)
    assert explored.mask[sample.dead].tolist() == [2] * int(sample.dead.sum())


def test_components_reconstruct_the_spectra_to_the_noise(sample, explored):
    found = sample_pixels(sample.stack, sample.energies)
    comps = explored.learned.components
    from xafsmap.core.explore.components import background_shapes

    shapes = background_shapes(found.energies, found.params)
    scores = found.spectra.T @ comps.projector
    residual = found.spectra.T - scores @ comps.spectra
    # what is left is background shapes and noise
    coef = np.linalg.lstsq(shapes, residual.T, rcond=None)[0]
    left = residual - (shapes @ coef).T
    assert np.median(np.mean(left**2 / found.variance.T, axis=1)) < 1.1


def test_rois_measure_pure_grains_and_fit_them(sample, explored):
    dominant = sample.fractions.argmax(axis=0) + 1
    pure = (sample.fractions.max(axis=0) == 1) & sample.mask & (dominant <= 3)
    labels = np.where(pure, dominant, 0)
    names = {1: "Fe grains", 2: "FeO grains", 3: "Fe2O3 grains"}
    rois = rois_from_labels(labels, names)
    found = roi_spectra(sample.stack, sample.energies, rois, normalization=explored.learned.sample.params,
                        references=sample.references)
    finite = pure & ~sample.dead
    assert found.pixels.tolist() == [int(np.sum(finite & (labels == v))) for v in (1, 2, 3)]
    assert found.reference_names == ("Fe", "FeO", "Fe2O3")
    np.testing.assert_allclose(found.fractions, np.eye(3), atol=0.05)
    assert np.all(found.residual < 0.02)


def test_roi_geometry_round_trips_and_reloads_onto_another_stack(tmp_path, sample, explored):
    polygon = Roi("square", polygon=np.array([[10.0, 10.0], [10.0, 30.0], [30.0, 30.0], [30.0, 10.0]]))
    runs = rois_from_labels(np.pad(np.ones((3, 4), int), ((5, 52), (7, 69))), {1: "block"})[0]
    path = write_rois(tmp_path / "rois.json", [polygon, runs], shape=(60, 80))
    back, shape = read_rois(path)
    assert shape == (60, 80) and [r.name for r in back] == ["square", "block"]
    mask = roi_mask(back[0], shape)
    expected = np.zeros((60, 80), bool)
    expected[11:30, 11:30] = True  # pixel centres strictly inside (edges may go either way)
    assert np.array_equal(mask[11:30, 11:30], expected[11:30, 11:30]) and mask.sum() <= 21 * 21
    assert roi_mask(back[1], shape).sum() == 12
    other = make_sample((60, 80), n_grains=16, rng=5)
    found = roi_spectra(other.stack, other.energies, back, normalization=explored.learned.sample.params)
    assert found.pixels[1] == 12 and found.spectra.shape == (2, other.energies.size)


def test_polygon_masks_of_large_images_are_exact_at_pixel_centres():
    triangle = np.array([[0.0, 0.0], [0.0, 999.0], [999.0, 0.0]])
    mask = roi_mask(Roi("t", polygon=triangle), (1000, 1000))
    rr, cc = np.mgrid[0:1000, 0:1000]
    strictly = rr + cc < 999
    assert np.array_equal(mask[strictly], np.ones(strictly.sum(), bool))
    assert not mask[rr + cc > 999].any()


def test_scatter_histogram_and_lasso_select_the_right_pixels(explored):
    x, y = explored.edges["e50"], explored.scores[1]
    counts, xe, ye = histogram_2d(x, y, bins=32, limits=((np.nanmin(x), np.nanmax(x)), (np.nanmin(y), np.nanmax(y))))
    assert counts.sum() == np.count_nonzero(np.isfinite(x) & np.isfinite(y))
    lo = np.nanmedian(y)
    box = [[xe[0] - 1, lo], [xe[-1] + 1, lo], [xe[-1] + 1, ye[-1] + 1], [xe[0] - 1, ye[-1] + 1]]
    chosen = select_by_values(x, y, box)
    assert np.array_equal(chosen, np.isfinite(x) & (y > lo))
    rgb = rgb_composite(*explored.nmf[:3], mask=explored.mask == 1)
    assert rgb.shape == (60, 80, 3) and rgb.dtype == np.uint8 and not rgb[explored.mask != 1].any()


def test_a_cluster_or_nmf_spectrum_becomes_a_reference_the_mapping_accepts(tmp_path, sample, explored):
    from xafsmap.core.mapping.pipeline import map_stack
    from xafsmap.core.io.references import read_reference

    nmf = explored.learned.unmixing
    refs = [spectrum_reference(f"NMF {i + 1}", sample.energies, h, source="test") for i, h in enumerate(nmf.spectra)]
    saved = [read_reference(save_reference(tmp_path / f"{ref.name}.xdi", ref, element="Fe", edge="K"))
             for i, ref in enumerate(refs)]
    assert [r.name for r in saved] == ["NMF 1", "NMF 2", "NMF 3", "NMF 4"]
    np.testing.assert_allclose(saved[0].mu, refs[0].mu)
    result = map_stack(Stack(sample.stack, sample.energies, {}), saved, mixtures="none", n_per_class=60, n_trees=12,
                       rng=0)
    assert result.fractions.shape == (4, 60, 80)
    # the NMF abundances and the mapping's fractions agree on the pure pixels
    inside = (result.mask == 1) & (sample.fractions.max(axis=0) == 1)
    agree = np.mean(np.argmax(result.fractions[:, inside], axis=0) == np.argmax(explored.nmf[:, inside], axis=0))
    assert agree > 0.95


def test_write_explore_files(tmp_path, explored):
    written = write_explore_files(explored, tmp_path, extra={"command": ["explore"]})
    names = sorted(p.name for p in written)
    assert names == sorted(["components.tif", "component_spectra.csv", "clusters.tif", "cluster_spectra.csv",
                            "cluster_spread.csv", "nmf_maps.tif", "nmf_spectra.csv", "e50.tif", "whiteline.tif",
                            "preedge.tif", "mask.tif", "explore.json"])
    report = json.loads((tmp_path / "explore.json").read_text())
    assert report["n_components"] == 4 and report["clusters"]["k"] == explored.learned.clustering.k
    assert report["components"]["eigenvalues"][3] > report["components"]["noise_floor"]
    assert report["nmf"]["converged"] is True and report["command"] == ["explore"]
    header = (tmp_path / "nmf_spectra.csv").read_text().splitlines()[0]
    assert header == "energy,nmf_1,nmf_2,nmf_3,nmf_4"
    import tifffile

    assert tifffile.imread(tmp_path / "clusters.tif").dtype == np.uint16
    assert tifffile.imread(tmp_path / "whiteline.tif").shape == (2, 60, 80)


@pytest.mark.parametrize("call, message", [
    (lambda s, c: find_components(s, n=200), "components asked for; give 1 to"),
    (lambda s, c: find_clusters(c, k=40), "40 clusters asked for"),
    (lambda s, c: find_clusters(c, method="ward"), "unknown clustering method 'ward'"),
    (lambda s, c: unmix(s, c, 9), "9 NMF components asked for; give 1 to 8"),
    (lambda s, c: Roi("r"), "needs either a polygon or pixel runs"),
    (lambda s, c: Roi(" ", runs=np.zeros((1, 3))), "a region needs a name"),
    (lambda s, c: points_in_polygon([[0, 0]], [[0, 0], [1, 1]]), "at least 3 vertices"),
    (lambda s, c: histogram_2d(np.zeros((2, 2)), np.zeros((2, 3))), "differ in shape"),
    (lambda s, c: spectrum_reference("", [1.0], [1.0], source="x"), "needs a name"),
    (lambda s, c: spectrum_reference("a", np.arange(5.0), np.ones(5), source="x"), "5 finite points; need at least 8"),
    (lambda s, c: roi_spectra(np.zeros((141, 4, 4), np.float32), s.energies, [Roi("far", runs=np.array([[9, 0, 2]]))],
                              normalization=s.params), r"region\(s\) \['far'\] hold no pixel"),
])
def test_bad_input_says_what_is_wrong(call, message, sample):
    found = sample_pixels(sample.stack, sample.energies)
    with pytest.raises(ValueError, match=message):
        call(found, find_components(found))


def test_bad_stack_input(tmp_path, sample):
    stack = Stack(sample.stack, sample.energies, {})
    with pytest.raises(ValueError, match=r"shift map is \(3, 3\) pixels"):
        explore_stack(stack, shift=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="stack has 141 energies but 140"):
        explore_stack(Stack(sample.stack, sample.energies[:-1], {}))
    flat = np.full((141, 20, 20), 0.3, np.float32) + np.random.default_rng(0).normal(0, 0.01, (141, 20, 20)).astype(
        np.float32)
    with pytest.raises(ValueError, match="edge"):
        explore_stack(Stack(flat, sample.energies, {}))
    (tmp_path / "bad.json").write_text('{"rois": []}')
    with pytest.raises(ValueError, match="is not an xafsmap regions file"):
        read_rois(tmp_path / "bad.json")
