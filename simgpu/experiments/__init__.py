"""Find and run the studies in ``experiments/`` (see :mod:`simgpu.results` for their contract).

An experiment is a file ``experiments/<name>.py`` that declares ``NAME``, ``DESCRIPTION``,
``GRID``, ``run_point(params)`` and ``plot(df, out_dir)``. Listing reads the files' source
(``NAME`` and ``DESCRIPTION`` are plain string constants) without importing them, so
``simgpu experiment list`` stays fast whatever the experiments import. Running imports the file
and goes through :func:`simgpu.results.run_grid` (in this process) or the sweep engine
(:func:`simgpu.sweep.run_points`, with ``workers`` / ``dask_local`` / ``scheduler``); both append
finished points to the same ``.points.jsonl``, so either resumes the other's run.

The folder searched: ``$SIMGPU_EXPERIMENTS``, else ``./experiments`` when it exists, else the
``experiments/`` folder beside the installed package (a source checkout).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgpu.results import ExperimentError

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


def run(
    name: str,
    *,
    devices: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    out_dir: Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: bool = False,
    progress: bool = True,
    folder: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Path, Any]:
    """Run experiment ``name``; return its results folder and the engine's report (or None).

    Raises :class:`ExperimentError` when any point failed (after writing what finished).
    """
    from simgpu.results import (
        code_fingerprint,
        config_hash,
        finish_run,
        resolve_grid,
        results_root,
        run_grid,
    )
    from simgpu.sweep.engine import ModulePoint, load_module_file, load_table, run_points

    info = get(name, folder)
    module = load_module_file(info.path)
    for attr in ("NAME", "DESCRIPTION", "GRID", "run_point", "plot"):
        if not hasattr(module, attr):
            raise ExperimentError(f"{info.path}: experiment lacks {attr}")
    grid = resolve_grid(module, devices, overrides)
    config = {"experiment": module.NAME, "grid": grid, "code": code_fingerprint(info.path)}
    out = out_dir or results_root() / module.NAME / config_hash(config)
    report = None
    parallel = scheduler or dask_local or (workers is not None and workers > 0)
    if parallel:
        from simgpu.results import grid_points

        points = list(grid_points(grid))
        report = run_points(
            ModulePoint(str(info.path.resolve())), points, out, workers=workers,
            scheduler=scheduler, dask_local=dask_local, progress=progress, desc=module.NAME,
            log=log,
        )
        df = load_table(out, points)
    else:
        df = run_grid(module, grid, out, progress=progress, log=log)
    if df.empty:
        raise ExperimentError(f"{module.NAME}: no point finished (see {out})")
    finish_run(module, config, df, out)
    if report is not None and report.points_failed:
        raise ExperimentError(
            f"{module.NAME}: {report.points_failed} point(s) failed (reasons in"
            f" {out / '.failed.jsonl'}); the table holds the {report.points_run} that finished"
        )
    return out, report

