"""The exploration's algorithm constants.

Its choices (how many components, clusters and NMF spectra, and the clustering method)
are settings, declared with their ranges in :mod:`xafsmap.core.settings.schema`; the
largest values allowed there are the ones the algorithms here stop at.
"""

from __future__ import annotations

from ..settings.schema import SETTINGS

__all__ = ["CLUSTER_METHODS", "FLOOR_MARGIN", "MAX_CLUSTERS", "MAX_COMPONENTS", "MAX_NMF", "MINIBATCH_ABOVE",
           "NMF_MAX_ITER", "NMF_TOL", "SEPARATION"]

#: Most principal components kept, shown or asked for (the significance test looks at all).
MAX_COMPONENTS = SETTINGS["components"].high
#: Most clusters tried by ``auto`` or asked for.
MAX_CLUSTERS = SETTINGS["clusters"].high
#: Most NMF components: the exact non-negative fit of the abundances enumerates every
#: subset of them (:data:`xafsmap.core.lcf.MAX_SUBSET_REFERENCES`).
MAX_NMF = SETTINGS["nmf"].high
#: Clustering methods: k-means on the component scores, or a Gaussian mixture.
CLUSTER_METHODS = SETTINGS["cluster_method"].choices
#: ``auto`` clusters stop before two cluster centres come closer than this many times
#: the noise standard deviation of a typical (median) pixel's cluster coordinates.
SEPARATION = 4.0
#: A component is significant when its eigenvalue exceeds the noise floor: the
#: Marchenko-Pastur edge of pure noise, raised by this share for finite samples and a
#: noise model a few per cent off (on 12 simulated stacks without a harmonic leak the
#: largest noise eigenvalue lay between 0.91 and 0.99 times the bulk-corrected edge;
#: benchmarks/explore_accuracy.py).
FLOOR_MARGIN = 0.05
#: Mini-batch k-means above this many sample pixels (full Lloyd iterations below).
MINIBATCH_ABOVE = 50_000
#: NMF stops when an alternating round lowers the misfit by less than this share, or
#: after NMF_MAX_ITER rounds.
NMF_TOL = 1e-4
NMF_MAX_ITER = 200
