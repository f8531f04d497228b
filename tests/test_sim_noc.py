"""The crossbar's slice ports: requests that occupy a line slot, and exact deep backlogs."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import simpy

from simgpu import devices
from simgpu.devices import loads_device
from simgpu.errors import DeviceFileError
from simgpu.sim import MemRequest, build_system
from simgpu.sim.cache import WindowPort


def _stores_to_one_slice(spec, n: int, sectors: int) -> tuple[float, float]:
    """``n`` stores of ``sectors`` (a mask) into one line, all made at cycle 0 by SMs of one
    partition: (last completion, the slice port's busy cycles)."""
    env = simpy.Environment()
    system = build_system(env, spec, rng=random.Random(0))
    done: list[float] = []
    for i in range(n):
        req = MemRequest(sm=i % 8, line_addr=1 << 20, sectors=sectors, write=True,
                         space="global", cache_op="cg")
        system.submit(req, lambda r: done.append(r.t_done))
    busy = system.xbar.busy_cycles()
    return max(done), busy


def test_a_one_sector_request_takes_a_whole_line_slot_of_its_slice():
    spec = devices.get("h100-sxm")
    assert spec.noc.slice_request_bytes == spec.l2.line_bytes
    bw = spec.noc.bandwidth_bytes_per_cycle_per_slice
    n = 400
    t_slot, busy_slot = _stores_to_one_slice(spec, n, 0b0001)
    bytes_only = replace(spec, noc=replace(spec.noc, slice_request_bytes=None))
    t_bytes, busy_bytes = _stores_to_one_slice(bytes_only, n, 0b0001)
    # every store books the same slice: n slots of line_bytes / bw cycles, against n x 32 B
    assert busy_slot == pytest.approx(n * spec.l2.line_bytes / bw)
    assert busy_bytes == pytest.approx(n * spec.l1.sector_bytes / bw)
    # the last store completes one backlog later: 4x later with the slot (128 B / 32 B)
    fixed = spec.noc.latency_cycles * 2  # L1 -> slice, and the acknowledgement back
    assert t_slot - fixed == pytest.approx(n * 128 / bw, rel=0.05, abs=16)
    assert t_bytes - fixed == pytest.approx(n * 32 / bw, rel=0.05, abs=16)


def test_a_full_line_request_costs_the_same_with_or_without_the_slot():
    spec = devices.get("h100-sxm")
    bytes_only = replace(spec, noc=replace(spec.noc, slice_request_bytes=None))
    full = 0b1111
    assert _stores_to_one_slice(spec, 200, full) == _stores_to_one_slice(bytes_only, 200, full)


def test_slice_port_stays_exact_behind_a_backlog_deeper_than_its_memory():
    # 6,000 bookings of 2 cycles at cycle 0: a 12,000-cycle backlog, more windows than the
    # port keeps (2 x KEEP); a booking at cycle 0 after them must still wait for all of them
    port = WindowPort("s", 64.0, window=16.0)
    n = 6000
    assert n * 2 > 2 * port.KEEP * port.window
    starts = [port.use(0.0, 128) for _ in range(n)]
    assert starts == sorted(starts)
    assert port.use(0.0, 128) == pytest.approx(2.0 * n, abs=16.0)
    assert port.busy == pytest.approx(2.0 * (n + 1))


def test_slice_port_forgets_windows_only_behind_the_earliest_arrival():
    # a far hit books far ahead (deep in the backlog); requests that then arrive now must not
    # find their windows forgotten
    port = WindowPort("s", 64.0, window=16.0)
    for _ in range(5000):
        port.use(0.0, 128)  # backlog to 10,000 cycles
    port.use(20_000.0, 128)  # a booking far ahead
    for _ in range(2000):
        port.use(100.0, 128)
    assert port.use(100.0, 128) == pytest.approx(2.0 * 7000, abs=16.0)


def test_a_request_slot_larger_than_a_line_is_rejected():
    text = (devices.bundled_models_dir() / "h100-sxm.toml").read_text(encoding="utf-8")
    with pytest.raises(DeviceFileError, match=r"noc\.slice_request_bytes.*256.*l2\.line_bytes"):
        loads_device(text.replace("slice_request_bytes = 128", "slice_request_bytes = 256"))
