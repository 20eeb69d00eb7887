import numpy as np
import pytest

from xafsmap.core.model.synthesize import make_classes, parse_mixtures, synthesize_spectra

REFS = ["Fe", "FeO", "Fe2O3"]


def test_default_classes_are_pure_then_pairs_at_25_50_75():
    classes = make_classes(REFS)
    assert classes.names[:3] == ("Fe", "FeO", "Fe2O3")
    assert len(classes) == 3 + 3 * 3
    assert "FeO:Fe2O3 25:75" in classes.names
    np.testing.assert_allclose(classes.compositions.sum(axis=1), 1)
    assert classes.references == tuple(REFS)


def test_explicit_mixtures_accept_percent_and_fractions():
    compositions = parse_mixtures("Fe=50,FeO=50; FeO=0.25,Fe2O3=0.75", REFS)
    np.testing.assert_allclose(compositions, [[0.5, 0.5, 0], [0, 0.25, 0.75]])
    assert make_classes(REFS, mixtures="none").names == tuple(REFS)


def test_duplicate_mixture_of_a_pure_reference_is_dropped():
    classes = make_classes(REFS, mixtures="Fe=1")
    assert classes.names == tuple(REFS)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("Fe=50,Magnetite=50", "Magnetite.*not one of the references"),
        ("Fe50,FeO=50", "NAME=FRACTION"),
        ("Fe=x,FeO=50", "'x' in mixture .* is not a number"),
        ("Fe=-5,FeO=50", "negative"),
        ("Fe=0,FeO=0", "no positive fraction"),
        ("pairs:0", "strictly between 0 and 1"),
    ],
)
def test_bad_mixture_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_mixtures(spec, REFS)


def test_training_spectra_have_requested_noise_and_compositions():
    rng = np.random.default_rng(0)
    refs = np.cumsum(rng.random((3, 50)), axis=1)
    compositions = np.array([[1, 0, 0], [0.5, 0.5, 0]])
    x, y, f = synthesize_spectra(refs, compositions, noise=0.05, n_per_class=2000, spread=0, rng=1)
    assert x.dtype == np.float32 and x.shape == (4000, 50)
    residual = x - f @ refs
    assert residual.std() == pytest.approx(0.05, rel=0.02)
    np.testing.assert_array_equal(np.bincount(y), [2000, 2000])


def test_training_noise_follows_the_measured_distribution():
    refs = np.zeros((1, 400))
    levels = np.array([0.01, 0.1])
    x, _, _ = synthesize_spectra(refs, np.eye(1), noise=levels, n_per_class=1000, rng=2)
    per_spectrum = x.std(axis=1)
    near = np.minimum(np.abs(per_spectrum / 0.01 - 1), np.abs(per_spectrum / 0.1 - 1))
    assert near.max() < 0.2
    assert 0.4 < np.mean(per_spectrum > 0.05) < 0.6


def test_spread_moves_compositions_towards_other_classes_but_not_far():
    refs = np.eye(3)
    _, y, f = synthesize_spectra(refs, np.eye(3), noise=0.0, n_per_class=500, spread=0.1, rng=3)
    own = f[np.arange(y.size), y]
    assert own.min() >= 0.9 - 1e-12 and own.max() <= 1.0
    np.testing.assert_allclose(f.sum(axis=1), 1)


def test_seeded_training_set_is_reproducible():
    refs = np.random.default_rng(0).random((2, 10))
    a = synthesize_spectra(refs, np.eye(2), noise=0.02, n_per_class=5, rng=7)[0]
    b = synthesize_spectra(refs, np.eye(2), noise=0.02, n_per_class=5, rng=7)[0]
    np.testing.assert_array_equal(a, b)
