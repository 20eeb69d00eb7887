"""Training can be stopped between groups of trees, and growing in groups changes nothing."""

import numpy as np
import pytest


def test_a_forest_grown_in_groups_is_the_forest_grown_at_once():
    from sklearn.ensemble import RandomForestClassifier

    from xafsmap.core.model.forest import grow_forest

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 6)), rng.integers(0, 3, 300)
    whole = grow_forest(RandomForestClassifier(23, max_samples=0.5, random_state=5), x, y)
    calls = []
    grouped = grow_forest(RandomForestClassifier(23, max_samples=0.5, random_state=5), x, y,
                          stop=lambda: calls.append(1) and False)
    assert len(calls) == 8 and len(grouped.estimators_) == 23  # groups of 3 trees
    np.testing.assert_array_equal(whole.predict_proba(x), grouped.predict_proba(x))
    np.testing.assert_array_equal(whole.feature_importances_, grouped.feature_importances_)


def test_stop_ends_training_between_groups():
    from sklearn.ensemble import RandomForestClassifier

    from xafsmap.core.model.forest import TrainingStopped, grow_forest

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(100, 4)), rng.integers(0, 2, 100)
    calls = []
    with pytest.raises(TrainingStopped, match="after 6 of 20 trees"):
        grow_forest(RandomForestClassifier(20, random_state=0), x, y, stop=lambda: len(calls.append(1) or calls) > 3)
