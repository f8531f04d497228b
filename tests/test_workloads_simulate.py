"""Workload.simulate: K-loop trip sampling of GEMMs against full replay (fixed-latency memory)."""

from __future__ import annotations

import dataclasses

import pytest
from sim_stub import StubRequest, stub_factory

from simgpu import devices
from simgpu.sim.replay import simulate_trace
from simgpu.workloads import RegBlockGemm, TiledGemm


@pytest.fixture(scope="module")
def two_sms():
    spec = devices.get("h100-sxm")
    return dataclasses.replace(spec, compute=dataclasses.replace(spec.compute, sm_count=2))


@pytest.mark.parametrize(
    "make",
    [lambda: TiledGemm(64, 64, 256, tile=16), lambda: RegBlockGemm(128, 64, 256)],
    ids=["tiled16", "regblock64"],
)
def test_trip_sampling_matches_full_replay(two_sms, make):
    w = make()
    kw = dict(system_factory=stub_factory(300.0), request_cls=StubRequest)
    full = simulate_trace(w.trace(), two_sms, sample=False, **kw)
    est = w.simulate(two_sms, sample=True, **kw)
    assert est.sampled and est.instructions_simulated < full.instructions_simulated
    assert est.cycles == pytest.approx(full.cycles, rel=0.05)
    assert est.warp_instructions == pytest.approx(full.warp_instructions, rel=0.02)
    assert est.flops == pytest.approx(w.flops)


def test_tile_size_changes_issue_pressure(two_sms):
    """Per FFMA, tile 8 issues more loads/overhead than tile 32 (shared loads per FMA are the
    same, loop overhead per FMA shrinks with the tile)."""
    kw = dict(system_factory=stub_factory(300.0), request_cls=StubRequest)
    per_fma = {}
    for tile in (8, 32):
        r = TiledGemm(64, 64, 64, tile=tile).simulate(two_sms, sample=False, **kw)
        per_fma[tile] = r.warp_instructions / r.op_counts["fp32"]
    assert per_fma[8] > per_fma[32] > 1.0


def test_warm_l2_removes_cold_misses():
    spec = devices.get("h100-sxm")
    spec = dataclasses.replace(spec, compute=dataclasses.replace(spec.compute, sm_count=4))
    w = TiledGemm(64, 64, 64, tile=32)
    cold = w.simulate(spec, sample=False)
    warm = w.simulate(spec, sample=False, warm_l2=True)
    assert cold.bytes["dram"]["read"] >= 2 * 64 * 64 * 4  # A and B come from DRAM once
    assert warm.bytes["dram"]["read"] == 0
    assert warm.cycles < cold.cycles


def test_stream_windows_are_replayed_once_per_process():
    # arrays past DRAM_RESIDENT_L2 x the L2 take their bandwidth from a steady-state window that
    # does not depend on the array size, and copy and scale share one: the second of each is
    # the first's window (same bandwidth, its time in proportion to the bytes), not a replay
    from simgpu.workloads import Stream, memory

    spec = devices.get("h100-sxm")
    memory._window.cache_clear()
    n = 4 * spec.l2.size_bytes // 4 * 2  # floats: arrays of 8 x the L2
    first = Stream("copy", n).simulate(spec)
    assert memory._window.cache_info().currsize == 1
    again = Stream("scale", 2 * n).simulate(spec)
    assert memory._window.cache_info().currsize == 1
    assert again.wall_s < first.wall_s / 10
    assert again.time_s == pytest.approx(2 * first.time_s, rel=1e-12)
    memory._window.cache_clear()  # a fresh replay gives the same answer
    assert Stream("scale", 2 * n).simulate(spec).time_s == again.time_s


def test_a_gemvs_replay_bytes_follow_the_work_its_replay_does():
    # every memory family's replays are ordered by replay_bytes: the share of the kernel a
    # sampled replay runs (two trip counts of the first wave, or its waves) must show, so that a
    # GEMV of many waves with a short k loop (replayed wave by wave) is not taken for one whose
    # long loop is sampled in trips
    from simgpu.workloads import Gemv

    spec = devices.get("h100-sxm")
    short = Gemv(1024, 1024)  # 32 trips, one wave: replayed whole
    long = Gemv(1024, 8192)  # 256 trips: replayed at 16 and at 32
    r_short, r_long = (w.simulate(spec, warm_l2=True) for w in (short, long))
    assert r_long.sampled and not r_short.sampled
    work = r_long.instructions_simulated / r_short.instructions_simulated
    assert long.replay_bytes(spec) / short.replay_bytes(spec) == pytest.approx(work, rel=0.1)
    many_waves, big = Gemv(65536, 1024), Gemv(16384, 16384)  # 115 s and 27 s of replay
    assert many_waves.compulsory_bytes < big.compulsory_bytes
    assert many_waves.replay_bytes(spec) > 4 * big.replay_bytes(spec)


def test_a_stream_is_a_window_once_its_arrays_together_exceed_the_l2():
    # back-to-back calls stream their arrays in the same order: with more lines than the L2
    # holds, all of them together, none is left for the next call (LRU), so the steady-state
    # window stands for the replay; within the L2 the replay's hits count
    from simgpu.workloads import Stream

    spec = devices.get("h100-sxm")
    n = 3 * spec.l2.size_bytes // 16  # floats: arrays of 0.75 x the L2 each
    assert not Stream("read", n).windowed(spec)
    assert not Stream("write", n).windowed(spec)
    assert Stream("copy", n).windowed(spec)  # 1.5 x the L2 together
    assert not Stream("copy", n // 2).windowed(spec)  # 0.75 x
    assert Stream("triad", n // 2).windowed(spec)  # three arrays: 1.125 x
    assert Stream("read", spec.l2.size_bytes // 4 + 32).windowed(spec)  # just past the L2
    assert not Stream("read", spec.l2.size_bytes // 4).windowed(spec)  # all of it


def test_a_streams_replay_bytes_follow_the_work_its_replay_does():
    # `simgpu validate` orders a family's replays by their cost, for streams by replay_bytes:
    # it must follow the replay's own work, whether the replay runs every trip of the
    # grid-stride loop or samples two trip counts, and stand for the steady-state window of
    # arrays far larger than the L2 (one short replay whatever their size)
    from simgpu.workloads import Stream, memory

    spec = devices.get("h100-sxm")
    trip = 4 * 132 * 256  # floats one grid-stride trip of 132 blocks of 256 threads moves
    whole = Stream("read", 6 * trip, blocks=132)  # 6 trips: replayed whole
    sampled = Stream("read", 24 * trip, blocks=132)  # 24 trips: replayed at 4 and at 8
    r_whole, r_sampled = (w.simulate(spec, warm_l2=True) for w in (whole, sampled))
    assert r_sampled.sampled and r_sampled.blocks_simulated == 2 * r_whole.blocks_simulated
    work = r_sampled.instructions_simulated / r_whole.instructions_simulated
    assert sampled.replay_bytes(spec) / whole.replay_bytes(spec) == pytest.approx(work, rel=0.05)
    # a slice of a quarter of the GPU replays a quarter of the wave's blocks
    assert whole.replay_bytes(spec) == pytest.approx(whole.compulsory_bytes / 4)
    huge = Stream("read", spec.l2.size_bytes)  # 4 x the L2
    assert huge.replay_bytes(spec) == memory.WINDOW_LINES * spec.l1.line_bytes
    assert Stream("read", 2 * huge.n_elements).replay_bytes(spec) == huge.replay_bytes(spec)
