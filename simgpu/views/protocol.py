"""The view protocol: one way to ask any of the four views about a workload on a device.

``estimate(view, workload, spec) -> Estimate`` answers for ``measured`` (the matching row of a
calibration run, or a live measurement), ``simulated`` (:meth:`Workload.simulate`, the SimPy
model), ``analytical`` (:meth:`Workload.estimate`, the closed forms) and ``learned`` (the random
forest on :meth:`Workload.features`). Every command that compares views (``simgpu compare``,
``validate``, ``sweep`` and the experiments) asks through here, so a workload that one of them
can answer for, all of them can.

A view that cannot answer raises :class:`~simgpu.errors.ViewUnavailable` with the reason (no
trace of a closed-source kernel, no calibration row, a GEMM-only predictor); anything else that
goes wrong is a bug and propagates as it is.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from simgpu import predict
from simgpu.catalogue import VIEWS
from simgpu.errors import SimgpuError, ViewUnavailable
from simgpu.views import measured as measured_view
from simgpu.views.estimate import Estimate, number

if TYPE_CHECKING:
    from simgpu.devices.spec import DeviceSpec
    from simgpu.workloads.base import Workload

__all__ = ["VIEWS", "Estimate", "ViewUnavailable", "estimate", "estimate_many"]

Log = Callable[[str], None]


def _figures(workload: Workload, time_s: float | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(workload.figures(time_s)) if time_s else {}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


# --- analytical ---------------------------------------------------------------------------------


def _from_frame_row(view: str, workload: Workload, row: Mapping[str, Any], seconds: float,
                    note: str) -> Estimate:
    time_s = number(row.get("time_s"))
    numbers = {k: v for k, v in row.items() if isinstance(v, int | float | str)
               and k not in ("time_s", "power_W", "energy_J", "bound")
               and not str(k).startswith("ev_")}
    bound = row.get("bound")
    return Estimate(view, time_s, number(row.get("power_W")), bound=None if bound is None
                    else str(bound), figures=_figures(workload, time_s, numbers), note=note,
                    seconds=seconds, detail=dict(row))


def _analytical_note(workload: Workload, row: Mapping[str, Any]) -> str:
    parts = [f"{type(workload).__name__}.estimate(): simgpu.analytical"]
    if "tile_m" in row and "waves" in row:
        tile = f"tile {int(row['tile_m'])}x{int(row['tile_n'])}x{int(row['tile_k'])}"
        if row.get("schedule") == "stream-k":  # persistent blocks: the tile grid's waves are
            # not how it runs (simgpu.analytical.gemm.StreamKPlan)
            parts.append(f"{tile}, stream-K over {int(row['sk_tiles'])} of its tiles")
        else:
            parts.append(f"{tile}, {float(row['waves']):.2f} waves")
    if "power_model" in row:
        parts.append(f"power model {row['power_model']}")
    return ", ".join(parts)


def _analytical(workloads: Sequence[Workload], spec: DeviceSpec) -> list[Estimate]:
    out = []
    for w in workloads:
        t0 = time.perf_counter()
        row = {str(k): v for k, v in w.estimate(spec).iloc[0].to_dict().items()}
        out.append(_from_frame_row("analytical", w, row, time.perf_counter() - t0,
                                   _analytical_note(w, row)))
    return out


# --- simulated ----------------------------------------------------------------------------------


def _simulated(w: Workload, spec: DeviceSpec, options: Mapping[str, Any]) -> Estimate:
    t0 = time.perf_counter()
    res = w.simulate(spec, **options)
    wall = time.perf_counter() - t0
    extra = {"cycles": res.cycles, "clock_MHz": res.clock_MHz, "waves": res.waves,
             "blocks_total": res.blocks_total, "blocks_simulated": res.blocks_simulated,
             "warp_instructions": res.warp_instructions, "sm_slice": res.sm_slice}
    # a trip-sampled GEMM replays its first wave twice: block replays, not distinct blocks
    where = f" on 1/{res.sm_slice} of the GPU" if res.sm_slice > 1 else ""
    note = (f"{type(w).__name__}.simulate(): {res.blocks_simulated} block replays for"
            f" {res.blocks_total} blocks{where}"
            f"{' (sampled, extrapolated)' if res.sampled else ''} in {wall:.1f} s")
    if res.scheduler not in ("gto", "lrr"):
        note = f"{type(w).__name__}.simulate(): {res.scheduler} in {wall:.1f} s"
    power = getattr(res, "power_W", None)
    view_note = getattr(res, "note", "")
    if view_note:
        note += f"; {view_note}"
    if power is None:
        note += "; no power model in the simulator"
    return Estimate("simulated", res.time_s, power, time_s_spread=res.time_s_spread,
                    figures=_figures(w, res.time_s, extra), note=note, seconds=wall, detail=res)


# --- learned ------------------------------------------------------------------------------------


def _learned(workloads: Sequence[Workload], spec: DeviceSpec,
             options: Mapping[str, Any]) -> list[Estimate | ViewUnavailable]:
    rows: list[dict[str, Any]] = []
    out: list[Estimate | ViewUnavailable] = []
    for w in workloads:
        try:
            rows.append(w.features())
            out.append(ViewUnavailable("pending"))
        except ViewUnavailable as exc:
            out.append(exc)
    if not rows:
        return out
    data = options.get("data")
    log = options.get("log")
    t0 = time.perf_counter()
    _, info = predict.default_model(data, log=log)
    if log:
        state = "loaded from cache" if info.get("cached") else f"trained in {info['train_s']:.0f} s"
        log(f"random forest {state} ({info['cache_path']})")
    what = options.get("data_note") or (
        f"{info.get('rows', '?')} rows of {', '.join(map(str, info.get('data', [])))}")
    note = f"predict_gemm(): forest trained on {what}"
    if data is None and "calibration" in info.get("data", []):
        note += "; the calibration runs are in its training data (not a held-out prediction)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = predict.predict_gemm(spec, pd.DataFrame(rows), data=data, log=log)
    wall = (time.perf_counter() - t0) / len(rows)
    outside = sum("outside" in str(m.message) for m in caught)
    if outside:
        note += f"; {outside} warning(s) of points outside the training range"
    it = iter(est.to_dict(orient="records"))
    for i, w in enumerate(workloads):
        if not isinstance(out[i], ViewUnavailable) or str(out[i]) != "pending":
            continue
        r = next(it)
        t = number(r["time_s"])
        source = r.get("power_source")
        power_note = note + (f", power {source}" if source else "")
        if number(r.get("an_power_W")) is not None and r.get("power_W") == r.get("an_power_W"):
            power_note += "; no power-labelled training rows, so its power is the analytical one"
        out[i] = Estimate(
            "learned", t, number(r["power_W"]), time_s_spread=number(r.get("time_s_spread")),
            power_W_spread=number(r.get("power_W_spread")),
            figures=_figures(w, t, {"extrapolated": bool(r.get("extrapolated", False))}),
            note=power_note, seconds=wall, detail=r,
        )
    return out


# --- the protocol -------------------------------------------------------------------------------


def estimate(view: str, workload: Workload, spec: DeviceSpec, **options: Any) -> Estimate:
    """``view``'s answer for ``workload`` on ``spec``.

    Options by view: ``simulated`` passes them to :meth:`Workload.simulate` (``sample``,
    ``warm_l2``, ``system_factory``, ...); ``learned`` takes ``data`` (training data specs;
    default: :func:`simgpu.predict.default_model`'s), ``data_note`` and ``log``; ``measured``
    takes ``root`` (the calibration folder), ``device`` (the run folder's device name, default
    ``spec.name``), ``measure`` (measure live first, on the local GPU) and ``log``.
    """
    (out,) = estimate_many(view, [workload], spec, **options)
    if isinstance(out, ViewUnavailable):
        raise out
    return out


def estimate_many(
    view: str, workloads: Sequence[Workload], spec: DeviceSpec, **options: Any
) -> list[Estimate | ViewUnavailable]:
    """:func:`estimate` for many workloads at once (the learned view predicts them in one
    batch, the measured one reads each calibration table once); where the view cannot answer
    for a workload, its place holds the :class:`ViewUnavailable` saying why."""
    if view not in VIEWS:
        raise SimgpuError(f"view {view!r}: expected one of {', '.join(VIEWS)}")
    out: list[Estimate | ViewUnavailable] = []
    for w in workloads:
        if view not in w.entry().views:
            out.append(ViewUnavailable(w.entry().unavailable(view)))
        else:
            out.append(ViewUnavailable("pending"))
    if view != "measured":  # a kernel the device cannot hold is no question for a model
        for w in workloads:
            w.check_fits(spec)
    todo = [i for i, o in enumerate(out) if str(o) == "pending"]
    ws = [workloads[i] for i in todo]
    answers: Sequence[Estimate | ViewUnavailable]
    if view == "analytical":
        answers = _guard(ws, lambda w: _analytical([w], spec)[0])
    elif view == "simulated":
        answers = _guard(ws, lambda w: _simulated(w, spec, options))
    elif view == "learned":
        answers = _learned(ws, spec, options)
    else:
        answers = measured_view.estimates(ws, spec, **options)
    for i, a in zip(todo, answers, strict=True):
        out[i] = a
    return out


def _guard(workloads: Sequence[Workload],
           one: Callable[[Workload], Estimate]) -> list[Estimate | ViewUnavailable]:
    out: list[Estimate | ViewUnavailable] = []
    for w in workloads:
        try:
            out.append(one(w))
        except ViewUnavailable as exc:
            out.append(exc)
    return out
