"""Outside check: what refresh costs a saturating read stream in Ramulator 2.1.

Runs Ramulator 2.1's streaming-only throughput test (its ``LatencyThroughputTrace`` frontend,
as its own ``tests/latency_throughput`` suite configures HBM3: ``HBM34`` controller,
``FRFCFSRowHit`` scheduler, read buffer of 128, staggered stream rows) on one HBM3 channel at
6400 Mbps, with no refresh, all-bank refresh (``AllBank``) and per-bank refresh
(``HBM34PerBankRefresh``), and prints the read bandwidth of each as a share of the channel's
peak. ``experiments/dram_trace.py --refresh-mode ... --queue ... --out-of-order`` gives
simgpu's side on the Ramulator 2 reference stream (docs/memory-system.md has both).

Ramulator 2.1 is not a dependency of simgpu: build it first (a C++20 compiler, CMake 3.14+,
Python 3.10+ with pyyaml):

    git clone https://github.com/CMU-SAFARI/ramulator2 && cd ramulator2
    git checkout c5b1c3a   # the commit these figures came from
    mkdir build && cd build && cmake .. && make -j && cd ..

CMake fetches yaml-cpp 0.9.0, fmt 10.2.1 and nanobind 2.4.0 (with robin-map) into ``ext/``; on a
machine without network access, clone them there at those tags and configure with
``-DFETCHCONTENT_FULLY_DISCONNECTED=ON``.

Usage: ``python experiments/ramulator21_stream_refresh.py --ramulator PATH [--org
HBM3_16Gb_8hi] [--requests 400000]`` (PATH: the built checkout). Takes about a minute per
organisation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Channel peak, GB/s: 6400 Mb/s per pin x 64 pins (two pseudo-channels of 32) / 8.
PEAK_GBPS = 6400e6 * 64 / 8 / 1e9

REFRESH = {"none": "NoRefresh", "all_bank": "AllBank", "per_bank": "HBM34PerBankRefresh"}


def run(ramulator: Any, extract_dram_layout: Any, org: str, refresh: str,
        requests: int) -> dict[str, Any]:
    dram = ramulator.dram.HBM3(org_preset=org, timing_preset="HBM3_6400Mbps")
    layout = extract_dram_layout(dram)
    frontend = ramulator.frontend.LatencyThroughputTrace(
        clock_ratio=16, nop_counter=1, num_probe_requests=0,
        latency_measure_mode="random-probe", latency_sample_count=0,
        num_streaming_requests=requests, streaming_only=True, warmup_cycles=10000,
        seed=12345, read_ratio=100, stream_cls=32, stagger_stream_rows=True, **layout)
    ctrl = ramulator.controller.HBM34(
        dram=dram, scheduler=ramulator.scheduler.FRFCFSRowHit(),
        row_policy=ramulator.row_policy.Open(),
        addr_mapper=ramulator.addr_mapper.PassThroughAddrMapper(),
        refresh_manager=getattr(ramulator.refresh_manager, REFRESH[refresh])(),
        read_buffer_size=128, write_buffer_size=64)
    mem = ramulator.memory_system.GenericDRAM(
        clock_ratio=1, controllers=[ctrl],
        channel_mapper=ramulator.channel_mapper.PassThroughChannelMapper())
    sim = ramulator.Simulation(frontend, mem)
    sim.run()
    c = sim.stats["memory_system"]["controller"]
    bw = c["total_throughput_MBps"] / 1000.0
    return {"org": org, "refresh": refresh, "bandwidth_GBps": round(bw, 3),
            "share_of_peak": round(bw / PEAK_GBPS, 4), "row_hits": c["row_hits"],
            "row_misses": c["row_misses"], "row_conflicts": c["row_conflicts"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ramulator", required=True, type=Path,
                        help="a built Ramulator 2.1 checkout (see the module docstring)")
    parser.add_argument("--org", default="HBM3_16Gb_8hi",
                        help="Ramulator's HBM3 organisation preset(s), comma-separated")
    parser.add_argument("--requests", type=int, default=400_000,
                        help="streamed 32-byte reads per run")
    args = parser.parse_args(argv)
    root = args.ramulator.resolve()
    if not (root / "python" / "ramulator").is_dir() or not list(
            (root / "python" / "ramulator").glob("_ramulator*.so")):
        print(f"ramulator21_stream_refresh: {root}: no built Ramulator 2.1 there (expected "
              "python/ramulator/_ramulator*.so; see the module docstring)", file=sys.stderr)
        return 2
    sys.path[:0] = [str(root / "python"), str(root)]
    import ramulator  # noqa: PLC0415 (the checkout named on the command line)
    from tests.utils import extract_dram_layout  # noqa: PLC0415 (Ramulator's own helper)

    for org in args.org.split(","):
        for refresh in REFRESH:
            print(json.dumps(run(ramulator, extract_dram_layout, org, refresh,
                                 args.requests)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
