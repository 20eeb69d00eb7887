"""Preparing a stack, lazily and in the order that is valid: drift, energy calibration, region, binning.

:func:`prepare_stack` records each call on the stack it returns (:class:`Preparation`),
so a cluster worker can redo it from the files; :func:`prepare_measurement` adds what
report.json says about it. The grid itself (region, binning) is :mod:`~xafsmap.core.prepare.grid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .grid import bin_stack, crop_stack, grid_of

# a ShiftMap (.shiftmap) is typed Any here: .shiftmap imports this module, and a type-only
# import back would close an import cycle (tests/test_architecture.py)
if TYPE_CHECKING:
    from ..io.stack import Stack

__all__ = ["Preparation", "calibrated_energies", "prepare_measurement", "prepare_stack"]


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


def prepare_stack(stack: Stack, *, drift: np.ndarray | None = None, shift: np.ndarray | None = None,
                  roi: tuple[int, int, int, int] | None = None, factor: int = 1) -> tuple[Stack, dict]:
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
        from .drift import correct_drift

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


def calibrated_energies(energies: np.ndarray, shift: np.ndarray) -> np.ndarray:
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


def prepare_measurement(stack: Stack, *, shift_map: Any = None, register: bool = False,
                        drift: np.ndarray | None = None, roi: tuple[int, int, int, int] | None = None, factor: int = 1,
                        calibration: dict | None = None) -> tuple[Stack, dict]:
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
        from .drift import drift_report

        extra["drift"] = dict(drift_report(drift), per_energy=np.asarray(drift).tolist())
    shift = None if shift_map is None else shift_map.shift
    prepared, extra["grid"] = prepare_stack(stack, drift=drift, shift=shift, roi=roi, factor=factor)
    if shift_map is not None:
        rms = shift_map.residual_rms
        extra["calibration"] = {**(calibration or {}), "residual_rms_eV": rms if rms == rms else None,
                                "model": shift_map.model}
    return prepared, extra
