"""The simulated PCIe copies against a measured run's ``pcie`` table, on the fitted and the
held-out half of its sizes.

Every row of the run's ``pcie.csv`` is simulated (:meth:`simgpu.workloads.HostCopy.simulate`,
the call ``simgpu validate`` makes) on each device file, and its bandwidth error
``simulated / measured - 1`` is reported per row kind (direction and host memory) and over all
rows, on the rows :func:`simgpu.calibrate.fit.size_halves` holds out of the fit (alternate sizes
in ascending order within each kind, the smallest one fitted) and on all rows. A ``-cal-`` file
is fitted on the other half only, so its held-out figures judge it.

Usage: ``python experiments/pcie_split.py --run calibration/h100-sxm/20261122T154403Z
--device h100-sxm --device h100-sxm-cal-20261122t154403z [--out DIR] [--json]``. Prints one
table (median |error| %, p90 |error| %, rows) and, with ``--out``, writes ``pcie_split.csv``
(every row and view) there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from simgpu import devices
from simgpu.calibrate.dataset import RunDir
from simgpu.calibrate.fit import size_halves
from simgpu.workloads.memory import HostCopy


def rows(run: Path, device: str) -> pd.DataFrame:
    """One row per measured copy: its kind, half, measured and simulated bandwidth, error."""
    spec = devices.get(device)
    df = RunDir.open(run).read_table("pcie")
    df = df.assign(fit=size_halves("pcie", df)).sort_values(["direction", "host_memory", "size_B"])
    out = []
    for r in df.to_dict("records"):
        work = HostCopy.from_row(r)
        sim = work.simulate(spec)  # type: ignore[arg-type]
        bw = work.compulsory_bytes / sim.time_s / 1e9
        out.append({
            "device": device, "kind": f"{r['direction']} {r['host_memory']}",
            "size_B": int(r["size_B"]), "half": "fit" if r["fit"] else "held-out",
            "measured_GBps": float(r["bandwidth_GBps"]), "simulated_GBps": bw,
            "err_pct": (bw / float(r["bandwidth_GBps"]) - 1) * 100,
        })
    return pd.DataFrame(out)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Median and 90th percentile of |error| per device, half (held-out, all) and kind."""
    out = []
    for device, d in table.groupby("device", sort=False):
        for half, h in (("held-out", d[d["half"] == "held-out"]), ("all", d)):
            groups = [("all kinds", h)] + list(h.groupby("kind"))
            for kind, g in groups:
                err = g["err_pct"].abs().to_numpy()
                out.append({"device": device, "rows": half, "kind": kind, "n": len(err),
                            "median_abs_err_pct": float(np.median(err)),
                            "p90_abs_err_pct": float(np.percentile(err, 90))})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path, help="calibration run folder")
    ap.add_argument("--device", action="append", required=True, help="device file (repeat)")
    ap.add_argument("--out", type=Path, help="folder for pcie_split.csv")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    table = pd.concat([rows(args.run, d) for d in args.device], ignore_index=True)
    summ = summary(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "pcie_split.csv", index=False)
        summ.to_csv(args.out / "pcie_split_summary.csv", index=False)
    if args.json:
        print(json.dumps(summ.to_dict("records"), indent=1))
    else:
        print(summ.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
