"""The fused band kernel against the numpy pipeline it replaces (the reference)."""

import dask.array as da
import numpy as np
import pytest

from xafsmap.core.model.features import compute_features
from xafsmap.core.model.forest import has_numba
from xafsmap.core.io.stack import Stack
from xafsmap.core.model.kernels import band_plan, reduce_band, reference_pairs
from xafsmap.core.spectra.lcf import spectrum_moments, weighted_moments
from xafsmap.core.spectra.mask import edge_jump
from xafsmap.core.spectra.normalize import normalize
from xafsmap.core.mapping.pipeline import _map_band_numpy, map_band
from xafsmap.core.model.training import train_model

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


def _plan(model, classifier=None, normalization=None):
    return band_plan(classifier or model.classifier, normalization or model.normalization,
                     model.survey.noise_model)


def _scale(model, band):
    return model.survey.noise_model.band_scale(0, band.shape[1], band.shape[2])


def reference_reduction(band, model):
    """What reduce_band returns, computed with the numpy functions."""
    classifier = model.classifier
    energies = classifier.energies
    flat = band.reshape(band.shape[0], -1)
    finite = np.all(np.isfinite(flat), axis=0)
    clean = np.where(finite, flat, 0.0).astype(np.float32)
    result = normalize(clean, energies, **model.normalization)
    start, stop = classifier.window
    features = compute_features(result.norm[start:stop], energies[start:stop], smooth=classifier.smooth)
    aty, yy = spectrum_moments(result.norm, classifier.references)
    variance = model.survey.noise_model.variance(clean, _scale(model, band).ravel())
    jump, jump_sigma = edge_jump(clean, variance, energies, model.survey.e0)
    with np.errstate(all="ignore"):
        normalized = variance / result.edge_step**2
        gram_w, atwy, ywy = weighted_moments(result.norm, classifier.references, 1.0 / normalized)
    return dict(finite=finite, edge_step=result.edge_step, features=features, aty=aty, yy=yy,
                edge_jump=jump, jump_sigma=jump_sigma, gram_w=gram_w, atwy=atwy, ywy=ywy,
                feature_sd=classifier.feature_sd_of(normalized))


def test_reduction_equals_numpy_normalization_features_and_moments(band, model):
    got = reduce_band(band, _plan(model), thick=4.0, scale=_scale(model, band))
    want = reference_reduction(band, model)
    finite, step = want["finite"], want["edge_step"]
    ok = finite & (step > 0.05)  # a step of ~0 divides rounding noise into anything
    assert np.array_equal(got["finite"].ravel(), finite)
    assert not got["finite"][3, 5] and not got["finite"][7, 9] and got["finite"][11, 13]
    assert abs(got["edge_step"][11, 13]) < 1e-5  # no edge: background, not an error
    assert np.allclose(got["edge_step"].ravel()[ok], step[ok], rtol=1e-5, atol=1e-6)
    assert np.allclose(got["edge_jump"].ravel()[finite], want["edge_jump"][finite], rtol=1e-4, atol=1e-6)
    assert np.allclose(got["jump_sigma"].ravel()[finite], want["jump_sigma"][finite], rtol=1e-4)
    features = want["features"]
    scale = np.abs(features[ok]).max()
    assert np.max(np.abs(got["features"][ok] - features[ok])) < 1e-5 * scale
    assert np.allclose(got["feature_sd"][ok], want["feature_sd"][ok], rtol=1e-3)
    assert np.allclose(got["aty"][:, ok], want["aty"][:, ok], rtol=1e-4, atol=1e-3)
    assert np.allclose(got["yy"][ok], want["yy"][ok], rtol=1e-4)
    rows, cols = np.triu_indices(model.classifier.references.shape[0])
    assert np.allclose(got["gram_w"][ok], want["gram_w"][ok][:, rows, cols], rtol=1e-4)
    assert np.allclose(got["atwy"][:, ok], want["atwy"][:, ok], rtol=1e-4, atol=1e-3)
    assert np.allclose(got["ywy"][ok], want["ywy"][ok], rtol=1e-4)
    slope_max = features[ok].max(axis=1)
    picked = features[ok][np.arange(ok.sum()), got["e0_index"].ravel()[ok]]
    assert np.allclose(picked, slope_max, rtol=1e-4, atol=1e-6)  # the steepest rise, up to ties


def test_thick_pixels_are_flagged(band, model):
    got = reduce_band(band, _plan(model), thick=float(np.nanmax(band[:, 0, 0])) - 1e-3, scale=_scale(model, band))
    assert got["thick"][0, 0] and not got["thick"][3, 5]


def test_fused_band_maps_equal_the_numpy_maps(band, model, small_sample):
    energies = small_sample.energies
    fused = map_band(band, energies, model=model)
    numpy = _map_band_numpy(band, energies, model=model, metric="euclidean", thick=4.0, scale=_scale(model, band))
    for name in ("mask", "flags"):
        assert np.array_equal(fused[name], numpy[name]), name
    sample = numpy["mask"] == 1
    assert np.mean(fused["labels"][sample] == numpy["labels"][sample]) >= 0.995  # float32 rounding at splits
    for name, tolerance in (("fractions", 1e-3), ("fraction_sigma", 1e-3), ("residual", 1e-4),
                            ("edge_step", 1e-5), ("distance", 1e-3)):
        a, b = fused[name], numpy[name]
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        same = fused["labels"] == numpy["labels"]
        assert np.nanmax(np.abs(a - b)[..., same]) < tolerance, name


@pytest.mark.parametrize("smooth", [0, 9])
def test_spectrum_features_use_their_own_operator(small_sample, model, smooth):
    from dataclasses import replace

    classifier = replace(model.classifier, features="spectrum", smooth=smooth)
    band = small_sample.stack[:, :4]
    got = reduce_band(band, _plan(model, classifier), thick=4.0, scale=_scale(model, band))
    norm = normalize(band.reshape(band.shape[0], -1), classifier.energies, **model.normalization).norm
    start, stop = classifier.window
    want = compute_features(norm[start:stop], classifier.energies[start:stop], kind="spectrum",
                            smooth=classifier.smooth)
    assert np.max(np.abs(got["features"] - want)) < 1e-5


def test_no_plan_without_a_shared_e0(model):
    assert _plan(model, normalization={**model.normalization, "e0": None}) is None


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "jensen-shannon"])
def test_distance_kernel_equals_feature_distance(metric):
    from xafsmap.core.model.features import feature_distance
    from xafsmap.core.model.kernels import distance_to_class

    rng = np.random.default_rng(5)
    x = rng.normal(0.02, 0.05, (500, 40)).astype(np.float32)
    x[3] = 0.0  # all clipped: uniform distribution for Jensen-Shannon
    sd = rng.uniform(0.01, 0.1, (500, 40)).astype(np.float32)
    centroids = rng.normal(0.02, 0.05, (6, 40)).astype(np.float32)
    best = rng.integers(0, 6, 500)
    want = feature_distance(x, centroids[best], metric=metric, sd=sd)
    got = distance_to_class(x, sd, centroids, best, metric=metric)
    assert np.allclose(got, want, rtol=2e-5, atol=2e-6)


def test_an_empty_band_is_background_not_a_crash(model, small_sample):
    # exact zeros everywhere: edge step 0, every division by zero (numba's Python error
    # model raised ZeroDivisionError here)
    zeros = np.zeros((small_sample.energies.size, 3, 7), np.float32)
    got = map_band(zeros, small_sample.energies, model=model)
    assert (got["mask"] == 0).all() and (got["labels"] == 0).all() and np.isnan(got["edge_step"]).all()


def _labelling_inputs(band, model):
    reduced = reduce_band(band, _plan(model), thick=4.0, scale=_scale(model, band))
    pick = (reduced["finite"] & (reduced["edge_step"] > 0.05)).ravel()
    moments = {name: reduced[name][..., pick] if name in ("aty", "atwy", "yy", "ywy") else reduced[name][pick]
               for name in ("aty", "yy", "gram_w", "atwy", "ywy")}
    return reduced["features"][pick], reduced["feature_sd"][pick], moments


@pytest.mark.parametrize("metric", ["euclidean", "jensen-shannon"])
def test_fused_labelling_equals_the_numpy_steps(band, model, metric):
    from xafsmap.core.model.classify import SUPPORT_PROBABILITY
    from xafsmap.core.model.features import feature_distance
    from xafsmap.core.model.forest import predict_proba
    from xafsmap.core.model.kernels import label_pixels
    from xafsmap.core.spectra.lcf import fit_weighted

    classifier = model.classifier
    x, sd, moments = _labelling_inputs(band, model)
    proba = predict_proba(classifier.forest, x)
    labels, probability, distance, fractions, sigma, residual, chi2 = label_pixels(
        classifier, x, sd, proba, moments, metric=metric, support=SUPPORT_PROBABILITY)
    best = np.argmax(proba, axis=1)
    present = classifier.classes.compositions > 0
    allowed = ((proba >= SUPPORT_PROBABILITY).astype(np.float32) @ present).T > 0
    allowed[:, proba.max(axis=1) < SUPPORT_PROBABILITY] = True
    k = classifier.references.shape[0]
    _, pair_of = reference_pairs(classifier.references)
    want = fit_weighted(moments["gram_w"][:, pair_of], moments["atwy"], moments["ywy"],
                        n_points=classifier.energies.size, allowed=allowed)
    assert np.array_equal(labels, best + 1)
    assert np.array_equal(probability, proba.max(axis=1).astype(np.float32))
    assert np.allclose(distance, feature_distance(x, classifier.centroids[best], metric=metric, sd=sd),
                       rtol=2e-5, atol=2e-6)
    assert np.max(np.abs(fractions - want.fractions)) < 1e-5
    assert np.allclose(sigma, want.sigma, rtol=1e-4, atol=1e-6)
    dof = classifier.energies.size - want.support.sum(axis=0) + 1
    assert np.allclose(chi2, want.chi2 / dof, rtol=1e-4)
    assert allowed.sum(axis=0).min() < k  # the restriction is exercised
    assert np.all(np.isfinite(residual))


def test_label_features_numpy_fallback_equals_the_fused_path(band, model, monkeypatch):
    import xafsmap.core.model.classify as classify_module

    x, sd, moments = _labelling_inputs(band, model)
    fused = classify_module.label_features(model.classifier, x, moments=moments, feature_sd=sd)
    monkeypatch.setattr(classify_module, "_fused", lambda k: False)  # as without numba
    plain = classify_module.label_features(model.classifier, x, moments=moments, feature_sd=sd)
    assert np.array_equal(fused.labels, plain.labels)
    for name in ("probability", "distance", "fractions", "fraction_sigma", "residual", "chi2"):
        assert np.allclose(getattr(fused, name), getattr(plain, name), rtol=1e-4, atol=1e-5), name
