"""xafsmap: chemical-state maps from imaging-XAFS stacks.

The science lives in :mod:`xafsmap.core` (numpy, dask, scipy, scikit-learn only);
this module never imports napari, Qt or magicgui.
"""

__version__ = "0.1.0"
