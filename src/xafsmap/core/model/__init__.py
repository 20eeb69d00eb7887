"""The references on the stack's energies, classes and synthetic training spectra, features,
the random forest, training and the fused band kernel.

Each name is imported from its module on first use (:mod:`xafsmap.core.lazy`).
"""

from ..lazy import lazy_names

#: Public name -> module of this package.
NAMES = {
    "Classes": "synthesize",
    "Model": "training",
    "compute_features": "features",
    "make_classes": "synthesize",
    "prepare_references": "standards",
    "preview_training": "preview",
    "train_model": "training",
}
__all__ = sorted(NAMES)
__getattr__, __dir__ = lazy_names(__name__, NAMES)
