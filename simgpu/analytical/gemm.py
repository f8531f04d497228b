"""Tiled-GEMM model: traffic per level, waves, occupancy, roofs, power.

C (M x N) = A (M x K) x B (K x N). A kernel tiles C into ``tile_m x tile_n`` blocks; each block
walks K in steps of ``tile_k`` (``K / split_k`` of it with split-K), staging A and B tiles in
shared memory; each thread computes a ``thread_tile_m x thread_tile_n`` piece from registers.

Per point the model counts
- FLOPs executed (the tiles pad M and N up to whole tiles);
- L1/shared wavefronts (128-B shared-memory or L1 accesses) the SIMT inner loop needs;
- L2 -> SM bytes: every block reads its A strip and B strip: ``blocks x (tile_m + tile_n) x K``;
- DRAM bytes: compulsory (A, B read once, C written once) when the operands fit in L2; otherwise
  B is streamed again for every group of block rows that run in one wave (blocks are launched in
  raster order along N), while an A strip (tile_m x K) is reused by the blocks of its row;
and turns them into time with one roof per unit: compute (FFMA lanes or tensor cores) and shared
memory per SM, for the blocks the busiest SM runs (whole blocks: the grid's quantisation over
the SMs), L2 and DRAM bandwidth, and the power cap (:mod:`simgpu.analytical.power`: a point
that would draw more than the board's cap runs at the lower clock that fits, which stretches
the on-chip roofs; the ``clock_MHz`` column gives that clock), plus launch overhead and one
DRAM round trip to fill the pipeline.
``kernel="cublas"`` picks, for every point, the fastest of a few tile configurations that
CUTLASS/cuBLAS use, as the library's heuristic does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simgpu import catalogue
from simgpu.analytical import power as pw
from simgpu.analytical.occupancy import blocks_per_sm, waves
from simgpu.analytical.params import DTYPE_BYTES, DTYPE_OUT_BYTES, DeviceParams
from simgpu.arch.coalesce import shared_wavefronts
from simgpu.errors import SimgpuError

#: The families' codes in this model's arrays (simgpu.catalogue.FAMILIES, in order).
_CLASS_ID = {family: i for i, family in enumerate(catalogue.FAMILIES)}

#: Default tiles of a family when the caller gives none: (tile_m, tile_n, tile_k,
#: thread_tile_m, thread_tile_n, threads_per_block), those of the default variant of our own
#: kernel of that family (kernels/sgemm.cu: reg64, tile16, naive16). The library family has
#: none: its tiles are the library search's (kernels/mma_gemm.cu, of that family, gives its own).
_DEFAULT_TILES = {
    _CLASS_ID[k.family]: tuple(k.variant().analytical_tiles().values())
    for k in catalogue.kernels_of_kind("gemm")
    if k.variants and k.family != "library"
}

#: Tile shapes tried for ``kernel="cublas"`` on tensor cores: (tile_m, tile_n, threads, stages,
#: operand bytes per row of a K step). assumption: the CTA shapes of CUTLASS's default
#: Ampere/Hopper tensor-op GEMMs (CUTLASS profiler kernel names, e.g.
#: cutlass_tensorop_h16816gemm_256x128_32x3, 128x256, 128x128_64x4, 128x64, 64x64), first with
#: a K step of 128 B of operand (64 halves, 32 floats), then the same shapes with 64 B (32
#: halves, 16 floats) at the stage counts CUTLASS's sm_80 generator gives them (256x128x32 and
#: 128x256x32 in 3, 128x128x32 in 3-5 (4 here), 128x64x32 in 6, 64x64x32 in 10:
#: python/cutlass_library/generator.py, GenerateSM80_TensorOp_16816; the 128x128 tile keeps the
#: 256 threads of its 128-byte twin). A device takes the rows of
#: :attr:`DeviceParams.library_row_bytes` (64 B only before compute capability 9.0:
#: :data:`simgpu.analytical.params.LIBRARY_ROW_BYTES`). The search
#: keeps the first of equally fast tiles, so a 64-byte tile is chosen only where it is faster
#: (where the 128-byte tiles that fit in shared memory are small, as on the RTX 4090).
_LIBRARY_TENSOR_TILES = (
    (256, 128, 256, 3, 128),
    (128, 256, 256, 3, 128),
    (128, 128, 256, 4, 128),
    (128, 64, 128, 4, 128),
    (64, 64, 128, 4, 128),
    (256, 128, 256, 3, 64),
    (128, 256, 256, 3, 64),
    (128, 128, 256, 4, 64),
    (128, 64, 128, 6, 64),
    (64, 64, 128, 10, 64),
)
#: For FP32 FFMA: (tile_m, tile_n, tile_k, thread_tile_m, thread_tile_n, threads, stages).
#: assumption: the SIMT CTA shapes of cuBLAS's sgemm kernels as their names give them
#: (NeuSight data: volta_sgemm_128x128, 128x64, 64x64, 32x128, 32x32_sliced1x4), K step 8.
_LIBRARY_SIMT_TILES = (
    (128, 128, 8, 8, 8, 256, 2),
    (128, 64, 8, 8, 4, 256, 2),
    (64, 64, 8, 4, 4, 256, 2),
    (32, 128, 8, 4, 4, 256, 2),
    (32, 32, 8, 2, 2, 256, 2),
)
#: Split-K factors the library search tries (unless ``library_split_k=False``).
#: Source: cuBLAS splits K for shapes with few output tiles; the NeuSight cuBLAS SGEMM traces
#: (neusight/train_linear, grid z of the launched kernel) show factors from 2 up to 52, mostly
#: under 16. assumption: powers of two up to 16 cover the useful range.
LIBRARY_SPLIT_K = (1, 2, 4, 8, 16)
#: The library search splits K only where the unsplit grid has fewer output-tile blocks than
#: this per SM. Source: NeuSight's cuBLAS SGEMM traces (neusight/train_linear, 32,224 launches
#: on five GPUs): 89% of the 11,349 split-K launches have fewer than 8 blocks per SM in grid
#: x * y, against 27% of the unsplit ones.
LIBRARY_SPLIT_MAX_BLOCKS_PER_SM = 8.0

#: Stream-K: the fewest K-loop iterations (k tiles) a stream-K unit may take; a GEMM whose
#: output tiles take no more iterations than this is left data-parallel. Source: CUTLASS 3,
#: ``PersistentTileSchedulerSm90StreamKParams::min_iters_per_sk_unit_`` = 8
#: (include/cutlass/gemm/kernel/tile_scheduler_params.h).
STREAMK_MIN_ITERS = 8

#: The library search's schedules: ``data-parallel`` (one thread block per output tile, in
#: waves) and ``stream-k`` (persistent thread blocks that share the K-loop iterations of the
#: tiles a partial last wave would leave, :class:`StreamKPlan`).
SCHEDULES = ("data-parallel", "stream-k")


@dataclass(frozen=True)
class StreamKPlan:
    """The work decomposition of a persistent library GEMM: CUTLASS 3's stream-K tile scheduler
    in its heuristic mode (``PersistentTileSchedulerSm90StreamKParams``:
    ``get_num_sk_tiles``, ``get_num_sk_units``; the "data-parallel + two-tile stream-K" hybrid
    of Osama et al., "Stream-K: Work-centric Parallel Decomposition for Dense Matrix-Matrix
    Multiplication on the GPU", PPoPP 2023, section 5).

    ``workers`` persistent workers (thread blocks, or clusters of ``cluster`` blocks: CUTLASS
    assigns stream-K work per cluster, a cluster's blocks taking the same K iterations of
    ``cluster`` output tiles stacked along M) and ``units`` output tiles (of a cluster's size)
    of ``iters`` K-loop iterations each. Without wave quantisation (the tiles fill whole waves of
    workers), with at most :data:`STREAMK_MIN_ITERS` iterations a tile, or with a last wave at
    least half full, every tile is data-parallel (``sk_tiles == 0``). Otherwise all waves but the
    last two full ones' worth stay data-parallel, and the rest (``sk_tiles``: one full wave plus
    the partial one) are shared out as iterations: ``sk_units`` workers (at most one per worker,
    at least :data:`STREAMK_MIN_ITERS` iterations each) take consecutive runs of the linearised
    (tile, iteration) space, ``sk_total // sk_units`` iterations each and one more for the first
    ``sk_total % sk_units``, crossing tile boundaries. A tile shared by several workers is
    fixed up as the paper's Algorithm 5 does: each worker whose piece does not start the tile
    (its first piece, the tail of a tile begun before its run) writes its fp32 partial
    accumulators to a workspace and signals; the worker holding the tile's first iteration (its
    last piece, at the end of its run) waits for them, reads and adds them, and writes C.

    Tiles are numbered stream-K tiles first, then data-parallel ones, raster along N (tile
    ``u`` is column ``u % tiles_n``, row ``u // tiles_n``); worker ``w`` takes its stream-K run
    first, then data-parallel tiles ``sk_tiles + w``, ``sk_tiles + w + workers``, ..."""

    units: int
    iters: int
    workers: int

    def __post_init__(self) -> None:
        for name in ("units", "iters", "workers"):
            if getattr(self, name) < 1:
                raise SimgpuError(f"StreamKPlan: {name} = {getattr(self, name)}, expected >= 1")

    @property
    def sk_tiles(self) -> int:
        """Tiles whose iterations are shared out (0: data-parallel)."""
        full, rem = divmod(self.units, self.workers)
        if rem == 0 or self.iters <= STREAMK_MIN_ITERS or 2 * rem >= self.workers:
            return 0
        dp_waves = full - 1 if full > 1 else 0
        return self.units - dp_waves * self.workers

    @property
    def dp_tiles(self) -> int:
        return self.units - self.sk_tiles

    @property
    def sk_units(self) -> int:
        """Workers taking stream-K iterations."""
        if not self.sk_tiles:
            return 0
        return min(self.workers, self.sk_tiles * self.iters // STREAMK_MIN_ITERS)

    @property
    def schedule(self) -> str:
        return SCHEDULES[1] if self.sk_units else SCHEDULES[0]

    def sk_range(self, worker: int) -> tuple[int, int]:
        """The [first, last) stream-K iterations of ``worker`` (empty when it takes none)."""
        n = self.sk_units
        if worker >= n:
            return 0, 0
        per, big = divmod(self.sk_tiles * self.iters, n)
        start = worker * per + min(worker, big)
        return start, start + per + (1 if worker < big else 0)

    def sk_segments(self, worker: int) -> list[tuple[int, int, int]]:
        """``worker``'s stream-K run, as (tile, first iteration, end iteration) per tile."""
        out = []
        lo, hi = self.sk_range(worker)
        while lo < hi:
            tile, k = divmod(lo, self.iters)
            end = min(hi, (tile + 1) * self.iters)
            out.append((tile, k, k + end - lo))
            lo = end
        return out

    def segments(self, worker: int) -> list[tuple[int, int, int]]:
        """``worker``'s work in order, as (tile, first iteration, end iteration) per tile: its
        stream-K run, then its data-parallel tiles."""
        if not 0 <= worker < self.workers:
            raise SimgpuError(f"StreamKPlan: worker {worker}, expected 0 <= worker <"
                              f" {self.workers}")
        return self.sk_segments(worker) + [
            (t, 0, self.iters) for t in range(self.sk_tiles + worker, self.units, self.workers)]

    @property
    def busiest_iters(self) -> int:
        """Iterations of the busiest worker: worker 0 (the first stream-K workers take the
        remainder's extra iteration; every worker takes the same data-parallel tiles)."""
        return sum(hi - lo for _, lo, hi in self.segments(0))

    @property
    def partials(self) -> int:
        """Partial tiles written to the workspace (and read back by the fix-up): the stream-K
        runs' pieces that do not start their tile."""
        return _streamk_partials(self.units, self.iters, self.workers)


@functools.lru_cache(maxsize=4096)
def _streamk_partials(units: int, iters: int, workers: int) -> int:
    plan = StreamKPlan(units, iters, workers)
    return sum(1 for w in range(plan.sk_units) for _, lo, _ in plan.sk_segments(w) if lo > 0)


@functools.lru_cache(maxsize=4096)
def _streamk_figures(units: int, iters: int, workers: int) -> tuple[int, int, int, int]:
    """(sk_tiles, sk_units, busiest worker's iterations, partial tiles) of a plan."""
    plan = StreamKPlan(units, iters, workers)
    if not plan.sk_units:
        return 0, 0, 0, 0
    return plan.sk_tiles, plan.sk_units, plan.busiest_iters, plan.partials


def _as_str_array(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=object)
    return np.broadcast_to(arr, shape)


#: Warp instructions a library SIMT GEMM issues per K-tile besides its FFMAs and fragment
#: loads (LDS): one 128-bit global load and one shared store per 4 staged floats per thread,
#: two barriers and about four for the loop and its addresses. assumption: the double-buffered
#: mainloop of CUTLASS's SIMT GEMM (cutlass/gemm/threadblock/mma_pipelined.h), the SASS of
#: cuBLAS's sgemm kernels is not published.
LIBRARY_SIMT_TILE_ISSUE = 2 + 4


def ffma_issue_efficiency(
    p: DeviceParams, ffma: np.ndarray, other: np.ndarray
) -> np.ndarray:
    """The fraction of the FFMA peak a SIMT inner loop reaches when its sub-cores must issue
    ``ffma`` FFMA and ``other`` other warp instructions per step (arrays).

    A sub-core issues one warp instruction per cycle (:attr:`DeviceParams.
    dispatch_per_scheduler` per cycle on Pascal); an FFMA warp instruction holds its FP32 lanes
    32 / lanes-per-sub-core cycles. With 16 lanes per sub-core (Volta, Turing, A100) the lanes
    are the limit and the other instructions issue in the gaps; with 32 (Ada, Hopper) every
    other instruction takes a cycle from the FFMAs. (Jia et al. measured cuBLAS SGEMM at
    15.53 TFLOP/s on a V100 SXM2 of 15.7 peak: published/gpu_numbers.csv.) Each FFMA also costs
    :attr:`DeviceParams.simt_issue_overhead` slots: what a calibration run measured beyond these
    counts (0 in a published-figures device file)."""
    lanes = p.fp32_lanes_per_sm / max(p.schedulers_per_sm, 1)
    pipe = ffma * p.sm.warp_size / lanes
    issue = (ffma * (1.0 + p.simt_issue_overhead) + other) / p.dispatch_per_scheduler
    return np.asarray(pipe / np.maximum(pipe, issue), dtype=float)


def _regs_estimate(ttm: np.ndarray, ttn: np.ndarray) -> np.ndarray:
    """Registers per thread of a SIMT GEMM thread: accumulators + fragments + 32 for addresses.

    assumption: nvcc keeps the thread tile and one A and B fragment in registers and needs
    about 32 more for indices, pointers and loop state (the reg128 kernel of kernels/sgemm.cu
    would use 64 + 16 + 32 = 112; nvcc reports 100-128 for such kernels).
    """
    return np.minimum(ttm * ttn + ttm + ttn + 32, 255)


#: Registers a thread of a tensor-op thread block holds besides its fp32 accumulators: the A
#: and B mma fragments (double-buffered over k steps), shared and global addresses, swizzle
#: offsets, loop and stage indices. Source: the two kernels whose counts simgpu has,
#: kernels/mma_gemm.cu as nvcc 13.0 compiles it (simgpu.catalogue, ``mma_gemm`` variants):
#: ``mma128x128`` (256 threads, 64 accumulators a thread) takes 168, 104 besides them (48 of
#: them fragments of its 64 x 32 warp tile); ``mma64x64`` (128 threads, 32 accumulators) takes
#: 116, 84 besides them (32 of fragments, 32 x 32 warp tile). assumption: their mean, 94, for
#: every other tensor-op tile (the library's kernels publish no counts). The rule gives 158 and
#: 126 for those two, -10 and +10 registers (-6% and +9%); it is fitted to them, so this is no
#: held-out check. Held out of the fit, the same kernel's tf32 functions take 206 and 158
#: (B's fragments loaded element by element, more addresses kept in registers): the rule is
#: 48 and 32 under them (-23%, -20%). At the register file's granularity the rule and all six
#: compiled counts give the same blocks per SM on the bundled sm_80/sm_89/sm_90 devices
#: (tests/test_tc_occupancy.py). Not modelled: a Hopper wgmma kernel reads its operands from
#: shared memory (no fragment registers) and CUTLASS 3's warp-specialised kernels move
#: registers from producer to consumer warps (setmaxnreg).
TENSOR_OP_OTHER_REGISTERS = 94
#: The most registers a thread may take (CUDA C++ Programming Guide, technical specifications:
#: 255 for compute capability 5.0 and later); a larger tile spills rather than fail.
MAX_REGISTERS_PER_THREAD = 255


def tensor_op_registers(tile_m: Any, tile_n: Any, threads: Any) -> np.ndarray:
    """Registers per thread of a tensor-op thread block of ``tile_m x tile_n`` fp32
    accumulators over ``threads`` threads (arrays): the accumulators a thread holds plus
    :data:`TENSOR_OP_OTHER_REGISTERS`, at most :data:`MAX_REGISTERS_PER_THREAD`. The rule for
    kernels whose compiled count simgpu does not have (:func:`launch_registers`)."""
    acc = np.ceil(np.asarray(tile_m, dtype=float) * np.asarray(tile_n, dtype=float)
                  / np.asarray(threads, dtype=float))
    return np.asarray(np.minimum(acc + TENSOR_OP_OTHER_REGISTERS, MAX_REGISTERS_PER_THREAD))


def compiled_registers(
    kernel: str, dtype: str, tile_m: int, tile_n: int, threads: int, stages: int
) -> int:
    """The registers per thread the catalogue records for the variant of ``kernel`` with this
    block tile, threads and stages, in ``dtype`` (:attr:`simgpu.catalogue.Variant.
    regs_per_thread`); 0 where it records none."""
    for v in catalogue.get(kernel).variants:
        if (v.tile[:2] == (tile_m, tile_n) and v.threads_per_block == threads
                and v.params.get("stages", stages) == stages and dtype in v.regs_per_thread):
            return int(v.regs_per_thread[dtype])
    return 0


def launch_registers(
    kernel: str, dtype: str, tile_m: int, tile_n: int, threads: int, stages: int
) -> int:
    """Registers per thread of a tensor-op launch, as both the simulated launch and the
    analytical occupancy take them: the compiled count where the catalogue has one
    (:func:`compiled_registers`), else the rule of :func:`tensor_op_registers`."""
    known = compiled_registers(kernel, dtype, tile_m, tile_n, threads, stages)
    return known or int(tensor_op_registers(tile_m, tile_n, threads))


def _compiled_registers_array(
    kn: np.ndarray, dt: np.ndarray, tm: np.ndarray, tn: np.ndarray, thr: np.ndarray,
    st: np.ndarray
) -> np.ndarray:
    """:func:`compiled_registers` per point (0 where the catalogue records none)."""
    out = np.zeros(kn.size)
    with_counts = {k.name for k in catalogue.kernels_of_kind("gemm")
                   if any(v.regs_per_thread for v in k.variants)}
    rows = np.flatnonzero(np.isin(kn, list(with_counts)))
    seen: dict[tuple[str, str, int, int, int, int], int] = {}
    for i in rows:
        key = (str(kn[i]), str(dt[i]), int(tm[i]), int(tn[i]), int(thr[i]), int(st[i]))
        if key not in seen:
            seen[key] = compiled_registers(*key)
        out[i] = seen[key]
    return out


@functools.lru_cache(maxsize=256)
def _regblock_wavefronts(
    bm: int, bn: int, bk: int, tm: int, tn: int, threads: int
) -> tuple[float, float]:
    """Shared-memory wavefronts of kernels/sgemm.cu's ``sgemm_regblock``, from its index
    arithmetic and the bank rule the simulator applies (:func:`simgpu.arch.coalesce.
    shared_wavefronts`): (fragment reads per warp per k step, staging stores per warp per BK
    tile). Warp 0 stands for every warp (the others are the same pattern shifted).

    Reads: ``As[k][trow*TM + i]`` and ``Bs[k][tcol*TN + j]``, 128-bit where the fragment is a
    multiple of 4 floats (else 32-bit), trow = tid / (BN/TN), tcol = tid % (BN/TN). Stores, one
    element per thread per pass, e = tid + pass x threads: ``As[e % BK][e / BK]`` (A transposed:
    a warp's lanes walk k, BM words apart) and ``Bs[e / BN][e % BN]``.
    """
    lanes = range(32)

    def frag(bases: list[int], n: int) -> float:
        vec = 4 if n % 4 == 0 else 1
        return float(sum(shared_wavefronts([4 * (b + j) for b in bases], 4 * vec)
                         for j in range(0, n, vec)))

    per_row = max(bn // tn, 1)
    reads = frag([(t // per_row) * tm for t in lanes], tm) + frag(
        [(t % per_row) * tn for t in lanes], tn)
    stores = 0.0
    for p in range(max(bm * bk // threads, 1)):
        stores += shared_wavefronts([4 * ((e % bk) * bm + e // bk)
                                     for e in (t + p * threads for t in lanes)], 4)
    for p in range(max(bk * bn // threads, 1)):
        stores += shared_wavefronts([4 * ((e // bn) * bn + e % bn)
                                     for e in (t + p * threads for t in lanes)], 4)
    return reads, stores


def _evaluate(
    p: DeviceParams,
    M: np.ndarray,
    N: np.ndarray,
    K: np.ndarray,
    dtype: np.ndarray,
    kcls: np.ndarray,
    tm: np.ndarray,
    tn: np.ndarray,
    tk: np.ndarray,
    ttm: np.ndarray,
    ttn: np.ndarray,
    threads: np.ndarray,
    split_k: np.ndarray,
    stages: np.ndarray,
    ours: np.ndarray | None = None,
    compiled_regs: np.ndarray | None = None,
    streamk: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The model for fully specified tiles (arrays of one shape). ``ours``: points that run
    kernels/sgemm.cu's ``sgemm_regblock``, whose shared-memory bank conflicts are counted from
    its index arithmetic (:func:`_regblock_wavefronts`); other kernels are taken as
    conflict-free. ``compiled_regs``: registers per thread where the compiler's count is known
    (:func:`compiled_registers`; 0 elsewhere: the rules below). ``streamk``: points that run
    the library's persistent kernel, whose decomposition is :class:`StreamKPlan`'s for its grid
    (tensor-op points without split-K; where the plan is data-parallel, the figures are those
    of the grid of tiles)."""
    e_in = np.zeros(M.shape)
    e_out = np.zeros(M.shape)
    peak = np.zeros(M.shape)
    on_tensor = np.zeros(M.shape, dtype=bool)
    for name in DTYPE_BYTES:
        mask = dtype == name
        if not mask.any():
            continue
        e_in[mask] = DTYPE_BYTES[name]
        e_out[mask] = DTYPE_OUT_BYTES[name]
        peak[mask] = p.peak_flops(name)
        on_tensor[mask] = p.tensor[name]
    simt = ~on_tensor
    # A library kernel on tensor cores with fp32 data on a device without tf32 tensor cores
    # runs on FFMA lanes: it is SIMT then.
    gm = np.ceil(M / tm)
    gn = np.ceil(N / tn)
    ks = np.ceil(K / split_k)
    blocks = gm * gn * split_k
    flops = 2.0 * M * N * K
    exec_flops = 2.0 * (gm * tm) * (gn * tn) * (np.ceil(ks / tk) * tk) * split_k

    # occupancy
    smem = np.where(
        kcls == _CLASS_ID["naive"], 0.0, stages * (tm + tn) * tk * e_in
    )
    # registers: the compiler's count where known, else the tensor-op rule
    # (tensor_op_registers, as the simulated launch takes it) or the SIMT estimate
    regs = np.where(on_tensor, tensor_op_registers(tm, tn, threads), _regs_estimate(ttm, ttn))
    if compiled_regs is not None:
        regs = np.where(compiled_regs > 0, compiled_regs, regs)
    bps, limiter = blocks_per_sm(p.sm, threads, regs, smem)
    fits = bps > 0
    bps_safe = np.maximum(bps, 1.0)
    n_waves, tail = waves(blocks, bps_safe, p.sm_count)
    occupancy = bps * np.ceil(threads / p.sm.warp_size) / p.sm.max_warps_per_sm

    # compute roof, per SM: the busiest SM runs ceil(blocks / SMs) blocks (the block scheduler
    # deals them out in turn; assumption: blocks of one grid take equal times), and its resident
    # blocks share its pipes, so a partly filled last wave costs only the blocks it holds.
    # Counting whole waves (waves x blocks_per_sm) over-counts that wave: in calibration run
    # 20261122T154403Z sgemm_regblock 64x64 ran 1024^3 (256 blocks, 2 on the busiest SM) in
    # 122 us and 2048^3 (1024 blocks, 8 per SM, twice the K) in 891 us, 7.3x for 8x the busiest
    # SM's work, where whole waves (4 and 8 slots per SM) predict 4x. (The simulator's wave
    # sampling, simgpu.workloads.gemm, scales its partial last wave the same way.)
    per_block_flops = 2.0 * tm * tn * np.ceil(ks / tk) * tk
    per_sm_peak = peak / p.sm_count
    busiest = np.ceil(blocks / p.sm_count)
    # stream-K (StreamKPlan): the busiest SM runs its resident workers' iterations, in tiles
    trips = np.ceil(ks / tk)
    sk_tiles, sk_units, fixups = (np.zeros(M.shape) for _ in range(3))
    if streamk is not None and np.any(streamk & on_tensor & (split_k <= 1) & fits):
        idx = np.flatnonzero(streamk & on_tensor & (split_k <= 1) & fits)
        figs = np.array([_streamk_figures(int(gm[i] * gn[i]), int(trips[i]),
                                          int(bps[i] * p.sm_count)) for i in idx])
        sk_tiles[idx], sk_units[idx], fixups[idx] = figs[:, 0], figs[:, 1], figs[:, 3]
        on = figs[:, 1] > 0
        busiest[idx[on]] = bps[idx[on]] * figs[on, 2] / trips[idx[on]]
    t_compute = busiest * per_block_flops / per_sm_peak

    # L1 / shared-memory wavefronts per warp per k step (SIMT inner loop)
    # regblock: LDS.128 for the contiguous A and B fragments -> ceil(t/4) each
    # tiled:    As[ty][k..k+3] is one 128-bit broadcast load per 4 k, Bs[k][tx] one per k
    # naive:    two L1 loads per k (A broadcast within the warp, B 64 B contiguous)
    # assumption: conflict-free layouts, except for sgemm_regblock (``ours``, below)
    wf_simt = np.select(
        [kcls == 1, kcls == 2, kcls == 3],
        [np.ceil(ttm / 4) + np.ceil(ttn / 4), 1.25 + 0 * ttm, 2.0 + 0 * ttm],
        default=np.ceil(ttm / 4) + np.ceil(ttn / 4),
    )
    warps_per_block = np.ceil(threads / p.sm.warp_size)
    kpad = np.ceil(ks / tk) * tk
    # staging stores into shared memory (one wavefront per 128 B) and, for tensor-op kernels,
    # the tensor cores' reads of the staged tiles (each staged byte read once per warp group
    # column: assumption, counted once)
    stage_bytes = (tm + tn) * kpad * e_in
    staging = np.where(kcls == 3, 0.0, stage_bytes / 128.0)
    if ours is not None and np.any(ours):
        # one bank-conflict count per tile shape (shapes in order of first appearance)
        shapes = pd.DataFrame(np.stack([tm, tn, tk, ttm, ttn, threads], axis=1)[ours]
                              .astype(np.int64))
        shape_id = shapes.groupby(list(shapes.columns), sort=False).ngroup().to_numpy()
        table = np.array([_regblock_wavefronts(*map(int, row))
                          for row in shapes.drop_duplicates().itertuples(index=False)])
        wf = table[shape_id]
        wf_simt[ours] = wf[:, 0]
        staging[ours] = warps_per_block[ours] * wf[:, 1] * kpad[ours] / tk[ours]
    # the library's SIMT kernels: the sub-core's issue slots (ffma_issue_efficiency) per k step
    # of a thread: ttm x ttn FFMAs, the fragment loads, and the K-tile's other instructions
    lib_simt = simt & (kcls == 0)
    if np.any(lib_simt):
        vec_loads = np.ceil((tm + tn) * tk / threads / 4.0)
        other = wf_simt + (2.0 * vec_loads + LIBRARY_SIMT_TILE_ISSUE) / tk
        eta = ffma_issue_efficiency(p, ttm * ttn, other)
        t_compute = np.where(lib_simt, t_compute / eta, t_compute)
    wf_block_simt = warps_per_block * kpad * wf_simt
    wf_block = np.where(on_tensor, 2 * stage_bytes / 128.0, wf_block_simt + staging)
    wf_per_cycle = p.l1_bytes_per_cycle / 128.0
    t_smem = busiest * wf_block / (wf_per_cycle * p.clock_hz)
    # FFMA issue: fp32 lanes / 32 warp instructions per cycle; a SIMT thread issues ttm x ttn
    # FFMAs per k, which the FLOP count already holds, so t_compute covers it.

    # traffic
    a_bytes = M * K * e_in
    b_bytes = K * N * e_in
    c_bytes = M * N * e_out
    partial = np.where(split_k > 1, 2.0 * split_k * M * N * 4.0, 0.0)  # fp32 partials, w + r
    # stream-K's fix-up: each partial tile written (fp32) and read back once
    partial = partial + 2.0 * fixups * tm * tn * 4.0
    l2_bytes = blocks * (tm + tn) * kpad * e_in + c_bytes + partial
    slots = bps_safe * p.sm_count
    rows_per_wave = np.maximum(np.floor(slots / (gn * split_k)), 1.0)
    b_passes = np.where(b_bytes <= 0.5 * p.l2_size_B, 1.0, np.ceil(gm / rows_per_wave))
    fits_l2 = a_bytes + b_bytes + c_bytes <= p.l2_size_B
    dram_bytes = np.where(
        fits_l2,
        a_bytes + b_bytes + c_bytes,
        a_bytes + b_bytes * b_passes + c_bytes + partial,
    )
    dram_bytes = np.minimum(dram_bytes, l2_bytes)
    t_l2 = l2_bytes / (p.l2_bandwidth_GBps * 1e9)
    t_dram = dram_bytes / (p.dram_bandwidth_GBps * 1e9)

    # power events, and the clock the power cap allows (simgpu.analytical.power: on-chip roofs
    # stretch as the clock drops, the DRAM roof does not)
    events: dict[str, np.ndarray] = {name: np.zeros(M.shape) for name in pw.EVENTS}
    events["ffma_flop"] = np.where(simt, exec_flops, 0.0)
    for name in ("tf32", "fp16", "bf16", "fp8"):
        events[f"tensor_{name}_flop"] = np.where(on_tensor & (dtype == name), exec_flops, 0.0)
    events["l1_byte"] = blocks * wf_block * 128.0
    events["l2_byte"] = l2_bytes
    events["dram_byte"] = dram_bytes
    energy_model = pw.has_energies(p, events) & bool(p.energy_pJ)
    overhead = p.launch_overhead_s + p.dram_latency_ns * 1e-9
    t_core = np.maximum(np.maximum(t_compute, t_smem), t_l2)
    ratio = np.ones(M.shape)
    if np.any(energy_model):
        capped = pw.capped_clock_ratio(p, events, t_core, t_dram, overhead)
        ratio = np.where(energy_model, capped, 1.0)

    roofs = np.stack([t_compute / ratio, t_smem / ratio, t_l2 / ratio, t_dram])
    busy = roofs.max(axis=0)
    time_s = overhead + busy
    bound_names = np.array(["compute", "shared", "l2", "dram"], dtype=object)
    bound = bound_names[roofs.argmax(axis=0)]
    bound = np.where((ratio < 1.0) & (bound != "dram"), "power", bound)
    bound = np.where(overhead > busy, "launch", bound)
    t_power = np.where(ratio < 1.0, busy, 0.0)
    time_s = np.where(fits, time_s, np.inf)
    util = busy / time_s
    watts, energy, model = pw.power(p, events, time_s, util, ratio)
    return {
        "flops": flops,
        "exec_flops": exec_flops,
        "tile_m": tm,
        "tile_n": tn,
        "tile_k": tk,
        "thread_tile_m": ttm,
        "thread_tile_n": ttn,
        "threads_per_block": threads,
        "split_k": split_k,
        "stages": stages,
        "schedule": np.where(sk_units > 0, SCHEDULES[1], SCHEDULES[0]).astype(object),
        "sk_tiles": sk_tiles,
        "sk_units": sk_units,
        "fixup_tiles": fixups,
        "regs_per_thread": regs,
        "smem_per_block_B": smem,
        "blocks": blocks,
        "blocks_per_sm": bps,
        "occupancy": occupancy,
        "waves": n_waves,
        "tail_efficiency": tail,
        "l1_bytes": events["l1_byte"],
        "l2_bytes": l2_bytes,
        "dram_bytes": dram_bytes,
        "arithmetic_intensity": flops / dram_bytes,
        "t_compute_s": t_compute,
        "t_shared_s": t_smem,
        "t_l2_s": t_l2,
        "t_dram_s": t_dram,
        "t_power_s": t_power,
        "t_overhead_s": np.full(M.shape, overhead),
        "clock_MHz": p.clock_MHz * ratio,
        "time_s": time_s,
        "bound": bound,
        "on_tensor_cores": on_tensor,
        "power_W": watts,
        "energy_J": energy,
        "power_model": model,
        **{f"ev_{k}": v for k, v in events.items()},
    }


def library_call_floor_s(p: DeviceParams, kernel: str, dtype: str) -> float:
    """The shortest time the harness measures a call of ``kernel`` in ``dtype``: the device
    file's library call floor (``host_link.library_call_floor_us``, fitted by `simgpu fit`) for
    the library's own calls, 0 for every other kernel (ours of the library family included:
    they are launched without the library)."""
    entry = catalogue.get(kernel)
    if entry.family != "library" or entry.source is not None:
        return 0.0
    return float(p.library_floor_s.get(dtype, 0.0))


def gemm(
    spec: Any,
    M: Any,
    N: Any,
    K: Any,
    dtype: Any = "fp32",
    *,
    tile_m: Any = None,
    tile_n: Any = None,
    tile_k: Any = None,
    thread_tile_m: Any = None,
    thread_tile_n: Any = None,
    threads_per_block: Any = None,
    split_k: Any = 1,
    stages: Any = None,
    kernel: Any = "cublas",
    library_split_k: Any = True,
    library_streamk: Any = True,
) -> Any:
    """Closed-form GEMM estimate, one row per point (all arguments broadcast together).

    ``dtype``: "fp32" (FFMA, no tensor cores), "tf32", "fp16", "bf16", "fp8". ``kernel``:
    a GEMM kernel of :mod:`simgpu.catalogue` ("cublas": tiles chosen per point unless given;
    "sgemm_regblock", "cutlass", "clblast": register-blocked SIMT; "sgemm_tiled": thread tile
    1x1; "sgemm_naive"), modelled by its family. Tile arguments of 0 or None mean
    "the kernel's default". A library point whose tiles and split-K are not given (split-K <= 1)
    also tries the split-K factors of :data:`LIBRARY_SPLIT_K`, as cuBLAS does for shapes with few
    output tiles (``library_split_k=False``: tiles only). A cuBLAS point on tensor cores without
    split-K, on a device whose library kernels are persistent
    (:attr:`DeviceParams.library_streamk`: compute capability 9.0 and up), runs with the
    schedule :class:`StreamKPlan` decides for its tile and grid: stream-K where the tiles' last
    wave would be less than half full (``library_streamk=False``: every tile data-parallel, one
    block per tile). Returns a DataFrame with ``time_s``,
    ``tflops``, ``bound``, ``power_W``, ``energy_J`` and the model's intermediate figures. A
    library call on a device whose file gives the host's call floor for its dtype
    (``host_link.library_call_floor_us``) takes at least that long (bound "host").
    """
    p = DeviceParams.from_spec(spec)
    M_, N_, K_ = (np.asarray(x, dtype=float) for x in (M, N, K))
    shape = np.broadcast_shapes(
        M_.shape,
        N_.shape,
        K_.shape,
        np.shape(dtype),
        np.shape(kernel),
        *(np.shape(x) for x in (tile_m, tile_n, tile_k, thread_tile_m, thread_tile_n)),
        np.shape(threads_per_block),
        np.shape(split_k),
        np.shape(stages),
    )
    shape = shape if shape else (1,)
    M_, N_, K_ = (np.broadcast_to(x, shape).ravel().copy() for x in (M_, N_, K_))
    for name, arr in (("M", M_), ("N", N_), ("K", K_)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 1):
            raise SimgpuError(f"gemm: {name} must be integers >= 1, got {arr[~(arr >= 1)][:3]}")
    dt = _as_str_array(dtype, shape).ravel()
    bad = sorted({str(d) for d in set(dt.tolist()) if d not in DTYPE_BYTES})
    if bad:
        raise SimgpuError(f"gemm: dtype {bad} unknown, expected one of {list(DTYPE_BYTES)}")
    kn = _as_str_array(kernel, shape).ravel()
    kinds = set(kn.tolist())
    gemms = [k.name for k in catalogue.kernels_of_kind("gemm")]
    bad = sorted({str(k) for k in kinds if k not in gemms})
    if bad:
        raise SimgpuError(f"gemm: kernel {bad} unknown, expected one of {gemms}")
    kcls = np.zeros(M_.size, dtype=int)
    for k in kinds:
        kcls[kn == k] = _CLASS_ID[catalogue.family_of(k)]

    def arg(x: Any) -> np.ndarray:
        if x is None:
            return np.zeros(M_.size)
        a = np.asarray(x, dtype=float)
        a = np.where(np.isnan(a), 0.0, a)
        return np.broadcast_to(a, shape).ravel().astype(float)

    tm, tn, tk = arg(tile_m), arg(tile_n), arg(tile_k)
    ttm, ttn, thr = arg(thread_tile_m), arg(thread_tile_n), arg(threads_per_block)
    sk = np.maximum(arg(split_k), 1.0)
    st = arg(stages)
    for cid, (dm, dn, dk, dtm, dtn, dthr) in _DEFAULT_TILES.items():
        m = kcls == cid
        for a, d in ((tm, dm), (tn, dn), (tk, dk), (ttm, dtm), (ttn, dtn), (thr, dthr)):
            a[m & (a <= 0)] = d
    st[(kcls != 0) & (st <= 0)] = 1.0
    # the tiled kernel's K step is its tile; naive has no K step beyond 1
    given = (kcls == 0) & (tm > 0) & (tn > 0)
    lib = (kcls == 0) & ~given
    out: dict[str, np.ndarray] | None = None
    if np.any(kcls != 0) or np.any(given):
        idx = np.flatnonzero(~lib)
        t_ = {k: v[idx] for k, v in dict(tm=tm, tn=tn, tk=tk, ttm=ttm, ttn=ttn, thr=thr).items()}
        lib_given = kcls[idx] == 0
        # a library point with given tiles but no details: fill the rest like the search would
        e_in = np.array([DTYPE_BYTES[d] for d in dt[idx]])
        t_["tk"] = np.where(lib_given & (t_["tk"] <= 0), 128 / e_in, t_["tk"])
        t_["thr"] = np.where(lib_given & (t_["thr"] <= 0), 256, t_["thr"])
        t_["ttm"] = np.where(t_["ttm"] <= 0, np.maximum(t_["tm"] / 16, 1), t_["ttm"])
        t_["ttn"] = np.where(t_["ttn"] <= 0, np.maximum(t_["tn"] / 16, 1), t_["ttn"])
        st_i = np.where(lib_given & (st[idx] <= 0), 3, st[idx])
        cls_i = np.where(lib_given, 0, kcls[idx])
        out = _scatter(
            out,
            idx,
            M_.size,
            _evaluate(p, M_[idx], N_[idx], K_[idx], dt[idx], cls_i, t_["tm"], t_["tn"], t_["tk"],
                      t_["ttm"], t_["ttn"], t_["thr"], sk[idx], st_i,
                      ours=kn[idx] == "sgemm_regblock",
                      compiled_regs=_compiled_registers_array(kn[idx], dt[idx], t_["tm"],
                                                              t_["tn"], t_["thr"], st_i),
                      streamk=(kn[idx] == "cublas") & bool(library_streamk)
                      & p.library_streamk),
        )
    if np.any(lib):
        idx = np.flatnonzero(lib)
        out = _scatter(out, idx, M_.size, _library_search(p, M_[idx], N_[idx], K_[idx], dt[idx],
                                                           sk[idx], bool(library_split_k),
                                                           bool(library_streamk)
                                                           and p.library_streamk))
    assert out is not None
    if p.library_floor_s and np.any(kcls == 0):
        # the host's pace (power and energy stay the kernel's)
        floor = np.array([library_call_floor_s(p, str(k), str(d)) if c == 0 else 0.0
                          for k, d, c in zip(kn, dt, kcls, strict=True)])
        paced = floor > out["time_s"]
        out["time_s"] = np.where(paced, floor, out["time_s"])
        out["bound"] = np.where(paced, "host", out["bound"])
    frame = pd.DataFrame(
        {"M": M_.astype(np.int64), "N": N_.astype(np.int64), "K": K_.astype(np.int64),
         "dtype": dt, "kernel": kn, **out}
    )
    frame["tflops"] = frame["flops"] / frame["time_s"] / 1e12
    frame["device"] = p.name
    return frame


def _scatter(
    out: dict[str, np.ndarray] | None, idx: np.ndarray, n: int, part: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    if out is None:
        out = {}
        for k, v in part.items():
            dtype = v.dtype if v.dtype != object else object
            out[k] = np.empty(n, dtype=dtype)
    for k, v in part.items():
        out[k][idx] = v
    return out


def _library_search(
    p: DeviceParams,
    M: np.ndarray,
    N: np.ndarray,
    K: np.ndarray,
    dt: np.ndarray,
    sk: np.ndarray,
    split_search: bool = False,
    streamk: bool = True,
) -> dict[str, np.ndarray]:
    """The fastest of the library tile shapes (and, with ``split_search``, split-K factors for
    points without one) for each point; with ``streamk``, each tensor-op tile without split-K
    scheduled as :class:`StreamKPlan` decides (the tile's time is the schedule's). Of
    tensor-op tiles of one split-K that tie, the one that reads fewer bytes from the L2; other
    ties go to the first in the list."""
    best: dict[str, np.ndarray] | None = None
    on_tensor = np.array([p.tensor[d] for d in dt])
    e_in = np.array([DTYPE_BYTES[d] for d in dt], dtype=float)
    ones = np.ones(M.size)
    candidates: list[tuple[float, float, np.ndarray, float, float, float, float, np.ndarray]] = []
    for a, b, c, d, row in _LIBRARY_TENSOR_TILES:
        if row in p.library_row_bytes:
            candidates.append((a, b, row / e_in, a / 16, b / 16, c, d, on_tensor))
    for a, b, k, ta, tb, c, d in _LIBRARY_SIMT_TILES:
        candidates.append((a, b, k * ones, ta, tb, c, d, ~on_tensor))
    free = sk <= 1
    splits = LIBRARY_SPLIT_K if split_search else (1,)
    for tm, tn, tk, ttm, ttn, thr, st, valid in candidates:
        may_split = valid & free & (np.ceil(M / tm) * np.ceil(N / tn)
                                    < LIBRARY_SPLIT_MAX_BLOCKS_PER_SM * p.sm_count)
        for s in splits:
            idx = np.flatnonzero(may_split if s > 1 else valid)
            if idx.size == 0:
                continue
            one = np.ones(idx.size)
            sk_i = np.where(free[idx], float(s), sk[idx])
            res = _evaluate(p, M[idx], N[idx], K[idx], dt[idx], np.zeros(idx.size, dtype=int),
                            tm * one, tn * one, tk[idx], ttm * one, ttn * one, thr * one, sk_i,
                            st * one, streamk=on_tensor[idx] & streamk)
            if best is None:
                best = {}
                for key, v in res.items():
                    best[key] = np.empty(M.size, dtype=v.dtype)
                best["time_s"][:] = np.inf
            cur = best["time_s"][idx]
            better = res["time_s"] < cur
            # a tie between tensor-op tiles of one split-K (the model times them equal when
            # both sit on the same roof): the tile that reads fewer bytes from the L2 (the
            # larger), whose pipeline has the more reuse to hide its loads behind (assumption:
            # the library's heuristic prefers it; on the RTX 4090 the replay of 256 x 128 x 32
            # at 4096^3 fp16 is 9% faster than 128 x 64 x 64's, docs/tensor-cores.md). A 64-byte
            # twin reads what its 128-byte tile reads, so the 128-byte tile keeps the tie.
            tie = (on_tensor[idx] & np.isclose(res["time_s"], cur, rtol=1e-9, atol=0.0)
                   & (res["split_k"] == best["split_k"][idx]))
            better |= tie & (res["l2_bytes"] < best["l2_bytes"][idx])
            take = idx[better]
            for key in best:
                best[key][take] = res[key][better]
    assert best is not None
    return best
