"""Simulated measurements with known truth: the built-in sample, the physical generator,
known-answer scores.

Each name is imported from its module on first use (:mod:`xafsmap.core.lazy`).
"""

from ..lazy import lazy_names

#: Public name -> module of this package.
NAMES = {
    "CONDITIONS": "generator",
    "make_sample": "sample",
    "make_volume": "volume",
    "score_maps": "scores",
    "simulate_measurement": "generator",
}
__all__ = sorted(NAMES)
__getattr__, __dir__ = lazy_names(__name__, NAMES)
