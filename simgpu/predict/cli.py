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
from simgpu.io import atomic_write_text, check_output_dir, results_root, write_table

DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8")
TILE_ARGS = ("tile_m", "tile_n", "tile_k", "thread_tile_m", "thread_tile_n", "threads_per_block")
#: Most trees a forest may have. assumption: 50 times the default of 100; more only costs time
#: and memory (about 0.4 MB per tree of the default training data).
MAX_TREES = 5000
#: Seeds numpy and scikit-learn accept (32-bit).
MAX_SEED = 2**32 - 1
#: Most draws of ``evaluate --repeats``. assumption: 5 draws are what the docs report; 100 is
#: well past the point where the mean stops moving.
MAX_REPEATS = 100
#: Largest GEMM size, tile and launch figure: cuBLAS and CUDA take them as 32-bit ints.
MAX_INT = 2**31 - 1


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
        g.add_argument(f"--{name}", type=int, default=0,
                       help="0 = the kernel's default (sgemm_*: a variant of kernels/sgemm.cu)")
    g.add_argument("--split-k", type=int, default=1, help="K split this many ways (1 = none)")
    _data_args(g, "training data (default: calibration runs + NeuSight + GPPerf)")
    g.add_argument("--json", action="store_true", help="print one JSON document")
    g.set_defaults(handler=_cmd_gemm)

    t = sub.add_parser("train", help="train (or load from the cache) and report the training fit")
    _data_args(t, "training data (default: calibration runs + NeuSight + GPPerf)")
    t.add_argument("--kind", choices=("forest", "forest+physics"), default="forest+physics")
    t.add_argument("--trees", type=int, default=100, help=f"1 to {MAX_TREES} (default 100)")
    t.add_argument("--seed", type=int, default=0, help=f"0 to {MAX_SEED}")
    t.add_argument("--no-cache", action="store_true", help="train afresh, do not write the cache")
    t.add_argument("--out", type=Path, default=None, help="results folder (default results/)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(handler=_cmd_train)

    e = sub.add_parser("evaluate", help="metrics on honest splits for every model and dataset")
    _data_args(e, "datasets (default: calibration gpperf neusight uci-sgemm)")
    e.add_argument("--sample", type=int, default=50000,
                   help="rows kept at random from a larger dataset (UCI has 241,600; 0 = all)")
    e.add_argument("--trees", type=int, default=100, help=f"1 to {MAX_TREES} (default 100)")
    e.add_argument("--seed", type=int, default=0, help=f"0 to {MAX_SEED}")
    e.add_argument("--repeats", type=int, default=1,
                   help="draw the random and held-out-group splits this many times (seeds"
                   f" seed..seed+repeats-1) and report the mean of each metric (1 to"
                   f" {MAX_REPEATS})")
    e.add_argument("--no-tune", dest="tune", action="store_false",
                   help="keep the default hyper-parameters instead of choosing them per split by"
                        " inner cross-validation on the training rows")
    e.add_argument("--together", action="store_true",
                   help="evaluate the datasets as one (their GPUs held out in turn, each with its"
                        " few-shot curve), not each on its own")
    e.add_argument("--splits", default=None, metavar="KINDS",
                   help="comma-separated kinds of split to run: random, sizes, tiles, largest,"
                        " gpu (held-out GPU and its few-shot curve); default all")
    e.add_argument("--out", type=Path, default=None, help="results folder (default results/)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=_cmd_evaluate)

    f = sub.add_parser("fit-power",
                       help="fit energies per event to measured GEMM power; prints TOML")
    _data_args(f, "calibration data with power (default: calibration)")
    f.add_argument("--device", required=True)
    f.add_argument("--cv", type=int, default=0, metavar="K",
                   help="also report the power error on sizes held out of the fit (K folds, 2"
                        " to the number of sizes; 0 = none)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(handler=_cmd_fit_power)

    c = sub.add_parser(
        "cache", help="list the trained forests kept on disk, or remove them (--clear)",
        description="The predictor's cache: one file per trained forest, under $SIMGPU_CACHE"
                    "/predict (default ~/.cache/simgpu/predict), at most $SIMGPU_CACHE_MAX_MB"
                    " megabytes (default 1000; the least recently used files go first).")
    c.add_argument("--clear", action="store_true", help="remove every file of the cache")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=_cmd_cache)


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


def _int_in(flag: str, value: int, low: int, high: int, note: str = "") -> int:
    """``value`` if ``low <= value <= high``; else a SimgpuError naming the flag."""
    if not low <= value <= high:
        raise SimgpuError(f"{flag} {value}: expected an integer from {low} to {high}{note}")
    return value


def _check_out(out: Path | None) -> None:
    """A clear error before any work where ``--out`` cannot become a folder."""
    check_output_dir(out if out is not None else results_root(), "--out")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _gemm_tiles(spec: Any, args: argparse.Namespace) -> dict[str, int]:
    """The checked sizes and tile flags of ``predict gemm``: the tile arguments to use (all 0:
    the kernel's default), or a SimgpuError naming the flag, the value and what was expected."""
    from simgpu import catalogue
    from simgpu.analytical.params import DTYPE_BYTES, DTYPE_OUT_BYTES

    for flag, v in (("--m", args.m), ("--n", args.n), ("--k", args.k)):
        _int_in(flag, v, 1, MAX_INT)
    tiles = {name: getattr(args, name) for name in TILE_ARGS}
    for name, v in tiles.items():
        _int_in(_flag(name), v, 0, MAX_INT, " (0: the kernel's default)")
    gemms = [k.name for k in catalogue.kernels_of_kind("gemm")]
    if args.kernel not in gemms:
        raise SimgpuError(f"--kernel {args.kernel!r}: expected a GEMM kernel, one of {gemms}")
    entry = catalogue.get(args.kernel)
    entry.check_dtype(args.dtype)
    given = {k: v for k, v in tiles.items() if v}
    if entry.variants:  # our own kernels: the variants kernels/sgemm.cu compiles
        if args.split_k != 1:
            raise SimgpuError(f"--split-k {args.split_k}: {args.kernel} does not split K"
                              f" (kernels/{entry.source}); expected 1")
        if given:
            match = [v for v in entry.variants
                     if all(v.analytical_tiles()[k] == x for k, x in given.items())]
            if not match:
                shown = ", ".join(f"{_flag(k)} {x}" for k, x in given.items())
                known = "; ".join(
                    f"{v.name}: tile {'x'.join(map(str, v.tile))}, thread tile"
                    f" {'x'.join(map(str, v.thread_tile))}, {v.threads_per_block} threads"
                    for v in entry.variants)
                raise SimgpuError(f"{shown}: no variant of {args.kernel} has it; expected the"
                                  f" tiles of one of kernels/{entry.source}'s variants ({known})")
            tiles = dict(match[0].analytical_tiles())
    else:
        _int_in("--split-k", args.split_k, 1, args.k, " (1: no split; at most K)")
        limit = spec.compute.max_threads_per_block
        _int_in("--threads-per-block", tiles["threads_per_block"], 0, limit,
                f" on {spec.name} (0: the kernel's default)")
        for t, tt in (("tile_m", "thread_tile_m"), ("tile_n", "thread_tile_n")):
            _int_in(_flag(tt), tiles[tt], 0, tiles[t] or MAX_INT,
                    f" (at most {_flag(t)}; 0: the kernel's default)")
        if given and not (tiles["tile_m"] and tiles["tile_n"]):
            shown = ", ".join(_flag(k) for k in given)
            raise SimgpuError(f"{shown} for {args.kernel}: give --tile-m and --tile-n as well,"
                              " or no tile flag (the analytical model then picks the tiles)")
        if all(tiles[k] for k in ("tile_m", "tile_n", "thread_tile_m", "thread_tile_n",
                                  "threads_per_block")):
            each = tiles["thread_tile_m"] * tiles["thread_tile_n"]
            if tiles["threads_per_block"] * each != tiles["tile_m"] * tiles["tile_n"]:
                raise SimgpuError(
                    f"--threads-per-block {tiles['threads_per_block']} x thread tile"
                    f" {tiles['thread_tile_m']}x{tiles['thread_tile_n']} covers"
                    f" {tiles['threads_per_block'] * each} elements of C, the block tile"
                    f" {tiles['tile_m']}x{tiles['tile_n']} has {tiles['tile_m'] * tiles['tile_n']}"
                )
    bytes_ = (DTYPE_BYTES[args.dtype] * (args.m * args.k + args.k * args.n)
              + DTYPE_OUT_BYTES[args.dtype] * args.m * args.n)
    have = spec.dram.size_GiB * 2**30
    if bytes_ > have:
        raise SimgpuError(f"GEMM {args.m} x {args.n} x {args.k} {args.dtype}: its arrays take"
                          f" {bytes_ / 2**30:.4g} GiB; {spec.name} has {spec.dram.size_GiB:g} GiB"
                          " of device memory")
    return tiles if given else {name: 0 for name in TILE_ARGS}


def _cannot_run(spec: Any, args: argparse.Namespace, an: Any) -> SimgpuError:
    """Why the analytical model found no finite time: the launch does not fit an SM."""
    from simgpu.arch.occupancy import occupancy

    what = (f"{args.kernel} with tile {int(an['tile_m'])}x{int(an['tile_n'])}x"
            f"{int(an['tile_k'])} and {int(an['threads_per_block'])} threads per block")
    try:
        occupancy(spec, int(an["threads_per_block"]), int(an["regs_per_thread"]),
                  int(an["smem_per_block_B"]))
    except (SimgpuError, ValueError, OverflowError) as exc:
        return SimgpuError(f"{what} cannot run on {spec.name}: {exc}")
    return SimgpuError(f"{what}: the analytical model gives no finite time on {spec.name}")


def _cmd_gemm(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    import numpy as np

    from simgpu import analytical, devices
    from simgpu.predict import predict_gemm

    spec = devices.get(args.device)
    tiles = _gemm_tiles(spec, args)
    params = {
        "M": args.m, "N": args.n, "K": args.k, "dtype": args.dtype, "kernel": args.kernel,
        **tiles, "split_k": args.split_k,
    }
    t0 = time.perf_counter()
    an = analytical.gemm(
        spec, args.m, args.n, args.k, args.dtype, kernel=args.kernel, **tiles,
        split_k=args.split_k,
    ).iloc[0]
    if not (np.isfinite(an["time_s"]) and an["time_s"] > 0):
        raise _cannot_run(spec, args, an)
    t_an = time.perf_counter() - t0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        learned = predict_gemm(spec, params, data=args.data, log=_log).iloc[0]
        t_le = time.perf_counter() - t0
    notes = [str(w.message) for w in caught]
    for n in notes:
        _log(f"warning: {n}")
    if not all(np.isfinite(learned[c]) and learned[c] > 0 for c in ("time_s", "power_W")):
        raise SimgpuError(f"the learned model gave time {learned['time_s']!r} s and power"
                          f" {learned['power_W']!r} W for this GEMM, expected finite numbers > 0")
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
            "basis": str(learned["basis"]),
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
          f"  +/- {le['time_s_spread'] * 1e3:.3g} ms, "
          + (f"+/- {le['power_W_spread']:.0f} W" if np.isfinite(le["power_W_spread"])
             else "power not learned"))
    print(f"learned: {le['basis']}; spread: standard deviation over the trees")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    import pandas as pd

    from simgpu.predict import datasets, evaluate, model

    _int_in("--trees", args.trees, 1, MAX_TREES)
    _int_in("--seed", args.seed, 0, MAX_SEED)
    _check_out(args.out)
    specs = args.data or datasets.default_training_specs()
    if not specs:
        raise SimgpuError("predict train: no training data (no calibration run with a gemm"
                          f" table, no published datasets under {datasets.data_dir()}); give"
                          " --data")
    df = datasets.load_many(specs)
    settings = model.Settings(kind=args.kind, n_estimators=args.trees, seed=args.seed)
    forest, info = model.train(df, settings, use_cache=not args.no_cache, log=_log, data=specs)
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
    write_table(table, out, "training_fit", overwrite=False)
    atomic_write_text(out / "model.json", json.dumps(_jsonable(info_doc), indent=2),
                      overwrite=False)
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

    _int_in("--sample", args.sample, 0, MAX_INT, " (0: every row)")
    _int_in("--trees", args.trees, 1, MAX_TREES)
    _int_in("--seed", args.seed, 0, MAX_SEED)
    _int_in("--repeats", args.repeats, 1, MAX_REPEATS)
    _check_out(args.out)
    kinds = None
    if args.splits is not None:
        kinds = {k.strip() for k in args.splits.split(",")}
        bad = sorted(kinds - set(evaluate.SPLIT_KINDS))
        if bad or not kinds:
            raise SimgpuError(f"--splits {args.splits!r}: {bad or 'nothing'} unknown; expected"
                              f" a comma-separated list of {', '.join(evaluate.SPLIT_KINDS)}")
    specs = args.data or ["calibration", "gpperf", "neusight", "uci-sgemm"]
    settings = model.Settings(n_estimators=args.trees, seed=args.seed)
    # every dataset read and checked before the first (long) evaluation starts
    frames = []
    for spec in specs:
        df = datasets.load(spec, sample=args.sample or None, seed=args.seed)
        name = Path(str(spec)).name if str(spec) not in datasets.SHORT_NAMES else str(spec)
        if len(df) < evaluate.MIN_ROWS:
            raise SimgpuError(f"{spec}: {len(df)} row(s); evaluation holds"
                              f" {evaluate.TEST_FRACTION:.0%} of the rows out and needs at least"
                              f" {evaluate.MIN_ROWS}")
        frames.append((name, df))
    if args.together and len(frames) > 1:
        name = "+".join(n for n, _ in frames)
        frames = [(name, datasets.validate(pd.concat([f for _, f in frames],
                                                     ignore_index=True), name))]
    tables = []
    for name, df in frames:
        _log(f"evaluating {name}: {len(df)} rows")
        tables.append(evaluate.evaluate(df, name, settings, seed=args.seed,
                                        log=None if args.json else _log,
                                        repeats=args.repeats, tune=args.tune, kinds=kinds))
    if not tables:
        raise SimgpuError("predict evaluate: no dataset given")
    table = evaluate.summary_gpu(pd.concat(tables, ignore_index=True))
    published = pd.DataFrame(list(evaluate.PUBLISHED))
    out = _run_dir(args.out, "evaluate")
    write_table(table, out, "evaluation", overwrite=False)
    write_table(published, out, "published", overwrite=False)
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
    for c in ("n_train", "n_test", "repeats", "shots"):
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
    sizes = len(df[["M", "N", "K"]].drop_duplicates())
    if args.cv != 0 and not 2 <= args.cv <= sizes:
        raise SimgpuError(f"--cv {args.cv}: expected 0 (no held-out check) or 2 to {sizes} folds"
                          f" ({sizes} distinct sizes have power for {args.device})")
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



def _age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= span:
            return f"{seconds / span:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


def _trained_on(e: Any) -> str:
    if e.kind == "old pickle":
        return "a pickle of an earlier simgpu: never loaded (a pickle can run code); --clear"
    if e.kind == "unfinished write":
        return "left by an interrupted write; --clear"
    if e.meta is None:
        return f"not usable ({e.problem}); replaced when next trained"
    s = (e.meta.get("forest") or {}).get("settings") or {}
    on = e.meta.get("trained_on") or {}
    data = on.get("data") or on.get("datasets") or []
    return (f"{s.get('kind', '?')}, {s.get('n_estimators', '?')} trees, seed {s.get('seed', '?')}:"
            f" {on.get('rows', '?')} rows of {', '.join(map(str, data)) or '?'}")


def _cmd_cache(args: argparse.Namespace) -> int:
    # lazy, as in every command module: `simgpu` builds all parsers at start-up
    from simgpu.predict import cache

    folder = check_output_dir(cache.cache_dir(), f"predictor cache (${cache.CACHE_ENV})")
    limit = cache.limit_bytes()
    if args.clear:
        removed = cache.clear()
        total = sum(e.bytes for e in removed)
        if args.json:
            print(json.dumps({"folder": str(folder), "removed": [e.path.name for e in removed],
                              "bytes": total}))
            return 0
        print(f"removed {len(removed)} file(s), {total / 1e6:.1f} MB, from {folder}")
        return 0
    files = cache.entries(read_meta=True)
    total = sum(e.bytes for e in files)
    now = time.time()
    if args.json:
        print(json.dumps(_jsonable({
            "folder": str(folder), "bytes": total, "limit_bytes": limit,
            "entries": [{"file": e.path.name, "bytes": e.bytes, "age_s": round(now - e.mtime),
                         "kind": e.kind, "trained_on": _trained_on(e)} for e in files],
        }), indent=2))
        return 0
    print(f"{folder}: {len(files)} file(s), {total / 1e6:.1f} MB of {limit / 1e6:g} MB"
          f" (${cache.LIMIT_ENV}; least recently used removed first)")
    if files:
        print(f"{'file':<30}{'size':>10}{'used':>9}  trained on")
        for e in reversed(files):  # most recently used first
            print(f"{e.path.name:<30}{e.bytes / 1e6:>7.1f} MB{_age(now - e.mtime):>9}"
                  f"  {_trained_on(e)}")
    return 0
