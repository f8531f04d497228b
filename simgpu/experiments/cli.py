"""``simgpu experiment list`` and ``simgpu experiment run NAME``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="list and run the studies in experiments/",
        description="Studies: each writes results/<name>/<run-id>/ with config.json, the table "
        "(CSV and Parquet) and its figures (PNG). Reruns skip finished points.",
    )
    sub = p.add_subparsers(dest="experiment_command", metavar="ACTION")
    sub.required = True
    ls = sub.add_parser("list", help="the experiments and what they study")
    ls.add_argument("--json", action="store_true", help="print a JSON list")
    ls.set_defaults(handler=cmd_list)
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name", help="experiment name (see `simgpu experiment list`)")
    run.add_argument("--device", action="append", help="device name (repeatable)")
    run.add_argument("--out", type=Path, help="output folder (default results/NAME/HASH)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                     help="replace a grid axis's values")
    ex = run.add_mutually_exclusive_group()
    ex.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run points on this Dask "
                    "scheduler")
    ex.add_argument("--dask-local", action="store_true", help="run points on a Dask LocalCluster")
    run.add_argument("--workers", type=int, default=None,
                     help="run points on N local processes (default: in this process)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)


def cmd_list(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    from simgpu.experiments.registry import discover, experiments_dir

    found = discover()
    if args.json:
        print(json.dumps([{"name": e.name, "description": e.description, "path": str(e.path)}
                          for e in found.values()], indent=1))
        return 0
    if not found:
        print(f"no experiments in {experiments_dir()}")
        return 0
    width = max(len(n) for n in found)
    for e in found.values():
        print(f"{e.name:<{width}}  {e.description}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    from simgpu.experiments.runner import run

    def log(msg: str) -> None:
        print(f"{args.name}: {msg}", file=sys.stderr)

    out, report = run(
        args.name, devices=args.device, overrides=args.set, out_dir=args.out,
        workers=args.workers, scheduler=args.scheduler, dask_local=args.dask_local,
        progress=not args.no_progress, log=log,
    )
    if report is not None:
        log(f"{report.points_run} points in {report.wall_s:.1f} s ({report.points_per_s:.1f}/s"
            f", {report.workers} worker(s), {report.executor})")
    figures = sorted(p.name for p in out.glob("*.png"))
    log(f"wrote {out} (table {args.name}.csv/.parquet; figures: {', '.join(figures) or 'none'})")
    print(out)
    return 0
