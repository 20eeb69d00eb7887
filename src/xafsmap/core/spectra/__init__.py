"""Per-spectrum science on ``(E, ...)`` arrays: normalization (Larch conventions), e0, the noise
model, the sample mask, the survey, energy-scale checks, the too-thick limit, LCF.

Each name is imported from its module on first use (:mod:`xafsmap.core.lazy`).
"""

from ..lazy import lazy_names

#: Public name -> module of this package.
NAMES = {
    "NoiseModel": "noise",
    "Survey": "survey",
    "block_spectrum": "block",
    "check_energy_scale": "energyscale",
    "edge_mask": "mask",
    "find_e0": "edge",
    "fit_fractions": "lcf",
    "fit_noise_model": "noise",
    "fit_weighted": "lcf",
    "normalize": "normalize",
    "survey": "survey",
}
__all__ = sorted(NAMES)
__getattr__, __dir__ = lazy_names(__name__, NAMES)
