"""``xafsmap map`` plain, ``--register`` and ``--zarr``, two source trees side by side (issue 16).

Each case runs as its own process with ``PYTHONPATH`` pointing at one tree's ``src``,
after the stack's pages were evicted from the page cache (``posix_fadvise DONTNEED``:
every run starts cold); wall time, CPU time (user + sys) and peak RSS come from
``os.wait4``, the phases from the run's report.json. The trees alternate within a round
and their order flips between rounds, so a change in the machine's load falls on both.
One warm-up run per tree on ``--warmup STACK`` first (numba's on-disk caches).

    python benchmarks/register_zarr.py /work/bench/stack-4000.tif \\
        --tree before=/tmp/before/src --tree after=src --rounds 2 --json /tmp/register_zarr.jsonl

Prints one JSON line per run, then a markdown table of the medians per tree and case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import evict  # noqa: E402

CASES = {"map": [], "map --register": ["--register"], "map --zarr": ["--zarr"]}
REFERENCES = ("Fe.xdi", "FeO.xdi", "Fe2O3.xdi", "Fe3O4.e")


def command(stack: Path, out: Path, extra: list[str], references: Path) -> list[str]:
    refs = [a for name in REFERENCES for a in ("--reference", str(references / name))]
    return [sys.executable, "-m", "xafsmap.cli", "map", str(stack), *refs, "--quiet", "--overwrite", "--out",
            str(out), *extra]


def run(cmd: list[str], src: Path, log: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src.resolve()))
    tic = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd="/tmp")
        _, status, usage = os.wait4(process.pid, 0)
    return {"wall_s": time.perf_counter() - tic, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9, "status": os.waitstatus_to_exitcode(status)}


def load() -> float:
    return os.getloadavg()[0]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", type=Path)
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=SRC",
                        help="a source tree to measure (its src folder); give two")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--warmup", type=Path, default=Path("/work/bench/small.tif"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/xafsmap-bench/register_zarr"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    trees = dict(item.split("=", 1) for item in args.tree)
    trees = {name: Path(src) for name, src in trees.items()}
    references = HERE.parent / "src" / "xafsmap" / "data" / "references"
    args.work.mkdir(parents=True, exist_ok=True)
    if args.warmup and args.warmup.exists():
        for name, src in trees.items():
            run(command(args.warmup, args.work / f"warm-{name}", ["--register", "--zarr"], references), src,
                args.work / f"warm-{name}.log")
    rows = []
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
        for case in args.cases:
            for name in order:
                out = args.work / f"out-{name}"
                shutil.rmtree(out, ignore_errors=True)
                evict(args.stack)
                before = load()
                row = {"tree": name, "case": case, "round": round_, "load_before": before,
                       **run(command(args.stack, out, CASES[case], references), trees[name],
                             args.work / f"log-{name}-{case.replace(' ', '')}-{round_}.txt")}
                row["load_after"] = load()
                report = out / "report.json"
                if report.exists():
                    row["timings_s"] = json.loads(report.read_text()).get("timings_s")
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(row) + "\n")
    print(table(rows))
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| case | tree | wall s (median) | CPU s (median) | peak RSS GB | train s | bands s | runs |",
             "|---|---|---|---|---|---|---|---|"]
    for case in CASES:
        for tree in dict.fromkeys(r["tree"] for r in rows):
            runs = [r for r in rows if r["case"] == case and r["tree"] == tree and r["status"] == 0]
            if not runs:
                continue
            timing = [r.get("timings_s") or {} for r in runs]
            lines.append(
                f"| {case} | {tree} | {statistics.median(r['wall_s'] for r in runs):.1f} | "
                f"{statistics.median(r['cpu_s'] for r in runs):.1f} | "
                f"{max(r['peak_rss_gb'] for r in runs):.2f} | "
                f"{statistics.median(t.get('train_s', float('nan')) for t in timing):.1f} | "
                f"{statistics.median(t.get('map_s', float('nan')) for t in timing):.1f} | "
                f"{', '.join('%.1f' % r['wall_s'] for r in runs)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
