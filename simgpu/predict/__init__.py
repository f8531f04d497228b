"""Learned GEMM runtime and power: datasets in one schema, features from the analytical model,
random forests cached on disk, and evaluation on honest splits.

>>> from simgpu import devices, predict
>>> est = predict.predict_gemm(devices.get("h100-sxm"), {"M": 4096, "N": 4096, "K": 4096,
...                                                     "dtype": "fp16"})  # doctest: +SKIP

Importing this package is light; pandas and scikit-learn load when a function needs them.
"""

# The functions below import the predictor's modules when called: `simgpu` imports this package
# (through simgpu.predict.cli) while it builds its parsers, and pandas and scikit-learn would add
# about 3 s to every command's start.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simgpu.errors import DatasetError

__all__ = ["predict_gemm", "default_model"]


def default_model(
    data: Sequence[str] | None = None, settings: Any = None, log: Any = None
) -> tuple[Any, dict[str, Any]]:
    """The trained forest for ``data`` (default: calibration runs + NeuSight + GPPerf), from
    the cache when it is there. ``log`` (a callable) hears when training starts."""
    from simgpu.predict import datasets, model

    specs = list(data) if data else datasets.default_training_specs()
    if not specs:
        raise DatasetError(
            "no training data: no calibration run with a gemm table and no published datasets"
            f" (set {datasets.DATA_ENV}); pass data=[...]"
        )
    df = datasets.load_many(specs)
    forest, info = model.train(df, settings, log=log, data=specs)
    info["data"] = specs
    info["rows"] = len(df)
    return forest, info


def _frame(spec: Any, frame_or_params: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(frame_or_params, Mapping):
        frame = pd.DataFrame({k: np.atleast_1d(v) for k, v in frame_or_params.items()})
    else:
        frame = pd.DataFrame(frame_or_params).copy()
    frame["device"] = spec.name
    frame["time_s"] = 1.0  # placeholder: the schema wants it; prediction never reads it
    if "dataset" not in frame.columns:
        frame["dataset"] = "query"
    keep = [c for c in frame.columns if c != "power_W"]
    return frame[keep]


def predict_gemm(
    spec: Any,
    frame_or_params: Any,
    *,
    data: Sequence[str] | None = None,
    settings: Any = None,
    log: Any = None,
) -> Any:
    """Learned runtime and power of GEMMs on ``spec``: one row per input row.

    ``frame_or_params``: a DataFrame or a dict of scalars/arrays with at least ``M, N, K,
    dtype`` (optional: kernel, layout, tile_m, tile_n, tile_k, thread_tile_m, thread_tile_n,
    threads_per_block, split_k, stages). Columns: ``time_s``, ``time_s_spread`` (standard
    deviation over the trees), ``power_W``, ``power_W_spread``, ``energy_J``, ``extrapolated``,
    and the analytical ``an_time_s``, ``an_power_W``. Warns (OutOfRangeWarning) when a point lies
    outside the training range.
    """
    from simgpu.predict import datasets

    forest, _ = default_model(data, settings, log)
    frame = datasets.validate(_frame(spec, frame_or_params), "predict_gemm input")
    out = forest.predict(frame)
    out.index = getattr(frame_or_params, "index", out.index)
    return out
