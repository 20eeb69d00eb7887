"""Checks that a trained model can give a trustworthy map, as warnings in the user's terms.

A map is always written; these say when the numbers behind it suggest it is wrong. They
end up in ``Model.warnings``, report.json ``"warnings"``, on stderr and in the docks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .classify import Classifier

__all__ = ["ALIKE_RMS", "LOW_ACCURACY", "alike_references", "model_warnings"]

#: Held-out accuracy below which the classes are too alike at the data's noise.
LOW_ACCURACY = 0.8
#: Two prepared references closer than this (RMS over the fit window, edge steps) are
#: the same spectrum for the map.
ALIKE_RMS = 0.01


def alike_references(references: np.ndarray, names: Sequence[str], *,
                     window: tuple[int, int] | None = None) -> list[tuple[str, str, float]]:
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


def model_warnings(classifier: Classifier) -> tuple[str, ...]:
    """Warnings about a trained :class:`~xafsmap.core.model.classify.Classifier`.

    Low held-out accuracy (naming the classes most confused) and references the map
    cannot tell apart (from the classifier's normalized references, over its window).
    (A stack whose edge falls, transmission given as absorbance, is refused by the
    survey: :func:`~xafsmap.core.spectra.survey.survey`.)

    Parameters
    ----------
    classifier : Classifier

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> c = SimpleNamespace(accuracy=0.45, confusion=np.array([[5, 5], [6, 4]]),
    ...                     classes=SimpleNamespace(names=("A", "B")))
    >>> model_warnings(c)[0][:60]
    'held-out accuracy is 0.450: at the noise measured in this st'
    """
    warnings = []
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
