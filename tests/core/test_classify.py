import numpy as np
import pytest

from xafsmap.core.model.classify import classify, train_classifier
from xafsmap.core.model.features import compute_features, feature_distance
from xafsmap.core.model.synthesize import make_classes


@pytest.fixture(scope="module")
def toy():
    """Three edge shapes on a 1-D grid and a classifier trained on them."""
    e = np.linspace(-20, 40, 120)
    refs = np.array([1 / (1 + np.exp(-(e - c) / w)) + a * np.exp(-((e - c - 4) ** 2) / 8)
                     for c, w, a in [(-3, 1.0, 0.1), (0, 1.5, 0.6), (3, 1.0, 0.3)]])
    classes = make_classes(["A", "B", "C"], mixtures="pairs:50")
    model = train_classifier(refs, e, classes, noise=0.02, n_per_class=300, n_trees=30, rng=0)
    return e, refs, classes, model


def test_features_are_the_energy_derivative():
    e = np.array([0.0, 1.0, 3.0, 6.0])
    spectra = np.stack([e**2, 2 * e], axis=1)
    d = compute_features(spectra, e, smooth=0)
    assert d.shape == (2, 4) and d.dtype == np.float32
    np.testing.assert_allclose(d[1], 2.0)
    np.testing.assert_allclose(d[0], np.gradient(e**2, e))


def test_features_keep_pixel_shape():
    x = np.random.default_rng(0).random((30, 4, 5)).astype(np.float32)
    assert compute_features(x, np.arange(30.0)).shape == (4, 5, 30)
    assert compute_features(x, np.arange(30.0), kind="spectrum", smooth=0)[2, 3].tolist() == x[:, 2, 3].tolist()


def test_distances_known_values():
    a = np.array([[1.0, 0.0, 0.0]])
    b = np.array([[0.0, 1.0, 0.0]])
    assert feature_distance(a, b)[0] == pytest.approx(np.sqrt(2 / 3))  # root mean square
    assert feature_distance(a, b, metric="manhattan")[0] == pytest.approx(2 / 3)  # mean absolute
    sd = np.array([[0.5, 2.0, 1.0]])  # in units of each feature's noise
    assert feature_distance(a, b, metric="manhattan", sd=sd)[0] == pytest.approx((2 + 0.5) / 3)
    assert feature_distance(a, b, metric="jensen-shannon")[0] == pytest.approx(1)
    assert feature_distance(a, a, metric="jensen-shannon")[0] == pytest.approx(0, abs=1e-6)


def test_classifier_recovers_noisy_classes_and_reports_itself(toy):
    e, refs, classes, model = toy
    assert model.accuracy > 0.9
    assert model.confusion.shape == (len(classes), len(classes))
    assert model.importances.shape == e.shape and model.importances.sum() == pytest.approx(1)
    rng = np.random.default_rng(5)
    truth = rng.integers(0, len(classes), 400)
    spectra = (classes.compositions[truth] @ refs).T + 0.02 * rng.standard_normal((e.size, 400))
    result = classify(model, spectra.reshape(e.size, 20, 20))
    assert result.labels.shape == (20, 20) and result.labels.dtype == np.uint16
    assert np.mean(result.labels.ravel() == truth + 1) > 0.9
    assert np.sqrt(np.nanmean((result.fractions.reshape(3, -1) - classes.compositions[truth].T) ** 2)) < 0.05
    assert (0 < result.probability).all() and (result.probability <= 1).all()


def test_distance_flags_a_phase_the_classifier_never_saw(toy):
    e, refs, classes, model = toy
    rng = np.random.default_rng(6)
    unknown = 1 / (1 + np.exp(-(e - 1) / 3)) + 0.8 * np.exp(-((e + 6) ** 2) / 4)
    known = (classes.compositions[rng.integers(0, len(classes), 200)] @ refs).T
    noisy = lambda x: x + 0.02 * rng.standard_normal(x.shape)  # noqa: E731
    d_known = classify(model, noisy(known)).distance
    d_unknown = classify(model, noisy(np.repeat(unknown[:, None], 200, axis=1))).distance
    assert np.median(d_unknown) > np.percentile(d_known, 95)


def test_nonfinite_pixels_are_unlabelled(toy):
    e, refs, _, model = toy
    spectra = np.repeat(refs[:1].T, 3, axis=1)
    spectra[5, 1] = np.inf
    result = classify(model, spectra)
    assert result.labels.tolist()[1] == 0 and result.labels[0] == 1
    assert np.isnan(result.distance[1]) and np.isnan(result.fractions[:, 1]).all()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: classify(m, np.zeros((120, 2)), metric="cosine"), "unknown metric 'cosine'"),
        (lambda m: compute_features(np.zeros((5, 2)), np.arange(4.0)), "5 energies but 4"),
        (lambda m: compute_features(np.zeros((4, 2)), np.arange(4.0), kind="fft"), "unknown feature kind"),
    ],
)
def test_bad_options(toy, call, match):
    with pytest.raises(ValueError, match=match):
        call(toy[3])
