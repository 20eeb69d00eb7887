"""Write a realistic imaging-XANES stack of any size, one energy page at a time.

Grains (Voronoi cells) of the bundled real Fe references (Fe, FeO, Fe2O3 pure and
mixed, a few grains of Fe3O4 that is not among the references, ~10 % holes), a
smoothly varying edge step 0.6–1.4, a sloped pre-edge background, Gaussian noise
0.02 and a few dead (NaN) pixels. Written as a contiguous float32 multi-page TIFF
(BigTIFF past 4 GB) with its ``.energies.txt`` sidecar through
:func:`xafsmap.core.io.tiff.write_stack`; only the (K, M, N) fraction maps and one page are
ever in memory (~0.25 GB for 4000 x 1700), never the stack.

    python benchmarks/generate.py /tmp/xafsmap-bench/stack-1000.tif --rows 1000 --cols 1700 --energies 210

``--drift PX`` moves the sample during the scan: page ``e`` is the still page moved by
a seeded sub-pixel random walk ``drift[e] = (dy, dx)`` (0 at the first energy, the
largest component ``PX`` pixels on each axis) before the noise is added (the detector
does not move), by a Fourier shift (periodic at the borders); the true drift goes to
``<stem>.drift.txt`` (E rows of ``dy dx``, pixels, the convention of
:func:`xafsmap.core.prepare.register.measure_drift`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

PHASES = ("Fe", "FeO", "Fe2O3", "Fe3O4")
REFERENCES = ("Fe", "FeO", "Fe2O3")


def grain_map(rows: int, cols: int, n_grains: int, rng) -> np.ndarray:
    """Voronoi grain index per pixel, (rows, cols) int16, computed in row bands."""
    centres = rng.uniform(0, 1, (n_grains, 2)) * [rows, cols]
    out = np.empty((rows, cols), np.int16)
    xx = np.arange(cols, dtype=np.float32)
    dx2 = (xx[:, None] - centres[:, 1].astype(np.float32)) ** 2  # (cols, grains)
    for r0 in range(0, rows, 64):
        yy = np.arange(r0, min(rows, r0 + 64), dtype=np.float32)
        dy2 = (yy[:, None] - centres[:, 0].astype(np.float32)) ** 2  # (band, grains)
        out[r0 : r0 + yy.size] = np.argmin(dy2[:, None, :] + dx2[None, :, :], axis=-1)
    return out


def compositions(n_grains: int, rng) -> np.ndarray:
    """(grains, phases) fractions: pure and pair mixtures of the references, holes, unknown grains."""
    known = [PHASES.index(name) for name in REFERENCES]
    comp = np.zeros((n_grains, len(PHASES)), np.float32)
    for g in range(n_grains):
        kind = rng.uniform()
        if kind < 0.10:
            continue  # a hole: no sample
        if kind < 0.14:
            comp[g, PHASES.index("Fe3O4")] = 1.0  # not among the references
        elif kind < 0.60:
            comp[g, rng.choice(known)] = 1.0
        else:
            i, j = rng.choice(known, 2, replace=False)
            f = rng.choice([0.25, 0.5, 0.75])
            comp[g, i], comp[g, j] = f, 1 - f
    return comp


def random_drift(n_energies: int, largest: float, rng) -> np.ndarray:
    """(E, 2) random walk (dy, dx) px from 0, scaled so each axis's largest |value| is ``largest``."""
    steps = np.random.default_rng(rng).standard_normal((n_energies, 2))
    steps[0] = 0.0
    walk = np.cumsum(steps, axis=0)
    return walk * (largest / np.maximum(np.abs(walk).max(axis=0), 1e-12))


def shift_page(page: np.ndarray, drift) -> np.ndarray:
    """``page`` moved by ``+drift`` (rows, columns; sub-pixel), periodic: a Fourier shift, float32."""
    import scipy.fft
    from scipy import ndimage

    spectrum = scipy.fft.rfft2(page, workers=-1)
    moved = ndimage.fourier_shift(spectrum, drift, n=page.shape[1])
    return scipy.fft.irfft2(moved, s=page.shape, workers=-1).astype(np.float32, copy=False)


class SyntheticStack:
    """Array-like (E, M, N) float32 that computes the pages it is sliced for."""

    def __init__(self, rows: int, cols: int, energies: np.ndarray, *, n_grains: int, noise: float, rng: int,
                 drift: np.ndarray | None = None):
        from xafsmap.core.spectra.normalize import normalize
        from xafsmap.core.model.standards import resample_reference
        from xafsmap.core.simulate.sample import bundled_references

        gen = np.random.default_rng(rng)
        refs = bundled_references(PHASES)
        self.spectra = np.array(
            [resample_reference(r, energies, mu=normalize(r.mu, r.energies).norm) for r in refs], np.float32
        )
        grains = grain_map(rows, cols, n_grains, gen)
        comp = compositions(n_grains, gen)
        yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
        step = 0.6 + 0.8 * (0.5 + 0.5 * np.sin(xx / cols * 3.1 + 0.4) * np.cos(yy / rows * 2.3))
        has_sample = comp.sum(axis=1) > 0
        self.weights = (comp[grains] * step[..., None]).transpose(2, 0, 1).copy()  # (K, M, N) float32
        self.weights[:, ~has_sample[grains]] = 0.0
        self.offset = (0.3 + 0.1 * yy / rows).astype(np.float32)
        del yy, xx, step, grains
        self.energies, self.noise, self.seed, self.drift = energies, noise, rng, drift
        self.dead = (gen.integers(0, rows, 20), gen.integers(0, cols, 20), gen.integers(0, energies.size, 20))
        self.shape, self.dtype, self.ndim = (energies.size, rows, cols), np.dtype(np.float32), 3

    def page(self, e: int) -> np.ndarray:
        gen = np.random.default_rng([self.seed, e])
        slope = np.float32(-2e-4 * (self.energies[e] - self.energies[0]))
        page = np.tensordot(self.spectra[:, e], self.weights, axes=1)
        page += self.offset + slope
        if self.drift is not None and np.any(self.drift[e]):
            page = shift_page(page, self.drift[e])
        page += gen.standard_normal(page.shape, dtype=np.float32) * np.float32(self.noise)
        rows, cols, pages = self.dead
        hit = pages == e
        page[rows[hit], cols[hit]] = np.nan
        return page

    def __getitem__(self, key):
        start, stop, _ = key.indices(self.shape[0])
        return np.stack([self.page(e) for e in range(start, stop)])


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--cols", type=int, default=1700)
    parser.add_argument("--energies", type=int, default=210, help="energies (>= 70; Fe K edge grid)")
    parser.add_argument("--grains", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", type=float, default=0.0,
                        help="move the sample during the scan by a random walk up to this many px per axis; "
                             "the true drift goes to <stem>.drift.txt")
    args = parser.parse_args(argv)

    from xafsmap.core.io.tiff import write_stack
    from xafsmap.core.simulate.sample import sample_energies

    energies = sample_energies(n_edge=args.energies - 61)  # 61 points off the edge region
    tic = time.perf_counter()
    drift = random_drift(energies.size, args.drift, [args.seed, 1]) if args.drift > 0 else None
    stack = SyntheticStack(args.rows, args.cols, energies, n_grains=args.grains, noise=args.noise, rng=args.seed,
                           drift=drift)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if drift is not None:
        np.savetxt(args.out.with_name(f"{args.out.stem}.drift.txt"), drift, fmt="%.6f",
                   header="true drift per energy (px): dy dx; page = still page moved by +drift")
    path = write_stack(args.out, stack, energies)
    size = path.stat().st_size
    print(f"wrote {path} {stack.shape} {size / 1e9:.2f} GB in {time.perf_counter() - tic:.1f} s")
    return path


if __name__ == "__main__":
    main()
