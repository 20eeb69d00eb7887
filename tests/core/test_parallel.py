"""The distributed run on a real LocalCluster equals the single-process run."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("distributed")

from xafsmap.core.io import read_stack  # noqa: E402
from xafsmap.core.parallel import (  # noqa: E402
    iter_map_distributed,
    open_client,
    stack_source,
    train_model_distributed,
)
from xafsmap.core.pipeline import iter_classify, train_model  # noqa: E402
from xafsmap.core.sample import bundled_references  # noqa: E402

MAPS = ("labels", "mask", "flags", "probability", "distance", "fractions", "residual", "edge_step", "e0")
#: Small bands, so the 48-row sample splits into 6 tasks over the 2 workers.
BAND_BYTES = 141 * 64 * 4 * 8


@pytest.fixture(scope="module")
def client():
    with open_client(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def stack(small_sample_file):
    return read_stack(small_sample_file)


@pytest.fixture(scope="module")
def model(stack):
    return train_model(stack, bundled_references(), n_per_class=80, n_trees=20, rng=5)


def run(generator):
    steps = []
    while True:
        try:
            steps.append(next(generator))
        except StopIteration as stop:
            return stop.value, steps


def test_distributed_maps_equal_single_process(client, stack, model, small_sample):
    local, _ = run(iter_classify(stack, model, band_bytes=BAND_BYTES))
    remote, steps = run(iter_map_distributed(stack, model, client=client, band_bytes=BAND_BYTES))
    assert steps == [(i, 6) for i in range(1, 7)]
    for name in MAPS:
        assert np.array_equal(getattr(remote, name), getattr(local, name), equal_nan=True), name
    # the run is not vacuous: several classes are found, and holes are masked
    assert np.unique(remote.labels[remote.mask == 1]).size >= 3 and 0 in remote.labels
    assert np.mean(remote.mask == 1) > 0.5
    # both workers read their own bands
    assert remote.timings["workers"] == 2


def test_band_size_does_not_change_the_maps(client, stack, model):
    small, _ = run(iter_map_distributed(stack, model, client=client, band_bytes=BAND_BYTES))
    whole, steps = run(iter_map_distributed(stack, model, client=client, band_bytes=2**30, metric="euclidean"))
    assert steps == [(1, 1)]
    for name in MAPS:
        assert np.array_equal(getattr(small, name), getattr(whole, name), equal_nan=True), name


def test_training_on_a_worker_gives_the_same_model(client, stack, model):
    remote = train_model_distributed(stack, bundled_references(), client=client, n_per_class=80, n_trees=20, rng=5)
    assert remote.survey.e0 == model.survey.e0 and remote.survey.threshold == model.survey.threshold
    x = model.classifier.centroids
    assert np.array_equal(remote.classifier.forest.predict_proba(x), model.classifier.forest.predict_proba(x))


def test_in_memory_stack_is_refused(small_sample):
    from xafsmap.core.io import Stack

    in_memory = Stack(data=small_sample.stack, energies=small_sample.energies, sources={"stack": "<array>"})
    with pytest.raises(ValueError, match="stack of this stack was given as an array"):
        stack_source(in_memory)


def test_flat_given_as_array_is_refused(stack):
    from xafsmap.core.io import Stack

    with_flat = Stack(data=stack.data, energies=stack.energies, sources=dict(stack.sources, flat="<array>"))
    with pytest.raises(ValueError, match="flat of this stack was given as an array"):
        stack_source(with_flat)


@pytest.mark.parametrize("change", ["crop", "scale"])
def test_stack_changed_after_reading_is_refused(stack, change):
    from xafsmap.core.io import Stack

    data = stack.data[:, 4:] if change == "crop" else stack.data * 2
    with pytest.raises(ValueError, match="not what read_stack gives from its files"):
        stack_source(Stack(data=data, energies=stack.energies, sources=stack.sources))


def test_other_energies_are_refused(client, stack, model):
    source = stack_source(stack)
    shifted = type(source)(**{**source.__dict__, "energies": source.energies + 1.0})
    with pytest.raises(ValueError, match="other energies"):
        next(iter_map_distributed(shifted, model, client=client))


def test_unknown_metric_is_refused(client, stack, model):
    with pytest.raises(ValueError, match="unknown metric 'cosine'"):
        next(iter_map_distributed(stack, model, client=client, metric="cosine"))


@pytest.mark.parametrize(("options", "match"), [({}, "either scheduler"),
                                                 ({"scheduler": "tcp://x:1", "workers": 2}, "either scheduler"),
                                                 ({"workers": 0}, "at least 1, got 0")])
def test_open_client_needs_one_way(options, match):
    with pytest.raises(ValueError, match=match), open_client(**options):
        pass
