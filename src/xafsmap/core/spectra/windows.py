"""Larch's normalization parameters resolved for a grid: the pre- and post-edge fit windows.

:func:`resolve_params` fills the parameters not given as Larch's ``pre_edge`` does;
:func:`fit_windows` gives the energies each fit uses and :func:`check_windows` refuses
windows with too few of them.
"""

from __future__ import annotations

import numpy as np

from .edge import index_at_or_below, nearest_index

__all__ = ["check_windows", "fit_windows", "resolve_params"]


_MAX_NNORM = 5  # Larch's cap on the post-edge polynomial degree


def resolve_params(energies: np.ndarray, e0: float | None, pre1: float | None, pre2: float | None, norm1: float | None,
                   norm2: float | None, nnorm: int | None) -> dict:
    """Larch ``preedge`` defaults for a spectrum with edge at ``e0``."""
    if e0 is None:
        return dict(pre1=float(min(pre1, pre2)), pre2=float(max(pre1, pre2)),
                    norm1=float(min(norm1, norm2)), norm2=float(max(norm1, norm2)),
                    nnorm=int(max(min(nnorm, _MAX_NNORM), 0)))
    lo, hi = energies[0] - e0, energies[-1] - e0
    if pre1 is None:
        q = 5.0 if nearest_index(energies, np.array([e0]))[0] > 20 else 2.0
        pre1 = q * round((energies[1] - e0) / q)
    pre1 = max(pre1, lo)
    pre2 = 0.5 * pre1 if pre2 is None else pre2
    pre1, pre2 = min(pre1, pre2), max(pre1, pre2)
    norm2 = 5.0 * round(hi / 5.0) if norm2 is None else norm2
    norm2 = min(hi - norm2 if norm2 < 0 else norm2, hi)
    norm1 = min(25.0, 5.0 * round(norm2 / 15.0)) if norm1 is None else norm1
    norm1, norm2 = min(norm1, norm2), max(norm1, norm2)
    norm1 = min(norm1, norm2 - 2)
    if nnorm is None:
        nnorm = 2 if norm2 - norm1 >= 300 else 1 if norm2 - norm1 >= 30 else 0
    return dict(pre1=float(pre1), pre2=float(pre2), norm1=float(norm1),
                norm2=float(norm2), nnorm=int(max(min(nnorm, _MAX_NNORM), 0)))


def fit_windows(energies: np.ndarray, e0: np.ndarray,
                params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Larch's fit slices per pixel: pre-edge ``[p1, p2)`` (a constant where ``const``)
    and post-edge ``[q1, q2)``, from ``index_of(e0 + lo)`` to ``index_nearest(e0 + hi)``."""
    p1 = index_at_or_below(energies, e0 + params["pre1"])
    p2 = nearest_index(energies, e0 + params["pre2"])
    const = (index_at_or_below(energies, e0 + params["pre2"]) - p1) < 3
    q1 = np.minimum(index_at_or_below(energies, e0 + params["norm1"]), energies.size - 3)
    return p1, p2, const, q1, nearest_index(energies, e0 + params["norm2"])


def check_windows(energies: np.ndarray, e0: float | None, params: dict) -> None:
    if e0 is None:
        return
    if not np.isfinite(e0):
        raise ValueError("no finite spectrum to derive e0 and the default windows from")
    p1, p2, _, q1, q2 = fit_windows(energies, np.array([e0]), params)
    for name, lo, hi, count in (("pre-edge", "pre1", "pre2", p2 - p1),
                                ("post-edge", "norm1", "norm2", q2 - q1)):
        if count[0] < 2:
            raise ValueError(
                f"{name} window e0 + [{params[lo]:g}, {params[hi]:g}] eV around e0 = "
                f"{e0:g} eV holds {max(int(count[0]), 0)} energy points; need at least 2")
