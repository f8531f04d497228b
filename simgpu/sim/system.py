"""The memory system below the SMs, wired from a DeviceSpec: L1/shared, crossbar, L2, HBM.

:func:`build_system` returns a :class:`MemorySystem` whose :meth:`~MemorySystem.access` takes a
:class:`~simgpu.sim.request.MemRequest` and returns a SimPy event that fires (with the request)
when its data is back or its store is accepted. Everything above DRAM is arithmetic on the
request (ports are next-free counters, latencies are added), so a request costs one event plus
a share of the DRAM controller's wake-ups.

Latencies (SM cycles, all from the device file):

* L1 hit: ``l1.hit_latency_cycles``; shared memory: ``l1.shared_latency_cycles`` plus one cycle
  per extra wavefront of a bank conflict.
* L2 hit in the SM's own partition: ``l2.near_hit_latency_cycles``; in another partition:
  ``l2.far_hit_latency_cycles``. The request crosses the crossbar (``noc.latency_cycles``) to the
  slice port, which books ``bytes / noc.bandwidth_bytes_per_cycle_per_slice`` cycles.
* DRAM: an idle-GPU read costs ``dram.unloaded_latency_ns`` (a measured figure) when it meets a
  row conflict. Of that, the DRAM core time tRP + tRCD + tCL + tBL comes from the timing table
  and the remainder is the fixed on-chip path (slice, memory partition unit, PHY), split evenly
  between the way out and the way back (assumption: no published split). Everything beyond the
  unloaded case (queueing, row hits, refresh, bank parallelism) comes from :class:`HBM`.

Misses are tracked in MSHRs per L1 (``A:512:64``: 512 entries, 64 merges each, from
published/accelsim/configs/SM90_H100_latest/gpgpusim.config ``gpgpu_cache:dl1``) and per L2
partition. A fill enters the tags when its data has arrived (lazily, at the next access that
needs the entry); until then later requests to the line merge and wait for it.

The tags, ports, MSHRs and the loads and stores through them are compiled code over arrays
(:mod:`simgpu.sim.cache_core`, :mod:`simgpu.sim.load_core`); this class wires them, hands out
the loads' slots, replays what the compiled calls log (completions, DRAM requests, retries)
and keeps the statistics. :meth:`load_many` and :meth:`store_many` take a warp's requests in
one call.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from simgpu.errors import SimgpuError
from simgpu.sim import cache_core as cc
from simgpu.sim import load_core as lc
from simgpu.sim.cache import SectorCache, SharedMemory, new_tag_state
from simgpu.sim.hbm import HBM, HBMConfig, fire_at, unloaded_read_tck
from simgpu.sim.l2 import L2
from simgpu.sim.noc import Crossbar
from simgpu.sim.request import CACHE_OPS, SPACES, MemRequest, convert_sectors, full_mask

if TYPE_CHECKING:
    import pandas as pd
    import simpy

    from simgpu.devices.spec import DeviceSpec

__all__ = [
    "MemorySystem",
    "build_system",
    "default_carveout_KiB",
    "L1_MSHR_ENTRIES",
    "L1_MSHR_MERGE",
]

#: published/accelsim/configs/SM90_H100_latest/gpgpusim.config: gpgpu_cache:dl1 ... A:512:64
L1_MSHR_ENTRIES = 512
L1_MSHR_MERGE = 64
#: published/accelsim/configs/SM90_H100_latest/gpgpusim.config: gpgpu_cache:dl2 ... A:384:4
#: (per slice); merges per entry
L2_MSHR_ENTRIES_PER_SLICE = 384
L2_MSHR_MERGE = 4
#: assumption: a kernel that asks for little shared memory gets a 32 KiB carve-out; with it the
#: simulated L1 step falls where the published curves put it (H100 PCIe between 216 and 264 kB,
#: A100 PCIe between 159 and 203 kB; published/latency_curves.csv).
DEFAULT_CARVEOUT_KIB = 32


#: where a request's completion goes: a callable taking the request, called as soon as its
#: completion time is decided (:meth:`MemorySystem.submit`)
_Sink = Callable[[MemRequest], None]


def default_carveout_KiB(spec: DeviceSpec) -> int:
    """The smallest listed carve-out of at least 32 KiB (or the largest listed)."""
    options = sorted(spec.l1.shared_carveouts_KiB)
    for c in options:
        if c >= DEFAULT_CARVEOUT_KIB:
            return c
    return options[-1]


class _PortRow:
    """An L1 port (:class:`~simgpu.sim.cache.Port`'s counters) kept in a row of the loads'
    array, where the compiled load and store paths book it."""

    __slots__ = ("row", "bytes_per_cycle")

    def __init__(self, row: np.ndarray, bytes_per_cycle: float) -> None:
        self.row = row
        self.bytes_per_cycle = bytes_per_cycle

    @property
    def next_free(self) -> float:
        return float(self.row[0])

    @property
    def busy(self) -> float:
        return float(self.row[1])

    @property
    def uses(self) -> int:
        return int(self.row[2])


class MSHRCounters:
    """One MSHR table of the compiled load path: its limits and counters (a view)."""

    __slots__ = ("U", "t", "entries", "merge")

    def __init__(self, U: np.ndarray, t: int, entries: int | None, merge: int) -> None:
        self.U, self.t, self.entries, self.merge = U, t, entries, merge

    def _get(self, col: int) -> int:
        return int(self.U[self.t, col])

    def _put(self, col: int, value: int) -> None:
        self.U[self.t, col] = value

    allocations = property(lambda self: self._get(lc.U_ALLOCATIONS),
                           lambda self, v: self._put(lc.U_ALLOCATIONS, v))
    merges = property(lambda self: self._get(lc.U_MERGES),
                      lambda self, v: self._put(lc.U_MERGES, v))
    stalls = property(lambda self: self._get(lc.U_STALLS),
                      lambda self, v: self._put(lc.U_STALLS, v))

    def __len__(self) -> int:
        """Lines in flight."""
        return self._get(lc.U_COUNT)


class _L1:
    """One SM's L1 data cache, MSHRs, load/store port and shared memory."""

    __slots__ = ("sm", "tags", "mshr", "port", "shared")

    def __init__(self, sm: int, tags: SectorCache, port: _PortRow, mshr: MSHRCounters,
                 shared: SharedMemory) -> None:
        self.sm = sm
        self.tags = tags
        self.mshr = mshr
        self.port = port
        self.shared = shared


class _Completion:
    """Where :meth:`MemorySystem.access` sends a request's completion: the caller's event."""

    __slots__ = ("env", "event")

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.event: simpy.Event | None = None

    def __call__(self, req: MemRequest) -> None:
        env = self.env
        now = env.now
        t = req.t_done or 0.0  # (never None: the system sets it before it calls back)
        delay = t - now if t > now else 0.0
        if self.event is None:  # decided inside access(): the caller gets this Timeout
            self.event = env.timeout(delay, req)
        else:
            fire_at(env, self.event, delay, req)


class MemorySystem:
    """L1s (one per SM), crossbar, partitioned L2 and HBM of one GPU."""

    def __init__(
        self,
        env: simpy.Environment,
        spec: DeviceSpec,
        *,
        rng: random.Random | None = None,
        shared_carveout_KiB: int | None = None,
        l1_policy: str = "lru",
        l2_policy: str = "lru",
        hbm_config: HBMConfig | None = None,
        record_latencies: bool = True,
        l2_write_through: bool = False,
    ) -> None:
        self.env = env
        self.spec = spec
        self.rng = rng or random.Random(0)
        self.clock_MHz = spec.clock_MHz
        l1s, l2s = spec.l1, spec.l2
        carve = default_carveout_KiB(spec) if shared_carveout_KiB is None else shared_carveout_KiB
        if carve not in l1s.shared_carveouts_KiB:
            raise SimgpuError(
                f"{spec.name}: shared_carveout_KiB = {carve}, expected one of "
                f"{list(l1s.shared_carveouts_KiB)} (l1.shared_carveouts_KiB)"
            )
        self.carveout_KiB = carve
        sets = l1s.size_bytes // (l1s.ways * l1s.line_bytes)
        l1_bytes = l1s.size_bytes - carve * 1024
        l1_ways = l1_bytes // (sets * l1s.line_bytes)
        self.l1_bytes = l1_ways * sets * l1s.line_bytes
        n_sm = spec.compute.sm_count
        l1_sets = self.l1_bytes // (max(1, l1_ways) * l1s.line_bytes) if l1_ways > 0 else 0
        # every L1's tags stacked (T[sm, set, way, F_*]) and every L1 port in a row of one
        # array, so that compiled code serves any SM's loads and stores
        self._l1_tags = new_tag_state(l1_sets, max(1, l1_ways), copies=n_sm)
        # the load path's state (simgpu.sim.load_core): its constants are set below
        self._ld = lc.LoadState(n_sm, l2s.partitions, L1_MSHR_ENTRIES)
        self._ports = np.zeros((n_sm, 3))
        self.l1 = []
        for sm in range(n_sm):
            tags = SectorCache(
                name=f"L1-sm{sm}", size_bytes=self.l1_bytes, ways=max(1, l1_ways),
                line_bytes=l1s.line_bytes, sector_bytes=l1s.sector_bytes, policy=l1_policy,
                rng=self.rng, state=(self._l1_tags[0][sm], self._l1_tags[1][sm]),
            )
            if l1s.bandwidth_bytes_per_cycle <= 0:
                raise SimgpuError(f"{spec.name}: l1.bandwidth_bytes_per_cycle ="
                                  f" {l1s.bandwidth_bytes_per_cycle}, expected > 0")
            port = _PortRow(self._ports[sm], l1s.bandwidth_bytes_per_cycle)
            shared = SharedMemory(l1s.shared_banks, l1s.shared_bank_width_bytes)
            mshr = MSHRCounters(self._ld.U, sm, L1_MSHR_ENTRIES, L1_MSHR_MERGE)
            self.l1.append(_L1(sm, tags, port, mshr, shared))
        self.l2 = L2(l2s, policy=l2_policy, rng=self.rng)
        self.xbar = Crossbar(spec.noc, l2s.partitions, self.l2.slices_per_partition)
        # scratch of the compiled store path: the request behind each write-back of a call
        self._wb_req = np.zeros(64, np.int64)
        #: windows one store may add to a slice port's table (it books at most a line's bytes)
        self._store_room = cc.window_room(
            max(l1s.line_bytes, self.xbar.request_bytes) / self.xbar.bytes_per_cycle,
            self.xbar.ports[0][0].window)
        # the controllers interleave addresses over channels by L2 lines (the unit that misses)
        self.hbm = HBM(env, spec.dram, self.clock_MHz,
                       hbm_config or HBMConfig(interleave_bytes=l2s.line_bytes))
        # SM -> partition: assumption: SMs split into equal consecutive halves (GPCs attach to
        # one partition; the SM numbering within a GPC is not published).
        self.partition_of = [sm * l2s.partitions // n_sm for sm in range(n_sm)]
        # latencies, SM cycles
        self.h1 = l1s.hit_latency_cycles
        self.hs = l1s.shared_latency_cycles
        self.hn = l2s.near_hit_latency_cycles
        self.hf = l2s.far_hit_latency_cycles or l2s.near_hit_latency_cycles
        self.noc = spec.noc.latency_cycles
        self.slice_to_sm = self.hn - self.noc  # slice port to load-to-use
        self.far_hop = (self.hf - self.hn) / 2  # one way between partitions
        cpt = self.hbm.cycles_per_tck
        self.dram_core = unloaded_read_tck(spec.dram.timing, 1, "conflict") * cpt
        unloaded = spec.dram.unloaded_latency_ns * self.clock_MHz / 1000.0
        path = unloaded - self.hn - self.dram_core
        if path <= 0:
            raise SimgpuError(
                f"{spec.name}: dram.unloaded_latency_ns = {spec.dram.unloaded_latency_ns} leaves"
                f" no on-chip path after the near L2 hit ({self.hn} cycles) and the DRAM core"
                f" time ({self.dram_core:.1f} cycles); expected a larger unloaded latency"
            )
        self.dram_unloaded = unloaded
        self.dram_to = path / 2
        self.dram_back = path / 2
        self.line_bytes = l1s.line_bytes
        #: the sector size of a request's mask: the L1's, in which the SM coalesces
        self.sector_bytes = l1s.sector_bytes
        #: the sector mask of a whole line
        self.full_line = full_mask(l1s.line_bytes, l1s.sector_bytes)
        #: the L2's sector size. The L2 tags, its MSHRs and everything below it count in L2
        #: sectors: DRAM is reached only through the L2, which fetches and writes back whole
        #: L2 sectors, so DRAM bytes are l2.sector_bytes per L2 sector (a 32-byte load on an
        #: L2 with 64-byte sectors reads 64 bytes of DRAM). Bytes on the SM side of the L2
        #: (L1 port, crossbar to the SM, the request's own size) are l1.sector_bytes per
        #: request sector. A request's mask is converted where it enters the L2.
        self.l2_sector_bytes = l2s.sector_bytes
        self._same_sectors = l2s.sector_bytes == l1s.sector_bytes
        #: the far partitions of each partition, nearest first
        self._far = [self.l2.others(p) for p in range(l2s.partitions)]
        #: send every store on to DRAM at once and keep L2 lines clean; the store completes
        #: when DRAM has written it (served_by "DRAM"), so a closed-loop source feels the
        #: memory's back-pressure. A steady-state shortcut for streams far larger than the L2:
        #: a write-back L2 then writes back one line per line stored, only later; this puts
        #: that DRAM traffic inside a short simulation.
        self.l2_write_through = l2_write_through
        # statistics
        self.issued = 0
        self.completed = 0
        self.record = record_latencies
        self.by_level: dict[str, list[float]] = {}
        self.lat: dict[str, array[float]] = {}
        self.bytes_read = 0
        self.bytes_written = 0
        self.dram_writebacks = 0
        #: bytes the L2 has sent to DRAM since the statistics were last reset
        self.writeback_bytes = 0
        self._warm_dirty = 0  # dirty bytes of the L2 at the start (warm)
        self.t_first: float | None = None
        self.t_last = 0.0
        # the load path: MSHRs, waiting loads and the way through L1, crossbar and L2 are
        # compiled (simgpu.sim.load_core); each load has a slot there, and Python keeps its
        # request and where its completion goes
        consts = [0.0] * lc.C_N
        for k, v in ((lc.C_H1, self.h1), (lc.C_NOC, self.noc), (lc.C_BACK, self.slice_to_sm),
                     (lc.C_FAR_HOP, self.far_hop), (lc.C_DRAM_TO, self.dram_to),
                     (lc.C_DRAM_BACK, self.dram_back), (lc.C_SECTOR, self.sector_bytes),
                     (lc.C_L2_SECTOR, self.l2_sector_bytes),
                     (lc.C_L1_BPC, l1s.bandwidth_bytes_per_cycle),
                     (lc.C_XBAR_BPC, self.xbar.bytes_per_cycle),
                     (lc.C_REQ_BYTES, self.xbar.request_bytes),
                     (lc.C_L1_ENTRIES, L1_MSHR_ENTRIES), (lc.C_L1_MERGE, L1_MSHR_MERGE),
                     (lc.C_L2_MERGE, L2_MSHR_MERGE), (lc.C_SLICES, self.l2.slices_per_partition),
                     (lc.C_L1_SHIFT, l1s.line_bytes.bit_length() - 1),
                     (lc.C_L2_SHIFT, self.l2.parts[0]._line_shift),
                     (lc.C_L2_DIV, self.l2.parts[0].index_div), (lc.C_N_SM, n_sm)):
            consts[k] = float(v)
        self._ld.C[:] = consts
        self._part = np.array(self.partition_of, np.int64)
        # per load slot (LoadState.loads): (request or None, where its completion goes, its
        # sector mask when it has no request, its issue time)
        self._rs = np.zeros(64, np.int64)
        self._refresh_args()
        self.l2_mshr = [
            MSHRCounters(self._ld.U, n_sm + p,
                         L2_MSHR_ENTRIES_PER_SLICE * self.l2.slices_per_partition, L2_MSHR_MERGE)
            for p in range(l2s.partitions)
        ]

    # -- public -----------------------------------------------------------------------------
    def access(self, req: MemRequest) -> simpy.Event:
        """Start a request now; the returned event fires with it when it is complete.

        Built on :meth:`submit`. When the completion time is decided at once (hits), the
        event is a Timeout carrying the request; when it is decided later (misses), a Timeout
        made then triggers the returned event (:func:`~simgpu.sim.hbm.fire_at`): a second
        event, processed after the others due at the same time. A caller that issues many
        requests is better served by :meth:`submit` and one Timeout of its own per completion
        (as :mod:`simgpu.sim.sources` does).
        """
        sink = _Completion(self.env)
        self._start(req, sink)
        if sink.event is None:  # not decided yet
            sink.event = self.env.event()
        return sink.event

    def submit(self, req: MemRequest, on_known: Callable[[MemRequest], None]) -> None:
        """Start a request now and call ``on_known(req)`` as soon as its completion time
        ``req.t_done`` is decided, which may be before that time comes (no event is made).

        For callers that wait on several requests at once (a warp's lines) or not at all
        (stores): they schedule one event of their own at the latest ``t_done`` instead of one
        per request.
        """
        self._start(req, on_known)

    def _start(self, req: MemRequest, ev: _Sink) -> None:
        """``ev``: called with the request once its completion time is decided."""
        env = self.env
        now = env.now
        req.t_issue = now
        if self.t_first is None:
            self.t_first = now
        self.issued += 1
        if not 0 <= req.sm < len(self.l1):
            raise SimgpuError(f"request sm = {req.sm}, expected 0..{len(self.l1) - 1}")
        if req.space == "shared":
            u = self.l1[req.sm]
            start = u.shared.access(now, req.nbytes(self.sector_bytes), req.lane_addrs)
            n_extra = u.shared.port.next_free - start - 1
            self._done(req, ev, start + self.hs + n_extra, "shared")
        elif req.space not in SPACES or req.cache_op not in CACHE_OPS or (
            req.sectors > self.full_line
        ):
            raise SimgpuError(
                f"request space = {req.space!r}, cache_op = {req.cache_op!r}, sectors ="
                f" {req.sectors:#b}; expected space in {SPACES}, cache_op in {CACHE_OPS} and"
                f" sectors within a line ({self.full_line:#b}: {self.line_bytes} B of"
                f" {self.sector_bytes} B sectors)"
            )
        elif req.write:
            self._store(req, ev, now)
        else:
            self._load(req, ev, now)

    # -- completion -------------------------------------------------------------------------
    def _done(self, req: MemRequest, ev: _Sink, t: float, level: str) -> None:
        req.t_done = t
        req.served_by = level
        self._count(level, t, t - req.t_issue, self.sector_bytes * req.sectors.bit_count(),
                    req.write)
        ev(req)

    def _count(self, level: str, t: float, lat: float, nbytes: int, write: bool) -> None:
        """The statistics of one request completing at ``t`` after ``lat`` cycles."""
        self.completed += 1
        if write:
            self.bytes_written += nbytes
        else:
            self.bytes_read += nbytes
        if t > self.t_last:
            self.t_last = t
        if self.record:
            rec = self.by_level.get(level)
            if rec is None:
                rec = self.by_level[level] = [0, 0.0, 0]
                self.lat[level] = array("d")
            rec[0] += 1
            rec[1] += lat
            rec[2] += nbytes
            self.lat[level].append(lat)

    # -- loads ------------------------------------------------------------------------------
    # The rules (MemorySystem's docstring has the latencies): a load cached in the L1 (ld.ca)
    # looks its line up there; the LD/ST unit issues in order, so while an SM has loads waiting
    # for an MSHR every later one waits behind them. An L1 miss takes an MSHR entry per line
    # (512 per SM, 64 merges each) and fetches the missing sectors through the crossbar from
    # the SM's near L2 partition; a load of a line already in flight merges (fetching only
    # sectors not yet in flight). A fill enters the tags when its data has arrived (at the
    # next access that needs the entry, oldest entries first). In the L2 the same: an MSHR
    # entry per line in flight (merges limited; a merge-full request waits for the fill), a
    # near hit, else a far partition's copy (copied into the near one), else DRAM. Written
    # over arrays in simgpu.sim.load_core; here the loads get their slots and the actions it
    # logs are replayed in order.
    def _load(self, req: MemRequest, ev: _Sink, now: float) -> None:
        r = self._ld.request((req, ev, 0, now))
        if self._ld.RI is not self._args_ri:  # the slots grew
            self._refresh_args()
        while True:
            n = lc.load_one(*self._args, float(now), r, req.sm, req.line_addr, req.sectors,
                            req.cache_op != "cg", req.bulk)
            if n >= 0:
                break
            self._grow(-n, 1)
        if n:
            self._replay(n)

    def _check_batch(self, kind: str, sm: int, masks: list[int], cache_op: str) -> None:
        """Refuse a batch of ``kind`` (loads or stores) from a bad SM, with a bad cache
        operator or with sectors beyond a line."""
        if not 0 <= sm < len(self.l1):
            raise SimgpuError(f"request sm = {sm}, expected 0..{len(self.l1) - 1}")
        if cache_op not in CACHE_OPS or max(masks, default=0) > self.full_line:
            raise SimgpuError(
                f"{kind} cache_op = {cache_op!r}, sectors up to {max(masks, default=0):#b};"
                f" expected cache_op in {CACHE_OPS} and sectors within a line"
                f" ({self.full_line:#b}: {self.line_bytes} B of {self.sector_bytes} B sectors)"
            )

    def load_many(
        self,
        sm: int,
        lines: list[int],
        masks: list[int],
        cache_op: str,
        settle: Callable[[int, int, str, float], None],
        bulk: bool = False,
    ) -> None:
        """One SM's loads (a warp's, in order), each line ``lines[i]`` with sector mask
        ``masks[i]``, started now: the same as :meth:`submit` of one load request each, in one
        compiled call and with no request objects. ``settle(1, sectors, level, t)`` is called
        for each load as its completion time ``t`` is decided. ``bulk``: TMA copies
        (:attr:`MemRequest.bulk`)."""
        self._check_batch("loads", sm, masks, cache_op)
        now = self.env.now
        if self.t_first is None:
            self.t_first = now
        n = len(lines)
        self.issued += n
        ld = self._ld
        rs = self._rs if n <= len(self._rs) else np.empty(n, np.int64)
        cached = cache_op != "cg"
        for i in range(n):
            mask = masks[i]
            r = ld.request((None, settle, mask, now))
            ld.RI[r] = (sm, lines[i], mask, cached, bulk, -1)
            rs[i] = r
        if ld.RI is not self._args_ri:  # the slots grew
            self._refresh_args()
        self._run_loads(now, rs, n)

    def _run_loads(self, now: float, rs: np.ndarray, n: int) -> None:
        """Start loads ``rs[:n]`` in one compiled call."""
        while True:
            k = lc.load(*self._args, float(now), rs, n)
            if k >= 0:
                break
            self._grow(-k, n)
        if k:
            self._replay(k)

    def _refresh_args(self) -> None:
        """The arrays every compiled call of the load path takes, in its order (again after
        any of them was replaced by a larger one)."""
        ld = self._ld
        l2 = self.l2
        bank = self.xbar.bank
        self._args_ri = ld.RI
        self._args = (ld.EI, ld.EF, ld.FE, ld.WI, ld.WF, ld.FW, ld.RI, ld.U, ld.H1, ld.H2,
                      self._l1_tags[0], self._l1_tags[1], self._ports, l2.T, l2.st, bank.W,
                      bank.sc, l2.wb, ld.A, ld.G, ld.C, self._part, self._store_room)

    def _grow(self, status: int, n: int) -> None:
        if status == lc.ROOM_PORTS:
            self.xbar.bank.reserve(2 * n * self._store_room)
        else:
            self._ld.grow(status, n)
        self._refresh_args()

    def _retry(self, sm: int, _ev: object = None) -> None:
        """The SM's stalled loads, when the earliest known fill of its L1 has arrived."""
        ld = self._ld
        while True:
            k = lc.retry(*self._args, float(self.env.now), sm)
            if k >= 0:
                break
            self._grow(-k, int(lc.stalled(ld.U, ld.RI, sm)) + 1)
        if k:
            self._replay(k)

    def _dram_data(self, f: int, cb: int, t_data: float) -> None:
        """A DRAM read of the load path has its data (HBM's callback)."""
        ld = self._ld
        while True:
            k = lc.dram_data(ld.EI, ld.EF, ld.FE, ld.WI, ld.WF, ld.FW, ld.RI, ld.U, ld.H1, ld.A,
                             ld.G, ld.C, float(self.env.now), f, cb, t_data)
            if k >= 0:
                break
            ld.grow(-k, 1)
            self._refresh_args()
        if k:
            self._replay(k)

    def _replay(self, n: int) -> None:
        """Do, in order, the ``n`` actions the compiled call logged."""
        ld = self._ld
        levels = lc.LEVELS
        for code, a, b, c, d, e in ld.A[:n].tolist():
            if code == lc.ACT_DONE:
                req, sink, mask, t_issue = ld.release(int(a))
                if req is not None:
                    self._done(req, sink, b, levels[int(c)])
                else:  # a load of load_many: _done without the request
                    level = levels[int(c)]
                    nsec = mask.bit_count()
                    self._count(level, b, b - t_issue, self.sector_bytes * nsec, False)
                    sink(1, nsec, level, b)
            elif code == lc.ACT_DRAM:
                self.hbm.submit(int(a), int(b), False, c,
                                partial(self._dram_data, int(d), int(e)))
            elif code == lc.ACT_WRITEBACK:
                nbytes = int(b)
                self.dram_writebacks += 1
                self.writeback_bytes += nbytes
                self.hbm.submit(int(a), nbytes, True, self.dram_to, None)
            else:  # ACT_RETRY
                env = self.env
                tev = env.timeout(b - env.now)
                tev.callbacks.append(partial(self._retry, int(a)))

    def _writebacks(self, hold: Callable[[float], None] | None = None) -> bool:
        """Send the L2's evicted dirty lines to DRAM. ``hold(t)``: the store that evicted
        them waits for a write-back that finds its pseudo-channel's write queue full, until
        that one is written (time ``t``): the L2 cannot take more dirty data than the DRAM
        drains. Returns whether ``hold`` was attached."""
        held = False
        for line, dirty in self.l2.take_writebacks():
            self.dram_writebacks += 1
            nbytes = self.l2_sector_bytes * dirty.bit_count()
            self.writeback_bytes += nbytes
            gate = hold if hold is not None and not held and self.hbm.write_queue_full(line) \
                else None
            held = held or gate is not None
            self.hbm.submit(line, nbytes, True, self.dram_to, gate)
        return held

    # -- stores -----------------------------------------------------------------------------
    def _store_lines(
        self, sm: int, lines: list[int], masks: list[int], cache_op: str, now: float
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Book an SM's stores of ``lines`` (request sector ``masks``) through its L1 port, its
        L1 copy (``cache_op`` "ca": write-through, no allocate), the crossbar to the near L2
        partition's slice and (unless :attr:`l2_write_through`) into that partition: one
        compiled call (:func:`simgpu.sim.cache_core.store_batch`), in order. Returns each
        store's start at its slice, the request that caused each write-back the call left in
        ``l2.wb``, and their count."""
        u = self.l1[sm]
        port = u.port
        tags = u.tags
        l2 = self.l2
        p = self.partition_of[sm]
        near = l2.parts[p]
        xbar = self.xbar
        n = len(lines)
        line_arr = np.array(lines, np.int64)
        mask_arr = np.array(masks, np.int64)
        # assumption: a store covering part of a larger L2 sector makes the whole sector valid
        # and dirty (the L2 keeps no byte masks)
        mask_l2 = mask_arr if self._same_sectors else np.array(
            [convert_sectors(m, self.sector_bytes, self.l2_sector_bytes) for m in masks],
            np.int64)
        state = self._ports[sm]
        t_slice = np.empty(n)
        wb_req = self._wb_req if n <= len(self._wb_req) else np.empty(n, np.int64)
        if n > len(l2.wb):  # (one write-back per store at most)
            l2.wb = np.zeros((n, 2), np.int64)
            self._refresh_args()
        bank = xbar.bank
        args = (line_arr, mask_arr, mask_l2, float(now), state, port.bytes_per_cycle,
                self.sector_bytes, tags.T, tags.st, tags._line_shift, cache_op == "ca", l2.T,
                l2.st, near._line_shift, near.index_div, p, l2.slices_per_partition, bank.W,
                bank.sc, xbar.bytes_per_cycle, xbar.request_bytes, self._store_room,
                float(self.noc), not self.l2_write_through, t_slice, l2.wb, wb_req)
        n_wb = cc.store_batch(*args)
        if n_wb < 0:  # a slice port's table could fill: grow the bank's tables, then store
            bank.reserve(n * self._store_room)
            self._refresh_args()
            n_wb = cc.store_batch(*args[:17], bank.W, *args[18:])
        return t_slice, wb_req, int(n_wb)

    def _store(self, req: MemRequest, ev: _Sink, now: float) -> None:
        t_slice, _, n_wb = self._store_lines(req.sm, [req.line_addr], [req.sectors],
                                             req.cache_op, now)
        s = float(t_slice[0])
        if self.l2_write_through:
            back = self.dram_back + self.noc
            sectors = req.sectors
            if not self._same_sectors:
                sectors = convert_sectors(sectors, self.sector_bytes, self.l2_sector_bytes)

            def written(t: float) -> None:
                self._done(req, ev, t + back, "DRAM")

            self.hbm.submit(req.line_addr, self.l2_sector_bytes * sectors.bit_count(), True,
                            (s - now) + self.dram_to, written)
            self.dram_writebacks += 1
            self.writeback_bytes += self.l2_sector_bytes * sectors.bit_count()
            return
        if n_wb:
            self.l2.drain(n_wb)
        t_ack = s + self.noc
        if self.l2.writebacks:
            def accepted(t: float) -> None:
                self._done(req, ev, max(t_ack, t + self.noc), "L2near")

            if self._writebacks(accepted):
                return
        self._done(req, ev, t_ack, "L2near")

    def store_many(
        self,
        sm: int,
        lines: list[int],
        masks: list[int],
        cache_op: str,
        settle: Callable[[int, int, str, float], None],
    ) -> None:
        """One SM's stores (a warp's, in order), each line ``lines[i]`` with sector mask
        ``masks[i]``, started now: the same as :meth:`submit` of one store request each, in one
        compiled call and with no request objects. ``settle(n, sectors, level, t)`` is called
        as completion times are decided: once for all stores decided at once (``t`` the latest
        of them, ``sectors`` their sector count), and once for each store that waits for a
        full DRAM write queue to take the line its write evicted."""
        self._check_batch("stores", sm, masks, cache_op)
        env = self.env
        now = env.now
        if self.t_first is None:
            self.t_first = now
        if self.l2_write_through:  # each store completes on its own DRAM write
            for line, mask in zip(lines, masks, strict=True):
                req = MemRequest(sm=sm, line_addr=line, sectors=mask, write=True,
                                 cache_op=cache_op)
                self.submit(req, lambda r: settle(1, r.sectors.bit_count(), "L2near"
                                                  if r.served_by is None else r.served_by,
                                                  r.t_done or 0.0))
            return
        n = len(lines)
        self.issued += n
        t_slice, wb_req, n_wb = self._store_lines(sm, lines, masks, cache_op, now)
        noc = self.noc
        l2 = self.l2
        wb = l2.wb
        j = 0  # the next write-back of the call
        held: list[int] = []
        for i in range(n):
            if j < n_wb and wb_req[j] == i:  # its write evicted dirty lines: send them on
                first = j
                while j < n_wb and wb_req[j] == i:
                    j += 1
                l2.writebacks.extend((int(wb[k, 0]), int(wb[k, 1])) for k in range(first, j))
                req = MemRequest(sm=sm, line_addr=lines[i], sectors=masks[i], write=True,
                                 cache_op=cache_op, t_issue=now)
                t_ack = float(t_slice[i]) + noc

                def accepted(t: float, req: MemRequest = req, t_ack: float = t_ack) -> None:
                    self._done(req, lambda r: settle(1, r.sectors.bit_count(), "L2near",
                                                     r.t_done or 0.0),
                               max(t_ack, t + noc), "L2near")

                if self._writebacks(accepted):
                    held.append(i)
        if len(held) == n:
            return
        # the stores decided now (what MemorySystem._done does for each, in order)
        level = "L2near"
        if held:
            keep = [i for i in range(n) if i not in held]
            t_done = (t_slice[keep] + noc).tolist()
            nsec = sum(masks[i].bit_count() for i in keep)
        else:
            t_done = (t_slice + noc).tolist()
            nsec = sum(m.bit_count() for m in masks)
        k = len(t_done)
        t_max = max(t_done)
        nbytes = self.sector_bytes * nsec
        self.completed += k
        self.bytes_written += nbytes
        if t_max > self.t_last:
            self.t_last = t_max
        if self.record:
            lat = [t - now for t in t_done]
            rec = self.by_level.get(level)
            if rec is None:
                rec = self.by_level[level] = [0, 0.0, 0]
                self.lat[level] = array("d")
            rec[0] += k
            total = rec[1]
            for x in lat:  # (one by one: the same sum as one request at a time)
                total += x
            rec[1] = total
            rec[2] += nbytes
            self.lat[level].extend(lat)
        settle(k, nsec, level, t_max)

    # -- functional warm-up -----------------------------------------------------------------
    def warm(
        self, sm: int, line_addrs: Iterable[int], sectors: int = 1, *, dirty: bool = False
    ) -> None:
        """Replay reads through the tags with no timing (fast-forward before a measurement).

        Each line is looked up in the SM's L1, its near L2 partition and the far ones, and
        filled where it missed, exactly as a timed load would leave the tags. ``sectors`` is
        a request's mask (:attr:`sector_bytes` sectors), the same for every line.

        ``dirty``: the lines were stored instead (an earlier kernel's output, not yet written
        back): they enter the near L2 partition dirty, as a store leaves them (the L1 writes
        through and keeps none). Their bytes are :meth:`warm_dirty_bytes`: they belong to
        the earlier kernel, so the statistics do not count them among this run's writes.
        """
        self.warm_many([(sm, line_addrs, dirty)], sectors)

    def warm_many(self, pieces: Iterable[tuple[int, Iterable[int], bool]],
                  sectors: int = 1) -> None:
        """:meth:`warm` of each ``(sm, line_addrs, dirty)`` piece in turn, with one reset of
        the statistics at the end (a preload spread over every SM)."""
        for sm, line_addrs, dirty in pieces:
            self._warm(sm, line_addrs, sectors, dirty)
        self.reset_stats()

    def _warm(self, sm: int, line_addrs: Iterable[int], sectors: int, dirty: bool) -> None:
        u = self.l1[sm]
        l2 = self.l2
        p = self.partition_of[sm]
        use_l1 = u.tags.n_sets > 0 and not dirty
        s2 = convert_sectors(sectors, self.sector_bytes, self.l2_sector_bytes)
        if isinstance(line_addrs, range):
            lines = np.arange(line_addrs.start, line_addrs.stop, line_addrs.step, dtype=np.int64)
        else:
            lines = np.fromiter(line_addrs, np.int64)
        near = l2.parts[p]
        # (one compiled pass over the lines: cache_core.warm_lines)
        added, evicted = cc.warm_lines(lines, sectors, s2, dirty, u.tags.T, u.tags.st,
                                       u.tags._line_shift, use_l1, l2.T, l2.st, p,
                                       near._line_shift, near.index_div, l2.wb)
        evicted += sum(d.bit_count() for _, d in l2.take_writebacks())
        self._warm_dirty += self.l2_sector_bytes * (added - evicted)

    def warm_dirty_bytes(self) -> int:
        """Dirty bytes the L2 held when the run started: those :meth:`warm` wrote with
        ``dirty`` (each line once) less those it evicted again."""
        return self._warm_dirty

    def l2_occupancy(self) -> float:
        """The fraction of the L2's line slots holding a line now."""
        return self.l2.occupancy()

    def reset_stats(self) -> None:
        """Zero every counter (tags and queues keep their contents)."""
        for u in self.l1:
            for k in u.tags.counters():
                setattr(u.tags, k, 0)
            u.mshr.allocations = u.mshr.merges = u.mshr.stalls = 0
            u.shared.accesses = u.shared.wavefronts = u.shared.conflicts = 0
        for c in self.l2.parts:
            for k in c.counters():
                setattr(c, k, 0)
        self.l2.demotions = self.l2.invalidations = 0
        for m in self.l2_mshr:
            m.allocations = m.merges = m.stalls = 0
        for pc in self.hbm.pcs:
            for k in ("reads", "writes", "row_hits", "row_misses", "row_conflicts", "refreshes",
                      "bytes", "write_bytes", "busy_bursts", "queue_wait", "decided"):
                setattr(pc, k, 0)
        self.issued = self.completed = 0
        self.by_level = {}
        self.lat = {}
        self.bytes_read = self.bytes_written = self.dram_writebacks = self.writeback_bytes = 0
        self.t_first = None
        self.t_last = 0.0

    # -- statistics -------------------------------------------------------------------------
    def stats(self) -> pd.DataFrame:
        """One row per component/level: requests, hits, misses, bytes, bandwidth, latency."""
        import pandas as pd  # here: pandas adds ~0.5 s to start-up; only tables need it

        span = (self.t_last - self.t_first) if self.t_first is not None else 0.0
        seconds = span / (self.clock_MHz * 1e6) if span > 0 else float("nan")
        rows: list[dict[str, Any]] = []
        l1 = {k: 0 for k in ("hits", "misses", "sector_hits", "sector_misses", "evictions",
                             "fills", "writes")}
        merges = stalls = 0
        for u in self.l1:
            c = u.tags.counters()
            for k in l1:
                l1[k] += c[k]
            merges += u.mshr.merges
            stalls += u.mshr.stalls
        rows.append({"component": "L1", "requests": l1["hits"] + l1["misses"],
                     "hits": l1["hits"], "misses": l1["misses"],
                     "sector_hits": l1["sector_hits"], "sector_misses": l1["sector_misses"],
                     "mshr_merges": merges, "mshr_stalls": stalls, "evictions": l1["evictions"],
                     "bytes": self.sector_bytes * (l1["sector_hits"] + l1["sector_misses"])})
        sh = sum(u.shared.accesses for u in self.l1)
        if sh:
            rows.append({"component": "shared", "requests": sh,
                         "bank_conflicts": sum(u.shared.conflicts for u in self.l1),
                         "wavefronts": sum(u.shared.wavefronts for u in self.l1)})
        for c2, m in zip(self.l2.counters(), self.l2_mshr, strict=True):
            rows.append({"component": f"L2p{c2['partition']}",
                         "requests": c2["hits"] + c2["misses"], "hits": c2["hits"],
                         "misses": c2["misses"], "sector_hits": c2["sector_hits"],
                         "sector_misses": c2["sector_misses"], "mshr_merges": m.merges,
                         "evictions": c2["evictions"],
                         "bytes": self.l2_sector_bytes
                         * (c2["sector_hits"] + c2["sector_misses"])})
        rows.append({"component": "crossbar", "requests": sum(
            p.uses for part in self.xbar.ports for p in part),
            "busy_fraction": self.xbar.busy_cycles() / (span * self.l2.spec.slices)
            if span > 0 else float("nan")})
        d = self.hbm.totals()
        dram_row: dict[str, Any] = {
            "component": "DRAM", "requests": d["reads"] + d["writes"], "reads": d["reads"],
            "writes": d["writes"], "row_hits": d["row_hits"], "row_misses": d["row_misses"],
            "row_conflicts": d["row_conflicts"], "refreshes": d["refreshes"], "bytes": d["bytes"],
            "read_bytes": d["bytes"] - d["write_bytes"], "write_bytes": d["write_bytes"],
            "writebacks": self.dram_writebacks,
            # stores the write-back L2 still holds: they reach DRAM after the run ends
            "l2_dirty_bytes": self.l2_sector_bytes * sum(t.dirty_sectors() for t in self.l2.parts),
            # dirty bytes an earlier kernel left in the L2 when the run started (warm): the run
            # writes them back in place of as many of its own
            "l2_warm_dirty_bytes": self._warm_dirty,
            # write-backs on their way: queued at the controllers, not yet written
            "write_pending_bytes": d["pending_write_bytes"],
            # Little's law at the controllers: mean requests queued = total wait / time
            "mean_queue_occupancy": d["queue_wait"] * self.hbm.cycles_per_tck / span
            if span > 0 else float("nan"),
            "mean_queue_wait_ns": d["queue_wait"] / d["decided"] * self.hbm.t.tCK_ns
            if d["decided"] else float("nan"),
        }
        dram_row["bandwidth_GBps"] = d["bytes"] / seconds / 1e9 if span > 0 else float("nan")
        rows.append(dram_row)
        to_ns = 1000.0 / self.clock_MHz
        for level in ("L1", "shared", "L2near", "L2far", "DRAM"):
            rec = self.by_level.get(level)
            if not rec:
                continue
            lat = np.frombuffer(self.lat[level], dtype=np.float64)
            rows.append({
                "component": f"served:{level}", "requests": rec[0], "bytes": rec[2],
                "latency_mean_cycles": rec[1] / rec[0],
                "latency_p50_cycles": float(np.percentile(lat, 50)),
                "latency_p90_cycles": float(np.percentile(lat, 90)),
                "latency_p99_cycles": float(np.percentile(lat, 99)),
                "latency_mean_ns": rec[1] / rec[0] * to_ns,
            })
        total_n = sum(r[0] for r in self.by_level.values())
        total_row: dict[str, Any] = {
            "component": "total", "requests": self.issued, "completed": self.completed,
            "bytes": self.bytes_read + self.bytes_written,
            "bandwidth_GBps": (self.bytes_read + self.bytes_written) / seconds / 1e9
            if span > 0 else float("nan"),
        }
        if total_n:
            lat = np.concatenate([np.frombuffer(a, dtype=np.float64) for a in self.lat.values()])
            total_row.update(
                latency_mean_cycles=float(lat.mean()),
                latency_p50_cycles=float(np.percentile(lat, 50)),
                latency_p90_cycles=float(np.percentile(lat, 90)),
                latency_p99_cycles=float(np.percentile(lat, 99)),
                latency_mean_ns=float(lat.mean()) * to_ns,
                # Little's law: mean requests in flight = throughput x mean latency
                mean_in_flight=float(lat.sum()) / span if span > 0 else float("nan"),
            )
        rows.append(total_row)
        df = pd.DataFrame(rows)
        if "hits" in df and "requests" in df:
            df["hit_rate"] = df["hits"] / df["requests"].where(df["requests"] > 0)
        return df


def build_system(
    env: simpy.Environment, spec: DeviceSpec, *, rng: random.Random | None = None, **options: Any
) -> MemorySystem:
    """Wire L1/shared, crossbar, L2 and HBM from a DeviceSpec (options: see MemorySystem)."""
    return MemorySystem(env, spec, rng=rng, **options)
