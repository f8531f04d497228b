"""Replay a kernel trace on the SM model and the memory hierarchy: cycles, time, activity.

:func:`simulate_trace` builds one :class:`~simgpu.sim.sm.SM` per streaming multiprocessor on one
memory system (``simgpu.sim.build_system``), dispatches thread blocks to SMs as the hardware
block scheduler does (round robin, as many per SM as the occupancy rules allow, a new block as
soon as one retires) and runs until the last block retires and the last store is accepted.

Sampling: a kernel of many waves is simulated wave by wave until the time per wave is stable
(two successive waves within ``tolerance``), then the rest is extrapolated at the mean time
of the waves simulated since the L2 settled (below); the result carries the estimate and its
spread (two standard errors of that mean, carried over the waves extrapolated). Waves are not
taken as stable while a kernel that stores is still filling an L2 it will fill before it ends:
until the L2 writes back what the waves store (:data:`L2_SETTLED_WRITEBACK`), it holds the
stores for free, and the waves run at the speed of the reads alone. Counts (instructions,
FLOPs, bytes) are extrapolated from the per-block means of the blocks that
retired, so blocks still resident when sampling stopped neither inflate nor dilute them.

DRAM bytes: reads are what the DRAM delivered (MSHR-merged misses read once); writes are what
the write-back L2 wrote back during the run plus the dirty bytes it still holds at the end
(``l2_dirty_bytes`` of the memory system's statistics), since the hardware writes those back
after the kernel and profilers count them when they leave the L2.
"""

from __future__ import annotations

import copy
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import pandas as pd
import simpy

from simgpu.arch.occupancy import occupancy
from simgpu.errors import SimgpuError
from simgpu.sim.collector import relaxed_gc
from simgpu.sim.gpuslice import default_slice, slice_blocks, slice_spec, slice_spread
from simgpu.sim.request import MemRequest
from simgpu.sim.sm import SM, STALL_REASONS, Block, Decoder, SMConfig
from simgpu.sim.system import build_system
from simgpu.trace.schema import KernelTrace

if TYPE_CHECKING:
    from simgpu.devices.spec import DeviceSpec

__all__ = [
    "SamplingPlan",
    "SimResult",
    "simulate_trace",
    "simulate_traces",
]


#: Wall seconds between two progress reports of a replay.
PROGRESS_EVERY_S = 5.0


#: Sampling takes the L2 as settled once, over a wave, it has written back this fraction of
#: the bytes the wave stored (the write-back L2 passes stores on at the rate they come).
#: assumption: an allowance for the wave-to-wave scatter of the write-backs.
L2_SETTLED_WRITEBACK = 0.9

#: ... or, failing that, this many waves after it became full (L2_FULL of its line slots hold
#: a line), so that a kernel whose stores stay in the L2 does not run in full. assumption.
L2_SETTLE_WAVES = 4

#: The L2 counts as full, for sampling, once this fraction of its line slots hold a line.
#: assumption: lines hashed over 16-way sets reach about 90% of the slots when a capacity's
#: worth of distinct lines has been inserted (Poisson loads of mean 16 per set).
L2_FULL = 0.9


@dataclass(frozen=True)
class SamplingPlan:
    """When to stop simulating waves and extrapolate.

    ``min_waves`` full waves at least, stop once two successive wave times differ by less than
    ``tolerance`` (relative), at most ``max_waves``. Kernels of fewer than ``min_waves + 1``
    waves are simulated in full. A kernel that stores into an L2 that is still filling, and
    that it will fill before it ends, first simulates waves until the L2 writes back what
    they store (:data:`L2_SETTLED_WRITEBACK`, or :data:`L2_SETTLE_WAVES` after it is full);
    the waves counted, ``max_waves`` included, then start there.
    """

    min_waves: int = 3
    max_waves: int = 8
    tolerance: float = 0.02

    def samples(self, blocks: float, slots: float) -> bool:
        """Whether a launch of ``blocks`` blocks, ``slots`` of them to a wave, is sampled in
        waves (rather than simulated in full)."""
        return blocks >= (self.min_waves + 1) * slots

    def share(self, blocks: float, slots: float) -> float:
        """The most of such a launch a sampled replay simulates: ``max_waves`` waves (more
        where the L2 settles late), or all of it."""
        return min(1.0, self.max_waves * slots / blocks) if self.samples(blocks, slots) else 1.0


@dataclass
class SimResult:
    """Outcome of one kernel replay (extrapolated when ``sampled``)."""

    device: str
    kernel: str
    clock_MHz: float
    cycles: float
    time_s: float
    sampled: bool
    time_s_spread: float
    blocks_total: int
    blocks_simulated: int
    waves: float
    occupancy_blocks_per_sm: int
    occupancy_limit: str
    warp_instructions: float
    instructions_simulated: int
    flops: float
    bytes: dict[str, dict[str, float]]
    hit_rate: dict[str, float | None]
    stalls: dict[str, float]
    op_counts: dict[str, float]
    wall_s: float
    scheduler: str
    memory_stats: Any = field(default=None, repr=False)
    block_end_cycles: list[float] = field(default_factory=list, repr=False)
    #: Replayed on 1/sm_slice of the GPU (its share of the blocks), counts scaled up
    #: (:mod:`simgpu.sim.gpuslice`); 1: the whole GPU. ``memory_stats`` are the slice's own.
    sm_slice: int = 1

    @property
    def flops_per_s(self) -> float:
        return self.flops / self.time_s if self.time_s > 0 else 0.0

    def bandwidth_GBps(self) -> dict[str, float]:
        return {
            lvl: (b["read"] + b["write"]) / self.time_s / 1e9 if self.time_s > 0 else 0.0
            for lvl, b in self.bytes.items()
        }

    def to_dict(self) -> dict[str, Any]:
        d = {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("memory_stats", "block_end_cycles")
        }
        d["flops_per_s"] = self.flops_per_s
        d["bandwidth_GBps"] = self.bandwidth_GBps()
        return d

    def to_frame(self) -> pd.DataFrame:
        """One row: scalars plus flattened per-level bytes, hit rates and stall fractions."""
        row: dict[str, Any] = {
            k: v
            for k, v in self.to_dict().items()
            if not isinstance(v, dict | list) and k != "memory_stats"
        }
        for lvl, b in self.bytes.items():
            row[f"{lvl}_read_bytes"] = b["read"]
            row[f"{lvl}_write_bytes"] = b["write"]
        for lvl, h in self.hit_rate.items():
            row[f"{lvl}_hit_rate"] = h
        for lvl, bw in self.bandwidth_GBps().items():
            row[f"{lvl}_GBps"] = bw
        total = sum(self.stalls.values()) or 1.0
        for k, v in self.stalls.items():
            row[f"stall_{k}"] = v / total
        return pd.DataFrame([row])


def default_system(env: Any, spec: DeviceSpec, seed: int) -> Any:
    """The memory system a replay runs on unless told otherwise, its randomness seeded."""
    return build_system(env, spec, rng=random.Random(seed))


def simulate_trace(
    trace: KernelTrace,
    spec: DeviceSpec,
    *,
    sample: bool | SamplingPlan = False,
    scheduler: str = "gto",
    model_register_banks: bool = True,
    system_factory: Callable[[Any, DeviceSpec], Any] | None = None,
    request_cls: Callable[..., Any] | None = None,
    seed: int = 0,
    max_blocks: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    sm_slice: int | None = None,
) -> SimResult:
    """Replay ``trace`` on ``spec``. See the module docstring for sampling.

    ``sm_slice``: replay ``1/k`` of the blocks (:func:`simgpu.sim.gpuslice.slice_blocks`) on
    ``1/k`` of the GPU (:func:`~simgpu.sim.gpuslice.slice_spec`) and scale the counts by the
    blocks they stand for;
    ``None`` (default): :func:`~simgpu.sim.gpuslice.default_slice` when ``sample`` is set, else
    1 (the whole GPU). ``system_factory`` then builds the slice's memory system; one with an
    ``l2_bytes(spec)`` attribute (the bytes it starts the L2 with) larger than the slice's L2
    gets the whole L2's capacity over the slice's L2 slices (data every block reads, held warm
    for the whole grid, stays as much in the L2 as on the whole GPU).

    ``progress(blocks_done, blocks_to_simulate)`` is called as blocks retire, at most every
    :data:`PROGRESS_EVERY_S` seconds of wall time (sampling may stop well before the total).

    ``system_factory(env, spec)`` builds the memory system (default:
    ``simgpu.sim.build_system``); ``request_cls`` makes its requests (default
    ``simgpu.sim.request.MemRequest``). ``max_blocks`` simulates only the first blocks (used by
    workloads that sample loop trips; the result then covers those blocks only).
    """
    wall0 = time.perf_counter()
    launch = trace.launch
    occ = occupancy(spec, launch.threads_per_block, launch.regs_per_thread, launch.shared_bytes)
    covered = launch.num_blocks if max_blocks is None else min(max_blocks, launch.num_blocks)
    if sm_slice is None:
        sm_slice = default_slice(spec, covered) if sample is not False else 1
    k_slice = sm_slice
    whole = spec
    # a factory that starts the L2 warm with the whole grid's inputs (warm_l2_factory) says how
    # many bytes it puts there; a slice too small for them keeps the whole L2's capacity
    warm_bytes = getattr(system_factory, "l2_bytes", None)
    whole_l2 = (k_slice > 1 and warm_bytes is not None
                and warm_bytes(whole) > whole.l2.size_bytes / k_slice)
    spec = slice_spec(whole, k_slice, whole_l2=whole_l2)
    env = simpy.Environment()
    system = (
        system_factory(env, spec)
        if system_factory is not None
        else default_system(env, spec, seed)
    )
    rq = request_cls if request_cls is not None else MemRequest
    cfg = SMConfig.from_spec(spec, scheduler=scheduler, model_register_banks=model_register_banks)
    n_sm = spec.compute.sm_count
    # the slice replays its share of the blocks covered (slice_blocks); `launch_blocks`: its
    # share of the whole launch
    slots = occ.blocks_per_sm * n_sm
    row = launch.grid[0]
    picked = slice_blocks(covered, k_slice, row)
    total = len(picked)
    launch_blocks = -(-launch.num_blocks // k_slice)  # slice_blocks' count of the whole launch
    waves = launch_blocks / slots
    plan: SamplingPlan | None
    if sample is True:
        plan = SamplingPlan()
    elif isinstance(sample, SamplingPlan):
        plan = sample
    else:
        plan = None
    if plan is not None and not plan.samples(total, slots):
        plan = None  # too small to gain from sampling

    state: dict[str, int] = {
        "next": 0,
        "done": 0,
        "insts_done": 0,
        "load_sectors_done": 0,
        "store_sectors_done": 0,
    }
    done_times: list[float] = []
    finished = env.event()
    stop: dict[str, Any] = {"waves": 0, "est": None, "settled": None}
    # a test's stub memory system may report neither
    l2_occupancy = getattr(system, "l2_occupancy", None)
    occ0 = l2_occupancy() if plan is not None and l2_occupancy is not None else 0.0
    wave_marks: list[tuple[int, int]] = []  # (stored sectors, written-back bytes) per wave
    full_at: list[int] = []  # the wave at which the L2 was first full

    def l2_settled(k: int) -> bool:
        """Whether, at the end of wave ``k``, the L2 is in the state the rest of the kernel
        runs in: writing back what the kernel stores, or never to be filled by it, or not
        storing anything."""
        if l2_occupancy is None or not state["store_sectors_done"]:
            return True
        occ = l2_occupancy()
        # lines brought in grow with the blocks started: will the whole launch fill the L2?
        if occ < L2_FULL and occ0 + (occ - occ0) * launch_blocks / state["next"] < L2_FULL:
            return True
        if occ >= L2_FULL and not full_at:
            full_at.append(k)
        stored = (state["store_sectors_done"] - wave_marks[-2][0]) * spec.l1.sector_bytes
        written = getattr(system, "writeback_bytes", 0) - wave_marks[-2][1]
        return (written >= L2_SETTLED_WRITEBACK * stored
                or bool(full_at) and k - full_at[0] >= L2_SETTLE_WAVES)

    def dispatch(sm: SM) -> None:
        i = state["next"]
        if i >= total or stop["est"] is not None:
            sm.finish()
            return
        state["next"] = i + 1
        sm.add_block(picked[i], trace.block(picked[i]), env.now)

    last_report = [wall0]

    def wave_time(j: int) -> float:
        """Cycles from the end of wave ``j - 1`` (its last block's retirement) to that of
        wave ``j`` (1-based; wave 1 from the launch)."""
        return done_times[j * slots - 1] - (done_times[(j - 1) * slots - 1] if j >= 2 else 0.0)

    def on_done(sm: SM, blk: Block) -> None:
        state["done"] += 1
        if progress is not None and time.perf_counter() - last_report[0] >= PROGRESS_EVERY_S:
            last_report[0] = time.perf_counter()
            progress(state["done"], total)
        done_times.append(blk.t_end)
        state["insts_done"] += sum(w.n for w in blk.warps)
        state["load_sectors_done"] += blk.load_sectors
        state["store_sectors_done"] += blk.store_sectors
        if plan is not None and stop["est"] is None and state["done"] % slots == 0:
            k = state["done"] // slots
            wave_marks.append((state["store_sectors_done"],
                               getattr(system, "writeback_bytes", 0)))
            if k >= plan.min_waves and stop["settled"] is None and l2_settled(k):
                stop["settled"] = k
            k_s = stop["settled"]
            # both waves compared after the L2 settled (the first check: any two)
            if k_s is not None and k >= k_s + (k_s > plan.min_waves):
                d1, d0 = wave_time(k), wave_time(k - 1)
                last = plan.max_waves + k_s - plan.min_waves
                if abs(d1 - d0) <= plan.tolerance * d1 or k >= last:
                    stop["waves"] = k
                    # every wave comparable since the L2 settled, the two compared first on
                    first = k_s - 1 if k_s <= plan.min_waves else k_s
                    stop["est"] = [wave_time(j) for j in range(max(first, 1), k + 1)]
                    if not finished.triggered:
                        finished.succeed()
                    return
        if state["done"] >= total and not finished.triggered:
            finished.succeed()
            return
        dispatch(sm)

    decoder = Decoder(cfg)
    sms = [SM(env, i, cfg, system, rq, on_done, decoder) for i in range(n_sm)]
    # First wave: round robin over SMs, up to the occupancy limit each.
    for _ in range(occ.blocks_per_sm):
        for sm in sms:
            if state["next"] < total:
                dispatch(sm)
    for sm in sms:
        if state["next"] >= total:
            sm.finish()
    if total == 0:
        raise SimgpuError(f"kernel {launch.name!r} has no blocks to simulate")
    with relaxed_gc():
        try:
            env.run(until=finished)
        except RuntimeError as exc:  # SimPy: no events left before the kernel finished
            lost = sum(sm.outstanding for sm in sms)
            raise SimgpuError(
                f"kernel {launch.name!r} on {spec.name}: simulation stalled at cycle"
                f" {env.now:.0f} with {state['done']} of {total} blocks done and {lost} memory"
                f" requests never answered by the memory system ({exc})"
            ) from exc
        t_blocks = env.now
        if stop["est"] is None:
            # Drain stores still in flight.
            while any(sm.outstanding for sm in sms):
                env.step()
    t_end = max([t_blocks] + [sm.last_mem_done for sm in sms])
    wall = time.perf_counter() - wall0

    simulated_blocks = state["done"]
    waved = stop["est"] is not None
    sampled = waved or k_slice > 1
    spread = 0.0
    if waved:
        k = int(stop["waves"])
        # the wave time: the mean of the waves comparable since the L2 settled (a DRAM-bound
        # kernel's waves scatter by 10% and more: one wave's time is one draw of that)
        durations = stop["est"]
        d = statistics.fmean(durations)
        # Completions repeat with period `slots` blocks and `d` cycles once waves are stable, so
        # the last block (N) retires m waves after block N - m * slots, which was simulated:
        # this keeps the within-wave pattern (bursty when blocks start together, spread out
        # when they are staggered) for the last, partial wave.
        n = launch_blocks
        m = -(-(n - k * slots) // slots)
        j0 = n - m * slots
        base = done_times[j0 - 1]
        cycles = base + m * d
        # spread: two standard errors of that mean, over the m waves (of two waves: their
        # difference, as the two-wave estimate stated it)
        spread = m * 2.0 * statistics.stdev(durations) / math.sqrt(len(durations))
    else:
        cycles = t_end
    spread += slice_spread(k_slice, cycles)
    # blocks of the launch (or of the covered ones) each replayed block stands for
    per_block = (
        launch.num_blocks / max(simulated_blocks, 1) if waved else covered / max(total, 1)
    )
    clock_hz = spec.compute.clock_hz

    # -- statistics -----------------------------------------------------------------------------
    issued = sum(sm.issued for sm in sms)
    # Sampled: counts of the whole kernel = per-block means of the retired blocks x all blocks.
    # Blocks still resident when sampling stopped issued part of their work (a GEMM block has
    # read much of A and B but stored none of C), so the activity simulated so far is scaled to
    # those totals per kind: instructions (FLOPs, op counts), loads, stores.
    scale = state["insts_done"] * per_block / issued if waved and issued else per_block
    op_counts: dict[str, float] = {}
    for sm in sms:
        for k2, nops in sm.counts.items():
            op_counts[k2] = op_counts.get(k2, 0.0) + nops * scale
    stalls = dict.fromkeys(STALL_REASONS, 0.0)
    for sm in sms:
        for s in sm.subs:
            for k2, v in s.stalls.items():
                stalls[k2] += v
            stalls["issued"] += s.issued
    flops = sum(sm.flops_count for sm in sms) * scale
    sector = spec.l1.sector_bytes
    loads: dict[str, int] = {}
    stores = 0
    for sm in sms:
        for lvl, n in sm.load_sectors_by_level.items():
            loads[lvl] = loads.get(lvl, 0) + n
        stores += sum(sm.store_sectors_by_level.values())
    l1_loads = sum(loads.values())
    scale_ld = scale_st = scale
    if waved:
        if l1_loads:
            scale_ld = state["load_sectors_done"] * per_block / l1_loads
        if stores:
            scale_st = state["store_sectors_done"] * per_block / stores
    # The DRAM counts include the requests of resident blocks still in flight when sampling
    # stopped (a store is dirty in the L2 before its acknowledgement is back; a load's DRAM read
    # starts before its data returns): scale them by the sectors issued, not the ones answered.
    scale_dr, scale_dw = scale_ld, scale_st
    if waved:
        resident = [b for sm in sms for b in sm.blocks]
        issued_ld = state["load_sectors_done"] + sum(b.load_sectors for b in resident)
        issued_st = state["store_sectors_done"] + sum(b.store_sectors for b in resident)
        if issued_ld:
            scale_dr = state["load_sectors_done"] * per_block / issued_ld
        if issued_st:
            scale_dw = state["store_sectors_done"] * per_block / issued_st
    l2_loads = l1_loads - loads.get("L1", 0)
    dram_loads = loads.get("DRAM", 0)
    mem_stats = None
    dram_write = 0.0
    if hasattr(system, "stats"):  # a foreign memory system (a test's stub) may keep none
        mem_stats = system.stats()
        dram_write = _dram_write_bytes(mem_stats)
    # DRAM reads: the bytes the DRAM itself delivered when the memory system reports them
    # (requests merged in an MSHR wait for one DRAM read); else the sectors served by DRAM.
    dram_read = float(dram_loads * sector)
    l2_hit = (1 - dram_loads / l2_loads) if l2_loads else None
    if mem_stats is not None:
        reported = _dram_read_bytes(mem_stats)
        if reported is not None:
            dram_read = reported
            if l2_loads:
                l2_hit = max(0.0, 1 - reported / (l2_loads * sector))
    bytes_ = {
        "l1": {"read": l1_loads * sector * scale_ld, "write": stores * sector * scale_st},
        "l2": {"read": l2_loads * sector * scale_ld, "write": stores * sector * scale_st},
        "dram": {"read": dram_read * scale_dr, "write": dram_write * scale_dw},
    }
    hit_rate: dict[str, float | None] = {
        "l1": (loads.get("L1", 0) / l1_loads) if l1_loads else None,
        "l2": l2_hit,
        "dram": None,
    }
    return SimResult(
        device=whole.name,
        kernel=launch.name,
        clock_MHz=spec.compute.boost_clock_MHz,
        cycles=cycles,
        time_s=cycles / clock_hz,
        sampled=sampled,
        time_s_spread=spread / clock_hz,
        blocks_total=launch.num_blocks,
        blocks_simulated=simulated_blocks,
        waves=waves,
        occupancy_blocks_per_sm=occ.blocks_per_sm,
        occupancy_limit=occ.limit,
        warp_instructions=(
            state["insts_done"] * launch.num_blocks / max(simulated_blocks, 1)
            if waved
            else issued * scale
        ),
        instructions_simulated=issued,
        flops=flops,
        bytes=bytes_,
        hit_rate=hit_rate,
        stalls=stalls,
        op_counts=op_counts,
        wall_s=wall,
        scheduler=scheduler,
        memory_stats=mem_stats,
        block_end_cycles=list(done_times),
        sm_slice=k_slice,
    )


def _dram_row(stats: Any) -> Any:
    """The memory system's ``DRAM`` statistics row, or None when it has none."""
    try:
        rows = stats[stats["component"] == "DRAM"]
    except (KeyError, TypeError, ValueError):
        return None
    return None if rows.empty else rows.iloc[0]


def _column(row: Any, name: str) -> float | None:
    try:
        v = float(row[name])
    except (KeyError, TypeError, ValueError):
        return None
    return None if v != v else v  # NaN: column absent in this row


def _dram_read_bytes(stats: Any) -> float | None:
    """DRAM read bytes from the memory system's ``DRAM`` row (its ``read_bytes``, or total
    bytes split in proportion to the read and write counts), or None when absent."""
    r = _dram_row(stats)
    if r is None:
        return None
    v = _column(r, "read_bytes")
    if v is not None:
        return v
    try:
        n = float(r["reads"]) + float(r["writes"])
        return float(r["bytes"]) * float(r["reads"]) / n if n > 0 else 0.0
    except (KeyError, TypeError, ValueError):
        return None


def _dram_write_bytes(stats: Any) -> float:
    """DRAM write bytes of the kernel: what the L2 wrote back to DRAM during the run, the
    write-backs still queued at the controllers (``write_pending_bytes``) and the dirty bytes
    the L2 still holds at the end (``l2_dirty_bytes``), less the dirty bytes it started with
    (``l2_warm_dirty_bytes``: an earlier call's stores, which this run writes back instead).

    The L2 is write-back, so most stores of a kernel are still dirty in it when the last block
    retires; the hardware writes them back afterwards (on eviction or the flush before the next
    kernel) and profilers (Nsight Compute's ``dram__bytes_write``) count them when they leave
    the L2. Counting them here makes a store-once kernel write its output's bytes, as measured.
    """
    r = _dram_row(stats)
    if r is None:
        return 0.0
    written = _column(r, "write_bytes")
    if written is None:
        try:
            n = float(r["reads"]) + float(r["writes"])
            written = float(r["bytes"]) * float(r["writes"]) / n if n > 0 else 0.0
        except (KeyError, TypeError, ValueError):
            written = 0.0
    # an L2 that started with an earlier kernel's dirty lines (the state back-to-back calls
    # leave) writes those back during the run in place of this kernel's last stores: the
    # kernel's own bytes are the total less what it inherited
    return max(0.0, (
        written
        + (_column(r, "write_pending_bytes") or 0.0)
        + (_column(r, "l2_dirty_bytes") or 0.0)
        - (_column(r, "l2_warm_dirty_bytes") or 0.0)
    ))


def simulate_traces(
    traces: Sequence[KernelTrace], spec: DeviceSpec, **kwargs: Any
) -> list[SimResult]:
    """Replay kernels one after another (each on a fresh, cold memory system)."""
    return [simulate_trace(t, spec, **kwargs) for t in traces]
