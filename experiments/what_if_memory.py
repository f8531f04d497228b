"""What if the memory system changed? A decode step and a large GEMM as HBM bandwidth, L2 size
and PCIe generation vary, and where each becomes compute- or memory-bound.

Device: h100-sxm with the knobs of :mod:`simgpu.sweep.model` (``hbm_bandwidth_GBps`` scales
the DRAM interface, ``l2_size_MiB`` the L2 capacity, ``pcie_gen`` the host link at 16 lanes);
everything else as in models/h100-sxm.toml. Workloads (analytical view; a decode step has no
trace for the simulator):

``decode llama2-7b``
    one decode step of Llama-2-7B, batch 1, 4096 tokens of context, fp16 (weights and KV fit
    in 80 GiB: bound by DRAM);
``decode llama2-70b``
    the same for Llama-2-70B: its 138 GB of fp16 weights do not fit, the overflow crosses the
    host link every step (:mod:`simgpu.experiments.decode`);
``gemm 8192``
    a large square fp16 GEMM (8192^3, cuBLAS), compute-bound;
``gemm 16x8192x8192``
    a skinny one (M = 16, the shape of a batch-16 projection), memory-bound;
``stream triad 4Mi``
    STREAM triad over three arrays of 4 Mi fp32 (48 MiB moved): served by L2 when they fit,
    the one workload here that L2 capacity changes.

The table has the step/kernel time, its ``bound`` (compute, power, dram, l2, shared, pcie,
launch) and the time relative to the unmodified device.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from simgpu import analytical
from simgpu.experiments.decode import decode_step, skinny_tiles, split_k
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure
from simgpu.sweep.model import device_with

NAME = "what_if_memory"
DESCRIPTION = "Decode step and GEMM on h100-sxm as HBM bandwidth, L2 size and PCIe gen vary"
GRID: dict[str, list[Any]] = {
    "device": ["h100-sxm"],
    "workload": ["decode llama2-7b", "decode llama2-70b", "gemm 8192", "gemm 16x8192x8192",
                 "stream triad 4Mi"],
    "hbm_bandwidth_GBps": [1000.0, 2000.0, 3350.0, 5000.0, 8000.0, 12000.0],
    "l2_size_MiB": [12.5, 25.0, 50.0, 100.0, 200.0],
    "pcie_gen": [3, 4, 5, 6],
}
#: The unmodified h100-sxm (models/h100-sxm.toml): HBM3 3350 GB/s, 50 MiB L2, PCIe gen 5.
BASE = {"hbm_bandwidth_GBps": 3350.0, "l2_size_MiB": 50.0, "pcie_gen": 5}
KNOBS = ("hbm_bandwidth_GBps", "l2_size_MiB", "pcie_gen")


def evaluate(spec: Any, workload: str) -> dict[str, Any]:
    kind, _, arg = workload.partition(" ")
    if kind == "stream":
        op, _, n = arg.partition(" ")
        est = analytical.stream(spec, op, int(n.removesuffix("Mi")) * 2**20)
        return {"time_s": float(est["time_s"].iloc[0]), "bound": str(est["bound"].iloc[0]),
                "power_W": float(est["power_W"].iloc[0])}
    if kind == "decode":
        r = decode_step(spec, arg, batch=1, context=4096)
        return {"time_s": r["time_s"], "bound": r["bound"], "t_link_s": r["t_link_s"],
                "weights_host_GB": r["weights_host_GB"]}
    dims = [int(x) for x in arg.split("x")] if "x" in arg else [int(arg)] * 3
    m, n, k = dims
    kw: dict[str, Any] = {}
    if m < 128:  # a skinny GEMM: small-M tiles, K split to fill the SMs
        kw = skinny_tiles(m)
        kw["split_k"] = split_k(spec, m, n, k, kw)
    est = analytical.gemm(spec, m, n, k, "fp16", **kw).iloc[0]
    return {"time_s": float(est["time_s"]), "bound": str(est["bound"]),
            "tflops": float(est["tflops"]), "power_W": float(est["power_W"])}


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    knobs = {k: params[k] for k in KNOBS}
    spec = device_with(params["device"], knobs)
    base = device_with(params["device"], BASE)
    row = {**params, **evaluate(spec, params["workload"])}
    row["time_rel_base"] = row["time_s"] / evaluate(base, params["workload"])["time_s"]
    return [row]


def plot(df: Any, out_dir: Path) -> list[Path]:
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    markers = {"compute": "o", "power": "P", "dram": "s", "l2": "D", "shared": "v",
               "pcie": "X", "launch": "*"}
    workloads = list(dict.fromkeys(df["workload"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    labels = {"hbm_bandwidth_GBps": "HBM bandwidth [GB/s]", "l2_size_MiB": "L2 size [MiB]",
              "pcie_gen": "PCIe generation (x16)"}
    for ax, knob in zip(axes, KNOBS, strict=True):
        sel = df
        for other in KNOBS:
            if other != knob and BASE[other] in set(df[other]):
                sel = sel[sel[other] == BASE[other]]
        for c, wl in enumerate(workloads):
            sub = sel[sel["workload"] == wl].sort_values(knob)
            if sub.empty:
                continue
            ax.plot(sub[knob], sub["time_rel_base"], "-", color=f"C{c}", lw=1.2)
            for _, r in sub.iterrows():
                ax.plot(r[knob], r["time_rel_base"], markers.get(str(r["bound"]), "."),
                        color=f"C{c}", ms=7)
        if knob != "pcie_gen":
            ax.set_xscale("log")
        values = sorted(set(df[knob]))
        ax.set_xticks(values)
        ax.set_xticklabels([f"{v:g}" for v in values], fontsize=8)
        ax.minorticks_off()
        ax.set_yscale("log")
        fmt = matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}")
        ax.yaxis.set_major_formatter(fmt)
        ax.yaxis.set_minor_formatter(fmt)
        ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel(labels[knob])
        ax.set_ylabel("time / time on the unmodified h100-sxm")
        ax.set_title(f"varying {labels[knob].split(' [')[0]} (others as h100-sxm)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color=f"C{c}", lw=2, label=wl) for c, wl in enumerate(workloads)]
    used = [b for b in markers if b in set(df["bound"])]
    handles += [Line2D([], [], color="k", marker=markers[b], ls="", label=f"bound: {b}")
                for b in used]
    axes[0].legend(handles=handles, fontsize=7)
    fig.suptitle("What if the memory system changed? (analytical view; marker = binding roof)",
                 fontsize=11)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "what_if_memory.png")]


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
