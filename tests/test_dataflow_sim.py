"""Dataflow (systolic array) model: fold formulas, bandwidth limits, traffic, energy, CLI entry."""

from __future__ import annotations

import dataclasses
import math

import pytest

from simgpu import devices
from simgpu.devices.dataflow import DataflowSpec
from simgpu.errors import SimgpuError
from simgpu.sim import hbm
from simgpu.sim.dataflow import (
    BackingStore,
    backing_store,
    fold_plan,
    simulate_gemm,
    simulate_workload,
    stream_bandwidth_GBps,
)

SHAPES = [(1, 1, 1), (7, 5, 3), (32, 32, 32), (33, 65, 17), (256, 128, 512), (1000, 10, 300)]
AMPLE = BackingStore(bytes_per_cycle=1e15, latency_cycles=0.0, source="test: ample")


@pytest.fixture(scope="module")
def small() -> DataflowSpec:
    spec = devices.get_device("systolic-32x32")
    assert isinstance(spec, DataflowSpec)
    return spec


@pytest.fixture(scope="module")
def big() -> DataflowSpec:
    spec = devices.get_device("systolic-128x128")
    assert isinstance(spec, DataflowSpec)
    return spec


def closed_form(R: int, C: int, M: int, N: int, K: int, df: str) -> int:
    """Folds x (fill + stream + drain) as written out independently of the module."""
    if df == "os":
        return math.ceil(M / R) * math.ceil(N / C) * (K + R + C - 2)
    if df == "ws":
        return math.ceil(K / R) * math.ceil(N / C) * (2 * R + C + M - 2)
    return math.ceil(K / R) * math.ceil(M / C) * (2 * R + C + N - 2)


@pytest.mark.parametrize("df", ["os", "ws", "is"])
@pytest.mark.parametrize("shape", SHAPES)
def test_ample_bandwidth_gives_the_fold_formula(small: DataflowSpec, shape, df: str) -> None:
    M, N, K = shape
    result = simulate_gemm(small, M, N, K, df, backing=AMPLE)
    expected = closed_form(32, 32, M, N, K, df)
    assert result.compute_cycles == expected
    assert result.cycles == pytest.approx(expected, rel=1e-9)
    assert result.stall_cycles == pytest.approx(0.0, abs=1e-6)
    assert result.utilization == pytest.approx(M * N * K / (1024 * expected))


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_starved_bandwidth_rises_to_bytes_over_bandwidth(big: DataflowSpec, df: str) -> None:
    bw = 0.5  # bytes per cycle: far below what the array consumes
    starved = BackingStore(bytes_per_cycle=bw, latency_cycles=0.0, source="test: starved")
    result = simulate_gemm(big, 512, 512, 512, df, backing=starved)
    bound = (result.dram_read_bytes + result.dram_write_bytes) / bw
    assert bound > 10 * result.compute_cycles
    assert result.cycles >= bound - 1e-6
    # the only work not hidden under the transfers is one fold's compute
    assert result.cycles <= bound + result.cycles_per_fold + 1e-6
    assert result.bound == "memory" and result.stall_cycles > 0


def test_traffic_is_compulsory_when_everything_fits(big: DataflowSpec) -> None:
    M, N, K = 256, 256, 256  # 128 KiB per operand in bf16, far below the buffers
    for df in ("os", "ws", "is"):
        r = simulate_gemm(big, M, N, K, df)
        assert r.dram_read_bytes == 2 * (M * K + K * N)
        assert r.dram_write_bytes == 2 * M * N
        assert r.energy_J == pytest.approx(
            r.energy_mac_J + r.energy_sram_J + r.energy_dram_J + r.energy_static_J
        )
        assert r.energy_mac_J == pytest.approx(M * N * K * big.energy.mac_pJ * 1e-12)


def test_small_buffers_refetch_the_streamed_operand(small: DataflowSpec) -> None:
    # OS: A (M x K) is re-read for every column fold once it no longer fits the ifmap half
    tiny = dataclasses.replace(small, sram=dataclasses.replace(small.sram, ifmap_KiB=1.0))
    M, N, K = 256, 256, 256
    fits = simulate_gemm(small, M, N, K, "os")
    refetch = simulate_gemm(tiny, M, N, K, "os")
    assert fits.dram_read_bytes == M * K + K * N
    assert refetch.dram_read_bytes == M * K * math.ceil(N / 32) + K * N


def test_double_buffering_hides_transfers(small: DataflowSpec) -> None:
    single = dataclasses.replace(small, sram=dataclasses.replace(small.sram, double_buffered=False))
    a = simulate_gemm(small, 512, 512, 512, "os")
    b = simulate_gemm(single, 512, 512, 512, "os")
    assert a.compute_cycles == b.compute_cycles
    assert b.cycles > a.cycles


def test_backing_store_comes_from_the_hbm_model(big: DataflowSpec) -> None:
    store = backing_store(big)
    gbps = hbm.refresh_limited_bandwidth_GBps(big.dram)
    assert gbps < big.dram.peak_bandwidth_GBps
    assert store.bytes_per_cycle == pytest.approx(gbps * 1e3 / big.array.clock_MHz)


def test_fold_plan_rejects_bad_input() -> None:
    with pytest.raises(SimgpuError, match="dataflow"):
        fold_plan(4, 4, 8, 8, 8, "rs")
    with pytest.raises(SimgpuError, match="K = 0"):
        fold_plan(4, 4, 8, 8, 0, "os")


def test_simulate_workload_entry(small: DataflowSpec) -> None:
    out = simulate_workload(small, "gemm", {"m": 64, "n": 64, "k": 64, "dataflow": "ws"})
    for key in ("cycles", "time_s", "utilization"):
        assert key in out
    assert out["dataflow"] == "ws"
    assert out["time_s"] == pytest.approx(out["cycles"] / 1e9)
    gemv = simulate_workload(small, "gemv", {"m": 64, "k": 64})
    assert gemv["N"] == 1
    with pytest.raises(SimgpuError, match="m"):
        simulate_workload(small, "gemm", {"n": 4, "k": 4})
    with pytest.raises(SimgpuError, match="conv"):
        simulate_workload(small, "conv", {})


def test_des_stream_bandwidth_sits_below_the_refresh_limited_peak(big: DataflowSpec) -> None:
    """The discrete-event HBM controller sustains less than the closed-form peak, and (as real
    memory systems do, published/dram_timings.md: 70-90% of theoretical) not far less."""
    des = stream_bandwidth_GBps(big.dram)
    closed = hbm.refresh_limited_bandwidth_GBps(big.dram)
    assert 0.6 * closed <= des <= closed * 1.001
    slow = backing_store(big, "des")
    fast = backing_store(big, "closed")
    assert slow.bytes_per_cycle == pytest.approx(des * 1e3 / big.array.clock_MHz)
    assert slow.bytes_per_cycle <= fast.bytes_per_cycle
    r_des = simulate_gemm(big, 2048, 2048, 2048, "os", backing="des")
    r_closed = simulate_gemm(big, 2048, 2048, 2048, "os", backing="closed")
    assert r_des.cycles >= r_closed.cycles
    with pytest.raises(SimgpuError, match="method"):
        backing_store(big, "magic")
