"""``simgpu predict``: learned and analytical GEMM estimates, training and evaluation."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simgpu.errors import SimgpuError
from simgpu.io import atomic_write_text, results_root, write_table

DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict",
        help="GEMM runtime and power: analytical and learned (random forest)",
        description="Analytical and learned GEMM estimates; train and evaluate the predictor.",
    )
    sub = p.add_subparsers(dest="predict_command", metavar="SUBCOMMAND")
    sub.required = True

    g = sub.add_parser("gemm", help="estimate one GEMM: analytical and learned side by side")
    g.add_argument("--device", required=True, help="device name (models/<name>.toml)")
    g.add_argument("--m", type=int, required=True)
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--k", type=int, required=True)
    g.add_argument("--dtype", choices=DTYPES, default="fp32",
                   help="fp32 = FFMA (no tensor cores); tf32/fp16/bf16/fp8 on tensor cores")
    g.add_argument("--kernel", default="cublas",
                   help="cublas (default), sgemm_regblock, sgemm_tiled, sgemm_naive, cutlass")
    for name in ("tile-m", "tile-n", "tile-k", "thread-tile-m", "thread-tile-n",
                 "threads-per-block"):
        g.add_argument(f"--{name}", type=int, default=0, help="0 = the kernel's default")
    g.add_argument("--split-k", type=int, default=1)
    _data_args(g, "training data (default: calibration runs + NeuSight + GPPerf)")
    g.add_argument("--json", action="store_true", help="print one JSON document")
    g.set_defaults(handler=_cmd_gemm)

    t = sub.add_parser("train", help="train (or load from the cache) and report the training fit")
    _data_args(t, "training data (default: calibration runs + NeuSight + GPPerf)")
    t.add_argument("--kind", choices=("forest", "forest+physics"), default="forest+physics")
    t.add_argument("--trees", type=int, default=100)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-cache", action="store_true", help="train afresh, do not write the cache")
    t.add_argument("--out", type=Path, default=None, help="results folder (default results/)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(handler=_cmd_train)

    e = sub.add_parser("evaluate", help="metrics on honest splits for every model and dataset")
    _data_args(e, "datasets (default: calibration gpperf neusight uci-sgemm)")
    e.add_argument("--sample", type=int, default=50000,
                   help="rows kept at random from a larger dataset (UCI has 241,600; 0 = all)")
    e.add_argument("--trees", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--repeats", type=int, default=1,
                   help="draw the random and held-out-group splits this many times (seeds"
                   " seed..seed+repeats-1) and report the mean of each metric")
    e.add_argument("--no-tune", dest="tune", action="store_false",
                   help="keep the default hyper-parameters instead of choosing them per split by"
                        " inner cross-validation on the training rows")
    e.add_argument("--out", type=Path, default=None, help="results folder (default results/)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=_cmd_evaluate)

    f = sub.add_parser("fit-power",
                       help="fit energies per event to measured GEMM power; prints TOML")
    _data_args(f, "calibration data with power (default: calibration)")
    f.add_argument("--device", required=True)
    f.add_argument("--cv", type=int, default=0, metavar="K",
                   help="also report the power error on sizes held out of the fit (K folds)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(handler=_cmd_fit_power)


def _data_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--data", action="append", default=None, metavar="PATH",
                   help=f"{what}: a CSV/Parquet in the GEMM schema, a calibration run folder,"
                   " or gpperf/neusight/uci-sgemm/calibration (repeatable)")


def _log(msg: str) -> None:
    print(f"simgpu predict: {msg}", file=sys.stderr)


def _jsonable(value: Any) -> Any:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    import numpy as np

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _run_dir(out: Path | None, what: str) -> Path:
    root = out if out is not None else results_root()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = root / "predict" / what / stamp
    n = 1
    while path.exists():  # never overwrite an earlier result
        n += 1
        path = root / "predict" / what / f"{stamp}-{n}"
    return path


def _cmd_gemm(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    from simgpu import analytical, devices
    from simgpu.predict import predict_gemm

    spec = devices.get(args.device)
    params = {
        "M": args.m, "N": args.n, "K": args.k, "dtype": args.dtype, "kernel": args.kernel,
        "tile_m": args.tile_m, "tile_n": args.tile_n, "tile_k": args.tile_k,
        "thread_tile_m": args.thread_tile_m, "thread_tile_n": args.thread_tile_n,
        "threads_per_block": args.threads_per_block, "split_k": args.split_k,
    }
    t0 = time.perf_counter()
    an = analytical.gemm(
        spec, args.m, args.n, args.k, args.dtype, kernel=args.kernel,
        tile_m=args.tile_m, tile_n=args.tile_n, tile_k=args.tile_k,
        thread_tile_m=args.thread_tile_m, thread_tile_n=args.thread_tile_n,
        threads_per_block=args.threads_per_block, split_k=args.split_k,
    ).iloc[0]
    t_an = time.perf_counter() - t0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        learned = predict_gemm(spec, params, data=args.data, log=_log).iloc[0]
        t_le = time.perf_counter() - t0
    notes = [str(w.message) for w in caught]
    for n in notes:
        _log(f"warning: {n}")
    flops = 2.0 * args.m * args.n * args.k
    doc = {
        "device": spec.name,
        "M": args.m, "N": args.n, "K": args.k, "dtype": args.dtype, "kernel": args.kernel,
        "flops": flops,
        "analytical": {
            "time_s": float(an["time_s"]),
            "tflops": float(an["tflops"]),
            "power_W": float(an["power_W"]),
            "energy_J": float(an["energy_J"]),
            "bound": str(an["bound"]),
            "power_model": str(an["power_model"]),
            "clock_MHz": float(an["clock_MHz"]),
            "tile": [int(an["tile_m"]), int(an["tile_n"]), int(an["tile_k"])],
            "waves": float(an["waves"]),
            "tail_efficiency": float(an["tail_efficiency"]),
            "seconds": t_an,
        },
        "learned": {
            "time_s": float(learned["time_s"]),
            "time_s_spread": float(learned["time_s_spread"]),
            "tflops": flops / float(learned["time_s"]) / 1e12,
            "power_W": float(learned["power_W"]),
            "power_W_spread": float(learned["power_W_spread"]),
            "energy_J": float(learned["energy_J"]),
            "power_source": str(learned["power_source"]),
            "extrapolated": bool(learned["extrapolated"]),
            "seconds": t_le,
        },
        "warnings": notes,
    }
    if args.json:
        print(json.dumps(_jsonable(doc), indent=2))
        return 0
    a, le = doc["analytical"], doc["learned"]
    print(f"GEMM {args.m} x {args.n} x {args.k} {args.dtype} ({args.kernel}) on {spec.name}")
    print(f"{'':<11}{'time':>14}{'TFLOP/s':>10}{'power':>9}{'energy':>14}  bound / spread")
    print(f"{'analytical':<11}{a['time_s'] * 1e3:>11.4g} ms{a['tflops']:>10.1f}"
          f"{a['power_W']:>7.0f} W{a['energy_J']:>12.4g} J  {a['bound']}"
          f" (power: {a['power_model']}, {a['clock_MHz']:.0f} MHz)")
    print(f"{'learned':<11}{le['time_s'] * 1e3:>11.4g} ms{le['tflops']:>10.1f}"
          f"{le['power_W']:>7.0f} W{le['energy_J']:>12.4g} J"
          f"  +/- {le['time_s_spread'] * 1e3:.3g} ms, +/- {le['power_W_spread']:.0f} W")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    import pandas as pd

    from simgpu.predict import datasets, evaluate, model

    specs = args.data or datasets.default_training_specs()
    df = datasets.load_many(specs)
    settings = model.Settings(kind=args.kind, n_estimators=args.trees, seed=args.seed)
    forest, info = model.train(df, settings, use_cache=not args.no_cache, log=_log)
    pred = forest.predict(df, warn=False)
    rows = []
    for ds_name, idx in df.groupby("dataset").groups.items():
        for target, col in (("time", "time_s"), ("power", "power_W")):
            y = df.loc[idx, col].to_numpy(float)
            keep = pd.notna(y)
            if keep.any():
                m = evaluate.metrics(y[keep], pred.loc[idx, col].to_numpy(float)[keep])
                rows.append({"dataset": ds_name, "target": target, "n": int(keep.sum()),
                             "fit": "training rows (in-sample)", **m})
    table = pd.DataFrame(rows)
    out = _run_dir(args.out, "train")
    info_doc = {**info, "data": specs, "rows": len(df), "settings": vars(settings).copy()
                if hasattr(settings, "__dict__") else str(settings), "features": forest.columns}
    write_table(table, out, "training_fit")
    atomic_write_text(out / "model.json", json.dumps(_jsonable(info_doc), indent=2))
    if args.json:
        print(json.dumps(_jsonable({"info": info_doc, "training_fit": table.to_dict("records"),
                                    "saved": str(out)}), indent=2))
        return 0
    state = "loaded from cache" if info["cached"] else f"trained in {info['train_s']:.1f} s"
    print(f"{settings.kind} on {len(df)} rows of {', '.join(specs)}: {state}")
    print(f"cache: {info['cache_path']}")
    print(table.round(4).to_string(index=False))
    print(f"saved: {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    import pandas as pd

    from simgpu.predict import datasets, evaluate, model

    specs = args.data or ["calibration", "gpperf", "neusight", "uci-sgemm"]
    settings = model.Settings(n_estimators=args.trees, seed=args.seed)
    tables = []
    for spec in specs:
        df = datasets.load(spec, sample=args.sample or None, seed=args.seed)
        name = Path(str(spec)).name if str(spec) not in datasets.SHORT_NAMES else str(spec)
        _log(f"evaluating {name}: {len(df)} rows")
        tables.append(evaluate.evaluate(df, name, settings, seed=args.seed,
                                        log=None if args.json else _log,
                                        repeats=max(1, args.repeats), tune=args.tune))
    if not tables:
        raise SimgpuError("predict evaluate: no dataset given")
    table = evaluate.summary_gpu(pd.concat(tables, ignore_index=True))
    published = pd.DataFrame(list(evaluate.PUBLISHED))
    out = _run_dir(args.out, "evaluate")
    write_table(table, out, "evaluation")
    write_table(published, out, "published")
    if args.json:
        print(json.dumps(_jsonable({
            "evaluation": table.to_dict("records"),
            "published": published.to_dict("records"),
            "settings": {"trees": args.trees, "seed": args.seed, "sample": args.sample,
                         "repeats": args.repeats, "tune": args.tune},
            "saved": str(out),
        })))
        return 0
    show = table.drop(columns=["seconds"]).copy()
    for c in ("r2", "mape_pct", "median_ape_pct", "level_free_mape_pct", "mape_pct_sd"):
        if c not in show.columns:
            continue
        show[c] = show[c].round(3 if c == "r2" else 1)
    for c in ("n_train", "n_test", "repeats"):
        if c in show.columns:
            show[c] = show[c].round(0).astype("Int64")
    print(show.to_string(index=False))
    print("\npublished figures for comparison:")
    print(published.to_string(index=False))
    print(f"saved: {out}")
    return 0


def _cmd_fit_power(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    from simgpu import devices
    from simgpu.analytical.params import DeviceParams
    from simgpu.calibrate.fit import fit_gemm_energies, power_fit_checks
    from simgpu.predict import datasets

    specs = args.data or ["calibration"]
    df = datasets.load_many(specs)
    df = df[(df["device"] == args.device) & df["power_W"].notna()].reset_index(drop=True)
    if df.empty:
        raise SimgpuError(f"fit-power: no rows with power_W for device {args.device!r} in {specs}")
    p = DeviceParams.from_spec(devices.get(args.device))
    energies, info, _ = fit_gemm_energies(df, p)
    checks = power_fit_checks(df, p, energies, args.cv)
    if args.json:
        print(json.dumps(_jsonable({"device": args.device, "energy_pJ": energies, "fit": info,
                                    "checks": checks, "static_W": p.static_W, "data": specs})))
        return 0
    print(f"# energies fitted to {int(info['rows'])} GEMM rows of {', '.join(specs)}"
          f" (static_W {p.static_W} W held): analytical power R^2 {info['r2']:.2f},"
          f" rms {info['rms_W']:.0f} W, mean |error| {info['mape_pct']:.1f}%"
          f" (first step, NNLS at the measured times and clocks: R^2 {info['nnls_r2']:.2f})")
    if "throttled_rows" in checks:
        print(f"# {checks['throttled_rows']:.0f} rows ran below 98% of the boost clock: measured"
              f" median {checks['throttled_measured_MHz']:.0f} MHz, model"
              f" {checks['throttled_model_MHz']:.0f} MHz; the model lowers the clock of"
              f" {checks['capped_unthrottled_rows']:.0f} rows that ran at the boost clock")
    if "cv_mape_pct" in checks:
        print(f"# sizes held out of the fit ({args.cv} folds): power mean |error|"
              f" {checks['cv_mape_pct']:.1f}%, median {checks['cv_median_ape_pct']:.1f}%")
    print("[power.energy_pJ]")
    for k, v in energies.items():
        print(f"{k} = {v:.4g}")
    return 0

