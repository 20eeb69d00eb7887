"""Drift registration on a full-size stack: time, peak memory and accuracy.

Measures :func:`xafsmap.core.prepare.register.measure_drift` on a stack written by
``benchmarks/generate.py --drift PX`` (which saves the true drift beside it as
``<stem>.drift.txt``), opened lazily with :func:`xafsmap.core.io.stack.read_stack` as the CLI
and the Prepare dock do. Prints one JSON line: wall time, peak RSS of this process
(``ru_maxrss``; the imports and the opened stack alone are reported as ``rss_start``),
and the error of the measured drift against the true one, both taken relative to the
reference image (RMS and max of the (dy, dx) error magnitude, px), over all images and
over the images from the Fe K edge (7112 eV) on (below it the synthetic sample is
nearly featureless).

    python benchmarks/generate.py /tmp/drift4000.tif --rows 4000 --cols 1700 --energies 210 --drift 4
    python benchmarks/drift.py /tmp/drift4000.tif                  # default reference
    python benchmarks/drift.py /tmp/drift4000.tif --reference 150  # a given reference
    PYTHONPATH=/tmp/before/src python benchmarks/drift.py /work/bench/stack-4000.tif --cold  # no truth: time only

``--cold`` evicts the stack's pages from the page cache first (every run reads the disk).
A stack without ``<stem>.drift.txt`` is timed only (no error figures).

``--module FILE`` measures another version of the module instead (e.g.
``git show <commit>:src/xafsmap/core/prepare/register.py > /tmp/register_old.py``), for
before/after numbers. One measurement per process, so the peak RSS is its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

#: Fe K edge (eV) of the stacks generate.py writes.
EDGE = 7112.0


def load_measure_drift(module: Path | None):
    if module is None:
        from xafsmap.core.prepare.register import measure_drift

        return measure_drift
    # named inside xafsmap.core.prepare so the module's relative imports resolve
    spec = importlib.util.spec_from_file_location("xafsmap.core.prepare._register_under_test", module)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded.measure_drift


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", type=Path)
    parser.add_argument("--reference", type=int, default=None, help="reference image index (default: chosen)")
    parser.add_argument("--module", type=Path, default=None, help="register.py to measure instead of the installed one")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="extra keyword for measure_drift (int), e.g. max_size=512")
    parser.add_argument("--cold", action="store_true", help="evict the stack from the page cache first")
    parser.add_argument("--save", type=Path, default=None, help="write the measured drift here (.txt, E rows of dy dx)")
    args = parser.parse_args(argv)

    from xafsmap.core.io.stack import read_stack

    measure_drift = load_measure_drift(args.module)
    if args.cold:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from run import evict

        evict(args.stack)
    stack = read_stack(args.stack)
    truth = args.stack.with_name(f"{args.stack.stem}.drift.txt")
    options = {name: int(value) for name, value in (item.split("=", 1) for item in args.option)}
    rss_start = peak_rss_gb()
    tic, cpu = time.perf_counter(), time.process_time()
    drift = measure_drift(stack.data, stack.energies, reference_index=args.reference, **options)
    seconds, cpu = time.perf_counter() - tic, time.process_time() - cpu
    ref = int(np.flatnonzero(np.all(drift == 0.0, axis=1))[0]) if args.reference is None else args.reference
    result = {
        "stack": str(args.stack), "shape": list(stack.data.shape), "module": str(args.module or "installed"),
        "options": options, "reference": ref, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2),
        "per_image_ms": round(1e3 * seconds / stack.data.shape[0], 1), "load": os.getloadavg()[0],
        "rss_start_gb": round(rss_start, 3), "peak_rss_gb": round(peak_rss_gb(), 3),
    }
    if truth.exists():
        true = np.loadtxt(truth)
        error = np.hypot(*((drift - drift[ref]) - (true - true[ref])).T)
        result.update({
            "error_rms_px": round(float(np.sqrt(np.mean(error**2))), 4), "error_max_px": round(float(error.max()), 4),
            # the pre-edge images are nearly featureless (their drift is interpolated or a guess);
            # from the Fe K edge on every image has structure
            "error_rms_from_edge_px": round(float(np.sqrt(np.mean(error[stack.energies >= EDGE] ** 2))), 4),
            "error_max_from_edge_px": round(float(error[stack.energies >= EDGE].max()), 4),
            "true_range_px": np.round(np.ptp(true, axis=0), 2).tolist(),
        })
    if args.save is not None:
        np.savetxt(args.save, drift, fmt="%.6f")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
