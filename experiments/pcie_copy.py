"""Host-device copy bandwidth versus transfer size on the simulated PCIe link.

For each device, direction (H2D, D2H, or both at once on two copy engines) and host memory kind
(pinned or pageable) one copy of each size runs on :class:`simgpu.sim.pcie.HostLink`; the
bandwidth is bytes / (end - start) including the per-copy fixed cost, so small copies are
latency-bound and large pinned ones approach the link's rate; pageable ones approach the host's
staging rate where the device file gives one, else half of pinned. For
h100-sxm the bandwidths measured on our own card (calibration/h100-sxm/.../pcie.csv) are put
beside the simulated ones.

Usage: ``python experiments/pcie_copy.py --device h100-sxm --out DIR`` writes
``DIR/pcie_copy.csv``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import simpy

from simgpu import devices
from simgpu.experiments.runner import run_experiment
from simgpu.io import save_figure
from simgpu.sim.pcie import HostLink

NAME = "pcie_copy"
DESCRIPTION = "simulated host<->device copy bandwidth versus size, pinned and pageable"

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
SIZES = [4 * 1024 * 4**k for k in range(0, 10)]  # 4 KiB .. 1 GiB
GRID: dict[str, list[Any]] = {
    "device": DEVICES,
    "direction": ["h2d", "d2h", "both"],
    "pinned": [True, False],
    "size_bytes": SIZES,
}
ROOT = Path(__file__).resolve().parents[1]
MEASURED = {"h100-sxm": ROOT / "calibration" / "h100-sxm" / "20261122T154403Z" / "pcie.csv"}


def run_point(params: dict[str, Any]) -> list[dict[str, Any]]:
    """One copy (or one copy each way for "both") of one size."""

    spec = devices.get(params["device"])
    env = simpy.Environment()
    link = HostLink(env, spec.host_link, spec.clock_MHz)
    size = int(params["size_bytes"])
    pinned = bool(params["pinned"])
    direction = str(params["direction"])
    dirs = ["h2d", "d2h"] if direction == "both" else [direction]
    procs = [link.copy(size, d, pinned) for d in dirs]
    env.run()
    results = [p.value for p in procs]
    t0 = min(r.t_start for r in results)
    t1 = max(r.t_end for r in results)
    seconds = (t1 - t0) / (spec.clock_MHz * 1e6)
    row: dict[str, Any] = {
        "device": spec.name,
        "direction": direction,
        "pinned": pinned,
        "size_bytes": size,
        "time_us": seconds * 1e6,
        "bandwidth_GBps": size * len(dirs) / seconds / 1e9,
        "link_GBps": spec.host_link.bandwidth_per_direction_GBps,
        "copy_engines": spec.host_link.copy_engines,
    }
    measured = measured_bandwidth(spec.name, direction, pinned, size)
    if measured is not None:
        row["measured_bandwidth_GBps"] = measured
    return [row]


def measured_bandwidth(device: str, direction: str, pinned: bool, size: int) -> float | None:
    """Our calibration's bandwidth for this copy, if that size was measured."""
    path = MEASURED.get(device)
    if path is None or not path.exists() or direction == "both":
        return None
    kind = "pinned" if pinned else "pageable"
    with path.open() as fh:
        for rec in csv.DictReader(fh):
            if (rec["direction"] == direction and rec["host_memory"] == kind
                    and int(rec["size_B"]) == size):
                return float(rec["bandwidth_GBps"])
    return None


def plot(df: Any, out_dir: Path) -> list[Path]:
    """One figure per device: bandwidth against size per direction and memory kind."""
    # matplotlib here, not at the top: it takes about 1.3 s to import, and the worker
    # processes that import this file to run points never draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for device, sub in df.groupby("device"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for (direction, pinned), cur in sub.groupby(["direction", "pinned"]):
            cur = cur.sort_values("size_bytes")
            label = f"{direction} {'pinned' if pinned else 'pageable'}"
            line = ax.plot(cur["size_bytes"], cur["bandwidth_GBps"], "o-", ms=3, label=label)
            if "measured_bandwidth_GBps" in cur and cur["measured_bandwidth_GBps"].notna().any():
                ax.plot(cur["size_bytes"], cur["measured_bandwidth_GBps"], "x",
                        color=line[0].get_color(), label=f"{label} (measured)")
        ax.set_xscale("log")
        ax.set_xlabel("transfer size (bytes)")
        ax.set_ylabel("bandwidth (GB/s)")
        ax.set_title(f"Host-device copies: {device}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        out.append(save_figure(fig, out_dir / f"pcie_copy_{device}.png"))
    return out


def main() -> None:
    run_experiment(sys.modules[__name__])


if __name__ == "__main__":
    main()
