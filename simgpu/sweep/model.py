"""One point of a design-space sweep: a device (with parameter overrides), a workload, a view.

A point is a flat dict. Keys:

``device``
    a device name from ``models/`` (``$SIMGPU_MODELS`` is honoured by the workers too);
``view``
    ``"analytical"`` (closed forms, microseconds) or ``"simulated"`` (SimPy trace replay);
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

from simgpu.errors import SimgpuError

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
    from simgpu import devices

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


def evaluate(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one sweep point (one row)."""
    device, view, workload, overrides, wl = split_point(params)
    spec = device_with(device, overrides)
    t0 = time.perf_counter()
    if view == "analytical":
        out = _analytical(spec, workload, wl)
    else:
        out = _simulated(spec, workload, wl)
    out["wall_s"] = time.perf_counter() - t0
    row = {"device": device, "view": view, "workload": workload, **overrides, **wl}
    row.update(out)
    return [row]


def _first(df: Any, cols: tuple[str, ...]) -> dict[str, Any]:
    rec = df.iloc[0]
    return {c: (rec[c].item() if hasattr(rec[c], "item") else rec[c]) for c in cols if c in df}


def _analytical(spec: Any, workload: str, wl: dict[str, Any]) -> dict[str, Any]:
    from simgpu import analytical

    base = ("time_s", "bound", "power_W", "energy_J")
    if workload == "gemm":
        kw: dict[str, Any] = {"kernel": wl["kernel"]}
        if int(wl["tile"]):
            t = int(wl["tile"])
            kw.update(tile_m=t, tile_n=t, tile_k=t, threads_per_block=t * t)
        df = analytical.gemm(spec, int(wl["M"]), int(wl["N"]), int(wl["K"]), str(wl["dtype"]),
                             **kw)
        return _first(df, (*base, "tflops", "dram_bytes", "l2_bytes"))
    if workload == "stream":
        df = analytical.stream(spec, str(wl["op"]), int(wl["n_elements"]), int(wl["elem_bytes"]))
        return _first(df, (*base, "bandwidth_GBps", "level"))
    if workload == "pointer_chase":
        if wl["cache_op"] != "ca":
            raise SimgpuError("analytical pointer_chase models L1-cached loads (cache_op=ca)"
                              f" only, got cache_op={wl['cache_op']!r}")
        df = analytical.pointer_chase(spec, int(wl["footprint_B"]), int(wl["stride_B"]))
        return _first(df, ("latency_cycles", "latency_ns", "bound", "level"))
    df = analytical.pcie_copy(spec, int(wl["n_bytes"]), str(wl["direction"]), bool(wl["pinned"]))
    return _first(df, (*base, "bandwidth_GBps"))


def _simulated(spec: Any, workload: str, wl: dict[str, Any]) -> dict[str, Any]:
    """Trace replay through :mod:`simgpu.workloads` (raises SimgpuError where none exists)."""
    try:
        from simgpu import workloads
    except ImportError as exc:
        raise SimgpuError(f"simulated view unavailable: {exc}") from None
    if workload == "gemm":
        if wl["dtype"] != "fp32" or wl["kernel"] not in ("tiled", "sgemm_tiled"):
            raise SimgpuError(
                "simulated gemm: only the fp32 shared-memory tiled kernel is traced"
                f" (kernels/sgemm.cu; set dtype=fp32 kernel=tiled), got dtype={wl['dtype']}"
                f" kernel={wl['kernel']}"
            )
        tile = int(wl["tile"]) or 16
        obj: Any = workloads.TiledGemm(int(wl["M"]), int(wl["N"]), int(wl["K"]), tile=tile)
    else:
        cls_name = {"stream": "Stream", "pointer_chase": "PointerChase"}.get(workload)
        cls = getattr(workloads, cls_name or "", None)
        if cls is None:
            raise SimgpuError(f"simulated {workload}: simgpu.workloads has no such workload yet")
        args = {k: v for k, v in wl.items() if k != "elem_bytes"}
        obj = cls(**args)
    try:
        res = obj.simulate(spec)
    except AttributeError as exc:  # a simulator piece not there yet
        raise SimgpuError(f"simulated view unavailable: {exc}") from None
    out: dict[str, Any] = {"time_s": res.time_s, "bound": None, "power_W": math.nan,
                           "energy_J": math.nan, "time_s_spread": res.time_s_spread}
    if workload == "gemm":
        out["tflops"] = res.flops / res.time_s / 1e12 if res.time_s > 0 else math.nan
    else:
        bw = res.bandwidth_GBps()
        out["bandwidth_GBps"] = max(bw.values()) if bw else math.nan
    return out
