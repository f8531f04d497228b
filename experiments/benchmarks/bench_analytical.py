"""Speed of the analytical model: estimates per second on a 100,000-point GEMM grid, and on the
simple kernels; accuracy of the GEMM model against the measured H100 calibration runs.

Prints a table and writes ``results/bench_analytical/<run-id>/bench_analytical.csv``.

    python experiments/benchmarks/bench_analytical.py [--points 100000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from simgpu import analytical, devices
from simgpu.io import results_root, write_table
from simgpu.predict import datasets, features


def _best_of(fn: Any, repeats: int = 3) -> tuple[Any, float]:
    best = float("inf")
    value = None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return value, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--device", default="h100-sxm")
    args = parser.parse_args()
    spec = devices.get(args.device)
    rng = np.random.default_rng(0)
    n = args.points
    M, N, K = (rng.integers(64, 16384, n) for _ in range(3))
    dtypes = rng.choice(["fp32", "tf32", "fp16", "bf16", "fp8"], n)
    tiles = rng.choice([32, 64, 128, 256], n)
    rows = []
    cases = {
        "gemm cublas (tile search)": lambda: analytical.gemm(spec, M, N, K, dtypes),
        "gemm given tiles": lambda: analytical.gemm(
            spec, M, N, K, "fp32", kernel="sgemm_regblock", tile_m=tiles, tile_n=tiles,
            tile_k=8, thread_tile_m=4, thread_tile_n=4, threads_per_block=tiles * tiles // 16),
        "occupancy": lambda: analytical.occupancy(
            spec, rng.choice([64, 128, 256, 512, 1024], n), rng.integers(16, 255, n),
            rng.integers(0, 200_000, n)),
        "stream": lambda: analytical.stream(spec, "triad", rng.integers(1e3, 1e9, n)),
        "pointer_chase": lambda: analytical.pointer_chase(spec, rng.integers(1e3, 1e10, n), 128),
    }
    for name, fn in cases.items():
        _, secs = _best_of(fn)
        rows.append({"what": name, "points": n, "seconds": secs, "per_second": n / secs,
                     "metric": "speed", "value": np.nan})
    # accuracy against the measured H100 GEMMs
    df = datasets.load("calibration")
    est = features.analytical(df)
    ratio = est["time_s"].to_numpy() / df["time_s"].to_numpy()
    for kernel, idx in df.groupby(["kernel", "dtype"]).groups.items():
        r = ratio[df.index.get_indexer(idx)]
        rows.append({"what": f"H100 measured {kernel[0]} {kernel[1]}", "points": len(r),
                     "seconds": np.nan, "per_second": np.nan,
                     "metric": "median analytical/measured time", "value": float(np.median(r))})
    table = pd.DataFrame(rows)
    out = results_root() / "bench_analytical" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    write_table(table, out, "bench_analytical", parquet=False)
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
    print(f"saved: {out}")


if __name__ == "__main__":
    main()
