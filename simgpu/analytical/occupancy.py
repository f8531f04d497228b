"""Occupancy tables and wave quantisation for the closed forms.

The occupancy rule itself is :mod:`simgpu.arch.occupancy`, shared with the simulator; this module
tabulates it over many launches and counts the waves a grid takes. Vectorised: every argument may
be a numpy array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simgpu.analytical.params import DeviceParams
from simgpu.arch.occupancy import LIMITERS, blocks_per_sm
from simgpu.errors import SimgpuError

__all__ = ["LIMITERS", "blocks_per_sm", "occupancy", "waves"]


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
    p = DeviceParams.from_spec(spec)
    t = np.asarray(threads_per_block, dtype=float)
    if np.any(t <= 0):
        raise SimgpuError(f"occupancy: threads_per_block must be > 0, got {t[t <= 0][:3]}")
    n, lim = blocks_per_sm(p.sm, threads_per_block, regs_per_thread, smem_per_block_B)
    t, r, s = np.broadcast_arrays(
        t, np.asarray(regs_per_thread, dtype=float), np.asarray(smem_per_block_B, dtype=float)
    )
    warps = np.ceil(t / p.sm.warp_size) * n
    names = np.array(LIMITERS, dtype=object)[lim]
    names = np.where(n > 0, names, "does not fit")
    return pd.DataFrame(
        {
            "threads_per_block": t.ravel(),
            "regs_per_thread": r.ravel(),
            "smem_per_block_B": s.ravel(),
            "blocks_per_sm": n.ravel().astype(int),
            "warps_per_sm": warps.ravel().astype(int),
            "occupancy": (warps / p.sm.max_warps_per_sm).ravel(),
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
