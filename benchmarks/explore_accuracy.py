"""The numbers behind docs/explore.md: exploration's known answers over doses and thicknesses.

Stacks from the physical generator (:func:`xafsmap.core.simulate.simulate_measurement`,
bundled real references, 120 x 160 pixels). For each condition: the component test
(significant count, the 4th and 5th eigenvalue over the noise floor, the bulk ratio),
``auto`` clusters and their adjusted Rand index on pure grains, NMF cosines to the
phases, E50 RMS against a known shift field in pure grains, and the pre-edge centroid
of FeO/Fe2O3 mixtures. The tests (tests/core/test_explore.py) assert the thresholds.

    python benchmarks/explore_accuracy.py
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from xafsmap.core.explore import edge_maps, explore_stack, find_components, sample_pixels
from xafsmap.core.io.stack import Stack
from xafsmap.core.spectra.normalize import normalize
from xafsmap.core.prepare.resample import apply_shift
from xafsmap.core.simulate.generator import CONDITIONS, simulate_measurement

SHAPE = (120, 160)


def components_table():
    print("| condition | seed | significant | λ4 / floor | λ5 / floor | bulk ratio |\n|---|---|---|---|---|---|")
    for name, condition in CONDITIONS.items():
        for seed in (1, 2):
            m = simulate_measurement(SHAPE, rng=seed, **condition)
            found = find_components(sample_pixels(m.stack().data, m.energies))
            ratio = found.eigenvalues / found.noise_floor
            print(f"| {name} | {seed} | {found.n_significant} | {ratio[3]:.2f} | {ratio[4]:.2f} | "
                  f"{found.bulk_ratio:.3f} |")


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def clusters_and_nmf_table():
    print("\n| dose | edge steps | auto K (pure grains) | ARI k-means | ARI GMM | NMF min cosine | NMF rounds |"
          "\n|---|---|---|---|---|---|---|")
    for dose, steps in ((900, (0.15, 2.4)), (3000, (0.15, 2.4)), (20000, (0.15, 2.4)), (3000, (0.6, 1.4))):
        pure = simulate_measurement(SHAPE, dose=dose, edge_step=steps, references=(), unexplained_grains=48, rng=4)
        scores = []
        for method in ("kmeans", "gmm"):
            result = explore_stack(pure.stack(), method=method)
            sample = pure.truth.sample & (result.mask == 1)
            scores.append((result.learned.clustering.k,
                           adjusted_rand_score(pure.truth.fractions.argmax(axis=0)[sample], result.clusters[sample])))
        mixed = simulate_measurement(SHAPE, dose=dose, edge_step=steps, rng=4)
        result = explore_stack(mixed.stack(), nmf=4, clusters=1)
        e0 = result.learned.sample.params["e0"]
        window = (mixed.energies >= e0 - 20) & (mixed.energies <= e0 + 40)
        similarity = np.array([[cosine(h[window], t[window]) for t in mixed.spectra]
                               for h in result.learned.unmixing.spectra])
        rows, cols = linear_sum_assignment(-similarity)
        print(f"| {dose} | {steps[0]}-{steps[1]} | {scores[0][0]} | {scores[0][1]:.3f} | {scores[1][1]:.3f} | "
              f"{similarity[rows, cols].min():.4f} | {result.learned.unmixing.n_iter} |")


def shift_field(shape):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (-1.5 + 3.0 * xx / (shape[1] - 1) + 0.5 * (yy / (shape[0] - 1)) ** 2).astype(np.float32)


def e50_table():
    print("\n| dose | edge steps | E50 RMS, all pure-grain pixels (eV) | edge step >= 0.5 | with the shift map |"
          "\n|---|---|---|---|---|")
    field = shift_field(SHAPE)
    for dose, steps in ((3000, (0.15, 2.4)), (3000, (0.6, 1.4)), (10000, (0.6, 1.4)), (20000, (0.15, 2.4)),
                        (20000, (0.6, 1.4))):
        m = simulate_measurement(SHAPE, dose=dose, edge_step=steps, references=(), unexplained_grains=48, rng=4)
        e = m.energies
        keep = (e >= e[0] - field.min()) & (e <= e[-1] - field.max())
        clean = apply_shift(m.expected(), e, -field)[keep]
        sigma = apply_shift(m.sigma(), e, -field)[keep]
        noise = np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
        stack = Stack((clean + sigma * noise).astype(np.float32), e[keep], {})
        nominal = explore_stack(stack, clusters=1)
        calibrated = explore_stack(stack, shift=field, clusters=1)
        params = nominal.learned.sample.params
        phase = edge_maps(normalize(m.spectra.T[keep], e[keep], **params).norm, e[keep], e0=params["e0"])["e50"]
        inside = ndimage.binary_erosion(m.truth.sample, iterations=2)
        expected = phase[m.truth.fractions.argmax(axis=0)]
        error = (nominal.edges["e50"] - (expected - field))[inside]
        thick = m.truth.edge_step[inside] >= 0.5
        true = (calibrated.edges["e50"] - expected)[inside]
        print(f"| {dose} | {steps[0]}-{steps[1]} | {np.sqrt(np.nanmean(error**2)):.3f} | "
              f"{np.sqrt(np.nanmean(error[thick] ** 2)):.3f} | {np.sqrt(np.nanmean(true**2)):.3f} |")


def preedge_table():
    print("\n| dose | Fe(III) share 0 | 0.25 | 0.5 | 0.75 | 1 | (median pre-edge centroid, eV) |\n|---|---|---|---|---|---|---|")
    for dose in (3000, 20000, 200000):
        m = simulate_measurement(SHAPE, dose=dose, phases=("FeO", "Fe2O3"), references=("FeO", "Fe2O3"),
                                 unexplained_grains=0, rng=2)
        result = explore_stack(m.stack(), clusters=1)
        sample = m.truth.sample & (result.mask == 1)
        ferric = np.round(m.truth.fractions[1][sample], 2)
        centroid = result.edges["preedge_centroid"][sample]
        medians = [np.nanmedian(centroid[ferric == f]) for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
        print(f"| {dose} | " + " | ".join(f"{v:.2f}" for v in medians) + " | |")


if __name__ == "__main__":
    components_table()
    clusters_and_nmf_table()
    e50_table()
    preedge_table()
