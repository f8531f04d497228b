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

The controllers are compiled code: their state (banks, queues, refresh, busy windows, counters)
lives in numpy arrays and the scheduling above is :mod:`simgpu.sim.hbm_core`, numba functions
cached on disk; this module maps addresses, wakes the controllers through SimPy, calls the
submitters back and reads the counters.

Events: a controller wakes only when a request arrives or when the next command can issue (no
per-cycle ticking); a refresh that falls due while it sleeps is placed at its due time when it
wakes (nothing issued in between, so the placement is exact). Completion is handed to the
caller's callback, with the data-return time, when the request's column commands issue
(:meth:`HBM.submit`), so a request costs no event of its own (:meth:`HBM.request` adds one for
callers that wait on an event).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from simgpu.errors import SimgpuError
from simgpu.sim import hbm_core as core

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


#: the counters of each pseudo-channel that :meth:`HBM.totals` sums and
#: :meth:`HBM.reset_stats` zeroes, and their columns in the controller's state
COUNTERS = {
    "reads": core.P_READS, "writes": core.P_WRITES, "row_hits": core.P_ROW_HITS,
    "row_misses": core.P_ROW_MISSES, "row_conflicts": core.P_ROW_CONFLICTS,
    "refreshes": core.P_REFRESHES, "bytes": core.P_BYTES, "write_bytes": core.P_WRITE_BYTES,
    "busy_bursts": core.P_BUSY_BURSTS, "queue_wait": core.P_QUEUE_WAIT,
    "decided": core.P_DECIDED, "read_latency": core.P_READ_LATENCY,
    "read_queue_latency": core.P_READ_QUEUE_LATENCY, "acts": core.P_ACTS, "pres": core.P_PRES,
}
#: the log's command codes (:mod:`simgpu.sim.hbm_core`) as names
COMMANDS = (ACT, PRE, RD, WR, REF)
#: the other per-pseudo-channel figures a :class:`PseudoChannelView` reads
_FIELDS = {
    **COUNTERS, "n_rq": core.P_N_RQ, "n_wq": core.P_N_WQ, "last_end": core.P_LAST_END,
    "next_ref": core.P_NEXT_REF,
}


class PseudoChannelView:
    """One pseudo-channel's counters (:data:`COUNTERS`), queue lengths (``n_rq``, ``n_wq``)
    and ``last_end``, read from and written to the controller's state; ``index`` is its
    number."""

    __slots__ = ("index", "_row")
    index: int
    _row: np.ndarray

    def __init__(self, row: np.ndarray, index: int) -> None:
        object.__setattr__(self, "_row", row)
        object.__setattr__(self, "index", index)

    def __getattr__(self, name: str) -> int:
        col = _FIELDS.get(name)
        if col is None:
            raise AttributeError(name)
        return int(self._row[col])

    def __setattr__(self, name: str, value: int) -> None:
        col = _FIELDS.get(name)
        if col is None:
            raise AttributeError(name)
        self._row[col] = value


class HBM:
    """The device memory of a GPU (or a PIM device): address mapping, controllers, timing.

    ``env`` counts SM cycles at ``clock_MHz``; :meth:`request` and :meth:`submit` take delays in
    those cycles. Use on its own (PIM builds on it) or through :func:`simgpu.sim.build_system`.
    The controllers' state lives in numpy arrays and their scheduling is the compiled code of
    :mod:`simgpu.sim.hbm_core`; this class maps addresses, wakes the controllers through SimPy,
    calls the submitters back and reads the counters.
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
        mode = self.cfg.refresh_mode or t.refresh
        if mode not in ("all_bank", "per_bank"):
            raise SimgpuError(f"HBM: refresh_mode = {mode!r}, expected 'all_bank' or 'per_bank'")
        if mode == "per_bank" and (t.tRFCpb is None or t.tRREFD is None):
            raise SimgpuError("HBM: per-bank refresh needs dram.timing.tRFCpb and tRREFD")
        per_bank = mode == "per_bank"
        # the timing table is the one source of constraints: the controller reads its values
        # from it by (preceding, following, scope)
        tab = {(c.preceding, c.following, c.scope): c.tck for c in timing_table(t, mode)}
        ref_scope = "bank" if per_bank else "channel"
        tCCD_L, tCCD_S = tab[RD, RD, "bankgroup"], tab[RD, RD, "channel"]
        # the controller keeps one earliest-time per bank (act_ok) and one column path: these
        # pairs of the table must agree
        if (tab[WR, WR, "bankgroup"], tab[WR, WR, "channel"]) != (tCCD_L, tCCD_S):
            raise SimgpuError("HBM: the timing table's WR-WR spacing differs from RD-RD")
        if (tab[ACT, REF, ref_scope], tab[PRE, REF, ref_scope]) != (
            tab[ACT, ACT, "bank"], tab[PRE, ACT, "bank"]
        ):
            raise SimgpuError("HBM: the timing table's ACT/PRE -> REF differ from -> ACT")
        #: write-queue entries at which writes start and stop draining
        self.drain_start = max(1, math.ceil(self.cfg.write_high * self.cfg.write_queue))
        self.drain_stop = math.floor(self.cfg.write_low * self.cfg.write_queue)
        # the busy windows must hold the slide distance plus the longest column burst (1024 tCK
        # at least: a size, not a model figure; any length that holds both gives the same times)
        window = max(1024, core.SLIDE_TCK + 1 + self.max_bursts * max(tCCD_L, tCCD_S) + tCCD_S)
        S = np.zeros(core.S_FIELDS, np.int64)
        for i, v in (
            (core.C_BANKS, self.banks), (core.C_GROUPS, self.bank_groups),
            (core.C_BPG, self.banks_per_group), (core.C_RCAP, self.cfg.read_queue),
            (core.C_WCAP, self.cfg.write_queue), (core.C_DSTART, self.drain_start),
            (core.C_DSTOP, self.drain_stop), (core.C_REF_ON, self.cfg.refresh),
            (core.C_PER_BANK, per_bank), (core.C_IN_ORDER, self.cfg.in_order),
            (core.C_LOGGING, self.cfg.log),
            (core.C_TRC, tab[ACT, ACT, "bank"]), (core.C_TRCD, tab[ACT, RD, "bank"]),
            (core.C_TRCD_W, tab[ACT, WR, "bank"]), (core.C_TRAS, tab[ACT, PRE, "bank"]),
            (core.C_TRP, tab[PRE, ACT, "bank"]), (core.C_TRTP, tab[RD, PRE, "bank"]),
            (core.C_WR_PRE, tab[WR, PRE, "bank"]), (core.C_TRRD_L, tab[ACT, ACT, "bankgroup"]),
            (core.C_TRRD_S, tab[ACT, ACT, "channel"]), (core.C_TCCD_L, tCCD_L),
            (core.C_TCCD_S, tCCD_S), (core.C_RTW, tab[RD, WR, "channel"]),
            (core.C_WTR_L, tab[WR, RD, "bankgroup"]), (core.C_WTR_S, tab[WR, RD, "channel"]),
            (core.C_PRE_REF, tab[PRE, REF, ref_scope]), (core.C_TRFC, tab[REF, ACT, ref_scope]),
            (core.C_TREFI, t.tREFI), (core.C_TRREFD, t.tRREFD or 0), (core.C_TFAW, t.tFAW),
            (core.C_DATA, t.tCL + t.tBL), (core.C_WR_DATA, t.tCWL + t.tBL),
            (core.C_WINDOW, window), (core.C_PCS, self.pcs_per_channel),
            (core.C_COLS, self.cols_per_row), (core.C_BANK_XOR, self.cfg.bank_xor),
            # a decision logs at most a row command and a row of column commands; the refreshes
            # placed before it at most a PRE and a REF per bank, for every bank (per-bank
            # refresh: one round) or twice (all-bank); 8 rows per bank covers both
            (core.C_LOG_ROOM, 8 * self.banks + self.max_bursts + 1),
        ):
            S[i] = int(v)
        self._S = S
        n_pc = self.n_pc
        P = np.zeros((n_pc, core.P_FIELDS), np.int64)
        for col in (core.P_LAST_ACT, core.P_LAST_RD, core.P_WR_END, core.P_LAST_REFPB,
                    core.P_ROOM_R, core.P_ROOM_W):
            P[:, col] = core.NEVER
        for col in (core.P_INC_R, core.P_INC_R_T, core.P_INC_W, core.P_INC_W_T, core.P_PLAN_AT):
            P[:, col] = -1
        # assumption: refresh of the pseudo-channels is staggered evenly over tREFI, as
        # controllers do to avoid refreshing every channel at once.
        first_ref = [t.tREFI * (i + 1) // n_pc + 1 for i in range(n_pc)]
        P[:, core.P_NEXT_REF] = first_ref
        P[:, core.P_REF_BASE] = first_ref
        self._P = P
        K = np.zeros((n_pc, core.K_FIELDS, self.banks), np.int64)
        K[:, core.K_OPEN_ROW] = -1
        for col in (core.K_ACT_E, core.K_RQ_H, core.K_RQ_T, core.K_WQ_H, core.K_WQ_T):
            K[:, col] = -1
        K[:, core.K_BG_ACT] = core.NEVER
        K[:, core.K_WR_END_BG] = core.NEVER
        self._K = K
        self._M = np.zeros((n_pc, 1 + self.bank_groups, window), np.uint8)
        self._E = np.zeros((0, core.E_FIELDS), np.int64)
        # starting sizes of the request pool, the staging rows and the log; each grows as needed
        self._grow_pool(1024)
        self._stage = np.zeros((256, core.ST_FIELDS), np.int64)
        self._n_stage = 0
        self._staged_write_bytes = 0
        self._LOG = np.zeros((4096 if self.cfg.log else 0, 5), np.int64)
        #: one view per pseudo-channel of its counters (reads, writes, refreshes, ...)
        self.pcs = [PseudoChannelView(P[i], i) for i in range(n_pc)]
        self._armed_at: list[float | None] = [None] * n_pc  # the wake-up that counts
        # times of the wake-ups scheduled (some superseded)
        self._events: list[set[float]] = [set() for _ in range(n_pc)]
        self._callbacks: dict[int, Callable[[float], None]] = {}  # by submission number
        self._seq = 0

    def _grow_pool(self, n: int) -> None:
        """Add ``n`` free request slots."""
        old = self._E
        cap = len(old)
        E = np.zeros((cap + n, core.E_FIELDS), np.int64)
        E[:cap] = old
        S = self._S
        free = int(S[core.G_FREE_N])
        # the free stack: the old free slots, then the new ones
        E[:free, core.E_FREE] = old[:free, core.E_FREE]
        E[free:free + n, core.E_FREE] = np.arange(cap, cap + n)
        S[core.G_FREE_N] = free + n
        self._E = E

    # -- address mapping ----------------------------------------------------------------
    def decode(self, addr: int) -> tuple[int, int, int, int, int]:
        """(pseudo-channel, bank group, bank within group, row, column) of a byte address."""
        pci, hi = self._channel(addr)
        bg, bank, row, col = core.split(hi, self._S)
        return pci, int(bg), int(bank), int(row), int(col)

    def _channel(self, addr: int) -> tuple[int, int]:
        """(pseudo-channel, the line index above the channel bits) of a byte address."""
        if addr < 0:
            raise SimgpuError(f"HBM: address {addr} is negative")
        channels = self.channels
        idx = addr // self.cfg.interleave_bytes
        hi = idx // channels
        # rotate the channel by a hash of the higher bits: still a bijection (for fixed higher
        # bits it is a rotation), and strided streams no longer skip channels
        ch = (idx + ((hi * 0x9E3779B1) >> 16)) % channels
        return ch * self.pcs_per_channel + hi % self.pcs_per_channel, hi

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
        pci, hi = self._channel(addr)
        t_arr = math.ceil((self.env.now + delay) / self.cycles_per_tck - 1e-9)
        seq = self._seq = self._seq + 1
        k = self._n_stage
        if k == len(self._stage):
            self._stage = np.concatenate([self._stage, np.zeros_like(self._stage)])
        self._stage[k] = (pci, hi, t_arr, seq, n, write, callback is not None, nbytes)
        self._n_stage = k + 1
        if write:
            self._staged_write_bytes += nbytes
        if callback is not None:
            self._callbacks[seq] = callback
        row = self._P[pci]
        if (row[core.P_N_WQ] >= self.cfg.write_queue) if write else (
            row[core.P_N_RQ] >= self.cfg.read_queue
        ):
            return  # it enters when a request leaves; the busy controller is armed already
        armed = self._armed_at[pci]
        if armed is None or armed > t_arr:
            self._arm(pci, t_arr)

    def write_queue_full(self, addr: int) -> bool:
        """Whether the write queue of the pseudo-channel ``addr`` maps to is full now."""
        return bool(self._P[self._channel(addr)[0]][core.P_N_WQ] >= self.cfg.write_queue)

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
    def _arm(self, pc: int, t_tck: float) -> None:
        """Make sure the controller of pseudo-channel ``pc`` runs at (or before) ``t_tck``."""
        armed = self._armed_at[pc]
        if armed is not None and armed <= t_tck:
            return
        self._armed_at[pc] = t_tck
        events = self._events[pc]
        if t_tck in events:
            return  # a wake-up at that time is on its way (it was superseded, now it is not)
        events.add(t_tck)
        env = self.env
        delay = t_tck * self.cycles_per_tck - env.now
        ev = env.timeout(delay if delay > 0.0 else 0.0)
        ev.callbacks.append(partial(self._wake, pc, t_tck))

    def _wake(self, pc: int, t_tck: float, _ev: object = None) -> None:
        self._events[pc].discard(t_tck)
        if self._armed_at[pc] != t_tck:
            return  # superseded by an earlier wake-up
        self._armed_at[pc] = None
        self._step(pc)

    def _step(self, pc: int) -> None:
        """Run the controller of ``pc`` (:func:`simgpu.sim.hbm_core.step`): it issues every
        command that can issue now, and at each later time a command can issue while nothing
        else happens in the simulation meanwhile; then it sleeps until the next one.

        Running on to the next decision without an event is exact when no event is due
        before it (``env.peek()``): nothing can submit a request in between. A request with a
        callback is issued only at a time the simulation has reached (the callback may look at
        ``env.now``), so such a decision waits for its own wake-up; the callback is called at
        the end of the decision that issued the request, before the next one. When the callback
        submits nothing, what follows it is known already (but for the look at the next SimPy
        event), and the controller is not called again."""
        env = self.env
        cpt = self.cycles_per_tck
        S = self._S
        step = core.step
        now = math.floor(env.now / cpt + 1e-9)
        ahead = 0
        resume = -1
        first = 1
        while True:
            n = self._n_stage
            if n and n > S[core.G_FREE_N]:
                self._grow_pool(max(n, len(self._E)))
            status, t, now, ahead, nxt, seq, end, after = step(
                self._P, self._K, self._E, self._M, S, self._LOG, self._stage, n, pc, now, ahead,
                resume, first, float(env.peek()), cpt)
            if n:
                self._n_stage = 0
                self._staged_write_bytes = 0
            first = 0
            if status == core.ST_CALLBACK:
                self._callbacks.pop(seq)(end * cpt)
                if self._n_stage or after == core.AFTER_STEP or (
                    after == core.AFTER_PEEK and t * cpt < env.peek()
                ):
                    resume = t  # go on deciding (with what the callback submitted)
                    continue
                # the decision's outcome stands: the callback changed nothing it depends on
                if after != core.AFTER_IDLE:
                    self._arm(pc, t)
                if nxt < core.INF:
                    self._arm(pc, nxt)
                return
            if status == core.ST_PLAN:
                self._arm(pc, t)
            elif status == core.ST_ARM_NOW:
                self._arm(pc, t)
                return
            elif status == core.ST_LOG_FULL:
                self._LOG = np.concatenate([self._LOG, np.zeros_like(self._LOG)])
                resume = -1
                continue
            elif status == core.ST_STUCK:  # pragma: no cover - a queued request is served
                raise AssertionError(f"HBM: pseudo-channel {pc} has requests it never serves")
            if nxt < core.INF:  # wake up for the next arrival not yet due
                self._arm(pc, nxt)
            return

    @property
    def log(self) -> list[tuple[int, str, int, int, int]]:
        """The commands issued, when ``HBMConfig.log`` is on: (tCK, command, pseudo-channel,
        bank group, bank; bank group and bank -1 for an all-bank REF)."""
        rows = self._LOG[: int(self._S[core.G_LOG_N])].tolist()
        return [(t, COMMANDS[c], pc, bg, b) for t, c, pc, bg, b in rows]

    # -- statistics ---------------------------------------------------------------------
    def totals(self) -> dict[str, float]:
        """Sums over all pseudo-channels (reads, writes, row hits/misses/conflicts, bytes, read
        latencies in tCK...), and what is still pending."""
        P = self._P
        out: dict[str, float] = {k: float(P[:, col].sum()) for k, col in COUNTERS.items()}
        out["pending"] = float(P[:, core.P_N_RQ].sum() + P[:, core.P_N_WQ].sum()
                               + self.waiting())
        out["last_data_tck"] = float(P[:, core.P_LAST_END].max())
        # writes accepted but not yet issued (a write-back still queued when a run ends)
        out["pending_write_bytes"] = float(
            core.pending_write_bytes(self._E) + self._staged_write_bytes
        )
        return out

    def waiting(self) -> int:
        """Requests submitted that are not in a queue yet (not arrived, or the queue full)."""
        P = self._P
        return int(P[:, core.P_N_INC_R].sum() + P[:, core.P_N_INC_W].sum()) + self._n_stage

    def reset_stats(self) -> None:
        """Zero every counter of every pseudo-channel (queues and banks keep their state)."""
        for col in COUNTERS.values():
            self._P[:, col] = 0
        self._P[:, core.P_LAST_END] = 0

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
