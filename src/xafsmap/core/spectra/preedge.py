"""The pre-edge fit window of a stack: Larch's default where it is good enough, else the whole pre-edge."""

from __future__ import annotations

import numpy as np

from .normalize import normalize

__all__ = ["LARCH_WINDOW_ERROR", "PRE_EDGE_GAP", "pre_edge_rule", "pre_edge_window"]

#: Imaging pre-edge window ends this far below e0 (eV), clear of the Fe K pre-edge peak;
#: soft X-ray edges (below HARD_EDGE_EV) are narrower: their window ends closer.
PRE_EDGE_GAP, SOFT_PRE_EDGE_GAP, HARD_EDGE_EV = 15.0, 2.5, 4000.0
#: ... and is used only when it holds at least this many energies.
PRE_EDGE_POINTS = 6
#: Larch's default pre-edge window is kept when its line, extrapolated to e0, is
#: uncertain by at most this much (edge steps) at the sample pixels' median noise.
LARCH_WINDOW_ERROR = 0.005


def pre_edge_window(energies: np.ndarray, e0: float, *, noise: float | None = None) -> dict:
    """The pre-edge fit window of :func:`pre_edge_rule` (``{}``: Larch's defaults).

    Examples
    --------
    >>> pre_edge_window(np.arange(7050.0, 7300.0, 5.0), 7120.0, noise=0.02)
    {'pre1': -70.0, 'pre2': -15.0}
    >>> pre_edge_window(np.arange(7050.0, 7300.0, 5.0), 7120.0, noise=1e-4)
    {}
    >>> pre_edge_window(np.arange(700.0, 730.0, 0.5), 709.0)
    {'pre1': -9.0, 'pre2': -2.5}
    >>> pre_edge_window(np.arange(7100.0, 7300.0, 5.0), 7120.0)
    {}
    """
    return pre_edge_rule(energies, e0, noise=noise)[0]


def _extrapolation(x, at):
    """Standard error of a least-squares line through points ``x`` at ``at``, per unit point noise."""
    if x.size < 3:
        return np.inf
    return float(np.sqrt(1.0 / x.size + (at - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2)))


def pre_edge_rule(energies: np.ndarray, e0: float, *, noise: float | None = None) -> tuple[dict, dict]:
    """Pre-edge fit window for a stack: Larch's default where it is good enough, else the whole pre-edge.

    Parameters
    ----------
    energies : ndarray, shape (E,)
        The stack's energies, eV.
    e0 : float
        The stack's edge energy, eV.
    noise : float, optional
        Typical noise of one point of a sample pixel, edge-step units (the survey's
        median). None: unknown, the whole pre-edge is used wherever it can be.

    Returns
    -------
    window : dict
        ``{}`` for Larch's defaults (:func:`~xafsmap.core.spectra.normalize.normalize` derives
        ``pre1``, ``pre2``), or ``pre1`` = first energy - e0, ``pre2`` = -15 eV (-2.5 eV
        below 4 keV).
    rule : dict
        ``{"rule": "larch-default" | "whole-pre-edge", "why": ...}`` for report.json.

    Notes
    -----
    Larch's default window (``pre1`` = second energy - e0 rounded to 5 eV, ``pre2 =
    pre1 / 2``) keeps clear of the approach to the edge, but on an imaging stack it holds
    a handful of points far below e0, and the error of its line, extrapolated to e0,
    becomes the edge step's error. A line fitted to ``n`` points ``x_i`` with noise
    ``sigma`` each is uncertain at ``e0`` by ``sigma * sqrt(1/n + (e0 - mean x)**2 /
    sum (x_i - mean x)**2)``; Larch's window is kept when that is at most
    :data:`LARCH_WINDOW_ERROR` (0.5 % of the edge step, half the 1 % at which maps and
    Larch should agree) at the median noise of the sample pixels. Dense, quiet scans
    pass (a Mn foil scan: 262 points, 0.33 sigma, sigma ~1e-4); imaging stacks do not
    (the sample grid: 7 points, 2.1 sigma, sigma ~0.02). Otherwise all pre-edge points
    up to 15 eV below e0 are used (their line is 3-6 times steadier there; the fraction
    error of noisy stacks halves, docs/method.md), or Larch's window when fewer than
    ``PRE_EDGE_POINTS`` energies lie there.

    Examples
    --------
    >>> window, rule = pre_edge_rule(np.arange(7050.0, 7300.0, 5.0), 7120.0, noise=0.02)
    >>> window, rule["rule"]
    ({'pre1': -70.0, 'pre2': -15.0}, 'whole-pre-edge')
    """
    energies = np.asarray(energies, dtype=np.float64)
    gap = PRE_EDGE_GAP if e0 >= HARD_EDGE_EV else SOFT_PRE_EDGE_GAP
    whole = energies[energies <= e0 - gap]
    try:  # Larch's defaults, as normalize resolves them
        larch = normalize(np.ones(energies.size), energies, e0=e0).params
    except ValueError:
        larch = None
    lx = energies[(energies >= e0 + larch["pre1"]) & (energies < e0 + larch["pre2"])] if larch else energies[:0]
    spread = _extrapolation(lx, e0)
    where = (f"Larch's pre-edge window e0 + [{larch['pre1']:g}, {larch['pre2']:g}] eV holds {lx.size} energies"
             if larch else "Larch's pre-edge window holds fewer than 2 energies")
    if whole.size < PRE_EDGE_POINTS:
        return {}, {"rule": "larch-default", "why": f"only {whole.size} energies lie {gap:g} eV or more below e0 "
                    f"(fewer than {PRE_EDGE_POINTS}), too few for the whole pre-edge rule; {where}"}
    if noise is not None and np.isfinite(noise) and larch and spread * noise <= LARCH_WINDOW_ERROR:
        return {}, {"rule": "larch-default", "why": f"{where}: its line, extrapolated to e0, is uncertain by "
                    f"{spread:.2f} times one point's noise, {spread * noise:.2g} edge steps at the sample pixels' "
                    f"median noise {noise:.2g} (limit {LARCH_WINDOW_ERROR:g})"}
    window = {"pre1": float(energies[0] - e0), "pre2": -gap}
    if noise is None or not np.isfinite(noise):
        why = f"the noise is unknown; the whole pre-edge ({whole.size} energies) is the steadier line"
    else:
        why = (f"{where}: its line, extrapolated to e0, would be uncertain by {spread:.2f} times one point's "
               f"noise, {spread * noise:.2g} edge steps at the sample pixels' median noise {noise:.2g} (limit "
               f"{LARCH_WINDOW_ERROR:g}); the whole pre-edge up to {gap:g} eV below e0 ({whole.size} energies) "
               f"gives {_extrapolation(whole, e0):.2f} times")
    return window, {"rule": "whole-pre-edge", "why": why}
