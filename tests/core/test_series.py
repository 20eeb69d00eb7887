"""xafsmap series on a synthetic reduction Fe2O3 -> Fe3O4 -> FeO with known fractions, as files."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import tifffile

from xafsmap.cli import main
from xafsmap.core.simulate.series import (SERIES_REFERENCES, make_reduction_series, reference_files, series_truth,
                                          write_reduction_series)

FAST = ["--spectra-per-class", "150", "--trees", "15", "--quiet"]
#: |mean fraction in series.csv - truth| at most this (fractions of 1; 48 x 64 px, 2 % noise).
TOLERANCE = 0.03


def refs():
    return [arg for path in reference_files() for arg in ("--reference", str(path))]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def reduction(tmp_path_factory):
    samples = make_reduction_series((48, 64), rng=5)
    folder = tmp_path_factory.mktemp("reduction")
    return samples, write_reduction_series(folder / "input", samples)


@pytest.fixture(scope="module")
def mapped(reduction, tmp_path_factory):
    samples, listing = reduction
    out = tmp_path_factory.mktemp("series") / "out"
    assert main(["series", "--list", str(listing), *refs(), "--out", str(out), *FAST]) == 0
    return out


def test_series_csv_follows_the_reduction(reduction, mapped):
    samples, _ = reduction
    table = rows(mapped / "series.csv")
    assert [row["name"] for row in table] == [f"step_{i}" for i in range(1, 6)]
    assert [row["reduction_h"] for row in table] == ["0", "0.5", "1", "1.5", "2"]  # the list's columns
    for row, sample in zip(table, samples):
        mask = tifffile.imread(mapped / row["name"] / "mask.tif") == 1
        truth = series_truth(sample, mask)
        for name in SERIES_REFERENCES:
            found = float(row[f"fraction_{name}"])
            assert abs(found - truth[name]) <= TOLERANCE, (row["name"], name, found, truth[name])
            assert abs(found - truth[name]) <= float(row[f"fraction_{name}_sd"]) + 1e-3
        assert int(row["sample_pixels"]) == int(mask.sum())
        shares = sum(float(v) for k, v in row.items() if k.startswith("share_"))
        assert shares == pytest.approx(1.0, abs=1e-3)
    # the edge moves down as the iron is reduced
    e0 = [float(row["e0_mean_eV"]) for row in table]
    assert e0[0] > e0[2] > e0[4]
    assert (mapped / "series.png").stat().st_size > 10_000


def test_every_stack_has_the_map_files_and_the_same_classes(mapped):
    classes = {(mapped / f"step_{i}" / "classes.csv").read_text() for i in range(1, 6)}
    assert len(classes) == 1
    expected = {"labels.tif", "fractions.tif", "fraction_sigma.tif", "mask.tif", "flags.tif", "report.json",
                "classes.csv", "probability.tif", "distance.tif", "residual.tif", "edge_step.tif", "e0.tif",
                "flags.csv"}
    sha = set()
    for i in range(1, 6):
        folder = mapped / f"step_{i}"
        assert expected <= {p.name for p in folder.iterdir()}
        report = json.loads((folder / "report.json").read_text())
        sha.add(report["model"]["sha256"])
        assert report["series"]["index"] == i
    assert len(sha) == 1 and (mapped / "model.npz").is_file()


def test_a_rerun_skips_done_stacks_and_maps_a_changed_one(reduction, mapped, tmp_path, capsys):
    samples, listing = reduction
    out = tmp_path / "out"
    shutil.copytree(mapped, out)
    before = {i: (out / f"step_{i}" / "labels.tif").stat().st_mtime_ns for i in range(1, 6)}
    assert main(["series", "--list", str(listing), *refs(), "--out", str(out), *FAST[:-1]]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped step_") == 5 and "0 stacks mapped, 5 already done" in err
    assert before == {i: (out / f"step_{i}" / "labels.tif").stat().st_mtime_ns for i in range(1, 6)}
    # another metric changes the distance maps: every stack maps again, the model is kept
    model = (out / "model.npz").read_bytes()
    assert main(["series", "--list", str(listing), *refs(), "--out", str(out), "--metric", "manhattan", *FAST]) == 0
    assert (out / "model.npz").read_bytes() == model
    assert all((out / f"step_{i}" / "labels.tif").stat().st_mtime_ns != before[i] for i in range(1, 6))


def test_a_changed_stack_maps_again(reduction, tmp_path, capsys):
    samples, _ = reduction
    folder = tmp_path / "input"
    listing = write_reduction_series(folder, samples[:2])
    out = tmp_path / "out"
    assert main(["series", "--list", str(listing), *refs(), "--out", str(out), *FAST]) == 0
    from xafsmap.core.io.tiff import write_stack

    write_stack(folder / "step_2.tif", samples[2].stack, samples[2].energies)  # step 2 measured again
    assert main(["series", "--list", str(listing), *refs(), "--out", str(out), *FAST[:-1]]) == 0
    err = capsys.readouterr().err
    assert "skipped step_1" in err and "skipped step_2" not in err and "1 stacks mapped, 1 already done" in err
    table = rows(out / "series.csv")
    assert float(table[1]["fraction_Fe3O4"]) > 0.95  # the new step 2 is magnetite


def test_an_unreadable_stack_stops_the_series_and_keeps_what_was_mapped(reduction, tmp_path, capsys):
    samples, _ = reduction
    folder = tmp_path / "input"
    listing = write_reduction_series(folder, samples[:3])
    (folder / "step_2.tif").write_bytes(b"this is not a TIFF")
    out = tmp_path / "out"
    assert main(["series", "--list", str(listing), *refs(), "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xafsmap: error: stack 2 of 3 (") and "step_2.tif" in err[0], err
    assert "the 1 stack(s) before it are mapped" in err[0]
    assert [row["name"] for row in rows(out / "series.csv")] == ["step_1"]
    assert (out / "step_1" / "labels.tif").is_file() and not (out / "step_2").exists()
    assert not list(out.glob(".step_2*"))  # no partial folder left
    # fixed, the rerun maps what is left
    from xafsmap.core.io.tiff import write_stack

    write_stack(folder / "step_2.tif", samples[1].stack, samples[1].energies)
    assert main(["series", "--list", str(listing), *refs(), "--out", str(out), *FAST[:-1]]) == 0
    assert "skipped step_1" in capsys.readouterr().err
    assert [row["name"] for row in rows(out / "series.csv")] == ["step_1", "step_2", "step_3"]


@pytest.mark.parametrize("listing, match", [
    ("time,file\n0,a.tif\n", "has no 'path' column \\(its columns: time, file\\)"),
    ("path,time\n,0\n", "line 2 has no path"),
    ("path,time\nmissing.tif,0\n", "1 stack\\(s\\) of the series do not exist: .*missing.tif"),
    ("path\n", "lists no stack"),
])
def test_a_bad_list_is_one_line_and_writes_nothing(tmp_path, capsys, listing, match):
    path = tmp_path / "list.csv"
    path.write_text(listing)
    out = tmp_path / "out"
    assert main(["series", "--list", str(path), *refs(), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and __import__("re").search(match, err[0]), err
    assert not out.exists()


def test_stacks_and_a_list_exclude_each_other(reduction, tmp_path, capsys):
    _, listing = reduction
    stack = listing.parent / "step_1.tif"
    for argv in (["series", str(stack), "--list", str(listing)], ["series"]):
        assert main([*argv, *refs(), "--out", str(tmp_path / "o")]) == 1
        assert "give the stacks of the series or --list FILE.csv" in capsys.readouterr().err


def test_a_saved_model_maps_the_series_and_refuses_a_stack_on_other_energies(reduction, mapped, tmp_path, capsys):
    samples, listing = reduction
    folder = listing.parent
    out = tmp_path / "out"
    stacks = [str(folder / f"step_{i}.tif") for i in (1, 3)]
    assert main(["series", *stacks, *refs(), "--model", str(mapped / "model.npz"), "--out", str(out),
                 "--quiet"]) == 0
    for name in ("step_1", "step_3"):  # the same model, so the same maps as in the series that trained it
        assert np.array_equal(tifffile.imread(out / name / "labels.tif"), tifffile.imread(mapped / name / "labels.tif"))
    assert not (out / "model.npz").exists()
    from xafsmap.core.io.tiff import write_stack

    odd = write_stack(tmp_path / "coarse.tif", samples[0].stack[::2], samples[0].energies[::2])
    assert main(["series", stacks[0], str(odd), *refs(), "--model", str(mapped / "model.npz"),
                 "--out", str(tmp_path / "o2"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stack 2 of 2" in err[0] and "model was trained on 141" in err[0], err
    assert (tmp_path / "o2" / "step_1" / "labels.tif").is_file() and not (tmp_path / "o2" / "coarse").exists()


def test_series_on_local_workers_equals_the_plain_series(reduction, mapped, tmp_path):
    _, listing = reduction
    stacks = [str(listing.parent / f"step_{i}.tif") for i in (2, 4)]
    out = tmp_path / "out"
    assert main(["series", *stacks, *refs(), "--model", str(mapped / "model.npz"), "--workers", "2",
                 "--out", str(out), "--quiet"]) == 0
    for name in ("step_2", "step_4"):
        for what in ("labels", "fractions"):
            assert np.array_equal(tifffile.imread(out / name / f"{what}.tif"),
                                  tifffile.imread(mapped / name / f"{what}.tif"), equal_nan=True), (name, what)


@pytest.mark.parametrize("command", ["map", "explore", "info", "train", "series", "run", "calibrate"])
def test_every_command_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0 and f"usage: xafsmap {command}" in capsys.readouterr().out


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster, set_as_default=False) as client:
        yield client  # not dask's default: the client's own reads (the survey) stay here while the worker is held


def _settings(**options):
    from xafsmap.core.settings import ReferenceSpec, Settings

    return Settings(references=tuple(ReferenceSpec(str(p)) for p in reference_files()), **options)


def _stacks_waiting(dask_scheduler):
    """The stack files whose band tasks the scheduler holds (keys ``xafsmap-band-<file>-...``)."""
    import re

    return sorted({m.group(1) for key in dask_scheduler.tasks
                   if (m := re.match(r"xafsmap-band-(.+)-\d+-\d+-\d+-\d+$", str(key)))})


def test_a_cluster_has_several_stacks_in_flight_and_maps_them_as_the_plain_series(reduction, mapped, client,
                                                                                    tmp_path):
    """The only worker thread is held by a task until the bands of more than one stack are
    queued on the scheduler: several stacks were in flight at once (no timing involved)."""
    import threading
    import time

    from distributed import Event

    from xafsmap.core.job import run_series

    _, listing = reduction
    go = Event("xafsmap-test-go", client=client)
    blocker = client.submit(lambda: Event("xafsmap-test-go").wait(600), pure=False, key="xafsmap-test-blocker")
    while not any(client.processing().values()):
        time.sleep(0.05)
    found, out = [], tmp_path / "out"
    settings = _settings(series_list=str(listing), model=str(mapped / "model.npz"))
    worker = threading.Thread(target=lambda: found.append(run_series(settings, out=out, client=client, in_flight=3)))
    worker.start()
    try:
        waiting, deadline = [], time.monotonic() + 300
        while len(waiting) < 2 and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
            waiting = client.run_on_scheduler(_stacks_waiting)
    finally:
        go.set()
        worker.join()
    assert blocker.result() is True
    assert len(waiting) >= 2, waiting  # bands of several stacks on the cluster before any band ran
    run = found[0]
    assert run.mapped == tuple(f"step_{i}" for i in range(1, 6)) and not run.skipped
    assert rows(out / "series.csv") == rows(mapped / "series.csv")  # the order of the series, the same numbers
    for name in run.mapped:
        for what in ("labels", "fractions", "fraction_sigma", "mask", "flags"):
            assert np.array_equal(tifffile.imread(out / name / f"{what}.tif"),
                                  tifffile.imread(mapped / name / f"{what}.tif"), equal_nan=True), (name, what)
    again = run_series(settings, out=out, client=client)  # resumable on the cluster too
    assert again.skipped == run.mapped and not again.mapped


def test_on_a_cluster_a_failing_stack_is_named_and_the_others_finish(reduction, mapped, client, tmp_path):
    from xafsmap.core.job import run_series

    samples, _ = reduction
    folder = tmp_path / "input"
    listing = write_reduction_series(folder, samples[:3])
    (folder / "step_2.tif").write_bytes(b"this is not a TIFF")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"^stack 2 of 3 \(.*step_2.tif\): .*; the other 2 stack\(s\) are mapped"):
        run_series(_settings(series_list=str(listing), model=str(mapped / "model.npz")), out=out, client=client)
    assert [row["name"] for row in rows(out / "series.csv")] == ["step_1", "step_3"]
    assert (out / "step_3" / "labels.tif").is_file() and not (out / "step_2").exists()
    assert not list(out.glob(".step_2*"))  # no partial folder left
