"""Experiment results: one folder per run, tables written atomically, reruns skip finished points.

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
to ``.points.jsonl`` as they complete, so an interrupted run loses only the point in flight and a
rerun of the same configuration skips what is done. The default folder is
``results/<NAME>/<config-hash>/``: the same grid always lands in the same folder, a different grid
in a new one, and nothing written earlier is replaced by different data.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from simgpu.errors import SimgpuError

if TYPE_CHECKING:
    import pandas as pd

POINTS_FILE = ".points.jsonl"
RESULTS_ENV = "SIMGPU_RESULTS"


class ExperimentError(SimgpuError):
    """An experiment module or its arguments are not usable."""


def results_root() -> Path:
    """Where experiment results go: ``$SIMGPU_RESULTS`` or ``./results``."""
    return Path(os.environ.get(RESULTS_ENV, "results"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: fsync the folder that holds it (where the platform allows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_table(df: pd.DataFrame, out_dir: Path, name: str, *, parquet: bool = True) -> list[Path]:
    """Write ``df`` as ``<name>.csv`` (and ``<name>.parquet``) in ``out_dir``, atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{name}.csv"
    atomic_write_text(csv_path, df.to_csv(index=False))
    paths = [csv_path]
    if parquet:
        import io

        buffer = io.BytesIO()
        df.to_parquet(buffer, index=False)
        pq_path = out_dir / f"{name}.parquet"
        atomic_write_bytes(pq_path, buffer.getvalue())
        paths.append(pq_path)
    return paths


def save_figure(fig: Any, path: Path, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def grid_points(grid: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of the grid's values, in declaration order."""
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def point_key(params: dict[str, Any]) -> str:
    """A stable text key for one grid point (JSON with sorted keys)."""
    return json.dumps(params, sort_keys=True, default=str)


def config_hash(config: dict[str, Any]) -> str:
    """Short hash of a resolved configuration: equal configs share a results folder."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def code_fingerprint(*extra: str | Path, packages: tuple[str, ...] = ()) -> str:
    """Short hash of what a result depends on besides its grid: the simgpu package's sources
    (only those of the sub-packages ``packages`` names, e.g. ``("analytical",)``, if given),
    the device files of the models folder in use, and ``extra`` files (an experiment's own).

    Part of every run's configuration, so a changed model or simulator gets a new results
    folder instead of reusing points computed by the old code (and config.json records it).
    """
    import simgpu
    from simgpu.devices.registry import models_dir

    pkg = Path(simgpu.__file__).resolve().parent
    roots = [pkg / name for name in packages] if packages else [pkg]
    files = sorted(f for root in roots for f in root.rglob("*.py"))
    models = models_dir()
    if models.is_dir():
        files += sorted(models.glob("*.toml"))
    files += [Path(p) for p in extra]
    h = hashlib.sha256()
    for f in files:
        try:
            data = f.read_bytes()
        except OSError:
            continue  # a file that vanished mid-walk changes nothing we can read
        h.update(f.name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:12]


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
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or key not in grid:
            raise ExperimentError(
                f"--set {item!r}: expected KEY=V1,V2 with KEY one of {', '.join(grid)}"
            )
        like = grid[key][0] if grid[key] else ""
        grid[key] = [_parse_value(v.strip(), like) for v in text.split(",") if v.strip()]
    for key, values in grid.items():
        if not values:
            raise ExperimentError(f"experiment {module.NAME!r}: parameter {key!r} has no values")
    return grid


def _load_points(path: Path) -> dict[str, list[dict[str, Any]]]:
    done: dict[str, list[dict[str, Any]]] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by an interruption: that point runs again
        done[record["key"]] = record["rows"]
    return done


def _append_point(path: Path, key: str, rows: list[dict[str, Any]]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps({"key": key, "rows": rows}, default=_json_default) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


def run_grid(
    module: ModuleType,
    grid: dict[str, list[Any]],
    out_dir: Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run every unfinished point of ``grid`` into ``out_dir``; return the whole table."""
    import pandas as pd
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    points_path = out_dir / POINTS_FILE
    done = _load_points(points_path)
    points = list(grid_points(grid))
    todo = [p for p in points if point_key(p) not in done]
    if log and len(todo) < len(points):
        log(f"{len(points) - len(todo)} of {len(points)} points already done in {out_dir}")
    for params in tqdm(todo, desc=module.NAME, disable=not progress or not todo, unit="pt"):
        rows = [dict(row) for row in module.run_point(dict(params))]
        _append_point(points_path, point_key(params), rows)
        done[point_key(params)] = rows
    rows_all = [row for p in points for row in done[point_key(p)]]
    return pd.DataFrame(rows_all)


def run_experiment(module: ModuleType, argv: Sequence[str] | None = None) -> Path:
    """Command-line entry of an experiment script: resolve the grid, run, save, plot."""
    for attr in ("NAME", "DESCRIPTION", "GRID", "run_point", "plot"):
        if not hasattr(module, attr):
            raise ExperimentError(f"experiment module {module.__name__!r} lacks {attr}")
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
        config = {"experiment": module.NAME, "grid": grid,
                  "code": code_fingerprint(getattr(module, "__file__", None) or "")}
        out_dir = args.out or results_root() / module.NAME / config_hash(config)
        if args.workers or args.dask_local or args.scheduler:
            df = _run_parallel(module, grid, out_dir, args)
        else:
            df = run_grid(
                module, grid, out_dir, progress=not args.no_progress,
                log=lambda m: print(m, file=sys.stderr),
            )
        finish_run(module, config, df, out_dir)
    except SimgpuError as exc:
        print(f"{module.NAME}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{module.NAME}: wrote {out_dir}", file=sys.stderr)
    return out_dir


def _run_parallel(
    module: ModuleType, grid: dict[str, list[Any]], out_dir: Path, args: argparse.Namespace
) -> pd.DataFrame:
    """The points on the sweep engine (:mod:`simgpu.sweep`): processes or Dask workers import
    the experiment's file; finished points land in the same ``.points.jsonl``."""
    from simgpu.sweep.engine import ModulePoint, load_table, run_points

    path = getattr(module, "__file__", None)
    if not path:
        raise ExperimentError(f"experiment {module.NAME!r} has no file for workers to import")
    points = list(grid_points(grid))
    report = run_points(
        ModulePoint(str(Path(path).resolve())), points, out_dir, workers=args.workers,
        scheduler=args.scheduler, dask_local=args.dask_local, progress=not args.no_progress,
        desc=module.NAME, log=lambda m: print(f"{module.NAME}: {m}", file=sys.stderr),
    )
    if report.points_failed:
        raise ExperimentError(
            f"{report.points_failed} point(s) failed (reasons in {out_dir / '.failed.jsonl'})"
        )
    return load_table(out_dir, points)


def finish_run(module: ModuleType, config: dict[str, Any], df: pd.DataFrame, out_dir: Path) -> None:
    """Write config.json, the table and the figures of a finished run."""
    from simgpu import __version__

    meta = dict(config)
    meta.update(
        simgpu_version=__version__,
        finished_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        rows=len(df),
    )
    atomic_write_text(out_dir / "config.json", json.dumps(meta, indent=1, default=str) + "\n")
    write_table(df, out_dir, module.NAME)
    module.plot(df, out_dir)
