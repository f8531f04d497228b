"""Train/test splits of a GEMM dataset, for honest evaluation (:mod:`simgpu.predict.evaluate`)
and for the inner cross-validation that tunes the forest (:mod:`simgpu.predict.tuning`).

Each split is a name and a boolean test mask over the frame's rows:

- ``random``: 20% of rows at random (for comparison only: the same size appears in both);
- ``sizes``: 20% of the distinct (M, N, K) sizes held out whole;
- ``tiles``: 20% of the distinct tile configurations (:data:`TILE_KEY`) held out whole
  (datasets with at least 3 configurations);
- ``largest``: the 20% of rows with the most FLOPs held out (extrapolation to larger sizes);
- ``gpu:<name>``: one GPU held out, trained on the others (datasets with >= 2 GPUs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TEST_FRACTION", "TILE_KEY", "splits"]

TEST_FRACTION = 0.2
#: The columns that make a tile configuration (kernel, block tile, thread tile, threads).
TILE_KEY = ("kernel", "tile_m", "tile_n", "tile_k", "thread_tile_m", "thread_tile_n",
            "threads_per_block")


def _group_split(keys: Any, rng: np.random.Generator) -> np.ndarray:
    """Boolean test mask holding out TEST_FRACTION of the distinct keys."""
    codes, uniques = keys.factorize() if hasattr(keys, "factorize") else (None, None)
    assert codes is not None and uniques is not None
    n = len(uniques)
    n_test = max(1, int(round(TEST_FRACTION * n)))
    chosen = rng.choice(n, size=n_test, replace=False)
    return np.isin(codes, chosen)


def splits(df: Any, seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """(name, test mask) for every split that applies to this dataset."""
    rng = np.random.default_rng(seed)
    n = len(df)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=max(1, int(round(TEST_FRACTION * n))), replace=False)] = True
    yield "random", mask
    sizes = pd.Series(list(zip(df["M"], df["N"], df["K"], strict=True)), index=df.index)
    if sizes.nunique() >= 3:
        yield "sizes", _group_split(sizes.astype(str), rng)
    tiles = df[list(TILE_KEY)].astype(str).agg("/".join, axis=1)
    if tiles.nunique() >= 3:
        yield "tiles", _group_split(tiles, rng)
    flops = 2.0 * df["M"] * df["N"] * df["K"]
    if flops.nunique() >= 3:
        cut = np.quantile(flops, 1 - TEST_FRACTION)
        big = (flops > cut).to_numpy()
        if 0 < big.sum() < n:
            yield "largest", big
    gpus = df["device"].unique()
    if len(gpus) >= 2:
        for g in sorted(gpus):
            yield f"gpu:{g}", (df["device"] == g).to_numpy()
