"""The compiled tags and slice ports of :mod:`simgpu.sim.cache`, :mod:`simgpu.sim.l2` and
:mod:`simgpu.sim.noc`: state in numpy arrays, transitions in numba.

:class:`~simgpu.sim.cache.SectorCache`, :class:`~simgpu.sim.l2.L2` and
:class:`~simgpu.sim.cache.WindowPort` hold these arrays and document the rules; here they are
written over arrays, so that one compiled call can serve many requests (a warp's stores,
:meth:`simgpu.sim.system.MemorySystem.submit_many`):

* tags of one cache: ``T[set, way, F_*]``: the line address plus one (``F_TAG``, 0 for an
  empty way, so that new tags are zeros and a cache no request reaches costs no memory),
  the valid and dirty sector masks, and the recency or arrival stamp (``F_AGE``: the way with
  the lowest stamp of a full set is the victim, which is what the insertion-ordered dict of each
  set did before); and ``st[ST_*]`` (the counters, the stamp clock, the resident line count and
  the state of the random-replacement generator). An L2 stacks one such pair per partition
  (``T[partition, set, way, F_*]``, ``st[partition, ST_*]``). Few arrays, because each array a
  call from Python passes costs about a tenth of a microsecond to unpack.
* slice ports (window booking, :class:`~simgpu.sim.cache.WindowPort`), a bank of them in
  arrays: per port a hash table of its windows (cycles carried, skip link to a later window
  that may have room) and ``sc[port, SC_*]``.

Every function is compiled with ``cache=True``: the machine code is kept on disk next to this
file (``__pycache__``), so only the first run after a change pays for compiling. The load
path's cached code (:mod:`simgpu.sim.load_core`) holds these functions compiled in and is keyed
on its own file: change that file with this one.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simgpu.sim.jitargs import bool_arg, int_arg

# ---- st: one cache's scalars --------------------------------------------------------------
ST_HITS = 0  # requests whose sectors were all present
ST_MISSES = 1  # requests that missed at least one sector
ST_SECTOR_HITS = 2
ST_SECTOR_MISSES = 3
ST_EVICTIONS = 4
ST_DIRTY_EVICTIONS = 5
ST_FILLS = 6
ST_WRITES = 7
ST_CLOCK = 8  # the next recency / arrival stamp
ST_COUNT = 9  # resident lines
ST_RNG = 10  # xorshift64 state of the random replacement policy
ST_LRU = 11  # 1: LRU (a hit refreshes the stamp), 0: FIFO or random
ST_RANDOM = 12  # 1: random victims
ST_DEMOTIONS = 13  # (an L2 partition's row: lines moved on to it from the one before)
ST_INVALIDATIONS = 14  # (an L2 partition's row: copies dropped by a store elsewhere)
NST = 15

# ---- T: one way's fields
F_TAG = 0
F_VALID = 1
F_DIRTY = 2
F_AGE = 3
NF = 4

#: the counters :meth:`SectorCache.counters` reports, in its order
COUNTERS = ("hits", "misses", "sector_hits", "sector_misses", "evictions", "dirty_evictions",
            "fills", "writes")

# ---- sc: one slice port's scalars --------------------------------------------------------
SC_WINDOW = 0  # cycles per window (and cycles each window carries)
SC_LOW = 1  # the earliest arrival booked since windows were last forgotten
SC_LIMIT = 2  # forget old windows when more than this many are kept
SC_NEXT_FREE = 3  # the end of the latest booking
SC_BUSY = 4  # cycles booked
SC_USES = 5  # bookings
SC_KEEP = 6  # windows kept behind the earliest recent arrival
SC_COUNT = 7  # windows held in the table
NSC = 8

_M40 = (1 << 40) - 1


@njit(cache=True)
def mix64(x: int) -> int:
    """A bijective mixing of a line index (two xor-shifts and an odd multiply mod 2**40).

    Used to spread line addresses over L2 slices and sets so that power-of-two strides do not
    pile onto one slice (GPUs hash addresses to L2 slices for the same reason). Each step is
    invertible on 40-bit values (128 TiB of 128-byte lines), so distinct lines stay distinct.
    """
    x &= _M40
    x ^= x >> 17
    x = (x * 0x9E3779B97) & _M40  # (int64 wraps: the low 40 bits are the exact product's)
    return x ^ (x >> 13)


@njit(cache=True)
def set_index(line: int, shift: int, hashed: bool, div: int, n_sets: int) -> int:
    """The set a line maps to: its line index, or its hash (:func:`mix64`) // ``div``, modulo
    the set count."""
    idx = line >> shift
    if hashed:
        idx = mix64(idx) // div
    return idx % n_sets


@njit(cache=True)
def popcount(x: int) -> int:
    n = 0
    while x:
        x &= x - 1
        n += 1
    return n


@njit(cache=True)
def _find(T: np.ndarray, s: int, line: int) -> int:
    for w in range(T.shape[1]):
        if T[s, w, F_TAG] == line + 1:
            return w
    return -1


@njit(cache=True)
def probe(T: np.ndarray, s: int, line: int) -> int:
    """Valid-sector mask of a line (0 if absent); recency and counters untouched."""
    w = _find(T, s, line)
    return T[s, w, F_VALID] if w >= 0 else 0


@njit(cache=True)
def _refresh(T: np.ndarray, st: np.ndarray, s: int, w: int) -> None:
    """A hit or a store on way ``w`` of set ``s``: with LRU it becomes the most recent."""
    if st[ST_LRU]:
        T[s, w, F_AGE] = st[ST_CLOCK]
        st[ST_CLOCK] += 1


@njit(cache=True)
def lookup(T: np.ndarray, st: np.ndarray, s: int, line: int, sectors: int) -> int:
    """Count a request, refresh the line's recency on a hit (LRU); return the present
    sectors."""
    w = _find(T, s, line)
    if w < 0:
        st[ST_MISSES] += 1
        st[ST_SECTOR_MISSES] += popcount(sectors)
        return 0
    _refresh(T, st, s, w)
    present = T[s, w, F_VALID] & sectors
    if present == sectors:
        st[ST_HITS] += 1
    else:
        st[ST_MISSES] += 1
    n_hit = popcount(present)
    st[ST_SECTOR_HITS] += n_hit
    st[ST_SECTOR_MISSES] += popcount(sectors) - n_hit
    return present


@njit(cache=True)
def _victim_way(T: np.ndarray, st: np.ndarray, s: int) -> int:
    """The way a full set gives up: the oldest stamp, or a random way."""
    ways = T.shape[1]
    if st[ST_RANDOM]:
        x = st[ST_RNG]  # xorshift64 (Marsaglia 2003), kept in the cache's own state
        x ^= (x << 13) & 0x7FFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0x7FFFFFFFFFFFFFFF
        x &= 0x7FFFFFFFFFFFFFFF
        if x == 0:
            x = 1
        st[ST_RNG] = x
        return x % ways
    best = 0
    for w in range(1, ways):
        if T[s, w, F_AGE] < T[s, best, F_AGE]:
            best = w
    return best


@njit(cache=True)
def fill(T: np.ndarray, st: np.ndarray, s: int, line: int, sectors: int,
         dmask: int) -> tuple[int, int, int]:
    """Make ``sectors`` valid (``dmask`` of them dirty), allocating the line if absent.

    Returns the evicted line as (line, valid, dirty); line -1 when nothing was evicted."""
    st[ST_FILLS] += 1
    w = _find(T, s, line)
    if w >= 0:
        _refresh(T, st, s, w)
        T[s, w, F_VALID] |= sectors
        T[s, w, F_DIRTY] |= dmask
        return -1, 0, 0
    v_line, v_valid, v_dirty = -1, 0, 0
    w = _find(T, s, int_arg(-1))
    if w < 0:  # full: evict
        w = _victim_way(T, st, s)
        v_line, v_valid, v_dirty = T[s, w, F_TAG] - 1, T[s, w, F_VALID], T[s, w, F_DIRTY]
        st[ST_EVICTIONS] += 1
        if v_dirty:
            st[ST_DIRTY_EVICTIONS] += 1
    else:
        st[ST_COUNT] += 1
    T[s, w, F_TAG] = line + 1
    T[s, w, F_VALID] = sectors
    T[s, w, F_DIRTY] = dmask
    T[s, w, F_AGE] = st[ST_CLOCK]
    st[ST_CLOCK] += 1
    return v_line, v_valid, v_dirty


@njit(cache=True)
def write(T: np.ndarray, st: np.ndarray, s: int, line: int, sectors: int,
          allocate: bool) -> tuple[bool, int, int, int]:
    """A store of ``sectors``: update a present line (marking them dirty with ``allocate``) or,
    with ``allocate``, allocate it valid and dirty. Returns (hit, evicted line, valid,
    dirty), the line -1 when nothing was evicted."""
    st[ST_WRITES] += 1
    w = _find(T, s, line)
    if w >= 0:
        _refresh(T, st, s, w)
        T[s, w, F_VALID] |= sectors
        if allocate:
            T[s, w, F_DIRTY] |= sectors
        return True, -1, 0, 0
    if not allocate:
        return False, -1, 0, 0
    st[ST_FILLS] -= 1  # fill() counts it; a write-allocate is not a fill from below
    v_line, v_valid, v_dirty = fill(T, st, s, line, sectors, sectors)
    return False, v_line, v_valid, v_dirty


@njit(cache=True)
def remove(T: np.ndarray, st: np.ndarray, s: int, line: int) -> tuple[bool, int, int]:
    """Drop a line; return (present, valid, dirty)."""
    w = _find(T, s, line)
    if w < 0:
        return False, 0, 0
    T[s, w, F_TAG] = 0
    st[ST_COUNT] -= 1
    return True, T[s, w, F_VALID], T[s, w, F_DIRTY]


@njit(cache=True)
def dirty_sectors(T: np.ndarray) -> int:
    n = 0
    for s in range(T.shape[0]):
        for w in range(T.shape[1]):
            if T[s, w, F_TAG] > 0:
                n += popcount(T[s, w, F_DIRTY])
    return n


# ---- the L2: partitions stacked ----------------------------------------------------------
@njit(cache=True)
def l2_cascade(T: np.ndarray, st: np.ndarray, p: int, s: int, v_line: int, v_valid: int,
               v_dirty: int, wb: np.ndarray, n_wb: int) -> int:
    """Move a line evicted from partition ``p`` on to the next partition, and on, or write its
    dirty sectors back (appended to ``wb[n_wb]`` as (line, dirty)). Returns the write-back
    count."""
    parts = T.shape[0]
    hops = 1
    while v_line >= 0:
        if hops >= parts:
            if v_dirty:
                wb[n_wb, 0] = v_line
                wb[n_wb, 1] = v_dirty
                n_wb += 1
            return n_wb
        p = (p + 1) % parts
        hops += 1
        w = _find(T[p], s, v_line)
        if w >= 0 and T[p, s, w, F_VALID]:
            if v_dirty:  # merge the dirty sectors into the copy that stays
                fill(T[p], st[p], s, v_line, v_valid, v_dirty)
                st[p, ST_FILLS] -= 1
            return n_wb
        st[p, ST_DEMOTIONS] += 1
        v_line, v_valid, v_dirty = fill(T[p], st[p], s, v_line, v_valid, v_dirty)
        st[p, ST_FILLS] -= 1  # a demotion is not a fill from memory
    return n_wb


@njit(cache=True)
def l2_fill(T: np.ndarray, st: np.ndarray, p: int, s: int, line: int, sectors: int,
            dmask: int, wb: np.ndarray, n_wb: int) -> int:
    """Insert into partition ``p``; cascade the victim. Returns the write-back count."""
    v_line, v_valid, v_dirty = fill(T[p], st[p], s, line, sectors, dmask)
    return l2_cascade(T, st, p, s, v_line, v_valid, v_dirty, wb, n_wb)


@njit(cache=True)
def l2_write(T: np.ndarray, st: np.ndarray, p: int, s: int, line: int, sectors: int,
             wb: np.ndarray, n_wb: int) -> tuple[bool, int]:
    """A store into partition ``p`` (write-back, write-allocate per sector); copies in the
    other partitions are dropped and their sectors merged. Returns (hit, write-back count)."""
    parts = T.shape[0]
    merged_valid = int_arg(0)
    merged_dirty = int_arg(0)
    for k in range(1, parts):
        q = (p + k) % parts
        found, o_valid, o_dirty = remove(T[q], st[q], s, line)
        if found:
            st[p, ST_INVALIDATIONS] += 1
            merged_valid |= o_valid
            merged_dirty |= o_dirty
    hit, v_line, v_valid, v_dirty = write(T[p], st[p], s, line, sectors, bool_arg(True))
    n_wb = l2_cascade(T, st, p, s, v_line, v_valid, v_dirty, wb, n_wb)
    if merged_valid:
        fill(T[p], st[p], s, line, merged_valid, merged_dirty)
        st[p, ST_FILLS] -= 1
    return hit, n_wb


# ---- slice ports: bookings by windows --------------------------------------------------
# A bank of ports (a crossbar's slice ports; a lone WindowPort is a bank of one). Port i's
# windows form a map window -> (cycles carried, the later window its skip link points to, -1:
# none) in an open-addressed hash table W[i, slot, W_*] (W_KEY -1: an empty slot; the window
# indices are exact in float64). Every window with a skip link also carries cycles, so one
# table holds both. A table is kept at most half full (window_book refuses a booking that
# could fill it further; the caller grows the bank), so probes stay short and end on an empty
# slot.
W_KEY = 0
W_USED = 1
W_SKIP = 2
NW = 3
_HASH = 0x9E3779B1  # an odd multiplier (golden ratio): consecutive windows spread over slots


@njit(cache=True)
def _wslot(W: np.ndarray, i: int, key: int) -> int:
    """The slot of window ``key`` in port ``i``'s table, or the empty slot it would take."""
    mask = W.shape[1] - 1
    s = (key * _HASH) & mask
    while True:
        k = W[i, s, W_KEY]
        if k == key or k == -1.0:
            return s
        s = (s + 1) & mask


@njit(cache=True)
def _wput(W: np.ndarray, sc: np.ndarray, i: int, key: int, value: float) -> int:
    """used[key] = value (inserting the window if absent); returns its slot."""
    s = _wslot(W, i, key)
    if W[i, s, W_KEY] == -1.0:
        W[i, s, W_KEY] = key
        W[i, s, W_SKIP] = -1.0
        sc[i, SC_COUNT] += 1
    W[i, s, W_USED] = value
    return s


@njit(cache=True)
def _wskip(W: np.ndarray, i: int, key: int) -> int:
    """skip[key], or -1 when the window has no skip link."""
    s = _wslot(W, i, key)
    return int(W[i, s, W_SKIP]) if W[i, s, W_KEY] == key else -1


@njit(cache=True)
def _room(W: np.ndarray, i: int, k: int) -> int:
    """The first window from ``k`` on that is not full (path compression on the way)."""
    root = k
    while True:
        nxt = _wskip(W, i, root)
        if nxt < 0:
            break
        root = nxt
    while True:
        s = _wslot(W, i, k)
        if W[i, s, W_KEY] != k or W[i, s, W_SKIP] < 0 or W[i, s, W_SKIP] == root:
            break
        k = int(W[i, s, W_SKIP])
        W[i, s, W_SKIP] = root
    return root


@njit(cache=True)
def _wrebuild(W: np.ndarray, sc: np.ndarray, i: int, floor: int) -> None:
    """Forget port ``i``'s windows before ``floor`` (the table is rebuilt with the others)."""
    old = W[i].copy()
    W[i, :, W_KEY] = -1.0
    sc[i, SC_COUNT] = 0
    for s in range(old.shape[0]):
        key = old[s, W_KEY]
        if key >= 0 and key >= floor:
            t = _wput(W, sc, i, int(key), old[s, W_USED])
            W[i, t, W_SKIP] = old[s, W_SKIP]


@njit(cache=True)
def window_rehash(W: np.ndarray, sc: np.ndarray, new: np.ndarray) -> None:
    """Copy every port's windows into the larger tables ``new``."""
    for i in range(W.shape[0]):
        sc[i, SC_COUNT] = 0
        for s in range(W.shape[1]):
            key = W[i, s, W_KEY]
            if key >= 0:
                t = _wput(new, sc, i, int(key), W[i, s, W_USED])
                new[i, t, W_SKIP] = W[i, s, W_SKIP]


@njit(cache=True)
def window_room(cycles: float, window: float) -> int:
    """Windows one booking of ``cycles`` may add to a table (its own and those it spills
    into, one more for a fractional start)."""
    return int(cycles // window) + 2


@njit(cache=True)
def window_book(W: np.ndarray, sc: np.ndarray, i: int, now: float, cycles: float) -> float:
    """Book ``cycles`` arriving at ``now`` on port ``i``; return the start cycle (the rules:
    :class:`simgpu.sim.cache.WindowPort`). Returns -1, booking nothing, when the table lacks
    room for the windows the booking may touch (:func:`window_room`)."""
    w = sc[i, SC_WINDOW]
    if sc[i, SC_COUNT] + window_room(cycles, w) > W.shape[1] // 2:
        return -1.0
    if now < sc[i, SC_LOW]:
        sc[i, SC_LOW] = now
    k = _room(W, i, int(now // w))
    s = _wslot(W, i, k)
    u = W[i, s, W_USED] if W[i, s, W_KEY] == k else 0.0
    base = k * w
    start = base + u if base + u > now else now
    total = u + cycles
    while total > w:  # spill what does not fit into the following windows with room
        t = _wput(W, sc, i, k, w)
        W[i, t, W_SKIP] = k + 1
        k = _room(W, i, k + 1)
        s = _wslot(W, i, k)
        total = (W[i, s, W_USED] if W[i, s, W_KEY] == k else 0.0) + total - w
    t = _wput(W, sc, i, k, total)
    if total >= w:
        W[i, t, W_SKIP] = k + 1
    end = start + cycles
    if end > sc[i, SC_NEXT_FREE]:
        sc[i, SC_NEXT_FREE] = end
    sc[i, SC_BUSY] += cycles
    sc[i, SC_USES] += 1
    if sc[i, SC_COUNT] > sc[i, SC_LIMIT]:
        _wrebuild(W, sc, i, int(sc[i, SC_LOW] // w) - int(sc[i, SC_KEEP]))
        sc[i, SC_LOW] = np.inf
        sc[i, SC_LIMIT] = sc[i, SC_COUNT] + 2 * sc[i, SC_KEEP]
    return start




# ---- a warp's stores ---------------------------------------------------------------------
@njit(cache=True)
def store_batch(lines: np.ndarray, masks: np.ndarray, masks_l2: np.ndarray, now: float,
                port: np.ndarray, l1_bytes_per_cycle: float, sector_bytes: int,
                l1_T: np.ndarray, l1_st: np.ndarray, l1_shift: int, cached: bool,
                T: np.ndarray, st: np.ndarray, l2_shift: int, l2_div: int, p: int,
                slices: int, W: np.ndarray, sc: np.ndarray, xbar_bytes_per_cycle: float,
                request_bytes: float, room: int, noc: float, write_back: bool,
                t_slice: np.ndarray, wb: np.ndarray, wb_req: np.ndarray) -> int:
    """One SM's stores of lines ``lines`` (sector masks ``masks``; ``masks_l2`` in the L2's
    sectors), in order, as :meth:`simgpu.sim.system.MemorySystem.store_many` describes them:
    the L1 port (``port``: next free cycle, busy cycles, uses), the L1's copy (``cached``:
    write-through, no allocate), the crossbar slice port (its start goes to ``t_slice[i]``)
    and, with ``write_back``, the near L2 partition ``p`` (write-back, allocate), the lines it
    writes back in ``wb`` and the request that caused each in ``wb_req``. Returns the
    write-back count, or -1, having done nothing, when a port's table of the bank ``W``,
    ``sc`` might fill (each store adding ``room`` windows to one port)."""
    need = lines.shape[0] * room
    for k in range(sc.shape[0]):
        if sc[k, SC_COUNT] + need > W.shape[1] // 2:
            return -1
    n_wb = int_arg(0)
    l1_sets = l1_T.shape[0]
    l2_sets = T.shape[1]
    for i in range(lines.shape[0]):
        line = lines[i]
        mask = masks[i]
        nbytes = sector_bytes * popcount(mask)
        start = port[0] if port[0] > now else now  # Port.use
        occ = nbytes / l1_bytes_per_cycle
        port[0] = start + occ
        port[1] += occ
        port[2] += 1
        if cached and l1_sets:
            write(l1_T, l1_st, (line >> l1_shift) % l1_sets, line, mask, bool_arg(False))
        g = set_index(line, l2_shift, True, l2_div, l2_sets)
        k = p * slices + g % slices
        nb = nbytes if nbytes > request_bytes else request_bytes
        t_slice[i] = window_book(W, sc, k, start + noc, nb / xbar_bytes_per_cycle)
        if write_back:
            first = n_wb
            hit, n_wb = l2_write(T, st, p, g, line, masks_l2[i], wb, n_wb)
            for j in range(first, n_wb):
                wb_req[j] = i
    return n_wb


# ---- warming the tags -----------------------------------------------------------------------
@njit(cache=True)
def warm_lines(lines: np.ndarray, sectors: int, sectors_l2: int, dirty: bool, l1_T: np.ndarray,
               l1_st: np.ndarray, l1_shift: int, use_l1: bool, T: np.ndarray, st: np.ndarray,
               p: int, l2_shift: int, l2_div: int, wb: np.ndarray) -> tuple[int, int]:
    """Replay reads (or, with ``dirty``, stores) of ``lines`` through an SM's L1 and the L2
    with no timing (:meth:`simgpu.sim.system.MemorySystem.warm` has the rules). Returns the
    dirty sectors written and the dirty sectors the L2 evicted meanwhile (dropped, not
    written back)."""
    added = 0
    evicted = 0
    l1_sets = l1_T.shape[0]
    parts = T.shape[0]
    n_sets = T.shape[1]
    for i in range(lines.shape[0]):
        line = lines[i]
        if use_l1 and lookup(l1_T, l1_st, (line >> l1_shift) % l1_sets, line,
                             sectors) == sectors:
            continue
        g = set_index(line, l2_shift, True, l2_div, n_sets)
        if dirty:
            hit, n_wb = l2_write(T, st, p, g, line, sectors_l2, wb, int_arg(0))
            for j in range(n_wb):
                evicted += popcount(wb[j, 1])
            added += popcount(sectors_l2)
            continue
        if lookup(T[p], st[p], g, line, sectors_l2) != sectors_l2:
            for k in range(1, parts):  # far partitions, nearest first
                q = (p + k) % parts
                if lookup(T[q], st[q], g, line, sectors_l2) == sectors_l2:
                    break
            n_wb = l2_fill(T, st, p, g, line, sectors_l2, int_arg(0), wb, int_arg(0))
            for j in range(n_wb):
                evicted += popcount(wb[j, 1])
        if use_l1:
            fill(l1_T, l1_st, (line >> l1_shift) % l1_sets, line, sectors, int_arg(0))
    return added, evicted
