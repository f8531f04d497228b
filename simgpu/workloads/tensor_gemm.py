"""Tensor-core GEMM of the CUTLASS kind: the trace of a multistage mainloop, and the library
GEMM's simulated view built on it.

C = A B with A (M x K) and B stored N x K (K contiguous in both, a "TN" GEMM), inputs of
``dtype`` (fp16, bf16, tf32, fp8), C written in the library's output type
(:data:`simgpu.analytical.params.DTYPE_OUT_BYTES`), fp32 accumulators. A thread block computes a
``tile_m x tile_n`` tile of C, walking K in steps of ``tile_k`` elements (``row_bytes`` of
operand a row: 128, or 64 on the Ampere mainloop, as the analytical model's library tiles),
through ``stages`` shared-memory buffers.

Two mainloops, as CUTLASS builds them:

- **ampere** (sm_80/sm_89, ``cutlass/gemm/threadblock/mma_multistage.h``): every thread copies its
  share of the next tile with ``cp.async`` (``LDGSTS.E.BYPASS.128``, 16 bytes a lane), one commit
  group per tile; each trip waits for the oldest (``cp.async.wait_group stages-2``), syncs the
  block, issues the copy of tile ``k + stages - 1``, then loads warp fragments with ``ldmatrix``
  (``LDSM.16.M88.4``, the next k step's while the current one computes) and issues ``mma.sync``
  (``HMMA.16816.F32.F16``; ``HMMA.1688.F32.TF32`` for tf32) over a ``warps_m x warps_n`` warp
  layout.
- **hopper** (sm_90, CUTLASS 3's TMA + GMMA mainloop): one thread of warp 0 copies the next tile
  with TMA (``UTMALDG``, whole 128-byte rows into shared memory, outside the LD/ST unit); the
  others wait for it (modelled as warp 0's wait on its copy group and a block barrier: the
  mbarrier the real kernel uses is not modelled), and each warpgroup (four warps) issues
  ``wgmma`` (``HGMMA.64xNx16.F32.F16``, ``.64xNx8.F32.TF32``, ``QGMMA.64xNx32`` for fp8) with
  both operands from shared memory: the published "SS" figures include that read, so no
  shared-memory traffic is charged for it.

Fragment and copy addresses follow CUTLASS's swizzled shared-memory layouts, which make
``ldmatrix`` conflict-free (assumption: the layouts are designed for that; a ``LDSM.x4`` is four
wavefronts). The epilogue stores C straight from the accumulators, 16 bytes a lane (assumption:
CUTLASS stages C through shared memory; the global traffic is the same).

Blocks run in grid order (``blockIdx.x`` over the tile columns) or, for the library's Ampere-style
kernels, in the panels of CUTLASS 2's threadblock swizzle (``swizzle``, :data:`LIBRARY_SWIZZLE`).

Large GEMMs are sampled as the SIMT GEMMs are (:meth:`GemmBase.simulate`): the first wave at two
trip counts of the K loop, extrapolated in trips and waves, with the spread of the two slopes
(at least :data:`~simgpu.workloads.base.TRIP_SPREAD` of the time) as ``time_s_spread``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from simgpu import analytical
from simgpu.analytical.gemm import StreamKPlan, launch_registers
from simgpu.analytical.params import (
    DTYPE_BYTES,
    DTYPE_OUT_BYTES,
    LIBRARY_ROW_BYTES,
    mainloop_generation,
)
from simgpu.errors import SimgpuError, ViewUnavailable
from simgpu.sim.replay import SimResult
from simgpu.sim.sm import tensor_key
from simgpu.trace.schema import Instruction, KernelLaunch
from simgpu.workloads.base import ArrayLayout, Asm, check_positive, lanes_mask
from simgpu.workloads.gemm import GemmBase

if TYPE_CHECKING:
    import pandas as pd

    from simgpu.devices.spec import DeviceSpec

__all__ = [
    "LibraryGemm",
    "MmaGemm",
    "TensorGemm",
    "TensorSimResult",
    "MAINLOOPS",
    "WARP_LAYOUTS",
    "LIBRARY_CLUSTER_M",
    "at_clock",
    "mma_opcode",
    "check_tensor_dtype",
    "default_mainloop",
    "library_kernel",
    "simulate_library",
    "swizzle_log",
    "LIBRARY_SWIZZLE",
]

#: Mainloop styles (see the module docstring).
MAINLOOPS = ("ampere", "hopper")

#: Operand bytes one K step of a tile holds per row, by default: 128 (64 fp16, 32 tf32, 128 fp8
#: elements); each mainloop takes the widths of
#: :data:`simgpu.analytical.params.LIBRARY_ROW_BYTES` (the Ampere one 64 as well).
ROW_BYTES = 128

#: Warp layouts (warps_m, warps_n) of the Ampere mainloop per (tile_m, tile_n, threads): those of
#: CUTLASS's default tensor-op GEMMs (warp tiles of 64 x 64 for the large tiles, 64 x 32 and
#: 32 x 32 for the small: cutlass/gemm/device/default_gemm_configuration.h and the profiler's
#: kernel names, e.g. cutlass_tensorop_h16816gemm_256x128_32x3 with 64x64 warp tiles).
WARP_LAYOUTS = {
    (256, 128, 256): (4, 2),
    (128, 256, 256): (2, 4),
    (128, 128, 256): (2, 4),
    (128, 64, 128): (2, 2),
    (64, 64, 128): (2, 2),
}

#: Thread blocks per cluster (along M) of the library's Hopper kernels. assumption: 2, a common
#: CUTLASS 3 sm90 configuration (ClusterShape 2x1x1, B multicast over the cluster); cuBLAS does
#: not publish which cluster shape its kernels use, and 1 (no multicast) is the other choice
#: (docs/tensor-cores.md gives the validation with both).
LIBRARY_CLUSTER_M = 2

#: Swizzle widths of CUTLASS 2's ``GemmIdentityThreadblockSwizzle<N>`` (0: grid order).
SWIZZLES = (0, 1, 2, 4, 8)

#: Block order of the library's data-parallel kernels per mainloop, a :data:`SWIZZLES` width.
#: ampere: 8, the swizzling functor the CUTLASS library generates its GEMMs with
#: (``python/cutlass_library/generator.py``, ``CreateGemmOperator``'s default
#: ``SwizzlingFunctor.Identity8``). assumption: cuBLAS's Ampere/Ada kernels order their blocks
#: the same way (it does not publish its block order). hopper: 0, grid order. CUTLASS 3's
#: persistent tile scheduler swizzles panels one tile wide by default (``max_swizzle_size =
#: 1``) and picks the raster direction by a heuristic that simgpu does not model. The
#: analytical model's DRAM traffic takes grid order for every kernel (docs/tensor-cores.md).
LIBRARY_SWIZZLE = {"ampere": 8, "hopper": 0}


def swizzle_log(tiles_n: int, swizzle: int) -> int:
    """log2 of the panel width, in tile columns, that CUTLASS 2's
    ``GemmIdentityThreadblockSwizzle<swizzle>`` takes for a GEMM of ``tiles_n`` tile columns
    (its ``get_log_tile``: 8 columns from 6 up, 4 from 3, 2 from 2, else 1, so that a narrow
    GEMM does not launch many blocks with no tile)."""
    if swizzle >= 8 and tiles_n >= 6:
        return 3
    if swizzle >= 4 and tiles_n >= 3:
        return 2
    if swizzle >= 2 and tiles_n >= 2:
        return 1
    return 0


#: Registers: fragments of A and B (two sets, double-buffered over k steps), accumulators (one
#: representative register per mma fragment: the scoreboard needs one per dependence chain).
_A_FRAG, _B_FRAG, _ACC = 8, 72, 136
#: Address and loop registers.
_R_ADDR, _R_LOOP = 2, 3


def mma_opcode(dtype: str, mainloop: str, n: int = 0) -> str:
    """The SASS opcode of the tensor-core instruction the mainloop issues for ``dtype`` (``n``:
    the wgmma's N)."""
    if mainloop == "ampere":
        return {"fp16": "HMMA.16816.F32.F16", "bf16": "HMMA.16816.F32.BF16",
                "tf32": "HMMA.1688.F32.TF32", "fp8": "HMMA.16832.F32.E4M3.E4M3"}[dtype]
    k = {"fp16": 16, "bf16": 16, "tf32": 8, "fp8": 32}[dtype]
    base = "QGMMA" if dtype == "fp8" else "HGMMA"
    suffix = {"fp16": "F16", "bf16": "BF16", "tf32": "TF32", "fp8": "E4M3.E4M3"}[dtype]
    return f"{base}.64x{n}x{k}.F32.{suffix}"


def default_mainloop(spec: DeviceSpec) -> str:
    """``hopper`` where the device has wgmma (compute capability 9.0 and up), else ``ampere``
    (:func:`simgpu.analytical.params.mainloop_generation`)."""
    return mainloop_generation(spec.compute_capability)


def check_tensor_dtype(spec: DeviceSpec, dtype: str, mainloop: str, n: int = 0) -> str:
    """The mma opcode for ``dtype`` on ``spec``, or a :class:`ViewUnavailable` naming the device
    and the dtype when the device file times no such instruction (or has no tensor path)."""
    if dtype not in ("tf32", "fp16", "bf16", "fp8"):
        raise ViewUnavailable(f"{dtype} GEMMs run on FP32 lanes, not tensor cores: the simulator"
                              " replays kernels/sgemm.cu for them (--kernel sgemm_tiled)")
    peak = getattr(spec.compute, f"peak_{dtype}_tensor_TFLOPS")
    opcode = mma_opcode(dtype, mainloop, n)
    if peak is None:
        raise ViewUnavailable(f"{spec.name} has no {dtype} tensor-core path (its device file"
                              f" gives no compute.peak_{dtype}_tensor_TFLOPS)")
    key = tensor_key(opcode)
    if key not in spec.compute.tensor_latency_cycles:
        raise ViewUnavailable(
            f"{spec.name}: no {dtype} tensor-core timing to simulate with (the device file's"
            f" compute.tensor_latency_cycles has no {key}; it has"
            f" {', '.join(sorted(spec.compute.tensor_latency_cycles)) or 'none'})"
        )
    return opcode


def at_clock(spec: DeviceSpec, clock_MHz: float) -> DeviceSpec:
    """``spec`` with its SM clock set to ``clock_MHz`` (the clock a power cap allows): peak rates
    and the L2 bandwidth scale with it (on-chip, as the analytical power model assumes); cycle
    counts, DRAM timings in ns and the host link do not change."""
    c = spec.compute
    if not 0 < clock_MHz <= c.boost_clock_MHz:
        raise SimgpuError(f"{spec.name}: clock {clock_MHz!r} MHz, expected 0 < clock <="
                          f" {c.boost_clock_MHz} (the boost clock)")
    r = clock_MHz / c.boost_clock_MHz
    peaks = {f.name: getattr(c, f.name) * r for f in dataclasses.fields(c)
             if f.name.startswith("peak_") and getattr(c, f.name) is not None}
    compute = replace(c, boost_clock_MHz=clock_MHz,
                      base_clock_MHz=min(c.base_clock_MHz, clock_MHz), **peaks)
    l2 = replace(spec.l2, bandwidth_GBps=spec.l2.bandwidth_GBps * r)
    return replace(spec, compute=compute, l2=l2)


def _share(lengths: list[int], total: int, each: int) -> list[int]:
    """``total`` trips shared among pieces of work of ``lengths`` trips: ``each`` to every
    piece (its whole length where shorter), the rest to the longest pieces, none past its own
    length; the pieces as they are when ``total`` covers them."""
    n, whole = len(lengths), sum(lengths)
    if total >= whole:
        return list(lengths)
    out = [min(x, each) for x in lengths]
    left = total - sum(out)
    if left < 0:
        raise SimgpuError(f"TensorGemm: {total} trips cannot sample a block of {n} pieces of"
                          f" work ({each} trips each)")
    for i in sorted(range(n), key=lambda j: -lengths[j]):
        add = min(lengths[i] - out[i], left)
        out[i] += add
        left -= add
    return out


@dataclass
class TensorGemm(GemmBase):
    """A CUTLASS-like tensor-core GEMM (see the module docstring); tiles in elements."""

    dtype: str = "fp16"
    tile_m: int = 128
    tile_n: int = 256
    stages: int = 3
    warps_m: int = 2
    warps_n: int = 4
    mainloop: str = "ampere"
    split_k: int = 1
    #: Hopper: thread blocks per cluster along M; the blocks of a cluster share their B tile,
    #: each copying its 1/cluster_m share with a TMA multicast to all of them.
    cluster_m: int = 1
    #: Persistent thread blocks of the library's stream-K kernel (the grid; a multiple of
    #: ``cluster_m``), each taking the work :class:`simgpu.analytical.gemm.StreamKPlan` gives
    #: its cluster; 0: one block per output tile (and per split), as before.
    workers: int = 0
    #: Operand bytes per row of a K step (``tile_k`` elements): one of the mainloop's
    #: :data:`~simgpu.analytical.params.LIBRARY_ROW_BYTES`.
    row_bytes: int = ROW_BYTES
    #: Block order (:data:`SWIZZLES`). 0: grid order, ``blockIdx.x`` over the tile columns (N),
    #: as the kernels of ``kernels/`` number their blocks. N > 0: CUTLASS 2's
    #: ``GemmIdentityThreadblockSwizzle<N>``: the grid is (tile rows x P, tile columns / P,
    #: split_k) for a panel width P (:func:`swizzle_log`), and ``blockIdx.x`` walks down the
    #: tile rows P columns at a time, so the blocks running together share a panel of B and A
    #: strips (better L2 reuse than a wave that spans every column); blocks past the last
    #: column exit at once. The library's kernels take :data:`LIBRARY_SWIZZLE`.
    swizzle: int = 0

    #: The ``ldmatrix`` of B fragments: B is N x K here (K contiguous), so not transposed.
    _LDSM_B = "LDSM.16.M88.4"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(tile_m=self.tile_m, tile_n=self.tile_n, stages=self.stages,
                       warps_m=self.warps_m, warps_n=self.warps_n, split_k=self.split_k,
                       cluster_m=self.cluster_m)
        if self.cluster_m > 1 and self.mainloop != "hopper":
            raise SimgpuError(f"TensorGemm: cluster_m = {self.cluster_m} needs the hopper"
                              " mainloop (TMA multicast); the ampere one has no clusters")
        if self.dtype not in ("tf32", "fp16", "bf16", "fp8"):
            raise SimgpuError(f"TensorGemm: dtype {self.dtype!r}, expected tf32, fp16, bf16 or"
                              " fp8")
        if self.mainloop not in MAINLOOPS:
            raise SimgpuError(f"TensorGemm: mainloop {self.mainloop!r}, expected one of"
                              f" {MAINLOOPS}")
        if self.stages < 2:
            raise SimgpuError(f"TensorGemm: stages = {self.stages}, expected at least 2")
        if self.swizzle not in SWIZZLES or (self.swizzle and (self.workers
                                                               or self.cluster_m > 1)):
            raise SimgpuError(f"TensorGemm: swizzle = {self.swizzle!r}, expected one of"
                              f" {SWIZZLES} (0 with stream-K workers or clusters: CUTLASS 2's"
                              " threadblock swizzle orders a data-parallel grid)")
        if self.row_bytes not in LIBRARY_ROW_BYTES[self.mainloop]:
            raise SimgpuError(f"TensorGemm: row_bytes = {self.row_bytes!r} with the"
                              f" {self.mainloop} mainloop, expected one of"
                              f" {LIBRARY_ROW_BYTES[self.mainloop]}")
        wm, wn = self.tile_m // self.warps_m, self.tile_n // self.warps_n
        if self.mainloop == "ampere":
            if self.tile_m % (16 * self.warps_m) or self.tile_n % (16 * self.warps_n):
                raise SimgpuError(
                    f"TensorGemm: tile {self.tile_m} x {self.tile_n} over {self.warps_m} x"
                    f" {self.warps_n} warps: expected warp tiles that are multiples of 16"
                )
            if (wm // 16) * (wn // 8) > 64:
                raise SimgpuError(f"TensorGemm: warp tile {wm} x {wn} holds more than 64 mma"
                                  " accumulator fragments (the register file's limit)")
        else:
            if self.threads % 128 or self.tile_m % (64 * self.warpgroups):
                raise SimgpuError(
                    f"TensorGemm: hopper mainloop with {self.threads} threads and tile_m"
                    f" {self.tile_m}: expected whole warpgroups (128 threads) of 64-row slabs"
                )
            if self.tile_n not in (64, 128, 256):
                raise SimgpuError(f"TensorGemm: hopper tile_n {self.tile_n}, expected 64, 128"
                                  " or 256 (one wgmma's N)")
        if self.workers < 0 or (self.workers and (self.split_k != 1
                                                  or self.workers % self.cluster_m)):
            raise SimgpuError(f"TensorGemm: workers = {self.workers} (stream-K), expected 0 or"
                              f" a multiple of cluster_m = {self.cluster_m}, without split-K"
                              f" (split_k = {self.split_k})")
        e = DTYPE_BYTES[self.dtype]
        lay = ArrayLayout()
        self._A = lay.alloc("A", self.M * self.K * e)
        self._B = lay.alloc("B", self.N * self.K * e)
        self._C = lay.alloc("C", self.M * self.N * self.out_bytes)
        self._plan: StreamKPlan | None = None
        if self.workers:
            self._plan = self.streamk_plan()
            # the workspace: one fp32 tile per block (a block writes at most one partial tile)
            self._W = lay.alloc("W", self.workers * self.tile_m * self.tile_n * 4)
            self._peers: dict[int, list[int]] = {}
            for q in range(self._plan.sk_units):
                for u, lo, _ in self._plan.sk_segments(q):
                    if lo > 0:
                        self._peers.setdefault(u, []).append(q)
        self._asm = Asm()
        self._trips_cut = None
        self._body: dict[tuple[int, int], list[Instruction]] = {}

    def streamk_plan(self) -> StreamKPlan:
        """The decomposition of this kernel's work over ``workers`` persistent blocks, at the
        granularity of clusters (CUTLASS 3 assigns stream-K work per cluster: the blocks of a
        cluster take the same K iterations of ``cluster_m`` output tiles stacked along M)."""
        if self.workers <= 0:
            raise SimgpuError("TensorGemm: no stream-K plan without workers (workers = 0)")
        cm = self.cluster_m
        rows = -(-self.M // self.tile_m)
        units = -(-rows // cm) * -(-self.N // self.tile_n)
        return StreamKPlan(units, -(-self.K // self.tile_k), self.workers // cm)

    @property
    def schedule(self) -> str:
        """``stream-k`` or ``data-parallel`` (:data:`simgpu.analytical.gemm.SCHEDULES`)."""
        return self._plan.schedule if self._plan is not None else "data-parallel"

    # -- shape ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return "gemm_tensor"

    @property
    def kernel(self) -> str:
        return "cublas"

    @property
    def tile_k(self) -> int:
        return self.row_bytes // DTYPE_BYTES[self.dtype]

    @property
    def k_step(self) -> int:
        return self.tile_k

    @property
    def trips(self) -> int:
        """K-loop trips of a block (stream-K: of the busiest block, over all its tiles)."""
        if self._trips_cut:
            return self._trips_cut
        if self._plan is not None:
            return self._plan.busiest_iters
        per_split = -(-self.K // self.split_k)
        return -(-per_split // self.tile_k)

    @property
    def threads(self) -> int:
        return 32 * self.warps_m * self.warps_n

    @property
    def warpgroups(self) -> int:
        return self.threads // 128

    @property
    def out_bytes(self) -> int:
        """Bytes per C element written: the library's output type; fp32 partial sums when K is
        split."""
        return 4 if self.split_k > 1 else DTYPE_OUT_BYTES[self.dtype]

    @property
    def compulsory_bytes(self) -> float:
        e_in, e_out = DTYPE_BYTES[self.dtype], DTYPE_OUT_BYTES[self.dtype]
        return float(e_in * (self.M * self.K + self.K * self.N) + e_out * self.M * self.N)

    def inputs(self) -> list[tuple[int, int]]:
        e = DTYPE_BYTES[self.dtype]
        return [(self._A, e * self.M * self.K), (self._B, e * self.K * self.N)]

    def tiles(self) -> dict[str, int]:
        return {"tile_m": self.tile_m, "tile_n": self.tile_n, "tile_k": self.tile_k,
                "threads_per_block": self.threads, "split_k": self.split_k,
                "stages": self.stages}

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        """The analytical model of this tile; scheduled as the library's persistent kernel
        (:class:`simgpu.analytical.gemm.StreamKPlan`) when the kernel has ``workers``."""
        t = self.tiles()
        return analytical.gemm(spec, self.M, self.N, self.K, self.dtype, kernel="cublas",
                               tile_m=t["tile_m"], tile_n=t["tile_n"], tile_k=t["tile_k"],
                               threads_per_block=t["threads_per_block"],
                               split_k=t["split_k"], stages=t["stages"],
                               library_streamk=self.workers > 0)

    def features(self) -> dict[str, Any]:
        raise ViewUnavailable("the learned view predicts the library's GEMM (LibraryGemm), not a"
                              " given tensor-core tile")

    def row_key(self) -> dict[str, Any]:
        raise ViewUnavailable("no calibration table measures a given tensor-core tile; the"
                              " measured cuBLAS rows are LibraryGemm's")

    def launch(self) -> KernelLaunch:
        e = DTYPE_BYTES[self.dtype]
        grid = (self.workers, 1, 1) if self.workers else self._grid()
        return KernelLaunch(
            name=(f"cutlass_{self.mainloop}_tensorop_{self.dtype}_{self.tile_m}x{self.tile_n}x"
                  f"{self.tile_k}_{self.stages}stage"
                  + ("_streamk" if self.workers else "")
                  + (f"_swizzle{self.swizzle}" if self.swizzle else "")),
            grid=grid,
            block=(self.threads, 1, 1),
            # the analytical model's figure (the compiled count where the catalogue has one,
            # else its accumulator rule), so that both views describe the same occupancy
            regs_per_thread=launch_registers(self.kernel, self.dtype, self.tile_m, self.tile_n,
                                             self.threads, self.stages),
            shared_bytes=self.stages * (self.tile_m + self.tile_n) * self.tile_k * e,
        )

    # -- trace ----------------------------------------------------------------------------------
    def _k_range(self, z: int) -> tuple[int, int]:
        """K elements [k0, k1) of split ``z``."""
        per = -(-self.K // self.split_k)
        return z * per, min(self.K, (z + 1) * per)

    def _rows_copy(self, base: int, rows: range, limit: int, k0: int, k1: int) -> list[
            tuple[int, int]]:
        """(address, bytes) of each in-range row segment of a tile: rows < ``limit``, K from
        ``k0`` to ``k1`` elements, row-major with K contiguous."""
        e = DTYPE_BYTES[self.dtype]
        if k1 <= k0:
            return []
        return [(base + (r * self.K + k0) * e, (k1 - k0) * e) for r in rows if r < limit]

    def _copies(self, w: int, bx: int, by: int, z: int, trip: int) -> list[Instruction]:
        """The copy instructions warp ``w`` issues for tile ``trip`` of its block."""
        a = self._asm
        k_lo, k_hi = self._k_range(z)
        k0 = k_lo + trip * self.tile_k
        k1 = min(k_hi, k0 + self.tile_k)
        segs = self._rows_copy(self._A, range(by * self.tile_m, (by + 1) * self.tile_m),
                               self.M, k0, k1)
        b_rows = range(bx * self.tile_n, (bx + 1) * self.tile_n)
        cm = self.cluster_m
        gm = -(-self.M // self.tile_m)
        if cm > 1 and (by // cm + 1) * cm <= gm:
            # TMA multicast: the cluster's blocks share this B tile; each copies its share to
            # all of them (each waits for its own share here: the others' land alike)
            part = self.tile_n // cm
            rank = by % cm
            b_rows = range(b_rows.start + rank * part, b_rows.start + (rank + 1) * part)
        segs += self._rows_copy(self._B, b_rows, self.N, k0, k1)
        out: list[Instruction] = []
        if self.mainloop == "hopper":
            if w != 0:
                return out
            starts = [s for s, _ in segs]
            for i in range(0, len(starts), 32):
                out.append(a.mem("UTMALDG.2D", "global", 16, starts[i:i + 32],
                                 src=(_R_ADDR,), mask=(1 << len(starts[i:i + 32])) - 1))
            return out
        # cp.async: 16 bytes a lane; chunk j of the tile goes to thread j % threads
        chunks = [s + c for s, n in segs for c in range(0, n, 16)]
        per_pass = self.threads
        for p0 in range(0, len(chunks), per_pass):
            mine = chunks[p0 + 32 * w:p0 + 32 * w + 32]
            if not mine:
                continue
            mask = (1 << len(mine)) - 1
            out.append(a.mem("LDGSTS.E.BYPASS.128", "global", 16, mine, src=(_R_ADDR,),
                             mask=mask))
        return out

    def _copy_slots(self, w: int, bx: int, by: int, z: int, trip: int) -> list[
            list[Instruction]]:
        """Warp ``w``'s copy instructions of tile ``trip`` (Ampere), split over the k steps
        before the last (all in one where a trip has one k step)."""
        copies = self._copies(w, bx, by, z, trip)
        n = max(self.k_steps - 1, 1)
        per = -(-len(copies) // n)
        return [copies[i * per:(i + 1) * per] for i in range(n)]

    def _loop(self) -> list[Instruction]:
        a = self._asm
        return [
            a.op("IADD3", dst=(_R_ADDR,), src=(_R_ADDR,)),
            a.op("IADD3", dst=(_R_LOOP,), src=(_R_LOOP,)),
            a.op("ISETP.GE.AND", src=(_R_LOOP,)),
            a.op("BRA"),
        ]

    def _wgmma(self) -> list[Instruction]:
        """One trip's wgmma of a warp (Hopper; block- and warp-independent)."""
        key = (-1, -1)
        if key in self._body:
            return self._body[key]
        a = self._asm
        opcode = mma_opcode(self.dtype, "hopper", self.tile_n)
        k_inst = int(opcode.split(".")[1].split("x")[2])
        slabs = self.tile_m // (64 * self.warpgroups)
        body = [a.op("WARPGROUP.ARRIVE")]
        for _ in range(self.tile_k // k_inst):
            for sl in range(slabs):
                acc = _ACC + sl
                body.append(a.op(opcode, dst=(acc,), src=(_R_ADDR, acc)))
        body.append(a.op("WARPGROUP.DEPBAR.LE.GSB0.1"))
        body += self._loop()
        self._body[key] = body
        return body

    @property
    def k_steps(self) -> int:
        """mma.sync k steps per trip (Ampere)."""
        return self.tile_k // (8 if self.dtype == "tf32" else 16)

    def _ldsm(self, parity: int, kk: int) -> list[Instruction]:
        """The ``ldmatrix`` fragment loads of k step ``kk`` from stage buffer ``parity``
        (Ampere; warp- and block-independent: conflict-free swizzled addresses)."""
        key = (parity, kk)
        if key in self._body:
            return self._body[key]
        a = self._asm
        wm, wn = self.tile_m // self.warps_m, self.tile_n // self.warps_n
        fa, fb = wm // 16, wn // 16  # LDSM.x4 per k step: 16 x k of A, k x 16 of B
        span = (self.tile_m + self.tile_n) * self.row_bytes
        stage = parity * span
        regs = (kk % 2) * 32
        out = []
        for f in range(fa + fb):
            base = stage + ((kk * (fa + fb) + f) * 512) % span
            reg = (_A_FRAG if f < fa else _B_FRAG) + regs + 4 * (f if f < fa else f - fa)
            opcode = "LDSM.16.M88.4" if f < fa else self._LDSM_B
            out.append(a.mem(opcode, "shared", 16, [base + 16 * i for i in range(32)],
                             dst=range(reg, reg + 4), src=(_R_ADDR,), cache=True))
        self._body[key] = out
        return out

    def _mma(self, kk: int) -> list[Instruction]:
        """The ``mma.sync`` of k step ``kk`` of a warp (Ampere; fragments double-buffered in
        registers over k steps)."""
        key = (-2, kk % 2)
        if key in self._body:
            return self._body[key]
        a = self._asm
        wm, wn = self.tile_m // self.warps_m, self.tile_n // self.warps_n
        opcode = mma_opcode(self.dtype, "ampere")
        regs = (kk % 2) * 32
        out = []
        for i in range(wm // 16):
            for j in range(wn // 8):
                acc = _ACC + i * (wn // 8) + j
                ra = _A_FRAG + regs + 4 * i
                rb = _B_FRAG + regs + 4 * (j // 2) + 2 * (j % 2)
                out.append(a.op(opcode, dst=(acc,), src=(ra, rb, acc)))
        self._body[key] = out
        return out

    def _epilogue(self, w: int, bx: int, by: int) -> list[Instruction]:
        """Stores of warp ``w``'s part of the C tile, 16 bytes a lane."""
        a = self._asm
        ob = self.out_bytes
        if self.mainloop == "hopper":
            wg, lw = divmod(w, 4)
            rows_per_wg = self.tile_m // self.warpgroups
            r0, c0 = by * self.tile_m + wg * rows_per_wg + lw * (rows_per_wg // 4), bx * self.tile_n
            nrows, ncols = rows_per_wg // 4, self.tile_n
            accs = [_ACC + s for s in range(self.tile_m // (64 * self.warpgroups))]
        else:
            wm, wn = self.tile_m // self.warps_m, self.tile_n // self.warps_n
            wy, wx = divmod(w, self.warps_n)
            r0, c0 = by * self.tile_m + wy * wm, bx * self.tile_n + wx * wn
            nrows, ncols = wm, wn
            accs = [_ACC + i for i in range((wm // 16) * (wn // 8))]
        out: list[Instruction] = []
        row_bytes = ncols * ob
        chunks = [(r, c) for r in range(r0, r0 + nrows) for c in range(0, row_bytes, 16)]
        for i in range(0, len(chunks), 32):
            lanes = chunks[i:i + 32]
            ok = [r < self.M and c0 + c // ob < self.N for r, c in lanes]
            m = lanes_mask(ok)
            if not m:
                continue
            addrs = [self._C + (r * self.N + c0) * ob + c for (r, c), g in zip(lanes, ok,
                                                                             strict=True) if g]
            src = (_R_ADDR, accs[(i // 32) % len(accs)])
            out.append(a.mem("STG.E.128", "global", 16, addrs, src=src, mask=m))
        return out

    def work(self, index: int) -> list[tuple[int, int, int, int, int, str, int]]:
        """What block ``index`` computes, in order: (bx, by, z, first trip, trips, role, tile)
        per output tile it works on. ``role``: ``tile`` (all of the tile's K: writes C),
        ``partial`` (a stream-K piece that does not start its tile: writes its fp32
        accumulators to the workspace), ``fixup`` (the piece that starts a tile others share:
        reads their partials, adds, writes C; :class:`simgpu.analytical.gemm.StreamKPlan`).
        One ``tile`` piece per block without ``workers`` (none for a block of a swizzled grid
        past the last tile column: it exits). With :meth:`with_trips` (sampling) a
        stream-K block keeps its pieces and their roles, ``stages`` trips each and the rest in
        its longest pieces (:func:`_share`)."""
        if self._plan is None:
            gn = -(-self.N // self.tile_n)
            bx, by, z = self._tile_of(index)
            if bx >= gn:
                return []  # a block of the last panel past the last tile column
            return [(bx, by, z, 0, self.trips, "tile", by * gn + bx)]
        plan, cm = self._plan, self.cluster_m
        q, rank = divmod(index, cm)
        segs = plan.segments(q)
        lengths = [hi - lo for _, lo, hi in segs]
        if self._trips_cut:
            lengths = _share(lengths, self._trips_cut, self.stages)
        gn, gm = -(-self.N // self.tile_n), -(-self.M // self.tile_m)
        out = []
        for (u, lo, hi), n in zip(segs, lengths, strict=True):
            bx, by = u % gn, (u // gn) * cm + rank
            if by >= gm or n <= 0:
                continue  # a cluster's row past the last tile row: that block idles
            role = "partial" if lo > 0 else ("fixup" if hi < plan.iters else "tile")
            out.append((bx, by, 0, lo, n, role, u))
        return out

    def _grid(self) -> tuple[int, int, int]:
        """The data-parallel grid: (tile columns, tile rows, splits), or with ``swizzle`` (tile
        rows x P, panels of P columns, splits)."""
        gn, gm = -(-self.N // self.tile_n), -(-self.M // self.tile_m)
        if not self.swizzle:
            return gn, gm, self.split_k
        log = swizzle_log(gn, self.swizzle)
        return gm << log, -(-gn >> log), self.split_k

    def _tile_of(self, index: int) -> tuple[int, int, int]:
        """(tile column, tile row, split) of block ``index`` of a data-parallel grid, in its
        block order (a column past the last: a swizzled grid's block with no tile)."""
        gx, gy, _ = self._grid()
        x, y, z = index % gx, (index // gx) % gy, index // (gx * gy)  # CUDA's numbering
        if not self.swizzle:
            return x, y, z
        log = swizzle_log(-(-self.N // self.tile_n), self.swizzle)
        return (y << log) + (x & ((1 << log) - 1)), x >> log, z

    def idle_blocks(self, first: int | None = None) -> int:
        """Blocks (of the first ``first``) of a swizzled grid past the last tile column."""
        if not self.swizzle or self._plan is not None:
            return 0
        gn = -(-self.N // self.tile_n)
        if first is None:
            gx, gy, gz = self._grid()
            return gx * gy * gz - gn * -(-self.M // self.tile_m) * self.split_k
        return sum(self._tile_of(i)[0] >= gn for i in range(first))

    def _partial_io(self, w: int, slot: int, store: bool) -> list[Instruction]:
        """Warp ``w``'s share of one fp32 partial tile in the stream-K workspace (slot
        ``slot``: a block's), 16 bytes a lane: stored from its accumulators, or loaded (into
        registers of their own, independent loads) and added to them (one ``FADD`` per load:
        the accumulators are representative registers, as the mma's)."""
        a = self._asm
        n_warps = self.threads // 32
        tile_bytes = self.tile_m * self.tile_n * 4
        per_warp = tile_bytes // n_warps
        base = self._W + slot * tile_bytes + w * per_warp
        if self.mainloop == "hopper":
            n_acc = self.tile_m // (64 * self.warpgroups)
        else:
            n_acc = (self.tile_m // self.warps_m // 16) * (self.tile_n // self.warps_n // 8)
        out: list[Instruction] = []
        adds: list[Instruction] = []
        for i, off in enumerate(range(0, per_warp, 512)):
            addrs = [base + off + 16 * lane for lane in range(32)]
            acc = _ACC + i % n_acc
            if store:
                out.append(a.mem("STG.E.128", "global", 16, addrs, src=(_R_ADDR, acc)))
            else:
                reg = _A_FRAG + i % (_B_FRAG - _A_FRAG)  # free once the K loop is done
                out.append(a.mem("LDG.E.128", "global", 16, addrs, dst=(reg,),
                                 src=(_R_ADDR,)))
                adds.append(a.op("FADD", dst=(acc,), src=(acc, reg)))
        return out + adds

    def _mainloop(self, w: int, bx: int, by: int, z: int, t0: int, trips: int) -> list[
            Instruction]:
        """Warp ``w``'s pipeline prologue and K loop over ``trips`` trips of tile (bx, by, z),
        from trip ``t0`` of its K range."""
        a = self._asm
        S = self.stages
        wait = a.op(f"DEPBAR.LE.SB0.{S - 2}")
        commit = a.op("LDGDEPBAR")
        bar = a.op("BAR.SYNC")
        hopper = self.mainloop == "hopper"
        insts: list[Instruction] = []
        for t in range(S - 1):
            if t < trips:
                insts += self._copies(w, bx, by, z, t0 + t)
            insts.append(commit)
        if hopper:
            for k in range(trips):
                if w == 0:
                    insts.append(wait)
                insts.append(bar)
                if k + S - 1 < trips:
                    insts += self._copies(w, bx, by, z, t0 + k + S - 1)
                insts.append(commit)
                insts += self._wgmma()
        else:
            # CUTLASS's multistage order: the next tile's copies spread over the k steps,
            # the wait and barrier before the last k step loads the next stage's first
            # fragments, so the tensor cores never wait for a whole tile's copies
            ks = self.k_steps
            insts += [wait, bar, *self._ldsm(0, 0)]
            for k in range(trips):
                # over the k steps before the last, whose start commits them
                slots = (self._copy_slots(w, bx, by, z, t0 + k + S - 1) if k + S - 1 < trips
                         else [[]])
                if ks == 1:
                    insts += slots[0]
                for kk in range(ks):
                    if kk == ks - 1:
                        insts += [commit, wait, bar]
                    if kk + 1 < ks:
                        insts += self._ldsm(k % S, kk + 1)
                    elif k + 1 < trips:
                        insts += self._ldsm((k + 1) % S, 0)
                    if kk < len(slots) and ks > 1:
                        insts += slots[kk]
                    insts += self._mma(kk)
                insts += self._loop()
        return insts

    def make_block(self, index: int) -> list[list[Instruction]]:
        a = self._asm
        launch = self.launch()
        work = self.work(index)
        warps: list[list[Instruction]] = []
        prologue = [
            a.op("S2R", dst=(0,)),
            a.op("S2R", dst=(1,)),
            a.op("IMAD", dst=(_R_ADDR,), src=(0, 1)),
            a.op("MOV", dst=(_R_LOOP,)),
        ]
        rank = index % self.cluster_m
        for w in range(launch.warps_per_block()):
            insts = list(prologue)
            for bx, by, z, t0, trips, role, tile in work:
                insts += self._mainloop(w, bx, by, z, t0, trips)
                if role == "partial":
                    insts += self._partial_io(w, index, store=True)
                    continue
                if role == "fixup":
                    # assumption: the peers' partials are there when the fix-up starts (each
                    # peer writes its piece at the start of its run, this block reaches the
                    # tile at the end of its own: Osama et al.'s order); the wait on their
                    # flags is not modelled
                    for q in self._peers.get(tile, []):
                        insts += self._partial_io(w, q * self.cluster_m + rank, store=False)
                insts += self._epilogue(w, bx, by)
            insts.append(a.op("EXIT"))
            warps.append(insts)
        return warps

    # -- simulation -----------------------------------------------------------------------------
    def simulate(
        self,
        spec: DeviceSpec,
        *,
        sample: bool = True,
        trip_samples: tuple[int, int] | None = None,
        warm_l2: bool = False,
        **kwargs: Any,
    ) -> SimResult:
        """Replay on ``spec`` (at its boost clock: :func:`at_clock` for another). Sampled as
        :meth:`GemmBase.simulate`, at trip counts that fill the pipeline: ``stages`` and twice
        that by default."""
        check_tensor_dtype(spec, self.dtype, self.mainloop, self.tile_n)
        if trip_samples is None:
            trip_samples = (self.stages, 2 * self.stages)
            if self._plan is not None:
                # a stream-K block's samples keep every piece of its work at ``stages`` trips;
                # the second adds 4 x ``stages`` trips to its longest piece, so that the slope
                # is that of trips inside a tile's K loop, past the pipeline's fill
                t1 = self.stages * max(len(self._plan.segments(q))
                                       for q in range(self._plan.workers))
                trip_samples = (t1, t1 + 4 * self.stages)
        return super().simulate(spec, sample=sample, trip_samples=trip_samples,
                                warm_l2=warm_l2, **kwargs)

    def params(self) -> dict[str, Any]:
        return {"workload": self.name, "M": self.M, "N": self.N, "K": self.K,
                "dtype": self.dtype, **self.tiles(), "warps_m": self.warps_m,
                "warps_n": self.warps_n, "mainloop": self.mainloop}


@dataclass
class TensorSimResult(SimResult):
    """A simulated library GEMM: the replay at the clock the power cap allows, its power."""

    #: Board power, W: the device file's energies per event (simgpu.analytical.power) over the
    #: simulated time, with the simulated L2 and DRAM bytes; None without a power section.
    power_W: float | None = None
    energy_J: float | None = None
    #: The kernel simulated (its tile, stages, mainloop) and where its clock came from.
    note: str = ""
    #: Fraction of the sub-cores' cycles their tensor cores are busy (issued tensor-core
    #: instructions x their interval over cycles x sub-cores x SMs).
    tensor_busy: float = 0.0

    def stall_breakdown(self) -> dict[str, float]:
        """Where the sub-cores' cycles go, as fractions: the tensor cores busy, and each reason
        a sub-core issued nothing (the replay's stall counts, of the simulated waves)."""
        total = sum(self.stalls.values()) or 1.0
        names = {"issued": "issuing", "pipe_busy": "waiting on the tensor pipe",
                 "async_copy": "waiting on cp.async/TMA", "barrier": "barriers",
                 "lsu_busy": "shared-memory/LSU bandwidth", "memory": "global loads",
                 "dependency": "register dependences", "rf_bank": "register banks",
                 "no_warps": "no warps"}
        out = {"tensor cores busy": self.tensor_busy}
        for k, v in self.stalls.items():
            if v > 0:
                out[names.get(k, k)] = v / total
        return out


def library_kernel(spec: DeviceSpec, M: int, N: int, K: int, dtype: str,
                   mainloop: str | None = None,
                   cluster_m: int = LIBRARY_CLUSTER_M) -> tuple[TensorGemm, Any]:
    """The tensor-core kernel the analytical model's library search picks for this GEMM (tile,
    K step, split-K, stages, threads; :data:`simgpu.analytical.gemm._LIBRARY_TENSOR_TILES`), as a
    :class:`TensorGemm`, and the analytical row (its clock under the power cap, its events)."""
    row = analytical.gemm(spec, M, N, K, dtype).iloc[0]
    if not bool(row["on_tensor_cores"]):
        raise ViewUnavailable(f"{spec.name}: {dtype} GEMMs do not run on its tensor cores")
    ml = mainloop or default_mainloop(spec)
    tm, tn, thr = int(row["tile_m"]), int(row["tile_n"]), int(row["threads_per_block"])
    if ml == "hopper":
        wm_, wn_ = thr // 32, 1
    else:
        wm_, wn_ = WARP_LAYOUTS.get((tm, tn, thr), (2, thr // 64))
    cm = cluster_m if ml == "hopper" else 1
    args: dict[str, Any] = dict(dtype=dtype, tile_m=tm, tile_n=tn, stages=int(row["stages"]),
                                warps_m=wm_, warps_n=wn_, mainloop=ml,
                                split_k=int(row["split_k"]),
                                row_bytes=int(row["tile_k"]) * DTYPE_BYTES[dtype])
    if row["schedule"] == "stream-k":
        # the persistent grid: every block slot of the device (the analytical occupancy)
        slots = int(row["blocks_per_sm"]) * spec.compute.sm_count
        kern = TensorGemm(M, N, K, cluster_m=cm, workers=slots // cm * cm, **args)
        if kern.schedule != "stream-k":
            # clusters that pair tile rows can quantise differently from single tiles: the
            # analytical search's schedule decides, so this kernel runs without clusters
            kern = TensorGemm(M, N, K, cluster_m=1, workers=slots, **args)
        return kern, row
    return TensorGemm(M, N, K, cluster_m=cm, swizzle=LIBRARY_SWIZZLE[ml] if cm == 1 else 0,
                      **args), row


def simulate_library(spec: DeviceSpec, M: int, N: int, K: int, dtype: str,
                     cluster_m: int = LIBRARY_CLUSTER_M, **kwargs: Any) -> TensorSimResult:
    """The simulated view of a library (cuBLAS) tensor-core GEMM: the kernel of
    :func:`library_kernel`, replayed at the SM clock the analytical power model allows for it
    (the ``clock_MHz`` of :func:`simgpu.analytical.gemm`), and its power from the device file's
    energies per event with the simulated time and traffic."""

    check_tensor_dtype(spec, dtype, default_mainloop(spec), 256)
    kern, row = library_kernel(spec, M, N, K, dtype, cluster_m=cluster_m)
    kwargs.setdefault("warm_l2", True)  # the measured library calls are back-to-back repeats
    what = (f"split-K {kern.split_k}"
            + (f", stream-K over {kern.workers} persistent blocks" if kern.workers else "")
            + (f", clusters of {kern.cluster_m}" if kern.cluster_m > 1 else "")
            + " (the analytical library search's choice)")
    return replay_at_capped_clock(spec, kern, row, what, **kwargs)


def replay_at_capped_clock(spec: DeviceSpec, kern: TensorGemm, row: Any, what: str,
                           **kwargs: Any) -> TensorSimResult:
    """``kern`` replayed at the SM clock the analytical power model allows for it (the
    ``clock_MHz`` of its analytical ``row``), and its power from the device file's energies per
    event with the simulated time and traffic; ``what`` describes the kernel in the note."""
    from simgpu.analytical import power as pw
    from simgpu.analytical.params import DeviceParams

    opcode = check_tensor_dtype(spec, kern.dtype, kern.mainloop, kern.tile_n)
    clock = float(row["clock_MHz"])
    res = TensorGemm.simulate(kern, at_clock(spec, clock), **kwargs)
    p = DeviceParams.from_spec(spec)
    events = {k[3:]: float(row[k]) for k in row.index if str(k).startswith("ev_")}
    events["l2_byte"] = res.bytes["l2"]["read"] + res.bytes["l2"]["write"]
    events["dram_byte"] = res.bytes["dram"]["read"] + res.bytes["dram"]["write"]
    ratio = clock / spec.compute.boost_clock_MHz
    busy = float(row["time_s"]) - float(row["t_overhead_s"])
    util = min(1.0, busy / res.time_s) if res.time_s > 0 else 0.0
    watts, energy, model = pw.power(p, events, res.time_s, util, ratio)
    clock_why = (f"the analytical power model's clock under the {spec.power.tdp_W:.0f} W cap"
                 if model.item() == "energy" else
                 "the boost clock: without energies per event the device file throttles nothing")
    note = (f"{kern.launch().name}, {what} at {clock:.0f} MHz ({clock_why}); power:"
            f" {model.item()} model over the simulated time and L2/DRAM bytes")
    fields = {f.name: getattr(res, f.name) for f in dataclasses.fields(SimResult)}
    ii = spec.compute.tensor_interval_cycles[tensor_key(opcode)]
    slots = res.cycles * spec.compute.warp_schedulers_per_sm * spec.compute.sm_count
    busy = res.op_counts.get("tensor", 0.0) * ii / slots if slots > 0 else 0.0
    return TensorSimResult(**fields, power_W=float(watts.item()), energy_J=float(energy.item()),
                           note=note, tensor_busy=busy)


@dataclass
class LibraryGemm(GemmBase):
    """A cuBLAS GEMM (``cublasGemmEx``, as ``simgpu calibrate`` times it): the library picks the
    kernel, so simgpu has its analytical estimate (the library's tile search), its learned
    prediction, its measurement, and for the tensor-core dtypes a simulation of the
    CUTLASS-like kernel that search picks (:func:`simulate_library`; the trace is that
    :class:`TensorGemm`'s, chosen per device, so this class has no launch of its own)."""

    dtype: str = "fp16"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.entry().check_dtype(self.dtype)

    @property
    def name(self) -> str:
        return "gemm_library"

    @property
    def kernel(self) -> str:
        return "cublas"

    @property
    def compulsory_bytes(self) -> float:
        e_in, e_out = DTYPE_BYTES[self.dtype], DTYPE_OUT_BYTES[self.dtype]
        return float(e_in * (self.M * self.K + self.K * self.N) + e_out * self.M * self.N)

    def tiles(self) -> dict[str, int]:
        return {}

    def launch(self) -> KernelLaunch:
        raise ViewUnavailable(
            "cuBLAS's kernel depends on the device: its simulated view replays the TensorGemm the"
            " library search picks there (LibraryGemm.simulate(spec))"
            if self.dtype != "fp32" else self.entry().unavailable("simulated"))

    @property
    def k_step(self) -> int:
        raise ViewUnavailable("cuBLAS chooses its own K step")

    def simulate(self, spec: DeviceSpec, **kwargs: Any) -> SimResult:
        """The library's tensor-core GEMM simulated as the CUTLASS-like kernel of the analytical
        model's library search, at the clock the power cap allows
        (:func:`simgpu.workloads.tensor_gemm.simulate_library`); fp32 (SIMT) calls have no
        trace to replay."""
        if self.dtype == "fp32":
            raise ViewUnavailable(self.entry().unavailable("simulated"))
        return simulate_library(spec, self.M, self.N, self.K, self.dtype, **kwargs)

    def calibration_point(self) -> dict[str, Any]:
        if self.dtype == "fp8":
            raise ViewUnavailable("simgpu calibrate times cuBLAS in fp32, tf32, fp16 and bf16,"
                                  " not fp8")
        return {"kernel": "cublas", "variant": "cublas", "dtype": self.dtype, "M": self.M,
                "N": self.N, "K": self.K}

    def params(self) -> dict[str, Any]:
        return {"workload": self.name, "M": self.M, "N": self.N, "K": self.K,
                "dtype": self.dtype}


#: Integer instructions nvcc 13.0 emits per cp.async of kernels/mma_gemm.cu's mainloop (the
#: chunk's address, its in-bounds predicate, the select of a safe address for a zero-filled
#: chunk), and per trip for the loop and the stage indices besides the 3 of the generic loop.
#: Source: cuobjdump -sass of the mainloop (sm_80: 102 integer instructions per trip for
#: mma128x128, 106 for mma64x64, each with 8 cp.async a thread; sm_90: 113 and 116);
#: 12 x 8 + 4 + 3 = 103 (docs/tensor-cores.md, "The kernel of our own").
MMA_COPY_INT_OPS = 12
MMA_TRIP_INT_OPS = 4
#: Integer instructions per cp.async of the tf32 mainloop, as :data:`MMA_COPY_INT_OPS` for the
#: 16-bit ones: nvcc keeps more of its addresses in registers (206 and 158 against 168 and
#: 116). Source: cuobjdump -sass of mma_gemm_tf32: 85 integer instructions per trip besides
#: the conversions to tf32 on sm_80 for both variants (each with 8 cp.async a thread), 100 and
#: 109 on sm_90; 10 x 8 + 4 + 3 = 87.
MMA_TF32_COPY_INT_OPS = 10
#: SASS instructions per operand register ``cvt.rna.tf32.f32`` compiles to: FSETP.GEU.AND (is
#: it finite) and IMAD.IADD.U32 (the rounding add). Source: cuobjdump -sass of mma_gemm_tf32,
#: sm_80 and sm_90: 96 of each per trip for mma128x128 (24 operand registers per k step x 4),
#: 64 for mma64x64.
TF32_CVT_OPS = ("FSETP.GEU.AND", "IMAD.IADD.U32")


@dataclass
class MmaGemm(TensorGemm):
    """``kernels/mma_gemm.cu``: the Ampere mainloop of :class:`TensorGemm` as that kernel has
    it, so that its simulated view replays the kernel its measured rows timed.

    What differs from the library's kernel that :class:`TensorGemm` describes: B is K x N
    row-major (N contiguous; the kernel's ``ldmatrix`` of B transposes:
    ``LDSM.16.MT88.4``), A and B chunks go to threads in order (chunk ``i x threads + tid``),
    a chunk outside the matrices is still issued (zero-filled: its lane masked here), every
    ``cp.async`` comes with the integer instructions nvcc emits for it
    (:data:`MMA_COPY_INT_OPS`), and the epilogue stores C from the mma fragments, 4 bytes a
    lane. fp16 and bf16; and tf32 (``mma_gemm_tf32``: fp32 operands rounded to tf32 in registers,
    :data:`TF32_CVT_OPS` per operand register, B's fragments loaded an element at a time with
    ``LDS``, :data:`MMA_TF32_COPY_INT_OPS` integer instructions a copy, C stored as fp32 pairs,
    8 bytes a lane). N and K multiples of 8 (the kernel's 16-byte chunks); no split-K."""

    tile_m: int = 128
    tile_n: int = 128
    stages: int = 3
    warps_m: int = 2
    warps_n: int = 4

    _LDSM_B = "LDSM.16.MT88.4"

    def __post_init__(self) -> None:
        if self.dtype not in ("fp16", "bf16", "tf32"):
            raise SimgpuError(f"MmaGemm: dtype {self.dtype!r}, expected fp16, bf16 or tf32 (the"
                              " functions of kernels/mma_gemm.cu)")
        if self.mainloop != "ampere" or self.split_k != 1 or self.cluster_m != 1:
            raise SimgpuError("MmaGemm: kernels/mma_gemm.cu is an ampere mainloop without"
                              f" split-K or clusters, not mainloop={self.mainloop!r},"
                              f" split_k={self.split_k}, cluster_m={self.cluster_m}")
        if self.row_bytes != ROW_BYTES:
            raise SimgpuError(f"MmaGemm: row_bytes = {self.row_bytes}, expected {ROW_BYTES}"
                              " (kernels/mma_gemm.cu's K step)")
        for name in ("N", "K"):
            v = getattr(self, name)
            if isinstance(v, int) and v % 8:
                raise SimgpuError(f"MmaGemm: {name} = {v}, expected a multiple of 8"
                                  " (kernels/mma_gemm.cu copies 16-byte chunks of rows)")
        super().__post_init__()
        if self.tile_n % 64 or self.tile_k * DTYPE_BYTES[self.dtype] % 128 or self.k_steps < 2:
            raise SimgpuError(f"MmaGemm: tile {self.tile_m} x {self.tile_n} x {self.tile_k},"
                              " expected tile_n a multiple of 64 and rows of tile_k a multiple"
                              " of 128 bytes (the kernel's swizzle)")
        ce = self.chunk_elems
        for what, chunks in (("A", self.tile_m * self.tile_k // ce),
                             ("B", self.tile_k * self.tile_n // ce)):
            if chunks % self.threads:
                raise SimgpuError(f"MmaGemm: the {what} tile's {chunks} chunks do not divide"
                                  f" among {self.threads} threads")

    @property
    def name(self) -> str:
        return "gemm_mma"

    @property
    def kernel(self) -> str:
        return "mma_gemm"

    @property
    def out_bytes(self) -> int:
        return DTYPE_OUT_BYTES[self.dtype]

    @property
    def chunk_elems(self) -> int:
        """Elements of a 16-byte ``cp.async`` chunk."""
        return 16 // DTYPE_BYTES[self.dtype]

    @property
    def copies(self) -> int:
        """``cp.async`` a thread issues per tile."""
        return (self.tile_m + self.tile_n) * self.tile_k // self.chunk_elems // self.threads

    def tiles(self) -> dict[str, int]:
        """The tile arguments of :func:`simgpu.analytical.gemm` (those of its catalogue
        variant, :meth:`simgpu.catalogue.Variant.analytical_tiles`); the thread tile is the
        accumulators of a lane's mma fragments."""
        wm, wn = self.tile_m // self.warps_m, self.tile_n // self.warps_n
        return {"tile_m": self.tile_m, "tile_n": self.tile_n, "tile_k": self.tile_k,
                "thread_tile_m": wm // 8, "thread_tile_n": wn // 4,
                "threads_per_block": self.threads}

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        return analytical.gemm(spec, self.M, self.N, self.K, self.dtype, kernel=self.kernel,
                               split_k=1, stages=self.stages, **self.tiles())

    def features(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "dtype": self.dtype, "M": self.M, "N": self.N,
                "K": self.K, **self.tiles(), "split_k": 1, "stages": self.stages}

    def row_key(self) -> dict[str, Any]:
        return GemmBase.row_key(self)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "stages": self.stages}

    def calibration_point(self) -> dict[str, Any]:
        for v in self.entry().variants:
            if dict(v.params) == {k: getattr(self, k) for k in v.params}:
                return {"kernel": "own", "variant": v.name, "dtype": self.dtype, "M": self.M,
                        "N": self.N, "K": self.K}
        raise ViewUnavailable(
            f"mma_gemm with tile {self.tile_m} x {self.tile_n}, {self.warps_m} x"
            f" {self.warps_n} warps, {self.stages} stages is not one of the variants"
            f" kernels/mma_gemm.cu compiles ({[v.name for v in self.entry().variants]})")

    def launch(self) -> KernelLaunch:
        return KernelLaunch(
            name=f"mma_gemm_{self.dtype}",
            grid=(-(-self.N // self.tile_n), -(-self.M // self.tile_m), 1),
            block=(self.threads, 1, 1),
            # the compiler's count, from the catalogue variant of this tile (the rule of
            # simgpu.analytical.gemm.tensor_op_registers for a tile no variant compiles), as
            # the analytical view takes it
            regs_per_thread=launch_registers(self.kernel, self.dtype, self.tile_m, self.tile_n,
                                             self.threads, self.stages),
            shared_bytes=self.stages * (self.tile_m + self.tile_n) * self.tile_k
            * DTYPE_BYTES[self.dtype],
        )

    def simulate(self, spec: DeviceSpec, **kwargs: Any) -> SimResult:
        """Replayed as the library's kernels are (:func:`replay_at_capped_clock`): at the SM
        clock the analytical power model allows for this kernel, with a power."""
        row = self.estimate(spec).iloc[0]
        return replay_at_capped_clock(spec, self, row, "kernels/mma_gemm.cu", **kwargs)

    def _int_ops(self, n: int) -> list[Instruction]:
        """``n`` independent integer instructions (address arithmetic)."""
        a = self._asm
        return [a.op("IMAD", dst=(4 + i % 4,), src=(_R_ADDR,)) for i in range(n)]

    def _copies(self, w: int, bx: int, by: int, z: int, trip: int) -> list[Instruction]:
        return [i for g in self._copy_groups(w, bx, by, trip) for i in g]

    def _copy_slots(self, w: int, bx: int, by: int, z: int, trip: int) -> list[
            list[Instruction]]:
        """Whole copies per k step, as the kernel's COPIES_PER_STEP: ceil(copies / (k steps -
        1)) at each k step before the last."""
        groups = self._copy_groups(w, bx, by, trip)
        n = self.k_steps - 1
        per = -(-len(groups) // n)
        return [[i for g in groups[s * per:(s + 1) * per] for i in g] for s in range(n)]

    def _copy_groups(self, w: int, bx: int, by: int, trip: int) -> list[list[Instruction]]:
        """Warp ``w``'s ``cp.async`` of tile ``trip``, one list per copy (its integer
        instructions and the copy): copy i of thread t moves chunk ``i x threads + t`` of the A
        tile (rows of tile_k elements), then of the B tile (tile_k rows of tile_n elements),
        as the kernel's ``tile_copy``."""
        a = self._asm
        e = DTYPE_BYTES[self.dtype]
        ce = self.chunk_elems
        k0 = trip * self.tile_k
        ca, cb = self.tile_k // ce, self.tile_n // ce
        a_copies = self.tile_m * ca // self.threads
        out: list[list[Instruction]] = []
        for i in range(self.copies):
            ok, addrs = [], []
            for lane in range(32):
                if i < a_copies:
                    r, c = divmod(i * self.threads + 32 * w + lane, ca)
                    gr, gk = by * self.tile_m + r, k0 + c * ce
                    valid = gr < self.M and gk < self.K
                    addr = self._A + (gr * self.K + gk) * e
                else:
                    r, c = divmod((i - a_copies) * self.threads + 32 * w + lane, cb)
                    gk, gn = k0 + r, bx * self.tile_n + c * ce
                    valid = gk < self.K and gn < self.N
                    addr = self._B + (gk * self.N + gn) * e
                ok.append(valid)
                if valid:
                    addrs.append(addr)
            group = self._int_ops(MMA_TF32_COPY_INT_OPS if self.dtype == "tf32"
                                  else MMA_COPY_INT_OPS)
            if addrs:  # a chunk wholly outside A or B: zero-filled, no global traffic
                group.append(a.mem("LDGSTS.E.BYPASS.LTC128B.128", "global", 16, addrs,
                                   src=(_R_ADDR,), mask=lanes_mask(ok)))
            out.append(group)
        return out

    def _loop(self) -> list[Instruction]:
        return self._int_ops(MMA_TRIP_INT_OPS) + super()._loop()

    def _ldsm(self, parity: int, kk: int) -> list[Instruction]:
        """16-bit types: :meth:`TensorGemm._ldsm` with B's ``ldmatrix`` transposed. tf32: A's
        ``LDSM.16.M88.4`` as there (16-byte rows, whatever the type), B's two elements per n8
        tile and lane (rows t and t + 4, column g) with ``LDS``, 4 bytes a lane, conflict-free
        (the kernel's B swizzle)."""
        if self.dtype != "tf32":
            return super()._ldsm(parity, kk)
        key = (parity + 100, kk)
        if key in self._body:
            return self._body[key]
        a = self._asm
        wm, wn = self.tile_m // self.warps_m, self.tile_n // self.warps_n
        fa = wm // 16
        out = [i for i in super()._ldsm(parity, kk) if i.opcode == "LDSM.16.M88.4"][:fa]
        span = (self.tile_m + self.tile_n) * ROW_BYTES
        stage = parity * span + self.tile_m * ROW_BYTES
        regs = (kk % 2) * 32
        for j in range(wn // 8):
            for h in (0, 1):
                base = stage + ((kk * 2 * (wn // 8) + 2 * j + h) * 128) % (span - self.tile_m
                                                                          * ROW_BYTES)
                out.append(a.mem("LDS", "shared", 4, [base + 4 * i for i in range(32)],
                                 dst=(_B_FRAG + regs + 2 * j + h,), src=(_R_ADDR,), cache=True))
        self._body[key] = out
        return out

    def _mma(self, kk: int) -> list[Instruction]:
        """:meth:`TensorGemm._mma`; tf32: first this k step's fragments, loaded a k step
        before, rounded to tf32 in place (:data:`TF32_CVT_OPS` per register)."""
        if self.dtype != "tf32":
            return super()._mma(kk)
        key = (-3, kk % 2)
        if key in self._body:
            return self._body[key]
        a = self._asm
        wm, wn = self.tile_m // self.warps_m, self.tile_n // self.warps_n
        regs = (kk % 2) * 32
        frags = [_A_FRAG + regs + r for r in range(4 * (wm // 16))]
        frags += [_B_FRAG + regs + r for r in range(2 * (wn // 8))]
        out = [a.op(TF32_CVT_OPS[0], src=(r,)) for r in frags]
        out += [a.op(TF32_CVT_OPS[1], dst=(r,), src=(r,)) for r in frags]
        out += super()._mma(kk)
        self._body[key] = out
        return out

    def _epilogue(self, w: int, bx: int, by: int) -> list[Instruction]:
        """C from the mma fragments: per m16n8 tile, rows g and g + 8 of lane (g, t) = (lane /
        4, lane % 4), columns 2t and 2t + 1 as one store (4 bytes of 16-bit C, 8 of fp32)."""
        a = self._asm
        ob = self.out_bytes
        opcode = "STG.E.64" if ob == 4 else "STG.E"
        wm, wn = self.tile_m // self.warps_m, self.tile_n // self.warps_n
        wy, wx = divmod(w, self.warps_n)
        r0, c0 = by * self.tile_m + wy * wm, bx * self.tile_n + wx * wn
        out: list[Instruction] = []
        for i in range(wm // 16):
            for j in range(wn // 8):
                acc = _ACC + i * (wn // 8) + j
                for half in (0, 1):
                    ok, addrs = [], []
                    for lane in range(32):
                        row = r0 + i * 16 + lane // 4 + 8 * half
                        col = c0 + j * 8 + 2 * (lane % 4)
                        valid = row < self.M and col < self.N
                        ok.append(valid)
                        if valid:
                            addrs.append(self._C + (row * self.N + col) * ob)
                    if addrs:
                        out.append(a.mem(opcode, "global", 2 * ob, addrs, src=(_R_ADDR, acc),
                                         mask=lanes_mask(ok)))
        return out
