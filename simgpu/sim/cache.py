"""Caches as plain data structures: sectored set-associative tags, MSHRs, ports, shared memory.

Nothing here is a SimPy process. A cache is looked up and filled inside the event that needs it
(DESIGN.md: tag lookups are plain Python on the request); time enters only through
:class:`Port` (a "next free cycle" counter) and the latencies the caller adds.

* :class:`SectorCache`: ``sets x ways`` lines of ``line_bytes``, each with a valid and a dirty
  mask of ``sector_bytes`` sectors; replacement ``"lru"``, ``"fifo"`` or ``"random"``; set index
  either the plain line index modulo the set count or a bijective hash of it.
* :class:`MSHRTable`: outstanding misses per line, with merging of later requests for sectors
  already in flight, an entry limit and a merge limit.
* :class:`Port`: bandwidth as bytes per cycle, O(1) and eventless.
* :class:`SharedMemory`: banks of ``bank_width_bytes``; a warp's access takes as many cycles as
  the most loaded bank has distinct words (a bank conflict serialises, a broadcast does not).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from simgpu.errors import SimgpuError

__all__ = [
    "POLICIES",
    "SectorCache",
    "MSHREntry",
    "MSHRTable",
    "Port",
    "SharedMemory",
    "mix64",
]

POLICIES = ("lru", "fifo", "random")
_M40 = (1 << 40) - 1
#: a tag entry is one int: valid mask in the low bits, dirty mask above (ints keep the sets
#: out of the cyclic garbage collector's way, which matters with millions of lines)
_DIRTY_SHIFT = 32
_VALID = (1 << _DIRTY_SHIFT) - 1


def mix64(x: int) -> int:
    """A bijective mixing of a line index (two xor-shifts and an odd multiply mod 2**40).

    Used to spread line addresses over L2 slices and sets so that power-of-two strides do not
    pile onto one slice (GPUs hash addresses to L2 slices for the same reason). Each step is
    invertible on 40-bit values (128 TiB of 128-byte lines), so distinct lines stay distinct.
    """
    x &= _M40
    x ^= x >> 17
    x = (x * 0x9E3779B97) & _M40
    return x ^ (x >> 13)


class SectorCache:
    """Tags of a sectored, set-associative cache.

    Every set is a dict ``line_addr -> valid_mask | dirty_mask << 32`` whose insertion order is the
    recency (LRU) or arrival (FIFO) order; the first key is the victim. Line and sector sizes
    are the device's (at most 32 sectors per line).
    """

    __slots__ = (
        "name", "size_bytes", "ways", "line_bytes", "sector_bytes", "sectors_per_line",
        "policy", "n_sets", "hashed", "index_div", "_sets", "_rng", "_lru", "_line_shift", "_full",
        "hits", "misses", "sector_hits", "sector_misses", "evictions", "dirty_evictions",
        "fills", "writes",
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
    ) -> None:
        if policy not in POLICIES:
            raise SimgpuError(f"{name}: policy {policy!r}, expected one of {', '.join(POLICIES)}")
        if line_bytes <= 0 or line_bytes & (line_bytes - 1):
            raise SimgpuError(f"{name}: line_bytes = {line_bytes}, expected a power of two")
        if sector_bytes <= 0 or line_bytes % sector_bytes:
            raise SimgpuError(
                f"{name}: sector_bytes = {sector_bytes}, expected a divisor of {line_bytes}"
            )
        if line_bytes // sector_bytes > _DIRTY_SHIFT:
            raise SimgpuError(
                f"{name}: {line_bytes // sector_bytes} sectors per line ({line_bytes} B lines of"
                f" {sector_bytes} B sectors), expected at most {_DIRTY_SHIFT} (a tag entry keeps"
                f" the valid mask in {_DIRTY_SHIFT} bits)"
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
        self._sets: list[dict[int, int]] = [{} for _ in range(self.n_sets)]
        self._rng = rng or random.Random(0)
        self._lru = policy == "lru"
        self._line_shift = line_bytes.bit_length() - 1
        self.hits = 0  # requests whose sectors were all present
        self.misses = 0  # requests that missed at least one sector
        self.sector_hits = 0
        self.sector_misses = 0
        self.evictions = 0
        self.dirty_evictions = 0
        self.fills = 0
        self.writes = 0

    @property
    def enabled(self) -> bool:
        """False for a zero-capacity cache (e.g. L1 with the whole array carved out as shared)."""
        return self.n_sets > 0

    def set_index(self, line_addr: int) -> int:
        """The set a line maps to."""
        idx = line_addr >> self._line_shift
        if self.hashed:  # mix64, inlined
            idx &= _M40
            idx ^= idx >> 17
            idx = (idx * 0x9E3779B97) & _M40
            idx = (idx ^ (idx >> 13)) // self.index_div
        return idx % self.n_sets

    def probe(self, line_addr: int, set_idx: int = -1) -> int:
        """Valid-sector mask of a line (0 if absent), without touching recency or counters."""
        if not self.n_sets:
            return 0
        if set_idx < 0:
            set_idx = self.set_index(line_addr)
        entry = self._sets[set_idx].get(line_addr)
        return entry & _VALID if entry is not None else 0

    def lookup(self, line_addr: int, sectors: int, set_idx: int = -1) -> int:
        """Look a request up: count it, refresh recency on a hit; return the present sectors.

        ``set_idx`` may pass :meth:`set_index` when the caller has already computed it.
        """
        if not self.n_sets:
            self.misses += 1
            self.sector_misses += sectors.bit_count()
            return 0
        if set_idx < 0:
            set_idx = (
                self.set_index(line_addr)
                if self.hashed
                else (line_addr >> self._line_shift) % self.n_sets
            )
        s = self._sets[set_idx]
        entry = s.get(line_addr)
        if entry is None:
            self.misses += 1
            self.sector_misses += sectors.bit_count()
            return 0
        if self._lru:
            del s[line_addr]
            s[line_addr] = entry
        present = entry & sectors
        if present == sectors:
            self.hits += 1
        else:
            self.misses += 1
        n_hit = present.bit_count()
        self.sector_hits += n_hit
        self.sector_misses += sectors.bit_count() - n_hit
        return present

    def fill(
        self, line_addr: int, sectors: int, dirty: int = 0, set_idx: int = -1
    ) -> tuple[int, int, int] | None:
        """Make ``sectors`` valid (``dirty`` of them dirty); allocate the line if absent.

        Returns the evicted line as ``(line_addr, valid_mask, dirty_mask)``, or None.
        """
        if not self.n_sets:
            return None
        s = self._sets[set_idx if set_idx >= 0 else self.set_index(line_addr)]
        entry = s.get(line_addr)
        self.fills += 1
        if entry is not None:
            if self._lru:
                del s[line_addr]
            s[line_addr] = entry | sectors | (dirty << _DIRTY_SHIFT)
            return None
        victim = None
        if len(s) >= self.ways:
            key = self._rng.choice(list(s)) if self.policy == "random" else next(iter(s))
            v = s.pop(key)
            self.evictions += 1
            vd = v >> _DIRTY_SHIFT
            if vd:
                self.dirty_evictions += 1
            victim = (key, v & _VALID, vd)
        s[line_addr] = sectors | (dirty << _DIRTY_SHIFT)
        return victim

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
        self.writes += 1
        if not self.n_sets:
            return False, None
        if set_idx < 0:
            set_idx = self.set_index(line_addr)
        s = self._sets[set_idx]
        entry = s.get(line_addr)
        if entry is not None:
            if self._lru:
                del s[line_addr]
            entry |= sectors
            if allocate:
                entry |= sectors << _DIRTY_SHIFT
            s[line_addr] = entry
            return True, None
        if not allocate:
            return False, None
        self.fills -= 1  # fill() counts it; a write-allocate is not a fill from below
        return False, self.fill(line_addr, sectors, sectors, set_idx)

    def remove(self, line_addr: int, set_idx: int = -1) -> tuple[int, int] | None:
        """Drop a line; return its (valid, dirty) masks if it was present."""
        if not self.n_sets:
            return None
        if set_idx < 0:
            set_idx = self.set_index(line_addr)
        entry = self._sets[set_idx].pop(line_addr, None)
        return (entry & _VALID, entry >> _DIRTY_SHIFT) if entry is not None else None

    def lines(self) -> Iterable[int]:
        """Every resident line address."""
        for s in self._sets:
            yield from s

    def __len__(self) -> int:
        return sum(len(s) for s in self._sets)

    def dirty_sectors(self) -> int:
        """Number of dirty sectors held (data a write-back cache still owes to memory)."""
        return sum(
            (entry >> _DIRTY_SHIFT).bit_count() for s in self._sets for entry in s.values()
        )

    def counters(self) -> dict[str, int]:
        """The statistics counters as a dict."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "sector_hits": self.sector_hits,
            "sector_misses": self.sector_misses,
            "evictions": self.evictions,
            "dirty_evictions": self.dirty_evictions,
            "fills": self.fills,
            "writes": self.writes,
        }


class MSHREntry:
    """One outstanding miss: the sectors in flight and who waits for them."""

    __slots__ = ("line_addr", "inflight", "t_fill", "waiters", "merged")

    def __init__(self, line_addr: int, inflight: int) -> None:
        self.line_addr = line_addr
        self.inflight = inflight
        #: when the fill arrives (SM cycles) once known; None while it is still unknown
        self.t_fill: float | None = None
        #: callbacks ``f(t_fill)`` to run when the fill time becomes known
        self.waiters: list[Callable[[float], None]] = []
        self.merged = 0


class MSHRTable:
    """Miss status holding registers: at most ``entries`` lines in flight, ``merge`` per line."""

    __slots__ = ("entries", "merge", "table", "order", "allocations", "merges", "stalls")

    def __init__(self, entries: int, merge: int) -> None:
        if entries <= 0 or merge <= 0:
            raise SimgpuError(f"MSHR: entries = {entries}, merge = {merge}; expected both > 0")
        self.entries = entries
        self.merge = merge
        self.table: dict[int, MSHREntry] = {}
        # entries in allocation order, with released ones dropped lazily: finding the oldest
        # through the dict would walk the deleted slots at its front, which grew to thousands
        # in L2 MSHRs under streaming traffic
        self.order: deque[MSHREntry] = deque()
        self.allocations = 0
        self.merges = 0
        self.stalls = 0

    def add(self, entry: MSHREntry) -> None:
        """Register a new entry (the caller checked that its line is not in flight)."""
        self.table[entry.line_addr] = entry
        self.order.append(entry)
        self.allocations += 1

    def arrived(self, now: float) -> MSHREntry | None:
        """The entry allocated first among those still held if its fill has arrived by
        ``now``, else None (fills are released oldest first, up to the first still out)."""
        order, table = self.order, self.table
        while order:
            e = order[0]
            if table.get(e.line_addr) is e:
                t = e.t_fill
                return e if t is not None and t <= now else None
            order.popleft()
        return None

    def get(self, line_addr: int) -> MSHREntry | None:
        """The entry of a line in flight, or None."""
        return self.table.get(line_addr)

    @property
    def full(self) -> bool:
        """True when no entry is free."""
        return len(self.table) >= self.entries

    def allocate(self, line_addr: int, sectors: int) -> MSHREntry:
        """A new entry (the caller checked :attr:`full` and that the line is not in flight)."""
        entry = MSHREntry(line_addr, sectors)
        self.add(entry)
        return entry

    def release(self, line_addr: int) -> MSHREntry | None:
        """Free the entry of a line whose fill has completed."""
        return self.table.pop(line_addr, None)


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

    __slots__ = ("window", "used", "skip", "low", "limit")

    #: windows kept behind the earliest recent arrival (older ones are dropped, so a booking
    #: that far in the past finds them empty)
    KEEP = 256

    def __init__(self, name: str, bytes_per_cycle: float, window: float = 16.0) -> None:
        super().__init__(name, bytes_per_cycle)
        if window <= 0:
            raise SimgpuError(f"{name}: window = {window}, expected > 0 cycles")
        self.window = window
        self.used: dict[int, float] = {}
        self.skip: dict[int, int] = {}  # full window -> a later window that may have room
        self.low = float("inf")  # the earliest arrival since windows were last forgotten
        self.limit = 2 * self.KEEP  # forget old windows when this many are kept

    def use(self, now: float, nbytes: float) -> float:
        """Book ``nbytes`` arriving at ``now``; return the start cycle."""
        return self.book(now, nbytes / self.bytes_per_cycle)

    def _room(self, k: int) -> int:
        """The first window from ``k`` on that is not full."""
        skip = self.skip
        root = k
        while root in skip:
            root = skip[root]
        while k in skip and skip[k] != root:  # path compression
            skip[k], k = root, skip[k]
        return root

    def book(self, now: float, cycles: float) -> float:
        """Book the port for ``cycles`` from ``now`` on; return the start cycle."""
        w = self.window
        used = self.used
        if now < self.low:
            self.low = now
        k = self._room(int(now // w))
        u = used.get(k, 0.0)
        base = k * w
        start = base + u if base + u > now else now
        total = u + cycles
        while total > w:  # spill what does not fit into the following windows with room
            used[k] = w
            self.skip[k] = k + 1
            k = self._room(k + 1)
            total = used.get(k, 0.0) + total - w
        used[k] = total
        if total >= w:
            self.skip[k] = k + 1
        end = start + cycles
        if end > self.next_free:
            self.next_free = end
        self.busy += cycles
        self.uses += 1
        if len(used) > self.limit:
            floor = int(self.low // w) - self.KEEP
            for key in [key for key in used if key < floor]:
                del used[key]
                self.skip.pop(key, None)
            self.low = float("inf")
            self.limit = len(used) + 2 * self.KEEP
        return start


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
