"""Image-to-image drift across energies: the sample moving during the scan.

Convention: ``drift[i] = (dy, dx)`` (pixels) means image ``i`` is the reference image
moved by ``+dy`` rows and ``+dx`` columns, ``image_i(y, x) = reference(y - dy, x - dx)``;
:func:`correct_drift` moves it back by ``-drift[i]``.
"""

from __future__ import annotations

import numpy as np

from ._arrays import is_dask

__all__ = ["measure_drift", "correct_drift", "drift_report"]

#: Gaussian smoothing (px) before the gradient: suppresses pixel noise.
_FEATURE_SIGMA = 1.0


def _check_stack(stack, energies=None) -> None:
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (E, M, N) but has shape {tuple(stack.shape)}")
    if energies is not None:
        energies = np.asarray(energies)
        if energies.ndim != 1 or energies.size != stack.shape[0]:
            raise ValueError(
                f"stack has {stack.shape[0]} energies but energies has shape {energies.shape}"
            )


def _feature(image: np.ndarray) -> np.ndarray:
    """Windowed, mean-free gradient magnitude of a lightly smoothed image.

    Across an absorption edge the contrast between phases changes size and even sign,
    but the boundaries and the texture stay where they are: the gradient magnitude
    keeps them and drops the sign, so every energy can be matched to one reference.
    """
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(img)
    if not finite.any():
        return np.zeros_like(img)
    img = np.where(finite, img, img[finite].mean())
    smooth = ndimage.gaussian_filter(img, _FEATURE_SIGMA, mode="nearest")
    gy, gx = np.gradient(smooth)
    mag = np.hypot(gy, gx)
    # no apodization window: a window fixed to the frame pulls the peak towards zero
    # shift (0.2-0.5 px in the tests); the mean-free gradient magnitude has only a
    # mild step at the periodic boundary
    return mag - mag.mean()


def _upsampled_dft(spectrum: np.ndarray, centre: np.ndarray, upsample: int, half: float):
    """Cross-correlation at offsets centre + j/upsample, |j/upsample| <= half, by matrix DFT."""
    m, n = spectrum.shape
    k = int(np.ceil(half * upsample))
    offs = np.arange(-k, k + 1) / upsample
    ky, kx = np.fft.fftfreq(m), np.fft.fftfreq(n)
    ey = np.exp(2j * np.pi * np.outer(centre[0] + offs, ky))  # (P, m)
    ex = np.exp(2j * np.pi * np.outer(kx, centre[1] + offs))  # (n, P)
    # einsum, not @: these products are tiny, and threaded BLAS on a busy machine
    # spends far longer waking threads (seen: 20x) than computing them
    rows = np.einsum("pm,mn->pn", ey, spectrum)
    return np.einsum("pn,nq->pq", rows, ex).real, offs


def _parabola(y0: float, y1: float, y2: float) -> float:
    den = y0 - 2.0 * y1 + y2
    return 0.0 if den >= 0 else float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))


def _phase_correlate(f_ref: np.ndarray, feat: np.ndarray, upsample: int) -> np.ndarray:
    """(dy, dx) with feat(y, x) ~ ref(y - dy, x - dx): phase correlation, then upsampled refinement."""
    f_img = np.fft.fft2(feat)
    cross = f_img * np.conj(f_ref)
    mag = np.abs(cross)
    # whitening sharpens the peak; the floor keeps empty frequencies from adding noise
    cross = cross / (mag + 1e-2 * mag.max() + 1e-300)
    corr = np.fft.ifft2(cross).real
    peak = np.array(np.unravel_index(np.argmax(corr), corr.shape), dtype=np.float64)
    size = np.array(corr.shape)
    peak = np.where(peak > size // 2, peak - size, peak)
    if upsample <= 1:
        return peak
    up, offs = _upsampled_dft(cross, peak, upsample, 1.0)
    i, j = np.unravel_index(np.argmax(up), up.shape)
    step = 1.0 / upsample
    dy = offs[i] + (step * _parabola(up[i - 1, j], up[i, j], up[i + 1, j]) if 0 < i < up.shape[0] - 1 else 0.0)
    dx = offs[j] + (step * _parabola(up[i, j - 1], up[i, j], up[i, j + 1]) if 0 < j < up.shape[1] - 1 else 0.0)
    return peak + np.array([dy, dx])


def _register(f_ref: np.ndarray, image: np.ndarray, upsample: int) -> np.ndarray:
    """Drift of one image against the reference's feature spectrum, refined once.

    The gradient magnitude is non-linear, so for a fractional shift it is not exactly
    the shifted feature (aliasing, 0.03-0.1 px error in the tests); moving the image
    back by the first estimate (cubic spline) and measuring the small remainder
    removes most of that bias (to ~0.03 px).
    """
    from scipy import ndimage

    drift = _phase_correlate(f_ref, _feature(image), upsample)
    if upsample > 1:
        img = np.asarray(image, dtype=np.float64)
        finite = np.isfinite(img)
        if finite.any() and not finite.all():
            img = np.where(finite, img, img[finite].mean())
        back = ndimage.shift(img, -drift, order=3, mode="nearest")
        drift = drift + _phase_correlate(f_ref, _feature(back), upsample)
    return drift


def _images(stack):
    """Yield the energy images as numpy arrays; a dask stack is computed one energy chunk at a time."""
    if is_dask(stack):
        start = 0
        for size in stack.chunks[0]:
            block = np.asarray(stack[start : start + size].compute())
            start += size
            yield from block
    else:
        yield from np.asarray(stack)


def _default_reference(stack, energies: np.ndarray) -> int:
    """An image above the edge (steepest change of the mean intensity) with the most structure."""
    strength, means = [], []
    for img in _images(stack):
        strength.append(np.sqrt(np.mean(_feature(img) ** 2)))
        finite = np.isfinite(img)
        means.append(img[finite].mean() if finite.any() else np.nan)
    strength, means = np.array(strength), np.array(means)
    if means.size >= 3 and np.all(np.isfinite(means)):
        e0 = energies[int(np.argmax(np.abs(np.gradient(means, energies))))]
        above = np.flatnonzero(energies > e0)
        if above.size:
            return int(above[np.argmax(strength[above])])
    return int(np.argmax(strength))


#: A measured drift beyond this fraction of the image size means registration failed.
MAX_DRIFT_FRACTION = 0.1


def measure_drift(stack, energies, *, reference_index: int | None = None, upsample: int = 10) -> np.ndarray:
    """Sub-pixel drift of every energy image relative to a reference image.

    Parameters
    ----------
    stack : ndarray or dask array, shape (E, M, N)
        Images (absorbance or counts); NaN allowed (filled with the image mean).
    energies : ndarray, shape (E,)
        Energies (eV); used to pick the default reference above the edge.
    reference_index : int, optional
        Index of the reference image; default: among images above the edge (the
        steepest change of the mean intensity), the one with the most structure.
    upsample : int
        Sub-pixel refinement factor (1: whole pixels).

    Returns
    -------
    drift : ndarray, shape (E, 2), float64
        (dy, dx) in pixels: image i = reference moved by +drift[i]; 0 at the reference.

    Raises
    ------
    ValueError
        Stack not 3-D, energies of the wrong length, bad reference_index or upsample;
        or more than half the images drift beyond ``MAX_DRIFT_FRACTION`` of the image
        size (too little structure to register). Fewer such images (a featureless
        pre-edge image, an empty end energy) get the drift interpolated from their
        neighbours in energy.

    Notes
    -----
    Phase correlation of gradient-magnitude images (sign-free, so contrast inverting
    across the edge does not matter), peak refined by a matrix-multiply DFT on a
    1/upsample grid within +-1 px of the integer peak (Guizar-Sicairos et al. 2008)
    plus a parabola; then the image is moved back by that estimate and the small
    remainder measured again, which cancels the bias of the non-linear feature. Every image is matched directly to the one reference rather than
    chained to its neighbour: chaining adds the errors of all steps (a random walk),
    direct matching does not, and the sign-free features keep the reference valid
    over the whole scan.

    Examples
    --------
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> scene = ndimage.gaussian_filter(rng.random((64, 64)), 2)
    >>> stack = np.stack([scene, ndimage.shift(scene, (1.5, -2.0), order=3, mode="wrap")])
    >>> drift = measure_drift(stack, np.array([7100.0, 7200.0]), reference_index=0)
    >>> np.round(drift[1], 1).tolist()
    [1.5, -2.0]
    """
    _check_stack(stack, energies)
    energies = np.asarray(energies, dtype=np.float64)
    e = stack.shape[0]
    if reference_index is not None and not -e <= int(reference_index) < e:
        raise ValueError(f"reference_index {reference_index} is outside the stack's {e} energies")
    if int(upsample) != upsample or upsample < 1:
        raise ValueError(f"upsample must be a positive integer, got {upsample!r}")
    # one image in memory at a time (two passes when the reference is chosen here)
    if reference_index is None:
        reference_index = _default_reference(stack, energies)
    reference_index = int(reference_index) % e
    f_ref = np.fft.fft2(_feature(np.asarray(stack[reference_index])))
    drift = np.array([_register(f_ref, img, int(upsample)) for img in _images(stack)])
    drift[reference_index] = 0.0
    limit = MAX_DRIFT_FRACTION * min(stack.shape[1:])
    wild = np.abs(drift).max(axis=1) > limit
    if wild.sum() * 2 > e:
        raise ValueError(
            f"registration found drifts up to {np.abs(drift).max():.0f} px (more than "
            f"{MAX_DRIFT_FRACTION:.0%} of the image) at {wild.sum()} of {e} energies: the images carry "
            "too little structure to register; map without drift correction"
        )
    if wild.any():  # featureless images (a flat pre-edge, an empty end energy): from their neighbours
        index = np.arange(e)
        drift[wild] = np.column_stack([np.interp(index[wild], index[~wild], axis) for axis in drift[~wild].T])
    return drift


def _shift_images(block: np.ndarray, drift: np.ndarray, start: int, out_dtype) -> np.ndarray:
    from scipy import ndimage

    out = np.empty(block.shape, out_dtype)
    for k in range(block.shape[0]):
        out[k] = ndimage.shift(
            np.asarray(block[k], dtype=out_dtype), -drift[start + k], order=1,
            mode="constant", cval=np.nan, prefilter=False,
        )
    return out


def _shift_block(block: np.ndarray, *, drift: np.ndarray, out_dtype, block_info=None):
    start = block_info[0]["array-location"][0][0]
    return _shift_images(block, drift, start, out_dtype)


def correct_drift(stack, drift):
    """Move every energy image back by its drift.

    Parameters
    ----------
    stack : ndarray or dask array, shape (E, M, N)
    drift : ndarray, shape (E, 2)
        (dy, dx) pixels, as from :func:`measure_drift`.

    Returns
    -------
    ndarray or dask array, shape (E, M, N)
        Same kind as ``stack``; float32 stays float32 (integers become float32);
        NaN where a pixel's source lies outside the image.

    Raises
    ------
    ValueError
        Stack not 3-D or drift not (E, 2) finite.

    Notes
    -----
    Bilinear interpolation (``scipy.ndimage.shift``, order 1), so a NaN spreads to
    at most its neighbours. Dask stacks are shifted lazily one energy image per
    block (a shift needs the whole image) and rechunked back to the input chunks.

    Examples
    --------
    >>> img = np.zeros((1, 5, 5), np.float32); img[0, 2, 2] = 1
    >>> out = correct_drift(img, np.array([[1.0, 0.0]]))
    >>> float(out[0, 1, 2]), bool(np.isnan(out[0, 4, 2]))
    (1.0, True)
    """
    _check_stack(stack)
    drift = np.asarray(drift, dtype=np.float64)
    if drift.shape != (stack.shape[0], 2):
        raise ValueError(
            f"drift has shape {drift.shape} but the stack has {stack.shape[0]} energies:"
            f" expected ({stack.shape[0]}, 2)"
        )
    if not np.isfinite(drift).all():
        raise ValueError(f"drift has {int((~np.isfinite(drift)).sum())} non-finite values")
    dtype = np.result_type(stack.dtype, np.float32)
    if is_dask(stack):
        chunks = stack.chunks
        per_image = stack.rechunk((1, -1, -1))
        out = per_image.map_blocks(
            _shift_block, drift=drift, out_dtype=dtype, dtype=dtype, meta=np.empty((0, 0, 0), dtype)
        )
        return out.rechunk(chunks)
    return _shift_images(np.asarray(stack), drift, 0, dtype)


def drift_report(drift) -> dict:
    """Summary of a drift series for report.json.

    Parameters
    ----------
    drift : ndarray, shape (E, 2)
        (dy, dx) pixels.

    Returns
    -------
    dict
        ``max`` and ``rms`` of the drift magnitude (px), ``max_dy``/``max_dx`` (largest
        absolute component, px), ``n_images``.

    Examples
    --------
    >>> drift_report(np.array([[0.0, 0.0], [3.0, 4.0]]))["max"]
    5.0
    """
    drift = np.asarray(drift, dtype=np.float64)
    if drift.ndim != 2 or drift.shape[1] != 2:
        raise ValueError(f"drift must have shape (E, 2) but has shape {drift.shape}")
    mag = np.hypot(drift[:, 0], drift[:, 1])
    return {
        "max": float(mag.max()) if mag.size else 0.0,
        "rms": float(np.sqrt(np.mean(mag**2))) if mag.size else 0.0,
        "max_dy": float(np.abs(drift[:, 0]).max()) if mag.size else 0.0,
        "max_dx": float(np.abs(drift[:, 1]).max()) if mag.size else 0.0,
        "n_images": int(drift.shape[0]),
    }
