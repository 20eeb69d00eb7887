"""The smooth energy-shift model of :mod:`xafsmap.core.prepare.calibrate`, and its files.

A :class:`ShiftMap` holds the per-pixel shift (true energy = nominal + shift), the raw
per-bin estimates it was fitted to and its uncertainty. The model is a low-order 2-D
polynomial fitted by robust reweighted least squares; ``shift.tif`` stores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..io.files import atomic_file

__all__ = ["ShiftMap", "evaluate_shift_model", "fit_shift", "read_shift_map", "write_shift_map"]


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


def evaluate_shift_model(model: dict, *, shape: tuple[int, int] | None = None):
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


def _fit_points(rows, cols, values, weights, shape, degree: int, robust: bool) -> dict:
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


def _check_degree(degree) -> int:
    if int(degree) != degree or not 0 <= degree <= 6:
        raise ValueError(f"degree must be an integer in 0..6, got {degree!r}")
    return int(degree)


def fit_shift(measured, *, degree: int = 3, weights=None, robust: bool = True) -> ShiftMap:
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
    degree = _check_degree(degree)
    if weights is None:
        w = np.ones_like(measured)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != measured.shape:
            raise ValueError(f"weights has shape {w.shape} but measured has shape {measured.shape}")
    ok = np.isfinite(measured) & np.isfinite(w) & (w > 0)
    rows, cols = np.nonzero(ok)
    model = _fit_points(
        rows.astype(np.float64), cols.astype(np.float64), measured[ok], w[ok],
        measured.shape, degree, robust,
    )
    shift, unc = evaluate_shift_model(model)
    return ShiftMap(shift, measured.astype(np.float32), unc, model["residual_rms"], model)


def write_shift_map(path, shift_map: ShiftMap) -> None:
    """Write a shift map as a float32 TIFF: page 0 shift (eV), page 1 uncertainty (eV).

    The model (JSON) is stored in page 0's ImageDescription. The file is written
    under a temporary name and moved into place, so readers never see half a file.

    Examples
    --------
    >>> import tempfile, os
    >>> sm = fit_shift(np.fromfunction(lambda r, c: 0.01 * c, (4, 5)), degree=1)
    >>> p = os.path.join(tempfile.mkdtemp(), "shift.tif")
    >>> write_shift_map(p, sm)
    >>> bool(np.allclose(read_shift_map(p), sm.shift))
    True
    """
    import tifffile

    with atomic_file(path) as tmp, tifffile.TiffWriter(tmp) as tif:
        tif.write(
            np.asarray(shift_map.shift, dtype=np.float32),
            # "shape" makes the JSON valid tifffile shaped metadata, so any reader opens it
            description=json.dumps({"shape": list(np.shape(shift_map.shift)),
                                    "xafsmap": "shift map (eV)", "model": shift_map.model}),
            metadata=None,
        )
        tif.write(np.asarray(shift_map.uncertainty, dtype=np.float32), metadata=None)


def read_shift_map(path) -> np.ndarray:
    """Read the shift (eV) from a TIFF written by :func:`write_shift_map` (or any 2-D TIFF).

    Returns
    -------
    ndarray, shape (M, N), float32

    Examples
    --------
    See :func:`write_shift_map`.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        shift = tif.pages[0].asarray()
    if shift.ndim != 2:
        raise ValueError(f"{path}: first page has shape {shift.shape}, expected a 2-D shift map")
    return shift.astype(np.float32)
