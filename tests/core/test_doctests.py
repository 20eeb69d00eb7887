"""The examples in the core's docstrings run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest

import xafsmap.core

MODULES = ["xafsmap",
           *sorted(m.name for m in pkgutil.walk_packages(xafsmap.core.__path__, "xafsmap.core.")
                   if not m.name.rsplit(".", 1)[-1].startswith("_"))]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failed == 0
