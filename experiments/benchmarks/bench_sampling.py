"""The error of the simulator's sampling against full simulation, per family.

Sampled replays (waves simulated until two agree, the rest extrapolated; kernels with a main
loop -- GEMMs' K loop, the grid-stride loops of streams, reductions and GEMVs -- replay the first
wave at two trip counts and extrapolate the trips) are what ``simgpu validate`` and
``simgpu simulate`` use for large kernels. This replays workloads of the bundled H100 run's
tables both ways, each whose full replay fits in ``--max-full-s``, and reports per case: the
sampled and full times, the sampling error ``100 (sampled / full - 1)``, the spread the sampled
result states (``time_s_spread``, as a percentage of its time) and whether the full time lies
within it, and the wall seconds of both. A case whose sampling does not engage (too few waves,
too few trips) is listed with its reason and no error.

Usage::

    python experiments/benchmarks/bench_sampling.py [--device h100-sxm] [--max-full-s 300]
                                                    [--only gemm,transpose,...]
    python experiments/benchmarks/bench_sampling.py --versus-whole [--cases ...]

``--versus-whole`` replays GEMMs whose A and B start in the L2 sampled as ``validate`` replays
them (on a slice of the GPU where :meth:`GemmBase.simulate` picks one) and sampled on the whole
GPU, and reports the difference and the speed-up.

Prints a table and writes ``results/bench_sampling/<UTC time>/bench_sampling.csv`` (never
overwriting). The cases are sizes of the run's tables whose full replay takes minutes, not hours,
on one core; replays start with their inputs in the L2, as ``validate`` does.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from simgpu import devices
from simgpu.io import results_root, write_table
from simgpu.workloads import Gemv, Reduction, Stream, Transpose
from simgpu.workloads.base import Workload
from simgpu.workloads.gemm import GemmBase

#: (family, label, workload): sizes from the tables of calibration/h100-sxm/20261122T154403Z
CASES: list[tuple[str, str, Callable[[], Workload]]] = [
    ("gemm_time", "sgemm_tiled 256^3 tile 16",
     lambda: GemmBase.of_kernel("sgemm_tiled", 256, 256, 256, tile=16)),
    ("gemm_time", "sgemm_naive 256^3",
     lambda: GemmBase.of_kernel("sgemm_naive", 256, 256, 256)),
    ("gemm_time", "sgemm_tiled 512^3 tile 16",
     lambda: GemmBase.of_kernel("sgemm_tiled", 512, 512, 512, tile=16)),
    ("gemm_time", "sgemm_tiled 512^3 tile 32",
     lambda: GemmBase.of_kernel("sgemm_tiled", 512, 512, 512, tile=32)),
    ("gemm_time", "sgemm_naive 512^3",
     lambda: GemmBase.of_kernel("sgemm_naive", 512, 512, 512)),
    ("gemm_time", "sgemm_regblock 512^3",
     lambda: GemmBase.of_kernel("sgemm_regblock", 512, 512, 512)),
    ("transpose", "transpose_naive 2048^2", lambda: Transpose(2048, 2048, "naive")),
    ("transpose", "transpose_tiled 2048^2", lambda: Transpose(2048, 2048, "tiled")),
    ("reduction", "reduction 2^22", lambda: Reduction(1 << 22)),
    ("reduction", "reduction 2^24", lambda: Reduction(1 << 24)),
    ("gemv", "gemv 4096^2", lambda: Gemv(4096, 4096)),
    ("stream", "stream read 16 MiB", lambda: Stream("read", 1 << 22)),
    ("stream", "stream copy 16 MiB", lambda: Stream("copy", 1 << 22)),
    # streams whose arrays together exceed the L2 (memory.DRAM_RESIDENT_L2) are sampled as a
    # steady-state window: from the smallest (a 32 MiB copy, 1.3x the L2) up
    ("stream", "stream copy 32 MiB", lambda: Stream("copy", 1 << 23)),
    ("stream", "stream read 64 MiB", lambda: Stream("read", 1 << 24)),
    ("stream", "stream copy 64 MiB", lambda: Stream("copy", 1 << 24)),
    ("stream", "stream write 64 MiB", lambda: Stream("write", 1 << 24)),
    ("stream", "stream copy 128 MiB", lambda: Stream("copy", 1 << 25)),
    ("stream", "stream read 256 MiB", lambda: Stream("read", 1 << 26)),
    ("stream", "stream copy 256 MiB", lambda: Stream("copy", 1 << 26)),
]

#: GEMMs of the run's table whose A and B start in the L2 (``--versus-whole``): every kernel of
#: the table, at sizes whose sampled replay on the whole GPU takes seconds to a minute
VERSUS_WHOLE_CASES: list[tuple[str, str, Callable[[], Workload]]] = [
    ("gemm_time", f"{kernel} {m}x{n}x{k} {f'tile {tile}' if tile else dtype}",
     (lambda kernel=kernel, m=m, n=n, k=k, tile=tile, dtype=dtype: GemmBase.of_kernel(
         kernel, m, n, k, tile=tile, dtype=dtype)))
    for kernel, tile, dtype in [("sgemm_naive", 0, "fp32"), ("sgemm_tiled", 8, "fp32"),
                                ("sgemm_tiled", 16, "fp32"), ("sgemm_tiled", 32, "fp32"),
                                ("sgemm_regblock", 64, "fp32"), ("sgemm_regblock", 128, "fp32"),
                                ("cublas", 0, "fp16"), ("cublas", 0, "bf16"),
                                ("cublas", 0, "tf32")]
    for m, n, k in [(512, 512, 512), (1024, 1024, 1024), (320, 2048, 2048), (2048, 2048, 2048)]
]


def _run(w: Workload, spec: Any, sample: bool, sm_slice: int | None = None) -> tuple[Any, float]:
    t0 = time.perf_counter()
    res = w.simulate(spec, sample=sample, warm_l2=True, sm_slice=sm_slice)
    return res, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="h100-sxm")
    p.add_argument("--max-full-s", type=float, default=300.0,
                   help="skip the cases after one whose full replay took longer (per family)")
    p.add_argument("--only", help="comma-separated families")
    p.add_argument("--cases", help="comma-separated case labels (default: every case)")
    p.add_argument("--slice", type=int, default=0, metavar="K",
                   help="also replay each case unsampled on 1/K of the GPU (simgpu.sim.gpuslice)"
                        " and report that error alone (slice_*); the sampled columns are the"
                        " default sampling, slice included")
    p.add_argument("--versus-whole", action="store_true",
                   help="GEMMs whose inputs start in the L2 (VERSUS_WHOLE_CASES): the default"
                        " sampling (on the slice it picks) against the same sampling on the"
                        " whole GPU (sm_slice=1), instead of against full replays")
    args = p.parse_args(argv)
    spec = devices.get(args.device)
    only = set(args.only.split(",")) if args.only else None
    labels = set(args.cases.split(",")) if args.cases else None
    chosen = [(family, label, make)
              for family, label, make in (VERSUS_WHOLE_CASES if args.versus_whole else CASES)
              if (not only or family in only) and (not labels or label in labels)]
    rows: list[dict[str, Any]] = []
    too_long: set[str] = set()
    if args.versus_whole:
        for family, label, make in chosen:
            w = make()
            sampled, s_wall = _run(w, spec, True)
            whole, w_wall = _run(w, spec, True, 1)
            err = 100 * (sampled.time_s / whole.time_s - 1)
            rows.append({
                "family": family, "case": label, "sampled_us": sampled.time_s * 1e6,
                "sm_slice": sampled.sm_slice, "whole_us": whole.time_s * 1e6,
                "versus_whole_pct": err,
                "spread_pct": 100 * sampled.time_s_spread / sampled.time_s,
                "whole_spread_pct": 100 * whole.time_s_spread / whole.time_s,
                "dram_bytes_versus_whole_pct": 100 * (
                    sum(sampled.bytes["dram"].values())
                    / max(sum(whole.bytes["dram"].values()), 1) - 1),
                "sampled_wall_s": s_wall, "whole_wall_s": w_wall, "speedup": w_wall / s_wall,
            })
            print(f"{label}: 1/{sampled.sm_slice} of the GPU {err:+.2f}% against the whole,"
                  f" {w_wall / s_wall:.1f}x faster", file=sys.stderr)
    for family, label, make in [] if args.versus_whole else chosen:
        row: dict[str, Any] = {"family": family, "case": label}
        if family in too_long:
            rows.append({**row, "note": f"skipped: a smaller case's full replay took more than"
                                        f" {args.max_full_s:.0f} s"})
            continue
        w = make()
        sampled, s_wall = _run(w, spec, True)
        if args.slice:
            full, f_wall = _run(w, spec, False)
            sliced, c_wall = _run(w, spec, False, args.slice)
            rows.append({
                **row, "sampled_us": sampled.time_s * 1e6, "full_us": full.time_s * 1e6,
                "error_pct": 100 * (sampled.time_s / full.time_s - 1),
                "sm_slice": sampled.sm_slice,
                "slice_us": sliced.time_s * 1e6,
                "slice_error_pct": 100 * (sliced.time_s / full.time_s - 1),
                "slice_dram_bytes_error_pct": 100 * (
                    sum(sliced.bytes["dram"].values()) / max(sum(full.bytes["dram"].values()), 1)
                    - 1),
                "sampled_wall_s": s_wall, "slice_wall_s": c_wall, "full_wall_s": f_wall,
                "speedup": f_wall / s_wall, "slice_speedup": f_wall / c_wall, "note": "",
            })
            print(f"{label}: slice 1/{args.slice} {rows[-1]['slice_error_pct']:+.2f}%"
                  f" ({f_wall / c_wall:.1f}x), sampled {rows[-1]['error_pct']:+.2f}%"
                  f" ({f_wall / s_wall:.1f}x)", file=sys.stderr)
            continue
        if not sampled.sampled:
            rows.append({**row, "full_us": sampled.time_s * 1e6, "full_wall_s": s_wall,
                         "note": "not sampled (too few waves or trips): the replay is full"})
            print(f"{label}: not sampled", file=sys.stderr)
            continue
        full, f_wall = _run(w, spec, False)
        err = 100 * (sampled.time_s / full.time_s - 1)
        spread = 100 * sampled.time_s_spread / sampled.time_s
        rows.append({
            **row, "sampled_us": sampled.time_s * 1e6, "full_us": full.time_s * 1e6,
            "error_pct": err, "spread_pct": spread,
            "within_spread": abs(sampled.time_s - full.time_s) <= sampled.time_s_spread,
            "blocks_simulated": sampled.blocks_simulated, "blocks": sampled.blocks_total,
            "sampled_wall_s": s_wall, "full_wall_s": f_wall, "speedup": f_wall / s_wall,
            "note": "",
        })
        print(f"{label}: sampled {err:+.2f}% (spread {spread:.2f}%), {f_wall / s_wall:.1f}x"
              " faster", file=sys.stderr)
        if f_wall > args.max_full_s:
            too_long.add(family)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    out = results_root() / "bench_sampling" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    write_table(table, out, "bench_sampling", parquet=False, overwrite=False)
    print(f"saved {out / 'bench_sampling.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
