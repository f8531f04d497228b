"""Time this process has spent compiling the simulator's numba functions.

The first replay after an install (or after the compiled modules change) compiles the compiled
core, about 25 s (``experiments/benchmarks/bench_compile.py``); later processes load it from
numba's disk cache. Work that is paced by wall time, such as ``simgpu validate``'s budget of
seconds per family, takes that compile time out with :func:`compile_seconds`, so that a first
run replays the same rows as a later one on the same machine.

numba announces each compile as a ``numba:compile`` event (``numba.core.event``); loading a
function from the disk cache is not one. A compile that starts while another is under way (a
callee compiled for its caller) is counted once, in the outer one.
"""

from __future__ import annotations

import threading
import time

from numba.core import event

__all__ = ["compile_seconds"]


class _Clock(event.Listener):
    """Sums the wall time of the outermost compiles (per thread: numba compiles under a lock)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._local = threading.local()

    def on_start(self, ev: event.Event) -> None:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self._local.t0 = time.perf_counter()
        self._local.depth = depth + 1

    def on_end(self, ev: event.Event) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            self.total += time.perf_counter() - self._local.t0


_clock: _Clock | None = None


def compile_seconds() -> float:
    """Seconds spent compiling numba functions in this process since the first call of this
    function (the listener starts then): take two readings and subtract."""
    global _clock
    if _clock is None:
        _clock = _Clock()
        event.register("numba:compile", _clock)
    return _clock.total
