"""Accuracy of xafsmap against the plain fingerprinting approach, on known answers.

Stacks are synthesized from the bundled real Fe, FeO, Fe2O3 spectra (grains and 25/50/75
mixtures, thickness and matrix absorption varying, Gaussian noise) with magnetite grains
that are not among the references. Both methods map the same stacks; we report

- dominant-phase accuracy on clearly dominated pixels (true largest fraction >= 0.7),
- RMS error of the non-negative fractions on pixels made of the references,
- ROC AUC of the distance map for magnetite pixels against all other sample pixels.

The plain approach: pre- and post-edge *lines* fitted to fixed windows, raw derivative
features (no smoothing), training spectra = class spectra + noise at the median level
without normalizing them again, plain NNLS fractions, Euclidean distance.

Run:  .venv/bin/python benchmarks/accuracy.py [--seeds 5] [--noise 0.02]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from xafsmap.core.model.features import compute_features, feature_distance
from xafsmap.core.io.stack import Stack
from xafsmap.core.spectra.lcf import fit_fractions
from xafsmap.core.spectra.normalize import normalize
from xafsmap.core.mapping.pipeline import map_stack
from xafsmap.core.model.standards import prepare_references
from xafsmap.core.spectra.survey import survey
from xafsmap.core.simulate.sample import make_sample
from xafsmap.core.model.synthesize import make_classes, synthesize_spectra


def roc_auc(negatives, positives) -> float:
    scores = np.concatenate([negatives, positives])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size)
    ranks[order] = np.arange(1, scores.size + 1)
    n, p = negatives.size, positives.size
    return float((ranks[n:].sum() - p * (p + 1) / 2) / (n * p))


def plain_map(sample, *, rng=0):
    """The straightforward method, for comparison (fixed windows, lines, raw derivative)."""
    from sklearn.ensemble import RandomForestClassifier

    energies = sample.energies
    found = survey(sample.stack, energies)
    params = dict(e0=found.e0, pre1=-50.0, pre2=-15.0, norm1=40.0, norm2=180.0, nnorm=1)
    refs = prepare_references(sample.references, energies, e0=found.e0, norm_params=params)
    classes = make_classes([r.name for r in sample.references])
    x, y, _ = synthesize_spectra(refs, classes.compositions, noise=float(np.median(found.noise)),
                                 n_per_class=1000, spread=0.0, rng=rng)
    forest = RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=rng)
    forest.fit(compute_features(x.T, energies, smooth=0), y)
    rows = sample.stack.reshape(energies.size, -1)
    finite = np.all(np.isfinite(rows), axis=0)
    norm = normalize(np.where(finite, rows, 0), energies, **params)
    sample_px = finite & (norm.edge_step > found.threshold)
    features = compute_features(norm.norm[:, sample_px], energies, smooth=0)
    labels = np.zeros(rows.shape[1], int)
    labels[sample_px] = forest.predict(features) + 1
    centroids = compute_features((classes.compositions @ refs).T, energies, smooth=0)
    distance = np.full(rows.shape[1], np.nan)
    distance[sample_px] = feature_distance(features, centroids[labels[sample_px] - 1])
    fractions = np.full((len(refs), rows.shape[1]), np.nan)
    fractions[:, sample_px], _ = fit_fractions(norm.norm[:, sample_px], refs)
    shape = sample.stack.shape[1:]
    return labels.reshape(shape), distance.reshape(shape), fractions.reshape(-1, *shape), classes


def score(sample, labels, distance, fractions, compositions) -> dict:
    truth = sample.fractions[: len(sample.references)]
    mapped = labels > 0
    explained = sample.mask & (sample.fractions[len(sample.references):].sum(axis=0) == 0) & mapped
    dominated = explained & (truth.max(axis=0) >= 0.7)
    predicted = compositions[labels[dominated] - 1].argmax(axis=1)
    unknown = sample.mask & mapped & ~explained
    return {
        "dominant_accuracy": float(np.mean(predicted == truth[:, dominated].argmax(axis=0))),
        "fraction_rmse": float(np.sqrt(np.mean((fractions[:, explained] - truth[:, explained]) ** 2))),
        "distance_auc": roc_auc(distance[explained], distance[unknown]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--shape", type=int, nargs=2, default=(120, 160))
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        sample = make_sample(tuple(args.shape), noise=args.noise, rng=100 + seed)
        tic = time.perf_counter()
        ours = map_stack(Stack(sample.stack, sample.energies, {}), sample.references, rng=seed)
        ours_s = time.perf_counter() - tic
        row = {"seed": 100 + seed, "xafsmap": score(sample, ours.labels, ours.distance, ours.fractions,
                                                   ours.classifier.classes.compositions)}
        for metric in ("manhattan", "jensen-shannon"):
            other = map_stack(Stack(sample.stack, sample.energies, {}), sample.references, rng=seed,
                              metric=metric)
            row["xafsmap"][f"distance_auc_{metric}"] = score(
                sample, other.labels, other.distance, other.fractions, other.classifier.classes.compositions
            )["distance_auc"]
        tic = time.perf_counter()
        labels, distance, fractions, classes = plain_map(sample, rng=seed)
        plain_s = time.perf_counter() - tic
        row["plain"] = score(sample, labels, distance, fractions, classes.compositions)
        row["seconds"] = {"xafsmap": round(ours_s, 1), "plain": round(plain_s, 1)}
        rows.append(row)
        print(json.dumps(row))
    summary = {
        method: {key: float(np.mean([r[method][key] for r in rows])) for key in rows[0][method]}
        for method in ("xafsmap", "plain")
    }
    print(json.dumps({"mean_over_seeds": summary, "noise": args.noise, "shape": args.shape}, indent=1))


if __name__ == "__main__":
    main()
