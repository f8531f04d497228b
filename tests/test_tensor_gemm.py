"""The tensor-core GEMM trace generator (simgpu.workloads.tensor_gemm) and the library GEMM's
simulated view: counts, the tensor-bound steady state, sampling against a full replay, the clock
and power, and clear refusals."""

from __future__ import annotations

import dataclasses

import pytest
from cli_errors import fails
from sim_stub import StubRequest, stub_factory

from simgpu import analytical, devices
from simgpu.errors import SimgpuError, ViewUnavailable
from simgpu.sim.replay import simulate_trace
from simgpu.views import protocol
from simgpu.workloads import LibraryGemm, TensorGemm
from simgpu.workloads.tensor_gemm import at_clock, library_kernel


@pytest.fixture(scope="module")
def h100():
    return devices.get("h100-sxm")


@pytest.fixture(scope="module")
def a100():
    return devices.get("a100-sxm-80gb")


@pytest.mark.parametrize(("device", "mainloop", "dtype", "row_bytes"), [
    ("a100-sxm-80gb", "ampere", "fp16", 128), ("a100-sxm-80gb", "ampere", "tf32", 128),
    ("a100-sxm-80gb", "ampere", "fp16", 64), ("rtx-4090", "ampere", "tf32", 64),
    ("h100-sxm", "hopper", "bf16", 128), ("h100-sxm", "hopper", "fp8", 128),
])
def test_counts_match_the_gemm(device, mainloop, dtype, row_bytes):
    spec = devices.get(device)
    g = TensorGemm(256, 256, 512, dtype=dtype, tile_m=128, tile_n=128, stages=3, warps_m=2,
                   warps_n=4, mainloop=mainloop, row_bytes=row_bytes)
    assert g.tile_k * {"fp16": 2, "bf16": 2, "tf32": 4, "fp8": 1}[dtype] == row_bytes
    res = g.simulate(spec, sample=False)
    # every FLOP of 2 M N K executed once on the tensor cores (the tiles divide the shape)
    assert res.flops == pytest.approx(2 * 256 * 256 * 512)
    # A and B read once per block row/column of tiles, C written once
    e = {"fp16": 2, "bf16": 2, "tf32": 4, "fp8": 1}[dtype]
    loads = 2 * 2 * (128 + 128) * 512 * e  # 4 blocks, each its A and B strips
    assert res.bytes["l2"]["read"] == pytest.approx(loads, rel=0.02)
    out = {"fp16": 2, "bf16": 2, "tf32": 4, "fp8": 2}[dtype]
    assert res.bytes["l1"]["write"] == pytest.approx(256 * 256 * out)


def _one_sm(spec):
    return dataclasses.replace(spec, compute=dataclasses.replace(spec.compute, sm_count=1))


@pytest.mark.parametrize(("device", "mainloop", "key", "per_sub_core_per_trip"), [
    # hopper 128x256: two warpgroups, each warp one HGMMA.64x256x16 per k16, 4 per 64-deep
    # trip; two warps (one of each warpgroup) per sub-core
    ("h100-sxm", "hopper", "hgmma_64x256x16_f32_f16", 2 * 4),
    # ampere 128x256 over 2 x 4 warps: warp tile 64x64, (64/16) x (64/8) mma per k16, 4 k16 a
    # trip, two warps per sub-core
    ("a100-sxm-80gb", "ampere", "hmma_16816_f32_f16", 2 * 4 * 8 * 4),
])
def test_steady_state_is_tensor_bound_on_a_fast_memory(device, mainloop, key,
                                                       per_sub_core_per_trip):
    spec = _one_sm(devices.get(device))
    g = TensorGemm(128, 256, 4096, dtype="fp16", tile_m=128, tile_n=256, stages=3, warps_m=2,
                   warps_n=4, mainloop=mainloop)
    cycles = {}
    for trips in (8, 16):
        r = simulate_trace(g.with_trips(trips).trace(), spec, system_factory=stub_factory(50.0),
                           request_cls=StubRequest)
        cycles[trips] = r.cycles
    slope = (cycles[16] - cycles[8]) / 8
    bound = per_sub_core_per_trip * spec.compute.tensor_interval_cycles[key]
    if mainloop == "hopper":
        assert slope == pytest.approx(bound, rel=0.03)
    else:
        # the ldmatrix and cp.async of a trip hold the SM's LD/ST unit 1,408 of its 2,106
        # tensor cycles, and a warp whose ldmatrix waits for it issues no mma meanwhile (the
        # model has no MIO queue): 19% over the tensor bound
        assert bound * 0.99 <= slope <= bound * 1.25


def test_sampled_replay_lands_near_the_full_one(h100):
    g = TensorGemm(512, 512, 4096, dtype="fp16", tile_m=128, tile_n=128, stages=3, warps_m=8,
                   warps_n=1, mainloop="hopper")
    sampled = g.simulate(h100)
    full = g.simulate(h100, sample=False)
    assert sampled.sampled and not full.sampled
    err = abs(sampled.time_s / full.time_s - 1)
    assert err < 0.10
    assert err <= sampled.time_s_spread / full.time_s + 0.05


@pytest.mark.parametrize("name", ["h100-sxm", "h100-sxm-cal-20261122t154403z"])
def test_library_view_runs_at_the_capped_clock_with_a_power(name):
    # the published file has no energies per event (boost clock, utilisation power); the
    # calibrated one has energies fitted to its run (a clock capped under the TDP)
    h100 = devices.get(name)
    M = N = K = 1024
    kern, row = library_kernel(h100, M, N, K, "fp16")
    assert (kern.tile_m, kern.tile_n, kern.split_k) == (
        int(row["tile_m"]), int(row["tile_n"]), int(row["split_k"]))
    res = LibraryGemm(M, N, K, dtype="fp16").simulate(h100)
    assert res.clock_MHz == pytest.approx(float(row["clock_MHz"]))
    assert res.time_s == pytest.approx(res.cycles / (res.clock_MHz * 1e6))
    assert h100.power.static_W < res.power_W <= h100.power.tdp_W
    assert 0.0 < res.tensor_busy <= 1.0
    est = protocol.estimate("simulated", LibraryGemm(M, N, K, dtype="fp16"), h100)
    assert est.power_W == pytest.approx(res.power_W)
    # the note says why the clock is what it is: the cap, where the file has energies per event
    why = "clock under the 700 W cap" if h100.power.energy_pJ else "the boost clock"
    assert f"at {float(row['clock_MHz']):.0f} MHz (" in est.note and why in est.note


def test_at_clock_scales_on_chip_rates_only(h100):
    slow = at_clock(h100, 990.0)
    assert slow.compute.boost_clock_MHz == 990.0
    assert slow.compute.peak_fp16_tensor_TFLOPS == pytest.approx(
        h100.compute.peak_fp16_tensor_TFLOPS / 2)
    assert slow.dram == h100.dram
    assert slow.compute.tensor_interval_cycles == h100.compute.tensor_interval_cycles
    with pytest.raises(SimgpuError, match="expected 0 < clock <= 1980"):
        at_clock(h100, 2500.0)


def test_unsupported_dtypes_are_refused_naming_device_and_dtype(a100, capsys):
    with pytest.raises(ViewUnavailable, match="a100-sxm-80gb has no fp8 tensor-core path"):
        LibraryGemm(512, 512, 512, dtype="fp8").simulate(a100)
    with pytest.raises(ViewUnavailable, match="rtx-4090: no fp8 tensor-core timing"):
        LibraryGemm(512, 512, 512, dtype="fp8").simulate(devices.get("rtx-4090"))
    with pytest.raises(ViewUnavailable, match="fp32 GEMMs run closed-source SIMT"):
        LibraryGemm(512, 512, 512, dtype="fp32").simulate(a100)
    fails(capsys, ["simulate", "--device", "a100-sxm-80gb", "--workload", "gemm", "--m", "512",
                   "--n", "512", "--k", "512", "--dtype", "fp8"], "a100-sxm-80gb", "fp8")
    fails(capsys, ["simulate", "--device", "h100-sxm", "--workload", "gemm", "--m", "512",
                   "--n", "512", "--k", "512", "--dtype", "fp16", "--kernel", "sgemm_tiled"],
          "sgemm_tiled", "fp16")


def test_bad_tiles_are_refused():
    with pytest.raises(SimgpuError, match="expected 64, 128 or 256"):
        TensorGemm(512, 512, 512, tile_m=128, tile_n=96, warps_m=8, warps_n=1,
                   mainloop="hopper")
    with pytest.raises(SimgpuError, match="multiples of 16"):
        TensorGemm(512, 512, 512, tile_m=128, tile_n=40, warps_m=2, warps_n=4)
    with pytest.raises(SimgpuError, match="needs the hopper mainloop"):
        TensorGemm(512, 512, 512, cluster_m=2)
    with pytest.raises(SimgpuError, match="dtype 'fp32'"):
        TensorGemm(512, 512, 512, dtype="fp32")
    # CUTLASS's sm_90 tiles take K steps of 128 bytes and up; the Ampere mainloop 128 or 64
    with pytest.raises(SimgpuError, match=r"row_bytes = 64 with the hopper mainloop"):
        TensorGemm(512, 512, 512, tile_m=128, tile_n=128, warps_m=4, warps_n=1,
                   mainloop="hopper", row_bytes=64)
    with pytest.raises(SimgpuError, match=r"row_bytes = 96 with the ampere mainloop"):
        TensorGemm(512, 512, 512, row_bytes=96)


def _explicit(spec, size, dtype, tile):
    """The analytical time of one library tile (tile_m, tile_n, threads, stages, row bytes)."""
    tm, tn, thr, st, row = tile
    e = {"fp16": 2, "bf16": 2, "tf32": 4}[dtype]
    return float(analytical.gemm(spec, size, size, size, dtype, tile_m=tm, tile_n=tn,
                                 tile_k=row // e, threads_per_block=thr, stages=st)
                 .iloc[0]["time_s"])


@pytest.mark.parametrize("dtype", ["fp16", "tf32"])
def test_library_search_takes_64_byte_rows_only_where_they_are_faster(dtype):
    """On the RTX 4090 (99 KiB of shared memory a block) at 8192^3 only small 128-byte tiles
    fit and the inputs do not fit in the L2: a 64-byte tile wins, and it is faster than every
    128-byte tile. On the A100 at 4096^3 the 64-byte twin of the chosen tile is no faster (in
    fp16 exactly as fast: the tie keeps the 128-byte tile). The H100 never takes 64-byte rows."""
    from simgpu.analytical.gemm import _LIBRARY_TENSOR_TILES
    e = {"fp16": 2, "tf32": 4}[dtype]
    ada = devices.get("rtx-4090")
    row = analytical.gemm(ada, 8192, 8192, 8192, dtype).iloc[0]
    assert int(row["tile_k"]) * e == 64
    best_128 = min(_explicit(ada, 8192, dtype, t) for t in _LIBRARY_TENSOR_TILES
                   if t[4] == 128)
    assert float(row["time_s"]) < best_128
    a100 = devices.get("a100-sxm-80gb")
    row = analytical.gemm(a100, 4096, 4096, 4096, dtype).iloc[0]
    assert int(row["tile_k"]) * e == 128
    twin = next(t for t in _LIBRARY_TENSOR_TILES if t[4] == 64 and t[:2] == (
        int(row["tile_m"]), int(row["tile_n"])))
    t_twin = _explicit(a100, 4096, dtype, twin)
    if dtype == "fp16":
        assert t_twin == pytest.approx(float(row["time_s"]))
    else:
        assert t_twin > float(row["time_s"])
    h100 = devices.get("h100-sxm")
    for size in (1024, 4096, 8192):
        assert int(analytical.gemm(h100, size, size, size, dtype).iloc[0]["tile_k"]) * e == 128


@pytest.mark.parametrize(("device", "size"), [("h100-sxm", 4096), ("rtx-4090", 8192)])
def test_analytical_and_simulated_views_describe_one_kernel(device, size):
    """The simulated kernel's tile is the analytical library search's, for each dtype (on the
    RTX 4090 at 8192^3, a tile with 64-byte rows)."""
    spec = devices.get(device)
    for dtype in ("tf32", "fp16", "bf16", "fp8"):
        if getattr(spec.compute, f"peak_{dtype}_tensor_TFLOPS") is None:
            continue
        kern, row = library_kernel(spec, size, size, size, dtype)
        ana = analytical.gemm(spec, size, size, size, dtype).iloc[0]
        assert (kern.tile_m, kern.tile_n, kern.tile_k, kern.stages) == (
            int(ana["tile_m"]), int(ana["tile_n"]), int(ana["tile_k"]), int(ana["stages"]))
        assert kern.launch().shared_bytes == int(ana["smem_per_block_B"])


@pytest.mark.parametrize(("M", "N", "tile_n", "swizzle", "panel"), [
    (8192, 8192, 128, 8, 8),  # 64 tile columns: panels of 8
    (1024, 5120, 256, 8, 8),  # 20 columns: the third panel half empty
    (512, 640, 128, 8, 4),  # 5 columns: CUTLASS narrows the panel to 4
    (512, 256, 128, 8, 2),  # 2 columns
    (512, 128, 128, 8, 1),  # 1 column: grid order along M
])
def test_swizzled_grid_computes_every_tile_once_panel_by_panel(M, N, tile_n, swizzle, panel):
    """CUTLASS 2's GemmIdentityThreadblockSwizzle<8>: grid (tile rows x P, columns / P), blocks
    walk down the tile rows P columns at a time; blocks past the last column exit."""
    from simgpu.workloads.tensor_gemm import swizzle_log
    g = TensorGemm(M, N, 256, dtype="fp16", tile_m=128, tile_n=tile_n, warps_m=2,
                   warps_n=tile_n // 32, swizzle=swizzle)
    gm, gn = M // 128, -(-N // tile_n)
    assert 1 << swizzle_log(gn, swizzle) == panel
    launch = g.launch()
    assert launch.grid == (gm * panel, -(-gn // panel), 1)
    tiles, empty = [], 0
    for i in range(launch.num_blocks):
        work = g.work(i)
        empty += not work
        tiles += [(by, bx) for bx, by, *_ in work]
    assert sorted(tiles) == [(m, n) for m in range(gm) for n in range(gn)]
    assert empty == launch.num_blocks - gm * gn
    # panel order: the first blocks take columns 0..P-1 of row 0, then of row 1, ...
    first = [(by, bx) for i in range(min(2 * panel, len(tiles))) for bx, by, *_ in g.work(i)]
    assert first == [(i // panel, i % panel) for i in range(len(first))]
    # a block with no tile is the prologue and its exit
    if empty:
        idle = next(i for i in range(launch.num_blocks) if not g.work(i))
        assert all(w[-1].opcode == "EXIT" and len(w) <= 5 for w in g.make_block(idle))


def test_swizzled_blocks_read_less_dram_when_b_outgrows_the_l2(a100):
    """Grid order reads B again for every wave's row of tiles once B outgrows the L2; the
    swizzled order keeps a panel's B in the L2 down the tile rows (A 64 KiB, B 256 KiB on an
    8-SM A100 with a 256 KiB L2: grid order reads B four times)."""
    small = dataclasses.replace(a100, compute=dataclasses.replace(a100.compute, sm_count=8),
                                l2=dataclasses.replace(a100.l2, size_MiB=0.25, slices=8))
    res = {}
    for sw in (0, 8):
        g = TensorGemm(512, 2048, 64, dtype="fp16", tile_m=128, tile_n=128, stages=3,
                       warps_m=2, warps_n=4, swizzle=sw)
        res[sw] = g.simulate(small, sample=False)
    assert res[0].bytes["dram"]["read"] == pytest.approx(4 * 2048 * 64 * 2 + 512 * 64 * 2,
                                                         rel=0.1)
    assert res[8].bytes["dram"]["read"] < 0.85 * res[0].bytes["dram"]["read"]
    assert res[8].flops == res[0].flops
    assert res[8].bytes["dram"]["write"] == res[0].bytes["dram"]["write"]


def test_library_kernels_take_cutlass_block_order_on_ampere_only(a100, h100):
    kern, _ = library_kernel(a100, 4096, 4096, 4096, "fp16")
    assert kern.swizzle == 8 and kern.launch().name.endswith("_swizzle8")
    kern, _ = library_kernel(h100, 4096, 4096, 4096, "fp16")
    assert kern.swizzle == 0
    with pytest.raises(SimgpuError, match="swizzle = 3"):
        TensorGemm(512, 512, 512, swizzle=3)
    with pytest.raises(SimgpuError, match="swizzle = 8"):
        TensorGemm(512, 512, 512, tile_m=128, tile_n=128, warps_m=2, warps_n=4, workers=4,
                   swizzle=8)


def test_library_search_breaks_a_tie_for_the_tile_that_reads_less_from_the_l2():
    """RTX 4090, 4096^3: 128 x 64 x 64 and 256 x 128 x 32 both sit on the tensor-core roof (equal
    times); the search takes the larger tile, which reads half the bytes from the L2. The
    A100's 64-byte twin ties with its 128-byte tile and reads the same: the 128-byte tile stays."""
    ada = devices.get("rtx-4090")
    small, large = (128, 64, 128, 4, 128), (256, 128, 256, 3, 64)  # _LIBRARY_TENSOR_TILES

    def l2_bytes(dtype, tile):
        tm, tn, thr, st, row = tile
        return float(analytical.gemm(ada, 4096, 4096, 4096, dtype, tile_m=tm, tile_n=tn,
                                     tile_k=row // {"fp16": 2, "tf32": 4}[dtype],
                                     threads_per_block=thr, stages=st).iloc[0]["l2_bytes"])

    for dtype in ("fp16", "tf32"):
        row = analytical.gemm(ada, 4096, 4096, 4096, dtype).iloc[0]
        assert (int(row["tile_m"]), int(row["tile_n"])) == (256, 128)
        assert int(row["tile_k"]) * {"fp16": 2, "tf32": 4}[dtype] == 64
        assert _explicit(ada, 4096, dtype, small) == pytest.approx(float(row["time_s"]),
                                                                   rel=1e-9)
        assert l2_bytes(dtype, large) < l2_bytes(dtype, small)
    a100 = devices.get("a100-sxm-80gb")
    row = analytical.gemm(a100, 4096, 4096, 4096, "fp16").iloc[0]
    assert (int(row["tile_m"]), int(row["tile_n"]), int(row["tile_k"])) == (256, 128, 64)


def test_sampling_counts_the_waves_of_blocks_with_work(a100):
    """A swizzled grid whose last panel is part empty (5 tile columns in panels of 4: 12 of 32
    blocks exit at once): the loop-trip sample extrapolates over the 20 blocks with work, and
    lands within 5% of the full replay (+0.7%; counting the empty blocks as waves put it 34%
    over)."""
    small = dataclasses.replace(a100, compute=dataclasses.replace(a100.compute, sm_count=8))
    g = TensorGemm(512, 640, 896, dtype="fp16", tile_m=128, tile_n=128, stages=3, warps_m=2,
                   warps_n=4, swizzle=8)
    assert g.launch().grid == (16, 2, 1) and g.idle_blocks() == 12 and g.idle_blocks(8) == 0
    full = g.simulate(small, sample=False)
    sampled = g.simulate(small)
    assert sampled.sampled
    assert sampled.cycles == pytest.approx(full.cycles, rel=0.05)
