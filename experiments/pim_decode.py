"""GPT-2 decode (batch 1) on an H100 SXM versus HBM-PIM: speedup and energy ratio per model.

Each point is one GPT-2 size and one PIM configuration; the GPU row is the same for every
configuration. Columns:

* ``speedup``: end-to-end decode step, GPU alone / GPU host + PIM (every kernel, including the
  element-wise ones that stay on the GPU, pays the host's kernel launch);
* ``device_speedup``: the matrix kernels' device time only (no launches);
* ``gemv_speedup_same_memory``: the PIM GEMV of the MLP-up matrix against a processor streaming
  the same matrix from the same memory without PIM: the comparison behind Samsung's
  published 8.9x;
* ``energy_ratio``: GPU-alone energy / PIM-placement energy (PIM device + host at idle power).

PIM configurations: ``hbm-pim x1`` (one HBM2-PIM stack, models/hbm-pim.toml), ``hbm-pim x5``
(five stacks, as many as the H100 has HBM3 stacks) and ``hbm3-pim``: a what-if that puts the
HBM-PIM units (one 16-lane FP16 unit per two banks, all-bank MAC every tCCD_L, as AttAcc's
nCCDAB = 4) on the H100's own five HBM3 stacks (its [dram] table); ``aim x1``: the AiM card
(models/aim.toml), off-package, so each offloaded op's input and output cross PCIe.

Published bands beside the results: HBM-PIM GEMV 8.9x; PIM-GPT 41-137x over a GPU on its own
ASIC + PIM design (published/dram_timings.md).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from simgpu import devices
from simgpu.analytical.params import DeviceParams
from simgpu.errors import SimgpuError
from simgpu.experiments.placement import GPT2_MODELS, compare, decode_step
from simgpu.experiments.runner import run_experiment
from simgpu.io import atomic_write_text, save_figure
from simgpu.sim.pim import host_stream_time_s, simulate_gemv

NAME = "pim_decode"
DESCRIPTION = "GPT-2 decode step (125M-1.5B, batch 1): h100-sxm alone vs HBM-PIM"
GRID: dict[str, list[Any]] = {
    "device": ["h100-sxm"],
    "model": ["gpt2-125m", "gpt2-350m", "gpt2-774m", "gpt2-1.5b"],
    "pim": ["hbm-pim x1", "hbm-pim x5", "hbm3-pim", "aim x1"],
    "seq_len": [512],
}

#: published/dram_timings.md (PIM devices)
PUBLISHED_HBM_PIM_GEMV = 8.9
PUBLISHED_PIM_GPT = (41.0, 137.0)


def pim_target(name: str, host: Any) -> tuple[Any, int]:
    """(PIM spec, number of devices) for a configuration name."""
    base = devices.get_device("hbm-pim")
    if name == "hbm-pim x1":
        return base, 1
    if name == "hbm-pim x5":
        return base, 5
    if name == "aim x1":
        return devices.get_device("aim"), 1
    if name == "hbm3-pim":
        t = host.dram.timing
        pim = dataclasses.replace(
            base.pim,
            mac_interval_tCK=t.tCCD_L,  # AttAcc: all-bank MACs spaced by nCCDAB = 4 (= tCCD_L)
            input_write_interval_tCK=t.tCCD_L,
            readout_interval_tCK=t.tCCD_S,
        )
        spec = dataclasses.replace(
            base,
            name="hbm3-pim",
            full_name=f"HBM-PIM units on the {host.name} HBM3 stacks (what-if)",
            dram=host.dram,
            pim=pim,
        )
        problems = list(spec.problems())
        if problems:
            raise SimgpuError(f"hbm3-pim what-if is inconsistent: {problems}")
        return spec, 1

    raise SimgpuError(
        f"pim = {name!r}, expected 'hbm-pim x1', 'hbm-pim x5', 'hbm3-pim' or 'aim x1'"
    )


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    """One model on one PIM configuration: the comparison table's two rows, merged."""

    host = devices.get(params["device"])
    model = GPT2_MODELS[params["model"]]
    spec, n = pim_target(params["pim"], host)
    ops = decode_step(model, int(params["seq_len"]))
    table = compare(ops, host, [spec], pim_devices=n)
    gpu, pim = table.iloc[0], table.iloc[1]
    d = model.d_model
    g = simulate_gemv(spec, 4 * d, d, devices=n)
    same_memory = host_stream_time_s(spec, g.weight_bytes, devices=n) / g.time_s
    weight_bytes = 2 * model.parameters
    capacity = spec.dram.size_GiB * 2**30 * n
    return [
        {
            "model": model.name,
            "parameters": model.parameters,
            "pim": params["pim"],
            "pim_devices": n,
            "pim_units": spec.units * n,
            "fits_in_pim": weight_bytes <= capacity,
            "gpu_time_s": float(gpu["time_s"]),
            "pim_time_s": float(pim["time_s"]),
            "gpu_device_time_s": float(gpu["device_time_s"]),
            "pim_device_time_s": float(pim["device_time_s"]),
            "launch_s": float(gpu["launch_s"]),
            "speedup": float(pim["speedup_vs_gpu"]),
            "device_speedup": float(pim["device_speedup_vs_gpu"]),
            "gemv_speedup_same_memory": same_memory,
            "gpu_energy_J": float(gpu["energy_J"]),
            "pim_energy_J": float(pim["energy_J"]),
            "energy_ratio": float(pim["energy_ratio_vs_gpu"]),
            "gpu_bytes": float(gpu["device_bytes"]),
            "pim_bytes": float(pim["device_bytes"]),
            "published_hbm_pim_gemv": PUBLISHED_HBM_PIM_GEMV,
            "published_pim_gpt_low": PUBLISHED_PIM_GPT[0],
            "published_pim_gpt_high": PUBLISHED_PIM_GPT[1],
        }
    ]


def plot(df: Any, out_dir: Path) -> list[Path]:
    """Speedups (three kinds) and energy ratio per model and PIM configuration."""
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(df["model"]))
    pims = list(dict.fromkeys(df["pim"]))
    fig, axes = plt.subplots(1, 4, figsize=(22, 5))
    fig.subplots_adjust(wspace=0.3)
    width = 0.8 / max(1, len(pims))
    panels = [
        ("speedup", "end-to-end decode step"),
        ("device_speedup", "matrix kernels only (no launches)"),
        ("gemv_speedup_same_memory", "MLP-up GEMV: PIM vs same memory without PIM"),
        ("energy_ratio", "energy ratio (GPU / PIM placement)"),
    ]
    for ax, (col, title) in zip(axes, panels, strict=True):
        for i, pim in enumerate(pims):
            sub = df[df["pim"] == pim].set_index("model").reindex(models)
            xs = [j + i * width for j in range(len(models))]
            ax.bar(xs, sub[col], width=width, label=pim)
        ax.axhline(1.0, color="black", linewidth=0.8)
        if col != "energy_ratio":
            ax.axhline(
                PUBLISHED_HBM_PIM_GEMV,
                color="tab:red",
                linestyle="--",
                label="published HBM-PIM GEMV 8.9x",
            )
        if col in ("speedup", "device_speedup"):
            ax.axhspan(
                *PUBLISHED_PIM_GPT,
                color="tab:purple",
                alpha=0.15,
                label="published PIM-GPT 41-137x",
            )
        if col == "energy_ratio":
            ax.axhline(
                1 / 0.4,
                color="tab:red",
                linestyle="--",
                label="published HBM-PIM energy -60% (2.5x)",
            )
        ax.set_yscale("log")
        ax.set_xticks([j + width * (len(pims) - 1) / 2 for j in range(len(models))])
        ax.set_xticklabels(models)
        ax.set_xlabel("model (GPT-2 size)")
        ax.set_ylabel(
            "ratio over the same memory without PIM (x)"
            if col == "gemv_speedup_same_memory"
            else "ratio over h100-sxm alone (x)"
        )
        ax.set_title(title)
    axes[0].legend(fontsize=7, loc="upper left")
    axes[2].legend(fontsize=7, loc="upper left")
    axes[3].legend(fontsize=7, loc="upper left")
    fig.suptitle("GPT-2 decode step, batch 1: h100-sxm versus PIM placements (HBM-PIM, AiM)")
    paths = [save_figure(fig, out_dir / "pim_decode.png")]
    write_explanation(df, out_dir / "explanation.md")
    return paths


def explain(df: Any) -> str:
    """Where simgpu's figures sit against the published bands, and why (from the table)."""

    host = devices.get(str(GRID["device"][0]))
    lines = [
        "# pim_decode: simgpu against the published PIM figures",
        "",
        "| pim | end-to-end speedup | kernel-only speedup | GEMV vs same memory | energy ratio |",
        "|---|---|---|---|---|",
    ]
    for pim, sub in df.groupby("pim", sort=False):
        lines.append(
            f"| {pim} | {sub.speedup.min():.2f}-{sub.speedup.max():.2f}x"
            f" | {sub.device_speedup.min():.2f}-{sub.device_speedup.max():.2f}x"
            f" | {sub.gemv_speedup_same_memory.min():.2f}-"
            f"{sub.gemv_speedup_same_memory.max():.2f}x"
            f" | {sub.energy_ratio.min():.2f}-{sub.energy_ratio.max():.2f}x |"
        )

    launch_share = (df["launch_s"] / df["gpu_time_s"]).agg(["min", "max"])
    hbm = df[df["pim"].str.startswith("hbm")]
    aim = df[df["pim"].str.startswith("aim")]
    launch_us = DeviceParams.from_spec(host).launch_overhead_s * 1e6
    lines += [
        "",
        f"Published: HBM-PIM GEMV {PUBLISHED_HBM_PIM_GEMV}x; PIM-GPT "
        f"{PUBLISHED_PIM_GPT[0]:g}-{PUBLISHED_PIM_GPT[1]:g}x; HBM-PIM energy -60% (2.5x).",
        "",
        "Why simgpu differs:",
        "",
        "1. *Internal bandwidth caps the GEMV speedup.* In the modelled HBM-PIM every pseudo-"
        "channel's 8 units take 32 B per tCCD_L (4 tCK) while the bus moves 32 B per tCCD_S "
        "(2 tCK): 4x the external bandwidth at most. Activations, precharges and input-register"
        " loads between row cycles cost a further ~30%, so the GEMV against the same memory "
        "without PIM (streamed at the discrete-event HBM model's sustained rate) lands near "
        f"{hbm.gemv_speedup_same_memory.median():.1f}x, not 8.9x. simgpu cannot tell from the "
        "published figure what its baseline reached: a host GEMV further below the HBM2 peak "
        "than simgpu's streaming baseline, or PIM units faster than one MAC per tCCD_L, would "
        "each move the ratio up.",
        f"2. *The H100 is not the HBM2 host of the published system.* Its five HBM3 stacks "
        f"stream {host.dram.peak_bandwidth_GBps:g} GB/s; one HBM2-PIM stack computes at about "
        "1 TB/s internally, five at about 5 TB/s, and the hbm3-pim what-if (PIM units on the "
        "H100's own stacks) at 4x 3.35 TB/s before overheads. Hence kernel-only speedups from "
        f"{df.device_speedup.min():.2f}x to {df.device_speedup.max():.2f}x.",
        "3. *Launches bound the end-to-end gain.* Every kernel, PIM or not, is launched by "
        f"the host ({launch_us:.2f} us each, analytical engine's calibrated figure); launches are "
        f"{launch_share['min']:.0%}-{launch_share['max']:.0%} of the GPU's decode step at "
        "batch 1, and they stay when the matrix kernels move to PIM. PIM-GPT's 41-137x comes "
        "from its own ASIC + PIM design with no GPU host in the loop.",
        "4. *AiM* (models/aim.toml) has 8x its external bandwidth inside (MAC16 every 2 ns "
        "on 32 banks per chip), so its GEMV against the same GDDR6 without PIM reaches "
        + (
            f"{aim.gemv_speedup_same_memory.min():.1f}-{aim.gemv_speedup_same_memory.max():.1f}x"
            if len(aim)
            else "(not in this run)"
        )
        + "; but it is a PCIe card: every offloaded op's vectors cross the link (two transfers "
        "with their latency per op), which costs more than the kernels gain at batch 1.",
        "5. *Energy* follows the bytes that no longer cross the HBM interface (I/O "
        "2.5 pJ/bit of ~3.9, an assumption in models/hbm-pim.toml) and the host's idle power "
        "while it waits; the H100 side is the analytical engine's fitted per-event energies.",
    ]
    return "\n".join(lines) + "\n"


def write_explanation(df: Any, path: Path) -> Path:
    """Write :func:`explain` atomically."""

    atomic_write_text(path, explain(df))
    return path


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
