"""Find the studies in ``experiments/`` (their contract: :mod:`simgpu.experiments.runner`).

An experiment is a file ``experiments/<name>.py`` that declares ``NAME``, ``DESCRIPTION``,
``GRID``, ``run_point(params)`` and ``plot(df, out_dir)``. Listing reads the files' source
(``NAME`` and ``DESCRIPTION`` are plain string constants) without importing them, and this
module imports only the standard library, so ``simgpu experiment list`` stays fast whatever the
experiments import.

The folder searched: ``$SIMGPU_EXPERIMENTS``, else ``./experiments`` when it exists, else the
``experiments/`` folder beside the installed package (a source checkout).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

from simgpu.errors import ExperimentError

ENV_VAR = "SIMGPU_EXPERIMENTS"


@dataclass(frozen=True)
class ExperimentInfo:
    """An experiment file found on disk."""

    name: str
    description: str
    path: Path


def experiments_dir() -> Path:
    """The folder of experiment scripts (see the module docstring)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    here = Path("experiments")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "experiments"


def _constant(tree: ast.Module, name: str) -> str | None:
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
            value = node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
            value = node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            try:
                result = ast.literal_eval(value)
            except ValueError:
                return None
            return result if isinstance(result, str) else None
    return None


def discover(folder: Path | None = None) -> dict[str, ExperimentInfo]:
    """Experiments in ``folder`` by name: every ``*.py`` (not ``_*``) declaring ``NAME`` and
    ``GRID`` at top level. A file that does not parse raises, naming the file and line."""
    folder = folder or experiments_dir()
    if not folder.is_dir():
        raise ExperimentError(f"{folder}: no experiments folder (set ${ENV_VAR} or run from a"
                              " source checkout)")
    found: dict[str, ExperimentInfo] = {}
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except SyntaxError as exc:
            raise ExperimentError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
        name = _constant(tree, "NAME")
        has_grid = any(
            isinstance(n, (ast.Assign, ast.AnnAssign))
            and any(isinstance(t, ast.Name) and t.id == "GRID"
                    for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))
            for n in tree.body
        )
        if name is None or not has_grid:
            continue
        if name in found:
            raise ExperimentError(
                f"{path}: NAME {name!r} is already used by {found[name].path}"
            )
        found[name] = ExperimentInfo(name, _constant(tree, "DESCRIPTION") or "", path)
    return found


def get(name: str, folder: Path | None = None) -> ExperimentInfo:
    """The experiment called ``name`` (a clear error listing the known ones otherwise)."""
    found = discover(folder)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ExperimentError(f"no experiment {name!r} in {folder or experiments_dir()}"
                              f" (known: {known})")
    return found[name]
