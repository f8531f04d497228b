"""The compiled issue logic (simgpu.sim.issue_core) against its rules written plainly, and its
arrays' growth."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from sim_stub import StubRequest, stub_factory

from simgpu import devices
from simgpu.sim import issue_core as core
from simgpu.sim.regfile import rfc_slots
from simgpu.sim.replay import simulate_trace
from simgpu.trace.schema import Instruction, KernelLaunch, ListTrace


class PlainRegisterFile:
    """The register-file rule of simgpu.sim.regfile, one Python statement at a time."""

    def __init__(self, banks: int, ports: int, entries: int | None) -> None:
        self.banks, self.ports = banks, ports
        self.slots = rfc_slots(banks, ports, entries)
        self.cache: dict[tuple[int, int], tuple[int, int]] = {}  # (bank, slot) -> (warp, reg)
        self.conflicts = self.hits = self.reads = 0

    def access(self, warp: int, srcs: tuple[int, ...], dsts: tuple[int, ...]) -> int:
        need: list[int] = []
        for k, r in enumerate(srcs):
            if k < self.slots:
                key = (r % self.banks, k)
                if self.cache.get(key) == (warp, r):
                    self.hits += 1
                    continue
                self.cache[key] = (warp, r)
            if r not in need:
                need.append(r)
        cycles = 1
        self.reads += len(need)
        if len(need) > 1:
            worst = max(sum(1 for r in need if r % self.banks == b) for b in range(self.banks))
            cycles = max(1, -(-worst // self.ports))
            self.conflicts += cycles - 1
        for r in dsts:
            for k in range(self.slots):
                if self.cache.get((r % self.banks, k)) == (warp, r):
                    del self.cache[(r % self.banks, k)]
        return cycles


@pytest.mark.parametrize("banks,ports,entries", [(2, 1, 6), (4, 1, 8), (2, 2, None), (3, 1, 9)])
def test_register_file_reads_follow_the_rule(banks: int, ports: int, entries: int | None) -> None:
    rng = random.Random(banks * 100 + ports * 10 + (entries or 0))
    plain = PlainRegisterFile(banks, ports, entries)
    slots = rfc_slots(banks, ports, entries)
    table = core.DecodeTable()
    state = core.IssueState(1, {core.C_RF_BANKS: banks, core.C_RF_PORTS: ports,
                                core.C_RF_SLOTS: slots}, banks * slots)
    for _ in range(3000):
        warp = rng.randrange(3)
        # few registers, so that operands repeat, hit the cache and share banks
        srcs = tuple(rng.randrange(8) for _ in range(rng.choice((0, 1, 2, 3, 3, 4))))
        dsts = tuple(rng.randrange(8) for _ in range(rng.choice((0, 1, 1, 2))))
        rec = table.record(core.K_ALU, core.U_FP32, "fp32", srcs, dsts, 4.0, 1.0, 0, False, 0,
                           True)
        got = core.rf_access(state.SI, state.MF, table.DI, 0, warp, rec)
        assert got == plain.access(warp, srcs, dsts), (warp, srcs, dsts)
    si = state.SI[0]
    assert (si[core.SI_RF_CONFLICT], si[core.SI_RF_HITS], si[core.SI_RF_READS]) == (
        plain.conflicts, plain.hits, plain.reads)
    # the cases were exercised: cache hits (where there is a cache) and bank conflicts
    assert (plain.hits > 100 or not slots) and plain.conflicts > 100


def ffma(dst: int, *src: int) -> Instruction:
    return Instruction(pc=0, opcode="FFMA", op="fp32", dst=(dst,), src=tuple(src))


def replay_many_warps() -> tuple[float, dict[str, float], dict[str, float]]:
    """Six blocks of eight warps on one SM, each warp a chain of its own length."""
    spec = devices.get("h100-sxm")
    spec = dataclasses.replace(spec, compute=dataclasses.replace(spec.compute, sm_count=1))
    warps = {}
    for b in range(6):
        warps[b] = [
            [ffma(8 + (i % 3), 3, 5 + (i % 2), 8) for i in range(10 + 7 * w + 3 * b)]
            + [Instruction(pc=0, opcode="EXIT", op="exit")]
            for w in range(8)
        ]
    launch = KernelLaunch("k", (6, 1, 1), (256, 1, 1), 32)
    res = simulate_trace(ListTrace(launch, warps), spec, system_factory=stub_factory(100.0),
                         request_cls=StubRequest)
    return res.cycles, dict(res.stalls), dict(res.op_counts)


def test_slots_and_streams_grow_and_compact_with_the_same_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    roomy = replay_many_warps()
    monkeypatch.setattr(core.IssueState, "SLOTS", 1)
    monkeypatch.setattr(core.IssueState, "CODE_RECORDS", 16)
    grown: list[core.IssueState] = []
    compact = core.IssueState._compact

    def counted(self: core.IssueState, need: int) -> None:
        grown.append(self)
        compact(self, need)

    monkeypatch.setattr(core.IssueState, "_compact", counted)
    tight = replay_many_warps()
    assert len(grown) >= 5  # the streams were moved several times
    assert tight == roomy
    assert roomy[2]["fp32"] == sum(10 + 7 * w + 3 * b for b in range(6) for w in range(8))


def test_a_warp_reading_a_register_a_load_writes_waits_on_memory() -> None:
    """The stall the scoreboard books while a warp waits on a load's register is ``memory``,
    on any other register ``dependency``."""
    state = core.IssueState(1, {core.C_GTO: 1, core.C_RUN_AHEAD: 16.0}, 0)
    table = core.DecodeTable()
    rec = table.record(core.K_ALU, core.U_FP32, "fp32", (4,), (5,), 4.0, 1.0, 0, False, 0,
                       False)
    w = state.add_warp(0, np.array([rec], np.int32), 0, 0.0, core.U_FP32)
    state.WF[w, core.F_REG + 4] = 50.0
    core.charge(state.WF, state.SF, table.DI, 0, w, rec, 0.0, 50.0)
    assert state.SF[0, core.SF_STALL + core.S_DEPENDENCY] == 50.0
    state.WF[w, core.F_REG + 4] = 100.0
    state.WF[w, core.F_MEM + 4] = 1.0
    core.charge(state.WF, state.SF, table.DI, 0, w, rec, 50.0, 80.0)
    assert state.SF[0, core.SF_STALL + core.S_MEMORY] == 30.0


def test_the_sms_loop_books_the_lsu_in_time_order_over_its_sub_cores() -> None:
    """Sub-core 1's shared load can issue at cycle 0 and sub-core 0's at cycle 2: the earlier
    books the SM's LD/ST unit first (4 cycles), whichever sub-core comes first in the SM; on a
    tie the sub-core that has waited longest goes first; nothing waits for the global clock
    within the run-ahead."""
    state = core.IssueState(2, {core.C_GTO: 1, core.C_RUN_AHEAD: 16.0,
                                core.C_SHARED_LAT: 30.0}, 0)
    table = core.DecodeTable()
    lds = [table.record(core.K_SHARED, core.U_LSU, "ld", (2,), (r,), 0.0, 0.0, 0, False, 4,
                        False) for r in (8, 9)]
    ext = table.record(core.K_EXIT, core.U_CTRL, "exit", (), (), 0.0, 0.0, 0, True, 0, False)
    codes = np.array([*lds, ext], np.int32)
    w0 = state.add_warp(0, codes, 0, 2.0, core.U_LSU)  # sub-core 0, ready at cycle 2
    w1 = state.add_warp(1, codes, 1, 0.0, core.U_LSU)  # sub-core 1, ready at cycle 0
    code, sub, w, ti = core.step(*state.arrays(table), 0.0)

    def start(w: int, r: int) -> float:  # when the load's wavefronts began
        return float(state.WF[w, core.F_REG + r]) - (4 - 1 + 30.0)

    assert start(w1, 8) == 0.0  # the unit from cycle 0
    # at 4 both sub-cores' next loads can issue: sub-core 0, idle since 0, before sub-core 1
    assert start(w0, 8) == 4.0
    assert start(w1, 9) == 8.0
    # then sub-core 1's exit (at 9) lines up with the clock, before sub-core 0's second load
    assert (code, sub, w, ti) == (core.R_WAIT, 1, w1, 9.0)
    assert state.SF[0, core.SF_STALL + core.S_LSU] == 4.0  # cycles 0-4 of sub-core 0


def test_sub_cores_contending_for_the_lsu_share_it_evenly() -> None:
    """Four warps of one block, one per sub-core, each two runs of 4-wavefront shared loads
    with a barrier between them: the SM's LD/ST unit is busy from the first load to the last
    (time-ordered bookings leave no holes) and the four reach the barrier together, since the
    sub-core that has waited longest wins a tie for the unit. (With the lowest sub-core first
    on a tie, sub-core 3 waits for the other three: 541 cycles at the barrier.)"""
    spec = devices.get("h100-sxm")
    spec = dataclasses.replace(spec, compute=dataclasses.replace(spec.compute, sm_count=1))
    n = 32
    row = tuple(range(0, 32 * 16, 16))  # 32 lanes x 16 B: 512 B, 4 return cycles

    def lds(i: int) -> Instruction:
        return Instruction(pc=0, opcode="LDS.U.128", op="ld", dst=(8 + 4 * (i % 4),),
                           src=(2,), space="shared", width=16, addrs=row)

    warp = ([lds(i) for i in range(n)] + [Instruction(pc=0, opcode="BAR.SYNC", op="bar")]
            + [lds(i) for i in range(n)] + [Instruction(pc=0, opcode="EXIT", op="exit")])
    launch = KernelLaunch("k", (1, 1, 1), (128, 1, 1), 32)
    res = simulate_trace(ListTrace(launch, {0: [list(warp) for _ in range(4)]}), spec,
                         system_factory=stub_factory(100.0), request_cls=StubRequest)
    busy = 4 * 2 * n * 4  # cycles of the unit
    assert busy - 4 < res.cycles <= busy + 2 * 16
    assert res.stalls["barrier"] <= 4 * 16
