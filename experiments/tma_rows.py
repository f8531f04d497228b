"""What a TMA row that is not 128-byte aligned costs the simulated library GEMM: the memory
system's counters of one replay per shape, to hold an aligned K against a misaligned one.

With K = 2048 fp16 the operand rows are 4,096 bytes and every 128-byte TMA row segment is one
L2 line; with K = 2000 (4,000-byte rows) three rows in four start 32, 64 or 96 bytes into a line
and their segment spans two lines (two requests, the same four sectors); with K = 3000 fp16
(6,000 bytes) half the rows are also 16 bytes off a sector (five sectors for four). The work
differs by 2.3% (K = 2000 against 2048); the counters say where a split row's cost goes.

Each point is :func:`simgpu.workloads.tensor_gemm.simulate_library` (the kernel of the analytical
library search, A and B warm in the L2, sampled as the simulated view samples it); the counters
are those of the replayed sample (``SimResult.memory_stats``), not extrapolated. Columns:
``cycles`` (extrapolated kernel cycles), ``busiest_trips`` (K-loop trips of the busiest SM: the
stream-K plan's, or trips per tile times waves), ``cycles_per_trip``, the L2's requests, sector
hits and misses and MSHR merges (both partitions), the crossbar's requests (slice-port
bookings) and busy fraction, DRAM bytes, and the mean latency of the loads the L2 served.

Usage: ``python experiments/tma_rows.py [--set dtype=fp16] [--set shape=3072x3072x2000]``;
about 1-2 minutes a point on one core. Run it with ``PYTHONPATH`` at another checkout of
simgpu to get that checkout's figures (the script uses only public interfaces).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from simgpu import devices
from simgpu.analytical.params import DTYPE_BYTES
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure
from simgpu.workloads.tensor_gemm import library_kernel, simulate_library

NAME = "tma_rows"
DESCRIPTION = "memory-system counters of library GEMMs with 128-byte aligned and misaligned rows"
GRID: dict[str, list[Any]] = {
    "device": ["h100-sxm"],
    "dtype": ["fp16"],
    # M x N x K: aligned rows (K = 2048), rows 32-byte staggered (2000), 16-byte off (3000)
    "shape": ["3072x3072x2048", "3072x3072x2000"],
}


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    spec = devices.get(params["device"])
    try:
        m, n, k = (int(x) for x in str(params["shape"]).lower().split("x"))
    except ValueError:
        raise SystemExit(f"tma_rows: shape {params['shape']!r}, expected MxNxK"
                         " (e.g. 3072x3072x2000)") from None
    dtype = params["dtype"]
    kern, _ = library_kernel(spec, m, n, k, dtype)
    res = simulate_library(spec, m, n, k, dtype)
    st = res.memory_stats.set_index("component")
    l2 = st[st.index.str.startswith("L2p")]
    waves = 1 if kern.workers else math.ceil(res.waves)
    trips = kern.trips * waves
    xbar = st.loc["crossbar"]
    row: dict[str, Any] = {
        "device": spec.name, "dtype": dtype, "M": m, "N": n, "K": k,
        "row_bytes": k * int(DTYPE_BYTES[dtype]),
        "kernel": res.kernel,
        "cycles": res.cycles,
        "busiest_trips": trips,
        "cycles_per_trip": res.cycles / trips,
        "l2_requests": float(l2["requests"].sum()),
        "l2_sector_hits": float(l2["sector_hits"].sum()),
        "l2_sector_misses": float(l2["sector_misses"].sum()),
        "l2_mshr_merges": float(l2["mshr_merges"].sum()),
        "xbar_requests": float(xbar["requests"]),
        "xbar_busy_fraction": float(xbar["busy_fraction"]),
        "dram_bytes": float(st.loc["DRAM", "bytes"]),
        "requests_total": float(st.loc["total", "requests"]),
        "latency_mean_cycles": float(st.loc["total", "latency_mean_cycles"]),
        "tensor_busy": res.tensor_busy,
        "wall_s": res.wall_s,
    }
    return [row]


def plot(df: Any, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{r.M}x{r.N}x{r.K}" for r in df.itertuples()]
    ax.bar(labels, df["cycles_per_trip"])
    ax.set_ylabel("cycles per K-loop trip (busiest SM)")
    ax.set_title("TMA rows aligned and not: simulated library GEMM")
    fig.tight_layout()
    return [save_figure(fig, out_dir / "tma_rows.png")]


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
