"""A battery of bad inputs and faults, as a hostile or careless user gives them.

Each case runs the real command in a fresh process on files built here and must end
with one line naming the file or option and the problem, a non-zero exit, no output
folder, nothing left beside it, the inputs untouched, in under 10 s and 1 GB. Cases
where the input is valid but cannot give a good map must say so in a warning.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from xafsmap.core.simulate.sample import bundled_reference_paths

FAST = ["--spectra-per-class", "50", "--trees", "5", "--quiet"]
SECONDS, MEMORY = 10.0, 2**30
#: A whole map in a new process (imports, compiled kernels, training) on a shared machine.
MAP_SECONDS = 30.0


def _energies(path: Path, energies) -> None:
    np.savetxt(path.with_name(f"{path.stem}.energies.txt"), energies)


def _overwrite_tags(path: Path, **tags) -> None:
    with tifffile.TiffFile(path, mode="r+b") as tif:
        for page in tif.pages:
            for name, value in tags.items():
                page.tags[name].overwrite(value)


def _recipe(text: str, stack: Path, refs: dict) -> str:
    return (f'xafsmap_recipe = 1\n[input]\nstack = "{stack}"\n{text}'
            + "".join(f'[[reference]]\nspec = "{refs[n]}"\n' for n in ("Fe", "FeO", "Fe2O3")))


@pytest.fixture(scope="module")
def world(tmp_path_factory, small_sample_file, small_sample):
    """Every bad file of the battery, built once; ``digest`` proves none of them changes."""
    w = tmp_path_factory.mktemp("world")
    refs = {name: str(path) for name, path in bundled_reference_paths().items()}
    stack = w / "stack.tif"
    shutil.copy(small_sample_file, stack)
    shutil.copy(small_sample_file.with_suffix(".energies.txt"), w / "stack.energies.txt")
    energies = small_sample.energies
    data = tifffile.imread(stack)
    small = data[:, :16, :16]
    e6 = energies[:: energies.size // 6][:6]
    # Athena projects: lists nested 2000 deep; 200 MB of text gzip'd into 200 kB
    (w / "deep.prj").write_text("# Athena project file\n$old_group = 'a';\n@args = " + "(" * 2000 + ")" * 2000 + ";\n")
    (w / "bomb.prj").write_bytes(gzip.compress(b"# Athena project file\n" + b" " * (200 * 2**20)))
    shutil.copy(refs["Fe"], w / "Fe_copy.xdi")
    # TIFFs: a BigTIFF of width 0, a Deflate header claiming 120 x 100000 x 100000,
    # a damaged compressed page, pages of two shapes, true/false images
    tifffile.imwrite(w / "zero.tif", small, bigtiff=True)
    _energies(w / "zero.tif", energies)
    _overwrite_tags(w / "zero.tif", ImageWidth=0)
    tifffile.imwrite(w / "claim.tif", np.zeros((120, 8, 8), np.float32), compression="zlib", metadata=None)
    _energies(w / "claim.tif", np.linspace(7000, 7300, 120))
    _overwrite_tags(w / "claim.tif", ImageWidth=100000, ImageLength=100000, RowsPerStrip=100000)
    tifffile.imwrite(w / "corrupt.tif", small, compression="zlib")
    _energies(w / "corrupt.tif", energies)
    with tifffile.TiffFile(w / "corrupt.tif") as tif:
        start, count = tif.pages[3].dataoffsets[0], tif.pages[3].databytecounts[0]
    raw = bytearray((w / "corrupt.tif").read_bytes())
    raw[start + 2 : start + count] = bytes(count - 2)
    (w / "corrupt.tif").write_bytes(bytes(raw))
    with tifffile.TiffWriter(w / "shapes.tif") as tif:
        for i in range(6):
            tif.write(np.zeros((8, 9 if i == 2 else 10), np.float32))
    _energies(w / "shapes.tif", e6)
    tifffile.imwrite(w / "bool.tif", small > 0.5)
    _energies(w / "bool.tif", energies)
    tifffile.imwrite(w / "neg.tif", -data)  # the sign of absorbance flipped
    _energies(w / "neg.tif", energies)
    # a folder of one TIFF per energy, one of them cut short
    (w / "scan").mkdir()
    for image, energy in zip(small, energies):
        tifffile.imwrite(w / "scan" / f"img_{energy:.2f}eV.tif", image)
    cut = sorted((w / "scan").iterdir())[40]
    cut.write_bytes(cut.read_bytes()[:400])
    # text inputs: a bad i0 line, an energy of 1e308, recipes
    (w / "i0.txt").write_text("".join(f"{e} 1000\n" for e in energies[:70]) + "7200.0 lots\n")
    np.savetxt(w / "huge-energy.txt", [*energies[:-1], 1e308])
    (w / "deep.toml").write_text("xafsmap_recipe = 1\nx = " + "[" * 2000 + "]" * 2000 + "\n")
    (w / "latin1.toml").write_bytes(b"xafsmap_recipe = 1\n# \xe9chantillon\n")
    (w / "big.toml").write_text(_recipe("[classifier]\nn_per_class = 1000000\n", stack, refs))
    (w / "scheduler.json").write_text('{"type": "Scheduler"}')
    (w / "broken.json").write_text("{address: nowhere")
    return {"w": w, "refs": refs, "stack": stack}


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _map(w, refs, *extra, stack="stack.tif"):
    return ["map", w / stack if isinstance(stack, str) else stack,
            *[a for n in ("Fe", "FeO", "Fe2O3") for a in ("--reference", refs[n])], *FAST, *extra]


# case -> (argv builder (world folder, references), regex the one line must match)
CASES = {
    # hangs and unbounded memory
    "--trees 1e9": (lambda w, r: _map(w, r, "--trees", "1000000000"), r"--trees 1000000000 is out of range"),
    "--trees 1e9 as written": (lambda w, r: _map(w, r, "--trees", "1e9"), r"argument --trees: invalid int value"),
    "--spectra-per-class 1e9": (lambda w, r: _map(w, r, "--spectra-per-class", "1000000000"),
                                r"--spectra-per-class 1000000000 is out of range"),
    "training beyond memory": (lambda w, r: _map(w, r, "--spectra-per-class", "1000000", "--trees", "10"),
                               r"training 12 classes x 1000000 spectra x 10 trees needs up to .* GiB"),
    "training beyond an hour": (lambda w, r: _map(w, r, "--spectra-per-class", "10000", "--trees", "10000"),
                                r"1.2e\+09 tree-spectra, more than"),
    "recipe n_per_class = 1000000": (lambda w, r: ["run", w / "big.toml"], r"training 12 classes x 1000000 spectra"),
    "--scheduler nope.json": (lambda w, r: _map(w, r, "--scheduler", w / "nope.json"),
                              r"scheduler file .*nope.json does not exist"),
    "scheduler file without address": (lambda w, r: _map(w, r, "--scheduler", w / "scheduler.json"),
                                       r"scheduler.json names no scheduler address"),
    "scheduler file not JSON": (lambda w, r: ["run", w / "big.toml", "--scheduler", w / "broken.json"],
                                r"broken.json is not a readable JSON file"),
    "gzip bomb .prj": (lambda w, r: ["map", w / "stack.tif", "--reference", w / "bomb.prj", *FAST],
                       r"bomb.prj decompresses to more than 64 MB"),
    "Deflate TIFF claiming 120 x 100000 x 100000": (lambda w, r: _map(w, r, stack="claim.tif"),
                                                   r"claim.tif claims images of 100000 x 100000"),
    # tracebacks that became one line
    ".prj nested 2000 deep (map)": (lambda w, r: ["map", w / "stack.tif", "--reference", w / "deep.prj", *FAST],
                                    r"deep.prj line 3: lists nested more than 32 levels"),
    ".prj nested 2000 deep (--calibration-reference)": (
        lambda w, r: _map(w, r, "--calibration", w / "stack.tif", "--calibration-reference", w / "deep.prj"),
        r"deep.prj line 3: lists nested"),
    ".prj nested 2000 deep (compare-models --set)": (
        lambda w, r: ["compare-models", w / "stack.tif", "--set", f"a={r['Fe']},{w / 'deep.prj'}", "--set",
                      f"b={r['Fe']}", "--quiet"],
        r"deep.prj line 3: lists nested"),
    "recipe nested 2000 deep": (lambda w, r: ["run", w / "deep.toml"], r"deep.toml is not a recipe: .* nested"),
    "BigTIFF of width 0": (lambda w, r: _map(w, r, stack="zero.tif"), r"zero.tif: its header gives an image no pixels"),
    "damaged compressed page": (lambda w, r: _map(w, r, stack="corrupt.tif"),
                                r"corrupt.tif: page 3 is damaged or truncated"),
    # late or unclear messages
    "--mixtures Fe=nan,FeO=50": (lambda w, r: _map(w, r, "--mixtures", "Fe=nan,FeO=50"), r"'nan' is not a finite"),
    "--thick nan": (lambda w, r: _map(w, r, "--thick", "nan"), r"--thick nan is not a finite number"),
    "--offset Fe=nan": (lambda w, r: _map(w, r, "--offset", "Fe=nan"), r"--offset Fe=nan is not a finite number"),
    "--seed -1": (lambda w, r: _map(w, r, "--seed", "-1"), r"--seed -1 is out of range: it must lie between 0"),
    "--spectra-per-class 0": (lambda w, r: _map(w, r, "--spectra-per-class", "0"),
                              r"--spectra-per-class 0 is out of range: it must lie between 20 and"),
    "bad line in --i0": (lambda w, r: _map(w, r, "--i0", w / "i0.txt"), r"i0.txt: could not convert .*lots"),
    "truncated TIFF in a folder stack": (lambda w, r: _map(w, r, "--energies", w / "stack.energies.txt",
                                                           stack=w / "scan"), r"img_.*eV.tif: it is truncated"),
    "non-UTF-8 recipe": (lambda w, r: ["run", w / "latin1.toml"], r"latin1.toml is not UTF-8 text \(byte 0xe9"),
    "pages of different shapes": (lambda w, r: _map(w, r, stack="shapes.tif"),
                                  r"shapes.tif has pages of different shapes: page 0 is 8 x 10 but page 2 is 8 x 9"),
    "--out ..": (lambda w, r: _map(w, r, "--out", ".."), r"output folder .* holds the current folder"),
    # bad input that was accepted
    "--spectra-per-class 1": (lambda w, r: _map(w, r, "--spectra-per-class", "1"), r"--spectra-per-class 1 is out"),
    "--smooth -3": (lambda w, r: _map(w, r, "--smooth", "-3"), r"--smooth -3 is out of range"),
    "--nnorm 50": (lambda w, r: _map(w, r, "--nnorm", "50"), r"--nnorm 50 is out of range: it must lie between 0 and 5"),
    "--threshold -1": (lambda w, r: _map(w, r, "--threshold", "-1"), r"--threshold -1.0 is out of range"),
    "--bin 1000": (lambda w, r: _map(w, r, "--bin", "1000"), r"--bin 1000 is out of range"),
    "an energy of 1e308": (lambda w, r: _map(w, r, "--energies", w / "huge-energy.txt"),
                           r"huge-energy.txt: energy 140 is 1e\+308; energies must be finite numbers in eV between"),
    "a true/false stack": (lambda w, r: _map(w, r, stack="bool.tif"), r"bool.tif holds true/false images"),
    "a sign-flipped stack": (lambda w, r: _map(w, r, stack="neg.tif"),
                             r"absorbance falls across the edge in \d+ % of the surveyed pixels: .*--flat"),
    "--mixtures Fe=50": (lambda w, r: _map(w, r, "--mixtures", "Fe=50"), r"'Fe=50' sums to 50 %, not 100 %"),
    "--mixtures Fe=100": (lambda w, r: _map(w, r, "--mixtures", "Fe=100"), r"'Fe=100' is a pure reference"),
    "--fit-range 70 -30": (lambda w, r: _map(w, r, "--fit-range", "70", "-30"),
                           r"--fit-range = \[70.0, -30.0\]: the first number must be below the second"),
    "compare-models with one set": (lambda w, r: ["compare-models", w / "stack.tif", "--set", f"a={r['Fe']}"],
                                    r"give at least two --set to compare \(got 1\)"),
    "--workers with --scheduler": (lambda w, r: _map(w, r, "--workers", "2", "--scheduler", "tcp://h:1"),
                                   r"argument --scheduler: not allowed with argument --workers"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_leaves_everything_as_it_was(case, world, tmp_path, xafsmap_cli):
    build, pattern = CASES[case]
    w = world["w"]
    before = _digest(w)
    work = tmp_path / "work"
    work.mkdir()
    argv = [str(a) for a in build(w, world["refs"])]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    run = xafsmap_cli(argv, cwd=work)
    assert run.code in (1, 2), run.lines
    assert len(run.lines) == 1, run.lines
    assert re.match(r"xafsmap( [\w-]+)?: error: ", run.lines[0]) and re.search(pattern, run.lines[0]), run.lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and not any(work.iterdir())
    assert _digest(w) == before
    assert run.seconds < SECONDS and run.max_rss < MEMORY, (run.seconds, run.max_rss / 2**20)


@pytest.mark.parametrize("case, stack, refs, warning", [
    ("two identical references", "stack.tif", ("Fe", "Fe_copy", "FeO"),
     r"references 'Fe' and 'Fe_copy' are identical"),
])
def test_a_setup_that_cannot_work_is_named_in_a_warning(case, stack, refs, warning, world, tmp_path, xafsmap_cli):
    w = world["w"]
    paths = {**world["refs"], "Fe_copy": str(w / "Fe_copy.xdi")}
    out = tmp_path / "out"
    run = xafsmap_cli(["map", w / stack, *[a for n in refs for a in ("--reference", paths[n])], "--out", out, *FAST])
    assert run.code == 0
    assert any(re.search(warning, line) for line in run.lines if line.startswith("xafsmap: warning: ")), run.lines
    assert any(re.search(warning, text) for text in json.loads((out / "report.json").read_text())["warnings"])
    assert run.seconds < MAP_SECONDS and run.max_rss < MEMORY


def test_run_prints_the_warnings_of_its_report(world, tmp_path, xafsmap_cli):
    w = world["w"]
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'xafsmap_recipe = 1\n[input]\nstack = "{w / "stack.tif"}"\n'
                      "[classifier]\nn_per_class = 50\nn_trees = 5\n"
                      + "".join(f'[[reference]]\nspec = "{s}"\n' for s in
                                (world["refs"]["Fe"], w / "Fe_copy.xdi", world["refs"]["FeO"])))
    run = xafsmap_cli(["run", recipe, "--out", tmp_path / "out", "--quiet"])
    assert run.code == 0
    assert any("references 'Fe' and 'Fe_copy' are identical" in line for line in run.lines), run.lines


def test_a_bad_file_in_a_library_is_listed_as_skipped(world, tmp_path, xafsmap_cli):
    w, refs = world["w"], world["refs"]
    library = tmp_path / "library"
    library.mkdir()
    for name in ("deep.prj", "bomb.prj"):
        shutil.copy(w / name, library / name)
    shutil.copy(bundled_reference_paths()["Fe3O4"], library / "Fe3O4.e")
    out = tmp_path / "out"
    run = xafsmap_cli(["search-references", w / "stack.tif", *[a for n in ("Fe", "FeO", "Fe2O3")
                                                                 for a in ("--reference", refs[n])],
                       "--library", library, "--out", out, "--quiet"])
    assert run.code == 0, run.lines
    skipped = [line for line in run.lines if line.startswith("xafsmap: note: skipped")]
    assert len(skipped) == 2 and "lists nested" in " ".join(skipped) and "decompresses" in " ".join(skipped)
    assert "Fe3O4" in run.stdout
    report = json.loads((out / "search.json").read_text())
    assert sorted(Path(s["source"]).name for s in report["skipped"]) == ["bomb.prj", "deep.prj"]
    assert run.seconds < MAP_SECONDS and run.max_rss < MEMORY


def test_an_unreachable_scheduler_is_named_within_the_timeout():
    import socket
    import time

    from xafsmap.core.mapping.parallel import open_client

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tic = time.perf_counter()
    with pytest.raises(ValueError, match=f"cannot reach the dask scheduler at tcp://127.0.0.1:{port} within 1 s"):
        with open_client(scheduler=f"tcp://127.0.0.1:{port}", timeout=1):
            pass
    assert time.perf_counter() - tic < 10
