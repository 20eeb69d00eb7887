"""Map one stack with two checkouts of xafsmap and compare every map file byte for byte.

A refactoring must not change a single bit of the maps. This runs ``xafsmap map`` (the
same options) once from each checkout's ``src/`` with the same Python, then compares
every file the two runs wrote: TIFFs and CSVs byte for byte, report.json by its
``parameters``, ``classes``, ``classifier``, ``pixels``, ``survey``, ``grid`` and
``warnings`` (timings, versions, the input paths and the command differ by nature).
Wall times of the runs are printed beside (one run each: a rough figure).

    python benchmarks/identical.py /work/bench/small.tif --before /work/wt-prerefactor --after . \
        --out /tmp/identical [-- --bin 2 --metric manhattan]

Exits 1 when any file differs, naming it and the first differing byte.
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

REFERENCES = ("Fe", "FeO", "Fe2O3")
#: report.json sections that must be equal (the rest records when, where and how fast).
REPORT_KEYS = ("parameters", "classes", "classifier", "pixels", "survey", "grid", "warnings", "drift", "calibration")


def run_map(checkout: Path, stack: Path, out: Path, extra: list[str]) -> float:
    """``xafsmap map`` from ``checkout``'s sources into ``out``; returns the wall time (s)."""
    refs = checkout / "src" / "xafsmap" / "data" / "references"
    argv = [sys.executable, "-m", "xafsmap.cli", "map", str(stack), "--out", str(out), "--quiet", *extra]
    argv += [arg for name in REFERENCES for arg in ("--reference", str(refs / f"{name}.xdi"))]
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    if out.exists():
        shutil.rmtree(out)
    tic = time.perf_counter()
    subprocess.run(argv, env=env, check=True)
    return time.perf_counter() - tic


def first_difference(a: bytes, b: bytes) -> int | None:
    """Offset of the first differing byte (or of the shorter end), None when equal."""
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare(before: Path, after: Path) -> list[str]:
    """Differences between two output folders, one line each (empty when identical).

    Folders (``maps.ome.zarr``) are compared file by file, chunks and metadata alike.
    """
    problems = []
    names = {p.name for p in before.iterdir()} | {p.name for p in after.iterdir()}
    for name in sorted(names - {".xafsmap-output.json"}):
        a, b = before / name, after / name
        if a.is_dir() and b.is_dir():
            problems += [f"{name}/{line}" for line in compare(a, b)]
        elif not (a.is_file() and b.is_file()):
            problems.append(f"{name}: only in {'before' if a.exists() else 'after'}")
        elif name == "report.json":
            ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
            for key in REPORT_KEYS:
                if ra.get(key) != rb.get(key):
                    problems.append(f"report.json [{key!r}] differs")
        elif (offset := first_difference(a.read_bytes(), b.read_bytes())) is not None:
            problems.append(f"{name}: differs from byte {offset} ({a.stat().st_size} vs {b.stat().st_size} bytes)")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", type=Path)
    parser.add_argument("--before", type=Path, required=True, help="checkout before the change (its src/ is used)")
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--out", type=Path, required=True, help="folder for the two outputs")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = parser.parse_args(argv)
    args.extra = extra
    args.out.mkdir(parents=True, exist_ok=True)
    times = {}
    for label, checkout in (("before", args.before), ("after", args.after)):
        times[label] = run_map(checkout.resolve(), args.stack.resolve(), args.out / label, args.extra)
        print(f"{label}: {checkout} mapped in {times[label]:.1f} s", file=sys.stderr)
    problems = compare(args.out / "before", args.out / "after")
    files = sorted(p.name for p in (args.out / "after").iterdir() if not p.name.startswith("."))
    if problems:
        print("DIFFERENT:\n" + "\n".join(problems))
        return 1
    print(f"identical: {len(files)} files ({', '.join(files)}); report.json equal in {', '.join(REPORT_KEYS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
