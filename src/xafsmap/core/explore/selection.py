"""Two maps against each other: a 2-D histogram, a lasso selection back to pixels, an RGB composite.

A scatter plot of two maps (E50 against a fraction, two component scores) shows
populations that no single map separates; a polygon drawn around one of them
(:func:`select_by_values`) becomes a mask of its pixels, a labels layer in napari.
:func:`points_in_polygon` is the even-odd rule the ROIs share.
"""

from __future__ import annotations

import numpy as np

__all__ = ["histogram_2d", "points_in_polygon", "rgb_composite", "select_by_values"]

#: Points tested against a polygon at a time (bounds the (points, edges) temporaries).
POINTS_PER_BLOCK = 1 << 18


def points_in_polygon(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Which points lie inside a polygon (even-odd rule; boundary points may go either way).

    Parameters
    ----------
    points : ndarray, shape (P, 2)
    vertices : ndarray, shape (V, 2)
        The polygon, closed implicitly (last vertex joins the first).

    Returns
    -------
    ndarray of bool, shape (P,)
        False for points with a NaN coordinate.

    Raises
    ------
    ValueError
        If the polygon has fewer than 3 vertices or a non-finite one.

    Examples
    --------
    >>> square = np.array([[0, 0], [0, 2], [2, 2], [2, 0]])
    >>> points_in_polygon(np.array([[1, 1], [3, 1], [1.0, np.nan]]), square).tolist()
    [True, False, False]
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[0] < 3 or vertices.shape[1] != 2:
        raise ValueError(f"a polygon needs at least 3 vertices of 2 coordinates, got shape {vertices.shape}")
    if not np.all(np.isfinite(vertices)):
        raise ValueError("a polygon vertex is not a finite number")
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    a, b = vertices, np.roll(vertices, -1, axis=0)
    inside = np.zeros(points.shape[0], bool)
    for start in range(0, points.shape[0], POINTS_PER_BLOCK):
        p = points[start : start + POINTS_PER_BLOCK]
        y, x = p[:, :1], p[:, 1:]
        straddles = (a[None, :, 0] > y) != (b[None, :, 0] > y)
        with np.errstate(invalid="ignore", divide="ignore"):
            crossing = a[None, :, 1] + (y - a[None, :, 0]) * (b[None, :, 1] - a[None, :, 1]) / (
                b[None, :, 0] - a[None, :, 0])
        inside[start : start + p.shape[0]] = np.count_nonzero(straddles & (x < crossing), axis=1) % 2 == 1
    return inside & np.all(np.isfinite(points), axis=1)


def _limits(values, percentiles):
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, percentiles)
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(lo) + 0.5)


def histogram_2d(x: np.ndarray, y: np.ndarray, *, bins: int = 128, mask: np.ndarray | None = None,
                 limits: tuple[tuple[float, float], tuple[float, float]] | None = None,
                 percentiles: tuple[float, float] = (0.5, 99.5)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-D histogram of two maps over the pixels where both are finite (and ``mask`` is True).

    Parameters
    ----------
    x, y : ndarray, shape (M, N)
        Two maps of the same grid.
    bins : int
    mask : ndarray of bool, shape (M, N), optional
    limits : ((float, float), (float, float)), optional
        Ranges of x and y; default the ``percentiles`` of each.

    Returns
    -------
    counts : ndarray of int64, shape (bins, bins)
        ``counts[i, j]``: pixels in x bin i and y bin j.
    x_edges, y_edges : ndarray, shape (bins + 1,)

    Raises
    ------
    ValueError
        If the maps differ in shape.

    Examples
    --------
    >>> counts, xe, ye = histogram_2d(np.array([[0.0, 1.0]]), np.array([[2.0, 3.0]]), bins=2,
    ...                               limits=((0, 1), (2, 3)))
    >>> counts.tolist()
    [[1, 0], [0, 1]]
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"the two maps differ in shape: {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        keep &= np.asarray(mask, bool)
    limits = limits or (_limits(x[keep], percentiles), _limits(y[keep], percentiles))
    counts, x_edges, y_edges = np.histogram2d(x[keep], y[keep], bins=bins, range=limits)
    return counts.astype(np.int64), x_edges, y_edges


def select_by_values(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Pixels whose (x, y) values lie inside a polygon drawn on the scatter plot.

    Parameters
    ----------
    x, y : ndarray, shape (M, N)
    vertices : ndarray, shape (V, 2)
        Polygon in (x value, y value) coordinates.

    Returns
    -------
    ndarray of bool, shape (M, N)

    Examples
    --------
    >>> x = np.array([[0.1, 0.9], [0.5, np.nan]])
    >>> select_by_values(x, x, [[0, 0], [0.6, 0], [0.6, 0.6], [0, 0.6]]).tolist()
    [[True, False], [True, False]]
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"the two maps differ in shape: {x.shape} and {y.shape}")
    # points_in_polygon takes (row, column): here (y, x) in value space
    vertices = np.asarray(vertices, dtype=np.float64)[:, ::-1]
    return points_in_polygon(np.stack([y.ravel(), x.ravel()], axis=1), vertices).reshape(x.shape)


def rgb_composite(red: np.ndarray, green: np.ndarray, blue: np.ndarray, *,
                  percentiles: tuple[float, float] = (1.0, 99.0), mask: np.ndarray | None = None) -> np.ndarray:
    """Three maps as one RGB image, each stretched between its percentiles.

    Parameters
    ----------
    red, green, blue : ndarray, shape (M, N)
    percentiles : (float, float)
        Each channel's black and full levels.
    mask : ndarray of bool, shape (M, N), optional
        Pixels to show; the others (and NaN) are black.

    Returns
    -------
    ndarray of uint8, shape (M, N, 3)

    Examples
    --------
    >>> r = np.array([[0.0, 1.0]])
    >>> rgb_composite(r, 1 - r, 0.5 * r, percentiles=(0, 100))[0].tolist()
    [[0, 255, 0], [255, 0, 255]]
    """
    channels = []
    for values in (red, green, blue):
        values = np.asarray(values, dtype=np.float64)
        lo, hi = _limits(values if mask is None else np.where(mask, values, np.nan), percentiles)
        scaled = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
        keep = np.isfinite(scaled) & (True if mask is None else np.asarray(mask, bool))
        channels.append(np.where(keep, np.round(255 * scaled), 0).astype(np.uint8))
    return np.stack(channels, axis=-1)
