"""PIM model: command timing, the GEMV mapper, closed-form bounds, energy, host process."""

from __future__ import annotations

import dataclasses
import math

import pytest
import simpy

from simgpu import devices
from simgpu.devices.pim import PimSpec
from simgpu.errors import SimgpuError
from simgpu.sim.pim import (
    ACTAB,
    MAC,
    MODE,
    PREAB,
    RDOUT,
    WRIN,
    PimDevice,
    map_gemv,
    pim_timing_table,
    schedule,
    simulate_gemv,
    simulate_workload,
)


@pytest.fixture(scope="module", params=["hbm-pim", "aim"])
def spec(request: pytest.FixtureRequest) -> PimSpec:
    device = devices.get_device(request.param)
    assert isinstance(device, PimSpec)
    return device


def reference_schedule(spec: PimSpec, commands: list[str]) -> float:
    """Place commands one at a time: every constraint against the latest earlier command of
    each kind, one command per tCK (an independent re-statement of the timing rules)."""
    t = spec.dram.timing
    table = pim_timing_table(spec)
    last: dict[str, float] = {}
    bus = -1.0
    for command in commands:
        if command == MODE:
            start = bus + 1
            last[MODE] = start + spec.pim.mode_switch_tCK / 2
            bus = last[MODE]
            continue
        start = bus + 1
        for c in table:
            if c.following == command and c.preceding in last:
                start = max(start, last[c.preceding] + c.tck)
        last[command] = start
        bus = start
    end = bus + 1
    if RDOUT in last:
        end = max(end, last[RDOUT] + t.tCL + t.tBL)
    return end


@pytest.mark.parametrize("shape", [(64, 64), (300, 200), (1024, 1000), (2048, 2048)])
def test_group_schedule_equals_command_by_command(spec: PimSpec, shape: tuple[int, int]) -> None:
    M, K = shape
    for order in ("rows", "chunks"):
        stream = map_gemv(spec, M, K, order=order)
        fast = schedule(spec, stream, refresh=False).end_tck
        slow = reference_schedule(spec, list(stream.expand()))
        assert fast == pytest.approx(slow, abs=1e-9)


def test_mac_spacing_bound_when_nothing_else_binds(spec: PimSpec) -> None:
    """Stretch the MAC spacing until the other constraints hide under it: the time is the
    MAC count x spacing plus at most the row-boundary and I/O commands' own time."""
    s = 200
    slow = dataclasses.replace(spec, pim=dataclasses.replace(spec.pim, mac_interval_tCK=s))
    t = spec.dram.timing
    M, K = 4096, 1024
    stream = map_gemv(slow, M, K)
    sched = schedule(slow, stream, refresh=False)
    n = sched.counts
    bound = (n[MAC] - 1) * s  # first MAC to last MAC
    per_act = t.tRCD + t.tRTP + t.tRP + 2  # ACT..first MAC, last MAC..PRE..next ACT
    io = n[WRIN] * spec.pim.input_write_interval_tCK + n[RDOUT] * spec.pim.readout_interval_tCK
    slack = n[ACTAB] * per_act + io + spec.pim.mode_switch_tCK + 4 * (t.tCL + t.tBL) + 8
    # with the spacing above tRTP + tRP + tRCD, row boundaries and input loads hide under it:
    # first MAC to last MAC is exactly the command count x spacing
    assert sched.last_tck[MAC] - sched.first_tck[MAC] == bound
    assert bound <= sched.end_tck <= bound + slack
    assert sched.end_tck == pytest.approx(bound, rel=0.05)
    # each MAC group of g commands spans (g - 1) x s + 1 tCK
    groups = sum(1 for command, _ in stream.groups if command == MAC)
    assert sched.mac_phase_tck == n[MAC] * s - groups * (s - 1)


def test_row_cycle_closed_form(spec: PimSpec) -> None:
    """Two row cycles with input already loaded: ACT-to-ACT is the larger of tRC and
    tRCD + (n - 1) x spacing + tRTP + tRP."""
    t, p = spec.dram.timing, spec.pim
    cols = p.banks_per_unit * spec.dram.row_bytes // p.column_bytes
    stream = map_gemv(spec, 1, 1)  # build a stream object, then replace its groups
    stream.groups = [(ACTAB, 1), (MAC, cols), (PREAB, 1), (ACTAB, 1), (MAC, cols), (PREAB, 1)]
    sched = schedule(spec, stream, refresh=False)
    cycle = max(t.tRC, t.tRCD + (cols - 1) * p.mac_interval_tCK + t.tRTP + t.tRP)
    assert sched.first_tck[ACTAB] == 0
    assert sched.last_tck[ACTAB] == cycle
    assert sched.last_tck[PREAB] == cycle + max(
        t.tRAS, t.tRCD + (cols - 1) * p.mac_interval_tCK + t.tRTP
    )


def test_every_weight_is_read_once(spec: PimSpec) -> None:
    p = spec.pim
    for M, K in [(1000, 3000), (4096, 4096), (7, 5), (64, 8192)]:
        r = simulate_gemv(spec, M, K)
        stream = map_gemv(spec, M, K)
        assert r.k_split == stream.k_split
        rows = spec.units // stream.k_split * stream.rows_per_unit
        k_slice = math.ceil(K / stream.k_split)
        chunk = p.input_buffer_bytes // p.element_bytes
        cols = sum(
            math.ceil(min(chunk, k_slice - c * chunk) * p.element_bytes / p.column_bytes)
            for c in range(stream.chunks)
        )
        assert r.internal_bytes == rows * cols * p.column_bytes * stream.k_split
        assert r.internal_bytes >= M * K * p.element_bytes
        assert r.time_s >= r.mac_bound_s


def test_k_split_helps_short_wide_matrices(spec: PimSpec) -> None:
    M, K = 64, 16384  # far fewer rows than units: most of every open row would go unused
    one = schedule(spec, map_gemv(spec, M, K, k_split=1), refresh=False).end_tck
    best = map_gemv(spec, M, K)
    assert best.k_split > 1
    assert schedule(spec, best, refresh=False).end_tck < one
    with pytest.raises(SimgpuError, match="divisor"):
        map_gemv(spec, M, K, k_split=3)


def test_refresh_costs_time_in_long_kernels(spec: PimSpec) -> None:
    stream = map_gemv(spec, 8192, 4096)
    on = schedule(spec, stream, refresh=True)
    off = schedule(spec, stream, refresh=False)
    t = spec.dram.timing
    assert on.refreshes >= math.floor(off.end_tck / t.tREFI) - 1
    assert on.end_tck >= off.end_tck + on.refreshes * t.tRFC * 0.9


def test_more_devices_split_the_rows(spec: PimSpec) -> None:
    one = simulate_gemv(spec, 16384, 2048)
    four = simulate_gemv(spec, 16384, 2048, devices=4)
    assert four.units == 4 * one.units
    assert four.time_s < one.time_s / 3
    assert four.internal_bytes == pytest.approx(one.internal_bytes, rel=0.01)


def test_energy_adds_up(spec: PimSpec) -> None:
    r = simulate_gemv(spec, 4096, 4096)
    parts = (
        r.energy_act_J + r.energy_mac_J + r.energy_io_J + r.energy_refresh_J + r.energy_background_J
    )
    assert r.energy_J == pytest.approx(parts)
    stream = map_gemv(spec, 4096, 4096)
    acts = stream.counts()[ACTAB] * stream.channels * spec.banks_per_channel
    assert r.energy_act_J == pytest.approx(acts * spec.energy.act_per_bank_pJ * 1e-12)
    # reading the same weights out through the interface costs the I/O energy PIM avoids
    io_avoided = r.weight_bytes * 8 * spec.energy.io_pJ_per_bit * 1e-12
    assert r.energy_io_J < io_avoided / 10


def test_host_process_in_simpy(spec: PimSpec) -> None:
    env = simpy.Environment()
    device = PimDevice(env, spec, clock_MHz=1980.0)
    proc = device.gemv(2048, 1024)
    env.run()
    result = proc.value
    assert result == simulate_gemv(spec, 2048, 1024)
    assert env.now == pytest.approx(result.time_s * 1980e6)
    # the same device answers ordinary (single-bank) reads through the HBM model
    done = device.memory.request(0, 64)
    env.run()
    assert done.processed


def test_simulate_workload_and_errors(spec: PimSpec) -> None:
    out = simulate_workload(spec, "gemv", {"m": 512, "k": 256})
    for key in ("cycles", "time_s", "utilization"):
        assert key in out
    gemm = simulate_workload(spec, "gemm", {"m": 512, "n": 3, "k": 256})
    assert gemm["time_s"] == pytest.approx(3 * out["time_s"])
    with pytest.raises(SimgpuError, match="k"):
        simulate_workload(spec, "gemv", {"m": 4})
    with pytest.raises(SimgpuError, match="conv"):
        simulate_workload(spec, "conv", {"m": 4, "k": 4})
    with pytest.raises(SimgpuError, match="order"):
        map_gemv(spec, 4, 4, order="diagonal")
