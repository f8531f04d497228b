"""One point of a design-space sweep: a device (with parameter overrides), a workload, a view.

A point is a flat dict. Keys:

``device``
    a device name from ``models/`` (``$SIMGPU_MODELS`` is honoured by the workers too);
``view``
    ``"analytical"`` (closed forms, microseconds) or ``"simulated"`` (SimPy trace replay),
    asked through the view protocol (:func:`simgpu.views.protocol.estimate`);
``workload``
    ``"gemm"``, ``"stream"``, ``"pointer_chase"`` or ``"pcie_copy"`` (see :data:`WORKLOADS`
    for each one's parameters and defaults);
device overrides
    any key with a dot names a field of the device file (``"l2.size_MiB"``,
    ``"dram.peak_bandwidth_GBps"``, ``"compute.sm_count"``); the knobs of :data:`KNOBS` change
    several fields together so the device stays consistent (``hbm_bandwidth_GBps``,
    ``pcie_gen``). The changed device is validated like a device file.
everything else
    a parameter of the workload (``M``, ``N``, ``K``, ``dtype``, ``op``, ``n_elements``, ...).

:func:`evaluate` returns one row: the point's parameters and the view's ``time_s``, ``bound``,
``power_W``, ``energy_J``, the throughput (``tflops`` or ``bandwidth_GBps``) and ``wall_s``,
the seconds the view took.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from simgpu import devices
from simgpu.errors import SimgpuError
from simgpu.views import protocol as views
from simgpu.workloads import GemmBase, HostCopy, PointerChase, Stream, Workload

VIEWS = ("analytical", "simulated")

#: Workload parameters and their defaults.
WORKLOADS: dict[str, dict[str, Any]] = {
    "gemm": {"M": 4096, "N": 4096, "K": 4096, "dtype": "fp16", "kernel": "cublas", "tile": 0},
    "stream": {"op": "triad", "n_elements": 1 << 26, "elem_bytes": 4},
    "pointer_chase": {"footprint_B": 1 << 20, "stride_B": 128, "cache_op": "ca"},
    "pcie_copy": {"n_bytes": 1 << 28, "direction": "h2d", "pinned": True},
}

#: PCIe per-lane signalling rate (GT/s) and line-code efficiency per generation: PCI-SIG base
#: specifications 3.0-6.0 (3.0-5.0: 128b/130b; 6.0: PAM4 FLIT mode, 236 of 256 flit bytes carry
#: TLP data, the rest DLP 6 B, CRC 8 B, FEC 6 B).
PCIE_GEN = {3: (8.0, 128 / 130), 4: (16.0, 128 / 130), 5: (32.0, 128 / 130), 6: (64.0, 236 / 256)}


def _knob_hbm_bandwidth(data: dict[str, Any], value: Any) -> None:
    """Scale the DRAM interface to ``value`` GB/s: peak bandwidth, pin rate and tCK together.

    assumption: a faster part of the same DRAM family keeps its timing constraints in clocks
    (as JEDEC speed bins roughly do for tCCD/tBL), so every tCK-counted latency shrinks with the
    clock; unloaded latency in ns is kept (it is dominated by the core array, not the bus).
    """
    dram = data["dram"]
    new = float(value)
    if new <= 0:
        raise SimgpuError(f"hbm_bandwidth_GBps = {value!r}: expected a positive number")
    old_rate = float(dram["data_rate_Gbps"])
    new_rate = new * 8 / float(dram["bus_width_bits"])
    dram["peak_bandwidth_GBps"] = new
    dram["data_rate_Gbps"] = new_rate
    timing = dram.get("timing")
    if timing and "tCK_ps" in timing:
        timing["tCK_ps"] = float(timing["tCK_ps"]) * old_rate / new_rate


def _knob_pcie_gen(data: dict[str, Any], value: Any) -> None:
    """PCIe generation ``value`` with the device's lane count (see :data:`PCIE_GEN`)."""
    try:
        gen = int(value)
        rate, code = PCIE_GEN[gen]
    except (ValueError, KeyError):
        raise SimgpuError(
            f"pcie_gen = {value!r}: expected one of {sorted(PCIE_GEN)}"
        ) from None
    link = data["host_link"]
    link["pcie_gen"] = gen
    link["bandwidth_per_direction_GBps"] = rate * int(link.get("lanes", 16)) * code / 8
    # a measured figure belongs to the real link only
    link.pop("measured_h2d_GBps", None)
    link.pop("measured_d2h_GBps", None)


def _knob_l2_size(data: dict[str, Any], value: Any) -> None:
    """L2 capacity in MiB (ways and slices kept, so the sets per slice scale)."""
    data["l2"]["size_MiB"] = float(value)


KNOBS: dict[str, Callable[[dict[str, Any], Any], None]] = {
    "hbm_bandwidth_GBps": _knob_hbm_bandwidth,
    "pcie_gen": _knob_pcie_gen,
    "l2_size_MiB": _knob_l2_size,
}


def is_override(key: str) -> bool:
    """True for keys that change the device (a dotted field path or a knob)."""
    return "." in key or key in KNOBS


_DEVICE_CACHE: dict[tuple[Any, ...], Any] = {}


def device_with(name: str, overrides: Mapping[str, Any]) -> Any:
    """The device ``name`` with ``overrides`` applied and validated (cached per process)."""
    key = (name, os.environ.get(devices.ENV_VAR), tuple(sorted(overrides.items())))
    if key in _DEVICE_CACHE:
        return _DEVICE_CACHE[key]
    spec: Any = devices.get(name)
    if overrides:
        data = devices.to_dict(spec)
        for path, value in overrides.items():
            if path in KNOBS:
                KNOBS[path](data, value)
                continue
            node = data
            parts = path.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise SimgpuError(f"override {path!r}: device {name!r} has no section {part!r}")
                node = node[part]
            if parts[-1] not in node:
                raise SimgpuError(
                    f"override {path!r}: device {name!r} has no field {parts[-1]!r} in"
                    f" [{'.'.join(parts[:-1])}] (known: {', '.join(sorted(node))})"
                )
            node[parts[-1]] = value
        label = ", ".join(f"{k}={v}" for k, v in overrides.items())
        spec = devices.from_dict(data, f"{name} with {label}")
    _DEVICE_CACHE[key] = spec
    return spec


def split_point(params: Mapping[str, Any]) -> tuple[str, str, str, dict[str, Any], dict[str, Any]]:
    """``(device, view, workload, overrides, workload params with defaults)``."""
    device = str(params.get("device", "h100-sxm"))
    view = str(params.get("view", "analytical"))
    workload = str(params.get("workload", "gemm"))
    if view not in VIEWS:
        raise SimgpuError(f"view {view!r}: expected one of {', '.join(VIEWS)}")
    if workload not in WORKLOADS:
        raise SimgpuError(f"workload {workload!r}: expected one of {', '.join(WORKLOADS)}")
    overrides = {k: v for k, v in params.items() if is_override(k)}
    wl = dict(WORKLOADS[workload])
    for k, v in params.items():
        if k in ("device", "view", "workload") or is_override(k):
            continue
        if k not in wl:
            raise SimgpuError(
                f"parameter {k!r} is not one of workload {workload!r}'s"
                f" ({', '.join(wl)}), nor a device field (section.field) or knob"
                f" ({', '.join(KNOBS)})"
            )
        wl[k] = v
    return device, view, workload, overrides, wl


def _int(params: Mapping[str, Any], key: str) -> int:
    """A whole-number parameter (an integral float from the command line, 1e3, is one)."""
    v = params[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
        raise SimgpuError(f"{key} = {v!r}: expected a whole number")
    return int(v)


def _bool(params: Mapping[str, Any], key: str) -> bool:
    v = params[key]
    if not isinstance(v, bool):
        raise SimgpuError(f"{key} = {v!r}: expected true or false")
    return v


def workload_of(workload: str, params: Mapping[str, Any]) -> Workload:
    """The :mod:`simgpu.workloads` object of one point's workload parameters; the GEMM kernel
    comes from the catalogue (``tile`` picks one of its compile-time variants)."""
    if workload == "gemm":
        return GemmBase.of_kernel(str(params["kernel"]), _int(params, "M"), _int(params, "N"),
                                  _int(params, "K"), dtype=str(params["dtype"]),
                                  tile=_int(params, "tile"))
    if workload == "stream":
        if _int(params, "elem_bytes") != 4:
            raise SimgpuError(f"stream: elem_bytes = {params['elem_bytes']!r}, expected 4 (the"
                              " kernels of kernels/stream.cu move float4s of fp32)")
        return Stream(str(params["op"]), _int(params, "n_elements"))
    if workload == "pointer_chase":
        return PointerChase(_int(params, "footprint_B"), _int(params, "stride_B"),
                            cache_op=str(params["cache_op"]))
    return HostCopy(_int(params, "n_bytes"), str(params["direction"]), _bool(params, "pinned"))


#: the figures of each workload a sweep row carries, beside time, bound, power and energy
OUTPUTS = {
    "gemm": ("tflops", "dram_bytes", "l2_bytes", "time_s_spread"),
    "stream": ("bandwidth_GBps", "level", "time_s_spread"),
    "pointer_chase": ("latency_cycles", "latency_ns", "level", "time_s_spread"),
    "pcie_copy": ("bandwidth_GBps", "time_s_spread"),
}


def evaluate(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one sweep point (one row), from :mod:`simgpu.views.protocol`."""
    device, view, workload, overrides, wl = split_point(params)
    spec = device_with(device, overrides)
    t0 = time.perf_counter()
    e = views.estimate(view, workload_of(workload, wl), spec)
    out: dict[str, Any] = {"time_s": e.time_s, "bound": e.bound,
                           "power_W": math.nan if e.power_W is None else e.power_W,
                           "energy_J": math.nan if e.energy_J is None else e.energy_J}
    for k in OUTPUTS[workload]:
        v = e.time_s_spread if k == "time_s_spread" else e.figures.get(k)
        if v is not None:
            out[k] = v
    out["wall_s"] = time.perf_counter() - t0
    row = {"device": device, "view": view, "workload": workload, **overrides, **wl}
    row.update(out)
    return [row]
