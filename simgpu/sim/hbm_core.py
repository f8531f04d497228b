"""The compiled DRAM controller of :mod:`simgpu.sim.hbm`: state in numpy arrays, transitions in
numba.

This module is the FR-FCFS command scheduler itself (ACT, PRE, RD, WR, REF, per-bank and
all-bank refresh, the read and write queues, write drain, bank and pseudo-channel timing state);
:class:`simgpu.sim.hbm.HBM` holds its arrays, feeds it requests, wakes it through SimPy and
reads its counters. The rules are documented there; here they are written over arrays:

* ``P[pc, P_*]``: one pseudo-channel's scalars (last commands, refresh, queue counts, counters);
* ``K[pc, K_*, bank]``: per-bank state (open row, earliest ACT/PRE/column command, the queues'
  heads and tails); ``K_BG_ACT`` and ``K_WR_END_BG`` are indexed by bank group;
* ``E[slot, E_*]``: the requests (a pool of slots; each request sits in one doubly-linked list:
  its pseudo-channel's arrivals, sorted by (arrival, submission), or its bank's read or write
  queue, oldest first);
* ``M[pc, 0, t - base]``: the data bus busy at tCK ``t``; ``M[pc, 1 + g, t - base]``: bank group
  ``g``'s column path busy (the window slides forward as time passes);
* ``S``: the controller's constants (``C_*``, from the timing table), the pool's free count
  and the log's length (``G_*``);
* ``LOG[i]``: (tCK, command, pseudo-channel, bank group, bank) when the command log is on.

Every function is compiled with ``cache=True``: the machine code is kept on disk next to this
file (``__pycache__``), so only the first run after a change pays for compiling.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simgpu.sim.jitargs import int_arg

INF = 1 << 62  # "no time": later than any time a simulation reaches
NEVER = -(10**9)  # "long ago": the last command of a kind that never issued

# command codes of the log (the strings are in simgpu.sim.hbm.COMMANDS)
CMD_ACT, CMD_PRE, CMD_RD, CMD_WR, CMD_REF = 0, 1, 2, 3, 4

# ---- P: per pseudo-channel scalars -------------------------------------------------------
P_BASE = 0  # tCK of index 0 of the busy windows in M
P_ROW_FREE = 1  # the row command bus is free from this tCK
P_LAST_ACT = 2  # last ACT (tRRD_S)
P_LAST_RD = 3  # latest read column command (reserved bursts included)
P_WR_END = 4  # latest write data end, whole pseudo-channel
P_NEXT_REF = 5  # when the next refresh is due
P_REF_BASE = 6  # per-bank refresh: the first due time, the refreshes issued, the next bank,
P_REF_K = 7  # the last REFpb
P_REF_BANK = 8
P_LAST_REFPB = 9
P_N_RQ = 10  # requests in the read / write queue
P_N_WQ = 11
P_ROOM_R = 12  # when the read / write queue last had room after being full
P_ROOM_W = 13
P_AGES = 14  # admissions so far: a request's age is its admission number
P_ACT_R = 15  # activated reads / writes (ACT issued, column commands not yet)
P_ACT_W = 16
P_N_ACT = 17
P_DRAINING = 18  # writes are being drained
P_PLAN_AT = 19  # the last decision's lower bound on the next one (-1: none)
P_PLAN_MODE = 20  # and the queue it serves (1: writes)
P_FAW = 21  # P_FAW .. P_FAW + 3: the last four ACTs (a ring), their count and the next slot
P_FAW_N = 25
P_FAW_I = 26
P_INC_R = 27  # arrivals not yet in the read queue: head and tail of a sorted list, count
P_INC_R_T = 28
P_N_INC_R = 29
P_INC_W = 30  # the same for writes
P_INC_W_T = 31
P_N_INC_W = 32
P_LAST_END = 33  # latest data end of an issued request
# statistics (the order of simgpu.sim.hbm.COUNTERS)
P_READS = 34
P_WRITES = 35
P_ROW_HITS = 36  # the row was open (no ACT issued for the request)
P_ROW_MISSES = 37  # the bank was closed
P_ROW_CONFLICTS = 38  # another row was open and was precharged for it
P_REFRESHES = 39
P_BYTES = 40
P_WRITE_BYTES = 41
P_BUSY_BURSTS = 42
P_QUEUE_WAIT = 43  # sum of (first column command - arrival)
P_DECIDED = 44  # requests whose column commands issued
P_READ_LATENCY = 45  # sum over reads of (data end - arrival)
P_READ_QUEUE_LATENCY = 46  # sum over reads of (data end - queue entry)
P_ACTS = 47
P_PRES = 48  # precharges of one bank (a precharge-all before REF counts none)
P_FIELDS = 49

# ---- K: per bank (K_BG_ACT and K_WR_END_BG per bank group) -------------------------------
K_OPEN_ROW = 0  # -1: precharged
K_ACT_OK = 1  # earliest ACT (tRC from the last ACT, tRP from the last PRE, tRFC)
K_PRE_OK = 2  # earliest PRE (tRAS, tRTP, write recovery)
K_COL_OK = 3  # earliest column command (tRCD)
K_PRE_FOR = 4  # the bank was closed by a PRE for a request (a conflict)
K_WANT_R = 5  # queued reads / writes that want the open row (a PRE waits for them)
K_WANT_W = 6
K_ACT_BANK = 7  # activated requests in the bank (at most one)
K_ACT_E = 8  # that request's slot (-1: none)
K_RQ_H = 9  # the bank's read queue: head, tail (-1: empty)
K_RQ_T = 10
K_WQ_H = 11  # the bank's write queue
K_WQ_T = 12
K_BG_ACT = 13  # last ACT per bank group (tRRD_L)
K_WR_END_BG = 14  # latest write data end per bank group
K_FIELDS = 15

# ---- E: requests -------------------------------------------------------------------------
E_T_ARR = 0  # arrival at the controller, tCK
E_T_Q = 1  # queue entry (later than the arrival when the queue was full)
E_SEQ = 2  # submission number (ties between equal arrivals; the key of a callback)
E_AGE = 3  # admission number: FR-FCFS's "oldest"
E_BANK = 4
E_BG = 5
E_ROW = 6
E_N = 7  # column commands (bursts)
E_WRITE = 8
E_CB = 9  # the submitter waits for a callback
E_NBYTES = 10
E_ACTED = 11  # an ACT was issued for it (its column commands are still to come)
E_NEXT = 12  # links of the list it is in
E_PREV = 13
E_LIVE = 14  # the slot holds a request
E_FREE = 15  # column of the free-slot stack (E[i, E_FREE], i < S[G_FREE_N], are free)
E_FIELDS = 16

# ---- the staging rows that HBM.submit writes and step() takes in -------------------------
ST_PC = 0
ST_HI = 1  # the line index above the channel bits (bank group, column, bank, row below)
ST_T_ARR = 2
ST_SEQ = 3
ST_N = 4
ST_WRITE = 5
ST_CB = 6
ST_NBYTES = 7
ST_FIELDS = 8

# ---- S: constants, then the state and results of a call ----------------------------------
C_BANKS = 0
C_GROUPS = 1
C_BPG = 2  # banks per bank group
C_RCAP = 3  # read / write queue entries
C_WCAP = 4
C_DSTART = 5  # write-queue entries at which writes start / stop draining
C_DSTOP = 6
C_REF_ON = 7
C_PER_BANK = 8
C_IN_ORDER = 9
C_LOGGING = 10
C_TRC = 11
C_TRCD = 12
C_TRCD_W = 13
C_TRAS = 14
C_TRP = 15
C_TRTP = 16
C_WR_PRE = 17  # tCWL + tBL + tWR after the write command
C_TRRD_L = 18
C_TRRD_S = 19
C_TCCD_L = 20
C_TCCD_S = 21
C_RTW = 22
C_WTR_L = 23  # tCWL + tBL + tWTR_L after the write command
C_WTR_S = 24
C_PRE_REF = 25
C_TRFC = 26  # tRFC, or tRFCpb with per-bank refresh
C_TREFI = 27
C_TRREFD = 28
C_TFAW = 29
C_DATA = 30  # read command to its last data beat: tCL + tBL
C_WR_DATA = 31  # write command to its last data beat: tCWL + tBL
C_WINDOW = 32  # length of the busy windows in M
C_PCS = 33  # pseudo-channels per channel
C_COLS = 34  # interleave units per row
C_BANK_XOR = 35
C_LOG_ROOM = 36  # rows of LOG one decision may write, with the refreshes placed before it
G_FREE_N = 37  # free slots in E
G_LOG_N = 38  # rows of LOG written
G_CB_AT = 39  # the last decision's earliest column command with a callback
G_CB_SEQ = 40  # the request whose callback is due (-1: none) and its data end, tCK
G_CB_END = 41
S_FIELDS = 42

# ---- what step() returns -----------------------------------------------------------------
ST_IDLE = 0  # no request queued: sleep until the next arrival
ST_PLAN = 1  # wake at the time given (and at the next arrival)
ST_ARM_NOW = 2  # a callback is due ahead of the simulation: wake now and decide then
ST_CALLBACK = 3  # call the request back, then step again from where it stopped
ST_LOG_FULL = 4  # the log needs room: grow it and step again from where it stopped
ST_STUCK = 5  # queued requests with no next command (a bug)

# ---- what follows a callback (ST_CALLBACK) when the callback submitted nothing ------------
AFTER_STEP = 0  # step again from where it stopped
AFTER_IDLE = 1  # no request queued: sleep until the next arrival
AFTER_PLAN = 2  # wake at the next decision (and at the next arrival)
AFTER_PEEK = 3  # the same, unless a SimPy event is due before the next decision: step again

#: the busy windows slide once their start is this far behind the present (tCK); the
#: occupancy a column command reserves then starts within this many tCK of index 0
SLIDE_TCK = 256


@njit(cache=True)
def split(hi: int, S: np.ndarray) -> tuple[int, int, int, int]:
    """(bank group, bank within the group, row, column) of the line index above the channel
    bits (the address mapping of :meth:`simgpu.sim.hbm.HBM.decode`)."""
    idx = hi // S[C_PCS]
    groups = S[C_GROUPS]
    bpg = S[C_BPG]
    bg = idx % groups
    idx //= groups
    col = idx % S[C_COLS]
    idx //= S[C_COLS]
    bank = idx % bpg
    row = idx // bpg
    if S[C_BANK_XOR]:
        bank ^= row % bpg
    return bg, bank, row, col


@njit(cache=True)
def _log(S: np.ndarray, LOG: np.ndarray, tck: int, cmd: int, pc: int, bank: int) -> None:
    i = S[G_LOG_N]
    LOG[i, 0] = tck
    LOG[i, 1] = cmd
    LOG[i, 2] = pc
    LOG[i, 3] = bank // S[C_BPG] if bank >= 0 else -1
    LOG[i, 4] = bank
    S[G_LOG_N] = i + 1


@njit(cache=True)
def _before(E: np.ndarray, a: int, b: int) -> bool:
    """Arrival order: (arrival, submission) of slot ``a`` before that of ``b``."""
    if E[a, E_T_ARR] != E[b, E_T_ARR]:
        return E[a, E_T_ARR] < E[b, E_T_ARR]
    return E[a, E_SEQ] < E[b, E_SEQ]


@njit(cache=True)
def _ingest(P: np.ndarray, E: np.ndarray, S: np.ndarray, stage: np.ndarray, n: int) -> None:
    """Take the staged submissions into free slots and their pseudo-channels' arrival lists."""
    for i in range(n):
        top = S[G_FREE_N] - 1
        S[G_FREE_N] = top
        e = E[top, E_FREE]
        pc = stage[i, ST_PC]
        bg, bank, row, _col = split(stage[i, ST_HI], S)
        t_arr = stage[i, ST_T_ARR]
        E[e, E_T_ARR] = t_arr
        E[e, E_T_Q] = t_arr
        E[e, E_SEQ] = stage[i, ST_SEQ]
        E[e, E_AGE] = 0
        E[e, E_BANK] = bg * S[C_BPG] + bank
        E[e, E_BG] = bg
        E[e, E_ROW] = row
        E[e, E_N] = stage[i, ST_N]
        w = stage[i, ST_WRITE]
        E[e, E_WRITE] = w
        E[e, E_CB] = stage[i, ST_CB]
        E[e, E_NBYTES] = stage[i, ST_NBYTES]
        E[e, E_ACTED] = 0
        E[e, E_LIVE] = 1
        h, t, c = (P_INC_W, P_INC_W_T, P_N_INC_W) if w else (P_INC_R, P_INC_R_T, P_N_INC_R)
        # insert in arrival order, looking from the tail (arrivals come nearly in order)
        x = P[pc, t]
        while x >= 0 and _before(E, e, x):
            x = E[x, E_PREV]
        if x < 0:  # the new head
            nxt = P[pc, h]
            P[pc, h] = e
        else:
            nxt = E[x, E_NEXT]
            E[x, E_NEXT] = e
        E[e, E_PREV] = x
        E[e, E_NEXT] = nxt
        if nxt < 0:
            P[pc, t] = e
        else:
            E[nxt, E_PREV] = e
        P[pc, c] += 1


@njit(cache=True)
def _pop_incoming(P: np.ndarray, E: np.ndarray, pc: int, write: bool) -> int:
    h, t, c = (P_INC_W, P_INC_W_T, P_N_INC_W) if write else (P_INC_R, P_INC_R_T, P_N_INC_R)
    e = P[pc, h]
    nxt = E[e, E_NEXT]
    P[pc, h] = nxt
    if nxt < 0:
        P[pc, t] = -1
    else:
        E[nxt, E_PREV] = -1
    P[pc, c] -= 1
    return e


@njit(cache=True)
def _enqueue(P: np.ndarray, K: np.ndarray, E: np.ndarray, pc: int, e: int, now: int) -> None:
    """Admit arrival ``e`` into its bank's queue (the bookkeeping of both admission rules)."""
    b = E[e, E_BANK]
    if E[e, E_WRITE]:
        room, hf, tf, wf, nf = P[pc, P_ROOM_W], K_WQ_H, K_WQ_T, K_WANT_W, P_N_WQ
    else:
        room, hf, tf, wf, nf = P[pc, P_ROOM_R], K_RQ_H, K_RQ_T, K_WANT_R, P_N_RQ
    t_arr = E[e, E_T_ARR]
    E[e, E_T_Q] = t_arr if t_arr > room else room
    P[pc, P_AGES] += 1
    E[e, E_AGE] = P[pc, P_AGES]
    tail = K[pc, tf, b]
    E[e, E_PREV] = tail
    E[e, E_NEXT] = -1
    if tail < 0:
        K[pc, hf, b] = e
    else:
        E[tail, E_NEXT] = e
    K[pc, tf, b] = e
    if K[pc, K_OPEN_ROW, b] == E[e, E_ROW]:
        K[pc, wf, b] += 1
    P[pc, nf] += 1


@njit(cache=True)
def _admit(
    P: np.ndarray, K: np.ndarray, E: np.ndarray, S: np.ndarray, pc: int, now: int,
    new: np.ndarray,
) -> int:
    """Move arrivals due by ``now`` into the queues while they have room; their slots go to
    ``new``, in admission order; returns how many."""
    k = 0
    if S[C_IN_ORDER]:
        # an in-order front end: the earliest arrival first, whichever its queue; the first
        # that finds its queue full stops the rest
        while P[pc, P_INC_R] >= 0 or P[pc, P_INC_W] >= 0:
            hr = P[pc, P_INC_R]
            hw = P[pc, P_INC_W]
            write = hr < 0 or (hw >= 0 and _before(E, hw, hr))
            head = hw if write else hr
            full = P[pc, P_N_WQ] >= S[C_WCAP] if write else P[pc, P_N_RQ] >= S[C_RCAP]
            if E[head, E_T_ARR] > now or full:
                break
            e = _pop_incoming(P, E, pc, write)
            _enqueue(P, K, E, pc, e, now)
            new[k] = e
            k += 1
        return k
    for write in (False, True):
        h = P_INC_W if write else P_INC_R
        cap = S[C_WCAP] - P[pc, P_N_WQ] if write else S[C_RCAP] - P[pc, P_N_RQ]
        j = 0
        while j < cap and P[pc, h] >= 0 and E[P[pc, h], E_T_ARR] <= now:
            e = _pop_incoming(P, E, pc, write)
            _enqueue(P, K, E, pc, e, now)
            new[k] = e
            k += 1
            j += 1
    return k


@njit(cache=True)
def _mode(P: np.ndarray, S: np.ndarray, pc: int) -> bool:
    """Whether the next decision serves the write queue (the drain rule, not applied)."""
    n_wq = P[pc, P_N_WQ]
    draining = P[pc, P_DRAINING] != 0
    if draining:
        if n_wq <= S[C_DSTOP]:
            draining = False
    elif n_wq >= S[C_DSTART]:
        draining = True
    return draining or P[pc, P_N_RQ] == 0


@njit(cache=True)
def _faw_bound(P: np.ndarray, S: np.ndarray, pc: int, a: int) -> int:
    """``a``, or later if four ACTs issued within tFAW before it."""
    if P[pc, P_FAW_N] == 4:
        oldest = P[pc, P_FAW + P[pc, P_FAW_I]]
        if oldest + S[C_TFAW] > a:
            return oldest + S[C_TFAW]
    return a


@njit(cache=True)
def _busy(M: np.ndarray, pc: int, lane: int, off: int, S: np.ndarray) -> bool:
    return off < S[C_WINDOW] and M[pc, lane, off] != 0


@njit(cache=True)
def _conflicts(M: np.ndarray, S: np.ndarray, pc: int, g: int, off: int, n: int) -> bool:
    """Whether n column commands at off + k * tCCD_L find the data bus (tCCD_S each) or bank
    group ``g``'s path (n * tCCD_L from the first) busy."""
    s = S[C_TCCD_S]
    lng = S[C_TCCD_L]
    for j in range(n * lng):
        if _busy(M, pc, 1 + g, off + j, S):
            return True
    for k in range(n):
        for j in range(s):
            if _busy(M, pc, int_arg(0), off + k * lng + j, S):
                return True
    return False


@njit(cache=True)
def _fit(M: np.ndarray, P: np.ndarray, S: np.ndarray, pc: int, g: int, t_min: int,
         n: int) -> int:
    """Earliest s >= t_min at which n column commands s + k * tCCD_L find the data bus and bank
    group ``g`` free."""
    off = t_min - P[pc, P_BASE]
    while _conflicts(M, S, pc, g, off, n):
        off += 1
    return P[pc, P_BASE] + off


@njit(cache=True)
def _col_bound(P: np.ndarray, K: np.ndarray, E: np.ndarray, S: np.ndarray, pc: int, e: int,
               t_min: int) -> int:
    """Earliest time >= t_min at which the column commands of ``e`` (a row hit) meet tRCD and
    the read/write turnarounds, as things stand (the data bus aside)."""
    g = E[e, E_BG]
    if E[e, E_WRITE]:
        c = P[pc, P_LAST_RD] + S[C_RTW]
    else:
        c = P[pc, P_WR_END] + S[C_WTR_S]
        if K[pc, K_WR_END_BG, g] + S[C_WTR_L] > c:
            c = K[pc, K_WR_END_BG, g] + S[C_WTR_L]
    if K[pc, K_COL_OK, E[e, E_BANK]] > c:
        c = K[pc, K_COL_OK, E[e, E_BANK]]
    return c if c > t_min else t_min


@njit(cache=True)
def _count_row(K: np.ndarray, E: np.ndarray, pc: int, head_f: int, b: int, row: int) -> int:
    n = 0
    x = K[pc, head_f, b]
    while x >= 0:
        if E[x, E_ROW] == row:
            n += 1
        x = E[x, E_NEXT]
    return n


@njit(cache=True)
def _find_row(K: np.ndarray, E: np.ndarray, pc: int, head_f: int, b: int, row: int) -> int:
    """The oldest request of a bank's queue to ``row`` (-1: none)."""
    x = K[pc, head_f, b]
    while x >= 0:
        if E[x, E_ROW] == row:
            return x
        x = E[x, E_NEXT]
    return -1


@njit(cache=True)
def _activate(P: np.ndarray, K: np.ndarray, E: np.ndarray, S: np.ndarray, LOG: np.ndarray,
              pc: int, e: int, now: int) -> None:
    b = E[e, E_BANK]
    g = E[e, E_BG]
    row = E[e, E_ROW]
    if S[C_LOGGING]:
        _log(S, LOG, now, int_arg(CMD_ACT), pc, b)
    K[pc, K_OPEN_ROW, b] = row
    K[pc, K_ACT_OK, b] = now + S[C_TRC]
    K[pc, K_PRE_OK, b] = now + S[C_TRAS]
    K[pc, K_COL_OK, b] = now + (S[C_TRCD_W] if E[e, E_WRITE] else S[C_TRCD])
    K[pc, K_BG_ACT, g] = now
    P[pc, P_LAST_ACT] = now
    i = P[pc, P_FAW_I]
    P[pc, P_FAW + i] = now
    P[pc, P_FAW_I] = (i + 1) % 4
    if P[pc, P_FAW_N] < 4:
        P[pc, P_FAW_N] += 1
    P[pc, P_ROW_FREE] = now + 1
    P[pc, P_ACTS] += 1
    if K[pc, K_PRE_FOR, b]:
        P[pc, P_ROW_CONFLICTS] += 1
        K[pc, K_PRE_FOR, b] = 0
    else:
        P[pc, P_ROW_MISSES] += 1
    E[e, E_ACTED] = 1
    P[pc, P_N_ACT] += 1
    K[pc, K_ACT_E, b] = e
    K[pc, K_ACT_BANK, b] += 1
    if E[e, E_WRITE]:
        P[pc, P_ACT_W] += 1
    else:
        P[pc, P_ACT_R] += 1
    K[pc, K_WANT_R, b] = _count_row(K, E, pc, int_arg(K_RQ_H), b, row)
    K[pc, K_WANT_W, b] = _count_row(K, E, pc, int_arg(K_WQ_H), b, row)


@njit(cache=True)
def _precharge(P: np.ndarray, K: np.ndarray, S: np.ndarray, LOG: np.ndarray, pc: int, b: int,
               now: int) -> None:
    if S[C_LOGGING]:
        _log(S, LOG, now, int_arg(CMD_PRE), pc, b)
    K[pc, K_OPEN_ROW, b] = -1
    if now + S[C_TRP] > K[pc, K_ACT_OK, b]:
        K[pc, K_ACT_OK, b] = now + S[C_TRP]
    P[pc, P_ROW_FREE] = now + 1
    K[pc, K_PRE_FOR, b] = 1
    K[pc, K_WANT_R, b] = 0
    K[pc, K_WANT_W, b] = 0
    P[pc, P_PRES] += 1


@njit(cache=True)
def _issue_column(P: np.ndarray, K: np.ndarray, E: np.ndarray, M: np.ndarray, S: np.ndarray,
                  LOG: np.ndarray, pc: int, e: int, now: int) -> None:
    """Issue the column commands of ``e`` (the first at ``now``); it leaves its queue, its slot
    is freed, and a callback is left in G_CB_SEQ / G_CB_END."""
    b = E[e, E_BANK]
    g = E[e, E_BG]
    n = E[e, E_N]
    write = E[e, E_WRITE] != 0
    s = S[C_TCCD_S]
    lng = S[C_TCCD_L]
    off = now - P[pc, P_BASE]
    for k in range(n):
        for j in range(s):
            M[pc, 0, off + k * lng + j] = 1
    for j in range(n * lng):
        M[pc, 1 + g, off + j] = 1
    last = now + (n - 1) * lng
    if S[C_LOGGING]:
        for k in range(n):
            _log(S, LOG, now + k * lng, int_arg(CMD_WR if write else CMD_RD), pc, b)
    t_arr = E[e, E_T_ARR]
    nbytes = E[e, E_NBYTES]
    if write:
        end = last + S[C_WR_DATA]
        pre = last + S[C_WR_PRE]
        if end > P[pc, P_WR_END]:
            P[pc, P_WR_END] = end
        if end > K[pc, K_WR_END_BG, g]:
            K[pc, K_WR_END_BG, g] = end
        P[pc, P_WRITES] += 1
        P[pc, P_WRITE_BYTES] += nbytes
        hf, tf = K_WQ_H, K_WQ_T
        if P[pc, P_N_WQ] == S[C_WCAP]:
            P[pc, P_ROOM_W] = now
        P[pc, P_N_WQ] -= 1
        K[pc, K_WANT_W, b] -= 1
    else:
        end = last + S[C_DATA]
        pre = last + S[C_TRTP]
        if last > P[pc, P_LAST_RD]:
            P[pc, P_LAST_RD] = last
        P[pc, P_READS] += 1
        P[pc, P_READ_LATENCY] += end - t_arr
        P[pc, P_READ_QUEUE_LATENCY] += end - E[e, E_T_Q]
        hf, tf = K_RQ_H, K_RQ_T
        if P[pc, P_N_RQ] == S[C_RCAP]:
            P[pc, P_ROOM_R] = now
        P[pc, P_N_RQ] -= 1
        K[pc, K_WANT_R, b] -= 1
    # out of the bank's queue
    prv = E[e, E_PREV]
    nxt = E[e, E_NEXT]
    if prv < 0:
        K[pc, hf, b] = nxt
    else:
        E[prv, E_NEXT] = nxt
    if nxt < 0:
        K[pc, tf, b] = prv
    else:
        E[nxt, E_PREV] = prv
    if pre > K[pc, K_PRE_OK, b]:
        K[pc, K_PRE_OK, b] = pre
    if E[e, E_ACTED]:
        P[pc, P_N_ACT] -= 1
        K[pc, K_ACT_E, b] = -1
        K[pc, K_ACT_BANK, b] -= 1
        if write:
            P[pc, P_ACT_W] -= 1
        else:
            P[pc, P_ACT_R] -= 1
    else:
        P[pc, P_ROW_HITS] += 1
    if end > P[pc, P_LAST_END]:
        P[pc, P_LAST_END] = end
    P[pc, P_BYTES] += nbytes
    P[pc, P_BUSY_BURSTS] += n
    P[pc, P_QUEUE_WAIT] += now - t_arr
    P[pc, P_DECIDED] += 1
    if E[e, E_CB]:
        S[G_CB_SEQ] = E[e, E_SEQ]
        S[G_CB_END] = end
    E[e, E_LIVE] = 0
    E[S[G_FREE_N], E_FREE] = e
    S[G_FREE_N] += 1


@njit(cache=True)
def _refresh_bank(P: np.ndarray, K: np.ndarray, S: np.ndarray, LOG: np.ndarray, pc: int,
                  now: int) -> None:
    """Per-bank refreshes due by ``now``, one bank at a time in turn, each bank once per
    tREFI: precharge the bank if open, REFpb (tRREFD after the previous one), the bank blocked
    tRFCpb. Placed at the due time or as soon after it as that bank allows; a bank with an
    activated request waits until its column commands have issued (and the banks after it with
    it)."""
    banks = S[C_BANKS]
    trefi = S[C_TREFI]
    if now - P[pc, P_NEXT_REF] >= trefi:  # idle for whole rounds: only the last one matters
        rounds = (now - P[pc, P_NEXT_REF]) // trefi
        P[pc, P_REFRESHES] += rounds * banks
        P[pc, P_REF_K] += rounds * banks
        P[pc, P_NEXT_REF] = P[pc, P_REF_BASE] + P[pc, P_REF_K] * trefi // banks
    while now >= P[pc, P_NEXT_REF]:
        b = P[pc, P_REF_BANK]
        if K[pc, K_ACT_BANK, b]:
            break  # a request activated in this bank reads or writes first
        nref = P[pc, P_NEXT_REF]
        row_free = P[pc, P_ROW_FREE]
        t_ref = max(nref, row_free, K[pc, K_ACT_OK, b], P[pc, P_LAST_REFPB] + S[C_TRREFD])
        if K[pc, K_OPEN_ROW, b] >= 0:
            t_pre = max(nref, row_free, K[pc, K_PRE_OK, b])
            if S[C_LOGGING]:
                _log(S, LOG, t_pre, int_arg(CMD_PRE), pc, b)
            t_ref = max(t_ref, t_pre + S[C_PRE_REF], t_pre + 1)
            K[pc, K_OPEN_ROW, b] = -1
        if S[C_LOGGING]:
            _log(S, LOG, t_ref, int_arg(CMD_REF), pc, b)
        K[pc, K_ACT_OK, b] = t_ref + S[C_TRFC]
        K[pc, K_PRE_FOR, b] = 0
        K[pc, K_WANT_R, b] = 0
        K[pc, K_WANT_W, b] = 0
        P[pc, P_ROW_FREE] = t_ref + 1
        P[pc, P_LAST_REFPB] = t_ref
        P[pc, P_REFRESHES] += 1
        P[pc, P_REF_K] += 1
        P[pc, P_REF_BANK] = P[pc, P_REF_K] % banks
        P[pc, P_NEXT_REF] = P[pc, P_REF_BASE] + P[pc, P_REF_K] * trefi // banks


@njit(cache=True)
def _refresh_all(P: np.ndarray, K: np.ndarray, S: np.ndarray, LOG: np.ndarray, pc: int,
                 now: int) -> None:
    """All-bank refresh(es) due by ``now``: precharge-all, REF, block tRFC. Placed at the due
    time, or as soon after it as the banks allow: a controller that slept through the due time
    issued nothing meanwhile, so the placement is exact."""
    trefi = S[C_TREFI]
    banks = S[C_BANKS]
    if now - P[pc, P_NEXT_REF] >= trefi:  # idle for several intervals: only the last matters
        skipped = (now - P[pc, P_NEXT_REF]) // trefi
        P[pc, P_REFRESHES] += skipped
        P[pc, P_NEXT_REF] += skipped * trefi
    while now >= P[pc, P_NEXT_REF]:
        # ACT -> REF (tRC) and PRE -> REF (tRP) equal ACT -> ACT and PRE -> ACT (checked when
        # built), so every bank's act_ok bounds the REF too
        nref = P[pc, P_NEXT_REF]
        row_free = P[pc, P_ROW_FREE]
        t_ref = max(nref, row_free)
        any_open = False
        t_pre = max(nref, row_free)
        for b in range(banks):
            if K[pc, K_ACT_OK, b] > t_ref:
                t_ref = K[pc, K_ACT_OK, b]
            if K[pc, K_OPEN_ROW, b] >= 0:
                any_open = True
                if K[pc, K_PRE_OK, b] > t_pre:
                    t_pre = K[pc, K_PRE_OK, b]
        if any_open:
            if S[C_LOGGING]:
                for b in range(banks):
                    if K[pc, K_OPEN_ROW, b] >= 0:
                        _log(S, LOG, t_pre, int_arg(CMD_PRE), pc, b)
            t_ref = max(t_ref, t_pre + S[C_PRE_REF], t_pre + 1)
            for b in range(banks):
                K[pc, K_OPEN_ROW, b] = -1
        if S[C_LOGGING]:
            _log(S, LOG, t_ref, int_arg(CMD_REF), pc, int_arg(-1))
        for b in range(banks):
            K[pc, K_ACT_OK, b] = t_ref + S[C_TRFC]
            K[pc, K_PRE_FOR, b] = 0
            K[pc, K_WANT_R, b] = 0
            K[pc, K_WANT_W, b] = 0
        P[pc, P_ROW_FREE] = t_ref + 1
        P[pc, P_REFRESHES] += 1
        P[pc, P_NEXT_REF] += trefi


@njit(cache=True)
def _refresh(P: np.ndarray, K: np.ndarray, S: np.ndarray, LOG: np.ndarray, pc: int,
             now: int) -> None:
    if S[C_PER_BANK]:
        _refresh_bank(P, K, S, LOG, pc, now)
    else:
        _refresh_all(P, K, S, LOG, pc, now)


@njit(cache=True)
def _bank_time(P: np.ndarray, K: np.ndarray, E: np.ndarray, M: np.ndarray, S: np.ndarray,
               pc: int, b: int, write_mode: bool, now: int) -> int:
    """Earliest time (>= now) the next command to bank ``b`` may issue, as things stand: a lower
    bound of what :func:`_schedule` finds for the bank."""
    hf = K_WQ_H if write_mode else K_RQ_H
    want = K[pc, K_WANT_W if write_mode else K_WANT_R, b]
    if want or K[pc, K_ACT_BANK, b]:
        e = -1
        if want:
            e = _find_row(K, E, pc, hf, b, K[pc, K_OPEN_ROW, b])
        if K[pc, K_ACT_BANK, b]:
            x = K[pc, K_ACT_E, b]
            if e < 0 or E[x, E_AGE] < E[e, E_AGE]:
                e = x
        return _fit(M, P, S, pc, E[e, E_BG], _col_bound(P, K, E, S, pc, e, now), E[e, E_N])
    if K[pc, hf, b] < 0:
        return INF
    row_free = P[pc, P_ROW_FREE]
    if K[pc, K_OPEN_ROW, b] >= 0:
        return max(K[pc, K_PRE_OK, b], row_free, now)
    a = max(K[pc, K_ACT_OK, b], K[pc, K_BG_ACT, b // S[C_BPG]] + S[C_TRRD_L],
            P[pc, P_LAST_ACT] + S[C_TRRD_S], row_free, now)
    return _faw_bound(P, S, pc, a)


@njit(cache=True)
def _arrivals(P: np.ndarray, K: np.ndarray, E: np.ndarray, M: np.ndarray, S: np.ndarray,
              pc: int, now: int, plan: int, new: np.ndarray) -> int:
    """Admit the arrivals due by ``now``; the earliest time a command may issue, given that none
    could before ``plan`` without them (``now`` or less: decide now)."""
    if P[pc, P_INC_R] < 0 and P[pc, P_INC_W] < 0:
        return plan
    n_new = _admit(P, K, E, S, pc, now, new)
    if n_new == 0:
        return plan
    write_mode = _mode(P, S, pc)
    if write_mode != (P[pc, P_PLAN_MODE] != 0):
        return now  # the other queue's turn
    t = plan
    done = np.zeros(S[C_BANKS], np.bool_)
    for i in range(n_new):
        e = new[i]
        b = E[e, E_BANK]
        if (E[e, E_WRITE] != 0) != write_mode or done[b]:
            continue
        done[b] = True
        tb = _bank_time(P, K, E, M, S, pc, b, write_mode, now)
        if tb < t:
            t = tb
    return t


@njit(cache=True)
def _wait_add(wait: np.ndarray, k: int, c: int, age: int, e: int) -> int:
    wait[k, 0] = c
    wait[k, 1] = age
    wait[k, 2] = e
    return k + 1


@njit(cache=True)
def _schedule(P: np.ndarray, K: np.ndarray, E: np.ndarray, M: np.ndarray, S: np.ndarray,
              LOG: np.ndarray, pc: int, now: int, ahead: bool, new: np.ndarray,
              ready: np.ndarray, wait: np.ndarray) -> int:
    """One FR-FCFS decision at ``now``: issue the oldest ready column command and the oldest
    ready row command (separate command buses). Returns a lower bound on the next time a command
    can issue: ``now`` itself to decide again at once (arrivals admitted, the other queue's turn,
    a refresh to place), -1 when a callback would be called while ``ahead`` of the simulation
    (nothing is issued then)."""
    base = P[pc, P_BASE]
    if now - base > SLIDE_TCK:  # slide the busy windows (never past now)
        shift = now - base
        w = S[C_WINDOW]
        keep = w - shift if shift < w else 0
        for lane in range(M.shape[1]):
            for i in range(keep):
                M[pc, lane, i] = M[pc, lane, i + shift]
            for i in range(keep, w):
                M[pc, lane, i] = 0
        P[pc, P_BASE] = now
    # which queue: writes while draining (watermarks), or when no read waits
    n_wq = P[pc, P_N_WQ]
    if P[pc, P_DRAINING]:
        if n_wq <= S[C_DSTOP]:
            P[pc, P_DRAINING] = 0
    elif n_wq >= S[C_DSTART]:
        P[pc, P_DRAINING] = 1
    write_mode = P[pc, P_DRAINING] != 0 or P[pc, P_N_RQ] == 0
    if write_mode:
        hf, want_f = K_WQ_H, K_WANT_W
    else:
        hf, want_f = K_RQ_H, K_WANT_R
    # activated requests that the queue being served does not hold
    act_other = (P[pc, P_ACT_R] if write_mode else P[pc, P_ACT_W]) > 0
    refresh_due = S[C_REF_ON] != 0 and now >= P[pc, P_NEXT_REF]
    # the bank a due per-bank refresh waits for (-1: none), and a due all-bank refresh
    ref_b = P[pc, P_REF_BANK] if refresh_due and S[C_PER_BANK] else -1
    refresh_all = refresh_due and not S[C_PER_BANK]
    off = now - P[pc, P_BASE]
    bpg = S[C_BPG]
    # channel-level parts of the constraints, common to every candidate
    rd_ch = P[pc, P_WR_END] + S[C_WTR_S]
    wr_ch = P[pc, P_LAST_RD] + S[C_RTW]
    wtr_l = S[C_WTR_L]
    row_free = P[pc, P_ROW_FREE]
    act_ch = P[pc, P_LAST_ACT] + S[C_TRRD_S]
    if row_free > act_ch:
        act_ch = row_free
    act_ch = _faw_bound(P, S, pc, act_ch)
    act_now = act_ch <= now
    pre_now = row_free <= now
    tRRD_L = S[C_TRRD_L]

    # the oldest ready candidates, and the earliest bank-level times of the others (the
    # channel-level parts are added once the winners have issued)
    best_col = int_arg(-1)
    best_row = int_arg(-1)
    best_a = 0
    row_is_act = False
    min_col = INF
    min_act = INF
    min_pre = INF
    cb_at = INF  # the earliest a column command with a callback may issue
    n_ready = 0  # column commands ready now
    n_wait = int_arg(0)  # the others: (earliest bound, age, slot)
    for b in range(S[C_BANKS]):
        qh = K[pc, hf, b]
        ab = K[pc, K_ACT_BANK, b]
        if qh < 0 and ab == 0:
            continue
        orow = K[pc, K_OPEN_ROW, b]
        wantb = K[pc, want_f, b]
        if wantb or ab:
            # a row hit waits on this bank: its oldest column command is the candidate, and
            # the bank gets no row command (FR-FCFS: hits before misses)
            e = -1
            if wantb and not (refresh_all or b == ref_b):
                e = _find_row(K, E, pc, hf, b, orow)
            if ab and (e < 0 or act_other):
                # requests activated while the other queue was served (or before a refresh
                # fell due) finish first
                x = K[pc, K_ACT_E, b]
                if e < 0 or E[x, E_AGE] < E[e, E_AGE]:
                    e = x
            if e < 0:
                continue
            g = E[e, E_BG]
            if E[e, E_WRITE]:
                c = wr_ch
            else:
                c = rd_ch
                if K[pc, K_WR_END_BG, g] + wtr_l > c:
                    c = K[pc, K_WR_END_BG, g] + wtr_l
            if K[pc, K_COL_OK, b] > c:
                c = K[pc, K_COL_OK, b]
            if c <= now:
                if not _conflicts(M, S, pc, g, off, E[e, E_N]):
                    ready[n_ready] = e
                    n_ready += 1
                    if best_col < 0 or E[e, E_AGE] < E[best_col, E_AGE]:
                        best_col = e
                    continue
                c = now + 1
            # its time on the data bus is worked out below, if it may be the earliest
            n_wait = _wait_add(wait, n_wait, c, E[e, E_AGE], e)
            if E[e, E_CB] and c < cb_at:
                cb_at = c
        elif refresh_all or b == ref_b or qh < 0:
            continue
        else:
            # the bank's oldest request wants a row command: ACT to a closed bank, else PRE
            e = qh
            is_act = orow < 0
            if is_act:
                a = K[pc, K_ACT_OK, b]
                ga = K[pc, K_BG_ACT, b // bpg] + tRRD_L
                if ga > a:
                    a = ga
                bus_ok = act_now
            else:
                a = K[pc, K_PRE_OK, b]
                bus_ok = pre_now
            if a <= now and bus_ok and (best_row < 0 or E[e, E_AGE] < E[best_row, E_AGE]):
                if best_row >= 0:  # the former best loses
                    if row_is_act:
                        min_act = min(min_act, best_a)
                    else:
                        min_pre = min(min_pre, best_a)
                best_row = e
                best_a = a
                row_is_act = is_act
            elif is_act:
                if a < min_act:
                    min_act = a
            elif a < min_pre:
                min_pre = a
    if ahead and best_col >= 0 and E[best_col, E_CB]:
        return -1
    if best_row >= 0:
        b = E[best_row, E_BANK]
        if row_is_act:
            _activate(P, K, E, S, LOG, pc, best_row, now)
            col_ok = K[pc, K_COL_OK, b]
            n_wait = _wait_add(wait, n_wait, col_ok, E[best_row, E_AGE], best_row)
            if E[best_row, E_CB] and col_ok < cb_at:
                cb_at = col_ok
        else:
            _precharge(P, K, S, LOG, pc, b, now)
            a = K[pc, K_ACT_OK, b]
            ga = K[pc, K_BG_ACT, b // bpg] + tRRD_L
            if ga > a:
                a = ga
            if a < min_act:
                min_act = a
    if best_col >= 0:
        b = E[best_col, E_BANK]
        n_best = E[best_col, E_N]
        _issue_column(P, K, E, M, S, LOG, pc, best_col, now)
        for i in range(n_ready):  # the ones that lost to an older command wait for a slot
            x = ready[i]
            if x != best_col:
                n_wait = _wait_add(wait, n_wait, now + 1, E[x, E_AGE], x)
                if E[x, E_CB] and now + 1 < cb_at:
                    cb_at = now + 1
        if K[pc, want_f, b] or K[pc, K_ACT_BANK, b]:
            # the next hit to this row follows on the bank group's path
            nxt = now + n_best * S[C_TCCD_L]
            if nxt < min_col:
                min_col = nxt
            if nxt < cb_at:
                cb_at = nxt
        elif K[pc, hf, b] >= 0 and K[pc, K_PRE_OK, b] < min_pre:
            min_pre = K[pc, K_PRE_OK, b]  # a precharge was waiting for this row's last hit
        if (P[pc, P_INC_R] >= 0 and P[pc, P_N_RQ] < S[C_RCAP]) or (
            P[pc, P_INC_W] >= 0 and P[pc, P_N_WQ] < S[C_WCAP]
        ):
            # the request left a queue slot to an arrival: the newcomer's own times
            n_new = _admit(P, K, E, S, pc, now, new)
            for i in range(n_new):
                e = new[i]
                b = E[e, E_BANK]
                if (E[e, E_WRITE] != 0) != write_mode:
                    continue
                if K[pc, K_OPEN_ROW, b] == E[e, E_ROW]:
                    n_wait = _wait_add(wait, n_wait, now + 1, E[e, E_AGE], e)
                    if E[e, E_CB] and now + 1 < cb_at:
                        cb_at = now + 1
                elif K[pc, want_f, b] or K[pc, K_ACT_BANK, b] or K[pc, hf, b] != e:
                    continue  # it waits behind the bank's older requests
                elif K[pc, K_OPEN_ROW, b] >= 0:
                    if K[pc, K_PRE_OK, b] < min_pre:
                        min_pre = K[pc, K_PRE_OK, b]
                else:
                    a = K[pc, K_ACT_OK, b]
                    ga = K[pc, K_BG_ACT, b // bpg] + tRRD_L
                    if ga > a:
                        a = ga
                    if a < min_act:
                        min_act = a
        # the queue the next decision serves (the same rule as at the top)
        if write_mode != _mode(P, S, pc) and (P[pc, P_N_RQ] or P[pc, P_N_WQ]):
            return now  # the other queue's turn: decide again
        if min_col < now + S[C_TCCD_S]:
            min_col = now + S[C_TCCD_S]
    if n_wait:
        # the earliest column command among the waiting ones, data bus included: in the order
        # of their lower bounds, until no bound is below the best time found
        order = _order(wait, n_wait)
        for i in range(n_wait):
            j = order[i]
            c = wait[j, 0]
            if c >= min_col:
                break
            x = wait[j, 2]
            c = _col_bound(P, K, E, S, pc, x, c)
            slot = _fit(M, P, S, pc, E[x, E_BG], c, E[x, E_N])
            if slot < min_col:
                min_col = slot
    if refresh_due and not (
        K[pc, K_ACT_BANK, ref_b] if S[C_PER_BANK] else P[pc, P_N_ACT]
    ):
        return now  # the refresh can be placed
    # add the channel-level parts as they are after what issued now
    t_next = min_col
    row_free = P[pc, P_ROW_FREE]
    if min_act < INF:
        act_ch = P[pc, P_LAST_ACT] + S[C_TRRD_S]
        if row_free > act_ch:
            act_ch = row_free
        act_ch = _faw_bound(P, S, pc, act_ch)
        if min_act < act_ch:
            min_act = act_ch
        if min_act < t_next:
            t_next = min_act
    if min_pre < INF:
        if min_pre < row_free:
            min_pre = row_free
        if min_pre < t_next:
            t_next = min_pre
    S[G_CB_AT] = cb_at
    return t_next


@njit(cache=True)
def _order(wait: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``wait[:n]`` by (bound, age): an insertion sort (the list is short)."""
    order = np.arange(n)
    for i in range(1, n):
        j = order[i]
        c, a = wait[j, 0], wait[j, 1]
        k = i - 1
        while k >= 0 and (wait[order[k], 0] > c or
                          (wait[order[k], 0] == c and wait[order[k], 1] > a)):
            order[k + 1] = order[k]
            k -= 1
        order[k + 1] = j
    return order


@njit(cache=True)
def _next_arrival(P: np.ndarray, E: np.ndarray, pc: int, now: int) -> int:
    """The next arrival not yet due (INF: none)."""
    nxt = INF
    h = P[pc, P_INC_R]
    if h >= 0 and E[h, E_T_ARR] > now:
        nxt = E[h, E_T_ARR]
    h = P[pc, P_INC_W]
    if h >= 0 and E[h, E_T_ARR] > now and E[h, E_T_ARR] < nxt:
        nxt = E[h, E_T_ARR]
    return nxt


@njit(cache=True)
def _after(P: np.ndarray, E: np.ndarray, S: np.ndarray, pc: int, now: int,
           t_next: int) -> tuple[int, int]:
    """What follows a decision that issued a request with a callback, if the callback submits
    nothing (the rest of :func:`step`'s loop, but for the look at the next SimPy event, which
    the callback may move): (AFTER_*, the next arrival not yet due). With AFTER_PLAN and
    AFTER_PEEK the plan is written (:func:`step` drops it when it goes on instead)."""
    if t_next <= now or t_next >= INF:
        return AFTER_STEP, INF
    if P[pc, P_N_RQ] == 0 and P[pc, P_N_WQ] == 0:
        return AFTER_IDLE, _next_arrival(P, E, pc, now)
    P[pc, P_PLAN_AT] = t_next
    P[pc, P_PLAN_MODE] = int(_mode(P, S, pc))
    return (AFTER_PEEK if t_next < S[G_CB_AT] else AFTER_PLAN), _next_arrival(P, E, pc, now)


@njit(cache=True)
def step(P: np.ndarray, K: np.ndarray, E: np.ndarray, M: np.ndarray, S: np.ndarray,
         LOG: np.ndarray, stage: np.ndarray, n_stage: int, pc: int, now: int, ahead: int,
         resume: int, first: int, peek: float,
         cpt: float) -> tuple[int, int, int, int, int, int, int, int]:
    """The controller of pseudo-channel ``pc`` at ``now`` (tCK): issue every command that can
    issue now, and at each later time a command can issue while nothing else happens in the
    simulation meanwhile (``peek``: the time of the next SimPy event, SM cycles; ``cpt``: SM
    cycles per tCK); then say when to wake: (code, time, now, ahead, next arrival, callback's
    request, callback's data end, after), the code one of ST_*, the time the one it names
    (ST_PLAN, ST_ARM_NOW) or the next decision's lower bound (ST_CALLBACK), ``now`` and
    ``ahead`` where to go on from (ST_CALLBACK, ST_LOG_FULL), the next arrival not yet due (INF:
    none) for ST_PLAN, ST_IDLE and ST_CALLBACK, the request to call back (its submission number)
    and its data end, tCK, and with ST_CALLBACK what follows the callback (AFTER_*).

    The staged submissions are taken in first. ``first``: a wake-up (an arrival before the
    planned decision may only need the newcomers' banks looked at). ``resume`` >= 0: go on
    after the decision handed back with ST_CALLBACK, which found ``resume`` as the next time."""
    _ingest(P, E, S, stage, n_stage)
    new = np.empty(S[C_RCAP] + S[C_WCAP], np.int64)
    ready = np.empty(S[C_BANKS], np.int64)
    wait = np.empty((2 * S[C_BANKS] + S[C_RCAP] + S[C_WCAP] + 1, 3), np.int64)
    ref_on = S[C_REF_ON] != 0
    if first:
        plan = P[pc, P_PLAN_AT]
        if plan >= 0 and now < plan and not (ref_on and now >= P[pc, P_NEXT_REF]):
            # woken by an arrival before the next planned decision: only the newcomers' banks
            # can have changed
            t_next = _arrivals(P, K, E, M, S, pc, now, plan, new)
            if t_next > now:
                P[pc, P_PLAN_AT] = t_next
                return ST_PLAN, t_next, now, 0, _next_arrival(P, E, pc, now), 0, 0, 0
        P[pc, P_PLAN_AT] = -1
    while True:
        if resume >= 0:
            t_next = resume
            resume = -1
            P[pc, P_PLAN_AT] = -1  # _after() planned ahead of the callback
        else:
            if S[C_LOGGING] and S[G_LOG_N] + S[C_LOG_ROOM] > LOG.shape[0]:
                return ST_LOG_FULL, 0, now, ahead, INF, 0, 0, 0
            if (P[pc, P_INC_R] >= 0 and P[pc, P_N_RQ] < S[C_RCAP]) or (
                P[pc, P_INC_W] >= 0 and P[pc, P_N_WQ] < S[C_WCAP]
            ):
                _admit(P, K, E, S, pc, now, new)
            if ref_on and now >= P[pc, P_NEXT_REF] and not (
                K[pc, K_ACT_BANK, P[pc, P_REF_BANK]] if S[C_PER_BANK] else P[pc, P_N_ACT]
            ):
                _refresh(P, K, S, LOG, pc, now)
            S[G_CB_SEQ] = -1
            t_next = _schedule(P, K, E, M, S, LOG, pc, now, ahead != 0, new, ready, wait)
            if S[G_CB_SEQ] >= 0:  # the caller calls back, then steps on from here
                after, nxt = _after(P, E, S, pc, now, t_next)
                return ST_CALLBACK, t_next, now, ahead, nxt, S[G_CB_SEQ], S[G_CB_END], after
        if t_next < 0:  # a callback is due: decide at a time the simulation has reached
            return ST_ARM_NOW, now, now, ahead, INF, 0, 0, 0
        if t_next <= now:
            continue  # the other queue's turn, a refresh to place, a newcomer ready now
        if P[pc, P_N_RQ] == 0 and P[pc, P_N_WQ] == 0:
            break
        if t_next >= INF:
            return ST_STUCK, t_next, now, ahead, INF, 0, 0, 0
        if t_next < S[G_CB_AT] and t_next * cpt < peek:
            now = t_next
            ahead = 1
            continue
        P[pc, P_PLAN_AT] = t_next
        P[pc, P_PLAN_MODE] = int(_mode(P, S, pc))
        return ST_PLAN, t_next, now, ahead, _next_arrival(P, E, pc, now), 0, 0, 0
    return ST_IDLE, 0, now, ahead, _next_arrival(P, E, pc, now), 0, 0, 0


@njit(cache=True)
def pending_write_bytes(E: np.ndarray) -> int:
    """Bytes of the writes held (arrived or queued, not yet issued)."""
    total = 0
    for e in range(E.shape[0]):
        if E[e, E_LIVE] and E[e, E_WRITE]:
            total += E[e, E_NBYTES]
    return total
