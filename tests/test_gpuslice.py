"""A slice of a GPU (simgpu.sim.gpuslice): what it keeps, what it divides, and the replay on it."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from simgpu import devices, workloads
from simgpu.cli import main
from simgpu.devices.spec import DeviceSpec
from simgpu.errors import SimgpuError
from simgpu.sim.gpuslice import (
    CHUNK,
    MAX_SLICE,
    SLICE_SPREAD,
    default_slice,
    slice_blocks,
    slice_factors,
    slice_spec,
)
from simgpu.sim.hbm import peak_bandwidth_GBps
from simgpu.sim.sm import SMConfig
from simgpu.workloads.gemm import SLICE_L2_BYTES_PER_FLOP


def _gpus() -> list[DeviceSpec]:
    return [d for d in devices.list_devices() if isinstance(d, DeviceSpec)]


def _problems(spec: DeviceSpec) -> list[tuple[str, object, str]]:
    out = list(spec.problems())
    for section in (spec.compute, spec.register_file, spec.l1, spec.l2, spec.noc, spec.dram,
                    spec.dram.timing, spec.host_link, spec.power):
        out += list(section.problems())
    return out


@pytest.mark.parametrize("spec", _gpus(), ids=lambda s: s.name)
def test_a_slice_keeps_every_per_unit_figure_and_divides_the_totals(spec: DeviceSpec) -> None:
    for k in slice_factors(spec):
        s = slice_spec(spec, k)
        # what one SM, one L2 slice and one DRAM channel are: unchanged
        a, b = SMConfig.from_spec(s), SMConfig.from_spec(spec)
        assert replace(a, timings={}) == replace(b, timings={})
        assert a.timings.keys() == b.timings.keys()
        for unit, t in a.timings.items():  # rates per SM: equal up to the rounding of peak / k
            assert t.latency == b.timings[unit].latency
            assert t.interval == pytest.approx(b.timings[unit].interval, rel=1e-12)
        assert s.l2.slice_bytes == spec.l2.slice_bytes
        assert s.l2.sets_per_slice == spec.l2.sets_per_slice
        assert s.noc == spec.noc and s.l1 == spec.l1 and s.dram.timing == spec.dram.timing
        assert (peak_bandwidth_GBps(s.dram) / s.dram.channels
                == pytest.approx(peak_bandwidth_GBps(spec.dram) / spec.dram.channels))
        # the counts and their sums: 1/k
        assert s.compute.sm_count * k == spec.compute.sm_count
        assert s.l2.slices * k == spec.l2.slices
        assert s.dram.channels * k == spec.dram.channels
        assert s.l2.size_MiB * k == pytest.approx(spec.l2.size_MiB)
        assert s.dram.peak_bandwidth_GBps * k == pytest.approx(spec.dram.peak_bandwidth_GBps)
        assert s.compute.peak_fp32_TFLOPS * k == pytest.approx(spec.compute.peak_fp32_TFLOPS)
        # a slice of a valid device file passes the rules a device file must pass
        if not _problems(spec):
            assert _problems(s) == []


def test_slice_factors_of_the_h100_and_a_device_that_does_not_split() -> None:
    h100 = devices.get("h100-sxm")  # 132 SMs, 80 L2 slices in 2 partitions, 5 x 16 channels
    assert slice_factors(h100) == [2, 4]
    assert slice_spec(h100, 1) is h100
    with pytest.raises(SimgpuError, match=r"'h100-sxm' does not split into 3 equal slices.*"
                                         r"132 SMs.*expected one of \[2, 4\]"):
        slice_spec(h100, 3)


def test_default_slice_needs_a_block_for_every_sm_of_the_whole_gpu() -> None:
    h100 = devices.get("h100-sxm")
    assert default_slice(h100, 131) == 1
    assert default_slice(h100, 132) == 4 == MAX_SLICE
    assert default_slice(h100, 10_000, limit=2) == 2
    pcie = devices.get("h100-pcie")  # 114 SMs: only halves
    assert default_slice(pcie, 10_000) == 2
    few = replace(h100, compute=replace(h100.compute, sm_count=4))  # splits, but too small
    assert slice_factors(few) == [2, 4]
    assert default_slice(few, 10_000) == 1


def test_a_sliced_replay_runs_every_kth_block_and_scales_its_counts() -> None:
    spec = devices.get("h100-sxm")
    w = workloads.Stream("copy", 1 << 20)  # 1024 blocks, one grid-stride wave
    full = w.simulate(spec, sample=False)
    part = w.simulate(spec, sample=False, sm_slice=4)
    assert not full.sampled and full.sm_slice == 1
    assert part.sampled and part.sm_slice == 4
    assert part.blocks_total == full.blocks_total == 1024
    assert part.blocks_simulated == 256
    assert part.instructions_simulated * 4 == full.instructions_simulated
    # every block of a stream does the same work: the scaled counts are the whole grid's
    assert part.warp_instructions == full.warp_instructions
    assert part.flops == full.flops
    for level in ("l1", "l2", "dram"):
        for rw in ("read", "write"):
            assert part.bytes[level][rw] == pytest.approx(full.bytes[level][rw], rel=1e-9)
    # a quarter of the SMs against a quarter of the L2 slices and DRAM channels: the same
    # bandwidth per SM, so about the same time (bench_sampling --slice measures the error)
    assert part.time_s == pytest.approx(full.time_s, rel=0.05)
    # and it says so: its spread carries the slice's measured error, the full replay's none
    assert full.time_s_spread == 0
    assert part.time_s_spread == pytest.approx(SLICE_SPREAD * part.time_s)
    assert math.isclose(part.waves, full.waves, rel_tol=0.01)


def test_the_default_sampled_replay_slices_and_an_unsampled_one_does_not() -> None:
    spec = devices.get("h100-sxm")
    w = workloads.Stream("read", 1 << 18)  # 256 blocks >= 132 SMs
    assert w.simulate(spec).sm_slice == 4
    assert w.simulate(spec, sample=False).sm_slice == 1
    tiny = workloads.Stream("read", 1 << 12, blocks=4)  # fewer blocks than SMs
    assert tiny.simulate(spec).sm_slice == 1


def test_a_slice_started_warm_keeps_the_whole_l2_for_the_whole_grids_inputs() -> None:
    spec = devices.get("h100-sxm")
    w = workloads.Reduction(1 << 22)  # 16 MiB of input: in the 50 MiB L2, not in a quarter
    assert sum(n for _, n in w.inputs()) > slice_spec(spec, 4).l2.size_bytes
    r = w.simulate(spec, sm_slice=4, warm_l2=True)
    assert r.sm_slice == 4
    # the lines the slice's blocks read were warmed and stayed, as on the whole GPU (with a
    # quarter of the capacity, about a fifth of them would have been evicted by the warm-up)
    assert r.hit_rate["l2"] > 0.999
    assert r.bytes["dram"]["read"] < 1e-3 * 4 * (1 << 22)
    whole = slice_spec(spec, 4, whole_l2=True)
    assert whole.l2.size_MiB == spec.l2.size_MiB and whole.l2.slices == 20
    assert whole.l2.sets_per_slice == 4 * spec.l2.sets_per_slice


def test_slice_blocks_takes_runs_of_consecutive_blocks_and_its_share_of_every_row() -> None:
    assert slice_blocks(10, 1) == list(range(10))
    # a long 1-D grid: runs of CHUNK, one in every k
    picked = slice_blocks(1056, 4)
    assert len(picked) == 264
    assert picked[:CHUNK + 1] == [*range(CHUNK), 4 * CHUNK]
    # a GEMM grid with rows of 16 blocks: runs of 16 / 4 = 4, so every row gives its quarter
    picked = slice_blocks(256, 4, row=16)
    assert picked[:8] == [0, 1, 2, 3, 16, 17, 18, 19]
    assert {i // 16 for i in picked} == set(range(16))
    # rows of 40 (a 5120-wide GEMM of 128-wide tiles): runs of 5 counted within each row, so
    # every row gives the same 10 columns
    picked = slice_blocks(800, 4, row=40)
    assert {i % 40 for i in picked} == {*range(5), *range(20, 25)}
    assert len(picked) == 200
    # the slice's share exactly: 132 blocks, one per SM of an H100, give the 33-SM slice 33
    # (runs of 8 would give it 36, and a second wave at one block per SM)
    for n in (132, 1000, 1056, 4097):
        assert len(slice_blocks(n, 4)) == -(-n // 4)
        assert len(slice_blocks(n, 4, row=32)) == -(-n // 4)


def test_simulate_takes_a_slice_and_refuses_one_the_device_does_not_split_into(capsys) -> None:
    args = ["simulate", "--device", "h100-sxm", "--workload", "stream", "--op", "read",
            "--elements", "262144", "--json"]
    assert main([*args, "--slice", "2"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["sm_slice"] == 2 and rec["blocks_simulated"] == rec["blocks_total"] // 2
    assert main([*args, "--no-sample"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["sm_slice"] == 1 and not rec["sampled"]
    assert main([*args, "--slice", "3"]) != 0
    err = capsys.readouterr().err
    assert "does not split into 3 equal slices" in err and "expected one of [2, 4]" in err
    assert main(["simulate", "--device", "hbm-pim", "--workload", "gemv", "--m", "256", "--k",
                 "256", "--slice", "2"]) != 0
    assert "hbm-pim is a pim device" in capsys.readouterr().err


def test_gemms_slice_only_from_a_warm_l2_through_shared_memory_or_when_asked() -> None:
    spec = devices.get("h100-sxm")
    w = workloads.TiledGemm(256, 256, 32, tile=16)  # 256 blocks: a slice would fit
    # a cold L2: the slice would read the wave's rows of A again from a quarter of the DRAM
    assert w.simulate(spec).sm_slice == 1
    assert w.simulate(spec, sm_slice=4).sm_slice == 4
    # A and B start in the L2: the slice sampling picks
    warm = w.simulate(spec, warm_l2=True)
    assert warm.sm_slice == 4 and warm.sampled
    # (at least the slice's own share: the trip extrapolation may add nothing; one ulp of slack)
    assert warm.time_s_spread >= SLICE_SPREAD * warm.time_s * (1 - 1e-12)
    assert w.simulate(spec, warm_l2=True, sample=False).sm_slice == 1
    assert w.simulate(spec, warm_l2=True, sm_slice=1).sm_slice == 1
    # ...but not for a kernel that reads its operands from global memory on every k, nor
    # for one with more L2 traffic per FLOP than GemmBase.simulate slices (8 x 8 tiles)
    naive = workloads.NaiveGemm(256, 256, 16)
    assert naive.launch().shared_bytes == 0
    assert naive.simulate(spec, warm_l2=True).sm_slice == 1
    small = workloads.TiledGemm(128, 128, 16, tile=8)  # 256 blocks
    row = small.estimate(spec).iloc[0]
    assert row["l2_bytes"] > SLICE_L2_BYTES_PER_FLOP * row["flops"]
    assert small.simulate(spec, warm_l2=True).sm_slice == 1
    # nor from a factory of the caller's own: the inputs are not known to be in the L2
    make = w.warm_l2_kwargs(spec, {})["system_factory"]
    assert w.simulate(spec, warm_l2=True, system_factory=make).sm_slice == 1
