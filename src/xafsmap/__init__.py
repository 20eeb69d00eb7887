"""xafsmap: chemical-state maps from imaging-XAFS stacks.

The everyday names, imported on first use (``import xafsmap`` stays fast and never
imports napari, Qt, magicgui or matplotlib):

>>> import xafsmap
>>> refs = xafsmap.bundled_references()  # the real Fe, FeO, Fe2O3, Fe3O4 spectra shipped with xafsmap
>>> sample = xafsmap.make_sample((40, 50), rng=0)
>>> stack = xafsmap.Stack(sample.stack, sample.energies, {"sample": "fe_sample"})
>>> result = xafsmap.map_stack(stack, refs, n_per_class=40, n_trees=5)
>>> result.labels.shape
(40, 50)

The whole library is :mod:`xafsmap.core` (one subpackage per pipeline step, see
docs/architecture.md); :func:`run_map` runs a whole job from :class:`Settings`, as
``xafsmap map``, ``xafsmap run`` and the napari docks do.
"""

from .core.lazy import lazy_names

__version__ = "0.1.0"

#: The curated API: public name -> module under :mod:`xafsmap`.
NAMES = {
    # read and write
    "Stack": "core.io.stack",
    "read_stack": "core.io.stack",
    "write_stack": "core.io.tiff",
    "read_volume": "core.io.volume",
    "Reference": "core.io.references",
    "read_reference": "core.io.references",
    "write_spectra": "core.io.export",
    # prepare and normalize
    "prepare_stack": "core.prepare.steps",
    "calibrate": "core.prepare.calibrate",
    "normalize": "core.spectra.normalize",
    # model and maps
    "train_model": "core.model.training",
    "map_stack": "core.mapping.pipeline",
    "MapResult": "core.mapping.pipeline",
    "write_maps": "core.mapping.output",
    # explore and trust
    "explore_stack": "core.explore.pipeline",
    "find_unexplained": "core.trust.unexplained",
    "search_references": "core.trust.assess",
    "compare_models": "core.trust.assess",
    # whole jobs from settings
    "Settings": "core.settings.schema",
    "ReferenceSpec": "core.settings.declare",
    "read_recipe": "core.settings.recipe",
    "write_recipe": "core.settings.recipe",
    "run_map": "core.job.mapjob",
    "run_explore": "core.job.explorejob",
    # known answers
    "make_sample": "core.simulate.sample",
    "bundled_references": "core.simulate.sample",
}
__all__ = ["__version__", *sorted(NAMES)]
__getattr__, __dir__ = lazy_names(__name__, NAMES)
