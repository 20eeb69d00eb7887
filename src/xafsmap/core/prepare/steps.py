"""Region of interest and neighbour binning, for numpy or dask stacks (E, M, N).

Both keep the energy axis whole and never read pixel data of a lazy stack: cropping is a
slice, binning a blockwise mean. Maps made from a cropped or binned stack are in that
stack's grid; :func:`grid_of` describes it for report.json.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .._arrays import is_dask

__all__ = ["Preparation", "bin_stack", "calibrated_energies", "crop_stack", "grid_of", "prepare_measurement",
           "prepare_stack"]


@dataclass(frozen=True, eq=False)
class Preparation:
    """One :func:`prepare_stack` call, recorded on the stack it returns (``Stack.preparation``).

    With it a dask.distributed worker re-reads the files and redoes the same
    preparation (:mod:`xafsmap.core.mapping.parallel`).

    Attributes
    ----------
    energies : ndarray, shape (E,), float64
        Energies (eV) of the stack it was applied to.
    drift, shift, roi, factor
        :func:`prepare_stack`'s arguments, as given.
    """

    energies: np.ndarray
    drift: object = None
    shift: object = None
    roi: tuple | None = None
    factor: int = 1


def crop_stack(data, roi):
    """Crop a stack to ``roi = (row_start, row_stop, col_start, col_stop)`` (pixels).

    Parameters
    ----------
    data : array_like, shape (E, M, N)
    roi : sequence of 4 int
        Half-open pixel ranges, as Python slices; stops beyond the image are refused.

    Returns
    -------
    array_like, shape (E, row_stop - row_start, col_stop - col_start)
        A view (numpy) or a lazy slice (dask).

    Examples
    --------
    >>> crop_stack(np.zeros((3, 10, 20)), (2, 6, 5, 15)).shape
    (3, 4, 10)
    """
    r0, r1, c0, c1 = (int(v) for v in roi)
    _, rows, cols = data.shape
    if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
        raise ValueError(
            f"region rows {r0}:{r1}, columns {c0}:{c1} does not fit in the {rows} x {cols} image"
        )
    return data[:, r0:r1, c0:c1]


def bin_stack(data, factor: int):
    """Average ``factor x factor`` neighbouring pixels (NaN-aware), for signal to noise.

    Parameters
    ----------
    data : array_like, shape (E, M, N)
    factor : int
        Bin size; rows and columns that do not fill a whole bin at the bottom and
        right edges are dropped.

    Returns
    -------
    array_like, shape (E, M // factor, N // factor), float32
        A pixel whose neighbours are all NaN at an energy stays NaN there; a dead
        pixel among live ones is left out of the mean.

    Examples
    --------
    >>> bin_stack(np.arange(16.0).reshape(1, 4, 4), 2)[0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"bin factor must be a positive whole number, got {factor}")
    if factor == 1:
        return data
    n_energies, rows, cols = data.shape
    if rows < factor or cols < factor:
        raise ValueError(f"cannot bin a {rows} x {cols} image by {factor}")
    if is_dask(data):
        import dask.array as da

        chunks = (-1, max(factor, data.chunksize[1] // factor * factor), -1)
        trimmed = data[:, : rows // factor * factor, : cols // factor * factor].rechunk(chunks)
        return da.map_blocks(_bin_block, trimmed, factor, dtype=np.float32,
                             chunks=(n_energies, tuple(c // factor for c in trimmed.chunks[1]),
                                     (cols // factor,)),
                             meta=np.empty((0, 0, 0), np.float32))
    return _bin_block(np.asarray(data), factor)


def _bin_block(block: np.ndarray, factor: int) -> np.ndarray:
    n_energies, rows, cols = block.shape
    rows, cols = rows // factor * factor, cols // factor * factor
    view = block[:, :rows, :cols].reshape(n_energies, rows // factor, factor, cols // factor, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins stay NaN
        return np.nanmean(view, axis=(2, 4)).astype(np.float32)


def grid_of(shape, *, roi=None, factor: int = 1) -> dict:
    """The output grid of a crop then bin of an image of ``shape`` (rows, columns)."""
    rows, cols = shape
    r0, r1, c0, c1 = roi if roi is not None else (0, rows, 0, cols)
    return {
        "source_shape": [int(rows), int(cols)],
        "roi": [int(r0), int(r1), int(c0), int(c1)],
        "bin": int(factor),
        "shape": [int((r1 - r0) // factor), int((c1 - c0) // factor)],
    }


def prepare_stack(stack, *, drift=None, shift=None, roi=None, factor: int = 1):
    """Correct, calibrate, crop and bin a stack, lazily, in the order that is valid.

    Drift correction first (images must overlay before a pixel has a spectrum), then
    the per-pixel energy calibration (the shift map is in the detector's full grid;
    the energies at either end that some pixel no longer covers are dropped), then
    the region of interest, then binning.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
    drift : ndarray, shape (E, 2), optional
        Image drift (dy, dx) per energy from :func:`~xafsmap.core.prepare.register.measure_drift`.
    shift : ndarray, shape (M, N), optional
        Energy shift map (true energy = nominal + shift), eV.
    roi : (int, int, int, int), optional
        ``(row_start, row_stop, col_start, col_stop)`` in the full grid.
    factor : int
        Bin size.

    Returns
    -------
    stack : Stack
        The prepared stack (same sources; energies trimmed by the calibration), which
        records this call in ``preparation`` (:class:`Preparation`).
    grid : dict
        :func:`grid_of` of the result, plus what was applied.
    """
    from dataclasses import replace

    data, energies = stack.data, stack.energies
    shape = tuple(data.shape[1:])
    if drift is not None:
        from .register import correct_drift

        data = correct_drift(data, drift)
    if shift is not None:
        from .resample import apply_shift

        if tuple(np.shape(shift)) != shape:
            raise ValueError(f"shift map is {np.shape(shift)} pixels but the stack's images are {shape}")
        data = apply_shift(data, energies, shift)
        keep = calibrated_energies(energies, shift)
        if keep.size < 10:
            raise ValueError(
                f"after the energy shifts ({np.nanmin(shift):.2f} to {np.nanmax(shift):.2f} eV) only "
                f"{keep.size} energies are measured at every pixel"
            )
        data, energies = data[keep[0] : keep[-1] + 1], energies[keep[0] : keep[-1] + 1]
    if roi is not None:
        data = crop_stack(data, roi)
    data = bin_stack(data, factor)
    grid = grid_of(shape, roi=roi, factor=factor)
    grid.update(drift_corrected=drift is not None, energy_calibrated=shift is not None)
    if shift is not None:
        grid["energies_kept_eV"] = [float(energies[0]), float(energies[-1]), int(energies.size)]
    steps = stack.preparation
    if drift is not None or shift is not None or roi is not None or factor != 1:
        steps = (*steps, Preparation(np.asarray(stack.energies, dtype=np.float64), drift=drift, shift=shift,
                                     roi=roi, factor=factor))
    return replace(stack, data=data, energies=energies, preparation=steps), grid


def calibrated_energies(energies, shift) -> np.ndarray:
    """Indices of the energies every pixel still covers after an energy calibration.

    True energy E at a pixel needs ``E - shift`` within the measured range, so the
    energies at either end that some pixel no longer covers are dropped (they would be
    NaN there): what :func:`prepare_stack` keeps.

    Parameters
    ----------
    energies : ndarray, shape (E,)
        Nominal energies, eV.
    shift : ndarray, shape (M, N)
        Energy shift map (true energy = nominal + shift), eV; NaN is ignored.

    Returns
    -------
    ndarray of int
        Indices into ``energies``, consecutive.

    Examples
    --------
    >>> calibrated_energies(np.arange(7100.0, 7110.0), np.array([[-1.5, 0.5]])).tolist()
    [1, 2, 3, 4, 5, 6, 7]
    """
    energies = np.asarray(energies, dtype=np.float64)
    lo = energies[0] + float(np.nanmax(shift))
    hi = energies[-1] + float(np.nanmin(shift))
    return np.flatnonzero((energies >= lo - 1e-6) & (energies <= hi + 1e-6))


def prepare_measurement(stack, *, shift_map=None, register: bool = False, drift=None, roi=None, factor: int = 1,
                        calibration: dict | None = None):
    """:func:`prepare_stack` plus what report.json says about it (CLI and recipes).

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack
    shift_map : xafsmap.core.prepare.calibrate.ShiftMap, optional
        Energy calibration to apply.
    register : bool
        Correct the image drift across energies: ``drift`` (E, 2) if given (measured
        before, e.g. in the Prepare dock), else measured here.
    drift : ndarray, shape (E, 2), optional
    roi, factor
        Region of interest and bin size.
    calibration : dict, optional
        Where the shift map came from (``source``, ``reference``), for the report.

    Returns
    -------
    stack : Stack
        Prepared, lazily.
    extra : dict
        ``grid``, and ``drift`` (max, RMS, per energy) and ``calibration`` (source,
        reference, fit residual, model) when they apply.
    """
    extra = {}
    if not register:
        drift = None
    elif drift is None:
        from .register import measure_drift

        drift = measure_drift(stack.data, stack.energies)
    if drift is not None:
        from .register import drift_report

        extra["drift"] = dict(drift_report(drift), per_energy=np.asarray(drift).tolist())
    shift = None if shift_map is None else shift_map.shift
    prepared, extra["grid"] = prepare_stack(stack, drift=drift, shift=shift, roi=roi, factor=factor)
    if shift_map is not None:
        rms = shift_map.residual_rms
        extra["calibration"] = {**(calibration or {}), "residual_rms_eV": rms if rms == rms else None,
                                "model": shift_map.model}
    return prepared, extra
