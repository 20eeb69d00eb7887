"""The fused band kernel against the numpy pipeline it replaces (the reference)."""

import dask.array as da
import numpy as np
import pytest

from xafsmap.core.classify import compute_features
from xafsmap.core.forest import has_numba
from xafsmap.core.io import Stack
from xafsmap.core.kernels import band_plan, reduce_band
from xafsmap.core.lcf import spectrum_moments
from xafsmap.core.normalize import normalize
from xafsmap.core.pipeline import _map_band_numpy, map_band
from xafsmap.core.training import train_model

pytestmark = pytest.mark.skipif(not has_numba(), reason="the fused kernel needs numba")


@pytest.fixture(scope="module")
def model(small_sample):
    stack = Stack(da.from_array(small_sample.stack, chunks=(-1, 16, -1)), small_sample.energies, {})
    return train_model(stack, small_sample.references, n_per_class=300, n_trees=30, rng=2)


@pytest.fixture(scope="module")
def band(small_sample):
    band = small_sample.stack[:, :20].copy()
    band[:, 3, 5] = np.nan  # dead pixels: NaN and infinity at one energy
    band[40, 7, 9] = np.inf
    band[:, 11, 13] = 0.7  # flat: no edge, step ~0
    return band


def reference_reduction(band, model):
    """What reduce_band returns, computed with the numpy functions."""
    classifier = model.classifier
    flat = band.reshape(band.shape[0], -1)
    finite = np.all(np.isfinite(flat), axis=0)
    result = normalize(np.where(finite, flat, 0.0).astype(np.float32), classifier.energies, **model.normalization)
    start, stop = classifier.window
    features = compute_features(result.norm[start:stop], classifier.energies[start:stop], smooth=classifier.smooth)
    aty, yy = spectrum_moments(result.norm, classifier.references)
    return finite, result.edge_step, features, aty, yy


def test_reduction_equals_numpy_normalization_features_and_moments(band, model):
    plan = band_plan(model.classifier, model.normalization)
    got = reduce_band(band, plan, thick=4.0)
    finite, step, features, aty, yy = reference_reduction(band, model)
    ok = finite & (step > 0.05)  # a step of ~0 divides rounding noise into anything
    assert np.array_equal(got["finite"].ravel(), finite)
    assert not got["finite"][3, 5] and not got["finite"][7, 9] and got["finite"][11, 13]
    assert abs(got["edge_step"][11, 13]) < 1e-5  # no edge: background, not an error
    assert np.allclose(got["edge_step"].ravel()[ok], step[ok], rtol=1e-5, atol=1e-6)
    scale = np.abs(features[ok]).max()
    assert np.max(np.abs(got["features"][ok] - features[ok])) < 1e-5 * scale
    assert np.allclose(got["aty"][:, ok], aty[:, ok], rtol=1e-4, atol=1e-3)
    assert np.allclose(got["yy"][ok], yy[ok], rtol=1e-4)
    slope_max = features[ok].max(axis=1)
    picked = features[ok][np.arange(ok.sum()), got["e0_index"].ravel()[ok]]
    assert np.allclose(picked, slope_max, rtol=1e-4, atol=1e-6)  # the steepest rise, up to ties


def test_thick_pixels_are_flagged(band, model):
    plan = band_plan(model.classifier, model.normalization)
    got = reduce_band(band, plan, thick=float(np.nanmax(band[:, 0, 0])) - 1e-3)
    assert got["thick"][0, 0] and not got["thick"][3, 5]


def test_fused_band_maps_equal_the_numpy_maps(band, model, small_sample):
    energies = small_sample.energies
    fused = map_band(band, energies, model=model)
    numpy = _map_band_numpy(band, energies, model=model, metric="euclidean", thick=4.0)
    for name in ("mask", "flags"):
        assert np.array_equal(fused[name], numpy[name]), name
    sample = numpy["mask"] == 1
    assert np.mean(fused["labels"][sample] == numpy["labels"][sample]) >= 0.995  # float32 rounding at splits
    for name, tolerance in (("fractions", 1e-3), ("residual", 1e-4), ("edge_step", 1e-5), ("distance", 1e-3)):
        a, b = fused[name], numpy[name]
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        same = fused["labels"] == numpy["labels"]
        assert np.nanmax(np.abs(a - b)[..., same]) < tolerance, name


@pytest.mark.parametrize("smooth", [0, 9])
def test_spectrum_features_use_their_own_operator(small_sample, model, smooth):
    from dataclasses import replace

    classifier = replace(model.classifier, features="spectrum", smooth=smooth)
    plan = band_plan(classifier, model.normalization)
    band = small_sample.stack[:, :4]
    got = reduce_band(band, plan, thick=4.0)
    norm = normalize(band.reshape(band.shape[0], -1), classifier.energies, **model.normalization).norm
    start, stop = classifier.window
    want = compute_features(norm[start:stop], classifier.energies[start:stop], kind="spectrum",
                            smooth=classifier.smooth)
    assert np.max(np.abs(got["features"] - want)) < 1e-5


def test_no_plan_without_a_shared_e0(model):
    assert band_plan(model.classifier, {**model.normalization, "e0": None}) is None


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "jensen-shannon"])
def test_distance_kernel_equals_feature_distance(metric):
    from xafsmap.core.classify import feature_distance
    from xafsmap.core.kernels import distance_to_class

    rng = np.random.default_rng(5)
    x = rng.normal(0.02, 0.05, (500, 40)).astype(np.float32)
    x[3] = 0.0  # all clipped: uniform distribution for Jensen-Shannon
    centroids = rng.normal(0.02, 0.05, (6, 40)).astype(np.float32)
    best = rng.integers(0, 6, 500)
    want = feature_distance(x, centroids[best], metric=metric)
    got = distance_to_class(x, centroids, best, metric=metric)
    assert np.allclose(got, want, rtol=2e-5, atol=2e-6)


def test_an_empty_band_is_background_not_a_crash(model, small_sample):
    # exact zeros everywhere: edge step 0, every division by zero (numba's Python error
    # model raised ZeroDivisionError here)
    zeros = np.zeros((small_sample.energies.size, 3, 7), np.float32)
    got = map_band(zeros, small_sample.energies, model=model)
    assert (got["mask"] == 0).all() and (got["labels"] == 0).all() and np.isnan(got["edge_step"]).all()


@pytest.mark.parametrize("metric", ["euclidean", "jensen-shannon"])
def test_fused_labelling_equals_the_numpy_steps(band, model, metric):
    from xafsmap.core.classify import SUPPORT_PROBABILITY, feature_distance
    from xafsmap.core.forest import predict_proba
    from xafsmap.core.kernels import label_pixels
    from xafsmap.core.lcf import fractions_from_moments

    classifier = model.classifier
    reduced = reduce_band(band, band_plan(classifier, model.normalization), thick=4.0)
    pick = (reduced["finite"] & (reduced["edge_step"] > 0.05)).ravel()
    x, aty, yy = reduced["features"][pick], reduced["aty"][:, pick], reduced["yy"][pick]
    proba = predict_proba(classifier.forest, x)
    labels, probability, distance, fractions, residual = label_pixels(
        classifier, x, proba, aty, yy, metric=metric, support=SUPPORT_PROBABILITY)
    best = np.argmax(proba, axis=1)
    present = classifier.classes.compositions > 0
    allowed = ((proba >= SUPPORT_PROBABILITY).astype(np.float32) @ present).T > 0
    allowed[:, proba.max(axis=1) < SUPPORT_PROBABILITY] = True
    want_w, want_r = fractions_from_moments(aty, yy, classifier.references, allowed=allowed)
    assert np.array_equal(labels, best + 1)
    assert np.array_equal(probability, proba.max(axis=1).astype(np.float32))
    assert np.allclose(distance, feature_distance(x, classifier.centroids[best], metric=metric), rtol=2e-5,
                       atol=2e-6)
    assert np.max(np.abs(fractions - want_w)) < 1e-5
    assert np.allclose(residual, want_r, rtol=1e-4, atol=1e-6)
    assert allowed.sum(axis=0).min() < classifier.references.shape[0]  # the restriction is exercised


def test_label_features_numpy_fallback_equals_the_fused_path(band, model, monkeypatch):
    import xafsmap.core.classify as classify_module

    classifier = model.classifier
    reduced = reduce_band(band, band_plan(classifier, model.normalization), thick=4.0)
    pick = (reduced["finite"] & (reduced["edge_step"] > 0.05)).ravel()
    args = (classifier, reduced["features"][pick])
    moments = (reduced["aty"][:, pick], reduced["yy"][pick])
    fused = classify_module.label_features(*args, moments=moments)
    monkeypatch.setattr(classify_module, "_fused", lambda k: False)  # as without numba
    plain = classify_module.label_features(*args, moments=moments)
    assert np.array_equal(fused.labels, plain.labels)
    for name in ("probability", "distance", "fractions", "residual"):
        assert np.allclose(getattr(fused, name), getattr(plain, name), rtol=1e-4, atol=1e-5), name
