"""An energy-shift map inside the exploration, so the noise stays known.

``xafsmap map`` resamples every pixel onto the true energies while preparing the stack
(:func:`~xafsmap.core.prepare.prepare_stack`). Interpolated points are averages of two
measured ones: their noise is smaller and correlated with their neighbours', so a
noise model learned from a resampled stack is wrong (about half the variance on the
test stacks) and the component test, which assumes independent points, then counts
30-40 components in a stack of 4 phases. Exploration therefore takes the shift map
itself: the noise model and mask come from the measured (nominal-grid) data, the
sample's spectra are resampled with their variance propagated
(:func:`resample_spectra`: ``(1 - t)**2 v_j + t**2 v_{j+1}``), the component test uses
every other energy (two energies apart, interpolated points share no measured one),
and each band is resampled before it is reduced. Every map is on the true energies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..io.stack import Stack
    from ..prepare.shiftmap import ShiftMap

__all__ = ["calibrated_indices", "prepare_exploration", "resample_spectra"]


def calibrated_indices(energies: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Indices of the energies every pixel covers after its shift (true = nominal + shift).

    Raises
    ------
    ValueError
        If fewer than 10 energies are left.

    Examples
    --------
    >>> calibrated_indices(np.arange(7100.0, 7120.0), np.array([[-1.5, 0.5]]))[[0, -1]].tolist()
    [1, 17]
    """
    energies = np.asarray(energies, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    lo, hi = energies[0] + float(np.nanmax(shift)), energies[-1] + float(np.nanmin(shift))
    keep = np.flatnonzero((energies >= lo - 1e-6) & (energies <= hi + 1e-6))
    if keep.size < 10:
        raise ValueError(f"after the energy shifts ({np.nanmin(shift):.2f} to {np.nanmax(shift):.2f} eV) only "
                         f"{keep.size} energies are measured at every pixel")
    return keep


def resample_spectra(mu: np.ndarray, variance: np.ndarray, energies: np.ndarray, shift: np.ndarray,
                     keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spectra and the variance of their points on the true energies ``energies[keep]``.

    Parameters
    ----------
    mu, variance : ndarray, shape (E, P)
        Measured spectra and the variance of every point.
    energies : ndarray, shape (E,)
        Nominal energies.
    shift : ndarray, shape (P,)
        true = nominal + shift, eV.
    keep : ndarray of int
        :func:`calibrated_indices`.

    Returns
    -------
    mu, variance : ndarray, shape (len(keep), P), float32
        Linear interpolation, ``(1 - t) y_j + t y_{j+1}``, and ``(1 - t)**2 v_j + t**2 v_{j+1}``
        (the covariance of neighbouring points is not kept).

    Examples
    --------
    >>> e = np.arange(6.0)
    >>> m, v = resample_spectra(e[:, None], np.ones((6, 1)), e, np.array([-0.5]), np.arange(5))
    >>> m[:2, 0].tolist(), v[:2, 0].tolist()
    ([0.5, 1.5], [0.5, 0.5])
    """
    energies = np.asarray(energies, dtype=np.float64)
    query = energies[keep][:, None] - np.asarray(shift, dtype=np.float64)[None, :]  # nominal energy to read
    j = np.clip(np.searchsorted(energies, query, side="right") - 1, 0, energies.size - 2)
    t = (query - energies[j]) / (energies[j + 1] - energies[j])
    mu, variance = np.asarray(mu, dtype=np.float64), np.asarray(variance, dtype=np.float64)

    def take(values, index):
        return np.take_along_axis(values, index, axis=0)

    out = (1 - t) * take(mu, j) + t * take(mu, j + 1)
    var = (1 - t) ** 2 * take(variance, j) + t**2 * take(variance, j + 1)
    return out.astype(np.float32), var.astype(np.float32)


def prepare_exploration(stack: Stack, *, shift_map: ShiftMap | None = None, register: bool = False,
                        drift: np.ndarray | None = None, roi: tuple[int, int, int, int] | None = None, factor: int = 1,
                        calibration: dict | None = None) -> tuple[Stack, np.ndarray | None, dict]:
    """Prepare a stack as ``xafsmap map`` does, but hand back the shift map on its grid
    instead of resampling (see the module notes).

    The shift map (detector grid) is cropped and binned like the stack; a smooth shift
    averaged over a bin is the shift of the bin's centre.

    Parameters
    ----------
    stack : xafsmap.core.io.Stack
    shift_map : xafsmap.core.calibrate.ShiftMap, optional
    register, roi, factor, calibration
        As :func:`~xafsmap.core.prepare.prepare_measurement`.
    drift : ndarray, shape (E, 2), optional
        A drift measured before (the napari docks): corrected instead of measured.

    Returns
    -------
    stack : Stack
        Registered, cropped and binned (nominal energies).
    shift : ndarray, shape (M, N), float32, or None
    extra : dict
        ``grid`` (``energy_calibrated`` True with a shift map) and ``calibration``, as map's.
    """
    from ..prepare.grid import bin_stack, crop_stack
    from ..prepare.steps import prepare_measurement, prepare_stack

    if drift is not None:
        prepared, grid = prepare_stack(stack, drift=drift, roi=roi, factor=factor)
        extra = {"grid": grid}
    else:
        prepared, extra = prepare_measurement(stack, register=register, roi=roi, factor=factor)
    if shift_map is None:
        return prepared, None, extra
    shift = np.asarray(shift_map.shift, dtype=np.float32)
    if shift.shape != tuple(stack.data.shape[1:]):
        raise ValueError(f"shift map is {shift.shape} pixels but the stack's images are {tuple(stack.data.shape[1:])}")
    shift = crop_stack(shift[None], roi)[0] if roi is not None else shift
    shift = np.asarray(bin_stack(shift[None], factor))[0]
    rms = shift_map.residual_rms
    extra["grid"]["energy_calibrated"] = True
    extra["calibration"] = {**(calibration or {}), "residual_rms_eV": rms if rms == rms else None,
                            "model": shift_map.model, "applied": "inside the exploration (noise model on the "
                                                                "measured energies)"}
    return prepared, shift, extra
