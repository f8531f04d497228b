"""The analytical GEMM model against closed forms, published peaks and the measured H100 run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simgpu import analytical, devices
from simgpu.analytical.gemm import LIBRARY_SPLIT_K
from simgpu.analytical.params import DeviceParams
from simgpu.errors import SimgpuError

H100 = devices.get("h100-sxm")
ROOT = Path(__file__).resolve().parents[1]


def _measured_h100(dtype: str, size: int) -> float:
    """Fastest measured cuBLAS TFLOP/s for size^3 in the bundled H100 calibration runs."""
    frames = [pd.read_csv(p) for p in (ROOT / "calibration" / "h100-sxm").glob("*/gemm.csv")]
    df = pd.concat(frames)
    square = (df["M"] == size) & (df["N"] == size) & (df["K"] == size)
    rows = df[(df["kernel"] == "cublas") & (df["dtype"] == dtype) & square]
    assert len(rows), "the H100 calibration runs hold this point"
    return float(rows.tflops.max())


def test_4096_fp16_within_roofline_and_near_measured_cublas() -> None:
    est = analytical.gemm(H100, 4096, 4096, 4096, "fp16").iloc[0]
    peak = H100.compute.peak_fp16_tensor_TFLOPS
    assert est.tflops <= peak  # never above the tensor-core roof
    measured = _measured_h100("fp16", 4096)  # 739 TFLOP/s in run 20261122T154219Z
    # within 25% of what cuBLAS reached on the same GPU (the model: 688, power-capped)
    assert abs(est.tflops - measured) / measured < 0.25
    assert est.bound in ("compute", "l2", "power")


@pytest.mark.parametrize("dtype", ["fp32", "tf32", "bf16"])
def test_other_dtypes_below_their_peak(dtype: str) -> None:
    est = analytical.gemm(H100, 4096, 4096, 4096, dtype).iloc[0]
    p = DeviceParams.from_spec(H100)
    assert est.tflops <= p.peak_TFLOPS[dtype]
    measured = _measured_h100(dtype, 4096)
    assert 0.5 < est.tflops / measured < 1.5


def test_fp32_means_ffma_not_tensor_cores() -> None:
    est = analytical.gemm(H100, 8192, 8192, 8192, "fp32").iloc[0]
    assert not est.on_tensor_cores
    assert est.ev_ffma_flop > 0 and est.ev_tensor_tf32_flop == 0
    assert est.tflops <= H100.compute.peak_fp32_TFLOPS


def test_compulsory_traffic_when_operands_fit_in_l2() -> None:
    M, N, K = 1024, 768, 512  # 3.5 MiB of fp16 operands, far below 50 MiB
    est = analytical.gemm(H100, M, N, K, "fp16", tile_m=128, tile_n=128, tile_k=64,
                          threads_per_block=256, stages=3).iloc[0]
    assert est.dram_bytes == pytest.approx((M * K + K * N) * 2 + M * N * 2)
    # every block reads its A and B strips through L2: blocks x (tm + tn) x K x bytes + C
    blocks = np.ceil(M / 128) * np.ceil(N / 128)
    assert est.l2_bytes == pytest.approx(blocks * (128 + 128) * K * 2 + M * N * 2)


def test_larger_tiles_move_fewer_l2_bytes() -> None:
    tiles = [16, 32, 64, 128]
    est = analytical.gemm(H100, 4096, 4096, 4096, "fp32", kernel="sgemm_regblock",
                          tile_m=tiles, tile_n=tiles, tile_k=8, thread_tile_m=4,
                          thread_tile_n=4, threads_per_block=[16, 64, 256, 1024])
    assert np.all(np.diff(est.l2_bytes.to_numpy()) < 0)


def test_wave_quantisation_closed_form() -> None:
    w, tail = analytical.waves([132, 133, 264, 1], 1, 132)
    assert list(w) == [1, 2, 2, 1]
    assert tail[1] == pytest.approx(133 / 264)
    assert tail[3] == pytest.approx(1 / 132)


def test_per_sm_roofs_count_the_blocks_of_the_busiest_sm() -> None:
    # sgemm_regblock 64x64 fits 4 blocks per H100 SM (528 slots): 256, 512 and 1024 blocks are
    # one partial wave, one partial wave and two waves, but 2, 4 and 8 blocks on the busiest SM
    est = analytical.gemm(H100, [1024, 1024, 2048], [1024, 2048, 2048], 1024, "fp32",
                          kernel="sgemm_regblock")
    assert est.blocks.tolist() == [256, 512, 1024]
    assert est.blocks_per_sm.tolist() == [4, 4, 4]
    assert est.waves.tolist() == [1, 1, 2]
    for roof in ("t_shared_s", "t_compute_s"):
        t = est[roof].to_numpy()
        assert t[1] / t[0] == pytest.approx(2.0) and t[2] / t[0] == pytest.approx(4.0), roof
    # a grid that fills every SM's slots evenly is the same either way: 528 blocks = 1 wave
    full = analytical.gemm(H100, 1024, 64 * 33, 1024, "fp32", kernel="sgemm_regblock").iloc[0]
    assert full.blocks == 528 and full.waves == 1
    assert full.t_shared_s == pytest.approx(est.t_shared_s.iloc[1])


def test_occupancy_rules_of_the_cuda_calculator() -> None:
    occ = analytical.occupancy(H100, [256, 1024, 256, 128], [64, 32, 32, 32],
                               [0, 0, 100 * 1024, 0])
    # 65536 registers / (64 x 256) = 4 blocks; 64 warps / 32 = 2 blocks; 228 KiB / (100 + 1 KiB)
    # = 2 blocks; 128 threads x 32 regs: 16 blocks by warps, 32 by blocks -> 16
    assert occ.blocks_per_sm.tolist() == [4, 2, 2, 16]
    assert occ.limiter.tolist() == ["registers", "warps", "shared", "warps"]
    assert occ.occupancy.iloc[1] == 1.0
    bad = analytical.occupancy(H100, 2048, 32, 0)
    assert bad.blocks_per_sm.iloc[0] == 0 and bad.limiter.iloc[0] == "does not fit"


def test_vectorised_equals_pointwise() -> None:
    rng = np.random.default_rng(1)
    M, N, K = (rng.integers(64, 6000, 40) for _ in range(3))
    dtypes = rng.choice(["fp32", "tf32", "fp16", "bf16"], 40)
    grid = analytical.gemm(H100, M, N, K, dtypes)
    for i in range(0, 40, 7):
        one = analytical.gemm(H100, M[i], N[i], K[i], dtypes[i]).iloc[0]
        assert grid.time_s.iloc[i] == pytest.approx(one.time_s, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(64, 8192), st.integers(64, 8192), st.integers(64, 8192),
       st.sampled_from(["fp32", "fp16", "tf32"]))
def test_more_k_never_faster_and_never_above_peak(m: int, n: int, k: int, dtype: str) -> None:
    est = analytical.gemm(H100, m, n, [k, 2 * k], dtype)
    assert est.time_s.iloc[1] >= est.time_s.iloc[0] * (1 - 1e-9)
    assert np.all(est.tflops <= DeviceParams.from_spec(H100).peak_TFLOPS[dtype] * (1 + 1e-9))
    assert np.all(est.power_W <= H100.power.tdp_W + 1e-9)
    np.testing.assert_allclose(est.energy_J, est.power_W * est.time_s, rtol=1e-12)


def test_split_k_adds_blocks_and_partial_traffic() -> None:
    one, four = (analytical.gemm(H100, 256, 256, 65536, "fp32", kernel="sgemm_regblock",
                                 split_k=s).iloc[0] for s in (1, 4))
    assert four.blocks == 4 * one.blocks
    assert four.l2_bytes > one.l2_bytes
    assert four.time_s < one.time_s  # 16 blocks cannot fill 132 SMs; 64 fill more


def test_library_split_k_search_is_the_default_and_never_slower() -> None:
    # 768 x 256 has few output tiles for 132 SMs; a long K is worth splitting (cuBLAS does)
    M, N, K = [768, 320, 4096], [256, 2048, 4096], [1536, 2048, 4096]
    plain = analytical.gemm(H100, M, N, K, "fp32", library_split_k=False)
    searched = analytical.gemm(H100, M, N, K, "fp32")
    assert (plain["split_k"] == 1).all()
    assert np.all(searched["time_s"] <= plain["time_s"] * (1 + 1e-12))
    assert searched["split_k"].iloc[0] > 1
    # without the split, at most 48 output tiles leave most of the 132 SMs idle; spreading K
    # over them at least halves the compute roof (launch overhead is the same for both)
    assert searched["t_compute_s"].iloc[0] < 0.5 * plain["t_compute_s"].iloc[0]
    assert set(searched["split_k"]) <= set(LIBRARY_SPLIT_K)
    # a split the caller gives is kept
    given = analytical.gemm(H100, 768, 256, 1536, "fp32", split_k=2)
    assert given["split_k"].iloc[0] == 2


@pytest.mark.parametrize("bk", [4, 8, 16, 32])
def test_regblock_bank_conflicts_follow_its_index_arithmetic(bk: int) -> None:
    from simgpu.analytical.gemm import _regblock_wavefronts

    # 64 x 64 tile, 4 x 4 per thread, 256 threads. The transposed A store puts a warp's lanes
    # BM = 64 words apart along k: bk distinct words in each bank it touches, so every pass
    # costs bk wavefronts; the B store is 32 consecutive words, one wavefront.
    reads, stores = _regblock_wavefronts(64, 64, bk, 4, 4, 256)
    passes = 64 * bk // 256
    assert stores == passes * bk + passes * 1
    # A fragments: 2 rows per warp, one 128-bit word each (1 wavefront); B fragments: 16
    # consecutive float4 = 256 B (2 wavefronts)
    assert reads == 3


def test_regblock_conflicts_slow_only_our_kernel() -> None:
    tiles = dict(tile_m=64, tile_n=64, tile_k=16, thread_tile_m=4, thread_tile_n=4,
                 threads_per_block=256)
    ours = analytical.gemm(H100, 4096, 4096, 4096, "fp32", kernel="sgemm_regblock", **tiles)
    cutlass = analytical.gemm(H100, 4096, 4096, 4096, "fp32", kernel="cutlass", **tiles)
    assert ours.t_shared_s.iloc[0] > cutlass.t_shared_s.iloc[0]
    assert ours.bound.iloc[0] == "shared" and ours.time_s.iloc[0] > cutlass.time_s.iloc[0]


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(SimgpuError, match="dtype"):
        analytical.gemm(H100, 10, 10, 10, "int4")
    with pytest.raises(SimgpuError, match="kernel"):
        analytical.gemm(H100, 10, 10, 10, "fp32", kernel="magic")
    with pytest.raises(SimgpuError, match="M"):
        analytical.gemm(H100, 0, 10, 10, "fp32")


def test_launch_bound_small_gemm() -> None:
    est = analytical.gemm(H100, 64, 64, 64, "fp16").iloc[0]
    assert est.bound == "launch"
    p = DeviceParams.from_spec(H100)
    assert est.time_s == pytest.approx(
        p.launch_overhead_s + p.dram_latency_ns * 1e-9 + max(
            est.t_compute_s, est.t_shared_s, est.t_l2_s, est.t_dram_s, est.t_power_s))


def test_ffma_issue_rule_per_sub_core() -> None:
    from dataclasses import replace

    from simgpu.analytical.gemm import ffma_issue_efficiency

    h100 = DeviceParams.from_spec(devices.get("h100-sxm"))  # 128 lanes, 4 sub-cores: 32 each
    a100 = DeviceParams.from_spec(devices.get("a100-sxm-80gb"))  # 64 lanes: 16 each
    assert h100.dispatch_per_scheduler == 1 and a100.schedulers_per_sm == 4
    f, x = np.array([64.0, 1.0]), np.array([6.0, 2.0])
    # 32 lanes per sub-core: every other instruction takes an FFMA's issue slot
    assert np.allclose(ffma_issue_efficiency(h100, f, x), f / (f + x))
    # 16 lanes: an FFMA holds the lanes two cycles and the others issue in between, up to one
    # other per FFMA
    assert np.allclose(ffma_issue_efficiency(a100, f, x), [1.0, 2.0 / 3.0])
    # two dispatch units (Pascal): FFMA and another instruction in the same cycle
    pascal = replace(h100, dispatch_per_scheduler=2)
    assert np.allclose(ffma_issue_efficiency(pascal, f, x), [1.0, 2.0 / 3.0])


def test_library_simt_gemm_pays_its_issue_slots_and_tensor_cores_do_not() -> None:
    spec = devices.get("h100-sxm")
    big = analytical.gemm(spec, 8192, 8192, 8192, ["fp32", "fp16"])
    fp32, fp16 = big.iloc[0], big.iloc[1]
    peak = DeviceParams.from_spec(spec).peak_flops("fp32") / 1e12
    # 8 x 8 thread tile: 64 FFMAs per k step against 4 fragment loads and the tile's share of
    # staging: under 94% of the FFMA peak, above 85%
    assert 0.85 * peak < fp32["tflops"] < 0.94 * peak
    a100 = analytical.gemm(devices.get("a100-sxm-80gb"), 8192, 8192, 8192, "fp32").iloc[0]
    a_par = DeviceParams.from_spec(devices.get("a100-sxm-80gb"))
    # 16 lanes per sub-core: the FFMA peak at the clock the power cap leaves, bar the overheads
    at_clock = a_par.peak_flops("fp32") / 1e12 * a100["clock_MHz"] / a_par.clock_MHz
    assert a100["tflops"] > 0.97 * at_clock
    assert fp16["on_tensor_cores"] and fp16["t_compute_s"] == pytest.approx(
        2.0 * 8192**3 / DeviceParams.from_spec(spec).peak_flops("fp16"), rel=0.05)
