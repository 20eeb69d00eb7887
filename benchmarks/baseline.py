"""The straightforward in-memory method a user would write with numpy and scikit-learn.

Load the whole stack with ``tifffile.imread``, reshape to (pixels, energies) float64,
normalize every pixel (pre-edge line, post-edge quadratic, edge step at e0 — the Athena
recipe with numpy.polyfit over all pixels at once), mask pixels without sample, compute
the derivative features, train a 100-tree RandomForestClassifier (n_jobs=-1) on noisy
mixtures of the references, ``predict_proba`` every sample pixel, then fit non-negative
fractions (sum-to-one row) with ``scipy.optimize.nnls`` pixel by pixel, and write labels
and fractions as TIFFs. Same classes, training-set size, forest size and fit range as
``xafsmap map``'s defaults, so the two do the same work.

    python benchmarks/baseline.py STACK.tif --reference Fe.xdi --reference FeO.xdi ... --out DIR
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np


def normalize_all(spectra, energies, e0):
    """(P, E) float64 -> normalized (P, E), edge step (P,): pre-edge line, post-edge quadratic."""
    pre = (energies >= energies[0]) & (energies <= e0 - 20)
    post = (energies >= e0 + 40) & (energies <= energies[-1])
    pre_coef = np.polyfit(energies[pre], spectra[:, pre].T, 1)  # (2, P)
    post_coef = np.polyfit(energies[post] - e0, spectra[:, post].T, 2)  # (3, P)
    pre_line = np.outer(pre_coef[0], energies) + pre_coef[1][:, None]
    step = post_coef[2] - (pre_coef[0] * e0 + pre_coef[1])
    norm = (spectra - pre_line) / np.where(step == 0, 1.0, step)[:, None]
    return norm, step


def features(norm, energies, window):
    return np.gradient(norm[:, window], energies[window], axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", type=Path)
    parser.add_argument("--reference", action="append", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=1000)
    args = parser.parse_args(argv)

    import tifffile
    from scipy.optimize import nnls
    from sklearn.ensemble import RandomForestClassifier

    from xafsmap.core.io.references import read_reference

    tic = time.perf_counter()
    stack = tifffile.imread(args.stack)  # (E, M, N) float32, the whole file in memory
    energies = np.loadtxt(args.stack.with_name(f"{args.stack.stem}.energies.txt"))
    n_e, rows, cols = stack.shape
    spectra = stack.reshape(n_e, -1).T.astype(np.float64)  # (P, E)
    del stack
    good = np.all(np.isfinite(spectra), axis=1)
    spectra[~good] = 0.0
    mean = spectra[good].mean(axis=0)
    e0 = energies[np.argmax(np.gradient(mean, energies))]
    norm, step = normalize_all(spectra, energies, e0)
    del spectra
    sample = good & (step > 0.25 * np.median(step[good]))
    window = np.flatnonzero((energies >= e0 - 30) & (energies <= e0 + 70))
    print(f"read + normalized {rows}x{cols}x{n_e} in {time.perf_counter() - tic:.1f} s", flush=True)

    refs = []
    for spec in args.reference:
        ref = read_reference(spec)
        r_norm, _ = normalize_all(ref.mu[None, :].astype(np.float64), ref.energies, e0)
        refs.append(np.interp(energies, ref.energies, r_norm[0]))
    refs = np.array(refs)  # (K, E)
    k = len(refs)
    comps = [np.eye(k)[i] for i in range(k)]
    for i, j in itertools.combinations(range(k), 2):
        for f in (0.25, 0.5, 0.75):
            c = np.zeros(k)
            c[i], c[j] = f, 1 - f
            comps.append(c)
    comps = np.array(comps)
    rng = np.random.default_rng(0)
    noise = np.std(np.diff(norm[sample][:2000, :10], axis=1)) / np.sqrt(2)
    train = np.repeat(comps, args.per_class, axis=0) @ refs
    train += rng.normal(scale=noise, size=train.shape)
    labels = np.repeat(np.arange(len(comps)), args.per_class)
    forest = RandomForestClassifier(args.trees, n_jobs=-1, random_state=0)
    forest.fit(features(train, energies, window), labels)
    print(f"trained at {time.perf_counter() - tic:.1f} s", flush=True)

    x = features(norm[sample], energies, window)
    proba = forest.predict_proba(x)
    label_map = np.zeros(rows * cols, np.uint16)
    label_map[sample] = np.argmax(proba, axis=1) + 1
    print(f"classified at {time.perf_counter() - tic:.1f} s", flush=True)

    a = np.vstack([refs.T, np.full((1, k), 10.0)])  # sum-to-one as a weighted extra row
    fractions = np.full((k, rows * cols), np.nan, np.float32)
    for p in np.flatnonzero(sample):
        fractions[:, p] = nnls(a, np.append(norm[p], 10.0))[0]
    print(f"fitted at {time.perf_counter() - tic:.1f} s", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(args.out / "labels.tif", label_map.reshape(rows, cols))
    tifffile.imwrite(args.out / "fractions.tif", fractions.reshape(k, rows, cols))
    print(f"done in {time.perf_counter() - tic:.1f} s", flush=True)


if __name__ == "__main__":
    main()
