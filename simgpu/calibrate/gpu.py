"""CuPy plumbing for calibration: finding the GPU, loading kernels/, timing with CUDA events
and with CUDA-graph replays.

Everything here imports CuPy inside functions: importing this module is free on a machine with
no GPU, and :func:`require_cupy` turns a missing CuPy or GPU into a readable error.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import simgpu
from simgpu.errors import GPUUnavailableError, SimgpuError


def require_cupy() -> Any:
    """Import CuPy and check that a CUDA device answers; raise GPUUnavailableError otherwise."""
    try:  # CuPy is optional: imported only here, where a GPU is asked for
        import cupy as cp
    except ImportError as exc:
        raise GPUUnavailableError(
            "calibration needs CuPy and a CUDA GPU: install the CuPy wheel that matches your "
            "CUDA (pip install cupy-cuda12x or cupy-cuda13x) and the 'gpu' extra "
            f"(pip install 'simgpu[gpu]'); import failed: {exc}"
        ) from None
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when there is no driver or device
        raise GPUUnavailableError(f"CuPy is installed but no CUDA GPU answers: {exc}") from None
    if count < 1:
        raise GPUUnavailableError("CuPy is installed but reports no CUDA GPU")
    return cp


def kernels_dir() -> Path:
    """The folder of CUDA sources: ``SIMGPU_KERNELS`` if set, else ``kernels/`` of the checkout."""
    env = os.environ.get("SIMGPU_KERNELS")
    path = Path(env) if env else Path(simgpu.__file__).resolve().parent.parent / "kernels"
    if not path.is_dir():
        raise SimgpuError(f"{path}: kernels folder not found (set SIMGPU_KERNELS)")
    return path


class KernelCache:
    """Compiles ``kernels/<file>.cu`` with CuPy's RawModule, once per set of -D options."""

    def __init__(self) -> None:
        self._modules: dict[tuple[str, tuple[str, ...]], Any] = {}

    def function(self, source: str, name: str, defines: dict[str, int] | None = None) -> Any:
        cp = require_cupy()
        opts = tuple(f"-D{k}={v}" for k, v in sorted((defines or {}).items()))
        key = (source, opts)
        if key not in self._modules:
            path = kernels_dir() / source
            code = path.read_text(encoding="utf-8")
            self._modules[key] = cp.RawModule(code=code, options=("-std=c++17", *opts))
        return self._modules[key].get_function(name)


@dataclass
class Timing:
    """Per-call times (ms) of the timed repetitions."""

    times_ms: np.ndarray = field(repr=False)

    @property
    def median(self) -> float:
        return float(np.median(self.times_ms))

    def columns(self) -> dict[str, Any]:
        t = self.times_ms
        return {
            "time_ms": float(np.median(t)),
            "time_ms_p10": float(np.percentile(t, 10)),
            "time_ms_p90": float(np.percentile(t, 90)),
            "reps": int(t.size),
        }


def time_calls(
    fn: Callable[[], object],
    *,
    warmup: int = 3,
    min_reps: int = 10,
    max_reps: int = 200,
    target_s: float = 0.25,
    stream: Any = None,
) -> Timing:
    """Time ``fn`` (which enqueues GPU work) with a pair of CUDA events around each call.

    Warm-up calls first (module load, allocation, cuBLAS heuristics); then as many timed calls
    as fit in ``target_s`` seconds, between ``min_reps`` and ``max_reps``.
    """
    cp = require_cupy()
    for _ in range(warmup):
        fn()
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record(stream)
    fn()
    end.record(stream)
    end.synchronize()
    first_ms = max(cp.cuda.get_elapsed_time(start, end), 1e-3)
    reps = int(min(max_reps, max(min_reps, target_s * 1e3 / first_ms)))
    events = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(reps)]
    for s, e in events:
        s.record(stream)
        fn()
        e.record(stream)
    events[-1][1].synchronize()
    times = np.array([cp.cuda.get_elapsed_time(s, e) for s, e in events], dtype=float)
    return Timing(times)


@dataclass
class GraphTiming:
    """Device time of a call from replays of a CUDA graph that holds ``calls`` of them."""

    timing: Timing  # per call: each replay's time / calls
    calls: int
    replay: Callable[[], object] = field(repr=False)  # launches the graph once more


#: A graph holds enough calls to run for about this long, so that one host launch per replay
#: is small beside it (METHOD.md of the device tool: time many small launches as graph replays).
GRAPH_MIN_MS = 1.0
#: ... and at most this many calls (a graph's instantiation costs host time per node).
GRAPH_MAX_CALLS = 1000


def time_graph(
    fn: Callable[[], object],
    per_call_ms: float,
    *,
    bind: Callable[[Any], object] | None = None,
    warmup: int = 2,
    min_reps: int = 5,
    max_reps: int = 50,
    target_s: float = 0.25,
) -> GraphTiming:
    """Time ``fn`` by the GPU's own pace: capture back-to-back calls into one CUDA graph on a
    stream of its own, replay the graph between a pair of CUDA events, divide by the calls.

    A call shorter than the host's cost of launching it leaves the GPU idle between CUDA events
    placed around each call, so :func:`time_calls` measures the host there. In a replayed graph
    the host launches once per replay, and what is left per call is the kernel and the gap the
    GPU itself leaves between two kernels of one stream, as in any program that keeps its GPU
    busy. ``per_call_ms`` (an estimate, e.g. from :func:`time_calls`) sizes the graph.

    ``bind(stream)`` is called before the capture with the capture stream and afterwards with
    ``None``, for work that does not follow CuPy's current stream (a cuBLAS handle). Kernels
    launched through CuPy follow it. A call that cannot be captured raises CuPy's error.
    """
    cp = require_cupy()
    calls = int(min(GRAPH_MAX_CALLS, max(1, math.ceil(GRAPH_MIN_MS / max(per_call_ms, 1e-4)))))
    stream = cp.cuda.Stream(non_blocking=True)  # does not wait for the default stream:
    cp.cuda.Device().synchronize()  # let the work queued there (operands, poison) finish
    if bind is not None:
        bind(stream)
    try:
        with stream:
            for _ in range(warmup):  # on the capture stream: lazy set-up stays out of the graph
                fn()
            stream.synchronize()
            stream.begin_capture()
            try:
                for _ in range(calls):
                    fn()
            finally:
                graph = stream.end_capture()
    finally:
        if bind is not None:
            bind(None)

    def replay() -> None:
        graph.launch(stream)

    # the warm-up launch uploads the graph
    t = time_calls(replay, warmup=1, min_reps=min_reps, max_reps=max_reps, target_s=target_s,
                   stream=stream)
    return GraphTiming(Timing(t.times_ms / calls), calls, replay)


# -- identification and provenance ---------------------------------------------------------------

#: How a driver-reported name maps to a bundled device model (first match wins).
_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"H200", "h200"),
    (r"H100.*PCIe", "h100-pcie"),
    (r"H100", "h100-sxm"),
    (r"A100.*PCIE.*40|A100-PCIE-40", "a100-pcie-40gb"),
    (r"A100.*80", "a100-sxm-80gb"),
    (r"V100.*SXM2", "v100-sxm2"),
    (r"RTX 4090", "rtx-4090"),
    (r"RTX 4070", "rtx-4070"),
    (r"RTX A6000", "rtx-a6000"),
)


def device_name_for(gpu_name: str) -> str:
    """The simgpu model name for a GPU the driver calls ``gpu_name`` (slug if none matches)."""
    for pattern, name in _NAME_RULES:
        if re.search(pattern, gpu_name, re.IGNORECASE):
            return name
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    return slug or "unknown-gpu"


def git_commit() -> str:
    """The checkout's commit (``SIMGPU_GIT_COMMIT`` wins: copies of a tree may lack .git)."""
    env = os.environ.get("SIMGPU_GIT_COMMIT")
    if env:
        return env
    root = Path(simgpu.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def device_properties() -> dict[str, Any]:
    """What the CUDA runtime says about device 0 (name, SMs, L2, memory, clocks, versions)."""
    cp = require_cupy()
    props = cp.cuda.runtime.getDeviceProperties(0)

    def get(key: str) -> Any:
        v = props.get(key)
        return v.decode() if isinstance(v, bytes) else v

    info: dict[str, Any] = {
        "gpu_name": get("name"),
        "compute_capability": f"{get('major')}.{get('minor')}",
        "sm_count": get("multiProcessorCount"),
        "l2_cache_B": get("l2CacheSize"),
        "global_memory_B": get("totalGlobalMem"),
        "shared_memory_per_sm_B": get("sharedMemPerMultiprocessor"),
        "shared_memory_per_block_optin_B": get("sharedMemPerBlockOptin"),
        "registers_per_sm": get("regsPerMultiprocessor"),
        "max_threads_per_sm": get("maxThreadsPerMultiProcessor"),
        "memory_bus_width_bits": get("memoryBusWidth"),
        "pci_bus_id": None,
        "cuda_runtime_version": cp.cuda.runtime.runtimeGetVersion(),
        "cuda_driver_version": cp.cuda.runtime.driverGetVersion(),
        "cupy_version": cp.__version__,
    }
    for key, name in (("clockRate", "sm_clock_max_kHz"), ("memoryClockRate", "mem_clock_kHz")):
        if props.get(key) is not None:
            info[name] = props.get(key)
    return info


def hash_uuid(uuid: str) -> str:
    """A short one-way hash of the GPU UUID: tells runs on the same card apart, reveals nothing."""
    return hashlib.sha256(uuid.encode()).hexdigest()[:16]
