"""Tests of the lazy readers in xafsmap.core.io.stack (and the STXM reader behind them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from xafsmap.core.io.tiff import BAND_BYTES, write_stack
from xafsmap.core.io.stack import Stack, count_invalid, read_stack, stack_info
from xafsmap.core.io.energies import find_energies_file, natural_sort_key, read_energies
from xafsmap.core.io.rawstack import absorbance_from_transmission

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
STXM = DATA / "stxm-fe-l" / "71214078"
ENERGIES = np.array([7100.0, 7110.0, 7112.5, 7120.0, 7150.25])


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture
def cube(rng):
    return rng.uniform(0.1, 2.0, size=(ENERGIES.size, 12, 9)).astype(np.float32)


@pytest.fixture
def stxm_dir():
    if not (STXM / "71214078.hdr").is_file():
        pytest.skip(f"real STXM stack not found at {STXM} (shared/data beside the checkout)")
    return STXM


def _write_energies(path: Path, values) -> Path:
    path.write_text("".join(f"{v!r}\n" for v in np.asarray(values, float).tolist()))
    return path


# --- multi-page TIFF --------------------------------------------------------------------


def test_write_read_roundtrip_keeps_values_energies_and_whole_energy_chunks(tmp_path, cube):
    path = write_stack(tmp_path / "sample.tif", cube, ENERGIES)
    stack = read_stack(path)
    assert isinstance(stack.data, da.Array)
    assert stack.data.dtype == np.float32 and stack.data.shape == cube.shape
    assert stack.data.numblocks[0] == 1  # whole energy axis in one chunk (memmap path)
    np.testing.assert_array_equal(stack.data.compute(), cube)
    np.testing.assert_array_equal(stack.energies, ENERGIES)
    assert stack.energies.dtype == np.float64
    assert stack.sources == {"stack": str(path), "energies": str(tmp_path / "sample.energies.txt")}
    assert not list(tmp_path.glob(".*.tmp"))  # temporary names were renamed away


@pytest.mark.parametrize("key", [np.s_[:, 1::3, 2::5], np.s_[2:5, ::2, :], np.s_[:, 3:4, ::7], np.s_[:, 5:1, :]])
def test_strided_rows_and_columns_read_what_numpy_slices(tmp_path, cube, key):
    stack = read_stack(write_stack(tmp_path / "sample.tif", cube, ENERGIES))
    np.testing.assert_array_equal(np.asarray(stack.data[key]), cube[key])


def test_read_stack_reads_no_pixels_up_front(tmp_path, cube):
    path = write_stack(tmp_path / "sample.tif", cube, ENERGIES)
    stack = read_stack(path)
    on_disk = tifffile.memmap(path, mode="r+")
    on_disk[:] = 5.0  # pixels changed after read_stack: the lazy stack must see the new ones
    on_disk.flush()
    del on_disk
    assert np.all(stack.data.compute() == 5.0)
    np.testing.assert_array_equal(stack.data[2, 3:5, 1:4].compute(), np.full((2, 3), 5.0, np.float32))


def test_large_file_opens_at_once_in_row_bands(tmp_path):
    shape = (40, 3000, 1000)  # 480 MB, sparse on disk: no time spent writing it
    path = tmp_path / "big.tif"
    del_me = tifffile.memmap(path, shape=shape, dtype=np.float32, metadata={"energies": list(range(1, 41))})
    del del_me
    start = time.perf_counter()
    stack = read_stack(path)
    assert time.perf_counter() - start < 1.0
    chunk_bytes = np.prod(stack.data.chunksize) * 4
    assert stack.data.numblocks[0] == 1 and stack.data.numblocks[1] > 1
    assert BAND_BYTES / 2 < chunk_bytes <= BAND_BYTES
    graph = dict(stack.data.__dask_graph__())
    assert not [v for v in graph.values() if isinstance(v, np.ndarray) and v.size > 100]
    assert stack.data[7, 2990:, :5].compute().sum() == 0
    info = stack_info(stack)
    assert info["size_bytes"] == np.prod(shape) * 4 and info["energy_in_one_chunk"]


def test_stack_info_memory_estimate_matches_measured_band_streaming():
    # 210 energies x 4000 x 1700 float32 = 5.7 GB; streaming bands measured 1.1-1.4 GB peak
    stack = Stack(da.zeros((210, 4000, 1700), dtype=np.float32, chunks=(210, 64, 1700)), np.arange(1.0, 211.0), {})
    info = stack_info(stack)
    assert info["size_bytes"] == 210 * 4000 * 1700 * 4
    assert 0.8e9 < info["mapping_memory_bytes"] < 1.6e9


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_uint16_tiff_is_promoted_to_float32(tmp_path, rng, byteorder):
    counts = rng.integers(0, 65535, size=(ENERGIES.size, 6, 7), dtype=np.uint16)
    path = tmp_path / "counts.tif"
    tifffile.imwrite(path, counts, byteorder=byteorder)
    _write_energies(tmp_path / "energies.txt", ENERGIES)
    stack = read_stack(path)
    assert stack.data.dtype == np.float32
    np.testing.assert_array_equal(stack.data.compute(), counts.astype(np.float32))


def test_bigtiff_roundtrip(tmp_path, cube):
    path = write_stack(tmp_path / "big.tif", cube, ENERGIES, bigtiff=True)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
    np.testing.assert_array_equal(read_stack(path).data.compute(), cube)


def test_compressed_tiff_is_read_one_page_per_chunk(tmp_path, cube):
    path = tmp_path / "zipped.tif"
    tifffile.imwrite(path, cube, compression="zlib", tile=(16, 16), metadata={"energies": ENERGIES.tolist()})
    stack = read_stack(path)
    assert stack.data.chunksize == (1, *cube.shape[1:])
    np.testing.assert_array_equal(stack.data.compute(), cube)
    np.testing.assert_array_equal(stack.energies, ENERGIES)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_single_page_holding_the_whole_stack(tmp_path, cube, compression):
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, cube, planarconfig="separate", photometric="minisblack", compression=compression)
    stack = read_stack(path, energies=ENERGIES)
    assert stack.data.shape == cube.shape
    np.testing.assert_array_equal(stack.data.compute(), cube)


def test_energies_from_tiff_metadata(tmp_path, cube):
    path = tmp_path / "meta.tif"
    tifffile.imwrite(path, cube, metadata={"energies": ENERGIES.tolist()})
    stack = read_stack(path)
    np.testing.assert_array_equal(stack.energies, ENERGIES)
    assert stack.sources["energies"] == str(path)


def test_explicit_energies_win_over_sidecar_and_metadata(tmp_path, cube):
    path = write_stack(tmp_path / "s.tif", cube, ENERGIES)
    stack = read_stack(path, energies=ENERGIES + 1.0)
    np.testing.assert_array_equal(stack.energies, ENERGIES + 1.0)
    assert stack.sources["energies"] == "<array>"


# --- one TIFF per energy ----------------------------------------------------------------


def _write_planes(folder: Path, names, shape=(4, 5)) -> None:
    folder.mkdir(exist_ok=True)
    for value, name in enumerate(names):
        tifffile.imwrite(folder / name, np.full(shape, value, np.uint16))


def test_natural_sort_key_orders_numbers_by_value():
    names = ["img_10.tif", "img_2.tif", "img_1.tif", "fe_7112eV.tif", "fe_7112.5eV.tif"]
    assert sorted(names, key=natural_sort_key) == [
        "fe_7112eV.tif", "fe_7112.5eV.tif", "img_1.tif", "img_2.tif", "img_10.tif",
    ]


def test_folder_energies_from_names_in_natural_order(tmp_path):
    energies = [99.5, 100.0, 1000.0, 7112.5]
    _write_planes(tmp_path / "scan", [f"fe_{e:g}eV.tif" for e in energies])  # lexical order differs
    stack = read_stack(tmp_path / "scan")
    np.testing.assert_array_equal(stack.energies, energies)
    np.testing.assert_array_equal(stack.data[:, 0, 0].compute(), [0, 1, 2, 3])
    assert stack.data.dtype == np.float32 and stack.data.shape == (4, 4, 5)


def test_folder_with_sidecar_and_index_names(tmp_path):
    names = [f"img_{i}.tif" for i in (1, 2, 10)]  # written in this (natural) order: values 0, 1, 2
    _write_planes(tmp_path / "scan", names)
    _write_energies(tmp_path / "scan" / "energies.txt", [7100.0, 7101.0, 7102.0])
    stack = read_stack(tmp_path / "scan")
    np.testing.assert_array_equal(stack.data[:, 1, 1].compute(), [0, 1, 2])
    assert stack.sources["energies"] == str(tmp_path / "scan" / "energies.txt")


def test_glob_selects_matching_files(tmp_path):
    _write_planes(tmp_path, ["e_710.5.tif", "e_708.tif", "e_709.tif", "other_1.tif"])
    stack = read_stack(str(tmp_path / "e_*.tif"))
    np.testing.assert_array_equal(stack.energies, [708.0, 709.0, 710.5])
    np.testing.assert_array_equal(stack.data[:, 0, 0].compute(), [1, 2, 0])


# --- energies files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "7100\n7110\n7112.5\n# a comment\n7120\n\n7150.25\n",
        "# scan 12, Fe K\nindex,Energy_eV,I0\n0,7100,5\n1,7110,5\n2,7112.5,5\n3,7120,5 # ok\n4,7150.25,5\n",
        "E\tI0\n7100\t1\n7110\t1\n7112.5\t1\n7120\t1\n7150.25\t1\n",
        "energies\n7100\n7110\n7112.5\n7120\n7150.25\n",
        "7100 3\n7110 3\n7112.5 3\n7120 3\n7150.25 3\n",
    ],
    ids=["one-per-line", "csv-named-column", "tsv-E", "header-energies", "two-columns"],
)
def test_read_energies_formats(tmp_path, text):
    path = tmp_path / "e.txt"
    path.write_text(text)
    np.testing.assert_array_equal(read_energies(path), ENERGIES)


def test_find_energies_file_lookup_order(tmp_path):
    stack = tmp_path / "sample.tif"
    assert find_energies_file(stack) is None
    for name in ["energy.txt", "energies.txt", "sample.energies.txt"]:
        (tmp_path / name).write_text("1\n")
        assert find_energies_file(stack) == tmp_path / name
    assert find_energies_file(str(tmp_path / "*.tif")) == tmp_path / "energies.txt"
    folder = tmp_path / "scan"
    folder.mkdir()
    assert find_energies_file(folder) is None
    (folder / "energy.txt").write_text("1\n")
    assert find_energies_file(folder) == folder / "energy.txt"
    (folder / "scan.energies.txt").write_text("1\n")
    assert find_energies_file(folder) == folder / "scan.energies.txt"


# --- bad inputs -------------------------------------------------------------------------


def _truncated(tmp_path, cube, **options):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, cube, **options)
    _write_energies(tmp_path / "energies.txt", ENERGIES)
    with open(path, "r+b") as file:
        file.truncate(int(path.stat().st_size * 0.6))
    return lambda: read_stack(path)


def _bad_case(name, tmp_path, cube):
    good = write_stack(tmp_path / "s.tif", cube, ENERGIES)
    if name == "count":
        _write_energies(tmp_path / "s.energies.txt", ENERGIES[:4])
        return lambda: read_stack(good)
    if name == "metadata-count":
        (tmp_path / "s.energies.txt").unlink()
        tifffile.imwrite(good, cube, metadata={"energies": ENERGIES[:3].tolist()})
        return lambda: read_stack(good)
    if name in ("decreasing", "duplicate", "nan"):
        bad = {"decreasing": [1, 3, 2, 4, 5], "duplicate": [1, 2, 2, 4, 5], "nan": [1, 2, np.nan, 4, 5]}[name]
        return lambda: read_stack(good, energies=bad)
    if name == "truncated-contiguous":
        return _truncated(tmp_path, cube, metadata={"energies": ENERGIES.tolist()})
    if name == "truncated-plain":
        return _truncated(tmp_path, cube, metadata=None)
    if name == "truncated-compressed":
        return _truncated(tmp_path, cube, compression="zlib")
    if name == "truncated-single-page":  # one IFD at the start, data (E, M, N) after it: cut the data
        return _truncated(tmp_path, cube, planarconfig="separate", photometric="minisblack", metadata=None)
    if name == "truncated-last-page":  # every IFD before its page's data: only the last page is cut
        path = tmp_path / "cut.tif"
        with tifffile.TiffWriter(path) as writer:
            for page in cube:
                writer.write(page, contiguous=False, compression="zlib", metadata=None)
        with open(path, "r+b") as file:
            file.truncate(path.stat().st_size - 100)
        return lambda: read_stack(path, energies=ENERGIES)
    if name == "garbage":
        (tmp_path / "junk.tif").write_bytes(b"this is not an image at all\n" * 20)
        return lambda: read_stack(tmp_path / "junk.tif", energies=ENERGIES)
    if name == "missing":
        return lambda: read_stack(tmp_path / "nothere.tif")
    if name == "missing-flat":
        return lambda: read_stack(good, flat=tmp_path / "noflat.tif")
    if name == "unsupported":
        (tmp_path / "s.png").write_bytes(b"x")
        return lambda: read_stack(tmp_path / "s.png")
    if name == "flat-shape":
        return lambda: read_stack(good, flat=np.ones((4, 4)))
    if name == "dark-shape":
        return lambda: read_stack(good, flat=np.ones((12, 9)), dark=np.ones((3, 12, 9)))
    if name == "dark-alone":
        return lambda: read_stack(good, dark=np.ones((12, 9)))
    if name == "flat-and-i0":
        return lambda: read_stack(good, flat=np.ones((12, 9)), i0=np.ones(5))
    if name == "i0-range":
        np.savetxt(tmp_path / "i0.txt", np.column_stack([np.linspace(7105, 7200, 20), np.ones(20)]))
        return lambda: read_stack(good, i0=tmp_path / "i0.txt")
    if name == "folder-shapes":
        _write_planes(tmp_path / "scan", ["a_700eV.tif", "a_701eV.tif"])
        tifffile.imwrite(tmp_path / "scan" / "a_702eV.tif", np.zeros((4, 6), np.uint16))
        return lambda: read_stack(tmp_path / "scan")
    if name == "folder-index":
        _write_planes(tmp_path / "scan", [f"s_a{i:03d}.tif" for i in range(4)])
        return lambda: read_stack(tmp_path / "scan")
    if name == "empty-glob":
        return lambda: read_stack(str(tmp_path / "nomatch_*.tif"))
    if name == "no-energies":
        tifffile.imwrite(tmp_path / "bare.tif", cube, metadata=None)
        return lambda: read_stack(tmp_path / "bare.tif")
    if name == "csv-no-energy-column":
        (tmp_path / "e.csv").write_text("index,mu\n0,1\n")
        return lambda: read_stack(good, energies=tmp_path / "e.csv")
    raise AssertionError(name)


BAD = [
    ("count", ValueError, r"stack s\.tif has 5 energies but s\.energies\.txt lists 4"),
    ("metadata-count", ValueError, r"stack s\.tif has 5 energies but its metadata lists 3"),
    ("decreasing", ValueError, r"energies 1 and 2 go from 3 eV down to 2 eV.*sort them"),
    ("duplicate", ValueError, r"energies 1 and 2 are both 2 eV \(duplicate\)"),
    ("nan", ValueError, r"energy 2 is nan"),
    ("truncated-contiguous", ValueError, r"cut\.tif: it is not a TIFF file or it is truncated"),
    ("truncated-plain", ValueError, r"cut\.tif: it is not a TIFF file or it is truncated"),
    ("truncated-compressed", ValueError, r"cut\.tif: it is not a TIFF file or it is truncated"),
    ("truncated-single-page", ValueError, r"cut\.tif: it is not a TIFF file or it is truncated \(image data end"),
    ("truncated-last-page", ValueError, r"cut\.tif: it is not a TIFF file or it is truncated \(image data end"),
    ("garbage", ValueError, r"cannot read .*junk\.tif: it is not a TIFF file"),
    ("missing", FileNotFoundError, r"nothere\.tif"),
    ("missing-flat", FileNotFoundError, r"flat file not found: .*noflat\.tif"),
    ("unsupported", ValueError, r"cannot read s\.png: supported inputs are"),
    ("flat-shape", ValueError, r"flat has shape \(4, 4\) but the stack has shape \(5, 12, 9\)"),
    ("dark-shape", ValueError, r"dark has shape \(3, 12, 9\) but the stack has shape \(5, 12, 9\)"),
    ("dark-alone", ValueError, r"dark= needs flat= or i0="),
    ("flat-and-i0", ValueError, r"not both"),
    ("i0-range", ValueError, r"i0\.txt covers 7105–7200 eV but the stack spans 7100–7150\.25 eV"),
    ("folder-shapes", ValueError, r"a_702eV\.tif has shape \(4, 6\) but a_700eV\.tif has shape \(4, 5\)"),
    ("folder-index", ValueError, r"s_a000\.tif … s_a003\.tif\) carry an index, not energies"),
    ("empty-glob", FileNotFoundError, r"no \.tif/\.tiff files match glob"),
    ("no-energies", ValueError, r"no energies for bare\.tif"),
    ("csv-no-energy-column", ValueError, r"e\.csv has a header \['index', 'mu'\] but no column named energy"),
]


@pytest.mark.parametrize(("name", "error", "match"), BAD, ids=[case[0] for case in BAD])
def test_bad_input_raises_clear_error(tmp_path, cube, name, error, match):
    action = _bad_case(name, tmp_path, cube)
    with pytest.raises(error, match=match):
        action()


# --- transmission -> absorbance ----------------------------------------------------------


def _transmission(rng, shape=(6, 10, 8)):
    mu = rng.uniform(-0.2, 3.0, size=shape).astype(np.float32)  # negative OD must survive, not be clipped
    flat = rng.uniform(2000, 4000, size=shape).astype(np.float32)
    dark = rng.uniform(90, 110, size=shape[1:]).astype(np.float32)
    counts = (flat - dark) * np.exp(-mu) + dark
    return mu, counts.astype(np.float32), flat, dark


def test_absorbance_known_answer_with_dark_and_invalid_pixels(rng):
    mu, counts, flat, dark = _transmission(rng)
    counts[0, 0, 0] = dark[0, 0]  # I - D == 0
    counts[1, 2, 3] = dark[2, 3] - 5  # I - D < 0
    flat[2, 4, 4] = dark[4, 4] - 1  # F - D < 0
    od = absorbance_from_transmission(counts, flat, dark=dark)
    assert isinstance(od, da.Array) and od.dtype == np.float32
    result = od.compute()
    invalid = np.zeros(mu.shape, bool)
    invalid[0, 0, 0] = invalid[1, 2, 3] = invalid[2, 4, 4] = True
    assert np.array_equal(np.isnan(result), invalid)
    np.testing.assert_allclose(result[~invalid], mu[~invalid], atol=2e-4)
    assert result[~invalid].min() < 0
    assert count_invalid(od) == 3


def test_absorbance_two_d_flat_broadcasts_over_energies(rng):
    mu, _, flat, _ = _transmission(rng)
    flat2d = flat[0]
    counts = flat2d * np.exp(-mu)
    od = absorbance_from_transmission(counts, flat2d).compute()
    np.testing.assert_allclose(od, mu, atol=2e-4)
    expected = absorbance_from_transmission(counts, np.broadcast_to(flat2d, counts.shape)).compute()
    np.testing.assert_array_equal(od, expected)


def test_absorbance_dask_equals_numpy(rng):
    _, counts, flat, dark = _transmission(rng)
    counts[3, 1, 1] = 0.0
    with np.errstate(invalid="ignore"):
        reference = (-np.log((counts - dark) / (flat - dark))).astype(np.float32)
    eager = absorbance_from_transmission(counts, flat, dark=dark).compute()
    lazy = absorbance_from_transmission(
        da.from_array(counts, chunks=(2, 3, 8)), da.from_array(flat, chunks=(6, 5, 4)), dark=da.from_array(dark)
    ).compute()
    np.testing.assert_array_equal(eager, lazy)
    np.testing.assert_allclose(eager, reference, rtol=1e-6, atol=1e-6)


def test_read_stack_with_flat_and_dark_files(tmp_path, rng):
    mu, counts, flat, dark = _transmission(rng, shape=(ENERGIES.size, 10, 8))
    tifffile.imwrite(tmp_path / "counts.tif", np.round(counts).astype(np.uint16))
    tifffile.imwrite(tmp_path / "flat.tif", np.round(flat[0]).astype(np.uint16))
    tifffile.imwrite(tmp_path / "dark.tif", np.round(dark).astype(np.uint16))
    _write_energies(tmp_path / "energies.txt", ENERGIES)
    stack = read_stack(tmp_path / "counts.tif", flat=tmp_path / "flat.tif", dark=tmp_path / "dark.tif")
    r = np.round
    expected = -np.log((r(counts) - r(dark)) / (r(flat[0]) - r(dark)))
    np.testing.assert_allclose(stack.data.compute(), expected, rtol=1e-5)
    assert set(stack.sources) == {"stack", "energies", "flat", "dark"}


def test_read_stack_with_i0_spectrum_on_another_grid(tmp_path, rng, cube):
    grid = np.linspace(7090, 7160, 71)
    i0 = 1000 + 2 * (grid - 7090)  # linear: interpolation is exact
    np.savetxt(tmp_path / "i0.xsp", np.column_stack([grid, i0]))
    i0_on_stack = 1000 + 2 * (ENERGIES - 7090)
    counts = (i0_on_stack[:, None, None] * np.exp(-cube)).astype(np.float32)
    path = write_stack(tmp_path / "counts.tif", counts, ENERGIES)
    stack = read_stack(path, i0=tmp_path / "i0.xsp")
    np.testing.assert_allclose(stack.data.compute(), cube, atol=2e-4)
    assert stack.sources["i0"] == str(tmp_path / "i0.xsp")


# --- summary ----------------------------------------------------------------------------


def test_stack_info_and_short_repr(tmp_path, cube):
    stack = read_stack(write_stack(tmp_path / "s.tif", cube, ENERGIES))
    info = stack_info(stack)
    assert info["shape"] == cube.shape and info["dtype"] == "float32"
    assert (info["n_energies"], info["energy_min_ev"], info["energy_max_ev"]) == (5, 7100.0, 7150.25)
    assert info["size_bytes"] == cube.nbytes and info["chunksize"] == cube.shape
    assert info["sources"] == stack.sources
    text = repr(stack)
    assert "(5, 12, 9)" in text and "7100" in text and "7150.25" in text and len(text) < 200
    assert isinstance(stack, Stack)


# --- the real STXM stack ----------------------------------------------------------------


def test_real_stxm_stack_with_i0(stxm_dir):
    stack = read_stack(stxm_dir / "71214078.hdr", i0=stxm_dir / "i0.xsp")
    assert stack.data.shape == (123, 125, 125) and stack.data.dtype == np.float32
    assert stack.energies[0] == 700.0 and stack.energies[-1] == pytest.approx(730.353)
    od = stack.data.compute()
    assert np.isfinite(od).mean() > 0.99
    mean_spectrum = np.nanmean(od, axis=(1, 2))
    # measured: mean OD 1.074, OD 0.76-3.3, the mean spectrum peaks at 709.87 eV (Fe L3)
    assert 0.9 < np.nanmean(od) < 1.3
    assert 708.0 < stack.energies[np.argmax(mean_spectrum)] < 711.0
    assert stack.sources["i0"] == str(stxm_dir / "i0.xsp")


def test_real_stxm_stack_needs_i0(stxm_dir):
    with pytest.raises(ValueError, match=r"STXM stack 71214078\.hdr holds transmitted counts: give .* i0="):
        read_stack(stxm_dir / "71214078.hdr")


def test_stxm_header_image_count_mismatch(tmp_path):
    header = 'QAxis = { Points = (2, 0, 1);};\nPAxis = { Points = (3, 0, 1, 2);};\n'
    (tmp_path / "s.hdr").write_text(header + "StackAxis = { Points = (3, 700.0, 700.5, 701.0);};\n")
    for i in range(2):
        np.savetxt(tmp_path / f"s_a{i:03d}.xim", np.full((2, 3), 100.0), delimiter="\t")
    with pytest.raises(ValueError, match=r"s\.hdr lists 3 energies but 2 images s_a\*\.xim were found"):
        read_stack(tmp_path / "s.hdr", i0=np.ones(3))
    np.savetxt(tmp_path / "s_a002.xim", np.full((2, 3), 50.0), delimiter="\t")
    stack = read_stack(tmp_path / "s.hdr", i0=np.full(3, 100.0))
    np.testing.assert_allclose(stack.data.compute()[2], np.log(2.0), rtol=1e-6)
    assert os.fspath(tmp_path / "s.hdr") == stack.sources["energies"]
