"""The latency and throughput tables of the Hopper microbenchmark paper, for simulated devices.

Luo et al., "Benchmarking and Dissecting the Nvidia Hopper GPU Architecture" (arXiv:2402.13499v1,
IPDPS 2024), Table IV (latency of L1, shared memory, L2 and global memory, in cycles) and Table V
(throughput of L1 and shared memory per SM, of L2 for the whole GPU, and of global memory),
measured on an H800-PCIe, an A100-PCIe-40GB and an RTX 4090. Each point is one device and one
quantity: the paper's figure beside the simulator's (:mod:`simgpu.sim` traffic sources on
``build_system``), the analytical model's (:mod:`simgpu.analytical` and the device file) and,
where ``calibration/<device>/`` holds a run, our own measurement (``measured``: the pointer
chase, shared-memory and STREAM tables; the runs have no L1/L2 bandwidth table).

Which paper GPU stands for which device: h100-sxm and h100-pcie have no row in the paper; the
H800-PCIe shares their GH100 SM, L1 and L2 (the H800 differs in interconnect), so its latencies
and per-SM figures apply; its global memory figures belong to its own HBM2e (2039 GB/s spec).

How each simulated figure is obtained (each mirrors the paper's method as far as the memory
model allows):

* latencies: one dependent load at a time (``PointerChase``): L1 over an 8 KiB footprint with
  ld.ca, L2 over 4 MiB with ld.cg (inside the near partition's 25 MiB), global over four times
  the L2 size with ld.cg; shared memory: a chain of dependent conflict-free shared loads;
* L1 throughput: one SM re-reading a 32 KiB L1-resident footprint, whole lines, 64 requests in
  flight (the paper's FP32 loads: 32 lanes x 4 B = one line per warp load);
* shared throughput: one SM issuing 4096 conflict-free warp-wide 4-byte shared loads at once;
* L2 throughput: every SM reading random lines of a 4 MiB warmed footprint with ld.cg, 256 in
  flight per SM (beyond that the figure rises by under 5%: it is saturated);
* global throughput: every SM streaming with 5 reads per write (the paper's kernel), 128 lines
  in flight per SM.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from simgpu import analytical as an
from simgpu import devices
from simgpu.calibrate.dataset import RunDir
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure
from simgpu.sim import MemRequest, build_system
from simgpu.sim.sources import PointerChase, RandomAccess, Stream
from simgpu.views.measured import calibration_root

NAME = "hopper_dissect"
DESCRIPTION = "Luo et al. Hopper paper Tables IV/V (latency, throughput) vs simulated devices"
GRID: dict[str, list[Any]] = {
    "device": ["h100-sxm", "h100-pcie", "a100-pcie-40gb", "rtx-4090"],
    "quantity": [
        "L1 latency",
        "shared latency",
        "L2 latency",
        "global latency",
        "L1 throughput",
        "shared throughput",
        "L2 throughput",
        "global throughput",
    ],
}

UNITS = {
    "L1 latency": "cycles",
    "shared latency": "cycles",
    "L2 latency": "cycles",
    "global latency": "cycles",
    "L1 throughput": "B/clk/SM",
    "shared throughput": "B/clk/SM",
    "L2 throughput": "B/clk",
    "global throughput": "GB/s",
}

SOURCE = "Luo et al., arXiv:2402.13499v1 (IPDPS 2024)"
#: The paper's figures (published/gpu_numbers.csv rows citing Luo et al. Table IV and Table V).
#: Throughput rows are the "FP32 loads" variants.
PUBLISHED: dict[str, dict[str, float]] = {
    "H800-PCIe": {
        "L1 latency": 40.7,  # Table IV
        "shared latency": 29.0,  # Table IV
        "L2 latency": 263.0,  # Table IV
        "global latency": 478.8,  # Table IV
        "L1 throughput": 125.8,  # Table V, FP32 loads
        "shared throughput": 127.9,  # Table V
        "L2 throughput": 4472.3,  # Table V, FP32 loads
        "global throughput": 1861.5,  # Table V
    },
    "A100-PCIe-40GB": {
        "L1 latency": 37.9,  # Table IV
        "shared latency": 29.0,  # Table IV
        "L2 latency": 261.5,  # Table IV
        "global latency": 466.3,  # Table IV
        "L1 throughput": 99.5,  # Table V, FP32 loads
        "shared throughput": 128.0,  # Table V
        "L2 throughput": 1853.7,  # Table V, FP32 loads
        "global throughput": 1407.2,  # Table V
    },
    "RTX 4090": {
        "L1 latency": 43.4,  # Table IV
        "shared latency": 30.1,  # Table IV
        "L2 latency": 273.0,  # Table IV
        "global latency": 541.5,  # Table IV
        "L1 throughput": 63.7,  # Table V, FP32 loads
        "shared throughput": 127.9,  # Table V
        "L2 throughput": 1622.2,  # Table V, FP32 loads
        "global throughput": 929.8,  # Table V
    },
}
#: The paper GPU whose row stands for each device (see the module docstring).
PAPER_GPU = {
    "h100-sxm": "H800-PCIe",
    "h100-pcie": "H800-PCIe",
    "a100-pcie-40gb": "A100-PCIe-40GB",
    "rtx-4090": "RTX 4090",
}
#: Paper rows that describe another memory system than the device's own.
OTHER_MEMORY = {("h100-sxm", "global latency"), ("h100-sxm", "global throughput"),
                ("h100-pcie", "global throughput")}


# --- simulated -----------------------------------------------------------------------------------


def _system(spec: Any) -> tuple[Any, Any]:
    env = simpy.Environment()
    return env, build_system(env, spec)


def _chase(spec: Any, footprint: int, cache_op: str, n_loads: int) -> float:
    env, system = _system(spec)
    src = PointerChase(env, system, footprint_bytes=footprint, n_loads=n_loads,
                       cache_op=cache_op).start()
    env.run()
    return float(src.result().mean_latency_cycles)


def _shared_latency(spec: Any, n: int = 256) -> float:
    env, system = _system(spec)
    lat: list[float] = []

    def chain() -> Any:
        for i in range(n):
            addr = (i * 4) % 4096
            req = MemRequest(0, addr - addr % 128, sectors=1, space="shared",
                             lane_addrs=(addr,) * 32)  # a broadcast: one wavefront
            t0 = env.now
            yield system.access(req)
            lat.append(env.now - t0)

    env.process(chain())
    env.run()
    return sum(lat) / len(lat)


def _shared_throughput(spec: Any, n: int = 4096) -> float:
    env, system = _system(spec)
    lanes = tuple(4 * lane for lane in range(32))  # one word per bank: conflict-free
    events = [system.access(MemRequest(0, 0, space="shared", lane_addrs=lanes))
              for _ in range(n)]
    env.run()
    del events
    return n * 128 / env.now


def _l1_throughput(spec: Any) -> float:
    env, system = _system(spec)
    footprint = 32 << 10
    system.warm(0, [i * 128 for i in range(footprint // 128)], sectors=0xF)
    src = RandomAccess(env, system, footprint_bytes=footprint, n_requests=20000, occupancy=64,
                       sms=[0], sectors=0xF, cache_op="ca").start()
    env.run()
    r = src.result()
    return r.bytes / r.span_cycles


def _l2_throughput(spec: Any) -> float:
    env, system = _system(spec)
    footprint = 4 << 20
    system.warm(0, [i * 128 for i in range(footprint // 128)], sectors=0xF)
    src = RandomAccess(env, system, footprint_bytes=footprint, n_requests=150000, occupancy=256,
                       sectors=0xF, cache_op="cg").start()
    env.run()
    r = src.result()
    return r.bytes / r.span_cycles


def _global_throughput(spec: Any) -> float:
    env, system = _system(spec)
    src = Stream(env, system, n_lines=100000, occupancy=128, read_fraction=5 / 6).start()
    env.run()
    return float(src.result().bandwidth_GBps)


def simulated(spec: Any, quantity: str) -> float:
    """The simulator's figure for ``quantity`` (unit: :data:`UNITS`)."""
    l2_bytes = int(spec.l2.size_MiB * 2**20)
    if quantity == "L1 latency":
        return _chase(spec, 8 << 10, "ca", 2000)
    if quantity == "shared latency":
        return _shared_latency(spec)
    if quantity == "L2 latency":
        return _chase(spec, 4 << 20, "cg", 2000)
    if quantity == "global latency":
        return _chase(spec, 4 * l2_bytes, "cg", 500)
    if quantity == "L1 throughput":
        return _l1_throughput(spec)
    if quantity == "shared throughput":
        return _shared_throughput(spec)
    if quantity == "L2 throughput":
        return _l2_throughput(spec)
    if quantity == "global throughput":
        return _global_throughput(spec)
    raise ValueError(quantity)


# --- analytical ----------------------------------------------------------------------------------


def analytical(spec: Any, quantity: str) -> float:
    """The closed-form / device-file figure for ``quantity``."""

    clock = spec.compute.boost_clock_MHz
    l2_bytes = int(spec.l2.size_MiB * 2**20)
    if quantity == "L1 latency":
        return float(an.pointer_chase(spec, 8 << 10, 128)["latency_cycles"].iloc[0])
    if quantity == "shared latency":
        return float(spec.l1.shared_latency_cycles)
    if quantity == "L2 latency":
        return float(an.pointer_chase(spec, 4 << 20, 128)["latency_cycles"].iloc[0])
    if quantity == "global latency":
        return float(an.pointer_chase(spec, 4 * l2_bytes, 128)["latency_cycles"].iloc[0])
    if quantity == "L1 throughput":
        return float(spec.l1.bandwidth_bytes_per_cycle)
    if quantity == "shared throughput":
        return float(spec.l1.shared_banks * spec.l1.shared_bank_width_bytes)
    if quantity == "L2 throughput":
        return float(spec.l2.bandwidth_GBps * 1e3 / clock)
    if quantity == "global throughput":
        n = 16 * l2_bytes // 4  # arrays far beyond L2
        return float(an.stream(spec, "read", n)["bandwidth_GBps"].iloc[0])
    raise ValueError(quantity)


def measured(device: str, quantity: str) -> tuple[float, str]:
    """Our calibration runs' figure for ``quantity`` (NaN when no run measured it)."""

    folder = calibration_root() / device
    runs = sorted((p for p in folder.glob("*") if (p / "manifest.json").is_file()),
                  reverse=True) if folder.is_dir() else []
    l2_bytes = devices.get(device).l2.size_MiB * 2**20
    for path in runs:
        run = RunDir.open(path)
        have = run.finished_tables()
        src = f"calibration run {run.run_id}"
        if "latency" in quantity and "pchase" in have:
            df = run.read_table("pchase")
            fp = df["footprint_B"]
            sel = {
                "L1 latency": (df["path"] == "ca") & (fp <= 16 << 10),
                "shared latency": df["path"] == "shared",
                "L2 latency": (df["path"] == "cg") & (fp >= 1 << 20) & (fp <= 16 << 20),
                "global latency": (df["path"] == "cg") & (fp >= 4 * l2_bytes),
            }[quantity]
            if sel.any():
                return float(np.median(df.loc[sel, "latency_cycles"])), f"{src} pchase"
        if quantity == "shared throughput" and "shared" in have:
            df = run.read_table("shared")
            sel = df["conflict_ways"] == 1
            if sel.any():
                return float(df.loc[sel, "bytes_per_clk_per_SM"].max()), f"{src} shared"
        if quantity == "global throughput" and "stream" in have:
            df = run.read_table("stream")
            big = df[df["array_B"] == df["array_B"].max()]
            return float(big["bandwidth_GBps"].max()), (
                f"{src} stream (best op at {int(big['array_B'].iloc[0]) >> 20} MiB)")
    return math.nan, ""


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    dev, quantity = params["device"], params["quantity"]
    spec = devices.get(dev)
    gpu = PAPER_GPU.get(dev)
    pub = PUBLISHED.get(gpu or "", {}).get(quantity, math.nan)
    t0 = time.perf_counter()
    sim = simulated(spec, quantity)
    sim_s = time.perf_counter() - t0
    ana = analytical(spec, quantity)
    meas, meas_src = measured(dev, quantity)

    def err(x: float) -> float:
        return 100.0 * (x - pub) / pub if pub == pub and pub else math.nan

    note = ""
    if (dev, quantity) in OTHER_MEMORY:
        note = f"paper figure is the {gpu}'s own memory, not this device's"
    return [{
        "device": dev,
        "quantity": quantity,
        "unit": UNITS[quantity],
        "paper_gpu": gpu or "",
        "published": pub,
        "simulated": sim,
        "analytical": ana,
        "measured": meas,
        "err_simulated_pct": err(sim),
        "err_analytical_pct": err(ana),
        "err_measured_pct": err(meas),
        "sim_vs_measured_pct": 100.0 * (sim - meas) / meas if meas == meas else math.nan,
        "measured_source": meas_src,
        "sim_wall_s": sim_s,
        "source": f"{SOURCE} Table {'IV' if 'latency' in quantity else 'V'}",
        "note": note,
    }]


def plot(df: Any, out_dir: Path) -> list[Path]:
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quantities = [q for q in GRID["quantity"] if q in set(df["quantity"])]
    devs = list(dict.fromkeys(df["device"]))
    cols = 4
    rows = math.ceil(len(quantities) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    width = 0.2
    x = np.arange(len(devs))
    bars = (("published", "0.35", "published (Luo et al.)"), ("simulated", "C0", "simulated"),
            ("analytical", "C1", "analytical"), ("measured", "C2", "measured (our calibration)"))
    for ax, q in zip(axes.ravel(), quantities, strict=False):
        sub = df[df["quantity"] == q].set_index("device").reindex(devs)
        for i, (col, colour, label) in enumerate(bars):
            if col not in sub:
                continue
            ax.bar(x + (i - 1.5) * width, sub[col].to_numpy(float), width, color=colour,
                   label=label)
        ax.set_xticks(x)
        ax.set_xticklabels(devs, rotation=25, ha="right", fontsize=7)
        ax.set_title(q, fontsize=9)
        ax.set_ylabel(UNITS[q])
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes.ravel()[len(quantities):]:
        ax.axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("Hopper microbenchmarks (Luo et al. Tables IV, V): published vs simgpu views"
                 "\n(h100-sxm/h100-pcie shown against the H800-PCIe row)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return [save_figure(fig, out_dir / "hopper_dissect.png")]


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
