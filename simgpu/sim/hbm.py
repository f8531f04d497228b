"""HBM (and GDDR) device memory: channels, pseudo-channels, bank groups, banks and rows.

The model follows Ramulator 2's structure without its per-cycle loop:

* a **timing table** (:func:`timing_table`) lists every constraint as (preceding command,
  following command, scope, tCK): the values come straight from the device file's
  ``[dram.timing]`` table, so HBM2e, HBM3 and HBM3e presets are selected by the device;
* one **FR-FCFS controller per pseudo-channel** that schedules commands (ACT, PRE, RD, WR,
  REF), not whole requests: at each decision, among the requests in its queue, the oldest
  request whose next command is ready issues it, column commands to open rows (row hits) before
  row commands, and a PRE never closes a row that a queued request still wants. An ACT to an idle
  bank therefore overtakes an older request waiting out tRC or tRP on a busy bank; tRRD and tFAW
  are checked against the ACTs actually issued. A request leaves the queue when its column
  commands issue. Reads and writes have queues of their own; writes are drained between a high
  and a low watermark; refresh as the device file's ``dram.timing.refresh`` says. Arrivals
  enter their queue as it has room; with ``HBMConfig.in_order`` they enter in arrival order
  across both queues (an in-order front end: one waiting for a full queue holds back the rest);
* an **address mapping** that spreads consecutive lines (``interleave_bytes``, one L2 line;
  :func:`simgpu.sim.build_system` passes the device's) over channels (rotated by a
  hash of the higher address bits, so strided streams use every channel), then
  pseudo-channels, then bank groups, then columns of a row, then banks and rows (with the bank
  index XOR-ed with low row bits, the permutation interleaving of Zhang et al., MICRO 2000).

A request carries one to ``row_bytes / burst_bytes`` bursts (a 128-byte line is four 32-byte
bursts on HBM2/HBM3 pseudo-channels) to one row of one bank. Its column commands issue together:
the first when the scheduler picks it, the others tCCD_L apart in the earliest data-bus slots
that keep tCCD_S (pseudo-channel) and tCCD_L (bank group) against every column command already
issued, so other bank groups' bursts interleave with them. Row commands (ACT, PRE) and column
commands travel on separate command buses, one command each per tCK (HBM's row and column
command interfaces, JESD235/JESD238). Commands are integer tCK; the rest of simgpu counts SM
cycles, and the conversion uses ``tCK_ps`` and the SM clock given to :class:`HBM`. Refresh is
per pseudo-channel, staggered over tREFI, and either all-bank (a precharge-all, then REF, the
whole pseudo-channel blocked tRFC: the full (tRP + tRFC + ...) / tREFI share is lost) or per
bank (REFpb to one bank at a time in bank order, every bank once per tREFI, tRREFD apart, that
bank blocked tRFCpb while the others serve requests), as HBM3 (JESD238) allows.

Events: a controller wakes only when a request arrives or when the next command can issue (no
per-cycle ticking); a refresh that falls due while it sleeps is placed at its due time when it
wakes (nothing issued in between, so the placement is exact). Completion is handed to the
caller's callback, with the data-return time, when the request's column commands issue
(:meth:`HBM.submit`), so a request costs no event of its own (:meth:`HBM.request` adds one for
callers that wait on an event).
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


def timing_table(t: DramTimingSpec, refresh: str | None = None) -> list[TimingConstraint]:
    """Every inter-command constraint the controller enforces, in tCK (Ramulator 2 style).

    ``refresh`` ("all_bank" or "per_bank"; default the device file's ``refresh``) picks the
    REF rows: an all-bank REF acts on the whole pseudo-channel, a per-bank REF on its bank,
    tRREFD after the previous one."""
    wr_data_end = t.tCWL + t.tBL
    rtw = read_to_write_tck(t)
    if (refresh or t.refresh) == "per_bank":
        assert t.tRFCpb is not None and t.tRREFD is not None
        refs = [
            TimingConstraint(PRE, REF, "bank", t.tRP, "tRP"),
            TimingConstraint(REF, ACT, "bank", t.tRFCpb, "tRFCpb"),
            TimingConstraint(ACT, REF, "bank", t.tRC, "tRC"),
            TimingConstraint(REF, REF, "channel", t.tRREFD, "tRREFD"),
        ]
    else:
        refs = [
            TimingConstraint(PRE, REF, "channel", t.tRP, "tRP"),
            TimingConstraint(REF, ACT, "channel", t.tRFC, "tRFC"),
            TimingConstraint(ACT, REF, "channel", t.tRC, "tRC"),
        ]
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
        *refs,
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
    #: queue size for its generic DRAM controller. The scheduler considers every queued request.
    read_queue: int = 64
    write_queue: int = 64
    #: assumption: drain writes when the write queue is 3/4 full, stop at 1/4 (a common
    #: hysteresis choice in DRAM controller models, e.g. USIMM's write-drain watermarks).
    write_high: float = 0.75
    write_low: float = 0.25
    #: refresh on/off (off only for closed-form peak-bandwidth checks)
    refresh: bool = True
    #: "all_bank" or "per_bank" to override the device file's ``dram.timing.refresh`` (a
    #: comparison with another simulator's configuration); None: the device's
    refresh_mode: str | None = None
    #: bytes of consecutive addresses kept in one pseudo-channel row: one L2 line (128 B on
    #: every GPU in models/; build_system passes the device's l2.line_bytes)
    interleave_bytes: int = 128
    #: XOR the bank index with low row bits (permutation-based interleaving)
    bank_xor: bool = True
    #: admit arrivals in arrival order across both queues: an arrival whose queue is full
    #: holds back every later one (an in-order front end, as Ramulator 2's trace front ends
    #: and a single request port). Off: a full write queue does not hold reads back.
    in_order: bool = False
    #: keep a log of every command (tests check it against the timing table)
    log: bool = False


_NEVER = -(10**9)
_INF = 1 << 62


class _Entry:
    __slots__ = (
        "t_arr", "t_q", "seq", "age", "bank", "bg", "row", "n", "write", "cb", "nbytes", "acted"
    )

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
        self.t_q = t_arr  # when it entered the queue (later than t_arr when the queue was full)
        self.seq = seq  # submission order (ties between equal arrival times)
        self.age = 0  # admission order: FR-FCFS's "oldest"
        self.bank = bank
        self.bg = bg
        self.row = row
        self.n = n
        self.write = write
        self.cb = cb
        self.nbytes = nbytes
        self.acted = False  # an ACT was issued for it (its column commands are still to come)


#: the counters of :class:`_PseudoChannel` that :meth:`HBM.totals` sums and
#: :meth:`HBM.reset_stats` zeroes
_COUNTERS = (
    "reads", "writes", "row_hits", "row_misses", "row_conflicts", "refreshes", "bytes",
    "write_bytes", "busy_bursts", "queue_wait", "decided", "read_latency", "read_queue_latency",
    "acts", "pres",
)


class _PseudoChannel:
    """State of one pseudo-channel: banks, last commands, queues, refresh, statistics."""

    def __init__(self, index: int, banks: int, bank_groups: int, t_ref: int) -> None:
        self.index = index
        self.open_row = [-1] * banks
        self.act_ok = [0] * banks  # earliest ACT (tRC from last ACT, tRP from last PRE, tRFC)
        self.pre_ok = [0] * banks  # earliest PRE (tRAS, tRTP, write recovery)
        self.col_ok = [0] * banks  # earliest column command (tRCD)
        self.pre_for = [False] * banks  # the bank was closed by a PRE for a request (a conflict)
        self.bg_act = [_NEVER] * bank_groups  # last ACT per bank group (tRRD_L)
        self.last_act = _NEVER  # last ACT (tRRD_S)
        self.faw: deque[int] = deque(maxlen=4)  # the last four ACTs issued (tFAW)
        self.row_free = 0  # the row command bus is free from this tCK
        self.last_rd = _NEVER  # latest read column command (reserved bursts included)
        self.wr_end = _NEVER  # latest write data end, whole pseudo-channel
        self.wr_end_bg = [_NEVER] * bank_groups
        self.base = 0  # time of bit 0 of the masks
        self.bus = 0  # bit t: data bus busy at base + t
        self.bgmask = [0] * bank_groups  # bit t: bank group's column path busy at base + t
        self.next_ref = t_ref
        # per-bank refresh: the first due time, the refreshes issued, the last REFpb
        self.ref_base = t_ref
        self.ref_k = 0
        self.ref_bank = 0
        self.last_refpb = _NEVER
        # arrivals not yet in a queue, reads and writes apart (a full write queue must not
        # hold reads back): heaps by (arrival, sequence)
        self.incoming: list[tuple[int, int, _Entry]] = []
        self.incoming_w: list[tuple[int, int, _Entry]] = []
        # the queues, per bank, oldest first
        self.rq: list[list[_Entry]] = [[] for _ in range(banks)]
        self.wq: list[list[_Entry]] = [[] for _ in range(banks)]
        self.n_rq = 0
        self.n_wq = 0
        # when each queue last had room after being full: an arrival waiting for a slot
        # enters then (an arrival finding room enters at once, whenever it is admitted)
        self.room_r = _NEVER
        self.room_w = _NEVER
        self.rmask = 0  # bit b: rq[b] holds requests
        self.wmask = 0
        self.amask = 0  # bit b: act_bank[b] > 0
        self.ages = 0
        # queued reads / writes that want the open row of each bank (a PRE waits for them)
        self.want_r = [0] * banks
        self.want_w = [0] * banks
        self.activated: list[_Entry] = []  # ACT issued, column commands not yet
        self.act_r = 0  # reads and writes among them
        self.act_w = 0
        self.act_bank = [0] * banks  # activated requests per bank
        self.draining = False
        self.armed_at: float | None = None  # the wake-up that counts
        self.events: set[float] = set()  # times of the wake-ups scheduled (some superseded)
        # the last decision's lower bound on the next one (valid until the state changes) and
        # the queue it serves
        self.plan_at: int | None = None
        self.plan_mode = False
        # statistics
        self.reads = 0
        self.writes = 0
        self.row_hits = 0  # the row was open (no ACT issued for the request)
        self.row_misses = 0  # the bank was closed
        self.row_conflicts = 0  # another row was open and was precharged for it
        self.refreshes = 0
        self.bytes = 0
        self.busy_bursts = 0
        self.write_bytes = 0
        self.queue_wait = 0  # sum of (first column command - arrival), tCK
        self.decided = 0  # requests whose column commands issued
        self.read_latency = 0  # sum over reads of (data end - arrival), tCK
        self.read_queue_latency = 0  # sum over reads of (data end - queue entry), tCK
        self.acts = 0
        self.pres = 0  # precharges of one bank (a precharge-all before REF counts none)
        self.last_end = 0  # latest data end of an issued request, tCK


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
        for name in ("read_queue", "write_queue"):
            if getattr(self.cfg, name) < 1:
                raise SimgpuError(
                    f"HBM: {name} = {getattr(self.cfg, name)}, expected at least 1 entry"
                )
        self.cols_per_row = dram_spec.row_bytes // ilv
        self.max_bursts = dram_spec.row_bytes // self.burst_bytes
        self._refresh_on = self.cfg.refresh
        mode = self.cfg.refresh_mode or t.refresh
        if mode not in ("all_bank", "per_bank"):
            raise SimgpuError(f"HBM: refresh_mode = {mode!r}, expected 'all_bank' or 'per_bank'")
        if mode == "per_bank" and (t.tRFCpb is None or t.tRREFD is None):
            raise SimgpuError("HBM: per-bank refresh needs dram.timing.tRFCpb and tRREFD")
        #: REFpb to one bank at a time (each bank once per tREFI) instead of REFab
        self._per_bank = mode == "per_bank"
        self._logging = self.cfg.log
        # the timing table is the one source of constraints: the controller reads its values
        # from it by (preceding, following, scope)
        tab = {(c.preceding, c.following, c.scope): c.tck for c in timing_table(t, mode)}
        ref_scope = "bank" if self._per_bank else "channel"
        self._tRC = tab[ACT, ACT, "bank"]
        self._tRCD = tab[ACT, RD, "bank"]
        self._tRCD_W = tab[ACT, WR, "bank"]
        self._tRAS = tab[ACT, PRE, "bank"]
        self._tRP = tab[PRE, ACT, "bank"]
        self._tRTP = tab[RD, PRE, "bank"]
        self._wr_pre = tab[WR, PRE, "bank"]  # tCWL + tBL + tWR after the write command
        self._tRRD_L = tab[ACT, ACT, "bankgroup"]
        self._tRRD_S = tab[ACT, ACT, "channel"]
        self._tCCD_L = tab[RD, RD, "bankgroup"]
        self._tCCD_S = tab[RD, RD, "channel"]
        self._rtw = tab[RD, WR, "channel"]
        self._wtr_l = tab[WR, RD, "bankgroup"]  # tCWL + tBL + tWTR_L after the write command
        self._wtr_s = tab[WR, RD, "channel"]
        self._pre_ref = tab[PRE, REF, ref_scope]
        self._tRFC = tab[REF, ACT, ref_scope]
        self._act_ref = tab[ACT, REF, ref_scope]
        # the controller keeps one earliest-time per bank (act_ok) and one column path: these
        # pairs of the table must agree
        if (tab[WR, WR, "bankgroup"], tab[WR, WR, "channel"]) != (self._tCCD_L, self._tCCD_S):
            raise SimgpuError("HBM: the timing table's WR-WR spacing differs from RD-RD")
        if (self._act_ref, self._pre_ref) != (self._tRC, self._tRP):
            raise SimgpuError("HBM: the timing table's ACT/PRE -> REF differ from -> ACT")
        self._data = t.tCL + t.tBL  # read command to its last data beat
        self._wr_data = t.tCWL + t.tBL  # write command to its last data beat
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
        self._cb_at = _INF  # set by each decision: see _step
        self._bank_sets: dict[int, list[int]] = {}  # bank mask -> the banks in it
        self._bgof = [b // self.banks_per_group for b in range(self.banks)]  # bank -> group
        self.log: list[tuple[int, str, int, int, int]] = []  # (tCK, command, pc, bg, bank)
        s, lng = self._tCCD_S, self._tCCD_L
        # occupancy patterns of n column commands tCCD_L apart: data bus, bank group's path
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

        ``callback(t)`` is called when the controller issues the request's column commands,
        with ``t`` the absolute time (SM cycles) at which the last data beat leaves the DRAM
        (reads) or is written (writes); the call happens at or before ``t``.
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
        if (pc.n_wq >= self.cfg.write_queue) if write else (pc.n_rq >= self.cfg.read_queue):
            return  # it enters when a request leaves; the busy controller is armed already
        if pc.armed_at is None or pc.armed_at > t_arr:
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
        if t_tck in pc.events:
            return  # a wake-up at that time is on its way (it was superseded, now it is not)
        pc.events.add(t_tck)
        env = self.env
        delay = t_tck * self.cycles_per_tck - env.now
        ev = env.timeout(delay if delay > 0.0 else 0.0)
        ev.callbacks.append(partial(self._wake, pc, t_tck))

    def _wake(self, pc: _PseudoChannel, t_tck: float, _ev: object = None) -> None:
        pc.events.discard(t_tck)
        if pc.armed_at != t_tck:
            return  # superseded by an earlier wake-up
        pc.armed_at = None
        self._step(pc)

    def _admit(self, pc: _PseudoChannel, now: int) -> list[_Entry]:
        """Move arrivals due by ``now`` into the queues while they have room; return them."""
        if self.cfg.in_order:
            return self._admit_in_order(pc, now)
        new: list[_Entry] = []
        for write in (False, True):
            inc = pc.incoming_w if write else pc.incoming
            if not inc or inc[0][0] > now:
                continue
            if write:
                cap, q, want = self.cfg.write_queue - pc.n_wq, pc.wq, pc.want_w
            else:
                cap, q, want = self.cfg.read_queue - pc.n_rq, pc.rq, pc.want_r
            open_row = pc.open_row
            mask = pc.wmask if write else pc.rmask
            k = 0
            while k < cap and inc and inc[0][0] <= now:
                e = heapq.heappop(inc)[2]
                room = pc.room_w if write else pc.room_r
                e.t_q = e.t_arr if e.t_arr > room else room
                pc.ages += 1
                e.age = pc.ages
                q[e.bank].append(e)
                mask |= 1 << e.bank
                if open_row[e.bank] == e.row:
                    want[e.bank] += 1
                new.append(e)
                k += 1
            if write:
                pc.n_wq += k
                pc.wmask = mask
            else:
                pc.n_rq += k
                pc.rmask = mask
        return new

    def _admit_in_order(self, pc: _PseudoChannel, now: int) -> list[_Entry]:
        """:meth:`_admit` for an in-order front end: the earliest arrival first, whichever its
        queue; the first that finds its queue full stops the rest."""
        new: list[_Entry] = []
        inc_r, inc_w = pc.incoming, pc.incoming_w
        while inc_r or inc_w:
            write = not inc_r or bool(inc_w and inc_w[0] < inc_r[0])
            inc = inc_w if write else inc_r
            full = pc.n_wq >= self.cfg.write_queue if write else pc.n_rq >= self.cfg.read_queue
            if inc[0][0] > now or full:
                break
            e = heapq.heappop(inc)[2]
            if write:
                e.t_q = e.t_arr if e.t_arr > pc.room_w else pc.room_w
                q, want = pc.wq, pc.want_w
                pc.wmask |= 1 << e.bank
                pc.n_wq += 1
            else:
                e.t_q = e.t_arr if e.t_arr > pc.room_r else pc.room_r
                q, want = pc.rq, pc.want_r
                pc.rmask |= 1 << e.bank
                pc.n_rq += 1
            q[e.bank].append(e)
            if pc.open_row[e.bank] == e.row:
                want[e.bank] += 1
            pc.ages += 1
            e.age = pc.ages
            new.append(e)
        return new

    def _step(self, pc: _PseudoChannel) -> None:
        """Issue every command that can issue now, and at each later time a command can issue
        while nothing else happens in the simulation meanwhile; then sleep until the next one.

        Running on to the next decision without an event is exact when no event is due
        before it (``env.peek()``): nothing can submit a request in between. A request with a
        callback is issued only at a time the simulation has reached (the callback may look at
        ``env.now``), so such a decision waits for its own wake-up."""
        env = self.env
        cpt = self.cycles_per_tck
        now = math.floor(env.now / cpt + 1e-9)
        plan = pc.plan_at
        if plan is not None and now < plan and not (self._refresh_on and now >= pc.next_ref):
            # woken by an arrival before the next planned decision: only the newcomers' banks
            # can have changed
            t_next = self._arrivals(pc, now, plan)
            if t_next > now:
                pc.plan_at = t_next
                self._arm(pc, t_next)
                self._arm_arrival(pc, now)
                return
        pc.plan_at = None
        ahead = False  # ``now`` is past env.now (running on without an event)
        rcap, wcap = self.cfg.read_queue, self.cfg.write_queue
        while True:
            if (pc.incoming and pc.n_rq < rcap) or (pc.incoming_w and pc.n_wq < wcap):
                self._admit(pc, now)
            if self._refresh_on and now >= pc.next_ref and not (
                    pc.act_bank[pc.ref_bank] if self._per_bank else pc.activated):
                self._refresh(pc, now)
            t_next = self._schedule(pc, now, ahead)
            if t_next < 0:  # a callback is due: decide at a time the simulation has reached
                self._arm(pc, now)
                return
            if t_next <= now:
                continue  # the other queue's turn, a refresh to place, a newcomer ready now
            if not (pc.n_rq or pc.n_wq):
                break
            if t_next >= _INF:  # pragma: no cover - a queued request always has a next command
                raise AssertionError(f"HBM: pseudo-channel {pc.index} has requests it never serves")
            if t_next < self._cb_at and t_next * cpt < env.peek():
                now = t_next
                ahead = True
                continue
            pc.plan_at = t_next
            pc.plan_mode = self._mode(pc)
            self._arm(pc, t_next)
            break
        self._arm_arrival(pc, now)

    def _arm_arrival(self, pc: _PseudoChannel, now: int) -> None:
        """Wake up for the next arrival not yet due (it may enter the queue at once)."""
        nxt = _INF
        if pc.incoming and pc.incoming[0][0] > now:
            nxt = pc.incoming[0][0]
        if pc.incoming_w and pc.incoming_w[0][0] > now:
            nxt = min(nxt, pc.incoming_w[0][0])
        if nxt < _INF:
            self._arm(pc, nxt)

    def _mode(self, pc: _PseudoChannel) -> bool:
        """Whether the next decision serves the write queue (the drain rule, not applied)."""
        draining = pc.draining
        if draining:
            if pc.n_wq <= self.drain_stop:
                draining = False
        elif pc.n_wq >= self.drain_start:
            draining = True
        return draining or not pc.n_rq

    def _arrivals(self, pc: _PseudoChannel, now: int, plan: int) -> int:
        """Admit the arrivals due by ``now``; the earliest time a command may issue, given that
        none could before ``plan`` without them (``now`` or less: decide now)."""
        if not (pc.incoming or pc.incoming_w):
            return plan
        new = self._admit(pc, now)
        if not new:
            return plan
        write_mode = self._mode(pc)
        if write_mode != pc.plan_mode:
            return now  # the other queue's turn
        t = plan
        done = 0
        for e in new:
            b = e.bank
            if e.write != write_mode or done >> b & 1:
                continue
            done |= 1 << b
            tb = self._bank_time(pc, b, write_mode, now)
            if tb < t:
                t = tb
        return t

    def _bank_time(self, pc: _PseudoChannel, b: int, write_mode: bool, now: int) -> int:
        """Earliest time (>= now) the next command to bank ``b`` may issue, as things stand:
        a lower bound of what :meth:`_schedule` finds for the bank."""
        q = (pc.wq if write_mode else pc.rq)[b]
        want = (pc.want_w if write_mode else pc.want_r)[b]
        if want or pc.act_bank[b]:
            orow = pc.open_row[b]
            e: _Entry | None = None
            if want:
                e = next(x for x in q if x.row == orow)
            for x in pc.activated:
                if x.bank == b and (e is None or x.age < e.age):
                    e = x
            assert e is not None
            return self._col_time(pc, e, now)
        if not q:
            return _INF
        if pc.open_row[b] >= 0:
            return max(pc.pre_ok[b], pc.row_free, now)
        a = max(pc.act_ok[b], pc.bg_act[b // self.banks_per_group] + self._tRRD_L,
                pc.last_act + self._tRRD_S, pc.row_free, now)
        faw = pc.faw
        if len(faw) == 4 and faw[0] + self.t.tFAW > a:
            a = faw[0] + self.t.tFAW
        return a

    def _schedule(self, pc: _PseudoChannel, now: int, ahead: bool = False) -> int:
        """One FR-FCFS decision at ``now``: issue the oldest ready column command and the
        oldest ready row command (separate command buses). Returns a lower bound on the next
        time a command can issue: ``now`` itself to decide again at once (arrivals admitted,
        the other queue's turn, a refresh to place), -1 when a callback would be called while
        ``ahead`` of the simulation (nothing is issued then)."""
        # the hottest code of the DRAM model: maxima are written as conditionals (a third of
        # the cost of max()) and the log is looked at only when it is on
        if now - pc.base > 256:  # slide the window of the occupancy masks (never past now)
            shift = now - pc.base
            pc.bus >>= shift
            pc.bgmask = [m >> shift for m in pc.bgmask]
            pc.base += shift
        # which queue: writes while draining (watermarks), or when no read waits
        if pc.draining:
            if pc.n_wq <= self.drain_stop:
                pc.draining = False
        elif pc.n_wq >= self.drain_start:
            pc.draining = True
        write_mode = pc.draining or not pc.n_rq
        if write_mode:
            lists, want, busy = pc.wq, pc.want_w, pc.wmask | pc.amask
        else:
            lists, want, busy = pc.rq, pc.want_r, pc.rmask | pc.amask
        banks = self._bank_sets.get(busy)
        if banks is None:
            banks = self._bank_sets[busy] = [b for b in range(self.banks) if busy >> b & 1]
        open_row, act_bank, activated = pc.open_row, pc.act_bank, pc.activated
        # activated requests that the queue being served does not hold
        act_other = (pc.act_r if write_mode else pc.act_w) > 0
        refresh_due = self._refresh_on and now >= pc.next_ref
        # the bank a due per-bank refresh waits for (-1: none), and a due all-bank refresh
        ref_b = pc.ref_bank if refresh_due and self._per_bank else -1
        refresh_all = refresh_due and not self._per_bank
        bgof = self._bgof
        off = now - pc.base
        bus = pc.bus
        bgmasks = pc.bgmask
        pats = self._pat_cache
        # channel-level parts of the constraints, common to every candidate
        rd_ch = pc.wr_end + self._wtr_s
        wr_ch = pc.last_rd + self._rtw
        wtr_l = self._wtr_l
        row_free = pc.row_free
        tRRD_S = self._tRRD_S
        tFAW = self.t.tFAW
        faw = pc.faw
        act_ch = pc.last_act + tRRD_S
        if row_free > act_ch:
            act_ch = row_free
        if len(faw) == 4 and faw[0] + tFAW > act_ch:
            act_ch = faw[0] + tFAW
        act_now = act_ch <= now
        pre_now = row_free <= now
        tRRD_L = self._tRRD_L
        col_ok, act_ok, pre_ok, bg_act = pc.col_ok, pc.act_ok, pc.pre_ok, pc.bg_act
        wr_end_bg = pc.wr_end_bg

        # the oldest ready candidates, and the earliest bank-level times of the others (the
        # channel-level parts are added once the winners have issued)
        best_col: _Entry | None = None
        best_row: _Entry | None = None
        best_a = 0
        row_is_act = False
        min_col = min_act = min_pre = _INF
        cb_at = _INF  # the earliest a column command with a callback may issue
        ready: list[_Entry] = []  # column commands ready now
        waiting: list[tuple[int, int, _Entry]] = []  # the others: (earliest bound, age, entry)
        for b in banks:
            q = lists[b]
            ab = act_bank[b]
            orow = open_row[b]
            if want[b] or ab:
                # a row hit waits on this bank: its oldest column command is the candidate,
                # and the bank gets no row command (FR-FCFS: hits before misses)
                e: _Entry | None = None
                if want[b] and not (refresh_all or b == ref_b):
                    for x in q:
                        if x.row == orow:
                            e = x
                            break
                if ab and (e is None or act_other):
                    # requests activated while the other queue was served (or before a
                    # refresh fell due) finish first
                    for x in activated:
                        if x.bank == b and (e is None or x.age < e.age):
                            e = x
                if e is None:
                    continue
                g = e.bg
                if e.write:
                    c = wr_ch
                else:
                    c = rd_ch
                    if wr_end_bg[g] + wtr_l > c:
                        c = wr_end_bg[g] + wtr_l
                if col_ok[b] > c:
                    c = col_ok[b]
                if c <= now:
                    bus_pat, bg_pat = pats[e.n]
                    if not ((bus >> off) & bus_pat or (bgmasks[g] >> off) & bg_pat):
                        ready.append(e)
                        if best_col is None or e.age < best_col.age:
                            best_col = e
                        continue
                    c = now + 1
                # its time on the data bus is worked out below, if it may be the earliest
                waiting.append((c, e.age, e))
                if e.cb is not None and c < cb_at:
                    cb_at = c
            elif refresh_all or b == ref_b or not q:
                continue
            else:
                # the bank's oldest request wants a row command: ACT to a closed bank, else PRE
                e = q[0]
                is_act = orow < 0
                if is_act:
                    a = act_ok[b]
                    ga = bg_act[bgof[b]] + tRRD_L
                    if ga > a:
                        a = ga
                    bus_ok = act_now
                else:
                    a = pre_ok[b]
                    bus_ok = pre_now
                if a <= now and bus_ok and (best_row is None or e.age < best_row.age):
                    if best_row is not None:  # the former best loses
                        if row_is_act:
                            min_act = min(min_act, best_a)
                        else:
                            min_pre = min(min_pre, best_a)
                    best_row, best_a, row_is_act = e, a, is_act
                elif is_act:
                    if a < min_act:
                        min_act = a
                elif a < min_pre:
                    min_pre = a
        if ahead and best_col is not None and best_col.cb is not None:
            return -1
        if best_row is not None:
            b = best_row.bank
            if row_is_act:
                self._activate(pc, best_row, now)
                waiting.append((col_ok[b], best_row.age, best_row))
                if best_row.cb is not None and col_ok[b] < cb_at:
                    cb_at = col_ok[b]
            else:
                self._precharge(pc, b, now)
                a = act_ok[b]
                ga = bg_act[bgof[b]] + tRRD_L
                if ga > a:
                    a = ga
                if a < min_act:
                    min_act = a
        if best_col is not None:
            b = best_col.bank
            self._issue_column(pc, best_col, now)
            for x in ready:  # the ones that lost to an older command wait for a slot
                if x is not best_col:
                    waiting.append((now + 1, x.age, x))
                    if x.cb is not None and now + 1 < cb_at:
                        cb_at = now + 1
            if want[b] or act_bank[b]:
                # the next hit to this row follows on the bank group's path
                nxt = now + best_col.n * self._tCCD_L
                if nxt < min_col:
                    min_col = nxt
                if nxt < cb_at:
                    cb_at = nxt
            elif lists[b] and pre_ok[b] < min_pre:
                min_pre = pre_ok[b]  # a precharge was waiting for this row's last hit
            if (pc.incoming and pc.n_rq < self.cfg.read_queue) or (
                pc.incoming_w and pc.n_wq < self.cfg.write_queue
            ):
                # the request left a queue slot to an arrival: the newcomer's own times
                for e in self._admit(pc, now):
                    b = e.bank
                    if e.write != write_mode:
                        continue
                    if open_row[b] == e.row:
                        waiting.append((now + 1, e.age, e))
                        if e.cb is not None and now + 1 < cb_at:
                            cb_at = now + 1
                    elif want[b] or act_bank[b] or lists[b][0] is not e:
                        continue  # it waits behind the bank's older requests
                    elif open_row[b] >= 0:
                        if pre_ok[b] < min_pre:
                            min_pre = pre_ok[b]
                    else:
                        a = act_ok[b]
                        ga = bg_act[bgof[b]] + tRRD_L
                        if ga > a:
                            a = ga
                        if a < min_act:
                            min_act = a
            # the queue the next decision serves (the same rule as at the top)
            draining = pc.draining
            if draining:
                if pc.n_wq <= self.drain_stop:
                    draining = False
            elif pc.n_wq >= self.drain_start:
                draining = True
            if write_mode != (draining or not pc.n_rq) and (pc.n_rq or pc.n_wq):
                return now  # the other queue's turn: decide again
            if min_col < now + self._tCCD_S:
                min_col = now + self._tCCD_S
        if waiting:
            # the earliest column command among the waiting ones, data bus included: in the
            # order of their lower bounds, until no bound is below the best time found
            if len(waiting) > 1:
                waiting.sort()
            fits: dict[tuple[int, int, int], int] = {}  # (bank group, bursts, from) -> slot
            for c, _age, x in waiting:
                if c >= min_col:
                    break
                c = self._col_bound(pc, x, c)
                key = (x.bg, x.n, c)
                slot = fits.get(key)
                if slot is None:
                    slot = fits[key] = self._fit(pc, x.bg, c, x.n)
                if slot < min_col:
                    min_col = slot
        if refresh_due and not (act_bank[ref_b] if self._per_bank else activated):
            return now  # the refresh can be placed
        # add the channel-level parts as they are after what issued now
        t_next = min_col
        if min_act < _INF:
            act_ch = pc.last_act + tRRD_S
            if pc.row_free > act_ch:
                act_ch = pc.row_free
            if len(faw) == 4 and faw[0] + tFAW > act_ch:
                act_ch = faw[0] + tFAW
            if min_act < act_ch:
                min_act = act_ch
            if min_act < t_next:
                t_next = min_act
        if min_pre < _INF:
            if min_pre < pc.row_free:
                min_pre = pc.row_free
            if min_pre < t_next:
                t_next = min_pre
        self._cb_at = cb_at
        return t_next

    def _activate(self, pc: _PseudoChannel, e: _Entry, now: int) -> None:
        b, g, row = e.bank, e.bg, e.row
        if self._logging:
            self._log(now, ACT, pc, b)
        pc.open_row[b] = row
        pc.act_ok[b] = now + self._tRC
        pc.pre_ok[b] = now + self._tRAS
        pc.col_ok[b] = now + (self._tRCD_W if e.write else self._tRCD)
        pc.bg_act[g] = now
        pc.last_act = now
        pc.faw.append(now)
        pc.row_free = now + 1
        pc.acts += 1
        if pc.pre_for[b]:
            pc.row_conflicts += 1
            pc.pre_for[b] = False
        else:
            pc.row_misses += 1
        e.acted = True
        pc.activated.append(e)
        pc.act_bank[b] += 1
        pc.amask |= 1 << b
        if e.write:
            pc.act_w += 1
        else:
            pc.act_r += 1
        pc.want_r[b] = sum(1 for x in pc.rq[b] if x.row == row)
        pc.want_w[b] = sum(1 for x in pc.wq[b] if x.row == row)

    def _precharge(self, pc: _PseudoChannel, b: int, now: int) -> None:
        if self._logging:
            self._log(now, PRE, pc, b)
        pc.open_row[b] = -1
        if now + self._tRP > pc.act_ok[b]:
            pc.act_ok[b] = now + self._tRP
        pc.row_free = now + 1
        pc.pre_for[b] = True
        pc.want_r[b] = pc.want_w[b] = 0
        pc.pres += 1

    def _issue_column(self, pc: _PseudoChannel, e: _Entry, now: int) -> None:
        """Issue the column commands of ``e`` (the first at ``now``); it leaves the queue."""
        b, g, n, write = e.bank, e.bg, e.n, e.write
        bus_pat, bg_pat = self._pat_cache[n]
        off = now - pc.base
        pc.bus |= bus_pat << off
        pc.bgmask[g] |= bg_pat << off
        lng = self._tCCD_L
        last = now + (n - 1) * lng
        if self._logging:
            for k in range(n):
                self._log(now + k * lng, WR if write else RD, pc, b)
        pre_ok = pc.pre_ok
        t_arr = e.t_arr
        if write:
            end = last + self._wr_data
            pre = last + self._wr_pre
            if end > pc.wr_end:
                pc.wr_end = end
            if end > pc.wr_end_bg[g]:
                pc.wr_end_bg[g] = end
            pc.writes += 1
            pc.write_bytes += e.nbytes
            q = pc.wq[b]
            q.remove(e)
            if not q:
                pc.wmask &= ~(1 << b)
            if pc.n_wq == self.cfg.write_queue:
                pc.room_w = now
            pc.n_wq -= 1
            pc.want_w[b] -= 1
        else:
            end = last + self._data
            pre = last + self._tRTP
            if last > pc.last_rd:
                pc.last_rd = last
            pc.reads += 1
            pc.read_latency += end - t_arr
            pc.read_queue_latency += end - e.t_q
            q = pc.rq[b]
            q.remove(e)
            if not q:
                pc.rmask &= ~(1 << b)
            if pc.n_rq == self.cfg.read_queue:
                pc.room_r = now
            pc.n_rq -= 1
            pc.want_r[b] -= 1
        if pre > pre_ok[b]:
            pre_ok[b] = pre
        if e.acted:
            pc.activated.remove(e)
            pc.act_bank[b] -= 1
            if not pc.act_bank[b]:
                pc.amask &= ~(1 << b)
            if write:
                pc.act_w -= 1
            else:
                pc.act_r -= 1
        else:
            pc.row_hits += 1
        if end > pc.last_end:
            pc.last_end = end
        pc.bytes += e.nbytes
        pc.busy_bursts += n
        pc.queue_wait += now - t_arr
        pc.decided += 1
        if e.cb is not None:
            e.cb(end * self.cycles_per_tck)

    def _col_bound(self, pc: _PseudoChannel, e: _Entry, t_min: int) -> int:
        """Earliest time >= t_min at which the column commands of ``e`` (a row hit) meet
        tRCD and the read/write turnarounds, as things stand (the data bus aside)."""
        g = e.bg
        if e.write:
            c = pc.last_rd + self._rtw
        else:
            c = pc.wr_end + self._wtr_s
            if pc.wr_end_bg[g] + self._wtr_l > c:
                c = pc.wr_end_bg[g] + self._wtr_l
        if pc.col_ok[e.bank] > c:
            c = pc.col_ok[e.bank]
        return c if c > t_min else t_min

    def _col_time(self, pc: _PseudoChannel, e: _Entry, t_min: int) -> int:
        """Earliest time >= t_min at which the column commands of ``e`` (a row hit) could
        issue, as things stand."""
        return self._fit(pc, e.bg, self._col_bound(pc, e, t_min), e.n)

    def _fit(self, pc: _PseudoChannel, g: int, t_min: int, n: int) -> int:
        """Earliest s >= t_min at which n column commands s + k*tCCD_L find the data bus and
        bank group ``g`` free."""
        bus_pat, bg_pat = self._pat_cache[n]
        off = t_min - pc.base
        bus, bgm = pc.bus, pc.bgmask[g]
        both = bus | bgm
        while True:
            x = both >> off
            if x & 1:  # both patterns start with a busy bit: jump over the run of busy cycles
                off += (~x & (x + 1)).bit_length() - 1
            if not ((bus >> off) & bus_pat or (bgm >> off) & bg_pat):
                return pc.base + off
            off += 1

    def _refresh(self, pc: _PseudoChannel, now: int) -> None:
        """The refreshes due by ``now``: per bank (:meth:`_refresh_bank`) or all-bank."""
        if self._per_bank:
            self._refresh_bank(pc, now)
        else:
            self._refresh_all(pc, now)

    def _refresh_bank(self, pc: _PseudoChannel, now: int) -> None:
        """Per-bank refreshes due by ``now``, one bank at a time in turn, each bank once per
        tREFI: precharge the bank if open, REFpb (tRREFD after the previous one), the bank
        blocked tRFCpb. Placed at the due time or as soon after it as that bank allows; a bank
        with an activated request waits until its column commands have issued (and the banks
        after it with it)."""
        t = self.t
        banks = self.banks
        if now - pc.next_ref >= t.tREFI:  # idle for whole rounds: only the last one matters
            rounds = (now - pc.next_ref) // t.tREFI
            pc.refreshes += rounds * banks
            pc.ref_k += rounds * banks
            pc.next_ref = pc.ref_base + pc.ref_k * t.tREFI // banks
        open_row = pc.open_row
        assert t.tRREFD is not None
        while now >= pc.next_ref:
            b = pc.ref_bank
            if pc.act_bank[b]:
                break  # a request activated in this bank reads or writes first
            t_ref = max(pc.next_ref, pc.row_free, pc.act_ok[b], pc.last_refpb + t.tRREFD)
            if open_row[b] >= 0:
                t_pre = max(pc.next_ref, pc.row_free, pc.pre_ok[b])
                if self._logging:
                    self._log(t_pre, PRE, pc, b)
                t_ref = max(t_ref, t_pre + self._pre_ref, t_pre + 1)
                open_row[b] = -1
            if self._logging:
                self._log(t_ref, REF, pc, b)
            pc.act_ok[b] = t_ref + self._tRFC
            pc.pre_for[b] = False
            pc.want_r[b] = 0
            pc.want_w[b] = 0
            pc.row_free = t_ref + 1
            pc.last_refpb = t_ref
            pc.refreshes += 1
            pc.ref_k += 1
            pc.ref_bank = pc.ref_k % banks
            pc.next_ref = pc.ref_base + pc.ref_k * t.tREFI // banks

    def _refresh_all(self, pc: _PseudoChannel, now: int) -> None:
        """All-bank refresh(es) due by ``now``: precharge-all, REF, block tRFC.

        Placed at the due time, or as soon after it as the banks allow: a controller that
        slept through the due time issued nothing meanwhile, so the placement is exact."""
        t = self.t
        if now - pc.next_ref >= t.tREFI:  # idle for several intervals: only the last matters
            skipped = (now - pc.next_ref) // t.tREFI
            pc.refreshes += skipped
            pc.next_ref += skipped * t.tREFI
        open_row = pc.open_row
        n_banks = len(open_row)
        while now >= pc.next_ref:
            # ACT -> REF: tRC (act_ok = ACT + tRC); PRE -> REF: tRP
            # ACT -> REF (tRC) and PRE -> REF (tRP) equal ACT -> ACT and PRE -> ACT (checked
            # when built), so every bank's act_ok bounds the REF too
            t_ref = max(pc.next_ref, pc.row_free, max(pc.act_ok))
            opened = [b for b in range(n_banks) if open_row[b] >= 0]
            if opened:
                t_pre = max(pc.next_ref, pc.row_free, max(pc.pre_ok[b] for b in opened))
                if self._logging:
                    for b in opened:
                        self._log(t_pre, PRE, pc, b)
                t_ref = max(t_ref, t_pre + self._pre_ref, t_pre + 1)
                for b in opened:
                    open_row[b] = -1
            if self._logging:
                self._log(t_ref, REF, pc, -1)
            pc.act_ok = [t_ref + self._tRFC] * n_banks
            pc.pre_for = [False] * n_banks
            pc.want_r = [0] * n_banks
            pc.want_w = [0] * n_banks
            pc.row_free = t_ref + 1
            pc.refreshes += 1
            pc.next_ref += t.tREFI

    def _log(self, tck: int, cmd: str, pc: _PseudoChannel, bank: int) -> None:
        if self.cfg.log:
            bg = bank // self.banks_per_group if bank >= 0 else -1
            self.log.append((tck, cmd, pc.index, bg, bank))

    # -- statistics ---------------------------------------------------------------------
    def totals(self) -> dict[str, float]:
        """Sums over all pseudo-channels (reads, writes, row hits/misses/conflicts, bytes, read
        latencies in tCK...), and what is still pending."""
        out: dict[str, float] = {
            k: float(sum(getattr(p, k) for p in self.pcs)) for k in _COUNTERS
        }
        out["pending"] = float(sum(p.n_rq + p.n_wq for p in self.pcs) + self.waiting())
        out["last_data_tck"] = float(max(p.last_end for p in self.pcs))
        # writes accepted but not yet issued (a write-back still queued when a run ends)
        out["pending_write_bytes"] = float(
            sum(e.nbytes for p in self.pcs for q in p.wq for e in q)
            + sum(h[2].nbytes for p in self.pcs for h in p.incoming_w)
        )
        return out

    def waiting(self) -> int:
        """Requests submitted that are not in a queue yet (not arrived, or the queue full)."""
        return sum(len(p.incoming) + len(p.incoming_w) for p in self.pcs)

    def reset_stats(self) -> None:
        """Zero every counter of every pseudo-channel (queues and banks keep their state)."""
        for p in self.pcs:
            for k in _COUNTERS:
                setattr(p, k, 0)
            p.last_end = 0

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
                    "mean_read_latency_tck": p.read_latency / p.reads if p.reads else 0.0,
                }
            )
        return pd.DataFrame(rows)

    def timing(self) -> pd.DataFrame:
        """The timing table of this device as a DataFrame (tCK and ns)."""
        import pandas as pd  # here: pandas adds ~0.5 s to start-up; only tables need it

        df = pd.DataFrame([c._asdict() for c in timing_table(self.t)])
        df["ns"] = df["tck"] * self.t.tCK_ns
        return df
