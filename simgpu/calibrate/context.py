"""What every benchmark gets: CuPy, the kernel cache, the GPU's facts, the power meter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from simgpu.calibrate.gpu import KernelCache, Timing, time_calls
from simgpu.calibrate.power import PowerMeter

#: Plan levels: "quick" (a few minutes, the shape of every curve) or "full" (the predictor sweep).
LEVELS = ("quick", "full")


@dataclass
class Context:
    cp: Any
    device: str
    gpu_name: str
    props: dict[str, Any]
    level: str
    power: PowerMeter | None
    seed: int = 20261122
    power_seconds: float = 1.0
    kernels: KernelCache = field(default_factory=KernelCache)
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def sm_count(self) -> int:
        return int(self.props["sm_count"])

    @property
    def l2_bytes(self) -> int:
        return int(self.props["l2_cache_B"])

    def rng(self, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng(self.seed + salt)

    def sync(self) -> None:
        self.cp.cuda.Device().synchronize()

    def time(self, fn: Callable[[], object], **kw: Any) -> Timing:
        return time_calls(fn, **kw)

    def measure_power(self, fn: Callable[[], object], call_ms: float) -> dict[str, Any]:
        """The power columns for ``fn`` run back to back (empty if no power meter)."""
        if self.power is None:
            return {}
        return self.power.measure(
            fn, self.sync, min_seconds=self.power_seconds, call_seconds=call_ms / 1e3
        )

    def free(self) -> None:
        self.scratch.clear()
        self.cp.get_default_memory_pool().free_all_blocks()
        self.cp.get_default_pinned_memory_pool().free_all_blocks()


class Benchmark(Protocol):
    """One benchmark: its table, its grid of points for a level, and how to measure one."""

    table: str

    def points(self, ctx: Context) -> list[dict[str, Any]]: ...

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]: ...


def log_spaced_sizes(lo: int, hi: int, per_octave: int, align: int = 1) -> list[int]:
    """Sizes from ``lo`` to ``hi`` (inclusive), ``per_octave`` per doubling, multiples of align."""
    out: list[int] = []
    k = 0
    while True:
        s = int(round(lo * 2 ** (k / per_octave)))
        s = max(align, (s // align) * align)
        if s > hi:
            break
        if not out or s != out[-1]:
            out.append(s)
        k += 1
    if out[-1] != hi:
        out.append(hi)
    return out
