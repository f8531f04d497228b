"""Honest evaluation of the GEMM predictors.

Splits (each a train/test partition of one dataset; :mod:`simgpu.predict.splits`): random rows,
held-out sizes, held-out tile configurations, the largest sizes, and one GPU held out.

Models: ``analytical`` (no training), ``forest`` (configuration + device figures), and
``forest+physics`` (also the analytical features, learning the measured/analytical ratio).
Metrics per target (runtime, and power where the data has it): R^2 (on the raw values), mean
and median absolute percentage error.

With ``tune`` the forests' hyper-parameters are chosen per split by inner cross-validation on
that split's training rows (:mod:`simgpu.predict.tuning`); the table records the choice.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from simgpu.errors import DatasetError
from simgpu.predict import features as feat
from simgpu.predict import tuning
from simgpu.predict.fewshot import FEW_SHOT_K, Shots
from simgpu.predict.model import GemmForest, Settings, families
from simgpu.predict.splits import TEST_FRACTION, splits

__all__ = ["MIN_ROWS", "MODELS", "PUBLISHED", "SPLIT_KINDS", "TEST_FRACTION", "evaluate",
           "few_shot_rows", "metrics", "summary_gpu"]

MODELS = ("analytical", "forest", "forest+physics")
#: Draws of the few-shot curve's shots per held-out GPU (mean reported).
#: assumption: 5, as ``--repeats`` in the docs; the curve's standard deviation is reported too.
FEW_SHOT_DRAWS = 5
#: The kinds of split (simgpu.predict.splits); ``gpu`` brings its few-shot curve.
SPLIT_KINDS = ("random", "sizes", "tiles", "largest", "gpu")
#: Fewest rows a dataset needs to be evaluated: every split holds some out and trains on the
#: rest. assumption: 10 (the random split then tests on 2 rows and trains on 8).
MIN_ROWS = 10


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R^2, mean and median absolute percentage error, and ``level_free_mape_pct``: the mean
    error left after dividing the predictions by their median ratio to the truth (what one
    measurement of the level would leave; for a held-out GPU, the part no per-GPU factor fixes)."""
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    ok = np.isfinite(y) & np.isfinite(pred) & (y > 0) & (pred > 0)
    y, pred = y[ok], pred[ok]
    if len(y) == 0:
        return {"r2": np.nan, "mape_pct": np.nan, "median_ape_pct": np.nan,
                "level_free_mape_pct": np.nan}
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ape = np.abs(pred - y) / np.abs(y) * 100.0
    level = float(np.median(pred / y))
    return {
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else np.nan,
        "mape_pct": float(ape.mean()),
        "median_ape_pct": float(np.median(ape)),
        "level_free_mape_pct": float(np.mean(np.abs(pred / level - y) / y) * 100.0),
    }


def evaluate(
    df: Any,
    dataset: str,
    settings: Settings | None = None,
    seed: int = 0,
    log: Any = None,
    repeats: int = 1,
    tune: bool = False,
    kinds: set[str] | None = None,
) -> Any:
    """The metric table of every split x model x target for one dataset (``kinds``: only
    the splits of these kinds, of :data:`SPLIT_KINDS`).

    With ``repeats`` > 1 the random and held-out-group splits are drawn again with seeds
    ``seed .. seed + repeats - 1`` and the table gives the mean of each metric over the draws
    (``mape_pct_sd``: their standard deviation); the largest-size and held-out-GPU splits do not
    depend on the seed and run once. A dataset of fewer than :data:`MIN_ROWS` rows, or
    ``repeats`` < 1, is a DatasetError.
    """
    if len(df) < MIN_ROWS:
        raise DatasetError(f"{dataset}: {len(df)} row(s); evaluation holds {TEST_FRACTION:.0%}"
                           f" of the rows out and needs at least {MIN_ROWS}")
    if repeats < 1:
        raise DatasetError(f"repeats {repeats}: expected an integer >= 1")
    if repeats > 1:
        tables = []
        for r in range(repeats):
            only = None if r == 0 else {"random", "sizes", "tiles"}
            t = _evaluate_once(df, dataset, settings, seed + r, log, only, tune, kinds)
            tables.append(t.assign(draw=r))
        allt = pd.concat(tables, ignore_index=True)
        keys = ["dataset", "split", "model", "target"]
        if "shots" in allt.columns:
            keys.append("shots")
        out = allt.groupby(keys, as_index=False, sort=False, dropna=False).agg(
            n_train=("n_train", "mean"), n_test=("n_test", "mean"), r2=("r2", "mean"),
            mape_pct=("mape_pct", "mean"), median_ape_pct=("median_ape_pct", "mean"),
            level_free_mape_pct=("level_free_mape_pct", "mean"),
            seconds=("seconds", "sum"), repeats=("draw", "nunique"),
            mape_pct_sd=("mape_pct", "std"),
        )
        return out
    return _evaluate_once(df, dataset, settings, seed, log, None, tune, kinds)


def _evaluate_once(
    df: Any,
    dataset: str,
    settings: Settings | None,
    seed: int,
    log: Any,
    only: set[str] | None = None,
    tune: bool = False,
    kinds: set[str] | None = None,
) -> Any:
    settings = settings or Settings(seed=seed)
    rows: list[dict[str, Any]] = []
    X, est = feat.build(df)
    has_power = df["power_W"].notna().to_numpy()
    for split, test in splits(df, seed):
        if (only is not None and split not in only) or (
                kinds is not None and split.split(":")[0] not in kinds):
            continue
        train = ~test
        for model in MODELS:
            t0 = time.perf_counter()
            hyper: dict[str, Any] = {}
            if model == "analytical":
                pred_t = est["time_s"].to_numpy()[test]
                pred_p = est["power_W"].to_numpy()[test]
            else:
                s = Settings(kind=model, n_estimators=settings.n_estimators,
                             min_samples_leaf=settings.min_samples_leaf,
                             max_features=settings.max_features, seed=settings.seed)
                prep_tr = (X[train].reset_index(drop=True), est[train].reset_index(drop=True))
                prep_te = (X[test].reset_index(drop=True), est[test].reset_index(drop=True))
                if tune:
                    s, _ = tuning.choose(df[train].reset_index(drop=True), split, s,
                                         prepared=prep_tr, seed=seed)
                hyper = {"min_samples_leaf": s.min_samples_leaf,
                         "max_features": s.max_features}
                f = GemmForest(s).fit(df[train].reset_index(drop=True), prepared=prep_tr)
                p = f.predict(df[test].reset_index(drop=True), warn=False, prepared=prep_te)
                pred_t = p["time_s"].to_numpy()
                pred_p = p["power_W"].to_numpy()
            secs = time.perf_counter() - t0
            if split.startswith("gpu:"):
                rows.extend(few_shot_rows(df["time_s"].to_numpy()[test], pred_t, dataset,
                                          split, model, seed, int(train.sum()),
                                          family=families(df)[test]))
            for target, y, pred, keep in (
                ("time", df["time_s"].to_numpy()[test], pred_t, np.ones(test.sum(), bool)),
                ("power", df["power_W"].to_numpy()[test], pred_p, has_power[test]),
            ):
                if not keep.any():
                    continue
                m = metrics(y[keep], pred[keep])
                rows.append({"dataset": dataset, "split": split, "model": model,
                             "target": target, "n_train": int(train.sum()),
                             "n_test": int(keep.sum()), **m, "seconds": secs, **hyper})
            if log is not None:
                last = rows[-1] if rows else {}
                log(f"{dataset} {split:>24} {model:>15}: time MAPE"
                    f" {[r for r in rows if r['target'] == 'time'][-1]['mape_pct']:.1f}%"
                    f" ({secs:.1f} s){'' if last.get('target') != 'power' else ''}")
    return pd.DataFrame(rows)


def few_shot_rows(
    y: np.ndarray, pred: np.ndarray, dataset: str, split: str, model: str, seed: int,
    n_model: int = 0, ks: tuple[int, ...] = FEW_SHOT_K, draws: int = FEW_SHOT_DRAWS,
    family: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The few-shot curve of one held-out GPU (split ``gpu:<name>``): ``y`` its measured
    times, ``pred`` a model's zero-shot predictions of them. For each draw (seeds ``seed`` ..
    ``seed + draws - 1``), max(ks) rows drawn at random are the pool of shots and the rest the
    test rows, the same for every K (``n_model``: the model's own training rows, reported in
    ``n_train`` with the shots); K shots fit the :class:`~simgpu.predict.fewshot.Shots`
    corrections of the predictions (K = 0: none; ``family``: each row's kernel family, for the
    corrections per family). One row per K (split ``fewshot:<name>``, column ``shots``)
    with the mean of each metric over the draws. None where the GPU has fewer than max(ks) +
    :data:`MIN_ROWS` rows."""
    pool_n = max(ks)
    if len(y) < pool_n + MIN_ROWS:
        return []
    per_k: dict[int, list[dict[str, float]]] = {k: [] for k in ks}
    fam = np.full(len(y), "all", dtype=object) if family is None else np.asarray(family)
    for d in range(draws):
        order = np.random.default_rng(seed + d).permutation(len(y))
        pool, test = order[:pool_n], order[pool_n:]
        for k in ks:
            p = pred[test]
            if k > 0:
                shots = pool[:k]
                p = Shots.fit(pred[shots], y[shots], fam[shots]).apply(p, fam[test])
            per_k[k].append(metrics(y[test], p))
    out = []
    for k, ms in per_k.items():
        mean = {m: float(np.mean([x[m] for x in ms])) for m in ms[0]}
        out.append({"dataset": dataset, "split": "fewshot:" + split.split(":", 1)[1],
                    "model": model, "target": "time", "shots": k, "n_train": n_model + k,
                    "n_test": len(y) - pool_n, **mean,
                    "mape_pct_sd": float(np.std([x["mape_pct"] for x in ms], ddof=1)),
                    "repeats": draws, "seconds": 0.0})
    return out


#: Published figures to print beside ours (GPPerf README, from arXiv 2411.16954 and the
#: held-out-size reproduction there; UCI README).
PUBLISHED = (
    {"dataset": "gpperf", "split": "random", "model": "GPPerf paper (random forest)",
     "target": "time", "r2": 0.98, "mape_pct": 15.57},
    {"dataset": "gpperf", "split": "sizes", "model": "same kind of forest (README)",
     "target": "time", "r2": 0.33, "mape_pct": 115.0},
    {"dataset": "gpperf", "split": "sizes", "model": "one-parameter wave model (README)",
     "target": "time", "r2": 0.71, "mape_pct": 12.6},
    {"dataset": "uci-sgemm", "split": "random", "model": "random forest (README)",
     "target": "time", "r2": 0.999},
    {"dataset": "uci-sgemm", "split": "tiles", "model": "random forest (README)",
     "target": "time", "r2": 0.64, "median_ape_pct": 21.0},
)


def summary_gpu(table: Any) -> Any:
    """Mean over the held-out-GPU splits, per dataset, model and target (split "gpu:mean"),
    and over their few-shot curves, per number of shots (split "fewshot:mean")."""
    means = []
    for kind in ("gpu", "fewshot"):
        g = table[table["split"].str.startswith(kind + ":")]
        if g.empty:
            continue
        keys = ["dataset", "model", "target"] + (["shots"] if kind == "fewshot" else [])
        means.append(
            g.groupby(keys, as_index=False)
            .agg(r2=("r2", "mean"), mape_pct=("mape_pct", "mean"),
                 median_ape_pct=("median_ape_pct", "mean"),
                 level_free_mape_pct=("level_free_mape_pct", "mean"),
                 n_train=("n_train", "mean"), n_test=("n_test", "sum"),
                 seconds=("seconds", "sum"))
            .assign(split=f"{kind}:mean")
        )
    return pd.concat([table, *means], ignore_index=True) if means else table
