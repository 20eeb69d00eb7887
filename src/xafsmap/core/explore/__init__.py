"""Exploring a stack before its references are known: components, clusters, NMF, edge maps, ROIs.

"How many chemically distinct things are here, where are they, and what do their
spectra look like?" Everything is learned on a sample of pixels (the survey's grid)
and applied to every pixel in one pass over the stack in bands (:func:`iter_explore`),
like ``xafsmap map``:

* :mod:`.sampling` -- the sample: normalized spectra of the grid's sample pixels and
  the noise of every point; :mod:`.calibration` -- an energy-shift map applied inside,
  so the noise stays known;
* :mod:`.components` -- uncentred SVD of the biwhitened spectra, the number of
  components decided against the noise model (Marchenko-Pastur floor);
* :mod:`.clusters` -- k-means or a Gaussian mixture on the component scores, ``auto``
  clusters by their separation in units of the noise;
* :mod:`.unmix` -- NMF (SPA start, alternating exact NNLS) and per-pixel abundances;
* :mod:`.edges` -- E50, white line, Fe K pre-edge centroid and intensity;
* :mod:`.rois` and :mod:`.selection` -- named regions, 2-D histograms with a lasso,
  RGB composites;
* :mod:`.spectra` and :mod:`.files` -- "use as reference", XDI and CSV, the output folder;
* :mod:`.defaults` -- the algorithms' constants (the choices are settings).
"""

from .calibration import prepare_exploration, resample_spectra
from .clusters import Clustering, assign_clusters, find_clusters
from .components import Components, find_components, project_scores
from .defaults import CLUSTER_METHODS, MAX_CLUSTERS, MAX_COMPONENTS, MAX_NMF
from .edges import FE_K_PREEDGE, edge_maps
from .files import write_explore_files
from .pipeline import ExploreResult, Learned, explore_band, explore_stack, iter_explore, learn
from .rois import Roi, RoiSpectra, read_rois, roi_mask, roi_spectra, rois_from_labels, write_rois
from .sampling import PixelSample, sample_pixels
from .selection import histogram_2d, points_in_polygon, rgb_composite, select_by_values
from .spectra import guess_edge, save_reference, spectrum_reference, write_spectra_csv
from .unmix import Unmixing, abundances, unmix

__all__ = [
    "CLUSTER_METHODS", "Clustering", "Components", "ExploreResult", "FE_K_PREEDGE", "Learned", "MAX_CLUSTERS",
    "MAX_COMPONENTS", "MAX_NMF", "PixelSample", "Roi", "RoiSpectra", "Unmixing", "abundances", "assign_clusters",
    "edge_maps", "explore_band", "explore_stack", "find_clusters", "find_components", "guess_edge",
    "histogram_2d", "iter_explore", "learn", "points_in_polygon", "prepare_exploration",
    "project_scores", "read_rois", "resample_spectra",
    "rgb_composite", "roi_mask", "roi_spectra", "rois_from_labels", "sample_pixels", "save_reference",
    "select_by_values", "spectrum_reference", "unmix", "write_explore_files", "write_rois", "write_spectra_csv",
]
