"""The command line contract: outputs, report, and one clear line for bad input."""

import csv
import json
import shutil

import numpy as np
import pytest
import tifffile

from xafsmap.cli import main
from xafsmap.core.simulate.sample import bundled_reference_paths

FAST = ["--spectra-per-class", "60", "--trees", "8", "--quiet"]


@pytest.fixture(scope="module")
def refs():
    paths = bundled_reference_paths()
    return [str(paths[name]) for name in ("Fe", "FeO", "Fe2O3")]


def reference_args(refs):
    return [arg for ref in refs for arg in ("--reference", ref)]


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, small_sample_file, refs):
    out = tmp_path_factory.mktemp("cli") / "maps"
    assert main(["map", str(small_sample_file), *reference_args(refs), "--out", str(out), *FAST]) == 0
    return out


def test_map_writes_every_documented_file(mapped, small_sample):
    names = {p.name for p in mapped.iterdir()}
    assert names == {"labels.tif", "classes.csv", "probability.tif", "distance.tif", "fractions.tif",
                     "fraction_sigma.tif", "residual.tif", "edge_step.tif", "e0.tif", "mask.tif", "flags.tif",
                     "flags.csv", "report.json", ".xafsmap-output.json"}
    shape = small_sample.stack.shape[1:]
    assert tifffile.imread(mapped / "labels.tif").dtype == np.uint16
    assert tifffile.imread(mapped / "mask.tif").dtype == np.uint8
    for name in ("probability", "distance", "residual", "edge_step", "e0"):
        image = tifffile.imread(mapped / f"{name}.tif")
        assert image.shape == shape and image.dtype == np.float32
    assert tifffile.imread(mapped / "fractions.tif").shape == (3, *shape)
    sigma = tifffile.imread(mapped / "fraction_sigma.tif")
    assert sigma.shape == (3, *shape) and sigma.dtype == np.float32


def test_classes_csv_lists_compositions(mapped):
    with open(mapped / "classes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["label", "name", "color", "Fe", "FeO", "Fe2O3"]
    assert [r["name"] for r in rows[:3]] == ["Fe", "FeO", "Fe2O3"]
    for row in rows:
        assert sum(float(row[k]) for k in ("Fe", "FeO", "Fe2O3")) == pytest.approx(1)
    assert len(rows) == 12


def test_a_map_folder_carries_its_legend_in_labels_tif(mapped):
    from xafsmap.core.mapping.legend import read_legend_csv, read_tiff_legend

    inside = read_tiff_legend(mapped / "labels.tif")
    assert inside == read_legend_csv(mapped / "classes.csv")
    assert inside.names[:3] == ("Fe", "FeO", "Fe2O3")
    with tifffile.TiffFile(mapped / "labels.tif") as tif:
        assert json.loads(tif.pages.first.description)["xafsmap_legend"]["header"][:3] == ["label", "name", "color"]
        assert tif.series[0].shape == tifffile.imread(mapped / "probability.tif").shape


def test_report_records_inputs_parameters_and_results(mapped, small_sample_file):
    report = json.loads((mapped / "report.json").read_text())
    assert report["inputs"]["stack"]["sha256"]["sample.tif"]
    assert len(report["inputs"]["references"]) == 3
    assert report["parameters"]["seed"] == 0 and report["parameters"]["metric"] == "euclidean"
    assert {"numpy", "scikit-learn", "dask", "tifffile"} <= set(report["versions"])
    assert 0.8 < report["classifier"]["heldout_accuracy"] <= 1
    assert len(report["classifier"]["importances"]) == 141
    assert report["pixels"]["invalid"] == 5
    assert sum(report["pixels"]["per_class"].values()) == report["pixels"]["sample"]
    assert set(report["timings_s"]) >= {"train_s", "map_s", "total_s"}


def test_same_seed_same_labels(mapped, small_sample_file, refs, tmp_path):
    out = tmp_path / "again"
    assert main(["map", str(small_sample_file), *reference_args(refs), "--out", str(out), *FAST]) == 0
    np.testing.assert_array_equal(tifffile.imread(out / "labels.tif"), tifffile.imread(mapped / "labels.tif"))


def test_existing_folder_is_kept_without_overwrite(mapped, small_sample_file, refs, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in mapped.iterdir()}
    code = main(["map", str(small_sample_file), *reference_args(refs), "--out", str(mapped), *FAST])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists and is not empty" in err[0] and "--overwrite" in err[0]
    assert {p.name: p.stat().st_mtime_ns for p in mapped.iterdir()} == before


def test_overwrite_replaces_the_folder_whole(tmp_path, small_sample_file, refs):
    out = tmp_path / "maps"
    args = ["map", str(small_sample_file), *reference_args(refs), "--out", str(out), *FAST]
    assert main([*args, "--zarr"]) == 0
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "maps.ome.zarr").exists() and (out / "labels.tif").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["maps"]


def broken_inputs(tmp_path, small_sample_file, refs):
    folder = tmp_path / "in"
    folder.mkdir()
    stack = folder / "s.tif"
    shutil.copy(small_sample_file, stack)
    energies = np.loadtxt(small_sample_file.with_suffix(".energies.txt"))
    truncated = folder / "t.tif"
    truncated.write_bytes(small_sample_file.read_bytes()[: small_sample_file.stat().st_size // 2])
    np.savetxt(folder / "t.energies.txt", energies)
    short = folder / "short.txt"
    np.savetxt(short, energies[:-1])
    unsorted = folder / "unsorted.txt"
    np.savetxt(unsorted, energies[::-1])
    narrow = folder / "narrow.dat"
    np.savetxt(narrow, np.column_stack([np.linspace(7200, 7300, 50), np.linspace(1, 2, 50)]))
    return {
        "count": (["map", str(stack), "--energies", str(short)], "140"),
        "order": (["map", str(stack), "--energies", str(unsorted)], "increas"),
        "truncated": (["map", str(truncated)], "truncated"),
        "missing": (["map", str(folder / "nope.tif")], "nope.tif"),
        "reference": (["map", str(small_sample_file), "--reference", str(narrow)], "narrow.*covers"),
    }


@pytest.mark.parametrize("case", ["count", "order", "truncated", "missing", "reference"])
def test_bad_input_one_line_nonzero_and_nothing_written(case, tmp_path, small_sample_file, refs, capsys):
    argv, match = broken_inputs(tmp_path, small_sample_file, refs)[case]
    out = tmp_path / "out"
    extra = [] if case == "reference" else reference_args(refs)
    code = main([*argv, *extra, "--out", str(out), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("xafsmap: error:")
    assert pytest.importorskip("re").search(match, err[0]), err[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_info_reads_no_pixels_and_prints_json(small_sample_file, capsys):
    assert main(["info", str(small_sample_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [141, 48, 64] and info["n_energies"] == 141


def test_demo_writes_maps_and_quicklook_without_display(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-view"]) == 0
    assert (out / "labels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "input" / "sample.tif").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["classifier"]["heldout_accuracy"] > 0.95
