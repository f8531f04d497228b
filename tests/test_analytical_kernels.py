"""Closed forms of the simple kernels, the roofline and the power model."""

from __future__ import annotations

import numpy as np
import pytest

from simgpu import analytical, devices
from simgpu.analytical import power as pw
from simgpu.analytical.params import DeviceParams
from simgpu.errors import SimgpuError

H100 = devices.get("h100-sxm")
A100 = devices.get("a100-pcie-40gb")


def test_roofline_is_the_max_of_the_roofs() -> None:
    r = analytical.roofline(H100, [1e12, 1e9], [1e6, 1e10], "fp16")
    assert r.time_s.iloc[0] == pytest.approx(1e12 / 989.4e12)
    assert r.bound.iloc[0] == "compute"
    assert r.time_s.iloc[1] == pytest.approx(1e10 / 3350e9)
    assert r.bound.iloc[1] == "dram"
    # ridge point: intensity = peak / bandwidth
    ridge = 989.4e12 / 3350e9
    at = analytical.roofline(H100, ridge * 1e9, 1e9, "fp16").iloc[0]
    assert at.t_compute_s == pytest.approx(at.t_dram_s)


def test_stream_approaches_dram_peak() -> None:
    big = analytical.stream(H100, "triad", 4e8).iloc[0]
    assert big.level == "DRAM" and big.bound == "dram"
    p = DeviceParams.from_spec(H100)
    expected = 3 * 4 * 4e8 / (3350e9) + p.launch_overhead_s + p.dram_latency_ns * 1e-9
    assert big.time_s == pytest.approx(expected)
    assert 0.95 * 3350 < big.bandwidth_GBps < 3350
    small = analytical.stream(H100, "copy", 1e6).iloc[0]
    assert small.level == "L2"
    with pytest.raises(SimgpuError, match="op"):
        analytical.stream(H100, "gather", 10)


def test_pointer_chase_levels_and_latencies() -> None:
    pc = analytical.pointer_chase(H100, [16 * 1024, 8 * 2**20, 2**30], 128)
    assert pc.level.tolist() == ["L1", "L2", "DRAM"]
    assert pc.latency_cycles.iloc[0] == H100.l1.hit_latency_cycles
    mean_l2 = (H100.l2.near_hit_latency_cycles + H100.l2.far_hit_latency_cycles) / 2
    assert pc.latency_cycles.iloc[1] == pytest.approx(mean_l2)
    assert pc.latency_ns.iloc[2] == pytest.approx(H100.dram.unloaded_latency_ns)
    # stride 32 B: one miss then three L1 hits per 128-B line
    quarter = analytical.pointer_chase(H100, 2**30, 32).iloc[0]
    dram_cycles = H100.dram.unloaded_latency_ns * H100.clock_MHz / 1000
    assert quarter.latency_cycles == pytest.approx(
        (dram_cycles + 3 * H100.l1.hit_latency_cycles) / 4)


def test_pcie_copy_bandwidth_and_latency() -> None:
    big = analytical.pcie_copy(H100, 1e10, "h2d").iloc[0]
    assert big.bandwidth_GBps == pytest.approx(H100.host_link.bandwidth_per_direction_GBps,
                                               rel=1e-3)
    tiny = analytical.pcie_copy(H100, 8, "d2h").iloc[0]
    assert tiny.bound == "latency"
    assert tiny.time_s == pytest.approx(H100.host_link.latency_us * 1e-6, rel=1e-3)
    pageable = analytical.pcie_copy(H100, 1e10, "h2d", pinned=False).iloc[0]
    assert pageable.time_s > big.time_s


def test_transpose_naive_moves_more_through_l2() -> None:
    naive, tiled = (analytical.transpose(H100, 8192, v).iloc[0] for v in ("naive", "tiled"))
    assert naive.l2_bytes == pytest.approx(36 * 8192**2)
    assert tiled.l2_bytes == pytest.approx(8 * 8192**2)
    assert naive.time_s > tiled.time_s


def test_gemv_and_reduction_are_memory_bound() -> None:
    g = analytical.gemv(H100, 16384, 16384).iloc[0]
    assert g.bound == "dram"
    assert g.bytes_moved == 4 * (16384 * 16384 + 2 * 16384)
    r = analytical.reduction(H100, 2**28).iloc[0]
    assert r.bound == "dram" and r.bytes_moved == 4 * 2**28


def test_power_model_energy_and_fallback() -> None:
    # the H100 file has fitted energies: energy model; the A100 file has none: utilisation
    h = analytical.gemm(H100, 4096, 4096, 4096, "fp32").iloc[0]
    a = analytical.gemm(A100, 4096, 4096, 4096, "fp32").iloc[0]
    assert h.power_model == "energy" and a.power_model == "utilisation"
    for est, spec in ((h, H100), (a, A100)):
        assert spec.power.static_W <= est.power_W <= spec.power.tdp_W
        assert est.energy_J == pytest.approx(est.power_W * est.time_s)
    # energy model: P = static + sum(events x pJ) / t, unless capped at TDP
    p = DeviceParams.from_spec(H100)
    small = analytical.gemm(H100, 1024, 1024, 1024, "fp32").iloc[0]
    dyn = sum(small[f"ev_{n}"] * p.energy_pJ.get(n, 0.0) * 1e-12 for n in pw.EVENTS)
    assert small.power_W == pytest.approx(min(p.static_W + dyn / small.time_s, p.tdp_W))


def test_power_cap_is_a_roof() -> None:
    p = DeviceParams.from_spec(H100)
    est = analytical.gemm(H100, 8192, 8192, 8192, "fp32").iloc[0]
    dyn = sum(est[f"ev_{n}"] * p.energy_pJ.get(n, 0.0) * 1e-12 for n in pw.EVENTS)
    assert est.t_power_s == pytest.approx(dyn / (p.tdp_W - p.static_W))
    assert est.time_s >= est.t_power_s


def test_nnls_fit_recovers_known_energies() -> None:
    p = DeviceParams.from_spec(A100)
    rng = np.random.default_rng(0)
    n = 50
    events = {"ffma_flop": rng.uniform(1e9, 1e11, n), "l2_byte": rng.uniform(1e7, 1e10, n),
              "dram_byte": rng.uniform(1e6, 1e10, n)}
    truth = {"ffma_flop": 5.0, "l2_byte": 12.0, "dram_byte": 40.0}
    t = rng.uniform(1e-3, 1e-2, n)
    power = p.static_W + sum(events[k] * truth[k] * 1e-12 for k in truth) / t
    fitted, info = pw.fit_energies(p, events, t, power)
    for k in truth:
        assert fitted[k] == pytest.approx(truth[k], rel=1e-6)
    assert info["r2"] == pytest.approx(1.0)
