"""A warp's loads in one compiled call (MemorySystem.load_many) against the same loads
submitted one request at a time: the same completion times, levels, statistics and state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import simpy

from simgpu import devices
from simgpu.errors import SimgpuError
from simgpu.sim import MemRequest, build_system


def _warps(seed: int, n_warps: int) -> list[tuple[float, int, list[int], list[int], str]]:
    """(issue time, SM, lines, masks, cache op) of ``n_warps`` warps' loads: bursts on a few
    SMs (more lines in flight than an L1 has MSHRs), lines shared between warps (merges),
    some that bypass the L1 (ld.cg), and lines stored first (L2 hits)."""
    rng = random.Random(seed)
    # first a burst on SM 5: 20 warps of 32 lines never seen, more than its 512 MSHR entries
    out = [(0.0, 5, [128 * (10_000 + 32 * k + j) for j in range(32)], [15] * 32, "ca")
           for k in range(20)]
    t = 0.0
    for k in range(n_warps):
        if k % 50 == 49:
            t += rng.choice([200.0, 2000.0])  # let fills arrive: sweeps and releases
        else:
            t += rng.choice([0.0, 0.0, 1.0, 8.0])
        n = rng.choice([1, 4, 32])
        base = rng.randrange(3000)
        picked = sorted({base + rng.randrange(64) for _ in range(n)})
        out.append((t, rng.choice([0, 1, 2, 100]), [128 * x for x in picked],
                    [rng.randrange(1, 16) for _ in picked], rng.choice(["ca", "ca", "cg"])))
    return out


def _run(warps, batched: bool):
    env = simpy.Environment()
    system = build_system(env, devices.get("h100-sxm"), rng=random.Random(0))
    # a third of the lines stored first: they are in the L2 (dirty) when the loads come
    system.warm(0, range(0, 128 * 1000, 128), 15, dirty=True)
    done: list[tuple[int, int, str, float]] = []

    def issue(i: int, sm: int, lines: list[int], masks: list[int], op: str) -> None:
        def settle(n: int, nsec: int, level: str, t: float) -> None:
            done.append((i, nsec, level, t))

        if batched:
            system.load_many(sm, lines, masks, op, settle)
        else:
            for line, mask in zip(lines, masks, strict=True):
                req = MemRequest(sm=sm, line_addr=line, sectors=mask, cache_op=op)
                system.submit(req, lambda r: settle(1, r.sectors.bit_count(), r.served_by,
                                                    r.t_done))

    def driver():
        for i, (t, sm, lines, masks, op) in enumerate(warps):
            if t > env.now:
                yield env.timeout(t - env.now)
            issue(i, sm, lines, masks, op)

    env.process(driver())
    env.run()
    return system, done


def test_load_many_matches_one_request_at_a_time():
    warps = _warps(3, 600)
    a, done_a = _run(warps, batched=False)
    b, done_b = _run(warps, batched=True)
    # the cases it is meant to cover
    assert a.l1[5].mshr.stalls > 0 and a.l1[0].mshr.merges > 0
    assert {"L1", "L2near", "L2far", "DRAM"} <= {level for _, _, level, _ in done_a}
    assert done_a == done_b  # every load, in the order its time was decided
    assert a.stats().equals(b.stats())
    assert a.by_level == b.by_level
    for level in a.lat:
        assert list(a.lat[level]) == list(b.lat[level])
    assert np.array_equal(a.l2.T, b.l2.T) and np.array_equal(a.l2.st, b.l2.st)
    assert np.array_equal(a._l1_tags[0], b._l1_tags[0])
    assert np.array_equal(a._ports, b._ports)
    assert np.array_equal(a.xbar.bank.W, b.xbar.bank.W)
    assert (a.issued, a.completed, a.bytes_read, a.t_last, a.dram_writebacks) == \
        (b.issued, b.completed, b.bytes_read, b.t_last, b.dram_writebacks)
    assert a.issued == sum(len(w[2]) for w in warps) == a.completed


def test_load_many_refuses_bad_loads():
    env = simpy.Environment()
    system = build_system(env, devices.get("h100-sxm"))
    with pytest.raises(SimgpuError, match="sm = -1"):
        system.load_many(-1, [0], [1], "ca", lambda *a: None)
    with pytest.raises(SimgpuError, match="cache_op = 'cv'"):
        system.load_many(0, [0], [1], "cv", lambda *a: None)
    with pytest.raises(SimgpuError, match="within a line"):
        system.load_many(0, [0], [1 << 4], "ca", lambda *a: None)


def test_rebuilt_l2_tables_hold_every_entry_and_no_tombstone():
    # LoadState._grow_h2 rehashes the L2 line tables, larger where they must grow: every live
    # entry is found again, each in the slot a plain re-insertion in slot order gives it
    from simgpu.sim import load_core as lc

    ld = lc.LoadState(n_sm=2, parts=2, l1_entries=16)
    rng = random.Random(3)
    live: dict[tuple[int, int], int] = {}
    e = 0
    for part in range(2):
        for line in rng.sample(range(0, 1 << 30, 128), 500):
            ld.EI[e, lc.E_LINE] = line
            lc._put(ld.H2, ld.EI, part, line, e)
            live[(part, line)] = e
            e += 1
        gone = rng.sample(sorted(k for k in live if k[0] == part), 150)
        for key in gone:  # deleted entries leave tombstones (-2)
            ld.H2[part, lc._slot(ld.H2, ld.EI, part, key[1])] = -2
            del live[key]
    for part in range(2):
        ld.U[ld.n_sm + part, lc.U_COUNT] = sum(1 for p, _ in live if p == part)
    old = ld.H2.copy()
    ld._grow_h2(4000)  # room for 4000 more lines: the tables double, twice
    assert ld.H2.shape == (2, 4 * old.shape[1]) and not (ld.H2 == -2).any()
    ref = np.full_like(ld.H2, -1)
    for part in range(2):
        for x in old[part][old[part] >= 0]:
            lc._put(ref, ld.EI, part, int(ld.EI[x, lc.E_LINE]), int(x))
    assert np.array_equal(ld.H2, ref)
    for (part, line), x in live.items():
        assert lc._get(ld.H2, ld.EI, part, line) == x
