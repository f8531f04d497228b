"""Loaded latency versus achieved DRAM bandwidth (Mess-style curves) on the simulated GPU.

Every SM streams through memory with a fixed number of requests in flight (a closed loop, as
the Mess benchmark's traffic generators are), with 100%, 75% or 50% reads; sweeping that
occupancy from 1 to 128 lines per SM moves from an idle memory to a saturated one. The table
records the bandwidth delivered in steady state and the mean latency of the reads (the loaded
latency), so each curve shows the flat unloaded region, the knee and the near-vertical rise at
saturation. Stores use the L2 write-through shortcut
(:attr:`simgpu.sim.system.MemorySystem.l2_write_through`) so that the DRAM sees the read/write
mix a stream much larger than the L2 produces in steady state, and complete when written.
(:class:`simgpu.sim.sources.Paced` is the open-loop alternative: a fixed offered rate.)

The 100%-read row with the highest achieved bandwidth is the simulated stream bandwidth; the
plot marks the published stream-read figure where one exists (``STREAM_READ_GBPS``).

Usage: ``python experiments/bandwidth_latency.py --device h100-pcie --out DIR`` writes
``DIR/bandwidth_latency.csv`` (columns device, read_fraction, bandwidth_GBps, latency_ns, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import simpy

from simgpu import devices
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure, write_table
from simgpu.sim import build_system
from simgpu.sim.collector import relaxed_gc
from simgpu.sim.sources import Stream

NAME = "bandwidth_latency"
DESCRIPTION = "simulated loaded DRAM latency versus achieved bandwidth for read/write mixes"

DEVICES = [
    "a100-pcie-40gb",
    "a100-sxm-80gb",
    "h100-pcie",
    "h100-sxm",
    "h200",
    "v100-sxm2",
    "rtx-4090",
    "rtx-4070",
    "rtx-a6000",
]
GRID: dict[str, list[Any]] = {
    "device": DEVICES,
    "read_fraction": [1.0, 0.75, 0.5],
    "occupancy": [1, 4, 8, 16, 32, 48, 64, 96, 128],
}
#: line requests per point: at least 16,000 (2 MB), and three rounds of the requests in
#: flight, so the steady-state window (10%-90% of completions) is well past the ramp
MIN_REQUESTS = 16_000

#: published stream-read bandwidth, GB/s (published/gpu_numbers.csv, gpu-stream read kernel,
#: max over occupancy; our h100-sxm from calibration/h100-sxm/20261122T154403Z/stream.csv)
STREAM_READ_GBPS = {
    "h100-pcie": (1942.0, "published: RRZE-HPC gpu-stream h100_pcie"),
    "a100-pcie-40gb": (1500.0, "published: RRZE-HPC gpu-stream a100_40"),
    "a100-sxm-80gb": (1776.0, "published: RRZE-HPC gpu-stream a100_80"),
    "h100-sxm": (3095.0, "measured: calibration h100-sxm 20261122T154403Z"),
}


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Offer one rate with one read fraction to one device."""

    spec = devices.get(params["device"])
    env = simpy.Environment()
    system = build_system(env, spec, l2_write_through=True)
    occupancy = int(params["occupancy"])
    n = max(MIN_REQUESTS, 3 * occupancy * spec.compute.sm_count)
    src = Stream(env, system, n_lines=n, occupancy=occupancy,
                 read_fraction=float(params["read_fraction"]))
    src.start()
    with relaxed_gc():
        env.run()
    r = src.result()
    to_ns = 1000.0 / spec.clock_MHz
    d = system.hbm.totals()
    return [{
        "device": spec.name,
        "read_fraction": float(params["read_fraction"]),
        "occupancy": occupancy,
        "bandwidth_GBps": r.steady_bandwidth_GBps(),
        "latency_ns": r.mean_read_latency_cycles * to_ns,
        "latency_p50_ns": r.percentile_cycles(50, reads_only=True) * to_ns,
        "latency_p99_ns": r.percentile_cycles(99, reads_only=True) * to_ns,
        "unloaded_latency_ns": spec.dram.unloaded_latency_ns,
        "peak_bandwidth_GBps": spec.dram.peak_bandwidth_GBps,
        "dram_row_hit_rate": d["row_hits"] / max(1.0, d["reads"] + d["writes"]),
        "dram_writes": d["writes"],
        "dram_reads": d["reads"],
        "requests": r.requests,
        "mean_in_flight": r.mean_in_flight,
    }]


def stream_table(df: Any) -> Any:
    """Simulated stream-read bandwidth (best 100%-read point) against the reference."""

    rows = []
    for device, sub in df[df["read_fraction"] == 1.0].groupby("device"):
        best = float(sub["bandwidth_GBps"].max())
        ref = STREAM_READ_GBPS.get(str(device))
        rows.append({
            "device": device,
            "simulated_stream_read_GBps": best,
            "reference_GBps": ref[0] if ref else float("nan"),
            "reference": ref[1] if ref else "",
            "error_pct": 100.0 * (best - ref[0]) / ref[0] if ref else float("nan"),
            "peak_GBps": float(sub["peak_bandwidth_GBps"].iloc[0]),
        })
    return pd.DataFrame(rows)


def plot(df: Any, out_dir: Path) -> list[Path]:
    """One figure per device: read latency against bandwidth, one curve per read fraction."""
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = stream_table(df)
    if len(table):
        write_table(table, out_dir, "stream_read", parquet=False)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    out = []
    for device, sub in df.groupby("device"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for rf, cur in sub.groupby("read_fraction"):
            cur = cur.sort_values("occupancy")
            ax.plot(cur["bandwidth_GBps"], cur["latency_ns"], "o-", label=f"{rf:.0%} reads")
        peak = float(sub["peak_bandwidth_GBps"].iloc[0])
        ax.axvline(peak, color="k", ls="--", lw=1, label="theoretical peak")
        ref = STREAM_READ_GBPS.get(str(device))
        if ref:
            ax.axvline(ref[0], color="tab:red", ls=":", lw=1, label=ref[1])
        ax.set_xlabel("achieved DRAM bandwidth (GB/s)")
        ax.set_ylabel("mean read latency (ns)")
        ax.set_title(f"Loaded latency vs bandwidth: {device}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        out.append(save_figure(fig, out_dir / f"bandwidth_latency_{device}.png"))
    return out


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
