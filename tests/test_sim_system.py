"""The wired memory system: latencies per level, conservation, determinism, Little's law."""

from __future__ import annotations

import itertools
import random

import pandas as pd
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simgpu import devices
from simgpu.errors import DeviceFileError, SimgpuError
from simgpu.sim import MemRequest, build_system
from simgpu.sim.hbm import HBMConfig
from simgpu.sim.sources import Paced, PointerChase, RandomAccess, Stream


@pytest.fixture(scope="module")
def h100():
    return devices.get("h100-pcie")


def run_one(system, req: MemRequest):
    ev = system.access(req)
    system.env.run(until=ev)
    return ev.value


def test_latency_of_each_level_is_the_device_figure(h100):
    env = simpy.Environment()
    s = build_system(env, h100, hbm_config=HBMConfig(refresh=False))
    first = run_one(s, MemRequest(0, 0, 0b1))
    assert first.served_by == "DRAM"
    # a cold bank: the measured unloaded latency less tRP (the bank was closed, not in
    # conflict), plus at most one DRAM clock to align the arrival with a command edge
    t = h100.dram.timing
    cpt = s.hbm.cycles_per_tck
    closed = s.dram_unloaded - t.tRP * cpt
    assert closed <= first.latency <= closed + cpt
    env.run(until=env.now + 5000)
    again = run_one(s, MemRequest(0, 0, 0b1))
    assert again.served_by == "L1"
    assert again.latency == pytest.approx(h100.l1.hit_latency_cycles)
    # another SM of the same partition: near L2 hit
    near = run_one(s, MemRequest(1, 0, 0b1))
    assert near.served_by == "L2near"
    assert near.latency == pytest.approx(h100.l2.near_hit_latency_cycles)
    # an SM of the other partition: far hit, then (copied) near
    other_sm = h100.compute.sm_count - 1
    assert s.partition_of[other_sm] != s.partition_of[0]
    far = run_one(s, MemRequest(other_sm, 0, 0b1))
    assert far.served_by == "L2far"
    assert far.latency == pytest.approx(h100.l2.far_hit_latency_cycles)
    env.run(until=env.now + 5000)
    again = run_one(s, MemRequest(other_sm - 1, 0, 0b1))
    assert again.served_by == "L2near"


def test_mshr_merges_requests_to_a_line_in_flight(h100):
    env = simpy.Environment()
    s = build_system(env, h100)
    a = s.access(MemRequest(0, 4096, 0b0001))
    b = s.access(MemRequest(0, 4096, 0b0001))
    env.run()
    assert s.hbm.totals()["reads"] == 1
    assert a.value.t_done == b.value.t_done
    assert s.l1[0].mshr.merges == 1
    # a second sector of the same line in flight is fetched as well (one more burst)
    c = s.access(MemRequest(0, 8192, 0b0001))
    d = s.access(MemRequest(0, 8192, 0b0010))
    env.run()
    assert s.hbm.totals()["reads"] == 3
    assert c.value.served_by == d.value.served_by == "DRAM"


def test_merge_whose_extra_sectors_hit_in_l2_completes(h100):
    """A load merging into an L1 miss in flight, whose missing sectors the L2 answers at once,
    completes (the L2 hit settles the fill time before the merged load is registered)."""
    env = simpy.Environment()
    s = build_system(env, h100)
    s.warm(1, [4096], sectors=0b1111)  # the whole line in the near L2 (and SM 1's L1 only)
    a = s.access(MemRequest(0, 4096, 0b0001))
    b = s.access(MemRequest(0, 4096, 0b0010))  # merges, fetches one more sector: an L2 hit
    env.run()
    assert s.completed == s.issued == 2
    assert a.value.served_by == b.value.served_by == "L2near"
    assert b.value.t_done >= a.value.t_done


def test_submit_reports_the_same_times_as_access_without_events(h100):
    """submit() decides each request exactly as access() does, and tells the caller the
    completion time as soon as it is known (at or before it), making no event of its own."""
    lines = [(sm, a) for sm in (0, 1, h100.compute.sm_count - 1) for a in (0, 4096, 1 << 24)]

    def run(use_submit: bool) -> list[tuple[float, str | None]]:
        env = simpy.Environment()
        s = build_system(env, h100)
        seen: list[tuple[float, MemRequest]] = []
        reqs = []
        for rep in range(3):  # cold (DRAM), then L1 / L2 hits
            for sm, a in lines:
                req = MemRequest(sm, a, 0b0011, write=(rep == 1 and a == 0))
                reqs.append(req)
                if use_submit:
                    s.submit(req, lambda r: seen.append((env.now, r)))
                else:
                    s.access(req)
            env.run(until=5000 * (rep + 1))  # the same clock for both (submit makes no events)
        if use_submit:
            assert len(seen) == len(reqs)
            assert all(t_known <= r.t_done for t_known, r in seen)
        return [(r.t_done, r.served_by) for r in reqs]

    assert run(True) == run(False)


def test_stores_write_through_l1_and_write_back_l2(h100):
    env = simpy.Environment()
    s = build_system(env, h100)
    st_ = run_one(s, MemRequest(0, 0, 0b1, write=True))
    assert st_.served_by == "L2near"
    assert s.hbm.totals()["writes"] == 0  # write-back: nothing reaches DRAM yet
    dram = s.stats().set_index("component").loc["DRAM"]
    assert dram["l2_dirty_bytes"] == h100.l2.sector_bytes  # ...but the L2 owes the sector
    ld = run_one(s, MemRequest(0, 0, 0b1))
    assert ld.served_by == "L2near"  # no allocation in L1 on a store miss
    # overflow one L2 set of both partitions with dirty lines: write-backs reach DRAM
    l2 = s.l2
    target = l2.parts[0].set_index(0)
    lines = itertools.islice(
        (a for a in range(0, 1 << 34, 128) if l2.parts[0].set_index(a) == target),
        3 * h100.l2.ways,
    )
    for a in lines:
        run_one(s, MemRequest(0, a, 0b1111, write=True))
    env.run()
    assert s.dram_writebacks >= h100.l2.ways - 1
    assert s.hbm.totals()["writes"] == s.dram_writebacks
    # every dirty sector stored is either written back or still owed by the L2 (line 0 is
    # among the lines of the set, so its first store is overwritten, not added)
    dram = s.stats().set_index("component").loc["DRAM"]
    stored = 3 * h100.l2.ways * h100.l2.line_bytes  # whole lines
    assert dram["write_bytes"] + dram["l2_dirty_bytes"] == stored


def test_shared_memory_bank_conflicts_add_cycles(h100):
    env = simpy.Environment()
    s = build_system(env, h100)
    free = run_one(s, MemRequest(0, 0, space="shared", lane_addrs=tuple(4 * i for i in range(32))))
    assert free.latency == h100.l1.shared_latency_cycles
    env.run(until=env.now + 100)
    worst = run_one(s, MemRequest(0, 0, space="shared",
                                  lane_addrs=tuple(128 * i for i in range(32))))
    assert worst.latency == h100.l1.shared_latency_cycles + 31


def test_shared_port_is_an_md1_queue(h100):
    """Poisson warp accesses with 32-way conflicts: mean wait = rho S / (2 (1 - rho))."""
    env = simpy.Environment()
    s = build_system(env, h100)
    lanes = tuple(128 * i for i in range(32))
    service, rho = 32.0, 0.6
    rng = random.Random(5)
    waits: list[float] = []

    def gen():
        for _ in range(20_000):
            yield env.timeout(rng.expovariate(rho / service))
            ev = s.access(MemRequest(0, 0, space="shared", lane_addrs=lanes))
            ev.callbacks.append(
                lambda e: waits.append(e.value.latency - h100.l1.shared_latency_cycles - 31)
            )

    env.process(gen())
    env.run()
    assert sum(waits) / len(waits) == pytest.approx(rho * service / (2 * (1 - rho)), rel=0.08)


request_strategy = st.lists(
    st.tuples(
        st.integers(0, 7),  # SM (first and last few: both partitions)
        st.integers(0, 255),  # line index
        st.integers(1, 15),  # sectors
        st.booleans(),  # write
        st.sampled_from(["ca", "cg"]),
        st.floats(0, 2000),  # issue time
    ),
    min_size=1,
    max_size=120,
)


def _replay(spec, ops, seed=0):
    env = simpy.Environment()
    s = build_system(env, spec, rng=random.Random(seed))
    n_sm = spec.compute.sm_count
    done: dict[int, int] = {}
    reqs = []

    def issue(i, sm, line, sectors, write, op):
        req = MemRequest(sm if sm < 4 else n_sm - 8 + sm, line * 128, sectors, write,
                         cache_op=op)
        reqs.append(req)
        ev = s.access(req)
        ev.callbacks.append(lambda e, i=i: done.__setitem__(i, done.get(i, 0) + 1))

    for i, (sm, line, sectors, write, op, t) in enumerate(ops):
        ev = env.timeout(t)
        ev.callbacks.append(lambda e, a=(i, sm, line, sectors, write, op): issue(*a))
    env.run()
    return s, reqs, done


@given(ops=request_strategy)
@settings(max_examples=40, deadline=None)
def test_every_request_completes_once_and_bytes_are_conserved(ops):
    spec = devices.get("h100-pcie")
    s, reqs, done = _replay(spec, ops)
    assert sorted(done) == list(range(len(ops)))
    assert set(done.values()) == {1}
    assert s.issued == s.completed == len(ops)
    for r in reqs:
        assert r.t_done is not None and r.t_done >= r.t_issue
        assert r.served_by in ("L1", "L2near", "L2far", "DRAM")
        if r.write:
            assert r.served_by == "L2near"
    asked_read = sum(r.nbytes(s.sector_bytes) for r in reqs if not r.write)
    asked_written = sum(r.nbytes(s.sector_bytes) for r in reqs if r.write)
    assert (s.bytes_read, s.bytes_written) == (asked_read, asked_written)
    served = sum(rec[2] for rec in s.by_level.values())
    assert served == asked_read + asked_written
    # DRAM reads never exceed the sectors the loads asked for; what the L2 wrote back came in
    # through stores
    assert s.hbm.totals()["bytes"] <= asked_read + asked_written


@given(ops=request_strategy, seed=st.integers(0, 3))
@settings(max_examples=15, deadline=None)
def test_same_seed_gives_identical_statistics(ops, seed):
    spec = devices.get("h100-pcie")
    a = _replay(spec, ops, seed)[0].stats()
    b = _replay(spec, ops, seed)[0].stats()
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    "make",
    [
        lambda env, s: Stream(env, s, n_lines=6000, occupancy=4, op="copy"),
        lambda env, s: RandomAccess(env, s, footprint_bytes=1 << 24, n_requests=5000,
                                    occupancy=2, read_fraction=0.7),
        lambda env, s: Paced(env, s, offered_GBps=500.0, n_requests=5000),
        lambda env, s: PointerChase(env, s, footprint_bytes=1 << 20, n_loads=500),
    ],
)
def test_littles_law_holds_on_every_source(h100, make):
    env = simpy.Environment()
    s = build_system(env, h100)
    src = make(env, s).start()
    env.run()
    r = src.result()
    # time-averaged in flight (integrated as events fired) = throughput x mean latency
    assert r.mean_in_flight == pytest.approx(r.littles_in_flight, rel=1e-9)
    assert r.requests == len(r.latencies)
    stats = s.stats().set_index("component")
    assert stats.loc["total", "completed"] == r.requests


@pytest.mark.parametrize(
    ("device", "published_GBps"),
    [
        # published/gpu_numbers.csv: RRZE-HPC gpu-stream read kernel, max over occupancy
        ("h100-pcie", 1942.0),
        ("a100-pcie-40gb", 1500.0),
    ],
)
def test_stream_read_bandwidth_within_10_percent_of_published(device, published_GBps):
    spec = devices.get(device)
    env = simpy.Environment()
    s = build_system(env, spec)
    src = Stream(env, s, n_lines=30_000, occupancy=96).start()
    env.run()
    got = src.result().steady_bandwidth_GBps()
    assert got == pytest.approx(published_GBps, rel=0.10)
    assert got <= spec.dram.peak_bandwidth_GBps


def test_pointer_chase_plateaus(h100):
    def chase(footprint, n=300, warm=None):
        env = simpy.Environment()
        s = build_system(env, h100)
        src = PointerChase(env, s, footprint_bytes=footprint, n_loads=n, warm_loads=warm)
        src.start()
        env.run()
        return src.result().mean_latency_cycles, s

    assert chase(16 * 1024)[0] == pytest.approx(h100.l1.hit_latency_cycles)
    assert chase(4 << 20)[0] == pytest.approx(h100.l2.near_hit_latency_cycles)
    # cold caches over 1 GiB: every load goes to DRAM; closed or conflicting rows
    lat, s = chase(1 << 30, n=300, warm=0)
    t = h100.dram.timing
    assert s.dram_unloaded - t.tRP * s.hbm.cycles_per_tck - 1e-6 <= lat
    assert lat <= s.dram_unloaded * 1.02


def test_bad_requests_and_options_are_rejected(h100):
    env = simpy.Environment()
    with pytest.raises(SimgpuError, match="shared_carveout_KiB"):
        build_system(env, h100, shared_carveout_KiB=7)
    s = build_system(env, h100)
    with pytest.raises(SimgpuError, match="sm"):
        s.access(MemRequest(10_000, 0))
    with pytest.raises(SimgpuError, match="space"):
        s.access(MemRequest(0, 0, space="texture"))
    with pytest.raises(SimgpuError, match="sectors within a line"):
        s.access(MemRequest(0, 0, sectors=1 << (h100.l1.line_bytes // h100.l1.sector_bytes)))


def test_carveout_shrinks_the_l1(h100):
    env = simpy.Environment()
    small = build_system(env, h100, shared_carveout_KiB=228)
    big = build_system(env, h100, shared_carveout_KiB=0)
    assert small.l1_bytes == (256 - 228) * 1024
    assert big.l1_bytes == 256 * 1024


def test_every_bundled_gpu_builds_and_serves():
    checked = 0
    for name in devices.names():
        try:
            spec = devices.get(name)
        except DeviceFileError:  # a PIM or dataflow device, not a GPU
            continue
        env = simpy.Environment()
        s = build_system(env, spec, hbm_config=HBMConfig(refresh=False))
        checked += 1
        r = run_one(s, MemRequest(0, 1 << 20))
        assert r.served_by == "DRAM"
        # closed bank, a whole line: (bursts - 1) x tCCD_L more than one burst; plus at most
        # one DRAM clock of alignment
        cpt = s.hbm.cycles_per_tck
        bursts = 128 // s.hbm.burst_bytes
        expected = (s.dram_unloaded - spec.dram.timing.tRP * cpt
                    + (bursts - 1) * spec.dram.timing.tCCD_L * cpt)
        assert expected - 1e-9 <= r.latency <= expected + cpt
    assert checked >= 9


def test_l2_merge_limit_waits_for_the_fill_and_never_fetches_twice(h100):
    """Loads from many SMs to one line in flight, beyond the L2 MSHR's merge limit: the ones
    over the limit wait for the fill (a stall each), and DRAM is read once."""
    env = simpy.Environment()
    s = build_system(env, h100)
    p0 = s.partition_of[0]
    sms = [sm for sm in range(h100.compute.sm_count) if s.partition_of[sm] == p0]
    merge = s.l2_mshr[p0].merge
    assert len(sms) > merge + 2
    evs = [s.access(MemRequest(sm, 1 << 20, 0b0001, cache_op="cg")) for sm in sms]
    env.run()
    assert s.hbm.totals()["reads"] == 1
    assert s.l2_mshr[p0].merges == merge
    assert s.l2_mshr[p0].stalls == len(sms) - 1 - merge
    first = min(e.value.t_done for e in evs)
    # every load got the one fill: none waited for a second DRAM round trip (SM cycles)
    dram_cycles = h100.dram.unloaded_latency_ns * h100.compute.boost_clock_MHz / 1000
    assert max(e.value.t_done for e in evs) - first < 0.5 * dram_cycles


def test_full_mshrs_stall_and_every_request_still_completes(h100):
    env = simpy.Environment()
    s = build_system(env, h100)
    # one SM with more distinct lines in flight than it has MSHRs, and repeats of each line
    # beyond the L2's merge limit
    src = RandomAccess(env, s, footprint_bytes=1 << 26, n_requests=3000, occupancy=700,
                       sms=[0], cache_op="ca").start()
    env.run()
    r = src.result()
    assert r.requests == len(r.latencies) == 3000
    assert s.l1[0].mshr.stalls > 0
    assert s.completed == s.issued == 3000
    # a stalled load is looked up once, when it finally issues
    l1 = s.stats().set_index("component").loc["L1"]
    assert l1["requests"] == 3000
    hot = RandomAccess(env, s, footprint_bytes=8 * 128, n_requests=2000, occupancy=40,
                       sms=list(range(0, 114, 3)), cache_op="cg").start()
    env.run()
    assert len(hot.result().latencies) == 2000
