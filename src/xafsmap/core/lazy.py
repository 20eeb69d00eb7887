"""A package's public names, imported from their modules on first use.

``from xafsmap.core.io import read_stack`` then costs only the modules that name
needs, and a package ``__init__`` never creates an import cycle between subpackages.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose ``names`` map a public name to its module.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : dict of str to str
        Public name -> module relative to the package (``"stack"`` for ``package.stack``).

    Returns
    -------
    (getattr, dir) : tuple of callable

    Examples
    --------
    >>> get, listing = lazy_names("xafsmap.core.spectra", {"normalize": "normalize"})
    >>> get("normalize").__name__, listing()
    ('normalize', ['normalize'])
    >>> get("nothing")
    Traceback (most recent call last):
    AttributeError: module 'xafsmap.core.spectra' has no attribute 'nothing'
    """

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__
