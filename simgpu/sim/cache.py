"""Caches as plain data structures: sectored set-associative tags, MSHRs, ports, shared memory.

Nothing here is a SimPy process. A cache is looked up and filled inside the event that needs it
(DESIGN.md); time enters only through :class:`Port` (a "next free cycle" counter) and the
latencies the caller adds. The tags and the slice ports keep their state in arrays and their
transitions are compiled (:mod:`simgpu.sim.cache_core`), so that one call can serve a warp's
requests.

* :class:`SectorCache`: ``sets x ways`` lines of ``line_bytes``, each with a valid and a dirty
  mask of ``sector_bytes`` sectors; replacement ``"lru"``, ``"fifo"`` or ``"random"``; set index
  either the plain line index modulo the set count or a bijective hash of it.
* :class:`Port`: bandwidth as bytes per cycle, O(1) and eventless.
* :class:`SharedMemory`: banks of ``bank_width_bytes``; a warp's access takes as many cycles as
  the most loaded bank has distinct words (a bank conflict serialises, a broadcast does not).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import numpy as np

from simgpu.errors import SimgpuError
from simgpu.sim import cache_core as cc
from simgpu.sim.cache_core import mix64

__all__ = [
    "POLICIES",
    "SectorCache",
    "TagState",
    "new_tag_state",
    "Port",
    "WindowPort",
    "WindowBank",
    "SharedMemory",
    "mix64",
]

POLICIES = ("lru", "fifo", "random")
#: sectors per line a tag entry can hold (the masks the rest of the simulator builds are at
#: most 32 bits)
_MAX_SECTORS = 32

#: one cache's tag state: its ways' fields ``T[set, way, F_*]`` and its scalars ``st[ST_*]``
#: (:mod:`simgpu.sim.cache_core`)
TagState = tuple[np.ndarray, np.ndarray]


def new_tag_state(n_sets: int, ways: int, copies: int | None = None) -> TagState:
    """Empty tags for ``n_sets x ways`` lines, or ``copies`` of them stacked (an L2's
    partitions: ``T[partition, set, way, F_*]``, ``st[partition, ST_*]``)."""
    lead = () if copies is None else (copies,)
    # zeros: every way empty (F_TAG 0), and pages of a cache no request reaches are never
    # touched (a replay builds every SM's L1)
    T = np.zeros(lead + (n_sets, ways, cc.NF), np.int64)
    return T, np.zeros(lead + (cc.NST,), np.int64)


class SectorCache:
    """Tags of a sectored, set-associative cache.

    ``sets x ways`` lines, each with a valid and a dirty mask of ``sector_bytes`` sectors (at
    most 32 per line). Replacement: ``"lru"`` (a hit or a store refreshes the line), ``"fifo"``
    (the oldest arrival goes) or ``"random"`` (a way drawn from the cache's own generator,
    seeded from ``rng``). The state is in numpy arrays and the transitions are compiled
    (:mod:`simgpu.sim.cache_core`); ``state`` passes arrays to use (an L2 partition's share of
    the L2's stacked arrays) instead of new ones.
    """

    __slots__ = (
        "name", "size_bytes", "ways", "line_bytes", "sector_bytes", "sectors_per_line",
        "policy", "n_sets", "hashed", "index_div", "_line_shift", "_full",
        "T", "st",
    )

    def __init__(
        self,
        *,
        name: str,
        size_bytes: int,
        ways: int,
        line_bytes: int,
        sector_bytes: int,
        policy: str = "lru",
        hashed: bool = False,
        index_div: int = 1,
        rng: random.Random | None = None,
        state: TagState | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise SimgpuError(f"{name}: policy {policy!r}, expected one of {', '.join(POLICIES)}")
        if line_bytes <= 0 or line_bytes & (line_bytes - 1):
            raise SimgpuError(f"{name}: line_bytes = {line_bytes}, expected a power of two")
        if sector_bytes <= 0 or line_bytes % sector_bytes:
            raise SimgpuError(
                f"{name}: sector_bytes = {sector_bytes}, expected a divisor of {line_bytes}"
            )
        if line_bytes // sector_bytes > _MAX_SECTORS:
            raise SimgpuError(
                f"{name}: {line_bytes // sector_bytes} sectors per line ({line_bytes} B lines of"
                f" {sector_bytes} B sectors), expected at most {_MAX_SECTORS} (a tag entry keeps"
                f" the valid mask in {_MAX_SECTORS} bits)"
            )
        if size_bytes < 0 or ways <= 0:
            raise SimgpuError(f"{name}: size {size_bytes} B with {ways} ways is not a cache")
        if size_bytes % (ways * line_bytes):
            raise SimgpuError(
                f"{name}: size_bytes = {size_bytes}, expected a multiple of ways x line_bytes"
                f" = {ways * line_bytes}"
            )
        self.name = name
        self.size_bytes = size_bytes
        self.ways = ways
        self.line_bytes = line_bytes
        self.sector_bytes = sector_bytes
        self.sectors_per_line = line_bytes // sector_bytes
        self._full = (1 << self.sectors_per_line) - 1
        self.policy = policy
        self.n_sets = size_bytes // (ways * line_bytes)
        self.hashed = hashed
        #: with ``hashed``, the set is (hash // index_div) % sets: an L2 slice passes the slice
        #: count so that the slice (hash % slices) and the set use different hash digits
        self.index_div = index_div
        self._line_shift = line_bytes.bit_length() - 1
        if state is None:
            state = new_tag_state(self.n_sets, ways)
        if state[0].shape != (self.n_sets, ways, cc.NF):
            raise SimgpuError(f"{name}: tag arrays of shape {state[0].shape}, expected"
                              f" {(self.n_sets, ways, cc.NF)}")
        self.T, self.st = state
        self.st[cc.ST_LRU] = policy == "lru"
        self.st[cc.ST_RANDOM] = policy == "random"
        if policy == "random":
            self.st[cc.ST_RNG] = (rng or random.Random(0)).getrandbits(63) or 1

    @property
    def enabled(self) -> bool:
        """False for a zero-capacity cache (e.g. L1 with the whole array carved out as shared)."""
        return self.n_sets > 0

    def set_index(self, line_addr: int) -> int:
        """The set a line maps to."""
        if self.hashed:
            return int(cc.set_index(line_addr, self._line_shift, True, self.index_div,
                                    self.n_sets))
        return (line_addr >> self._line_shift) % self.n_sets

    def probe(self, line_addr: int, set_idx: int = -1) -> int:
        """Valid-sector mask of a line (0 if absent), without touching recency or counters."""
        if not self.n_sets:
            return 0
        if set_idx < 0:
            set_idx = self.set_index(line_addr)
        return int(cc.probe(self.T, set_idx, line_addr))

    def lookup(self, line_addr: int, sectors: int, set_idx: int = -1) -> int:
        """Look a request up: count it, refresh recency on a hit; return the present sectors.

        ``set_idx`` may pass :meth:`set_index` when the caller has already computed it.
        """
        if not self.n_sets:
            self.st[cc.ST_MISSES] += 1
            self.st[cc.ST_SECTOR_MISSES] += sectors.bit_count()
            return 0
        if set_idx < 0:
            set_idx = self.set_index(line_addr)
        return int(cc.lookup(self.T, self.st, set_idx, line_addr, sectors))

    def fill(
        self, line_addr: int, sectors: int, dirty: int = 0, set_idx: int = -1
    ) -> tuple[int, int, int] | None:
        """Make ``sectors`` valid (``dirty`` of them dirty); allocate the line if absent.

        Returns the evicted line as ``(line_addr, valid_mask, dirty_mask)``, or None.
        """
        if not self.n_sets:
            return None
        if set_idx < 0:
            set_idx = self.set_index(line_addr)
        v = cc.fill(self.T, self.st, set_idx, line_addr, sectors, dirty)
        return None if v[0] < 0 else (int(v[0]), int(v[1]), int(v[2]))

    def write(
        self, line_addr: int, sectors: int, *, allocate: bool, set_idx: int = -1
    ) -> tuple[bool, Any]:
        """A store of ``sectors``: update (write-back: mark dirty) or allocate.

        With ``allocate`` (write-back, write-allocate at sector grain: whole sectors are
        written, so nothing is fetched) the sectors become valid and dirty; without it (L1
        write-through, no-allocate) a present line has the sectors made valid (its copy is
        updated) and an absent line is left absent. Returns (hit, evicted line or None).
        ``set_idx`` may pass :meth:`set_index` when the caller has already computed it.
        """
        if not self.n_sets:
            self.st[cc.ST_WRITES] += 1
            return False, None
        if set_idx < 0:
            set_idx = self.set_index(line_addr)
        hit, v_line, v_valid, v_dirty = cc.write(self.T, self.st, set_idx, line_addr, sectors,
                                                 allocate)
        return bool(hit), (None if v_line < 0 else (int(v_line), int(v_valid), int(v_dirty)))

    def remove(self, line_addr: int, set_idx: int = -1) -> tuple[int, int] | None:
        """Drop a line; return its (valid, dirty) masks if it was present."""
        if not self.n_sets:
            return None
        if set_idx < 0:
            set_idx = self.set_index(line_addr)
        found, v, d = cc.remove(self.T, self.st, set_idx, line_addr)
        return (int(v), int(d)) if found else None

    def lines(self) -> Iterable[int]:
        """Every resident line address, set by set, oldest stamp first."""
        for s in range(self.n_sets):
            row = self.T[s]
            ways = [w for w in range(self.ways) if row[w, cc.F_TAG] > 0]
            for w in sorted(ways, key=lambda w: int(row[w, cc.F_AGE])):
                yield int(row[w, cc.F_TAG]) - 1

    def __len__(self) -> int:
        return int(self.st[cc.ST_COUNT])

    def dirty_sectors(self) -> int:
        """Number of dirty sectors held (data a write-back cache still owes to memory)."""
        return int(cc.dirty_sectors(self.T)) if self.n_sets else 0

    @property
    def valid(self) -> np.ndarray:
        """The valid sector mask of every way (``T[..., F_VALID]``, a view)."""
        return self.T[..., cc.F_VALID]

    def counters(self) -> dict[str, int]:
        """The statistics counters as a dict."""
        return {k: int(self.st[i]) for k, i in _COUNTER_INDEX.items()}

    def reset_counters(self) -> None:
        """Zero the statistics counters (the tags keep their contents)."""
        for i in _COUNTER_INDEX.values():
            self.st[i] = 0


def _counter(index: int, doc: str) -> property:
    def get(self: SectorCache) -> int:
        return int(self.st[index])

    def put(self: SectorCache, value: int) -> None:
        self.st[index] = value

    return property(get, put, doc=doc)


_COUNTER_INDEX = {name: i for i, name in enumerate(cc.COUNTERS)}
for _name, _doc in zip(cc.COUNTERS, (
    "requests whose sectors were all present", "requests that missed at least one sector",
    "sectors found", "sectors missed", "lines evicted", "dirty lines evicted",
    "fills (from below)", "stores",
), strict=True):
    setattr(SectorCache, _name, _counter(_COUNTER_INDEX[_name], _doc))


class Port:
    """A bandwidth-limited port as a next-free-cycle counter (no events).

    :meth:`use` returns the cycle at which a transfer of ``nbytes`` starts, i.e. the later of
    ``now`` and the end of the previous transfer, and books the port for ``nbytes / bytes_per
    cycle`` cycles from then.
    """

    __slots__ = ("name", "bytes_per_cycle", "next_free", "busy", "uses")

    def __init__(self, name: str, bytes_per_cycle: float) -> None:
        if bytes_per_cycle <= 0:
            raise SimgpuError(f"{name}: bytes_per_cycle = {bytes_per_cycle}, expected > 0")
        self.name = name
        self.bytes_per_cycle = bytes_per_cycle
        self.next_free = 0.0
        self.busy = 0.0
        self.uses = 0

    def use(self, now: float, nbytes: float) -> float:
        """Book the port for ``nbytes`` arriving at ``now``; return the start cycle."""
        start = self.next_free if self.next_free > now else now
        occ = nbytes / self.bytes_per_cycle
        self.next_free = start + occ
        self.busy += occ
        self.uses += 1
        return start

    def book(self, now: float, cycles: float) -> float:
        """Book the port for a number of cycles; return the start cycle."""
        start = self.next_free if self.next_free > now else now
        self.next_free = start + cycles
        self.busy += cycles
        self.uses += 1
        return start


class WindowPort(Port):
    """A bandwidth-limited port that accepts bookings out of time order.

    :class:`Port` serves bookings in the order they are made: fine where requests are booked
    at the time they arrive, wrong where a booking is made ahead of its time (a far-partition
    L2 hit books the far slice's port for when the request gets there, some hundred cycles
    later): its counter then jumps forward and every request booked after it, even one that
    arrives while the port is idle, waits behind it. In a warm-L2 tiled GEMM that artefact
    alone raised the mean near-L2 hit latency from 286 to 2,409 cycles.

    Here time is cut into windows of ``window`` cycles, each able to carry ``window`` cycles
    of transfers. A booking goes into the window of its arrival time, or the first later one
    with room, and starts after what that window already carries (a fluid queue, exact to
    within one window); a booking longer than the room left spills into the next windows.
    Full windows are skipped through forward links (with path compression), so a booking
    behind a deep backlog costs no walk over it (stores do not wait for their completion, so an
    SM can book a slice thousands of cycles ahead). Windows are forgotten only when they lie
    :attr:`KEEP` windows behind the earliest arrival booked since windows were last forgotten
    (requests arrive a crossbar traversal after they are made, so later ones never arrive much
    earlier; a far hit's booking deep in the future does not move that mark).
    """

    __slots__ = ("bank", "index")

    #: windows kept behind the earliest recent arrival (older ones are dropped, so a booking
    #: that far in the past finds them empty)
    KEEP = 256

    def __init__(
        self, name: str, bytes_per_cycle: float, window: float = 16.0,
        bank: WindowBank | None = None, index: int = 0,
    ) -> None:
        if bytes_per_cycle <= 0:
            raise SimgpuError(f"{name}: bytes_per_cycle = {bytes_per_cycle}, expected > 0")
        if window <= 0:
            raise SimgpuError(f"{name}: window = {window}, expected > 0 cycles")
        self.name = name
        self.bytes_per_cycle = bytes_per_cycle
        #: where the port's windows live (its row ``index`` of the bank's arrays)
        self.bank = bank if bank is not None else WindowBank(1)
        self.index = index
        sc = self.bank.sc[index]
        sc[cc.SC_WINDOW] = window
        sc[cc.SC_LOW] = np.inf  # the earliest arrival since windows were last forgotten
        sc[cc.SC_LIMIT] = 2 * self.KEEP  # forget old windows when this many are kept
        sc[cc.SC_KEEP] = self.KEEP

    def _get(self, col: int) -> float:
        return float(self.bank.sc[self.index, col])

    @property
    def window(self) -> float:
        """Cycles per window (and cycles each window carries)."""
        return self._get(cc.SC_WINDOW)

    @property
    def next_free(self) -> float:
        """The end of the latest booking."""
        return self._get(cc.SC_NEXT_FREE)

    @next_free.setter
    def next_free(self, value: float) -> None:
        self.bank.sc[self.index, cc.SC_NEXT_FREE] = value

    @property
    def busy(self) -> float:
        """Cycles booked."""
        return self._get(cc.SC_BUSY)

    @busy.setter
    def busy(self, value: float) -> None:
        self.bank.sc[self.index, cc.SC_BUSY] = value

    @property
    def uses(self) -> int:
        """Bookings made."""
        return int(self._get(cc.SC_USES))

    @uses.setter
    def uses(self, value: int) -> None:
        self.bank.sc[self.index, cc.SC_USES] = value

    def windows(self) -> int:
        """Windows the port remembers now."""
        return int(self._get(cc.SC_COUNT))

    def use(self, now: float, nbytes: float) -> float:
        """Book ``nbytes`` arriving at ``now``; return the start cycle."""
        return self.book(now, nbytes / self.bytes_per_cycle)

    def book(self, now: float, cycles: float) -> float:
        """Book the port for ``cycles`` from ``now`` on; return the start cycle."""
        bank = self.bank
        start: float = cc.window_book(bank.W, bank.sc, self.index, float(now), float(cycles))
        if start < 0:  # its table is full: grow the bank's tables, then book
            bank.reserve(cc.window_room(cycles, self.window))
            start = cc.window_book(bank.W, bank.sc, self.index, float(now), float(cycles))
        return start


class WindowBank:
    """The windows of ``ports`` :class:`WindowPort` s in arrays (a crossbar's slice ports), so
    that compiled code books any of them: per port an open-addressed table of its windows
    (:mod:`simgpu.sim.cache_core`) of :attr:`capacity` slots, kept at most half full (it grows
    as needed), and its scalars ``sc[port, SC_*]``."""


    __slots__ = ("W", "sc")

    def __init__(self, ports: int, capacity: int = 2048) -> None:
        if capacity < 8 or capacity & (capacity - 1):
            raise SimgpuError(f"WindowBank: capacity = {capacity}, expected a power of two >= 8")
        self.sc = np.zeros((ports, cc.NSC))
        self.W = self._table(ports, capacity)

    @staticmethod
    def _table(ports: int, capacity: int) -> np.ndarray:
        W = np.zeros((ports, capacity, cc.NW))
        W[:, :, cc.W_KEY] = -1.0
        return W

    @property
    def capacity(self) -> int:
        return int(self.W.shape[1])

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more windows in every port's table."""
        need = int(self.sc[:, cc.SC_COUNT].max()) + extra
        cap = self.capacity
        if need <= cap // 2:
            return
        while need > cap // 2:
            cap *= 2
        new = self._table(self.W.shape[0], cap)
        cc.window_rehash(self.W, self.sc, new)
        self.W = new


class SharedMemory:
    """Banked shared memory of one SM."""

    __slots__ = ("banks", "width", "port", "accesses", "wavefronts", "conflicts")

    def __init__(self, banks: int, bank_width_bytes: int) -> None:
        if banks <= 0 or bank_width_bytes <= 0:
            raise SimgpuError(
                f"shared memory: banks = {banks}, bank_width_bytes = {bank_width_bytes};"
                " expected both > 0"
            )
        self.banks = banks
        self.width = bank_width_bytes
        self.port = Port("shared", banks * bank_width_bytes)
        self.accesses = 0
        self.wavefronts = 0
        self.conflicts = 0

    def degree(self, lane_addrs: Iterable[int]) -> int:
        """Cycles (wavefronts) one warp access needs: the most distinct words in one bank."""
        words_per_bank: dict[int, set[int]] = {}
        for a in lane_addrs:
            word = a // self.width
            words_per_bank.setdefault(word % self.banks, set()).add(word)
        return max((len(w) for w in words_per_bank.values()), default=1)

    def access(self, now: float, nbytes: int, lane_addrs: Iterable[int] | None) -> float:
        """Book the banks for one warp access at ``now``; return the cycle it starts."""
        if lane_addrs is not None:
            n = self.degree(lane_addrs)
        else:
            n = max(1, -(-nbytes // (self.banks * self.width)))
        self.accesses += 1
        self.wavefronts += n
        self.conflicts += n - 1
        return self.port.book(now, n)
