"""Time and peak memory of ``xafsmap map`` on synthetic volumes (E, Z, Y, X), and their accuracy.

Writes a volume of ellipsoid grains (:func:`xafsmap.core.simulate.volume.make_volume`,
counting noise) as a 4-D float32 TIFF, one energy at a time (bounded memory), evicts it
from the page cache, maps it with ``xafsmap map`` in a child process (wall time and peak
RSS from ``os.wait4``), scores the fractions against the truth on the voxels made of
reference phases, and deletes the files. Run it for several Z to see that the peak
memory does not grow with the number of slices.

    python benchmarks/volume.py --slices 8 32 [--size 512] [--register] [--folder /tmp/xafsmap-volume]

Needs about 1.2 x the volume's size free on disk (the volume plus its maps); checked
first. A 141 x 32 x 512 x 512 volume is 4.7 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import evict  # noqa: E402

REFERENCES = ("Fe", "FeO", "Fe2O3")


class Energies:
    """The simulated volume as an array-like computed one energy (Z, Y, X) at a time."""

    def __init__(self, volume):
        self.volume, self.shape = volume, volume.shape

    def __getitem__(self, index):
        return self.volume.absorbance_at(index)


def run_measured(command: list[str], log: Path) -> dict:
    """Wall time (s), peak RSS (GB) and exit status of a child process."""
    tic = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    return {"wall_s": time.perf_counter() - tic, "peak_rss_gb": usage.ru_maxrss / 2**20,
            "status": os.waitstatus_to_exitcode(status)}


def write(slices: int, size: int, folder: Path):
    """The simulated volume and its 4-D TIFF (written one energy at a time), and the seconds it took."""
    from xafsmap.core.io.volume import write_volume
    from xafsmap.core.simulate.volume import make_volume

    tic = time.perf_counter()
    volume = make_volume((slices, size, size), radius=(6.0, 30.0), rng=slices)
    path = write_volume(folder / f"volume-{slices}.tif", Energies(volume), volume.energies)
    return volume, path, time.perf_counter() - tic


def bench(volume, path: Path, folder: Path, *, options=()) -> dict:
    """Map ``path`` with ``xafsmap map`` from a cold cache; time, memory and accuracy."""
    import tifffile

    from xafsmap.core.simulate.sample import bundled_reference_paths
    from xafsmap.core.simulate.scores import dominant_accuracy, fraction_rmse

    evict(path)
    paths = bundled_reference_paths()
    out = folder / f"maps-{path.stem}{''.join(options)}"
    command = [sys.executable, "-m", "xafsmap.cli", "map", str(path), *[a for name in REFERENCES
               for a in ("--reference", str(paths[name]))], "--out", str(out), "--quiet", *options]
    log = folder / f"{out.name}.log"
    measured = run_measured(command, log)
    if measured["status"] != 0:
        raise SystemExit(log.read_text())
    truth = volume.truth
    fractions = tifffile.imread(out / "fractions.tif")
    report = json.loads((out / "report.json").read_text())
    shutil.rmtree(out)
    return {"shape": list(volume.shape), "options": list(options), "gigabytes": path.stat().st_size / 1e9,
            **measured, "timings_s": report["timings_s"],
            "dominant_accuracy": dominant_accuracy(fractions, truth.reference_fractions, truth.known),
            "fraction_rmse": fraction_rmse(fractions, truth.reference_fractions, truth.known),
            "known_voxels": int(truth.known.sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--size", type=int, default=512, help="rows and columns of a slice")
    parser.add_argument("--folder", type=Path, default=None, help="where the volumes go (default a temp folder)")
    parser.add_argument("--register", action="store_true", help="also map each volume with --register")
    parser.add_argument("--workers", type=int, help="also map each volume on a local cluster of N workers")
    parser.add_argument("--zarr", action="store_true", help="also map each volume with --zarr")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="xafsmap-volume-"))
    folder.mkdir(parents=True, exist_ok=True)
    need = 1.2 * 141 * max(args.slices) * args.size**2 * 4
    free = shutil.disk_usage(folder).free
    if free < need:
        raise SystemExit(f"{folder} has {free / 1e9:.1f} GB free; the largest volume needs {need / 1e9:.1f} GB")
    try:
        for slices in args.slices:
            volume, path, seconds = write(slices, args.size, folder)
            print(json.dumps({"wrote": str(path), "write_s": round(seconds, 1)}), flush=True)
            variants = [[], *[["--register"]] * args.register, *[["--zarr"]] * args.zarr,
                        *([["--workers", str(args.workers)]] if args.workers else [])]
            for options in variants:
                print(json.dumps(bench(volume, path, folder, options=options)), flush=True)
            for item in folder.iterdir():  # big files go as soon as they are measured
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
