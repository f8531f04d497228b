"""Runtime and power of the shared-memory tiled SGEMM versus tile size, across sizes (GPPerf).

After Halim et al., "Understanding GEMM Performance and Energy on NVIDIA Ada Lovelace: A Machine
Learning-Based Analytical Approach" (arXiv 2411.16954, the GPPerf study), which times the
textbook tiled kernel (TILE x TILE threads, TILE x TILE tiles of A and B in shared memory) on an
RTX 4070 for tiles 8, 16 and 32. Here the same kernel (``kernels/sgemm.cu`` ``sgemm_tiled``) on
rtx-4070 and h100-sxm, square sizes, every view, each asked through the view protocol
(:func:`simgpu.views.protocol.estimate`) about the same :class:`simgpu.workloads.TiledGemm`:

``measured``
    h100-sxm: the calibration runs in ``calibration/h100-sxm/`` (exact row);
    rtx-4070: not a calibration run of ours, so GPPerf's ``tiled_execution_times.csv`` and
    ``tiled_power.csv`` (``$SIMGPU_DATA`` or ``../shared/data/gpperf``; one cold launch per
    time and whole-process nvidia-smi power, so read the shape, not the absolute values);
``simulated``
    the trace replay, for sizes up to ``sim_max_size`` (a 512^3 replay takes 100-150 s on a
    2-core machine, 256^3 about 25 s); no power model;
``analytical``
    the closed-form GEMM model with the kernel's tiles;
``learned``
    the random forest.

One row per device, size, tile and view.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from simgpu import devices, workloads
from simgpu.errors import ViewUnavailable
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure
from simgpu.predict.datasets import data_dir
from simgpu.views import protocol

NAME = "gemm_tile_study"
DESCRIPTION = "Tiled SGEMM runtime and power vs tile size and size, rtx-4070 and h100-sxm, 4 views"
GRID: dict[str, list[Any]] = {
    "device": ["rtx-4070", "h100-sxm"],
    "size": [256, 512, 1024, 2048],
    "tile": [8, 16, 32],
    "sim_max_size": [256],
}
VIEWS = ("measured", "simulated", "analytical", "learned")

_GPPERF: dict[str, Any] = {}


def _gpperf() -> tuple[Any, Any] | None:
    """GPPerf's tiled-kernel tables (times in ms, power in W), or None when absent."""
    if "tables" not in _GPPERF:
        folder = data_dir() / "gpperf"
        try:
            times = pd.read_csv(folder / "tiled_execution_times.csv")
            power = pd.read_csv(folder / "tiled_power.csv")
        except FileNotFoundError:
            _GPPERF["tables"] = None
        else:
            _GPPERF["tables"] = (times, power)
    tables: tuple[Any, Any] | None = _GPPERF["tables"]
    return tables


def measured(device: str, n: int, tile: int) -> tuple[float, float, str]:
    """(time_s, power_W, source) of the measured row, NaN when none."""
    if device == "rtx-4070":
        tables = _gpperf()
        if tables is None:
            return math.nan, math.nan, "GPPerf data not found (set SIMGPU_DATA)"
        times, power = tables
        sel = (times["M"] == n) & (times["N"] == n) & (times["K"] == n) & (
            times["Tile Size"] == tile)
        if not sel.any():
            return math.nan, math.nan, "GPPerf has no such row"
        t = float(times.loc[sel, "Execution Time"].mean()) * 1e-3
        psel = (power["M"] == n) & (power["N"] == n) & (power["K"] == n) & (
            power["Tile Size"] == tile)
        p = float(power.loc[psel, "Average Power Usage (W)"].mean()) if psel.any() else math.nan
        return t, p, f"GPPerf tiled_execution_times.csv ({int(sel.sum())} row(s))"

    return _ask("measured", workloads.TiledGemm(n, n, n, tile=tile), devices.get(device))


def _ask(view: str, w: workloads.TiledGemm, spec: Any, **options: Any) -> tuple[float, float, str]:
    """(time_s, power_W, note) of ``view``, NaN (and the reason) where it cannot answer."""
    try:
        e = protocol.estimate(view, w, spec, **options)
    except ViewUnavailable as exc:
        return math.nan, math.nan, str(exc)
    nan = math.nan
    return (nan if e.time_s is None else e.time_s, nan if e.power_W is None else e.power_W,
            e.note)


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    dev, n, tile = params["device"], int(params["size"]), int(params["tile"])
    spec = devices.get(dev)
    flops = 2.0 * n**3
    out: dict[str, tuple[float, float, str]] = {}
    out["measured"] = measured(dev, n, tile)
    w = workloads.TiledGemm(n, n, n, tile=tile)
    if n <= int(params["sim_max_size"]):
        out["simulated"] = _ask("simulated", w, spec)
    else:
        out["simulated"] = (math.nan, math.nan, f"size > sim_max_size {params['sim_max_size']}")
    out["analytical"] = _ask("analytical", w, spec)
    out["learned"] = _ask("learned", w, spec)
    rows = []
    for view in VIEWS:
        t, p, note = out[view]
        rows.append({
            "device": dev, "size": n, "tile": tile, "view": view, "time_s": t,
            "tflops": flops / t / 1e12 if t == t and t > 0 else math.nan,
            "power_W": p, "energy_J": t * p, "note": note,
        })
    return rows


def plot(df: Any, out_dir: Path) -> list[Path]:
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    devs = list(dict.fromkeys(df["device"]))
    sizes = sorted(df["size"].unique())
    styles = {"measured": ("o", "-"), "simulated": ("s", ":"), "analytical": ("", "--"),
              "learned": ("^", "-.")}
    fig, axes = plt.subplots(2, len(devs), figsize=(5.2 * len(devs), 7.5), squeeze=False)
    for j, dev in enumerate(devs):
        for i, (metric, label) in enumerate((("time_s", "runtime [ms]"),
                                             ("power_W", "power [W]"))):
            ax = axes[i][j]
            for c, n in enumerate(sizes):
                for view, (marker, ls) in styles.items():
                    sub = df[(df["device"] == dev) & (df["size"] == n) & (df["view"] == view)]
                    sub = sub.sort_values("tile")
                    y = sub[metric].to_numpy(float) * (1e3 if metric == "time_s" else 1.0)
                    if (y == y).any():
                        ax.plot(sub["tile"], y, marker=marker, ls=ls, color=f"C{c}", ms=4)
            ax.set_xscale("log", base=2)
            ax.set_xticks([8, 16, 32])
            ax.set_xticklabels(["8", "16", "32"])
            if metric == "time_s":
                ax.set_yscale("log")
            ax.set_xlabel("tile size TILE (TILE x TILE threads per block)")
            ax.set_ylabel(label)
            ax.set_title(f"{dev}: {'runtime' if metric == 'time_s' else 'average power'}")
            ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color=f"C{c}", lw=2, label=f"{n}^3") for c, n in enumerate(sizes)]
    handles += [Line2D([], [], color="k", marker=m, ls=ls, label=v)
                for v, (m, ls) in styles.items()]
    axes[0][0].legend(handles=handles, fontsize=7, ncol=2)
    fig.suptitle("Tiled SGEMM (kernels/sgemm.cu sgemm_tiled) vs tile size: four views", fontsize=11)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "gemm_tile_study.png")]


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
