"""Occupancy: resident blocks and warps per SM from threads, registers and shared memory.

The rules of the CUDA Occupancy Calculator (CUDA C++ Programming Guide, "Occupancy" and the
technical specifications per compute capability): registers are allocated per warp in units of
256; shared memory in units of 128 B plus 1 KB reserved per block (cc >= 8.0); a block is
resident only whole. Vectorised: every argument may be a numpy array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simgpu.analytical.params import (
    REG_ALLOC_UNIT,
    SMEM_ALLOC_UNIT_B,
    SMEM_RESERVED_PER_BLOCK_B,
    DeviceParams,
)
from simgpu.errors import SimgpuError

LIMITERS = ("warps", "registers", "shared", "blocks")


def blocks_per_sm(
    p: DeviceParams,
    threads_per_block: Any,
    regs_per_thread: Any,
    smem_per_block_B: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Resident blocks per SM and the index (into :data:`LIMITERS`) of the binding limit.

    A configuration that cannot launch at all (too many threads, registers or shared memory for
    one block) gets 0 blocks.
    """
    t = np.asarray(threads_per_block, dtype=float)
    r = np.asarray(regs_per_thread, dtype=float)
    s = np.asarray(smem_per_block_B, dtype=float)
    t, r, s = np.broadcast_arrays(t, r, s)
    warps = np.ceil(t / p.warp_size)
    by_warps = np.floor(p.max_warps_per_sm / np.maximum(warps, 1))
    regs_per_warp = np.ceil(np.maximum(r, 1) * p.warp_size / REG_ALLOC_UNIT) * REG_ALLOC_UNIT
    by_regs = np.floor(p.registers_per_sm / np.maximum(regs_per_warp * warps, 1))
    smem = np.where(
        s > 0,
        np.ceil((s + SMEM_RESERVED_PER_BLOCK_B) / SMEM_ALLOC_UNIT_B) * SMEM_ALLOC_UNIT_B,
        SMEM_RESERVED_PER_BLOCK_B,
    )
    by_smem = np.floor(p.smem_per_sm_B / smem)
    by_blocks = np.full(t.shape, float(p.max_blocks_per_sm))
    stack = np.stack([by_warps, by_regs, by_smem, by_blocks])
    limiter = np.argmin(stack, axis=0)
    n = stack.min(axis=0)
    fits = (
        (t <= p.max_threads_per_block)
        & (t > 0)
        & (r <= p.max_registers_per_thread)
        & (r * t <= p.max_registers_per_block)
        & (s <= p.smem_per_block_B)
    )
    return np.where(fits, n, 0.0), limiter


def occupancy(
    spec: Any,
    threads_per_block: Any,
    regs_per_thread: Any,
    smem_per_block_B: Any,
) -> Any:
    """Occupancy table: one row per configuration.

    Columns: ``threads_per_block, regs_per_thread, smem_per_block_B, blocks_per_sm,
    warps_per_sm, occupancy`` (resident warps / maximum), ``limiter`` (warps, registers, shared,
    blocks, or "does not fit").
    """
    import pandas as pd

    p = DeviceParams.from_spec(spec)
    t = np.asarray(threads_per_block, dtype=float)
    if np.any(t <= 0):
        raise SimgpuError(f"occupancy: threads_per_block must be > 0, got {t[t <= 0][:3]}")
    n, lim = blocks_per_sm(p, threads_per_block, regs_per_thread, smem_per_block_B)
    t, r, s = np.broadcast_arrays(
        t, np.asarray(regs_per_thread, dtype=float), np.asarray(smem_per_block_B, dtype=float)
    )
    warps = np.ceil(t / p.warp_size) * n
    names = np.array(LIMITERS, dtype=object)[lim]
    names = np.where(n > 0, names, "does not fit")
    return pd.DataFrame(
        {
            "threads_per_block": t.ravel(),
            "regs_per_thread": r.ravel(),
            "smem_per_block_B": s.ravel(),
            "blocks_per_sm": n.ravel().astype(int),
            "warps_per_sm": warps.ravel().astype(int),
            "occupancy": (warps / p.max_warps_per_sm).ravel(),
            "limiter": names.ravel(),
        }
    )


def waves(blocks: Any, blocks_per_sm_: Any, sm_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Waves of a grid and tail efficiency (blocks / (waves x slots)): wave quantisation."""
    b = np.asarray(blocks, dtype=float)
    slots = np.maximum(np.asarray(blocks_per_sm_, dtype=float), 1.0) * sm_count
    w = np.ceil(b / slots)
    w = np.maximum(w, 1.0)
    return w, b / (w * slots)
