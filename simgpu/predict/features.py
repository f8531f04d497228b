"""Features for the GEMM predictor: the configuration, the device's figures, and the physics of
the analytical model (:func:`simgpu.analytical.gemm`, row by row through
:func:`simgpu.calibrate.gemm_rows.estimate`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simgpu import catalogue
from simgpu.analytical.params import DTYPE_BYTES
from simgpu.calibrate.gemm_rows import estimate, kernel_name
from simgpu.predict.datasets import device_params

_KERNEL_CODE = {"library": 0, "regblock": 1, "tiled": 2, "naive": 3}
_LAYOUT_CODE = {"nn": 0, "nt": 1, "tn": 2, "tt": 3}
_BOUND_CODE = {"compute": 0, "shared": 1, "l2": 2, "dram": 3, "power": 4, "launch": 5,
               "host": 6}

#: The configuration and device columns (the "plain" forest sees only these).
PLAIN = (
    "log2_M", "log2_N", "log2_K", "log2_flops", "dtype_bytes", "dtype_tensor", "layout_code",
    "kernel_code", "tile_m", "tile_n", "tile_k", "thread_tile_m", "thread_tile_n",
    "threads_per_block", "split_k", "stages",
    "dev_sm_count", "dev_clock_MHz", "dev_dram_GBps", "dev_l2_MiB", "dev_peak_TFLOPS",
)
#: What the analytical model adds.
PHYSICS = (
    "log_an_time", "log_an_compute", "log_an_shared", "log_an_l2", "log_an_dram",
    "log_intensity", "waves", "tail_efficiency", "occupancy", "blocks_per_sm", "log2_blocks",
    "an_bound", "an_power_W", "dram_fits_l2",
)


def analytical(
    df: Any, library_split_k: bool = True, params: dict[str, Any] | None = None
) -> Any:
    """The analytical model for every row of a GEMM-schema frame (index aligned,
    :func:`simgpu.calibrate.gemm_rows.estimate`) with the device figures the forest sees:
    :meth:`~simgpu.analytical.params.DeviceParams.features`, and ``dev_peak_TFLOPS`` and
    ``dtype_tensor`` of each row's dtype.

    ``params``: the :class:`~simgpu.analytical.params.DeviceParams` to use per device name
    (default: from the device files or the rows' ``dev_*`` figures)."""
    params = device_params(df) if params is None else params
    est = estimate(df, params, library_split_k)
    figures = []
    for name, rows in df.groupby("device", sort=False):
        p = params[str(name)]
        dev = pd.DataFrame(p.features(), index=rows.index)
        dev["dev_peak_TFLOPS"] = [p.peak_TFLOPS[d] for d in rows["dtype"]]
        dev["dtype_tensor"] = [float(p.tensor[d]) for d in rows["dtype"]]
        figures.append(dev)
    return pd.concat([est, pd.concat(figures).loc[df.index]], axis=1)


def build(df: Any, est: Any | None = None) -> tuple[Any, Any]:
    """(features, analytical estimate) for a GEMM-schema frame."""
    if est is None:
        est = analytical(df)
    f = pd.DataFrame(index=df.index)
    for c in ("M", "N", "K"):
        f[f"log2_{c}"] = np.log2(df[c].astype(float))
    f["log2_flops"] = np.log2(2.0 * df["M"] * df["N"] * df["K"])
    f["dtype_bytes"] = df["dtype"].map(DTYPE_BYTES).astype(float)
    f["dtype_tensor"] = est["dtype_tensor"]
    f["layout_code"] = df["layout"].map(_LAYOUT_CODE).fillna(-1).astype(float)
    f["kernel_code"] = [float(_KERNEL_CODE[catalogue.family_of(kernel_name(k))])
                        for k in df["kernel"]]
    # the tiles the kernel ran with (for library rows with unknown tiles: what the model chose)
    for c in ("tile_m", "tile_n", "tile_k", "thread_tile_m", "thread_tile_n",
              "threads_per_block", "split_k", "stages"):
        f[c] = est[c].astype(float)
    for c in ("dev_sm_count", "dev_clock_MHz", "dev_dram_GBps", "dev_l2_MiB", "dev_peak_TFLOPS"):
        f[c] = est[c].astype(float)
    with np.errstate(divide="ignore"):
        f["log_an_time"] = np.log(est["time_s"].astype(float))
        for c, col in (("compute", "t_compute_s"), ("shared", "t_shared_s"), ("l2", "t_l2_s"),
                       ("dram", "t_dram_s")):
            f[f"log_an_{c}"] = np.log(np.maximum(est[col].astype(float), 1e-12))
        f["log_intensity"] = np.log(est["arithmetic_intensity"].astype(float))
    f["waves"] = est["waves"].astype(float)
    f["tail_efficiency"] = est["tail_efficiency"].astype(float)
    f["occupancy"] = est["occupancy"].astype(float)
    f["blocks_per_sm"] = est["blocks_per_sm"].astype(float)
    f["log2_blocks"] = np.log2(est["blocks"].astype(float))
    f["an_bound"] = est["bound"].map(_BOUND_CODE).astype(float)
    f["an_power_W"] = est["power_W"].astype(float)
    a = df["M"] * df["K"] + df["K"] * df["N"]
    f["dram_fits_l2"] = (a * f["dtype_bytes"] <= est["dev_l2_MiB"] * 2**20).astype(float)
    extra = sorted(c for c in df.columns if str(c).startswith("param_"))
    for c in extra:
        f[c] = df[c].astype(float).fillna(0.0)
    f = f.replace([np.inf, -np.inf], np.nan).fillna(0.0)
    return f, est


#: Absolute device figures. The plain forest needs them to tell GPUs apart; the physics forest
#: does without: the analytical features already carry the device (its roofs are computed from
#: the device file), and with the raw figures the trees learn each training GPU's identity and
#: extrapolate badly to a new one (NeuSight, one GPU held out, 40 trees: mean error 30.1% with
#: them, 22.7% without).
DEVICE = ("dev_sm_count", "dev_clock_MHz", "dev_dram_GBps", "dev_l2_MiB", "dev_peak_TFLOPS")


def columns(kind: str, frame: Any) -> list[str]:
    """Feature columns of a model kind ("forest" or "forest+physics")."""
    extra = [c for c in frame.columns if str(c).startswith("param_")]
    if kind == "forest+physics":
        return [c for c in PLAIN if c not in DEVICE] + extra + list(PHYSICS)
    return list(PLAIN) + extra
