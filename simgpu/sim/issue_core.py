"""The compiled issue logic of an SM's sub-cores (:class:`simgpu.sim.sm.SubCore`): picking a
warp, the scoreboard, the register-file banks and operand cache, and the issue of ALU,
shared-memory and control instructions, as numba functions over arrays.

:mod:`simgpu.sim.sm` documents the rules (GTO and LRR picking, run-ahead, stall reasons, the
SM-wide LD/ST unit) and keeps the rest in Python: global memory, barriers, copy groups, exits
and SimPy. One call of :func:`step` runs the SM's schedulers, the earliest pick of its
sub-cores first, until it must yield to SimPy, hand an instruction to Python or put a sub-core
to sleep, and says which (the ``R_*`` codes).

State of one SM (:class:`IssueState`; the ``*_N`` constants give each array's width):

* ``WI[slot, W_*]``: each resident warp's position (``pc``), stream length, the unit of its
  next instruction, whether it is blocked, and where its stream's records start in ``CODE``;
* ``WF[slot, F_READY]``: when its next instruction can issue (:attr:`Warp.ready`);
  ``WF[slot, F_REG + r]``: when register ``r`` is written (the scoreboard);
  ``WF[slot, F_MEM + r]``: 1 while ``r`` waits on a load. Python marks a warp whose readiness
  must be recomputed (``WI[slot, W_DIRTY]``, from ``WF[slot, F_TMIN]`` on;
  :meth:`Warp.refresh`), and :func:`step` recomputes it before it picks;
* ``CODE[W_OFF + pc]``: the decoded record (a row of :class:`DecodeTable`) of each instruction;
* ``SI[sub, SI_*]``: each sub-core's warp count, last issued warp (GTO), round-robin counter
  (LRR), issue and register-file counters, issue counts per opcode class, register-file cache
  and warps (:class:`IssueState` gives the columns);
* ``SI[sub, SI_MODE]``: awake, asleep (every warp waits, until Python wakes it), without
  warps, or done (``M_*``);
* ``SF[sub, unit]``: when each functional unit is free; ``SF[sub, SF_T]``: the sub-core's clock
  (its next free issue cycle); ``SF[sub, SF_T0]``: when it fell asleep;
  ``SF[sub, SF_STALL + k]``: the cycles booked to stall reason ``k``;
* ``MF[MF_*]``: the SM's LD/ST unit (next free cycle), FLOPs and shared-memory wavefronts;
  ``MF[C_*]``: the constants.

Every function is compiled with ``cache=True`` (machine code kept in ``__pycache__``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simgpu.trace.schema import OP_CLASSES

# ---- instruction kinds and units (the issue logic's; :mod:`simgpu.sim.sm` uses these) ---------
K_ALU, K_SHARED, K_GLOBAL, K_BAR, K_EXIT, K_CTRL, K_COMMIT, K_WAIT = range(8)
#: Functional units (index into per-sub-core "next free" lists).
UNITS = ("fp32", "fp16", "fp64", "int", "sfu", "tensor", "lsu", "ctrl")
U_FP32, U_FP16, U_FP64, U_INT, U_SFU, U_TENSOR, U_LSU, U_CTRL = range(8)
#: Why a sub-core did not issue in a cycle.
STALL_REASONS = (
    "issued",
    "dependency",
    "memory",
    "barrier",
    "pipe_busy",
    "lsu_busy",
    "rf_bank",
    "no_warps",
    "async_copy",
)
S_DEPENDENCY, S_MEMORY, S_PIPE, S_LSU, S_RF = (
    STALL_REASONS.index(k) for k in ("dependency", "memory", "pipe_busy", "lsu_busy", "rf_bank")
)
#: Opcode classes, by index in ``CNT``.
OP_INDEX = {op: i for i, op in enumerate(OP_CLASSES)}
OP_ST = OP_INDEX["st"]
OP_SHFL = OP_INDEX["shfl"]

#: Registers of a warp's scoreboard (R0..R255).
NREG = 256

# ---- DI / DF: decoded records --------------------------------------------------------------
D_KIND = 0
D_UNIT = 1
D_OP = 2
D_NSRC = 3
D_NDST = 4
D_WAVES = 5
D_RF = 6
D_SYNC = 7
D_FLOPS = 8
D_REG = 9  # sources then destinations at DI[rec, D_REG:] (the table widens for longer lists)
DF_LAT = 0
DF_II = 1
DF_N = 2

# ---- WI / WF: warps ---------------------------------------------------------------------------
W_PC = 0
W_N = 1
W_UNIT = 2
W_BLOCKED = 3
W_OFF = 4
W_GID = 5
W_DIRTY = 6
WI_N = 7
F_READY = 0
F_TMIN = 1
F_REG = 2
F_MEM = F_REG + NREG
WF_N = F_MEM + NREG

# ---- SI / SF: sub-cores -----------------------------------------------------------------------
SI_COUNT = 0
SI_LAST = 1
SI_RR = 2
SI_ISSUED = 3
SI_RF_CONFLICT = 4
SI_RF_HITS = 5
SI_RF_READS = 6
SI_MODE = 7  # M_AWAKE, M_ASLEEP (every warp waits), M_EMPTY (no warps), M_DONE (and no more)
SI_CNT = 8  # issued instructions per opcode class, then the RFC and the warps (see IssueState)
SF_T = len(UNITS)  # the sub-core's local clock: its next free issue cycle
SF_T0 = SF_T + 1  # when it fell asleep (M_ASLEEP, M_EMPTY)
SF_STALL = SF_T0 + 1
SF_N = SF_STALL + len(STALL_REASONS)
#: A sub-core's mode (``SI[sub, SI_MODE]``): it picks and issues; it sleeps until a warp of its
#: is woken; it has no warps until a block arrives; it has none and no block will come.
M_AWAKE, M_ASLEEP, M_EMPTY, M_DONE = range(4)

# ---- MF: the SM, then the constants ----------------------------------------------------------
MF_LSU = 0
MF_FLOPS = 1
MF_WAVES = 2
C_GTO = 3
C_BANKS_ON = 4  # model register banks
C_SHARED_LAT = 5
C_RUN_AHEAD = 6
C_RF_BANKS = 7
C_RF_PORTS = 8
C_RF_SLOTS = 9  # operand slots with an RFC entry in every bank
C_SUBS = 10
C_RFC = 11  # first column of the RFC in SI (its warps, then as many registers)
C_RFC_N = 12  # RFC entries
C_ORD = 13  # first column of the warps in SI
MF_N = 14

# ---- what step() returns -----------------------------------------------------------------------
R_NO_WARPS = 0  # the sub-core has no warps
R_NO_CAND = 1  # every warp of the sub-core waits (memory, barrier, copies): it sleeps until woken
R_WAIT = 2  # the SM's next issue is at ``ti``, ahead of the clock: sleep until then or a wake
R_OTHER = 3  # issue the warp's instruction in Python at ``ti``
R_EXIT = 4  # the warp's stream ended with the instruction issued at ``ti``
R_IDLE = 5  # no sub-core is awake
R_GO = 6  # (within step: the instruction was issued, go on)

INF = np.inf


@njit(cache=True)
def lsu_claim(SF: np.ndarray, MF: np.ndarray, t: float, cycles: float) -> float:
    """Occupy the SM's LD/ST data path for ``cycles`` from ``t``; returns the start cycle."""
    start = t if t > MF[MF_LSU] else MF[MF_LSU]
    free = start + cycles
    MF[MF_LSU] = free
    for k in range(int(MF[C_SUBS])):
        SF[k, U_LSU] = free
    return start


@njit(cache=True)
def rf_access(SI: np.ndarray, MF: np.ndarray, DI: np.ndarray, s: int, gid: int,
              rec: int) -> int:
    """Cycles to read the sources of record ``rec`` for warp ``gid`` on sub-core ``s`` (>= 1),
    then drop the cache entries of its destinations (they are written). Register ``r`` lives in
    bank ``r % banks``; the ``k``-th source is offered to cache entry (bank, ``k``), and hits
    there need no bank read (:mod:`simgpu.sim.regfile`)."""
    banks = int(MF[C_RF_BANKS])
    cs = int(MF[C_RF_SLOTS])
    cw = int(MF[C_RFC])  # SI[s, cw + e]: the warp entry e holds; SI[s, cr + e]: the register
    cr = cw + int(MF[C_RFC_N])
    nsrc = DI[rec, D_NSRC]
    rc = 1
    if nsrc:
        need = np.empty(nsrc, np.int64)  # distinct registers that need a bank read
        n = 0
        for k in range(nsrc):
            r = DI[rec, D_REG + k]
            if k < cs:
                e = (r % banks) * cs + k
                if SI[s, cw + e] == gid and SI[s, cr + e] == r:
                    SI[s, SI_RF_HITS] += 1
                    continue
                SI[s, cw + e] = gid
                SI[s, cr + e] = r
            seen = False
            for j in range(n):
                if need[j] == r:
                    seen = True
                    break
            if not seen:
                need[n] = r
                n += 1
        if n > 0:
            SI[s, SI_RF_READS] += n
        if n > 1:
            # the bank that must deliver the most registers sets the cycles
            worst = 0
            for b in range(banks):
                c = 0
                for j in range(n):
                    if need[j] % banks == b:
                        c += 1
                if c > worst:
                    worst = c
            ports = int(MF[C_RF_PORTS])
            cycles = -(-worst // ports)
            if cycles > 1:
                SI[s, SI_RF_CONFLICT] += cycles - 1
                rc = cycles
    nd = DI[rec, D_NDST]
    if nd and cs:
        for k in range(nd):
            r = DI[rec, D_REG + nsrc + k]
            e0 = (r % banks) * cs
            for e in range(e0, e0 + cs):
                if SI[s, cw + e] == gid and SI[s, cr + e] == r:
                    SI[s, cw + e] = -1
    return rc


@njit(cache=True)
def charge(WF: np.ndarray, SF: np.ndarray, DI: np.ndarray, s: int, w: int, rec: int,
           t_from: float, t_to: float) -> None:
    """Book the idle cycles [t_from, t_to) of sub-core ``s`` to the reason warp ``w``, picked
    with its next instruction ``rec``, waited: its unit busy (the LD/ST unit or a pipe), an
    operand a load has not returned (memory), or another operand (dependency)."""
    gap = t_to - t_from
    if gap <= 0:
        return
    unit = DI[rec, D_UNIT]
    u = SF[s, unit]
    if u >= t_to and u > WF[w, F_READY]:
        SF[s, SF_STALL + (S_LSU if unit == U_LSU else S_PIPE)] += gap
        return
    for k in range(DI[rec, D_NSRC] + DI[rec, D_NDST]):
        r = DI[rec, D_REG + k]
        if WF[w, F_REG + r] >= t_to and WF[w, F_MEM + r] != 0.0:
            SF[s, SF_STALL + S_MEMORY] += gap
            return
    SF[s, SF_STALL + S_DEPENDENCY] += gap


@njit(cache=True)
def refresh(WI: np.ndarray, WF: np.ndarray, CODE: np.ndarray, DI: np.ndarray, w: int,
            t_min: float) -> None:
    """Recompute when warp ``w``'s next instruction can issue, from ``t_min`` on (the
    scoreboard: RAW and WAW; never while the warp is blocked)."""
    pc = WI[w, W_PC]
    if pc >= WI[w, W_N]:
        WF[w, F_READY] = t_min
        return
    rec = CODE[WI[w, W_OFF] + pc]
    WI[w, W_UNIT] = DI[rec, D_UNIT]
    if WI[w, W_BLOCKED]:
        WF[w, F_READY] = INF
        return
    rdy = t_min
    for k in range(DI[rec, D_NSRC] + DI[rec, D_NDST]):
        v = WF[w, F_REG + DI[rec, D_REG + k]]
        if v > rdy:
            rdy = v
    WF[w, F_READY] = rdy


@njit(cache=True)
def pick(WI: np.ndarray, WF: np.ndarray, SI: np.ndarray, SF: np.ndarray, s: int, t: float,
         gto: bool, order: int) -> tuple[int, float]:
    """Sub-core ``s``'s choice at its local clock ``t``: ``(warp, cycle it can issue)``, the
    warp -1 when every warp waits (GTO: the last warp issued while it can issue at ``t``, else
    the oldest that can issue first; LRR: round robin from the next warp)."""
    n = SI[s, SI_COUNT]
    last = SI[s, SI_LAST]
    if gto and last >= 0:
        rt = WF[last, F_READY]
        u = SF[s, WI[last, W_UNIT]]
        if u > rt:
            rt = u
        if rt <= t:
            return last, rt
    cand = -1
    cand_t = INF
    k0 = 0 if gto else SI[s, SI_RR] % n
    for j in range(n):
        x = SI[s, order + (k0 + j) % n] if k0 else SI[s, order + j]
        rt = WF[x, F_READY]
        if rt < cand_t:
            u = SF[s, WI[x, W_UNIT]]
            if u > rt:
                rt = u
            if rt < cand_t:
                cand = x
                cand_t = rt
                if rt <= t:
                    break
    return cand, cand_t


@njit(cache=True)
def issue(WI: np.ndarray, WF: np.ndarray, CODE: np.ndarray, SI: np.ndarray, SF: np.ndarray,
          MF: np.ndarray, DI: np.ndarray, DF: np.ndarray, s: int, w: int, ti: float,
          banks_on: bool, gto: bool) -> int:
    """Issue warp ``w``'s next instruction on sub-core ``s`` at cycle ``ti``: ALU, shared memory
    and control here (then ``R_GO``, or ``R_EXIT`` at the end of the warp's stream), the rest by
    Python (``R_OTHER``). Moves the warp and the sub-core's clock on."""
    t = SF[s, SF_T]
    rec = CODE[WI[w, W_OFF] + WI[w, W_PC]]
    if ti > t:
        charge(WF, SF, DI, s, w, rec, t, ti)
    SI[s, SI_LAST] = w
    if not gto:
        SI[s, SI_RR] += 1
    kind = DI[rec, D_KIND]
    nsrc = DI[rec, D_NSRC]
    nd = DI[rec, D_NDST]
    op = DI[rec, D_OP]
    SI[s, SI_ISSUED] += 1
    SI[s, SI_CNT + op] += 1
    WI[w, W_PC] += 1
    if kind == K_ALU:
        t = ti + 1.0
        rc = 1
        if banks_on and DI[rec, D_RF] != 0:
            rc = rf_access(SI, MF, DI, s, WI[w, W_GID], rec)
            if rc > 1:
                SF[s, SF_STALL + S_RF] += rc - 1
                t = ti + rc
        t_exec = ti + rc - 1
        if nd:
            done = t_exec + DF[rec, DF_LAT]
            for k in range(nd):
                r = DI[rec, D_REG + nsrc + k]
                WF[w, F_REG + r] = done
                WF[w, F_MEM + r] = 0.0
        SF[s, DI[rec, D_UNIT]] = t_exec + DF[rec, DF_II]
        if DI[rec, D_FLOPS]:
            MF[MF_FLOPS] += DI[rec, D_FLOPS]
        if op == OP_SHFL:
            lsu_claim(SF, MF, t_exec, 1.0)
    elif kind == K_SHARED:
        t = ti + 1.0
        waves = DI[rec, D_WAVES]
        MF[MF_WAVES] += waves
        start = lsu_claim(SF, MF, ti, float(waves))
        if op != OP_ST:
            done = start + waves - 1 + MF[C_SHARED_LAT]
            for k in range(nd):
                WF[w, F_REG + DI[rec, D_REG + nsrc + k]] = done
    elif kind == K_CTRL:
        # branch / misc: a fixed short latency on the control path
        t = ti + 1.0
        done = ti + DF[rec, DF_LAT]
        for k in range(nd):
            WF[w, F_REG + DI[rec, D_REG + nsrc + k]] = done
    else:
        # issued by Python (global memory, barriers, copy groups, exits)
        SF[s, SF_T] = t if t > ti else ti
        return R_OTHER
    SF[s, SF_T] = t
    # ---- the warp's next instruction: exit, or scoreboard ------------------------------------
    if WI[w, W_PC] >= WI[w, W_N]:
        return R_EXIT
    refresh(WI, WF, CODE, DI, w, t)
    return R_GO


@njit(cache=True)
def step(WI: np.ndarray, WF: np.ndarray, CODE: np.ndarray, SI: np.ndarray, SF: np.ndarray,
         MF: np.ndarray, DI: np.ndarray, DF: np.ndarray, now: float) -> tuple[int, int, int, float]:
    """Run the SM's schedulers at global time ``now`` until they must yield to SimPy or hand an
    instruction to Python. Each awake sub-core picks a warp at its own clock, and the earliest
    of their picks issues (on a tie, that of the sub-core whose clock is earliest, then the
    lowest), so the four book the SM-wide LD/ST unit in time order without lining up with the
    global clock. Instructions that reach beyond the SM (global memory, barriers, exits:
    ``D_SYNC``) or lie more than the run-ahead ahead of ``now`` wait for the clock. Returns
    ``(code, sub-core, warp, ti)``: an ``R_*`` code and the sub-core, warp and cycle it
    concerns."""
    gto = MF[C_GTO] != 0.0
    banks_on = MF[C_BANKS_ON] != 0.0
    run_ahead = MF[C_RUN_AHEAD]
    order = int(MF[C_ORD])  # SI[s, order + k]: the sub-core's k-th warp, oldest first
    subs = int(MF[C_SUBS])
    for s in range(subs):  # readiness Python asked to recompute
        for j in range(SI[s, SI_COUNT]):
            x = SI[s, order + j]
            if WI[x, W_DIRTY]:
                WI[x, W_DIRTY] = 0
                refresh(WI, WF, CODE, DI, x, WF[x, F_TMIN])
    while True:
        best = -1
        w = -1
        ti = INF
        tb = INF
        for s in range(subs):
            if SI[s, SI_MODE] != M_AWAKE:
                continue
            if SI[s, SI_COUNT] == 0:
                return R_NO_WARPS, s, -1, 0.0
            t = SF[s, SF_T]
            cand, cand_t = pick(WI, WF, SI, SF, s, t, gto, order)
            if cand < 0:
                return R_NO_CAND, s, -1, 0.0
            if cand_t < t:
                cand_t = t
            # on a tie, the sub-core that has waited longest (issued last the longest ago)
            if cand_t < ti or (cand_t == ti and t < tb):
                best = s
                w = cand
                ti = cand_t
                tb = t
        if best < 0:
            return R_IDLE, -1, -1, 0.0
        rec = CODE[WI[w, W_OFF] + WI[w, W_PC]]
        sync = WI[w, W_PC] == WI[w, W_N] - 1 or DI[rec, D_SYNC] != 0
        # (never behind the clock: a pick before it would have issued before the loop slept)
        if ti > now and (sync or ti - now > run_ahead):
            return R_WAIT, best, w, ti
        code = issue(WI, WF, CODE, SI, SF, MF, DI, DF, best, w, ti, banks_on, gto)
        if code != R_GO:
            return code, best, w, ti


@njit(cache=True)
def admit(WI: np.ndarray, WF: np.ndarray, SI: np.ndarray, CODE: np.ndarray, codes: np.ndarray,
          w: int, off: int, sub: int, gid: int, t0: float, unit: int, order: int) -> None:
    """Warp slot ``w`` takes a new warp of sub-core ``sub``: stream ``codes`` at ``CODE[off:]``,
    ready at ``t0``, scoreboard clear; it joins the sub-core's warps, the youngest."""
    n = codes.shape[0]
    for i in range(n):
        CODE[off + i] = codes[i]
    for c in range(WI_N):
        WI[w, c] = 0
    WI[w, W_N] = n
    WI[w, W_UNIT] = unit
    WI[w, W_OFF] = off
    WI[w, W_GID] = gid
    for c in range(WF_N):
        WF[w, c] = 0.0
    WF[w, F_READY] = t0
    k = SI[sub, SI_COUNT]
    SI[sub, order + k] = w
    SI[sub, SI_COUNT] = k + 1


@njit(cache=True)
def leave(SI: np.ndarray, sub: int, w: int, order: int) -> None:
    """Warp slot ``w`` leaves sub-core ``sub``'s warps (the others keep their order)."""
    k = SI[sub, SI_COUNT]
    j = 0
    while SI[sub, order + j] != w:
        j += 1
    for i in range(j, k - 1):
        SI[sub, order + i] = SI[sub, order + i + 1]
    SI[sub, SI_COUNT] = k - 1
    if SI[sub, SI_LAST] == w:
        SI[sub, SI_LAST] = -1


class DecodeTable:
    """The decoded records the compiled issue logic reads (``DI``, ``DF``), one per distinct
    set of facts (kind, unit, opcode class, registers, timing, ...): instructions that differ
    only in their addresses share a record."""

    def __init__(self) -> None:
        self.DI = np.zeros((64, D_REG + 8), np.int64)
        self.DF = np.zeros((64, DF_N))
        self.n = 0
        self._index: dict[tuple[object, ...], int] = {}
        #: counts the times the arrays were replaced (by larger ones)
        self.version = 0

    def record(self, kind: int, unit: int, op: str, src: tuple[int, ...], dst: tuple[int, ...],
               lat: float, ii: float, flops: int, sync: bool, waves: int, rf: bool) -> int:
        """The row of these facts (added when new)."""
        key = (kind, unit, op, src, dst, lat, ii, flops, sync, waves, rf)
        rec = self._index.get(key)
        if rec is not None:
            return rec
        rec = self.n
        regs = src + dst
        rows, cols = self.DI.shape
        if rec == rows or D_REG + len(regs) > cols:
            di = np.zeros((2 * rows if rec == rows else rows, max(cols, D_REG + len(regs))),
                          np.int64)
            di[:rows, :cols] = self.DI
            self.DI = di
            if rec == rows:
                self.DF = np.concatenate([self.DF, np.zeros_like(self.DF)])
            self.version += 1
        self.DI[rec, :D_REG] = (kind, unit, OP_INDEX[op], len(src), len(dst), waves, rf, sync,
                                flops)
        self.DI[rec, D_REG:D_REG + len(regs)] = regs
        self.DF[rec] = (lat, ii)
        self.n += 1
        self._index[key] = rec
        return rec


class IssueState:
    """The issue logic's arrays of one SM (see the module's docstring), and their growth.

    Warps live in slots, reused once a warp has left; their instruction streams are stretches
    of ``CODE``, compacted when the buffer is full. A row of ``SI`` holds a sub-core's
    counters, then its issue counts per opcode class (``SI_CNT``), its register-file cache
    (``MF[C_RFC]``: the warps of its ``MF[C_RFC_N]`` entries, then their registers), then its
    warps, oldest first (``MF[C_ORD]``)."""

    #: Warp slots and stream records at first (both grow by doubling): small, since a replay
    #: builds every SM, and a pointer chase or a sampled slice uses few of them (132 SMs' state
    #: took 11-15 ms to allocate with 64 slots and 16,384 records, 1-4 ms with these).
    SLOTS = 8
    CODE_RECORDS = 2048

    def __init__(self, subs: int, constants: dict[int, float], rf_entries: int) -> None:
        self.subs = subs
        slots = self.SLOTS
        self.WI = np.zeros((slots, WI_N), np.int64)
        self.WF = np.zeros((slots, WF_N))
        self.MF = np.zeros(MF_N)
        for k, v in constants.items():
            self.MF[k] = v
        rfc = self.MF[C_RFC] = SI_CNT + len(OP_CLASSES)
        self.MF[C_RFC_N] = rf_entries
        self.order = self.MF[C_ORD] = rfc + 2 * rf_entries
        self.MF[C_SUBS] = subs
        self.SI = np.zeros((subs, self.order + slots), np.int64)
        self.SI[:, SI_LAST] = -1
        self.SI[:, rfc:self.order] = -1
        self.SF = np.zeros((subs, SF_N))
        self.CODE = np.zeros(self.CODE_RECORDS, np.int32)
        self._tail = 0  # CODE[:_tail] is in use or left behind by warps that left
        self._free = list(range(slots - 1, -1, -1))
        self._live: set[int] = set()
        #: counts the times the arrays were replaced (by larger ones)
        self.version = 0

    def arrays(self, table: DecodeTable) -> tuple[np.ndarray, ...]:
        """The arrays :func:`step` takes, in order, with ``table``'s."""
        return (self.WI, self.WF, self.CODE, self.SI, self.SF, self.MF, table.DI, table.DF)

    # -- warps ----------------------------------------------------------------------------------
    def add_warp(self, sub: int, codes: np.ndarray, gid: int, t0: float, unit: int) -> int:
        """A slot for a new warp of sub-core ``sub`` with stream ``codes``, ready at ``t0``
        (its scoreboard clear); it joins the sub-core's warps, the youngest."""
        if not self._free:
            self._grow_slots()
        w = self._free.pop()
        n = len(codes)
        if self._tail + n > self.CODE.shape[0]:
            self._compact(n)
        off = self._tail
        self._tail += n
        admit(self.WI, self.WF, self.SI, self.CODE, codes, w, off, sub, gid, float(t0), unit,
              self.order)
        self._live.add(w)
        return w

    def remove_warp(self, sub: int, w: int) -> None:
        """Warp ``w`` left sub-core ``sub`` (its slot is free again)."""
        leave(self.SI, sub, w, self.order)
        self._live.discard(w)
        self._free.append(w)

    def _grow_slots(self) -> None:
        n0 = self.WI.shape[0]
        self.WI = np.concatenate([self.WI, np.zeros_like(self.WI)])
        self.WF = np.concatenate([self.WF, np.zeros_like(self.WF)])
        self.SI = np.concatenate([self.SI, np.zeros((self.subs, n0), np.int64)], axis=1)
        self._free.extend(range(2 * n0 - 1, n0 - 1, -1))
        self.version += 1

    def _compact(self, need: int) -> None:
        """Move the live warps' streams to the front of ``CODE`` (larger if ``need`` more
        records would not fit)."""
        live = sorted(self._live, key=lambda w: int(self.WI[w, W_OFF]))
        used = sum(int(self.WI[w, W_N]) for w in live)
        size = self.CODE.shape[0]
        while used + need > size:
            size *= 2
        code = np.zeros(size, np.int32)
        tail = 0
        for w in live:
            off, n = int(self.WI[w, W_OFF]), int(self.WI[w, W_N])
            code[tail:tail + n] = self.CODE[off:off + n]
            self.WI[w, W_OFF] = tail
            tail += n
        self.CODE = code
        self._tail = tail
        self.version += 1

    # -- from Python -------------------------------------------------------------------------
    def lsu_claim(self, t: float, cycles: float) -> float:
        """:func:`lsu_claim` (the SM's LD/ST data path)."""
        return float(lsu_claim(self.SF, self.MF, float(t), float(cycles)))

    def counts(self, sub: int) -> np.ndarray:
        """Sub-core ``sub``'s issued instructions per opcode class (:data:`OP_CLASSES` order)."""
        return self.SI[sub, SI_CNT:SI_CNT + len(OP_CLASSES)]
