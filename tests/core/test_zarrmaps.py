"""Maps written band by band to OME-Zarr: same maps as in memory, valid NGFF 0.5, all-or-nothing."""

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from xafsmap._reader import get_reader
from xafsmap.cli import main
from xafsmap.core.mapping import maps as mapfiles
from xafsmap.core.mapping import zarrmaps
from xafsmap.core.io.stack import Stack
from xafsmap.core.mapping.output import map_output, write_map_files, write_tiff
from xafsmap.core.mapping.pipeline import band_rows, drive, iter_classify
from xafsmap.core.mapping.maps import check_maps, new_maps
from xafsmap.core.model.training import train_model
from xafsmap.core.mapping.legend import label_colors
from xafsmap.core.job import run_map
from xafsmap.core.settings import ReferenceSpec, Settings, read_recipe, write_recipe
from xafsmap.core.simulate.sample import bundled_reference_paths
from xafsmap.core.mapping.zarrmaps import MAPS_ZARR, open_map_store, read_map_store

BAND_BYTES = 2**17  # 3 rows of the 48 x 64 sample: 16 bands, two in flight
CHUNK_ROWS = 15  # 5 bands per chunk; the last chunk (3 rows) is partial
REFS = ("Fe", "FeO", "Fe2O3")


def as_stack(sample):
    return Stack(da.from_array(sample.stack, chunks=(-1, 16, -1)), sample.energies, {"stack": "<array>"})


@pytest.fixture(scope="module")
def model(small_sample):
    return train_model(as_stack(small_sample), small_sample.references, rng=1, n_per_class=60, n_trees=8)


@pytest.fixture(scope="module")
def in_memory(small_sample, model):
    return drive(iter_classify(as_stack(small_sample), model, band_bytes=BAND_BYTES))


@pytest.fixture(scope="module")
def stored(tmp_path_factory, small_sample, model):
    stack = as_stack(small_sample)
    _, rows, cols = stack.data.shape
    path = tmp_path_factory.mktemp("zarr") / MAPS_ZARR
    maps = open_map_store(path, 3, rows, cols, band=band_rows(stack.data.shape, BAND_BYTES),
                          chunk_pixels=CHUNK_ROWS * cols)
    result = drive(iter_classify(stack, model, band_bytes=BAND_BYTES, maps=maps))
    return path, result


def test_zarr_maps_equal_the_in_memory_maps_exactly(stored, in_memory, small_sample):
    path, result = stored
    assert band_rows(small_sample.stack.shape, BAND_BYTES) <= 48 // 4  # several bands, two in flight
    for name, expected in new_maps(3, 1, 1).items():
        written = getattr(result, name)
        assert not isinstance(written, np.ndarray)  # the result holds the store's arrays
        np.testing.assert_array_equal(written[...], getattr(in_memory, name))
        assert written.dtype == expected.dtype
        reread = read_map_store(path)[name]
        np.testing.assert_array_equal(reread[...], getattr(in_memory, name))


def test_chunks_hold_whole_bands(stored, small_sample):
    path, result = stored
    band = band_rows(small_sample.stack.shape, BAND_BYTES)
    assert CHUNK_ROWS % band == 0 and 48 % CHUNK_ROWS
    assert result.labels.chunks == (CHUNK_ROWS, 64)
    assert result.fractions.chunks == (1, CHUNK_ROWS, 64)
    assert np.isnan(result.fractions.fill_value) and result.labels.fill_value == 0
    assert read_map_store(path)["e0"].chunks == (CHUNK_ROWS, 64)


def test_each_chunk_is_written_once_whole_while_two_bands_are_in_flight(tmp_path, small_sample, model,
                                                                         monkeypatch):
    import zarr

    writes = []
    setitem = zarr.Array.__setitem__

    def spy(array, key, value):
        writes.append((array.path, key[-2] if isinstance(key, tuple) else key, np.shape(value)))
        return setitem(array, key, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", spy)
    stack = as_stack(small_sample)
    maps = open_map_store(tmp_path / MAPS_ZARR, 3, 48, 64, band=band_rows(stack.data.shape, BAND_BYTES),
                          chunk_pixels=CHUNK_ROWS * 64)
    drive(iter_classify(stack, model, band_bytes=BAND_BYTES, maps=maps))
    maps["labels"].flush()
    starts = [0, 15, 30, 45]
    for where in zarrmaps.PATHS.values():
        rows = sorted((key.start, shape[-2]) for path, key, shape in writes if path == where)
        assert rows == [(r0, min(48, r0 + CHUNK_ROWS) - r0) for r0 in starts], where  # 4 writes, not 16
    assert len(writes) == 4 * len(zarrmaps.PATHS)


class _FullDisk:
    """A chunked target whose writes fail as on a full disk."""

    shape, dtype, chunks, fill_value = (8, 4), np.dtype(np.float32), (4, 4), np.nan

    def __setitem__(self, key, value):
        raise OSError("No space left on device")


def test_a_failed_background_write_is_raised_when_the_maps_are_read():
    from xafsmap.core.mapping.chunkwriter import BufferedArray, ChunkWriter

    target = BufferedArray(_FullDisk(), ChunkWriter())
    target[0:4] = 1.0  # a whole chunk: written in the background, fails there
    with pytest.raises(OSError, match="No space left"):
        target.flush()


def test_class_counts_read_the_labels_in_row_blocks(stored, in_memory, small_sample, monkeypatch):
    _, result = stored
    band = band_rows(small_sample.stack.shape, BAND_BYTES)
    monkeypatch.setattr(mapfiles, "BLOCK_PIXELS", 64 * band + 5)  # blocks of one chunk
    assert mapfiles.block_rows(result.labels) == CHUNK_ROWS < 48
    counts = np.bincount(in_memory.labels.ravel(), minlength=len(in_memory.classifier.classes) + 1)
    assert result.class_counts == in_memory.class_counts
    assert list(result.class_counts.values()) == counts[1:].tolist() and counts[1:].sum() > 1000


def _ome(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]["ome"]


def _check_multiscale_image(group: Path) -> dict:
    """The NGFF 0.5 MUSTs of an image group with one level; returns its ome attributes."""
    ome = _ome(group)
    assert ome["version"] == "0.5"
    (scale,) = ome["multiscales"]
    axes = scale["axes"]
    assert 2 <= len(axes) <= 5 and len({a["name"] for a in axes}) == len(axes)
    assert [a["type"] for a in axes][-2:] == ["space", "space"]
    for dataset in scale["datasets"]:
        (transform,) = dataset["coordinateTransformations"]
        array = json.loads((group / dataset["path"] / "zarr.json").read_text())
        assert array["node_type"] == "array" and array["zarr_format"] == 3
        assert len(array["shape"]) == len(axes) == len(transform["scale"])
        assert array["dimension_names"] == [a["name"] for a in axes]
        assert transform["type"] == "scale"
    return ome


def test_the_store_is_ome_zarr_0_5_with_the_class_legend(tmp_path, stored, in_memory):
    path, result = stored
    zarrmaps.describe_map_store(path, result.classifier.classes)
    root = _check_multiscale_image(path)
    assert root["multiscales"][0]["name"] == "edge_step"
    labels = _ome(path / "labels")
    assert labels["version"] == "0.5" and labels["labels"] == ["classes", "mask", "flags"]
    for name in labels["labels"]:
        ome = _check_multiscale_image(path / "labels" / name)
        array = json.loads((path / "labels" / name / "0" / "zarr.json").read_text())
        assert array["data_type"] in ("uint8", "uint16")
        assert len(ome["multiscales"][0]["datasets"]) == len(root["multiscales"][0]["datasets"])
        label = ome["image-label"]
        assert set(label) == {"colors", "properties", "source"}  # 0.5's image-label keys; no "version"
        assert label["source"] == {"image": "../../"}
        assert sorted(c["label-value"] for c in label["colors"]) == sorted(p["label-value"] for p in label["properties"])
        for color in label["colors"]:
            assert isinstance(color["label-value"], int)
            assert len(color["rgba"]) == 4 and all(0 <= v <= 255 for v in color["rgba"])
    classes = _ome(path / "labels" / "classes")["image-label"]
    names = result.classifier.classes.names
    rgb = label_colors(len(names))
    assert [c["rgba"][:3] for c in classes["colors"][1:]] == rgb[1:].tolist()
    assert [p["class"] for p in classes["properties"]] == ["no sample", *names]
    assert classes["properties"][2]["FeO"] == 1.0
    fractions = _check_multiscale_image(path / "fractions")
    assert [a["type"] for a in fractions["multiscales"][0]["axes"]] == ["channel", "space", "space"]
    assert [c["label"] for c in fractions["omero"]["channels"]] == list(REFS)
    for name in ("probability", "distance", "residual", "e0"):
        _check_multiscale_image(path / name)


def test_chunked_maps_become_the_same_tiffs_strip_by_strip(tmp_path, stored, in_memory, small_sample,
                                                          monkeypatch):
    _, result = stored
    monkeypatch.setattr(mapfiles, "BLOCK_PIXELS", 64 * 10)  # strips of whole chunks: one chunk each
    step = CHUNK_ROWS
    assert 48 % step  # the last strip is partial
    for name in ("labels", "fractions", "e0"):
        streamed = write_tiff(tmp_path / f"{name}.tif", getattr(result, name))
        whole = write_tiff(tmp_path / f"{name}_whole.tif", getattr(in_memory, name))
        np.testing.assert_array_equal(tifffile.imread(streamed), tifffile.imread(whole))
        with tifffile.TiffFile(streamed) as tif:
            assert tif.pages[0].rowsperstrip == step and len(tif.pages) == (3 if name == "fractions" else 1)


def _failing_stack(sample, bad_row):
    """The sample whose rows from ``bad_row`` on cannot be read (an unreadable file part)."""

    def read(block, block_info=None):
        if block_info[None]["array-location"][1][0] >= bad_row:
            raise OSError(f"rows from {bad_row} on cannot be read")
        return block

    data = da.from_array(sample.stack, chunks=(-1, 8, -1)).map_blocks(read, dtype=sample.stack.dtype)
    return Stack(data, sample.energies, {"stack": "<array>"})


def test_a_run_that_fails_part_way_leaves_no_output(tmp_path, small_sample, model):
    stack = _failing_stack(small_sample, bad_row=32)
    out = tmp_path / "out"
    written = []
    with pytest.raises(OSError, match="rows from 32"):
        with map_output(out, k=3, rows=48, cols=64, band=band_rows(stack.data.shape, BAND_BYTES),
                        zarr=True) as (folder, maps):
            generator = iter_classify(stack, model, band_bytes=BAND_BYTES, maps=maps)
            drive(generator, lambda done, total: written.append(done))
    assert written  # some bands were in the store before the failure
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_check_maps_names_what_cannot_receive_the_bands(tmp_path):
    good = new_maps(2, 10, 6)
    assert check_maps(good, 2, 10, 6, band=4) is good
    maps = open_map_store(tmp_path / "m.zarr", 2, 10, 6, band=3, chunk_pixels=18)
    assert check_maps(maps, 2, 10, 6, band=4) is maps  # buffered: any bands become whole chunks
    with pytest.raises(ValueError, match="chunks of 3 rows but bands of 4 rows"):
        check_maps({name: array.array for name, array in maps.items()}, 2, 10, 6, band=4)
    with pytest.raises(ValueError, match=r"maps\['labels'\] must be \(10, 6\) uint16, got \(\(10, 5\)"):
        check_maps({**good, "labels": np.zeros((10, 5), np.uint16)}, 2, 10, 6, band=4)
    with pytest.raises(ValueError, match=r"maps\['mask'\] must be .* uint8, got nothing"):
        check_maps({k: v for k, v in good.items() if k != "mask"}, 2, 10, 6, band=4)


@pytest.mark.parametrize("args, message", [
    ((0, 10, 6), "k, rows, cols and band >= 1, got 0, 10, 6, 4"),
    ((2, 10, 6), "exists already"),
])
def test_open_map_store_refuses_bad_sizes_and_existing_stores(tmp_path, args, message):
    (tmp_path / "m.zarr").mkdir()
    with pytest.raises(ValueError, match=message):
        open_map_store(tmp_path / "m.zarr", *args, band=4)


def test_open_map_store_names_an_unknown_compressor(tmp_path):
    with pytest.raises(ValueError, match=r"unknown compressor 'lz4'; choose one of \['zstd', 'blosc', None\]"):
        open_map_store(tmp_path / "m.zarr", 2, 10, 6, band=4, compressor="lz4")


def test_read_map_store_refuses_other_folders(tmp_path):
    with pytest.raises(ValueError, match="is not an xafsmap map store"):
        read_map_store(tmp_path)


def test_maps_in_memory_are_copied_into_the_store(tmp_path, in_memory):
    with map_output(tmp_path / "out", k=3, rows=48, cols=64, band=5, zarr=True) as (folder, maps):
        write_map_files(in_memory, folder, maps=maps)
    stored = read_map_store(tmp_path / "out" / MAPS_ZARR)
    assert stored["labels"].chunks == (48, 64)  # 2**20 pixels per chunk: the whole 48 x 64 map
    for name, array in stored.items():
        np.testing.assert_array_equal(array[...], getattr(in_memory, name))


@pytest.fixture(scope="module")
def refs():
    paths = bundled_reference_paths()
    return [str(paths[name]) for name in REFS]


def test_cli_zarr_round_trip(tmp_path, small_sample_file, refs, capsys):
    def args(out):
        return ["map", str(small_sample_file), *[a for r in refs for a in ("--reference", r)], "--out", str(out),
                "--spectra-per-class", "60", "--trees", "8", "--quiet"]

    out = tmp_path / "maps"
    assert main([*args(out)[:-1], "--zarr"]) == 0  # not --quiet: the summary counts the classes
    assert main(args(tmp_path / "tiff")) == 0
    summary = capsys.readouterr().err
    assert f"xafsmap: wrote {out}" in summary and "Fe: 0," not in summary
    assert {p.name for p in out.iterdir()} == {p.name for p in (tmp_path / "tiff").iterdir()} | {MAPS_ZARR}
    stored = read_map_store(out / MAPS_ZARR)
    for name, array in stored.items():
        from_tiff = tifffile.imread(tmp_path / "tiff" / f"{name}.tif")
        np.testing.assert_array_equal(array[...], from_tiff)
        np.testing.assert_array_equal(tifffile.imread(out / f"{name}.tif"), from_tiff)
    report = json.loads((out / "report.json").read_text())
    expected = json.loads((tmp_path / "tiff" / "report.json").read_text())
    assert report["pixels"] == expected["pixels"]
    counts = np.bincount(stored["labels"][...].ravel(), minlength=13)
    assert list(report["pixels"]["per_class"].values()) == counts[1:].tolist()
    assert (out / "flags.csv").read_text() == (tmp_path / "tiff" / "flags.csv").read_text()
    legend = _ome(out / MAPS_ZARR / "labels" / "classes")["image-label"]["properties"]
    assert [p["class"] for p in legend[1:]] == list(report["pixels"]["per_class"])
    # the napari reader opens the folder (or its store) lazily from the store
    for path in (out, out / MAPS_ZARR):
        layers = get_reader(str(path))(str(path))
        assert [meta["name"] for _, meta, _ in layers][:2] == ["classes", "probability"]
        for data, meta, _ in layers:
            assert isinstance(data, da.Array)
        np.testing.assert_array_equal(layers[0][0].compute(), tifffile.imread(out / "labels.tif"))
        fe = next(data for data, meta, _ in layers if meta["name"] == "fraction Fe")
        np.testing.assert_array_equal(fe.compute(), tifffile.imread(out / "fractions.tif")[0])


def test_recipe_output_zarr_round_trips_and_maps_into_the_store(tmp_path, small_sample_file, small_sample, refs):
    recipe = Settings(references=tuple(ReferenceSpec(r) for r in refs), stack=str(small_sample_file),
                    n_per_class=40, n_trees=5, mixtures="none", zarr=True)
    path = write_recipe(tmp_path / "r.toml", recipe)
    assert "[output]\nzarr = true" in path.read_text()
    assert read_recipe(path) == recipe
    assert "[output]" not in write_recipe(tmp_path / "plain.toml", Settings(references=recipe.references,
                                                                          sample="fe_sample")).read_text()
    out = run_map(read_recipe(path), out=tmp_path / "out").out
    stored = read_map_store(out / MAPS_ZARR)
    np.testing.assert_array_equal(stored["labels"][...], tifffile.imread(out / "labels.tif"))
    assert stored["labels"].chunks[0] == min(48, band_rows(small_sample.stack.shape))
