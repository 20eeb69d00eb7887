"""``xafsmap explore`` against ``xafsmap map`` on one generated stack: wall time and peak memory.

Each command runs as its own process from a cold page cache (the file evicted first),
alternating map and explore ``--repeat`` times so both see the same load on a shared
machine; peak RSS comes from ``os.wait4``. The target of issue 11: explore in at most
twice map's time, under 2 GB.

    python benchmarks/explore.py /work/bench/stack-4000.tif [--nmf 4] [--repeat 2] [--json results.jsonl]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import evict, reference_args, run_measured  # noqa: E402  (the benchmarks' shared helpers)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/xafsmap-bench"))
    parser.add_argument("--nmf", type=int, default=4, help="NMF spectra of the exploration (0: none)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, help="append the results as JSON lines here")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    size = args.stack.stat().st_size
    python = [sys.executable, "-m", "xafsmap.cli"]
    commands = {
        "xafsmap map": [*python, "map", str(args.stack), *reference_args(), "--quiet", "--overwrite", "--out",
                        str(args.work / "out-map")],
        "xafsmap explore": [*python, "explore", str(args.stack), "--quiet", "--overwrite", "--out",
                            str(args.work / "out-explore"), *(["--nmf", str(args.nmf)] if args.nmf else [])],
    }
    rows = []
    for attempt in range(args.repeat):
        for name, command in commands.items():
            shutil.rmtree(command[command.index("--out") + 1], ignore_errors=True)
            evict(args.stack)
            result = run_measured(command, log=args.work / f"log-{name.split()[1]}-{attempt}.txt")
            rows.append({"stack": str(args.stack), "gb": size / 1e9, "method": name, "attempt": attempt, **result})
            print(json.dumps(rows[-1]), flush=True)
    for attempt in range(args.repeat):
        pair = {row["method"]: row for row in rows if row["attempt"] == attempt}
        ratio = pair["xafsmap explore"]["wall_s"] / pair["xafsmap map"]["wall_s"]
        print(f"attempt {attempt}: map {pair['xafsmap map']['wall_s']:.1f} s "
              f"({pair['xafsmap map']['peak_rss_gb']:.2f} GB), explore {pair['xafsmap explore']['wall_s']:.1f} s "
              f"({pair['xafsmap explore']['peak_rss_gb']:.2f} GB): explore/map = {ratio:.2f}")
    report = args.work / "out-explore" / "explore.json"
    if report.is_file():
        timings = json.loads(report.read_text())["timings"]
        print("explore timings (last run): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    if args.json:
        with open(args.json, "a") as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")
    return rows


if __name__ == "__main__":
    main()
