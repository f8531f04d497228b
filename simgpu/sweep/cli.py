"""``simgpu sweep``: a grid of devices (with parameter overrides) x workloads x views.

Example (L2 size x HBM bandwidth x GEMM size, 3 x 3 x 4 = 36 points)::

    simgpu sweep --workload gemm --set l2_size_MiB=25,50,100 \\
        --set hbm_bandwidth_GBps=2000,3350,4800 --set M=1024,2048,4096,8192

Points run on local processes by default (``--workers N``), on a Dask cluster with
``--scheduler tcp://host:port`` or on a LocalCluster started here with ``--dask-local``. Results
go to ``results/sweep/<config-hash>/`` (or ``--out``): ``.points.jsonl`` grows as points finish,
``sweep.csv``/``sweep.parquet`` and ``config.json`` are written at the end. A rerun of the same
grid skips the finished points.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simgpu import __version__
from simgpu.devices.registry import models_dir
from simgpu.errors import SimgpuError
from simgpu.io import (
    atomic_write_text,
    check_output_dir,
    code_fingerprint,
    config_hash,
    results_root,
    write_table,
)
from simgpu.sweep.engine import MAX_POINTS, check_grid_size, parse_sets


def parse_value(text: str) -> Any:
    """A command-line grid value: int, float, bool (true/false) or text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of device parameters x workloads x views in parallel",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", action="append", help="device name (repeatable; default h100-sxm)")
    p.add_argument("--workload", action="append",
                   help="gemm, stream, pointer_chase or pcie_copy (repeatable; default gemm)")
    p.add_argument("--view", action="append",
                   help="analytical or simulated (repeatable; default analytical)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                   help="a grid axis: a workload parameter (M, dtype, op, n_elements, ...), a "
                   "device field (l2.size_MiB) or knob (hbm_bandwidth_GBps, l2_size_MiB, pcie_gen)")
    ex = p.add_mutually_exclusive_group()
    ex.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask scheduler")
    ex.add_argument("--dask-local", action="store_true", help="run on a Dask LocalCluster")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: CPU count; 0 = in this process); "
                   "with --dask-local, the LocalCluster's workers")
    p.add_argument("--out", type=Path, help="output folder (default results/sweep/HASH)")
    p.add_argument("--max-points", type=int, default=MAX_POINTS, metavar="N",
                   help=f"refuse grids of more points (default {MAX_POINTS:,})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the run report as JSON")
    p.set_defaults(handler=cmd_sweep)


def build_grid(args: argparse.Namespace) -> dict[str, list[Any]]:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    from simgpu.sweep.model import device_with, is_override, split_point, workload_of

    grid: dict[str, list[Any]] = {
        "device": args.device or ["h100-sxm"],
        "workload": args.workload or ["gemm"],
        "view": args.view or ["analytical"],
    }
    for key, values in parse_sets(args.set, lambda _key, text: parse_value(text)).items():
        if key in grid:
            raise SimgpuError(f"--set {key}=...: use --{key} for that axis")
        grid[key] = values
    check_grid_size(grid, args.max_points)
    # check every workload against every value of every axis before starting workers: a value
    # no point could use (M=abc) fails here, once, instead of in every point
    sets = {k: v[0] for k, v in grid.items() if k not in ("device", "workload", "view")}
    base = device_with(grid["device"][0], {})
    # every device-override value on every device, alone: a value the device file cannot take
    # (l2.size_MiB=-5) fails here with the file's own message
    for name in grid["device"]:
        device_with(name, {})
        for key, values in grid.items():
            if is_override(key):
                for value in values:
                    device_with(name, {key: value})
    for wl in grid["workload"]:
        for view in grid["view"]:
            for key, values in grid.items():
                for value in values:
                    point = {"device": grid["device"][0], "workload": wl, "view": view, **sets,
                             key: value}
                    _, _, workload, _, params = split_point(point)
                    if key not in ("device", "view") and not is_override(key):
                        workload_of(workload, params).check_fits(base)
    return grid


def cmd_sweep(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    from simgpu.sweep.engine import grid_points, load_table, run_points
    from simgpu.sweep.model import evaluate

    grid = build_grid(args)
    config = {"sweep": "simgpu.sweep.model.evaluate", "grid": grid,
              "code": code_fingerprint(models=models_dir())}
    out_dir = check_output_dir(args.out or results_root() / "sweep" / config_hash(config))
    points = list(grid_points(grid))
    print(f"sweep: {len(points)} points -> {out_dir}", file=sys.stderr)
    report = run_points(
        evaluate, points, out_dir, workers=args.workers, scheduler=args.scheduler,
        dask_local=args.dask_local, progress=not args.no_progress, desc="sweep",
        log=lambda m: print(f"sweep: {m}", file=sys.stderr),
    )
    df = load_table(out_dir, points)
    meta = dict(config, simgpu_version=__version__, report=report.to_dict(), rows=len(df))
    atomic_write_text(out_dir / "config.json", json.dumps(meta, indent=1, default=str) + "\n")
    if len(df):
        write_table(df, out_dir, "sweep")
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
    else:
        print(
            f"sweep: {report.points_run} run, {report.points_skipped} already done,"
            f" {report.points_failed} failed in {report.wall_s:.1f} s"
            f" ({report.points_per_s:.1f} points/s, {report.workers} worker(s),"
            f" {report.executor}); table {out_dir / 'sweep.csv'}"
        )
    return 1 if report.points_failed else 0
