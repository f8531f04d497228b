"""HBM (and GDDR) device memory: channels, pseudo-channels, bank groups, banks and rows.

The model follows Ramulator 2's structure without its per-cycle loop:

* a **timing table** (:func:`timing_table`) lists every constraint as (preceding command,
  following command, scope, tCK): the values come straight from the device file's
  ``[dram.timing]`` table, so HBM2e, HBM3 and HBM3e presets are selected by the device;
* one **FR-FCFS controller per pseudo-channel** with a read queue and a write queue, write
  draining between a high and a low watermark, an open-row policy and all-bank refresh every
  tREFI;
* an **address mapping** that spreads consecutive lines (``interleave_bytes``, one L2 line;
  :func:`simgpu.sim.build_system` passes the device's) over channels (rotated by a
  hash of the higher address bits, so strided streams use every channel), then
  pseudo-channels, then bank groups, then columns of a row, then banks and rows (with the bank
  index XOR-ed with low row bits, the permutation interleaving of Zhang et al., MICRO 2000).

A request carries one to ``row_bytes / burst_bytes`` bursts (a 128-byte line is four 32-byte
bursts on HBM2/HBM3 pseudo-channels) to one row of one bank. The controller decides a request at
a time: precharge and activate when the row is not open, then the column commands, placed in the
earliest data-bus slots that satisfy tCCD_S (pseudo-channel) and tCCD_L (bank group) against
every command already placed. While it serves a row hit it also opens the row of the oldest
waiting miss to another bank (a command-level FR-FCFS scheduler issues such a ready ACT between
column commands), so row switches hide behind data transfers. Commands are integer tCK; the rest
of simgpu counts SM cycles, and the conversion uses ``tCK_ps`` and the SM clock given to
:class:`HBM`. Refresh is all-bank (REF) per pseudo-channel, staggered over tREFI; per-bank
refresh is not modelled, so refresh costs the full (tRP + tRFC + ...) / tREFI share.

Events: the controller wakes only when work arrives or when its plan runs out (it commits
commands up to a horizon ahead of the present); completion is handed to the caller's callback
with the data-return time as soon as the controller has placed the request (:meth:`HBM.submit`),
so a request costs no event of its own (:meth:`HBM.request` adds one for callers that wait on an
event).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from simgpu.errors import SimgpuError

if TYPE_CHECKING:
    import pandas as pd
    import simpy

    from simgpu.devices.spec import DramSpec, DramTimingSpec

__all__ = [
    "HBM",
    "HBMConfig",
    "TimingConstraint",
    "timing_table",
    "fire_at",
    "burst_bytes",
    "unloaded_read_tck",
    "peak_bandwidth_GBps",
    "refresh_limited_bandwidth_GBps",
]

ACT, PRE, RD, WR, REF = "ACT", "PRE", "RD", "WR", "REF"



class TimingConstraint(NamedTuple):
    """``following`` may issue no earlier than ``tck`` after ``preceding`` within ``scope``."""

    preceding: str
    following: str
    scope: str  # "bank", "bankgroup" or "channel" (a pseudo-channel: it owns its command bus)
    tck: int
    name: str  # the timing parameter(s) behind it


def read_to_write_tck(t: DramTimingSpec) -> int:
    """Read-to-write turnaround on the data bus, tCK.

    assumption: the write data may start only after the read data has left the bus, plus one
    tCK of bus turnaround: tCL + tBL + 1 - tCWL (at least tCCD_S). HBM3's nRTW of 20 at 6.4 Gb/s
    (published/dram_timings.md) is of this size once expressed at the device's clock.
    """
    return max(t.tCCD_S, t.tCL + t.tBL + 1 - t.tCWL)


def timing_table(t: DramTimingSpec) -> list[TimingConstraint]:
    """Every inter-command constraint the controller enforces, in tCK (Ramulator 2 style)."""
    wr_data_end = t.tCWL + t.tBL
    rtw = read_to_write_tck(t)
    return [
        TimingConstraint(ACT, ACT, "bank", t.tRC, "tRC"),
        TimingConstraint(ACT, RD, "bank", t.tRCD, "tRCD"),
        TimingConstraint(ACT, WR, "bank", t.tRCD, "tRCD"),
        TimingConstraint(ACT, PRE, "bank", t.tRAS, "tRAS"),
        TimingConstraint(PRE, ACT, "bank", t.tRP, "tRP"),
        TimingConstraint(RD, PRE, "bank", t.tRTP, "tRTP"),
        TimingConstraint(WR, PRE, "bank", wr_data_end + t.tWR, "tCWL+tBL+tWR"),
        TimingConstraint(ACT, ACT, "bankgroup", t.tRRD_L, "tRRD_L"),
        TimingConstraint(ACT, ACT, "channel", t.tRRD_S, "tRRD_S"),
        TimingConstraint(RD, RD, "bankgroup", t.tCCD_L, "tCCD_L"),
        TimingConstraint(WR, WR, "bankgroup", t.tCCD_L, "tCCD_L"),
        TimingConstraint(RD, RD, "channel", t.tCCD_S, "tCCD_S"),
        TimingConstraint(WR, WR, "channel", t.tCCD_S, "tCCD_S"),
        TimingConstraint(RD, WR, "channel", rtw, "tCL+tBL+1-tCWL"),
        TimingConstraint(WR, RD, "bankgroup", wr_data_end + t.tWTR_L, "tCWL+tBL+tWTR_L"),
        TimingConstraint(WR, RD, "channel", wr_data_end + t.tWTR_S, "tCWL+tBL+tWTR_S"),
        TimingConstraint(PRE, REF, "channel", t.tRP, "tRP"),
        TimingConstraint(REF, ACT, "channel", t.tRFC, "tRFC"),
        TimingConstraint(ACT, REF, "channel", t.tRC, "tRC"),
    ]


def burst_bytes(dram: DramSpec) -> int:
    """Bytes one column command moves on one pseudo-channel.

    width of a pseudo-channel x tBL x data bits per pin per tCK: HBM2e 64 bit x 2 tCK x 2 = 32 B,
    HBM3 32 bit x 2 tCK x 4 = 32 B, GDDR6 16 bit x 2 tCK x 8 = 32 B.
    """
    width_B = dram.channel_width_bits / dram.pseudo_channels_per_channel / 8
    bits_per_tck = dram.data_rate_Gbps * dram.timing.tCK_ns
    return max(1, round(width_B * dram.timing.tBL * bits_per_tck))


def unloaded_read_tck(t: DramTimingSpec, bursts: int = 1, state: str = "conflict") -> int:
    """Closed form: command-to-data time of one read to an idle bank, tCK.

    ``state`` is "hit" (row open), "closed" (bank precharged) or "conflict" (another row open):
    tCL + burst, tRCD + tCL + burst, tRP + tRCD + tCL + burst, where the burst of ``bursts``
    column commands to one bank takes (bursts - 1) x tCCD_L + tBL.
    """
    burst = (bursts - 1) * t.tCCD_L + t.tBL
    extra = {"hit": 0, "closed": t.tRCD, "conflict": t.tRP + t.tRCD}[state]
    return extra + t.tCL + burst


def peak_bandwidth_GBps(dram: DramSpec) -> float:
    """Closed form: every pseudo-channel moving one burst per max(tBL, tCCD_S), GB/s."""
    t = dram.timing
    pcs = dram.channels * dram.pseudo_channels_per_channel
    per_pc = burst_bytes(dram) / (max(t.tBL, t.tCCD_S) * t.tCK_ns)  # bytes/ns = GB/s
    return pcs * per_pc


def refresh_limited_bandwidth_GBps(dram: DramSpec) -> float:
    """Closed form (Ramulator 2's check): peak x (1 - (tRTP + tRP + tRFC + tRCD) / tREFI)."""
    t = dram.timing
    return peak_bandwidth_GBps(dram) * (1 - (t.tRTP + t.tRP + t.tRFC + t.tRCD) / t.tREFI)


def fire_at(env: simpy.Environment, event: simpy.Event, delay: float, value: Any = None) -> None:
    """Trigger ``event`` successfully with ``value``, ``delay`` time units from now.

    Lets a component that already knows when something will finish deliver it on the caller's
    own event. With ``delay <= 0`` the event is triggered at once (:meth:`simpy.Event.succeed`);
    otherwise a Timeout carrying ``value`` triggers it when it fires (:meth:`simpy.Event.trigger`
    as its callback), so ``event`` is processed at ``now + delay``, after the events already
    scheduled for that time.
    """
    if delay > 0:
        env.timeout(delay, value).callbacks.append(event.trigger)
    else:
        event.succeed(value)


@dataclass(frozen=True)
class HBMConfig:
    """Controller settings (not device data: they describe the memory controller)."""

    #: assumption: 64-entry read and write queues per pseudo-channel, Ramulator 2's default
    #: queue size for its generic DRAM controller.
    read_queue: int = 64
    write_queue: int = 64
    #: assumption: drain writes when the write queue is 3/4 full, stop at 1/4 (a common
    #: hysteresis choice in DRAM controller models, e.g. USIMM's write-drain watermarks).
    write_high: float = 0.75
    write_low: float = 0.25
    #: FR-FCFS looks this many entries deep for a row hit (assumption: the whole queue would be
    #: exact; 16 keeps the decision O(1) and finds the row hits of streaming traffic).
    window: int = 16
    #: refresh on/off (off only for closed-form peak-bandwidth checks)
    refresh: bool = True
    #: bytes of consecutive addresses kept in one pseudo-channel row: one L2 line (128 B on
    #: every GPU in models/; build_system passes the device's l2.line_bytes)
    interleave_bytes: int = 128
    #: XOR the bank index with low row bits (permutation-based interleaving)
    bank_xor: bool = True
    #: keep a log of every command (tests check it against the timing table)
    log: bool = False


class _Entry:
    __slots__ = ("t_arr", "seq", "bank", "bg", "row", "n", "write", "cb", "nbytes", "prepared")

    def __init__(
        self,
        t_arr: int,
        seq: int,
        bank: int,
        bg: int,
        row: int,
        n: int,
        write: bool,
        cb: Callable[[float], None] | None,
        nbytes: int,
    ) -> None:
        self.t_arr = t_arr
        self.seq = seq
        self.bank = bank
        self.bg = bg
        self.row = row
        self.n = n
        self.write = write
        self.cb = cb
        self.nbytes = nbytes
        self.prepared = False  # its row was opened ahead of its column commands


class _PseudoChannel:
    """State of one pseudo-channel: banks, command history, queues, refresh."""

    def __init__(self, index: int, banks: int, bank_groups: int, t_ref: int) -> None:
        self.index = index
        self.open_row = [-1] * banks
        self.act_ok = [0] * banks  # earliest ACT (tRC from last ACT, tRP from last PRE, tRFC)
        self.pre_ok = [0] * banks  # earliest PRE (tRAS, tRTP, tWR)
        self.col_ok = [0] * banks  # earliest column command (tRCD)
        self.bank_last = [0] * banks  # last command placed on the bank (commands stay ordered)
        self.bg_act = [-(10**9)] * bank_groups
        self.last_act = -(10**9)
        self.faw: deque[int] = deque(maxlen=4)
        self.last_rd = -(10**9)  # latest read column command
        self.wr_end = -(10**9)  # latest write data end, whole pseudo-channel
        self.wr_end_bg = [-(10**9)] * bank_groups
        self.base = 0  # time of bit 0 of the masks
        self.bus = 0  # bit t: data bus busy at base + t
        self.bgmask = [0] * bank_groups  # bit t: bank group's column path busy at base + t
        self.next_ref = t_ref
        # arrivals not yet in a queue, reads and writes apart (a full write queue must not
        # hold reads back): heaps by (arrival, sequence)
        self.incoming: list[tuple[int, int, _Entry]] = []
        self.incoming_w: list[tuple[int, int, _Entry]] = []
        self.rq: list[_Entry] = []
        self.wq: list[_Entry] = []
        self.draining = False
        self.armed_at: float | None = None
        self.planning = False  # armed to extend a plan (not waiting for an arrival)
        # statistics
        self.reads = 0
        self.writes = 0
        self.row_hits = 0
        self.row_misses = 0  # bank was closed
        self.row_conflicts = 0  # another row was open
        self.refreshes = 0
        self.bytes = 0
        self.busy_bursts = 0
        self.write_bytes = 0
        self.queue_wait = 0  # sum of (decision - arrival), tCK
        self.decided = 0


class HBM:
    """The device memory of a GPU (or a PIM device): address mapping, controllers, timing.

    ``env`` counts SM cycles at ``clock_MHz``; :meth:`request` and :meth:`submit` take delays in
    those cycles. Use on its own (PIM builds on it) or through :func:`simgpu.sim.build_system`.
    """

    def __init__(
        self,
        env: simpy.Environment,
        dram_spec: DramSpec,
        clock_MHz: float,
        config: HBMConfig | None = None,
    ) -> None:
        if clock_MHz <= 0:
            raise SimgpuError(f"HBM: clock_MHz = {clock_MHz!r}, expected a positive clock")
        self.env = env
        self.spec = dram_spec
        self.cfg = config or HBMConfig()
        t = dram_spec.timing
        self.t = t
        #: SM cycles per DRAM command clock
        self.cycles_per_tck = t.tCK_ps * clock_MHz / 1e6
        self.burst_bytes = burst_bytes(dram_spec)
        self.channels = dram_spec.channels
        self.pcs_per_channel = dram_spec.pseudo_channels_per_channel
        self.n_pc = self.channels * self.pcs_per_channel
        self.bank_groups = dram_spec.bank_groups
        self.banks_per_group = dram_spec.banks_per_group
        self.banks = self.bank_groups * self.banks_per_group
        ilv = self.cfg.interleave_bytes
        if ilv % self.burst_bytes or dram_spec.row_bytes % ilv:
            raise SimgpuError(
                f"HBM: interleave_bytes = {ilv}, expected a multiple of the burst "
                f"({self.burst_bytes} B) dividing row_bytes ({dram_spec.row_bytes})"
            )
        self.cols_per_row = dram_spec.row_bytes // ilv
        self.max_bursts = dram_spec.row_bytes // self.burst_bytes
        self._rtw = read_to_write_tck(t)
        self._refresh_on = self.cfg.refresh
        self._window = self.cfg.window
        self._logging = self.cfg.log
        self._wr_data = t.tCWL + t.tBL
        # assumption: the controller commits commands up to tRC ahead of the present; enough to
        # overlap one bank's activate with another's data, short enough that later arrivals
        # still compete (FR-FCFS) for most of a request's wait.
        self.horizon = t.tRC
        #: write-queue entries at which writes start and stop draining
        self.drain_start = max(1, math.ceil(self.cfg.write_high * self.cfg.write_queue))
        self.drain_stop = math.floor(self.cfg.write_low * self.cfg.write_queue)
        # assumption: refresh of the pseudo-channels is staggered evenly over tREFI, as
        # controllers do to avoid refreshing every channel at once.
        self.pcs = [
            _PseudoChannel(i, self.banks, self.bank_groups, t.tREFI * (i + 1) // self.n_pc + 1)
            for i in range(self.n_pc)
        ]
        self._seq = 0
        self._now = 0
        self.log: list[tuple[int, str, int, int, int]] = []  # (tCK, command, pc, bg, bank)
        s, lng = t.tCCD_S, t.tCCD_L
        self._pat_cache: dict[int, tuple[int, int]] = {}
        for n in range(1, self.max_bursts + 1):
            bus = 0
            for k in range(n):
                bus |= ((1 << s) - 1) << (k * lng)
            self._pat_cache[n] = (bus, (1 << (n * lng)) - 1)

    # -- address mapping ----------------------------------------------------------------
    def decode(self, addr: int) -> tuple[int, int, int, int, int]:
        """(pseudo-channel, bank group, bank within group, row, column) of a byte address."""
        if addr < 0:
            raise SimgpuError(f"HBM: address {addr} is negative")
        channels, pcs, groups, banks = (
            self.channels, self.pcs_per_channel, self.bank_groups, self.banks_per_group
        )
        idx = addr // self.cfg.interleave_bytes
        hi = idx // channels
        # rotate the channel by a hash of the higher bits: still a bijection (for fixed higher
        # bits it is a rotation), and strided streams no longer skip channels
        ch = (idx + ((hi * 0x9E3779B1) >> 16)) % channels
        pc = hi % pcs
        idx = hi // pcs
        bg = idx % groups
        idx //= groups
        col = idx % self.cols_per_row
        idx //= self.cols_per_row
        bank = idx % banks
        row = idx // banks
        if self.cfg.bank_xor:
            bank ^= row % banks
        return ch * pcs + pc, bg, bank, row, col

    # -- requests -----------------------------------------------------------------------
    def submit(
        self,
        addr: int,
        nbytes: int,
        write: bool = False,
        delay: float = 0.0,
        callback: Callable[[float], None] | None = None,
    ) -> None:
        """Queue an access arriving at the controller ``delay`` SM cycles from now.

        ``callback(t)`` is called once the controller has placed the column commands, with
        ``t`` the absolute time (SM cycles) at which the last data beat leaves the DRAM (reads)
        or is written (writes); the call happens at or before ``t``.
        """
        if nbytes <= 0:
            raise SimgpuError(f"HBM: nbytes = {nbytes}, expected > 0")
        n = -(-nbytes // self.burst_bytes)
        if n > self.max_bursts:
            raise SimgpuError(
                f"HBM: nbytes = {nbytes} spans {n} bursts, expected at most one row "
                f"({self.max_bursts} bursts of {self.burst_bytes} B)"
            )
        pci, bg, bank, row, _col = self.decode(addr)
        pc = self.pcs[pci]
        t_arr = math.ceil((self.env.now + delay) / self.cycles_per_tck - 1e-9)
        seq = self._seq = self._seq + 1
        e = _Entry(
            t_arr, seq, bg * self.banks_per_group + bank, bg, row, n, write, callback, nbytes
        )
        heapq.heappush(pc.incoming_w if write else pc.incoming, (t_arr, seq, e))
        if not pc.planning and (pc.armed_at is None or pc.armed_at > t_arr):
            # a busy controller admits arrivals when its plan runs out
            self._arm(pc, t_arr)

    def request(
        self, addr: int, nbytes: int, write: bool = False, delay: float = 0.0
    ) -> simpy.Event:
        """Like :meth:`submit`, returning an event that fires (value: the time) when done."""
        env = self.env
        ev = env.event()

        def done(t: float) -> None:
            fire_at(env, ev, max(0.0, t - env.now), t)

        self.submit(addr, nbytes, write, delay, done)
        return ev

    # -- controller -----------------------------------------------------------------------
    def _arm(self, pc: _PseudoChannel, t_tck: float) -> None:
        """Make sure the controller of ``pc`` runs at (or before) ``t_tck``."""
        if pc.armed_at is not None and pc.armed_at <= t_tck:
            return
        pc.armed_at = t_tck
        env = self.env
        delay = t_tck * self.cycles_per_tck - env.now
        ev = env.timeout(delay if delay > 0.0 else 0.0)
        ev.callbacks.append(partial(self._wake, pc, t_tck))

    def _wake(self, pc: _PseudoChannel, t_tck: float, _ev: object = None) -> None:
        if pc.armed_at != t_tck:
            return  # superseded by an earlier wake-up
        pc.armed_at = None
        pc.planning = False
        self._step(pc)

    def _admit(self, pc: _PseudoChannel, now: int) -> None:
        inc, q, cap = pc.incoming, pc.rq, self.cfg.read_queue
        while inc and inc[0][0] <= now and len(q) < cap:
            q.append(heapq.heappop(inc)[2])
        inc, q, cap = pc.incoming_w, pc.wq, self.cfg.write_queue
        while inc and inc[0][0] <= now and len(q) < cap:
            q.append(heapq.heappop(inc)[2])

    def _step(self, pc: _PseudoChannel) -> None:
        """Decide requests until the plan reaches the horizon; re-arm."""
        now = math.floor(self.env.now / self.cycles_per_tck + 1e-9)
        self._now = now
        self._admit(pc, now)
        limit = now + 2 * self.horizon  # plan a further horizon each wake-up
        while pc.rq or pc.wq:
            e = self._pick(pc)
            first_col = self._place(pc, e, now)
            if pc.incoming or pc.incoming_w:
                self._admit(pc, now)  # a slot freed in a full queue
            if first_col > limit:
                self._arm(pc, first_col - self.horizon)
                pc.planning = True
                return
        if pc.incoming or pc.incoming_w:
            nxt = min(h[0][0] for h in (pc.incoming, pc.incoming_w) if h)
            self._arm(pc, max(nxt, now + 1))

    def _pick(self, pc: _PseudoChannel) -> _Entry:
        """FR-FCFS with write draining: row hits first, then the oldest."""
        if pc.draining:
            if len(pc.wq) <= self.drain_stop:
                pc.draining = False
        elif len(pc.wq) >= self.drain_start:
            pc.draining = True
        q = pc.wq if (pc.draining or not pc.rq) else pc.rq
        if len(q) == 1:  # a lone request: nothing to choose between
            return q.pop()
        open_row = pc.open_row
        hit = miss = -1
        for i, e in enumerate(q[: self._window]):
            if open_row[e.bank] == e.row:
                if hit < 0:
                    hit = i
                    if miss >= 0:
                        break
            elif miss < 0:
                miss = i
                if hit >= 0:
                    break
        if hit < 0:
            return q.pop(0)
        if miss >= 0 and q[miss].bank != q[hit].bank:
            self._prepare(pc, q, miss, self._now)
        return q.pop(hit)

    def _refresh(self, pc: _PseudoChannel, t0: int) -> None:
        """All-bank refresh(es) due by ``t0``: precharge open banks, REF, block tRFC."""
        t = self.t
        if t0 - pc.next_ref >= t.tREFI:  # idle for several intervals: only the last matters
            skipped = (t0 - pc.next_ref) // t.tREFI
            pc.refreshes += skipped
            pc.next_ref += skipped * t.tREFI
        open_row = pc.open_row
        n_banks = len(open_row)
        while t0 >= pc.next_ref:
            # ACT -> REF: tRC (act_ok = ACT + tRC); REF also follows every bank's last command
            t_ref = max(pc.next_ref, max(pc.act_ok), max(pc.bank_last))
            for b, row in enumerate(open_row):
                if row < 0:
                    continue
                t_pre = max(pc.next_ref, pc.pre_ok[b], pc.bank_last[b])
                if self._logging:
                    self._log(t_pre, PRE, pc, b)
                if t_pre + t.tRP > t_ref:
                    t_ref = t_pre + t.tRP
                open_row[b] = -1
            if self._logging:
                self._log(t_ref, REF, pc, -1)
            # t_ref is at or after every bank's act_ok and bank_last: the refresh sets them all
            pc.act_ok = [t_ref + t.tRFC] * n_banks
            pc.bank_last = [t_ref] * n_banks
            pc.refreshes += 1
            pc.next_ref += t.tREFI

    def _log(self, tck: int, cmd: str, pc: _PseudoChannel, bank: int) -> None:
        if self.cfg.log:
            bg = bank // self.banks_per_group if bank >= 0 else -1
            self.log.append((tck, cmd, pc.index, bg, bank))

    def _place(self, pc: _PseudoChannel, e: _Entry, now: int) -> int:
        """Place the commands of one request; call back with its completion; return first col."""
        # the hottest code of the DRAM model: two-way maxima are written as conditionals
        # (a third of the cost of max()) and the log is looked at only when it is on
        t = self.t
        t_arr = e.t_arr
        t0 = t_arr if t_arr > now else now
        pc.queue_wait += t0 - t_arr
        pc.decided += 1
        if t0 >= pc.next_ref and self._refresh_on:
            self._refresh(pc, t0)
        b, g, write = e.bank, e.bg, e.write
        bank_last = pc.bank_last
        if bank_last[b] > t0:
            t0 = bank_last[b]
        if pc.open_row[b] == e.row:
            if not e.prepared:
                pc.row_hits += 1
            col_min = pc.col_ok[b] if pc.col_ok[b] > t0 else t0
        else:
            col_min = self._open(pc, e, t0)
        if write:
            col_min = max(col_min, pc.last_rd + self._rtw)
        else:
            col_min = max(col_min, pc.wr_end + t.tWTR_S, pc.wr_end_bg[g] + t.tWTR_L)
        n = e.n
        s = self._slots(pc, g, col_min, n, now)
        last = s + (n - 1) * t.tCCD_L
        if self._logging:
            for k in range(n):
                self._log(s + k * t.tCCD_L, WR if write else RD, pc, b)
        bank_last[b] = last
        pre_ok = pc.pre_ok
        if write:
            end = last + self._wr_data
            pre = end + t.tWR
            if pre > pre_ok[b]:
                pre_ok[b] = pre
            if end > pc.wr_end:
                pc.wr_end = end
            if end > pc.wr_end_bg[g]:
                pc.wr_end_bg[g] = end
            pc.writes += 1
            pc.write_bytes += e.nbytes
        else:
            end = last + t.tCL + t.tBL
            pre = last + t.tRTP
            if pre > pre_ok[b]:
                pre_ok[b] = pre
            if last > pc.last_rd:
                pc.last_rd = last
            pc.reads += 1
        pc.bytes += e.nbytes
        pc.busy_bursts += n
        if e.cb is not None:
            e.cb(end * self.cycles_per_tck)
        return s

    def _open(self, pc: _PseudoChannel, e: _Entry, t0: int) -> int:
        """Precharge (if another row is open) and activate the row of ``e``; earliest column."""
        t = self.t
        b, g = e.bank, e.bg
        if pc.open_row[b] >= 0:
            pc.row_conflicts += 1
            t_pre = max(t0, pc.pre_ok[b], pc.bank_last[b])
            if self._logging:
                self._log(t_pre, PRE, pc, b)
            act_min = t_pre + t.tRP
        else:
            pc.row_misses += 1
            act_min = t0
        if pc.act_ok[b] > act_min:
            act_min = pc.act_ok[b]
        act_min = max(act_min, pc.bg_act[g] + t.tRRD_L, pc.last_act + t.tRRD_S)
        faw = pc.faw
        if len(faw) == 4 and faw[0] + t.tFAW > act_min:
            act_min = faw[0] + t.tFAW
        if self._logging:
            self._log(act_min, ACT, pc, b)
        pc.open_row[b] = e.row
        pc.act_ok[b] = act_min + t.tRC
        pc.pre_ok[b] = act_min + t.tRAS
        pc.col_ok[b] = act_min + t.tRCD
        if act_min > pc.bank_last[b]:
            pc.bank_last[b] = act_min
        pc.bg_act[g] = act_min
        if act_min > pc.last_act:
            pc.last_act = act_min
        faw.append(act_min)
        return act_min + t.tRCD

    def _prepare(self, pc: _PseudoChannel, q: list[_Entry], i: int, now: int) -> None:
        """Open the row of the oldest waiting row miss early, as a command-level FR-FCFS
        scheduler issues a ready ACT to another bank while column commands flow; skipped when
        a queued request still wants the row that is open in that bank."""
        e = q[i]
        if e.prepared:
            return
        b = e.bank
        cur = pc.open_row[b]
        if cur >= 0:
            for j in range(min(len(q), self.cfg.window)):
                o = q[j]
                if o.bank == b and o.row == cur:
                    return
        if self.cfg.refresh and max(e.t_arr, now) >= pc.next_ref:
            return  # the refresh comes first; the request opens its row when placed
        e.prepared = True
        self._open(pc, e, max(e.t_arr, now))

    def _slots(self, pc: _PseudoChannel, g: int, t_min: int, n: int, now: int) -> int:
        """Earliest start s >= t_min for n column commands at s + k*tCCD_L; reserve them."""
        if now - pc.base > 256:  # slide the window of the occupancy masks (never past now)
            shift = now - pc.base
            pc.bus >>= shift
            pc.bgmask = [m >> shift for m in pc.bgmask]
            pc.base += shift
        bus_pat, bg_pat = self._pat_cache[n]
        off = t_min - pc.base
        if off < 0:
            raise AssertionError("command placed before the mask window")  # pragma: no cover
        bus, bgm = pc.bus, pc.bgmask[g]
        both = bus | bgm
        while True:
            x = both >> off
            if x & 1:  # both patterns start with a busy bit: jump over the run of busy cycles
                off += (~x & (x + 1)).bit_length() - 1
            if not ((bus >> off) & bus_pat or (bgm >> off) & bg_pat):
                break
            off += 1
        pc.bus = bus | (bus_pat << off)
        pc.bgmask[g] = bgm | (bg_pat << off)
        return pc.base + off

    # -- statistics ---------------------------------------------------------------------
    def totals(self) -> dict[str, float]:
        """Sums over all pseudo-channels (reads, writes, row hits/misses/conflicts, bytes...)."""
        keys = (
            "reads", "writes", "row_hits", "row_misses", "row_conflicts", "refreshes", "bytes",
            "write_bytes", "busy_bursts", "queue_wait", "decided",
        )
        out: dict[str, float] = {k: float(sum(getattr(p, k) for p in self.pcs)) for k in keys}
        out["pending"] = float(
            sum(len(p.rq) + len(p.wq) + len(p.incoming) + len(p.incoming_w) for p in self.pcs)
        )
        # writes accepted but not yet placed (a write-back still queued when a run ends)
        out["pending_write_bytes"] = float(
            sum(e.nbytes for p in self.pcs for e in p.wq)
            + sum(h[2].nbytes for p in self.pcs for h in p.incoming_w)
        )
        return out

    def stats(self) -> pd.DataFrame:
        """One row per pseudo-channel: traffic, row-buffer outcomes, refreshes, queueing."""
        import pandas as pd  # here: pandas adds ~0.5 s to start-up; only tables need it

        rows = []
        for p in self.pcs:
            rows.append(
                {
                    "pseudo_channel": p.index,
                    "reads": p.reads,
                    "writes": p.writes,
                    "row_hits": p.row_hits,
                    "row_misses": p.row_misses,
                    "row_conflicts": p.row_conflicts,
                    "refreshes": p.refreshes,
                    "bytes": p.bytes,
                    "mean_wait_tck": p.queue_wait / p.decided if p.decided else 0.0,
                }
            )
        return pd.DataFrame(rows)

    def timing(self) -> pd.DataFrame:
        """The timing table of this device as a DataFrame (tCK and ns)."""
        import pandas as pd  # here: pandas adds ~0.5 s to start-up; only tables need it

        df = pd.DataFrame([c._asdict() for c in timing_table(self.t)])
        df["ns"] = df["tck"] * self.t.tCK_ns
        return df
