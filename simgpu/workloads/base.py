"""What every workload shares: the launch, lazily generated traces, estimate and simulate.

A workload's :meth:`Workload.trace` returns a :class:`~simgpu.trace.GeneratedTrace` whose blocks
are built on demand, at the level of the SASS a CUDA compiler emits for the matching kernel in
``kernels/``: the global and shared loads and stores with every lane's address, the arithmetic
with its register dependences, the barriers, and the integer/branch overhead of each loop trip.
Instruction objects that do not depend on the block (ALU work, shared-memory accesses) are built
once and shared between warps and blocks, so generating a block costs little more than its
global-memory instructions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Self

from simgpu import catalogue
from simgpu.arch.occupancy import occupancy
from simgpu.errors import SimgpuError, ViewUnavailable
from simgpu.sim.gpuslice import default_slice, slice_spread
from simgpu.sim.replay import SamplingPlan, SimResult, simulate_trace
from simgpu.sim.system import build_system
from simgpu.trace.schema import (
    GeneratedTrace,
    Instruction,
    KernelLaunch,
    KernelTrace,
    check_launch,
    classify_opcode,
)

if TYPE_CHECKING:
    import pandas as pd

    from simgpu.devices.spec import DeviceSpec

__all__ = ["Workload", "Asm", "ArrayLayout", "FULL", "check_positive", "lanes_mask"]

FULL = 0xFFFFFFFF

#: The least spread a trip-sampled replay states for its extrapolation (a share of its time,
#: before the slice's own :data:`~simgpu.sim.gpuslice.SLICE_SPREAD`). assumption: the largest
#: error of trip sampling against full replays measured on h100-sxm, 6.0% (stream copy 128 MiB
#: at 4 and 8 trips; GEMMs at most 5.7%, tiled 512^3 tile 32; ``bench_sampling.py``,
#: docs/sm-model.md). The slope-difference estimate alone can state less than the error: a
#: 20-trip stream read on 4 SMs stated 2.7% and was 3.2% off.
TRIP_SPREAD = 0.06

#: Device allocations are 256-byte aligned (CUDA C++ Programming Guide, "Device Memory
#: Accesses": cudaMalloc returns addresses aligned to at least 256 bytes).
ALLOC_ALIGN = 256


class ArrayLayout:
    """Device addresses for a kernel's arrays, placed one after another, 256-byte aligned,
    starting at a base typical of CUDA's device heap."""

    def __init__(self, base: int = 0x7F00_0000_0000) -> None:
        self._next = base
        self.arrays: dict[str, tuple[int, int]] = {}

    def alloc(self, name: str, nbytes: int) -> int:
        addr = self._next
        self.arrays[name] = (addr, nbytes)
        self._next = addr + -(-max(nbytes, 1) // ALLOC_ALIGN) * ALLOC_ALIGN
        # Keep arrays in distinct 2 MiB pages, as the CUDA allocator does for large buffers.
        self._next = -(-self._next // (2 << 20)) * (2 << 20)
        return addr


class Asm:
    """Builds instructions; caches those that do not depend on addresses, and shares a memory
    instruction whose lanes' addresses are a list (not base + stride) with every warp that
    makes the same one, among the last :attr:`MAX_SHARED_LISTS` such instructions made."""

    #: Memory instructions with address lists :meth:`mem` keeps for sharing; it starts afresh
    #: past this many, so that a kernel whose lists never repeat (a gather) holds no more than
    #: its warps in flight do. Each list holds one Python integer per lane (about 1.3 kB for a
    #: warp): a naive SGEMM's warps read the same lines of A as every block of their grid row,
    #: and unshared, a full replay of its one-wave 512^3 grid grew to 17-18 GB (1.35 GB shared;
    #: docs/performance.md).
    MAX_SHARED_LISTS = 1 << 16

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], Instruction] = {}
        self._lists: dict[tuple[Any, ...], Instruction] = {}
        self._pc = 0

    def op(
        self, opcode: str, dst: Iterable[int] = (), src: Iterable[int] = (), mask: int = FULL
    ) -> Instruction:
        """A non-memory instruction (shared between warps)."""
        d, s = tuple(dst), tuple(src)
        key = (opcode, d, s, mask)
        inst = self._cache.get(key)
        if inst is None:
            self._pc += 16
            inst = Instruction(
                pc=self._pc, opcode=opcode, op=classify_opcode(opcode), dst=d, src=s, mask=mask
            )
            self._cache[key] = inst
        return inst

    def mem(
        self,
        opcode: str,
        space: str,
        width: int,
        addrs: list[int],
        dst: Iterable[int] = (),
        src: Iterable[int] = (),
        mask: int = FULL,
        cache: bool = False,
    ) -> Instruction:
        """A memory instruction for the active lanes' ``addrs`` (compressed to base+stride when
        affine). With ``cache`` it is shared between warps (shared-memory addresses)."""
        d, s = tuple(dst), tuple(src)
        key: tuple[Any, ...] | None = None
        if cache:
            key = (opcode, space, width, tuple(addrs), d, s, mask)
            inst = self._cache.get(key)
            if inst is not None:
                return inst
        n = len(addrs)
        base = addrs[0] if n else 0
        stride = addrs[1] - addrs[0] if n > 1 else 0
        if stride:  # (compared as lists: the same test as lane by lane, in C)
            affine = list(addrs) == list(range(base, base + n * stride, stride))
        else:
            affine = all(x == base for x in addrs)
        listed = None if affine else tuple(addrs)
        shared: tuple[Any, ...] | None = None  # the key of a list shared between warps
        if listed is not None and key is None:
            shared = (opcode, space, width, listed, d, s, mask)
            inst = self._lists.get(shared)
            if inst is not None:
                return inst
        inst = Instruction(
            pc=0,
            opcode=opcode,
            op=classify_opcode(opcode),
            dst=d,
            src=s,
            mask=mask,
            space=space,
            width=width,
            base=base,
            stride=stride if affine else 0,
            addrs=listed,
        )
        if key is not None:
            self._cache[key] = inst
        elif shared is not None:
            if len(self._lists) >= self.MAX_SHARED_LISTS:
                self._lists.clear()
            self._lists[shared] = inst
        return inst

    def affine(
        self,
        opcode: str,
        space: str,
        width: int,
        base: int,
        stride: int,
        dst: Iterable[int] = (),
        src: Iterable[int] = (),
        mask: int = FULL,
    ) -> Instruction:
        """A memory instruction whose active lanes sit at ``base + rank * stride``."""
        return Instruction(
            pc=0,
            opcode=opcode,
            op=classify_opcode(opcode),
            dst=tuple(dst),
            src=tuple(src),
            mask=mask,
            space=space,
            width=width,
            base=base,
            stride=stride,
        )


def lanes_mask(active: Iterable[bool]) -> int:
    """Bit mask of the lanes whose flag is true (bit i = lane i)."""
    flags = list(active)
    if all(flags):
        return (1 << len(flags)) - 1
    m = 0
    bit = 1
    for a in flags:
        if a:
            m |= bit
        bit <<= 1
    return m


@dataclass
class Workload:
    """Base class. Subclasses set :attr:`name` and :attr:`kernel` and implement :meth:`launch`,
    :meth:`make_block`, :attr:`flops`, :attr:`compulsory_bytes` and :meth:`estimate`; those a
    calibration table measures implement :meth:`row_key` and :meth:`from_row`.

    A workload is what the four views answer for (:mod:`simgpu.views.protocol`): :meth:`trace` and
    :meth:`simulate` for the simulated view, :meth:`estimate` for the analytical one,
    :meth:`features` for the learned one, :meth:`row_key` and :meth:`calibration_point` for the
    measured one. A method a workload cannot serve raises :class:`~simgpu.errors.ViewUnavailable`
    saying why.
    """

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def kernel(self) -> str:
        """The kernel's name in :mod:`simgpu.catalogue`."""
        raise NotImplementedError

    def entry(self) -> catalogue.Kernel:
        """The kernel's catalogue entry."""
        return catalogue.get(self.kernel)

    def launch(self) -> KernelLaunch:
        raise NotImplementedError

    def make_block(self, index: int) -> list[list[Instruction]]:
        raise NotImplementedError

    def idle_blocks(self, first: int | None = None) -> int:
        """Blocks of the launch (of its first ``first`` blocks) that exit at once, with no work
        (a swizzled GEMM grid's blocks past the last tile column): loop-trip sampling counts
        the waves of the others (:func:`simulate_trips`). None here."""
        return 0

    def trace(self) -> KernelTrace:
        """The kernel's warp-level trace, generated a block at a time (a launch CUDA would
        refuse is an error)."""
        launch = self.launch()
        check_launch(launch, f"{self.kernel} {_shape(self.params())}")
        return GeneratedTrace(launch, self.make_block)

    @property
    def footprint_bytes(self) -> float:
        """Device memory the kernel's arrays take (its compulsory bytes unless it says more)."""
        return self.compulsory_bytes

    def check_fits(self, spec: DeviceSpec) -> None:
        """A clear error when the kernel's arrays do not fit in the device's memory: no view
        can answer for a kernel the device cannot hold."""
        have = spec.dram.size_GiB * 2**30
        if self.footprint_bytes > have:
            raise SimgpuError(
                f"{self.kernel} {_shape(self.params())}: its arrays take"
                f" {self.footprint_bytes / 2**30:.4g} GiB; {spec.name} has"
                f" {spec.dram.size_GiB:g} GiB of device memory"
            )

    @property
    def flops(self) -> float:
        """Useful floating-point operations (an FMA counts 2)."""
        raise NotImplementedError

    @property
    def compulsory_bytes(self) -> float:
        """Bytes that must cross DRAM at least once (inputs read once, outputs written once)."""
        raise NotImplementedError

    def figures(self, time_s: float) -> dict[str, float]:
        """The figures a time implies for this workload (throughput in its own terms)."""
        out: dict[str, float] = {}
        if time_s > 0:
            if self.flops:
                out["tflops"] = self.flops / time_s / 1e12
            if self.compulsory_bytes:
                out["bandwidth_GBps"] = self.compulsory_bytes / time_s / 1e9
        return out

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        """The analytical model's answer (simgpu.analytical)."""
        raise NotImplementedError

    def features(self) -> dict[str, Any]:
        """The learned view's inputs: one row of the GEMM schema (simgpu/predict/SCHEMA.md)."""
        raise ViewUnavailable(
            f"the learned view predicts GEMMs; {self.kernel} is a {self.entry().kind} kernel"
        )

    def row_key(self) -> dict[str, Any]:
        """The columns and values that identify this workload's row in its calibration table
        (the catalogue entry's ``table``)."""
        raise ViewUnavailable(f"{self.kernel}: no calibration table measures it")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Workload:
        """The workload a row of its calibration table measured."""
        raise NotImplementedError

    def calibration_point(self) -> dict[str, Any]:
        """The point of its calibration benchmark that measures this workload live."""
        raise ViewUnavailable(
            f"live measurement of {self.kernel} alone is not offered; `simgpu calibrate`"
            f" measures the {self.entry().table} table"
        )

    def simulate(
        self, spec: DeviceSpec, *, sample: bool = True, warm_l2: bool = False, **kwargs: Any
    ) -> SimResult:
        """Replay :meth:`trace` on the SM and memory model (sampled when large).

        ``warm_l2``: start with the L2 as back-to-back launches leave it
        (:meth:`warm_l2_kwargs`) instead of a cold L2.

        A workload with a main loop (:attr:`loop_samples` set) of more trips than its two
        sampled replays run together is sampled in trips as well (:func:`simulate_trips`, on
        the slice of the GPU sampling picks), unless it starts from a cold L2 that its stores
        would fill: the first trips would then store into it for free.
        """

        w = self.for_device(spec)
        if warm_l2:
            kwargs = w.warm_l2_kwargs(spec, kwargs)
        samples = w.loop_samples
        if sample and samples is not None and w.samples_trips(spec, kwargs):
            if kwargs.get("sm_slice") is None:
                kwargs = {**kwargs, "sm_slice": default_slice(spec, w.launch().num_blocks)}
            return simulate_trips(w, spec, w.trips, w.with_trips, samples, **kwargs)
        return simulate_trace(w.trace(), spec, sample=sample, **kwargs)

    def samples_trips(self, spec: DeviceSpec, kwargs: Mapping[str, Any]) -> bool:
        """Whether a sampled replay (:meth:`simulate`, ``kwargs`` as :meth:`warm_l2_kwargs`
        leaves them) samples the main loop's trips: a loop of more trips than the two samples
        run together, unless the replay starts from a cold L2 that the kernel's stores would
        fill."""
        samples = self.loop_samples
        return (samples is not None and self.trips > samples[0] + samples[1]
                and ("system_factory" in kwargs or not self.outputs()
                     or self.touched_bytes() <= spec.l2.size_bytes))

    def replay_bytes(self, spec: DeviceSpec) -> float:
        """The global-memory bytes a sampled replay on ``spec`` moves (:meth:`simulate` from
        the L2 back-to-back calls leave, as ``simgpu validate`` replays), a measure of what it
        costs, by which ``validate`` orders a family's replays: the kernel's compulsory bytes
        times the share of it the replay covers (the first wave at two trip counts, where the
        loop is sampled; at most :attr:`SamplingPlan.max_waves` waves, where waves are; all of
        it otherwise), over the slice of the GPU it runs on. An estimate: wave sampling may stop
        before its last wave, and a replay costs more per byte from DRAM than from the L2, and
        more for a kernel that splits its accesses into more requests."""
        w = self.for_device(spec)
        launch = w.launch()
        blocks = launch.num_blocks
        occ = occupancy(spec, launch.threads_per_block, launch.regs_per_thread,
                        launch.shared_bytes)
        slots = occ.blocks_per_sm * spec.compute.sm_count
        samples = w.loop_samples
        if samples is not None and w.samples_trips(spec, w.warm_l2_kwargs(spec, {})):
            share = min(1.0, min(slots, blocks) / blocks * sum(samples) / w.trips)
        else:
            share = SamplingPlan().share(blocks, slots)
        return w.compulsory_bytes * share / default_slice(spec, blocks)

    #: trip counts a sampled replay cuts the main loop to, twice (:func:`simulate_trips`);
    #: None: the workload is not sampled in trips by :meth:`simulate`
    loop_samples: ClassVar[tuple[int, int] | None] = None

    @property
    def trips(self) -> float:
        """Trips of the main loop per thread (the mean, where threads differ), for
        :attr:`loop_samples`."""
        raise NotImplementedError

    def with_trips(self, trips: int) -> Self:
        """The same launch and arrays with the main loop cut to ``trips`` trips: a copy whose
        ``_trips_cut`` the workload's trace reads (each workload with a main loop sets it to
        None in its ``__post_init__``)."""
        clone = replace(self)
        clone._trips_cut = trips  # type: ignore[attr-defined]
        return clone

    def for_device(self, spec: DeviceSpec) -> Workload:
        """This workload with any launch settings left to the device filled in (itself here)."""
        return self

    def inputs(self) -> list[tuple[int, int]]:
        """The arrays the kernel only reads, as (device address, bytes); none by default."""
        return []

    def outputs(self) -> list[tuple[int, int]]:
        """The arrays the kernel writes, as (device address, bytes); none by default (the
        replay of inputs larger than the L2 then starts cold)."""
        return []

    def touched_bytes(self) -> int:
        """Bytes of the arrays the kernel touches, :meth:`inputs` and :meth:`outputs`
        together."""
        return sum(n for _, n in self.inputs() + self.outputs())

    def warm_l2_kwargs(
        self, spec: DeviceSpec, kwargs: dict[str, Any], every_partition: bool = False
    ) -> dict[str, Any]:
        """``kwargs`` plus a ``system_factory`` that preloads :meth:`inputs` into the L2, when
        they fit in it together and no factory was given; ``every_partition``: in every L2
        partition where they fit in one (:func:`warm_l2_factory`). A workload that names its
        :meth:`outputs` and touches more than the L2 holds, inputs and outputs together,
        starts with the L2 as the previous call leaves it (:func:`previous_call_factory`).
        Otherwise ``kwargs`` unchanged."""
        arrays, outputs = self.inputs(), self.outputs()
        if "system_factory" in kwargs or not (arrays or outputs):
            return kwargs
        total = sum(n for _, n in arrays)
        if outputs and self.touched_bytes() > spec.l2.size_bytes:
            return {**kwargs, "system_factory": previous_call_factory(
                arrays, outputs, kwargs.get("seed", 0))}
        if not arrays or total > spec.l2.size_bytes:
            return kwargs
        every = every_partition and total <= spec.l2.size_bytes / spec.l2.partitions
        return {**kwargs, "system_factory": warm_l2_factory(arrays, kwargs.get("seed", 0),
                                                             every_partition=every)}

    def params(self) -> dict[str, Any]:
        """The parameters as a flat dict (for tables)."""
        return {"workload": self.name, **asdict(self)}


def simulate_trips(
    w: Workload,
    spec: DeviceSpec,
    trips: float,
    cut: Callable[[int], Workload],
    trip_samples: tuple[int, int] = (2, 4),
    **kwargs: Any,
) -> SimResult:
    """Sampling in loop trips: the first wave of ``w`` replayed with its main loop cut to
    ``trip_samples`` trips (``cut(t)``: the same kernel, ``t`` trips per thread), the time
    extrapolated linearly to ``trips`` (fractional where threads run different counts: the
    mean) and over the launch's waves; counts likewise. The spread is what the slope from trip
    0 instead of ``t1`` gives (at least :data:`TRIP_SPREAD` of the time), and the partial last
    wave's rounding. ``kwargs`` go to :func:`simulate_trace` (never wave-sampled here: the
    replays are one wave each).
    """
    t1, t2 = trip_samples
    launch = w.launch()
    occ = occupancy(spec, launch.threads_per_block, launch.regs_per_thread, launch.shared_bytes)
    slots = occ.blocks_per_sm * spec.compute.sm_count
    wave_blocks = min(slots, launch.num_blocks)
    r1 = simulate_trace(
        cut(t1).trace(), spec, sample=False, max_blocks=wave_blocks, **kwargs
    )
    r2 = simulate_trace(
        cut(t2).trace(), spec, sample=False, max_blocks=wave_blocks, **kwargs
    )
    per_trip = (r2.cycles - r1.cycles) / (t2 - t1)
    wave = r2.cycles + per_trip * (trips - t2)
    # Waves: full ones plus the last partial wave, where each SM gets ceil(rem / SMs) of
    # its occupancy slots. Blocks that exit at once free their slot at once: where the replayed
    # wave has none of them, the waves are those of the blocks with work.
    n_sm = spec.compute.sm_count
    blocks = launch.num_blocks
    if launch.num_blocks > slots and not w.idle_blocks(wave_blocks):
        blocks -= w.idle_blocks()
    if blocks <= slots:
        full, rem, frac = 1, 0, 0.0  # the simulated wave is the whole grid
    else:
        full, rem = divmod(blocks, slots)
        frac = min(1.0, math.ceil(rem / n_sm) / occ.blocks_per_sm) if rem else 0.0
    n_waves = full + frac
    cycles = wave * n_waves
    # Spread: slope from trip 0 -> t1 instead of t1 -> t2 (at least TRIP_SPREAD), and the
    # partial-wave rounding.
    per_trip_alt = (r1.cycles - 0.0) / t1
    alt = (r1.cycles + per_trip_alt * (trips - t1)) * n_waves
    spread = max(abs(alt - cycles) / 2, TRIP_SPREAD * cycles) + abs(frac - rem / slots) * wave / 2
    spread += slice_spread(r2.sm_slice, cycles)
    scale_blocks = max(blocks, wave_blocks) / wave_blocks
    scale_trips = (trips - t1) / (t2 - t1)

    def scaled(a: float, b: float) -> float:
        return (a + (b - a) * scale_trips) * scale_blocks

    out = replace(
        r2,
        cycles=cycles,
        time_s=cycles / spec.compute.clock_hz,
        sampled=True,
        time_s_spread=spread / spec.compute.clock_hz,
        blocks_total=launch.num_blocks,
        blocks_simulated=r1.blocks_simulated + r2.blocks_simulated,
        waves=launch.num_blocks / slots,
        warp_instructions=scaled(r1.warp_instructions, r2.warp_instructions),
        instructions_simulated=r1.instructions_simulated + r2.instructions_simulated,
        flops=w.flops,
        bytes={
            lvl: {rw: scaled(r1.bytes[lvl][rw], r2.bytes[lvl][rw]) for rw in ("read", "write")}
            for lvl in r2.bytes
        },
        stalls={k: r1.stalls[k] + r2.stalls[k] for k in r2.stalls},
        op_counts={
            k: scaled(r1.op_counts.get(k, 0.0), r2.op_counts.get(k, 0.0)) for k in r2.op_counts
        },
        wall_s=r1.wall_s + r2.wall_s,
    )
    return out


def warm_l2_factory(
    arrays: list[tuple[int, int]], seed: int = 0, every_partition: bool = False
) -> Any:
    """A memory-system factory (``simulate_trace``'s ``system_factory``) that preloads whole
    lines of ``arrays`` ((address, bytes) pairs) into the L2, spread over the SMs so that every
    L2 partition is filled from its near side.

    ``every_partition``: every line in every L2 partition (each read once by an SM of each
    partition), the state that calls repeated back to back leave when SMs of every partition
    read every line: a far hit copies the line into the reader's near partition."""
    def make(env: Any, spec: DeviceSpec) -> Any:
        system = build_system(env, spec, rng=random.Random(seed))
        line = spec.l2.line_bytes
        n_sm = spec.compute.sm_count
        full = (1 << (line // spec.l2.sector_bytes)) - 1
        groups = [list(range(n_sm))]
        if every_partition:
            parts = system.partition_of
            groups = [[s for s in range(n_sm) if parts[s] == p] for p in sorted(set(parts))]
        pieces = []  # (SM, its share of an array's lines, dirty), in the order they are warmed
        for sms in groups:
            n = len(sms)
            for k, (base, nbytes) in enumerate(arrays):
                lines = range(base - base % line, base + nbytes, line)
                pieces += [(sms[(i + k) % n], lines[i::n], False) for i in range(n)]
        system.warm_many(pieces, full)
        return system

    def l2_bytes(spec: DeviceSpec) -> int:
        """Bytes the warm L2 holds (a copy per partition with ``every_partition``): a replay on
        a slice of the GPU keeps the whole L2's capacity when they exceed the slice's
        (simgpu.sim.replay.simulate_trace)."""
        total = sum(n for _, n in arrays)
        return total * (spec.l2.partitions if every_partition else 1)

    make.l2_bytes = l2_bytes  # type: ignore[attr-defined]
    return make


#: :func:`previous_call_factory` preloads each array's share in this many pieces, taking the
#: arrays in turn, so that the lines of every array are spread over the L2's recency order.
PRELOAD_PIECES = 8


def previous_call_factory(
    inputs: list[tuple[int, int]], outputs: list[tuple[int, int]], seed: int = 0
) -> Any:
    """A memory-system factory that starts the L2 as the previous call of a kernel leaves it
    when its arrays are larger than the L2 (calls timed back to back): full, with the
    ``outputs``' share of its lines dirty (their bytes over all the arrays' bytes), as written
    and not yet written back. The run then writes those back while it writes its own output,
    as every call but the first does; a cold L2 would take the first L2-full of its stores for
    free.

    The lines are the previous call's last ones, which the new call's early blocks do not touch
    (a streaming kernel's last lines are its arrays' tails; a transpose's last output lines are
    spread over the array). The preload gives them addresses of their own, just above the
    arrays, so that no line of the run finds one of them: only the state matters (full, the
    dirty share, in an interleaved recency order), and the run's DRAM writes are then exactly
    its own stores (:meth:`simgpu.sim.system.MemorySystem.warm_dirty_bytes`)."""
    def make(env: Any, spec: DeviceSpec) -> Any:
        system = build_system(env, spec, rng=random.Random(seed))
        line = spec.l2.line_bytes
        full = (1 << (line // spec.l2.sector_bytes)) - 1
        arrays = [(n, False) for _, n in inputs] + [(n, True) for _, n in outputs]
        total = sum(n for n, _ in arrays)
        addr = max(a + n for a, n in inputs + outputs)
        addr += -addr % line
        blocks = []
        for nbytes, dirty in arrays:
            count = spec.l2.size_bytes * nbytes // total // line
            lines = range(addr, addr + count * line, line)
            addr += count * line
            step = max(1, -(-count // PRELOAD_PIECES))
            blocks.append(([lines[i:i + step] for i in range(0, count, step)], dirty))
        n_sm = spec.compute.sm_count
        warm = []  # (SM, lines, dirty), in the order they are warmed
        for piece in range(PRELOAD_PIECES):
            for k, (pieces, dirty) in enumerate(blocks):
                if piece < len(pieces):  # every L2 partition filled from its near side
                    warm += [((i + k) % n_sm, pieces[piece][i::n_sm], dirty)
                             for i in range(n_sm)]
        system.warm_many(warm, full)
        return system

    return make


def _shape(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items() if k != "workload")


def check_positive(**values: int) -> None:
    """Raise a clear error unless every value is a positive integer."""
    for k, v in values.items():
        if not isinstance(v, int) or v < 1:
            raise SimgpuError(f"{k} = {v!r}: expected a positive integer")


Maker = Callable[[int], list[list[Instruction]]]
