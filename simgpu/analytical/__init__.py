"""Closed-form estimates: rooflines per memory level and compute unit, a tiled-GEMM traffic
model, occupancy and waves, launch overhead, and an AccelWattch-style power model.

Every function takes a device (a :class:`simgpu.devices.DeviceSpec` or
:class:`~simgpu.analytical.params.DeviceParams`) and scalars or numpy arrays, and returns a
pandas DataFrame with one row per point, holding at least ``time_s`` and ``bound`` (the roof that
binds) and, where the power model applies, ``power_W`` and ``energy_J``.
"""

from __future__ import annotations

from simgpu.analytical.gemm import gemm
from simgpu.analytical.kernels import (
    gemv,
    pcie_copy,
    pointer_chase,
    reduction,
    roofline,
    stream,
    transpose,
)
from simgpu.analytical.occupancy import occupancy, waves
from simgpu.analytical.params import DeviceParams

__all__ = [
    "DeviceParams",
    "gemm",
    "gemv",
    "occupancy",
    "pcie_copy",
    "pointer_chase",
    "reduction",
    "roofline",
    "stream",
    "transpose",
    "waves",
]
