"""How calibration times a kernel: CUDA events, and CUDA-graph replays for short calls.

The control flow runs here against a stand-in for CuPy (no GPU needed); the last test times a
real kernel both ways and runs only where CuPy finds a GPU.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest

from simgpu.calibrate import context as ctx_mod
from simgpu.calibrate import gpu
from simgpu.calibrate.context import GRAPH_BELOW_MS, Context
from simgpu.calibrate.dataset import check_row
from simgpu.calibrate.gpu import GraphTiming, Timing
from simgpu.calibrate.schema import GEMM


def _context(power: Any = None) -> Context:
    return Context(cp=None, device="h100-sxm", gpu_name="test", props={}, level="quick",
                   power=power)


def _gemm_row(timing_columns: dict[str, Any]) -> dict[str, Any]:
    row = {"device": "h100-sxm", "gpu_name": "test", "kernel": "cublas", "dtype": "fp16",
           "accum_dtype": "fp32", "layout": "nn", "M": 256, "N": 256, "K": 256, "tile_m": 0,
           "tile_n": 0, "tile_k": 0, "thread_tile_m": 0, "thread_tile_n": 0,
           "threads_per_block": 0, "split_k": 0, "stages": 0, "flops": 2.0 * 256**3,
           "tflops": 1.0, "check_ok": True}
    return {**row, **timing_columns}


def test_a_long_call_keeps_its_event_timing(monkeypatch):
    monkeypatch.setattr(ctx_mod, "time_calls", lambda fn, **kw: Timing(np.full(5, 0.5)))

    def no_graph(*a: Any, **k: Any) -> Any:
        raise AssertionError("a call longer than GRAPH_BELOW_MS is not graph-timed")

    monkeypatch.setattr(ctx_mod, "time_graph", no_graph)
    t = _context().time_kernel(lambda: None)
    cols = t.columns()
    assert t.method == "events" and t.replay is None
    assert cols["time_ms"] == cols["time_ms_events"] == 0.5
    assert cols["graph_calls"] == 0 and cols["graph_error"] is None
    check_row(GEMM, _gemm_row(cols), "test")


def test_a_short_call_is_timed_by_graph_replays(monkeypatch):
    short = GRAPH_BELOW_MS / 10
    monkeypatch.setattr(ctx_mod, "time_calls", lambda fn, **kw: Timing(np.full(7, short)))
    seen: dict[str, Any] = {}

    def fake_graph(fn: Any, per_call_ms: float, *, bind: Any = None) -> GraphTiming:
        seen.update(per_call_ms=per_call_ms, bind=bind)
        return GraphTiming(Timing(np.array([0.004, 0.005, 0.006])), 250, lambda: None)

    monkeypatch.setattr(ctx_mod, "time_graph", fake_graph)

    def bind(stream: Any) -> None:
        pass

    t = _context().time_kernel(lambda: None, bind)
    cols = t.columns()
    assert seen == {"per_call_ms": short, "bind": bind}  # sized by the event estimate
    assert t.method == "graph" and t.graph_calls == 250
    assert cols["time_ms"] == pytest.approx(0.005)
    assert cols["time_ms_events"] == pytest.approx(short)
    assert cols["reps"] == 3
    check_row(GEMM, _gemm_row(cols), "test")


def test_a_call_that_cannot_be_captured_keeps_event_timing_and_says_why(monkeypatch, capsys):
    monkeypatch.setattr(ctx_mod, "time_calls", lambda fn, **kw: Timing(np.full(5, 0.01)))

    def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(ctx_mod, "time_graph", broken)
    t = _context().time_kernel(lambda: None)
    assert t.method == "events" and t.median == 0.01
    assert t.error is not None and t.error.startswith("RuntimeError: operation not permitted")
    assert "graph timing failed" in capsys.readouterr().err
    check_row(GEMM, _gemm_row(t.columns()), "test")


class _Meter:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, float | None]] = []

    def measure(self, enqueue: Any, synchronize: Any, min_seconds: float = 1.0,
                call_seconds: float | None = None, **kw: Any) -> dict[str, Any]:
        self.calls.append((enqueue, call_seconds))
        return {"power_W": 100.0}


def test_power_is_measured_the_way_the_time_was(monkeypatch):
    meter = _Meter()
    ctx = _context(power=meter)
    monkeypatch.setattr(ctx, "sync", lambda: None)

    def fn() -> None:
        pass

    def replay() -> None:
        pass

    events = Timing(np.full(3, 0.01))
    graph = ctx_mod.KernelTiming(Timing(np.full(3, 0.004)), "graph", events, 250, replay=replay)
    assert ctx.measure_kernel_power(fn, graph) == {"power_W": 100.0}
    enqueue, call_s = meter.calls[-1]
    assert enqueue is replay and call_s == pytest.approx(0.004 * 250 / 1e3)
    ctx.measure_kernel_power(fn, ctx_mod.KernelTiming(events, "events", events))
    enqueue, call_s = meter.calls[-1]
    assert enqueue is fn and call_s == pytest.approx(0.01 / 1e3)


# -- time_graph against a stand-in for CuPy ----------------------------------------------------


class _FakeCuda:
    """Just enough of cupy.cuda: streams that capture, graphs that replay, events that read a
    clock advanced by the work done on the stream (0.01 ms per call, 0.002 ms per replay)."""

    CALL_MS = 0.01
    LAUNCH_MS = 0.002

    def __init__(self, fail_in_capture: bool = False) -> None:
        self.clock = 0.0
        self.capturing: _FakeStream | None = None
        self.fail_in_capture = fail_in_capture
        self.captured = 0
        self.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
        cuda = self

        class Stream:
            def __init__(self, non_blocking: bool = False) -> None:
                self.s = _FakeStream(cuda)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.s, name)

            def __enter__(self) -> Any:
                cuda.current = self
                return self

            def __exit__(self, *exc: Any) -> None:
                cuda.current = None

        class Event:
            def __init__(self) -> None:
                self.t = 0.0

            def record(self, stream: Any = None) -> None:
                self.t = cuda.clock

            def synchronize(self) -> None:
                pass

        self.Stream = Stream
        self.Event = Event
        self.Device = lambda: types.SimpleNamespace(synchronize=lambda: None)
        self.current: Any = None

    def get_elapsed_time(self, a: Any, b: Any) -> float:
        return b.t - a.t

    def call(self) -> None:
        """What the timed function does: one kernel on the current stream."""
        if self.capturing is not None:
            if self.fail_in_capture:
                raise RuntimeError("operation not permitted when stream is capturing")
            self.captured += 1
        else:
            self.clock += self.CALL_MS


class _FakeStream:
    def __init__(self, cuda: _FakeCuda) -> None:
        self.cuda = cuda
        self.ptr = 1234

    def synchronize(self) -> None:
        pass

    def begin_capture(self) -> None:
        self.cuda.capturing = self
        self.cuda.captured = 0

    def end_capture(self) -> Any:
        self.cuda.capturing = None
        n = self.cuda.captured
        cuda = self.cuda

        class Graph:
            def launch(self, stream: Any = None) -> None:
                cuda.clock += cuda.LAUNCH_MS + n * cuda.CALL_MS

        return Graph()


def _install(monkeypatch: Any, cuda: _FakeCuda) -> None:
    fake = types.ModuleType("cupy")
    fake.cuda = cuda  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", fake)


def test_time_graph_divides_a_replay_by_the_calls_it_holds(monkeypatch):
    cuda = _FakeCuda()
    _install(monkeypatch, cuda)
    binds: list[Any] = []
    g = gpu.time_graph(cuda.call, per_call_ms=0.01, bind=binds.append)
    # enough calls for a replay of GRAPH_MIN_MS
    assert g.calls == int(np.ceil(gpu.GRAPH_MIN_MS / 0.01))
    expected = (cuda.LAUNCH_MS + g.calls * cuda.CALL_MS) / g.calls
    assert g.timing.median == pytest.approx(expected)
    assert g.timing.times_ms.size >= 5
    # bound to the capture stream for the capture, and back afterwards
    assert len(binds) == 2 and binds[0] is not None and binds[1] is None


def test_time_graph_caps_the_calls_per_graph(monkeypatch):
    cuda = _FakeCuda()
    _install(monkeypatch, cuda)
    g = gpu.time_graph(cuda.call, per_call_ms=1e-6)
    assert g.calls == gpu.GRAPH_MAX_CALLS


def test_a_failed_capture_unbinds_the_stream_and_raises(monkeypatch):
    cuda = _FakeCuda(fail_in_capture=True)
    _install(monkeypatch, cuda)
    binds: list[Any] = []
    with pytest.raises(RuntimeError, match="capturing"):
        gpu.time_graph(cuda.call, per_call_ms=0.01, bind=binds.append)
    assert binds[-1] is None
    assert cuda.capturing is None  # the capture was ended


# -- on a real GPU -----------------------------------------------------------------------------


def _cupy_with_gpu() -> Any:
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:
        return None
    return cp


@pytest.mark.skipif(_cupy_with_gpu() is None, reason="needs CuPy and a CUDA GPU")
def test_graph_replays_time_a_tiny_kernel_below_its_host_launch_cost():
    cp = _cupy_with_gpu()
    x = cp.zeros(32, dtype=cp.float32)
    kern = cp.RawKernel(
        r'extern "C" __global__ void bump(float* x) { x[threadIdx.x] += 1.0f; }', "bump"
    )

    def fn() -> None:
        kern((1,), (32,), (x,))

    events = gpu.time_calls(fn, min_reps=50, max_reps=200)
    g = gpu.time_graph(fn, events.median)
    cp.cuda.Device().synchronize()
    assert 0 < g.timing.median < events.median
    # every captured call ran: warm-up, the event-timed calls and each replay's calls
    assert float(x[0]) >= g.calls * (g.timing.times_ms.size + 2)
