"""Speed of the GEMM predictor: training time (no cache) and predictions per second, on the
default training data (calibration runs + NeuSight + GPPerf) or the data given.

Prints a table and writes ``results/bench_predict/<run-id>/bench_predict.csv``.

    python experiments/benchmarks/bench_predict.py [--data calibration --data neusight ...]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from simgpu import devices
from simgpu.io import results_root, write_table
from simgpu.predict import datasets, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=None)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()
    specs = args.data or datasets.default_training_specs()
    t0 = time.perf_counter()
    df = datasets.load_many(specs)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    spec = devices.get("h100-sxm")
    n = args.points
    query = pd.DataFrame({
        "device": spec.name, "dtype": rng.choice(["fp32", "tf32", "fp16", "bf16"], n),
        "M": rng.integers(256, 8192, n), "N": rng.integers(256, 8192, n),
        "K": rng.integers(256, 8192, n), "time_s": 1.0,
    })
    query = datasets.validate(query, "benchmark grid")
    rows = [{"what": "load training data", "rows": len(df), "seconds": load_s,
             "per_second": len(df) / load_s}]
    for kind in model.KINDS:
        settings = model.Settings(kind=kind, n_estimators=args.trees)
        t0 = time.perf_counter()
        forest, _ = model.train(df, settings, use_cache=False)
        train_s = time.perf_counter() - t0
        rows.append({"what": f"train {kind}", "rows": len(df), "seconds": train_s,
                     "per_second": len(df) / train_s})
        t0 = time.perf_counter()
        forest.predict(query, warn=False)
        pred_s = time.perf_counter() - t0
        rows.append({"what": f"predict {kind} (batch)", "rows": n, "seconds": pred_s,
                     "per_second": n / pred_s})
        t0 = time.perf_counter()
        for i in range(20):
            forest.predict(query.iloc[i : i + 1], warn=False)
        one_s = (time.perf_counter() - t0) / 20
        rows.append({"what": f"predict {kind} (one point)", "rows": 1, "seconds": one_s,
                     "per_second": 1 / one_s})
    table = pd.DataFrame(rows)
    out = results_root() / "bench_predict" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    write_table(table, out, "bench_predict", parquet=False)
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(f"data: {', '.join(specs)}; trees: {args.trees}")
        print(table.to_string(index=False))
    print(f"saved: {out}")


if __name__ == "__main__":
    main()
