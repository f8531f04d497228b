"""GEMM datasets in one schema (``simgpu/predict/SCHEMA.md``), with adapters for the published
datasets and for calibration runs (read by :mod:`simgpu.calibrate.gemm_rows`).

:func:`load` takes a path (a CSV or Parquet file, a calibration run folder, a folder of runs, a
published dataset's folder or zip) or a short name (``gpperf``, ``neusight``, ``uci-sgemm``,
``calibration``) and returns a validated DataFrame. Every problem raises
:class:`~simgpu.errors.DatasetError` naming the file, the column and the first bad row.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zlib import error as zlib_error

import numpy as np
import pandas as pd

from simgpu import devices
from simgpu.analytical.params import DTYPE_BYTES, DeviceParams
from simgpu.calibrate.gemm_rows import (
    from_calibration_table,
    gemm_runs_under,
    load_calibration,
    load_calibration_run,
)
from simgpu.errors import DatasetError
from simgpu.io import read_bytes, read_frame

#: Columns every dataset in the schema must have.
REQUIRED = ("device", "dtype", "M", "N", "K", "time_s")
#: Optional columns and their defaults (0 = "chosen by the library / unknown").
OPTIONAL: dict[str, Any] = {
    "dataset": "custom",
    "kernel": "cublas",
    "layout": "nn",
    "tile_m": 0,
    "tile_n": 0,
    "tile_k": 0,
    "thread_tile_m": 0,
    "thread_tile_n": 0,
    "threads_per_block": 0,
    "split_k": 1,
    "stages": 0,
    "power_W": np.nan,
}
#: Device figures a row may carry when ``device`` is not a file in models/.
DEVICE_COLUMNS = (
    "dev_sm_count",
    "dev_clock_MHz",
    "dev_fp32_lanes_per_sm",
    "dev_dram_GBps",
    "dev_l2_MiB",
    "dev_smem_per_sm_KiB",
    "dev_tdp_W",
)
INT_COLUMNS = (
    "M", "N", "K", "tile_m", "tile_n", "tile_k", "thread_tile_m", "thread_tile_n",
    "threads_per_block", "split_k", "stages",
)
#: The largest value of an integer column: cuBLAS and CUDA take GEMM sizes, tiles and launch
#: dimensions as 32-bit ints, so no measured GEMM has more (and products of two sizes stay
#: exact in int64).
MAX_INT = 2**31 - 1
#: The most bytes a dataset file (or a CSV inside a zip) may hold. assumption: far above the
#: largest dataset here (UCI SGEMM: 24 MB of CSV).
MAX_FILE_BYTES = 2 * 2**30
#: Environment variable naming the folder of published datasets (default: ../shared/data
#: beside the repository).
DATA_ENV = "SIMGPU_DATA"
SHORT_NAMES = ("gpperf", "neusight", "uci-sgemm", "calibration")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Folder of the published datasets."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else repo_root().parent / "shared" / "data"


def calibration_dir() -> Path:
    return repo_root() / "calibration"


# --------------------------------------------------------------------------------------------
# validation


def _shown(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(i: int) -> str:
    return f"row {i} (line {i + 2} of a CSV)"


def _numeric(col: Any) -> np.ndarray:
    """A column as float64, NaN where a cell is not a number (text, a missing value, an
    integer beyond float range)."""
    if pd.api.types.is_bool_dtype(col) or not (
            pd.api.types.is_numeric_dtype(col) or pd.api.types.is_object_dtype(col)
            or pd.api.types.is_string_dtype(col)):
        return np.full(len(col), np.nan)  # true/false, dates, durations: not numbers here
    if pd.api.types.is_object_dtype(col):
        col = col.map(lambda v: np.nan if isinstance(v, (bool, np.bool_)) else v)
    out = pd.to_numeric(col, errors="coerce")
    if out.dtype == object:  # Python ints beyond int64 stay objects
        out = pd.Series([v if isinstance(v, (int, float)) and not isinstance(v, bool) and
                         abs(v) < 1e308 else np.nan for v in out], index=col.index)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(out, dtype=float)


def _whole_in(col: np.ndarray, low: int) -> np.ndarray:
    """Where ``col`` holds a whole number from ``low`` to :data:`MAX_INT`."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(col) & (col >= low) & (col <= MAX_INT) & (col % 1 == 0)


def _check_device_figures(df: Any, source: str) -> None:
    """One figure per device in each ``dev_*`` column, and whole counts of SMs and lanes."""
    cols = [c for c in DEVICE_COLUMNS if c in df.columns]
    for c in ("dev_sm_count", "dev_fp32_lanes_per_sm"):
        if c in cols:
            v = df[c].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                bad = np.isfinite(v) & ((v % 1 != 0) | (v > 2**20))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DatasetError(f"{source}: column {c!r}, {_where(i)}: got"
                                   f" {_shown(df[c].iloc[i])}, expected a whole number from 1"
                                   f" to {2**20}")
    if not cols:
        return
    for name, rows in df.groupby("device", sort=False)[cols]:
        for c in cols:
            values = rows[c].dropna().unique()
            if len(values) > 1:
                raise DatasetError(f"{source}: device {str(name)!r}: its rows disagree on {c}"
                                   f" ({_shown(values[0])} and {_shown(values[1])}), expected"
                                   " one figure per device")


def validate(df: Any, source: str) -> Any:
    """Check a frame against the GEMM schema, fill optional columns, return a clean copy."""
    if len(df) == 0:
        raise DatasetError(f"{source}: empty dataset (no rows), expected GEMM rows")
    names = [str(c) for c in df.columns]
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise DatasetError(f"{source}: column(s) {twice} given twice, expected each once")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {missing}; the GEMM schema needs {list(REQUIRED)}"
            " (see simgpu/predict/SCHEMA.md)"
        )
    out = df.copy()
    for name, default in OPTIONAL.items():
        if name not in out.columns:
            out[name] = default
        elif name != "power_W" and out[name].isna().any():
            # as objects: an empty column is float, a column with text is str
            out[name] = out[name].astype(object).fillna(default)
    for name in INT_COLUMNS:
        col = _numeric(out[name])
        low = 1 if name in ("M", "N", "K") else 0
        bad = ~_whole_in(col, low)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{source}: column {name!r}, {_where(i)}: got {_shown(out[name].iloc[i])},"
                f" expected an integer from {low} to {MAX_INT}"
            )
        out[name] = col.astype(np.int64)
    for name in [c for c in out.columns if str(c).startswith("param_")]:
        col = _numeric(out[name])
        bad = out[name].notna().to_numpy() & ~np.isfinite(col)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{source}: column {name!r}, {_where(i)}: got {_shown(out[name].iloc[i])},"
                " expected a finite number (empty: 0)"
            )
        if not pd.api.types.is_numeric_dtype(out[name]) or out[name].dtype == bool:
            out[name] = col
    for name in ("time_s", "power_W", *[c for c in DEVICE_COLUMNS if c in out.columns]):
        num = _numeric(out[name])
        bad = ~np.isfinite(num) | (num <= 0)
        if name != "time_s":
            bad &= out[name].notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{source}: column {name!r}, {_where(i)}: got {_shown(out[name].iloc[i])},"
                " expected a"
                " finite number > 0"
            )
        out[name] = num
    _check_device_figures(out, source)
    dt = out["dtype"].astype(str)
    bad = ~dt.isin(list(DTYPE_BYTES))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"{source}: column 'dtype', {_where(i)}: got {dt.iloc[i]!r}, expected one of"
            f" {list(DTYPE_BYTES)}"
        )
    dev = out["device"]
    bad = (dev.isna() | (dev.astype(str).str.strip() == "")).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{source}: column 'device', {_where(i)}: empty, expected a device name (a file in"
            " models/, or a name with the device columns)"
        )
    for name in ("device", "dataset", "kernel", "layout", "dtype"):
        out[name] = out[name].astype(str)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# device figures


def device_params(df: Any, source: str = "dataset") -> dict[str, DeviceParams]:
    """DeviceParams for every device in a frame: from models/ when the name is a device file
    there, else from the row's ``dev_*`` figures."""
    known = set(devices.names())
    out: dict[str, DeviceParams] = {}
    for name, rows in df.groupby("device", sort=False):
        name = str(name)
        if name in known:
            out[name] = DeviceParams.from_spec(devices.get(name))
            continue
        missing = [c for c in DEVICE_COLUMNS if c not in rows.columns or rows[c].isna().any()]
        if missing:
            raise DatasetError(
                f"{source}: device {name!r} is not in models/ and its rows lack {missing};"
                f" give a device file or the columns {list(DEVICE_COLUMNS)}"
            )
        r = rows.iloc[0]
        out[name] = DeviceParams.from_figures(
            name=name,
            sm_count=int(r["dev_sm_count"]),
            clock_MHz=float(r["dev_clock_MHz"]),
            fp32_lanes_per_sm=int(r["dev_fp32_lanes_per_sm"]),
            dram_bandwidth_GBps=float(r["dev_dram_GBps"]),
            l2_size_MiB=float(r["dev_l2_MiB"]),
            smem_per_sm_KiB=float(r["dev_smem_per_sm_KiB"]),
            tdp_W=float(r["dev_tdp_W"]),
        )
    return out


# --------------------------------------------------------------------------------------------
# adapters


def _whole(df: Any, columns: Iterable[str], source: str, low: int = 1) -> dict[str, np.ndarray]:
    """Columns of a published dataset's file that must hold whole numbers >= ``low``, as int64;
    a DatasetError naming the first cell that does not."""
    out = {}
    for name in columns:
        col = _numeric(df[name])
        bad = ~_whole_in(col, low)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{source}: column {name!r}, {_where(i)}: got"
                               f" {_shown(df[name].iloc[i])}, expected an integer from {low} to"
                               f" {MAX_INT}")
        out[name] = col.astype(np.int64)
    return out


#: GPPerf: every row ran cutlass_simt_sgemm_128x128_8x2 (the README: the blocksize labels were
#: not applied): CTA 128x128, K step 8, 2 stages, 256 threads each computing 8x8 of C
#: (CUTLASS's default SIMT sgemm threadblock shape).
_GPPERF_KERNEL = {"tile_m": 128, "tile_n": 128, "tile_k": 8, "stages": 2,
                  "thread_tile_m": 8, "thread_tile_n": 8, "threads_per_block": 256}


def from_gpperf(df: Any, source: str) -> Any:
    """GPPerf's cutlass_sgemm_rtx4070.csv: runtime only (its power column is not the kernel's
    power, see its README, and is dropped here)."""
    need = ("M", "N", "K", "runtime_ms", "layout_arg", "beta")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DatasetError(f"{source}: missing GPPerf column(s) {missing}")
    out = pd.DataFrame(
        {
            "device": "rtx-4070",
            "dataset": "gpperf",
            "kernel": "cutlass",
            "dtype": "fp32",
            "layout": df["layout_arg"].astype(str),
            "M": df["M"],
            "N": df["N"],
            "K": df["K"],
            "time_s": _time_from_ms(df, "runtime_ms", source),
            "param_beta": pd.to_numeric(df["beta"], errors="coerce").fillna(0.0),
            "power_W": np.nan,
            **_GPPERF_KERNEL,
        }
    )
    return out


#: NeuSight GPUs: shared memory per SM (KiB) and board power (W), from the CUDA C++ Programming
#: Guide's technical specifications (cc 6.0: 64, 6.1: 96, 7.0: 96, 7.5: 64, 8.0: 164 KiB) and
#: NVIDIA's datasheets (Tesla P4 75 W, P100 PCIe 250 W, T4 70 W, V100 PCIe 250 W, A100 PCIe
#: 250 W). A GPU with a device file in models/ uses that file instead.
_NEUSIGHT_EXTRA = {
    "Tesla P4": (96.0, 75.0, None),
    "Tesla P100-PCIE-16GB": (64.0, 250.0, None),
    "Tesla T4": (64.0, 70.0, None),
    "Tesla V100-PCIE-32GB": (96.0, 250.0, None),
    "NVIDIA A100-PCIE-40GB": (164.0, 250.0, "a100-pcie-40gb"),
}
#: Where NeuSight's device_configs describe an SM other than the chip's: (SMs, FP32 lanes per
#: SM). Its Tesla_P4.json counts 40 SMs of 64 lanes; the P4 is a full GP104 of 20 SMs with 128
#: FP32 lanes each (NVIDIA Tesla P4 datasheet: 2560 CUDA cores; GeForce GTX 1080 whitepaper:
#: GP104 has 20 SMs of 128 CUDA cores). The total, hence the FP32 peak, is the same.
_NEUSIGHT_SM_FIX = {"Tesla P4": (20, 128)}
#: Where a NeuSight device_config's clock ("Freq") disagrees with its own FP32 peak
#: ("SingleFLOPs" = SMs x lanes x 2 x clock): the clock, MHz. Tesla_P100-PCIE-16GB.json gives
#: 1380 MHz, but its 9519 GFLOP/s is 56 x 64 x 2 x 1.328 GHz, and 1328 MHz is the P100 PCIe's
#: maximum graphics clock that Jia et al. measured (arXiv:1804.06826 Table 3.1,
#: published/gpu_numbers.csv).
_NEUSIGHT_CLOCK_FIX = {"Tesla P100-PCIE-16GB": 1328.0}
_TILE_RE = re.compile(r"sgemm_(\d+)x(\d+)")


def from_neusight(df: Any, source: str, configs: Path | None) -> Any:
    """NeuSight's linear-layer latencies (PyTorch 2.1, cuBLAS fp32): GEMM K x (B*M) x N (see
    below), tile from the cuBLAS kernel name, split-K from grid z, threads from the block size."""
    need = ("Latency", "Device", "Kernel Name", "B", "M", "N", "K", "Block x", "Grid z")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DatasetError(f"{source}: missing NeuSight column(s) {missing}")
    n = _whole(df, ["B", "M", "N", "K", "Block x", "Grid z",
                    *[c for c in ("Block y", "Block z") if c in df.columns]], source)
    n["Grid z"] = _whole(df, ["Grid z"], source, low=0)["Grid z"]
    names = df["Kernel Name"].astype(str)
    tiles = names.str.extract(_TILE_RE)
    if tiles.isna().any().any():
        i = int(np.flatnonzero(tiles.isna().any(axis=1).to_numpy())[0])
        raise DatasetError(
            f"{source}: column 'Kernel Name', row {i}: {names.iloc[i]!r} has no sgemm_<m>x<n>"
        )
    out = pd.DataFrame(
        {
            "dataset": "neusight",
            "kernel": "cublas",
            "dtype": "fp32",
            "layout": names.str.extract(r"_(nn|nt|tn|tt)$")[0].fillna("tn"),
            # NeuSight's columns are batch B, rows M, in-features N, out-features K; cuBLAS
            # computes C^T = W x^T, so the GEMM is K x (B*M) x N: grid x times the kernel's
            # tile_m covers the K column (e.g. A100 row M=36, N=170, K=53341: grid 417 x 1 of
            # 128x64 tiles).
            "M": n["K"],
            "N": n["B"] * n["M"],
            "K": n["N"],
            "tile_m": tiles[0].astype(np.int64),
            "tile_n": tiles[1].astype(np.int64),
            "tile_k": 8,  # cuBLAS SIMT sgemm K step (CUTLASS SIMT default threadblock K = 8)
            "threads_per_block": n["Block x"] * n.get("Block y", 1) * n.get("Block z", 1),
            "split_k": np.maximum(n["Grid z"], 1),
            "stages": 2,
            "time_s": _time_from_ms(df, "Latency", source),
            "power_W": np.nan,
            "param_sliced": names.str.contains("sliced").astype(int),
        }
    )
    ttm = (out["tile_m"] // 16).clip(lower=1)
    out["thread_tile_m"] = ttm
    out["thread_tile_n"] = (out["tile_m"] * out["tile_n"] // out["threads_per_block"].clip(lower=1)
                            // ttm).clip(lower=1)
    devices_ = df["Device"].astype(str)
    out["device"] = devices_
    for gpu in devices_.unique():
        mask = devices_ == gpu
        smem, tdp, model = _NEUSIGHT_EXTRA.get(gpu, (None, None, None))
        if model is not None:
            out.loc[mask, "device"] = model
            continue
        cfg = _neusight_config(gpu, configs, source)
        if smem is None:
            raise DatasetError(f"{source}: NeuSight GPU {gpu!r} unknown: no shared-memory figure")
        sms, lanes = _NEUSIGHT_SM_FIX.get(gpu, (cfg["Num_Sm"], cfg["Core_Per_SM"]))
        if sms * lanes != cfg["Num_Sm"] * cfg["Core_Per_SM"]:
            raise DatasetError(f"{source}: NeuSight GPU {gpu!r}: {sms} SMs x {lanes} lanes"
                               f" differs from its config's {cfg['Num_Sm']} x"
                               f" {cfg['Core_Per_SM']} FP32 lanes")
        clock = _NEUSIGHT_CLOCK_FIX.get(gpu, cfg["Freq"])
        peak = 2.0 * sms * lanes * clock / 1e3  # GFLOP/s
        if abs(peak / cfg["SingleFLOPs"] - 1.0) > 0.01:
            raise DatasetError(f"{source}: NeuSight GPU {gpu!r}: {sms} SMs x {lanes} lanes x 2"
                               f" x {clock} MHz = {peak:.0f} GFLOP/s, but its config's"
                               f" SingleFLOPs is {cfg['SingleFLOPs']}")
        for col, value in (
            ("dev_sm_count", sms),
            ("dev_clock_MHz", clock),
            ("dev_fp32_lanes_per_sm", lanes),
            ("dev_dram_GBps", cfg["Mem_Bw"]),
            ("dev_l2_MiB", cfg["L2Cache"]),
            ("dev_smem_per_sm_KiB", smem),
            ("dev_tdp_W", tdp),
        ):
            out.loc[mask, col] = float(value)  # type: ignore[arg-type]
    return out


def _neusight_config(gpu: str, configs: Path | None, source: str) -> dict[str, Any]:
    if configs is None:
        raise DatasetError(f"{source}: NeuSight data needs its device_configs folder")
    path = configs / (gpu.replace(" ", "_") + ".json")
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: no NeuSight device config for {gpu!r}") from None
    except ValueError as exc:
        raise DatasetError(f"{path}: not JSON ({exc})") from None
    return dict(cfg)


#: GTX 680 (GK104, cc 3.0), the UCI dataset's GPU: NVIDIA GeForce GTX 680 whitepaper (8 SMX x
#: 192 CUDA cores, 1006 MHz base clock, 192.26 GB/s GDDR5, 512 KB L2, 195 W TDP) and the CUDA
#: C++ Programming Guide for cc 3.0 (48 KB shared memory per SM).
_GTX680 = {
    "dev_sm_count": 8.0,
    "dev_clock_MHz": 1006.0,
    "dev_fp32_lanes_per_sm": 192.0,
    "dev_dram_GBps": 192.26,
    "dev_l2_MiB": 0.5,
    "dev_smem_per_sm_KiB": 48.0,
    "dev_tdp_W": 195.0,
}
UCI_PARAMS = ("MWG", "NWG", "KWG", "MDIMC", "NDIMC", "MDIMA", "NDIMB", "KWI", "VWM", "VWN",
              "STRM", "STRN", "SA", "SB")


def from_uci(df: Any, source: str) -> Any:
    """UCI SGEMM (CLBlast-style kernel, 2048^3 on a GTX 680): runtime = mean of the four runs;
    block tile MWG x NWG x KWG, MDIMC x NDIMC threads, each (MWG/MDIMC) x (NWG/NDIMC)."""
    runs = [c for c in df.columns if str(c).startswith("Run")]
    missing = [c for c in UCI_PARAMS if c not in df.columns] + ([] if runs else ["Run1 (ms)"])
    if missing:
        raise DatasetError(f"{source}: missing UCI SGEMM column(s) {missing}")
    p = _whole(df, UCI_PARAMS[:5], source)
    p.update(_whole(df, UCI_PARAMS[5:], source, low=0))
    ms = pd.DataFrame({c: _numeric(df[c]) for c in runs}, index=df.index)
    for c in runs:
        _time_from_ms(df, c, source)  # a DatasetError naming the first cell not a number
    out = pd.DataFrame(
        {
            "device": "gtx-680",
            "dataset": "uci-sgemm",
            "kernel": "clblast",
            "dtype": "fp32",
            "layout": "nn",
            "M": 2048,
            "N": 2048,
            "K": 2048,
            "tile_m": p["MWG"],
            "tile_n": p["NWG"],
            "tile_k": p["KWG"],
            "thread_tile_m": np.maximum(p["MWG"] // p["MDIMC"], 1),
            "thread_tile_n": np.maximum(p["NWG"] // p["NDIMC"], 1),
            "threads_per_block": p["MDIMC"] * p["NDIMC"],
            "split_k": 1,
            "stages": 1,
            "time_s": ms.mean(axis=1) / 1e3,
            "power_W": np.nan,
            **{f"param_{c}": p[c] for c in UCI_PARAMS[5:]},
            **_GTX680,
        }
    )
    return out


# --------------------------------------------------------------------------------------------
# dispatch


def _read_bytes(path: Path) -> bytes:
    """The bytes of a dataset file: a regular file of at most MAX_FILE_BYTES (a FIFO or a
    device would block or never end)."""
    return read_bytes(path, "CSV or Parquet file", MAX_FILE_BYTES)


def parse_csv(data: bytes, source: str) -> Any:
    """CSV bytes as a DataFrame, or a DatasetError naming ``source``, the line and the problem:
    an empty file, bytes that are not UTF-8 text, a line with more or fewer fields than the
    header (a last line cut short, without its end of line, is a torn file), a header naming a
    column twice."""
    if not data.strip():
        raise DatasetError(f"{source}: empty file, expected CSV text with a header line")
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DatasetError(f"{source}: line {line}: a NUL byte; expected CSV text, not binary"
                           " data")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DatasetError(
            f"{source}: line {line}, byte {col}: {data[exc.start:exc.start + 1]!r} is not UTF-8;"
            " expected CSV text in UTF-8"
        ) from None
    if '"' not in text:
        _check_fields(text, source)  # the common case, without a CSV parser's cost
    else:
        _check_quoted_fields(text, source)
    try:
        return pd.read_csv(io.StringIO(text), low_memory=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{source}: cannot read as a table: {str(exc)[:200]}") from None


def _twice(header: list[str], source: str, line: int) -> None:
    names = [c.strip() for c in header]
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise DatasetError(f"{source}: line {line}: column(s) {twice} named twice in the"
                           " header, expected each once")


_EOL = re.compile(r"\r\n|\n|\r")


def _wrong_fields(source: str, line: int, got: int, want: int, text: str) -> DatasetError:
    last = len(_EOL.split(text.rstrip("\r\n"))) == line
    if got < want and last and not text.endswith(("\n", "\r")):
        return DatasetError(
            f"{source}: line {line} is cut short ({got} of {want} fields, and no end of"
            " line): the file looks torn (a write interrupted?); complete or remove that line"
        )
    return DatasetError(f"{source}: line {line}: {got} fields, the header has {want}")


def _check_fields(text: str, source: str) -> None:
    """Every line of CSV text without quotes has the header's number of fields."""
    want = 0
    for line, row in enumerate(_EOL.split(text), 1):
        if not row.strip():
            continue  # a blank line, skipped as pandas does
        got = row.count(",") + 1
        if not want:
            want = got
            _twice(row.split(","), source, line)
        elif got != want:
            raise _wrong_fields(source, line, got, want, text)


def _check_quoted_fields(text: str, source: str) -> None:
    """:func:`_check_fields` through a CSV parser (quoted fields may hold commas and ends of
    line)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    try:
        for row in reader:
            if not row:
                continue  # a blank line, skipped as pandas does
            if header is None:
                header = row
                _twice(header, source, reader.line_num)
            elif len(row) != len(header):
                raise _wrong_fields(source, reader.line_num, len(row), len(header), text)
    except csv.Error as exc:
        raise DatasetError(f"{source}: line {reader.line_num}: not CSV ({exc})") from None


def _read_table(path: Path) -> Any:
    if path.suffix == ".parquet":
        if not path.is_file():
            raise DatasetError(f"{path}: not a regular file, expected a CSV or Parquet file")
        return read_frame(path)
    return parse_csv(_read_bytes(path), str(path))


def _read_zip(path: Path) -> tuple[Any, str]:
    """The first CSV inside a zip (the UCI SGEMM dataset's form) and its name."""
    try:
        with zipfile.ZipFile(io.BytesIO(_read_bytes(path))) as zf:
            info = next((i for i in zf.infolist()
                         if i.filename.endswith(".csv") and "__MACOSX" not in i.filename), None)
            if info is None:
                raise DatasetError(f"{path}: no CSV inside the zip")
            source = f"{path}:{info.filename}"
            if info.file_size > MAX_FILE_BYTES:
                raise DatasetError(f"{source}: expands to {info.file_size / 2**30:.1f} GiB, more"
                                   f" than the {MAX_FILE_BYTES / 2**30:.0f} GiB a dataset file"
                                   " may hold")
            data = zf.read(info)
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError, zlib_error) as exc:
        raise DatasetError(f"{path}: not a readable zip file ({str(exc)[:120]})") from None
    return parse_csv(data, source), source


def _time_from_ms(df: Any, column: str, source: str) -> Any:
    """``column`` (milliseconds) as seconds; a DatasetError naming the first cell that is not a
    number."""
    ms = _numeric(df[column])
    bad = ~np.isfinite(ms)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{source}: column {column!r}, {_where(i)}: got"
                           f" {_shown(df[column].iloc[i])}, expected a number of milliseconds")
    return ms / 1e3


def _from_file(path: Path) -> Any:
    if path.suffix == ".zip":
        df, source = _read_zip(path)
        return from_uci(df, source)
    df = _read_table(path)
    cols = set(df.columns)
    if {"runtime_ms", "blocksize1"} <= cols:
        return from_gpperf(df, str(path))
    if {"Latency", "Kernel Name"} <= cols:
        configs = path.parent.parent / "device_configs"
        return from_neusight(df, str(path), configs if configs.is_dir() else None)
    if "MWG" in cols:
        return from_uci(df, str(path))
    if "time_ms" in cols and "time_s" not in cols and "accum_dtype" in cols:
        return from_calibration_table(df, str(path))
    if "time_ms" in cols and "time_s" not in cols:
        df = df.copy()
        df["time_s"] = _time_from_ms(df, "time_ms", str(path))
    return df


def _resolve(spec: str | Path) -> Path:
    text = str(spec)
    if text in SHORT_NAMES and not Path(text).exists():
        if text == "calibration":
            return calibration_dir()
        base = data_dir() / text
        if text == "gpperf":
            return base / "cutlass_sgemm_rtx4070.csv"
        if text == "neusight":
            return base / "train_linear"
        return base / "uci_sgemm_product_dataset.zip"
    return Path(text)


def load(spec: str | Path, *, sample: int | None = None, seed: int = 0) -> Any:
    """Load one dataset (path or short name) into the validated GEMM schema.

    ``sample`` keeps that many rows at random (seeded), for large datasets (UCI: 241,600 rows).
    """
    if sample is not None and not (isinstance(sample, int) and sample >= 0):
        raise DatasetError(f"sample {sample!r}: expected a number of rows >= 0")
    path = _resolve(spec)
    if not path.exists():
        raise DatasetError(
            f"{path}: no such file or folder (short names: {list(SHORT_NAMES)}; published data"
            f" is looked up under {data_dir()}, set {DATA_ENV} to move it)"
        )
    if path.is_dir():
        if (path / "manifest.json").exists():
            df = load_calibration_run(path)
        elif gemm_runs_under(path):
            df = load_calibration(path)
        else:
            files = sorted(p for p in path.iterdir() if p.suffix in (".csv", ".parquet"))
            if not files:
                raise DatasetError(f"{path}: no CSV/Parquet files or calibration runs here")
            df = pd.concat([_from_file(p) for p in files], ignore_index=True)
    else:
        df = _from_file(path)
    df = validate(df, str(path))
    device_params(df, str(path))  # every device known here, or described by its rows
    if sample is not None and len(df) > sample:
        df = df.sample(n=sample, random_state=seed).reset_index(drop=True)
    return df


def load_many(specs: Iterable[str | Path], *, sample: int | None = None, seed: int = 0) -> Any:
    """Several datasets (:func:`load`) in one validated frame."""
    frames = [load(s, sample=sample, seed=seed) for s in specs]
    return validate(pd.concat(frames, ignore_index=True), "+".join(str(s) for s in specs))


def default_training_specs() -> list[str]:
    """What ``simgpu predict gemm`` trains on: the bundled calibration runs, and the NeuSight
    and GPPerf data when the published datasets are present."""
    specs = ["calibration"] if gemm_runs_under(calibration_dir()) else []
    for name in ("neusight", "gpperf"):
        if _resolve(name).exists():
            specs.append(name)
    return specs
