"""Sampling a kernel that stores more than the L2 holds, and the L2 state back-to-back calls
leave (simgpu.sim.replay's L2 settling rule, simgpu.workloads.base.previous_call_factory)."""

from __future__ import annotations

import dataclasses
import random

import pytest
import simpy

from simgpu import devices
from simgpu.sim.replay import L2_FULL, simulate_trace
from simgpu.sim.system import build_system
from simgpu.workloads import Stream, Transpose
from simgpu.workloads.base import Workload, previous_call_factory

#: bytes a tiled-transpose block moves through the L2: a 32 x 32 tile of floats in, one out
TILE_BYTES = 2 * 32 * 32 * 4


@pytest.fixture(scope="module")
def tiny_h100():
    """The H100's SM, L2 and HBM3 models cut to 2 SMs, an 800 KiB L2 of 16 slices and one HBM3
    channel (1/66 of the SMs, 1/80 of the DRAM bandwidth): DRAM-bound like the whole GPU on a
    transpose, with waves of 16 blocks (128 KiB), so that filling the L2 takes 8 waves."""
    h = devices.get("h100-sxm")
    r = dataclasses.replace
    l2_bytes = 16 * h.l2.ways * h.l2.line_bytes * 20  # 16 slices of 20 sets: 800 KiB
    return r(
        h,
        compute=r(h.compute, sm_count=2),
        l2=r(h.l2, slices=16, size_MiB=l2_bytes / 2**20,
             bandwidth_GBps=h.l2.bandwidth_GBps * 16 / h.l2.slices),
        dram=r(h.dram, packages=1, channels_per_package=1,
               bus_width_bits=h.dram.bus_width_bits // 80,
               peak_bandwidth_GBps=h.dram.peak_bandwidth_GBps / 80, size_GiB=1.0,
               measured_bandwidth_GBps=None),
    )


@pytest.fixture(scope="module")
def transpose_runs(tiny_h100):
    """A 1024 x 512 tiled transpose (2 MiB in, 2 MiB out, 512 blocks, 32 waves) from a cold
    L2, replayed in full and sampled."""
    trace = Transpose(1024, 512, "tiled").trace()
    full = simulate_trace(trace, tiny_h100, sample=False)
    part = simulate_trace(trace, tiny_h100, sample=True)
    return full, part


def test_sampling_waits_for_the_l2_to_write_back_what_it_stores(tiny_h100, transpose_runs):
    full, part = transpose_runs
    assert part.sampled and part.blocks_simulated < full.blocks_total
    # the first waves store into an L2 with room, at the speed of the reads alone: they are
    # stable, and a sampler that stops there is half the full replay's time. The sampled
    # blocks must have brought more than the L2's capacity through it...
    assert part.blocks_simulated * TILE_BYTES > tiny_h100.l2.size_bytes
    # ...and the estimate is the full replay's, to the wave-to-wave scatter of a DRAM-bound
    # kernel (its waves differ by up to 30% once the L2 writes back), and within the spread the
    # sampler states: it extrapolates the mean of the settled waves (+1.8%, stated 5.1%); the
    # last wave's time alone gave +10.9% and stated 5.8%
    assert part.cycles == pytest.approx(full.cycles, rel=0.06)
    assert abs(part.time_s - full.time_s) <= part.time_s_spread
    # the extrapolated DRAM writes are the output, as the full replay's
    assert part.bytes["dram"]["write"] == pytest.approx(full.bytes["dram"]["write"], rel=0.02)


def _warm_system(spec, inputs, outputs):
    env = simpy.Environment()
    return previous_call_factory(inputs, outputs)(env, spec)


def test_previous_call_leaves_the_l2_full_with_the_outputs_share_dirty(tiny_h100):
    w = Transpose(1024, 512, "tiled")
    system = _warm_system(tiny_h100, w.inputs(), w.outputs())
    occ = system.l2_occupancy()
    assert occ >= L2_FULL
    # input and output are the same size: half the lines held are the previous call's output
    held = occ * tiny_h100.l2.size_bytes
    assert system.warm_dirty_bytes() == pytest.approx(held / 2, rel=0.05)
    # none of the call's own lines: its first blocks miss as the previous call's did
    arrays = w.inputs() + w.outputs()
    assert not any(a <= line < a + n for p in system.l2.parts for line in p.lines()
                   for a, n in arrays)


def test_warm_dirty_lines_are_not_the_runs_writes(tiny_h100):
    """The DRAM writes of a run that starts with an earlier call's dirty lines are its own
    stores, whether they leave during the run (in place of the inherited ones) or after."""
    w = Transpose(1024, 512, "tiled")
    res = simulate_trace(w.trace(), tiny_h100, sample=False,
                         system_factory=previous_call_factory(w.inputs(), w.outputs()))
    st = res.memory_stats.set_index("component").loc["DRAM"]
    assert st["l2_warm_dirty_bytes"] > 0
    assert st["write_bytes"] > 0  # the inherited lines were written back during the run
    assert res.bytes["dram"]["write"] == pytest.approx(4 * 1024 * 512, rel=1e-9)


def test_warm_dirty_accounting_subtracts_lines_evicted_again(tiny_h100):
    env = simpy.Environment()
    system = build_system(env, tiny_h100, rng=random.Random(0))
    line = tiny_h100.l2.line_bytes
    full = (1 << (line // tiny_h100.l2.sector_bytes)) - 1
    n = tiny_h100.l2.size_bytes // line
    system.warm(0, range(0, n // 4 * line, line), full, dirty=True)
    assert system.warm_dirty_bytes() == n // 4 * line
    # twice the L2 in clean lines evicts every dirty one (written back, so no longer owed)
    system.warm(0, range(2**30, 2**30 + 2 * n * line, line), full)
    held = tiny_h100.l2.sector_bytes * sum(t.dirty_sectors() for t in system.l2.parts)
    assert system.warm_dirty_bytes() == held


def test_a_cold_l2_that_stores_fill_is_not_extrapolated_from_trips(tiny_h100):
    """The first trips of a copy into a cold L2 smaller than its arrays store for free; their
    rate is not the kernel's, so the replay runs every trip. (Stream.simulate takes a stream
    this large relative to the L2 from a steady-state window; the rule is Workload's.)"""
    w = Stream("copy", 2**18).for_device(tiny_h100)  # 1 MiB per array, 16 trips per thread
    assert w.trips > 8 and w.windowed(tiny_h100)
    res = Workload.simulate(w, tiny_h100, sample=True)
    assert res.blocks_simulated == w.launch().num_blocks
    assert res.instructions_simulated == Workload.simulate(w, tiny_h100, sample=False
                                                           ).instructions_simulated


def test_stores_wait_for_a_dram_that_cannot_take_more_write_backs(tiny_h100, monkeypatch):
    """A write stream over more than the L2, starting from the L2 back-to-back calls leave
    (full, dirty): every store evicts a dirty line. The L2 cannot hold more dirty data than
    the DRAM drains, so the kernel takes at least its write-backs at the DRAM's peak rate;
    without the back-pressure (a DRAM write queue that is never full) the stores run ahead
    at the SMs' speed."""
    w = Stream("write", 2**19).for_device(tiny_h100)  # 2 MiB, the L2 holds 800 KiB

    def run():
        res = w.simulate(tiny_h100, sample=False, warm_l2=True)
        dram = res.memory_stats.set_index("component").loc["DRAM"]
        left_the_l2 = dram["write_bytes"] + dram["write_pending_bytes"]
        return res.time_s, left_the_l2 / (tiny_h100.dram.peak_bandwidth_GBps * 1e9)

    t, floor = run()
    assert floor > 0 and t >= floor
    monkeypatch.setattr("simgpu.sim.hbm.HBM.write_queue_full", lambda self, addr: False)
    t_free, floor_free = run()
    assert t_free < 0.8 * floor_free  # the case the rule is for
