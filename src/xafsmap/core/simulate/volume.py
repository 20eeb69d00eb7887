"""A synthetic XANES tomography: ellipsoidal grains of Fe phases in a volume, with the truth per voxel.

:func:`make_volume` places ellipsoids (random centres, semi-axes and orientations) of
Fe, FeO, Fe2O3, their 25:75 / 50:50 / 75:25 mixtures and magnetite (Fe3O4, left out of
the references: unexplained) in an empty volume; where ellipsoids overlap the one placed
first keeps the voxel. Every voxel's absorbance at an energy is
``mu = matrix * (E / 7112 eV)**-3 + edge_step * sum_k f_k norm_k(E)`` measured with
counting noise, ``A = -ln(Poisson(dose * exp(-mu)) / dose)``: the noise grows with the
absorbance as in transmission. :meth:`SimulatedVolume.absorbance_at` computes one energy
(Z, Y, X) at a time, with its own seeded noise, so a volume larger than memory can be
written energy by energy (``benchmarks/volume.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .measurement import MATRIX_ENERGY
from .sample import SAMPLE_PHASES, SAMPLE_REFERENCES, reference_spectra, sample_energies
from .specimen import HOLE, SAMPLE, grain_compositions
from .truth import Truth

__all__ = ["SimulatedVolume", "make_volume"]


@dataclass(frozen=True, eq=False)
class SimulatedVolume:
    """A synthetic volume: what every voxel holds, and how it is measured.

    Attributes
    ----------
    energies : ndarray, shape (E,)
    references : list of Reference
        The references a user maps it with (without the unexplained phase).
    phases : tuple of str
    spectra : ndarray, shape (len(phases), E)
        Normalized spectra of the phases on ``energies``.
    fractions : ndarray, shape (len(phases), Z, Y, X), float32
        True fraction of each phase per voxel (0 outside the grains).
    edge_step : ndarray, shape (Z, Y, X), float32
        True edge step per voxel (0 outside the grains).
    matrix : ndarray, shape (Z, Y, X), float32
        Absorbance of the rest of the voxel at :data:`MATRIX_ENERGY`.
    dose : float
        Incident counts per voxel and energy.
    seed : int
        Seed of the noise (energy ``i`` draws from ``default_rng([seed, i])``).
    """

    energies: np.ndarray
    references: list
    phases: tuple
    spectra: np.ndarray
    fractions: np.ndarray
    edge_step: np.ndarray
    matrix: np.ndarray
    dose: float
    seed: int

    @property
    def shape(self) -> tuple:
        """(E, Z, Y, X)."""
        return (self.energies.size, *self.edge_step.shape)

    @property
    def truth(self) -> Truth:
        """The :class:`~xafsmap.core.simulate.truth.Truth` of every voxel (3-D arrays), for scoring."""
        kind = np.where(self.edge_step > 0, SAMPLE, HOLE).astype(np.uint8)
        return Truth(phases=self.phases, references=tuple(r.name for r in self.references),
                     fractions=self.fractions, edge_step=self.edge_step, kind=kind,
                     distorted=np.zeros(self.edge_step.shape, bool))

    def absorbance_at(self, index: int) -> np.ndarray:
        """The measured absorbance (Z, Y, X) float32 at energy ``index``, with its noise."""
        energy = self.energies[index]
        mu = (self.matrix * np.float32((energy / MATRIX_ENERGY) ** -3.0)
              + self.edge_step * np.tensordot(self.spectra[:, index].astype(np.float32), self.fractions, axes=1))
        counts = np.random.default_rng([self.seed, index]).poisson(self.dose * np.exp(-mu))
        return (-np.log(np.maximum(counts, 1) / self.dose)).astype(np.float32)

    def absorbance(self) -> np.ndarray:
        """The whole measured volume (E, Z, Y, X) float32 (in memory: for small volumes)."""
        return np.stack([self.absorbance_at(i) for i in range(self.energies.size)])


def _ellipsoid(shape, centre, axes, rotation):
    """Bounding box of an ellipsoid and its inside (bool) there."""
    reach = np.ceil(np.abs(rotation) @ axes).astype(int) + 1
    lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
    hi = np.minimum(np.floor(centre).astype(int) + reach + 1, shape)
    if np.any(hi <= lo):
        return None, None
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1) - centre
    local = grid @ rotation  # coordinates along the ellipsoid's own axes
    inside = np.sum((local / axes) ** 2, axis=-1) <= 1.0
    return tuple(slice(a, b) for a, b in zip(lo, hi)), inside


def make_volume(shape: tuple[int, int, int] = (16, 64, 64), *, energies: ArrayLike | None = None,
                n_grains: int | None = None, radius: tuple[float, float] = (4.0, 12.0),
                edge_step: tuple[float, float] = (0.4, 1.0), matrix: tuple[float, float] = (0.02, 0.1),
                dose: float = 20_000.0, unexplained_grains: int = 2, phases: Sequence[str] = SAMPLE_PHASES,
                references: Sequence[str] = SAMPLE_REFERENCES,
                rng: int | np.random.Generator | None = 0) -> SimulatedVolume:
    """Place ellipsoidal grains of known composition in a volume (see the module notes).

    Parameters
    ----------
    shape : (int, int, int)
        Slices, rows and columns (Z, Y, X).
    energies : ndarray, optional
        Default :func:`~xafsmap.core.simulate.sample.sample_energies`.
    n_grains : int, optional
        Ellipsoids placed; default enough to fill about half the volume.
    radius : (float, float)
        Range of the semi-axes, voxels.
    edge_step, matrix : (float, float)
        Ranges (uniform per grain) of the edge step and the matrix absorbance per voxel.
    dose : float
        Incident counts per voxel and energy (20 000: noise about 1 % of absorbance 1).
    unexplained_grains : int
        Grains of the phases not among ``references`` (Fe3O4 by default).
    phases, references : sequence of str
        Bundled phases present, and those handed out as references.
    rng : int
        Seed of the grains and of the noise.

    Returns
    -------
    SimulatedVolume

    Examples
    --------
    >>> v = make_volume((4, 24, 24), n_grains=6, rng=1)
    >>> v.shape[1:], v.absorbance_at(0).dtype.name
    ((4, 24, 24), 'float32')
    >>> bool((v.edge_step > 0).any())
    True
    """
    seed = int(rng) if isinstance(rng, (int, np.integer)) else int(np.random.default_rng(rng).integers(2**31))
    generator = np.random.default_rng(seed)
    energies = sample_energies() if energies is None else np.asarray(energies, dtype=np.float64)
    shape = tuple(int(n) for n in shape)
    phases = tuple(phases)
    refs, spectra = reference_spectra(phases, energies)
    if n_grains is None:
        mean_volume = 4 / 3 * np.pi * np.mean(radius) ** 3
        n_grains = max(4, int(0.7 * np.prod(shape) / mean_volume))
    compositions, _ = grain_compositions(n_grains, phases, references, hole_fraction=0.0,
                                         unexplained_grains=unexplained_grains, rng=generator)
    owner = np.full(shape, -1, np.int32)
    for g in range(n_grains):  # a loop over grains (tens to thousands), each over its bounding box
        centre = generator.uniform(0, shape)
        axes = generator.uniform(*radius, size=3)
        rotation, _ = np.linalg.qr(generator.standard_normal((3, 3)))
        box, inside = _ellipsoid(shape, centre, axes, rotation)
        if box is not None:
            free = owner[box] < 0
            owner[box] = np.where(inside & free, g, owner[box])
    steps = generator.uniform(*edge_step, size=n_grains)
    matrices = generator.uniform(*matrix, size=n_grains)
    filled = owner >= 0
    fractions = np.where(filled, np.moveaxis(compositions[np.maximum(owner, 0)], -1, 0), 0.0).astype(np.float32)
    known = [i for i, name in enumerate(phases) if name in references]
    return SimulatedVolume(energies=energies, references=[refs[i] for i in known], phases=phases,
                           spectra=spectra, fractions=fractions,
                           edge_step=np.where(filled, steps[np.maximum(owner, 0)], 0.0).astype(np.float32),
                           matrix=np.where(filled, matrices[np.maximum(owner, 0)], 0.0).astype(np.float32),
                           dose=float(dose), seed=seed)
