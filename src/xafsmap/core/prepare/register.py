"""Image-to-image drift across energies: the sample moving during the scan.

Convention: ``drift[i] = (dy, dx)`` (pixels) means image ``i`` is the reference image
moved by ``+dy`` rows and ``+dx`` columns, ``image_i(y, x) = reference(y - dy, x - dx)``;
:func:`~xafsmap.core.prepare.drift.correct_drift` moves it back by ``-drift[i]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .imageparts import map_images, part_reader
from .phasecorr import phase_correlate

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["check_drift_stack", "measure_drift"]

#: Gaussian smoothing (px) before the gradient: suppresses pixel noise.
_FEATURE_SIGMA = 1.0


def check_drift_stack(stack: np.ndarray | da.Array, energies: ArrayLike | None = None) -> None:
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (E, M, N) but has shape {tuple(stack.shape)}")
    if energies is not None:
        energies = np.asarray(energies)
        if energies.ndim != 1 or energies.size != stack.shape[0]:
            raise ValueError(
                f"stack has {stack.shape[0]} energies but energies has shape {energies.shape}"
            )


def _fill(image) -> np.ndarray:
    """A float32 copy with the non-finite pixels set to the mean of the others (0 if none)."""
    img = np.array(image, dtype=np.float32)
    finite = np.isfinite(img)
    if not finite.all():
        img[~finite] = img[finite].mean() if finite.any() else 0.0
    return img


def _gaussian_weights(sigma: float) -> np.ndarray:
    """The centre and one half of scipy's Gaussian kernel (``truncate=4``), computed as scipy does."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return (phi / phi.sum())[radius:].copy()


def _compiled_feature():
    """The compiled feature (numba), or None without numba (the ``fast`` extra)."""
    try:
        from ._jit_drift import gradient_feature
    except ImportError:
        return None
    return gradient_feature


def _feature(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a lightly smoothed (filled, float32) image.

    Across an absorption edge the contrast between phases changes size and even sign,
    but the boundaries and the texture stay where they are: the gradient magnitude
    keeps them and drops the sign, so every energy can be matched to one reference.
    """
    compiled = _compiled_feature()
    if compiled is not None:  # the same bits, without the GIL (two images at once): 15 vs 34 ms
        out = np.empty(image.shape, np.float32)
        compiled(np.ascontiguousarray(image, dtype=np.float32), _gaussian_weights(_FEATURE_SIGMA), out)
        return out
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(image, _FEATURE_SIGMA, mode="nearest")
    # central differences as np.gradient, whose generality costs 3x; the first and last
    # row and column (one-sided there) lie in the margin around the registered region
    gy, gx = np.zeros_like(smooth), np.zeros_like(smooth)
    np.subtract(smooth[2:], smooth[:-2], out=gy[1:-1])
    np.subtract(smooth[:, 2:], smooth[:, :-2], out=gx[:, 1:-1])
    mag = np.hypot(gy, gx, out=gy)
    mag *= np.float32(0.5)
    return mag


def _window_feature(padded: np.ndarray, window: tuple) -> np.ndarray:
    """The mean-free feature of ``padded[window]``, smoothed with the pixels around it."""
    # no apodization window: a window fixed to the frame pulls the peak towards zero
    # shift (0.2-0.5 px in the tests); the mean-free gradient magnitude has only a
    # mild step at the periodic boundary
    mag = _feature(padded)[window]
    return mag - mag.mean(dtype=np.float64)



def _move_back(padded: np.ndarray, drift: np.ndarray) -> np.ndarray:
    """``padded`` moved by ``-drift`` (px): ``out(y, x) = padded(y + dy, x + dx)``.

    A Fourier shift (periodic) when the drift is within the margin around the window,
    so what wraps around stays in the margin; a cubic spline (edge pixels repeated)
    beyond it.
    """
    if np.abs(drift).max() > _MARGIN - 2:
        from scipy import ndimage

        return ndimage.shift(padded, -drift, order=3, mode="nearest")
    import scipy.fft

    m, n = padded.shape
    spectrum = scipy.fft.rfft2(padded)
    ramp_y = np.exp(2j * np.pi * drift[0] * np.fft.fftfreq(m)).astype(np.complex64)
    ramp_x = np.exp(2j * np.pi * drift[1] * np.fft.rfftfreq(n)).astype(np.complex64)
    spectrum *= ramp_y[:, None]
    spectrum *= ramp_x[None, :]
    return scipy.fft.irfft2(spectrum, s=padded.shape)


def _register(f_ref: np.ndarray, padded: np.ndarray, window: tuple, upsample: int) -> np.ndarray:
    """Drift of one (padded) image against the reference's feature spectrum, refined once.

    The gradient magnitude is non-linear, so for a fractional shift it is not exactly
    the shifted feature (aliasing, 0.03-0.1 px error in the tests); moving the image
    back by the first estimate and measuring the small remainder removes most of that
    bias (to ~0.03 px).
    """
    drift = phase_correlate(f_ref, _window_feature(padded, window), upsample)
    if upsample > 1 and np.isfinite(drift).all():
        back = _move_back(padded, drift)
        drift = drift + phase_correlate(f_ref, _window_feature(back, window), upsample, near_zero=True)
    return drift


def _register_all(stack, f_ref: np.ndarray, region: "_Region", reference_index: int, upsample: int):
    """Yield ``(i, drift)`` for every image but the reference, in energy order."""
    def register(part):
        return _register(f_ref, region.pad(part), region.window, upsample)

    yield from map_images(stack, *region.bounds, register, skip=reference_index)


class _Region:
    """Rows ``r0:r1`` and columns ``c0:c1`` of the images, read with ``_MARGIN`` around them."""

    def __init__(self, shape: tuple, r0: int, c0: int, size: int):
        m, n = shape
        self.shape = shape
        self.r0, self.c0 = r0, c0
        self.r1, self.c1 = min(m, r0 + size), min(n, c0 + size)

    @property
    def size(self) -> tuple:
        return self.r1 - self.r0, self.c1 - self.c0

    @property
    def window(self) -> tuple:
        """Where the region lies in a padded read."""
        return np.s_[_MARGIN : _MARGIN + self.size[0], _MARGIN : _MARGIN + self.size[1]]

    @property
    def bounds(self) -> tuple:
        """Rows and columns (slices) read: the region plus the margin, within the image."""
        m, n = self.shape
        return (slice(max(0, self.r0 - _MARGIN), min(m, self.r1 + _MARGIN)),
                slice(max(0, self.c0 - _MARGIN), min(n, self.c1 + _MARGIN)))

    def pad(self, part: np.ndarray) -> np.ndarray:
        """One image's read part (``bounds``) filled (float32, NaN set to the mean) and
        padded to the full margin: real pixels where the image has them, the edge pixels
        repeated beyond."""
        rows, cols = self.bounds
        pad = [(_MARGIN - (self.r0 - rows.start), _MARGIN - (rows.stop - self.r1)),
               (_MARGIN - (self.c0 - cols.start), _MARGIN - (cols.stop - self.c1))]
        filled = _fill(part)
        # np.pad copies even with nothing to add (a region inside the image): 4-6 ms
        return np.pad(filled, pad, mode="edge") if any(any(side) for side in pad) else filled


def _central_region(shape: tuple, size: int) -> _Region:
    m, n = shape
    return _Region(shape, max(0, (m - size) // 2), max(0, (n - size) // 2), size)


def _busiest_region(image: np.ndarray, size: int) -> _Region:
    """The size x size region of ``image`` (whole, filled) with the most structure:
    the largest sum of the squared mean-free feature, on a grid of size / 8 px steps."""
    m, n = image.shape
    if m <= size and n <= size:
        return _Region((m, n), 0, 0, size)
    feat = _feature(image).astype(np.float64)
    feat -= feat.mean()
    total = np.zeros((m + 1, n + 1))
    total[1:, 1:] = np.cumsum(np.cumsum(feat**2, axis=0), axis=1)
    h, w = min(m, size), min(n, size)
    step = max(1, size // 8)
    rows = np.unique(np.r_[np.arange(0, m - h + 1, step), m - h])
    cols = np.unique(np.r_[np.arange(0, n - w + 1, step), n - w])
    box = (total[rows[:, None] + h, cols[None, :] + w] - total[rows[:, None], cols[None, :] + w]
           - total[rows[:, None] + h, cols[None, :]] + total[rows[:, None], cols[None, :]])
    i, j = np.unravel_index(np.argmax(box), box.shape)
    return _Region((m, n), int(rows[i]), int(cols[j]), size)


def _mean_and_structure(image: np.ndarray) -> tuple:
    """The mean of an image's finite pixels and the spread (std) of its feature."""
    image = image.astype(np.float32, copy=False)
    finite = np.isfinite(image)
    mean = image[finite].mean(dtype=np.float64) if finite.any() else np.nan
    return mean, np.std(_feature(_fill(image)), dtype=np.float64)


def _default_reference(stack, energies: np.ndarray, region: _Region) -> int:
    """An image above the edge (steepest change of the mean intensity) with the most
    structure, judged on ``region`` of each image (read one image at a time, two
    judged at once)."""
    judged = [result for _, result in map_images(stack, slice(region.r0, region.r1),
                                                  slice(region.c0, region.c1), _mean_and_structure)]
    means, strength = np.array(judged).reshape(-1, 2).T
    if means.size >= 3 and np.all(np.isfinite(means)):
        e0 = energies[int(np.argmax(np.abs(np.gradient(means, energies))))]
        above = np.flatnonzero(energies > e0)
        if above.size:
            return int(above[np.argmax(strength[above])])
    return int(np.argmax(strength))


#: A measured drift beyond this fraction of the registered region means registration failed.
MAX_DRIFT_FRACTION = 0.1
#: Largest side (px) of the region registered by default (``max_size``).
MAX_SIZE = 1024
#: Pixels read around the region: the second pass moves the image back by the first
#: estimate, and a drift within the margin brings in real pixels, not repeated edges.
_MARGIN = 16


def measure_drift(stack: np.ndarray | da.Array, energies: ArrayLike, *, reference_index: int | None = None, upsample: int = 10,
                  max_size: int | None = MAX_SIZE) -> np.ndarray:
    """Sub-pixel drift of every energy image relative to a reference image.

    Parameters
    ----------
    stack : ndarray or dask array, shape (E, M, N)
        Images (absorbance or counts); NaN allowed (filled with the image mean). A dask
        stack is read one image region at a time, in energy order (never the stack).
    energies : ndarray, shape (E,)
        Energies (eV); used to pick the default reference above the edge.
    reference_index : int, optional
        Index of the reference image; default: among images above the edge (the
        steepest change of the mean intensity), the one with the most structure.
    upsample : int
        Sub-pixel refinement factor (1: whole pixels).
    max_size : int or None
        Largest side (px) of the region that is registered, default ``MAX_SIZE`` (1024).
        Images larger than that are registered on the ``max_size`` x ``max_size``
        region where the reference image has the most structure (the drift is one
        shift of the whole image); None registers whole images. At least 16.

    Returns
    -------
    drift : ndarray, shape (E, 2), float64
        (dy, dx) in pixels: image i = reference moved by +drift[i]; 0 at the reference.

    Raises
    ------
    ValueError
        Stack not 3-D, energies of the wrong length, bad reference_index, upsample or
        max_size; or registration fails at more than half the images (too little
        structure to register): a correlation peak lower than :data:`~xafsmap.core.prepare.phasecorr.MIN_PEAK` (8) standard
        deviations of the correlation, or a drift beyond ``MAX_DRIFT_FRACTION`` (10 %)
        of the registered region. Fewer such images (a featureless pre-edge image, an
        empty end energy) get the drift interpolated from their neighbours in energy.

    Notes
    -----
    Phase correlation of gradient-magnitude images (sign-free, so contrast inverting
    across the edge does not matter), peak refined by a matrix-multiply DFT on a
    1/upsample grid within +-1 px of the integer peak (Guizar-Sicairos et al. 2008)
    plus a parabola; then the image is moved back by that estimate (a Fourier shift of
    the region and the ``_MARGIN`` = 16 px read around it) and the small remainder
    measured again, which cancels the bias of the non-linear feature. Every image is
    matched directly to the one reference rather than chained to its neighbour:
    chaining adds the errors of all steps (a random walk), direct matching does not,
    and the sign-free features keep the reference valid over the whole scan.

    Large images: the drift is one shift of the whole image and a few pixels, so a
    region with structure measures it as well as the whole image. The default reference
    is chosen on the central ``max_size / 2`` region of every image; the region is then
    placed where the whole reference image (read once) has the most structure, and
    every image's region plus the margin is read once, in energy order, two images per
    read (from the file in one call per part when the dask stack is a file's chunks,
    one positioned read per TIFF page), the next read overlapping the registrations;
    two images are registered (or judged for the reference) at once (float32
    ``scipy.fft`` transforms, the feature compiled with numba, BLAS held to one thread:
    all without the GIL). A 4000 x 1700 x 210 TIFF stack (5.7 GB), read cold, took
    9.2 s (17 s of CPU) on 2 shared cores; through the dask chunks 23 s, the
    whole-image version 16 min and 11.9 GB (``benchmarks/drift.py``,
    ``benchmarks/register_zarr.py``, docs/performance.md).

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
    check_drift_stack(stack, energies)
    energies = np.asarray(energies, dtype=np.float64)
    e, m, n = stack.shape
    if reference_index is not None and not -e <= int(reference_index) < e:
        raise ValueError(f"reference_index {reference_index} is outside the stack's {e} energies")
    if int(upsample) != upsample or upsample < 1:
        raise ValueError(f"upsample must be a positive integer, got {upsample!r}")
    if max_size is not None and (int(max_size) != max_size or max_size < 16):
        raise ValueError(f"max_size must be an integer of at least 16 px (or None), got {max_size!r}")
    size = max(m, n) if max_size is None else int(max_size)
    if reference_index is None:
        # judged on the central half-size region: enough to rank structure, 4x cheaper
        reference_index = _default_reference(stack, energies, _central_region((m, n), max(16, size // 2)))
    reference_index = int(reference_index) % e
    read = part_reader(stack)
    if m > size or n > size:  # the whole reference image, once, to place the region
        whole = read(np.s_[reference_index : reference_index + 1, :, :])[0]
        region = _busiest_region(_fill(whole), size)
        reference = region.pad(whole[region.bounds])
        del whole
    else:
        region = _Region((m, n), 0, 0, size)
        reference = region.pad(read(np.s_[reference_index : reference_index + 1, region.bounds[0],
                                          region.bounds[1]])[0])
    import scipy.fft

    f_ref = np.conj(scipy.fft.rfft2(_window_feature(reference, region.window)))
    drift = np.zeros((e, 2))
    for i, measured in _register_all(stack, f_ref, region, reference_index, int(upsample)):
        drift[i] = measured
    limit = MAX_DRIFT_FRACTION * min(region.size)
    wild = ~(np.abs(drift).max(axis=1) <= limit)  # NaN: an image without any structure
    if wild.sum() * 2 > e:
        raise ValueError(
            f"registration failed at {wild.sum()} of {e} energies (no clear correlation peak, or a drift "
            f"beyond {MAX_DRIFT_FRACTION:.0%} of the registered {region.size[0]} x {region.size[1]} px): the "
            "images carry too little structure to register; map without drift correction"
        )
    if wild.any():  # featureless images (a flat pre-edge, an empty end energy): from their neighbours
        index = np.arange(e)
        drift[wild] = np.column_stack([np.interp(index[wild], index[~wild], axis) for axis in drift[~wild].T])
    return drift



