"""The compiled tags and slice ports of :mod:`simgpu.sim.cache`, :mod:`simgpu.sim.l2` and
:mod:`simgpu.sim.noc`: state in numpy arrays and numba dictionaries, transitions in numba.

:class:`~simgpu.sim.cache.SectorCache`, :class:`~simgpu.sim.l2.L2` and
:class:`~simgpu.sim.cache.WindowPort` hold these arrays and document the rules; here they are
written over arrays, so that one compiled call can serve many requests (a warp's stores,
:meth:`simgpu.sim.system.MemorySystem.submit_many`):

* tags of one cache: ``tag[set, way]`` (line address, -1 for an empty way), ``valid`` and
  ``dirty`` (sector masks) and ``age`` (the recency or arrival stamp: the way with the lowest
  stamp of a full set is the victim, which is what the insertion-ordered dict of each set did
  before), and ``st[ST_*]`` (the counters, the stamp clock, the resident line count and the
  state of the random-replacement generator). An L2 stacks one such set of arrays per
  partition (``tag[partition, set, way]``, ``st[partition, ST_*]``).
* a slice port (window booking, :class:`~simgpu.sim.cache.WindowPort`): ``used`` (window ->
  cycles carried) and ``skip`` (full window -> a later window that may have room), numba
  dictionaries, and ``sc[SC_*]``.

Every function is compiled with ``cache=True``: the machine code is kept on disk next to this
file (``__pycache__``), so only the first run after a change pays for compiling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types
from numba.typed import Dict

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
NSC = 7

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
def _find(tag: np.ndarray, s: int, line: int) -> int:
    row = tag[s]
    for w in range(row.shape[0]):
        if row[w] == line:
            return w
    return -1


@njit(cache=True)
def probe(tag: np.ndarray, valid: np.ndarray, s: int, line: int) -> int:
    """Valid-sector mask of a line (0 if absent); recency and counters untouched."""
    w = _find(tag, s, line)
    return valid[s, w] if w >= 0 else 0


@njit(cache=True)
def lookup(tag: np.ndarray, valid: np.ndarray, age: np.ndarray, st: np.ndarray, s: int,
           line: int, sectors: int) -> int:
    """Count a request, refresh the line's recency on a hit (LRU); return the present
    sectors."""
    w = _find(tag, s, line)
    if w < 0:
        st[ST_MISSES] += 1
        st[ST_SECTOR_MISSES] += popcount(sectors)
        return 0
    if st[ST_LRU]:
        age[s, w] = st[ST_CLOCK]
        st[ST_CLOCK] += 1
    present = valid[s, w] & sectors
    if present == sectors:
        st[ST_HITS] += 1
    else:
        st[ST_MISSES] += 1
    n_hit = popcount(present)
    st[ST_SECTOR_HITS] += n_hit
    st[ST_SECTOR_MISSES] += popcount(sectors) - n_hit
    return present


@njit(cache=True)
def _victim_way(age: np.ndarray, st: np.ndarray, s: int) -> int:
    """The way a full set gives up: the oldest stamp, or a random way."""
    ways = age.shape[1]
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
        if age[s, w] < age[s, best]:
            best = w
    return best


@njit(cache=True)
def fill(tag: np.ndarray, valid: np.ndarray, dirty: np.ndarray, age: np.ndarray,
         st: np.ndarray, s: int, line: int, sectors: int, dmask: int) -> tuple[int, int, int]:
    """Make ``sectors`` valid (``dmask`` of them dirty), allocating the line if absent.

    Returns the evicted line as (line, valid, dirty); line -1 when nothing was evicted."""
    st[ST_FILLS] += 1
    w = _find(tag, s, line)
    if w >= 0:
        if st[ST_LRU]:
            age[s, w] = st[ST_CLOCK]
            st[ST_CLOCK] += 1
        valid[s, w] |= sectors
        dirty[s, w] |= dmask
        return -1, 0, 0
    v_line, v_valid, v_dirty = -1, 0, 0
    w = _find(tag, s, -1)
    if w < 0:  # full: evict
        w = _victim_way(age, st, s)
        v_line, v_valid, v_dirty = tag[s, w], valid[s, w], dirty[s, w]
        st[ST_EVICTIONS] += 1
        if v_dirty:
            st[ST_DIRTY_EVICTIONS] += 1
    else:
        st[ST_COUNT] += 1
    tag[s, w] = line
    valid[s, w] = sectors
    dirty[s, w] = dmask
    age[s, w] = st[ST_CLOCK]
    st[ST_CLOCK] += 1
    return v_line, v_valid, v_dirty


@njit(cache=True)
def write(tag: np.ndarray, valid: np.ndarray, dirty: np.ndarray, age: np.ndarray,
          st: np.ndarray, s: int, line: int, sectors: int,
          allocate: bool) -> tuple[bool, int, int, int]:
    """A store of ``sectors``: update a present line (marking them dirty with ``allocate``) or,
    with ``allocate``, allocate it valid and dirty. Returns (hit, evicted line, valid,
    dirty), the line -1 when nothing was evicted."""
    st[ST_WRITES] += 1
    w = _find(tag, s, line)
    if w >= 0:
        if st[ST_LRU]:
            age[s, w] = st[ST_CLOCK]
            st[ST_CLOCK] += 1
        valid[s, w] |= sectors
        if allocate:
            dirty[s, w] |= sectors
        return True, -1, 0, 0
    if not allocate:
        return False, -1, 0, 0
    st[ST_FILLS] -= 1  # fill() counts it; a write-allocate is not a fill from below
    v_line, v_valid, v_dirty = fill(tag, valid, dirty, age, st, s, line, sectors, sectors)
    return False, v_line, v_valid, v_dirty


@njit(cache=True)
def remove(tag: np.ndarray, valid: np.ndarray, dirty: np.ndarray, st: np.ndarray, s: int,
           line: int) -> tuple[bool, int, int]:
    """Drop a line; return (present, valid, dirty)."""
    w = _find(tag, s, line)
    if w < 0:
        return False, 0, 0
    tag[s, w] = -1
    st[ST_COUNT] -= 1
    return True, valid[s, w], dirty[s, w]


@njit(cache=True)
def dirty_sectors(tag: np.ndarray, dirty: np.ndarray) -> int:
    n = 0
    for s in range(tag.shape[0]):
        for w in range(tag.shape[1]):
            if tag[s, w] >= 0:
                n += popcount(dirty[s, w])
    return n


# ---- the L2: partitions stacked ----------------------------------------------------------
@njit(cache=True)
def l2_cascade(tag: np.ndarray, valid: np.ndarray, dirty: np.ndarray, age: np.ndarray,
               st: np.ndarray, p: int, s: int, v_line: int, v_valid: int, v_dirty: int,
               wb: np.ndarray, n_wb: int) -> int:
    """Move a line evicted from partition ``p`` on to the next partition, and on, or write its
    dirty sectors back (appended to ``wb[n_wb]`` as (line, dirty)). Returns the write-back
    count."""
    parts = tag.shape[0]
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
        w = _find(tag[p], s, v_line)
        if w >= 0 and valid[p, s, w]:
            if v_dirty:  # merge the dirty sectors into the copy that stays
                fill(tag[p], valid[p], dirty[p], age[p], st[p], s, v_line, v_valid, v_dirty)
                st[p, ST_FILLS] -= 1
            return n_wb
        st[p, ST_DEMOTIONS] += 1
        v_line, v_valid, v_dirty = fill(tag[p], valid[p], dirty[p], age[p], st[p], s, v_line,
                                        v_valid, v_dirty)
        st[p, ST_FILLS] -= 1  # a demotion is not a fill from memory
    return n_wb


@njit(cache=True)
def l2_fill(tag: np.ndarray, valid: np.ndarray, dirty: np.ndarray, age: np.ndarray,
            st: np.ndarray, p: int, s: int, line: int, sectors: int, dmask: int,
            wb: np.ndarray, n_wb: int) -> int:
    """Insert into partition ``p``; cascade the victim. Returns the write-back count."""
    v_line, v_valid, v_dirty = fill(tag[p], valid[p], dirty[p], age[p], st[p], s, line,
                                    sectors, dmask)
    return l2_cascade(tag, valid, dirty, age, st, p, s, v_line, v_valid, v_dirty, wb, n_wb)


@njit(cache=True)
def l2_write(tag: np.ndarray, valid: np.ndarray, dirty: np.ndarray, age: np.ndarray,
             st: np.ndarray, p: int, s: int, line: int, sectors: int, wb: np.ndarray,
             n_wb: int) -> tuple[bool, int]:
    """A store into partition ``p`` (write-back, write-allocate per sector); copies in the
    other partitions are dropped and their sectors merged. Returns (hit, write-back count)."""
    parts = tag.shape[0]
    merged_valid = 0
    merged_dirty = 0
    for k in range(1, parts):
        q = (p + k) % parts
        found, o_valid, o_dirty = remove(tag[q], valid[q], dirty[q], st[q], s, line)
        if found:
            st[p, ST_INVALIDATIONS] += 1
            merged_valid |= o_valid
            merged_dirty |= o_dirty
    hit, v_line, v_valid, v_dirty = write(tag[p], valid[p], dirty[p], age[p], st[p], s, line,
                                          sectors, True)
    n_wb = l2_cascade(tag, valid, dirty, age, st, p, s, v_line, v_valid, v_dirty, wb, n_wb)
    if merged_valid:
        fill(tag[p], valid[p], dirty[p], age[p], st[p], s, line, merged_valid, merged_dirty)
        st[p, ST_FILLS] -= 1
    return hit, n_wb


# ---- slice ports: bookings by windows --------------------------------------------------
def new_window_maps() -> tuple[Dict, Dict]:
    """Empty ``used`` and ``skip`` maps of one slice port."""
    return (Dict.empty(key_type=types.int64, value_type=types.float64),
            Dict.empty(key_type=types.int64, value_type=types.int64))


@njit(cache=True)
def _room(skip: Dict, k: int) -> int:
    """The first window from ``k`` on that is not full (path compression on the way)."""
    root = k
    while root in skip:
        root = skip[root]
    while k in skip and skip[k] != root:
        nxt = skip[k]
        skip[k] = root
        k = nxt
    return root


@njit(cache=True)
def window_book(used: Dict, skip: Dict, sc: np.ndarray, now: float, cycles: float) -> float:
    """Book ``cycles`` arriving at ``now``; return the start cycle (WindowPort.book)."""
    w = sc[SC_WINDOW]
    if now < sc[SC_LOW]:
        sc[SC_LOW] = now
    k = _room(skip, int(now // w))
    u = used.get(k, 0.0)
    base = k * w
    start = base + u if base + u > now else now
    total = u + cycles
    while total > w:  # spill what does not fit into the following windows with room
        used[k] = w
        skip[k] = k + 1
        k = _room(skip, k + 1)
        total = used.get(k, 0.0) + total - w
    used[k] = total
    if total >= w:
        skip[k] = k + 1
    end = start + cycles
    if end > sc[SC_NEXT_FREE]:
        sc[SC_NEXT_FREE] = end
    sc[SC_BUSY] += cycles
    sc[SC_USES] += 1
    if len(used) > sc[SC_LIMIT]:
        floor = int(sc[SC_LOW] // w) - int(sc[SC_KEEP])
        old = [key for key in used if key < floor]
        for key in old:
            del used[key]
            if key in skip:
                del skip[key]
        sc[SC_LOW] = np.inf
        sc[SC_LIMIT] = len(used) + 2 * sc[SC_KEEP]
    return start


# ---- a warp's stores ---------------------------------------------------------------------
@njit(cache=True)
def store_batch(lines: np.ndarray, masks: np.ndarray, masks_l2: np.ndarray, now: float,
                port: np.ndarray, l1_bytes_per_cycle: float, sector_bytes: int,
                l1_tag: np.ndarray, l1_valid: np.ndarray, l1_dirty: np.ndarray,
                l1_age: np.ndarray, l1_st: np.ndarray, l1_shift: int, cached: bool,
                tag: np.ndarray, valid: np.ndarray, dirty: np.ndarray, age: np.ndarray,
                st: np.ndarray, l2_shift: int, l2_div: int, p: int, slices: int,
                used: Any, skip: Any, sc: np.ndarray, xbar_bytes_per_cycle: float,
                request_bytes: float, noc: float, write_back: bool, t_slice: np.ndarray,
                wb: np.ndarray, wb_req: np.ndarray) -> int:
    """One SM's stores of lines ``lines`` (sector masks ``masks``; ``masks_l2`` in the L2's
    sectors), in order, as :meth:`simgpu.sim.system.MemorySystem.store_many` describes them:
    the L1 port (``port``: next free cycle, busy cycles, uses), the L1's copy (``cached``:
    write-through, no allocate), the crossbar slice port (its start goes to ``t_slice[i]``)
    and, with ``write_back``, the near L2 partition ``p`` (write-back, allocate), the lines it
    writes back in ``wb`` and the request that caused each in ``wb_req``. Returns the
    write-back count."""
    n_wb = 0
    l1_sets = l1_tag.shape[0]
    l2_sets = tag.shape[1]
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
            write(l1_tag, l1_valid, l1_dirty, l1_age, l1_st, (line >> l1_shift) % l1_sets,
                  line, mask, False)
        g = set_index(line, l2_shift, True, l2_div, l2_sets)
        k = p * slices + g % slices
        nb = nbytes if nbytes > request_bytes else request_bytes
        t_slice[i] = window_book(used[k], skip[k], sc[k], start + noc, nb / xbar_bytes_per_cycle)
        if write_back:
            first = n_wb
            hit, n_wb = l2_write(tag, valid, dirty, age, st, p, g, line, masks_l2[i], wb, n_wb)
            for j in range(first, n_wb):
                wb_req[j] = i
    return n_wb
