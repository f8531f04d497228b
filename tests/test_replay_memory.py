"""Replay-level memory accounting: DRAM write bytes (written back + still dirty in the write-back
L2), their scaling when sampled, a warmed pointer chase, and a memory-system regression."""

from __future__ import annotations

import dataclasses

import pytest

from simgpu import devices
from simgpu.sim.replay import SamplingPlan, simulate_trace
from simgpu.sim.sm import unit_timings
from simgpu.sim.system import build_system
from simgpu.workloads import Gemv, PointerChase, Stream, TiledGemm, Transpose


@pytest.fixture(scope="module")
def h100():
    return devices.get("h100-sxm")


@pytest.fixture(scope="module")
def h100_8sm(h100):
    """An 8-SM slice of the H100 (same SM and memory system, fewer SMs: fast replays)."""
    return dataclasses.replace(h100, compute=dataclasses.replace(h100.compute, sm_count=8))


def _dram_row(res):
    st = res.memory_stats
    return st[st["component"] == "DRAM"].iloc[0]


def test_stream_copy_writes_its_output_once_to_dram(h100_8sm):
    n = 64 * 256 * 4
    res = Stream("copy", n, blocks=64).simulate(h100_8sm, sample=False)
    row = _dram_row(res)
    # the write-back L2 still holds stores at the end: they count (they leave after the kernel)
    assert row["l2_dirty_bytes"] > 0
    assert res.bytes["dram"]["write"] == pytest.approx(4 * n, rel=1e-12)
    assert res.bytes["dram"]["write"] == pytest.approx(
        row["write_bytes"] + row["write_pending_bytes"] + row["l2_dirty_bytes"], rel=1e-12
    )
    assert res.bytes["dram"]["read"] == pytest.approx(4 * n, rel=1e-12)


def test_replay_without_submit_matches_the_event_per_request_path(h100_8sm):
    """A memory system offering only access() (an event per request) gives the same kernel
    as the default one, whose submit() hands completion times over without events."""
    class AccessOnly:
        def __init__(self, system):
            self.inner = system

        def access(self, req):
            return self.inner.access(req)

        def stats(self):
            return self.inner.stats()

    trace = Stream("copy", 32 * 256 * 4, blocks=32).trace()
    fast = simulate_trace(trace, h100_8sm)
    slow = simulate_trace(trace, h100_8sm,
                          system_factory=lambda env, spec: AccessOnly(build_system(env, spec)))
    assert slow.bytes == fast.bytes
    assert slow.cycles == pytest.approx(fast.cycles, rel=0.01)  # ties at one cycle may reorder


def test_sampled_stream_scales_bytes_to_the_whole_grid(h100_8sm):
    n = 512 * 256 * 4
    # at most 4 of the 8 waves: on 8 SMs successive wave times differ by up to 10%, so the
    # default 2% rule may simulate every wave
    res = simulate_trace(Stream("copy", n, blocks=512).trace(), h100_8sm,
                         sample=SamplingPlan(max_waves=4))
    assert res.sampled and res.blocks_simulated < res.blocks_total
    # every block moves the same bytes: per-block means of the retired blocks are exact
    assert res.bytes["l1"]["read"] == pytest.approx(4 * n, rel=1e-12)
    assert res.bytes["l1"]["write"] == pytest.approx(4 * n, rel=1e-12)
    assert res.bytes["dram"]["write"] == pytest.approx(4 * n, rel=1e-12)
    # DRAM reads in flight when sampling stopped make these approximate
    assert res.bytes["dram"]["read"] == pytest.approx(4 * n, rel=0.10)


def test_trip_sampled_gemm_writes_c_once(h100_8sm):
    m, n, k = 256, 256, 512
    res = TiledGemm(m, n, k, tile=16).simulate(h100_8sm, sample=True)
    assert res.sampled
    assert res.bytes["dram"]["write"] == pytest.approx(4 * m * n, rel=1e-12)


def test_gemm_whose_merged_loads_hit_in_l2_finishes(h100_8sm):
    """Regression: a load merging into an L1 miss whose extra sectors hit in the L2 lost its
    completion, and this replay stalled with requests never answered."""
    m, n = 256, 384
    res = TiledGemm(m, n, 32, tile=16).simulate(h100_8sm, sample=False)
    assert res.blocks_simulated == res.blocks_total == (m // 16) * (n // 16)
    assert res.bytes["dram"]["write"] == pytest.approx(4 * m * n, rel=1e-12)


@pytest.mark.parametrize(
    ("footprint", "level"), [(16 << 10, "l1"), (4 << 20, "l2")], ids=["in-L1", "in-L2"]
)
def test_pointer_chase_replay_is_warmed_like_the_measured_kernel(h100, footprint, level):
    steps = 256
    warm = PointerChase(footprint, steps=steps).simulate(h100)
    cold = PointerChase(footprint, steps=steps).simulate(h100, warm=False)
    assert warm.hit_rate[level] == 1.0
    assert warm.bytes["dram"]["read"] == 0.0
    assert cold.bytes["dram"]["read"] > 0.0
    assert warm.cycles < cold.cycles
    # each step is the address IMAD then the load, which hits in the footprint's level
    lat = h100.l1.hit_latency_cycles if level == "l1" else h100.l2.near_hit_latency_cycles
    step = lat + unit_timings(h100)["int"].latency
    assert warm.cycles / steps == pytest.approx(step, rel=0.02)


@pytest.mark.parametrize("make", [lambda: Gemv(256, 512), lambda: Transpose(256, 256, "tiled")],
                         ids=["gemv", "transpose"])
def test_warm_l2_start_reads_the_inputs_from_the_l2(h100_8sm, make):
    """warm_l2 preloads the kernel's inputs into the L2: the replay reads nothing from DRAM
    and runs faster than from a cold L2."""
    w = make()
    cold = w.simulate(h100_8sm, sample=False)
    warm = w.simulate(h100_8sm, sample=False, warm_l2=True)
    inputs = sum(n for _, n in w.inputs())
    assert cold.bytes["dram"]["read"] >= inputs
    assert warm.bytes["dram"]["read"] == 0
    assert warm.cycles < cold.cycles


def test_warm_l2_gemm_starts_with_its_inputs_in_every_partition(h100):
    """A GEMM measured in back-to-back calls finds A and B in the near L2 partition of every SM
    (blocks on SMs of both partitions read every line, and a far hit copies it near): with
    warm_l2, every global load of a small GEMM is a near L2 hit at the near latency
    (published/gpu_numbers.csv: 264.5 cycles on H800-PCIe, the device file's 265.5), none far."""
    w = TiledGemm(128, 128, 64, tile=16)
    served: dict[str, list[float]] = {}

    def factory(env, spec):
        system = warm_factory(env, spec)
        submit = system.submit

        def tap(req, known):
            def seen(r):
                if not r.write:
                    served.setdefault(r.served_by, []).append(r.t_done - r.t_issue)
                known(r)
            submit(req, seen)

        system.submit = tap
        system.load_many = None  # every load through the tapped submit(), one at a time
        return system

    warm_factory = w.warm_l2_kwargs(h100, {}, every_partition=True)["system_factory"]
    simulate_trace(w.trace(), h100, system_factory=factory)
    assert "L2far" not in served and "DRAM" not in served
    near = sorted(served["L2near"])
    assert near[len(near) // 2] == pytest.approx(h100.l2.near_hit_latency_cycles, rel=0.03)
    # one copy only (the partition of the SM that warmed the line): half the loads go far
    one = w.warm_l2_kwargs(h100, {})["system_factory"]
    served.clear()
    warm_factory = one
    simulate_trace(w.trace(), h100, system_factory=factory)
    far = len(served.get("L2far", []))
    assert far > 0.3 * (far + len(served["L2near"]))
