# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The package's layering (issue 16): no import goes up a floor, and no modules import each other in a cycle.

Floors, bottom to top: ``utils`` 0, ``data`` 1, ``transforms`` 2, ``networks`` / ``losses`` / ``metrics`` 3 (one
floor: they may import each other as long as no cycle results), ``engines`` 4, ``evaluation`` 5, ``handlers`` 6,
``label`` 7; the top-level modules (``monai_gan_aug/__init__.py``, ``__main__.py``, ``bundles.py``, ``benefit.py``,
``realism.py``) are command-line entry points above everything. Every module is parsed with :mod:`ast`; imports at
module level and inside functions (lazy imports) both count, relative imports are resolved, and ``from pkg import
name`` counts as an import of the submodule ``pkg.name`` when there is one.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = "monai_gan_aug"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

#: Floor of each subpackage (the second component of a module name).
FLOORS = {
    "utils": 0,
    "data": 1,
    "transforms": 2,
    "networks": 3,
    "losses": 3,
    "metrics": 3,
    "engines": 4,
    "evaluation": 5,
    "handlers": 6,
    "label": 7,
}
#: The floor of the top-level modules: entry points above every subpackage.
ENTRY_FLOOR = math.inf
#: The top-level modules, relative to the package ("" is its ``__init__.py``).
ENTRY_MODULES = ("", "__main__", "bundles", "benefit", "realism", "export", "generate")

#: Known upward imports, (importer, imported) -> why it is there. Each entry is a debt to pay off: move the code to
#: its floor and delete the line (test_allow_list_has_no_stale_entries fails once an entry is no longer needed).
#: Nothing else may go up a floor.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}  # none left (issue 16): keep it empty


# ---------------------------------------------------------------------------------------------- the import graph
def module_files(package_dir: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The package module ``name`` refers to (``name`` itself, else its longest prefix that is a module)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, modules: Mapping[str, Path], package: str = PACKAGE) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of a package module in ``path`` (any depth: module level, inside
    functions, classes or ``if`` blocks; ``importlib.import_module("...")`` with a literal name too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]  # the package relative imports start at
    found: list[tuple[str, int]] = []

    def add(target: str, lineno: int) -> None:
        if target == package or target.startswith(package + "."):
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != name:
                found.append((resolved, lineno))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                add(sub if sub in modules else source, node.lineno)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                add(node.args[0].value, node.lineno)
    return found


def import_graph(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, dict[str, int]]:
    """Module -> {imported package module: first line importing it}."""
    modules = module_files(package_dir, package)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in imports_of(name, path, modules, package):
            edges[target] = min(line, edges.get(target, line))
        graph[name] = edges
    return graph


def floor_of(name: str, package: str = PACKAGE) -> float | None:
    """The floor of a module; ``None`` for a module of an unknown subpackage."""
    parts = name.split(".")
    if parts[0] == package and ".".join(parts[1:]) in ENTRY_MODULES:
        return ENTRY_FLOOR
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def upward_imports(graph: Mapping[str, Mapping[str, int]], package: str = PACKAGE) -> list[tuple[str, str, int]]:
    """``(importer, imported, line)`` for every import of a module on a higher floor."""
    out = []
    for name, edges in graph.items():
        for target, line in edges.items():
            low, high = floor_of(name, package), floor_of(target, package)
            if low is not None and high is not None and high > low:
                out.append((name, target, line))
    return sorted(out)


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per strongly connected component of the graph that holds several modules (or a
    module importing itself), found with Tarjan's algorithm (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    components.append(sorted(component))
    return sorted(_cycle_in(component, graph) for component in components)


def _cycle_in(component: list[str], graph: Mapping[str, Iterable[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first search inside the component)."""
    members, start = set(component), component[0]
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph.get(node, ())):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if child in members and child not in parents:
                parents[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle found through {start} in {component}")  # unreachable for a real component


def layering_problems(
    package_dir: Path = PACKAGE_DIR, package: str = PACKAGE, allowed: Mapping[tuple[str, str], str] | None = None
) -> dict[str, list[str]]:
    """Everything wrong with a package's layering, as readable lines: ``"unplaced"`` modules (no floor),
    ``"upward"`` imports not in ``allowed``, ``"cycles"``."""
    graph = import_graph(package_dir, package)
    allowed = ALLOWED_UPWARD if allowed is None else allowed
    floors = {name: floor_of(name, package) for name in graph}
    return {
        "unplaced": [f"{name}: its subpackage has no floor in FLOORS" for name, f in floors.items() if f is None],
        "upward": [
            f"{name}:{line} imports {target} (floor {floors[name]} -> {floors[target]})"
            for name, target, line in upward_imports(graph, package)
            if (name, target) not in allowed
        ],
        "cycles": [" -> ".join(cycle) for cycle in import_cycles(graph)],
    }


# ---------------------------------------------------------------------------------------------- the package
@pytest.fixture(scope="module")
def problems() -> dict[str, list[str]]:
    return layering_problems()


def test_every_module_has_a_floor(problems):
    assert len(import_graph()) > 50  # the walk found the package
    assert not problems["unplaced"], "\n".join(problems["unplaced"])


def test_no_import_goes_up_a_floor(problems):
    assert not problems["upward"], (
        "imports that go up a floor (move the code down, or, for a known debt, add it to ALLOWED_UPWARD with the "
        "reason):\n" + "\n".join(problems["upward"])
    )


def test_no_import_cycles(problems):
    assert not problems["cycles"], "import cycles between modules:\n" + "\n".join(problems["cycles"])


def test_allow_list_has_no_stale_entries():
    present = {(name, target) for name, target, _ in upward_imports(import_graph())}
    stale = sorted(set(ALLOWED_UPWARD) - present)
    assert not stale, f"ALLOWED_UPWARD entries no longer needed (delete them): {stale}"


# ---------------------------------------------------------------------------------------------- the checker itself
def _package(root: Path, files: Mapping[str, str]) -> Path:
    pkg = root / PACKAGE
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {p.parent for p in pkg.rglob("*.py")}:
        (folder / "__init__.py").touch()
    return pkg


def test_checker_reports_upward_imports_cycles_and_unplaced_modules(tmp_path):
    pkg = _package(tmp_path, {
        "utils/low.py": "def f():\n    from monai_gan_aug.handlers.top import g  # lazy, still counts\n",
        "handlers/top.py": "from monai_gan_aug.utils import low\n",
        "evaluation/a.py": "from . import b\n",
        "evaluation/b.py": "def f():\n    from monai_gan_aug.evaluation.a import x\n",
        "evaluation/c.py": "import importlib\nimportlib.import_module('monai_gan_aug.label.ui')\n",
        "label/ui.py": "from ..data import loader\n",
        "data/loader.py": "import os\nfrom monai_gan_aug.utils.low import f\n",
        "extras/new.py": "x = 1\n",
    })
    found = layering_problems(pkg, allowed={})
    assert found["upward"] == [
        "monai_gan_aug.evaluation.c:2 imports monai_gan_aug.label.ui (floor 5 -> 7)",
        "monai_gan_aug.utils.low:2 imports monai_gan_aug.handlers.top (floor 0 -> 6)",
    ]
    assert found["cycles"] == [
        "monai_gan_aug.evaluation.a -> monai_gan_aug.evaluation.b -> monai_gan_aug.evaluation.a",
        "monai_gan_aug.handlers.top -> monai_gan_aug.utils.low -> monai_gan_aug.handlers.top",
    ]
    assert sorted(found["unplaced"]) == [
        "monai_gan_aug.extras.new: its subpackage has no floor in FLOORS",
        "monai_gan_aug.extras: its subpackage has no floor in FLOORS",
    ]
    allowed = {("monai_gan_aug.utils.low", "monai_gan_aug.handlers.top"): "test"}
    assert len(layering_problems(pkg, allowed=allowed)["upward"]) == 1


def test_checker_same_floor_and_entry_points(tmp_path):
    pkg = _package(tmp_path, {
        "losses/frechet_loss.py": "from monai_gan_aug.metrics.frechet import FrechetDistance\n",  # floor 3 -> 3
        "metrics/frechet.py": "import numpy\n",
        "bundles.py": "from monai_gan_aug.handlers import writer\n",  # entry point -> anything
        "handlers/writer.py": "def f():\n    import monai_gan_aug.bundles\n",  # anything -> entry point: upward
    })
    graph = import_graph(pkg)
    assert graph["monai_gan_aug.losses.frechet_loss"] == {"monai_gan_aug.metrics.frechet": 1}
    assert graph["monai_gan_aug.bundles"] == {"monai_gan_aug.handlers.writer": 1}
    found = layering_problems(pkg, allowed={})
    assert found["upward"] == ["monai_gan_aug.handlers.writer:2 imports monai_gan_aug.bundles (floor 6 -> inf)"]
    assert found["cycles"] == ["monai_gan_aug.bundles -> monai_gan_aug.handlers.writer -> monai_gan_aug.bundles"]
