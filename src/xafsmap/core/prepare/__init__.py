"""The prepared grid: drift measurement and correction, energy calibration (shift maps),
region of interest, binning.

Each name is imported from its module on first use (:mod:`xafsmap.core.lazy`).
"""

from ..lazy import lazy_names

#: Public name -> module of this package.
NAMES = {
    "ShiftMap": "shiftmap",
    "apply_shift": "resample",
    "bin_stack": "grid",
    "calibrate": "calibrate",
    "correct_drift": "drift",
    "crop_stack": "grid",
    "measure_drift": "register",
    "prepare_measurement": "steps",
    "prepare_stack": "steps",
    "read_shift_map": "shiftmap",
    "subgrid": "grid",
    "write_shift_map": "shiftmap",
}
__all__ = sorted(NAMES)
__getattr__, __dir__ = lazy_names(__name__, NAMES)
