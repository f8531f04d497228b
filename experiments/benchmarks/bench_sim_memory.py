"""Speed of the memory simulator: transactions simulated per second of CPU on one core.

Each case builds a fresh system, starts one traffic source and times ``env.run()`` with
``time.process_time`` (CPU time of this process, so other load on the machine does not count).
A request is one warp access to one line; a transaction is one sector of it (the unit GPU
profilers count; the device's ``l1.sector_bytes``), so a full-line request of 128 bytes in
32-byte sectors is four transactions.

Beside each rate the table gives the rate of a bare SimPy loop timed in the same process
(``simpy_timeouts_per_s``: one process yielding one-cycle timeouts, the mean of a timing just
before the case and one just after) and the ratio of the two (``x_simpy``), which carries across
machines better than the rate itself.

Prints a table and writes it to ``results/bench_sim_memory/<UTC time>/bench_sim_memory.csv``
(a new folder per run; nothing is overwritten).

Usage: ``python experiments/benchmarks/bench_sim_memory.py [--device h100-pcie] [--scale 1]
[--dram]`` (``--dram``: only the cases that reach DRAM)
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import simpy

from simgpu import devices
from simgpu.io import results_root, write_table
from simgpu.sim import build_system
from simgpu.sim.collector import relaxed_gc
from simgpu.sim.sources import PointerChase, RandomAccess, Stream

CASES: dict[str, Callable[[Any, Any, float], Any]] = {}


def case(name: str) -> Callable[[Callable[[Any, Any, float], Any]], Callable[..., Any]]:
    def deco(fn: Callable[[Any, Any, float], Any]) -> Callable[..., Any]:
        CASES[name] = fn
        return fn

    return deco


@case("stream read, DRAM (full lines, 64/SM in flight)")
def _stream_dram(env: Any, system: Any, scale: float) -> Any:
    return Stream(env, system, n_lines=int(60_000 * scale), occupancy=64)


@case("stream copy, DRAM (50% stores)")
def _stream_copy(env: Any, system: Any, scale: float) -> Any:
    return Stream(env, system, n_lines=int(60_000 * scale), occupancy=64, op="copy")


@case("random one-sector reads, L2-resident (8 MiB, warmed)")
def _random_l2(env: Any, system: Any, scale: float) -> Any:
    footprint = 8 << 20
    n_sm = len(system.l1)
    for sm in (0, n_sm - 1):  # both L2 partitions
        system.warm(sm, range(0, footprint, system.line_bytes))
    return RandomAccess(env, system, footprint_bytes=footprint,
                        n_requests=int(100_000 * scale), occupancy=8)


@case("random one-sector reads, L1-resident (64 KiB, ld.ca)")
def _random_l1(env: Any, system: Any, scale: float) -> Any:
    return RandomAccess(env, system, footprint_bytes=64 << 10, n_requests=int(100_000 * scale),
                        occupancy=8, cache_op="ca")


@case("pointer chase, L1 (16 KiB)")
def _chase_l1(env: Any, system: Any, scale: float) -> Any:
    return PointerChase(env, system, footprint_bytes=16 << 10, n_loads=int(100_000 * scale))


@case("pointer chase, L2 (4 MiB)")
def _chase_l2(env: Any, system: Any, scale: float) -> Any:
    return PointerChase(env, system, footprint_bytes=4 << 20, n_loads=int(100_000 * scale))


@case("pointer chase, DRAM (1 GiB, cold)")
def _chase_dram(env: Any, system: Any, scale: float) -> Any:
    return PointerChase(env, system, footprint_bytes=1 << 30, n_loads=int(50_000 * scale),
                        warm_loads=0)


#: the cases whose traffic reaches DRAM
DRAM_CASES = ("stream read, DRAM (full lines, 64/SM in flight)", "stream copy, DRAM (50% stores)",
              "pointer chase, DRAM (1 GiB, cold)")


def simpy_timeouts_per_s(n: int = 300_000, clock: Callable[[], float] = time.process_time
                         ) -> float:
    """Timeouts per second of a bare SimPy loop: one process yielding ``n`` timeouts of one time
    unit (the cost of one event scheduled and fired; the yardstick of the rates here), timed
    with ``clock`` (CPU time of this process by default)."""

    def loop(env: simpy.Environment) -> Any:
        for _ in range(n):
            yield env.timeout(1)

    env = simpy.Environment()
    env.process(loop(env))
    gc.collect()
    with relaxed_gc():
        t0 = clock()
        env.run()
        cpu = clock() - t0
    return n / cpu


def run(device: str, scale: float, dram_only: bool = False) -> Any:
    spec = devices.get(device)
    rows = []
    for name, make in CASES.items():
        if dram_only and name not in DRAM_CASES:
            continue
        simpy_before = simpy_timeouts_per_s()
        env = simpy.Environment()
        system = build_system(env, spec)
        src = make(env, system, scale)
        src.start()  # includes any functional warm-up, not timed
        gc.collect()
        with relaxed_gc():  # as every simgpu run does (simgpu.sim.collector)
            t0 = time.process_time()
            env.run()
            cpu = time.process_time() - t0
        r = src.result()
        # the yardstick timed before and after the case (the machine's load may change)
        simpy_rate = (simpy_before + simpy_timeouts_per_s()) / 2
        sectors = r.bytes // system.sector_bytes
        rows.append({
            "device": device,
            "case": name,
            "requests": r.requests,
            "sector_bytes": system.sector_bytes,
            "transactions": sectors,
            "cpu_s": cpu,
            "requests_per_s": r.requests / cpu,
            "transactions_per_s": sectors / cpu,
            "simpy_timeouts_per_s": simpy_rate,
            "x_simpy": sectors / cpu / simpy_rate,
            # bytes the source moved per simulated second (a store counts when the L2 takes it)
            "source_GBps": r.bandwidth_GBps,
        })
    return pd.DataFrame(rows)


def _fmt(v: float) -> str:
    return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="h100-pcie")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the request counts")
    parser.add_argument("--dram", action="store_true", help="only the cases that reach DRAM")
    args = parser.parse_args()
    df = run(args.device, args.scale, args.dram)
    print(df.to_string(index=False, float_format=_fmt))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = results_root() / "bench_sim_memory" / stamp
    if out.exists():
        raise SystemExit(f"{out} exists; not overwriting")
    paths = write_table(df, out, "bench_sim_memory", parquet=False)
    print(f"wrote {paths[0]}")


if __name__ == "__main__":
    main()
