"""The compiled forest gives scikit-learn's probabilities, on real-reference spectra."""

from __future__ import annotations

import numpy as np
import pytest

from xafsmap.core.model.forest import CompiledForest, compile_forest, has_numba, predict_proba

needs_numba = pytest.mark.skipif(not has_numba(), reason="numba is not installed (the fast path is off)")


@pytest.fixture(scope="module")
def spectra_forest():
    """A 12-class forest on derivative features of noisy mixtures of real Fe references."""
    from xafsmap.core.model.classify import train_classifier
    from xafsmap.core.spectra.normalize import normalize
    from xafsmap.core.model.standards import resample_reference
    from xafsmap.core.simulate.sample import bundled_references, sample_energies
    from xafsmap.core.model.synthesize import make_classes, synthesize_spectra

    energies = sample_energies()
    refs = bundled_references()
    spectra = np.array([resample_reference(r, energies, mu=normalize(r.mu, r.energies).norm) for r in refs])
    classes = make_classes([r.name for r in refs], mixtures="pairs")
    classifier = train_classifier(spectra, energies, classes, noise=0.03, n_per_class=150, n_trees=30,
                                  window=(8, 110), rng=1)
    test, labels, _ = synthesize_spectra(spectra, classes.compositions, noise=0.03, n_per_class=300, rng=2)
    return classifier.forest, classifier.features_of(test.T), labels


@needs_numba
def test_probabilities_equal_scikit_learn(spectra_forest):
    forest, x, labels = spectra_forest
    expected = forest.predict_proba(x)
    got = predict_proba(forest, x)
    assert got.shape == expected.shape == (x.shape[0], 12)
    assert np.max(np.abs(got - expected)) < 1e-6
    assert np.array_equal(np.argmax(got, axis=1), np.argmax(expected, axis=1))
    # a sanity check that the test set is not trivial: the forest makes mistakes
    assert 0.5 < np.mean(np.argmax(got, axis=1) == labels) < 1.0


@needs_numba
@pytest.mark.parametrize("block_rows", [1, 7, 64, 5000])
@pytest.mark.parametrize("parallel", [True, False])
def test_block_size_and_ragged_ends_do_not_change_results(spectra_forest, block_rows, parallel):
    forest, x, _ = spectra_forest
    x = x[:333]
    got = predict_proba(forest, x, block_rows=block_rows, parallel=parallel)
    assert np.max(np.abs(got - forest.predict_proba(x))) < 1e-6


@needs_numba
def test_thresholds_decide_as_scikit_learn_at_the_float32_boundary():
    from sklearn.ensemble import RandomForestClassifier

    # values one float32 step either side of each split: any rounding mistake shows
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 0.3)
    forest = RandomForestClassifier(20, random_state=0).fit(x, y)
    compiled = compile_forest(forest)
    inner = ~compiled.is_leaf
    assert np.array_equal(np.isfinite(compiled.thresholds), inner)
    probes = []
    for feature, t in zip(compiled.feature[inner], forest_thresholds(forest)):
        for value in (np.float32(t), np.nextafter(np.float32(t), np.float32(np.inf)),
                      np.nextafter(np.float32(t), np.float32(-np.inf))):
            row = x[rng.integers(len(x))].copy()
            row[feature] = value
            probes.append(row)
    probes = np.array(probes)
    assert np.max(np.abs(predict_proba(compiled, probes) - forest.predict_proba(probes))) < 1e-12


@needs_numba
def test_impure_leaves_average_their_class_fractions():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=0.8, size=600) > 0).astype(int) + (x[:, 1] > 0.5)
    forest = RandomForestClassifier(15, min_samples_leaf=9, random_state=0).fit(x, y)
    compiled = compile_forest(forest)
    assert compiled.leaf_values.shape[0] > 100  # most leaves hold several classes
    test = rng.normal(size=(500, 6)).astype(np.float32)
    assert np.max(np.abs(predict_proba(forest, test) - forest.predict_proba(test))) < 1e-12


def forest_thresholds(forest):
    return np.concatenate([t.tree_.threshold[t.tree_.children_left >= 0] for t in forest.estimators_])


def test_compiled_layout(spectra_forest):
    forest, _, _ = spectra_forest
    compiled = compile_forest(forest)
    assert isinstance(compiled, CompiledForest)
    assert compiled.n_trees == 30 and compiled.n_features == forest.n_features_in_
    n_nodes = sum(t.tree_.node_count for t in forest.estimators_)
    assert compiled.children.shape == (n_nodes, 2) and compiled.feature.shape == (n_nodes,)
    assert np.allclose(compiled.leaf_values.sum(axis=1), 1.0)
    leaf = compiled.is_leaf
    assert np.all(compiled.thresholds[leaf] == np.inf)
    codes = compiled.leaf_code[leaf]
    assert np.all((codes < 12) & (codes >= -compiled.leaf_values.shape[0]))
    assert np.all(compiled.leaf_code[~leaf] == -1)
    assert np.array_equal(compiled.classes, forest.classes_)


def test_non_finite_features_fall_back_to_scikit_learn(spectra_forest):
    forest, x, _ = spectra_forest
    x = x[:50].copy()
    x[3, 5] = np.nan
    assert np.array_equal(predict_proba(forest, x), forest.predict_proba(x))


@pytest.mark.parametrize(
    ("x", "match"),
    [(np.zeros(5, np.float32), "must be 2-D"), (np.zeros((4, 3), np.float32), "have 3 columns but the forest")],
)
def test_bad_features(spectra_forest, x, match):
    forest, _, _ = spectra_forest
    with pytest.raises(ValueError, match=match):
        predict_proba(forest, x)


def test_unfitted_forest_is_refused():
    from sklearn.ensemble import RandomForestClassifier

    with pytest.raises(ValueError, match="not fitted"):
        compile_forest(RandomForestClassifier(3))
