"""simgpu systolic compute cycles against SCALE-Sim (the ``scalesim`` package): accuracy, speed.

For GEMM shapes on 32x32 and 128x128 arrays and all three dataflows, prints and saves a table
of simgpu's fold/fill/drain cycles (:func:`simgpu.sim.dataflow.fold_plan`), SCALE-Sim's compute
cycles (the length of its compute model's demand matrices,
:func:`simgpu.sim.dataflow.scalesim_compute_cycles`), the relative error, and the wall time of
each (simgpu's full :func:`~simgpu.sim.dataflow.simulate_gemm`, with memory, beside SCALE-Sim's
compute model alone). Writes ``results/bench_scalesim/<run-id>/bench_scalesim.csv``.

    python experiments/benchmarks/bench_scalesim.py
"""

from __future__ import annotations

import dataclasses
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from simgpu import devices
from simgpu.io import results_root, write_table
from simgpu.sim.dataflow import BackingStore, fold_plan, scalesim_compute_cycles, simulate_gemm

#: (rows, cols, M, N, K)
CASES = [
    (32, 32, 64, 64, 64),
    (32, 32, 100, 37, 70),
    (32, 32, 1, 256, 128),
    (32, 32, 256, 1, 96),
    (32, 32, 128, 128, 8),
    (32, 32, 200, 96, 160),
    (32, 32, 512, 256, 128),
    (128, 128, 256, 128, 64),
    (128, 128, 32, 300, 128),
    (128, 128, 512, 512, 256),
    (128, 128, 1000, 200, 300),
    (128, 128, 64, 1024, 512),
]


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def run() -> Any:
    """The comparison table (pandas DataFrame)."""

    ample = BackingStore(bytes_per_cycle=1e15, latency_cycles=0.0, source="ample")
    base = {32: devices.get_device("systolic-32x32"), 128: devices.get_device("systolic-128x128")}
    rows = []
    for R, C, M, N, K in CASES:
        spec = base[R] if R in base else base[32]
        spec = dataclasses.replace(spec, array=dataclasses.replace(spec.array, rows=R, cols=C))
        for df in ("os", "ws", "is"):
            ours = fold_plan(R, C, M, N, K, df).compute_cycles
            sim, t_ours = _timed(simulate_gemm, spec, M, N, K, df)
            theirs, t_theirs = _timed(scalesim_compute_cycles, R, C, M, N, K, df)
            ample_run = simulate_gemm(spec, M, N, K, df, backing=ample)
            rows.append(
                {
                    "array": f"{R}x{C}",
                    "M": M,
                    "N": N,
                    "K": K,
                    "dataflow": df,
                    "simgpu_cycles": ours,
                    "simgpu_cycles_ample_bw": ample_run.cycles,
                    "scalesim_cycles": theirs,
                    "rel_error": (ours - theirs) / theirs,
                    "simgpu_cycles_with_memory": sim.cycles,
                    "simgpu_s": t_ours,
                    "scalesim_s": t_theirs,
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    try:  # an optional package, only checked for here
        import scalesim  # noqa: F401
    except ImportError:
        print("bench_scalesim: the scalesim package is not installed (pip install scalesim)")
        raise SystemExit(1) from None

    df = run()
    out = results_root() / "bench_scalesim" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if out.exists():  # never overwrite an earlier run
        raise SystemExit(f"bench_scalesim: {out} exists")
    write_table(df, out, "bench_scalesim", parquet=False)
    with_cols = [
        "array",
        "M",
        "N",
        "K",
        "dataflow",
        "simgpu_cycles",
        "scalesim_cycles",
        "rel_error",
        "simgpu_cycles_with_memory",
        "simgpu_s",
        "scalesim_s",
    ]

    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(df[with_cols].to_string(index=False))
    worst = df["rel_error"].abs().max()
    print(
        f"\n{len(df)} cases; max |relative error| = {worst:.3%}; "
        f"simgpu {df['simgpu_s'].sum():.3f} s (with memory model), "
        f"SCALE-Sim compute model {df['scalesim_s'].sum():.3f} s"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
