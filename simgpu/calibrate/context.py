"""What every benchmark gets: CuPy, the kernel cache, the GPU's facts, the power meter."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from simgpu.calibrate.gpu import KernelCache, Timing, time_calls, time_graph
from simgpu.calibrate.power import PowerMeter

#: Calls whose CUDA-event time is shorter than this are timed again as CUDA-graph replays
#: (:func:`simgpu.calibrate.gpu.time_graph`). Source: run 20261122T154403Z (H100 SXM): the
#: same 1024^3 fp16/bf16/tf32 cuBLAS calls took 15 us in one run and 22 us in the other, host
#: paced; calls up to 0.2 ms are timed both ways so that the two methods overlap where the host
#: keeps up, and their agreement there shows in the table (time_ms against time_ms_events).
GRAPH_BELOW_MS = 0.2

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

    def time_kernel(
        self,
        fn: Callable[[], object],
        bind: Callable[[Any], object] | None = None,
        **kw: Any,
    ) -> KernelTiming:
        """Time ``fn`` with CUDA events; a call shorter than :data:`GRAPH_BELOW_MS` is timed
        again as CUDA-graph replays, which then give ``time_ms``. A call that cannot be
        captured keeps its event timing, and the row says why (``graph_error``)."""
        events = self.time(fn, **kw)
        if events.median >= GRAPH_BELOW_MS:
            return KernelTiming(events, "events", events)
        try:
            g = time_graph(fn, events.median, bind=bind)
        except Exception as exc:  # CuPy/CUDA errors of a capture: keep the event timing
            reason = f"{type(exc).__name__}: {exc}".strip()[:300]
            print(f"graph timing failed, keeping CUDA-event timing: {reason}", file=sys.stderr)
            return KernelTiming(events, "events", events, error=reason)
        return KernelTiming(g.timing, "graph", events, g.calls, replay=g.replay)

    def measure_kernel_power(self, fn: Callable[[], object], t: KernelTiming) -> dict[str, Any]:
        """The power columns for the calls ``t`` timed, run back to back as they were timed
        (graph replays for the graph method)."""
        if t.replay is not None:
            return self.measure_power(t.replay, t.timing.median * t.graph_calls)
        return self.measure_power(fn, t.timing.median)

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


@dataclass
class KernelTiming:
    """How a kernel call was timed: ``timing`` gives ``time_ms``; ``events`` is the CUDA-event
    timing of single calls, the same as ``timing`` unless ``method`` is "graph"."""

    timing: Timing
    method: str  # "events" or "graph"
    events: Timing
    graph_calls: int = 0
    error: str | None = None  # why graph timing was not used, where it was tried
    replay: Callable[[], object] | None = field(default=None, repr=False)

    @property
    def median(self) -> float:
        return self.timing.median

    def columns(self) -> dict[str, Any]:
        """The timing columns of a row (schema: TIMING and KERNEL_TIMING)."""
        return {
            **self.timing.columns(),
            "time_method": self.method,
            "time_ms_events": self.events.median,
            "graph_calls": self.graph_calls,
            "graph_error": self.error,
        }


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
