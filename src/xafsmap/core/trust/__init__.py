"""Trust: unexplained pixels, library search, reference-set parsimony, and their files.

Each name is imported from its module on first use (:mod:`xafsmap.core.lazy`).
"""

from ..lazy import lazy_names

#: Public name -> module of this package.
NAMES = {
    "compare_models": "assess",
    "find_unexplained": "unexplained",
    "iter_compare": "parsimony",
    "iter_unexplained": "unexplained",
    "search_references": "assess",
}
__all__ = sorted(NAMES)
__getattr__, __dir__ = lazy_names(__name__, NAMES)
