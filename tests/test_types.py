"""Every public function and method of the core carries type hints on each parameter and
its return, as the curated API (``import xafsmap``) does.

Public: a name without a leading underscore, defined in the module that is checked (a
re-export is checked where it is defined). ``self``/``cls`` need no hint. A numba kernel
is checked through its Python function (``py_func``): numba ignores the hints.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import xafsmap.core

#: Modules left out of the check (none: every module of the core is type-hinted).
EXCLUDED: set[str] = set()

MODULES = sorted(info.name for info in pkgutil.walk_packages(xafsmap.core.__path__, "xafsmap.core."))


def public_functions(module):
    """(qualified name, Python function) of each public function and method defined in ``module``."""
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        function = getattr(obj, "py_func", obj)  # a numba dispatcher wraps the Python function
        if inspect.isfunction(function) and function.__module__ == module.__name__:
            yield name, function
        elif inspect.isclass(obj) and obj.__module__ == module.__name__:
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                elif isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member):
                    yield f"{name}.{attr}", member


def missing_hints(function) -> list[str]:
    """The parameters (and ``return``) of ``function`` that have no type hint."""
    parameters = list(inspect.signature(function).parameters.values())
    if parameters and parameters[0].name in ("self", "cls") and "." in function.__qualname__:
        parameters = parameters[1:]
    missing = [p.name for p in parameters if p.annotation is inspect.Parameter.empty]
    if inspect.signature(function).return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


@pytest.mark.parametrize("name", [m for m in MODULES if m not in EXCLUDED])
def test_public_functions_are_type_hinted(name):
    module = importlib.import_module(name)
    found = {f"{qualname}({', '.join(missing)})"
             for qualname, function in public_functions(module) if (missing := missing_hints(function))}
    assert not found, f"{name}: public functions without type hints on: {sorted(found)}"


def test_every_excluded_module_exists():
    assert not EXCLUDED - set(MODULES), f"stale EXCLUDED entries: {sorted(EXCLUDED - set(MODULES))}"


def test_the_check_finds_a_missing_hint():
    def unhinted(a, b: int, *args, c=1, **kwargs) -> None: ...

    def no_return(a: int): ...

    class Thing:
        def method(self, x: int) -> int: ...

        @classmethod
        def make(cls, y) -> Thing: ...

    assert missing_hints(unhinted) == ["a", "args", "c", "kwargs"]
    assert missing_hints(no_return) == ["return"]
    assert missing_hints(Thing.method) == []
    assert missing_hints(Thing.__dict__["make"].__func__) == ["y"]
