"""Per-warp latencies and the shared LD/ST unit of the SM model against their cited figures, on
hand-built traces over a fixed-latency memory stub (see test_sm_units.py for the issue logic)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sim_stub import StubRequest, decided_factory, stub_factory

import simgpu.sim.sm as sm_module
from simgpu import devices
from simgpu.sim.replay import simulate_trace
from simgpu.sim.sm import unit_timings
from simgpu.trace import load_traces
from simgpu.trace.schema import Instruction, KernelLaunch, ListTrace


@pytest.fixture(scope="module")
def h100():
    return devices.get("h100-sxm")


def one_sm(spec):
    return dataclasses.replace(spec, compute=dataclasses.replace(spec.compute, sm_count=1))


def run(spec, warps, latency=100.0):
    launch = KernelLaunch("k", (1, 1, 1), (32 * len(warps), 1, 1), 32)
    trace = ListTrace(launch, {0: warps})
    return simulate_trace(
        trace, spec, system_factory=stub_factory(latency), request_cls=StubRequest
    )


def lds(dst, stride_words=1):
    """A 32-bit shared load, lanes ``stride_words`` words apart."""
    return Instruction(pc=0, opcode="LDS.U.32", op="ld", dst=(dst,), src=(2,), space="shared",
                       width=4, base=0, stride=4 * stride_words)


def mov(dst, src):
    return Instruction(pc=0, opcode="MOV", op="misc", dst=(dst,), src=(src,))


EXIT = Instruction(pc=0, opcode="EXIT", op="exit")


def test_shared_load_use_takes_the_published_latency(h100):
    # Luo et al., arXiv:2402.13499v1 Table IV: shared-memory load latency 29 cycles on GH100
    # (the device file's l1.shared_latency_cycles): a dependent move issues that long after
    # the load, so a load-use pair costs 29 cycles more than the move alone.
    assert h100.l1.shared_latency_cycles == pytest.approx(29.0)
    spec = one_sm(h100)
    alone = run(spec, [[mov(9, 3), EXIT]]).cycles
    pair = run(spec, [[lds(8), mov(9, 8), EXIT]]).cycles
    assert pair - alone == pytest.approx(h100.l1.shared_latency_cycles)


def test_chain_of_shared_loads_costs_n_times_latency(h100):
    # each load's address is the previous one's value (a pointer chase through shared memory)
    spec = one_sm(h100)
    lat = h100.l1.shared_latency_cycles

    def chase(n):
        return [
            Instruction(pc=0, opcode="LDS.U.32", op="ld", dst=(8,), src=(8,), space="shared",
                        width=4, base=0, stride=4)
            for _ in range(n)
        ]

    short = run(spec, [chase(10) + [EXIT]]).cycles
    long = run(spec, [chase(30) + [EXIT]]).cycles
    assert long - short == pytest.approx(20 * lat)


def test_dependent_ffma_after_shared_load(h100):
    # a load feeding a chain of n dependent FFMAs: shared latency + n x the FFMA latency (Jia
    # et al., arXiv:1804.06826 Table 4.1: 4 cycles)
    spec = one_sm(h100)
    f = unit_timings(h100)["fp32"].latency
    assert f == pytest.approx(4.0)

    def body(n):
        chain = [Instruction(pc=0, opcode="FFMA", op="fp32", dst=(10,), src=(8, 3, 10))]
        chain += [Instruction(pc=0, opcode="FFMA", op="fp32", dst=(10,), src=(10, 3, 10))
                  for _ in range(n - 1)]
        return [lds(8)] + chain + [mov(11, 10), EXIT]

    a = run(spec, [body(8)]).cycles
    b = run(spec, [body(24)]).cycles
    assert b - a == pytest.approx(16 * f)
    no_load = run(spec, [[mov(9, 3), EXIT]]).cycles
    assert a - no_load == pytest.approx(h100.l1.shared_latency_cycles + 8 * f, abs=2)


ACCELSIM = Path(__file__).resolve().parents[2] / "shared" / "data" / "accelsim" / "traces"


@pytest.mark.skipif(not (ACCELSIM / "matrixmul32").is_dir(),
                    reason="shared Accel-Sim traces not present")
def test_run_ahead_does_not_change_shared_memory_timing(h100, monkeypatch):
    # Sub-cores run up to RUN_AHEAD_CYCLES ahead of the global clock on register work, which
    # is a simulation device and must not change the answer. The SM-wide LD/ST unit (one
    # wavefront per cycle: 32 banks x 4 B; Luo et al., arXiv:2402.13499v1 Table V measure
    # 124-126 B/clk/SM on GH100) is booked in time order: a booking made ahead of the clock by
    # one sub-core held back earlier accesses of the others while the unit was idle (the
    # nvcc-built matrixmul32 trace, one block of 32 warps, took 3,419 cycles with run-ahead
    # and 2,775 without). Without run-ahead a sub-core sleeps where it would have run ahead and
    # may pick another warp on waking, so the two can differ by scheduling, not by the unit.
    spec = one_sm(h100)
    trace = load_traces(ACCELSIM / "matrixmul32")[0]
    cycles = []
    for ahead in (sm_module.RUN_AHEAD_CYCLES, 0.0):
        monkeypatch.setattr(sm_module, "RUN_AHEAD_CYCLES", ahead)
        cycles.append(simulate_trace(trace, spec, system_factory=stub_factory(266.0),
                                     request_cls=StubRequest).cycles)
    assert cycles[0] == pytest.approx(cycles[1], rel=0.02)


def _lds128(addrs, dst=8):
    return Instruction(pc=0, opcode="LDS.U.128", op="ld", dst=tuple(range(dst, dst + 4)),
                       src=(2,), space="shared", width=16, addrs=tuple(addrs))


@pytest.mark.parametrize(
    ("chunk_of_lane", "cycles"),
    [
        # eight 16-B chunks of one 128-B row, lane n on chunk n % 8: no bank conflict, but the
        # L1 returns 128 B (one register per lane) per cycle: 4 cycles for 4 registers
        (lambda n: n % 8, 4),
        # lanes n and n^1 on the same chunk: their registers are packed, 2 cycles
        (lambda n: (n // 2) % 8, 2),
        # every lane on one chunk (a broadcast): 2 cycles
        (lambda n: 0, 2),
        # 32 distinct chunks (512 B): 4 cycles either way
        (lambda n: n, 4),
    ],
)
def test_wide_shared_load_takes_one_cycle_per_returned_register(h100, chunk_of_lane, cycles):
    # NVIDIA developer forums, topic 77228 (cc 7.0-7.5): L1/shared return 128 B/cycle, so an
    # LDS.128 makes 4 requests, 2 when lanes n and n^1 (or n and n^2) share an address
    spec = one_sm(h100)
    n = 40
    loads = [_lds128([16 * chunk_of_lane(lane) for lane in range(32)], dst=100 + 4 * (i % 16))
             for i in range(n)]
    short = run(spec, [loads[:10] + [mov(9, 100 + 4 * 9), EXIT]]).cycles
    long = run(spec, [loads + [mov(9, 100 + 4 * ((n - 1) % 16)), EXIT]]).cycles
    assert (long - short) / (n - 10) == pytest.approx(cycles)


def test_scalar_shared_load_is_one_cycle(h100):
    spec = one_sm(h100)
    loads = [lds(100 + 2 * i) for i in range(40)]
    short = run(spec, [loads[:10] + [mov(9, 100 + 2 * 9), EXIT]]).cycles
    long = run(spec, [loads + [mov(9, 100 + 2 * 39), EXIT]]).cycles
    assert (long - short) / 30 == pytest.approx(1.0)


def test_a_load_decided_at_issue_is_seen_at_its_completion(h100):
    # A load the memory system decides as it is issued (a cache hit) writes its register's
    # ready time into the scoreboard at once, as an ALU result does: its warp's next
    # instruction issues when the data arrives even while another warp of the same sub-core
    # keeps the scheduler busy running ahead of the global clock. (When a completion event
    # made the register ready, the run-ahead saw it up to RUN_AHEAD_CYCLES late.)
    spec = one_sm(h100)
    ldg = Instruction(pc=0, opcode="LDG.E", op="ld", dst=(8,), src=(2,), space="global",
                      width=4, base=1 << 20, stride=4)
    loader = [ldg, mov(9, 8), EXIT]
    # a chain of dependent FFMAs: ready every FFMA latency, the scheduler's last warp
    chain = [Instruction(pc=0, opcode="FFMA", op="fp32", dst=(10,), src=(10, 3, 4))
             for _ in range(200)] + [EXIT]
    idle = [EXIT]

    def loader_block_end(busy):
        # blocks of four warps: the first warp of each shares sub-core 0
        blocks = {0: [loader, idle, idle, idle]}
        if busy:
            blocks[1] = [chain, idle, idle, idle]
        launch = KernelLaunch("k", (len(blocks), 1, 1), (128, 1, 1), 32)
        res = simulate_trace(ListTrace(launch, blocks), spec,
                             system_factory=decided_factory(100.0), request_cls=StubRequest)
        return min(res.block_end_cycles)  # the loader's block ends first

    alone = loader_block_end(False)
    busy = loader_block_end(True)
    # the chain takes the sub-core's issue slot at most once in the loader's way
    assert alone <= busy <= alone + 1
