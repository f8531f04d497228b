"""The kernels simgpu measures and simulates, as Python objects (see :mod:`.base`).

Each has ``trace()`` (the warp-level trace of the matching CUDA kernel in ``kernels/``),
``flops``, ``compulsory_bytes``, ``estimate(spec)`` (simgpu.analytical) and ``simulate(spec)``
(trace replay on the SM and memory model, sampled when large).
"""

from __future__ import annotations

from simgpu.workloads.base import Workload
from simgpu.workloads.gemm import GemmBase, NaiveGemm, RegBlockGemm, TiledGemm
from simgpu.workloads.memory import Gemv, HostCopy, PointerChase, Reduction, Stream, Transpose
from simgpu.workloads.tensor_gemm import LibraryGemm, MmaGemm, TensorGemm

__all__ = [
    "Workload",
    "GemmBase",
    "LibraryGemm",
    "MmaGemm",
    "HostCopy",
    "NaiveGemm",
    "RegBlockGemm",
    "TiledGemm",
    "TensorGemm",
    "Gemv",
    "PointerChase",
    "Reduction",
    "Stream",
    "Transpose",
]
