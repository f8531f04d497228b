"""The library's stream-K schedule (simgpu.analytical.gemm.StreamKPlan): the work it deals out,
when the library search takes it, that the analytical and simulated views take the same one,
and what it does to a replay whose tiles quantise badly."""

from __future__ import annotations

import dataclasses
import math

import pytest

from simgpu import analytical, devices
from simgpu.analytical.gemm import StreamKPlan
from simgpu.views import protocol as views
from simgpu.workloads import LibraryGemm, TensorGemm
from simgpu.workloads.tensor_gemm import library_kernel


@pytest.fixture(scope="module")
def h100():
    return devices.get("h100-sxm")


# (units, iterations per unit, workers): quantising grids (a last wave under half full, with
# and without whole waves before it, fewer tiles than workers) and grids that do not quantise
@pytest.mark.parametrize(("units", "iters", "workers"), [
    (288, 48, 132), (144, 47, 66), (800, 80, 132), (32, 16, 132), (16, 32, 12), (7, 100, 132),
    (512, 64, 132), (264, 48, 132), (200, 8, 132),
])
def test_work_per_worker_covers_the_gemm_once(units, iters, workers):
    plan = StreamKPlan(units, iters, workers)
    seen: dict[tuple[int, int], int] = {}
    starts: dict[int, int] = {}
    for w in range(workers):
        for tile, lo, hi in plan.segments(w):
            assert 0 <= lo < hi <= iters
            for k in range(lo, hi):
                seen[(tile, k)] = seen.get((tile, k), 0) + 1
            starts[tile] = starts.get(tile, 0) + (lo == 0)
    # every MAC-loop iteration of every output tile done, by exactly one worker
    assert len(seen) == units * iters and set(seen.values()) == {1}
    assert sum(seen.values()) == units * iters
    # one worker starts each tile: it is the one that writes C
    assert set(starts.values()) == {1}
    # the fix-up count is the pieces beyond the first of every shared tile
    pieces: dict[int, int] = {}
    for w in range(workers):
        for tile, _, _ in plan.segments(w):
            pieces[tile] = pieces.get(tile, 0) + 1
    assert plan.partials == sum(n - 1 for n in pieces.values())
    # the busiest worker takes the even share, rounded up to whole iterations
    if plan.schedule == "stream-k":
        assert plan.busiest_iters == math.ceil(plan.sk_tiles * iters / plan.sk_units) + (
            plan.dp_tiles // workers) * iters


@pytest.mark.parametrize(("units", "iters", "workers", "schedule"), [
    (288, 48, 132, "stream-k"),    # 2.18 waves: the third holds 24 of 132 tiles
    (512, 64, 132, "data-parallel"),  # 3.88 waves: a last wave 88% full
    (264, 48, 132, "data-parallel"),  # whole waves
    (288, 8, 132, "data-parallel"),   # too few iterations a tile to share out
])
def test_the_schedule_follows_the_last_wave(units, iters, workers, schedule):
    plan = StreamKPlan(units, iters, workers)
    assert plan.schedule == schedule
    if schedule == "stream-k":
        # one full wave plus the partial one are shared; the waves before stay data-parallel
        assert plan.sk_tiles == units - (units // workers - 1) * workers
    else:
        assert plan.sk_tiles == 0 and plan.dp_tiles == units


def test_a_quantising_shape_gets_stream_k_and_a_full_one_keeps_its_tiles(h100):
    # 3072^3 fp16: 256 x 128 tiles, 12 x 24 = 288 of them on 132 SMs at one block each (2.18
    # waves); the measured cuBLAS call (82.1 us, ~706 TFLOP/s) cannot have left the third
    # wave's 108 SMs idle
    sk = analytical.gemm(h100, 3072, 3072, 3072, "fp16").iloc[0]
    dp = analytical.gemm(h100, 3072, 3072, 3072, "fp16", library_streamk=False).iloc[0]
    assert (sk["tile_m"], sk["tile_n"], sk["blocks_per_sm"]) == (256, 128, 1)
    assert sk["schedule"] == "stream-k" and dp["schedule"] == "data-parallel"
    # the busiest SM's MAC loop: 3 tiles' worth in waves, the even share of 288 x 48
    # iterations over 132 SMs with stream-K
    share = math.ceil(288 * 48 / 132) / 48
    assert sk["t_compute_s"] / dp["t_compute_s"] == pytest.approx(share / 3, rel=1e-6)
    # the fix-up's partial tiles (fp32) are written and read back through the L2
    assert sk["l2_bytes"] - dp["l2_bytes"] == pytest.approx(
        2 * sk["fixup_tiles"] * 256 * 128 * 4)
    assert sk["fixup_tiles"] > 0
    # 4096^3: 512 tiles, a last wave 88% full: the tiles stay data-parallel, as before
    full = analytical.gemm(h100, 4096, 4096, 4096, "fp16").iloc[0]
    assert full["schedule"] == "data-parallel" and full["fixup_tiles"] == 0
    # 2816 x 3072: 11 x 24 = 264 tiles, two whole waves
    whole = analytical.gemm(h100, 2816, 3072, 3072, "fp16").iloc[0]
    assert whole["blocks"] == 264 and whole["schedule"] == "data-parallel"
    # an A100's library kernels are not persistent (no stream-K scheduler before sm_90)
    a100 = analytical.gemm(devices.get("a100-sxm-80gb"), 3072, 3072, 3072, "fp16").iloc[0]
    assert a100["schedule"] == "data-parallel"


@pytest.mark.parametrize("shape", [(3072, 3072, 3072), (3000, 3000, 3000), (3072, 3072, 2000),
                                   (4096, 4096, 4096), (5120, 5120, 5120), (1024, 1024, 1024)])
@pytest.mark.parametrize("dtype", ["fp16", "tf32"])
def test_both_views_take_the_same_schedule(h100, shape, dtype):
    kern, row = library_kernel(h100, *shape, dtype)
    ana = analytical.gemm(h100, *shape, dtype).iloc[0]
    assert kern.schedule == ana["schedule"] == row["schedule"]
    if kern.schedule == "stream-k":
        # the persistent grid is every block slot, and the kernel shares out the same tiles
        assert kern.launch().grid == (int(ana["blocks_per_sm"]) * h100.compute.sm_count, 1, 1)
        plan = kern.streamk_plan()
        assert plan.sk_tiles * kern.cluster_m == int(ana["sk_tiles"])
        # the kernel's estimate is the search's row
        est = kern.estimate(h100).iloc[0]
        assert est["schedule"] == "stream-k"
        assert est["time_s"] == pytest.approx(float(ana["time_s"]))
    else:
        assert kern.workers == 0
        assert kern.launch().grid[:2] == (-(-shape[1] // kern.tile_n),
                                          -(-shape[0] // kern.tile_m))


def _sms(spec, n):
    return dataclasses.replace(spec, compute=dataclasses.replace(spec.compute, sm_count=n))


def test_stream_k_replay_does_the_gemm_and_beats_the_partial_wave(h100):
    # 512 x 512 x 2048 in 128 x 128 tiles: 16 tiles of 32 trips on 12 SMs (one block each):
    # in waves the second holds 4 tiles; stream-K gives each SM 16 x 32 / 12 = 42.7 trips
    spec = _sms(h100, 12)
    args = dict(dtype="fp16", tile_m=128, tile_n=128, stages=3, warps_m=8, warps_n=1,
                mainloop="hopper")
    sk = TensorGemm(512, 512, 2048, workers=12, **args)
    dp = TensorGemm(512, 512, 2048, **args)
    assert sk.schedule == "stream-k" and sk.trips == 43
    r_sk = sk.simulate(spec, sample=False)
    r_dp = dp.simulate(spec, sample=False)
    # every MAC once: the tensor-core instructions of the grid of tiles (which does 2 M N K,
    # test_tensor_gemm.test_counts_match_the_gemm); the fix-ups' adds are the only other FLOPs
    assert r_sk.op_counts["tensor"] == r_dp.op_counts["tensor"]
    assert r_dp.flops == pytest.approx(2 * 512 * 512 * 2048)
    assert r_sk.flops == pytest.approx(2 * 512 * 512 * 2048, rel=1e-4)
    # stores: C once (fp16), plus each fix-up's fp32 partial tile
    plan = sk.streamk_plan()
    assert plan.partials > 0
    assert r_sk.bytes["l1"]["write"] == pytest.approx(512 * 512 * 2
                                                      + plan.partials * 128 * 128 * 4)
    # the busiest SM does 43 trips against 64 in two waves: at least a quarter faster,
    # fix-ups and pipeline refills between its tiles included (the trip ratio is 0.67)
    assert r_sk.cycles < 0.8 * r_dp.cycles
    # the sampled replay (each piece of a block at stages and twice that trips) lands near
    sampled = sk.simulate(spec)
    assert sampled.sampled
    assert sampled.cycles == pytest.approx(r_sk.cycles, rel=0.10)


def test_bad_stream_k_kernels_are_refused():
    from simgpu.errors import SimgpuError

    with pytest.raises(SimgpuError, match="without split-K"):
        TensorGemm(512, 512, 512, tile_m=128, tile_n=128, warps_m=8, warps_n=1,
                   mainloop="hopper", workers=12, split_k=2)
    with pytest.raises(SimgpuError, match="multiple of cluster_m = 2"):
        TensorGemm(512, 512, 512, tile_m=128, tile_n=128, warps_m=8, warps_n=1,
                   mainloop="hopper", workers=13, cluster_m=2)
    with pytest.raises(SimgpuError, match="workers = 0, expected >= 1"):
        StreamKPlan(16, 32, 0)


def test_the_analytical_note_says_how_the_library_call_runs(h100):
    """A stream-K point's note names the schedule, not the tile grid's waves it does not run
    in; a data-parallel point keeps its waves."""
    sk = views.estimate("analytical", LibraryGemm(3072, 3072, 3072, "fp16"), h100)
    dp = views.estimate("analytical", LibraryGemm(4096, 4096, 4096, "fp16"), h100)
    assert sk.detail["schedule"] == "stream-k" and dp.detail["schedule"] == "data-parallel"
    assert "stream-K over" in sk.note and "waves" not in sk.note
    assert f"{dp.detail['waves']:.2f} waves" in dp.note
