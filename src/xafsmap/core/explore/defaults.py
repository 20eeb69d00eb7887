"""Every default and allowed range of the exploration tools, in one place.

The command line, the napari dock and scripts read these constants; a settings schema
that absorbs the command line (issue 13) should take them from here. :func:`parse_count`
turns the ``N|auto`` options into a number or ``"auto"`` within their range.
"""

from __future__ import annotations

__all__ = ["CLUSTER_METHODS", "FLOOR_MARGIN", "MAX_CLUSTERS", "MAX_COMPONENTS", "MAX_NMF", "MINIBATCH_ABOVE",
           "NMF_MAX_ITER", "NMF_TOL", "SEPARATION", "explore_options", "parse_count"]

#: Most principal components kept, shown or asked for (the significance test looks at all).
MAX_COMPONENTS = 12
#: Most clusters tried by ``auto`` or asked for.
MAX_CLUSTERS = 12
#: Most NMF components: the exact non-negative fit of the abundances enumerates every
#: subset of them (:data:`xafsmap.core.lcf.MAX_SUBSET_REFERENCES`).
MAX_NMF = 8
#: Clustering methods: k-means on the component scores, or a Gaussian mixture.
CLUSTER_METHODS = ("kmeans", "gmm")
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


def parse_count(value, *, name: str, maximum: int, auto: bool = True):
    """``"auto"`` (where allowed) or a whole number from 1 to ``maximum``.

    Parameters
    ----------
    value : str or int
        What the user gave.
    name : str
        The option, for the message (``--clusters``).
    maximum : int
    auto : bool
        Whether ``"auto"`` is allowed.

    Returns
    -------
    int or "auto"

    Raises
    ------
    ValueError
        One line naming the option and its allowed values.

    Examples
    --------
    >>> parse_count("auto", name="--clusters", maximum=12), parse_count("3", name="--nmf", maximum=8)
    ('auto', 3)
    >>> parse_count("0", name="--nmf", maximum=8, auto=False)
    Traceback (most recent call last):
    ...
    ValueError: --nmf 0: give a whole number from 1 to 8
    """
    text = str(value).strip().lower()
    if auto and text == "auto":
        return "auto"
    allowed = f"a whole number from 1 to {maximum}" + (" or auto" if auto else "")
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"{name} {value}: give {allowed}") from None
    if not 1 <= number <= maximum:
        raise ValueError(f"{name} {value}: give {allowed}")
    return number


def explore_options(*, components="auto", clusters="auto", method: str = "kmeans", nmf=None) -> dict:
    """The exploration choices checked and converted, as :func:`~xafsmap.core.explore.iter_explore` takes them.

    Every value is checked before any pixel is read; ``nmf`` None (or ``"0"``) is no NMF.

    Examples
    --------
    >>> explore_options(components="auto", clusters="5", method="gmm", nmf="3")
    {'components': 'auto', 'clusters': 5, 'method': 'gmm', 'nmf': 3}
    >>> explore_options(method="ward")
    Traceback (most recent call last):
    ...
    ValueError: --cluster-method ward: choose one of kmeans, gmm
    """
    if method not in CLUSTER_METHODS:
        raise ValueError(f"--cluster-method {method}: choose one of {', '.join(CLUSTER_METHODS)}")
    none = nmf is None or str(nmf).strip() in ("", "0", "none")
    return {"components": parse_count(components, name="--components", maximum=MAX_COMPONENTS),
            "clusters": parse_count(clusters, name="--clusters", maximum=MAX_CLUSTERS), "method": method,
            "nmf": None if none else parse_count(nmf, name="--nmf", maximum=MAX_NMF, auto=False)}
