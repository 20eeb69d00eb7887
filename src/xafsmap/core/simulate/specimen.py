"""Where the phases are: Voronoi grains, their kinds and compositions, thickness, rims, cracks.

The phase field of the synthetic samples: :func:`~xafsmap.core.simulate.sample.make_sample`
(grains of uniform composition, smooth thickness) uses :func:`voronoi_grains`,
:func:`grain_compositions` and :func:`smooth_field`; :func:`make_specimen` adds what
the physical generator (:mod:`xafsmap.core.simulate.generator`) needs of a sinter: grains whose
thickness differs tenfold or more, thin rims at grain boundaries, cracks and grains of
matrix without the element.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "HOLE",
    "MATRIX",
    "SAMPLE",
    "Specimen",
    "grain_compositions",
    "make_specimen",
    "smooth_field",
    "voronoi_grains",
]

#: Kinds of pixel in a phase field: nothing (hole, crack), matrix without the edge's
#: element, sample with it.
HOLE, MATRIX, SAMPLE = 0, 1, 2


def smooth_field(shape: tuple[int, int], lo: float, hi: float, *,
                 rng: int | np.random.Generator | None = None) -> np.ndarray:
    """A smooth random field spanning exactly ``lo`` to ``hi`` (a tilt, a saddle and a wave).

    Parameters
    ----------
    shape : (int, int)
        Rows and columns.
    lo, hi : float
        Minimum and maximum of the field.
    rng : int or Generator
        Draws 5 uniform numbers.

    Returns
    -------
    ndarray, shape (M, N), float64

    Examples
    --------
    >>> f = smooth_field((4, 5), 0.2, 1.2, rng=0)
    >>> round(float(f.min()), 3), round(float(f.max()), 3)
    (0.2, 1.2)
    """
    rng = np.random.default_rng(rng)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    a = rng.uniform(-1, 1, 5)
    field = a[0] * xx + a[1] * yy + a[2] * xx * yy + a[3] * np.sin(3 * xx + a[4]) * np.cos(2 * yy)
    field = (field - field.min()) / (np.ptp(field) or 1.0)
    return lo + (hi - lo) * field


def voronoi_grains(shape: tuple[int, int], n_grains: int, *,
                   rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Label every pixel with its nearest of ``n_grains`` random centres (Voronoi grains).

    Returns
    -------
    ndarray, shape (M, N), int
        Grain index 0 .. n_grains - 1.

    Examples
    --------
    >>> voronoi_grains((3, 4), 2, rng=0).shape
    (3, 4)
    """
    rng = np.random.default_rng(rng)
    rows, cols = shape
    centres = rng.uniform(0, 1, (n_grains, 2)) * [rows, cols]
    yy, xx = np.mgrid[0:rows, 0:cols]
    return np.argmin((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2, axis=-1)


def grain_compositions(n_grains: int, phases: Sequence[str], references: Sequence[str], *, hole_fraction: float = 0.1,
                       unexplained_grains: int = 3, matrix_fraction: float = 0.0,
                       rng: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Give every grain a kind and a composition of ``phases``.

    In a random order of the grains: ``hole_fraction`` of them are holes,
    ``matrix_fraction`` matrix without the element, ``unexplained_grains`` pure grains
    of the phases not in ``references``; of the rest every third is a 25:75, 50:50 or
    75:25 mixture of two references and the others pure grains cycling through the
    references.

    Parameters
    ----------
    n_grains : int
    phases : sequence of str
        Every phase that can appear.
    references : sequence of str
        Those given to the user as references.
    hole_fraction, matrix_fraction : float
        Shares of the grains that are holes / matrix only.
    unexplained_grains : int
    rng : int or Generator

    Returns
    -------
    compositions : ndarray, shape (n_grains, len(phases)), float64
        Fractions of each phase per grain (rows sum to 1, or 0 for holes and matrix).
    kinds : ndarray, shape (n_grains,), uint8
        :data:`HOLE`, :data:`MATRIX` or :data:`SAMPLE`.

    Examples
    --------
    >>> comp, kinds = grain_compositions(6, ("Fe", "FeO"), ("Fe",), unexplained_grains=1, rng=0)
    >>> sorted(comp.sum(axis=1).tolist()), sorted(kinds.tolist())
    ([0.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0, 2, 2, 2, 2, 2])
    """
    rng = np.random.default_rng(rng)
    known = [i for i, name in enumerate(phases) if name in references]
    unknown = [i for i, name in enumerate(phases) if name not in references]
    compositions = np.zeros((n_grains, len(phases)))
    kinds = np.full(n_grains, SAMPLE, np.uint8)
    order = rng.permutation(n_grains)
    n_holes = int(round(hole_fraction * n_grains))
    n_matrix = int(round(matrix_fraction * n_grains))
    pure = 0  # pure grains cycle through every reference phase
    for rank, g in enumerate(order):  # a loop over grains (tens), not pixels
        if rank < n_holes:
            kinds[g] = HOLE
            continue
        if rank < n_holes + n_matrix:
            kinds[g] = MATRIX
            continue
        if rank < n_holes + n_matrix + unexplained_grains and unknown:
            compositions[g, rng.choice(unknown)] = 1.0
        elif rank % 3 == 0 and len(known) > 1:
            i, j = rng.choice(known, 2, replace=False)
            f = rng.choice([0.25, 0.5, 0.75])
            compositions[g, i], compositions[g, j] = f, 1 - f
        else:
            compositions[g, known[pure % len(known)]] = 1.0
            pure += 1
    return compositions, kinds



@dataclass(frozen=True, eq=False)
class Specimen:
    """A phase field: what every pixel holds.

    Attributes
    ----------
    kind : ndarray, shape (M, N), uint8
        :data:`HOLE`, :data:`MATRIX` or :data:`SAMPLE`.
    fractions : ndarray, shape (P, M, N), float32
        Fraction of each phase (0 off the sample).
    edge_step : ndarray, shape (M, N), float32
        Edge step of the element (0 off the sample).
    matrix : ndarray, shape (M, N), float32
        Absorbance of the matrix (0 in holes).
    grains : ndarray, shape (M, N), int
        Grain index of every pixel.
    """

    kind: np.ndarray
    fractions: np.ndarray
    edge_step: np.ndarray
    matrix: np.ndarray
    grains: np.ndarray


def make_specimen(shape: tuple[int, int], phases: Sequence[str], references: Sequence[str], *, n_grains: int = 48,
                  hole_fraction: float = 0.08, matrix_fraction: float = 0.1, unexplained_grains: int = 5,
                  edge_step: tuple[float, float] = (0.15, 2.4), matrix: tuple[float, float] = (0.1, 1.2),
                  rim: float = 0.3, rim_width: float = 3.0, n_cracks: int = 3,
                  rng: int | np.random.Generator | None = None) -> Specimen:
    """A sinter-like phase field: thick and thin grains, rims, cracks, Fe-free grains.

    Parameters
    ----------
    shape : (int, int)
    phases, references : sequence of str
        See :func:`grain_compositions`.
    n_grains, hole_fraction, matrix_fraction, unexplained_grains
        See :func:`grain_compositions`.
    edge_step : (float, float)
        Each grain draws an edge step log-uniformly in this range, times a smooth field
        (0.8-1.25); the whole is stretched log-linearly to span the range exactly, then
        thinned toward grain boundaries (``rim``).
    matrix : (float, float)
        Range of the smooth matrix absorbance over every grain (0 in holes and cracks).
    rim : float
        At a grain boundary ``log(step / lo)`` is ``rim`` times the grain's inside (a
        grain of 2.4 has a rim of 0.34 with ``rim=0.3``, lo 0.15).
    rim_width : float
        Pixels over which a grain thins toward its boundary.
    n_cracks : int
        Straight cracks 1-2 px wide (no sample) across a third to two thirds of the field.
    rng : int or Generator

    Returns
    -------
    Specimen

    Examples
    --------
    >>> s = make_specimen((30, 40), ("Fe", "FeO"), ("Fe",), n_grains=12, rng=0)
    >>> step = s.edge_step[s.kind == SAMPLE]
    >>> round(float(step.min()), 2), bool(step.max() / step.min() > 10)
    (0.15, True)
    """
    rng = np.random.default_rng(rng)
    grain = voronoi_grains(shape, n_grains, rng=rng)
    compositions, kinds = grain_compositions(n_grains, phases, references, hole_fraction=hole_fraction,
                                             unexplained_grains=unexplained_grains,
                                             matrix_fraction=matrix_fraction, rng=rng)
    kind = kinds[grain]
    kind[_cracks(shape, n_cracks, rng)] = HOLE
    fractions = np.where(kind == SAMPLE, np.moveaxis(compositions[grain], -1, 0), 0.0)
    lo, hi = edge_step
    per_grain = np.exp(rng.uniform(np.log(lo), np.log(hi), n_grains))
    raw = np.log(per_grain[grain] * smooth_field(shape, 0.8, 1.25, rng=rng))
    inside = kind == SAMPLE
    if inside.any():  # stretch log-linearly onto [lo, hi]: the range exactly, no pile-up at a clip
        low, high = raw[inside].min(), raw[inside].max()
        raw = (raw - low) / ((high - low) or 1.0) * np.log(hi / lo)
    # rims: the log-thickness above lo shrinks to `rim` of itself at a grain boundary
    raw = np.log(lo) + raw * _rims(grain, kind, rim, rim_width)
    step = np.where(inside, np.exp(raw), 0.0)
    matrix_map = np.where(kind == HOLE, 0.0, smooth_field(shape, *matrix, rng=rng))
    return Specimen(kind=kind.astype(np.uint8), fractions=fractions.astype(np.float32),
                    edge_step=step.astype(np.float32), matrix=matrix_map.astype(np.float32), grains=grain)


def _cracks(shape, n_cracks, rng) -> np.ndarray:
    """Straight cracks 1-2 px wide, each a segment across a third to two thirds of the field."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    out = np.zeros(shape, bool)
    for _ in range(n_cracks):  # a loop over a few cracks, not pixels
        y0, x0 = rng.uniform(0, 1, 2) * [rows, cols]
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(1 / 3, 2 / 3) * max(shape)
        width = rng.uniform(1.0, 2.0)
        dy, dx = np.sin(angle), np.cos(angle)
        along = np.clip((yy - y0) * dy + (xx - x0) * dx, 0, length)
        out |= np.hypot(yy - (y0 + along * dy), xx - (x0 + along * dx)) <= width / 2
    return out


def _rims(grain, kind, rim, width) -> np.ndarray:
    """Thickness factor: ``rim`` at a grain's boundary rising to 1 over ``width`` px."""
    from scipy import ndimage

    label = np.where(kind == HOLE, -1, grain)
    boundary = np.zeros(label.shape, bool)
    boundary[1:] |= label[1:] != label[:-1]
    boundary[:-1] |= label[:-1] != label[1:]
    boundary[:, 1:] |= label[:, 1:] != label[:, :-1]
    boundary[:, :-1] |= label[:, :-1] != label[:, 1:]
    if not boundary.any():
        return np.ones(label.shape)
    distance = ndimage.distance_transform_edt(~boundary)
    return rim + (1 - rim) * np.clip(distance / width, 0, 1)
