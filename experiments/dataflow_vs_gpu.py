"""GEMM shapes from small to large on the systolic-array devices versus h100-sxm.

For each systolic device, dataflow (os, ws, is) and square GEMM size, the dataflow model
(:mod:`simgpu.sim.dataflow`) gives cycles, PE utilisation (useful MACs over PE-cycles, stalls
included), stalls, DRAM traffic and energy; beside it the H100's time and tensor-core
utilisation from :func:`simgpu.analytical.gemm` (fp16, cuBLAS-like tiling), with and without
its kernel-launch overhead (the array's figures have none). Times are of the GEMM alone:
operands resident in each device's own memory, no PCIe transfer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from simgpu import analytical, devices
from simgpu.analytical.params import DeviceParams
from simgpu.devices.dataflow import DataflowSpec
from simgpu.errors import SimgpuError
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure
from simgpu.sim.dataflow import simulate_gemm

NAME = "dataflow_vs_gpu"
DESCRIPTION = "GEMM (32 to 8192, square) on 32x32 and 128x128 systolic arrays vs h100-sxm"
GRID: dict[str, list[Any]] = {
    "device": ["systolic-32x32", "systolic-128x128"],
    "gpu": ["h100-sxm"],
    "dataflow": ["os", "ws", "is"],
    "size": [32, 128, 512, 2048, 8192],
}


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    """One device, dataflow and size: the array's figures and the GPU's."""

    spec = devices.get_device(params["device"])
    if not isinstance(spec, DataflowSpec):
        raise SimgpuError(f"{params['device']!r} is not a dataflow device")
    gpu = devices.get(params["gpu"])
    n = int(params["size"])
    r = simulate_gemm(spec, n, n, n, params["dataflow"])
    g = analytical.gemm(gpu, n, n, n, "fp16").iloc[0]
    gpu_peak = gpu.compute.peak_fp16_tensor_TFLOPS or gpu.compute.peak_fp32_TFLOPS
    # the array's time has no host launch in it; compare with the GPU kernel's time alone too
    gpu_kernel_s = float(g["time_s"]) - DeviceParams.from_spec(gpu).launch_overhead_s
    flops = 2.0 * n**3
    row = r.to_dict()
    row.update(
        device=spec.name,
        size=n,
        array=f"{spec.array.rows}x{spec.array.cols}",
        peak_TFLOPS=spec.array.peak_TFLOPS,
        achieved_TFLOPS=flops / r.time_s / 1e12,
        gpu=gpu.name,
        gpu_time_s=float(g["time_s"]),
        gpu_kernel_s=gpu_kernel_s,
        gpu_bound=str(g["bound"]),
        gpu_utilization=flops / gpu_kernel_s / (gpu_peak * 1e12),
        gpu_energy_J=float(g["energy_J"]),
        time_ratio_vs_gpu=r.time_s / float(g["time_s"]),
        time_ratio_vs_gpu_kernel=r.time_s / gpu_kernel_s,
    )
    return [row]


def plot(df: Any, out_dir: Path) -> list[Path]:
    """Utilisation and time against GEMM size, one line per device and dataflow, GPU beside."""
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_u, ax_t) = plt.subplots(1, 2, figsize=(13, 5))
    styles = {"os": "-", "ws": "--", "is": ":"}
    for (device, dataflow), sub in df.groupby(["device", "dataflow"], sort=True):
        sub = sub.sort_values("size")
        label = f"{device} {dataflow}"
        ax_u.plot(
            sub["size"], sub["utilization"], styles.get(dataflow, "-"), marker="o", label=label
        )
        ax_t.plot(sub["size"], sub["time_s"], styles.get(dataflow, "-"), marker="o", label=label)
    gpu = df.drop_duplicates("size").sort_values("size")
    name = gpu["gpu"].iloc[0]
    ax_u.plot(
        gpu["size"], gpu["gpu_utilization"], "k-", marker="s", label=f"{name} (fp16 tensor peak)"
    )
    ax_t.plot(gpu["size"], gpu["gpu_time_s"], "k-", marker="s", label=f"{name} (with launch)")
    ax_t.plot(gpu["size"], gpu["gpu_kernel_s"], "k--", marker="s", label=f"{name} (kernel only)")
    for ax in (ax_u, ax_t):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("GEMM size M = N = K")
    ax_u.set_ylabel("utilisation (useful MACs / peak MAC slots)")
    ax_u.set_ylim(0, 1.05)
    ax_u.set_title("PE / tensor-core utilisation")
    ax_t.set_yscale("log")
    ax_t.set_ylabel("time (s)")
    ax_t.set_title("GEMM time")
    ax_u.legend(fontsize=7)
    ax_t.legend(fontsize=7)
    fig.suptitle(
        "Square GEMMs on systolic arrays (dataflow model) versus h100-sxm (analytical);"
        " is coincides with ws for square shapes"
    )
    return [save_figure(fig, out_dir / "dataflow_vs_gpu.png")]


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
