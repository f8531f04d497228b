"""``simgpu validate``: measured figures of a calibration run beside the other three views."""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simgpu.calibrate.dataset import RunDir
from simgpu.calibrate.summary import format_table
from simgpu.devices import Registry
from simgpu.io import atomic_write_text, results_root, write_table


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "validate",
        help="compare a calibration run with the simulated, analytical and learned views",
        description="One row per measured point of the run: the measured figure, each view's "
        "figure for --device and each view's percentage error. Saves the table (CSV, Parquet) "
        "and one PNG per workload family.",
    )
    p.add_argument("--device", required=True, help="device model the views use")
    p.add_argument("--run", required=True, type=Path, help="calibration run folder")
    p.add_argument("--only", default=None, metavar="FAMILIES",
                   help="comma-separated families (pchase, stream, pcie, gemm_time, gemm_power, "
                        "transpose, reduction, gemv)")
    p.add_argument("--views", default="simulated,analytical,learned",
                   help="comma-separated views to compute (default: all three)")
    p.add_argument("--max-sim", type=int, default=4,
                   help="simulated rows per curve of a family (simulation is slow; default 4)")
    p.add_argument("--sim-budget", type=float, default=60.0, metavar="SECONDS",
                   help="wall time the simulated view may spend per family (default 60)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: results/validate/<device>/<run-id>/<time>)")
    p.add_argument("--rows", action="store_true", help="print every row, not only the summary")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON list")
    p.set_defaults(handler=_validate)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def _validate(args: argparse.Namespace) -> int:
    # registered at `simgpu` start-up: the views and their dependencies load when it runs
    from simgpu.validate.core import VIEWS, plot_families, print_log, summary, validate_run

    spec = Registry(args.models).get(args.device)
    run = RunDir.open(args.run)
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    views = [s.strip() for s in args.views.split(",") if s.strip()]
    table, notes = validate_run(spec, args.run, only=only, views=views, max_sim=args.max_sim,
                                sim_budget_s=args.sim_budget, log=print_log)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or results_root() / "validate" / spec.name / run.run_id / stamp
    write_table(table, out, "validate")
    summ = summary(table)
    write_table(summ, out, "summary")
    atomic_write_text(out / "notes.json", json.dumps(
        {"device": spec.name, "run": str(args.run), "views": views,
         "notes": [{"family": f, "view": v, "note": n} for (f, v), n in notes.items()]},
        indent=1) + "\n")
    figures = plot_families(table, out)
    if args.json:
        rows = [{k: _clean(v) for k, v in r.items()} for r in table.to_dict(orient="records")]
        print(json.dumps(rows))
        return 0

    def pct(v: float) -> str:
        return "-" if not math.isfinite(v) else f"{v:.1f}"

    print(f"validate: device {spec.name}, run {run.device}/{run.run_id}")
    head = ["family", "metric", "rows"] + [f"{v} med|err|%" for v in VIEWS]
    body = [tuple([str(r["family"]), str(r["metric"]), str(r["rows"])]
                  + [f"{pct(r[f'{v}_median_abs_pct'])} (n={r[f'{v}_n']})" for v in VIEWS])
            for r in summ.to_dict(orient="records")]
    print(format_table(body, tuple(head)))
    if args.rows:
        cols = ["workload", "params", "measured"] + list(VIEWS) + [f"err_{v}_pct" for v in VIEWS]
        print()
        print(format_table([tuple(_fmt(r[c]) for c in cols)
                            for r in table.to_dict(orient="records")], tuple(cols)))
    print("\nnotes:")
    for (fam, view), note in notes.items():
        print(f"  {fam:11s} {view:10s} {note}")
    print(f"\nsaved {out}/validate.csv, summary.csv and {len(figures)} figures")
    return 0


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)
