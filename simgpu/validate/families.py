"""Workload families of a calibration run: what was measured and how each view answers it.

A family turns one table of a run into comparison rows: the workload, its parameters, the
measured metric and, per view, the same metric predicted for the device under test. Each view
function receives the device spec and the family's measured rows and returns one value per row
(NaN where the view does not model that row) and a note saying what it did.

Views:

``analytical``
    :mod:`simgpu.analytical`, vectorised over all rows at once.
``simulated``
    the SimPy model (:mod:`simgpu.sim`, :mod:`simgpu.workloads`) on a subset of the rows, since
    a simulation takes seconds where a closed form takes microseconds; ``max_sim`` bounds it.
``learned``
    the GEMM predictor (:mod:`simgpu.predict`), GEMM rows only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: A view's answer for a family: one value per measured row (NaN = not modelled), and a note.
ViewResult = tuple[np.ndarray, str]
ViewFn = Callable[[Any, "pd.DataFrame", dict[str, Any]], ViewResult]


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
    views: dict[str, ViewFn]


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _sample(n: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` rows spread evenly over ``n`` (all if n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(int))


# --- pointer chase -------------------------------------------------------------------------------


def _pchase_select(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["path"].isin(["ca", "cg"])].copy()
    return out.sort_values(["path", "footprint_B"]).reset_index(drop=True)


def _pchase_analytical(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    from simgpu import analytical

    out = _nan(len(rows))
    ca = (rows["path"] == "ca").to_numpy()
    if ca.any():
        est = analytical.pointer_chase(
            spec, rows.loc[ca, "footprint_B"].to_numpy(), rows.loc[ca, "stride_B"].to_numpy()
        )
        out[ca] = est["latency_ns"].to_numpy()
    return out, "pointer_chase(): L1-cached chase (ca rows only; cg bypasses L1)"


# --- stream --------------------------------------------------------------------------------------


def _stream_select(df: pd.DataFrame) -> pd.DataFrame:
    # the default occupancy of each op (the runner also sweeps blocks for `read`)
    best = df.groupby(["op", "array_B"])["blocks"].transform("max")
    out = df[df["blocks"] == best].copy()
    return out.sort_values(["op", "array_B"]).reset_index(drop=True)


def _stream_analytical(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    from simgpu import analytical

    out = _nan(len(rows))
    for op, grp in rows.groupby("op"):
        est = analytical.stream(spec, str(op), grp["array_B"].to_numpy() / 4, elem_bytes=4)
        out[grp.index.to_numpy()] = est["bandwidth_GBps"].to_numpy()
    return out, "stream(): bytes moved / bandwidth of the level holding the arrays"


# --- PCIe ----------------------------------------------------------------------------------------


def _pcie_select(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["direction", "host_memory", "size_B"]).reset_index(drop=True)


def _pcie_analytical(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    from simgpu import analytical

    out = _nan(len(rows))
    for (direction, host), grp in rows.groupby(["direction", "host_memory"]):
        est = analytical.pcie_copy(
            spec, grp["size_B"].to_numpy(), str(direction), pinned=(host == "pinned")
        )
        out[grp.index.to_numpy()] = est["bandwidth_GBps"].to_numpy()
    return out, "pcie_copy(): latency + bytes / link bandwidth"


# --- GEMM ----------------------------------------------------------------------------------------


def _gemm_select(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["check_ok"]].copy()
    out["time_s"] = out["time_ms"] * 1e-3
    return out.sort_values(["kernel", "dtype", "flops"]).reset_index(drop=True)


def _gemm_args(rows: pd.DataFrame) -> dict[str, Any]:
    return {
        "M": rows["M"].to_numpy(),
        "N": rows["N"].to_numpy(),
        "K": rows["K"].to_numpy(),
        "dtype": rows["dtype"].to_numpy().astype(str),
        "tile_m": rows["tile_m"].to_numpy(),
        "tile_n": rows["tile_n"].to_numpy(),
        "tile_k": rows["tile_k"].to_numpy(),
        "thread_tile_m": rows["thread_tile_m"].to_numpy(),
        "thread_tile_n": rows["thread_tile_n"].to_numpy(),
        "threads_per_block": rows["threads_per_block"].to_numpy(),
        "split_k": np.maximum(1, rows["split_k"].to_numpy()),
        "kernel": rows["kernel"].to_numpy().astype(str),
    }


def _gemm_analytical(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    from simgpu import analytical

    a = _gemm_args(rows)
    est = analytical.gemm(spec, a.pop("M"), a.pop("N"), a.pop("K"), a.pop("dtype"), **a)
    return est[opts["metric"]].to_numpy(float), "gemm(): tiled traffic + roofline + waves"


def _gemm_learned(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    import warnings

    from simgpu import predict

    frame = rows[[c for c in rows.columns if c in _GEMM_INPUTS and c != "device"]].copy()
    data, what = learned_training_data(opts["run_device"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = predict.predict_gemm(spec, frame, data=data, log=opts.get("log"))
    outside = sum("outside" in str(w.message) for w in caught)
    note = f"predict_gemm(): random forest trained on {what}"
    if outside:
        note += f"; {outside} warning(s) of points outside the training range"
    if opts["metric"] == "power_W" and "an_power_W" in est.columns and np.allclose(
        est["power_W"].to_numpy(float), est["an_power_W"].to_numpy(float), equal_nan=True
    ):
        note += "; no power-labelled training rows, so its power is the analytical model's"
    return est[opts["metric"]].to_numpy(float), note


def learned_training_data(run_device: str) -> tuple[list[str], str]:
    """Training data for the learned view that holds out every run of the measured device.

    Validating the forest on rows it was trained on would report its memory, not its skill: the
    measured device's calibration runs (all of them, since runs of one device share shapes) are
    left out, so the forest predicts that GPU from its device file, as for a new GPU.
    """
    from simgpu.calibrate.dataset import RunDir
    from simgpu.predict import datasets

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


_GEMM_INPUTS = (
    "device", "kernel", "dtype", "accum_dtype", "layout", "M", "N", "K", "tile_m", "tile_n",
    "tile_k", "thread_tile_m", "thread_tile_n", "threads_per_block", "split_k", "stages", "flops",
)


# --- transpose, reduction, GEMV ------------------------------------------------------------------


def _by_size(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = df[df["check_ok"]].copy() if "check_ok" in df.columns else df.copy()
    out["time_s"] = out["time_ms"] * 1e-3
    return out.sort_values(keys).reset_index(drop=True)


def _transpose_analytical(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    from simgpu import analytical

    out = _nan(len(rows))
    for kernel, grp in rows.groupby("kernel"):
        variant = str(kernel).removeprefix("transpose_")
        n = np.sqrt(grp["rows"].to_numpy(float) * grp["cols"].to_numpy(float))
        est = analytical.transpose(spec, n, variant)
        out[grp.index.to_numpy()] = est["time_s"].to_numpy()
    return out, "transpose(): bytes / bandwidth, naive pays partial sectors"


def _reduction_analytical(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    from simgpu import analytical

    est = analytical.reduction(spec, rows["n"].to_numpy())
    return est["time_s"].to_numpy(float), "reduction(): bytes / bandwidth + launch"


def _gemv_analytical(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    from simgpu import analytical

    est = analytical.gemv(spec, rows["M"].to_numpy(), rows["N"].to_numpy())
    return est["time_s"].to_numpy(float), "gemv(): matrix bytes / bandwidth + launch"


# --- simulated views ----------------------------------------------------------------------------
#
# Simulation costs seconds per point where a closed form costs microseconds, so each family
# simulates at most ``max_sim`` rows per curve, spread over the curve's sizes, cheapest first,
# and stops when ``sim_budget_s`` of wall time is spent; the note says how many rows it reached.


class _Budget:
    def __init__(self, seconds: float) -> None:
        import time

        self.clock = time.perf_counter
        self.end = self.clock() + seconds

    def left(self) -> bool:
        return bool(self.clock() < self.end)


def _picks(rows: pd.DataFrame, opts: dict[str, Any], by: str, cost: str) -> list[int]:
    """Row labels to simulate: per curve, up to max_sim spread over ``by`` (or, where ``by`` is
    ``cost``, the max_sim cheapest, since one large replay can outlast any budget)."""
    chosen: list[int] = []
    series = [c for c in ("path", "op", "direction", "host_memory", "kernel", "dtype", "tile_m")
              if c in rows.columns]
    groups = rows.groupby(series, sort=False) if series else [(None, rows)]
    for _, grp in groups:
        grp = grp.sort_values(by)
        if by == cost:
            idx = grp.index.to_numpy()[: int(opts["max_sim"])]
        else:
            idx = grp.index.to_numpy()[_sample(len(grp), int(opts["max_sim"]))]
        chosen.extend(int(i) for i in idx)
    costs = rows[cost].astype(float)
    return sorted(chosen, key=lambda i: float(costs[i]))


def _simulate_rows(
    rows: pd.DataFrame, opts: dict[str, Any], by: str, cost: str, one: Callable[[Any], float],
    what: str,
) -> ViewResult:
    out = _nan(len(rows))
    budget = _Budget(float(opts["sim_budget_s"]))
    picks = _picks(rows, opts, by, cost)
    done = 0
    for i in picks:
        if not budget.left():
            break
        out[int(np.flatnonzero(rows.index == i)[0])] = one(rows.loc[i])
        done += 1
    note = f"{what}: {done} of {len(rows)} rows simulated"
    if done < len(picks):
        note += f" ({len(picks) - done} more chosen, wall budget {opts['sim_budget_s']:g} s spent)"
    return out, note


def _pchase_simulated(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    from simgpu.sim.sources import run_pointer_chase

    def one(row: Any) -> float:
        result, _ = run_pointer_chase(spec, int(row["footprint_B"]), n_loads=300,
                                      stride_bytes=int(row["stride_B"]),
                                      cache_op=str(row["path"]))
        return float(result.mean_latency_cycles * 1000.0 / spec.clock_MHz)

    return _simulate_rows(rows, opts, "footprint_B", "stride_B", one,
                          "sim.sources.run_pointer_chase: warmed caches, 300 timed loads")


#: stream op -> (read fraction, writes placed as a second array) of the simulated source
_STREAM_MIX = {"read": ("read", 1.0), "write": ("write", 0.0), "copy": ("copy", 0.5),
               "scale": ("copy", 0.5), "triad": ("copy", 2.0 / 3.0)}
#: lines the stream source moves: enough for a steady state (assumption: 8 MiB of traffic,
#: about 2.7 us at 3 TB/s, twice the lines the kernel keeps in flight on an H100)
_STREAM_LINES = 1 << 16


def _stream_simulated(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    import simpy

    from simgpu.sim import build_system
    from simgpu.sim.sources import Stream

    dram_rows = rows[rows["array_B"] >= 4 * spec.l2.size_bytes]

    def one(row: Any) -> float:
        env = simpy.Environment()
        # arrays far larger than L2: in the steady state every store reaches DRAM, which a short
        # window of a write-back L2 (it absorbs 8 MiB of stores) would not show
        system = build_system(env, spec, l2_write_through=True)
        op, read_fraction = _STREAM_MIX[str(row["op"])]
        sms = spec.compute.sm_count
        # lines in flight per SM as the kernel has them: threads x one float4 (16 B) each
        per_sm = max(1, int(row["blocks"]) * int(row["threads_per_block"]) * 16
                     // (128 * sms))
        src = Stream(env, system, n_lines=_STREAM_LINES, occupancy=per_sm, op=op,
                     read_fraction=read_fraction)
        src.start()
        env.run()
        r = src.result()
        seconds = (r.t_end - r.t_start) / (spec.clock_MHz * 1e6)
        return float(r.bytes / seconds / 1e9)

    out, note = _simulate_rows(dram_rows, opts, "array_B", "blocks", one,
                               "sim.sources.Stream, DRAM-resident arrays (>= 4x L2) only,"
                               " kernel's lines in flight per SM, stores written through to DRAM")
    full = _nan(len(rows))
    full[dram_rows.index.to_numpy(dtype=int)] = out  # rows carry a 0..n-1 index
    return full, note


def _pcie_simulated(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
    import simpy

    from simgpu.sim.pcie import HostLink

    out = _nan(len(rows))
    for k, row in enumerate(rows.to_dict(orient="records")):
        env = simpy.Environment()
        link = HostLink(env, spec.host_link, spec.clock_MHz)
        size, pinned = int(row["size_B"]), row["host_memory"] == "pinned"
        dirs = ("h2d", "d2h") if row["direction"] == "bidir" else (str(row["direction"]),)
        for d in dirs:
            link.copy(size, d, pinned)
        env.run()
        seconds = max(c.t_end for c in link.copies) / (spec.clock_MHz * 1e6)
        out[k] = size * len(dirs) / seconds / 1e9
    return out, "sim.pcie.HostLink: copy engines, per-direction lanes, staging for pageable"


def _workload_for(row: Any, table: str) -> Any:
    """The simgpu.workloads object of a measured row (None where none models it)."""
    from simgpu import workloads as wl

    if table == "gemm":
        kernel = str(row["kernel"])
        m, n, k = int(row["M"]), int(row["N"]), int(row["K"])
        if kernel == "sgemm_tiled":
            return wl.TiledGemm(m, n, k, tile=int(row["tile_m"]))
        if kernel == "sgemm_naive":
            return wl.NaiveGemm(m, n, k)
        if kernel == "sgemm_regblock":
            return wl.RegBlockGemm(m, n, k, BM=int(row["tile_m"]), BN=int(row["tile_n"]),
                                   BK=int(row["tile_k"]), TM=int(row["thread_tile_m"]),
                                   TN=int(row["thread_tile_n"]))
        return None  # cuBLAS: closed-source tensor-core kernels are not traced
    if table == "transpose":
        return wl.Transpose(int(row["rows"]), int(row["cols"]),
                            str(row["kernel"]).removeprefix("transpose_"))
    if table == "reduction":
        return wl.Reduction(int(row["n"]))
    if table == "gemv":
        return wl.Gemv(int(row["M"]), int(row["N"]))
    return None


def _trace_simulated(table: str, cost: str) -> ViewFn:
    def view(spec: Any, rows: pd.DataFrame, opts: dict[str, Any]) -> ViewResult:
        if opts["metric"] != "time_s":
            return _nan(len(rows)), "the trace replay has no power model"
        modelled = rows[[_workload_for(r, table) is not None
                         for r in rows.to_dict(orient="records")]]

        from simgpu.analytical.params import DeviceParams

        # the measured time of one call includes the launch; the replay times the kernel only
        launch_s = DeviceParams.from_spec(spec).launch_overhead_s

        # the calibration runner times back-to-back launches without flushing the L2, so a
        # kernel whose inputs fit in the L2 runs with them there: replay it from that state

        def one(row: Any) -> float:
            w = _workload_for(row, table)
            return float(w.simulate(spec, warm_l2=True).time_s) + launch_s

        out, note = _simulate_rows(modelled, opts, cost, cost, one,
                                   "workloads.<kernel>.simulate() trace replay (sampled, inputs"
                                   " warm in the L2 when they fit, as in back-to-back timed"
                                   f" launches) + launch overhead {launch_s * 1e6:.2f} us")
        full = _nan(len(rows))
        full[modelled.index.to_numpy(dtype=int)] = out  # rows carry a 0..n-1 index
        if len(modelled) < len(rows):
            note += f"; {len(rows) - len(modelled)} cuBLAS rows have no trace"
        return full, note

    return view


def families() -> dict[str, Family]:
    """Every family validate knows, by name."""
    fams = [
        Family("pchase", "pchase", "latency_ns", "ns", "footprint_B", "footprint [B]",
               ("path",), _pchase_select, ("path", "footprint_B"),
               {"analytical": _pchase_analytical, "simulated": _pchase_simulated}),
        Family("stream", "stream", "bandwidth_GBps", "GB/s", "array_B", "array size [B]",
               ("op",), _stream_select, ("op", "array_B", "blocks"),
               {"analytical": _stream_analytical, "simulated": _stream_simulated}),
        Family("pcie", "pcie", "bandwidth_GBps", "GB/s", "size_B", "copy size [B]",
               ("direction", "host_memory"), _pcie_select, ("direction", "host_memory", "size_B"),
               {"analytical": _pcie_analytical, "simulated": _pcie_simulated}),
        Family("gemm_time", "gemm", "time_s", "s", "flops", "FLOP per call",
               ("kernel", "dtype"), _gemm_select,
               ("kernel", "dtype", "M", "N", "K", "tile_m", "tile_n", "tile_k"),
               {"analytical": _gemm_analytical, "learned": _gemm_learned,
                "simulated": _trace_simulated("gemm", "flops")}),
        Family("gemm_power", "gemm", "power_W", "W", "flops", "FLOP per call",
               ("kernel", "dtype"), lambda df: _gemm_select(df[df["power_W"].notna()]),
               ("kernel", "dtype", "M", "N", "K", "tile_m", "tile_n", "tile_k"),
               {"analytical": _gemm_analytical, "learned": _gemm_learned}),
        Family("transpose", "transpose", "time_s", "s", "rows", "rows (= columns)",
               ("kernel",), lambda df: _by_size(df, ["kernel", "rows"]), ("kernel", "rows", "cols"),
               {"analytical": _transpose_analytical,
                "simulated": _trace_simulated("transpose", "bytes_moved")}),
        Family("reduction", "reduction", "time_s", "s", "n", "elements", (),
               lambda df: _by_size(df, ["n"]), ("n",),
               {"analytical": _reduction_analytical,
                "simulated": _trace_simulated("reduction", "bytes_moved")}),
        Family("gemv", "gemv", "time_s", "s", "M", "M (rows)", (),
               lambda df: _by_size(df, ["M", "N"]), ("M", "N"),
               {"analytical": _gemv_analytical,
                "simulated": _trace_simulated("gemv", "bytes_moved")}),
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
