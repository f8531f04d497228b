"""Pointer-chase latency versus footprint (1 kB to 4 GB) on the simulated memory system.

One SM chases pointers through a footprint in a pseudo-random cyclic order (one dependent load
per 128-byte line, as the published benchmarks do), after a functional warm-up lap. The table
has one row per (device, footprint) with the simulated latency, the level that served the loads
and, where a published curve exists for the GPU (../shared/data/published/latency_curves.csv,
read where it lies, see ``PUBLISHED``), the published latency at that footprint. For h100-sxm
the figures measured on our own card (calibration/h100-sxm/...) are shown instead.

``plot`` also writes ``plateaus.csv``: simulated against published latency on each plateau
(L1, near L2, far L2, DRAM) and the footprint of each step.

Usage: ``python experiments/latency_ladder.py --device h100-pcie --out DIR`` writes
``DIR/latency_ladder.csv`` (columns device, footprint_bytes, latency_cycles, latency_ns, ...).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simgpu import devices
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure, write_table
from simgpu.sim.sources import run_pointer_chase

NAME = "latency_ladder"
DESCRIPTION = "simulated pointer-chase latency versus footprint, against published curves"

KIB = 1024
#: 1 kB to 4 GB, denser around the L1 (100-300 kB) and L2 (16-100 MB) capacities
FOOTPRINTS = [
    *(k * KIB for k in (1, 4, 16, 64, 128, 160, 192, 224, 256, 320, 512)),
    *(m * KIB * KIB for m in (1, 4, 16, 20, 24, 32, 40, 48, 64, 96, 256)),
    1024**3,
    4 * 1024**3,
]
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
GRID: dict[str, list[Any]] = {"device": DEVICES, "footprint_bytes": FOOTPRINTS}

#: timed loads per footprint (after warm-up); the mean of 1000 loads is within 1% on a plateau
N_LOADS = 1000

ROOT = Path(__file__).resolve().parents[1]
#: the shared published data, next to the repository (not copied into it)
PUBLISHED = ROOT.parent / "shared" / "data" / "published" / "latency_curves.csv"
#: our device name -> (gpu column, source substring) of the published curve
PUBLISHED_CURVES = {
    "a100-pcie-40gb": ("A100-PCIe-40GB", "HPMLL"),
    "a100-sxm-80gb": ("A100-80GB (form factor not stated)", "RRZE"),
    "h100-pcie": ("H100-PCIe-80GB", "te42kyfo"),
    "rtx-4090": ("RTX 4090", "HPMLL"),
    "v100-sxm2": ("V100-PCIe", "RRZE"),
}
#: measured on our own card (read-only calibration run)
MEASURED = {"h100-sxm": ROOT / "calibration" / "h100-sxm" / "20261122T154403Z" / "pchase.csv"}
#: plateau windows (footprint kB) as the published figures define them
#: (published/gpu_numbers.csv notes: L1 2-16 kB, near L2 1024-16384 kB, far L2 30720-51200 kB
#: on H100, 28672-38912 kB on A100 PCIe, DRAM the largest footprint)
PLATEAUS = {
    "L1": (2.0, 16.0),
    "L2near": (1024.0, 16384.0),
    "L2far": {"h100-pcie": (30720.0, 51200.0), "a100-pcie-40gb": (28672.0, 38912.0),
              "h100-sxm": (30720.0, 51200.0), "a100-sxm-80gb": (28672.0, 38912.0)},
    "DRAM": (400_000.0, 5_000_000.0),
}


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Simulate one footprint on one device."""

    spec = devices.get(params["device"])
    footprint = int(params["footprint_bytes"])
    r, system = run_pointer_chase(spec, footprint, n_loads=N_LOADS)
    served = {k: v[0] for k, v in system.by_level.items()}
    n = sum(served.values()) or 1
    cycles = r.mean_latency_cycles
    row: dict[str, Any] = {
        "device": spec.name,
        "footprint_bytes": footprint,
        "latency_cycles": cycles,
        "latency_ns": cycles * 1000.0 / spec.clock_MHz,
        "clock_MHz": spec.clock_MHz,
        "loads": r.requests,
        **{f"frac_{lvl}": served.get(lvl, 0) / n for lvl in ("L1", "L2near", "L2far", "DRAM")},
    }
    ref = reference_curve(spec.name, "cycles")
    if ref is not None:
        row["reference_latency_cycles"] = interpolate(ref[1], footprint / 1000.0)
        ref_ns = reference_curve(spec.name, "ns")
        assert ref_ns is not None
        row["reference_latency_ns"] = interpolate(ref_ns[1], footprint / 1000.0)
        row["reference"] = ref[0]
    return [row]


def reference_curve(device: str, unit: str = "ns") -> tuple[str, list[tuple[float, float]]] | None:
    """(label, [(footprint kB, latency)]) of the published or measured curve.

    ``unit`` "ns" or "cycles"; compare in ns when the reference ran at another clock than the
    device file's boost clock (the RTX 4090 curve was taken at 2235 MHz, the file says 2520).
    """
    col = "latency_ns" if unit == "ns" else "latency_cycles"
    if device in MEASURED and MEASURED[device].exists():
        pts = []
        with MEASURED[device].open() as fh:
            for rec in csv.DictReader(fh):
                if rec["path"] == "ca":
                    pts.append((int(rec["footprint_B"]) / 1000.0, float(rec[col])))
        return (f"measured ({MEASURED[device].parent.name})", sorted(pts))
    if device not in PUBLISHED_CURVES or not PUBLISHED.exists():
        return None
    gpu, source = PUBLISHED_CURVES[device]
    pts = []
    with PUBLISHED.open() as fh:
        for rec in csv.DictReader(fh):
            if rec["gpu"] == gpu and source in rec["source"]:
                pts.append((float(rec["footprint_kB"]), float(rec[col])))
    if not pts:
        return None
    return (f"published: {gpu}", sorted(pts))


def interpolate(curve: list[tuple[float, float]], kb: float) -> float:
    """Latency of a curve at ``kb`` (linear in log footprint); NaN outside its range."""

    if not curve or kb < curve[0][0] * 0.999 or kb > curve[-1][0] * 1.001:
        return float("nan")
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if x0 <= kb <= x1:
            if x1 == x0:
                return y0
            f = (math.log(kb) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + f * (y1 - y0)
    return curve[-1][1]


def _window(level: str, device: str) -> tuple[float, float] | None:
    w = PLATEAUS[level]
    if isinstance(w, dict):
        return w.get(device)
    return w


def plateau_table(df: Any) -> Any:
    """Simulated against reference latency (ns) on each plateau, and the step footprints."""

    rows = []
    for device, sub in df.groupby("device"):
        ref = reference_curve(str(device))
        if ref is None:
            continue
        sub = sub.sort_values("footprint_bytes")
        kb = sub["footprint_bytes"].to_numpy() / 1000.0
        lat = sub["latency_ns"].to_numpy()
        ref_kb = np.array([p[0] for p in ref[1]])
        ref_lat = np.array([p[1] for p in ref[1]])
        levels = []
        for level in ("L1", "L2near", "L2far", "DRAM"):
            w = _window(level, str(device))
            if w is None:
                continue
            sim_sel = (kb >= w[0]) & (kb <= w[1])
            ref_sel = (ref_kb >= w[0]) & (ref_kb <= w[1])
            if level == "DRAM":  # the largest footprints each side
                sim_sel = kb >= min(kb.max(), w[0])
                ref_sel = ref_kb >= min(ref_kb.max(), w[0])
            if not sim_sel.any() or not ref_sel.any():
                continue
            s, r = float(np.median(lat[sim_sel])), float(np.median(ref_lat[ref_sel]))
            levels.append((level, s, r))
            rows.append({"device": device, "reference": ref[0], "what": f"plateau {level}",
                         "simulated": s, "reference_value": r, "unit": "ns",
                         "error_pct": 100.0 * (s - r) / r})
        # steps: first footprint whose latency passes the midpoint of two plateaus
        for (l0, s0, r0), (l1, s1, r1) in zip(levels, levels[1:], strict=False):
            sim_step = _crossing(kb, lat, (s0 + s1) / 2)
            ref_step = _crossing(ref_kb, ref_lat, (r0 + r1) / 2)
            rows.append({"device": device, "reference": ref[0], "what": f"step {l0}->{l1}",
                         "simulated": sim_step, "reference_value": ref_step, "unit": "kB",
                         "error_pct": 100.0 * (sim_step - ref_step) / ref_step})
    return pd.DataFrame(rows)


def _crossing(kb: Any, lat: Any, level: float) -> float:
    """Footprint where a rising curve first passes ``level`` (log-linear interpolation)."""

    for i in range(1, len(kb)):
        if lat[i - 1] < level <= lat[i]:
            f = (level - lat[i - 1]) / (lat[i] - lat[i - 1])
            return math.exp(math.log(kb[i - 1]) + f * (math.log(kb[i]) - math.log(kb[i - 1])))
    return float("nan")


def plot(df: Any, out_dir: Path) -> list[Path]:
    """One figure per device (simulated and reference curves) and plateaus.csv."""
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    table = plateau_table(df)
    if len(table):
        write_table(table, out_dir, "plateaus", parquet=False)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    for device, sub in df.groupby("device"):
        sub = sub.sort_values("footprint_bytes")
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(sub["footprint_bytes"] / 1000.0, sub["latency_ns"], "o-", label="simulated")
        ref = reference_curve(str(device))
        if ref is not None:
            ax.plot([p[0] for p in ref[1]], [p[1] for p in ref[1]], "-", alpha=0.7,
                    label=ref[0])
        ax.set_xscale("log")
        ax.set_xlabel("footprint (kB)")
        ax.set_ylabel("load-to-use latency (ns)")
        ax.set_title(f"Pointer-chase latency ladder: {device}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        out.append(save_figure(fig, out_dir / f"latency_ladder_{device}.png"))
    return out


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
