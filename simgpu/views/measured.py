"""The measured view: the calibration-run row that measured a workload, or a live measurement.

A workload's catalogue entry names the calibration table that measures its kernel, and
:meth:`Workload.row_key` the columns and values of its row there. The view answers with the
first exact match over the device's runs (complete runs first, newest first; rows whose result
check failed are skipped) and a note naming the run and the row; where no run has it, the note
names the nearest measured point of the same kernel, which is never used in its place.

``measure=True`` first measures the workload on the local GPU (CuPy + NVML) into a new
calibration run, so the measurement is kept with its provenance before anything reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simgpu.calibrate.context import Context
from simgpu.calibrate.dataset import RunDir, new_run_id
from simgpu.calibrate.gpu import device_name_for, device_properties, require_cupy
from simgpu.calibrate.power import PowerMeter
from simgpu.calibrate.runner import BENCHMARKS, measure_tables, provenance
from simgpu.errors import GPUUnavailableError, SimgpuError, ViewUnavailable
from simgpu.io import plain_name
from simgpu.views.estimate import Estimate, number

if TYPE_CHECKING:
    from simgpu.devices.spec import DeviceSpec
    from simgpu.workloads.base import Workload

__all__ = ["calibration_root", "check_root", "estimates", "find_row", "measure_live", "runs_of"]

Log = Callable[[str], None]


def calibration_root() -> Path:
    """``./calibration`` when it exists, else the one beside the package (a source checkout)."""
    here = Path("calibration")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "calibration"


def check_root(root: Path) -> Path:
    """``root`` if it is a folder: a calibration folder that was named must exist (a missing
    one is an error, not "no run measured this")."""
    if not root.exists():
        raise SimgpuError(f"calibration folder {root}: no such folder")
    if not root.is_dir():
        raise SimgpuError(f"calibration folder {root}: not a folder")
    return root


def runs_of(root: Path, device: str, table: str) -> list[RunDir]:
    """The device's runs with a finished ``table``: complete runs first, newest first. A run
    folder whose manifest or table is malformed is an error naming the file, not skipped."""
    folder = root / plain_name(device, "device name")
    if not folder.is_dir():
        return []
    runs = []
    for path in sorted(folder.iterdir(), reverse=True):
        if not (path / "manifest.json").is_file():
            continue
        run = RunDir.open(path)
        if table in run.finished_tables():
            runs.append(run)
    runs.sort(key=lambda r: r.manifest().get("status") != "complete")  # stable: newest kept
    return runs


def _matches(df: pd.DataFrame, key: dict[str, Any]) -> pd.Series:
    ok = pd.Series(True, index=df.index)
    if "check_ok" in df.columns:
        ok &= df["check_ok"].astype(bool)
    for col, value in key.items():
        if col not in df.columns:
            raise SimgpuError(f"calibration table lacks column {col!r} that identifies a row")
        ok &= df[col] == value
    return ok


def _nearest(df: pd.DataFrame, key: dict[str, Any]) -> tuple[float, int] | None:
    """Among rows equal to ``key`` in its text columns, the one nearest in its numbers (log
    distance), as (distance, row index)."""
    same = _matches(df, {k: v for k, v in key.items() if isinstance(v, str)})
    nums = [k for k, v in key.items() if not isinstance(v, str | bool) and v]
    cand = df[same]
    if not len(cand) or not nums:
        return None
    d = np.zeros(len(cand))
    for k in nums:
        d += np.log(cand[k].to_numpy(float) / float(key[k])) ** 2
    j = int(np.nanargmin(d))
    return float(d[j]), int(cand.index[j])


def _shown(row: Any, key: dict[str, Any]) -> str:
    """The numbers of ``key`` in ``row``: a GEMM's shape as MxNxK, the rest as name=value."""
    nums = [k for k, v in key.items() if not isinstance(v, str | bool)]
    parts = []
    if {"M", "N", "K"} <= set(nums):
        parts.append(f"{int(row['M'])}x{int(row['N'])}x{int(row['K'])}")
        nums = [k for k in nums if k not in ("M", "N", "K")]
    parts += [f"{k}={row[k]}" for k in nums]
    return " ".join(parts)


def find_row(
    workload: Workload, device: str, root: Path | None = None,
    tables: dict[str, list[tuple[RunDir, pd.DataFrame]]] | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """The calibration row that measured exactly ``workload`` on ``device``, and a note naming
    run and row (or, when none did, the nearest measured point of the same kernel)."""
    table = workload.entry().table
    if table is None:
        raise ViewUnavailable(f"{workload.kernel}: no calibration table measures it")
    root = root or calibration_root()
    key = workload.row_key()
    if tables is None or table not in tables:
        loaded = [(run, run.read_table(table)) for run in runs_of(root, device, table)]
        if tables is not None:
            tables[table] = loaded
    else:
        loaded = tables[table]
    if not loaded:
        raise ViewUnavailable(f"no calibration run with a {table} table under {root / device}")
    nearest: tuple[float, str] | None = None
    for run, df in loaded:
        exact = _matches(df, key)
        if exact.any():
            i = int(np.flatnonzero(exact.to_numpy())[0])
            row = df.iloc[i].to_dict()
            status = run.manifest().get("status", "?")
            row["_source"] = {"run": run.run_id, "run_status": status,
                              "table": str(run.table_path(table)), "row": i, "csv_line": i + 2}
            note = f"calibration run {run.run_id} ({status}), {table}.csv row {i} (line {i + 2})"
            return {str(k): v for k, v in row.items()}, note
        near = _nearest(df, key)
        if near is not None and (nearest is None or near[0] < nearest[0]):
            nearest = (near[0], f"{_shown(df.loc[near[1]], key)} in run {run.run_id}"
                                f" row {near[1]}")
    what = " ".join([workload.kernel, *(str(v) for k, v in key.items()
                                        if isinstance(v, str) and v != workload.kernel)])
    hint = f"; nearest measured {what}: {nearest[1]}" if nearest else ""
    return None, f"no calibration run measured this exact point{hint}"


def _from_row(workload: Workload, row: dict[str, Any], note: str) -> Estimate:
    def num(name: str) -> float | None:
        return number(row.get(name))

    time_ms = num("time_ms")
    time_s = time_ms * 1e-3 if time_ms is not None else None
    figures: dict[str, Any] = dict(workload.figures(time_s)) if time_s else {}
    for name in ("tflops", "bandwidth_GBps", "latency_ns", "latency_cycles", "sm_clock_MHz"):
        if num(name) is not None:
            figures[name] = num(name)
    for name in ("time_ms_p10", "time_ms_p90"):
        if num(name) is not None:
            figures[name.replace("_ms", "_s")] = num(name) * 1e-3  # type: ignore[operator]
    figures["power_source"] = row.get("power_source")
    figures["source"] = row.get("_source")
    return Estimate("measured", time_s, num("power_W"), figures=figures, note=note, detail=row)


def estimates(
    workloads: Sequence[Workload], spec: DeviceSpec, *, root: Path | None = None,
    device: str | None = None, measure: bool = False, log: Log | None = None, **_: Any,
) -> list[Estimate | ViewUnavailable]:
    """The measured view of each workload (see the module docstring)."""
    device = device or spec.name
    root = check_root(root) if root is not None else calibration_root()
    tables: dict[str, list[tuple[RunDir, pd.DataFrame]]] = {}
    out: list[Estimate | ViewUnavailable] = []
    for w in workloads:
        try:
            if measure:
                measure_live(w, device, root, log)
                tables.clear()
            row, note = find_row(w, device, root, tables)
        except ViewUnavailable as exc:
            out.append(exc)
            continue
        out.append(_from_row(w, row, note) if row is not None else ViewUnavailable(note))
    return out


def measure_live(workload: Workload, device: str, root: Path | None = None,
                 log: Log | None = None) -> Path:
    """Measure ``workload`` on the local GPU into a new calibration run; the run's path."""
    point = workload.calibration_point()
    table = str(workload.entry().table)
    cp = require_cupy()
    try:
        meter: PowerMeter | None = PowerMeter()
    except GPUUnavailableError as exc:
        if log:
            log(f"no power readings: {exc}")
        meter = None
    props = device_properties()
    gpu_name = str(props["gpu_name"])
    if device_name_for(gpu_name) != device:
        raise SimgpuError(f"--measure: this GPU is {gpu_name!r}"
                          f" ({device_name_for(gpu_name)}), not {device}")
    bench = BENCHMARKS[table]

    class OnePoint(type(bench)):  # type: ignore[misc]
        def points(self, ctx: Any) -> list[dict[str, Any]]:
            return [point]

    info = dict(meter.describe()) if meter else {}
    root = root or calibration_root()
    run = RunDir.create(root, device, new_run_id(tag="compare"),
                        provenance("compare", [table], info))
    ctx = Context(cp=cp, device=device, gpu_name=gpu_name, props=props, level="quick",
                  power=meter)
    measure_tables(run, ctx, [table], level="compare", benchmarks={table: OnePoint()})
    run.update_manifest(status="complete")
    if log:
        log(f"measured into {run.path}")
    return run.path
