"""Hyper-parameters of the GEMM forest chosen by inner cross-validation on training data only.

For an outer split (evaluation) the inner folds are the same kind of split drawn inside the
training rows: held-out sizes inside the training sizes, one training GPU held out at a time for
a held-out GPU, the largest training sizes for the largest-size split, and so on
(:func:`simgpu.predict.splits.splits` applied to the training frame). The test rows of the
outer split are never seen. Each candidate of :data:`GRID` is scored by the mean absolute
percentage error of runtime over the inner folds; the best one (ties: the first) is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from simgpu.predict import features as feat
from simgpu.predict.model import GemmForest, Settings
from simgpu.predict.splits import splits

#: Candidate (min_samples_leaf, max_features). assumption: the range where the forest's error
#: moved on the datasets here (leaves of 1-8 rows; a quarter to half of the features per split;
#: all features per split let the trees key on a few device-dependent columns).
GRID: tuple[tuple[int, float], ...] = ((1, 0.25), (1, 0.5), (3, 0.25), (3, 0.5), (8, 0.25),
                                       (8, 0.5))
#: Trees per inner fit: fewer than the final forest is enough to rank candidates (NeuSight with
#: the T4 held out: 30 and 100 trees choose the same candidate and score every candidate within
#: 0.5 points of mean error).
INNER_TREES = 30
#: Rows per inner training set at most (a random sample beyond that). assumption: a speed
#: limit for 2-core machines; the datasets' distinct configurations number far fewer.
INNER_MAX_ROWS = 8000
#: Inner folds at most per candidate. assumption: 4, as many as the held-out-GPU split has
#: training GPUs in NeuSight (5 GPUs, one held out).
INNER_FOLDS = 4


def _mape(y: np.ndarray, pred: np.ndarray) -> float:
    ok = np.isfinite(pred) & np.isfinite(y) & (y > 0)
    return float(np.mean(np.abs(pred[ok] - y[ok]) / y[ok]) * 100.0) if ok.any() else np.inf


def inner_folds(df: Any, split: str, seed: int) -> list[np.ndarray]:
    """Test masks of the inner folds (over ``df``'s rows) for an outer split named ``split``."""
    kind = "gpu" if split.startswith("gpu:") else split
    folds: list[np.ndarray] = []
    if kind in ("gpu", "largest"):
        folds = [m for name, m in splits(df, seed) if name.split(":")[0] == kind]
    else:
        for i in range(INNER_FOLDS):
            folds += [m for name, m in splits(df, seed + 1000 + i) if name == kind]
    return [m for m in folds[:INNER_FOLDS] if 0 < m.sum() < len(m)]


def choose(
    df: Any,
    split: str,
    base: Settings,
    *,
    prepared: tuple[Any, Any] | None = None,
    grid: Iterable[tuple[int, float]] | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[Settings, dict[str, Any]]:
    """Settings for a forest trained on ``df`` (the outer training rows), chosen by inner CV.

    ``grid``: the candidates (default :data:`GRID`). Returns the chosen settings (``base``
    with ``min_samples_leaf`` and ``max_features`` replaced) and a record of every
    candidate's inner error.
    """
    X, est = prepared if prepared is not None else feat.build(df)
    df = df.reset_index(drop=True)
    X, est = X.reset_index(drop=True), est.reset_index(drop=True)
    folds = inner_folds(df, split, seed)
    grid = list(GRID if grid is None else grid)
    if not folds:
        return base, {"folds": 0, "scores": {}}
    rng = np.random.default_rng(seed)
    scores: dict[str, float] = {}
    best: tuple[float, Settings] | None = None
    for leaf, mf in grid:
        s = replace(base, min_samples_leaf=leaf, max_features=mf, n_estimators=INNER_TREES)
        errs = []
        for test in folds:
            tr = np.flatnonzero(~test)
            if tr.size > INNER_MAX_ROWS:
                tr = np.sort(rng.choice(tr, size=INNER_MAX_ROWS, replace=False))
            te = np.flatnonzero(test)
            f = GemmForest(s).fit(df.iloc[tr].reset_index(drop=True),
                                  prepared=(X.iloc[tr].reset_index(drop=True),
                                            est.iloc[tr].reset_index(drop=True)))
            p = f.predict(df.iloc[te].reset_index(drop=True), warn=False,
                          prepared=(X.iloc[te].reset_index(drop=True),
                                    est.iloc[te].reset_index(drop=True)))
            errs.append(_mape(df["time_s"].to_numpy(float)[te], p["time_s"].to_numpy(float)))
        score = float(np.mean(errs))
        scores[f"leaf={leaf},max_features={mf}"] = score
        if best is None or score < best[0]:
            best = (score, replace(base, min_samples_leaf=leaf, max_features=mf))
    assert best is not None
    if log is not None:
        log(f"inner CV ({split}, {len(folds)} folds): min_samples_leaf"
            f" {best[1].min_samples_leaf}, max_features {best[1].max_features}"
            f" (inner MAPE {best[0]:.1f}%)")
    return best[1], {"folds": len(folds), "scores": scores}
