"""Latency of one pixel's spectrum (the Inspect dock's lookup) on a big stack.

Times ``stack.data[:, r, c].compute()`` (the lazy dask stack from ``read_stack``) and
``xafsmap.core.io.pixel.read_pixel_spectrum`` at random pixels: the first lookup, then later
ones (page cache cold for the pixel's pages unless the file was read before), and
the same pixel again (warm).

    python benchmarks/pixel.py /tmp/xafsmap-bench/stack-4000.tif --lookups 20
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack")
    parser.add_argument("--lookups", type=int, default=20)
    parser.add_argument("--cold", action="store_true", help="evict the file from the page cache first")
    args = parser.parse_args(argv)

    from xafsmap.core.io.pixel import read_pixel_spectrum
    from xafsmap.core.io.stack import read_stack

    from run import evict  # benchmarks/run.py

    if args.cold:
        evict(args.stack)
    tic = time.perf_counter()
    stack = read_stack(args.stack)
    open_s = time.perf_counter() - tic
    _, rows, cols = stack.data.shape
    rng = np.random.default_rng(0)
    pixels = list(zip(rng.integers(0, rows, args.lookups), rng.integers(0, cols, args.lookups)))
    result = {"open_s": open_s}
    methods = [("read_pixel_spectrum", lambda r, c: read_pixel_spectrum(stack, r, c)),
               ("dask", lambda r, c: stack.data[:, r, c].compute())]
    for name, lookup in methods:
        if args.cold:
            evict(args.stack)  # each method starts from a cold cache
        times = []
        for r, c in pixels:
            tic = time.perf_counter()
            spectrum = lookup(int(r), int(c))
            times.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        again = lookup(int(pixels[-1][0]), int(pixels[-1][1]))
        warm = time.perf_counter() - tic
        assert np.array_equal(again, spectrum, equal_nan=True)
        result[name] = {"first_ms": 1e3 * times[0], "median_after_first_ms": 1e3 * float(np.median(times[1:])),
                        "max_after_first_ms": 1e3 * float(np.max(times[1:])), "same_pixel_again_ms": 1e3 * warm}
    r, c = map(int, pixels[0])
    assert np.array_equal(read_pixel_spectrum(stack, r, c), stack.data[:, r, c].compute(), equal_nan=True)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
