"""Occupancy: how many thread blocks of a launch an SM holds at once, and what limits them.

The one rule of simgpu, used by the analytical model (vectorised over many launches) and by the
simulator's block scheduler (one launch) alike. It follows the CUDA occupancy calculator
(``cuda_occupancy.h``, as ``cudaOccupancyMaxActiveBlocksPerMultiprocessor`` computes it):

- warps: ``max_warps_per_sm // warps_per_block``;
- registers: allocated per warp in units of 256, and per sub-partition (warp scheduler): each of
  the SM's sub-partitions holds ``registers_per_sm / sub_partitions`` registers and a whole
  number of warps, so 32 threads x 96 registers fit 5 warps in each of H100's four 16 K
  sub-partitions, 20 in all, not ``65536 // 3072 = 21``; a block whose warps need more than
  ``max_registers_per_block`` cannot launch;
- shared memory: the block's bytes plus the per-block reservation (1 KiB from cc 8.0), rounded
  up to the allocation unit (128 B from cc 8.0, 256 B on cc 7.x), out of the largest carve-out;
- blocks: ``max_blocks_per_sm``.

A launch that fits 0 blocks (too many threads, registers or shared memory for one block) gets 0
from :func:`blocks_per_sm` and an error from :func:`occupancy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from simgpu.errors import SimgpuError

if TYPE_CHECKING:
    from simgpu.devices.spec import DeviceSpec

__all__ = [
    "LIMITERS",
    "REG_ALLOC_UNIT",
    "Occupancy",
    "SMResources",
    "blocks_per_sm",
    "limits",
    "occupancy",
    "smem_alloc_unit_B",
    "smem_reserved_per_block_B",
]

#: The limits, in the order :func:`blocks_per_sm` reports the binding one (ties: the first).
LIMITERS = ("warps", "registers", "shared", "blocks")

#: Registers are allocated per warp in units of 256 (cuda_occupancy.h,
#: cudaOccRegAllocationGranularity: 256 for every compute capability >= 3.0).
REG_ALLOC_UNIT = 256


def smem_alloc_unit_B(cc_major: int) -> int:
    """Shared-memory allocation unit, bytes (cuda_occupancy.h, cudaOccSMemAllocationGranularity:
    256 B on cc 7.x, 128 B on cc 8.x and 9.x; assumption: 256 B below 7.0 as on 7.x, since the
    bundled devices are cc >= 7.0)."""
    return 128 if cc_major >= 8 else 256


def smem_reserved_per_block_B(cc_major: int) -> int:
    """Shared memory the driver reserves per block (CUDA C++ Programming Guide, compute
    capability 8.x/9.0: "1 KB of shared memory is reserved for system use" per block; none
    before 8.0)."""
    return 1024 if cc_major >= 8 else 0


@dataclass(frozen=True)
class SMResources:
    """What an SM offers the blocks of a launch (the inputs of the occupancy rule)."""

    warp_size: int
    max_threads_per_block: int
    max_warps_per_sm: int
    max_blocks_per_sm: int
    registers_per_sm: int
    #: warp schedulers per SM: the register file is split evenly between them
    register_sub_partitions: int
    max_registers_per_thread: int
    max_registers_per_block: int
    #: the largest shared-memory carve-out (the driver picks the carve-out that maximises
    #: occupancy)
    smem_per_sm_B: int
    smem_per_block_B: int
    smem_alloc_unit_B: int
    smem_reserved_per_block_B: int

    @classmethod
    def from_spec(cls, spec: DeviceSpec) -> SMResources:
        c = spec.compute
        rf = spec.register_file
        major = int(spec.compute_capability.split(".")[0])
        return cls(
            warp_size=c.warp_size,
            max_threads_per_block=c.max_threads_per_block,
            max_warps_per_sm=c.max_warps_per_sm,
            max_blocks_per_sm=c.max_blocks_per_sm,
            registers_per_sm=rf.registers_per_sm,
            register_sub_partitions=c.warp_schedulers_per_sm,
            max_registers_per_thread=rf.max_registers_per_thread,
            max_registers_per_block=rf.max_registers_per_block,
            smem_per_sm_B=int(max(spec.l1.shared_carveouts_KiB) * 1024),
            smem_per_block_B=int(c.max_shared_memory_per_block_KiB * 1024),
            smem_alloc_unit_B=smem_alloc_unit_B(major),
            smem_reserved_per_block_B=smem_reserved_per_block_B(major),
        )


def limits(
    res: SMResources, threads_per_block: Any, regs_per_thread: Any, smem_per_block_B: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The blocks per SM each limit allows, stacked in :data:`LIMITERS` order (shape ``(4,
    ...)``), and whether one block of the launch fits an SM at all. Every argument but ``res``
    may be an array."""
    t, r, s = np.broadcast_arrays(
        np.asarray(threads_per_block, dtype=np.int64),
        np.asarray(regs_per_thread, dtype=np.int64),
        np.asarray(smem_per_block_B, dtype=np.int64),
    )
    wpb = np.maximum(-(-t // res.warp_size), 1)
    by_warps = res.max_warps_per_sm // wpb
    per_warp = np.maximum(-(-r * res.warp_size // REG_ALLOC_UNIT) * REG_ALLOC_UNIT, 1)
    parts = res.register_sub_partitions
    warps_by_regs = (res.registers_per_sm // parts // per_warp) * parts
    regs_fit = (r <= res.max_registers_per_thread) & (wpb * per_warp <= res.max_registers_per_block)
    by_regs = np.where(r > 0, np.where(regs_fit, warps_by_regs // wpb, 0), res.max_blocks_per_sm)
    unit = res.smem_alloc_unit_B
    smem = -(-(s + res.smem_reserved_per_block_B) // unit) * unit
    by_smem = np.where(smem > 0, res.smem_per_sm_B // np.maximum(smem, 1), res.max_blocks_per_sm)
    by_blocks = np.full(t.shape, res.max_blocks_per_sm, dtype=np.int64)
    fits = (t >= 1) & (t <= res.max_threads_per_block) & regs_fit & (s >= 0) & (
        s <= res.smem_per_block_B)
    return np.stack([by_warps, by_regs, by_smem, by_blocks]), fits


def blocks_per_sm(
    res: SMResources, threads_per_block: Any, regs_per_thread: Any, smem_per_block_B: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Resident blocks per SM (0 where the launch cannot run) and the index into
    :data:`LIMITERS` of the binding limit. Every argument but ``res`` may be an array."""
    stack, fits = limits(res, threads_per_block, regs_per_thread, smem_per_block_B)
    return np.where(fits, stack.min(axis=0), 0), np.argmin(stack, axis=0)


@dataclass(frozen=True)
class Occupancy:
    """Resident blocks and warps per SM for one launch, and what limits them."""

    blocks_per_sm: int
    warps_per_block: int
    limit: str
    by_warps: int
    by_registers: int
    by_shared: int
    by_blocks: int

    @property
    def warps_per_sm(self) -> int:
        return self.blocks_per_sm * self.warps_per_block


def occupancy(
    spec: DeviceSpec, threads_per_block: int, regs_per_thread: int, smem_per_block_B: int
) -> Occupancy:
    """The occupancy of one launch on ``spec``; a clear error when it cannot run at all."""
    res = SMResources.from_spec(spec)
    if threads_per_block < 1 or threads_per_block > res.max_threads_per_block:
        raise SimgpuError(
            f"threads per block {threads_per_block}: expected 1..{res.max_threads_per_block}"
            f" on {spec.name}"
        )
    if regs_per_thread > res.max_registers_per_thread:
        raise SimgpuError(
            f"registers per thread {regs_per_thread}: expected <= {res.max_registers_per_thread}"
            f" on {spec.name}"
        )
    if smem_per_block_B > res.smem_per_block_B:
        raise SimgpuError(
            f"shared memory per block {smem_per_block_B} B: expected <= {res.smem_per_block_B} B"
            f" on {spec.name}"
        )
    t, r, s = int(threads_per_block), int(regs_per_thread), int(smem_per_block_B)
    stack, fits = limits(res, t, r, s)
    by = [int(v) for v in stack]
    limit = LIMITERS[int(np.argmin(stack))]
    if not fits or min(by) < 1:
        raise SimgpuError(
            f"launch cannot run on {spec.name}: {t} threads x {r} registers, {s} B shared memory"
            f" fit 0 blocks per SM (limit: {limit})"
        )
    return Occupancy(min(by), -(-t // res.warp_size), limit, *by)
