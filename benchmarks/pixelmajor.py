"""Would a one-time pixel-major copy (Zarr) of a page-per-energy TIFF pay for itself?

Measures, on one stack (page cache evicted before each cold step):
  1. writing a pixel-major Zarr copy, chunks (E, 64, 64), zstd level 1, band by band;
  2. reading every row band of all energies back from it, and from the TIFF;
  3. single-pixel spectrum lookups from it, and from the TIFF (xafsmap.core.io.pixel.read_pixel_spectrum).

    python benchmarks/pixelmajor.py /tmp/xafsmap-bench/stack-1000.tif [--store /tmp/xafsmap-bench/pm.zarr]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np


def evict(path: Path) -> None:
    for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main() -> dict:
    import zarr
    from zarr.codecs import ZstdCodec

    from xafsmap.core.io.pixel import read_pixel_spectrum
    from xafsmap.core.io.stack import read_stack
    from xafsmap.core.mapping.pipeline import band_rows

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", type=Path)
    parser.add_argument("--store", type=Path, default=Path("/tmp/xafsmap-bench/pixel-major.zarr"))
    parser.add_argument("--lookups", type=int, default=20)
    args = parser.parse_args()
    stack = read_stack(args.stack)
    e, rows, cols = stack.data.shape
    band = band_rows(stack.data.shape)
    tile = 64
    shutil.rmtree(args.store, ignore_errors=True)
    out = {"stack": str(args.stack), "shape": [e, rows, cols], "band_rows": band}

    evict(args.stack)
    tic = time.perf_counter()
    store = zarr.create_array(args.store, shape=(e, rows, cols), chunks=(e, tile, tile), dtype="float32",
                              compressors=ZstdCodec(level=1))
    step = max(band, tile) // tile * tile
    for r0 in range(0, rows, step):
        store[:, r0 : r0 + step] = np.asarray(stack.data[:, r0 : r0 + step], dtype=np.float32)
    out["write_pixel_major_s"] = time.perf_counter() - tic
    out["pixel_major_gb"] = sum(p.stat().st_size for p in args.store.rglob("*") if p.is_file()) / 1e9

    # each in its own best band: the TIFF's 16 MB row chunks, the copy's whole chunk rows
    for name, reader, size in (("tiff", lambda r0, n: np.asarray(stack.data[:, r0 : r0 + n], dtype=np.float32), band),
                               ("pixel_major", lambda r0, n: store[:, r0 : r0 + n], step)):
        evict(args.stack)
        evict(args.store)
        tic = time.perf_counter()
        for r0 in range(0, rows, size):
            reader(r0, size)
        out[f"read_all_bands_{name}_cold_s"] = time.perf_counter() - tic

    rng = np.random.default_rng(0)
    pixels = [(int(r), int(c)) for r, c in zip(rng.integers(0, rows, args.lookups), rng.integers(0, cols, args.lookups))]
    for name, reader in (("tiff", lambda r, c: read_pixel_spectrum(stack, r, c)), ("pixel_major", lambda r, c: store[:, r, c])):
        evict(args.stack)
        evict(args.store)
        times = []
        for r, c in pixels:
            tic = time.perf_counter()
            reader(r, c)
            times.append(time.perf_counter() - tic)
        out[f"lookup_{name}_ms"] = {"first": 1e3 * times[0], "median_after_first": 1e3 * float(np.median(times[1:]))}
    shutil.rmtree(args.store, ignore_errors=True)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
