"""Spectra out: XDI 1.0 files and Athena projects that our readers and Larch's read back as written."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile

from xafsmap.cli import main
from xafsmap.core.io.athena import athena_records
from xafsmap.core.io.export import SpectrumRecord, read_xdi_element, write_athena, write_spectra, write_xdi
from xafsmap.core.mapping.mapspectra import mean_spectra
from xafsmap.core.spectra.normalize import normalize
from xafsmap.core.io.references import read_reference, read_references
from xafsmap.core.simulate.sample import bundled_reference_paths, bundled_references

FAST = ["--spectra-per-class", "60", "--trees", "8", "--quiet"]


@pytest.fixture(scope="module")
def spectra():
    """Three real normalized Fe K-edge spectra (names with characters Perl and XDI must carry)."""
    refs = bundled_references(("Fe", "FeO", "Fe2O3"))
    names = ["Fe foil", "FeO: wüstite 25:75", "it's Fe2O3 \\ hematite"]
    out = []
    for name, ref in zip(names, refs):
        found = normalize(ref.mu, ref.energies)
        out.append(SpectrumRecord(name, ref.energies, np.asarray(found.norm, np.float64), float(found.e0),
                                  found.params))
    return out


def test_xdi_round_trip_through_our_reader(tmp_path, spectra):
    record = spectra[1]
    path = write_xdi(tmp_path / "feo.xdi", record.energies, record.mu, name=record.name, element="fe", edge="k",
                     fields={"xafsmap.pixels": 42}, comments=["class 2 of maps/"])
    back = read_reference(path)
    np.testing.assert_array_equal(back.energies, record.energies)
    np.testing.assert_array_equal(back.mu, record.mu)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# XDI/1.0 xafsmap/")
    assert {"# Column.1: energy eV", "# Column.2: normtrans", "# Element.symbol: Fe", "# Element.edge: K",
            "# Sample.name: FeO: wüstite 25:75", "# xafsmap.pixels: 42", "# ///", "#----",
            "# energy normtrans"} <= set(lines)
    assert read_xdi_element(path) == ("Fe", "K")


def test_athena_project_round_trip_through_our_reader(tmp_path, spectra):
    path = write_athena(tmp_path / "classes.prj", spectra, element="Fe", edge="K")
    text = gzip.decompress(path.read_bytes()).decode()
    assert text.startswith("# Athena project file -- Demeter version 0.9.26")
    found, skipped = athena_records(text)
    assert skipped == [] and [name for name, _, _ in found] == [r.name for r in spectra]
    for (_, energies, mu), record in zip(found, spectra):
        np.testing.assert_array_equal(energies, record.energies)
        np.testing.assert_array_equal(mu, record.mu)
    assert [r.name for r in read_references(path)] == [r.name for r in spectra]
    plain = write_athena(tmp_path / "plain.prj", spectra[:1], compress=False)
    assert plain.read_text().count("[record]") == 1


@pytest.mark.parametrize("call, match", [
    (lambda p, s: write_xdi(p, s.energies, s.mu, name="x", element="Xx", edge="K"), "not a chemical symbol"),
    (lambda p, s: write_xdi(p, s.energies, s.mu, name="x", element="Fe", edge="Q"), "not an XDI edge name"),
    (lambda p, s: write_xdi(p, s.energies, s.mu, name="x", element="Fe", edge="K", column="norm mu"),
     "must be one word"),
    (lambda p, s: write_xdi(p, s.energies[::-1], s.mu, name="x", element="Fe", edge="K"), "strictly increasing"),
    (lambda p, s: write_xdi(p, s.energies, s.mu * np.nan, name="x", element="Fe", edge="K"), "non-finite mu"),
    (lambda p, s: write_athena(p, []), "at least one spectrum"),
    (lambda p, s: write_athena(p, [SpectrumRecord("undefined phase", s.energies, s.mu)]), "contains 'undef'"),
])
def test_bad_spectra_are_refused_and_nothing_is_written(tmp_path, spectra, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path / "out", spectra[0])
    assert list(tmp_path.iterdir()) == []


LARCH_CHECK = textwrap.dedent("""
    import json, sys
    import numpy as np

    def check(expected_path):
        from larch.io import read_athena, read_xdi
        expected = json.load(open(expected_path))
        project = read_athena(expected["prj"])
        labels = [group.label for group in project.groups.values()]
        assert labels == [s["name"] for s in expected["spectra"]], labels
        for group, spectrum in zip(project.groups.values(), expected["spectra"]):
            assert np.array_equal(group.energy, spectrum["energies"]), group.label
            assert np.array_equal(group.mu, spectrum["mu"]), group.label
        for path, spectrum in zip(expected["xdi"], expected["spectra"]):
            xdi = read_xdi(path)
            assert (xdi.element, xdi.edge) == ("Fe", "K"), (xdi.element, xdi.edge)
            assert np.array_equal(xdi.energy, spectrum["energies"]) and np.array_equal(xdi.normtrans, spectrum["mu"])
        return f"larch read {len(labels)} records and {len(expected['xdi'])} XDI files"

    if __name__ == "__main__":
        print(check(sys.argv[1]))
""")


def test_larch_reads_the_project_and_every_xdi(tmp_path, spectra):
    """Runs in-process where Larch is importable, or with XAFSMAP_LARCH_PYTHON=/path/to/python."""
    prj = write_athena(tmp_path / "classes.prj", spectra, element="Fe", edge="K")
    xdi = [str(write_xdi(tmp_path / f"{i}.xdi", s.energies, s.mu, name=s.name, element="Fe", edge="K"))
           for i, s in enumerate(spectra)]
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"prj": str(prj), "xdi": xdi, "spectra": [
        {"name": s.name, "energies": s.energies.tolist(), "mu": s.mu.tolist()} for s in spectra]}))
    python = os.environ.get("XAFSMAP_LARCH_PYTHON")
    if python:
        out = subprocess.run([python, "-c", LARCH_CHECK, str(expected)], capture_output=True, text=True,
                             cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "larch read 3 records and 3 XDI files" in out.stdout
        return
    pytest.importorskip("larch.io", reason="xraylarch is not installed here (set XAFSMAP_LARCH_PYTHON to a "
                                           "Python that has it to run this check)")
    namespace = {"__name__": "larch_check"}
    exec(compile(LARCH_CHECK, "larch_check", "exec"), namespace)
    assert namespace["check"](str(expected)) == "larch read 3 records and 3 XDI files"


def _pixelwise_means(stack, energies, labels, n, normalization):
    """The known answer, pixel by pixel in plain numpy: normalize each pixel, average per label."""
    flat = stack.reshape(stack.shape[0], -1)
    norm = np.asarray(normalize(flat, energies, **normalization).norm, np.float64)
    lab = labels.ravel()
    return np.array([np.nanmean(norm[:, lab == k], axis=1) for k in range(1, n + 1)])


def test_mean_spectra_known_answer_numpy_and_dask(small_sample):
    import dask.array as da

    stack = small_sample.stack
    labels = np.zeros(stack.shape[1:], np.int64)
    labels[:20, :30], labels[25:, 10:], labels[40:, :5] = 1, 2, 3
    labels[(small_sample.edge_step < 0.2) | small_sample.dead] = 0  # classes hold sample pixels, as in a map
    normalization = {"e0": 7123.0, "pre1": -73.0, "pre2": -15.0}
    means, pixels = mean_spectra(stack, small_sample.energies, labels, n_labels=4, normalization=normalization,
                                 rows=7)
    expected = _pixelwise_means(stack, small_sample.energies, labels, 3, normalization)
    np.testing.assert_allclose(means[:3], expected, rtol=1e-6, atol=1e-6)
    assert pixels.tolist() == [*np.bincount(labels.ravel(), minlength=5)[1:4], 0] and np.all(np.isnan(means[3]))
    assert pixels[:3].min() > 20
    holed, (row, col) = stack.copy(), np.argwhere(labels == 1)[0]
    holed[:, row, col] = np.nan  # an invalid pixel is left out of its class's mean, not propagated
    with_hole, _ = mean_spectra(holed, small_sample.energies, labels, n_labels=3, normalization=normalization)
    assert np.all(np.isfinite(with_hole))
    left_out = labels.copy()
    left_out[row, col] = 0
    # float32 normalization takes another (masked) path in a band holding NaN: agreement to 5e-4
    np.testing.assert_allclose(with_hole, _pixelwise_means(stack, small_sample.energies, left_out, 3,
                                                           normalization), atol=5e-4)
    lazy, _ = mean_spectra(da.from_array(stack, chunks=(-1, 16, -1)), small_sample.energies, labels, n_labels=4,
                           normalization=normalization)
    np.testing.assert_array_equal(lazy, means)
    with pytest.raises(ValueError, match=r"the labels are \(3, 3\) pixels but the stack's images are \(48, 64\)"):
        mean_spectra(stack, small_sample.energies, labels[:3, :3], n_labels=3)


@pytest.fixture(scope="module")
def refs():
    paths = bundled_reference_paths()
    return [arg for name in ("Fe", "FeO", "Fe2O3") for arg in ("--reference", str(paths[name]))]


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, small_sample_file, refs):
    out = tmp_path_factory.mktemp("export") / "maps"
    assert main(["map", str(small_sample_file), *refs, "--out", str(out), "--roi", "4:44,2:62", "--bin", "2",
                 *FAST]) == 0
    return out


def test_export_writes_each_class_mean_on_the_maps_grid(tmp_path, mapped, small_sample):
    assert main(["export", str(mapped), "--prj", str(tmp_path / "c.prj"), "--xdi", str(tmp_path / "xdi"),
                 "--quiet"]) == 0
    report = json.loads((mapped / "report.json").read_text())
    labels = tifffile.imread(mapped / "labels.tif")
    # the known answer, without xafsmap's reader or prepare: crop and bin by hand
    crop = small_sample.stack[:, 4:44, 2:62]
    binned = np.nanmean(crop.reshape(crop.shape[0], 20, 2, 30, 2), axis=(2, 4))
    normalization = report["parameters"]["normalization"]
    expected = _pixelwise_means(binned, small_sample.energies, labels, len(report["classes"]), normalization)
    counts = np.bincount(labels.ravel(), minlength=len(report["classes"]) + 1)[1:]
    project = {name: mu for name, _, mu in read_references_as_tuples(tmp_path / "c.prj")}
    files = sorted((tmp_path / "xdi").glob("*.xdi"))
    assert len(files) == len(project) == int(np.count_nonzero(counts))
    for entry, mean, count in zip(report["classes"], expected, counts):
        if count == 0:
            continue
        np.testing.assert_allclose(project[entry["name"]], mean, rtol=1e-5, atol=1e-6)
        xdi = next(f for f in files if f.name.startswith(f"{entry['label']:02d}_"))
        np.testing.assert_array_equal(read_reference(xdi).mu, project[entry["name"]])
        assert f"# xafsmap.pixels: {count}" in xdi.read_text()
    assert read_xdi_element(files[0]) == ("Fe", "K")  # from the references' XDI headers


def read_references_as_tuples(path):
    return [(r.name, r.energies, r.mu) for r in read_references(path)]


def test_export_of_an_hdf5_map_reopens_the_file_and_its_energies(tmp_path, small_sample, refs):
    import h5py

    path = tmp_path / "dx.h5"
    with h5py.File(path, "w") as f:
        f["exchange/data"] = np.transpose(small_sample.stack, (2, 1, 0))
        f["exchange/energy"] = small_sample.energies
    assert main(["map", str(path), *refs, "--out", str(tmp_path / "maps"), "--zarr", *FAST]) == 0
    assert main(["export", str(tmp_path / "maps"), "--prj", str(tmp_path / "dx.prj"), "--quiet"]) == 0
    names = [r.name for r in read_references(tmp_path / "dx.prj")]
    assert names[:3] == ["Fe", "FeO", "Fe2O3"]


def test_export_is_all_or_nothing(tmp_path, mapped, monkeypatch, capsys):
    import xafsmap.core.io.export as export

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", str(args[0]))

    monkeypatch.setattr(export, "write_athena", broken)
    assert main(["export", str(mapped), "--prj", str(tmp_path / "c.prj"), "--xdi", str(tmp_path / "xdi")]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, match", [
    ([], "give --prj FILE.prj and/or --xdi DIR: nothing to write"),
    (["--prj", "{tmp}/exists.prj"], "exists and is not empty; choose another or pass --overwrite"),
    (["--xdi", "{tmp}/full"], "exists and is not empty"),
    (["--prj", "{tmp}/a.prj", "--element", "Zz", "--edge", "K"], "'Zz' is not a chemical symbol"),
])
def test_export_refuses_bad_requests_in_one_line(tmp_path, mapped, capsys, extra, match):
    (tmp_path / "exists.prj").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert main(["export", str(mapped), *[e.format(tmp=tmp_path) for e in extra]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.prj", "full"]


def test_export_needs_a_map_folder_and_an_element(tmp_path, small_sample_file, capsys):
    assert main(["export", str(tmp_path), "--prj", str(tmp_path / "a.prj")]) == 1
    assert "is not an xafsmap map folder (no report.json)" in capsys.readouterr().err
    e_file = tmp_path / "plain.e"
    ref = bundled_references(("Fe",))[0]
    np.savetxt(e_file, np.c_[ref.energies, ref.mu])
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "report.json").write_text(json.dumps(
        {"inputs": {"stack": {"path": str(small_sample_file)}, "references": [{"spec": str(e_file)}]},
         "classes": [{"label": 1, "name": "Fe"}]}))
    assert main(["export", str(tmp_path / "maps"), "--prj", str(tmp_path / "a.prj")]) == 1
    assert "give --element and --edge (e.g. --element Fe --edge K)" in capsys.readouterr().err


def test_overwrite_never_replaces_a_project_xafsmap_did_not_write(tmp_path):
    """A user's own Athena project (here a copy of a real one) survives --overwrite."""
    import shutil

    from xafsmap.core.io.export import SpectrumRecord, write_spectra

    users = tmp_path / "standards.prj"
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "athena" / "Fe.prj"
    if shared.is_file():
        shutil.copy(shared, users)
    else:
        users.write_text("# Athena project file -- Demeter version 0.9.26\n# my own standards\n")
    before = users.read_bytes()
    e = np.linspace(7100.0, 7200.0, 50)
    record = SpectrumRecord("class 1", e, np.clip((e - 7110.0) / 10.0, 0, 1))
    with pytest.raises(ValueError, match="is not a project xafsmap wrote"):
        write_spectra([record], element="Fe", edge="K", prj=users, overwrite=True)
    assert users.read_bytes() == before
    ours = write_spectra([record], element="Fe", edge="K", prj=tmp_path / "ours.prj")[0]
    assert write_spectra([record], element="Fe", edge="K", prj=ours, overwrite=True) == [ours]
