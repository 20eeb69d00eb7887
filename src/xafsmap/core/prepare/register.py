"""Image-to-image drift across energies: the sample moving during the scan.

Convention: ``drift[i] = (dy, dx)`` (pixels) means image ``i`` is the reference image
moved by ``+dy`` rows and ``+dx`` columns, ``image_i(y, x) = reference(y - dy, x - dx)``;
:func:`correct_drift` moves it back by ``-drift[i]``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._arrays import is_dask

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


def _fill(image) -> np.ndarray:
    """A float32 copy with the non-finite pixels set to the mean of the others (0 if none)."""
    img = np.array(image, dtype=np.float32)
    finite = np.isfinite(img)
    if not finite.all():
        img[~finite] = img[finite].mean() if finite.any() else 0.0
    return img


def _feature(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a lightly smoothed (filled, float32) image.

    Across an absorption edge the contrast between phases changes size and even sign,
    but the boundaries and the texture stay where they are: the gradient magnitude
    keeps them and drops the sign, so every energy can be matched to one reference.
    """
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


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # einsum for small products: threaded BLAS on a busy machine spends far longer
    # waking threads (seen: 20x) than computing them; BLAS for large ones (45 ms -> 2 ms
    # for a 1024 x 1024 window)
    return a @ b if a.size * b.shape[-1] > 2**20 else np.einsum("ij,jk->ik", a, b)


def _upsampled_dft(spectrum: np.ndarray, shape: tuple, centre: np.ndarray, upsample: int, half: float):
    """Cross-correlation at offsets centre + j/upsample, |j/upsample| <= half, by matrix DFT.

    ``spectrum`` is the half (``rfft2``) spectrum of a real (m, n) correlation: each
    column but the zero and Nyquist ones stands for itself and its conjugate, so it
    counts twice in the real part.
    """
    m, n = shape
    k = int(np.ceil(half * upsample))
    offs = np.arange(-k, k + 1) / upsample
    ky, kx = np.fft.fftfreq(m), np.fft.rfftfreq(n)
    weight = np.full(kx.size, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    # single precision like the spectrum: complex128 doubles the time and changed no drift in the tests
    ey = np.exp(2j * np.pi * np.outer(centre[0] + offs, ky)).astype(spectrum.dtype)  # (P, m)
    ex = (weight[:, None] * np.exp(2j * np.pi * np.outer(kx, centre[1] + offs))).astype(spectrum.dtype)  # (n//2+1, P)
    return _product(_product(ey, spectrum), ex).real.astype(np.float64), offs


def _parabola(y0: float, y1: float, y2: float) -> float:
    den = y0 - 2.0 * y1 + y2
    return 0.0 if den >= 0 else float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))


def _phase_correlate(f_ref: np.ndarray, feat: np.ndarray, upsample: int, *, near_zero: bool = False) -> np.ndarray:
    """(dy, dx) with feat(y, x) ~ ref(y - dy, x - dx): phase correlation, then upsampled refinement.

    ``f_ref`` is the complex conjugate of the reference feature's ``rfft2``; float32
    transforms (``scipy.fft`` keeps single precision). ``near_zero``: the drift is
    known to lie within 1 px of 0 (the remainder after moving the image back), so
    the whole-pixel correlation is skipped. NaN when the image has no structure at all.
    """
    import scipy.fft

    f_img = scipy.fft.rfft2(feat)
    cross = f_img * f_ref
    mag = np.abs(cross)
    top = float(mag.max())
    if not top > 0:
        return np.full(2, np.nan)
    # whitening sharpens the peak; the floor keeps empty frequencies from adding noise
    cross /= mag + np.float32(1e-2 * top)
    if near_zero and upsample > 1:
        peak = np.zeros(2)
    else:
        corr = scipy.fft.irfft2(cross, s=feat.shape)
        at = np.argmax(corr)
        # an image without structure correlates with the reference like noise: its
        # highest value is ~5 standard deviations (4-6 in the tests), a match's 10-200
        spread = float(corr.std(dtype=np.float64))
        if not corr.flat[at] - corr.mean(dtype=np.float64) >= MIN_PEAK * spread:
            return np.full(2, np.nan)
        peak = np.array(np.unravel_index(at, corr.shape), dtype=np.float64)
        size = np.array(corr.shape)
        peak = np.where(peak > size // 2, peak - size, peak)
    if upsample <= 1:
        return peak
    up, offs = _upsampled_dft(cross, feat.shape, peak, upsample, 1.0)
    i, j = np.unravel_index(np.argmax(up), up.shape)
    step = 1.0 / upsample
    dy = offs[i] + (step * _parabola(up[i - 1, j], up[i, j], up[i + 1, j]) if 0 < i < up.shape[0] - 1 else 0.0)
    dx = offs[j] + (step * _parabola(up[i, j - 1], up[i, j], up[i, j + 1]) if 0 < j < up.shape[1] - 1 else 0.0)
    return peak + np.array([dy, dx])


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
    drift = _phase_correlate(f_ref, _window_feature(padded, window), upsample)
    if upsample > 1 and np.isfinite(drift).all():
        back = _move_back(padded, drift)
        drift = drift + _phase_correlate(f_ref, _window_feature(back, window), upsample, near_zero=True)
    return drift


def _compute(part) -> np.ndarray:
    """A numpy part of the stack; a dask part computed in this thread: a few tasks per
    image region, for which the threaded scheduler's hand-offs cost more than the
    reads (55 vs 34 ms for 1056 rows of a 4000 x 1700 TIFF page in 96 row bands)."""
    return np.asarray(part.compute(scheduler="synchronous") if is_dask(part) else part)


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
        return np.pad(_fill(part), pad, mode="edge")


def _read_images(stack, rows: slice, cols: slice):
    """Yield ``(i, stack[i, rows, cols])`` as numpy arrays for every image, in energy order.

    A dask stack is computed ``_GROUP`` images at a time (a read costs per task, i.e.
    per chunk under the part, about as much for two images as for one: 31 vs 16 ms per
    image for 1056 rows of a 4000 x 1700 TIFF in 11-row bands) and in a second thread
    while the caller works on the previous group: at most 2 * ``_GROUP`` parts in
    memory. One indexing per read: a chained ``stack[i][rows, cols]`` is not fused into
    the read and computes whole images.
    """
    e = stack.shape[0]
    if not is_dask(stack):
        for i in range(e):
            yield i, np.asarray(stack[i, rows, cols])
        return
    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(_compute, stack[0:_GROUP, rows, cols])
        for start in range(0, e, _GROUP):
            part = pending.result()
            if start + _GROUP < e:
                pending = reader.submit(_compute, stack[start + _GROUP : start + 2 * _GROUP, rows, cols])
            yield from enumerate(part, start)


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


def _default_reference(stack, energies: np.ndarray, region: _Region) -> int:
    """An image above the edge (steepest change of the mean intensity) with the most
    structure, judged on ``region`` of each image (read one image at a time)."""
    strength, means = [], []
    for _, img in _read_images(stack, slice(region.r0, region.r1), slice(region.c0, region.c1)):
        img = img.astype(np.float32, copy=False)
        finite = np.isfinite(img)
        means.append(img[finite].mean(dtype=np.float64) if finite.any() else np.nan)
        feat = _feature(_fill(img))
        strength.append(np.std(feat, dtype=np.float64))
    strength, means = np.array(strength), np.array(means)
    if means.size >= 3 and np.all(np.isfinite(means)):
        e0 = energies[int(np.argmax(np.abs(np.gradient(means, energies))))]
        above = np.flatnonzero(energies > e0)
        if above.size:
            return int(above[np.argmax(strength[above])])
    return int(np.argmax(strength))


#: A measured drift beyond this fraction of the registered region means registration failed.
MAX_DRIFT_FRACTION = 0.1
#: ... and so does a correlation peak lower than this many standard deviations of the
#: whole-pixel correlation above its mean.
MIN_PEAK = 8.0
#: Largest side (px) of the region registered by default (``max_size``).
MAX_SIZE = 1024
#: Pixels read around the region: the second pass moves the image back by the first
#: estimate, and a drift within the margin brings in real pixels, not repeated edges.
_MARGIN = 16
#: Images whose regions are read together.
_GROUP = 2


def measure_drift(stack, energies, *, reference_index: int | None = None, upsample: int = 10,
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
        structure to register): a correlation peak lower than ``MIN_PEAK`` (8) standard
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
    read, the next read overlapping the current registration; float32 transforms
    (``scipy.fft``). A 4000 x 1700 x 210 TIFF stack (5.7 GB) takes 28 s with 0.32 GB
    peak memory on 2 cores, the whole-image version took 16 min and 11.9 GB
    (``benchmarks/drift.py``, docs/performance.md).

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
    if m > size or n > size:  # the whole reference image, once, to place the region
        whole = _compute(stack[reference_index])
        region = _busiest_region(_fill(whole), size)
        reference = region.pad(whole[region.bounds])
        del whole
    else:
        region = _Region((m, n), 0, 0, size)
        reference = region.pad(_compute(stack[(reference_index, *region.bounds)]))
    import scipy.fft

    f_ref = np.conj(scipy.fft.rfft2(_window_feature(reference, region.window)))
    drift = np.zeros((e, 2))
    for i, part in _read_images(stack, *region.bounds):
        if i != reference_index:
            drift[i] = _register(f_ref, region.pad(part), region.window, int(upsample))
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


def _sampling(index: np.ndarray, offset: float, length: int):
    """Bilinear sampling along one axis, exactly as ``scipy.ndimage.shift(order=1, mode="constant")``.

    Output position ``k`` (whole-image index) takes the source at ``k + offset``:
    the two source indices, their weights and whether the source lies inside
    ``[0, length - 1]``. Same double-precision steps as scipy's ``NI_ZoomShift``
    (``cc = k + offset``, ``w0 = 1 - (cc - floor(cc))``, ``w1 = 1 - w0``; an index
    past the last pixel reflected to ``length - 2`` with weight 0), so the result is
    bit-identical to scipy's on the whole image, whatever part of it is computed.
    """
    cc = index.astype(np.float64) + offset
    inside = (cc >= 0.0) & (cc <= length - 1)
    cc = np.where(inside, cc, 0.0)
    low = np.floor(cc)
    w0 = 1.0 - (cc - low)
    first = low.astype(np.intp)
    second = first + 1
    second[second >= length] = max(length - 2, 0)
    return first, second, w0, 1.0 - w0, inside


def _shift_region(region: np.ndarray, drift: np.ndarray, *, origin: tuple, rows: np.ndarray,
                  cols: np.ndarray, shape: tuple, dtype) -> np.ndarray:
    """Rows ``rows`` and columns ``cols`` (whole-image indices) of each image moved back by its drift.

    ``region`` (E, R, C) holds whole-image pixels ``origin[0]:origin[0] + R``,
    ``origin[1]:origin[1] + C`` of images of ``shape``; it must cover every source
    pixel of the wanted output. One image at a time: float64 temporaries stay small.
    """
    out = np.empty((region.shape[0], rows.size, cols.size), dtype)
    for k in range(region.shape[0]):
        y0, y1, wy0, wy1, in_y = _sampling(rows, drift[k, 0], shape[0])
        x0, x1, wx0, wx1, in_x = _sampling(cols, drift[k, 1], shape[1])
        # local indices; positions whose source is outside the image read pixel 0
        y0, y1 = (np.where(in_y, i - origin[0], 0) for i in (y0, y1))
        x0, x1 = (np.where(in_x, i - origin[1], 0) for i in (x0, x1))
        for index, size in ((y0, region.shape[1]), (y1, region.shape[1]), (x0, region.shape[2]),
                            (x1, region.shape[2])):
            if index.size and (index.min() < 0 or index.max() >= size):  # a margin too small: a bug
                raise ValueError(f"drift correction needs source pixels {index.min()}..{index.max()} "
                                 f"of a block of {size}")
        # what scipy reads: the image cast to the output type, then summed in double
        image = np.asarray(region[k], dtype=dtype).astype(np.float64)
        top, bottom = image[y0], image[y1]
        wy0, wy1 = wy0[:, None], wy1[:, None]
        # scipy's order of operations: t = 0; t += (pixel * wy) * wx over the 2 x 2
        total = (top[:, x0] * wy0) * wx0 + 0.0
        total += (top[:, x1] * wy0) * wx1
        total += (bottom[:, x0] * wy1) * wx0
        total += (bottom[:, x1] * wy1) * wx1
        out[k] = total
        out[k, ~in_y] = np.nan
        out[k][:, ~in_x] = np.nan
    return out


def _correct_parts(parts: list, *, drift: np.ndarray, origin: tuple, rows: tuple, cols: tuple, shape: tuple,
                   dtype) -> np.ndarray:
    """One output block from the input pieces around it (a nested list, rows by columns)."""
    region = parts[0][0] if len(parts) == 1 and len(parts[0]) == 1 else np.block(parts)
    return _shift_region(region, drift, origin=origin, rows=np.arange(*rows), cols=np.arange(*cols),
                         shape=shape, dtype=dtype)


def _margin(drift: np.ndarray) -> int:
    """Source pixels beyond a block that a bilinear move by at most ``max |drift|`` reads."""
    return int(np.ceil(np.abs(drift).max(initial=0.0))) + 1


def _overlapping(edges: np.ndarray, lo: int, hi: int) -> range:
    """Indices of the chunks (boundaries ``edges``) that hold some of ``lo:hi``."""
    return range(int(np.searchsorted(edges, lo, side="right")) - 1, int(np.searchsorted(edges, hi, side="left")))


def _correct_lazy(stack, drift: np.ndarray, dtype):
    """Each output block from its input pixels plus the margin around them, same chunks.

    Every block's task takes its own slice of each input chunk it needs (a plain
    ``getitem`` task on that chunk): when one band is computed, a neighbour's chunk
    feeds only that slice, and dask then fuses the slice into the chunk's read, so only
    the margin rows of the neighbours are read. ``dask.array.overlap`` reads the
    neighbouring chunks whole; slicing the dask array per block instead is defeated by
    HighLevelGraph culling, which can keep every slice of a layer when the number of
    keys it looks for happens to equal the layer's size.
    """
    from functools import partial

    import dask.array as da
    from dask.array.chunk import getitem  # the getitem dask fuses into the chunk's read
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    _, rows, cols = stack.shape
    margin = (_margin(drift[:, 0]), _margin(drift[:, 1]))
    edges = [np.cumsum((0, *c)) for c in stack.chunks]
    name = f"correct_drift-{tokenize(stack.name, drift, dtype)}"
    graph = {}
    for i, (e0, e1) in enumerate(zip(edges[0][:-1], edges[0][1:])):
        for j, (r0, r1) in enumerate(zip(edges[1][:-1], edges[1][1:])):
            lo, hi = max(0, r0 - margin[0]), min(rows, r1 + margin[0])
            for k, (c0, c1) in enumerate(zip(edges[2][:-1], edges[2][1:])):
                left, right = max(0, c0 - margin[1]), min(cols, c1 + margin[1])
                parts = []
                for jj in _overlapping(edges[1], lo, hi):
                    line = []
                    for kk in _overlapping(edges[2], left, right):
                        piece = (name + "-part", i, j, k, jj, kk)
                        graph[piece] = (getitem, (stack.name, i, jj, kk), (
                            slice(None),
                            slice(max(lo, edges[1][jj]) - edges[1][jj], min(hi, edges[1][jj + 1]) - edges[1][jj]),
                            slice(max(left, edges[2][kk]) - edges[2][kk], min(right, edges[2][kk + 1]) - edges[2][kk]),
                        ))
                        line.append(piece)
                    parts.append(line)
                block = partial(_correct_parts, drift=drift[e0:e1], origin=(int(lo), int(left)),
                                rows=(int(r0), int(r1)), cols=(int(c0), int(c1)), shape=(rows, cols), dtype=dtype)
                graph[(name, i, j, k)] = (block, parts)
    layers = HighLevelGraph.from_collections(name, graph, dependencies=[stack])
    return da.Array(layers, name, chunks=stack.chunks, meta=np.empty((0, 0, 0), dtype))


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
        Same kind as ``stack`` (a dask array keeps its chunks); float32 stays float32
        (integers become float32); NaN where a pixel's source lies outside the image.

    Raises
    ------
    ValueError
        Stack not 3-D or drift not (E, 2) finite.

    Notes
    -----
    Bilinear interpolation: the result is bit-identical to
    ``scipy.ndimage.shift(image, -drift[i], order=1, mode="constant", cval=nan)``
    (same weights from the whole-image coordinates, same double-precision sums), so
    a NaN spreads to at most its neighbours (up and left by one pixel even at a
    whole-pixel drift, where its weight is 0, as in scipy). A dask stack is corrected
    lazily block by block (the output keeps the input's chunks), each block from
    its own input pixels plus ``ceil(max |drift|) + 1`` rows and columns of its
    neighbours, so a block reads only the raw rows under it plus that margin, not the
    whole stack; numpy and dask share the one implementation and give identical
    results.

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
        return _correct_lazy(stack, drift, dtype)
    stack = np.asarray(stack)
    _, rows, cols = stack.shape
    return _shift_region(stack, drift, origin=(0, 0), rows=np.arange(rows), cols=np.arange(cols),
                         shape=(rows, cols), dtype=dtype)


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
