"""Recipes: TOML round trip, validation that names the field, and headless replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xafsmap.core.job import classes_for, run_map
from xafsmap.core.settings import ReferenceSpec, Settings, missing_paths, read_recipe, write_recipe
from xafsmap.core.simulate.sample import bundled_reference_paths

GOOD = """xafsmap_recipe = 1
[input]
sample = "fe_sample"
[[reference]]
spec = "{ref}"
"""


def _write(tmp_path, text) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


def test_round_trip_keeps_every_field(tmp_path):
    refs = bundled_reference_paths()
    recipe = Settings(
        references=(ReferenceSpec(str(refs["Fe"]), "metal", 0.5), ReferenceSpec(f"{refs['FeO']}", "FeO")),
        stack=str(tmp_path / "stack with spaces.tif"), energies=str(tmp_path / "e.txt"), i0=str(tmp_path / "i0.xsp"),
        roi=(1, 40, 2, 50), bin=2, threshold=0.05, e0=7112.0, nnorm=2, significance=4.0, axes="XYE",
        class_names=("metal", "FeO", "half \"and\" half"), compositions=((1.0, 0.0), (0.0, 1.0), (0.5, 0.5)),
        features="spectrum", smooth=7, n_per_class=50, n_trees=5, fit_range=(-20.0, 60.0),
        metric="jensen-shannon", seed=42, register=True, calibration=str(tmp_path / "foil.tif"),
        calibration_reference=f"{refs['Fe']}", noise=0.02, thick=3.5, degree=2, bin_size=8, zarr=True,
        false_alarm=0.01, pool=2, library=(str(tmp_path / "lib"),), criterion="aic",
        sets=(("two", (str(refs["Fe"]), str(refs["FeO"]))),), workers=2,
    )
    assert read_recipe(write_recipe(tmp_path / "r.toml", recipe)) == recipe
    assert not list(tmp_path.glob(".*partial"))


def test_a_shift_map_file_round_trips_and_is_checked_for_existence(tmp_path):
    recipe = Settings(references=(ReferenceSpec(str(tmp_path / "Fe.xdi")),), sample="fe_sample",
                    shift_map=str(tmp_path / "shift.tif"))
    back = read_recipe(write_recipe(tmp_path / "r.toml", recipe))
    assert back == recipe and back.register is False and back.noise is None
    assert "register" not in (tmp_path / "r.toml").read_text()  # the default stays out of the file
    assert str(tmp_path / "shift.tif") in missing_paths(back)


def test_relative_paths_are_taken_from_the_recipe_folder(tmp_path):
    path = _write(tmp_path, GOOD.format(ref="refs/Fe.xdi"))
    recipe = read_recipe(path)
    assert recipe.references[0].spec == str(tmp_path / "refs" / "Fe.xdi")
    assert missing_paths(recipe) == [str(tmp_path / "refs" / "Fe.xdi")]


def test_a_record_spec_is_not_missing_when_its_file_exists(tmp_path):
    (tmp_path / "lib.nor").write_text("# energy a b\n7100 0.1 0.2\n7110 0.5 0.6\n")
    recipe = read_recipe(_write(tmp_path, GOOD.format(ref="lib.nor:a")))
    assert missing_paths(recipe) == []


@pytest.mark.parametrize(
    "extra, message",
    [
        ("[prepare]\nbins = 2\n", r"unknown field \[prepare\] 'bins' \(known: roi, bin, register,"),
        ("[prepare]\nregister = 1\n", r"\[prepare\] register must be true or false, got 1"),
        ("[prepare]\nshift_map = \"s.tif\"\ncalibration = \"foil.tif\"\n", r"\[prepare\] shift_map and \[prepare\] calibration exclude"),
        ("[prepare]\ncalibration_reference = \"Fe.xdi\"\n", r"calibration_reference needs \[prepare\] calibration"),
        ("[prepare]\nshift_map = \"\"\n", r"\[prepare\] shift_map must be a non-empty string"),
        ("[classes]\nnoise = 2.0\n", r"\[classes\] noise = 2.0 is out of range: it must lie between 0 and 1"),
        ("[classes]\nnoise = \"low\"\n", r"\[classes\] noise must be a finite number, got 'low'"),
        ("[colour]\nx = 1\n", r"unknown field 'colour'"),
        ("[prepare]\nbin = 0\n", r"\[prepare\] bin = 0 is out of range: it must lie between 1 and 64"),
        ("[prepare]\nbin = 1.5\n", r"\[prepare\] bin must be a whole number, got 1.5"),
        ("[prepare]\nroi = [5, 2, 0, 4]\n", r"roi = \[5, 2, 0, 4\] must read \[row0, row1, col0, col1\]"),
        ("[prepare]\nthreshold = -0.1\n", r"threshold = -0.1 is out of range"),
        ("[classifier]\nn_trees = 0\n", r"\[classifier\] n_trees = 0 is out of range"),
        ("[classifier]\nmetric = \"cosine\"\n", r"metric = 'cosine' is not one of"),
        ("[classifier]\nfit_range = [70, -30]\n", r"fit_range = \[70.0, -30.0\]: the first number must be below"),
        ("[normalization]\nnnorm = 9\n", r"nnorm = 9 is out of range"),
        ("[classes]\nnames = [\"a\"]\n", r"\[classes\] names and \[classes\] compositions go together"),
        ("[classifier]\nthick = 0\n", r"\[classifier\] thick = 0.0 is out of range: it must lie above 0"),
        ("[cluster]\nworkers = 2\nscheduler = \"tcp://h:1\"\n", r"workers and .*scheduler exclude each other"),
        ("[trust]\nsets = [1]\n", r"\[trust\] sets must be a table of lists"),
        ("[classes]\nnames = [\"a\"]\ncompositions = [[1.0, 0.5]]\n", r"class 'a' has 2 fractions but there are 1"),
    ],
)
def test_bad_fields_are_named(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        read_recipe(_write(tmp_path, GOOD.format(ref="Fe.xdi") + extra))


@pytest.mark.parametrize(
    "text, message",
    [
        ("[input]\nsample = \"fe_sample\"\n[[reference]]\nspec = \"a\"\n", r"xafsmap_recipe = None is missing"),
        ("xafsmap_recipe = 1\n[[reference]]\nspec = \"a\"\n", r"give exactly one of \[input\] stack"),
        ("xafsmap_recipe = 1\n[input]\nsample = \"fe_sample\"\n", r"missing \[\[reference\]\]: name at least one"),
        ("xafsmap_recipe = 1\n[input]\nsample = \"fe_sample\"\n[[reference]]\nname = \"a\"\n",
         r"\[\[reference\]\] #1: missing field 'spec'"),
        ("xafsmap_recipe = 1\n[input]\nsample = \"fe_sample\"\n[[reference]]\nspec = \"a\"\noffset = 500\n",
         r"#1 offset = 500.0 is out of range"),
        ("xafsmap_recipe = 1\n[input]\nsample = \"other\"\n[[reference]]\nspec = \"a\"\n",
         r"sample = 'other' is not one of \['fe_sample'\]"),
        ("xafsmap_recipe = 1\n[input\n", r"recipe.toml is not valid TOML"),
        ("xafsmap_recipe = 1\n[input]\nstack = \"s.tif\"\naxes = \"XY\"\n[[reference]]\nspec = \"a\"\n",
         r"\[input\] axes = 'XY' must be a permutation of EYX"),
    ],
)
def test_missing_and_malformed_recipes_are_named(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_recipe(_write(tmp_path, text))


def test_table_names_replace_the_automatic_ones():
    recipe = Settings(references=(), sample="fe_sample", class_names=("metal", "wüstite", "mixed"),
                      compositions=((1, 0), (0, 1), (1, 3)))
    classes = classes_for(recipe, ["Fe", "FeO"])
    assert classes.names == ("metal", "wüstite", "mixed")
    np.testing.assert_allclose(classes.compositions[2], [0.25, 0.75])


def test_run_recipe_refuses_missing_files_and_lists_them(tmp_path):
    recipe = Settings(references=(ReferenceSpec(str(tmp_path / "gone.xdi")),), stack=str(tmp_path / "gone.tif"))
    with pytest.raises(FileNotFoundError, match="gone.tif, .*gone.xdi"):
        run_map(recipe, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_recipe_gives_the_labels_of_the_pipeline(tmp_path, small_sample_file):
    import json

    import tifffile

    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.mapping.pipeline import map_stack
    from xafsmap.core.prepare.grid import bin_stack, crop_stack
    from xafsmap.core.io.references import read_reference

    paths = bundled_reference_paths()
    recipe = Settings(references=tuple(ReferenceSpec(str(paths[n])) for n in ("Fe", "FeO", "Fe2O3")),
                    stack=str(small_sample_file), roi=(4, 44, 0, 60), bin=2, n_per_class=40, n_trees=8, seed=5,
                    mixtures="pairs:50")
    seen = []
    out = run_map(read_recipe(write_recipe(tmp_path / "r.toml", recipe)), out=tmp_path / "out",
                  progress=lambda done, total: seen.append((done, total))).out
    stack = read_stack(small_sample_file)
    stack = type(stack)(bin_stack(crop_stack(stack.data, (4, 44, 0, 60)), 2), stack.energies, stack.sources)
    expected = map_stack(stack, [read_reference(paths[n]) for n in ("Fe", "FeO", "Fe2O3")], n_per_class=40,
                         n_trees=8, rng=5, mixtures="pairs:50")
    labels = tifffile.imread(out / "labels.tif")
    assert labels.shape == (20, 30)
    np.testing.assert_array_equal(labels, expected.labels)
    assert seen and seen[-1][0] == seen[-1][1]
    report = json.loads((out / "report.json").read_text())
    assert report["recipe"]["prepare"] == {"roi": [4, 44, 0, 60], "bin": 2, "significance": 5.0}
    assert report["inputs"]["stack"]["sha256"]["sample.tif"]  # the inputs' hashes, as xafsmap map writes
    with pytest.raises(ValueError, match="not empty"):
        run_map(recipe, out=out)
    run_map(recipe, out=out, overwrite=True)


def test_run_recipe_calibrates_from_a_foil_and_from_its_shift_map_alike(tmp_path, shifted):
    import json

    import tifffile

    from xafsmap.core.job import prepare, shift_map_for
    from xafsmap.core.prepare.shiftmap import write_shift_map

    paths = bundled_reference_paths()
    base = Settings(references=tuple(ReferenceSpec(str(paths[n])) for n in ("Fe", "FeO", "Fe2O3")),
                  stack=str(shifted["sample"]), n_per_class=40, n_trees=8, mixtures="none",
                  calibration=str(shifted["foil"]), calibration_reference=str(paths["Fe"]))
    shift_map = shift_map_for(base)
    inner = (slice(4, -4), slice(4, -4))
    assert np.sqrt(np.mean((shift_map.shift - shifted["truth"])[inner] ** 2)) < 0.1
    stack = prepare(base).stack
    assert stack.energies.size < 141  # the end energies some pixel no longer covers are dropped
    out = run_map(base, out=tmp_path / "foil").out
    write_shift_map(tmp_path / "shift.tif", shift_map)
    from dataclasses import replace

    again = run_map(replace(base, calibration=None, calibration_reference=None, shift_map=str(tmp_path / "shift.tif")),
                    out=tmp_path / "file").out
    np.testing.assert_array_equal(tifffile.imread(out / "labels.tif"), tifffile.imread(again / "labels.tif"))
    report = json.loads((out / "report.json").read_text())
    assert report["grid"]["energy_calibrated"] and report["calibration"]["residual_rms_eV"] < 0.1
    assert report["recipe"]["prepare"]["calibration"] == str(shifted["foil"])
    assert (out / "shift.tif").is_file()


def test_noise_reaches_the_training_and_registration_the_stack(small_sample_file):
    from dataclasses import replace

    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.prepare.steps import prepare_stack
    from xafsmap.core.job import prepare, references_for, train
    from xafsmap.core.prepare.register import measure_drift

    paths = bundled_reference_paths()
    recipe = Settings(references=tuple(ReferenceSpec(str(paths[n])) for n in ("Fe", "FeO")),
                    stack=str(small_sample_file), n_per_class=20, n_trees=4, mixtures="none", noise=0.05)
    model = train(recipe, prepare(recipe).stack, references_for(recipe))
    assert model.params["noise"] == [0.05]
    stack = read_stack(small_sample_file)
    expected = prepare_stack(stack, drift=measure_drift(stack.data, stack.energies), roi=(0, 40, 0, 40))[0]
    registered = prepare(replace(recipe, register=True, roi=(0, 40, 0, 40))).stack
    np.testing.assert_array_equal(np.asarray(registered.data), np.asarray(expected.data))


def test_a_folder_stack_is_not_missing(tmp_path):
    folder = tmp_path / "scan"
    folder.mkdir()
    recipe = Settings(references=(ReferenceSpec(str(bundled_reference_paths()["Fe"])),), stack=str(folder))
    assert missing_paths(recipe) == []
