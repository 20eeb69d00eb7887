"""Edge maps per pixel: where the edge is (E50), the white line, and the Fe K pre-edge.

All from normalized spectra, vectorized over pixels, each a few matrix products with
operators built once for the stack's energies:

* **E50**: the energy where the spectrum, smoothed by a local quadratic fit
  (:func:`local_smoother`, tricube weights over ``smoothing`` eV), last rises through
  0.5 before its maximum in the edge window, interpolated linearly between the two
  energies around the crossing (TXM-Sandbox's ``edge50``). Immune to the pre-edge
  peak (below 0.5) and to post-edge wiggles (after the maximum).
* **White line**: the maximum of the smoothed spectrum in the window, refined by the
  parabola through it and its neighbours (energy and height).
* **Fe K pre-edge** (Wilke et al. 2001, Am. Mineral. 86, 714): a baseline ``a + b E +
  c exp((E - 7117 eV) / 2 eV)`` (a line, and the onset of the main edge) fitted by
  least squares to 7100-7109 eV and 7115.5-7117 eV is subtracted over 7109.5-7115.5 eV;
  the integrated intensity is the area left (trapezoids, eV x normalized mu), its
  centroid the intensity-weighted mean energy. Fe(II) centroids lie about 1.4 eV below
  Fe(III) ones; on the bundled FeO and Fe2O3 spectra the windows give 7112.75 and
  7113.80 eV and mixtures in between, in order. The windows are on an absolute scale:
  give ``preedge=`` windows for a beamline whose energies are offset.

With an energy-shift map (true energy = nominal + shift) the spectra are first put
on the true energies (:func:`~xafsmap.core.resample.apply_shift`), so every map,
windows included, is on the true scale.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["EDGE_WINDOW", "FE_K_PREEDGE", "edge_maps", "edge_settings", "local_smoother", "preedge_operator"]

#: Edge window relative to e0 (eV) of K edges above 4 keV, and of soft X-ray edges.
EDGE_WINDOW = {"hard": (-20.0, 30.0), "soft": (-5.0, 8.0)}
#: Half-width (eV) of the local quadratic smoothing before E50 and the white line.
SMOOTHING = {"hard": 2.0, "soft": 0.4}
#: Fe K pre-edge windows (absolute eV) and the edge-onset term of the baseline.
FE_K_PREEDGE = {"lower": (7100.0, 7109.0), "upper": (7115.5, 7117.0), "peak": (7109.5, 7115.5),
                "onset": 7117.0, "onset_width": 2.0}
#: A stack is at the Fe K edge when its e0 lies in this range (eV).
FE_K_RANGE = (7090.0, 7160.0)


def edge_settings(e0: float) -> dict:
    """Window (absolute eV), smoothing half-width and pre-edge windows for an edge at ``e0``.

    >>> edge_settings(7123.0)["window"], edge_settings(708.0)["preedge"] is None
    ((7103.0, 7153.0), True)
    """
    kind = "hard" if e0 >= 4000.0 else "soft"
    lo, hi = EDGE_WINDOW[kind]
    fe_k = FE_K_RANGE[0] <= e0 <= FE_K_RANGE[1]
    return {"window": (e0 + lo, e0 + hi), "smoothing": SMOOTHING[kind], "preedge": FE_K_PREEDGE if fe_k else None}


@functools.lru_cache(maxsize=16)
def _smoother(energies_bytes: bytes, half_width: float) -> np.ndarray:
    e = np.frombuffer(energies_bytes, dtype=np.float64)
    out = np.zeros((e.size, e.size))
    for i, centre in enumerate(e):  # a loop over energies (hundreds), once per stack
        d = (e - centre) / half_width
        w = np.where(np.abs(d) < 1, (1 - np.abs(d) ** 3) ** 3, 0.0)
        if np.count_nonzero(w) < 3:
            out[i, i] = 1.0
            continue
        x = np.stack([np.ones_like(d), d, d * d], axis=1)
        out[i] = np.linalg.solve(x.T @ (w[:, None] * x), (x * w[:, None]).T)[0]
    return out


def local_smoother(energies: np.ndarray, half_width: float) -> np.ndarray:
    """(E, E) operator of a local quadratic fit with tricube weights over ``half_width`` eV.

    Exact for quadratics on any (non-uniform) grid; where fewer than 3 energies lie
    within the half-width a point is left as it is.

    Examples
    --------
    >>> e = np.array([0.0, 0.5, 1.0, 2.0, 2.5, 4.0])
    >>> bool(np.allclose(local_smoother(e, 2.0) @ (e**2 - e), e**2 - e))
    True
    """
    energies = np.ascontiguousarray(energies, dtype=np.float64)
    return _smoother(energies.tobytes(), float(half_width))


def preedge_operator(energies: np.ndarray, windows: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The linear pieces of the pre-edge maps for ``energies``.

    Returns
    -------
    base, peak : ndarray of bool, shape (E,)
        Energies of the baseline fit and of the peak window.
    operator : ndarray, shape (n_peak, n_base)
        Baseline at the peak energies from the spectrum at the baseline energies.

    Raises
    ------
    ValueError
        If the windows hold too few energies (3 per baseline side, 3 in the peak).
    """
    e = np.asarray(energies, dtype=np.float64)
    lower = (e >= windows["lower"][0]) & (e <= windows["lower"][1])
    upper = (e >= windows["upper"][0]) & (e <= windows["upper"][1])
    peak = (e >= windows["peak"][0]) & (e <= windows["peak"][1])
    if min(lower.sum(), upper.sum(), peak.sum()) < 3:
        raise ValueError(f"the Fe K pre-edge windows hold {lower.sum()}, {peak.sum()} and {upper.sum()} energies; "
                         "need 3 each (lower baseline, peak, upper baseline)")
    base = lower | upper
    x = (e - windows["onset"]) / 10.0
    design = np.stack([np.ones_like(e), x, np.exp((e - windows["onset"]) / windows["onset_width"])], axis=1)
    return base, peak, design[peak] @ np.linalg.pinv(design[base])


def _trapezoid_weights(x):
    w = np.zeros(x.size)
    w[1:] += np.diff(x) / 2
    w[:-1] += np.diff(x) / 2
    return w


def edge_maps(spectra: np.ndarray, energies: np.ndarray, *, e0: float, shift: np.ndarray | None = None,
              preedge: str | dict | None = "auto") -> dict:
    """E50, white line and (Fe K) pre-edge of normalized spectra (see the module notes).

    Parameters
    ----------
    spectra : ndarray, shape (E, ...)
        Normalized spectra (any number of pixels).
    energies : ndarray, shape (E,)
        eV.
    e0 : float
        The stack's edge energy; windows are relative to it.
    shift : ndarray, shape (...), optional
        Energy shift of every pixel (true = nominal + shift), eV.
    preedge : "auto", dict or None
        Pre-edge windows (as :data:`FE_K_PREEDGE`); ``"auto"`` uses those at the Fe K
        edge and none elsewhere; None skips the pre-edge maps.

    Returns
    -------
    dict of ndarray, shape (...), float32
        ``e50``, ``whiteline_energy``, ``whiteline_height`` and, with pre-edge windows,
        ``preedge_centroid`` and ``preedge_intensity``. NaN where not found.

    Examples
    --------
    >>> e = np.arange(7050.0, 7200.0, 0.5)
    >>> edge = 1 / (1 + np.exp(-(e - 7120.0) / 1.5)) + 0.4 * np.exp(-(((e - 7128.0) / 3) ** 2))
    >>> maps = edge_maps(np.stack([edge, np.interp(e - 1.0, e, edge)], 1), e, e0=7120.0)
    >>> np.round(maps["e50"], 2).tolist(), np.round(maps["whiteline_energy"], 1).tolist()
    ([7120.0, 7121.0], [7128.0, 7129.0])
    """
    energies = np.asarray(energies, dtype=np.float64)
    spectra = np.asarray(spectra)
    shape = spectra.shape[1:]
    y = np.asarray(spectra.reshape(energies.size, -1), dtype=np.float32)
    if shift is not None and y.shape[1]:
        from ..prepare.resample import apply_shift

        shift = np.broadcast_to(np.asarray(shift, dtype=np.float32), shape).reshape(-1)
        y = apply_shift(y[:, :, None], energies, shift[:, None])[:, :, 0]
    settings = edge_settings(float(e0))
    out = dict(zip(("e50", "whiteline_energy", "whiteline_height"), _edge_position(y, energies, settings)))
    windows = settings["preedge"] if preedge == "auto" else preedge
    if windows is not None:
        out["preedge_centroid"], out["preedge_intensity"] = _preedge(y, energies, windows)
    return {name: value.astype(np.float32).reshape(shape) for name, value in out.items()}


def _edge_position(y, energies, settings):
    lo, hi = settings["window"]
    inside = np.flatnonzero((energies >= lo) & (energies <= hi))
    n = y.shape[1]
    if inside.size < 4:
        return np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    rows = local_smoother(energies, settings["smoothing"])[inside]
    used = np.flatnonzero(np.any(rows != 0, axis=0))
    # a NaN point makes its pixel's column NaN (and its argmax meaningless): flagged below
    smooth = rows[:, used].astype(np.float32) @ y[used[0] : used[-1] + 1][used - used[0]]
    e = energies[inside]
    top = np.argmax(smooth, axis=0)
    pixels = np.arange(n)
    # E50: the last energy below 0.5 before the maximum, and the next one
    below = (smooth < 0.5) & (np.arange(e.size)[:, None] < top[None, :])
    found = below.any(axis=0)
    k = e.size - 1 - np.argmax(below[::-1], axis=0)
    k1 = np.minimum(k + 1, e.size - 1)
    y0, y1 = smooth[k, pixels], smooth[k1, pixels]
    with np.errstate(invalid="ignore", divide="ignore"):
        e50 = np.where(found & (k1 > k), e[k] + (0.5 - y0) / (y1 - y0) * (e[k1] - e[k]), np.nan)
    # white line: the parabola through the maximum and its neighbours
    i = np.clip(top, 1, e.size - 2)
    x0, x1, x2 = e[i - 1], e[i], e[i + 1]
    f0, f1, f2 = smooth[i - 1, pixels], smooth[i, pixels], smooth[i + 1, pixels]
    slope01, slope12 = (f1 - f0) / (x1 - x0), (f2 - f1) / (x2 - x1)
    curve = (slope12 - slope01) / (x2 - x0)
    with np.errstate(invalid="ignore", divide="ignore"):
        vertex = np.clip(np.where(curve < 0, (x0 + x1) / 2 - slope01 / (2 * curve), x1), x0, x2)
    height = f1 + (vertex - x1) * (slope01 + curve * (vertex - x0))
    edge_ok = ~np.isnan(smooth).any(axis=0)
    return (np.where(edge_ok, e50, np.nan), np.where(edge_ok, vertex, np.nan), np.where(edge_ok, height, np.nan))


def _preedge(y, energies, windows):
    base, peak, operator = preedge_operator(energies, windows)
    intensity = y[peak].astype(np.float64) - operator @ y[base].astype(np.float64)
    weights = _trapezoid_weights(energies[peak])
    area = weights @ intensity
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = ((weights * energies[peak]) @ intensity) / area
    return np.where(area > 0, centroid, np.nan), area
