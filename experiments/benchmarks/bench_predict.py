"""Speed of the GEMM predictor: training time (no cache), predictions per second, and the size
and load time of its cache file against a pickle of the same scikit-learn forests (the former
cache format), on the default training data (calibration runs + NeuSight + GPPerf) or the data
given.

Prints a table and writes ``results/bench_predict/<run-id>/bench_predict.csv``.

    python experiments/benchmarks/bench_predict.py [--data calibration --data neusight ...]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simgpu import devices
from simgpu.io import results_root, write_table
from simgpu.predict import cache, datasets, model
from simgpu.predict.trees import TreeArrays


def _median_s(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _files(forest: model.GemmForest, grown: list[Any], folder: Path,
           repeats: int) -> list[dict[str, Any]]:
    """Size and load time of the cache file, and of a pickle of the same scikit-learn forests
    with the forest's other fields (what the cache held before)."""
    meta, arrays = forest.to_file()
    new = folder / ("0" * 24 + cache.SUFFIX)
    cache.write(new, {"format": cache.FORMAT, "version": cache.FORMAT_VERSION, "forest": meta},
                arrays)
    old = folder / ("0" * 24 + ".pkl")
    with old.open("wb") as fh:
        pickle.dump({"forest": meta, "lo": forest.lo, "hi": forest.hi, "sklearn": grown}, fh,
                    protocol=pickle.HIGHEST_PROTOCOL)

    def load_new() -> None:
        m, a = cache.read(new)
        model.GemmForest.from_file(m["forest"], a)

    def load_old() -> None:
        with old.open("rb") as fh:
            pickle.load(fh)

    return [
        {"what": f"cache file {cache.SUFFIX} (load, median of {repeats})",
         "rows": new.stat().st_size, "seconds": _median_s(load_new, repeats),
         "per_second": 0.0},
        {"what": f"pickle of the scikit-learn forests (load, median of {repeats})",
         "rows": old.stat().st_size, "seconds": _median_s(load_old, repeats),
         "per_second": 0.0},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=None)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5, help="loads timed per file format")
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
    # keep the scikit-learn forests the trees are taken from, for the pickle they once were
    grown: list[Any] = []
    from_sklearn = TreeArrays.from_sklearn.__func__  # type: ignore[attr-defined]

    def keep(cls: type[TreeArrays], forest: Any) -> TreeArrays:
        grown.append(forest)
        return from_sklearn(cls, forest)

    TreeArrays.from_sklearn = classmethod(keep)  # type: ignore[method-assign, assignment]
    for kind in model.KINDS:
        settings = model.Settings(kind=kind, n_estimators=args.trees)
        grown.clear()
        t0 = time.perf_counter()
        forest, _ = model.train(df, settings, use_cache=False)
        train_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            files = _files(forest, list(grown), Path(tmp), args.repeats)
        grown.clear()
        for row in files:
            row["what"] = f"{kind}: {row['what']}, bytes in 'rows'"
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
        rows += files
    table = pd.DataFrame(rows)
    out = results_root() / "bench_predict" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    write_table(table, out, "bench_predict", parquet=False)
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(f"data: {', '.join(specs)}; trees: {args.trees}")
        print(table.to_string(index=False))
    print(f"saved: {out}")


if __name__ == "__main__":
    main()
