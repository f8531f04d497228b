"""``simgpu calibrate``: measure the local GPU and write a calibration run."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from simgpu.calibrate.dataset import RunDir
from simgpu.calibrate.summary import format_table, headline
from simgpu.devices import Registry
from simgpu.errors import SimgpuError


def number_option(
    value: str | float, option: str, kind: type = float, *, low: float | None = None,
    high: float | None = None, gt: bool = False,
) -> Any:
    """The value of a number option (text from the command line, or its default) as ``kind``
    (int or float), finite and within ``[low, high]`` (``gt``: above ``low``); a SimgpuError
    naming the option, the value and what was expected otherwise."""
    word = "an integer" if kind is int else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if gt else '>='} {low:g}")
    if high is not None:
        bounds.append(f"<= {high:g}")
    expected = f"{word} {' and '.join(bounds)}".strip()
    shown = repr(value) if isinstance(value, str) else str(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    try:
        if kind is int:
            if isinstance(value, float | bool):
                raise ValueError
            number: float = int(value)
        else:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
    except (ValueError, TypeError, OverflowError):
        raise SimgpuError(f"{option} {shown}: expected {expected}") from None
    if not math.isfinite(number):
        raise SimgpuError(f"{option} {shown}: expected {expected} (finite)")
    if low is not None and (number <= low if gt else number < low):
        raise SimgpuError(f"{option} {shown}: expected {expected}")
    if high is not None and number > high:
        raise SimgpuError(f"{option} {shown}: expected {expected}")
    return number


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="measure the local GPU (CuPy + NVML) into calibration/<device>/<run-id>/",
        description="Run the calibration benchmarks on the local GPU. Needs CuPy and a CUDA GPU.",
    )
    level = p.add_mutually_exclusive_group()
    level.add_argument("--quick", dest="level", action="store_const", const="quick",
                       help="every benchmark on a small grid (under 5 minutes on an H100)")
    level.add_argument("--full", dest="level", action="store_const", const="full",
                       help="full grids, including the GEMM sweep for the predictor")
    p.set_defaults(level="quick")
    p.add_argument("--only", metavar="NAMES", default=None,
                   help="comma-separated benchmarks (launch, pchase, stream, cachebw, shared, "
                        "pcie, transpose, reduction, gemv, gemm)")
    p.add_argument("--out", metavar="DIR", type=Path, default=Path("calibration"),
                   help="root folder of runs (default: ./calibration)")
    p.add_argument("--resume", metavar="RUN_DIR", type=Path, default=None,
                   help="continue an interrupted run in RUN_DIR")
    p.add_argument("--device", default=None,
                   help="simgpu device name to file the run under (default: from the GPU name)")
    p.add_argument("--power-seconds", default=1.0, metavar="SECONDS",
                   help="length of each power window in seconds (default 1.0)")
    p.add_argument("--tag", default="", help="suffix for the run id")
    p.add_argument("--deadline-s", default=None, metavar="SECONDS",
                   help="stop between two points once this many seconds have passed; the run "
                        "stays resumable and the command exits with status 3")
    p.add_argument("--json", action="store_true", help="print the run's headline figures as JSON")
    p.set_defaults(handler=_calibrate)

    s = subparsers.add_parser("calibration-summary",
                              help="headline figures of a calibration run")
    s.add_argument("run", type=Path, help="run folder")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=_summary)

    c = subparsers.add_parser(
        "calibration-close",
        help="close an interrupted run that cannot resume: partial tables kept, marked incomplete",
    )
    c.add_argument("run", type=Path, help="run folder")
    c.add_argument("--reason", required=True, help="why the run cannot be resumed")
    c.set_defaults(handler=_close)

    f = subparsers.add_parser(
        "fit",
        help="fit device parameters to a calibration run; write models/<device>-cal-<run>.toml",
    )
    f.add_argument("run", type=Path, help="calibration run folder")
    f.add_argument("--base", default=None,
                   help="device model the run calibrates (default: the run's device)")
    f.add_argument("--write", action="store_true",
                   help="write the calibrated device file (default: print the fit only)")
    f.add_argument("--models-out", type=Path, default=None,
                   help="folder for the calibrated file (default: the models folder in use)")
    f.add_argument("--half", action="store_true",
                   help="fit on half of each curve's sizes (alternate sizes, smallest first) and "
                        "write <device>-cal-<run>-half.toml; `simgpu validate --held-out` judges "
                        "it on the other half")
    f.add_argument("--json", action="store_true", help="print the fitted values as JSON")
    f.set_defaults(handler=_fit)


def _calibrate(args: argparse.Namespace) -> int:
    # lazy: the benchmarks load numpy, and `simgpu` builds all parsers at start-up
    from simgpu.calibrate.runner import run_calibration

    only = [x.strip() for x in args.only.split(",") if x.strip()] if args.only else None
    if args.only is not None and not only:
        raise SimgpuError(f"--only {args.only!r}: expected comma-separated benchmark names")
    power_seconds = number_option(args.power_seconds, "--power-seconds", low=0, gt=True,
                                  high=86400)
    deadline_s = None if args.deadline_s is None else number_option(
        args.deadline_s, "--deadline-s", low=0, gt=True)
    run = run_calibration(level=args.level, only=only, out_root=args.out, resume=args.resume,
                          device=args.device, power_seconds=power_seconds,
                          run_tag=args.tag, deadline_s=deadline_s)
    if run.manifest()["status"] != "complete":
        return 3  # stopped at the deadline (run_calibration said how to go on)
    return _print_summary(run.path, args.json)


def _close(args: argparse.Namespace) -> int:
    run = RunDir.open(args.run)
    closed = run.close_incomplete(args.reason)
    tables = run.manifest()["tables"]
    for name in closed:
        print(f"{name}: {tables[name]['points']} points kept, marked incomplete")
    print(f"{args.run}: status incomplete")
    return 0


def _fit(args: argparse.Namespace) -> int:
    # lazy: the fit loads scipy and pandas, and `simgpu` builds all parsers at start-up
    from simgpu.calibrate.fit import fit_run, fitted_frame, write_calibrated_model
    from simgpu.io import check_output_dir

    run = RunDir.open(args.run)
    registry = Registry(args.models)
    base_name = args.base or run.device
    base = registry.get(base_name)
    out_dir = args.models_out or registry.folder
    if args.write:  # before the fit, which takes a while
        check_output_dir(out_dir, "--models-out")
    fitted = fit_run(args.run, base, half=args.half)
    target = None
    if args.write:
        target = write_calibrated_model(args.run, base, registry.folder / f"{base_name}.toml",
                                        fitted, out_dir, half=args.half)
    if args.json:
        rows = fitted_frame(fitted).to_dict(orient="records")
        for row in rows:
            for k, v in row.items():
                if isinstance(v, float) and math.isnan(v):
                    row[k] = None
        print(json.dumps({"run": str(args.run), "base_model": base_name,
                          "written": str(target) if target else None, "fitted": rows}))
        return 0
    def cell(v: float | None) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"

    table = [(f.name, f"{f.value:.5g}", f.unit, cell(f.low), cell(f.high), f.key or "-",
              "yes" if f.applied else "no", f.source) for f in fitted]
    print(format_table(table, ("parameter", "value", "unit", "low", "high", "key", "applied",
                               "source")))
    if target:
        print(f"wrote {target}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    return _print_summary(args.run, args.json)


def _print_summary(path: Path, as_json: bool) -> int:
    run = RunDir.open(path)
    rows = headline(run)
    if as_json:
        print(json.dumps([{"figure": f, "value": v, "how": h} for f, v, h in rows]))
    else:
        print(f"run {path}")
        print(format_table(rows, ("figure", "value", "how")))
    return 0
