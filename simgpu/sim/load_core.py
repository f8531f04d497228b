"""The compiled load path of :class:`simgpu.sim.system.MemorySystem`: the L1 and L2 miss status
holding registers (MSHRs), the loads waiting on them, and a load's way from the L1 through the
crossbar and the L2 to a DRAM fetch, as numba functions over arrays.

:class:`~simgpu.sim.system.MemorySystem` documents the rules (latencies, merging, stalls, near
and far partitions); this module is them written over arrays, so that one call serves a warp's
loads. What must happen in Python is written to an action log ``A`` in the order it happens,
and the caller replays it in that order after the call (so SimPy events are created in the
order the rules create them):

* ``ACT_DONE`` (request, time, level): a load's completion time is decided;
* ``ACT_DRAM`` (line, bytes, delay, L2 entry, requester): submit a DRAM read whose data
  returns through :func:`dram_data`;
* ``ACT_WRITEBACK`` (line, bytes): submit the write-back of a dirty line the L2 evicted;
* ``ACT_RETRY`` (SM, time): wake the SM's stalled loads then (:func:`retry`).

State (the ``*_N`` constants give each array's width):

* ``EI[e, E_*]`` and ``EF[e, EF_*]``: MSHR entries (L1 and L2), a pool with a free stack
  ``FE``: the line, the sectors in flight, merges, outstanding fetches, the level that answers,
  the L2 set, whether the entry is held, its successor in its table's allocation order, its
  waiters (a list of ``WI``/``WF`` records), whether its fill time is known, its table; the
  fill time and the latest fetch.
* ``WI[w, WI_*]``, ``WF[w]``: waiter records (a pool with a free stack ``FW``): what to do when
  an entry's fill time is known (``W_REQ``: a load completes then; ``W_REQ_MAX``: a merged load
  completes at the later of then and ``WF``; ``W_L2``: an L2 merge answers its requester at the
  later of then and ``WF`` plus the way back).
* ``RI[r, R_*]``: the loads (slots the caller hands out): SM, line, sectors, L1-cached,
  TMA copy, the next load in the SM's stall queue.
* ``U[t, U_*]``: one table's scalars (tables 0..SMs-1 the L1s, then the L2 partitions): live
  entries, tombstones, allocation order, the stall queue, the armed retry, counters.
  ``H1[sm, slot]``, ``H2[partition, slot]``: each table's lines -> entries, open addressing
  (-1 empty, -2 a deleted entry).
* ``PF[sm, 3]``: each L1 port (next free cycle, busy cycles, uses).
* ``G[G_*]``: the pools' free-stack tops and the action count; ``C[C_*]``: the constants.

A requester (``cb``) is an L1 entry being filled (``2 * entry``) or a load that bypasses the L1
(``2 * request + 1``).

Every function is compiled with ``cache=True`` (machine code kept in ``__pycache__``). The
cached code holds the :mod:`simgpu.sim.cache_core` functions it calls compiled in, and numba
keys it on this file alone: a change to ``cache_core.py`` must come with a change to this file
(or a cleared ``__pycache__``), or the load path keeps the old tag rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from simgpu.sim.cache_core import (
    SC_COUNT,
    fill,
    l2_fill,
    lookup,
    popcount,
    probe,
    set_index,
    window_book,
)
from simgpu.sim.jitargs import bool_arg, int_arg
from simgpu.sim.request import convert_sectors

# ---- EI / EF: MSHR entries ---------------------------------------------------------------
E_LINE = 0
E_INFLIGHT = 1
E_MERGED = 2
E_PENDING = 3
E_LEVEL = 4
E_SET = 5
E_ALIVE = 6
E_ONEXT = 7
E_WHEAD = 8
E_WTAIL = 9
E_HASFILL = 10
E_OWNER = 11
EI_N = 12
EF_TFILL = 0
EF_BEST = 1
EF_N = 2

# ---- WI / WF: waiter records -----------------------------------------------------------------
WI_KIND = 0
WI_TARGET = 1
WI_NEXT = 2
WI_N = 3
W_REQ = 0
W_REQ_MAX = 1
W_L2 = 2

# ---- RI: loads ---------------------------------------------------------------------------
R_SM = 0
R_LINE = 1
R_SECTORS = 2
R_CACHED = 3
R_BULK = 4
R_NEXT = 5
RI_N = 6

# ---- U: tables -----------------------------------------------------------------------------
U_COUNT = 0
U_TOMBS = 1
U_OHEAD = 2
U_OTAIL = 3
U_SHEAD = 4
U_STAIL = 5
U_ARMED = 6
U_ALLOCATIONS = 7
U_MERGES = 8
U_STALLS = 9
U_N = 10

# ---- G: pools and the action log --------------------------------------------------------
G_FE = 0  # free entries on the stack FE
G_FW = 1  # free waiter records on the stack FW
G_A = 2  # actions written
G_N = 3

# ---- C: constants ----------------------------------------------------------------------------
C_H1 = 0  # L1 hit latency
C_NOC = 1  # crossbar, one way
C_BACK = 2  # slice port to load-to-use
C_FAR_HOP = 3  # one way between partitions
C_DRAM_TO = 4  # fixed path to and from the DRAM controller
C_DRAM_BACK = 5
C_SECTOR = 6  # the L1's (request) sector bytes
C_L2_SECTOR = 7
C_L1_BPC = 8  # L1 port bytes per cycle
C_XBAR_BPC = 9  # slice port bytes per cycle
C_REQ_BYTES = 10  # slice bytes a request occupies at least (noc.slice_request_bytes)
C_L1_ENTRIES = 11
C_L1_MERGE = 12
C_L2_MERGE = 13
C_SLICES = 14  # slices per partition
C_L1_SHIFT = 15
C_L2_SHIFT = 16
C_L2_DIV = 17
C_N_SM = 18
C_N = 19

# ---- levels and actions --------------------------------------------------------------------
LV_L1 = 0
LV_L2NEAR = 1
LV_L2FAR = 2
LV_DRAM = 3
LEVELS = ("L1", "L2near", "L2far", "DRAM")

ACT_DONE = 0
ACT_DRAM = 1
ACT_WRITEBACK = 2
ACT_RETRY = 3
A_N = 6

# what a call found short (it then returns minus the code, having done nothing)
ROOM_OK = 0
ROOM_ENTRIES = 1
ROOM_WAITERS = 2
ROOM_L2_TABLES = 3
ROOM_ACTIONS = 4
ROOM_PORTS = 5


# ---- the tables: line -> entry ----------------------------------------------------------------
@njit(cache=True)
def _slot(H: np.ndarray, EI: np.ndarray, row: int, line: int) -> int:
    """The slot holding ``line``'s entry in table row ``row`` of ``H``, or -1."""
    mask = H.shape[1] - 1
    s = ((line >> 7) * 0x9E3779B1) & mask
    while True:
        e = H[row, s]
        if e == -1:
            return -1
        if e >= 0 and EI[e, E_LINE] == line:
            return s
        s = (s + 1) & mask


@njit(cache=True)
def _get(H: np.ndarray, EI: np.ndarray, row: int, line: int) -> int:
    s = _slot(H, EI, row, line)
    return H[row, s] if s >= 0 else -1


@njit(cache=True)
def _put(H: np.ndarray, EI: np.ndarray, row: int, line: int, e: int) -> None:
    """Insert entry ``e`` for ``line`` (absent from the table)."""
    mask = H.shape[1] - 1
    s = ((line >> 7) * 0x9E3779B1) & mask
    while H[row, s] >= 0:
        s = (s + 1) & mask
    H[row, s] = e


@njit(cache=True)
def _rebuild(H: np.ndarray, EI: np.ndarray, row: int) -> None:
    """Rehash a table row without its tombstones."""
    old = H[row].copy()
    H[row, :] = -1
    for s in range(old.shape[0]):
        if old[s] >= 0:
            _put(H, EI, row, EI[old[s], E_LINE], old[s])


@njit(cache=True)
def _rehash(H: np.ndarray, old: np.ndarray, EI: np.ndarray) -> None:
    """Insert every entry of the table rows ``old`` into the empty tables ``H`` (as many rows),
    row by row in slot order."""
    for row in range(old.shape[0]):
        for s in range(old.shape[1]):
            e = old[row, s]
            if e >= 0:
                _put(H, EI, row, EI[e, E_LINE], e)


@njit(cache=True)
def _delete(H: np.ndarray, EI: np.ndarray, U: np.ndarray, row: int, t: int, line: int) -> None:
    s = _slot(H, EI, row, line)
    H[row, s] = -2
    U[t, U_COUNT] -= 1
    U[t, U_TOMBS] += 1
    if U[t, U_TOMBS] > H.shape[1] // 4:
        _rebuild(H, EI, row)
        U[t, U_TOMBS] = 0


# ---- pools -----------------------------------------------------------------------------------
@njit(cache=True)
def _new_entry(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, G: np.ndarray, U: np.ndarray,
               H: np.ndarray, row: int, t: int, line: int, inflight: int, set_idx: int) -> int:
    """Allocate an entry for ``line`` in table ``t`` (row ``row`` of ``H``), last in its
    allocation order."""
    G[G_FE] -= 1
    e = FE[G[G_FE]]
    EI[e, E_LINE] = line
    EI[e, E_INFLIGHT] = inflight
    EI[e, E_MERGED] = 0
    EI[e, E_PENDING] = 0
    EI[e, E_LEVEL] = LV_DRAM
    EI[e, E_SET] = set_idx
    EI[e, E_ALIVE] = 1
    EI[e, E_ONEXT] = -1
    EI[e, E_WHEAD] = -1
    EI[e, E_WTAIL] = -1
    EI[e, E_HASFILL] = 0
    EI[e, E_OWNER] = t
    EF[e, EF_TFILL] = 0.0
    EF[e, EF_BEST] = 0.0
    _put(H, EI, row, line, e)
    U[t, U_COUNT] += 1
    U[t, U_ALLOCATIONS] += 1
    if U[t, U_OTAIL] >= 0:
        EI[U[t, U_OTAIL], E_ONEXT] = e
    else:
        U[t, U_OHEAD] = e
    U[t, U_OTAIL] = e
    return e


@njit(cache=True)
def _add_waiter(EI: np.ndarray, WI: np.ndarray, WF: np.ndarray, FW: np.ndarray, G: np.ndarray,
                e: int, kind: int, target: int, param: float) -> None:
    G[G_FW] -= 1
    w = FW[G[G_FW]]
    WI[w, WI_KIND] = kind
    WI[w, WI_TARGET] = target
    WI[w, WI_NEXT] = -1
    WF[w] = param
    if EI[e, E_WTAIL] >= 0:
        WI[EI[e, E_WTAIL], WI_NEXT] = w
    else:
        EI[e, E_WHEAD] = w
    EI[e, E_WTAIL] = w


@njit(cache=True)
def _action_room(WI: np.ndarray, U: np.ndarray, A: np.ndarray, G: np.ndarray, C: np.ndarray,
                 n: int) -> bool:
    """Whether the action log has room for a call about ``n`` loads: each logs a completion,
    a DRAM read, a retry and the completions of the loads merged into what it answers (64 at
    most); any call may answer every waiter held and write back a line for every L2 entry it
    releases."""
    live = 0
    for t in range(int(C[C_N_SM]), U.shape[0]):
        live += U[t, U_COUNT]
    return 70 * n + (WI.shape[0] - G[G_FW]) + live + 8 <= A.shape[0]


@njit(cache=True)
def _act(A: np.ndarray, G: np.ndarray, code: int, a: float, b: float, c: float, d: float,
         e: float) -> None:
    k = G[G_A]
    A[k, 0] = code
    A[k, 1] = a
    A[k, 2] = b
    A[k, 3] = c
    A[k, 4] = d
    A[k, 5] = e
    G[G_A] = k + 1


# ---- completions ------------------------------------------------------------------------------
@njit(cache=True)
def _answer(EI: np.ndarray, EF: np.ndarray, WI: np.ndarray, WF: np.ndarray, FW: np.ndarray,
            RI: np.ndarray, U: np.ndarray, H1: np.ndarray, A: np.ndarray, G: np.ndarray,
            C: np.ndarray, now: float, cb: int, t: float, level: int) -> None:
    """A requester of an L2 fetch gets its data at ``t`` from ``level``: a load that bypasses
    the L1 completes; an L1 entry's fetch is filled (``filled`` of MemorySystem._l1_fetch)."""
    if cb & 1:
        _act(A, G, int_arg(ACT_DONE), float(cb >> 1), t, float(level), 0.0, 0.0)
        return
    f = cb >> 1
    EI[f, E_PENDING] -= 1
    EI[f, E_LEVEL] = level
    if t > EF[f, EF_BEST]:
        EF[f, EF_BEST] = t
    if EI[f, E_PENDING] == 0:
        _l1_known(EI, EF, WI, WF, FW, RI, U, H1, A, G, C, now, f, EF[f, EF_BEST])


@njit(cache=True)
def _l1_known(EI: np.ndarray, EF: np.ndarray, WI: np.ndarray, WF: np.ndarray, FW: np.ndarray,
              RI: np.ndarray, U: np.ndarray, H1: np.ndarray, A: np.ndarray, G: np.ndarray,
              C: np.ndarray, now: float, f: int, t: float) -> None:
    """An L1 entry's fill time is known: its loads complete; stalled loads may retry then."""
    EF[f, EF_TFILL] = t
    EI[f, E_HASFILL] = 1
    w = EI[f, E_WHEAD]
    EI[f, E_WHEAD] = -1
    EI[f, E_WTAIL] = -1
    while w >= 0:
        nxt = WI[w, WI_NEXT]
        kind = WI[w, WI_KIND]
        if kind == W_REQ:
            _act(A, G, int_arg(ACT_DONE), float(WI[w, WI_TARGET]), t, float(EI[f, E_LEVEL]),
                 0.0, 0.0)
        else:  # W_REQ_MAX
            _act(A, G, int_arg(ACT_DONE), float(WI[w, WI_TARGET]), max(t, WF[w]),
                 float(EI[f, E_LEVEL]), 0.0, 0.0)
        FW[G[G_FW]] = w
        G[G_FW] += 1
        w = nxt
    sm = EI[f, E_OWNER]
    if U[sm, U_SHEAD] >= 0:
        _arm_retry(EI, EF, U, A, G, now, sm)


@njit(cache=True)
def _l2_known(EI: np.ndarray, EF: np.ndarray, WI: np.ndarray, WF: np.ndarray, FW: np.ndarray,
              RI: np.ndarray, U: np.ndarray, H1: np.ndarray, A: np.ndarray, G: np.ndarray,
              C: np.ndarray, now: float, e: int, t: float) -> None:
    """An L2 entry's fill time is known: the requesters merged into it get their data."""
    w = EI[e, E_WHEAD]
    EI[e, E_WHEAD] = -1
    EI[e, E_WTAIL] = -1
    while w >= 0:
        nxt = WI[w, WI_NEXT]
        cb = WI[w, WI_TARGET]
        param = WF[w]
        FW[G[G_FW]] = w
        G[G_FW] += 1
        _answer(EI, EF, WI, WF, FW, RI, U, H1, A, G, C, now, cb,
                max(t, param) + C[C_BACK], EI[e, E_LEVEL])
        w = nxt


@njit(cache=True)
def _arm_retry(EI: np.ndarray, EF: np.ndarray, U: np.ndarray, A: np.ndarray, G: np.ndarray,
               now: float, sm: int) -> None:
    """Wake the SM's stalled loads when the earliest known fill of its L1 arrives."""
    if U[sm, U_ARMED]:
        return
    best = np.inf
    e = U[sm, U_OHEAD]
    while e >= 0:
        if EI[e, E_ALIVE] and EI[e, E_HASFILL] and EF[e, EF_TFILL] < best:
            best = EF[e, EF_TFILL]
        e = EI[e, E_ONEXT]
    if best == np.inf:
        return  # no fill time known yet: _l1_known arms it when one is
    U[sm, U_ARMED] = 1
    _act(A, G, int_arg(ACT_RETRY), float(sm), max(best, now), 0.0, 0.0, 0.0)


# ---- releases ---------------------------------------------------------------------------------
@njit(cache=True)
def _arrived(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, G: np.ndarray, U: np.ndarray,
             t: int, now: float) -> int:
    """The entry of table ``t`` allocated first among those held if its fill has arrived by
    ``now``, else -1 (released entries leave the order here, and their slots the pool)."""
    while U[t, U_OHEAD] >= 0:
        e = U[t, U_OHEAD]
        if EI[e, E_ALIVE]:
            return e if EI[e, E_HASFILL] and EF[e, EF_TFILL] <= now else -1
        U[t, U_OHEAD] = EI[e, E_ONEXT]
        if U[t, U_OHEAD] < 0:
            U[t, U_OTAIL] = -1
        FE[G[G_FE]] = e
        G[G_FE] += 1
    return -1


@njit(cache=True)
def _l1_release(EI: np.ndarray, U: np.ndarray, H1: np.ndarray, T1: np.ndarray, st1: np.ndarray,
                C: np.ndarray, e: int) -> None:
    sm = EI[e, E_OWNER]
    line = EI[e, E_LINE]
    _delete(H1, EI, U, sm, sm, line)
    EI[e, E_ALIVE] = 0
    tags = T1[sm]
    if tags.shape[0]:
        fill(tags, st1[sm], (line >> int(C[C_L1_SHIFT])) % tags.shape[0], line,
             EI[e, E_INFLIGHT], int_arg(0))


@njit(cache=True)
def _l2_release(EI: np.ndarray, U: np.ndarray, H2: np.ndarray, T2: np.ndarray, st2: np.ndarray,
                wb: np.ndarray, A: np.ndarray, G: np.ndarray, C: np.ndarray, e: int) -> None:
    t = EI[e, E_OWNER]
    p = t - int(C[C_N_SM])
    line = EI[e, E_LINE]
    _delete(H2, EI, U, p, t, line)
    EI[e, E_ALIVE] = 0
    n_wb = l2_fill(T2, st2, p, EI[e, E_SET], line, EI[e, E_INFLIGHT], int_arg(0), wb,
                   int_arg(0))
    for i in range(n_wb):  # MemorySystem._writebacks: no store waits on these
        _act(A, G, int_arg(ACT_WRITEBACK), float(wb[i, 0]),
             C[C_L2_SECTOR] * popcount(wb[i, 1]), 0.0, 0.0, 0.0)


# ---- the L2 -------------------------------------------------------------------------------
@njit(cache=True)
def _l2_load(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, WI: np.ndarray, WF: np.ndarray,
             FW: np.ndarray, RI: np.ndarray, U: np.ndarray, H1: np.ndarray, H2: np.ndarray,
             T2: np.ndarray, st2: np.ndarray, W: np.ndarray, sc: np.ndarray, wb: np.ndarray,
             A: np.ndarray, G: np.ndarray, C: np.ndarray, now: float, sm: int, p: int, line: int,
             sectors: int, start: float, nbytes: float, cb: int, bulk: bool) -> None:
    """Fetch ``sectors`` (request sectors) of ``line`` through partition ``p`` of the L2 for
    requester ``cb`` (MemorySystem._l2_load)."""
    if C[C_SECTOR] != C[C_L2_SECTOR]:
        sectors = convert_sectors(sectors, int(C[C_SECTOR]), int(C[C_L2_SECTOR]))
    t2 = int(C[C_N_SM]) + p
    n_sets = T2.shape[1]
    g = set_index(line, int(C[C_L2_SHIFT]), True, int(C[C_L2_DIV]), n_sets)
    slices = int(C[C_SLICES])
    sl = g % slices
    e = -1
    if U[t2, U_COUNT]:  # release the fills that have arrived
        while True:
            r = _arrived(EI, EF, FE, G, U, t2, now)
            if r < 0:
                break
            _l2_release(EI, U, H2, T2, st2, wb, A, G, C, r)
        e = _get(H2, EI, p, line)
        if e >= 0 and EI[e, E_HASFILL] and EF[e, EF_TFILL] <= now:
            _l2_release(EI, U, H2, T2, st2, wb, A, G, C, e)
            e = -1
    rb = 0.0 if bulk else C[C_REQ_BYTES]
    s = window_book(W, sc, p * slices + sl, start + C[C_NOC],
                    (nbytes if nbytes > rb else rb) / C[C_XBAR_BPC])
    present = lookup(T2[p], st2[p], g, line, sectors)
    back = C[C_BACK]
    if present == sectors:
        _answer(EI, EF, WI, WF, FW, RI, U, H1, A, G, C, now, cb, s + back, int_arg(LV_L2NEAR))
        return
    need = sectors & ~present
    if e >= 0 and not (need & ~EI[e, E_INFLIGHT]):
        # in flight: merge, or with the merge slots full wait for the fill (never a second
        # fetch of the same sectors)
        if EI[e, E_MERGED] < C[C_L2_MERGE]:
            EI[e, E_MERGED] += 1
            U[t2, U_MERGES] += 1
        else:
            U[t2, U_STALLS] += 1
        if EI[e, E_HASFILL]:
            _answer(EI, EF, WI, WF, FW, RI, U, H1, A, G, C, now, cb,
                    max(EF[e, EF_TFILL], s) + back, EI[e, E_LEVEL])
        else:
            _add_waiter(EI, WI, WF, FW, G, e, int_arg(W_L2), cb, s)
        return
    parts = T2.shape[0]
    for k in range(1, parts):  # far partitions, nearest first
        q = (p + k) % parts
        if lookup(T2[q], st2[q], g, line, need) == need:
            t_far = s + C[C_FAR_HOP]
            s2 = window_book(W, sc, q * slices + sl, t_far,
                             C[C_L2_SECTOR] * popcount(need) / C[C_XBAR_BPC]
                             if bulk or C[C_L2_SECTOR] * popcount(need) > C[C_REQ_BYTES]
                             else C[C_REQ_BYTES] / C[C_XBAR_BPC])
            t_fill = s2 + C[C_FAR_HOP]
            _l2_track(EI, EF, FE, G, U, H2, p, t2, line, need, t_fill, bool_arg(True),
                      int_arg(LV_L2FAR), e, g)
            _answer(EI, EF, WI, WF, FW, RI, U, H1, A, G, C, now, cb, t_fill + back,
                    int_arg(LV_L2FAR))
            return
    f = _l2_track(EI, EF, FE, G, U, H2, p, t2, line, need, 0.0, bool_arg(False),
                  int_arg(LV_DRAM), e, g)
    EI[f, E_PENDING] += 1
    _act(A, G, int_arg(ACT_DRAM), float(line), C[C_L2_SECTOR] * popcount(need),
         (s - now) + C[C_DRAM_TO], float(f), float(cb))


@njit(cache=True)
def _l2_track(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, G: np.ndarray, U: np.ndarray,
              H2: np.ndarray, p: int, t2: int, line: int, need: int, t_fill: float,
              known: bool, level: int, e: int, g: int) -> int:
    """The L2 entry of a fill into partition ``p`` (new, or widened)."""
    if e < 0:
        e = _new_entry(EI, EF, FE, G, U, H2, p, t2, line, need, g)
    else:
        EI[e, E_INFLIGHT] |= need
    EI[e, E_LEVEL] = level
    if known and t_fill > EF[e, EF_BEST]:
        EF[e, EF_BEST] = t_fill
    # the entry's fill time is known only once no DRAM fetch for it is outstanding
    if not known or EI[e, E_PENDING]:
        EI[e, E_HASFILL] = 0
    else:
        EI[e, E_HASFILL] = 1
        EF[e, EF_TFILL] = EF[e, EF_BEST]
    return e


@njit(cache=True)
def dram_data(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, WI: np.ndarray, WF: np.ndarray,
              FW: np.ndarray, RI: np.ndarray, U: np.ndarray, H1: np.ndarray, A: np.ndarray,
              G: np.ndarray, C: np.ndarray, now: float, f: int, cb: int, t_data: float) -> int:
    """A DRAM read of L2 entry ``f`` for requester ``cb`` has its data at ``t_data``. Returns
    the actions logged, or, having done nothing, ``-ROOM_ACTIONS``."""
    if not _action_room(WI, U, A, G, C, int_arg(1)):
        return -ROOM_ACTIONS
    G[G_A] = 0
    t_fill = t_data + C[C_DRAM_BACK]
    EI[f, E_PENDING] -= 1
    if t_fill > EF[f, EF_BEST]:
        EF[f, EF_BEST] = t_fill
    _answer(EI, EF, WI, WF, FW, RI, U, H1, A, G, C, now, cb, t_fill + C[C_BACK], int_arg(LV_DRAM))
    if EI[f, E_PENDING] == 0:
        EF[f, EF_TFILL] = EF[f, EF_BEST]
        EI[f, E_HASFILL] = 1
        _l2_known(EI, EF, WI, WF, FW, RI, U, H1, A, G, C, now, f, EF[f, EF_BEST])
    return G[G_A]


# ---- the L1 -------------------------------------------------------------------------------
@njit(cache=True)
def _load(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, WI: np.ndarray, WF: np.ndarray,
          FW: np.ndarray, RI: np.ndarray, U: np.ndarray, H1: np.ndarray, H2: np.ndarray,
          T1: np.ndarray, st1: np.ndarray, PF: np.ndarray, T2: np.ndarray, st2: np.ndarray,
          W: np.ndarray, sc: np.ndarray, wb: np.ndarray, A: np.ndarray, G: np.ndarray,
          C: np.ndarray, part: np.ndarray, now: float, r: int, retry: bool) -> bool:
    """Start load ``r``; False (only when ``retry``) if it must keep waiting for an MSHR
    (MemorySystem._load)."""
    sm = RI[r, R_SM]
    line = RI[r, R_LINE]
    sec = RI[r, R_SECTORS]
    tags = T1[sm]
    l1_sets = tags.shape[0]
    cached = RI[r, R_CACHED] == 1 and l1_sets > 0
    e = -1
    if cached:
        if U[sm, U_SHEAD] >= 0 and not retry:  # the LD/ST unit issues in order
            _stall(EI, EF, RI, U, A, G, now, sm, r)
            return True
        if U[sm, U_COUNT]:
            while True:
                x = _arrived(EI, EF, FE, G, U, sm, now)
                if x < 0:
                    break
                _l1_release(EI, U, H1, T1, st1, C, x)
            e = _get(H1, EI, sm, line)
            if e >= 0 and EI[e, E_HASFILL] and EF[e, EF_TFILL] <= now:
                _l1_release(EI, U, H1, T1, st1, C, e)
                e = -1
        # no MSHR entry (or merge slot) free?
        if e >= 0:
            full = EI[e, E_MERGED] >= C[C_L1_MERGE]
        elif U[sm, U_COUNT] < C[C_L1_ENTRIES]:
            full = False
        else:
            full = probe(tags, (line >> int(C[C_L1_SHIFT])) % l1_sets, line) & sec != sec
        if full:
            if retry:
                return False
            _stall(EI, EF, RI, U, A, G, now, sm, r)
            return True
    nbytes = C[C_SECTOR] * popcount(sec)
    start = PF[sm, 0] if PF[sm, 0] > now else now  # Port.use
    occ = nbytes / C[C_L1_BPC]
    PF[sm, 0] = start + occ
    PF[sm, 1] += occ
    PF[sm, 2] += 1
    p = part[sm]
    if not cached:
        _l2_load(EI, EF, FE, WI, WF, FW, RI, U, H1, H2, T2, st2, W, sc, wb, A, G, C, now, sm, p,
                 line, sec, start, nbytes, 2 * r + 1, RI[r, R_BULK] == 1)
        return True
    present = lookup(tags, st1[sm], (line >> int(C[C_L1_SHIFT])) % l1_sets, line, sec)
    if present == sec:
        _act(A, G, int_arg(ACT_DONE), float(r), start + C[C_H1], float(LV_L1), 0.0, 0.0)
        return True
    need = sec & ~present
    if e >= 0:
        EI[e, E_MERGED] += 1
        U[sm, U_MERGES] += 1
        extra = need & ~EI[e, E_INFLIGHT]
        if extra:
            EI[e, E_INFLIGHT] |= extra
            _l1_fetch(EI, EF, FE, WI, WF, FW, RI, U, H1, H2, T2, st2, W, sc, wb, A, G, C, now, sm,
                      p, e, line, extra, start)
        # the fetch above may have been answered at once (an L2 hit): the fill time is known
        if EI[e, E_HASFILL]:
            _act(A, G, int_arg(ACT_DONE), float(r), max(EF[e, EF_TFILL], start + C[C_H1]),
                 float(EI[e, E_LEVEL]), 0.0, 0.0)
        else:
            _add_waiter(EI, WI, WF, FW, G, e, int_arg(W_REQ_MAX), r, start + C[C_H1])
        return True
    f = _new_entry(EI, EF, FE, G, U, H1, sm, sm, line, need, int_arg(-1))
    _add_waiter(EI, WI, WF, FW, G, f, int_arg(W_REQ), r, 0.0)
    _l1_fetch(EI, EF, FE, WI, WF, FW, RI, U, H1, H2, T2, st2, W, sc, wb, A, G, C, now, sm, p, f,
              line, need, start)
    return True


@njit(cache=True)
def _l1_fetch(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, WI: np.ndarray, WF: np.ndarray,
              FW: np.ndarray, RI: np.ndarray, U: np.ndarray, H1: np.ndarray, H2: np.ndarray,
              T2: np.ndarray, st2: np.ndarray, W: np.ndarray, sc: np.ndarray, wb: np.ndarray,
              A: np.ndarray, G: np.ndarray, C: np.ndarray, now: float, sm: int, p: int, f: int,
              line: int, sectors: int, start: float) -> None:
    EI[f, E_PENDING] += 1
    EI[f, E_HASFILL] = 0
    _l2_load(EI, EF, FE, WI, WF, FW, RI, U, H1, H2, T2, st2, W, sc, wb, A, G, C, now, sm, p, line,
             sectors, start, C[C_SECTOR] * popcount(sectors), 2 * f, bool_arg(False))


@njit(cache=True)
def _stall(EI: np.ndarray, EF: np.ndarray, RI: np.ndarray, U: np.ndarray, A: np.ndarray,
           G: np.ndarray, now: float, sm: int, r: int) -> None:
    U[sm, U_STALLS] += 1
    RI[r, R_NEXT] = -1
    if U[sm, U_STAIL] >= 0:
        RI[U[sm, U_STAIL], R_NEXT] = r
    else:
        U[sm, U_SHEAD] = r
    U[sm, U_STAIL] = r
    _arm_retry(EI, EF, U, A, G, now, sm)


@njit(cache=True)
def stalled(U: np.ndarray, RI: np.ndarray, sm: int) -> int:
    """Loads in the SM's stall queue."""
    n = 0
    r = U[sm, U_SHEAD]
    while r >= 0:
        n += 1
        r = RI[r, R_NEXT]
    return n


# ---- entry points ----------------------------------------------------------------------------


@njit(cache=True)
def _room(FE: np.ndarray, WI: np.ndarray, U: np.ndarray, H2: np.ndarray, A: np.ndarray,
          G: np.ndarray, C: np.ndarray, W: np.ndarray, sc: np.ndarray, n: int,
          windows: int) -> int:
    """Whether the pools, tables, action log (:func:`_action_room`) and slice-port tables have
    room for a call that starts (or retries) ``n`` loads; ``ROOM_OK``, else what lacks room.
    Each load takes at most two entries and two waiter records and books two slice ports
    (``windows`` windows each)."""
    if G[G_FE] < 2 * n + 2:
        return ROOM_ENTRIES
    if G[G_FW] < 2 * n + 2:
        return ROOM_WAITERS
    for t in range(int(C[C_N_SM]), U.shape[0]):
        if U[t, U_COUNT] + U[t, U_TOMBS] + n > H2.shape[1] // 2:
            return ROOM_L2_TABLES
    if not _action_room(WI, U, A, G, C, n):
        return ROOM_ACTIONS
    need = 2 * n * windows
    for k in range(sc.shape[0]):
        if sc[k, SC_COUNT] + need > W.shape[1] // 2:
            return ROOM_PORTS
    return ROOM_OK


@njit(cache=True)
def load(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, WI: np.ndarray, WF: np.ndarray,
         FW: np.ndarray, RI: np.ndarray, U: np.ndarray, H1: np.ndarray, H2: np.ndarray,
         T1: np.ndarray, st1: np.ndarray, PF: np.ndarray, T2: np.ndarray, st2: np.ndarray,
         W: np.ndarray, sc: np.ndarray, wb: np.ndarray, A: np.ndarray, G: np.ndarray,
         C: np.ndarray, part: np.ndarray, windows: int, now: float, rs: np.ndarray,
         n: int) -> int:
    """Start loads ``rs[:n]`` (their ``RI`` rows filled in), in order. Returns the actions
    logged, or, having done nothing, minus what lacks room (``-ROOM_*``, :func:`_room`)."""
    status = _room(FE, WI, U, H2, A, G, C, W, sc, n, windows)
    if status != ROOM_OK:
        return -status
    G[G_A] = 0
    for i in range(n):
        _load(EI, EF, FE, WI, WF, FW, RI, U, H1, H2, T1, st1, PF, T2, st2, W, sc, wb, A, G, C,
              part, now, rs[i], False)
    return G[G_A]


@njit(cache=True)
def load_one(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, WI: np.ndarray, WF: np.ndarray,
             FW: np.ndarray, RI: np.ndarray, U: np.ndarray, H1: np.ndarray, H2: np.ndarray,
             T1: np.ndarray, st1: np.ndarray, PF: np.ndarray, T2: np.ndarray, st2: np.ndarray,
             W: np.ndarray, sc: np.ndarray, wb: np.ndarray, A: np.ndarray, G: np.ndarray,
             C: np.ndarray, part: np.ndarray, windows: int, now: float, r: int, sm: int,
             line: int, sectors: int, cached: bool, bulk: bool) -> int:
    """:func:`load` of one load, slot ``r``, its row given."""
    RI[r, R_SM] = sm
    RI[r, R_LINE] = line
    RI[r, R_SECTORS] = sectors
    RI[r, R_CACHED] = cached
    RI[r, R_BULK] = bulk
    RI[r, R_NEXT] = -1
    rs = np.empty(1, np.int64)
    rs[0] = r
    return load(EI, EF, FE, WI, WF, FW, RI, U, H1, H2, T1, st1, PF, T2, st2, W, sc, wb, A, G, C,
                part, windows, now, rs, 1)


@njit(cache=True)
def retry(EI: np.ndarray, EF: np.ndarray, FE: np.ndarray, WI: np.ndarray, WF: np.ndarray,
          FW: np.ndarray, RI: np.ndarray, U: np.ndarray, H1: np.ndarray, H2: np.ndarray,
          T1: np.ndarray, st1: np.ndarray, PF: np.ndarray, T2: np.ndarray, st2: np.ndarray,
          W: np.ndarray, sc: np.ndarray, wb: np.ndarray, A: np.ndarray, G: np.ndarray,
          C: np.ndarray, part: np.ndarray, windows: int, now: float, sm: int) -> int:
    """The SM's armed retry: release the fills that have arrived, then replay the stalled
    loads in order until one must wait again (MemorySystem._retry). Returns as :func:`load`."""
    status = _room(FE, WI, U, H2, A, G, C, W, sc, stalled(U, RI, sm) + 1, windows)
    if status != ROOM_OK:
        return -status
    G[G_A] = 0
    U[sm, U_ARMED] = 0
    e = U[sm, U_OHEAD]
    while e >= 0:  # every held entry, in allocation order, whose fill has arrived
        nxt = EI[e, E_ONEXT]
        if EI[e, E_ALIVE] and EI[e, E_HASFILL] and EF[e, EF_TFILL] <= now:
            _l1_release(EI, U, H1, T1, st1, C, e)
        e = nxt
    while U[sm, U_SHEAD] >= 0:
        r = U[sm, U_SHEAD]
        if not _load(EI, EF, FE, WI, WF, FW, RI, U, H1, H2, T1, st1, PF, T2, st2, W, sc, wb, A,
                     G, C, part, now, r, True):
            break
        U[sm, U_SHEAD] = RI[r, R_NEXT]
        if U[sm, U_SHEAD] < 0:
            U[sm, U_STAIL] = -1
    if U[sm, U_SHEAD] >= 0:
        _arm_retry(EI, EF, U, A, G, now, sm)
    return G[G_A]


__all__ = ["LEVELS", "LoadState", "dram_data", "load", "load_one", "retry", "stalled"]


# ---- the arrays, held in Python ----------------------------------------------------------------
class LoadState:
    """The arrays of the compiled load path of one memory system, and their growth.

    ``n_sm`` L1 tables of ``l1_entries`` entries at most; ``parts`` L2 tables (unbounded).
    The ``C_*`` constants are set by the owner (``C``). :meth:`grow` makes room for a call that
    found some short."""

    def __init__(self, n_sm: int, parts: int, l1_entries: int) -> None:
        self.n_sm = n_sm
        self.C = np.zeros(C_N)
        cap1 = 1
        while cap1 < 4 * l1_entries:
            cap1 *= 2
        self.H1 = np.full((n_sm, cap1), -1, np.int64)
        self.H2 = np.full((parts, 4096), -1, np.int64)
        self.U = np.zeros((n_sm + parts, U_N), np.int64)
        self.U[:, [U_OHEAD, U_OTAIL, U_SHEAD, U_STAIL]] = -1
        self.G = np.zeros(G_N, np.int64)
        self.EI = np.zeros((0, EI_N), np.int64)
        self.EF = np.zeros((0, EF_N))
        self.FE = np.zeros(0, np.int64)
        self.WI = np.zeros((0, WI_N), np.int64)
        self.WF = np.zeros(0)
        self.FW = np.zeros(0, np.int64)
        self.RI = np.zeros((0, RI_N), np.int64)
        self.free_r: list[int] = []
        #: per load slot, what the caller keeps of the load (None: the slot is free)
        self.loads: list[Any] = []
        self.A = np.zeros((256, A_N))
        self._grow_entries(1024)
        self._grow_waiters(1024)
        self._grow_requests(1024)

    @staticmethod
    def _grow_pool(rows: np.ndarray, floats: np.ndarray, free: np.ndarray, top: int,
                   add: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """A pool (int rows, float rows, free stack of ``top`` ids) ``add`` rows larger."""
        n0 = rows.shape[0]
        rows = np.concatenate([rows, np.zeros((add,) + rows.shape[1:], np.int64)])
        floats = np.concatenate([floats, np.zeros((add,) + floats.shape[1:])])
        stack = np.zeros(n0 + add, np.int64)
        stack[:top] = free[:top]
        stack[top:top + add] = np.arange(n0 + add - 1, n0 - 1, -1)
        return rows, floats, stack, top + add

    def _grow_entries(self, add: int) -> None:
        self.EI, self.EF, self.FE, self.G[G_FE] = self._grow_pool(
            self.EI, self.EF, self.FE, int(self.G[G_FE]), add)

    def _grow_waiters(self, add: int) -> None:
        self.WI, self.WF, self.FW, self.G[G_FW] = self._grow_pool(
            self.WI, self.WF, self.FW, int(self.G[G_FW]), add)

    def _grow_requests(self, add: int) -> None:
        n0 = self.RI.shape[0]
        self.RI = np.concatenate([self.RI, np.zeros((add, RI_N), np.int64)])
        self.free_r.extend(range(n0 + add - 1, n0 - 1, -1))
        self.loads.extend([None] * add)

    def request(self, entry: Any) -> int:
        """A free load slot, keeping ``entry`` for it (``RI`` may grow: a new array)."""
        if not self.free_r:
            self._grow_requests(self.RI.shape[0])
        r = self.free_r.pop()
        self.loads[r] = entry
        return r

    def release(self, r: int) -> Any:
        """Free slot ``r``; return what was kept for it."""
        entry = self.loads[r]
        self.loads[r] = None
        self.free_r.append(r)
        return entry

    def grow(self, status: int, n: int) -> None:
        """Grow what a compiled call found short (``ROOM_*``) for ``n`` loads."""
        if status == ROOM_ENTRIES:
            self._grow_entries(max(self.EI.shape[0], 2 * n + 2))
        elif status == ROOM_WAITERS:
            self._grow_waiters(max(self.WI.shape[0], 2 * n + 2))
        elif status == ROOM_L2_TABLES:
            self._grow_h2(n)
        elif status == ROOM_ACTIONS:  # (the caller asks again until it fits)
            self.A = np.zeros((2 * self.A.shape[0], A_N))
        else:
            raise ValueError(f"LoadState.grow: status {status}")

    def _grow_h2(self, n: int) -> None:
        """Rebuild the L2 tables without tombstones, larger where ``n`` more lines would fill
        one beyond half."""
        u2 = self.U[self.n_sm:]
        cap = self.H2.shape[1]
        while (int(u2[:, U_COUNT].max()) + n) * 2 > cap:
            cap *= 2
        old = self.H2
        self.H2 = np.full((old.shape[0], cap), -1, np.int64)
        _rehash(self.H2, old, self.EI)
        u2[:, U_TOMBS] = 0
