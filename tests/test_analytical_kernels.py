"""Closed forms of the simple kernels, the roofline and the power model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simgpu import analytical, devices
from simgpu.analytical import power as pw
from simgpu.analytical.params import DeviceParams
from simgpu.errors import SimgpuError

H100 = devices.get("h100-sxm")
A100 = devices.get("a100-pcie-40gb")
#: an H100 file with energies per event: fitted to the power of calibration run 20261122T154403Z
#: (the published-figures file has none, as no energy per event is published)
H100_CAL = devices.get("h100-sxm-cal-20261122t154403z")


def test_roofline_is_the_max_of_the_roofs() -> None:
    peak = H100.compute.peak_fp16_tensor_TFLOPS * 1e12
    r = analytical.roofline(H100, [1e12, 1e9], [1e6, 1e10], "fp16")
    assert r.time_s.iloc[0] == pytest.approx(1e12 / peak)
    assert r.bound.iloc[0] == "compute"
    assert r.time_s.iloc[1] == pytest.approx(1e10 / 3350e9)
    assert r.bound.iloc[1] == "dram"
    # ridge point: intensity = peak / bandwidth
    ridge = peak / 3350e9
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
    # 8 MiB fits the near partition's 25 MiB share of the 50 MiB L2; 40 MiB only the whole L2
    pc = analytical.pointer_chase(H100, [16 * 1024, 8 * 2**20, 40 * 2**20, 2**30], 128)
    assert pc.level.tolist() == ["L1", "L2", "L2", "DRAM"]
    assert H100.l2.partitions == 2
    assert pc.latency_cycles.iloc[0] == H100.l1.hit_latency_cycles
    assert pc.latency_cycles.iloc[1] == pytest.approx(H100.l2.near_hit_latency_cycles)
    assert pc.latency_cycles.iloc[2] == pytest.approx(H100.l2.far_hit_latency_cycles)
    assert pc.latency_ns.iloc[3] == pytest.approx(H100.dram.unloaded_latency_ns)
    # stride 32 B: one miss then three L1 hits per 128-B line
    quarter = analytical.pointer_chase(H100, 2**30, 32).iloc[0]
    dram_cycles = H100.dram.unloaded_latency_ns * H100.clock_MHz / 1000
    assert quarter.latency_cycles == pytest.approx(
        (dram_cycles + 3 * H100.l1.hit_latency_cycles) / 4)


def test_pcie_copy_bandwidth_and_latency() -> None:
    big = analytical.pcie_copy(H100, 1e10, "h2d").iloc[0]
    # no measured rate in the published file: the line-coded rate less 24 B per 256-B TLP
    assert big.bandwidth_GBps == pytest.approx(
        H100.host_link.bandwidth_per_direction_GBps * 256 / 280, rel=1e-3)
    tiny = analytical.pcie_copy(H100, 8, "d2h").iloc[0]
    assert tiny.bound == "latency"
    assert tiny.time_s == pytest.approx(H100.host_link.latency_us * 1e-6, rel=1e-3)
    pageable = analytical.pcie_copy(H100, 1e10, "h2d", pinned=False).iloc[0]
    assert pageable.time_s > big.time_s


def test_naive_transpose_stores_take_an_l2_request_slot_each() -> None:
    # h100-sxm sets noc.slice_request_bytes to one line: each of the naive kernel's one-element
    # stores is a request of its own and holds a slice for 128 bytes, not for its 32-B sector
    p = DeviceParams.from_spec(H100)
    assert p.l2_request_bytes == 128
    bytes_only = dataclasses.replace(p, l2_request_bytes=0.0)
    overhead = p.launch_overhead_s + p.dram_latency_ns * 1e-9
    slots, plain = (analytical.transpose(q, 8192, "naive").iloc[0] for q in (p, bytes_only))
    assert slots.bound == plain.bound == "l2"
    assert slots.l2_bytes == plain.l2_bytes == pytest.approx(36 * 8192**2)
    # reads coalesce into whole lines (4 B per element); stores cost a slot, not 32 B
    assert (slots.time_s - overhead) / (plain.time_s - overhead) == pytest.approx(132 / 36)
    # whole-line requests (the tiled kernel) cost their bytes either way
    tiled = [analytical.transpose(q, 8192, "tiled").iloc[0].time_s for q in (p, bytes_only)]
    assert tiled[0] == tiled[1]


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
    # the calibrated H100 file has fitted energies: energy model; the published-figures files
    # have none: utilisation
    h = analytical.gemm(H100_CAL, 4096, 4096, 4096, "fp32").iloc[0]
    a = analytical.gemm(A100, 4096, 4096, 4096, "fp32").iloc[0]
    bare = analytical.gemm(H100, 4096, 4096, 4096, "fp32").iloc[0]
    assert h.power_model == "energy" and a.power_model == bare.power_model == "utilisation"
    for est, spec in ((h, H100_CAL), (a, A100)):
        assert spec.power.static_W <= est.power_W <= spec.power.tdp_W
        assert est.energy_J == pytest.approx(est.power_W * est.time_s)
    # energy model: P = static + sum(events x pJ) / t, unless capped at TDP
    p = DeviceParams.from_spec(H100_CAL)
    small = analytical.gemm(H100_CAL, 1024, 1024, 1024, "fp32").iloc[0]
    dyn = sum(small[f"ev_{n}"] * p.energy_pJ.get(n, 0.0) * 1e-12 for n in pw.EVENTS)
    assert small.power_W == pytest.approx(min(p.static_W + dyn / small.time_s, p.tdp_W))


def test_power_cap_lowers_the_clock_until_the_board_fits() -> None:
    p = DeviceParams.from_spec(H100_CAL)
    # dense fp16 on tensor cores needs more than 700 W at the boost clock (measured: 738-741 W
    # at 1363-1392 MHz, calibration run 20261122T154403Z)
    est = analytical.gemm(H100_CAL, 4096, 4096, 4096, "fp16").iloc[0]
    r = est.clock_MHz / p.clock_MHz
    assert 0.5 < r < 1.0
    assert est.bound == "power"
    assert est.power_W == pytest.approx(p.tdp_W, rel=1e-6)
    # at that clock the on-chip roofs stretch by 1/r and on-chip energies scale with r^2
    core = max(est.t_compute_s, est.t_shared_s, est.t_l2_s)
    assert est.time_s == pytest.approx(est.t_overhead_s + max(core / r, est.t_dram_s))
    on_chip = sum(est[f"ev_{n}"] * p.energy_pJ.get(n, 0.0) for n in pw.CORE_EVENTS) * 1e-12
    off_chip = est.ev_dram_byte * p.energy_pJ["dram_byte"] * 1e-12
    assert p.static_W + (on_chip * r * r + off_chip) / est.time_s == pytest.approx(p.tdp_W)
    # a small GEMM fits under the cap at the boost clock
    small = analytical.gemm(H100_CAL, 512, 512, 512, "fp16").iloc[0]
    assert small.clock_MHz == p.clock_MHz and small.bound != "power"


def test_capped_clock_ratio_matches_the_closed_form() -> None:
    p = DeviceParams.from_spec(H100_CAL)
    head = p.tdp_W - p.static_W
    t_core = np.array([1e-3, 1e-3, 1e-3])
    # on-chip energy only: power r^3 E / t_core = head  ->  r = (head t / E)^(1/3)
    joules = np.array([0.5 * head, 2.0 * head, 8.0 * head]) * 1e-3
    events = {"ffma_flop": joules / (p.energy_pJ["ffma_flop"] * 1e-12)}
    r = pw.capped_clock_ratio(p, events, t_core, np.zeros(3))
    assert r[0] == 1.0  # fits at the boost clock
    assert r[1] == pytest.approx((head * 1e-3 / joules[1]) ** (1 / 3), rel=1e-6)
    assert r[2] == pytest.approx(max((head * 1e-3 / joules[2]) ** (1 / 3), pw.MIN_CLOCK_RATIO),
                                 rel=1e-6)
    # DRAM-bound work whose DRAM energy alone fits: the clock drops until the on-chip part fits
    dram = {"ffma_flop": events["ffma_flop"][1:2], "dram_byte": np.array([1e9])}
    r2 = pw.capped_clock_ratio(p, dram, np.array([0.5e-3]), np.array([1e-3]))
    fixed = 1e9 * p.energy_pJ["dram_byte"] * 1e-12
    want = ((head * 1e-3 - fixed) / joules[1]) ** 0.5  # t stays 1 ms while t_core / r <= 1 ms
    assert r2[0] == pytest.approx(want, rel=1e-6)
    # scalars in, a scalar ratio out
    one = pw.capped_clock_ratio(p, {"ffma_flop": events["ffma_flop"][1]}, 1e-3, 0.0)
    assert np.shape(one) == () and float(one) == pytest.approx(r[1])


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
    # rows measured below the boost clock: on-chip energies scale with the clock ratio squared
    ratio = rng.uniform(0.6, 1.0, n)
    scale = {k: ratio**2 if k in pw.CORE_EVENTS else 1.0 for k in truth}
    power = p.static_W + sum(events[k] * truth[k] * scale[k] * 1e-12 for k in truth) / t
    fitted, _ = pw.fit_energies(p, events, t, power, clock_ratio=ratio)
    for k in truth:
        assert fitted[k] == pytest.approx(truth[k], rel=1e-6)
