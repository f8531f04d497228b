"""SM model components on hand-built traces with known answers (fixed-latency memory stub)."""

from __future__ import annotations

import dataclasses
import time

import pytest
from sim_stub import StubRequest, stub_factory

from simgpu import devices
from simgpu.sim.replay import simulate_trace
from simgpu.sim.sm import unit_timings
from simgpu.trace.schema import Instruction, KernelLaunch, ListTrace


@pytest.fixture(scope="module")
def h100():
    return devices.get("h100-sxm")


def one_sm(spec, schedulers=None):
    c = dataclasses.replace(
        spec.compute,
        sm_count=1,
        warp_schedulers_per_sm=schedulers or spec.compute.warp_schedulers_per_sm,
    )
    return dataclasses.replace(spec, compute=c)


def ffma(dst, *src):
    return Instruction(pc=0, opcode="FFMA", op="fp32", dst=(dst,), src=tuple(src))


MOV_EXIT = [
    Instruction(pc=0, opcode="MOV", op="misc", dst=(30,), src=(8,)),
    Instruction(pc=0, opcode="EXIT", op="exit"),
]


def run(spec, warps_per_block, blocks=1, latency=100.0, **kw):
    launch = KernelLaunch("k", (blocks, 1, 1), (32 * len(warps_per_block[0]), 1, 1), 32)
    trace = ListTrace(launch, dict(enumerate(warps_per_block)))
    return simulate_trace(
        trace, spec, system_factory=stub_factory(latency), request_cls=StubRequest, **kw
    )


def test_dependent_fma_chain_costs_n_times_latency(h100):
    lat = unit_timings(h100)["fp32"].latency
    cycles = {}
    for n in (64, 128):
        chain = [ffma(8, 3, 5, 8) for _ in range(n)]
        res = run(one_sm(h100), [[chain + MOV_EXIT]])
        cycles[n] = res.cycles
    # 64 more dependent FMAs cost exactly 64 x latency (the RF cache holds R3/R5; R8 is
    # rewritten each time, so one bank read per FMA, no conflict).
    assert cycles[128] - cycles[64] == pytest.approx(64 * lat)
    assert cycles[64] == pytest.approx(64 * lat, abs=8)


def test_chain_without_register_banks_is_exact(h100):
    lat = unit_timings(h100)["fp32"].latency
    chain = [ffma(8, 2, 4, 8) for _ in range(50)]
    res = run(one_sm(h100), [[chain + MOV_EXIT]], model_register_banks=False)
    # 50 x latency, then MOV issues when R8 is ready; the kernel ends as EXIT issues, one
    # cycle later.
    assert res.cycles == pytest.approx(50 * lat + 1)


def _independent(regs_for, n):
    return [ffma(100 + (i % 100) if 100 + (i % 100) < 255 else 101, *regs_for(i)) for i in range(n)]


@pytest.mark.parametrize(
    ("regs_for", "cycles_per_inst"),
    [
        # three operands in bank 0, fresh registers each time (no RF-cache hits): 3 reads on one
        # single-ported bank -> 3 cycles per instruction
        (lambda i: (2 * (i % 16), 2 * (i % 16) + 32, 2 * (i % 16) + 64), 3),
        # two in bank 0 and one in bank 1 -> 2 cycles
        (lambda i: (2 * (i % 16), 2 * (i % 16) + 32, 2 * (i % 16) + 65), 2),
        # two operands in different banks -> 1 cycle (FP32 issues one warp per cycle)
        (lambda i: (2 * (i % 16), 2 * (i % 16) + 33), 1),
    ],
)
def test_register_bank_conflicts(h100, regs_for, cycles_per_inst):
    spec = one_sm(h100)
    n1, n2 = 40, 80
    # Destinations are odd registers >= 101 that no source uses, so nothing depends on them.
    short = [
        Instruction(
            pc=0, opcode="FFMA", op="fp32", dst=(101 + 2 * (i % 60),), src=tuple(regs_for(i))
        )
        for i in range(n1)
    ]
    long = [
        Instruction(
            pc=0, opcode="FFMA", op="fp32", dst=(101 + 2 * (i % 60),), src=tuple(regs_for(i))
        )
        for i in range(n2)
    ]
    exit_ = [Instruction(pc=0, opcode="EXIT", op="exit")]
    # Slots rotate through the RF cache (entries keyed by bank and operand slot), so with
    # period 16 no operand is found in it again.
    a = run(spec, [[short + exit_]]).cycles
    b = run(spec, [[long + exit_]]).cycles
    assert (b - a) / (n2 - n1) == pytest.approx(cycles_per_inst)


def test_rf_cache_hit_removes_conflict(h100):
    # The same three bank-0 registers every time: after the first read they sit in the RFC.
    spec = one_sm(h100)
    body = [
        Instruction(pc=0, opcode="FFMA", op="fp32", dst=(101 + 2 * (i % 60),), src=(2, 4, 6))
        for i in range(80)
    ]
    exit_ = [Instruction(pc=0, opcode="EXIT", op="exit")]
    res = run(spec, [[body + exit_]])
    assert res.cycles <= 80 + 4


def test_load_use_waits_for_memory(h100):
    spec = one_sm(h100)
    ld = Instruction(
        pc=0,
        opcode="LDG.E",
        op="ld",
        dst=(8,),
        src=(2, 3),
        space="global",
        width=4,
        base=0x1000,
        stride=4,
    )
    fast = run(spec, [[[ld] + MOV_EXIT]], latency=100.0).cycles
    slow = run(spec, [[[ld] + MOV_EXIT]], latency=1100.0).cycles
    assert slow - fast == pytest.approx(1000.0)


def test_stalled_warp_costs_no_simulation_time(h100):
    spec = one_sm(h100)
    ld = Instruction(
        pc=0,
        opcode="LDG.E",
        op="ld",
        dst=(8,),
        src=(2, 3),
        space="global",
        width=4,
        base=0x1000,
        stride=4,
    )
    t0 = time.perf_counter()
    res = run(spec, [[[ld, ffma(9, 8, 8, 9)] * 20 + MOV_EXIT]], latency=1e9)
    assert res.cycles >= 20 * 1e9
    assert time.perf_counter() - t0 < 2.0


def test_gto_finishes_first_warp_early_lrr_interleaves(h100):
    spec = one_sm(h100, schedulers=1)
    # Operands in different banks: no read conflicts, so the RF cache (which only helps
    # back-to-back instructions of one warp, hence GTO) plays no part.
    stream = [ffma(10 + 2 * (i % 8), 3, 4) for i in range(200)] + [
        Instruction(pc=0, opcode="EXIT", op="exit")
    ]
    ends = {}
    for sched in ("gto", "lrr"):
        res = run(spec, [[stream], [stream]], blocks=2, scheduler=sched)
        ends[sched] = sorted(res.block_end_cycles)
    # GTO: warp 0 runs alone to completion (about 200 cycles), then warp 1.
    assert ends["gto"][0] < 0.6 * ends["gto"][1]
    # LRR: both finish together at the end.
    assert ends["lrr"][0] > 0.9 * ends["lrr"][1]
    # Same total work, same total time within the issue slots.
    assert ends["gto"][1] == pytest.approx(ends["lrr"][1], rel=0.05)


def test_lrr_loses_rf_cache_reuse(h100):
    # Huerta et al.: the RF cache serves back-to-back instructions of the same warp. Two warps
    # whose operands conflict (R3, R5 in one bank) keep hitting it under GTO, not under LRR.
    spec = one_sm(h100, schedulers=1)
    stream = [ffma(10 + 2 * (i % 8), 3, 5) for i in range(200)] + [
        Instruction(pc=0, opcode="EXIT", op="exit")
    ]
    gto = run(spec, [[stream], [stream]], blocks=2, scheduler="gto").cycles
    lrr = run(spec, [[stream], [stream]], blocks=2, scheduler="lrr").cycles
    assert gto == pytest.approx(400, abs=10)
    assert lrr == pytest.approx(800, abs=10)


def test_barrier_waits_for_slowest_warp(h100):
    spec = one_sm(h100)
    ld = Instruction(
        pc=0,
        opcode="LDG.E",
        op="ld",
        dst=(8,),
        src=(2, 3),
        space="global",
        width=4,
        base=0x1000,
        stride=4,
    )
    use = Instruction(pc=0, opcode="MOV", op="misc", dst=(9,), src=(8,))
    bar = Instruction(pc=0, opcode="BAR.SYNC", op="bar")
    exit_ = Instruction(pc=0, opcode="EXIT", op="exit")
    fast_warp = [bar, ffma(10, 3, 5), exit_]
    slow_warp = [ld, use, bar, ffma(10, 3, 5), exit_]
    res = run(spec, [[fast_warp, slow_warp]], latency=500.0)
    # Nobody leaves the barrier before the slow warp's load is back (500 cycles).
    assert res.cycles >= 500
    assert res.cycles < 540
