"""The GEMM rows of calibration runs in the GEMM schema, and the analytical model of such rows.

Two things that both the energy fit (:mod:`simgpu.calibrate.fit`) and the learned predictor
(:mod:`simgpu.predict`, which reads calibration data) need, kept here so that calibration never
imports the predictor:

* :func:`load_calibration_run` / :func:`load_calibration`: a run's ``gemm`` table (finished
  ``gemm.csv``, or the points of ``.partial/gemm.jsonl`` measured so far), checked against the
  calibration schema (:mod:`simgpu.calibrate.schema`: types and ranges, the file and line of a
  bad value named), as rows of the GEMM schema (``simgpu/predict/SCHEMA.md``; see also
  :func:`simgpu.predict.datasets.validate`);
* :func:`estimate`: :func:`simgpu.analytical.gemm` for every row of a GEMM-schema frame, with
  the rows' own tiles, split-K and kernel class;
* :func:`library_floors`: the harness's shortest library call per device and dtype, which
  ``simgpu fit`` writes into a device file and the learned predictor learns above.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simgpu import catalogue
from simgpu.analytical.gemm import gemm as an_gemm
from simgpu.analytical.params import DeviceParams
from simgpu.calibrate.dataset import check_row, read_table
from simgpu.calibrate.schema import GEMM
from simgpu.errors import DatasetError
from simgpu.io import read_frame, read_jsonl

__all__ = [
    "LIBRARY_FLOOR_MAX_FLOPS",
    "estimate",
    "from_calibration_table",
    "gemm_runs_under",
    "kernel_name",
    "library_floors",
    "load_calibration",
    "load_calibration_run",
]


def from_calibration_table(df: Any, source: str, run_id: str = "", partial: bool = False) -> Any:
    """A calibration ``gemm`` table (simgpu/calibrate/schema.py) in the GEMM schema."""
    need = ("device", "kernel", "dtype", "M", "N", "K", "time_ms")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DatasetError(f"{source}: missing column(s) {missing} of the calibration gemm table")
    out = df.copy()
    out["time_s"] = out["time_ms"].astype(float) / 1e3
    out["dataset"] = "calibration"
    out["run_id"] = run_id
    out["partial"] = partial
    if "check_ok" in out.columns:
        out = out[out["check_ok"].astype(str).str.lower().isin(["true", "1"])]
    return out


def _manifest_status(run: Path) -> str:
    """The run's status, or "" where its manifest cannot be read (the table is still used)."""
    try:
        return str(json.loads((run / "manifest.json").read_text()).get("status", ""))
    except (OSError, ValueError):
        return ""


def load_calibration_run(run: Path) -> Any:
    """One run folder: gemm.csv when finished (or closed as incomplete), else the partial
    ``.partial/gemm.jsonl`` points written so far."""
    status = _manifest_status(run)
    table = run / "gemm.csv"
    if table.exists():
        read_table(table, GEMM)  # every value checked, the file and line of a bad one named
        df = read_frame(table)
        return from_calibration_table(df, str(table), run.name, partial=status != "complete")
    partial = run / ".partial" / "gemm.jsonl"
    if partial.exists():
        rows: list[dict[str, Any]] = []
        # a last line without its newline is an append cut short by a kill: never a record
        records, bad, _torn = read_jsonl(partial)
        if bad:
            raise DatasetError(f"{partial}: line {bad[0]}: not a point record (not UTF-8 JSON)")
        for lineno, record in records:
            if not (isinstance(record, dict) and isinstance(record.get("rows"), list)
                    and all(isinstance(r, dict) for r in record["rows"])):
                raise DatasetError(f"{partial}: line {lineno}: not a point record")
            for r in record["rows"]:
                check_row(GEMM, r, f"{partial}: line {lineno}")
            rows.extend(record["rows"])
        if not rows:
            raise DatasetError(f"{partial}: no measured rows yet")
        return from_calibration_table(pd.DataFrame(rows), str(partial), run.name, partial=True)
    raise DatasetError(f"{run}: no gemm.csv or .partial/gemm.jsonl in this calibration run")


def gemm_runs_under(folder: Path) -> list[Path]:
    """Calibration run folders under ``folder`` (sorted) that hold a GEMM table, finished
    (``gemm.csv``) or still partial (``.partial/gemm.jsonl``)."""
    runs = []
    for manifest in sorted(folder.rglob("manifest.json")):
        run = manifest.parent
        if (run / "gemm.csv").exists() or (run / ".partial" / "gemm.jsonl").exists():
            runs.append(run)
    return runs


def load_calibration(folder: Path) -> Any:
    """The GEMM rows of every run under ``folder`` (:func:`gemm_runs_under`), in one frame."""
    runs = gemm_runs_under(folder)
    if not runs:
        raise DatasetError(f"{folder}: no calibration run with a gemm table under this folder")
    return pd.concat([load_calibration_run(r) for r in runs], ignore_index=True)


def kernel_name(name: str) -> str:
    """A dataset's kernel name as the analytical model knows it (unknown: a library kernel)."""
    return name if name in catalogue.KERNELS and catalogue.get(name).kind == "gemm" else "cublas"


#: A library call of at most this many FLOPs is short enough that its measured time is the
#: harness's, not the kernel's. assumption: 2^30 FLOPs (512^3 is 2^28) run in under 20 us at a
#: tenth of the FP32 peak of every GPU in models/; in run 20261122T154403Z cuBLAS fp32 256^3,
#: 384^3 and 512^3 (2^25 to 2^28 FLOPs) all took 29-30 us.
LIBRARY_FLOOR_MAX_FLOPS = 2.0**30


def library_floors(df: Any) -> Any:
    """The harness's floor for a library call, per device and dtype of a GEMM-schema frame: the
    row of the shortest library call, where that call does at most
    :data:`LIBRARY_FLOOR_MAX_FLOPS` (the harness times no call of the dtype shorter; a dtype
    whose shortest call is larger has no floor). One row per (device, dtype) with a floor,
    indexed by them, with the columns ``M, N, K, time_s`` and ``calls`` (the library calls of
    that device and dtype)."""
    # the library's own calls (kernels/mma_gemm.cu is of its family but no library call)
    call = np.array([catalogue.family_of(kernel_name(k)) == "library"
                     and catalogue.get(kernel_name(k)).source is None for k in df["kernel"]],
                    dtype=bool)
    lib = df[call]
    cols = ["M", "N", "K", "time_s", "calls"]
    if lib.empty:
        return pd.DataFrame(columns=cols, index=pd.MultiIndex.from_tuples(
            [], names=["device", "dtype"]))
    groups = lib.groupby(["device", "dtype"], sort=True)
    short = lib.loc[groups["time_s"].idxmin()].set_index(["device", "dtype"])
    short["calls"] = groups.size()
    flops = 2.0 * short["M"].astype(float) * short["N"].astype(float) * short["K"].astype(float)
    return short.loc[flops <= LIBRARY_FLOOR_MAX_FLOPS, cols]


def estimate(
    df: Any, params: Mapping[str, DeviceParams], library_split_k: bool = True
) -> pd.DataFrame:
    """The analytical model for every row of a GEMM-schema frame (index aligned).

    ``params``: the :class:`~simgpu.analytical.params.DeviceParams` of every device name in
    ``df["device"]``. Library rows without tiles and split-K let the model search split-K as
    well as tiles, as cuBLAS does (``library_split_k=False``: tiles only), as every view of
    :func:`simgpu.analytical.gemm` does and the fitted energies assume."""
    parts = []
    for name, rows in df.groupby("device", sort=False):
        est = an_gemm(
            params[str(name)],
            rows["M"].to_numpy(),
            rows["N"].to_numpy(),
            rows["K"].to_numpy(),
            rows["dtype"].to_numpy(dtype=object),
            tile_m=rows["tile_m"].to_numpy(),
            tile_n=rows["tile_n"].to_numpy(),
            tile_k=rows["tile_k"].to_numpy(),
            thread_tile_m=rows["thread_tile_m"].to_numpy(),
            thread_tile_n=rows["thread_tile_n"].to_numpy(),
            threads_per_block=rows["threads_per_block"].to_numpy(),
            split_k=rows["split_k"].to_numpy(),
            stages=rows["stages"].to_numpy(),
            kernel=np.array([kernel_name(k) for k in rows["kernel"]], dtype=object),
            library_split_k=library_split_k,
        )
        est.index = rows.index
        parts.append(est)
    return pd.concat(parts).loc[df.index]
