"""Hold the views against a calibration run: one table, one error per view and row."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from simgpu.calibrate.dataset import RunDir
from simgpu.calibrate.fit import size_halves
from simgpu.errors import SimgpuError
from simgpu.io import OutputError, save_figure
from simgpu.sweep.engine import check_workers, worker_pool
from simgpu.validate.families import Family, families, params_text, pct_error, view_values

VIEWS = ("simulated", "analytical", "learned")


def validate_run(
    spec: Any,
    run_dir: Path,
    *,
    only: Sequence[str] | None = None,
    views: Sequence[str] = VIEWS,
    max_sim: int | None = None,
    sim_budget_s: float = 60.0,
    log: Any = None,
    held_out: bool = False,
    workers: int | None = 0,
) -> tuple[pd.DataFrame, dict[tuple[str, str], str]]:
    """Compare every measured row of the run with each view, for the device ``spec``; with
    ``held_out``, only the rows `simgpu fit --half` leaves out of its fit
    (:func:`simgpu.calibrate.fit.size_halves`).

    The simulated view replays every row it models, cheapest first, until ``sim_budget_s`` of
    wall time per family is spent; ``max_sim`` keeps at most that many rows per curve (None:
    each family's own rule, :mod:`simgpu.validate.families`).

    ``workers``: processes that compare families side by side (None: the CPU count; 0, the
    default: one after another in this process). Families of one table (the GEMM's time and
    power) share a process, so that the predictor's forest is trained or loaded once. Each
    family keeps its own ``sim_budget_s`` of wall time; ``log`` must then be picklable (a
    module-level function).

    Returns the comparison table (one row per measured point) and the notes each view gave per
    family (``(family, view) -> note``). A view that does not model a family leaves NaN there
    and says so in the notes; a view whose package is missing says that too.
    """
    if max_sim is not None and (isinstance(max_sim, bool) or not isinstance(max_sim, int)
                                or max_sim < 0):
        raise SimgpuError(f"max_sim = {max_sim!r}: expected None or an integer >= 0 (simulated "
                          "rows per curve)")
    if (isinstance(sim_budget_s, bool) or not isinstance(sim_budget_s, int | float)
            or not math.isfinite(sim_budget_s) or sim_budget_s < 0):
        raise SimgpuError(f"sim_budget_s = {sim_budget_s!r}: expected a finite number of "
                          "seconds >= 0")
    run = RunDir.open(run_dir)
    have = run.finished_tables()
    fams = families()
    names = list(only) if only else list(fams)
    unknown = [n for n in names if n not in fams]
    if unknown:
        raise SimgpuError(f"unknown workload family {unknown}; known: {list(fams)}")
    bad_views = [v for v in views if v not in VIEWS]
    if bad_views:
        raise SimgpuError(f"unknown view {bad_views}; known: {list(VIEWS)}")
    check_workers(workers)
    notes: dict[tuple[str, str], str] = {}
    tasks: dict[str, list[tuple[str, pd.DataFrame, dict[str, Any]]]] = {}  # by table
    for name in names:
        fam = fams[name]
        if fam.table not in have:
            notes[(name, "measured")] = f"run has no {fam.table} table"
            continue
        table = run.read_table(fam.table)
        if held_out:  # split the whole table, as the fit did, before the family's selection
            table = table[~size_halves(fam.table, table)]
        rows = fam.select(table)
        if rows.empty:
            notes[(name, "measured")] = f"no usable rows in {fam.table}"
            continue
        opts = {"metric": fam.metric, "max_sim": max_sim, "sim_budget_s": sim_budget_s,
                "run_device": run.device,
                "run_dir": run.path, "log": log}
        tasks.setdefault(fam.table, []).append((name, rows, opts))
    if not tasks:
        raise SimgpuError(f"{run_dir}: none of the families {names} has measured rows")
    n_workers = min((os.cpu_count() or 1) if workers is None else workers, len(tasks))
    if n_workers <= 1:
        done = {t: _compare_families(spec, items, views) for t, items in tasks.items()}
    else:
        # simgpu sweep's processes (spawned, and ending with this one); the longest table (the
        # GEMMs: simulated, learned) first
        order = sorted(tasks, key=lambda t: t != "gemm")
        with worker_pool(n_workers) as pool:
            futures = {t: pool.submit(_compare_families, spec, tasks[t], views) for t in order}
            done = {t: futures[t].result() for t in order}
    frames: list[pd.DataFrame] = []
    for t in tasks:  # the families in the order asked for
        for frame, fam_notes, error in done[t]:
            if error is not None:
                kind, message = error
                raise (OutputError if kind == "output" else SimgpuError)(message)
            notes.update(fam_notes)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True), notes


def _compare_families(
    spec: Any, items: list[tuple[str, pd.DataFrame, dict[str, Any]]], views: Sequence[str]
) -> list[tuple[pd.DataFrame, dict[tuple[str, str], str], tuple[str, str] | None]]:
    """:func:`_compare` for the families of one table, in a worker process or this one: each
    family's frame, its notes and the error that stopped it, as (kind, message) (an error
    crosses processes as text: not every exception class can be rebuilt from its pickle)."""
    fams = families()
    out: list[tuple[pd.DataFrame, dict[tuple[str, str], str], tuple[str, str] | None]] = []
    for name, rows, opts in items:
        notes: dict[tuple[str, str], str] = {}
        try:
            frame = _compare(spec, fams[name], rows, views, opts, notes, opts["log"])
        except OutputError as exc:
            return [*out, (pd.DataFrame(), notes, ("output", str(exc)))]
        except SimgpuError as exc:
            return [*out, (pd.DataFrame(), notes, ("simgpu", str(exc)))]
        out.append((frame, notes, None))
    return out


def _compare(
    spec: Any,
    fam: Family,
    rows: pd.DataFrame,
    views: Sequence[str],
    opts: dict[str, Any],
    notes: dict[tuple[str, str], str],
    log: Any,
) -> pd.DataFrame:
    measured = rows[fam.metric].to_numpy(float)
    records = rows.to_dict(orient="records")
    out = pd.DataFrame(
        {
            "family": fam.name,
            "workload": [_workload(fam, r) for r in records],
            "params": [params_text(r, fam.params) for r in records],
            "metric": fam.metric,
            "unit": fam.unit,
            "x": rows[fam.x].to_numpy(float),
            "series": [" ".join(str(r[s]) for s in fam.series) or fam.name for r in records],
            "measured": measured,
        }
    )
    for view in VIEWS:
        values = np.full(len(rows), np.nan)
        if view not in views:
            notes[(fam.name, view)] = "not requested"
        elif view not in fam.views:
            notes[(fam.name, view)] = f"no {view} model of this family"
        else:
            try:
                values, note = view_values(view, spec, fam, rows, opts)
                notes[(fam.name, view)] = note
            except OutputError:
                raise  # a folder the view writes to (the predictor's cache): the user's to fix
            except SimgpuError as exc:
                notes[(fam.name, view)] = f"failed: {exc}"
                if log:
                    log(f"validate: {fam.name}: {view}: {exc}")
        out[view] = values
        out[f"err_{view}_pct"] = pct_error(values, measured)
    return out


def _workload(fam: Family, row: Mapping[Any, Any]) -> str:
    if fam.table == "gemm":
        return f"gemm {row['kernel']} {row['dtype']}"
    if fam.table == "transpose":
        return str(row["kernel"])
    if fam.table == "stream":
        return f"stream {row['op']}"
    if fam.table == "pcie":
        return f"pcie {row['direction']} {row['host_memory']}"
    if fam.table == "pchase":
        return f"pchase {row['path']}"
    return fam.name


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per family and view: rows compared and the median, mean and 90th-percentile absolute
    percentage error; a last row ``all`` over every row of the table (each family's metric)."""
    groups = [(str(fam), str(grp["metric"].iloc[0]), grp)
              for fam, grp in table.groupby("family", sort=False)]
    if len(groups) > 1:
        groups.append(("all", "-", table))
    rows = []
    for fam, metric, grp in groups:
        rec: dict[str, Any] = {"family": fam, "metric": metric, "rows": len(grp)}
        for view in VIEWS:
            err = grp[f"err_{view}_pct"].abs()
            n = int(err.notna().sum())
            rec[f"{view}_n"] = n
            rec[f"{view}_median_abs_pct"] = float(err.median()) if n else np.nan
            rec[f"{view}_mean_abs_pct"] = float(err.mean()) if n else np.nan
            rec[f"{view}_p90_abs_pct"] = float(err.quantile(0.9)) if n else np.nan
        rows.append(rec)
    return pd.DataFrame(rows)


def plot_families(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per family: measured points and each view's values against the family's x."""
    matplotlib.use("Agg")  # files only, whatever display there is
    paths = []
    styles = {"simulated": "s--", "analytical": "-", "learned": "^:"}
    for fam_name, grp in table.groupby("family", sort=False):
        fam = families()[str(fam_name)]
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        for i, (series, sgrp) in enumerate(grp.groupby("series", sort=False)):
            colour = f"C{i % 10}"
            sgrp = sgrp.sort_values("x")
            ax.plot(sgrp["x"], sgrp["measured"], "o", color=colour, ms=4,
                    label=f"{series} measured")
            for view, style in styles.items():
                if sgrp[view].notna().any():
                    ax.plot(sgrp["x"], sgrp[view], style, color=colour, lw=1.2, ms=4,
                            alpha=0.8, label=f"{series} {view}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(fam.x_label)
        ax.set_ylabel(f"{fam.metric} [{fam.unit}]")
        ax.set_title(f"{fam_name}: measured vs views")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
        paths.append(save_figure(fig, out_dir / f"{fam_name}.png", overwrite=False))
    return paths


def print_log(msg: str) -> None:
    print(msg, file=sys.stderr)
