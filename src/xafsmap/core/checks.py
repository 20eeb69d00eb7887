"""Checks that a trained model can give a trustworthy map, as warnings in the user's terms.

A map is always written; these say when the numbers behind it suggest it is wrong. They
end up in ``Model.warnings``, report.json ``"warnings"``, on stderr and in the docks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LOW_ACCURACY", "model_warnings"]

#: Held-out accuracy below which the classes are too alike at the data's noise.
LOW_ACCURACY = 0.8


def model_warnings(classifier) -> tuple[str, ...]:
    """Warnings about a trained :class:`~xafsmap.core.classify.Classifier`.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> import numpy as np
    >>> c = SimpleNamespace(accuracy=0.45, confusion=np.array([[5, 5], [6, 4]]),
    ...                     classes=SimpleNamespace(names=("A", "B")))
    >>> model_warnings(c)[0][:60]
    'held-out accuracy is 0.450: at the noise measured in this st'
    """
    warnings = []
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
