"""A synthetic Fe K-edge measurement built from real reference spectra, with its truth.

Grains of Fe, FeO and Fe2O3 and of their mixtures, a few grains of magnetite (Fe3O4,
deliberately *not* among the references: the phase a map should flag as unexplained),
holes with no sample, thickness (edge step) and matrix absorption varying smoothly
across the field, Gaussian noise in absorbance and a few dead pixels. Used by the
napari sample, ``xafsmap demo`` and the known-answer tests.

The grains come from :mod:`xafsmap.core.simulate.specimen` and the spectra from
:func:`reference_spectra`, both shared with the physical generator of
:mod:`xafsmap.core.simulate.generator` (counts, flats, darks, thick and thin grains).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..spectra.normalize import normalize
from ..io.references import Reference, read_reference
from ..model.standards import resample_reference
from .specimen import HOLE, SAMPLE, grain_compositions, smooth_field, voronoi_grains

if TYPE_CHECKING:
    from .truth import Truth

__all__ = [
    "Sample",
    "bundled_reference_paths",
    "bundled_references",
    "make_sample",
    "reference_spectra",
    "sample_energies",
]

#: Phases present in the default sample; the last is left out of its references.
SAMPLE_PHASES = ("Fe", "FeO", "Fe2O3", "Fe3O4")
SAMPLE_REFERENCES = ("Fe", "FeO", "Fe2O3")


def bundled_reference_paths() -> dict[str, Path]:
    """Paths of the real Fe K-edge standards shipped with xafsmap, by name."""
    folder = resources.files("xafsmap") / "data" / "references"
    paths = {}
    for entry in folder.iterdir():
        path = Path(str(entry))
        if path.suffix in (".xdi", ".e"):
            paths[path.stem] = path
    return dict(sorted(paths.items()))


def bundled_references(names: Sequence[str] = SAMPLE_REFERENCES) -> list[Reference]:
    """The bundled standards (Fe, FeO, Fe2O3, Fe3O4) as :class:`Reference` objects."""
    paths = bundled_reference_paths()
    missing = [name for name in names if name not in paths]
    if missing:
        raise ValueError(f"no bundled reference named {missing}; there are {sorted(paths)}")
    return [read_reference(paths[name]) for name in names]


def sample_energies(n_edge: int = 80) -> np.ndarray:
    """A typical imaging-XANES energy grid across the Fe K edge, eV.

    Coarse before the edge (5 eV), fine across it (``n_edge`` points from 7100 to
    7140 eV), 2 eV up to 7200 eV and 5 eV to 7300 eV.
    """
    return np.concatenate(
        [
            np.arange(7050.0, 7100.0, 5.0),
            np.linspace(7100.0, 7140.0, n_edge, endpoint=False),
            np.arange(7140.0, 7200.0, 2.0),
            np.arange(7200.0, 7300.1, 5.0),
        ]
    )


@dataclass(frozen=True)
class Sample:
    """A synthetic measurement and the truth it was made from.

    Attributes
    ----------
    stack : ndarray, shape (E, M, N), float32
        Absorbance.
    energies : ndarray, shape (E,)
    references : list of Reference
        The references a user would map it with (without the unexplained phase).
    phases : tuple of str
        Names of every phase present, references first.
    fractions : ndarray, shape (len(phases), M, N)
        True fraction of each phase (0 where there is no sample).
    edge_step : ndarray, shape (M, N)
        True edge step (0 in holes).
    dead : ndarray, shape (M, N), bool
        Pixels with a NaN at some energy.
    """

    stack: np.ndarray
    energies: np.ndarray
    references: list
    phases: tuple
    fractions: np.ndarray
    edge_step: np.ndarray
    dead: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """True where there is sample."""
        return self.edge_step > 0

    @property
    def truth(self) -> Truth:
        """The :class:`~xafsmap.core.simulate.truth.Truth` of this sample, for scoring maps of it."""
        from .truth import Truth

        kind = np.where(self.mask, SAMPLE, HOLE).astype(np.uint8)
        return Truth(phases=self.phases, references=tuple(r.name for r in self.references),
                     fractions=self.fractions, edge_step=self.edge_step, kind=kind,
                     distorted=np.zeros(self.edge_step.shape, bool))


def reference_spectra(phases: Sequence[str], energies: np.ndarray) -> tuple[list[Reference], np.ndarray]:
    """The bundled standards of ``phases`` and their normalized spectra on ``energies``.

    Returns
    -------
    references : list of Reference
        As read from the bundled files.
    spectra : ndarray, shape (len(phases), E), float64
        Each normalized (:func:`~xafsmap.core.spectra.normalize.normalize` on its own
        energies) and interpolated onto ``energies``.

    Examples
    --------
    >>> refs, spectra = reference_spectra(("Fe", "FeO"), sample_energies())
    >>> spectra.shape[0], refs[1].name
    (2, 'FeO')
    """
    refs = bundled_references(tuple(phases))
    spectra = np.array(
        [resample_reference(r, energies, mu=normalize(r.mu, r.energies).norm) for r in refs]
    )
    return refs, spectra


def make_sample(
    shape: tuple[int, int] = (120, 160),
    *,
    energies: ArrayLike | None = None,
    phases: Sequence[str] = SAMPLE_PHASES,
    references: Sequence[str] = SAMPLE_REFERENCES,
    n_grains: int = 40,
    hole_fraction: float = 0.1,
    unexplained_grains: int = 3,
    noise: float = 0.02,
    edge_step: tuple[float, float] = (0.6, 1.4),
    n_dead: int = 5,
    rng: int | np.random.Generator | None = 0,
) -> Sample:
    """Synthesize a grainy Fe sample from the bundled real reference spectra.

    Parameters
    ----------
    shape : (int, int)
        Rows and columns.
    energies : ndarray, optional
        Energy grid; default :func:`sample_energies`.
    phases : sequence of str
        Bundled phases that can appear; those not in ``references`` appear only in
        ``unexplained_grains`` grains.
    references : sequence of str
        Phases given to the user as references; pure grains and 50:50 / 25:75 mixed
        grains are drawn from them.
    n_grains : int
        Voronoi grains in the field.
    hole_fraction : float
        Fraction of grains with no sample (only a small absorbance offset).
    unexplained_grains : int
        Grains of the phases not among ``references``.
    noise : float
        Standard deviation of the Gaussian noise added to the absorbance at every
        energy (the edge step is 0.6–1.4, so this is 1.4–3.3 % of it).
    edge_step : (float, float)
        Range of the smoothly varying edge step (thickness).
    n_dead : int
        Pixels given a NaN at one energy.
    rng : int or Generator
        Seed.

    Returns
    -------
    Sample

    Examples
    --------
    >>> s = make_sample((20, 24), n_grains=6, rng=1)
    >>> s.stack.shape[1:], s.stack.dtype.name
    ((20, 24), 'float32')
    """
    rng = np.random.default_rng(rng)
    energies = sample_energies() if energies is None else np.asarray(energies, dtype=np.float64)
    phases = tuple(phases)
    refs, spectra = reference_spectra(phases, energies)
    known = [i for i, name in enumerate(phases) if name in references]
    rows, cols = shape
    grain = voronoi_grains(shape, n_grains, rng=rng)
    compositions, _ = grain_compositions(n_grains, phases, references, hole_fraction=hole_fraction,
                                         unexplained_grains=unexplained_grains, rng=rng)
    fractions = np.moveaxis(compositions[grain], -1, 0)
    present = fractions.sum(axis=0) > 0
    step = np.where(present, smooth_field(shape, *edge_step, rng=rng), 0.0)
    matrix = np.where(present, smooth_field(shape, 0.2, 1.2, rng=rng), 0.02)  # holes: nothing but air
    decay = (energies / energies[0]) ** -3.0
    stack = (
        matrix[None] * decay[:, None, None]
        + step[None] * np.einsum("ke,kmn->emn", spectra, fractions)
        + noise * rng.standard_normal((energies.size, rows, cols))
    ).astype(np.float32)
    dead = np.zeros(shape, bool)
    picks = rng.choice(rows * cols, n_dead, replace=False)
    dead.ravel()[picks] = True
    stack[(rng.integers(0, energies.size, n_dead),) + np.unravel_index(picks, shape)] = np.nan
    return Sample(
        stack=stack,
        energies=energies,
        references=[refs[i] for i in known],
        phases=phases,
        fractions=fractions.astype(np.float32),
        edge_step=step.astype(np.float32),
        dead=dead,
    )
