"""Golden statistics: a small regression set whose results are committed as data.

Each case runs one model (simulator, analytical model, PIM or systolic array) on one small input
and returns a flat dict of the statistics that define its answer. ``tests/data/golden.json``
holds the values; ``tests/test_golden.py`` checks that the code still gives them. A change that
moves a golden number on purpose regenerates the file and says why in its commit message:

    python tests/golden_cases.py --write     # rewrite tests/data/golden.json
    python tests/golden_cases.py             # print what differs, exit 1 if anything does

Cases that need the shared reference data beside the checkout (the Accel-Sim ``matrixmul32``
trace) are skipped where it is absent.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simpy

from simgpu import analytical, devices, workloads
from simgpu.sim.dataflow import simulate_workload as dataflow_workload
from simgpu.sim.hbm import HBM, HBMConfig
from simgpu.sim.pcie import HostLink
from simgpu.sim.pim import simulate_workload as pim_workload
from simgpu.sim.replay import SimResult, simulate_trace
from simgpu.trace import load_traces

GOLDEN = Path(__file__).resolve().parent / "data" / "golden.json"
ACCELSIM = Path(__file__).resolve().parents[2] / "shared" / "data" / "accelsim" / "traces"
#: relative tolerance of a float comparison: the models are deterministic, so only floating-point
#: reassociation (a numpy or Python upgrade) may move a value, by a few units in the last place
REL_TOL = 1e-9

Stats = dict[str, Any]


def _sim_stats(r: SimResult) -> Stats:
    """The statistics of a replay that define its answer (not wall time)."""
    out: Stats = {
        "cycles": r.cycles,
        "time_s": r.time_s,
        "time_s_spread": r.time_s_spread,
        "blocks_simulated": r.blocks_simulated,
        "occupancy_blocks_per_sm": r.occupancy_blocks_per_sm,
        "warp_instructions": r.warp_instructions,
        "instructions_simulated": r.instructions_simulated,
        "flops": r.flops,
    }
    for level, b in sorted(r.bytes.items()):
        out[f"{level}_read_bytes"] = b["read"]
        out[f"{level}_write_bytes"] = b["write"]
    for level, h in sorted(r.hit_rate.items()):
        out[f"{level}_hit_rate"] = h
    return out


def _pchase(device: str, footprint_B: int) -> Callable[[], Stats]:
    def run() -> Stats:
        spec = devices.get(device)
        return _sim_stats(workloads.PointerChase(footprint_B, steps=256).simulate(spec))

    return run


def _stream(sm_slice: int) -> Callable[[], Stats]:
    def run() -> Stats:
        spec = devices.get("h100-sxm")
        return _sim_stats(workloads.Stream("copy", 1 << 20).simulate(spec, sm_slice=sm_slice))

    return run


def _tiled_sgemm(sm_slice: int) -> Callable[[], Stats]:
    def run() -> Stats:
        spec = devices.get("h100-sxm")
        w = workloads.TiledGemm(256, 256, 256, tile=16)
        return _sim_stats(w.simulate(spec, sm_slice=sm_slice))

    return run


def _matrixmul32() -> Stats:
    (trace,) = load_traces(ACCELSIM / "matrixmul32")
    return _sim_stats(simulate_trace(trace, devices.get("h100-sxm")))


def _pcie() -> Stats:
    spec = devices.get("h100-sxm")
    out: Stats = {}
    for size, direction, pinned in ((4096, "h2d", True), (1 << 24, "d2h", True),
                                    (1 << 22, "h2d", False)):
        env = simpy.Environment()
        link = HostLink(env, spec.host_link, spec.clock_MHz)
        link.copy(size, direction, pinned)
        env.run()
        out[f"{direction}_{size}_{'pinned' if pinned else 'pageable'}_cycles"] = max(
            c.t_end for c in link.copies)
    return out


def _pim(device: str) -> Callable[[], Stats]:
    def run() -> Stats:
        r = pim_workload(devices.get_device(device), "gemv", {"m": 4096, "k": 4096})
        return {k: v for k, v in r.items() if isinstance(v, int | float)}

    return run


def _systolic(device: str, dataflow: str) -> Callable[[], Stats]:
    def run() -> Stats:
        r = dataflow_workload(devices.get_device(device), "gemm",
                              {"m": 512, "n": 384, "k": 256, "dataflow": dataflow})
        return {k: v for k, v in r.items() if isinstance(v, int | float)}

    return run


def _recorder(env: simpy.Environment, done: list[tuple[int, float, float]],
              k: int) -> Callable[[float], None]:
    """A DRAM callback that records (burst, data time, time of the call)."""

    def cb(t: float) -> None:
        done.append((k, t, env.now))

    return cb


def _dram_commands() -> Stats:
    """The DRAM controller alone under random traffic to two pseudo-channels (reads and writes
    of one to four bursts to a hot set of rows and to random rows, in bursts of arrivals that
    fill the queues; a callback on most requests): the command log (as a digest), the callback
    times (as a digest) and the counters, on h100-sxm (per-bank refresh) and h100-pcie
    (all-bank), with default queues, with small ones and with an in-order front end."""
    out: Stats = {}
    runs: tuple[tuple[str, str, dict[str, Any]], ...] = (
        ("h100-sxm", "default", {}),
        ("h100-sxm", "small_queues", {"read_queue": 4, "write_queue": 8}),
        ("h100-pcie", "in_order", {"in_order": True, "read_queue": 8, "write_queue": 8}),
    )
    for device, label, cfg in runs:
        spec = devices.get(device)
        env = simpy.Environment()
        hbm = HBM(env, spec.dram, spec.clock_MHz, HBMConfig(log=True, **cfg))
        rng = random.Random(7)
        lines = [a for a in (rng.randrange(1 << 22) * 128 for _ in range(20_000))
                 if hbm.decode(a)[0] < 2][:1500]
        hot = lines[:24]
        done: list[tuple[int, float, float]] = []

        def feed(env: simpy.Environment = env, hbm: HBM = hbm, rng: random.Random = rng,
                 lines: list[int] = lines, hot: list[int] = hot,
                 done: list[tuple[int, float, float]] = done) -> Any:
            for k in range(20):
                for _ in range(rng.randrange(20, 200)):
                    line = rng.choice(hot if rng.random() < 0.4 else lines)
                    nbytes = rng.choice([32, 64, 96, 128])
                    cb = _recorder(env, done, k) if rng.random() < 0.8 else None
                    hbm.submit(line + 32 * rng.randrange(4 - nbytes // 32 + 1), nbytes,
                               rng.random() < 0.35, rng.uniform(0, 600), cb)
                yield env.timeout(rng.uniform(0, 3000))

        env.process(feed())
        env.run()
        key = f"{device}_{label}"
        out[f"{key}_log_sha1"] = hashlib.sha1(repr(hbm.log).encode()).hexdigest()
        out[f"{key}_commands"] = len(hbm.log)
        out[f"{key}_callbacks_sha1"] = hashlib.sha1(repr(done).encode()).hexdigest()
        tot = hbm.totals()
        for k in ("reads", "writes", "row_hits", "row_conflicts", "refreshes", "read_latency",
                  "queue_wait", "last_data_tck"):
            out[f"{key}_{k}"] = tot[k]
    return out


def _first(df: Any, cols: tuple[str, ...]) -> Stats:
    rec = df.iloc[0]
    return {c: rec[c].item() if hasattr(rec[c], "item") else rec[c] for c in cols}


def _analytical() -> Stats:
    out: Stats = {}
    cols = ("time_s", "power_W")
    for device in ("h100-sxm", "a100-sxm-80gb", "rtx-4090"):
        spec = devices.get(device)
        g = analytical.gemm(spec, 4096, 4096, 4096, "fp16", kernel="cublas")
        out.update({f"{device}_cublas_fp16_4096_{k}": v for k, v in _first(g, cols).items()})
    spec = devices.get("h100-sxm")
    for kernel, tile in (("sgemm_tiled", {"tile_m": 16, "tile_n": 16, "tile_k": 16,
                                          "thread_tile_m": 1, "thread_tile_n": 1,
                                          "threads_per_block": 256}),
                         ("sgemm_regblock", {"tile_m": 64, "tile_n": 64, "tile_k": 16,
                                             "thread_tile_m": 4, "thread_tile_n": 4,
                                             "threads_per_block": 256})):
        g = analytical.gemm(spec, 1024, 2048, 512, "fp32", kernel=kernel, **tile)
        out.update({f"{kernel}_1024x2048x512_{k}": v for k, v in _first(g, cols).items()})
    out.update({f"stream_copy_{k}": v for k, v in
                _first(analytical.stream(spec, "copy", 1 << 26), cols).items()})
    out["pchase_40MiB_latency_cycles"] = _first(
        analytical.pointer_chase(spec, 40 << 20, 128), ("latency_cycles",))["latency_cycles"]
    out.update({f"pcie_h2d_1MiB_{k}": v for k, v in
                _first(analytical.pcie_copy(spec, 1 << 20, "h2d", True), cols).items()})
    return out


#: name -> (function, needs the shared Accel-Sim traces)
CASES: dict[str, tuple[Callable[[], Stats], bool]] = {
    "pchase_h100-sxm_L1": (_pchase("h100-sxm", 16 << 10), False),
    "pchase_h100-sxm_L2_near": (_pchase("h100-sxm", 4 << 20), False),
    "pchase_h100-sxm_L2_far": (_pchase("h100-sxm", 40 << 20), False),
    "pchase_h100-sxm_DRAM": (_pchase("h100-sxm", 256 << 20), False),
    "pchase_a100-pcie-40gb_DRAM": (_pchase("a100-pcie-40gb", 256 << 20), False),
    # the whole GPU (sm_slice 1), and a quarter of it as sampled replays use by default
    "stream_copy_h100-sxm_4MiB": (_stream(1), False),
    "stream_copy_h100-sxm_4MiB_slice4": (_stream(4), False),
    "dram_commands_random": (_dram_commands, False),
    "tiled_sgemm_256_tile16_h100-sxm": (_tiled_sgemm(1), False),
    "tiled_sgemm_256_tile16_h100-sxm_slice4": (_tiled_sgemm(4), False),
    "accelsim_matrixmul32_h100-sxm": (_matrixmul32, True),
    "pcie_h100-sxm": (_pcie, False),
    "pim_hbm-pim_gemv_4096": (_pim("hbm-pim"), False),
    "pim_aim_gemv_4096": (_pim("aim"), False),
    "systolic-128x128_ws": (_systolic("systolic-128x128", "ws"), False),
    "systolic-32x32_os": (_systolic("systolic-32x32", "os"), False),
    "analytical": (_analytical, False),
}


def available(name: str) -> bool:
    """Whether the case's inputs are present here."""
    return not CASES[name][1] or ACCELSIM.is_dir()


def run_case(name: str) -> Stats:
    """The case's statistics, as JSON would give them back (floats and ints, None)."""
    stats = CASES[name][0]()
    return json.loads(json.dumps(stats))


def differences(expected: Stats, got: Stats) -> list[str]:
    """What differs between two statistics dicts, one line each (empty when they agree)."""
    out = []
    for key in sorted(set(expected) | set(got)):
        if key not in got:
            out.append(f"{key}: missing (expected {expected[key]!r})")
        elif key not in expected:
            out.append(f"{key}: new statistic {got[key]!r}")
        else:
            a, b = expected[key], got[key]
            same = (a == b) if not (isinstance(a, float) or isinstance(b, float)) else (
                a is not None and b is not None and math.isclose(a, b, rel_tol=REL_TOL))
            if not same:
                out.append(f"{key}: expected {a!r}, got {b!r}")
    return out


def load() -> dict[str, Stats]:
    data: dict[str, Stats] = json.loads(GOLDEN.read_text())
    return data


def main(argv: list[str]) -> int:
    write = "--write" in argv
    names = [a for a in argv if not a.startswith("--")] or list(CASES)
    old = load() if GOLDEN.is_file() else {}
    new = dict(old)
    status = 0
    for name in names:
        if not available(name):
            print(f"{name}: skipped (shared data not present)")
            continue
        got = run_case(name)
        diff = differences(old.get(name, {}), got)
        print(f"{name}: {'same' if not diff else f'{len(diff)} differ'}")
        for line in diff:
            print(f"  {line}")
        status |= bool(diff)
        new[name] = got
    if write:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        tmp = GOLDEN.with_suffix(".tmp")
        tmp.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
        tmp.replace(GOLDEN)
        print(f"wrote {GOLDEN.name}")
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
