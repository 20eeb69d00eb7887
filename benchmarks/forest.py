"""Forest engines on 1 M spectra: scikit-learn vs xafsmap's compiled forest.

A 12-class forest (3 bundled Fe references, pairs at 25/50/75 %) of 100 trees on
derivative features (~100 energies of the edge) of noisy synthetic mixtures, the way
the pipeline trains it; then 1 M test spectra of the same kind are classified by

* scikit-learn ``predict_proba`` (n_jobs as trained: all cores),
* ``xafsmap.core.model.forest.predict_proba`` (numba, branch-free interleaved blocks),

and the probabilities are compared.

    python benchmarks/forest.py --rows 1000000 --trees 100
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def build(n_trees: int, n_features: int, rng: int = 0):
    from xafsmap.core.model.classify import train_classifier
    from xafsmap.core.spectra.normalize import normalize
    from xafsmap.core.model.standards import resample_reference
    from xafsmap.core.simulate.sample import bundled_references, sample_energies
    from xafsmap.core.model.synthesize import make_classes

    energies = sample_energies(n_edge=149)  # 210 energies
    refs = bundled_references()
    spectra = np.array([resample_reference(r, energies, mu=normalize(r.mu, r.energies).norm) for r in refs])
    classes = make_classes([r.name for r in refs], mixtures="pairs")
    start = int(np.searchsorted(energies, 7100.0)) - 5
    window = (start, start + n_features)
    classifier = train_classifier(spectra, energies, classes, noise=0.02, n_per_class=1000, n_trees=n_trees,
                                  window=window, rng=rng)
    return classifier, spectra, classes


def test_features(classifier, spectra, classes, n_rows: int, rng: int = 1):
    from xafsmap.core.model.synthesize import synthesize_spectra

    per_class = -(-n_rows // len(classes))
    parts = []
    gen = np.random.default_rng(rng)
    for _ in range(0, per_class, 10_000):  # bounded memory: 10 k spectra per class at a time
        block, _, _ = synthesize_spectra(spectra, classes.compositions, noise=0.02, n_per_class=10_000, rng=gen)
        parts.append(classifier.features_of(block.T.astype(np.float32)))
    return np.ascontiguousarray(np.concatenate(parts)[:n_rows])


def timed(function, repeats: int):
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - tic)
    return result, float(np.median(times))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from xafsmap.core.model.forest import compile_forest, predict_proba

    classifier, spectra, classes = build(args.trees, args.features)
    forest = classifier.forest
    x = test_features(classifier, spectra, classes, args.rows)
    depths = [t.tree_.max_depth for t in forest.estimators_]
    tic = time.perf_counter()
    compiled = compile_forest(forest)
    compile_s = time.perf_counter() - tic
    predict_proba(compiled, x[:1000])  # JIT (or load from numba's cache)
    ours, ours_s = timed(lambda: predict_proba(compiled, x), args.repeats)
    theirs, theirs_s = timed(lambda: forest.predict_proba(x), args.repeats)
    result = {
        "rows": args.rows, "trees": args.trees, "classes": len(classes), "features": int(x.shape[1]),
        "depth_median": float(np.median(depths)), "depth_max": int(max(depths)),
        "nodes": int(compiled.feature.size), "compile_s": round(compile_s, 3),
        "sklearn_s": round(theirs_s, 3), "sklearn_mspectra_per_s": round(args.rows / theirs_s / 1e6, 3),
        "xafsmap_s": round(ours_s, 3), "xafsmap_mspectra_per_s": round(args.rows / ours_s / 1e6, 3),
        "speedup": round(theirs_s / ours_s, 2),
        "max_abs_diff": float(np.max(np.abs(ours - theirs))),
        "argmax_equal": bool(np.array_equal(ours.argmax(1), theirs.argmax(1))),
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
