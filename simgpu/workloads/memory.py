"""Memory-bound workloads matching ``kernels/``: pointer chase, STREAM, transpose, reduction, GEMV.

Each trace follows its CUDA source: the same launch shape the calibration runner uses
(``simgpu/calibrate``), the same per-thread loop, and every lane's address.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, replace
from itertools import islice
from typing import TYPE_CHECKING, Any

import simpy

from simgpu import analytical
from simgpu.arch.occupancy import occupancy
from simgpu.errors import SimgpuError, ViewUnavailable
from simgpu.sim.pcie import HostLink
from simgpu.sim.replay import SimResult, default_system, simulate_trace
from simgpu.sim.sources import WARM_FACTOR, cyclic_order
from simgpu.sim.sources import Stream as StreamSource
from simgpu.sim.system import build_system
from simgpu.trace.schema import Instruction, KernelLaunch
from simgpu.workloads.base import FULL, ArrayLayout, Asm, Workload, check_positive, lanes_mask

if TYPE_CHECKING:
    import pandas as pd

    from simgpu.devices.spec import DeviceSpec

__all__ = ["PointerChase", "Stream", "Transpose", "Reduction", "Gemv", "HostCopy", "STREAM_OPS"]

#: STREAM kernels: (global loads, stores, FP32 instructions per float4) per element.
STREAM_OPS = {
    "read": (1, 0, ("FADD",) * 4),
    "write": (0, 1, ()),
    "copy": (1, 1, ()),
    "scale": (1, 1, ("FMUL",) * 4),
    "triad": (2, 1, ("FFMA",) * 4),
}

#: Grid-stride trips a sampled stream or reduction replays (twice, then extrapolates): one
#: wave of the launch with every thread's loop cut to 4 and to 8 trips
#: (simgpu.workloads.base.simulate_trips, as a GEMM's K loop). Against full replays on h100-sxm
#: (experiments/benchmarks/bench_sampling.py and docs/sm-model.md): at 2 and 4 trips the DRAM
#: queues have not filled yet and the extrapolated rate came out fast (stream read and write of
#: 64 MiB -5.7% and -5.3%, a read of 256 MiB -6.3%); at 4 and 8, -1.9% to +1.9% on those.
GRID_STRIDE_SAMPLES = (4, 8)

#: A stream whose arrays together (:meth:`~simgpu.workloads.base.Workload.touched_bytes`)
#: exceed this many times the L2 is DRAM-resident in the steady state of back-to-back calls, and
#: a sampled replay (:meth:`Stream.simulate`) is a steady-state window
#: (:meth:`Stream.steady_state`). Each call streams its arrays in the same order, so with more
#: lines than the L2 holds every line is evicted before the next call reaches it again (the
#: simulator's L2 evicts the least recently used way): the replay from the state the previous
#: call leaves has no L2 hits to lose. Checked against full replays on h100-sxm
#: (experiments/benchmarks/bench_sampling.py, docs/sm-model.md): the window is 5-8% fast for
#: streams of 1.3 to 2.6 times the L2 (32 and 64 MiB arrays: WINDOW_SPREAD), as for 5 to 10
#: times (-4.5% and -5.8% at 256 MiB), while a window costs one replay per process whatever the
#: size and a trip-sampled 64 MiB replay 6-13 s. It was 4 (arrays of four times the L2 each).
DRAM_RESIDENT_L2 = 1.0
#: Lines the steady-state window moves. assumption: 8 MiB of traffic, about 2.7 us at 3 TB/s,
#: twice the lines the kernel keeps in flight on an H100: long enough for a steady state.
WINDOW_LINES = 1 << 16
#: The error a steady-state window states beside the spread of its halves, as a share of its
#: time: against full replays on h100-sxm (experiments/benchmarks/bench_sampling.py) its time
#: was -4.5% (read) and -5.8% (copy) off at 256 MiB; -4.5% and -0.8% again with the compiled
#: issue logic (simgpu simulate --no-sample, 113 s and 181 s); for the smaller streams windowed
#: since DRAM_RESIDENT_L2 counts all of a stream's arrays (run 20261208T013532Z), -6.5% (copy of
#: 32 MiB), -7.7% (read of 64 MiB), -5.3% (write) and -6.2% (copy). The read's full replay
#: takes 8.4% of the window's time more: rounded up, 9%. For the read that is the kernel's
#: ramp-up and drain, which the window leaves out (a window whose warps move four lines a trip
#: and wait for them, as the kernel's loop does, streams at the same rate:
#: docs/memory-system.md); it shrinks as the array grows, so 9% overstates large arrays' error.
WINDOW_SPREAD = 0.09
#: stream op -> (memory-system stream op, read fraction) of its steady state: copy, scale and
#: triad read one line per line written, triad two
STREAM_MIX = {"read": ("read", 1.0), "write": ("write", 0.0), "copy": ("copy", 0.5),
              "scale": ("copy", 0.5), "triad": ("copy", 2.0 / 3.0)}

#: Blocks per SM the calibration runner launches for grid-stride kernels
#: (simgpu/calibrate/bench_memory.py and bench_compute.py: sm_count * 8 blocks of 256 threads).
BLOCKS_PER_SM = 8


@functools.lru_cache(maxsize=64)
def _window(spec: DeviceSpec, op: str, read_fraction: float, per_sm: int,
            seed: int) -> tuple[float, tuple[float, float]]:
    """A steady-state window (:meth:`Stream.steady_state`): bytes/s over the window and over
    each of its halves. It is deterministic, so a process replays an identical one once."""
    env = simpy.Environment()
    system = build_system(env, spec, l2_write_through=True, rng=random.Random(seed))
    src = StreamSource(env, system, n_lines=WINDOW_LINES, occupancy=per_sm, op=op,
                       read_fraction=read_fraction)
    src.start()
    env.run()
    r = src.result()
    return (r.steady_bandwidth_GBps() * 1e9,  # B/s in the window's steady state
            (r.bandwidth_between_GBps(0.1, 0.5) * 1e9, r.bandwidth_between_GBps(0.5, 0.9) * 1e9))


@dataclass
class PointerChase(Workload):
    """``pchase_ca`` / ``pchase_cg``: one thread follows a random cyclic permutation of lines
    (``stride_B`` apart) over ``footprint_B`` bytes, ``steps`` dependent loads."""

    footprint_B: int
    stride_B: int = 128
    steps: int = 1024
    cache_op: str = "ca"
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive(footprint_B=self.footprint_B, stride_B=self.stride_B, steps=self.steps)
        if self.cache_op not in ("ca", "cg"):
            raise SimgpuError(f"cache_op = {self.cache_op!r}: expected 'ca' or 'cg'")
        if self.stride_B % 4 or self.footprint_B < self.stride_B:
            raise SimgpuError(
                f"stride_B {self.stride_B}: expected a multiple of 4 and <= footprint_B"
                f" {self.footprint_B}"
            )
        self._next = ArrayLayout().alloc("next", self.footprint_B)

    @property
    def name(self) -> str:
        return "pchase"

    @property
    def kernel(self) -> str:
        return f"pchase_{self.cache_op}"

    def figures(self, time_s: float) -> dict[str, float]:
        """Latency per dependent load (the kernel's loop included, as the benchmark times it)."""
        return {"latency_ns": time_s / self.steps * 1e9} if time_s > 0 else {}

    @property
    def footprint_bytes(self) -> float:
        return float(self.footprint_B)

    def row_key(self) -> dict[str, Any]:
        return {"path": self.cache_op, "footprint_B": self.footprint_B, "stride_B": self.stride_B}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PointerChase:
        return cls(int(row["footprint_B"]), int(row["stride_B"]), int(row["steps"]),
                   str(row["path"]))

    @property
    def slots(self) -> int:
        return self.footprint_B // self.stride_B

    @property
    def flops(self) -> float:
        return 0.0

    @property
    def compulsory_bytes(self) -> float:
        return float(min(self.steps, self.slots) * 4)

    def launch(self) -> KernelLaunch:
        return KernelLaunch(
            name=f"pchase_{self.cache_op}", grid=(1, 1, 1), block=(1, 1, 1), regs_per_thread=16
        )

    def order(self, count: int) -> list[int]:
        """The first ``count`` slots the chase visits: a pseudo-random cycle over all of them
        (:func:`simgpu.sim.sources.cyclic_order`, seeded), started at slot 0."""
        return list(islice(cyclic_order(self.slots, self.seed), count))

    def make_block(self, index: int) -> list[list[Instruction]]:
        a = Asm()
        opcode = "LDG.E.CG" if self.cache_op == "cg" else "LDG.E"
        insts = [a.op("S2R", dst=(0,), mask=1), a.op("CS2R", dst=(6, 7), mask=1)]
        for k in self.order(self.steps):
            addr = self._next + k * self.stride_B
            insts.append(a.op("IMAD.WIDE.U32", dst=(4, 5), src=(2,), mask=1))
            insts.append(a.affine(opcode, "global", 4, addr, 0, dst=(2,), src=(4, 5), mask=1))
        insts += [
            a.op("CS2R", dst=(8, 9), src=(2,), mask=1),
            a.affine("STG.E", "global", 4, self._next, 0, src=(2,), mask=1),
            a.op("EXIT", mask=1),
        ]
        return [insts]

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        if self.cache_op != "ca":
            raise ViewUnavailable("the analytical pointer chase models L1-cached loads"
                                  f" (cache_op 'ca'), not {self.cache_op!r}")
        return analytical.pointer_chase(spec, self.footprint_B, self.stride_B)

    def warm_lines(self, spec: DeviceSpec, l1_bytes: int, line_bytes: int) -> list[int]:
        """The lines a warm-up pass leaves in the caches, in visiting order: the last
        ``min(slots, WARM_FACTOR x (L2 + L1) / line)`` slots of the cycle before its start, so
        the timed chase (from slot 0) continues where the warm-up ended. None when the timed
        chase reaches none of them (a footprint of more slots than those and its steps): its
        loads then miss as they would in caches full of those lines, which hold nothing of
        the chase's, and the warm-up is skipped."""

        n = self.slots
        warm = min(n, int(WARM_FACTOR * (spec.l2.size_bytes + l1_bytes) // line_bytes))
        if n >= warm + self.steps:
            return []
        before = islice(cyclic_order(n, self.seed, backward=True), 1, warm + 1)
        lines = []
        for k in reversed(list(before)):
            addr = self._next + k * self.stride_B
            lines.append(addr - addr % line_bytes)
        return lines

    def simulate(
        self, spec: DeviceSpec, *, sample: bool = False, warm: bool = True, **kwargs: Any
    ) -> SimResult:
        """Replay the chase (never sampled: one thread). With ``warm`` (default), the caches
        start as the measured kernel's warm-up launch leaves them (simgpu.calibrate.bench_memory
        runs the chase once untimed before the timed launches; simgpu.sim.sources
        .run_pointer_chase warms the same way): a functional warm-up of the SM's L1 and the L2
        with :meth:`warm_lines`, so a footprint that fits a cache level hits in it."""

        if warm and "system_factory" not in kwargs:
            seed = int(kwargs.get("seed", 0))

            def make(env: Any, spec_: DeviceSpec) -> Any:
                system = default_system(env, spec_, seed)
                lines = self.warm_lines(spec_, system.l1_bytes, system.line_bytes)
                sector = 1 << ((self._next % system.line_bytes) // system.sector_bytes)
                # the single block runs on SM 0 (blocks go to SMs in order)
                system.warm(0, lines, sector)
                return system

            kwargs["system_factory"] = make
        return simulate_trace(self.trace(), spec, sample=False, **kwargs)


def _grid_stride_blocks(n_items: int, threads: int, blocks: int | None) -> int:
    return blocks if blocks is not None else max(1, math.ceil(n_items / threads))


@dataclass
class Stream(Workload):
    """``stream_{read,write,copy,scale,triad}``: float4 grid-stride loops over ``n_elements``
    floats. ``blocks=None`` launches one element per thread; :meth:`for_device` and
    :meth:`simulate` use the runner's grid of 8 blocks per SM."""

    op: str
    n_elements: int
    threads: int = 256
    blocks: int | None = None

    def __post_init__(self) -> None:
        if self.op not in STREAM_OPS:
            raise SimgpuError(f"op = {self.op!r}: expected one of {sorted(STREAM_OPS)}")
        check_positive(n_elements=self.n_elements, threads=self.threads)
        if self.n_elements % 4:
            raise SimgpuError(f"n_elements = {self.n_elements}: expected a multiple of 4 (float4)")
        lay = ArrayLayout()
        self._arrays = [lay.alloc(x, self.n_elements * 4) for x in ("a", "b", "c")]
        self._asm = Asm()
        self._trips_cut: int | None = None

    @property
    def name(self) -> str:
        return "stream"

    @property
    def kernel(self) -> str:
        return f"stream_{self.op}"

    def row_key(self) -> dict[str, Any]:
        key: dict[str, Any] = {"op": self.op, "array_B": 4 * self.n_elements,
                               "threads_per_block": self.threads}
        if self.blocks is not None:
            key["blocks"] = self.blocks
        return key

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Stream:
        return cls(str(row["op"]), int(row["array_B"]) // 4, int(row["threads_per_block"]),
                   int(row["blocks"]))

    @property
    def n4(self) -> int:
        return self.n_elements // 4

    @property
    def flops(self) -> float:
        per = {"read": 1, "write": 0, "copy": 0, "scale": 1, "triad": 2}[self.op]
        return float(per * self.n_elements)

    @property
    def compulsory_bytes(self) -> float:
        loads, stores, _ = STREAM_OPS[self.op]
        return float((loads + stores) * 4 * self.n_elements)

    def _roles(self) -> tuple[list[int], int | None]:
        """The arrays the op reads and the one it writes (None for ``read``)."""
        A, B, C = self._arrays
        srcs = {"read": [A], "write": [], "copy": [A], "scale": [A], "triad": [B, C]}[self.op]
        return srcs, {"write": A, "copy": B, "scale": B, "triad": A}.get(self.op)

    def inputs(self) -> list[tuple[int, int]]:
        return [(a, 4 * self.n_elements) for a in self._roles()[0]]

    def outputs(self) -> list[tuple[int, int]]:
        dst = self._roles()[1]
        return [] if dst is None else [(dst, 4 * self.n_elements)]

    loop_samples = GRID_STRIDE_SAMPLES

    @property
    def trips(self) -> float:
        """Grid-stride loop trips per thread of the launch, on average."""
        launch = self.launch()
        return self.n4 / (launch.num_blocks * self.threads)

    def for_device(self, spec: DeviceSpec) -> Stream:
        """With ``blocks`` unset: the grid-stride launch (kernels/stream.cu) for ``spec``."""
        if self.blocks is not None:
            return self
        blocks = min(spec.compute.sm_count * BLOCKS_PER_SM, max(1, -(-self.n4 // self.threads)))
        return replace(self, blocks=blocks)

    def launch(self) -> KernelLaunch:
        return KernelLaunch(
            name=f"stream_{self.op}",
            grid=(_grid_stride_blocks(self.n4, self.threads, self.blocks), 1, 1),
            block=(self.threads, 1, 1),
            regs_per_thread=24,
        )

    def make_block(self, index: int) -> list[list[Instruction]]:
        a = self._asm
        loads, stores, fp = STREAM_OPS[self.op]
        grid = self.launch().grid[0]
        stride = grid * self.threads
        srcs, dst_arr = self._roles()
        warps = []
        for w in range((self.threads + 31) // 32):
            insts = [
                a.op("S2R", dst=(0,)),
                a.op("S2R", dst=(1,)),
                a.op("IMAD", dst=(2,), src=(0, 1)),
                a.op("ISETP.GE.U32.AND", src=(2,)),
            ]
            first = index * self.threads + 32 * w
            end = self.n4 if self._trips_cut is None else min(
                self.n4, first + self._trips_cut * stride)
            for i0 in range(first, end, stride):
                lanes = min(32, self.n4 - i0)
                mask = FULL if lanes == 32 else (1 << lanes) - 1
                for j, arr in enumerate(srcs):
                    insts.append(
                        a.affine(
                            "LDG.E.128",
                            "global",
                            16,
                            arr + 16 * i0,
                            16,
                            dst=range(8 + 4 * j, 12 + 4 * j),
                            src=(4, 5),
                            mask=mask,
                        )
                    )
                for k, opc in enumerate(fp):
                    if self.op == "read":
                        insts.append(a.op(opc, dst=(20 + k,), src=(20 + k, 8 + k), mask=mask))
                    elif self.op == "triad":
                        insts.append(a.op(opc, dst=(8 + k,), src=(12 + k, 8 + k), mask=mask))
                    else:
                        insts.append(a.op(opc, dst=(8 + k,), src=(8 + k,), mask=mask))
                if stores and dst_arr is not None:
                    insts.append(
                        a.affine(
                            "STG.E.128",
                            "global",
                            16,
                            dst_arr + 16 * i0,
                            16,
                            src=(6, 7, 8, 9, 10, 11),
                            mask=mask,
                        )
                    )
                insts += [
                    a.op("IADD3", dst=(2,), src=(2,), mask=mask),
                    a.op("ISETP.GE.U32.AND", src=(2,), mask=mask),
                    a.op("BRA", mask=mask),
                ]
            if self.op == "read":
                insts += [
                    a.op("FADD", dst=(24,), src=(20, 21)),
                    a.op("FADD", dst=(25,), src=(22, 23)),
                    a.op("FADD", dst=(24,), src=(24, 25)),
                    a.op("FSETP.NEU.AND", src=(24,)),
                ]
            insts.append(a.op("EXIT"))
            warps.append(insts)
        return warps

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        return analytical.stream(spec, self.op, self.n_elements, 4)

    def simulate(
        self, spec: DeviceSpec, *, sample: bool = True, warm_l2: bool = False, **kwargs: Any
    ) -> SimResult:
        """Replay the kernel; with ``sample``, a stream whose arrays together exceed
        :data:`DRAM_RESIDENT_L2` times the L2 (DRAM-resident from call to call) is simulated as
        a steady-state window instead (:meth:`steady_state`), since a grid-stride replay of
        large arrays would take hours; smaller ones are replayed, sampled in grid-stride trips
        where their loop is long (:meth:`Workload.simulate`)."""
        if self.windowed(spec) and sample:
            return self.steady_state(spec, seed=int(kwargs.get("seed", 0)))
        return super().simulate(spec, sample=sample, warm_l2=warm_l2, **kwargs)

    def windowed(self, spec: DeviceSpec) -> bool:
        """Whether a sampled replay on ``spec`` is a steady-state window."""
        return self.touched_bytes() > DRAM_RESIDENT_L2 * spec.l2.size_bytes

    def replay_bytes(self, spec: DeviceSpec) -> float:
        """The bytes a sampled replay moves (:meth:`Workload.replay_bytes`); for a stream
        simulated as a steady-state window, the window's lines (one replay per process serves
        every array size of its op's mix, :func:`_window`). On h100-sxm, 16 MiB copied from the
        L2 replays in 2.3 s, 32 MiB from DRAM in 10 s."""
        if self.windowed(spec):
            return float(WINDOW_LINES * spec.l1.line_bytes)
        return super().replay_bytes(spec)

    def steady_state(self, spec: DeviceSpec, *, seed: int = 0) -> SimResult:
        """The kernel's steady state: :data:`WINDOW_LINES` consecutive lines streamed through
        the memory system with as many lines in flight per SM as the launch keeps (threads x
        one float4 each), stores written through to DRAM (in the steady state of arrays far
        larger than the L2 every store reaches DRAM, which a short window of a write-back L2
        would not show); the kernel's time is its bytes at the window's steady bandwidth,
        between the 10th and 90th percentiles of its completions (the ramp-up, before the first
        lines return, and the drain are not the kernel's steady state: counted, they made the
        window 18-23% slower than a full replay, experiments/benchmarks/bench_sampling.py). The
        spread is half the difference between the times at the bandwidths of its two halves,
        plus :data:`WINDOW_SPREAD` of the time for what the window leaves out of the kernel."""
        wall0 = time.perf_counter()
        w = self.for_device(spec)
        launch = w.launch()
        op, read_fraction = STREAM_MIX[self.op]
        sms = spec.compute.sm_count
        per_sm = max(1, launch.num_blocks * self.threads * 16 // (spec.l1.line_bytes * sms))
        # the window depends on these alone (not on the array size): streams of every size past
        # DRAM_RESIDENT_L2, and copy and scale, share one replay in a process (_window)
        bw, halves = _window(spec, op, read_fraction, per_sm, seed)
        hz = spec.clock_MHz * 1e6
        time_s = self.compulsory_bytes / bw
        spread = abs(self.compulsory_bytes / halves[0] - self.compulsory_bytes / halves[1]) / 2
        spread += WINDOW_SPREAD * time_s
        loads, stores, _ = STREAM_OPS[self.op]
        occ = occupancy(spec, launch.threads_per_block, launch.regs_per_thread,
                        launch.shared_bytes)
        return SimResult(
            device=spec.name, kernel=launch.name, clock_MHz=spec.clock_MHz,
            cycles=time_s * hz, time_s=time_s, sampled=True, time_s_spread=spread,
            blocks_total=launch.num_blocks, blocks_simulated=0,
            waves=launch.num_blocks / (occ.blocks_per_sm * sms),
            occupancy_blocks_per_sm=occ.blocks_per_sm, occupancy_limit=occ.limit,
            warp_instructions=0.0, instructions_simulated=0, flops=self.flops,
            bytes={"dram": {"read": 4.0 * loads * self.n_elements,
                            "write": 4.0 * stores * self.n_elements}},
            hit_rate={}, stalls={}, op_counts={}, wall_s=time.perf_counter() - wall0,
            scheduler="steady-state window",
        )



@dataclass
class Transpose(Workload):
    """``transpose_naive`` / ``transpose_tiled``: ``rows x cols`` floats, 32 x 8 threads per
    32 x 32 tile, four elements per thread."""

    rows: int
    cols: int
    variant: str = "tiled"

    def __post_init__(self) -> None:
        check_positive(rows=self.rows, cols=self.cols)
        if self.variant not in ("naive", "tiled"):
            raise SimgpuError(f"variant = {self.variant!r}: expected 'naive' or 'tiled'")
        lay = ArrayLayout()
        self._in = lay.alloc("in", self.rows * self.cols * 4)
        self._out = lay.alloc("out", self.rows * self.cols * 4)
        self._asm = Asm()

    @property
    def name(self) -> str:
        return "transpose"

    @property
    def kernel(self) -> str:
        return f"transpose_{self.variant}"

    def row_key(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "rows": self.rows, "cols": self.cols}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Transpose:
        variant = str(row["kernel"]).removeprefix("transpose_")
        return cls(int(row["rows"]), int(row["cols"]), variant)

    def inputs(self) -> list[tuple[int, int]]:
        return [(self._in, 4 * self.rows * self.cols)]

    def outputs(self) -> list[tuple[int, int]]:
        return [(self._out, 4 * self.rows * self.cols)]

    @property
    def flops(self) -> float:
        return 0.0

    @property
    def compulsory_bytes(self) -> float:
        return 2.0 * 4 * self.rows * self.cols

    def launch(self) -> KernelLaunch:
        return KernelLaunch(
            name=f"transpose_{self.variant}",
            grid=(-(-self.cols // 32), -(-self.rows // 32), 1),
            block=(32, 8, 1),
            regs_per_thread=16,
            shared_bytes=32 * 33 * 4 if self.variant == "tiled" else 0,
        )

    def make_block(self, index: int) -> list[list[Instruction]]:
        a = self._asm
        R, Cc = self.rows, self.cols
        bx, by, _ = self.launch().block_coords(index)
        warps = []
        for ty in range(8):
            insts = [
                a.op("S2R", dst=(0,)),
                a.op("S2R", dst=(1,)),
                a.op("S2R", dst=(2,)),
                a.op("IMAD", dst=(3,), src=(2, 0)),
            ]
            xs = [bx * 32 + tx for tx in range(32)]
            if self.variant == "naive":
                for j in range(0, 32, 8):
                    y = by * 32 + ty + j
                    if y >= R:
                        break
                    m = lanes_mask(x < Cc for x in xs)
                    live = [x for x in xs if x < Cc]
                    if not m:
                        continue
                    insts.append(
                        a.affine(
                            "LDG.E",
                            "global",
                            4,
                            self._in + (y * Cc + live[0]) * 4,
                            4,
                            dst=(8,),
                            src=(4, 5),
                            mask=m,
                        )
                    )
                    insts.append(
                        a.affine(
                            "STG.E",
                            "global",
                            4,
                            self._out + (live[0] * R + y) * 4,
                            4 * R,
                            src=(6, 7, 8),
                            mask=m,
                        )
                    )
                    insts.append(a.op("IADD3", dst=(3,), src=(3,)))
            else:
                for j in range(0, 32, 8):
                    y = by * 32 + ty + j
                    m = lanes_mask(x < Cc and y < R for x in xs)
                    if m:
                        live = [x for x in xs if x < Cc]
                        insts.append(
                            a.affine(
                                "LDG.E",
                                "global",
                                4,
                                self._in + (y * Cc + live[0]) * 4,
                                4,
                                dst=(8 + j // 8,),
                                src=(4, 5),
                                mask=m,
                            )
                        )
                        insts.append(
                            a.mem(
                                "STS",
                                "shared",
                                4,
                                [((ty + j) * 33 + tx) * 4 for tx in range(32) if m >> tx & 1],
                                src=(3, 8 + j // 8),
                                mask=m,
                                cache=True,
                            )
                        )
                insts.append(a.op("BAR.SYNC"))
                xo = [by * 32 + tx for tx in range(32)]
                for j in range(0, 32, 8):
                    yo = bx * 32 + ty + j
                    m = lanes_mask(x < R and yo < Cc for x in xo)
                    if m:
                        insts.append(
                            a.mem(
                                "LDS",
                                "shared",
                                4,
                                [(tx * 33 + ty + j) * 4 for tx in range(32) if m >> tx & 1],
                                dst=(12 + j // 8,),
                                src=(3,),
                                mask=m,
                                cache=True,
                            )
                        )
                        first = next(x for x in xo if x < R)
                        insts.append(
                            a.affine(
                                "STG.E",
                                "global",
                                4,
                                self._out + (yo * R + first) * 4,
                                4,
                                src=(6, 7, 12 + j // 8),
                                mask=m,
                            )
                        )
            insts.append(a.op("EXIT"))
            warps.append(insts)
        return warps

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        # the closed form takes a square; one of the same size moves the same bytes
        return analytical.transpose(spec, math.sqrt(self.rows * self.cols), self.variant)


@dataclass
class Reduction(Workload):
    """``reduce_sum``: grid-stride float4 loads, warp shuffle tree, one atomicAdd per block."""

    n: int
    threads: int = 256
    blocks: int | None = None

    def __post_init__(self) -> None:
        check_positive(n=self.n, threads=self.threads)
        if self.n % 4:
            raise SimgpuError(f"n = {self.n}: expected a multiple of 4 (float4 loads)")
        lay = ArrayLayout()
        self._a = lay.alloc("a", self.n * 4)
        self._out = lay.alloc("out", 4)
        self._asm = Asm()
        self._trips_cut: int | None = None

    @property
    def name(self) -> str:
        return "reduction"

    @property
    def kernel(self) -> str:
        return "reduce_sum"

    def row_key(self) -> dict[str, Any]:
        return {"n": self.n}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Reduction:
        return cls(int(row["n"]))

    def inputs(self) -> list[tuple[int, int]]:
        return [(self._a, 4 * self.n)]

    def outputs(self) -> list[tuple[int, int]]:
        return [(self._out, 4)]

    @property
    def flops(self) -> float:
        return float(self.n)

    @property
    def compulsory_bytes(self) -> float:
        return 4.0 * self.n

    loop_samples = GRID_STRIDE_SAMPLES

    @property
    def trips(self) -> float:
        """Grid-stride loop trips per thread of the launch, on average."""
        return self.n / 4 / (self.launch().num_blocks * self.threads)

    def for_device(self, spec: DeviceSpec) -> Reduction:
        """With ``blocks`` unset: the grid-stride launch (kernels/reduction.cu) for ``spec``."""
        if self.blocks is not None:
            return self
        blocks = min(spec.compute.sm_count * BLOCKS_PER_SM, max(1, math.ceil(self.n / 4 / 256)))
        return replace(self, blocks=blocks)

    def launch(self) -> KernelLaunch:
        return KernelLaunch(
            name="reduce_sum",
            grid=(_grid_stride_blocks(self.n // 4, self.threads, self.blocks), 1, 1),
            block=(self.threads, 1, 1),
            regs_per_thread=24,
            shared_bytes=128,
        )

    def make_block(self, index: int) -> list[list[Instruction]]:
        a = self._asm
        n4 = self.n // 4
        grid = self.launch().grid[0]
        stride = grid * self.threads
        nwarps = (self.threads + 31) // 32
        warps = []
        for w in range(nwarps):
            insts = [
                a.op("S2R", dst=(0,)),
                a.op("S2R", dst=(1,)),
                a.op("IMAD", dst=(2,), src=(0, 1)),
                a.op("MOV", dst=(20,)),
            ]
            first = index * self.threads + 32 * w
            end = n4 if self._trips_cut is None else min(n4, first + self._trips_cut * stride)
            for i0 in range(first, end, stride):
                lanes = min(32, n4 - i0)
                mask = FULL if lanes == 32 else (1 << lanes) - 1
                insts.append(
                    a.affine(
                        "LDG.E.128",
                        "global",
                        16,
                        self._a + 16 * i0,
                        16,
                        dst=(8, 9, 10, 11),
                        src=(4, 5),
                        mask=mask,
                    )
                )
                insts += [
                    a.op("FADD", dst=(12,), src=(8, 9), mask=mask),
                    a.op("FADD", dst=(13,), src=(10, 11), mask=mask),
                    a.op("FADD", dst=(12,), src=(12, 13), mask=mask),
                    a.op("FADD", dst=(20,), src=(20, 12), mask=mask),
                    a.op("IADD3", dst=(2,), src=(2,), mask=mask),
                    a.op("ISETP.GE.U32.AND", src=(2,), mask=mask),
                    a.op("BRA", mask=mask),
                ]
            for _ in range(5):
                insts += [
                    a.op("SHFL.DOWN", dst=(21,), src=(20,)),
                    a.op("FADD", dst=(20,), src=(20, 21)),
                ]
            insts.append(a.affine("STS", "shared", 4, 4 * w, 0, src=(3, 20), mask=1))
            insts.append(a.op("BAR.SYNC"))
            if w == 0:
                m = (1 << nwarps) - 1
                insts.append(a.affine("LDS", "shared", 4, 0, 4, dst=(20,), src=(3,), mask=m))
                for _ in range(5):
                    insts += [
                        a.op("SHFL.DOWN", dst=(21,), src=(20,)),
                        a.op("FADD", dst=(20,), src=(20, 21)),
                    ]
                insts.append(
                    a.affine(
                        "RED.E.ADD.F32.FTZ.RN", "global", 4, self._out, 0, src=(6, 7, 20), mask=1
                    )
                )
            insts.append(a.op("EXIT"))
            warps.append(insts)
        return warps

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        return analytical.reduction(spec, self.n)



#: k-loop unroll factor of ``sgemv_warp`` (nvcc -O3; the PTX of kernels/gemv.cu has a 4x body)
GEMV_UNROLL = 4


@dataclass
class Gemv(Workload):
    """``sgemv_warp``: y = A x, A (m x n) row-major, one warp per row, 8 warps per block."""

    m: int
    n: int

    def __post_init__(self) -> None:
        check_positive(m=self.m, n=self.n)
        lay = ArrayLayout()
        self._A = lay.alloc("A", self.m * self.n * 4)
        self._x = lay.alloc("x", self.n * 4)
        self._y = lay.alloc("y", self.m * 4)
        self._asm = Asm()
        self._trips_cut: int | None = None

    @property
    def name(self) -> str:
        return "gemv"

    @property
    def kernel(self) -> str:
        return "sgemv_warp"

    def row_key(self) -> dict[str, Any]:
        return {"M": self.m, "N": self.n}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Gemv:
        return cls(int(row["M"]), int(row["N"]))

    def inputs(self) -> list[tuple[int, int]]:
        return [(self._A, 4 * self.m * self.n), (self._x, 4 * self.n)]

    def outputs(self) -> list[tuple[int, int]]:
        return [(self._y, 4 * self.m)]

    #: k-loop trips a sampled GEMV replays: whole unrolled groups (GEMV_UNROLL). At 8 and 16
    #: trips the 1024 x 65536 GEMV (2048 trips) came out 258 us, 17% over 16 and 32 (218 us),
    #: 32 and 64 (227 us) and 64 and 128 (219 us): the first groups are not yet steady.
    loop_samples = (4 * GEMV_UNROLL, 8 * GEMV_UNROLL)

    @property
    def trips(self) -> float:
        """Trips of the k loop (32 columns each) per warp."""
        return float(-(-self.n // 32))

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n

    @property
    def compulsory_bytes(self) -> float:
        return 4.0 * (self.m * self.n + self.n + self.m)

    def launch(self) -> KernelLaunch:
        return KernelLaunch(
            name="sgemv_warp", grid=(-(-self.m // 8), 1, 1), block=(256, 1, 1), regs_per_thread=24
        )

    def make_block(self, index: int) -> list[list[Instruction]]:
        a = self._asm
        warps = []
        for w in range(8):
            row = index * 8 + w
            insts = [
                a.op("S2R", dst=(0,)),
                a.op("S2R", dst=(1,)),
                a.op("IMAD", dst=(2,), src=(0, 1)),
                a.op("ISETP.GE.AND", src=(2,)),
            ]
            if row < self.m:
                insts.append(a.op("MOV", dst=(20,)))
                # The k loop as nvcc -O3 compiles it (PTX of kernels/gemv.cu, sm_90, CUDA 13.0):
                # trips % 4 single trips first, then the rest unrolled by 4. Assumption: ptxas
                # issues the eight loads of an unrolled step before its four FFMAs (its usual
                # load batching; to be checked against the SASS on the next GPU machine).
                trips = -(-self.n // 32)
                if self._trips_cut is not None:
                    trips = min(trips, self._trips_cut)
                step = 0
                while step < trips:
                    group = 1 if step < trips % GEMV_UNROLL else GEMV_UNROLL
                    chunks = [(step + j) * 32 for j in range(group)]
                    masks = [FULL if self.n - k0 >= 32 else (1 << (self.n - k0)) - 1
                             for k0 in chunks]
                    for j, (k0, mask) in enumerate(zip(chunks, masks, strict=True)):
                        insts.append(a.affine("LDG.E", "global", 4,
                                              self._A + (row * self.n + k0) * 4, 4,
                                              dst=(8 + 2 * j,), src=(4, 5), mask=mask))
                        insts.append(a.affine("LDG.E", "global", 4, self._x + k0 * 4, 4,
                                              dst=(9 + 2 * j,), src=(6, 7), mask=mask))
                    for j, mask in enumerate(masks):
                        insts.append(a.op("FFMA", dst=(20,), src=(8 + 2 * j, 9 + 2 * j, 20),
                                          mask=mask))
                    insts += [
                        a.op("IADD3", dst=(4,), src=(4,), mask=masks[0]),
                        a.op("ISETP.GE.AND", src=(4,), mask=masks[0]),
                        a.op("BRA", mask=masks[0]),
                    ]
                    step += group
                for _ in range(5):
                    insts += [
                        a.op("SHFL.DOWN", dst=(21,), src=(20,)),
                        a.op("FADD", dst=(20,), src=(20, 21)),
                    ]
                insts.append(
                    a.affine("STG.E", "global", 4, self._y + row * 4, 0, src=(10, 11, 20), mask=1)
                )
            insts.append(a.op("EXIT"))
            warps.append(insts)
        return warps

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        return analytical.gemv(spec, self.m, self.n)


@dataclass
class HostCopy(Workload):
    """A host-device copy over the host link (``cudaMemcpyAsync``, as ``simgpu calibrate``
    times it): ``n_bytes`` each way, ``direction`` "h2d", "d2h" or "bidir" (both at once),
    from pinned or pageable host memory. Not a kernel: no trace; the simulated view runs the
    host link model (:class:`simgpu.sim.pcie.HostLink`)."""

    n_bytes: int
    direction: str = "h2d"
    pinned: bool = True

    def __post_init__(self) -> None:
        check_positive(n_bytes=self.n_bytes)
        if self.direction not in ("h2d", "d2h", "bidir"):
            raise SimgpuError(f"direction = {self.direction!r}: expected h2d, d2h or bidir")

    @property
    def name(self) -> str:
        return "pcie_copy"

    @property
    def kernel(self) -> str:
        return "memcpy"

    @property
    def flops(self) -> float:
        return 0.0

    @property
    def compulsory_bytes(self) -> float:
        return float(self.n_bytes * (2 if self.direction == "bidir" else 1))

    def launch(self) -> KernelLaunch:
        raise ViewUnavailable("a host-device copy is not a kernel: it has no trace")

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        return analytical.pcie_copy(spec, self.n_bytes, self.direction, self.pinned)

    def simulate(self, spec: DeviceSpec, **kwargs: Any) -> SimResult:
        """The copy on the host link model. "bidir" issues the host-to-device copy, then the
        device-to-host one, from one host thread as ``simgpu calibrate`` does: the second starts
        ``host_link.copy_issue_us`` after the first, and the time runs until both are done."""

        wall0 = time.perf_counter()
        env = simpy.Environment()
        link = HostLink(env, spec.host_link, spec.clock_MHz)
        if self.direction == "bidir":
            gap = link.params.issue_gap * spec.clock_MHz * 1e6

            def issue() -> Generator[Any, Any, None]:
                link.copy(self.n_bytes, "h2d", self.pinned)
                yield env.timeout(gap)
                link.copy(self.n_bytes, "d2h", self.pinned)

            env.process(issue())
        else:
            link.copy(self.n_bytes, self.direction, self.pinned)
        env.run()
        cycles = max(c.t_end for c in link.copies)
        return SimResult(
            device=spec.name, kernel=f"memcpy_{self.direction}", clock_MHz=spec.clock_MHz,
            cycles=cycles, time_s=cycles / (spec.clock_MHz * 1e6), sampled=False,
            time_s_spread=0.0, blocks_total=0, blocks_simulated=0, waves=0.0,
            occupancy_blocks_per_sm=0, occupancy_limit="", warp_instructions=0.0,
            instructions_simulated=0, flops=0.0,
            bytes={"pcie": {"read": float(link.bytes.get("h2d", 0)),
                            "write": float(link.bytes.get("d2h", 0))}},
            hit_rate={}, stalls={}, op_counts={}, wall_s=time.perf_counter() - wall0,
            scheduler="host link",
        )

    def row_key(self) -> dict[str, Any]:
        return {"direction": self.direction,
                "host_memory": "pinned" if self.pinned else "pageable", "size_B": self.n_bytes}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> HostCopy:
        return cls(int(row["size_B"]), str(row["direction"]), row["host_memory"] == "pinned")
