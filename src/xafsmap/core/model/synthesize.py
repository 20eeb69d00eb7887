"""Classes and synthetic training spectra built from reference spectra.

A *class* is a composition: non-negative fractions of the K references that sum to 1.
The pure references are classes, and so are their linear mixtures, so that mixed
regions of a sample are recognised as mixed instead of being forced into the nearest
pure phase. Training spectra are the class spectra plus noise at the level measured in
the data, put through the very normalization the data go through.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "Classes",
    "make_classes",
    "parse_mixtures",
    "synthesize_spectra",
]

DEFAULT_MIXTURES = "pairs"
DEFAULT_PAIR_FRACTIONS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Classes:
    """Class names and their compositions.

    Attributes
    ----------
    names : tuple of str
        One name per class, e.g. ``"FeO"`` or ``"FeO:Fe2O3 25:75"``.
    compositions : ndarray, shape (C, K)
        Fractions of each of the K references in each class; rows sum to 1.
    references : tuple of str
        The K reference names, in the order of the composition columns.
    """

    names: tuple[str, ...]
    compositions: np.ndarray
    references: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


def _mixture_name(references, fractions) -> str:
    parts = [(name, f) for name, f in zip(references, fractions) if f > 0]
    if len(parts) == 1:
        return parts[0][0]
    names = ":".join(name for name, _ in parts)
    percents = ":".join(f"{100 * f:g}" for _, f in parts)
    return f"{names} {percents}"


def parse_mixtures(spec: str | None, references: Sequence[str]) -> np.ndarray:
    """Turn a mixture specification into compositions (without the pure references).

    Parameters
    ----------
    spec : str or None
        ``"pairs"`` (default: every pair of references at 25/50/75 %),
        ``"pairs:20,40,60,80"`` (every pair at the given percentages of the first
        reference), ``"none"`` (pure references only), or an explicit list of
        mixtures separated by ``;``, each ``NAME=FRACTION,NAME=FRACTION`` with
        fractions or percentages, e.g. ``"Fe=50,FeO=50;FeO=0.25,Fe2O3=0.75"``.
    references : sequence of str
        The reference names, in order.

    Returns
    -------
    ndarray, shape (n_mixtures, K)
        Compositions whose rows sum to 1.

    Raises
    ------
    ValueError
        For unknown reference names, negative or all-zero fractions, or a
        malformed specification.

    Examples
    --------
    >>> parse_mixtures("pairs:50", ["A", "B", "C"])
    array([[0.5, 0.5, 0. ],
           [0.5, 0. , 0.5],
           [0. , 0.5, 0.5]])
    """
    references = list(references)
    k = len(references)
    spec = (spec or DEFAULT_MIXTURES).strip()
    if spec.lower() == "none":
        return np.zeros((0, k))
    if spec.lower().startswith("pairs"):
        _, _, percents = spec.partition(":")
        fractions = DEFAULT_PAIR_FRACTIONS
        if percents.strip():
            fractions = tuple(_parse_fraction(p, spec) for p in percents.split(","))
        rows = []
        for i, j in itertools.combinations(range(k), 2):
            for f in fractions:
                if not 0 < f < 1:
                    raise ValueError(f"mixture fraction {f:g} in {spec!r} must lie strictly between 0 and 1")
                row = np.zeros(k)
                row[i], row[j] = f, 1 - f
                rows.append(row)
        return np.array(rows).reshape(-1, k)
    rows = []
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        row = np.zeros(k)
        for term in item.split(","):
            name, eq, value = term.partition("=")
            name = name.strip()
            if not eq:
                raise ValueError(f"mixture {item!r} must read NAME=FRACTION,NAME=FRACTION")
            if name not in references:
                raise ValueError(f"mixture {item!r} names {name!r}, which is not one of the references {references}")
            row[references.index(name)] += _parse_fraction(value, item)
        if row.sum() <= 0:
            raise ValueError(f"mixture {item!r} has no positive fraction")
        rows.append(row / row.sum())
    return np.array(rows).reshape(-1, k)


def _parse_fraction(text: str, context: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} in mixture {context!r} is not a number") from None
    if value < 0:
        raise ValueError(f"fraction {value:g} in mixture {context!r} is negative")
    return value / 100 if value > 1 else value


def make_classes(references: Sequence[str], *, mixtures: str | np.ndarray | None = DEFAULT_MIXTURES) -> Classes:
    """Each reference alone, then the requested mixtures.

    Parameters
    ----------
    references : sequence of str
        Reference names; class compositions refer to them in this order.
    mixtures : str or ndarray, shape (n, K), optional
        A specification for :func:`parse_mixtures`, or compositions directly.

    Returns
    -------
    Classes

    Examples
    --------
    >>> classes = make_classes(["Fe", "FeO"], mixtures="pairs:50")
    >>> classes.names
    ('Fe', 'FeO', 'Fe:FeO 50:50')
    """
    references = tuple(references)
    if len(set(references)) != len(references):
        raise ValueError(f"reference names must be unique, got {list(references)}")
    if not references:
        raise ValueError("at least one reference is needed")
    if isinstance(mixtures, str) or mixtures is None:
        mixed = parse_mixtures(mixtures, references)
    else:
        mixed = np.asarray(mixtures, dtype=float).reshape(-1, len(references))
    compositions = np.vstack([np.eye(len(references)), mixed])
    compositions = compositions / compositions.sum(axis=1, keepdims=True)
    _, first = np.unique(np.round(compositions, 6), axis=0, return_index=True)
    compositions = compositions[np.sort(first)]
    names = tuple(_mixture_name(references, row) for row in compositions)
    return Classes(names, compositions, references)


def synthesize_spectra(
    references: np.ndarray,
    compositions: np.ndarray,
    *,
    noise: float | ArrayLike,
    n_per_class: int = 1000,
    spread: float = 0.1,
    rng: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy spectra of each class, for training and testing a classifier.

    Parameters
    ----------
    references : ndarray, shape (K, E)
        Normalized reference spectra on the measurement's energies.
    compositions : ndarray, shape (C, K)
        Class compositions (rows sum to 1).
    noise : float or array_like
        Noise standard deviation per energy point, in units of the edge step. A 1-D
        array is a sample of per-pixel noise levels; a 2-D array (P, E) is a sample of
        the noise profiles of P measured pixels, energy by energy (the stack's noise
        model: larger above the edge and in thick grains). Each synthetic spectrum
        draws its level or profile from it, so the training set covers the range of S/N
        present in the measurement.
    n_per_class : int
        Spectra per class.
    spread : float
        Each spectrum's composition moves a random fraction ``t ~ U(0, spread)`` of
        the way towards another class's composition, so the classes tile the space
        of mixtures between their nominal compositions instead of being points.
    rng : int or numpy.random.Generator, optional
        Seed or generator.

    Returns
    -------
    spectra : ndarray, shape (C * n_per_class, E), float32
        Normalized spectra with noise (not yet re-normalized).
    labels : ndarray, shape (C * n_per_class,), int
        Class index of each spectrum (0-based).
    fractions : ndarray, shape (C * n_per_class, K)
        The exact composition of each spectrum.

    Examples
    --------
    >>> refs = np.array([[0.0, 1.0, 1.0], [0.0, 0.5, 1.0]])
    >>> x, y, f = synthesize_spectra(refs, np.eye(2), noise=0.0, n_per_class=2, spread=0, rng=0)
    >>> x.shape, y.tolist()
    ((4, 3), [0, 0, 1, 1])
    """
    rng = np.random.default_rng(rng)
    references = np.asarray(references, dtype=np.float64)
    compositions = np.asarray(compositions, dtype=np.float64)
    if compositions.shape[1] != references.shape[0]:
        raise ValueError(
            f"compositions have {compositions.shape[1]} columns but there are {references.shape[0]} references"
        )
    n_classes = len(compositions)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    fractions = compositions[labels]
    if spread > 0 and n_classes > 1:
        other = (labels + rng.integers(1, n_classes, labels.size)) % n_classes
        t = rng.uniform(0, spread, (labels.size, 1))
        fractions = (1 - t) * fractions + t * compositions[other]
    noise = np.asarray(noise, dtype=np.float64)
    if noise.ndim == 2:
        if noise.shape[1] != references.shape[1]:
            raise ValueError(f"noise profiles have {noise.shape[1]} energies but the references have "
                             f"{references.shape[1]}")
        profiles = noise[np.all(np.isfinite(noise), axis=1)]
        if profiles.shape[0] == 0:
            raise ValueError("no finite noise profile to synthesize with")
        sigma = profiles[rng.integers(0, profiles.shape[0], labels.size)]
    else:
        levels = noise.ravel()
        levels = levels[np.isfinite(levels)]
        if levels.size == 0:
            raise ValueError("no finite noise level to synthesize with")
        sigma = rng.choice(levels, size=(labels.size, 1)) if levels.size > 1 else levels[0]
    spectra = fractions @ references
    spectra += sigma * rng.standard_normal(spectra.shape)
    return spectra.astype(np.float32), labels, fractions
