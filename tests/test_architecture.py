"""Checks of the source tree's shape that anyone can run: short modules, no import cycle,
no private name borrowed from another module, and a layered core.

They read the source with ``ast`` (nothing is imported), so they are fast and catch
function-level imports too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "xafsmap"
#: A module past this many lines usually holds two ideas (docs/architecture.md).
MAX_LINES = 400
#: Modules allowed past MAX_LINES, each with the reason. Keep it empty if you can.
LONG_MODULES: dict[str, str] = {}
#: The core's subpackages from the bottom up: a subpackage imports only those before it.
LAYERS = ("settings", "io", "prepare", "spectra", "model", "mapping", "trust", "explore", "simulate", "job")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _package(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def _imports(name: str):
    """(target module, imported names, node) of every xafsmap import in a module, at any depth."""
    tree = ast.parse(MODULES[name].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "xafsmap":
                    yield alias.name, [], node
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(name).split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "xafsmap":
                yield target, [alias.name for alias in node.names], node


def _edges(name: str) -> set[str]:
    """Modules ``name`` imports (a ``from PACKAGE import module`` counts as the module), and the
    packages whose ``__init__`` that runs, except its own."""
    own = set()
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        own.add(".".join(parts[:i]))
    edges = set()
    for target, names, _ in _imports(name):
        targets = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES] or [target]
        for t in targets:
            bits = t.split(".")
            for i in range(1, len(bits) + 1):
                step = ".".join(bits[:i])
                if step in MODULES and step not in own:
                    edges.add(step)
    return edges


def test_no_module_is_longer_than_400_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES and name not in LONG_MODULES}
    assert not long, f"modules over {MAX_LINES} lines (split them by idea): {long}"


def test_no_import_cycle():
    graph = {name: _edges(name) for name in MODULES}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    assert not cycles, f"import cycles: {cycles}"


def _private(target: str, name: str, importer: str) -> bool:
    if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
        return False
    submodule = f"{target}.{name}"
    # a private module may be imported from inside the package that holds it
    return not (submodule in MODULES and importer.startswith(target + "."))


def test_no_private_name_is_imported_from_another_module():
    found = []
    for name in MODULES:
        for target, names, node in _imports(name):
            bits = target.split(".")
            for i, bit in enumerate(bits[1:], start=1):  # a private module outside its package
                if bit.startswith("_") and not bit.startswith("__") and not name.startswith(".".join(bits[:i]) + "."):
                    found.append(f"{name}:{node.lineno} imports from {target}")
            found += [f"{name}:{node.lineno} imports {target}.{n}" for n in names if _private(target, n, name)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def _layer(name: str) -> int | None:
    bits = name.split(".")
    if len(bits) > 2 and bits[1] == "core" and bits[2] in LAYERS:
        return LAYERS.index(bits[2])
    return None


def test_core_subpackages_import_only_those_below_them():
    upward = []
    for name in MODULES:
        mine = _layer(name)
        if mine is None:
            continue
        for target in _edges(name):
            theirs = _layer(target)
            if theirs is not None and theirs > mine:
                upward.append(f"{name} -> {target}")
    assert not upward, "a core subpackage imports one above it (see LAYERS):\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("xafsmap.core")])
def test_core_never_imports_qt_or_napari(module):
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        for imported in names:
            assert imported.split(".")[0] not in ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6",
                                                  "magicgui", "vispy"), f"{module} imports {imported}"
