"""End-to-end speed of ``simgpu simulate``, as ratios to a bare SimPy loop timed in this process.

Cases (h100-sxm, unsampled):

* a 16 MiB stream read (``--workload stream --op read --elements 4194304``): 32-byte DRAM
  transactions per wall second (DRAM bytes read / 32 / the command's ``wall_s``);
* a 16 MiB stream copy (``--op copy``): the same, reads and writes;
* a 256^3 tiled SGEMM (``--workload gemm --m 256 --n 256 --k 256``): warp instructions per wall
  second;
* a naive 1024^2 transpose (``--workload transpose --rows 1024 --cols 1024 --variant naive``):
  warp instructions per wall second (each warp's store is 32 one-sector requests).

Each rate is divided by the timeouts per wall second of a bare SimPy loop
(:func:`bench_sim_memory.simpy_timeouts_per_s`), the mean of a timing just before the case and
one just after, in the same process.

Usage: ``python experiments/benchmarks/bench_simulate.py [--quick]`` (``--quick``: the stream
read only). Prints a table and writes it to ``results/bench_simulate/<UTC time>/`` (never
overwriting).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sim_memory import simpy_timeouts_per_s  # noqa: E402

from simgpu.cli import main as simgpu_main  # noqa: E402
from simgpu.io import results_root, write_table  # noqa: E402

#: bytes of one DRAM transaction (a 32-byte sector, h100-sxm's l2.sector_bytes)
TRANSACTION_BYTES = 32

CASES = {
    "stream read 16 MiB": ["--workload", "stream", "--op", "read", "--elements", "4194304"],
    "stream copy 16 MiB": ["--workload", "stream", "--op", "copy", "--elements", "4194304"],
    "tiled SGEMM 256^3": ["--workload", "gemm", "--m", "256", "--n", "256", "--k", "256"],
    "transpose naive 1024^2": ["--workload", "transpose", "--rows", "1024", "--cols", "1024",
                               "--variant", "naive"],
}


def simulate(args: list[str]) -> dict[str, Any]:
    """``simgpu simulate --device h100-sxm --no-sample --json ARGS`` in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = simgpu_main(["simulate", "--device", "h100-sxm", "--no-sample", "--json", *args])
    if code:
        raise SystemExit(f"simgpu simulate {' '.join(args)} failed ({code})")
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def run(quick: bool) -> pd.DataFrame:
    rows = []
    for name, args in CASES.items():
        if quick and name != "stream read 16 MiB":
            continue
        # the yardstick in wall time, as the command's own wall_s, before and after the case
        before = simpy_timeouts_per_s(clock=time.perf_counter)
        r = simulate(args)
        simpy_rate = (before + simpy_timeouts_per_s(clock=time.perf_counter)) / 2
        wall = float(r["wall_s"])
        if name.startswith("stream"):
            unit = "DRAM transactions"
            count = (r["bytes"]["dram"]["read"] + r["bytes"]["dram"]["write"]) / TRANSACTION_BYTES
        else:
            unit = "warp instructions"
            count = float(r["instructions_simulated"])
        rows.append({"case": name, "unit": unit, "count": count, "wall_s": wall,
                     "per_s": count / wall, "simpy_timeouts_per_s": simpy_rate,
                     "x_simpy": count / wall / simpy_rate, "cycles": r["cycles"]})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the stream read only")
    args = parser.parse_args()
    df = run(args.quick)
    print(df.to_string(index=False, float_format=lambda v: f"{v:,.3g}" if abs(v) < 10
                       else f"{v:,.0f}"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = results_root() / "bench_simulate" / stamp
    if out.exists():
        raise SystemExit(f"{out} exists; not overwriting")
    paths = write_table(df, out, "bench_simulate", parquet=False)
    print(f"wrote {paths[0]}")


if __name__ == "__main__":
    main()
