"""Saved models: data, not code; read back they map bit-identically; refused where they do not fit."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import tifffile

from xafsmap.cli import main
from xafsmap.core.io.stack import Stack
from xafsmap.core.mapping.pipeline import drive, iter_classify
from xafsmap.core.model.forest import compile_forest, predict_proba, walk_forest
from xafsmap.core.model.modelfile import read_model, write_model
from xafsmap.core.model.reuse import model_for_stack
from xafsmap.core.model.training import train_model
from xafsmap.core.simulate.sample import bundled_reference_paths, make_sample

FAST = ["--spectra-per-class", "60", "--trees", "8", "--quiet"]
MAPS = ("labels", "probability", "distance", "fractions", "fraction_sigma", "residual", "edge_step", "e0", "mask",
        "flags")


@pytest.fixture(scope="module")
def trained():
    sample = make_sample((48, 64), n_grains=10, rng=3)
    stack = Stack(sample.stack, sample.energies, {})
    return stack, train_model(stack, sample.references, n_per_class=80, n_trees=10, rng=1)


@pytest.fixture(scope="module")
def refs():
    paths = bundled_reference_paths()
    return [arg for name in ("Fe", "FeO", "Fe2O3") for arg in ("--reference", str(paths[name]))]


def test_a_model_read_back_maps_bit_identically(trained, tmp_path):
    stack, model = trained
    loaded = read_model(write_model(tmp_path / "m.npz", model)).model
    before, after = drive(iter_classify(stack, model)), drive(iter_classify(stack, loaded))
    for name in MAPS:
        assert np.array_equal(getattr(before, name), getattr(after, name), equal_nan=True), name
    assert before.params == json.loads(json.dumps(after.params))
    # the stack's own survey, taken again as training took it, gives the trained model back
    again = drive(iter_classify(stack, model_for_stack(loaded, stack)))
    for name in MAPS:
        assert np.array_equal(getattr(before, name), getattr(again, name), equal_nan=True), name


def test_the_file_is_arrays_and_json_only(trained, tmp_path):
    _, model = trained
    path = write_model(tmp_path / "m.npz", model, extra={"note": "x"})
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert "header.json" in names and all(n == "header.json" or n.endswith(".npy") for n in names)
        header = json.loads(archive.read("header.json"))
    assert header["xafsmap_model"] == 1 and header["note"] == "x"
    # every array loads with pickling forbidden: none is an object array
    with np.load(path.with_name("m.npz"), allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files if name != "header.json")


def test_the_compiled_walk_in_numpy_equals_scikit_learn(trained):
    _, model = trained
    stack_like = np.random.default_rng(0).normal(size=(500, model.classifier.centroids.shape[1])).astype(np.float32)
    compiled = compile_forest(model.classifier.forest)
    expected = model.classifier.forest.predict_proba(stack_like)
    assert np.allclose(walk_forest(compiled, stack_like), expected, atol=1e-12)
    assert np.allclose(predict_proba(compiled, stack_like), expected, atol=1e-12)


@pytest.mark.parametrize("content, match", [
    (b"not a zip", "not an xafsmap model file"),
    (None, "format 99"),
])
def test_a_file_that_is_not_a_model_is_refused(tmp_path, trained, content, match):
    path = tmp_path / "m.npz"
    if content is None:
        write_model(path, trained[1], extra={"xafsmap_model": 99})
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_model(path)


def test_train_then_map_with_the_model_equals_map(small_sample_file, refs, tmp_path, capsys):
    model = tmp_path / "model.npz"
    assert main(["train", str(small_sample_file), *refs, "--out", str(model), *FAST]) == 0
    assert main(["map", str(small_sample_file), *refs, "--out", str(tmp_path / "a"), *FAST]) == 0
    assert main(["map", str(small_sample_file), *refs, "--model", str(model), "--out", str(tmp_path / "b"),
                 "--quiet"]) == 0
    for name in MAPS:
        a, b = tifffile.imread(tmp_path / "a" / f"{name}.tif"), tifffile.imread(tmp_path / "b" / f"{name}.tif")
        assert np.array_equal(a, b, equal_nan=True), name
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["model"]["path"] == str(model) and len(report["model"]["sha256"]) == 64
    assert report["recipe"]["classifier"]["n_trees"] == 8  # the model's training choices are recorded
    # the model file exists: train refuses to replace it unless told
    assert main(["train", str(small_sample_file), *refs, "--out", str(model), *FAST]) == 1
    assert "exists" in capsys.readouterr().err


def test_a_model_for_other_references_energies_or_normalization_is_refused(small_sample_file, small_sample, refs,
                                                                           tmp_path, capsys):
    model = tmp_path / "model.npz"
    assert main(["train", str(small_sample_file), *refs, "--out", str(model), *FAST]) == 0
    paths = bundled_reference_paths()
    cases = [
        (["--reference", str(paths["Fe"]), "--reference", str(paths["FeO"])], "trained on references Fe, FeO, Fe2O3"),
        ([*refs, "--offset", "Fe=1.5"], "offset by 0 eV, not 1.5 eV"),
        ([*refs, "--e0", "7100"], "normalizes with e0 = .* but e0 = 7100 is given"),
    ]
    other = tmp_path / "fewer.tif"  # the same sample on other energies
    from xafsmap.core.io.tiff import write_stack

    write_stack(other, small_sample.stack[::2], small_sample.energies[::2])
    for args, match in cases:
        code = main(["map", str(small_sample_file), *args, "--model", str(model), "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and err[0].startswith("xafsmap: error: "), err
        assert __import__("re").search(match, err[0]), err
        assert not (tmp_path / "x").exists()
    code = main(["map", str(other), *refs, "--model", str(model), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "energies" in err[0] and "model was trained on 141" in err[0], err
    assert not (tmp_path / "x").exists()
