"""``xafsmap explore`` end to end: its files, the shift map, the output-folder rule, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from xafsmap.cli import main


def test_explore_writes_every_output(small_sample_file, small_sample, tmp_path):
    out = tmp_path / "explored"
    assert main(["explore", str(small_sample_file), "--out", str(out), "--nmf", "4", "--quiet"]) == 0
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == sorted(["explore.json", "components.tif", "component_spectra.csv", "clusters.tif",
                            "cluster_spectra.csv", "cluster_spread.csv", "nmf_maps.tif", "nmf_spectra.csv",
                            "e50.tif", "whiteline.tif", "preedge.tif", "mask.tif"])
    report = json.loads((out / "explore.json").read_text())
    n, k = report["n_components"], report["clusters"]["k"]
    assert n == 4 and report["nmf"]["k"] == 4 and report["components"]["noise_floor"] > 1
    assert tifffile.imread(out / "components.tif").shape == (n, 48, 64)
    clusters = tifffile.imread(out / "clusters.tif")
    assert clusters.dtype == np.uint16 and clusters.max() == k
    assert np.array_equal(clusters > 0, tifffile.imread(out / "mask.tif") == 1)
    assert tifffile.imread(out / "nmf_maps.tif").shape == (4, 48, 64)
    assert tifffile.imread(out / "preedge.tif").shape == (2, 48, 64)
    for name, columns in (("component_spectra", n), ("cluster_spectra", k), ("nmf_spectra", 4)):
        lines = (out / f"{name}.csv").read_text().splitlines()
        assert lines[0].split(",")[0] == "energy" and len(lines[0].split(",")) == columns + 1
        assert len(lines) == small_sample.energies.size + 1


def test_explore_crops_and_bins_like_map(small_sample_file, tmp_path):
    out = tmp_path / "explored"
    assert main(["explore", str(small_sample_file), "--roi", "4:36,0:48", "--bin", "2", "--clusters", "3",
                 "--components", "2", "--out", str(out), "--quiet"]) == 0
    assert tifffile.imread(out / "e50.tif").shape == (16, 24)
    report = json.loads((out / "explore.json").read_text())
    assert report["grid"]["shape"] == [16, 24] and report["clusters"]["k"] == 3 and report["n_components"] == 2


def test_explore_with_a_shift_map_puts_edges_on_the_true_scale(shifted, small_sample, small_sample_file, tmp_path):
    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.io.tiff import write_stack
    from xafsmap.core.simulate.sample import bundled_reference_paths

    cal = tmp_path / "cal"
    assert main(["calibrate", str(shifted["foil"]), "--reference", str(bundled_reference_paths()["Fe"]),
                 "--out", str(cal), "--quiet"]) == 0
    # the shifted sample as a beamline records it: the values past either end of the scan
    # (NaN after resampling) are the nearest measured ones
    data = np.asarray(read_stack(shifted["sample"]).data)
    for index in range(1, data.shape[0]):
        data[index] = np.where(np.isnan(data[index]), data[index - 1], data[index])
    for index in range(data.shape[0] - 2, -1, -1):
        data[index] = np.where(np.isnan(data[index]), data[index + 1], data[index])
    nominal = write_stack(tmp_path / "nominal.tif", data, small_sample.energies)
    runs = {}
    for name, argv in (("plain", [str(small_sample_file)]), ("nominal", [str(nominal)]),
                       ("calibrated", [str(nominal), "--shift-map", str(cal / "shift.tif")])):
        assert main(["explore", *argv, "--clusters", "1", "--out", str(tmp_path / name), "--quiet"]) == 0
        runs[name] = tifffile.imread(tmp_path / name / "e50.tif")
    inner = (slice(4, -4), slice(4, -4))
    assert np.nanmedian(np.abs((runs["nominal"] - runs["plain"] + shifted["truth"])[inner])) < 0.15
    assert np.nanmedian(np.abs((runs["calibrated"] - runs["plain"])[inner])) < 0.15
    report = json.loads((tmp_path / "calibrated" / "explore.json").read_text())
    assert report["grid"]["energy_calibrated"] is True and report["components"]["energy_stride"] == 2


@pytest.mark.parametrize("argv, code, message", [
    (["--components", "0"], 1, "--components 0 is out of range: it must lie between 1 and 12"),
    (["--clusters", "many"], 2, "argument --clusters: give a whole number or auto, not 'many'"),
    (["--nmf", "9"], 1, "--nmf 9 is out of range: it must lie between 1 and 8"),
    (["--cluster-method", "ward"], 2, "argument --cluster-method: invalid choice: 'ward' (choose from 'kmeans', 'gmm')"),
    (["--roi", "0:99,0:10"], 1, "does not fit in the 48 x 64 image"),
])
def test_bad_options_end_with_one_line_and_write_nothing(argv, code, message, small_sample_file, tmp_path,
                                                         xafsmap_cli):
    """Values out of their declared range (exit 1) and unreadable ones (usage, exit 2): one line, nothing written."""
    out = tmp_path / "out"
    run = xafsmap_cli(["explore", str(small_sample_file), "--out", str(out), *argv])
    assert run.code == code and len(run.lines) == 1, run.lines
    assert run.lines[0].startswith(("xafsmap: error: ", "xafsmap explore: error: ")) and message in run.lines[0]
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_explore_follows_the_output_folder_rule(small_sample_file, tmp_path, xafsmap_cli):
    out = tmp_path / "out"
    first = xafsmap_cli(["explore", str(small_sample_file), "--out", str(out), "--clusters", "2", "--quiet"])
    assert first.code == 0 and first.lines == []
    again = xafsmap_cli(["explore", str(small_sample_file), "--out", str(out), "--quiet"])
    assert again.code == 1 and "exists" in again.lines[-1]
    replaced = xafsmap_cli(["explore", str(small_sample_file), "--out", str(out), "--clusters", "3", "--overwrite",
                            "--quiet"])
    assert replaced.code == 0
    assert json.loads((out / "explore.json").read_text())["clusters"]["k"] == 3
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    foreign = xafsmap_cli(["explore", str(small_sample_file), "--out", str(tmp_path / "mine"), "--overwrite"])
    assert foreign.code == 1 and (tmp_path / "mine" / "notes.txt").read_text() == "keep"
