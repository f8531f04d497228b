"""PCIe host link: closed-form copy times, pinned vs pageable, copy-engine overlap."""

from __future__ import annotations

import dataclasses

import pytest
import simpy

from simgpu import devices
from simgpu.errors import SimgpuError
from simgpu.sim.pcie import STAGING_CHUNK_BYTES, TLP_EFFICIENCY, HostLink, link_bandwidth_GBps

MB = 1 << 20


def run_copies(spec, *copies, **kw):
    env = simpy.Environment()
    link = HostLink(env, spec.host_link, spec.clock_MHz, **kw)
    procs = [link.copy(n, d, p) for n, d, p in copies]
    env.run()
    return link, [p.value for p in procs]


def test_pinned_copy_time_is_latency_plus_size_over_bandwidth():
    spec = devices.get("h100-sxm")
    _, (r,) = run_copies(spec, (64 * MB, "h2d", True))
    bw = spec.host_link.bandwidth_per_direction_GBps * TLP_EFFICIENCY
    expected = spec.host_link.latency_us * 1e-6 + 64 * MB / (bw * 1e9)
    assert r.seconds == pytest.approx(expected, rel=1e-9)
    assert link_bandwidth_GBps(spec.host_link, "h2d") == pytest.approx(bw)


def test_measured_bandwidth_is_used_when_the_device_file_has_it():
    spec = devices.get("a100-pcie-40gb")
    assert spec.host_link.measured_h2d_GBps is not None
    _, (r,) = run_copies(spec, (1024 * MB, "h2d", True))
    assert r.bandwidth_GBps == pytest.approx(spec.host_link.measured_h2d_GBps, rel=0.01)


@pytest.mark.parametrize("direction", ["h2d", "d2h"])
def test_pageable_copies_pay_the_staging_copy_in_series(direction):
    spec = devices.get("h100-sxm")
    n = 32 * STAGING_CHUNK_BYTES
    _, (pinned,) = run_copies(spec, (n, direction, True))
    _, (pageable,) = run_copies(spec, (n, direction, False))
    bw = link_bandwidth_GBps(spec.host_link, direction) * 1e9
    lat = spec.host_link.latency_us * 1e-6
    assert pinned.seconds == pytest.approx(lat + n / bw, rel=1e-9)
    # staging at the same rate as the link, in series: twice the transfer time
    assert pageable.seconds == pytest.approx(lat + 2 * n / bw, rel=1e-9)
    assert 0.4 <= pageable.bandwidth_GBps / pinned.bandwidth_GBps <= 0.6  # published 40-60%


def test_opposite_directions_overlap_with_two_engines_and_serialise_with_one():
    spec = devices.get("h100-sxm")
    assert spec.host_link.copy_engines >= 2
    _, (a, b) = run_copies(spec, (256 * MB, "h2d", True), (256 * MB, "d2h", True))
    _, (single,) = run_copies(spec, (256 * MB, "h2d", True))
    assert max(a.t_end, b.t_end) == pytest.approx(single.t_end, rel=1e-9)
    one = dataclasses.replace(spec, host_link=dataclasses.replace(spec.host_link, copy_engines=1))
    _, (c, d) = run_copies(one, (256 * MB, "h2d", True), (256 * MB, "d2h", True))
    assert max(c.t_end, d.t_end) == pytest.approx(2 * single.t_end, rel=1e-9)


def test_same_direction_copies_share_the_link():
    spec = devices.get("h100-sxm")
    _, (single,) = run_copies(spec, (256 * MB, "h2d", True))
    _, (a, b) = run_copies(spec, (256 * MB, "h2d", True), (256 * MB, "h2d", True))
    lat = spec.host_link.latency_us * 1e-6 * spec.clock_MHz * 1e6
    assert max(a.t_end, b.t_end) == pytest.approx(lat + 2 * (single.t_end - lat), rel=1e-9)


def test_bad_copies_are_rejected():
    spec = devices.get("h100-sxm")
    env = simpy.Environment()
    link = HostLink(env, spec.host_link, spec.clock_MHz)
    with pytest.raises(SimgpuError, match="direction"):
        link.copy(1024, "h2h")
    with pytest.raises(SimgpuError, match="nbytes"):
        link.copy(0, "h2d")
