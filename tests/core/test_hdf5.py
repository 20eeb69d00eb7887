"""HDF5 stacks in the layouts beamlines publish: NXstxm, Data Exchange, FXI/TXM-Sandbox, any dataset.

Files are written with h5py following each layout's public definition (the NXstxm NXDL,
MANTiS's Data Exchange writer, the NSLS-II FXI exporter, TXM-Sandbox's registration
output); the real STXM stack of ../shared/data is written as NXstxm with its i0.xsp as
the control monitor and must give what its .hdr gives with --i0.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile

from xafsmap.cli import main
from xafsmap.core.io import hdf5
from xafsmap.core.io.stack import plane_view, read_stack, stack_info
from xafsmap.core.simulate.sample import bundled_reference_paths

FAST = ["--spectra-per-class", "60", "--trees", "8", "--quiet"]


@pytest.fixture(scope="module")
def stxm_counts(shared_data):
    from xafsmap.core.io.stxm import read_sdf_counts

    folder = shared_data / "stxm-fe-l" / "71214078"
    counts, energies = read_sdf_counts(folder / "71214078.hdr")
    table = np.loadtxt(folder / "i0.xsp")
    return folder, counts.compute(), energies, np.interp(energies, table[:, 0], table[:, 1])


def write_nxstxm(path, counts, energies, *, control=None, order="EYX", style="axes", units="eV", group="counter0",
                 mode="w", default=None):
    """An NXstxm entry as the NXDL lays it out; ``counts`` are (E, Y, X) and stored in ``order``."""
    stored = np.transpose(counts, ["EYX".index(c) for c in order])
    names = {"E": "energy", "Y": "sample_y", "X": "sample_x"}
    with h5py.File(path, mode) as f:
        entry = f.require_group("entry1")
        entry.attrs["NX_class"] = "NXentry"
        if "definition" not in entry:
            entry["definition"] = "NXstxm"
        data = entry.create_group(group)
        data.attrs["NX_class"] = "NXdata"
        data["stxm_scan_type"] = "sample image stack"
        data.create_dataset("data", data=stored, chunks=True, compression="gzip")
        data["energy"] = energies / (1000.0 if units == "keV" else 1.0)
        data["energy"].attrs["units"] = units
        data["sample_y"] = np.arange(counts.shape[1], dtype=float)
        data["sample_x"] = np.arange(counts.shape[2], dtype=float)
        if style == "axes":  # NeXus 2014: NXdata@signal and @axes
            data.attrs["signal"] = "data"
            data.attrs["axes"] = [names[c] for c in order]
        elif style == "signal-axes":  # old style: the signal's @axes "a:b:c"
            data["data"].attrs["signal"] = 1
            data["data"].attrs["axes"] = ":".join(names[c] for c in order)
        elif style == "axis":  # oldest: each axis field says its dimension, 1-based
            for i, c in enumerate(order, start=1):
                data[names[c]].attrs["axis"] = i
        if control is not None:
            monitor = entry.require_group("control")
            monitor.attrs["NX_class"] = "NXmonitor"
            monitor["data"] = control
        if default:
            f.attrs["default"], entry.attrs["default"] = "entry1", default
    return path


def write_data_exchange(path, stack, energies, *, white=None, white_energy=None, axes=None):
    """MANTiS's Data Exchange spectromicroscopy layout: exchange/data is (x, y, energy)."""
    with h5py.File(path, "w") as f:
        f["implements"] = "information:exchange:spectromicroscopy"
        f["version"] = "1.0"
        exchange = f.create_group("exchange")
        order = axes or "XYE"
        data = exchange.create_dataset("data", data=np.transpose(stack, ["EYX".index(c) for c in order]))
        data.attrs["signal"] = 1
        data.attrs["axes"] = ":".join({"E": "energy", "Y": "y", "X": "x"}[c] for c in order) if axes else "x:y"
        exchange["energy"] = energies
        exchange["energy"].attrs["units"] = "eV"
        exchange["x"], exchange["y"] = np.arange(stack.shape[2], dtype=float), np.arange(stack.shape[1], dtype=float)
        norm = f.create_group("spectromicroscopy/normalization")
        norm["white_spectrum"] = np.ones(len(energies)) if white is None else white
        norm["white_spectrum_energy"] = energies if white_energy is None else white_energy
    return path


def test_real_stxm_stack_as_nxstxm_reads_as_its_hdr_with_i0(tmp_path, stxm_counts):
    folder, counts, energies, i0 = stxm_counts
    nxs = write_nxstxm(tmp_path / "stxm.nxs", counts, energies, control=i0)
    stack = read_stack(nxs)
    reference = read_stack(folder / "71214078.hdr", i0=folder / "i0.xsp")
    np.testing.assert_array_equal(stack.energies, reference.energies)
    np.testing.assert_array_equal(stack.data.compute(), reference.data.compute())
    assert stack.data.chunks[0] == (energies.size,)  # per-pixel work: every energy in each band
    assert plane_view(stack).chunksize == (1, 125, 125)  # display: one image per chunk
    assert any("control monitor /entry1/control/data" in note for note in stack.notes)
    assert any("123 energies (700–730.353 eV)" in note for note in stack.notes)


def test_real_stxm_stack_as_nxstxm_maps_to_the_labels_of_its_hdr(tmp_path, stxm_counts):
    folder, counts, energies, i0 = stxm_counts
    nxs = write_nxstxm(tmp_path / "stxm.nxs", counts, energies, control=i0)
    refs = [arg for name in ("oxidized.r", "reduced.r") for arg in ("--reference", str(folder / name))]
    assert main(["map", str(nxs), *refs, "--out", str(tmp_path / "nxs"), *FAST]) == 0
    assert main(["map", str(folder / "71214078.hdr"), "--i0", str(folder / "i0.xsp"), *refs,
                 "--out", str(tmp_path / "hdr"), *FAST]) == 0
    labels = tifffile.imread(tmp_path / "nxs" / "labels.tif")
    np.testing.assert_array_equal(labels, tifffile.imread(tmp_path / "hdr" / "labels.tif"))
    assert len(np.unique(labels)) >= 3
    report = json.loads((tmp_path / "nxs" / "report.json").read_text())
    assert report["inputs"]["stack"]["sha256"]["stxm.nxs"]


@pytest.fixture
def counts():
    rng = np.random.default_rng(5)
    return rng.uniform(200.0, 900.0, (7, 6, 5)).astype(np.float32)


ENERGIES = np.linspace(7100.0, 7160.0, 7)


@pytest.mark.parametrize("order, style", [("EYX", "axes"), ("YXE", "axes"), ("XYE", "signal-axes"),
                                          ("YEX", "axis"), ("EYX", "none")])
def test_nxdata_axis_order_from_any_nexus_style(tmp_path, counts, order, style):
    control = np.linspace(1000.0, 1200.0, 7)
    path = write_nxstxm(tmp_path / "s.nxs", counts, ENERGIES, control=control, order=order, style=style)
    stack = read_stack(path)
    np.testing.assert_allclose(stack.data.compute(), -np.log(counts / control[:, None, None]), rtol=1e-6)
    np.testing.assert_array_equal(stack.energies, ENERGIES)


def test_control_monitor_of_the_data_shape_is_a_flat_per_pixel(tmp_path, counts):
    flat = np.random.default_rng(1).uniform(1000.0, 2000.0, counts.shape).astype(np.float32)
    path = write_nxstxm(tmp_path / "s.nxs", counts, ENERGIES, control=np.transpose(flat, (1, 2, 0)), order="YXE")
    np.testing.assert_allclose(read_stack(path).data.compute(), -np.log(counts / flat), rtol=1e-6)


def test_nxstxm_without_monitor_needs_an_i0_and_a_given_i0_replaces_the_monitor(tmp_path, counts):
    path = write_nxstxm(tmp_path / "s.nxs", counts, ENERGIES)
    with pytest.raises(ValueError, match="NXstxm stack .* holds transmitted counts and no I0 of its own"):
        read_stack(path)
    i0 = np.full(7, 1000.0)
    np.testing.assert_allclose(read_stack(path, i0=i0).data.compute(), -np.log(counts / 1000.0), rtol=1e-6)
    with_monitor = write_nxstxm(tmp_path / "m.nxs", counts, ENERGIES, control=np.full(7, 5.0))
    stack = read_stack(with_monitor, i0=i0)
    np.testing.assert_allclose(stack.data.compute(), -np.log(counts / 1000.0), rtol=1e-6)
    assert any("is not used: an I0 or flat was given" in note for note in stack.notes)


def test_several_nxdata_stacks_need_a_default_or_a_name(tmp_path, counts):
    path = write_nxstxm(tmp_path / "s.nxs", counts, ENERGIES, control=np.ones(7), group="counter0")
    write_nxstxm(path, counts * 2, ENERGIES, group="counter1", mode="a")
    with pytest.raises(ValueError, match=r"holds 2 NXdata stacks \(/entry1/counter0, /entry1/counter1\); name one"):
        read_stack(path)
    named = read_stack(f"{path}:/entry1/counter1")
    np.testing.assert_allclose(named.data.compute(), -np.log(counts * 2), rtol=1e-6)
    with h5py.File(path, "a") as f:
        f.attrs["default"], f["entry1"].attrs["default"] = "entry1", "counter1"
    np.testing.assert_allclose(read_stack(path).data.compute(), -np.log(counts * 2), rtol=1e-6)


def test_kev_energies_are_converted_and_said(tmp_path, counts):
    path = write_nxstxm(tmp_path / "s.nxs", counts, ENERGIES, control=np.ones(7), units="keV")
    stack = read_stack(path)
    np.testing.assert_allclose(stack.energies, ENERGIES)
    assert any("are in keV (its @units): converted to eV" in note for note in stack.notes)


def test_given_energies_override_the_file_with_a_note(tmp_path, counts):
    path = write_nxstxm(tmp_path / "s.nxs", counts, ENERGIES, control=np.ones(7))
    sidecar = tmp_path / "other.txt"
    sidecar.write_text("\n".join(str(e + 1.5) for e in ENERGIES))
    stack = read_stack(path, energies=sidecar)
    np.testing.assert_allclose(stack.energies, ENERGIES + 1.5)
    assert any(note.startswith("energies from other.txt override the 7 in the file") for note in stack.notes)


def test_data_exchange_od_maps_to_the_labels_of_its_tiff(tmp_path, small_sample, small_sample_file, capsys):
    dx = write_data_exchange(tmp_path / "sample.hdf5", small_sample.stack, small_sample.energies)
    stack = read_stack(dx)
    np.testing.assert_array_equal(stack.data.compute(), small_sample.stack)
    assert any("taken as optical density" in note for note in stack.notes)
    refs = [str(p) for name, p in bundled_reference_paths().items() if name in ("Fe", "FeO", "Fe2O3")]
    args = [arg for ref in refs for arg in ("--reference", ref)]
    assert main(["map", str(dx), *args, "--out", str(tmp_path / "dx"), *FAST]) == 0
    assert main(["map", str(small_sample_file), *args, "--out", str(tmp_path / "tif"), *FAST]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "dx" / "labels.tif"),
                                  tifffile.imread(tmp_path / "tif" / "labels.tif"))
    # what reading decided is said on the terminal and kept in the report
    notes = json.loads((tmp_path / "dx" / "report.json").read_text())["stack_notes"]
    assert notes == list(stack.notes)
    assert f"xafsmap: note: {notes[0]}" in capsys.readouterr().err


def test_data_exchange_counts_with_white_spectrum_on_its_own_grid(tmp_path, small_sample):
    od, energies = small_sample.stack[:, :8, :9], small_sample.energies
    grid = np.linspace(energies[0] - 5, energies[-1] + 5, 50)
    white = 1000.0 + 2.0 * (grid - grid[0])
    counts = (np.interp(energies, grid, white)[:, None, None] * np.exp(-od)).astype(np.float32)
    dx = write_data_exchange(tmp_path / "c.h5", counts, energies, white=white, white_energy=grid, axes="YXE")
    stack = read_stack(dx)
    np.testing.assert_allclose(stack.data.compute(), od, atol=2e-5)
    assert "exchange/data read as (Y, X, E) = (y, x, energy)" in stack.notes


def write_fxi(path, img, energies_kev, *, flat, dark):
    with h5py.File(path, "w") as f:
        f["img_xanes"], f["img_bkg"], f["img_dark"] = img, flat, dark
        f["X_eng"] = energies_kev
        f["Magnification"], f["Pixel Size"] = 10.0, "21.6nm"
    return path


def test_fxi_counts_with_flat_and_dark_and_the_exporters_transmission(tmp_path, small_sample):
    od = small_sample.stack[:, :10, :12]
    rng = np.random.default_rng(3)
    dark = rng.uniform(90.0, 110.0, (1, 10, 12)).astype(np.float32)
    flat = rng.uniform(3000.0, 4000.0, od.shape).astype(np.float32)
    counts = (dark + (flat - dark) * np.exp(-od)).astype(np.float32)
    raw = read_stack(write_fxi(tmp_path / "xanes_scan2_id_1.h5", counts, small_sample.energies / 1000,
                               flat=flat, dark=dark))
    np.testing.assert_allclose(raw.data.compute(), od, atol=1e-4)
    np.testing.assert_allclose(raw.energies, small_sample.energies)
    assert any("as TXM-Sandbox" in note for note in raw.notes)
    exported = (counts - dark) / (flat - dark)  # the FXI exporter's img_xanes
    norm = read_stack(write_fxi(tmp_path / "xanes_scan2_id_2.h5", exported, small_sample.energies / 1000,
                                flat=flat, dark=dark))
    np.testing.assert_allclose(norm.data.compute(), od, atol=1e-4)
    assert any("already (I-D)/(F-D)" in note for note in norm.notes)


def test_txm_sandbox_registered_xanes(tmp_path, small_sample):
    with h5py.File(tmp_path / "trial_reg.h5", "w") as f:
        f["registration_results/reg_results/registered_xanes2D"] = small_sample.stack
        f["registration_results/reg_results/eng_list"] = small_sample.energies / 1000
    stack = read_stack(tmp_path / "trial_reg.h5")
    np.testing.assert_array_equal(stack.data.compute(), small_sample.stack)
    np.testing.assert_allclose(stack.energies, small_sample.energies)


def test_any_dataset_with_axes_and_energies_from_hdf5_or_text(tmp_path, small_sample):
    path = tmp_path / "any.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("scan/frames", data=np.transpose(small_sample.stack, (2, 0, 1)), chunks=(8, 24, 8))
        f["scan/mono"] = small_sample.energies
    with pytest.raises(ValueError, match="no energies for any.h5"):
        read_stack(f"{path}:/scan/frames", axes="XEY")
    stack = read_stack(f"{path}:/scan/frames", axes="XEY", energies=f"{path}:/scan/mono")
    np.testing.assert_array_equal(stack.data.compute(), small_sample.stack)
    (tmp_path / "any.energies.txt").write_text("\n".join(map(str, small_sample.energies)))
    sidecar = read_stack(f"{path}:/scan/frames", axes="XEY")
    np.testing.assert_array_equal(sidecar.energies, small_sample.energies)
    assert stack_info(sidecar)["sources"]["axes"] == "XEY"
    assert sidecar.sources["stack_file"] == str(path)  # so that report.json hashes the file


def test_reading_is_lazy_and_bands_follow_the_hdf5_chunks(tmp_path, small_sample, monkeypatch):
    path = tmp_path / "lazy.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("stack", data=small_sample.stack, chunks=(5, 16, 64), compression="gzip")
    reads = []
    real = hdf5._H5Array.__getitem__
    monkeypatch.setattr(hdf5._H5Array, "__getitem__", lambda self, key: reads.append(key) or real(self, key))
    stack = read_stack(f"{path}:/stack", energies=small_sample.energies)
    assert reads == []
    assert stack.data.chunks[0] == (small_sample.stack.shape[0],)
    assert all(c % 16 == 0 for c in stack.data.chunks[1][:-1])  # whole HDF5 chunks per band
    band = stack.data[:, :16].compute()
    assert len(reads) == 1
    np.testing.assert_array_equal(band, small_sample.stack[:, :16])
    np.testing.assert_array_equal(plane_view(stack)[3].compute(), small_sample.stack[3])


def test_a_distributed_worker_reopens_the_same_graph(tmp_path, counts):
    from xafsmap.core.mapping.stacksource import stack_source

    path = write_nxstxm(tmp_path / "s.nxs", counts, ENERGIES, control=np.full(7, 1000.0))
    assert stack_source(read_stack(path)).shape == counts.shape


def _write(tmp_path, name, build):
    path = tmp_path / name
    if build is None:
        return path
    if isinstance(build, bytes):
        path.write_bytes(build)
        return path
    with h5py.File(path, "w") as f:
        build(f)
    return path


BAD = {
    "missing file": ("gone.h5", None, FileNotFoundError, "HDF5 file not found"),
    "not hdf5": ("text.h5", b"energy,mu\n1,2\n", ValueError, "it is not an HDF5 file"),
    "no stack": ("empty.h5", lambda f: f.create_dataset("x", data=np.ones((4, 4))), ValueError,
                 r"cannot read empty.h5: no NXentry/NXdata .* \(the file holds no 3-D dataset\)"),
    "unknown layout lists stacks": ("other.h5", lambda f: f.create_dataset("a/b", data=np.ones((3, 4, 5))),
                                    ValueError, r"name the dataset as .*other.h5:/path/to/dataset \(3-D datasets: "
                                                r"/a/b \(3, 4, 5\)\)"),
    "2-d dataset": ("flat.h5:/img", lambda f: f.create_dataset("img", data=np.ones((4, 4))), ValueError,
                    r"dataset /img holds float64 of shape \(4, 4\); expected a 3-D stack"),
    "no such dataset": ("a.h5:/nope", lambda f: f.create_dataset("x", data=np.ones(2)), ValueError,
                        "no object /nope in the file"),
    "data exchange 4-d": ("dx.h5", lambda f: (f.create_dataset("exchange/data", data=np.ones((2, 3, 4, 5))),
                                              f.create_dataset("exchange/energy", data=np.arange(4.0))), ValueError,
                          r"exchange/data has shape \(2, 3, 4, 5\); only 3-D"),
    "data exchange no energy": ("dx.h5", lambda f: f.create_dataset("exchange/data", data=np.ones((2, 3, 4))),
                                ValueError, "has exchange/data but no exchange/energy"),
    "energies do not match": ("dx.h5", lambda f: (f.create_dataset("exchange/data", data=np.ones((2, 3, 4))),
                                                  f.create_dataset("exchange/energy", data=np.arange(5.0) + 700)),
                              ValueError, r"has 4 energies along its XYE axes but .*/exchange/energy lists 5"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_wrong_layouts_give_one_clear_line(tmp_path, case):
    name, build, error, match = BAD[case]
    path = _write(tmp_path, name.split(":")[0], build)
    spec = f"{path}:{name.split(':')[1]}" if ":" in name else path
    with pytest.raises(error, match=match) as caught:
        read_stack(spec)
    assert "\n" not in str(caught.value)


def test_monitor_of_the_wrong_shape_and_bad_axes(tmp_path, counts, small_sample_file):
    path = write_nxstxm(tmp_path / "s.nxs", counts, ENERGIES, control=np.ones(3))
    with pytest.raises(ValueError, match=r"control monitor /entry1/control/data has shape \(3,\); expected \(7,\)"):
        read_stack(path)
    ok = write_nxstxm(tmp_path / "ok.nxs", counts, ENERGIES, control=np.ones(7))
    with pytest.raises(ValueError, match="must name the 3 dimensions as a permutation of EYX"):
        read_stack(ok, axes="EYZ")
    with pytest.raises(ValueError, match="axes= applies to HDF5 datasets"):
        read_stack(small_sample_file, axes="EYX")


def test_cli_info_describes_an_hdf5_stack_and_refuses_a_bad_one(tmp_path, counts, capsys):
    path = write_nxstxm(tmp_path / "s.nxs", counts, ENERGIES, control=np.ones(7))
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [7, 6, 5] and info["energy_min_ev"] == 7100.0
    assert any("control monitor" in note for note in info["notes"])
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    assert main(["info", str(tmp_path / "bad.h5")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"xafsmap: error: cannot read {tmp_path / 'bad.h5'}: it is not an HDF5 file"]


def test_compressed_frames_taller_than_bands_are_noted(tmp_path):
    path = tmp_path / "frames.h5"
    with h5py.File(path, "w") as f:  # 200 frames of 1000 x 100, one gzip'd frame per chunk (never written: fill)
        f.create_dataset("frames", (200, 1000, 100), np.float32, chunks=(1, 1000, 100), compression="gzip",
                         fillvalue=0.5)
    stack = read_stack(f"{path}:/frames", energies=np.arange(200.0) + 7000)
    band = stack.data.chunks[1][0]
    assert band < 1000 and stack.data.chunks[0] == (200,)
    assert any(f"decompressed by {-(-1000 // band)} row bands" in note for note in stack.notes)
    assert float(stack.data[:, :band].mean().compute()) == 0.5
