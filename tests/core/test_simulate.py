"""The physical generator (:mod:`xafsmap.core.simulate`) and the grain machinery it
shares with :func:`~xafsmap.core.sample.make_sample`."""

from __future__ import annotations

import numpy as np
import pytest

from xafsmap.core.normalize import normalize
from xafsmap.core.references import resample_reference
from xafsmap.core.sample import bundled_references, make_sample


def _legacy_make_sample(shape=(120, 160), *, energies=None, phases=("Fe", "FeO", "Fe2O3", "Fe3O4"),
                        references=("Fe", "FeO", "Fe2O3"), n_grains=40, hole_fraction=0.1,
                        unexplained_grains=3, noise=0.02, edge_step=(0.6, 1.4), n_dead=5, rng=0):
    """make_sample as it was before the grain machinery was shared (commit dd39ee8), frozen."""
    from xafsmap.core.sample import sample_energies

    def smooth(shape, rng, lo, hi):
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
        a = rng.uniform(-1, 1, 5)
        field = a[0] * xx + a[1] * yy + a[2] * xx * yy + a[3] * np.sin(3 * xx + a[4]) * np.cos(2 * yy)
        field = (field - field.min()) / (np.ptp(field) or 1.0)
        return lo + (hi - lo) * field

    rng = np.random.default_rng(rng)
    energies = sample_energies() if energies is None else np.asarray(energies, dtype=np.float64)
    phases = tuple(phases)
    refs = bundled_references(phases)
    spectra = np.array([resample_reference(r, energies, mu=normalize(r.mu, r.energies).norm) for r in refs])
    known = [i for i, name in enumerate(phases) if name in references]
    unknown = [i for i, name in enumerate(phases) if name not in references]
    rows, cols = shape
    centres = rng.uniform(0, 1, (n_grains, 2)) * [rows, cols]
    yy, xx = np.mgrid[0:rows, 0:cols]
    grain = np.argmin((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2, axis=-1)
    compositions = np.zeros((n_grains, len(phases)))
    kinds = rng.permutation(n_grains)
    n_holes = int(round(hole_fraction * n_grains))
    pure = 0
    for rank, g in enumerate(kinds):
        if rank < n_holes:
            continue
        if rank < n_holes + unexplained_grains and unknown:
            compositions[g, rng.choice(unknown)] = 1.0
        elif rank % 3 == 0 and len(known) > 1:
            i, j = rng.choice(known, 2, replace=False)
            f = rng.choice([0.25, 0.5, 0.75])
            compositions[g, i], compositions[g, j] = f, 1 - f
        else:
            compositions[g, known[pure % len(known)]] = 1.0
            pure += 1
    fractions = np.moveaxis(compositions[grain], -1, 0)
    present = fractions.sum(axis=0) > 0
    step = np.where(present, smooth(shape, rng, *edge_step), 0.0)
    matrix = np.where(present, smooth(shape, rng, 0.2, 1.2), 0.02)
    decay = (energies / energies[0]) ** -3.0
    stack = (matrix[None] * decay[:, None, None] + step[None] * np.einsum("ke,kmn->emn", spectra, fractions)
             + noise * rng.standard_normal((energies.size, rows, cols))).astype(np.float32)
    dead = np.zeros(shape, bool)
    picks = rng.choice(rows * cols, n_dead, replace=False)
    dead.ravel()[picks] = True
    stack[(rng.integers(0, energies.size, n_dead),) + np.unravel_index(picks, shape)] = np.nan
    return stack, energies, [r.name for r in (refs[i] for i in known)], phases, fractions.astype(np.float32), \
        step.astype(np.float32), dead


@pytest.mark.parametrize("options", [
    {},
    dict(shape=(48, 64), n_grains=14, unexplained_grains=1, rng=3),
    dict(shape=(48, 64), n_grains=14, phases=("FeO", "Fe2O3"), references=("FeO", "Fe2O3"), rng=5),
    dict(shape=(30, 40), n_grains=9, hole_fraction=0.3, unexplained_grains=2, noise=0.05, edge_step=(0.2, 2.0),
         n_dead=0, rng="generator"),
])
def test_make_sample_unchanged(options):
    """make_sample gives, bit for bit, what it gave before it shared its grains."""
    def seed():
        return np.random.default_rng(11) if options.get("rng") == "generator" else options.get("rng", 0)

    legacy = _legacy_make_sample(**{**options, "rng": seed()})
    s = make_sample(**{**options, "rng": seed()})
    got = (s.stack, s.energies, [r.name for r in s.references], s.phases, s.fractions, s.edge_step, s.dead)
    for a, b in zip(got, legacy):
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
        else:
            assert a == b
