"""Decode time versus context length as the KV cache outgrows L2, then device memory, and spills
over PCIe.

After Fu, "Challenges in Deploying Long-Context Transformers: A Theoretical Peak Performance
Analysis" (arXiv:2405.08944): the KV cache grows linearly with the context, and once it dwarfs
the weights a decode step is the time to read it, wherever it lives. Here one decode step
(batch 1, fp16; :func:`simgpu.experiments.decode.decode_step`, analytical view) for a GQA model
of 8B parameters (Llama-3-8B, 128 KiB of KV per token) and the 34B model of Fu's paper (Yi-34B,
240 KiB per token) on three devices with different L2 and memory capacities: rtx-4090 (72 MiB
L2, 24 GiB GDDR6X), h100-sxm (50 MiB, 80 GiB HBM3), h200 (50 MiB, 141 GiB HBM3e).

The KV cache is served by L2 while it fits in the persisting set-aside (75% of L2), then by
device memory while weights + KV fit (2 GiB kept free), then the overflow crosses the host link
each step (pinned, overlapped with the GPU's work). When the weights themselves do not fit
(Yi-34B on the rtx-4090), the overflow of weights crosses the link too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from simgpu import devices
from simgpu.experiments.decode import L2_PERSIST_FRACTION, MODELS, RESERVED_GiB, decode_step
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure

NAME = "long_context_kv"
DESCRIPTION = "Decode step time vs context as the KV cache outgrows L2, HBM, then PCIe (after Fu)"
GRID: dict[str, list[Any]] = {
    "device": ["rtx-4090", "h100-sxm", "h200"],
    "model": ["llama3-8b", "yi-34b"],
    "context": [2**k for k in range(4, 23)],
    "batch": [1],
}


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    spec = devices.get(params["device"])
    model = MODELS[params["model"]]
    r = decode_step(spec, model, int(params["batch"]), int(params["context"]))
    per_token = model.kv_bytes_per_token()
    l2_tokens = spec.l2.size_MiB * 2**20 * L2_PERSIST_FRACTION / per_token
    free = spec.dram.size_GiB * 2**30 - RESERVED_GiB * 2**30 - model.params * 2
    return [{
        **params,
        **r,
        "ms_per_token": r["time_s"] * 1e3 / int(params["batch"]),
        "kv_tokens_in_l2": l2_tokens,
        "kv_tokens_in_dram": max(0.0, free / per_token),
        "l2_MiB": spec.l2.size_MiB,
        "dram_GiB": spec.dram.size_GiB,
        "pcie_GBps": spec.host_link.bandwidth_per_direction_GBps,
    }]


def plot(df: Any, out_dir: Path) -> list[Path]:
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    markers = {"L2": "o", "DRAM": "s", "DRAM+host": "D", "host": "X"}
    models = list(dict.fromkeys(df["model"]))
    devs = list(dict.fromkeys(df["device"]))
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for c, dev in enumerate(devs):
            sub = df[(df["model"] == model) & (df["device"] == dev)].sort_values("context")
            if sub.empty:
                continue
            ax.plot(sub["context"], sub["ms_per_token"], "-", color=f"C{c}", lw=1.2)
            for level, grp in sub.groupby("kv_level"):
                ax.plot(grp["context"], grp["ms_per_token"], markers.get(str(level), "."),
                        color=f"C{c}", ms=5)
            first = sub.iloc[0]
            for col, ls in (("kv_tokens_in_l2", ":"), ("kv_tokens_in_dram", "--")):
                x = float(first[col])
                if sub["context"].min() <= x <= sub["context"].max():
                    ax.axvline(x, color=f"C{c}", ls=ls, lw=0.8, alpha=0.7)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length [tokens]")
        ax.set_ylabel("decode step time, batch 1 [ms per token]")
        ax.set_title(f"{model}: KV cache {df[df['model'] == model]['kv_GB'].max():.0f} GB"
                     " at the longest context", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color=f"C{c}", lw=2, label=d) for c, d in enumerate(devs)]
    handles += [Line2D([], [], color="k", marker=m, ls="", label=f"KV in {lv}")
                for lv, m in markers.items() if lv in set(df["kv_level"])]
    handles += [Line2D([], [], color="k", ls=":", label="KV outgrows L2 set-aside"),
                Line2D([], [], color="k", ls="--", label="weights + KV outgrow device memory")]
    axes[0][0].legend(handles=handles, fontsize=7)
    fig.suptitle("Long-context decode: the KV cache moves from L2 to device memory to the host"
                 " (analytical view)", fontsize=11)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "long_context_kv.png")]


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
