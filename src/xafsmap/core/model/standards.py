"""The references (standards) on the measurement's energies, normalized as every pixel is.

:func:`resample_reference` puts one reference on other energies (after an energy
offset, refusing one that does not cover the edge); :func:`prepare_references` does it
for all of them with the measurement's normalization, which is what training, the trust
maps and the docks' previews compare pixels with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..io.references import Reference
from ..spectra.normalize import normalize

__all__ = ["prepare_references", "resample_reference"]


def prepare_references(references: Sequence[Reference], energies: np.ndarray, *, e0: float,
                       offsets: Sequence[float] | np.ndarray | None = None, norm_params: dict | None = None,
                       edge_region: tuple[float, float] = (-20.0, 40.0)) -> np.ndarray:
    """Normalize references, put them on the measurement's energies, normalize again.

    Each reference is first normalized on its own energies (so its own pre- and
    post-edge define its edge step), shifted by its offset and interpolated onto the
    measurement's energies, then normalized with the measurement's parameters so it
    carries the same normalization as every pixel.

    Parameters
    ----------
    references : sequence of Reference
    energies : ndarray, shape (E,)
        The measurement's energies.
    e0 : float
        The measurement's edge energy; ``edge_region`` is relative to it.
    offsets : sequence of float, optional
        Energy offset per reference, eV (added to the reference's energies).
    norm_params : dict, optional
        Keyword arguments for :func:`~xafsmap.core.spectra.normalize.normalize`.
    edge_region : (float, float)
        The part of the measurement, relative to ``e0``, every reference must cover.

    Returns
    -------
    ndarray, shape (K, E), float64

    Raises
    ------
    ValueError
        If a reference does not cover the edge region.
    """
    energies = np.asarray(energies, dtype=np.float64)
    offsets = list(offsets) if offsets is not None else [0.0] * len(references)
    lo = max(e0 + edge_region[0], energies[0])
    hi = min(e0 + edge_region[1], energies[-1])
    rows = []
    for ref, offset in zip(references, offsets):
        own = normalize(ref.mu, ref.energies).norm
        rows.append(resample_reference(ref, energies, offset=offset, mu=own, require=(lo, hi)))
    resampled = np.array(rows).T
    return normalize(resampled, energies, **(norm_params or {})).norm.T.astype(np.float64)


def resample_reference(ref: Reference, energies: ArrayLike, *, offset: float = 0.0, mu: ArrayLike | None = None,
                       require: tuple[float, float] | None = None) -> np.ndarray:
    """Interpolate a reference onto the measurement's energies.

    Parameters
    ----------
    ref : Reference
        The reference spectrum.
    energies : array_like, shape (E,)
        Measurement energies in eV, increasing.
    offset : float
        Energy shift in eV added to the reference axis (``ref.energies + offset``).
    mu : array_like, shape (n,), optional
        Values to interpolate instead of ``ref.mu``, on ``ref.energies`` (e.g.
        the reference after normalization by the caller).
    require : (float, float), optional
        Region ``(lo, hi)`` in eV the shifted reference must cover, e.g. the
        edge region; default: the whole ``energies`` range. One measurement
        energy step of tolerance is allowed at each end.

    Returns
    -------
    ndarray, shape (E,), float64
        Linear interpolation (``np.interp``). Outside the reference's range
        the nearest end value is repeated (flat extrapolation), which is only
        sensible for normalized spectra (flat pre-edge 0, post-edge ~1).

    Raises
    ------
    ValueError
        If the shifted reference does not cover ``require``, or ``mu`` does
        not match ``ref.energies`` in length.

    Examples
    --------
    >>> ref = Reference("lin", np.array([7100.0, 7200.0]), np.array([0.0, 1.0]), "x")
    >>> resample_reference(ref, np.array([7100.0, 7150.0, 7200.0]), offset=10.0).tolist()
    [0.0, 0.4, 0.9]
    """
    e = np.asarray(energies, dtype=np.float64)
    if e.ndim != 1 or e.size == 0:
        raise ValueError(f"energies must be a non-empty 1-D array, got shape {e.shape}")
    values = ref.mu if mu is None else np.asarray(mu, dtype=np.float64)
    if values.shape != ref.energies.shape:
        raise ValueError(f"mu has {values.size} values but reference {ref.name!r} "
                         f"has {ref.energies.size} energies")
    lo, hi = (float(e[0]), float(e[-1])) if require is None else map(float, require)
    if lo > hi:
        raise ValueError(f"require=({lo}, {hi}): lower end is above the upper end")
    src = ref.energies + float(offset)
    steps = np.diff(e) if e.size > 1 else np.zeros(1)
    tol_lo = steps[np.clip(np.searchsorted(e, lo), 0, steps.size - 1)]
    tol_hi = steps[np.clip(np.searchsorted(e, hi) - 1, 0, steps.size - 1)]
    if src[0] > lo + tol_lo or src[-1] < hi - tol_hi:
        raise ValueError(f"reference {ref.name!r} covers {src[0]:.1f}–{src[-1]:.1f} eV but the "
                         f"measurement's edge region needs {lo:.1f}–{hi:.1f} eV")
    return np.interp(e, src, values)
