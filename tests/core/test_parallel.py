"""The distributed run on a real LocalCluster equals the single-process run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from dataclasses import replace  # noqa: E402

from xafsmap.core.io.stack import read_stack  # noqa: E402
from xafsmap.core.mapping.stacksource import _reopen, stack_source
from xafsmap.core.mapping.parallel import iter_map_distributed, open_client, train_model_distributed
from xafsmap.core.mapping.pipeline import band_rows, iter_classify  # noqa: E402
from xafsmap.core.model.training import train_model  # noqa: E402
from xafsmap.core.prepare.steps import prepare_stack  # noqa: E402
from xafsmap.core.simulate.sample import bundled_references  # noqa: E402

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


#: Region of interest of the 48 x 64 sample (rows, columns), binned by 2 to 22 x 30.
ROI = (2, 46, 3, 63)


@pytest.fixture(scope="module")
def prepared(stack):
    """The sample drift-corrected, calibrated with a smooth shift map, cropped and binned."""
    _, rows, cols = stack.data.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    shift = (-0.8 + 1.6 * xx / (cols - 1) + 0.4 * (yy / (rows - 1)) ** 2).astype(np.float32)
    drift = np.random.default_rng(7).normal(0.0, 0.4, (stack.energies.size, 2))
    return prepare_stack(stack, drift=drift, shift=shift, roi=ROI, factor=2)[0]


@pytest.fixture(scope="module")
def prepared_model(prepared):
    return train_model(prepared, bundled_references(), n_per_class=60, n_trees=10, rng=5)


def prepared_band_bytes(prepared) -> int:
    """Bands of 4 binned rows: the 22 rows split into 6 tasks."""
    n_energies, _, cols = prepared.data.shape
    return n_energies * cols * 4 * 4


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


def test_prepared_stack_maps_equal_single_process(client, stack, prepared, prepared_model):
    band_bytes = prepared_band_bytes(prepared)
    local, _ = run(iter_classify(prepared, prepared_model, band_bytes=band_bytes))
    remote, steps = run(iter_map_distributed(prepared, prepared_model, client=client, band_bytes=band_bytes))
    assert steps == [(i, 6) for i in range(1, 7)]
    assert remote.labels.shape == ((ROI[1] - ROI[0]) // 2, (ROI[3] - ROI[2]) // 2)
    for name in MAPS:
        assert np.array_equal(getattr(remote, name), getattr(local, name), equal_nan=True), name
    # not vacuous: the preparation trimmed energies, and classes and masked pixels are found
    assert prepared.energies.size < stack.energies.size
    assert np.unique(remote.labels[remote.mask == 1]).size >= 3 and np.mean(remote.mask == 1) > 0.5
    assert remote.timings["workers"] == 2


def test_prepared_stack_is_described_by_its_files_and_steps(stack, prepared):
    source = stack_source(prepared)
    assert source.shape == tuple(prepared.data.shape) and len(source.preparation) == 1
    assert np.array_equal(source.read_energies, stack.energies)
    assert np.array_equal(source.energies, prepared.energies)
    step = source.preparation[0]
    assert step.roi == ROI and step.factor == 2 and step.shift.shape == (48, 64) and step.drift.shape == (141, 2)


def test_two_prepare_steps_are_redone_in_order(stack):
    """A crop, then a bin of the cropped stack: the worker redoes both, chunked by band."""
    cropped = prepare_stack(stack, roi=(5, 45, 0, 64))[0]
    binned = prepare_stack(cropped, factor=2)[0]
    source = stack_source(binned)
    assert [step.roi for step in source.preparation] == [(5, 45, 0, 64), None]
    redone = _reopen(source, band=3).data
    assert redone.chunks[1] == (3,) * 6 + (2,)
    assert np.array_equal(np.asarray(redone), np.asarray(binned.data), equal_nan=True)


def test_band_of_a_prepared_stack_reads_only_its_raw_rows(small_sample_file, stack):
    """ROI + bin 2 + shift map: one band (4 binned rows) reads the 8 raw rows under it."""
    import dask

    # this thread's count: the synchronous scheduler reads here, while other threads of the
    # process (a cluster's heartbeats on sockets) would add their own reads to /proc/self/io
    io = Path("/proc/thread-self/io")
    if not io.is_file():
        pytest.skip("needs /proc/thread-self/io (Linux) to count the bytes read")

    def bytes_read() -> int:
        return next(int(line.split()[1]) for line in io.read_text().splitlines() if line.startswith("rchar"))

    shift = np.full(stack.data.shape[1:], 0.3, np.float32)
    prepared = prepare_stack(stack, shift=shift, roi=ROI, factor=2)[0]
    band = band_rows(prepared.data.shape, prepared_band_bytes(prepared))
    worker = _reopen(stack_source(prepared), band=band)
    before = bytes_read()
    got = dask.compute(worker.data[:, 8:12], scheduler="synchronous")[0]
    read = bytes_read() - before
    assert np.array_equal(got, np.asarray(prepared.data[:, 8:12]), equal_nan=True)
    n_energies, _, cols = stack.data.shape
    needed = n_energies * 8 * cols * 4  # raw rows 18:26, whole rows of every energy
    assert needed <= read < needed + 4096  # (+ reading /proc/thread-self/io itself)
    assert read < small_sample_file.stat().st_size / 5


def test_map_prepared_on_a_cluster_equals_the_single_process_run(client, small_sample_file, tmp_path):
    """``xafsmap map --roi --bin 2 --scheduler ADDRESS`` writes the same files as
    without a cluster (the module's 2-worker LocalCluster: ``--workers 2`` would start
    another, and only ``open_client``'s branch differs, which ``test_open_client_*`` and
    ``test_cli_commands`` cover)."""
    import tifffile

    from xafsmap.cli import main
    from xafsmap.core.simulate.sample import bundled_reference_paths

    paths = bundled_reference_paths()
    args = [str(small_sample_file), *(a for n in ("Fe", "FeO", "Fe2O3") for a in ("--reference", str(paths[n]))),
            "--roi", "2:46,3:63", "--bin", "2", "--spectra-per-class", "60", "--trees", "8",
            "--quiet"]
    single, cluster = tmp_path / "single", tmp_path / "cluster"
    assert main(["map", *args, "--out", str(single)]) == 0
    assert main(["map", *args, "--out", str(cluster), "--scheduler", client.scheduler.address]) == 0
    images = sorted(p.name for p in single.glob("*.tif"))
    assert "labels.tif" in images and images == sorted(p.name for p in cluster.glob("*.tif"))
    for name in images:
        np.testing.assert_array_equal(tifffile.imread(cluster / name), tifffile.imread(single / name), err_msg=name)
    assert tifffile.imread(single / "labels.tif").shape == (22, 30)


def test_training_on_a_worker_gives_the_same_model(client, stack, model):
    remote = train_model_distributed(stack, bundled_references(), client=client, n_per_class=80, n_trees=20, rng=5)
    assert remote.survey.e0 == model.survey.e0 and remote.survey.threshold == model.survey.threshold
    x = model.classifier.centroids
    assert np.array_equal(remote.classifier.forest.predict_proba(x), model.classifier.forest.predict_proba(x))


def test_in_memory_stack_is_refused(small_sample):
    from xafsmap.core.io.stack import Stack

    in_memory = Stack(data=small_sample.stack, energies=small_sample.energies, sources={"stack": "<array>"})
    with pytest.raises(ValueError, match="stack of this stack was given as an array"):
        stack_source(in_memory)


def test_flat_given_as_array_is_refused(stack):
    from xafsmap.core.io.stack import Stack

    with_flat = Stack(data=stack.data, energies=stack.energies, sources=dict(stack.sources, flat="<array>"))
    with pytest.raises(ValueError, match="flat of this stack was given as an array"):
        stack_source(with_flat)


@pytest.mark.parametrize("change", ["crop", "scale"])
def test_stack_changed_after_reading_is_refused(stack, change):
    from xafsmap.core.io.stack import Stack

    data = stack.data[:, 4:] if change == "crop" else stack.data * 2
    with pytest.raises(ValueError, match="not what read_stack gives from its files: it was changed"):
        stack_source(Stack(data=data, energies=stack.energies, sources=stack.sources))


@pytest.mark.parametrize("change", ["crop", "scale"])
def test_prepared_stack_changed_afterwards_is_refused(prepared, change):
    data = prepared.data[:, 1:] if change == "crop" else prepared.data * 2
    with pytest.raises(ValueError, match="its 1 recorded prepare_stack step: it was changed after reading"):
        stack_source(replace(prepared, data=data))


def test_prepared_in_memory_stack_is_refused(small_sample):
    from xafsmap.core.io.stack import Stack

    in_memory = Stack(data=small_sample.stack, energies=small_sample.energies, sources={"stack": "<array>"})
    with pytest.raises(ValueError, match="stack of this stack was given as an array"):
        stack_source(prepare_stack(in_memory, roi=(0, 40, 0, 60), factor=2)[0])


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


def test_an_hdf5_stack_in_another_axis_order_maps_on_the_cluster(client, small_sample, tmp_path):
    """Workers reopen an HDF5 dataset with the order it was read in (``--axes XYE``)."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "xye.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.transpose(small_sample.stack, (2, 1, 0))
        f["energy"] = small_sample.energies
    stack = read_stack(f"{path}:/data", energies=f"{path}:/energy", axes="XYE")
    assert stack_source(stack).axes == "XYE"
    model = train_model(stack, bundled_references(), n_per_class=60, n_trees=8, rng=5)
    remote, _ = run(iter_map_distributed(stack, model, client=client, band_bytes=BAND_BYTES))
    local, _ = run(iter_classify(stack, model))
    np.testing.assert_array_equal(remote.labels, local.labels)
