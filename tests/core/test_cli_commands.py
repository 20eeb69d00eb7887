"""The CLI's other commands end to end: calibrate, prepared maps, trust, recipes."""

import csv
import json

import numpy as np
import pytest
import tifffile

from xafsmap.cli import main
from xafsmap.core.settings import ReferenceSpec, Settings, write_recipe
from xafsmap.core.simulate.sample import bundled_reference_paths

FAST = ["--spectra-per-class", "60", "--trees", "8", "--quiet"]


@pytest.fixture(scope="module")
def paths():
    return {name: str(path) for name, path in bundled_reference_paths().items()}


def refs(paths, names=("Fe", "FeO", "Fe2O3")):
    return [arg for name in names for arg in ("--reference", paths[name])]


def test_calibrate_recovers_a_known_shift_field(shifted, paths, tmp_path):
    out = tmp_path / "cal"
    assert main(["calibrate", str(shifted["foil"]), "--reference", paths["Fe"], "--out", str(out), "--quiet"]) == 0
    shift = tifffile.imread(out / "shift.tif")
    shift = shift[0] if shift.ndim == 3 else shift
    inner = (slice(4, -4), slice(4, -4))  # apply_shift leaves no data at the far energies of edge pixels
    assert np.sqrt(np.mean((shift[inner] - shifted["truth"][inner]) ** 2)) < 0.1
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "absolute" and report["residual_rms_eV"] < 0.1


def test_map_with_a_shift_map_writes_it_and_records_calibration(shifted, paths, tmp_path):
    cal = tmp_path / "cal"
    assert main(["calibrate", str(shifted["foil"]), "--reference", paths["Fe"], "--out", str(cal), "--quiet"]) == 0
    out = tmp_path / "maps"
    code = main(["map", str(shifted["sample"]), *refs(paths), "--shift-map", str(cal / "shift.tif"),
                 "--out", str(out), *FAST])
    assert code == 0
    assert (out / "shift.tif").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["grid"]["energy_calibrated"] is True
    assert report["calibration"]["source"].endswith("shift.tif")


def test_roi_and_binning_give_maps_in_the_cropped_binned_grid(small_sample_file, paths, tmp_path):
    out = tmp_path / "maps"
    code = main(["map", str(small_sample_file), *refs(paths), "--roi", "4:36,0:48", "--bin", "2",
                 "--out", str(out), *FAST])
    assert code == 0
    assert tifffile.imread(out / "labels.tif").shape == (16, 24)
    grid = json.loads((out / "report.json").read_text())["grid"]
    assert grid == {"source_shape": [48, 64], "roi": [4, 36, 0, 48], "bin": 2, "shape": [16, 24],
                    "drift_corrected": False, "energy_calibrated": False}


def test_flags_mark_invalid_and_background_pixels(small_sample_file, small_sample, paths, tmp_path):
    out = tmp_path / "maps"
    assert main(["map", str(small_sample_file), *refs(paths), "--out", str(out), "--thick", "1.5", *FAST]) == 0
    flags = tifffile.imread(out / "flags.tif")
    assert (flags[small_sample.dead] & 4).all()
    with open(out / "flags.csv", newline="") as f:
        legend = {int(row["bit"]): int(row["pixels"]) for row in csv.DictReader(f)}
    assert legend[4] == small_sample.dead.sum() and legend[1] > 0 and legend[2] > 0


@pytest.mark.parametrize("argv, match", [
    (["--roi", "0:100,0:10"], "does not fit in the 48 x 64 image"),
    (["--roi", "a:b"], "ROW0:ROW1,COL0:COL1"),
    (["--bin", "0"], "--bin 0 is out of range: it must lie between 1 and 64"),
])
def test_bad_preparation_options(small_sample_file, paths, tmp_path, capsys, argv, match):
    code = main(["map", str(small_sample_file), *refs(paths), *argv, "--out", str(tmp_path / "o"), *FAST])
    assert code == 1 and match in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_search_references_ranks_the_missing_phase_first(small_sample_file, paths, tmp_path, capsys):
    out = tmp_path / "search"
    library = str(bundled_reference_paths()["Fe3O4"].parent)
    code = main(["search-references", str(small_sample_file), *refs(paths), "--library", library,
                 "--out", str(out), "--quiet"])
    assert code == 0
    regions = tifffile.imread(out / "unexplained.tif")
    assert regions.dtype == np.uint16 and regions.max() >= 1
    with open(out / "candidates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:4] == ["region", "rank", "name", "score"]
    assert rows[0]["region"] == "1" and rows[0]["rank"] == "1" and rows[0]["name"] == "Fe3O4"
    assert "Fe3O4" in capsys.readouterr().out


def test_compare_models_prefers_the_set_with_the_missing_phase(small_sample_file, paths, tmp_path):
    out = tmp_path / "compare"
    three = ",".join(paths[n] for n in ("Fe", "FeO", "Fe2O3"))
    code = main(["compare-models", str(small_sample_file), "--set", f"three={three}",
                 "--set", f"four={three},{paths['Fe3O4']}", "--out", str(out), "--quiet"])
    assert code == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["preferred"] == "four" and set(comparison["sets"]) == {"three", "four"}
    assert tifffile.imread(out / "preferred.tif").shape == (48, 64)


def test_run_reproduces_map_from_a_recipe(small_sample_file, paths, tmp_path):
    recipe = Settings(references=tuple(ReferenceSpec(paths[n]) for n in ("Fe", "FeO", "Fe2O3")),
                    stack=str(small_sample_file), n_per_class=60, n_trees=8, seed=3)
    path = write_recipe(tmp_path / "recipe.toml", recipe)
    assert main(["run", str(path), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["map", str(small_sample_file), *refs(paths), "--out", str(tmp_path / "b"), "--seed", "3",
                 *FAST]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a" / "labels.tif"),
                                  tifffile.imread(tmp_path / "b" / "labels.tif"))


def test_run_names_missing_files(tmp_path, paths, capsys):
    recipe = Settings(references=(ReferenceSpec(paths["Fe"]),), stack=str(tmp_path / "gone.tif"))
    path = write_recipe(tmp_path / "recipe.toml", recipe)
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "gone.tif" in capsys.readouterr().err


def test_map_on_local_workers_equals_the_single_process_run(small_sample_file, paths, tmp_path):
    """--workers starts a real LocalCluster on loopback; the maps must not change."""
    single, cluster = tmp_path / "single", tmp_path / "cluster"
    assert main(["map", str(small_sample_file), *refs(paths), "--out", str(single), *FAST]) == 0
    assert main(["map", str(small_sample_file), *refs(paths), "--out", str(cluster), "--workers", "2", *FAST]) == 0
    for name in ("labels.tif", "fractions.tif", "distance.tif", "mask.tif", "flags.tif"):
        np.testing.assert_array_equal(tifffile.imread(cluster / name), tifffile.imread(single / name))


def test_run_on_local_workers_equals_the_plain_run(small_sample_file, paths, tmp_path):
    recipe = Settings(references=tuple(ReferenceSpec(paths[n]) for n in ("Fe", "FeO", "Fe2O3")),
                    stack=str(small_sample_file), n_per_class=60, n_trees=8, seed=3)
    path = write_recipe(tmp_path / "recipe.toml", recipe)
    assert main(["run", str(path), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", str(path), "--out", str(tmp_path / "b"), "--workers", "2", "--quiet"]) == 0
    for name in ("labels.tif", "fractions.tif"):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "a" / name), tifffile.imread(tmp_path / "b" / name))
