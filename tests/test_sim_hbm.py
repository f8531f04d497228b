"""HBM: closed-form latencies and bandwidths, the timing table on a command log, FR-FCFS."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import pytest
import simpy

from simgpu import devices
from simgpu.errors import SimgpuError
from simgpu.sim.hbm import (
    HBM,
    HBMConfig,
    burst_bytes,
    fire_at,
    peak_bandwidth_GBps,
    refresh_limited_bandwidth_GBps,
    timing_table,
    unloaded_read_tck,
)

#: one device per memory technology: HBM2e, HBM3, HBM3e, HBM2, GDDR6X
DEVICES = ["h100-pcie", "h100-sxm", "h200", "a100-pcie-40gb", "rtx-4090"]


def make(device: str, **cfg) -> tuple[simpy.Environment, HBM]:
    spec = devices.get(device)
    env = simpy.Environment()
    return env, HBM(env, spec.dram, spec.clock_MHz, HBMConfig(**cfg))


def read_latency_tck(env: simpy.Environment, hbm: HBM, addr: int, nbytes: int = 32) -> float:
    start = env.now
    ev = hbm.request(addr, nbytes)
    env.run(until=ev)
    return (ev.value - start) / hbm.cycles_per_tck


@pytest.mark.parametrize("device", DEVICES)
def test_unloaded_read_latency_closed_forms(device):
    env, hbm = make(device, refresh=False)
    t = hbm.t
    # a closed bank: tRCD + tCL + burst
    assert read_latency_tck(env, hbm, 0) == pytest.approx(unloaded_read_tck(t, 1, "closed"))
    # the same row again, once the first has finished: a row hit, tCL + burst
    env.run(until=env.now + 1000 * hbm.cycles_per_tck)
    assert read_latency_tck(env, hbm, 0) == pytest.approx(unloaded_read_tck(t, 1, "hit"))
    # another row of the same bank long after: tRP + tRCD + tCL + burst
    pc, bg, bank, row, _ = hbm.decode(0)
    other = next(
        a for a in range(0, 1 << 34, hbm.cfg.interleave_bytes * 4096)
        if hbm.decode(a)[:3] == (pc, bg, bank) and hbm.decode(a)[3] != row
    )
    env.run(until=env.now + 1000 * hbm.cycles_per_tck)
    assert read_latency_tck(env, hbm, other) == pytest.approx(
        unloaded_read_tck(t, 1, "conflict")
    )
    # a whole 128-byte line: four bursts to one bank, spaced tCCD_L
    env.run(until=env.now + 1000 * hbm.cycles_per_tck)
    n = 128 // hbm.burst_bytes
    assert read_latency_tck(env, hbm, other, 128) == pytest.approx(
        unloaded_read_tck(t, n, "hit")
    )


def stream(hbm: HBM, env: simpy.Environment, n: int, inflight: int = 4000,
           write_every: int = 0) -> float:
    """Closed-loop sequential lines; steady-state GB/s between the 10% and 90% completions."""
    done: list[float] = []
    state = {"next": 0}

    def issue() -> None:
        i = state["next"]
        state["next"] += 1
        write = bool(write_every) and i % write_every == 0
        ev = hbm.request(((1 << 30) if write else 0) + i * 128, 128, write=write)
        ev.callbacks.append(complete)

    def complete(_ev: simpy.Event) -> None:
        done.append(env.now)
        if state["next"] < n:
            issue()

    for _ in range(inflight):
        issue()
    env.run()
    lo, hi = int(0.1 * n), int(0.9 * n)
    ns = (done[hi] - done[lo]) / hbm.cycles_per_tck * hbm.t.tCK_ns
    return (hi - lo) * 128 / ns


@pytest.mark.parametrize("device", ["h100-pcie", "h100-sxm"])
def test_peak_and_refresh_limited_bandwidth(device):
    spec = devices.get(device)
    env, hbm = make(device, refresh=False)
    peak = peak_bandwidth_GBps(spec.dram)
    # the closed form is the device file's own peak (bus width x data rate)
    assert peak == pytest.approx(spec.dram.peak_bandwidth_GBps, rel=0.03)
    # sequential lines keep the data bus busy: within 4% of peak (row switches cost the
    # rest), never above it
    inflight = 60 * hbm.n_pc
    got = stream(hbm, env, 40_000, inflight)
    assert 0.96 * peak <= got <= peak * 1.001
    # all-bank refresh: Ramulator 2's bound peak x (1 - (tRTP + tRP + tRFC + tRCD) / tREFI);
    # the model loses at least that share and at most 3 points more (rows reopened after each
    # refresh)
    env, hbm = make(device, refresh=True, refresh_mode="all_bank")
    limited = refresh_limited_bandwidth_GBps(spec.dram)
    got_ref = stream(hbm, env, 40_000, inflight)
    assert got_ref >= 0.96 * limited
    assert got_ref <= limited * 1.01
    assert limited / peak - 0.03 <= got_ref / got <= limited / peak + 0.01
    if spec.dram.timing.refresh == "per_bank":
        # one bank at a time: a stream over every bank keeps the data bus busy while a bank
        # refreshes, so it loses at most 1% (the REFpb and PRE commands on the row bus)
        env, hbm = make(device, refresh=True)
        got_pb = stream(hbm, env, 40_000, inflight)
        assert 0.99 * got <= got_pb <= got * 1.001


def _check_log(hbm: HBM) -> int:
    """Every pair of logged commands satisfies every constraint of the timing table."""
    table = timing_table(hbm.t)
    by_scope: dict[tuple, list] = defaultdict(list)
    for tck, cmd, pc, bg, bank in hbm.log:
        if cmd == "REF" and bank < 0:  # an all-bank refresh acts on the whole pseudo-channel
            for b in range(hbm.banks):
                by_scope[("bank", pc, b)].append((tck, cmd))
            for g in range(hbm.bank_groups):
                by_scope[("bankgroup", pc, g)].append((tck, cmd))
        else:
            by_scope[("bank", pc, bank)].append((tck, cmd))
            by_scope[("bankgroup", pc, bg)].append((tck, cmd))
        by_scope[("channel", pc)].append((tck, cmd))
    rules: dict[str, list] = defaultdict(list)
    for c in table:
        rules[c.scope].append(c)
    longest = max(c.tck for c in table)
    checked = 0
    for key, cmds in by_scope.items():
        cmds.sort()
        for i, (t1, c1) in enumerate(cmds):
            for t2, c2 in cmds[i + 1:]:
                if t2 - t1 > longest:
                    break
                for rule in rules[key[0]]:
                    if rule.preceding == c1 and rule.following == c2:
                        assert t2 - t1 >= rule.tck, (key, c1, t1, c2, t2, rule)
                        checked += 1
        if key[0] == "channel":  # four-activate window
            acts = [t for t, c in cmds if c == "ACT"]
            for i in range(len(acts) - 4):
                assert acts[i + 4] - acts[i] >= hbm.t.tFAW
    return checked


@pytest.mark.parametrize("device", ["h100-pcie", "h100-sxm"])
def test_command_log_obeys_the_timing_table(device):
    env, hbm = make(device, log=True)
    rng = random.Random(3)
    # random reads and writes, some to the same rows, over a few pseudo-channels
    for i in range(3000):
        addr = rng.randrange(1 << 22) * 128 if rng.random() < 0.5 else (i % 512) * 128
        hbm.submit(addr, rng.choice([32, 64, 128]), rng.random() < 0.3,
                   delay=rng.uniform(0, 20_000))
    env.run()
    assert _check_log(hbm) > 1000
    kinds = {c for _, c, *_ in hbm.log}
    assert {"ACT", "PRE", "RD", "WR", "REF"} <= kinds


def test_fr_fcfs_serves_row_hits_first():
    env, hbm = make("h100-pcie", refresh=False)
    pc, bg, bank, row, _ = hbm.decode(0)
    same_bank = [a for a in range(0, 1 << 34, 128 * 4096)
                 if hbm.decode(a)[:3] == (pc, bg, bank)]
    other_row = next(a for a in same_bank if hbm.decode(a)[3] != row)
    # open the row of address 0 first
    env.run(until=hbm.request(0, 32))
    second_col = next(a for a in range(128, 1 << 20, 128)
                      if hbm.decode(a)[:4] == (pc, bg, bank, row))
    miss = hbm.request(other_row, 32)  # older, to another row
    hit = hbm.request(second_col, 32)  # younger, to the open row
    env.run()
    assert hit.value < miss.value


def test_write_drain_holds_writes_behind_reads():
    env, hbm = make("h100-pcie", refresh=False, log=True)
    pc0 = hbm.decode(0)[0]
    same_pc = list(itertools.islice(
        (a for a in range(0, 1 << 26, 128) if hbm.decode(a)[0] == pc0), 8))
    for a in same_pc[:4]:
        hbm.submit(a, 32, write=True)
    for a in same_pc[4:]:
        hbm.submit(a, 32)
    env.run()
    cmds = sorted((t, c) for t, c, pc, _bg, _b in hbm.log if pc == pc0 and c in ("RD", "WR"))
    # below the high watermark the four reads go first, although the writes arrived first
    assert [c for _, c in cmds] == ["RD"] * 4 + ["WR"] * 4


def test_write_drain_starts_at_the_high_watermark():
    env, hbm = make("h100-pcie", refresh=False, log=True)
    pc0 = hbm.decode(0)[0]
    high = hbm.drain_start
    same_pc = list(itertools.islice(
        (a for a in range(0, 1 << 28, 128) if hbm.decode(a)[0] == pc0), high + 8))
    for a in same_pc[:high]:
        hbm.submit(a, 32, write=True)
    for a in same_pc[high:high + 8]:
        hbm.submit(a, 32)
    env.run()
    cmds = [c for _, c, pc, _bg, _b in sorted(hbm.log) if pc == pc0 and c in ("RD", "WR")]
    assert cmds[0] == "WR"  # the full write queue drains before the reads


def test_address_mapping_is_a_bijection():
    _, hbm = make("h100-pcie")
    seen = {hbm.decode(i * 128) for i in range(120_000)}
    assert len(seen) == 120_000
    pcs = {hbm.decode(i * 2 * 128)[0] for i in range(10_000)}
    assert len(pcs) == hbm.n_pc  # a stride of two lines still reaches every pseudo-channel


def test_refresh_count_matches_interval():
    env, hbm = make("h100-pcie", refresh=True)
    pc0 = hbm.decode(0)[0]
    gap = 300.0  # SM cycles between reads to one pseudo-channel
    for i in range(1000):
        hbm.submit(0, 32, delay=i * gap)
    env.run()
    span_tck = 999 * gap / hbm.cycles_per_tck
    first = hbm.t.tREFI * (pc0 + 1) // hbm.n_pc + 1  # this pseudo-channel's first refresh
    expected = (span_tck - first) // hbm.t.tREFI + 1
    assert hbm.pcs[pc0].refreshes == pytest.approx(expected, abs=1)


def test_fire_at_triggers_the_event_later():
    env = simpy.Environment()
    ev = simpy.Event(env)
    fire_at(env, ev, 5.0, "x")
    assert not ev.triggered  # triggered when the time comes, not before
    assert env.run(until=ev) == "x" and env.now == 5.0
    now = env.event()
    fire_at(env, now, 0.0, "y")
    assert now.triggered and now.value == "y"
    assert env.run(until=now) == "y" and env.now == 5.0


def test_burst_sizes_and_errors():
    assert burst_bytes(devices.get("h100-pcie").dram) == 32
    assert burst_bytes(devices.get("h100-sxm").dram) == 32
    env, hbm = make("h100-pcie")
    with pytest.raises(SimgpuError, match="nbytes"):
        hbm.submit(0, 0)
    with pytest.raises(SimgpuError, match="row"):
        hbm.submit(0, 4096)
    with pytest.raises(SimgpuError, match="negative"):
        hbm.decode(-128)


def test_per_bank_refresh_visits_every_bank_in_turn():
    """h100-sxm (HBM3, refresh = per_bank): under steady random traffic each pseudo-channel
    refreshes one bank at a time in bank order, every bank once per tREFI, tRREFD apart, and
    no ACT reaches a bank within tRFCpb of its refresh (the log check covers the timings)."""
    env, hbm = make("h100-sxm", log=True)
    t = hbm.t
    assert t.refresh == "per_bank" and t.tRFCpb < t.tRFC
    rng = random.Random(5)
    span_tck = 4 * t.tREFI
    span = span_tck * hbm.cycles_per_tck
    for _ in range(6000):
        hbm.submit(rng.randrange(1 << 24) * 128, 64, rng.random() < 0.3,
                   delay=rng.uniform(0, span))
    env.run()
    _check_log(hbm)
    refs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for tck, cmd, pc, _bg, bank in hbm.log:
        if cmd == "REF":
            assert bank >= 0  # never all-bank
            refs[pc].append((tck, bank))
    assert refs
    for seq in refs.values():
        seq.sort()
        banks = [b for _, b in seq]
        assert banks == [k % hbm.banks for k in range(banks[0], banks[0] + len(banks))]
        # from the first (the pseudo-channels' refreshes are staggered over tREFI), every bank
        # once per tREFI over the first half of the traffic (an idle controller places its
        # refreshes when it next wakes, so the tail is not counted); a refresh may slip behind
        # a bank's activated request, by less than one interval
        cut = span_tck // 2
        due = (cut - seq[0][0]) * hbm.banks // t.tREFI + 1
        assert due - 1 <= sum(tck <= cut for tck, _ in seq) <= due + 1


def test_pending_requests_and_counters_are_seen_before_and_after_they_issue():
    """Requests submitted and not yet taken in by a controller count as waiting (and writes as
    pending write bytes); the per-pseudo-channel counters can be read and zeroed."""
    env, hbm = make("h100-sxm", refresh=False)
    hbm.submit(0, 64, write=True, delay=10.0)
    hbm.submit(128, 32, delay=10.0)
    assert hbm.waiting() == 2
    tot = hbm.totals()
    assert tot["pending"] == 2 and tot["pending_write_bytes"] == 64
    env.run()
    tot = hbm.totals()
    assert hbm.waiting() == 0 and tot["pending"] == 0 and tot["pending_write_bytes"] == 0
    assert (tot["reads"], tot["writes"], tot["bytes"], tot["write_bytes"]) == (1, 1, 96, 64)
    pc = hbm.pcs[hbm.decode(0)[0]]
    assert pc.writes == 1
    pc.writes = 0
    assert hbm.totals()["writes"] == 0
    hbm.reset_stats()
    assert hbm.totals()["reads"] == 0
