"""Caches, ports and shared memory against reference models and closed forms (the MSHRs:
test_sim_system.py)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simgpu.errors import SimgpuError
from simgpu.sim.cache import (
    Port,
    SectorCache,
    SharedMemory,
    WindowBank,
    WindowPort,
    mix64,
)

LINE = 128
SECTOR = 32
GEOM = {"line_bytes": LINE, "sector_bytes": SECTOR}


class ReferenceCache:
    """Obviously-correct set-associative cache: one Python list per set, most recent last."""

    def __init__(self, sets: int, ways: int, policy: str) -> None:
        self.sets = [[] for _ in range(sets)]
        self.ways = ways
        self.policy = policy
        self.valid: dict[int, int] = {}
        self.hits = self.misses = 0

    def access(self, line: int, sectors: int) -> None:
        s = self.sets[(line // LINE) % len(self.sets)]
        if line in s and self.valid[line] & sectors == sectors:
            self.hits += 1
        else:
            self.misses += 1
        if line in s:
            if self.policy == "lru":
                s.remove(line)
                s.append(line)
            self.valid[line] |= sectors
            return
        if len(s) == self.ways:
            victim = s.pop(0)
            del self.valid[victim]
        s.append(line)
        self.valid[line] = sectors


trace = st.lists(
    st.tuples(st.integers(0, 63), st.integers(1, 15)), min_size=1, max_size=400
)


@pytest.mark.parametrize("policy", ["lru", "fifo"])
@given(ops=trace, ways=st.integers(1, 8), sets=st.sampled_from([1, 2, 4]))
@settings(max_examples=60, deadline=None)
def test_hits_and_misses_match_reference_model(policy, ops, ways, sets):
    cache = SectorCache(**GEOM, name="t", size_bytes=sets * ways * LINE, ways=ways, policy=policy)
    ref = ReferenceCache(sets, ways, policy)
    for idx, sectors in ops:
        line = idx * LINE
        present = cache.lookup(line, sectors)
        if present != sectors:
            cache.fill(line, sectors & ~present)
        ref.access(line, sectors)
    assert (cache.hits, cache.misses) == (ref.hits, ref.misses)
    assert sorted(cache.lines()) == sorted(ref.valid)
    for line, valid in ref.valid.items():
        assert cache.probe(line) == valid


@given(ops=trace)
@settings(max_examples=30, deadline=None)
def test_random_policy_never_exceeds_capacity_and_counts_every_access(ops):
    cache = SectorCache(**GEOM, name="t", size_bytes=4 * 2 * LINE, ways=2, policy="random",
                        rng=random.Random(1))
    for idx, sectors in ops:
        present = cache.lookup(idx * LINE, sectors)
        if present != sectors:
            cache.fill(idx * LINE, sectors)
    assert cache.hits + cache.misses == len(ops)
    assert len(cache) <= 8
    assert cache.sector_hits + cache.sector_misses == sum(s.bit_count() for _, s in ops)


def test_sector_granularity_partial_hit():
    cache = SectorCache(**GEOM, name="t", size_bytes=4 * LINE, ways=4)
    cache.fill(0, 0b0011)
    assert cache.lookup(0, 0b0001) == 0b0001
    assert cache.lookup(0, 0b0110) == 0b0010  # one sector present, one missing
    assert (cache.hits, cache.misses) == (1, 1)
    assert (cache.sector_hits, cache.sector_misses) == (2, 1)


def test_write_through_no_allocate_and_write_back_allocate():
    l1 = SectorCache(**GEOM, name="l1", size_bytes=2 * LINE, ways=2)
    hit, victim = l1.write(0, 0b1, allocate=False)
    assert not hit and victim is None and l1.probe(0) == 0  # no allocation on a miss
    l2 = SectorCache(**GEOM, name="l2", size_bytes=2 * LINE, ways=2)
    l2.write(0, 0b0101, allocate=True)
    l2.write(LINE, 0b1, allocate=True)
    _, victim = l2.write(2 * LINE, 0b1, allocate=True)  # evicts line 0 (LRU), dirty
    assert victim == (0, 0b0101, 0b0101)
    assert l2.dirty_evictions == 1


def test_bad_geometry_is_rejected_with_the_field():
    with pytest.raises(SimgpuError, match="size_bytes"):
        SectorCache(**GEOM, name="x", size_bytes=1000, ways=4)
    with pytest.raises(SimgpuError, match="policy"):
        SectorCache(**GEOM, name="x", size_bytes=512, ways=4, policy="plru")
    with pytest.raises(SimgpuError, match="sector_bytes"):
        SectorCache(name="x", size_bytes=512, ways=4, line_bytes=128, sector_bytes=48)
    # a tag entry holds 32 sectors' valid bits: 64 sectors per line is refused, not mangled
    with pytest.raises(SimgpuError, match="at most 32"):
        SectorCache(name="x", size_bytes=512, ways=4, line_bytes=128, sector_bytes=2)


@pytest.mark.parametrize("sector", [16, 32, 64, 128])
def test_other_sector_sizes_count_their_own_sectors(sector):
    cache = SectorCache(name="t", size_bytes=4 * LINE, ways=4, line_bytes=LINE,
                        sector_bytes=sector)
    full = (1 << (LINE // sector)) - 1
    assert cache.sectors_per_line == LINE // sector
    cache.fill(0, full)
    assert cache.lookup(0, full) == full
    assert cache.sector_hits == LINE // sector
    cache.write(LINE, 1, allocate=True)
    assert cache.dirty_sectors() == 1


def test_hash_is_a_bijection_on_a_range():
    values = {mix64(i) for i in range(200_000)}
    assert len(values) == 200_000


def test_port_next_free_arithmetic():
    p = Port("p", bytes_per_cycle=64)
    assert p.use(10.0, 128) == 10.0  # idle: starts at once, busy 2 cycles
    assert p.use(10.0, 64) == 12.0  # queued behind the first
    assert p.use(100.0, 64) == 100.0
    assert p.busy == pytest.approx(4.0)


def test_port_is_an_md1_queue():
    """Poisson arrivals, deterministic service: mean wait = rho S / (2 (1 - rho))."""
    rng = random.Random(7)
    service, rho = 4.0, 0.7
    p = Port("p", bytes_per_cycle=1.0)
    t = 0.0
    waits = []
    for _ in range(200_000):
        t += rng.expovariate(rho / service)
        waits.append(p.use(t, service) - t)
    expected = rho * service / (2 * (1 - rho))
    assert sum(waits) / len(waits) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(
    ("lanes", "expected"),
    [
        ([4 * i for i in range(32)], 1),  # consecutive words: one per bank
        ([0] * 32, 1),  # one word: broadcast
        ([8 * i for i in range(32)], 2),  # stride 2 words: two-way conflict
        ([128 * i for i in range(32)], 32),  # stride 32 words: all in bank 0
    ],
)
def test_shared_memory_bank_conflicts(lanes, expected):
    assert SharedMemory(32, 4).degree(lanes) == expected


def test_window_port_serves_in_order_bookings_like_a_counter():
    plain, windowed = Port("p", 64.0), WindowPort("w", 64.0)
    t = 0.0
    for _k in range(200):  # arrivals every 3 cycles, 2 cycles each: never a queue
        t += 3.0
        assert windowed.use(t, 128) == plain.use(t, 128) == t
    assert windowed.busy == plain.busy == 400.0


def test_window_port_lets_an_earlier_arrival_pass_a_booking_made_ahead():
    plain, windowed = Port("p", 64.0), WindowPort("w", 64.0)
    assert plain.use(1000.0, 128) == windowed.use(1000.0, 128) == 1000.0
    assert plain.use(10.0, 128) == 1002.0  # a counter makes it wait for the later booking
    assert windowed.use(10.0, 128) == 10.0  # the port is idle at 10


def test_window_port_carries_at_most_its_bandwidth():
    port = WindowPort("w", 64.0, window=16.0)
    starts = [port.use(0.0, 128) for _ in range(100)]  # 100 x 2 cycles arriving together
    assert starts[0] == 0.0
    assert max(starts) == pytest.approx(198.0, abs=16.0)  # one window of slack at most
    assert starts == sorted(starts)


@given(st.lists(st.tuples(st.floats(0, 5000), st.integers(1, 8)), min_size=1, max_size=300))
@settings(max_examples=60, deadline=None)
def test_window_port_never_starts_early_nor_exceeds_capacity(bookings):
    w = 16.0
    port = WindowPort("w", 32.0, window=w)
    done = []
    for t, sectors in bookings:
        start = port.use(t, 32 * sectors)
        assert start >= t
        done.append((start, float(sectors)))  # 32 B/cycle: one cycle per sector
    # whatever starts before T was carried by the windows up to T's: at most T + one window
    for cut in sorted({s for s, _ in done}):
        carried = sum(c for s, c in done if s < cut)
        assert carried <= cut + w + 1e-9


class ReferenceWindowPort:
    """The window booking rule written plainly over dicts (how WindowPort was first written):
    the compiled port, with its windows in a hash table of arrays, must book exactly so."""

    KEEP = 256

    def __init__(self, bytes_per_cycle: float, window: float = 16.0) -> None:
        self.bpc, self.window = bytes_per_cycle, window
        self.used: dict[int, float] = {}
        self.skip: dict[int, int] = {}
        self.low, self.limit = float("inf"), 2 * self.KEEP
        self.next_free = self.busy = 0.0

    def _room(self, k: int) -> int:
        root = k
        while root in self.skip:
            root = self.skip[root]
        while k in self.skip and self.skip[k] != root:
            self.skip[k], k = root, self.skip[k]
        return root

    def use(self, now: float, nbytes: float) -> float:
        w, used, cycles = self.window, self.used, nbytes / self.bpc
        self.low = min(self.low, now)
        k = self._room(int(now // w))
        u = used.get(k, 0.0)
        start = max(k * w + u, now)
        total = u + cycles
        while total > w:
            used[k] = w
            self.skip[k] = k + 1
            k = self._room(k + 1)
            total = used.get(k, 0.0) + total - w
        used[k] = total
        if total >= w:
            self.skip[k] = k + 1
        self.next_free = max(self.next_free, start + cycles)
        self.busy += cycles
        if len(used) > self.limit:
            floor = int(self.low // w) - self.KEEP
            for key in [key for key in used if key < floor]:
                del used[key]
                self.skip.pop(key, None)
            self.low = float("inf")
            self.limit = len(used) + 2 * self.KEEP
        return start


@given(st.lists(st.tuples(st.floats(0, 1.0), st.sampled_from([32, 64, 128, 512, 4096]),
                          st.sampled_from(["now", "now", "now", "ahead", "back", "long ago"])),
                min_size=1, max_size=3000),
       st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_window_port_books_as_the_reference_rule(bookings, seed):
    port, ref = WindowPort("w", 32.0, bank=WindowBank(3, capacity=16), index=seed % 3), \
        ReferenceWindowPort(32.0)
    t = 0.0
    for jump, nbytes, when in bookings:
        # mostly in time order, some far ahead (a far hit, a store), some back in time, some
        # further back than the windows the port keeps (KEEP = 256 windows of 16 cycles)
        t += jump * 40
        at = {"now": t, "ahead": t + 5000 * jump, "back": max(0.0, t - 900 * jump),
              "long ago": max(0.0, t - 3800 - 1000 * jump)}[when]
        assert port.use(at, nbytes) == ref.use(at, nbytes)
    assert (port.next_free, port.busy, port.windows()) == (ref.next_free, ref.busy, len(ref.used))


def test_window_port_forgets_windows_as_the_reference_rule():
    # long enough to forget old windows several times (more than 2 x KEEP windows held)
    rng = random.Random(1)
    port = WindowPort("w", 32.0, bank=WindowBank(3, capacity=16), index=1)
    ref = ReferenceWindowPort(32.0)
    t, forgotten = 0.0, 0
    for _ in range(3000):
        t += rng.random() * 40
        at = max(0.0, t - 4000 * rng.random()) if rng.random() < 0.1 else t
        nbytes = rng.choice([32, 64, 4096])
        held = len(ref.used)
        assert port.use(at, nbytes) == ref.use(at, nbytes)
        assert port.windows() == len(ref.used)
        forgotten += len(ref.used) < held
    assert forgotten >= 2
