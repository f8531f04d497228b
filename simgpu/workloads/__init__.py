"""The kernels simgpu measures and simulates, as Python objects (see :mod:`.base`)."""

from __future__ import annotations

from simgpu.workloads.base import Workload
from simgpu.workloads.gemm import GemmBase, NaiveGemm, RegBlockGemm, TiledGemm

__all__ = ["Workload", "GemmBase", "NaiveGemm", "RegBlockGemm", "TiledGemm"]
