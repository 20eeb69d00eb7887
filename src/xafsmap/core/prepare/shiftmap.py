"""The smooth energy-shift model of :mod:`xafsmap.core.prepare.calibrate`, and its files.

A :class:`ShiftMap` holds the per-pixel shift (true energy = nominal + shift), the raw
per-bin estimates it was fitted to and its uncertainty. The model is a low-order 2-D
polynomial fitted by robust reweighted least squares; ``shift.tif`` stores it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .._files import atomic_file

__all__ = ["SHIFT_PAGES", "ShiftMap", "describe_shift_map", "evaluate_shift_model", "fit_shift", "read_shift_map", "write_shift_map"]


@dataclass(frozen=True)
class ShiftMap:
    """A smooth per-pixel energy offset and what it was fitted from.

    Attributes
    ----------
    shift : ndarray, shape (M, N), float32
        Smooth model of the offset (eV), evaluated at every pixel:
        true energy = nominal energy + shift.
    measured : ndarray, shape (M, N), float32
        Raw per-pixel estimate (eV); NaN where not measurable (holes in the foil,
        dead pixels, pixels outside the calibration region).
    uncertainty : ndarray, shape (M, N), float32
        1-sigma uncertainty of the smooth model at each pixel (eV).
    residual_rms : float
        RMS of ``measured - shift`` (eV) over the points the model was fitted to.
    model : dict
        JSON-serialisable description of the model (``kind``, ``degree``, ``terms``,
        ``coefficients``, ``x_offset``, ``x_scale``, ``y_offset``, ``y_scale``,
        ``covariance``, ``shape``...), enough for :func:`evaluate_shift_model`.
    """

    shift: np.ndarray
    measured: np.ndarray
    uncertainty: np.ndarray
    residual_rms: float
    model: dict


def _poly_terms(degree: int) -> list[tuple[int, int]]:
    return [(i, t - i) for t in range(degree + 1) for i in range(t, -1, -1)]


def _design(model: dict, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    x = (cols - model["x_offset"]) / model["x_scale"]
    y = (rows - model["y_offset"]) / model["y_scale"]
    return np.stack([x**i * y**j for i, j in model["terms"]], axis=1)


def evaluate_shift_model(model: dict, *, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate a stored shift model (``ShiftMap.model``) on a pixel grid.

    Parameters
    ----------
    model : dict
        As in :attr:`ShiftMap.model` (or report.json).
    shape : (int, int), optional
        (M, N) of the grid; default the shape the model was fitted on.

    Returns
    -------
    shift, uncertainty : ndarray, shape (M, N), float32
        Modelled offset and its 1-sigma uncertainty (eV).

    Examples
    --------
    >>> sm = fit_shift(np.fromfunction(lambda r, c: 0.01 * c, (20, 30)), degree=1)
    >>> s, u = evaluate_shift_model(sm.model)
    >>> round(float(s[0, 29]), 3)
    0.29
    """
    if model.get("kind") != "poly2d":
        raise ValueError(f"unknown shift model kind {model.get('kind')!r}; expected 'poly2d'")
    m, n = tuple(model["shape"]) if shape is None else tuple(shape)
    coef = np.asarray(model["coefficients"], dtype=np.float64)
    cov = np.asarray(model["covariance"], dtype=np.float64)
    shift = np.empty((m, n), np.float32)
    unc = np.empty((m, n), np.float32)
    cols = np.arange(n, dtype=np.float64)
    step = max(1, 2**20 // max(n, 1))  # rows per block: the design matrix stays small
    for r0 in range(0, m, step):
        rows = np.arange(r0, min(m, r0 + step), dtype=np.float64)
        x = _design(model, np.repeat(rows, n), np.tile(cols, rows.size))
        shift[r0 : r0 + rows.size] = (x @ coef).reshape(rows.size, n)
        unc[r0 : r0 + rows.size] = np.sqrt(np.maximum(np.einsum("pi,ij,pj->p", x, cov, x), 0.0)).reshape(rows.size, n)
    return shift, unc


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    return np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]


def _irls(x, y, w0, robust: bool):
    """Weighted LSQ, then Huber (c=1.345) and Tukey biweight (c=4.685) IRLS on top."""
    beta = _wls(x, y, w0)
    wr = np.ones_like(y)
    if not robust:
        return beta, wr
    for c, tukey in ((1.345, False), (4.685, True)):
        for _ in range(50):
            z = (y - x @ beta) * np.sqrt(w0)
            scale = 1.4826 * np.median(np.abs(z - np.median(z)))
            if not scale > 0:
                return beta, wr
            u = np.abs(z) / (c * scale)
            wr = np.where(u < 1, (1 - u**2) ** 2, 0.0) if tukey else np.minimum(1.0, 1.0 / np.maximum(u, 1e-12))
            new = _wls(x, y, w0 * wr)
            done = np.max(np.abs(new - beta)) < 1e-7 * (1.0 + np.max(np.abs(beta)))
            beta = new
            if done:
                break
    return beta, wr


def fit_points(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, weights: np.ndarray, shape: tuple[int, int],
               degree: int, robust: bool) -> dict:
    terms = _poly_terms(degree)
    m, n = shape
    model = {
        "kind": "poly2d",
        "degree": int(degree),
        "terms": [list(t) for t in terms],
        "x_offset": (n - 1) / 2.0,
        "x_scale": max((n - 1) / 2.0, 1.0),
        "y_offset": (m - 1) / 2.0,
        "y_scale": max((m - 1) / 2.0, 1.0),
        "shape": [int(m), int(n)],
    }
    if values.size <= len(terms):
        raise ValueError(
            f"a degree-{degree} 2-D polynomial has {len(terms)} coefficients but only"
            f" {values.size} finite shift estimates are available"
        )
    x = _design(model, rows, cols)
    beta, wr = _irls(x, values, weights, robust)
    w = weights * wr
    r = values - x @ beta
    n_eff = float(wr.sum())
    sigma2 = float(np.sum(w * r**2) / max(n_eff - len(terms), 1.0))
    cov = sigma2 * np.linalg.pinv((x * w[:, None]).T @ x)
    model.update(
        coefficients=beta.tolist(),
        covariance=cov.tolist(),
        sigma=float(np.sqrt(sigma2)),
        loss="huber+tukey" if robust else "least-squares",
        n_points=int(values.size),
        n_outliers=int(np.sum(wr == 0)),
        residual_rms=float(np.sqrt(np.mean(r**2))),
    )
    return model


def check_degree(degree: float) -> int:
    if int(degree) != degree or not 0 <= degree <= 6:
        raise ValueError(f"degree must be an integer in 0..6, got {degree!r}")
    return int(degree)


def fit_shift(measured: np.ndarray, *, degree: int = 3, weights: np.ndarray | None = None,
              robust: bool = True) -> ShiftMap:
    """Smooth 2-D model of a per-pixel shift map.

    Parameters
    ----------
    measured : ndarray, shape (M, N)
        Raw offsets (eV); NaN where not measured.
    degree : int
        Total degree of the 2-D polynomial (3: 10 coefficients).
    weights : ndarray, shape (M, N), optional
        Relative inverse-variance weights; non-finite or <= 0 drops the pixel.
    robust : bool
        Down-weight outliers (Huber, then Tukey biweight IRLS).

    Returns
    -------
    ShiftMap
        ``shift`` and ``uncertainty`` evaluated at every pixel; ``measured`` echoed.

    Raises
    ------
    ValueError
        Not 2-D, weights of another shape, or fewer finite values than coefficients.

    Notes
    -----
    The monochromator's geometry (beam divergence across the Bragg angle) makes the
    offset a smooth field dominated by a gradient along one axis with a little
    curvature, so a low-order polynomial in normalized coordinates (x, y in [-1, 1])
    captures it with few parameters and no tuning, and extrapolates gently into holes.
    Robust IRLS (Huber to converge, Tukey to reject) keeps bad pixels at hole edges
    from bending it. The uncertainty is ``sqrt(diag(X C X^T))`` with
    ``C = s^2 (X^T W X)^-1`` and ``s^2`` the weighted residual variance, i.e. it
    assumes independent estimates (true for binned pixels) and an adequate model.

    Examples
    --------
    >>> r, c = np.mgrid[0:30, 0:40]
    >>> sm = fit_shift(-1.0 + 0.05 * c + 0.001 * r**2, degree=2)
    >>> round(float(sm.shift[10, 20]), 3), sm.residual_rms < 1e-6
    (0.1, True)
    """
    measured = np.asarray(measured, dtype=np.float64)
    if measured.ndim != 2:
        raise ValueError(f"measured must be a 2-D (M, N) map but has shape {measured.shape}")
    degree = check_degree(degree)
    if weights is None:
        w = np.ones_like(measured)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != measured.shape:
            raise ValueError(f"weights has shape {w.shape} but measured has shape {measured.shape}")
    ok = np.isfinite(measured) & np.isfinite(w) & (w > 0)
    rows, cols = np.nonzero(ok)
    model = fit_points(
        rows.astype(np.float64), cols.astype(np.float64), measured[ok], w[ok],
        measured.shape, degree, robust,
    )
    shift, unc = evaluate_shift_model(model)
    return ShiftMap(shift, measured.astype(np.float32), unc, model["residual_rms"], model)


#: What the two pages of shift.tif hold, in order (its metadata names them).
SHIFT_PAGES = ("shift_eV", "uncertainty_eV")


def write_shift_map(path: str | os.PathLike, shift_map: ShiftMap) -> None:
    """Write a shift map as one float32 TIFF series of two pages: shift and its uncertainty (eV).

    The series' shaped metadata (JSON in the first page's ImageDescription) gives its
    shape ``[2, M, N]``, names the pages (:data:`SHIFT_PAGES`) and holds the model, so
    ``tifffile.imread`` returns both pages as one (2, M, N) array. The file is written
    under a temporary name and moved into place, so readers never see half a file.

    Examples
    --------
    >>> import tempfile, os, tifffile
    >>> sm = fit_shift(np.fromfunction(lambda r, c: 0.01 * c, (4, 5)), degree=1)
    >>> p = os.path.join(tempfile.mkdtemp(), "shift.tif")
    >>> write_shift_map(p, sm)
    >>> tifffile.imread(p).shape, bool(np.allclose(read_shift_map(p).shift, sm.shift))
    ((2, 4, 5), True)
    """
    import tifffile

    pages = np.stack([np.asarray(shift_map.shift, dtype=np.float32),
                      np.asarray(shift_map.uncertainty, dtype=np.float32)])
    metadata = {"xafsmap": "shift map (eV)", "pages": list(SHIFT_PAGES), "model": shift_map.model}
    with atomic_file(path) as tmp:
        tifffile.imwrite(tmp, pages, photometric="minisblack", metadata=metadata)


def read_shift_map(path: str | os.PathLike) -> ShiftMap:
    """Read a shift map written by :func:`write_shift_map` (or any TIFF whose first page is the shift).

    Files written before the two pages were one series (shift and uncertainty as two
    separate pages under metadata of one) are read alike.

    Returns
    -------
    ShiftMap
        ``shift`` (M, N) float32 eV; ``uncertainty`` from the second page when the file
        has one of the same shape, NaN otherwise; ``measured`` is the shift itself (the
        raw measurement is not in the file); ``model`` ``{"source": path}``.

    Raises
    ------
    ValueError
        If the first page is not a 2-D image.

    Examples
    --------
    See :func:`write_shift_map`.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        shift = tif.pages[0].asarray()
        if shift.ndim != 2:
            raise ValueError(f"{path}: first page has shape {shift.shape}, expected a 2-D shift map")
        shift = shift.astype(np.float32)
        uncertainty = np.full_like(shift, np.nan)
        if len(tif.pages) > 1 and tif.pages[1].shape == shift.shape:
            uncertainty = tif.pages[1].asarray().astype(np.float32)
    return ShiftMap(shift=shift, measured=shift, uncertainty=uncertainty, residual_rms=float("nan"),
                    model={"source": str(path)})


def describe_shift_map(shift_map: ShiftMap, *, energies: np.ndarray | None = None) -> str:
    """A shift map in one line: its range, its fit residual and, given the stack's
    ``energies``, how many of them every pixel still covers after calibration.

    Examples
    --------
    >>> sm = fit_shift(np.fromfunction(lambda r, c: 0.5 * c - 1.0, (4, 5)), degree=1)
    >>> describe_shift_map(sm, energies=np.arange(7100.0, 7130.0))
    'shift -1.00 to 1.00 eV; fit residual 0.000 eV RMS; 28 of 30 energies kept'
    """
    from .steps import calibrated_energies

    shift = shift_map.shift
    parts = [f"shift {np.nanmin(shift):.2f} to {np.nanmax(shift):.2f} eV"]
    if np.isfinite(shift_map.residual_rms):
        parts.append(f"fit residual {shift_map.residual_rms:.3f} eV RMS")
    if energies is not None:
        parts.append(f"{calibrated_energies(energies, shift).size} of {np.size(energies)} energies kept")
    return "; ".join(parts)
