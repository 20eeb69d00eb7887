"""No --overwrite removes what xafsmap did not write; replacements survive kills and races.

Every test runs the real command in its own process (as a user or a script would) on
files built here, and checks that the user's files are byte for byte as they were and
that nothing is left beside the output folder.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from xafsmap.core.io.folders import MARKER, atomic_folder, claim_output, recover_output
from xafsmap.core.settings import ReferenceSpec, Settings, write_recipe
from xafsmap.core.simulate.sample import bundled_reference_paths

FAST = ["--spectra-per-class", "50", "--trees", "5", "--quiet"]


@pytest.fixture
def data(tmp_path, small_sample_file):
    """A user's data folder: the stack, its energies and notes."""
    folder = tmp_path / "disk" / "data"
    folder.mkdir(parents=True)
    shutil.copy(small_sample_file, folder / "stack.tif")
    shutil.copy(small_sample_file.with_suffix(".energies.txt"), folder / "stack.energies.txt")
    (folder / "notes.txt").write_text("beamtime 2024, sample 7\n")
    return folder


@pytest.fixture(scope="module")
def refs():
    paths = bundled_reference_paths()
    return [str(paths[name]) for name in ("Fe", "FeO", "Fe2O3")]


def map_args(stack, refs, out):
    return ["map", stack, *[a for r in refs for a in ("--reference", r)], "--out", out, *FAST]


def leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def digest(folder: Path) -> dict:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def invocations(data: Path, refs, home: Path) -> dict:
    """Commands a user might give with --overwrite aimed at something xafsmap did not write."""
    stack = str(data / "stack.tif")
    recipe = write_recipe(data / "recipe.toml", Settings(references=tuple(ReferenceSpec(r) for r in refs),
                                                      stack=stack, n_per_class=50, n_trees=5))
    return {
        "map into the data folder": (map_args(stack, refs, data), None, "holds the input"),
        "map --out . in the data folder": (map_args(stack, refs, "."), data, "is the current folder"),
        "map into the input's parent": (map_args(stack, refs, data.parent), None, "holds the input"),
        "map --out ~": (map_args(stack, refs, home), None, "is your home folder"),
        "map --out ..": (map_args(stack, refs, ".."), data, "holds the current folder"),
        "map --out /": (map_args(stack, refs, "/"), None, "root of the file system"),
        "calibrate into the data folder": (["calibrate", stack, "--out", data, "--quiet"], None, "holds the input"),
        "search-references into the data folder": (
            ["search-references", stack, *[a for r in refs for a in ("--reference", r)], "--library", refs[0],
             "--out", data, "--quiet"], None, "holds the input"),
        "compare-models into the data folder": (
            ["compare-models", stack, "--set", f"a={refs[0]},{refs[1]}", "--set", f"b={refs[0]}", "--out", data, "--quiet"], None,
            "holds the input"),
        "run into the recipe's folder": (["run", recipe, "--out", data, "--quiet"], None, "holds the input"),
        "demo into the data folder": (["demo", "--out", data, "--no-view", "--quiet"], None,
                                      "was not written by xafsmap"),
        "map into a folder of the user's": (map_args(stack, refs, home / "Documents"), None,
                                            "was not written by xafsmap"),
    }


CASES = ["map into the data folder", "map --out . in the data folder", "map into the input's parent", "map --out ~",
         "map --out ..", "map --out /", "calibrate into the data folder", "search-references into the data folder",
         "compare-models into the data folder", "run into the recipe's folder", "demo into the data folder",
         "map into a folder of the user's"]


@pytest.mark.parametrize("case", CASES)
def test_overwrite_never_removes_a_folder_xafsmap_did_not_write(case, data, refs, tmp_path, xafsmap_cli):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("secret\n")
    (home / "Documents").mkdir()
    (home / "Documents" / "thesis.tex").write_text("\\chapter{}\n")
    argv, cwd, match = invocations(data, refs, home)[case]
    before = {"data": digest(data), "home": digest(home)}
    run = xafsmap_cli([*argv, "--overwrite"], cwd=cwd or "/", env={"HOME": str(home)})
    assert run.code == 1, run.lines
    assert len(run.lines) == 1 and run.lines[0].startswith("xafsmap: error: output") and match in run.lines[0], run.lines
    assert {"data": digest(data), "home": digest(home)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "home"]
    assert sorted(p.name for p in data.parent.iterdir()) == ["data"] and run.seconds < 10


def test_overwrite_refuses_a_result_of_ours_once_the_user_put_a_file_in_it(data, refs, tmp_path, xafsmap_cli):
    out = tmp_path / "maps"
    assert xafsmap_cli(map_args(data / "stack.tif", refs, out)).code == 0
    (out / "my-analysis.ipynb").write_text("{}")
    before = digest(out)
    run = xafsmap_cli([*map_args(data / "stack.tif", refs, out), "--overwrite"])
    assert run.code == 1 and len(run.lines) == 1
    assert "holds my-analysis.ipynb, which xafsmap did not write" in run.lines[0]
    assert digest(out) == before and leftovers(tmp_path, "maps") == []


def test_a_folder_created_or_filled_during_the_job_is_not_replaced(tmp_path):
    out = tmp_path / "maps"
    with pytest.raises(ValueError, match="exists and is not empty"), atomic_folder(out) as tmp:
        (tmp / "labels.tif").write_bytes(b"new result")
        out.mkdir()  # the user, or another job, while this one runs
        (out / "important.txt").write_text("keep me")
    assert (out / "important.txt").read_text() == "keep me" and leftovers(tmp_path, "maps") == []
    with pytest.raises(ValueError, match="was not written by xafsmap"), atomic_folder(out, overwrite=True) as tmp:
        (tmp / "labels.tif").write_bytes(b"new result")
    assert sorted(os.listdir(out)) == ["important.txt"] and leftovers(tmp_path, "maps") == []


def test_of_two_jobs_on_one_folder_the_second_to_finish_fails(data, refs, tmp_path, xafsmap_cli):
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "maps"
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda seed: xafsmap_cli([*map_args(data / "stack.tif", refs, out), "--seed", seed]),
                             ["1", "2"]))
    assert sorted(run.code for run in runs) == [0, 1]
    loser = next(run for run in runs if run.code == 1)
    assert len(loser.lines) == 1 and "exists and is not empty" in loser.lines[0]
    winner_seed = next(seed for seed, run in zip([1, 2], runs) if run.code == 0)
    assert json.loads((out / "report.json").read_text())["parameters"]["seed"] == winner_seed
    assert leftovers(tmp_path, "maps") == []


KILL_AT_SECOND_RENAME = textwrap.dedent("""
    import os, signal, sys
    rename = os.rename
    def killing_rename(src, dst, *args, **kwargs):
        if ".partial-" in os.fspath(src):  # the new result about to take the old one's place
            os.kill(os.getpid(), signal.SIGKILL)
        return rename(src, dst, *args, **kwargs)
    os.rename = killing_rename
    from xafsmap.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_kill_between_the_renames_leaves_the_old_result_and_the_next_run_restores_it(data, refs, tmp_path,
                                                                                         xafsmap_cli):
    import subprocess

    out = tmp_path / "maps"
    assert xafsmap_cli(map_args(data / "stack.tif", refs, out)).code == 0
    old = digest(out)
    script = tmp_path / "kill.py"
    script.write_text(KILL_AT_SECOND_RENAME)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    killed = subprocess.run([sys.executable, str(script), *map(str, map_args(data / "stack.tif", refs, out)),
                             "--overwrite", "--seed", "7"], env=env, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith(".maps.old-")]
    assert digest(aside) == old  # whole, and marked as ours
    run = xafsmap_cli(map_args(data / "stack.tif", refs, out))
    notes = [line for line in run.lines if line.startswith("xafsmap: note:")]
    assert any("put back the previous result" in note for note in notes)
    assert any("unfinished output of an interrupted job" in note for note in notes)
    assert run.code == 1 and "exists and is not empty" in run.lines[-1]
    assert digest(out) == old and leftovers(tmp_path, "maps") == []


def test_stale_partial_folders_are_removed_and_a_running_jobs_kept(data, refs, tmp_path, caplog):
    import subprocess

    out = tmp_path / "maps"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    job = subprocess.Popen([sys.executable, "-m", "xafsmap.cli", *map(str, map_args(data / "stack.tif", refs, out))],
                           env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(f".maps.partial-*/{MARKER}")) and time.monotonic() < deadline:
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    [stale] = leftovers(tmp_path, "maps")
    with atomic_folder(tmp_path / "maps", sources=[data / "stack.tif"]) as running:  # the next job
        assert caplog.messages == [f"removed {stale}, the unfinished output of an interrupted job"]
        (running / "labels.tif").write_bytes(b"...")
        assert recover_output(out) == []  # a third job keeps the running one's folder
        assert leftovers(tmp_path, "maps") == [running.name]
    assert leftovers(tmp_path, "maps") == [] and (out / MARKER).exists()


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # Python ignores SIGXFSZ: writes fail


def test_a_full_disk_names_the_output_and_leaves_nothing(data, refs, tmp_path, xafsmap_cli):
    out = tmp_path / "maps"
    run = xafsmap_cli(map_args(data / "stack.tif", refs, out), preexec_fn=_limit_file_size)
    assert run.code == 1 and len(run.lines) == 1, run.lines
    assert run.lines[0].startswith("xafsmap: error: ") and str(out) in run.lines[0]
    assert "File too large" in run.lines[0] or "is the disk full?" in run.lines[0]
    assert not out.exists() and leftovers(tmp_path, "maps") == []


def test_an_error_exit_does_not_wait_for_the_hash_of_a_huge_input(small_sample_file, tmp_path, xafsmap_cli):
    import tifffile

    folder = tmp_path / "scan"
    folder.mkdir()
    stack = tifffile.imread(small_sample_file)
    energies = np.loadtxt(small_sample_file.with_suffix(".energies.txt"))
    for image, energy in zip(stack, energies):
        tifffile.imwrite(folder / f"img_{energy:.2f}eV.tif", image)
    with open(folder / "big.raw", "wb") as f:  # 64 GB, sparse on disk: 20 s to hash even at 3 GB/s
        f.truncate(64 * 2**30)
    narrow = tmp_path / "narrow.dat"
    np.savetxt(narrow, np.column_stack([np.linspace(7200, 7300, 50), np.linspace(1, 2, 50)]))
    run = xafsmap_cli(["map", folder, "--reference", narrow, "--out", tmp_path / "maps", *FAST])
    assert run.code == 1 and len(run.lines) == 1 and "narrow" in run.lines[0]
    assert run.seconds < 20  # 5-7 s measured on a shared 2-core machine; hashing alone takes 190 s there


def test_claim_names_what_it_refuses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ValueError, match="is the current folder"):
        claim_output(".", overwrite=True)
    with pytest.raises(ValueError, match="holds the current folder"):
        claim_output("..")
    (tmp_path / "link").symlink_to(tmp_path / "home", target_is_directory=True)
    (tmp_path / "home").mkdir()
    with pytest.raises(ValueError, match="is your home folder"):
        claim_output(tmp_path / "link", overwrite=True)
    with pytest.raises(ValueError, match="holds the input"):
        claim_output(tmp_path / "a", sources=[str(tmp_path / "a" / "scan" / "*.tif")])
    assert claim_output(tmp_path / "new") == tmp_path / "new"


def test_recovery_on_staged_states(tmp_path):
    out = tmp_path / "maps"
    with atomic_folder(out) as tmp:
        (tmp / "labels.tif").write_bytes(b"first")
    shutil.copytree(out, tmp_path / ".maps.old-1")  # left by a kill after the second rename
    assert recover_output(out) == ["removed .maps.old-1, the previous result of maps that an interrupted job left"]
    os.rename(out, tmp_path / ".maps.old-2")  # a kill between the renames ...
    out.mkdir()
    (out / "mine.txt").write_text("the user's")  # ... then the user took the name
    assert recover_output(out) == [] and (tmp_path / ".maps.old-2" / "labels.tif").read_bytes() == b"first"
    shutil.rmtree(out)
    assert recover_output(out) == [f"put back the previous result in {out} from .maps.old-2 (a job was stopped "
                                   "while replacing it)"]
    assert (out / "labels.tif").read_bytes() == b"first" and leftovers(tmp_path, "maps") == []
    (tmp_path / ".maps.partial-x").mkdir()  # a kill before the marker was written: empty, removed quietly
    (tmp_path / ".maps.partial-y").mkdir()
    (tmp_path / ".maps.partial-y" / "theirs.txt").write_text("not ours: no marker")
    assert recover_output(out) == [] and leftovers(tmp_path, "maps") == [".maps.partial-y"]
