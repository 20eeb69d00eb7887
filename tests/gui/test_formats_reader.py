"""napari's File > Open on HDF5/NeXus and Xradia stacks through the plugin's reader."""

import sys
from pathlib import Path

import h5py
import numpy as np

from xafsmap._reader import get_reader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _ole import write_ole, xradia_streams  # noqa: E402

ENERGIES = np.linspace(7100.0, 7160.0, 7)


def _nxstxm(path, *, control=True):
    counts = np.random.default_rng(0).uniform(200.0, 900.0, (7, 12, 10)).astype(np.float32)
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry1")
        entry.attrs["NX_class"] = "NXentry"
        entry["definition"] = "NXstxm"
        data = entry.create_group("data")
        data.attrs.update({"NX_class": "NXdata", "signal": "data", "axes": ["energy", "sample_y", "sample_x"]})
        data["data"], data["energy"] = counts, ENERGIES
        data["sample_y"], data["sample_x"] = np.arange(12.0), np.arange(10.0)
        if control:
            monitor = entry.create_group("control")
            monitor.attrs["NX_class"] = "NXmonitor"
            monitor["data"] = np.full(7, 1000.0)
    return path, counts


def test_nxstxm_opens_in_the_viewer_lazily_one_image_per_chunk(make_napari_viewer, tmp_path):
    path, counts = _nxstxm(tmp_path / "scan.nxs")
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="xafsmap")
    assert layer.data.shape == (7, 12, 10) and layer.data.chunksize == (1, 12, 10)
    np.testing.assert_allclose(np.asarray(layer.data[3]), -np.log(counts[3] / 1000.0), rtol=1e-6)
    np.testing.assert_array_equal(layer.metadata["energies"], ENERGIES)
    assert any("control monitor" in note for note in layer.metadata["notes"])


def test_txrm_opens_through_the_reader(tmp_path):
    images = np.random.default_rng(1).uniform(300.0, 900.0, (4, 6, 8)).astype(np.float32)
    write_ole(tmp_path / "x.txrm", xradia_streams(images, energies=ENERGIES[:4], reference=np.full((6, 8), 1e3)
                                                  .astype(np.float32)))
    [(data, meta, kind)] = get_reader(str(tmp_path / "x.txrm"))(str(tmp_path / "x.txrm"))
    assert kind == "image" and data.shape == (4, 6, 8)
    np.testing.assert_allclose(meta["metadata"]["energies"], ENERGIES[:4].astype(np.float32))


def test_reader_declines_hdf5_it_cannot_interpret(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["table"] = np.arange(10.0)
    assert get_reader(str(tmp_path / "other.h5")) is None
    counts_only, _ = _nxstxm(tmp_path / "no_i0.nxs", control=False)  # counts without an I0
    assert get_reader(str(counts_only)) is None
    (tmp_path / "fake.nxs").write_bytes(b"not hdf5")
    assert get_reader(str(tmp_path / "fake.nxs")) is None
