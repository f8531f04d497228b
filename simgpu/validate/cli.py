"""``simgpu validate``: measured figures of a calibration run beside the other three views."""

from __future__ import annotations

import argparse
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simgpu.calibrate.cli import number_option
from simgpu.calibrate.dataset import RunDir
from simgpu.calibrate.summary import format_table
from simgpu.devices import Registry
from simgpu.errors import SimgpuError
from simgpu.io import (
    RESULTS_ENV,
    OutputError,
    atomic_write_text,
    check_output_dir,
    output_dir,
    plain_name,
    results_root,
    write_table,
)

#: The files validate writes in its output folder, besides one PNG per family.
OUTPUTS = ("validate.csv", "validate.parquet", "summary.csv", "summary.parquet", "notes.json")


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
    p.add_argument("--max-sim", default=None, metavar="N",
                   help="at most N simulated rows per curve of a family, spread over its sizes "
                        "(default: every row, cheapest replay first, until --sim-budget is "
                        "spent; the 4 cheapest of each GEMM kernel and dtype)")
    p.add_argument("--sim-budget", default=60.0, metavar="SECONDS",
                   help="wall time the simulated view may spend per family (default 60)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes comparing families side by side (default: CPU count; 0 = "
                        "in this process); each family keeps its --sim-budget")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder, new or without earlier validate results (default: "
                        "results/validate/<device>/<run-id>/<time>)")
    p.add_argument("--held-out", action="store_true",
                   help="only the rows `simgpu fit --half` holds out of its fit (the sizes of "
                        "each curve that alternate with the fitted ones)")
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

    max_sim = (None if args.max_sim is None
               else number_option(args.max_sim, "--max-sim", int, low=0))
    sim_budget = number_option(args.sim_budget, "--sim-budget", low=0)
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    if args.only is not None and not only:
        raise SimgpuError(f"--only {args.only!r}: expected comma-separated family names")
    views = [s.strip() for s in args.views.split(",") if s.strip()]
    if not views:
        raise SimgpuError(f"--views {args.views!r}: expected comma-separated view names")
    spec = Registry(args.models).get(args.device)
    run = RunDir.open(args.run)
    if args.out is not None:  # checked before the views spend their time
        check_output_dir(args.out, "--out")
        _check_fresh(args.out)
    else:
        check_output_dir(results_root(), f"results folder (${RESULTS_ENV})")
    if "learned" in views:  # the predictor caches its forest there
        from simgpu.predict.model import CACHE_ENV

        if os.environ.get(CACHE_ENV):
            check_output_dir(Path(os.environ[CACHE_ENV]), f"predictor cache (${CACHE_ENV})")
    table, notes = validate_run(spec, args.run, only=only, views=views, max_sim=max_sim,
                                sim_budget_s=sim_budget, log=print_log,
                                held_out=args.held_out, workers=args.workers)
    out = _output_folder(args.out, spec.name, run.run_id)
    write_table(table, out, "validate", overwrite=False)
    summ = summary(table)
    write_table(summ, out, "summary", overwrite=False)
    atomic_write_text(out / "notes.json", json.dumps(
        {"device": spec.name, "run": str(args.run), "views": views,
         "notes": [{"family": f, "view": v, "note": n} for (f, v), n in notes.items()]},
        indent=1) + "\n", overwrite=False)
    figures = plot_families(table, out)
    if args.json:
        rows = [{k: _clean(v) for k, v in r.items()} for r in table.to_dict(orient="records")]
        print(json.dumps(rows))
        return 0

    def pct(v: float) -> str:
        return "-" if not math.isfinite(v) else f"{v:.1f}"

    print(f"validate: device {spec.name}, run {run.device}/{run.run_id}"
          + (" (held-out half of the sizes)" if args.held_out else ""))
    head = ["family", "metric", "rows"] + [f"{v} |err|% median / p90" for v in VIEWS]
    body = [tuple([str(r["family"]), str(r["metric"]), str(r["rows"])]
                  + [f"{pct(r[f'{v}_median_abs_pct'])} / {pct(r[f'{v}_p90_abs_pct'])}"
                     f" (n={r[f'{v}_n']})" for v in VIEWS])
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


def _check_fresh(out: Path) -> None:
    """An --out folder must not hold earlier validate results: they are never overwritten."""
    there = [name for name in OUTPUTS if (out / name).exists()]
    if there:
        raise OutputError(f"--out {out}: already holds {', '.join(there)}; results are never "
                          "overwritten (name a new folder)")


def _output_folder(out: Path | None, device: str, run_id: str) -> Path:
    """The folder to write: ``--out`` (made if needed), or a new folder
    ``<results>/validate/<device>/<run-id>/<time>`` (``-2``, ``-3``... added where a run of the
    same second has it), inside the results folder whatever the run's manifest says."""
    if out is not None:
        _check_fresh(out)
        return output_dir(out, "--out")
    parent = results_root() / "validate" / plain_name(device, "device name")
    base = parent / plain_name(run_id, "run id")
    output_dir(base, "results folder")
    if not base.resolve().is_relative_to(parent.resolve()):  # a link planted in the results
        raise OutputError(f"{base}: leads outside the results folder {parent}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        path = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"{path}: cannot create the folder ({exc.strerror})") from None
        return path
    raise OutputError(f"{base}: a thousand validate results of the second {stamp} already")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)
