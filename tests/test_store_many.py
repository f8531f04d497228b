"""A warp's stores in one compiled call (MemorySystem.store_many) against the same stores
submitted one request at a time: the same completion times, statistics and cache state."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import simpy

from simgpu import devices
from simgpu.errors import SimgpuError
from simgpu.sim import MemRequest, build_system
from simgpu.sim.hbm import HBMConfig


def _warps(seed: int, n_warps: int, lines: int) -> list[tuple[float, int, list[int], list[int]]]:
    """(issue time, SM, lines, masks) of ``n_warps`` warps' scattered stores."""
    rng = random.Random(seed)
    out = []
    t = 0.0
    for _ in range(n_warps):
        t += rng.choice([0.0, 1.0, 4.0, 30.0])
        n = rng.choice([1, 8, 32, 32])
        picked = rng.sample(range(lines), n)
        out.append((t, rng.randrange(132), [128 * x for x in picked],
                    [rng.randrange(1, 16) for _ in picked]))
    return out


def _run(spec, warps, batched: bool, cache_op: str = "cg"):
    env = simpy.Environment()
    # small write queues: write-backs fill them, and a store that evicts a dirty line waits
    system = build_system(env, spec, rng=random.Random(0),
                          hbm_config=HBMConfig(interleave_bytes=128, write_queue=4))
    done: list[tuple[int, int, str, float]] = []  # per warp: (requests, sectors, level, t)

    def settle_of(i: int):
        def settle(n: int, nsec: int, level: str, t: float) -> None:
            done.append((i, n, nsec, level, t))
        return settle

    def issue(i: int, sm: int, lines: list[int], masks: list[int]):
        settle = settle_of(i)
        if batched:
            system.store_many(sm, lines, masks, cache_op, settle)
        else:
            for line, mask in zip(lines, masks, strict=True):
                req = MemRequest(sm=sm, line_addr=line, sectors=mask, write=True,
                                 cache_op=cache_op)
                system.submit(req, lambda r, s=settle: s(1, r.sectors.bit_count(),
                                                         r.served_by, r.t_done))

    def driver():
        for i, (t, sm, lines, masks) in enumerate(warps):
            if t > env.now:
                yield env.timeout(t - env.now)
            issue(i, sm, lines, masks)

    env.process(driver())
    env.run()
    return system, done


def _per_warp(done):
    """Per warp: requests, sectors, the latest completion, the levels seen."""
    out: dict[int, list] = {}
    for i, n, nsec, level, t in done:
        w = out.setdefault(i, [0, 0, 0.0, set()])
        w[0] += n
        w[1] += nsec
        w[2] = max(w[2], t)
        w[3].add(level)
    return out


@pytest.mark.parametrize("cache_op", ["cg", "ca"])
def test_store_many_matches_one_request_at_a_time(cache_op):
    whole = devices.get("h100-sxm")
    # a 1.25 MiB L2 of 8 slices: the stores overflow it and write dirty lines back
    spec = replace(whole, l2=replace(whole.l2, size_MiB=1.25, slices=8))
    warps = _warps(1, 1500, lines=60_000)
    a, done_a = _run(spec, warps, batched=False, cache_op=cache_op)
    b, done_b = _run(spec, warps, batched=True, cache_op=cache_op)
    assert a.dram_writebacks > 100  # the case it is meant to cover
    assert any(n == 1 and i_has_more(done_b, i) for i, n, *_ in done_b), \
        "no store waited for a full write queue"
    assert _per_warp(done_a) == _per_warp(done_b)
    assert a.stats().equals(b.stats())
    for level in a.lat:
        assert list(a.lat[level]) == list(b.lat[level])
    assert a.by_level == b.by_level
    assert np.array_equal(a.l2.T, b.l2.T) and np.array_equal(a.l2.st, b.l2.st)
    for ua, ub in zip(a.l1, b.l1, strict=True):
        assert np.array_equal(ua.tags.valid, ub.tags.valid)
        assert (ua.port.next_free, ua.port.busy, ua.port.uses) == \
            (ub.port.next_free, ub.port.busy, ub.port.uses)
    assert np.array_equal(a.xbar.bank.sc, b.xbar.bank.sc)
    assert np.array_equal(a.xbar.bank.W, b.xbar.bank.W)
    assert (a.issued, a.completed, a.bytes_written, a.t_last) == \
        (b.issued, b.completed, b.bytes_written, b.t_last)


def i_has_more(done, i) -> bool:
    """Whether warp ``i`` was settled in more than one call (a store of it waited)."""
    return sum(1 for d in done if d[0] == i) > 1


def test_store_many_refuses_bad_stores():
    env = simpy.Environment()
    system = build_system(env, devices.get("h100-sxm"))
    with pytest.raises(SimgpuError, match="sm = 999"):
        system.store_many(999, [0], [1], "cg", lambda *a: None)
    with pytest.raises(SimgpuError, match="cache_op = 'xx'"):
        system.store_many(0, [0], [1], "xx", lambda *a: None)
    with pytest.raises(SimgpuError, match="within a line"):
        system.store_many(0, [0], [0b11111], "cg", lambda *a: None)
