"""What a simulated measurement really holds: the truth the maps are scored against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .specimen import SAMPLE

__all__ = ["Truth"]


@dataclass(frozen=True, eq=False)
class Truth:
    """What every pixel of a synthetic measurement holds.

    Attributes
    ----------
    phases : tuple of str
        Every phase present.
    references : tuple of str
        The phases given to the user as references, in the order of the maps'
        fractions.
    fractions : ndarray, shape (len(phases), M, N), float32
        True fraction of each phase (0 off the sample).
    edge_step : ndarray, shape (M, N), float32
        True edge step (absorbance units in transmission; 0 off the sample).
    kind : ndarray, shape (M, N), uint8
        :data:`~xafsmap.core.simulate.specimen.HOLE` (no sample), ``MATRIX`` (matrix without the
        element: no edge) or ``SAMPLE``.
    distorted : ndarray, shape (M, N), bool
        Pixels distorted by a harmonic leak beyond the generator's tolerance.
    absorbance_max : ndarray, shape (M, N), float32, optional
        Largest true total absorbance over the energies (leak-free); None if unknown.
    """

    phases: tuple
    references: tuple
    fractions: np.ndarray
    edge_step: np.ndarray
    kind: np.ndarray
    distorted: np.ndarray
    absorbance_max: np.ndarray | None = None

    @property
    def sample(self) -> np.ndarray:
        """(M, N) bool: the pixels with an edge."""
        return self.kind == SAMPLE

    @property
    def reference_fractions(self) -> np.ndarray:
        """(K, M, N): the true fractions of the references, in the maps' order."""
        return self.fractions[[self.phases.index(name) for name in self.references]]

    @property
    def left_out_fraction(self) -> np.ndarray:
        """(M, N): the summed fraction of the phases not among the references."""
        rest = [i for i, name in enumerate(self.phases) if name not in self.references]
        return self.fractions[rest].sum(axis=0) if rest else np.zeros(self.edge_step.shape, np.float32)

    @property
    def known(self) -> np.ndarray:
        """(M, N) bool: sample pixels made only of reference phases."""
        return self.sample & (self.left_out_fraction == 0)

    @property
    def left_out(self) -> np.ndarray:
        """(M, N) bool: sample pixels at least half made of phases left out of the references."""
        return self.sample & (self.left_out_fraction >= 0.5)
