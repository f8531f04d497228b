"""One workload, four views, one table: ``simgpu compare``.

For a GEMM on a device, :func:`compare_gemm` asks each view through the view protocol
(:func:`simgpu.views.protocol.estimate`) about the workload the catalogue gives for the kernel
(:class:`~simgpu.workloads.LibraryGemm` for cuBLAS, the :mod:`simgpu.workloads` class of a
``kernels/sgemm.cu`` kernel otherwise):

``measured``
    the matching row of a calibration run in ``calibration/<device>/`` (same M, N, K, dtype and
    kernel, and tile for our own kernels; rows whose result check failed are skipped), or a live
    measurement with ``measure=True`` (CuPy + NVML on the local GPU; the row is written as a new
    calibration run first, so it is never lost); ``None`` when neither exists;
``simulated``
    the SimPy model's trace replay (sampled): the fp32 SIMT kernels of ``kernels/sgemm.cu``,
    and cuBLAS's tensor-core GEMMs as the CUTLASS-like kernel of the analytical library search
    at the clock the power cap allows, with a power (:mod:`simgpu.workloads.tensor_gemm`);
    cuBLAS's fp32 kernels are closed source;
``analytical``
    :func:`simgpu.analytical.gemm`;
``learned``
    :func:`simgpu.predict.predict_gemm` (a random forest trained once and cached on disk),

each as time, TFLOP/s, power, energy and bound, with its error against the measured view. A view
that cannot answer is ``None`` and its note says why.

``error_vs_measured`` is the signed time error in percent, ``100 (view - measured) /
measured``; ``power_error_vs_measured`` the same for power.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simgpu import catalogue, devices
from simgpu.errors import SimgpuError, ViewUnavailable
from simgpu.sim.hbm import HBMConfig
from simgpu.sim.system import build_system
from simgpu.sim.timeline import Timeline, add_hbm_commands, trace_requests
from simgpu.views import measured as measured_view
from simgpu.views import protocol as views
from simgpu.views.estimate import Estimate
from simgpu.workloads import GemmBase

__all__ = ["GemmQuery", "compare_gemm", "find_measured", "format_table", "jsonable", "to_frame"]

VIEWS = catalogue.VIEWS
#: the GEMM kernels compare offers: those with a workload class (their own or cuBLAS)
KERNELS = tuple(k.name for k in catalogue.kernels_of_kind("gemm") if k.workload is not None)
DTYPES = catalogue.DTYPES

Log = Callable[[str], None]


@dataclass(frozen=True)
class GemmQuery:
    """The GEMM asked about."""

    device: str
    M: int
    N: int
    K: int
    dtype: str = "fp16"
    kernel: str = "cublas"
    tile: int = 0

    def __post_init__(self) -> None:
        for name in ("M", "N", "K"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise SimgpuError(f"compare: {name} = {v!r}, expected a positive integer")
        if self.dtype not in DTYPES:
            raise SimgpuError(f"compare: dtype {self.dtype!r}, expected one of {DTYPES}")
        if self.kernel not in KERNELS:
            raise SimgpuError(f"compare: kernel {self.kernel!r}, expected one of {KERNELS}")
        entry = catalogue.get(self.kernel)
        if self.dtype not in entry.dtypes:
            raise SimgpuError(
                f"compare: kernel {self.kernel} ({entry.source or 'library'}) runs"
                f" {', '.join(entry.dtypes)} only, not {self.dtype}"
            )
        if self.tile and not entry.variants:
            raise SimgpuError(f"compare: --tile applies to the kernels with compile-time"
                              f" variants (kernels/sgemm.cu), not {self.kernel}")
        if self.tile:
            entry.variant(self.tile)  # a clear error for a tile no variant has

    @property
    def flops(self) -> float:
        return 2.0 * self.M * self.N * self.K

    @property
    def block_tile(self) -> int:
        """tile_m of the kernel that runs (0 for cuBLAS: the library chooses)."""
        entry = catalogue.get(self.kernel)
        return entry.variant(self.tile).tile[0] if entry.variants else 0

    def workload(self) -> GemmBase:
        """The workload the views answer for."""
        return GemmBase.of_kernel(self.kernel, self.M, self.N, self.K, dtype=self.dtype,
                                  tile=self.tile)


def find_measured(
    q: GemmQuery, root: Path | None = None
) -> tuple[dict[str, Any] | None, str]:
    """The calibration row that measured exactly ``q``, and a note naming run and row (or the
    nearest measured point of the same kernel and dtype when none did)."""
    try:
        return measured_view.find_row(q.workload(), q.device, root)
    except ViewUnavailable as exc:
        return None, str(exc)


# --- the views ----------------------------------------------------------------------------------


def _view(q: GemmQuery, e: Estimate, extra: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "time_s": e.time_s,
        "tflops": q.flops / e.time_s / 1e12 if e.time_s else None,
        "power_W": e.power_W,
        "energy_J": e.energy_J,
        "bound": e.bound,
    }
    for k in extra:
        out[k] = getattr(e, k) if k in ("time_s_spread", "power_W_spread", "seconds") else (
            e.figures.get(k))
    return out


#: what each view adds to the common columns of the JSON document
_EXTRA = {
    "measured": ("time_s_p10", "time_s_p90", "power_source", "source"),
    "simulated": ("time_s_spread", "seconds"),
    "analytical": ("waves", "seconds"),
    "learned": ("time_s_spread", "power_W_spread", "extrapolated", "seconds"),
}

#: Events kept in a ``--timeline`` trace (about 200 bytes each in the JSON file).
TIMELINE_MAX_EVENTS = 500_000


def _timeline_factory(holder: dict[str, Any]) -> Callable[[Any, Any], Any]:
    """A ``system_factory`` for the simulated view that records the requests and DRAM commands
    of the memory system it builds (the last one built is kept)."""
    def factory(env: Any, spec: Any) -> Any:
        timeline = Timeline(max_events=TIMELINE_MAX_EVENTS)
        system = build_system(env, spec, hbm_config=HBMConfig(log=True))
        trace_requests(system, timeline)
        holder.update(timeline=timeline, system=system)
        return system

    return factory


def _simulated(q: GemmQuery, spec: Any, log: Log | None,
               timeline: Path | None) -> tuple[Estimate, str]:
    w = q.workload()
    holder: dict[str, Any] = {}
    options: dict[str, Any] = {"system_factory": _timeline_factory(holder)} if timeline else {}
    if log and "simulated" in w.entry().views:
        log(f"simulated: replaying {type(w).__name__} {q.M}x{q.N}x{q.K} on {spec.name}"
            " (sampled; a 1024^3 GEMM takes a minute or two; --view to skip)")
    e = views.estimate("simulated", w, spec, **options)
    note = e.note
    if timeline and "timeline" in holder:
        tl = holder["timeline"]
        add_hbm_commands(tl, holder["system"].hbm)
        tl.write(timeline, spec.compute.boost_clock_MHz)
        note += (f"; timeline of its last replay ({len(tl)} events"
                 f"{f', {tl.dropped} dropped' if tl.dropped else ''}) in {timeline}")
    return e, note


def _pct(view: float | None, ref: float | None) -> float | None:
    if view is None or ref is None or ref == 0:
        return None
    return 100.0 * (view - ref) / ref


def compare_gemm(
    q: GemmQuery,
    *,
    measure: bool = False,
    views: tuple[str, ...] = VIEWS,
    calibration: Path | None = None,
    log: Log | None = None,
    timeline: Path | None = None,
) -> dict[str, Any]:
    """The four views of ``q`` as one JSON-ready document (see the module docstring).

    ``timeline``: write the simulated view's last replay as a Chrome/Perfetto trace there
    (:mod:`simgpu.sim.timeline`: every memory request on its SM's track, DRAM commands per
    pseudo-channel)."""
    spec = devices.get(q.device)
    w = q.workload()
    notes: dict[str, str] = {}
    out: dict[str, Any] = {"device": q.device, "workload": {"kind": "gemm", **asdict(q),
                                                             "flops": q.flops}}
    asks: dict[str, Callable[[], tuple[Estimate, str]]] = {
        "measured": lambda: _noted(_estimate("measured", w, spec, root=calibration,
                                             device=q.device, measure=measure, log=log)),
        "simulated": lambda: _simulated(q, spec, log, timeline),
        "analytical": lambda: _noted(_estimate("analytical", w, spec)),
        "learned": lambda: _learned(w, spec, log),
    }
    for name in VIEWS:
        if name not in views:
            out[name], notes[name] = None, "not requested"
            continue
        try:
            e, notes[name] = asks[name]()
            out[name] = _view(q, e, _EXTRA[name])
        except ViewUnavailable as exc:
            out[name], notes[name] = None, str(exc)
    ref = out["measured"] or {}
    for name in VIEWS:
        v = out[name]
        if v is None:
            continue
        v["error_vs_measured"] = _pct(v["time_s"], ref.get("time_s"))
        v["power_error_vs_measured"] = _pct(v["power_W"], ref.get("power_W"))
    out["notes"] = notes
    return out


def _estimate(view: str, w: GemmBase, spec: Any, **options: Any) -> Estimate:
    return views.estimate(view, w, spec, **options)


def _noted(e: Estimate) -> tuple[Estimate, str]:
    return e, e.note


def _learned(w: GemmBase, spec: Any, log: Log | None) -> tuple[Estimate, str]:
    def said(msg: str) -> None:
        if log:
            log(f"learned: {msg}; it is trained once per training data and settings, later runs"
                " load it")

    e = views.estimate("learned", w, spec, log=said if log else None)
    return e, e.note


# --- output -------------------------------------------------------------------------------------


def to_frame(doc: dict[str, Any]) -> pd.DataFrame:
    """The comparison as a DataFrame, one row per view."""
    rows = []
    for name in VIEWS:
        v = doc[name] or {}
        rows.append({"view": name, **{k: v.get(k) for k in (
            "time_s", "tflops", "power_W", "energy_J", "bound", "error_vs_measured",
            "power_error_vs_measured")}, "note": doc["notes"].get(name, "")})
    return pd.DataFrame(rows)


def format_table(doc: dict[str, Any]) -> str:
    w = doc["workload"]
    kern = w["kernel"] + (f" tile {w['tile']}" if w["tile"] else "")
    lines = [f"GEMM {w['M']} x {w['N']} x {w['K']} {w['dtype']} ({kern}) on {doc['device']}",
             f"{'view':<11}{'time':>12}{'TFLOP/s':>9}{'power':>8}{'energy':>11}  {'bound':<9}"
             f"{'err time':>9}{'err power':>10}"]

    def num(x: float | None, fmt: str, unit: str = "") -> str:
        return "-" if x is None else f"{x:{fmt}}{unit}"

    for name in VIEWS:
        v = doc[name]
        if v is None:
            lines.append(f"{name:<11}{'-':>12}{'-':>9}{'-':>8}{'-':>11}  {'-':<9}{'-':>9}{'-':>10}")
            continue
        t = v["time_s"]
        e = v["energy_J"]
        lines.append(
            f"{name:<11}{num(t and t * 1e3, '.4f', ' ms'):>12}{num(v['tflops'], '.1f'):>9}"
            f"{num(v['power_W'], '.0f', ' W'):>8}{num(e and e * 1e3, '.2f', ' mJ'):>11}"
            f"  {v['bound'] or '-':<9}{num(v.get('error_vs_measured'), '+.1f', '%'):>9}"
            f"{num(v.get('power_error_vs_measured'), '+.1f', '%'):>10}"
        )
    lines.append("")
    for name in VIEWS:
        lines.append(f"{name}: {doc['notes'].get(name, '')}")
    return "\n".join(lines)


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
