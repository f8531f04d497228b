"""Simulated time of the shared-memory tiled SGEMM (kernels/sgemm.cu, sgemm_tiled) versus tile
size (8, 16, 32), on rtx-4070 and h100-sxm, beside measured times.

Each point replays :class:`simgpu.workloads.TiledGemm` on the SM + memory model with sampling
(the first wave at two K-loop trip counts, extrapolated to the real trip count and wave count;
see ``simgpu/workloads/gemm.py``). Beside it:

* ``measured_ms``: our own H100 SXM calibration runs (calibration/h100-sxm/*/gemm.csv, the same
  kernel and launch), median over runs;
* ``gpperf_ms``: the GPPerf paper's RTX 4070 measurements of its own naive tiled kernel
  (../shared/data/gpperf/tiled_execution_times.csv, one cold launch each: shape only, not absolute
  times), whose finding is that 16 x 16 tiles are fastest on the RTX 4070.

Usage: ``python experiments/gemm_tile_sim.py [--device rtx-4070] [--set size=2048]``;
``--set l2=warm`` starts the sampled wave with A and B in the L2 when they fit (later waves'
state) instead of a cold L2.

Why the simulated H100 times exceed the measured ones (1.02-1.27x, 1.83x for 1024^3 with tile
8; README "SM model and trace replay" has the table and the evidence): the 2-to-4-trip slope of
a cold first wave overstates the steady per-trip time (about 10% at 1024^3, tile 32, more where
cold misses dominate the first trips), and each FFMA still pays one register-bank conflict cycle.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path
from typing import Any

from simgpu import devices
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure
from simgpu.workloads import TiledGemm

NAME = "gemm_tile_sim"
DESCRIPTION = "simulated tiled-SGEMM time versus tile size, beside measured and GPPerf times"
GRID: dict[str, list[Any]] = {
    "device": ["rtx-4070", "h100-sxm"],
    "size": [1024, 2048, 4096],
    "tile": [8, 16, 32],
    # "cold": the sampled first wave starts with an empty L2 (what the first wave sees);
    # "warm": A and B preloaded in the L2 when they fit (what later waves see)
    "l2": ["cold"],
}

ROOT = Path(__file__).resolve().parents[1]
GPPERF = ROOT.parent / "shared" / "data" / "gpperf" / "tiled_execution_times.csv"
#: the GPPerf measurements were taken on this device
GPPERF_DEVICE = "rtx-4070"


def measured_ms(device: str, size: int, tile: int) -> float | None:
    """Median measured time of sgemm_tiled<tile> at size^3 over calibration runs, or None."""
    times = []
    for path in sorted((ROOT / "calibration" / device).glob("*/gemm.csv")):
        with path.open() as fh:
            for row in csv.DictReader(fh):
                if (
                    row.get("kernel") == "sgemm_tiled"
                    and int(row["tile_m"]) == tile
                    and int(row["M"]) == int(row["N"]) == int(row["K"]) == size
                    and row.get("check_ok", "True") == "True"
                ):
                    times.append(float(row["time_ms"]))
    return statistics.median(times) if times else None


def gpperf_ms(device: str, size: int, tile: int) -> float | None:
    """Median GPPerf time for this square size and tile (RTX 4070 only), or None."""
    if device != GPPERF_DEVICE or not GPPERF.is_file():
        return None
    times = []
    with GPPERF.open() as fh:
        for row in csv.DictReader(fh):
            if (
                int(row["M"]) == int(row["N"]) == int(row["K"]) == size
                and int(row["Tile Size"]) == tile
            ):
                times.append(float(row["Execution Time"]))
    return statistics.median(times) if times else None


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    spec = devices.get(params["device"])
    n, tile = int(params["size"]), int(params["tile"])
    w = TiledGemm(n, n, n, tile=tile)
    l2 = str(params.get("l2", "cold"))
    if l2 not in ("cold", "warm"):
        raise ValueError(f"l2 = {l2!r}: expected 'cold' or 'warm'")
    res = w.simulate(spec, sample=True, warm_l2=l2 == "warm")
    total = sum(res.stalls.values()) or 1.0
    row = {
        "device": spec.name,
        "size": n,
        "tile": tile,
        "l2": l2,
        "sim_ms": res.time_s * 1e3,
        "sim_spread_ms": res.time_s_spread * 1e3,
        "sim_TFLOPS": res.flops_per_s / 1e12,
        "sampled": res.sampled,
        "occupancy_blocks_per_sm": res.occupancy_blocks_per_sm,
        "occupancy_limit": res.occupancy_limit,
        "instructions_simulated": res.instructions_simulated,
        "wall_s": res.wall_s,
        "l2_hit_rate": res.hit_rate.get("l2"),
        "dram_read_GB": res.bytes["dram"]["read"] / 1e9,
        "stall_lsu": res.stalls.get("lsu_busy", 0.0) / total,
        "stall_memory": res.stalls.get("memory", 0.0) / total,
        "stall_dependency": res.stalls.get("dependency", 0.0) / total,
        "issued_fraction": res.stalls.get("issued", 0.0) / total,
        "measured_ms": measured_ms(spec.name, n, tile),
        "gpperf_ms": gpperf_ms(spec.name, n, tile),
    }
    return [row]


def plot(df: Any, out_dir: Path) -> list[Path]:
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devs = list(dict.fromkeys(df["device"]))
    fig, axes = plt.subplots(1, len(devs), figsize=(6 * len(devs), 4.5), squeeze=False)
    for ax, dev in zip(axes[0], devs, strict=True):
        d = df[df["device"] == dev]
        for size in sorted(set(d["size"])):
            s = d[d["size"] == size].sort_values("tile")
            line = ax.errorbar(
                s["tile"],
                s["sim_ms"],
                yerr=s["sim_spread_ms"],
                marker="o",
                label=f"{size}^3 simulated",
            )
            color = line[0].get_color()
            if s["measured_ms"].notna().any():
                ax.plot(
                    s["tile"],
                    s["measured_ms"],
                    "s--",
                    color=color,
                    label=f"{size}^3 measured (calibration)",
                )
            if s["gpperf_ms"].notna().any():
                ax.plot(
                    s["tile"],
                    s["gpperf_ms"],
                    "^:",
                    color=color,
                    label=f"{size}^3 GPPerf (cold launch)",
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([8, 16, 32], ["8", "16", "32"])
        ax.set_xlabel("tile size (threads per block side)")
        ax.set_ylabel("kernel time (ms)")
        ax.set_title(f"sgemm_tiled on {dev}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "gemm_tile_sim.png")]


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
