"""A series of N stacks against N maps: does one model over the series cost one training?

Writes a synthetic reduction series (:mod:`xafsmap.core.simulate.series`, N stacks of
ROWS x COLS x 141 energies) and times, each as a fresh ``xafsmap`` process:

* ``train``: one training on the first stack (the model file);
* ``map --model`` of every stack: a map without training (survey + map + files);
* ``map`` of every stack: training each time, as before series existed;
* ``series`` of all N (trains once, maps every stack), and its rerun (every stack skipped);
  with ``--workers W`` also ``series --workers W`` with the series' model (stacks on a local
  cluster, several in flight; its series.csv compared with the plain one);

and the same jobs again in one warm process (after a warm-up map), where no run pays
Python's imports or numba's compilation: the stricter comparison.

The target: series <= 1.1 x sum(map --model) + train. Also prints series.csv against
the truth (mean fraction of each reference over each stack's sample pixels).

    python benchmarks/series.py --folder /tmp/xafsmap-bench/series --rows 300 --cols 400 --steps 4
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def xafsmap(*argv) -> float:
    """Run ``xafsmap ARGV`` in a fresh process from this checkout; return its wall time (s)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "xafsmap.cli", *map(str, argv), "--quiet"], env=env, check=True)
    return time.perf_counter() - tic


def in_process(stacks, listing, folder: Path) -> dict:
    """The same jobs called in one process after a warm-up map: no imports, no compilation."""
    from dataclasses import replace

    from xafsmap.core.job import run_map, run_series, run_train
    from xafsmap.core.settings import ReferenceSpec, Settings
    from xafsmap.core.simulate.series import reference_files

    settings = Settings(stack=str(stacks[0]), references=tuple(ReferenceSpec(str(p)) for p in reference_files()))
    model = folder / "model.npz"
    folder.mkdir(parents=True)
    run_train(settings, out=folder / "warmup.npz")
    run_map(replace(settings, model=str(folder / "warmup.npz")), out=folder / "warmup")
    tic = time.perf_counter()
    run_train(settings, out=model)
    found = {"warm_train": time.perf_counter() - tic, "warm_map_model": []}
    for stack in stacks:
        tic = time.perf_counter()
        run_map(replace(settings, stack=str(stack), model=str(model)), out=folder / f"m-{stack.stem}")
        found["warm_map_model"].append(time.perf_counter() - tic)
    tic = time.perf_counter()
    run_series(replace(settings, stack=None, series_list=str(listing)), out=folder / "series")
    found["warm_series"] = time.perf_counter() - tic
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/xafsmap-bench/series"))
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--cols", type=int, default=400)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", type=Path, help="append the results as one JSON line")
    parser.add_argument("--workers", type=int, help="also run the series on a local cluster of N workers")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(SRC))
    import tifffile

    from xafsmap.core.simulate.series import (SERIES_REFERENCES, make_reduction_series, reference_files,
                                              series_truth, write_reduction_series)

    if args.folder.exists():
        shutil.rmtree(args.folder)
    samples = make_reduction_series((args.rows, args.cols), steps=args.steps, rng=0)
    listing = write_reduction_series(args.folder / "input", samples)
    stacks = [listing.parent / f"step_{i}.tif" for i in range(1, args.steps + 1)]
    refs = [arg for path in reference_files() for arg in ("--reference", path)]
    model = args.folder / "model.npz"
    times = {"train": xafsmap("train", stacks[0], *refs, "--out", model)}
    times["map_model"] = [xafsmap("map", s, *refs, "--model", model, "--out", args.folder / f"m-{s.stem}")
                          for s in stacks]
    times["map_train"] = [xafsmap("map", s, *refs, "--out", args.folder / f"t-{s.stem}") for s in stacks]
    out = args.folder / "out"
    times["series"] = xafsmap("series", "--list", listing, *refs, "--out", out)
    times["series_rerun"] = xafsmap("series", "--list", listing, *refs, "--out", out)
    if args.workers:  # the same series (the same model file: the same maps) with its stacks on a cluster
        spread = args.folder / "out-workers"
        times["series_workers"] = xafsmap("series", "--list", listing, *refs, "--model", out / "model.npz",
                                          "--workers", args.workers, "--out", spread)
        same = (spread / "series.csv").read_text() == (out / "series.csv").read_text()
        print(f"series --workers {args.workers}       {times['series_workers']:7.2f} s (with the series' model; "
              f"series.csv {'identical' if same else 'DIFFERENT'})")
    times.update(in_process(stacks, listing, args.folder / "warm"))
    budget = 1.1 * sum(times["map_model"]) + times["train"]
    warm_budget = 1.1 * sum(times["warm_map_model"]) + times["warm_train"]
    print(f"{args.steps} stacks of {args.rows} x {args.cols} x {samples[0].energies.size}")
    print(f"train                    {times['train']:7.2f} s")
    print(f"map --model, each        {' '.join(f'{t:.2f}' for t in times['map_model'])} s "
          f"(sum {sum(times['map_model']):.2f})")
    print(f"map (trains), each       {' '.join(f'{t:.2f}' for t in times['map_train'])} s "
          f"(sum {sum(times['map_train']):.2f})")
    print(f"series                   {times['series']:7.2f} s   budget 1.1 x sum(map --model) + train = "
          f"{budget:.2f} s: {'within' if times['series'] <= budget else 'OVER'} "
          f"({times['series'] / budget:.2f} of it)")
    print(f"series rerun (skips all) {times['series_rerun']:7.2f} s")
    print("in one warm process (numba compiled, libraries imported):")
    print(f"  train {times['warm_train']:.2f} s; map --model each "
          f"{' '.join(f'{t:.2f}' for t in times['warm_map_model'])} s (sum {sum(times['warm_map_model']):.2f}); "
          f"series {times['warm_series']:.2f} s; budget {warm_budget:.2f} s: "
          f"{'within' if times['warm_series'] <= warm_budget else 'OVER'} ({times['warm_series'] / warm_budget:.2f} of it)")
    with open(out / "series.csv", newline="") as f:
        table = list(csv.DictReader(f))
    worst = 0.0
    for row, sample in zip(table, samples):
        mask = tifffile.imread(out / row["name"] / "mask.tif") == 1
        truth = series_truth(sample, mask)
        errors = {name: float(row[f"fraction_{name}"]) - truth[name] for name in SERIES_REFERENCES}
        worst = max(worst, *map(abs, errors.values()))
        print(f"{row['name']}: " + ", ".join(f"{name} {float(row[f'fraction_{name}']):.3f} (truth {truth[name]:.3f})"
                                             for name in SERIES_REFERENCES))
    print(f"largest |series.csv - truth| = {worst:.4f}")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"benchmark": "series", "rows": args.rows, "cols": args.cols, "steps": args.steps,
                                **times, "budget": budget, "warm_budget": warm_budget,
                                "worst_fraction_error": worst}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
