"""Checks that a trained model can give a trustworthy map, as warnings in the user's terms.

A map is always written; these say when the numbers behind it suggest it is wrong. They
end up in ``Model.warnings``, report.json ``"warnings"``, on stderr and in the docks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALIKE_RMS", "FALLING_SHARE", "LOW_ACCURACY", "alike_references", "falling_edge", "model_warnings"]

#: Held-out accuracy below which the classes are too alike at the data's noise.
LOW_ACCURACY = 0.8
#: Two prepared references closer than this (RMS over the fit window, edge steps) are
#: the same spectrum for the map.
ALIKE_RMS = 0.01
#: Share of the clearest surveyed spectra whose absorbance falls from the first to the
#: last energies above which the stack is taken for transmission, not absorbance.
FALLING_SHARE = 0.75
#: Pixels per side of the grid read for the edge direction.
EDGE_GRID = 24


def alike_references(references, names, *, window=None) -> list[tuple[str, str, float]]:
    """Pairs of references the map cannot tell apart.

    Parameters
    ----------
    references : ndarray, shape (K, E)
        Normalized references on the measurement's energies.
    names : sequence of str, length K
    window : (int, int), optional
        Energy indices ``[start, stop)`` compared (the classifier's fit window).

    Returns
    -------
    list of (str, str, float)
        Both names and their RMS difference in edge steps, for each pair closer than
        :data:`ALIKE_RMS`.

    Examples
    --------
    >>> r = np.array([[0.0, 0.5, 1.0], [0.0, 0.5, 1.0], [0.0, 0.9, 1.0]])
    >>> alike_references(r, ["Fe", "Fe copy", "FeO"])
    [('Fe', 'Fe copy', 0.0)]
    """
    refs = np.asarray(references, dtype=np.float64)
    start, stop = window or (0, refs.shape[1])
    part = refs[:, start:stop]
    pairs = []
    for i in range(len(part)):
        for j in range(i + 1, len(part)):
            rms = float(np.sqrt(np.mean((part[i] - part[j]) ** 2)))
            if rms < ALIKE_RMS:
                pairs.append((names[i], names[j], round(rms, 6)))
    return pairs


def falling_edge(data) -> float:
    """Share of the clearest spectra of a sparse grid whose absorbance falls across the scan.

    The mean of the last tenth of the energies is compared with the first tenth's
    (post- and pre-edge in a XANES scan) in the half of a ``EDGE_GRID`` x ``EDGE_GRID``
    grid of pixels with the largest change (the sample, not the background). Reads only
    those pixels.

    Parameters
    ----------
    data : array_like, shape (E, M, N)
        The stack (numpy or dask).

    Returns
    -------
    float
        0 (every edge rises, absorbance) to 1 (every edge falls: transmitted counts or
        a sign error); NaN when no pixel is finite.

    Examples
    --------
    >>> rising = np.linspace(0, 1, 20)[:, None, None] * np.ones((1, 4, 4))
    >>> falling_edge(rising), falling_edge(np.exp(-rising))
    (0.0, 1.0)
    """
    e, m, n = data.shape
    sample = np.asarray(data[:, max(1, m // EDGE_GRID) // 2 :: max(1, m // EDGE_GRID),
                             max(1, n // EDGE_GRID) // 2 :: max(1, n // EDGE_GRID)], dtype=np.float64)
    flat = sample.reshape(e, -1)
    flat = flat[:, np.all(np.isfinite(flat), axis=0)]
    if flat.shape[1] == 0:
        return float("nan")
    tenth = max(1, e // 10)
    change = flat[-tenth:].mean(axis=0) - flat[:tenth].mean(axis=0)
    clear = change[np.abs(change) >= np.median(np.abs(change))]
    return float(np.mean(clear < 0))


def model_warnings(classifier, *, data=None) -> tuple[str, ...]:
    """Warnings about a trained :class:`~xafsmap.core.classify.Classifier` and its data.

    Low held-out accuracy (naming the classes most confused) and references the map
    cannot tell apart (from the classifier's normalized references, over its window).

    Parameters
    ----------
    classifier : Classifier
    data : array_like, shape (E, M, N), optional
        The stack: an edge that falls in most pixels means transmission, not absorbance.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> c = SimpleNamespace(accuracy=0.45, confusion=np.array([[5, 5], [6, 4]]),
    ...                     classes=SimpleNamespace(names=("A", "B")))
    >>> model_warnings(c)[0][:60]
    'held-out accuracy is 0.450: at the noise measured in this st'
    """
    warnings = []
    if data is not None and falling_edge(data) > FALLING_SHARE:
        warnings.append(
            "the absorbance falls across the edge in most sample pixels: is this stack transmitted counts "
            "rather than absorbance? give the flat field (--flat) or the incident beam (--i0)")
    references = getattr(classifier, "references", None)
    if references is not None:
        for a, b, rms in alike_references(references, classifier.classes.references, window=classifier.window):
            same = "identical" if rms < 1e-6 else f"nearly identical (RMS difference {rms:.4f} edge steps)"
            warnings.append(f"references {a!r} and {b!r} are {same} at the measurement's energies: the map "
                            "cannot tell them apart; drop one or check the files")
    if classifier.accuracy < LOW_ACCURACY:
        confusion = np.asarray(classifier.confusion, dtype=float)
        off = confusion - np.diag(np.diag(confusion))
        i, j = np.unravel_index(np.argmax(off), off.shape)
        names = classifier.classes.names
        warnings.append(
            f"held-out accuracy is {classifier.accuracy:.3f}: at the noise measured in this stack the "
            f"classes are hard to tell apart (most often {names[i]!r} is taken for {names[j]!r}); "
            "bin pixels (--bin), use fewer mixtures or check the references")
    return tuple(warnings)
