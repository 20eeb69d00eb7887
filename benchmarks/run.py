"""Baseline vs ``xafsmap map`` on one generated stack, side by side, plus a cold read.

For each stack: evict the file from the page cache, time one sequential read of it
(the disk's own limit), then run each method as its own process from a cold cache and
record wall time and peak RSS (``os.wait4`` rusage of that process). Appends a markdown
table row per method to ``--report`` (default: print only).

    python benchmarks/run.py /tmp/xafsmap-bench/stack-1000.tif [--skip-baseline] [--report docs/performance.md]

The baseline holds the stack as float64 (pixels, energies) plus its normalized copy:
about 9x the file size. It is skipped (and reported as such) when that exceeds the
memory available, instead of being run into the OOM killer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCES = ("Fe", "FeO", "Fe2O3")
#: Baseline peak memory per byte of float32 stack (measured 1.4 GB -> ~12.8 GB peak).
BASELINE_BYTES_PER_BYTE = 9.0


def evict(path: Path) -> None:
    """Drop one file's pages from the page cache (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cold_read(path: Path, chunk: int = 16 * 2**20) -> float:
    """Seconds to read the whole file once, sequentially, after evicting it."""
    evict(path)
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    tic = time.perf_counter()
    with open(path, "rb", buffering=0) as file:
        while file.readinto(view):
            pass
    return time.perf_counter() - tic


def run_measured(command: list[str], *, log: Path) -> dict:
    """Run a command as a child; its wall time, peak RSS and exit status."""
    tic = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - tic
    return {"wall_s": wall, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9, "cpu_s": usage.ru_utime + usage.ru_stime,
            "status": os.waitstatus_to_exitcode(status), "log": str(log)}


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def reference_args() -> list[str]:
    from xafsmap.core.simulate.sample import bundled_reference_paths

    paths = bundled_reference_paths()
    return [arg for name in REFERENCES for arg in ("--reference", str(paths[name]))]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/xafsmap-bench"))
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--xafsmap-args", default="", help="extra arguments for xafsmap map")
    parser.add_argument("--json", type=Path, help="append the results as JSON lines here")
    args = parser.parse_args(argv)

    import tifffile

    with tifffile.TiffFile(args.stack) as tif:
        shape = tif.series[0].shape
    size = args.stack.stat().st_size
    label = f"{shape[1]} × {shape[2]} × {shape[0]} ({size / 1e9:.2f} GB)"
    rows = [{"stack": label, "method": "read the file once, cold", "wall_s": cold_read(args.stack),
             "peak_rss_gb": 0.0}]
    refs = reference_args()
    methods = {
        "xafsmap map": [sys.executable, "-m", "xafsmap.cli", "map", str(args.stack), *refs, "--quiet",
                        "--overwrite", "--out", str(args.work / "out-xafsmap"), *args.xafsmap_args.split()],
        "baseline (numpy + scikit-learn in memory)": [sys.executable, str(HERE / "baseline.py"), str(args.stack),
                                                      *refs, "--out", str(args.work / "out-baseline")],
    }
    need = BASELINE_BYTES_PER_BYTE * size
    for name, command in methods.items():
        if name.startswith("baseline") and (args.skip_baseline or need > 0.9 * available_bytes()):
            rows.append({"stack": label, "method": name, "wall_s": None, "peak_rss_gb": None,
                         "note": f"not run: needs ~{need / 1e9:.0f} GB, {available_bytes() / 1e9:.0f} GB available"})
            continue
        shutil.rmtree(command[command.index("--out") + 1], ignore_errors=True)
        evict(args.stack)
        result = run_measured(command, log=args.work / f"log-{name.split()[0]}.txt")
        rows.append({"stack": label, "method": name, **result})
        print(json.dumps(rows[-1]), flush=True)
    read_s = rows[0]["wall_s"]
    for row in rows:
        row["gb_per_s"] = size / 1e9 / row["wall_s"] if row.get("wall_s") else None
        row["x_cold_read"] = row["wall_s"] / read_s if row.get("wall_s") else None
        row["mpix_per_s"] = shape[1] * shape[2] / 1e6 / row["wall_s"] if row.get("wall_s") else None
    print(markdown(rows))
    if args.json:
        with open(args.json, "a") as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| stack | method | wall s | peak RSS GB | Mpixel/s | × cold read |", "|---|---|---|---|---|---|"]
    for row in rows:
        if row.get("wall_s") is None:
            lines.append(f"| {row['stack']} | {row['method']} | — | — | — | {row.get('note', '')} |")
            continue
        lines.append(
            f"| {row['stack']} | {row['method']} | {row['wall_s']:.1f} | {row['peak_rss_gb']:.2f} | "
            f"{row['mpix_per_s']:.2f} | {row['x_cold_read']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
