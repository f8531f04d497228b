"""Workload families of a calibration run: what was measured and which workload each row is.

A family turns one table of a run into comparison rows: the measured metric per row and, through
the catalogue, the :mod:`simgpu.workloads` object the row measured (``from_row`` of the class
the catalogue names for the row's kernel). Every view answers for those workloads through the
view protocol (:func:`simgpu.views.estimate_many`), so validate asks the same questions as
``simgpu compare`` and ``simgpu sweep``.

What is validate's own is which rows the costly simulated view replays: every row the
simulator models, cheapest replay first, until ``sim_budget_s`` of wall time is spent
(compiling the simulator, on a first run, is not spent from it: :mod:`simgpu.sim.compiletime`),
or, where ``max_sim`` is set (by the caller, or by a family whose cost measure does not compare
different kernels' replays), at most that many rows per curve, spread over the curve's sizes (or
the cheapest, where the spread would put one large replay beyond any budget); and the settings
of a replay that make it answer the question the measurement asked (see :class:`Family`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import simgpu.workloads as workload_classes
from simgpu import catalogue
from simgpu.analytical.gemm import library_call_floor_s
from simgpu.analytical.params import DeviceParams
from simgpu.calibrate.dataset import RunDir
from simgpu.errors import ViewUnavailable
from simgpu.predict import datasets
from simgpu.sim.compiletime import compile_seconds
from simgpu.views import protocol as views
from simgpu.workloads import PointerChase, Workload
from simgpu.workloads.gemm import GemmBase

__all__ = ["Family", "families", "learned_training_data", "params_text", "pct_error",
           "replay_plan", "view_values", "workload_for_row"]

#: A view's answer for a family: one value per measured row (NaN = not modelled), and a note.
ViewResult = tuple[np.ndarray, str]

#: Dependent loads a simulated pointer chase replays (the benchmark times 32 K; the latency of
#: a plateau settles within a few hundred: assumption, the mean of 300 is within 1% on one).
PCHASE_SIM_STEPS = 300


@dataclass(frozen=True)
class Family:
    """One workload family: the run table it reads and the metric compared."""

    name: str
    table: str
    metric: str  # column of the comparison: what is compared
    unit: str
    x: str  # column for the x axis of the family's figure
    x_label: str
    series: tuple[str, ...]  # columns that split the family into curves
    select: Callable[[pd.DataFrame], pd.DataFrame]  # measured rows compared, with `metric`
    params: tuple[str, ...]  # columns that identify a row (shown as `params`)
    #: the catalogue kernel a row of the table measured
    kernel: Callable[[Mapping[Any, Any]], str]
    #: which views answer (the catalogue's views of the family's kernels, less those with no
    #: model of the metric)
    views: tuple[str, ...] = ("simulated", "analytical")
    #: simulated view: the column the rows are spread over (with ``max_sim``), and what orders
    #: their replays' cost: a column, or a function of the row's workload and the device (None:
    #: every row in the table's order, they are cheap)
    sim_by: str | None = None
    sim_cost: str | Callable[[Workload, Any], float] | None = None
    #: simulated view: rows per curve, unless validate is given its own ``max_sim`` (None: every
    #: row, cheapest first, while the budget lasts; a cap spreads the budget over the curves
    #: where the cost measure does not compare the replays of different kernels)
    max_sim: int | None = None
    #: simulated view: options of Workload.simulate, and the rows it can replay
    sim_options: Mapping[str, Any] = field(default_factory=dict)
    sim_rows: Callable[[Any, pd.DataFrame], pd.Series] | None = None
    #: simulated view: add the host's launch overhead (the measured time of one call includes
    #: it; the replay times the kernel only)
    sim_plus_launch: bool = False


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _sample(n: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` rows spread evenly over ``n`` (all if n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(int))


def workload_for_row(fam: Family, row: Mapping[Any, Any]) -> Workload | None:
    """The workload a measured row of ``fam`` is (None where the catalogue has no workload
    class for its kernel, e.g. a dataset's kernel)."""
    entry = catalogue.get(fam.kernel(row))
    if entry.workload is None:
        return None
    cls: type[Workload] = getattr(workload_classes, entry.workload)
    w = cls.from_row(row)
    if isinstance(w, PointerChase):
        w = replace(w, steps=min(int(row["steps"]), PCHASE_SIM_STEPS))
    return w


# --- the measured rows of each family ------------------------------------------------------------


def _pchase_select(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["path"].isin(["ca", "cg"])].copy()
    return out.sort_values(["path", "footprint_B"]).reset_index(drop=True)


def _stream_select(df: pd.DataFrame) -> pd.DataFrame:
    # the default occupancy of each op (the runner also sweeps blocks for `read`)
    best = df.groupby(["op", "array_B"])["blocks"].transform("max")
    out = df[df["blocks"] == best].copy()
    return out.sort_values(["op", "array_B"]).reset_index(drop=True)


def _pcie_select(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["direction", "host_memory", "size_B"]).reset_index(drop=True)


def _gemm_select(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["check_ok"]].copy()
    out["time_s"] = out["time_ms"] * 1e-3
    return out.sort_values(["kernel", "dtype", "flops"]).reset_index(drop=True)


def _by_size(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = df[df["check_ok"]].copy() if "check_ok" in df.columns else df.copy()
    out["time_s"] = out["time_ms"] * 1e-3
    return out.sort_values(keys).reset_index(drop=True)


def _replay_bytes(w: Workload, spec: Any) -> float:
    return w.replay_bytes(spec)


# --- views ---------------------------------------------------------------------------------------


def _picks(rows: pd.DataFrame, fam: Family, max_sim: int | None,
           costs: pd.Series | None) -> list[int]:
    """Row labels to simulate, cheapest replay first (``costs``, by row label): every row, or
    with ``max_sim``, per curve up to max_sim spread over ``sim_by`` (or, where that is the
    cost, the max_sim cheapest, since one large replay can outlast any budget)."""
    if costs is None:
        return [int(i) for i in rows.index]
    chosen: list[int] = [int(i) for i in rows.index]
    if max_sim is not None:
        chosen = []
        series = [c for c in ("path", "op", "direction", "host_memory", "kernel", "dtype",
                              "tile_m") if c in rows.columns]
        groups = rows.groupby(series, sort=False) if series else [(None, rows)]
        for _, grp in groups:
            if fam.sim_by is None or fam.sim_by == fam.sim_cost:
                idx = costs[grp.index].sort_values(kind="stable").index.to_numpy()[:max_sim]
            else:
                grp = grp.sort_values(fam.sim_by)
                idx = grp.index.to_numpy()[_sample(len(grp), max_sim)]
            chosen.extend(int(i) for i in idx)
    return sorted(chosen, key=lambda i: float(costs[i]))


def _costs(rows: pd.DataFrame, fam: Family, ws: list[Workload | None],
           spec: Any) -> pd.Series | None:
    """What each row's replay costs, by row label, in the family's own measure (None: the
    family's rows are all cheap)."""
    if fam.sim_cost is None:
        return None
    if isinstance(fam.sim_cost, str):
        return rows[fam.sim_cost].astype(float)
    cost = fam.sim_cost
    values = []
    for i in rows.index:
        w = ws[i]
        values.append(math.inf if w is None else cost(w, spec))
    return pd.Series(values, index=rows.index, dtype=float)


def _replayable(spec: Any, fam: Family, rows: pd.DataFrame,
                ws: list[Workload | None]) -> pd.Series:
    """Which rows the simulator can replay (their kernel has a simulated view, and the family
    says so)."""
    ok = pd.Series([w is not None and "simulated" in w.entry().views for w in ws],
                   index=rows.index)
    if fam.sim_rows is not None:
        ok &= fam.sim_rows(spec, rows)
    return ok


def replay_plan(spec: Any, fam: Family, rows: pd.DataFrame,
                ws: list[Workload | None] | None = None,
                max_sim: int | None = None) -> pd.Series:
    """The rows of ``fam`` (its selected measured rows, ``fam.select``) that validate's
    simulated view replays on ``spec``, by label, in the order it replays them until its
    budget is spent, with each one's cost in the family's measure (NaN where the family has
    none: its rows are cheap). ``ws``: the rows' workloads (:func:`workload_for_row`), where
    they are made already; ``max_sim``: at most that many rows per curve (None: the family's
    own rule, :attr:`Family.max_sim`)."""
    if ws is None:
        ws = [workload_for_row(fam, r) for r in rows.to_dict(orient="records")]
    candidates = rows[_replayable(spec, fam, rows, ws)]
    costs = _costs(candidates, fam, ws, spec)
    picks = _picks(candidates, fam, fam.max_sim if max_sim is None else int(max_sim), costs)
    values = [math.nan if costs is None else float(costs[i]) for i in picks]
    return pd.Series(values, index=pd.Index(picks), dtype=float, name="cost")


def _simulated(spec: Any, fam: Family, rows: pd.DataFrame, ws: list[Workload | None],
               opts: Mapping[str, Any]) -> ViewResult:
    out = _nan(len(rows))
    if opts["metric"] not in ("time_s", "latency_ns", "bandwidth_GBps"):
        return out, "the simulator has no power model"
    plan = replay_plan(spec, fam, rows, ws, opts["max_sim"])
    picks = [int(i) for i in plan.index]
    params = DeviceParams.from_spec(spec)
    launch_s = params.launch_overhead_s if fam.sim_plus_launch else 0.0
    # the harness's shortest call of the family's own kernels, where a calibration fitted it
    floor_s = params.kernel_floor_s.get(fam.table, 0.0) if fam.sim_plus_launch else 0.0
    t0 = time.perf_counter()
    c0 = compile_seconds()  # a first run's compiling is not spent from the budget
    end = t0 + float(opts["sim_budget_s"])
    done, first_note, unavailable = 0, "", 0
    for i in picks:
        if time.perf_counter() - (compile_seconds() - c0) >= end:
            break
        w = ws[i]
        assert w is not None
        try:
            e = views.estimate("simulated", w, spec, **fam.sim_options)
        except ViewUnavailable:  # e.g. cuBLAS fp32: the kernel simulates other dtypes only
            unavailable += 1
            continue
        value = e.get(opts["metric"])
        if opts["metric"] == "time_s" and value is not None:
            value += launch_s
            if isinstance(w, GemmBase):  # the harness's shortest library call, as analytically
                value = max(value, library_call_floor_s(params, w.kernel, w.dtype))
            value = max(value, floor_s)
        elif opts["metric"] == "bandwidth_GBps" and value and (launch_s or floor_s):
            # the bytes over the call's time, the launch included, as the harness divides them
            t = e.get("time_s")
            if t:
                value *= t / max(t + launch_s, floor_s)
        out[i] = np.nan if value is None else value
        done += 1
        first_note = first_note or e.note.split(":")[0]
    note = (f"{first_note or 'Workload.simulate()'}: {done} of {len(rows)} rows simulated"
            f" in {time.perf_counter() - t0:.0f} s")
    compiling = compile_seconds() - c0
    if compiling >= 0.5:
        note += f" ({compiling:.0f} s of it compiling, outside the budget)"
    if fam.sim_options:
        note += f" ({', '.join(f'{k}={v}' for k, v in fam.sim_options.items())})"
    if launch_s:
        note += f" + launch overhead {launch_s * 1e6:.2f} us"
    if floor_s:
        note += f", calls no shorter than the device file's call floor ({floor_s * 1e6:.1f} us)"
    if launch_s and params.library_floor_s and fam.table == "gemm":
        floors = ", ".join(f"{d} {t * 1e6:.1f} us" for d, t in sorted(
            params.library_floor_s.items()))
        note += f", library calls no shorter than the device file's call floor ({floors})"
    if done < len(picks):
        note += f"; {len(picks) - done} more chosen, wall budget {opts['sim_budget_s']:g} s spent"
    if unavailable:
        note += f"; {unavailable} chosen rows the simulated view cannot answer"
    skipped = len(rows) - int(_replayable(spec, fam, rows, ws).sum())
    if skipped:
        note += f"; {skipped} rows it does not replay"
    return out, note


def view_values(view: str, spec: Any, fam: Family, rows: pd.DataFrame,
                opts: Mapping[str, Any]) -> ViewResult:
    """``view``'s value of ``opts["metric"]`` for every row of ``rows`` (NaN where it has
    none), and a note saying what answered."""
    ws = [workload_for_row(fam, r) for r in rows.to_dict(orient="records")]
    if view == "simulated":
        return _simulated(spec, fam, rows, ws, opts)
    present = [i for i, w in enumerate(ws) if w is not None]
    options: dict[str, Any] = {}
    if view == "learned":
        data, what = learned_training_data(opts["run_device"])
        options = {"data": data, "data_note": what, "log": opts.get("log")}
    answers = views.estimate_many(view, [ws[i] for i in present], spec,  # type: ignore[misc]
                                  **options)
    out = _nan(len(rows))
    notes: list[str] = []
    unavailable: dict[str, int] = {}
    for i, a in zip(present, answers, strict=True):
        if isinstance(a, ViewUnavailable):
            unavailable[str(a)] = unavailable.get(str(a), 0) + 1
            continue
        value = a.get(opts["metric"])
        out[i] = np.nan if value is None else value
        if a.note and a.note not in notes:
            notes.append(a.note)
    note = "; ".join(notes[:1]) or f"no {view} answer"
    for reason, n in unavailable.items():
        note += f"; {n} rows: {reason}"
    return out, note


def learned_training_data(run_device: str) -> tuple[list[str], str]:
    """Training data for the learned view that holds out every run of the measured device.

    Validating the forest on rows it was trained on would report its memory, not its skill: the
    measured device's calibration runs (all of them, since runs of one device share shapes) are
    left out, so the forest predicts that GPU from its device file, as for a new GPU.
    """
    specs: list[str] = []
    others: list[str] = []
    for spec in datasets.default_training_specs():
        if spec != "calibration":
            specs.append(spec)
            continue
        for run in datasets.gemm_runs_under(datasets.calibration_dir()):
            device = RunDir.open(run).device
            if device != run_device:
                specs.append(str(run))
                others.append(f"{device}/{run.name}")
    parts = [s for s in specs if not Path(s).exists() or s in ("neusight", "gpperf")]
    what = ", ".join(parts + others) or "nothing"
    return specs, f"{what} (every {run_device} run held out)"


def families() -> dict[str, Family]:
    """Every family validate knows, by name."""
    trace_sim = {"sim_plus_launch": True, "sim_options": {"warm_l2": True}}
    fams = [
        Family("pchase", "pchase", "latency_ns", "ns", "footprint_B", "footprint [B]",
               ("path",), _pchase_select, ("path", "footprint_B"),
               kernel=lambda r: f"pchase_{r['path']}"),  # every row: 300 loads, < 1 s each
        Family("stream", "stream", "bandwidth_GBps", "GB/s", "array_B", "array size [B]",
               ("op",), _stream_select, ("op", "array_B", "blocks"),
               kernel=lambda r: f"stream_{r['op']}",
               # the bytes each sampled replay moves (a steady-state window's for streams
               # larger than the L2), which sets its cost
               sim_by="array_B", sim_cost=_replay_bytes,
               sim_plus_launch=True,
               sim_options={"warm_l2": True}),
        Family("pcie", "pcie", "bandwidth_GBps", "GB/s", "size_B", "copy size [B]",
               ("direction", "host_memory"), _pcie_select, ("direction", "host_memory", "size_B"),
               kernel=lambda r: "memcpy"),
        Family("gemm_time", "gemm", "time_s", "s", "flops", "FLOP per call",
               ("kernel", "dtype"), _gemm_select,
               ("kernel", "dtype", "M", "N", "K", "tile_m", "tile_n", "tile_k"),
               kernel=lambda r: str(r["kernel"]), views=("simulated", "analytical", "learned"),
               # FLOPs order one kernel's replays, not those of different kernels (a naive
               # SGEMM of 384^3 replays for longer than a tiled one of 1024^3): the cap keeps
               # every kernel's smallest calls in the budget
               sim_by="flops", sim_cost="flops", max_sim=4, **trace_sim),  # type: ignore[arg-type]
        Family("gemm_power", "gemm", "power_W", "W", "flops", "FLOP per call",
               ("kernel", "dtype"), lambda df: _gemm_select(df[df["power_W"].notna()]),
               ("kernel", "dtype", "M", "N", "K", "tile_m", "tile_n", "tile_k"),
               kernel=lambda r: str(r["kernel"]), views=("analytical", "learned")),
        Family("transpose", "transpose", "time_s", "s", "rows", "rows (= columns)",
               ("kernel",), lambda df: _by_size(df, ["kernel", "rows"]), ("kernel", "rows", "cols"),
               kernel=lambda r: str(r["kernel"]),
               # the bytes of the waves a sampled replay runs (the same from 4096^2 up): rank
               # correlation with the replays' wall time 0.80, against 0.66 for bytes_moved
               # (bench_replay_cost.py --family transpose, run 20261208T015638Z)
               sim_by="bytes_moved", sim_cost=_replay_bytes, **trace_sim),  # type: ignore[arg-type]
        Family("reduction", "reduction", "time_s", "s", "n", "elements", (),
               lambda df: _by_size(df, ["n"]), ("n",), kernel=lambda r: "reduce_sum",
               # every row: sampled in grid-stride trips, the run's 7 take 36 s
               **trace_sim),  # type: ignore[arg-type]
        Family("gemv", "gemv", "time_s", "s", "M", "M (rows)", (),
               lambda df: _by_size(df, ["M", "N"]), ("M", "N"), kernel=lambda r: "sgemv_warp",
               # the bytes a sampled replay moves: two trip counts of the first wave where the
               # k loop is long, every wave where it is short (65536 x 1024, 115 s: last)
               sim_by="bytes_moved", sim_cost=_replay_bytes, **trace_sim),  # type: ignore[arg-type]
    ]
    return {f.name: f for f in fams}


def pct_error(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Signed percentage error of a view against measured (NaN where either is missing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(predicted, float) - measured) / measured * 100.0


def params_text(row: Mapping[Any, Any], keys: tuple[str, ...]) -> str:
    """``key=value`` pairs of a row, integers without decimals."""
    parts = []
    for k in keys:
        v = row[k]
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            v = int(v)
        parts.append(f"{k}={v}")
    return " ".join(parts)

