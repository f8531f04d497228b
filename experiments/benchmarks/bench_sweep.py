"""Sweep throughput: points per second for analytical and simulated points, on 1 and 2 workers.

Runs the same sweeps (:func:`simgpu.sweep.run_points` over :func:`simgpu.sweep.model.evaluate`)
with each executor and worker count into fresh folders, and prints and saves a table of wall
time, points per second and the speed-up over one worker of the same executor. Wall time
includes starting the pool or cluster (spawned Python processes import numpy, pandas and simgpu:
about a second each), which is what a user waits for.

* analytical points: GEMMs on h100-sxm with L2 size and HBM bandwidth knobs (closed forms,
  milliseconds each);
* simulated points: STREAM kernels (read, copy, scale, triad over 64 Ki to 256 Ki floats)
  replayed on the SM and memory model (:class:`simgpu.workloads.Stream`), one to five seconds
  each.

    python experiments/benchmarks/bench_sweep.py [--analytical N] [--simulated N] [--no-dask]

Writes ``results/bench_sweep/<run-id>/bench_sweep.csv``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from simgpu.io import results_root, write_table
from simgpu.sweep import load_table, run_points
from simgpu.sweep.model import evaluate


def analytical_points(n: int) -> list[dict[str, Any]]:
    sizes = [512, 1024, 2048, 4096, 8192, 16384]
    grid = itertools.product(sizes, ["fp16", "fp32", "tf32", "bf16"], [25.0, 50.0, 100.0],
                             [2000.0, 3350.0, 4800.0], sizes)
    pts = [{"workload": "gemm", "view": "analytical", "M": m, "N": nn, "K": 4096, "dtype": dt,
            "l2_size_MiB": l2, "hbm_bandwidth_GBps": bw} for m, dt, l2, bw, nn in grid]
    return pts[:n]


def simulated_points(n: int) -> list[dict[str, Any]]:
    sizes = [1 << 16, 1 << 17, 1 << 18]
    grid = itertools.product(sizes, ["read", "copy", "scale", "triad"])
    pts = [{"workload": "stream", "view": "simulated", "op": op, "n_elements": s}
           for s, op in grid]
    return pts[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--analytical", type=int, default=240, help="analytical points (<= 1296)")
    ap.add_argument("--simulated", type=int, default=12, help="simulated points (<= 12)")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster runs")
    args = ap.parse_args(argv)
    kinds = {"analytical": analytical_points(args.analytical),
             "simulated": simulated_points(args.simulated)}
    executors = [("serial", 0), ("processes", 1), ("processes", 2)]
    if not args.no_dask:
        executors += [("dask", 1), ("dask", 2)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, points in kinds.items():
            if not points:
                continue
            for executor, workers in executors:
                out = Path(tmp) / f"{kind}-{executor}-{workers}"
                rep = run_points(evaluate, points, out, workers=workers,
                                 dask_local=executor == "dask", progress=False)
                point_s = float(load_table(out, points)["wall_s"].mean())
                rows.append({
                    "points": kind, "executor": executor, "workers": workers,
                    "n_points": len(points), "failed": rep.points_failed,
                    "wall_s": rep.wall_s, "points_per_s": rep.points_per_s,
                    # seconds one point computes inside its worker: the ideal rate with w
                    # workers and free cores is w / point_s
                    "point_s_mean": point_s,
                    "ideal_points_per_s": max(workers, 1) / point_s,
                })
                print(f"{kind:<10} {executor:<9} {workers} worker(s): {len(points)} points in"
                      f" {rep.wall_s:6.1f} s = {rep.points_per_s:7.1f} points/s", flush=True)
    df = pd.DataFrame(rows)
    one = df[df["workers"] == 1].set_index(["points", "executor"])["points_per_s"]
    df["speedup_vs_1_worker"] = [
        r.points_per_s / one.get((r.points, r.executor), float("nan"))
        if r.workers > 0 else float("nan") for r in df.itertuples()
    ]
    df["cpus"] = os.cpu_count()
    df["load_avg_1min"] = os.getloadavg()[0]
    print()
    print(df.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = results_root() / "bench_sweep" / stamp
    write_table(df, out_dir, "bench_sweep", parquet=False)
    print(f"\nwrote {out_dir / 'bench_sweep.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
