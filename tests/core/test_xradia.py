"""Zeiss/Xradia .txrm/.xrm stacks, read through olefile from real OLE2 compound files.

The files are written by tests/core/_ole.py (the MS-CFB layout; olefile cannot create
files) with the stream names and types dxchange and txrm2tiff read: ImageInfo/*,
ImageData<k>/Image<i> in storages of 100, ReferenceData/Image, PositionInfo motors.
"""

from __future__ import annotations

import numpy as np
import olefile
import pytest

from _ole import write_ole, xradia_streams
from xafsmap.core.io.stack import plane_view, read_stack
from xafsmap.core.io.tiff import write_stack
from xafsmap.core.io.xradia import read_xradia, xradia_images

ENERGIES = np.array([7100.0, 7110.0, 7112.5, 7120.0, 7150.0])


@pytest.fixture
def images():
    return np.random.default_rng(2).uniform(300.0, 900.0, (5, 40, 36)).astype(np.float32)


def test_our_ole_files_are_what_olefile_reads(tmp_path, images):
    streams = xradia_streams(images, energies=ENERGIES, reference=np.full((40, 36), 1000.0, np.float32))
    write_ole(tmp_path / "a.txrm", streams)
    with olefile.OleFileIO(str(tmp_path / "a.txrm")) as ole:
        assert sorted("/".join(p) for p in ole.listdir()) == sorted(streams)
        assert all(ole.openstream(name).read() == data for name, data in streams.items())


def test_txrm_with_reference_reads_as_absorbance_with_its_energies(tmp_path, images):
    flat = np.random.default_rng(3).uniform(1000.0, 1100.0, (40, 36)).astype(np.float32)
    write_ole(tmp_path / "xanes.txrm", xradia_streams(images, energies=ENERGIES, reference=flat))
    stack = read_stack(tmp_path / "xanes.txrm")
    np.testing.assert_allclose(stack.data.compute(), -np.log(images / flat), rtol=1e-6)
    np.testing.assert_allclose(stack.energies, ENERGIES.astype(np.float32))
    assert "flat: the file's ReferenceData/Image, for every energy" in stack.notes
    assert stack.sources["energies"].endswith("xanes.txrm:ImageInfo/Energy")
    assert plane_view(stack).chunksize == (1, 40, 36)


def test_uint16_images_past_100_with_energies_from_the_energy_motor(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.integers(100, 4000, (130, 3, 4)).astype(np.uint16)  # ImageData1 and ImageData2, mini streams
    motors = np.c_[np.zeros(130), 8300.0 + np.arange(130) * 0.5, np.full(130, 200.0)]
    write_ole(tmp_path / "ni.txrm", xradia_streams(images, motors=(["Sample X", "Energy", "Current"], motors),
                                                    data_type=5))
    layout = xradia_images(tmp_path / "ni.txrm")
    assert layout["streams"][100] == "ImageData2/Image101" and layout["energies_stream"].startswith("PositionInfo")
    with pytest.raises(ValueError, match="Xradia txrm stack .* holds transmitted counts and no I0 of its own"):
        read_stack(tmp_path / "ni.txrm")
    stack = read_stack(tmp_path / "ni.txrm", i0=np.full(130, 5000.0))
    np.testing.assert_allclose(stack.data.compute(), -np.log(images / 5000.0), rtol=1e-6)
    np.testing.assert_allclose(stack.energies, motors[:, 1])


def test_flat_from_a_reference_txrm_or_tiff(tmp_path, images):
    flats = np.random.default_rng(5).uniform(1000.0, 1100.0, images.shape).astype(np.float32)
    write_ole(tmp_path / "sample.txrm", xradia_streams(images, energies=ENERGIES))
    write_ole(tmp_path / "ref.txrm", xradia_streams(flats, energies=ENERGIES))
    expected = -np.log(images / flats)
    np.testing.assert_allclose(read_stack(tmp_path / "sample.txrm", flat=tmp_path / "ref.txrm").data.compute(),
                               expected, rtol=1e-6)
    tif = write_stack(tmp_path / "flats.tif", flats, ENERGIES)
    np.testing.assert_allclose(read_stack(tmp_path / "sample.txrm", flat=tif).data.compute(), expected, rtol=1e-6)


def test_xrm_files_one_per_energy_in_energy_order(tmp_path, images):
    order = [3, 0, 4, 1, 2]
    for i in order:  # written in another order: the energies decide
        write_ole(tmp_path / f"img_{i * 7 % 5}.xrm", xradia_streams(images[i:i + 1], energies=ENERGIES[i:i + 1],
                                                                      reference=np.full((40, 36), 1e3, np.float32)))
    for spec in (tmp_path, f"{tmp_path}/*.xrm"):
        stack = read_stack(spec, flat=write_stack(tmp_path.parent / "one.tif", np.full((5, 40, 36), 1e3, np.float32),
                                                  ENERGIES))
        np.testing.assert_allclose(stack.energies, ENERGIES)
        np.testing.assert_allclose(stack.data.compute(), -np.log(images / 1e3), rtol=1e-6)
        assert "images put in order of increasing energy" in stack.notes


def test_unsorted_txrm_energies_put_images_in_order(tmp_path, images):
    shuffled = [2, 0, 4, 1, 3]
    write_ole(tmp_path / "s.txrm", xradia_streams(images[shuffled], energies=ENERGIES[shuffled],
                                                   reference=np.ones((40, 36), np.float32)))
    stack = read_xradia(tmp_path / "s.txrm")
    np.testing.assert_allclose(stack.energies, ENERGIES)
    np.testing.assert_allclose(stack.data.compute(), -np.log(images), rtol=1e-6)


def _without(streams, name):
    return {k: v for k, v in streams.items() if k != name}


BAD = {
    "not ole": (lambda s: b"II*\x00 a tiff, not OLE", ValueError, "it is not an OLE2"),
    "no width": (lambda s: _without(s, "ImageInfo/ImageWidth"), ValueError,
                 "has no ImageInfo/ImageWidth stream: it is not a complete Xradia file"),
    "bad pixel type": (lambda s: {**s, "ImageInfo/DataType": (7).to_bytes(4, "little")}, ValueError,
                       r"ImageInfo/DataType is 7; only 5 \(uint16\) and 10 \(float32\)"),
    "image missing": (lambda s: _without(s, "ImageData1/Image3"), ValueError,
                      "ImagesTaken says 5 images but ImageData1/Image3 is missing"),
    "truncated image": (lambda s: {**s, "ImageData1/Image2": s["ImageData1/Image2"][:100]}, ValueError,
                        r"ImageData1/Image2 holds 25 pixels, expected 40 x 36"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_broken_xradia_files_give_one_clear_line(tmp_path, images, case):
    build, error, match = BAD[case]
    content = build(xradia_streams(images, energies=ENERGIES, reference=np.ones((40, 36), np.float32)))
    path = tmp_path / "bad.txrm"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        write_ole(path, content)
    with pytest.raises(error, match=match) as caught:
        read_stack(path).data.compute()
    assert "\n" not in str(caught.value)


def test_xrm_without_energy_in_a_folder_is_named(tmp_path, images):
    write_ole(tmp_path / "a.xrm", xradia_streams(images[:1], energies=ENERGIES[:1]))
    write_ole(tmp_path / "b.xrm", xradia_streams(images[1:2]))
    with pytest.raises(ValueError, match=r"b.xrm has no energy \(ImageInfo/Energy or an Energy motor\)"):
        read_stack(tmp_path, flat=np.ones((40, 36), np.float32))
