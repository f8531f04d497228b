"""The package's layering, read from the source: no import circles, no private names borrowed
from another module, and the package-level directions the design fixes.

Every module of ``simgpu`` is parsed with :mod:`ast`. An import counts wherever it is written
(at module level or inside a function), except under ``if TYPE_CHECKING:``, which only the type
checker runs. ``from simgpu.a import b`` is an edge to the module ``simgpu.a.b`` when that is a
module, else to ``simgpu.a``; the implicit import of a module's parent packages is not an edge
(every ``simgpu.sim.x`` would otherwise import ``simgpu.sim`` and close a circle with its
``__init__``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "simgpu"

#: (importer package, package it must not reach through any chain of imports)
FORBIDDEN = (
    ("simgpu.analytical", "simgpu.sim"),
    ("simgpu.calibrate", "simgpu.predict"),
)


@dataclass(frozen=True)
class Import:
    """One import statement's target inside simgpu."""

    source: str  # importing module
    target: str  # imported module
    names: tuple[str, ...]  # names taken from it (``from ... import``), else ()
    where: str  # file:line


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports_in(module: str, path: Path, tree: ast.Module, known: set[str]) -> list[Import]:
    """The imports of simgpu modules in one parsed module (``path`` for relative imports and
    messages, ``known``: every module name of the package)."""
    found: list[Import] = []
    rel = path.relative_to(PACKAGE.parent) if path.is_absolute() else path
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the body runs only under the type checker
            continue
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "simgpu":
                    found.append(Import(module, alias.name, (), where))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            if base.split(".")[0] == "simgpu":
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in known else base
                    names = () if target == sub else (alias.name,)
                    found.append(Import(module, target, names, where))
        stack.extend(ast.iter_child_nodes(node))
    return found


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a simgpu module by a simgpu module."""
    known = modules()
    found: list[Import] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += imports_in(module, path, tree, set(known))
    return tuple(found)


def graph() -> dict[str, dict[str, str]]:
    """module -> {imported module: where (the first import of it)}."""
    known = modules()
    out: dict[str, dict[str, str]] = {m: {} for m in known}
    for imp in imports():
        if imp.target in known and imp.target != imp.source:
            out[imp.source].setdefault(imp.target, imp.where)
    return out


def _cycles(g: dict[str, dict[str, str]]) -> list[list[str]]:
    """One cycle (as a closed path) for every strongly connected component with more than one
    module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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
                    if len(component) > 1:
                        components.append(sorted(component))
    cycles = []
    for component in components:
        members = set(component)
        start = component[0]
        # shortest way back to the start inside the component (breadth first)
        previous: dict[str, str] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for node in frontier:
                for child in sorted(g[node]):
                    if child not in members:
                        continue
                    if child == start:
                        found = node
                        break
                    if child not in previous:
                        previous[child] = node
                        nxt.append(child)
                if found is not None:
                    break
            frontier = nxt
        assert found is not None
        path = [found]
        while path[-1] != start:
            path.append(previous[path[-1]])
        path.reverse()
        cycles.append([*path, start])
    return cycles


def _show(path: list[str], g: dict[str, dict[str, str]]) -> str:
    steps = [f"{a} -> {b} ({g[a][b]})" for a, b in zip(path, path[1:], strict=False)]
    return "; ".join(steps)


def test_the_parser_reads_imports_as_the_rules_say() -> None:
    """A guard for the checks below: which imports count, and how a circle is named."""
    source = """
from typing import TYPE_CHECKING
import simgpu.sim.request
from simgpu.io import _private, write_table
from simgpu.devices import load
from . import errors
if TYPE_CHECKING:
    from simgpu.predict import model
else:
    from simgpu.trace import schema

def later():
    from simgpu.analytical import gemm
"""
    known = {"simgpu.io", "simgpu.devices", "simgpu.devices.load", "simgpu.errors",
             "simgpu.sim.request", "simgpu.analytical", "simgpu.analytical.gemm",
             "simgpu.predict.model", "simgpu.trace.schema"}
    found = imports_in("simgpu.x", Path("simgpu/x.py"), ast.parse(source), known)
    got = {(i.target, i.names) for i in found}
    assert got == {
        ("simgpu.sim.request", ()),
        ("simgpu.io", ("_private",)),
        ("simgpu.io", ("write_table",)),
        ("simgpu.devices.load", ()),
        ("simgpu.errors", ()),
        ("simgpu.trace.schema", ()),
        ("simgpu.analytical.gemm", ()),
    }
    assert _cycles({"a": {"b": "a.py:1"}, "b": {"c": "b.py:1"}, "c": {"a": "c.py:2"},
                    "d": {"a": "d.py:1"}}) == [["a", "b", "c", "a"]]
    assert "simgpu.cli" in modules() and "simgpu.sim.system" in modules()


def test_no_import_cycles() -> None:
    g = graph()
    cycles = _cycles(g)
    assert not cycles, "import circles:\n" + "\n".join(_show(c, g) for c in cycles)


def test_no_private_names_from_other_modules() -> None:
    bad = [
        f"{imp.where}: {imp.source} imports {name} from {imp.target}"
        for imp in imports()
        for name in imp.names
        if name.startswith("_") and not name.startswith("__") and imp.target != imp.source
    ]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(("importer", "forbidden"), FORBIDDEN)
def test_package_layering(importer: str, forbidden: str) -> None:
    """No module of ``importer`` reaches ``forbidden`` through any chain of imports (each
    import that crosses into ``forbidden`` is named once, with the shortest chain to it)."""
    g = graph()
    starts = sorted(m for m in g if _inside(m, importer))
    previous: dict[str, str] = {m: "" for m in starts}
    frontier = list(starts)
    problems = []
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(g[node]):
                if _inside(child, forbidden):
                    path = [node]
                    while previous[path[-1]]:
                        path.append(previous[path[-1]])
                    problems.append(_show([*path[::-1], child], g))
                elif child not in previous:
                    previous[child] = node
                    nxt.append(child)
        frontier = nxt
    assert not problems, f"{importer} must not import {forbidden}:\n" + "\n".join(problems)


def _package(module: str) -> str:
    """The sub-package a module belongs to (``simgpu.sim.system`` -> ``simgpu.sim``); a module
    directly under ``simgpu`` is its own unit."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycles_between_packages() -> None:
    """Sub-packages form layers too: ``simgpu.sim`` may not import ``simgpu.workloads`` when
    ``simgpu.workloads`` imports ``simgpu.sim``, even through modules that import each other
    only one way."""
    g: dict[str, dict[str, str]] = {}
    for source, targets in graph().items():
        if source == "simgpu":
            continue  # the root package's __init__ (version string) belongs to no layer
        for target, where in targets.items():
            a, b = _package(source), _package(target)
            g.setdefault(a, {})
            g.setdefault(b, {})
            if a != b and b != "simgpu":
                g[a].setdefault(b, where)
    cycles = _cycles(g)
    assert not cycles, "package circles:\n" + "\n".join(_show(c, g) for c in cycles)
