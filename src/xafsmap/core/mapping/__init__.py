"""Band-by-band mapping of a whole stack, the map files and report, the OME-Zarr store, the
cluster path, class spectra of a map.

Each name is imported from its module on first use (:mod:`xafsmap.core.lazy`).
"""

from ..lazy import lazy_names

#: Public name -> module of this package.
NAMES = {
    "MapResult": "pipeline",
    "iter_classify": "pipeline",
    "iter_map_distributed": "parallel",
    "iter_map_volume": "volume",
    "map_distributed": "parallel",
    "open_client": "parallel",
    "train_model_distributed": "parallel",
    "iter_map": "pipeline",
    "map_class_spectra": "mapspectra",
    "map_stack": "pipeline",
    "map_volume": "volume",
    "open_map_store": "zarrmaps",
    "write_maps": "output",
}
__all__ = sorted(NAMES)
__getattr__, __dir__ = lazy_names(__name__, NAMES)
