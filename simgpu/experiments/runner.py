"""Run an experiment: one folder per run, tables written atomically, reruns skip finished points.

An experiment is a small module in ``experiments/`` that declares

``NAME``
    the experiment's name (also its results folder),
``DESCRIPTION``
    one line for ``--help`` and listings,
``GRID``
    ``dict[str, list]``: the parameter grid; every combination is one point,
``run_point(params) -> list[dict]``
    the rows of one grid point,
``plot(df, out_dir) -> list[Path]``
    the PNG figures of the finished table,

and ends with ``if __name__ == "__main__": main()`` where ``main`` calls :func:`run_experiment`.

A run folder holds ``config.json`` (the resolved grid and provenance), ``<NAME>.csv`` and
``<NAME>.parquet`` (the table) and the figures. Finished points are appended, one JSON line each,
to ``.points.jsonl`` (:data:`simgpu.io.POINTS_FILE`) as they complete, so an interrupted run
loses only the point in flight and a rerun of the same configuration skips what is done. The
default folder is ``results/<NAME>/<config-hash>/``: the same grid always lands in the same
folder, a different grid in a new one, and nothing written earlier is replaced by different data.

Points run in this process (:func:`run_grid`) or on the sweep engine
(:func:`simgpu.sweep.run_points`: local processes or Dask); both append to the same file, so
either resumes the other's run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from tqdm import tqdm

from simgpu import __version__
from simgpu.devices.registry import models_dir
from simgpu.errors import ExperimentError, SimgpuError
from simgpu.experiments.registry import get
from simgpu.io import (
    POINTS_FILE,
    JsonlAppender,
    atomic_write_text,
    check_output_dir,
    code_fingerprint,
    config_hash,
    load_points,
    point_key,
    results_root,
    write_table,
)
from simgpu.sweep.engine import (
    FAILED_FILE,
    ModulePoint,
    SweepReport,
    check_grid_size,
    check_workers,
    grid_points,
    load_module_file,
    load_table,
    parse_sets,
    run_points,
)

__all__ = [
    "CONTRACT",
    "ExperimentError",
    "check_contract",
    "finish_run",
    "resolve_grid",
    "run",
    "run_config",
    "run_experiment",
    "run_grid",
    "run_module",
]

#: What an experiment module declares (see the module docstring).
CONTRACT = ("NAME", "DESCRIPTION", "GRID", "run_point", "plot")


def check_contract(module: ModuleType, where: str) -> None:
    """Raise :class:`ExperimentError` naming ``where`` if ``module`` lacks part of
    :data:`CONTRACT`."""
    for attr in CONTRACT:
        if not hasattr(module, attr):
            raise ExperimentError(f"{where} lacks {attr}")


def _parse_value(text: str, like: Any) -> Any:
    """Turn a command-line value into the type of the grid's existing values."""
    if isinstance(like, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ExperimentError(f"--set: {text!r} is not a boolean (expected true/false)")
    for kind in (int, float):
        if isinstance(like, kind):
            try:
                return kind(text)
            except ValueError:
                raise ExperimentError(
                    f"--set: {text!r} is not {kind.__name__} like the grid's {like!r}"
                ) from None
    return text


def resolve_grid(
    module: ModuleType, devices: Sequence[str] | None, overrides: Sequence[str]
) -> dict[str, list[Any]]:
    """The module's GRID with ``--device`` and ``--set key=v1,v2`` applied."""
    grid = {key: list(values) for key, values in dict(module.GRID).items()}
    if devices:
        if "device" not in grid:
            raise ExperimentError(f"experiment {module.NAME!r} has no 'device' parameter")
        grid["device"] = list(devices)
    def convert(key: str, text: str) -> Any:
        if key not in grid:
            raise ExperimentError(f"--set {key}=...: expected KEY one of {', '.join(grid)}")
        return _parse_value(text, grid[key][0] if grid[key] else "")

    grid.update(parse_sets(overrides, convert))
    for key, values in grid.items():
        if not values:
            raise ExperimentError(f"experiment {module.NAME!r}: parameter {key!r} has no values")
    return grid


def run_config(module: ModuleType, grid: dict[str, list[Any]], path: str | Path) -> dict[str, Any]:
    """The configuration a run is filed under: experiment, grid, and the fingerprint of the
    code, the device files and the experiment's file ``path``."""
    return {"experiment": module.NAME, "grid": grid,
            "code": code_fingerprint(path, models=models_dir())}


def run_grid(
    module: ModuleType,
    grid: dict[str, list[Any]],
    out_dir: Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run every unfinished point of ``grid`` in this process into ``out_dir``; return the
    whole table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    points_path = out_dir / POINTS_FILE
    done = load_points(points_path)
    check_grid_size(grid)
    points = list(grid_points(grid))
    todo = [p for p in points if point_key(p) not in done]
    if log and len(todo) < len(points):
        log(f"{len(points) - len(todo)} of {len(points)} points already done in {out_dir}")
    with JsonlAppender(points_path) as appender:
        for params in tqdm(todo, desc=module.NAME, disable=not progress or not todo, unit="pt"):
            rows = [dict(row) for row in module.run_point(dict(params))]
            appender.append({"key": point_key(params), "rows": rows})
            done[point_key(params)] = rows
    rows_all = [row for p in points for row in done[point_key(p)]]
    return pd.DataFrame(rows_all)


def run_module(
    module: ModuleType,
    grid: dict[str, list[Any]],
    out_dir: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    engine_log: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, SweepReport | None]:
    """Every unfinished point of ``grid``: in this process (:func:`run_grid`), or on the sweep
    engine with ``workers`` > 0, ``dask_local`` or ``scheduler`` (the workers import the
    experiment's file). Returns the table of the finished points and the engine's report (None
    in this process). ``engine_log`` (default ``log``) hears the engine."""
    check_workers(workers)
    if not (scheduler or dask_local or (workers is not None and workers > 0)):
        return run_grid(module, grid, out_dir, progress=progress, log=log), None
    path = getattr(module, "__file__", None)
    if not path:
        raise ExperimentError(f"experiment {module.NAME!r} has no file for workers to import")
    check_grid_size(grid)
    points = list(grid_points(grid))
    report = run_points(
        ModulePoint(str(Path(path).resolve())), points, out_dir, workers=workers,
        scheduler=scheduler, dask_local=dask_local, progress=progress, desc=module.NAME,
        log=engine_log or log,
    )
    return load_table(out_dir, points), report


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
) -> tuple[Path, SweepReport | None]:
    """Run the experiment called ``name`` (found by :func:`simgpu.experiments.registry.get`);
    return its results folder and the engine's report (None when it ran in this process).

    Raises :class:`ExperimentError` when any point failed (after writing what finished).
    """
    info = get(name, folder)
    module = load_module_file(info.path)
    check_contract(module, f"{info.path}: experiment")
    grid = resolve_grid(module, devices, overrides)
    config = run_config(module, grid, info.path)
    out = check_output_dir(out_dir or results_root() / module.NAME / config_hash(config))
    df, report = run_module(module, grid, out, workers=workers, scheduler=scheduler,
                            dask_local=dask_local, progress=progress, log=log)
    if df.empty:
        raise ExperimentError(f"{module.NAME}: no point finished (see {out})")
    finish_run(module, config, df, out)
    if report is not None and report.points_failed:
        raise ExperimentError(
            f"{module.NAME}: {report.points_failed} point(s) failed (reasons in"
            f" {out / FAILED_FILE}); the table holds the {report.points_run} that finished"
        )
    return out, report


def run_experiment(module: ModuleType, argv: Sequence[str] | None = None) -> Path:
    """Command-line entry of an experiment script: resolve the grid, run, save, plot."""
    check_contract(module, f"experiment module {module.__name__!r}")
    parser = argparse.ArgumentParser(prog=module.NAME, description=module.DESCRIPTION)
    parser.add_argument("--device", action="append", help="device name (repeatable)")
    parser.add_argument("--out", type=Path, help="output folder (default results/NAME/HASH)")
    parser.add_argument("--models", help="folder of device TOML files (sets SIMGPU_MODELS)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=V1,V2", help="override a grid axis"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--workers", type=int, help="run points on N local processes")
    parser.add_argument("--dask-local", action="store_true",
                        help="run points on a Dask LocalCluster")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run points on this Dask "
                        "scheduler")
    args = parser.parse_args(argv)
    if args.models:
        os.environ["SIMGPU_MODELS"] = args.models
    try:
        grid = resolve_grid(module, args.device, args.set)
        config = run_config(module, grid, getattr(module, "__file__", None) or "")
        out_dir = args.out or results_root() / module.NAME / config_hash(config)
        df, report = run_module(
            module, grid, out_dir, workers=args.workers or None, scheduler=args.scheduler,
            dask_local=args.dask_local, progress=not args.no_progress,
            log=lambda m: print(m, file=sys.stderr),
            engine_log=lambda m: print(f"{module.NAME}: {m}", file=sys.stderr),
        )
        if report is not None and report.points_failed:
            raise ExperimentError(
                f"{report.points_failed} point(s) failed (reasons in {out_dir / FAILED_FILE})"
            )
        finish_run(module, config, df, out_dir)
    except SimgpuError as exc:
        print(f"{module.NAME}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{module.NAME}: wrote {out_dir}", file=sys.stderr)
    return out_dir


def finish_run(module: ModuleType, config: dict[str, Any], df: pd.DataFrame, out_dir: Path) -> None:
    """Write config.json, the table and the figures of a finished run."""
    meta = dict(config)
    meta.update(
        simgpu_version=__version__,
        finished_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        rows=len(df),
    )
    atomic_write_text(out_dir / "config.json", json.dumps(meta, indent=1, default=str) + "\n")
    write_table(df, out_dir, module.NAME)
    module.plot(df, out_dir)
