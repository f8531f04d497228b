"""Streaming multiprocessor: sub-cores with warp schedulers, scoreboard, register file, units.

One SimPy process per SM (never per instruction or per request). A sub-core keeps the issue
time of each of its warps' next instruction (:attr:`Warp.ready`, from a per-register
scoreboard); its scheduler picks a warp (GTO: the last warp while it can issue, else the oldest
ready; LRR: round robin), computes when that instruction can issue (operands ready, functional
unit free, register-bank reads), and advances its own clock by arithmetic. The SM's loop issues
the earliest of its sub-cores' picks, so they book the SM-wide LD/ST unit in time order. It
yields to SimPy only to hand a memory request to the memory system (or reach a barrier or an
exit) at the right time, when the next issue lies more than :data:`RUN_AHEAD_CYCLES` ahead of
the global clock, or when every sub-core's warps wait on memory or a barrier (then it sleeps
until a completion wakes one). A load the memory system decides as it issues (a cache hit)
needs no event: its registers hold their ready time, as an ALU result's do. A stalled warp
costs no simulation time.

The scheduler's state and its ALU, shared-memory and control issue are compiled code over arrays
(:mod:`simgpu.sim.issue_core`, one :class:`~simgpu.sim.issue_core.IssueState` per SM); this
module keeps the rest: decoding, global memory, barriers, copy groups, exits, and the SimPy
processes and events.

Time is SM cycles at the device's boost clock (``env.now``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np

from simgpu.arch.coalesce import (
    coalesce,
    coalesce_affine,
    shared_wavefronts,
    shared_wavefronts_affine,
)
from simgpu.sim import issue_core as core
from simgpu.sim.issue_core import (
    K_ALU,
    K_BAR,
    K_COMMIT,
    K_CTRL,
    K_EXIT,
    K_GLOBAL,
    K_SHARED,
    K_WAIT,
    OP_INDEX,
    STALL_REASONS,
    U_CTRL,
    U_FP16,
    U_FP32,
    U_FP64,
    U_INT,
    U_LSU,
    U_SFU,
    U_TENSOR,
    UNITS,
    DecodeTable,
    IssueState,
)
from simgpu.sim.regfile import rfc_slots
from simgpu.sim.request import MemRequest
from simgpu.trace.schema import Instruction

if TYPE_CHECKING:
    from simgpu.devices.spec import DeviceSpec

__all__ = [
    "UnitTiming",
    "unit_timings",
    "SMConfig",
    "Decoder",
    "Warp",
    "Block",
    "SubCore",
    "SM",
    "RUN_AHEAD_CYCLES",
    "STALL_REASONS",
    "UNITS",
    "COPY_NONE",
    "COPY_ASYNC",
    "COPY_BULK",
    "tensor_key",
    "tensor_timings",
    "mma_flops",
]

INF = math.inf

#: How far (cycles) an SM may run ahead of the global clock on work within the SM (registers,
#: shared memory, branches) before it yields. A load decided as it issues (a cache hit) writes
#: its registers' ready time at once and is seen on time; completions decided later (DRAM reads,
#: MSHR stalls) that arrive meanwhile are seen at most this late by its schedulers.
#: assumption: 16 cycles is below any memory latency in the device files (L1 hit >= 28 cycles), so
#: no completion can be both issued and missed inside one run-ahead window.
RUN_AHEAD_CYCLES = 16.0

#: Asynchronous copies into shared memory (:attr:`Decoded.copy`): none, an Ampere ``cp.async``
#: (``LDGSTS``: per-lane addresses, through the LD/ST unit), a Hopper TMA bulk copy
#: (``UTMALDG``: each active lane names a line-sized segment it copies; the TMA unit, not the
#: LD/ST unit, moves it).
COPY_NONE, COPY_ASYNC, COPY_BULK = range(3)


def tensor_key(opcode: str) -> str:
    """A tensor-core opcode's key in the device file's ``compute.tensor_latency_cycles`` and
    ``compute.tensor_interval_cycles``: lower-cased, ``.`` written ``_``
    (``HMMA.16816.F32.BF16`` -> ``hmma_16816_f32_bf16``)."""
    return opcode.lower().replace(".", "_")


def tensor_timings(spec: DeviceSpec) -> dict[str, UnitTiming]:
    """The device file's per-instruction tensor-core timings (per sub-core), by
    :func:`tensor_key`; empty when the file gives none."""
    c = spec.compute
    return {
        k: UnitTiming(float(c.tensor_latency_cycles[k]), float(c.tensor_interval_cycles[k]))
        for k in c.tensor_latency_cycles
        if k in c.tensor_interval_cycles
    }


def mma_flops(opcode: str) -> int:
    """FLOPs of one warp's tensor-core instruction from the shape its SASS opcode names, 0 when
    it names none: ``HMMA.16816`` is m16n8k16 (2 x 16 x 8 x 16 = 4096), ``HMMA.1688`` m16n8k8,
    ``HMMA.884`` m8n8k4; ``HGMMA.64x256x16`` (wgmma m64n256k16) is issued by each of the four
    warps of its warpgroup, which computes 16 of its 64 rows (2 x 16 x 256 x 16)."""
    parts = opcode.upper().split(".")
    if len(parts) < 2:
        return 0
    base, shape = parts[0], parts[1]
    if base.endswith("GMMA") and "X" in shape:
        try:
            m, n, k = (int(x) for x in shape.split("X"))
        except ValueError:
            return 0
        return 2 * (m // 4) * n * k
    if base in ("HMMA", "IMMA", "DMMA") and shape.isdigit():
        if len(shape) == 3:  # 884
            m, n, k = int(shape[0]), int(shape[1]), int(shape[2])
        elif len(shape) in (4, 5):  # 1688, 16816, 16832
            m, n, k = int(shape[:2]), int(shape[2]), int(shape[3:])
        else:
            return 0
        return 2 * m * n * k
    return 0


@dataclass(frozen=True)
class UnitTiming:
    """Latency (issue to dependent issue) and initiation interval of one warp instruction on a
    unit of one sub-core, in SM cycles."""

    latency: float
    interval: float


def unit_timings(spec: DeviceSpec) -> dict[str, UnitTiming]:
    """Per-class timings for ``spec``. Throughputs derive from the device file; latencies are
    microbenchmarked values that hold from Volta to Hopper (sources inline)."""
    c = spec.compute
    sched = c.warp_schedulers_per_sm
    warp = c.warp_size
    fp32_lanes = c.fp32_lanes_per_sm / sched
    fp64_lanes = max(c.fp64_lanes_per_sm / sched, 1e-9)
    tensor_tflops = c.peak_fp16_tensor_TFLOPS or c.peak_fp32_TFLOPS
    # FLOPs one tensor core does per cycle; one HMMA.16816 warp instruction is 16*8*16*2 FLOPs.
    tc_flops_per_cycle = tensor_tflops * 1e12 / (c.sm_count * c.clock_hz * sched)
    hmma_flops = 16 * 8 * 16 * 2
    return {
        # Jia et al., "Dissecting the NVIDIA Volta GPU Architecture via Microbenchmarking"
        # (arXiv:1804.06826) Table 4.1: FFMA/FADD/FMUL 4 cycles; Huerta et al. 2025 measure 4 on
        # Ampere. Interval: a warp over the sub-core's FP32 lanes.
        "fp32": UnitTiming(4.0, max(1.0, warp / fp32_lanes)),
        # Jia et al. Table 4.1: HFMA2 6 cycles on Volta; packed half2 uses the FP32 lanes
        # (assumption: same issue rate as FP32).
        "fp16": UnitTiming(6.0, max(1.0, warp / fp32_lanes)),
        # Jia et al. Table 4.1: DFMA 8 cycles; interval from the FP64 lanes per sub-core.
        "fp64": UnitTiming(8.0, max(1.0, warp / fp64_lanes)),
        # Jia et al. Table 4.1: IMAD/IADD3/LOP3 4-5 cycles (4 used); 16 INT32 lanes per sub-core
        # (NVIDIA Volta/Ampere/Hopper whitepapers: 64 INT32 units per SM), so 2 cycles per warp.
        "int": UnitTiming(4.0, 2.0),
        # Jia et al. Table 4.1: MUFU (rcp, sqrt, ex2) about 18 cycles on Volta (assumption: same
        # later); 4 SFUs per sub-core (whitepapers: 16 SFUs per SM), so 8 cycles per warp.
        "sfu": UnitTiming(18.0, 8.0),
        # assumption: HMMA.16816 about 32 cycles on Ampere/Hopper (Luo et al., arXiv:2402.13499,
        # mma latency tables report 30-35 cycles); interval from the FP16 tensor peak.
        "tensor": UnitTiming(32.0, max(1.0, hmma_flops / tc_flops_per_cycle)),
        # SHFL goes through the shared-memory crossbar: assumption: its latency is the
        # shared-load latency of the device file.
        "shfl": UnitTiming(float(spec.l1.shared_latency_cycles), 1.0),
        # assumption: S2R/CS2R/NOP/MOV-like moves and branches resolve in a few cycles
        # (Jia et al.: MOV 2 cycles; branch resolution is hidden by other warps).
        "misc": UnitTiming(2.0, 1.0),
        "branch": UnitTiming(2.0, 1.0),
    }


@dataclass(frozen=True)
class SMConfig:
    """What one SM needs from the device file, unpacked once."""

    sub_cores: int
    warp_size: int
    line_bytes: int
    sector_bytes: int
    shared_banks: int
    shared_bank_bytes: int
    shared_latency: float
    lsu_bytes_per_cycle: float
    rf_banks: int
    rf_ports: int
    rf_cache_entries: int | None
    timings: dict[str, UnitTiming]
    scheduler: str = "gto"
    model_register_banks: bool = True
    #: Per-instruction tensor-core timings from the device file (:func:`tensor_timings`); an
    #: opcode without one runs on the generic ``tensor`` timing of :func:`unit_timings`.
    tensor: dict[str, UnitTiming] = field(default_factory=dict)

    @classmethod
    def from_spec(
        cls, spec: DeviceSpec, *, scheduler: str = "gto", model_register_banks: bool = True
    ) -> SMConfig:
        if scheduler not in ("gto", "lrr"):
            raise ValueError(f"scheduler {scheduler!r}, expected 'gto' or 'lrr'")
        rf = spec.register_file
        return cls(
            sub_cores=spec.compute.warp_schedulers_per_sm,
            warp_size=spec.compute.warp_size,
            line_bytes=spec.l1.line_bytes,
            sector_bytes=spec.l1.sector_bytes,
            shared_banks=spec.l1.shared_banks,
            shared_bank_bytes=spec.l1.shared_bank_width_bytes,
            shared_latency=float(spec.l1.shared_latency_cycles),
            lsu_bytes_per_cycle=float(spec.l1.bandwidth_bytes_per_cycle),
            rf_banks=rf.banks_per_sub_core,
            rf_ports=rf.read_ports_per_bank,
            rf_cache_entries=rf.cache_entries_per_sub_core if rf.cache_present else None,
            timings=unit_timings(spec),
            scheduler=scheduler,
            model_register_banks=model_register_banks,
            tensor=tensor_timings(spec),
        )


_CLASS_UNIT = {
    "fp32": U_FP32,
    "fp16": U_FP16,
    "fp64": U_FP64,
    "int": U_INT,
    "sfu": U_SFU,
    "tensor": U_TENSOR,
    "shfl": U_LSU,
    "ld": U_LSU,
    "st": U_LSU,
    "atom": U_LSU,
    "bar": U_CTRL,
    "exit": U_CTRL,
    "branch": U_CTRL,
    "misc": U_CTRL,
}


class Block:
    """A resident thread block: its warps, barrier state and resources."""

    __slots__ = (
        "index",
        "warps",
        "live",
        "waiting",
        "t_start",
        "t_end",
        "sm",
        "load_sectors",
        "store_sectors",
    )

    def __init__(self, index: int, sm: SM, t_start: float) -> None:
        self.index = index
        self.warps: list[Warp] = []
        self.live = 0
        self.waiting: list[Warp] = []
        self.t_start = t_start
        self.t_end = INF
        self.sm = sm
        #: Global/local sectors its warps requested (loads, and stores and atomics).
        self.load_sectors = 0
        self.store_sectors = 0


class Warp:
    """One resident warp: its instruction stream, position, scoreboard and readiness.

    Position, readiness and scoreboard live in the SM's :class:`~simgpu.sim.issue_core.
    IssueState` (slot :attr:`slot`), where the compiled issue logic reads them; the properties
    below read and write them there."""

    __slots__ = (
        "gid",
        "block",
        "sub",
        "insts",
        "n",
        "st",
        "slot",
        "done",
        "age",
        "decode",
        "lanes",
        "exited",
        "agroup",
        "agroups",
        "await_n",
        "await_t",
        "await_async",
    )

    def __init__(
        self, gid: int, block: Block, sub: SubCore, insts: list[Instruction], age: int
    ) -> None:
        self.gid = gid
        self.block = block
        self.sub = sub
        self.insts = insts
        self.n = len(insts)
        self.st: IssueState = sub.sm.state
        #: Slot in the SM's issue state (-1 until the warp is admitted, and after it leaves).
        self.slot = -1
        self.done = self.n == 0
        self.age = age
        self.decode: Decoder = sub.sm.decode
        #: Lanes the warp runs (every lane active in some instruction of its stream; found at
        #: its first EXIT) and lanes already retired by an EXIT.
        self.lanes = -1
        self.exited = 0
        #: Asynchronous copies (cp.async, TMA): the open group ([lines pending, latest
        #: completion, waiting warp]) and the committed ones, oldest first.
        self.agroup: list[Any] | None = None
        self.agroups: list[list[Any]] = []
        #: While blocked on copy groups: how many are still undecided, and the latest completion.
        self.await_n = 0
        self.await_t = 0.0
        #: Blocked on copy groups (not on a barrier).
        self.await_async = False

    # -- the state the compiled issue logic shares ------------------------------------------
    @property
    def ready(self) -> float:
        """Cycle the next instruction can issue (operands ready; INF while blocked), as the
        sub-core last computed it (after :meth:`refresh`, its next pick recomputes it)."""
        return float(self.st.WF[self.slot, core.F_READY])

    @ready.setter
    def ready(self, v: float) -> None:
        self.st.WF[self.slot, core.F_READY] = v

    @property
    def blocked(self) -> bool:
        """Waiting at a barrier or on copy groups."""
        return bool(self.st.WI[self.slot, core.W_BLOCKED])

    @blocked.setter
    def blocked(self, v: bool) -> None:
        self.st.WI[self.slot, core.W_BLOCKED] = v

    def await_memory(self, regs: Any) -> None:
        """Registers ``regs`` wait on a load (written when it completes)."""
        row = self.st.WF[self.slot]
        for r in regs:
            row[core.F_REG + r] = INF
            row[core.F_MEM + r] = 1.0

    def written(self, regs: Any, t: float) -> None:
        """Registers ``regs`` are written at cycle ``t`` (a load's data, a control result)."""
        row = self.st.WF[self.slot]
        for r in regs:
            row[core.F_REG + r] = t

    def retire_lanes(self, mask: int) -> bool:
        """An EXIT retires the lanes of its active ``mask``; True once every lane of the warp
        has left (an EXIT of a diverged branch retires some lanes, and the rest run on)."""
        if self.lanes < 0:
            lanes = 0
            for inst in self.insts:
                lanes |= inst.mask
            self.lanes = lanes
        self.exited |= mask & self.lanes
        return self.exited == self.lanes

    def refresh(self, t_min: float) -> None:
        """Have :attr:`ready` recomputed for the next instruction from ``t_min`` on (scoreboard:
        RAW and WAW), by :func:`~simgpu.sim.issue_core.refresh` before the sub-core next picks
        a warp (only it reads :attr:`ready`)."""
        st = self.st
        st.WI[self.slot, core.W_DIRTY] = 1
        st.WF[self.slot, core.F_TMIN] = t_min


class Decoded:
    """What the issue logic needs to know about one instruction, computed once (not its
    addresses: instructions of global memory that differ only in them share one)."""

    __slots__ = (
        "kind",
        "unit",
        "regs",
        "src",
        "dst",
        "lat",
        "ii",
        "flops",
        "sync",
        "op",
        "waves",
        "rf",
        "copy",
        "count",
        "rec",
    )

    def __init__(
        self,
        inst: Instruction,
        kind: int,
        unit: int,
        lat: float,
        ii: float,
        flops: int,
        sync: bool,
        waves: int,
        rf: bool = True,
        copy: int = COPY_NONE,
        count: int = 0,
    ) -> None:
        #: K_ALU, K_SHARED, K_GLOBAL, K_BAR, K_EXIT or K_CTRL.
        self.kind = kind
        #: Functional unit (index into :data:`UNITS`).
        self.unit = unit
        #: Sources then destinations (the scoreboard checks both: RAW and WAW).
        self.regs = inst.src + inst.dst
        self.src = inst.src
        self.dst = inst.dst
        #: Latency (issue to dependent issue) and initiation interval, cycles (ALU, control).
        self.lat = lat
        self.ii = ii
        #: FLOPs of the whole warp instruction.
        self.flops = flops
        #: Must line up with the global clock before issuing (global memory, barrier, exit).
        self.sync = sync
        #: Opcode class.
        self.op = inst.op
        #: Shared-memory wavefronts (shared loads and stores).
        self.waves = waves
        #: Reads its sources through the register banks (False for a tensor-core instruction
        #: timed by a device-file figure: the microbenchmark's interval includes its operand
        #: reads).
        self.rf = rf
        #: Asynchronous copy kind (COPY_NONE, COPY_ASYNC, COPY_BULK).
        self.copy = copy
        #: DEPBAR.LE: how many of the newest copy groups may still be in flight.
        self.count = count
        #: Its row in the decoder's :class:`~simgpu.sim.issue_core.DecodeTable`.
        self.rec = -1


class Decoder:
    """The per-instruction facts the issue logic needs (kind, unit, timing, FLOPs, shared-memory
    wavefronts), computed once per distinct :class:`Instruction` object and shared by all SMs of
    a replay. Generated traces share their ALU and shared-memory instructions between warps and
    blocks, so those are decoded once per kernel; global-memory instructions (new for each warp,
    with addresses of their own) are decoded once per opcode, space and registers, since their
    decoding does not depend on the addresses. Each decoded instruction has a row in
    :attr:`table`, the compiled issue logic's view."""

    #: Entries kept before the memo is cleared (bounds memory on traces read from files, whose
    #: instructions are all distinct objects).
    MAX_ENTRIES = 1 << 17

    def __init__(self, cfg: SMConfig) -> None:
        self.cfg = cfg
        #: Decoded instructions by ``id`` (with the instruction, so that its id is not reused
        #: while the entry lives), and their records (:attr:`Decoded.rec`).
        self._memo: dict[int, tuple[Instruction, Decoded]] = {}
        self._recs: dict[int, int] = {}
        #: Decoded global-memory instructions by (op, space, opcode, sources, destinations).
        self._global: dict[tuple[Any, ...], Decoded] = {}
        #: The line requests of listed global accesses by ``id`` (with the instruction).
        self._lines: dict[int, tuple[Instruction, list[tuple[int, int]]]] = {}
        #: The records the compiled issue logic reads (:attr:`Decoded.rec` indexes them).
        self.table = DecodeTable()

    def lines(self, inst: Instruction) -> list[tuple[int, int]]:
        """The (line, sector mask) requests of a global access whose lanes' addresses are listed
        (:func:`~simgpu.arch.coalesce.coalesce`), computed once per instruction object: warps
        that make the same listed access share one (``Asm.mem``; a naive SGEMM's loads, 94% of
        them at 512^3). Callers must not change the list."""
        hit = self._lines.get(id(inst))
        if hit is not None:
            return hit[1]
        cfg = self.cfg
        reqs = coalesce(inst.addrs or (), inst.width, cfg.line_bytes, cfg.sector_bytes)
        if len(self._lines) >= self.MAX_ENTRIES:
            self._lines.clear()
        self._lines[id(inst)] = (inst, reqs)
        return reqs

    def __call__(self, inst: Instruction) -> Decoded:
        hit = self._memo.get(id(inst))
        if hit is not None:
            return hit[1]
        op = inst.op
        if op in _MEM_OPS and inst.space != "shared":
            key = (op, inst.space, inst.opcode, inst.src, inst.dst)
            d = self._global.get(key)
            if d is None:
                if len(self._global) >= self.MAX_ENTRIES:
                    self._global.clear()
                d = self._global[key] = self._decode(inst)
            return d
        d = self._decode(inst)
        memo = self._memo
        if len(memo) >= self.MAX_ENTRIES:
            memo.clear()
            self._recs.clear()
        memo[id(inst)] = (inst, d)
        self._recs[id(inst)] = d.rec
        return d

    def codes(self, insts: list[Instruction]) -> np.ndarray:
        """The records of a warp's instruction stream (:attr:`Decoded.rec`), in order."""
        recs = list(map(self._recs.get, map(id, insts), repeat(-1)))
        if -1 in recs:
            for i, r in enumerate(recs):
                if r < 0:  # not decoded yet, or global memory (not kept by id)
                    recs[i] = self(insts[i]).rec
        return np.array(recs, np.int32)

    def _decode(self, inst: Instruction) -> Decoded:
        cfg = self.cfg
        op = inst.op
        timings = cfg.timings
        tm: UnitTiming | None = None
        waves = 0
        rf = True
        copy = COPY_NONE
        count = 0
        if op in _ALU_OPS:
            kind = K_ALU
            tm = timings[op]
            if op == "tensor" and cfg.tensor:
                own = cfg.tensor.get(tensor_key(inst.opcode))
                if own is not None:
                    tm = own
                    rf = False
        elif op in _MEM_OPS:
            kind = K_SHARED if inst.space == "shared" else K_GLOBAL
            if kind == K_GLOBAL:
                base = inst.opcode.split(".", 1)[0]
                if base == "LDGSTS":
                    copy = COPY_ASYNC
                elif base == "UTMALDG":
                    copy = COPY_BULK
            if kind == K_SHARED:
                lanes = inst.mask.bit_count()
                if inst.addrs is None:
                    waves = shared_wavefronts_affine(
                        inst.base,
                        inst.stride,
                        lanes,
                        inst.width,
                        cfg.shared_banks,
                        cfg.shared_bank_bytes,
                    )
                else:
                    waves = shared_wavefronts(
                        inst.addrs, inst.width, cfg.shared_banks, cfg.shared_bank_bytes
                    )
                if op == "ld" and inst.opcode.startswith("LDS"):
                    waves = max(waves, _return_cycles(inst, cfg.shared_bank_bytes))
        elif op == "bar":
            kind = K_BAR
        elif inst.opcode == "LDGDEPBAR":
            kind = K_COMMIT
        elif inst.opcode.startswith("DEPBAR.LE.SB0."):
            # cp.async.wait_group N / the wait on a TMA's transactions: the N of
            # ``DEPBAR.LE SB0, N`` is the opcode's last modifier (a trace has no immediates)
            kind = K_WAIT
            last = inst.opcode.rsplit(".", 1)[1]
            count = int(last) if last.isdigit() else 0
        elif op == "exit":
            kind = K_EXIT
        else:
            kind = K_CTRL
            tm = timings.get(op) or timings["misc"]
        flops = 0
        if kind == K_ALU:
            fl = _FLOPS.get(inst.opcode)
            if fl is None:
                fl = _flops_per_lane(inst.opcode)
            flops = fl * inst.mask.bit_count()
        d = Decoded(
            inst,
            kind,
            _CLASS_UNIT[op],
            tm.latency if tm is not None else 0.0,
            tm.interval if tm is not None else 0.0,
            flops,
            # global memory, barriers and exits line up with the global clock to reach the
            # memory system and the block's other warps in time order; shared-memory accesses
            # and shuffles book the SM-wide LD/ST unit, which the SM's one scheduling loop
            # books in time order over its sub-cores (issue_core.step) without the clock
            op in _SYNC_OPS and inst.space != "shared",
            waves,
            rf,
            copy,
            count,
        )
        d.rec = self.table.record(d.kind, d.unit, d.op, inst.src, inst.dst, d.lat, d.ii, d.flops,
                                  d.sync, d.waves, d.rf)
        return d


class SubCore:
    """One SM sub-core (processing block): warp scheduler, register file, functional units.

    Its scheduler's state (the order of its warps, its clock and mode, unit timings, stall and
    issue counters, the register-file cache) is row :attr:`index` of the SM's
    :class:`~simgpu.sim.issue_core.IssueState`; :func:`simgpu.sim.issue_core.step` picks and
    issues for every sub-core of the SM, in time order (:meth:`SM.run`)."""

    def __init__(self, sm: SM, index: int) -> None:
        self.sm = sm
        self.index = index
        self.warps: list[Warp] = []
        #: The stall reason (index) of the sleep it is in (``M_ASLEEP``, ``M_EMPTY``).
        self.sleep_reason = 0

    @property
    def stalls(self) -> dict[str, float]:
        """Cycles not issued, per reason (:data:`STALL_REASONS`; ``issued`` is kept apart)."""
        row = self.sm.state.SF[self.index, core.SF_STALL:]
        return {k: float(v) for k, v in zip(STALL_REASONS, row, strict=True)}

    @property
    def issued(self) -> int:
        return int(self.sm.state.SI[self.index, core.SI_ISSUED])

    @property
    def counts(self) -> dict[str, int]:
        """Issued instructions per opcode class (those issued at least once)."""
        row = self.sm.state.counts(self.index)
        return {op: int(row[i]) for op, i in OP_INDEX.items() if row[i]}

    # -- sleeping and waking ----------------------------------------------------------------------
    def sleep(self, mode: int, reason: str, t0: float) -> None:
        """Every warp waits (``M_ASLEEP``) or there is none (``M_EMPTY``), from cycle ``t0``:
        the cycles until :meth:`notify` are booked to ``reason``."""
        st = self.sm.state
        st.SI[self.index, core.SI_MODE] = mode
        st.SF[self.index, core.SF_T0] = t0
        self.sleep_reason = STALL_REASONS.index(reason)

    def notify(self) -> None:
        """A warp may have become ready (or a block arrived): wake the sub-core if it sleeps,
        and the SM's scheduling loop if it waits."""
        sm = self.sm
        st = sm.state
        i = self.index
        mode = st.SI[i, core.SI_MODE]
        if mode == core.M_ASLEEP or mode == core.M_EMPTY:
            now = sm.env.now
            dt = now - st.SF[i, core.SF_T0]
            if dt > 0:
                st.SF[i, core.SF_STALL + self.sleep_reason] += dt
            if now > st.SF[i, core.SF_T]:
                st.SF[i, core.SF_T] = now
            st.SI[i, core.SI_MODE] = core.M_AWAKE
        ev = sm.wake
        if ev is not None and not ev.triggered:
            ev.succeed()

    def sleep_reason_now(self) -> str:
        """Why every warp waits: every warp blocked, some on copy groups (cp.async, TMA) or at
        a barrier that a warp of their block waiting on its copies holds (the consumers of a
        tile its producer warp is fetching): the copies; every warp at a barrier: the barrier;
        else memory. (Decided before sleeping: a barrier's release unblocks the warps before
        the sub-core runs again.)"""
        warps = self.warps
        if all(w.blocked for w in warps):
            for w in warps:
                if w.await_async or any(x.await_async for x in w.block.warps):
                    return "async_copy"
            return "barrier"
        return "memory"

    def issue(self, w: Warp, d: Decoded, inst: Instruction, ti: float, pc: int) -> float:
        """Issue ``inst`` of ``w`` (decoded: ``d``) at cycle ``ti`` (counted, and the warp moved
        on to ``pc``, by :func:`~simgpu.sim.issue_core.step`); returns the sub-core's next free
        cycle. ALU, shared-memory and control instructions, the common ones, are issued by
        ``step``; this handles the rest (global memory, barriers, copy groups, exits)."""
        sm = self.sm
        kind = d.kind
        nxt = ti + 1.0
        if kind == K_GLOBAL:
            sm.global_access(w, inst, ti, d.copy)
            if pc >= w.n:
                sm.exit(w, ti)
                return nxt
            w.refresh(nxt)
            return nxt
        if kind == K_BAR:
            sm.barrier(w, ti)
            return nxt
        if kind == K_COMMIT:
            # cp.async.commit_group: the open group joins the committed ones (an empty group
            # too, as CUTLASS commits one per mainloop trip)
            w.agroups.append(w.agroup or [0, 0.0, None])
            w.agroup = None
        elif kind == K_WAIT:
            sm.await_groups(w, d.count, nxt)
            if w.blocked:
                return nxt
        if pc >= w.n or (kind == K_EXIT and w.retire_lanes(inst.mask)):
            # A warp ends at the end of its stream, or at the EXIT that retires its last lanes;
            # an EXIT of some lanes (a diverged branch) is a control instruction.
            sm.exit(w, ti)
            return nxt
        # an EXIT of some lanes, a commit: on the control path (as branches, which
        # issue_core.issue issues)
        w.written(d.dst, ti + d.lat)
        w.refresh(nxt)
        return nxt


#: FLOPs per active lane by opcode (FMA = 2); HMMA.16816 = 16*8*16*2 per warp / 32 lanes.
_FLOPS: dict[str, int] = {}
_FLOPS_BASE = {
    "FFMA": 2,
    "FADD": 1,
    "FMUL": 1,
    "HFMA2": 4,
    "HADD2": 2,
    "HMUL2": 2,
    "DFMA": 2,
    "DADD": 1,
    "DMUL": 1,
    "HMMA": 128,
}


def _flops_per_lane(opcode: str) -> int:
    shaped = mma_flops(opcode)
    fl = shaped // 32 if shaped else _FLOPS_BASE.get(opcode.split(".", 1)[0], 0)
    _FLOPS[opcode] = fl
    return fl


def _return_cycles(inst: Instruction, word_bytes: int) -> int:
    """Cycles a shared load needs to return its data: L1 and shared memory return 128 bytes,
    one 32-bit register per lane, per cycle, so a wide load takes one cycle per register it
    writes in each lane (LDS.128: 4), or half that when every lane's address equals that of
    lane n^1, or of lane n^2, in all 32 lanes (the hardware then packs two lanes' registers in
    one return). Source: NVIDIA developer forums, "Unexpected shared memory bank conflict"
    (topic 77228, compute capability 7.0-7.5: LDS.128 makes 4 requests per instruction, 2 with
    such pairs); assumption: the same on Ampere and Hopper, whose L1 returns the same 128 B per
    cycle (Luo et al., arXiv:2402.13499v1 Table V: 124-126 B/clk/SM on GH100)."""
    regs = inst.width // word_bytes
    if regs <= 1:
        return 1
    a = inst.lane_addresses()
    if len(a) == 32 and (all(a[n] == a[n ^ 1] for n in range(32))
                         or all(a[n] == a[n ^ 2] for n in range(32))):
        return max(1, regs // 2)
    return regs


_ALU_OPS = frozenset({"fp32", "fp16", "fp64", "int", "sfu", "tensor", "shfl"})
_MEM_OPS = frozenset({"ld", "st", "atom"})
_SYNC_OPS = frozenset({"ld", "st", "atom", "bar", "exit"})


class SM:
    """One streaming multiprocessor: sub-cores, resident blocks, the LD/ST unit."""

    def __init__(
        self,
        env: Any,
        index: int,
        cfg: SMConfig,
        system: Any,
        request_cls: Callable[..., Any],
        on_block_done: Callable[[SM, Block], None],
        decoder: Decoder | None = None,
    ) -> None:
        self.env = env
        self.index = index
        self.cfg = cfg
        self.system = system
        self.request_cls = request_cls
        self.on_block_done = on_block_done
        #: Decodes instructions for the issue logic (one per replay, shared by its SMs).
        self.decode = decoder if decoder is not None else Decoder(cfg)
        #: The issue logic's arrays (warps, sub-cores, the LD/ST unit), and the warp in each
        #: of its slots.
        slots = rfc_slots(cfg.rf_banks, cfg.rf_ports, cfg.rf_cache_entries)
        self.state = IssueState(cfg.sub_cores, {
            core.C_GTO: cfg.scheduler == "gto",
            core.C_BANKS_ON: cfg.model_register_banks,
            core.C_SHARED_LAT: cfg.shared_latency,
            core.C_RUN_AHEAD: RUN_AHEAD_CYCLES,
            core.C_RF_BANKS: cfg.rf_banks,
            core.C_RF_PORTS: cfg.rf_ports,
            core.C_RF_SLOTS: slots,
        }, cfg.rf_banks * slots)
        self.warp_in: dict[int, Warp] = {}
        self.subs = [SubCore(self, i) for i in range(cfg.sub_cores)]
        self.blocks: list[Block] = []
        self.no_more_blocks = False
        self.load_sectors_by_level: dict[str, int] = {}
        self.store_sectors_by_level: dict[str, int] = {}
        self.outstanding = 0
        self.last_mem_done = 0.0
        self._age = 0
        self._warp_slot = 0
        #: The event the scheduling loop sleeps on (:meth:`SubCore.notify` fires it).
        self.wake: Any = None
        self.state.SF[:, core.SF_T] = float(env.now)
        self.proc = env.process(self.run())

    # -- blocks ------------------------------------------------------------------------------
    def add_block(self, index: int, warps: list[list[Instruction]], t: float) -> Block:
        blk = Block(index, self, t)
        ns = len(self.subs)
        st = self.state
        for insts in warps:
            sub = self.subs[self._warp_slot % ns]
            self._warp_slot += 1
            w = Warp(self.index * 100_000 + self._age, blk, sub, insts, self._age)
            self._age += 1
            blk.warps.append(w)
            if w.done:
                continue
            blk.live += 1
            sub.warps.append(w)
            w.slot = st.add_warp(sub.index, self.decode.codes(insts), w.gid, t,
                                 _CLASS_UNIT[insts[0].op])
            self.warp_in[w.slot] = w
            w.refresh(t)
        self.blocks.append(blk)
        for s in self.subs:
            s.notify()
        if blk.live == 0:
            blk.t_end = t
            self.blocks.remove(blk)
            self.on_block_done(self, blk)
        return blk

    def finish(self) -> None:
        """No more blocks will come: let idle sub-cores end."""
        self.no_more_blocks = True
        for s in self.subs:
            s.notify()

    # -- the scheduling loop ---------------------------------------------------------------------
    def _sleep(self, delay: float) -> Any:
        """An event that fires after ``delay`` cycles or at the first :meth:`SubCore.notify`."""
        env = self.env
        ev = env.event()
        self.wake = ev
        if delay < INF:
            to = env.timeout(delay)

            def fire(_e: Any, ev: Any = ev) -> None:
                if not ev.triggered:
                    ev.succeed()

            to.callbacks.append(fire)
        return ev

    def run(self) -> Any:
        """SimPy process: issue the sub-cores' instructions until the SM has no more work.

        :func:`~simgpu.sim.issue_core.step` picks warps and issues their ALU and shared-memory
        instructions, the sub-cores in time order; it returns here to yield to SimPy (an issue
        ahead of the clock: sleep until then or until a completion wakes a sub-core), for the
        instructions Python issues (:meth:`SubCore.issue`), and when a sub-core falls asleep."""
        env = self.env
        st = self.state
        tab = self.decode.table
        step: Callable[..., tuple[int, int, int, float]] = core.step
        subs = self.subs
        arrays: tuple[Any, ...] = ()
        sv = tv = -1  # the versions of the arrays in ``arrays``
        wait, other, leave, no_cand, no_warps = (
            core.R_WAIT, core.R_OTHER, core.R_EXIT, core.R_NO_CAND, core.R_NO_WARPS)
        SF_T = core.SF_T
        while True:
            if st.version != sv or tab.version != tv:
                sv, tv = st.version, tab.version
                arrays = st.arrays(tab)
            # (times as floats: one compiled signature)
            code, s, w_slot, ti = step(*arrays, float(env.now))
            if code == other:
                w = self.warp_in[w_slot]
                pc = int(st.WI[w_slot, core.W_PC])  # (moved on past the instruction)
                inst = w.insts[pc - 1]
                st.SF[s, SF_T] = subs[s].issue(w, w.decode(inst), inst, ti, pc)
            elif code == wait:
                # until the next issue, or until a completion wakes a sub-core: it may have
                # something to issue earlier
                yield self._sleep(ti - env.now)
            elif code == leave:
                self.exit(self.warp_in[w_slot], ti)
            elif code == no_cand:
                sub = subs[s]
                sub.sleep(core.M_ASLEEP, sub.sleep_reason_now(), max(st.SF[s, SF_T], env.now))
            elif code == no_warps:
                if self.no_more_blocks:
                    st.SI[s, core.SI_MODE] = core.M_DONE
                else:
                    subs[s].sleep(core.M_EMPTY, "no_warps", env.now)
            else:  # R_IDLE: every sub-core sleeps, or is done
                if (st.SI[:, core.SI_MODE] == core.M_DONE).all():
                    return
                yield self._sleep(INF)

    # -- LD/ST unit ------------------------------------------------------------------------------
    def lsu_claim(self, t: float, cycles: float) -> float:
        """Occupy the SM's LD/ST data path for ``cycles`` from ``t``; returns the start cycle."""
        return self.state.lsu_claim(t, cycles)

    @property
    def flops_count(self) -> float:
        """FLOPs issued."""
        return float(self.state.MF[core.MF_FLOPS])

    @property
    def shared_wavefronts(self) -> int:
        """Shared-memory wavefronts of the shared loads and stores issued."""
        return int(self.state.MF[core.MF_WAVES])

    def global_access(
        self, w: Warp, inst: Instruction, ti: float, copy: int = COPY_NONE
    ) -> None:
        """Send a warp's global access to the memory system. An asynchronous copy into shared
        memory (``copy``: cp.async or a TMA bulk copy) writes no register: its lines join the
        warp's open copy group, which ``DEPBAR.LE SB0, N`` waits on (:meth:`await_groups`)."""
        cfg = self.cfg
        if copy == COPY_BULK:
            # TMA: each active lane names one line-sized segment of the tile (a row of 128
            # bytes, which need not be line-aligned); the TMA unit moves it, not the LD/ST unit
            # (assumption: the TMA unit's own rate is not published; the copy's bytes load the
            # L2 and DRAM models as any load's). Rows need not be 128-byte aligned: a tensor
            # map's global address and strides need only be multiples of 16 B (CUDA Driver
            # API, cuTensorMapEncodeTiled), so a row of a K = 2000 fp16 operand (4,000 B) spans
            # two lines. Rule (assumption; NVIDIA publishes no TMA request format): the TMA
            # unit fetches the 32-byte L2 sectors the box covers (the L2 is sectored, 32 B:
            # Accel-Sim SM90_H100 config, dl2 S), so its requests are marked ``bulk`` and an L2
            # slice charges each its sectors' bytes, not the line-sized request slot of the
            # LD/ST unit's requests (docs/memory-system.md: that slot was checked against
            # one-sector LD/ST stores only). A row split 96 + 32 B then costs what an aligned
            # one does, one 16 B off 5 sectors for 4.
            reqs = coalesce(inst.lane_addresses(), cfg.line_bytes, cfg.line_bytes,
                            cfg.sector_bytes)
        elif inst.addrs is None:
            reqs = coalesce_affine(
                inst.base, inst.stride, inst.mask.bit_count(), inst.width, cfg.line_bytes,
                cfg.sector_bytes,
            )
        else:
            reqs = self.decode.lines(inst)
        if not reqs:
            return
        nsec = 0
        for _, m in reqs:
            nsec += m.bit_count()
        if copy != COPY_BULK:
            self.lsu_claim(ti, max(1.0, nsec * cfg.sector_bytes / cfg.lsu_bytes_per_cycle))
        group: list[Any] | None = None
        if copy != COPY_NONE:
            group = w.agroup
            if group is None:
                group = w.agroup = [0, 0.0, None]
            group[0] += len(reqs)
        write = inst.op == "st" or inst.op == "atom"
        if write:
            w.block.store_sectors += nsec
        else:
            w.block.load_sectors += nsec
        waits = inst.op != "st" and bool(inst.dst) and group is None
        space = "local" if inst.space == "local" else "global"
        # cp.async.cg (LDGSTS.E.BYPASS) and TMA copies bypass the L1
        cache_op = "cg" if (inst.op == "atom" or ".CG" in inst.opcode or inst.op == "st"
                            or ".BYPASS" in inst.opcode or copy == COPY_BULK) else "ca"
        env = self.env
        now = env.now
        state = [len(reqs)]
        if waits:
            w.await_memory(inst.dst)
        sub = w.sub
        dst = inst.dst
        counts = self.store_sectors_by_level if write else self.load_sectors_by_level
        system = self.system
        submit = getattr(system, "submit", None)
        bulk = copy == COPY_BULK
        if submit is None:  # a memory system with only access(): an event per request
            self._access_each(reqs, w, dst, waits, counts, write, space, cache_op, group, bulk)
            return
        latest = [0.0]

        def wake(_ev: Any) -> None:
            if not w.done:  # (a warp may end before a load it never reads returns)
                t = env.now
                w.written(dst, t)
                w.refresh(t)
            sub.notify()

        def settle(n: int, nsec: int, lvl: str, t: float) -> None:
            # the memory system has decided when ``n`` lines complete (maybe ahead of time),
            # the latest at ``t``: count them; once every line is decided, one event wakes the
            # warp at the latest
            counts[lvl] = counts.get(lvl, 0) + nsec
            if t > latest[0]:
                latest[0] = t
            if t > self.last_mem_done:
                self.last_mem_done = t
            self.outstanding -= n
            state[0] -= n
            if group is not None:
                group[0] -= n
                if t > group[1]:
                    group[1] = t
                if group[0] == 0 and group[2] is not None:
                    self._group_done(group)
            if state[0] == 0 and waits:
                t_wake = latest[0]
                now = env.now
                if inline[0]:
                    # decided as the warp issues: its registers hold the time (no event)
                    w.written(dst, t_wake if t_wake > now else now)
                else:
                    env.timeout(t_wake - now if t_wake > now else 0.0).callbacks.append(wake)

        def known(req: Any) -> None:
            settle(1, req.sectors.bit_count(), req.served_by or "?", req.t_done)

        self.outstanding += len(reqs)
        # a warp's loads or stores in one call where the memory system takes them so
        # (MemorySystem, unless a recording wraps its requests: timeline.trace_requests)
        many = None
        if self.request_cls is MemRequest and not (write and bulk):
            many = getattr(system, "store_many" if write else "load_many", None)
        inline = [True]  # settle() called within this call
        if many is not None:
            lines, masks = [line for line, _ in reqs], [m for _, m in reqs]
            if write:
                many(self.index, lines, masks, cache_op, settle)
            else:
                many(self.index, lines, masks, cache_op, settle, bulk)
        else:
            for req in self._requests(reqs, write, space, cache_op, now, bulk):
                submit(req, known)
        inline[0] = False

    def _requests(
        self, reqs: list[tuple[int, int]], write: bool, space: str, cache_op: str, now: float,
        bulk: bool = False,
    ) -> list[Any]:
        """One memory request per (line, sector mask) of a warp's access; ``bulk``: a TMA
        copy's (:attr:`simgpu.sim.request.MemRequest.bulk`)."""
        rq = self.request_cls
        extra = {"bulk": True} if bulk else {}  # (a request class need not know TMA copies)
        return [
            rq(sm=self.index, line_addr=line, sectors=sectors, write=write, space=space,
               cache_op=cache_op, t_issue=now, t_done=None, served_by=None, **extra)
            for line, sectors in reqs
        ]

    def _access_each(
        self,
        reqs: list[tuple[int, int]],
        w: Warp,
        dst: Any,
        waits: bool,
        counts: dict[str, int],
        write: bool,
        space: str,
        cache_op: str,
        group: list[Any] | None = None,
        bulk: bool = False,
    ) -> None:
        """The warp's lines through ``system.access``: one event per line, the warp woken by
        the last one."""
        env = self.env
        now = env.now
        sub = w.sub
        state = [len(reqs)]

        def done(ev: Any) -> None:
            req = ev.value
            lvl = req.served_by or "?"
            counts[lvl] = counts.get(lvl, 0) + req.sectors.bit_count()
            state[0] -= 1
            self.outstanding -= 1
            t = env.now
            if t > self.last_mem_done:
                self.last_mem_done = t
            if group is not None:
                group[0] -= 1
                if t > group[1]:
                    group[1] = t
                if group[0] == 0 and group[2] is not None:
                    self._group_done(group)
            if state[0] == 0 and waits:
                if not w.done:
                    w.written(dst, t)
                    w.refresh(t)
                sub.notify()

        for req in self._requests(reqs, write, space, cache_op, now, bulk):
            self.outstanding += 1
            self.system.access(req).callbacks.append(done)

    # -- asynchronous copy groups ------------------------------------------------------------------
    def await_groups(self, w: Warp, newest: int, t: float) -> None:
        """``DEPBAR.LE SB0, newest`` issued by ``w`` at ``t``: every committed copy group but the
        ``newest`` most recent must have landed. Blocks the warp until the last of them does
        (its completion time is known once every line of it is decided)."""
        groups = w.agroups
        k = len(groups) - newest
        if k <= 0:
            return
        old = groups[:k]
        del groups[:k]
        pending = 0
        latest = 0.0
        for g in old:
            if g[0] > 0:
                pending += 1
                g[2] = w
            elif g[1] > latest:
                latest = g[1]
        if pending == 0 and latest <= t:
            return
        w.blocked = True
        w.ready = INF
        w.await_async = True
        w.await_n = pending
        w.await_t = latest
        if pending == 0:
            self._wake_at(w, latest)

    def _group_done(self, g: list[Any]) -> None:
        """Every line of copy group ``g`` is decided; wake its waiting warp once its last
        awaited group is."""
        w: Warp = g[2]
        g[2] = None
        w.await_n -= 1
        if g[1] > w.await_t:
            w.await_t = g[1]
        if w.await_n == 0:
            self._wake_at(w, w.await_t)

    def _wake_at(self, w: Warp, t: float) -> None:
        env = self.env

        def wake(_ev: Any) -> None:
            w.blocked = False
            w.await_async = False
            w.refresh(env.now)
            w.sub.notify()

        env.timeout(t - env.now if t > env.now else 0.0).callbacks.append(wake)

    # -- barriers and exit ------------------------------------------------------------------------
    def barrier(self, w: Warp, ti: float) -> None:
        blk = w.block
        w.blocked = True
        w.ready = INF
        blk.waiting.append(w)
        if len(blk.waiting) >= blk.live:
            self._release(blk, ti + 1.0)

    def _release(self, blk: Block, t: float) -> None:
        # Wake the sub-cores in a fixed order (their index), never in the order of a set of
        # objects hashed by address: the order of their wake events at one cycle decides which
        # issues first, and a replay must give the same cycles every time it runs.
        woken = [False] * len(self.subs)
        for x in blk.waiting:
            x.blocked = False
            x.refresh(t)
            woken[x.sub.index] = True
        blk.waiting.clear()
        for s, wake in zip(self.subs, woken, strict=True):
            if wake:
                s.notify()

    def exit(self, w: Warp, ti: float) -> None:
        w.done = True
        w.sub.warps.remove(w)
        self.state.remove_warp(w.sub.index, w.slot)
        del self.warp_in[w.slot]
        w.slot = -1
        blk = w.block
        blk.live -= 1
        if blk.waiting and len(blk.waiting) >= blk.live:
            self._release(blk, ti + 1.0)
        if blk.live == 0:
            blk.t_end = ti + 1.0
            self.blocks.remove(blk)
            self.on_block_done(self, blk)

    @property
    def issued(self) -> int:
        return sum(s.issued for s in self.subs)

    @property
    def counts(self) -> dict[str, int]:
        """Issued instructions per opcode class, over the sub-cores."""
        out: dict[str, int] = {}
        for s in self.subs:
            for k, n in s.counts.items():
                out[k] = out.get(k, 0) + n
        return out
