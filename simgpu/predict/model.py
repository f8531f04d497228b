"""Random-forest predictor of GEMM runtime and average power, with a cache on disk.

Two kinds: ``"forest"`` learns log(time) from the configuration and device figures alone;
``"forest+physics"`` also sees the analytical model's figures and learns the log of the ratio
measured / analytical time (and measured / analytical power), so what it learns is the
correction to a physical model rather than the whole runtime. Power is learned from the rows
that have it; rows without power (most published data) only teach runtime. When every training
row has power, one multi-output forest learns both (targets standardised). The forest on
analytical features is one forest per kernel family (library, register-blocked, tiled, naive)
when the training data holds several (:data:`FAMILY_MIN_ROWS`).

Uncertainty: the spread (standard deviation) of the individual trees' predictions.
scikit-learn grows the trees; they predict as arrays (:mod:`simgpu.predict.trees`, the same
numbers as scikit-learn's own ``predict``). Trained models are cached under ``$SIMGPU_CACHE``
(default ``~/.cache/simgpu``) in ``predict/<key>.npz``, a file of numbers that loads without
running anything it holds (:mod:`simgpu.predict.cache`), where the key hashes the training
data, the settings, the sources of the analytical model and the predictor with the device
files, and the library versions; a change of any of them trains a new model.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import RandomForestRegressor

from simgpu import catalogue
from simgpu.calibrate import gemm_rows
from simgpu.devices.registry import models_dir
from simgpu.errors import DatasetError
from simgpu.io import code_fingerprint
from simgpu.predict import cache
from simgpu.predict import features as feat
from simgpu.predict.cache import CacheFileError
from simgpu.predict.fewshot import FEW_SHOT_ROWS, Shots
from simgpu.predict.trees import ARRAYS, TreeArrays, TreeError

#: Bump when features or targets change, so cached models are retrained.
MODEL_VERSION = 13
#: The environment variable naming the cache's root folder.
CACHE_ENV = cache.CACHE_ENV
KINDS = ("forest", "forest+physics")


class OutOfRangeWarning(UserWarning):
    """A prediction's features lie outside the range the model was trained on."""


class CacheWarning(UserWarning):
    """A cache file could not be used (it is replaced) or the forest was not cached."""


@dataclass(frozen=True)
class Settings:
    """Forest settings. The defaults of ``min_samples_leaf`` and ``max_features`` are what inner
    cross-validation (:mod:`simgpu.predict.tuning`, ``simgpu predict evaluate``) chose for the
    forest on analytical features on 6 of the 7 random and held-out-size splits of the H100
    calibration run 20261122T154403Z, NeuSight, GPPerf and UCI SGEMM (GPPerf's random split
    chose leaves of 8): leaves of 1 row, half the features per split."""

    kind: str = "forest+physics"
    n_estimators: int = 100
    min_samples_leaf: int = 1
    max_features: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DatasetError(f"predictor kind {self.kind!r} unknown, expected one of {KINDS}")
        for name, low, high in (("n_estimators", 1, None), ("min_samples_leaf", 1, None),
                                ("seed", 0, 2**32 - 1)):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= low
                    and (high is None or v <= high)):
                raise DatasetError(f"predictor setting {name} = {v!r}: expected an integer"
                                   f" from {low}" + (f" to {high}" if high else ""))
        mf = self.max_features
        if not (isinstance(mf, (int, float)) and not isinstance(mf, bool) and 0 < mf <= 1):
            raise DatasetError(f"predictor setting max_features = {mf!r}: expected a fraction"
                               " in (0, 1]")


def _forest(s: Settings) -> Any:
    return RandomForestRegressor(
        n_estimators=s.n_estimators,
        min_samples_leaf=s.min_samples_leaf,
        max_features=s.max_features,
        random_state=s.seed,
        n_jobs=-1,
    )


#: In the forest on analytical features, a kernel family (simgpu.catalogue.FAMILIES: library,
#: regblock, tiled, naive) with at least this many training rows gets a forest of its own. What
#: the analytical model misses differs in kind between families: for library calls the host's
#: pace and the library's choice of kernel, for hand-written SIMT kernels a steady inefficiency
#: of the inner loop. One forest over all families shares leaves between them: in run
#: 20261122T154403Z the trees put a held-out 256^3 sgemm_tiled point (measured 11 us) in leaves
#: with cuBLAS and register-blocked rows (measured / analytical 2-3) about as often as with its
#: own family's, and predicted it at 16-21 us (its family's forest: 12 us). The plain forest
#: keeps one forest: it learns the whole runtime, whose growth with size the families share
#: (split by family, its error on that run's held-out sizes went from 33% to 37%).
#: assumption: 10 rows (5 to 20 give the same error on that run's held-out sizes within 0.1
#: point; 40 gives 0.4 more).
FAMILY_MIN_ROWS = 10
#: The forest over every family: for families with fewer rows, and ones not in the training data
#: (trained only when some family lacks a forest of its own).
ALL = "all"


def harness_floors(df: Any) -> dict[str, float]:
    """The harness's floor for a library call, per device and dtype ("<device>|<dtype>"): the
    shortest small library call of the training rows, as ``simgpu fit`` finds it for a device
    file (:func:`simgpu.calibrate.gemm_rows.library_floors`). A harness times no call shorter:
    the forest on analytical features learns the ratio to the larger of the analytical time and
    this floor, so that the host's pace is the harness's, not the GPU's."""
    return {f"{device}|{dtype}": float(t)
            for (device, dtype), t in gemm_rows.library_floors(df)["time_s"].items()}


def families(df: Any) -> np.ndarray:
    """Each row's kernel family."""
    return np.array([catalogue.family_of(feat.kernel_name(k)) for k in df["kernel"]], dtype=object)


class _Part:
    """The runtime (and power) forest of one family, or of all of them. scikit-learn grows the
    trees; they are kept, and predict, as arrays (:class:`~simgpu.predict.trees.TreeArrays`)."""

    def __init__(self) -> None:
        self.varying: np.ndarray = np.zeros(0, dtype=bool)  # the columns the trees see
        self.time_trees: TreeArrays | None = None
        self.power_trees: TreeArrays | None = None
        self.joint = False  # one forest for both targets
        self.power_scale = (0.0, 1.0)
        self.time_scale = (0.0, 1.0)

    def fit(self, s: Settings, Xv: np.ndarray, yt: np.ndarray, yp: np.ndarray,
            weights: np.ndarray | None) -> _Part:
        """``yp``: the power target, NaN where a row has no power."""
        # A column constant over the training rows (a one-GPU dataset's device figures) cannot
        # split a node; left in, it would only dilute the random choice of features per split.
        self.varying = Xv.max(axis=0) > Xv.min(axis=0)
        if not self.varying.any():
            # rows that all look alike: trees of one leaf (the mean) on any one column
            self.varying[:1] = True
        Xv = Xv[:, self.varying]
        has_p = np.isfinite(yp)
        if has_p.all():
            self.time_scale = (float(yt.mean()), float(yt.std() or 1.0))
            self.power_scale = (float(yp.mean()), float(yp.std() or 1.0))
            Y = np.column_stack([(yt - self.time_scale[0]) / self.time_scale[1],
                                 (yp - self.power_scale[0]) / self.power_scale[1]])
            self.time_trees = TreeArrays.from_sklearn(
                _forest(s).fit(Xv, Y, sample_weight=weights))
            self.joint = True
            return self
        self.time_trees = TreeArrays.from_sklearn(_forest(s).fit(Xv, yt, sample_weight=weights))
        if has_p.sum() >= 10:
            w = None if weights is None else weights[has_p]
            self.power_trees = TreeArrays.from_sklearn(
                _forest(s).fit(Xv[has_p], yp[has_p], sample_weight=w))
        return self

    def trees(self, Xv: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Every tree's (time, power) targets, shape (trees, rows); power None without."""
        assert self.time_trees is not None
        Xv = Xv[:, self.varying]
        trees = self.time_trees.predict(Xv)
        if self.joint:
            return (trees[:, :, 0] * self.time_scale[1] + self.time_scale[0],
                    trees[:, :, 1] * self.power_scale[1] + self.power_scale[0])
        p_tr = self.power_trees.predict(Xv) if self.power_trees is not None else None
        return trees, p_tr

    # the cache file (simgpu.predict.cache) ---------------------------------------------------
    def to_file(self, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """This part's entry of ``meta.json`` and its arrays, named ``<name>.<what>``."""
        meta: dict[str, Any] = {"joint": self.joint, "time_scale": list(self.time_scale),
                                "power_scale": list(self.power_scale), "trees": {}}
        arrays = {f"{name}.varying": self.varying}
        for what, t in (("time", self.time_trees), ("power", self.power_trees)):
            if t is None:
                continue
            meta["trees"][what] = {"n_features": t.n_features, "max_depth": t.max_depth}
            arrays.update({f"{name}.{what}.{k}": v for k, v in t.arrays().items()})
        return meta, arrays

    @classmethod
    def from_file(cls, name: str, meta: Any, arrays: dict[str, np.ndarray],
                  n_columns: int) -> _Part:
        """The part that :meth:`to_file` wrote; a CacheFileError where the file disagrees."""
        part = cls()
        if not isinstance(meta, dict) or not isinstance(meta.get("trees"), dict):
            raise CacheFileError(f"part {name!r}: no trees")
        part.joint = meta.get("joint") is True
        for attr in ("time_scale", "power_scale"):
            pair = meta.get(attr)
            if not (isinstance(pair, list) and len(pair) == 2 and all(
                    isinstance(v, (int, float)) and np.isfinite(v) for v in pair)):
                raise CacheFileError(f"part {name!r}: {attr} {str(pair)[:40]}")
            setattr(part, attr, (float(pair[0]), float(pair[1])))
        varying = arrays.get(f"{name}.varying")
        if varying is None or varying.dtype != bool or varying.shape != (n_columns,):
            raise CacheFileError(f"part {name!r}: its columns do not match the forest's")
        part.varying = varying
        trees = meta["trees"]
        if set(trees) - {"time", "power"} or "time" not in trees or (
                part.joint and "power" in trees):
            raise CacheFileError(f"part {name!r}: trees {sorted(map(str, trees))}")
        for what, info in trees.items():
            if not isinstance(info, dict):
                raise CacheFileError(f"part {name!r}: {what} trees")
            try:
                t = TreeArrays.from_arrays(
                    {k: arrays.get(f"{name}.{what}.{k}") for k in ARRAYS},  # type: ignore[misc]
                    info.get("n_features"), info.get("max_depth"))  # type: ignore[arg-type]
            except (TreeError, AttributeError) as exc:
                raise CacheFileError(f"part {name!r}, {what} trees: {exc}") from None
            outputs = 2 if (part.joint and what == "time") else 1
            if t.n_features != int(varying.sum()) or t.n_outputs != outputs:
                raise CacheFileError(f"part {name!r}, {what} trees: {t.n_features} features and"
                                     f" {t.n_outputs} outputs, expected {int(varying.sum())}"
                                     f" and {outputs}")
            setattr(part, f"{what}_trees", t)
        return part


class GemmForest:
    """A trained runtime (and, with power data, power) forest; on analytical features one per
    kernel family with :data:`FAMILY_MIN_ROWS` rows, and one over all rows for the others."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.columns: list[str] = []
        self.lo: np.ndarray = np.zeros(0)
        self.hi: np.ndarray = np.zeros(0)
        self.parts: dict[str, _Part] = {}
        self.n_train = 0
        self.n_power = 0
        self.devices: list[str] = []
        #: training rows per GPU and dataset, those the forest learned from
        self.rows: dict[str, dict[str, int]] = {}
        #: GPUs with fewer than FEW_SHOT_ROWS rows: their rows correct the forest instead
        self.shots: dict[str, Shots] = {}
        #: "<device>|<dtype>": the harness's floor for a library call, s (harness_floors)
        self.floors: dict[str, float] = {}

    # the cache file (simgpu.predict.cache) ---------------------------------------------------
    def to_file(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``meta.json``'s description of this forest and its arrays (numbers only)."""
        meta: dict[str, Any] = {
            "settings": asdict(self.settings), "columns": list(self.columns),
            "n_train": self.n_train, "n_power": self.n_power, "devices": list(self.devices),
            "rows": self.rows, "shots": {d: c.to_dict() for d, c in self.shots.items()},
            "floors": self.floors,
            "parts": {},
        }
        arrays: dict[str, np.ndarray] = {"lo": self.lo, "hi": self.hi}
        for name, part in self.parts.items():
            meta["parts"][name], part_arrays = part.to_file(name)
            arrays.update(part_arrays)
        return meta, arrays

    @classmethod
    def from_file(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> GemmForest:
        """The forest :meth:`to_file` described; a CacheFileError where the file disagrees with
        itself or with what a forest is."""
        s = meta.get("settings")
        if not isinstance(s, dict) or set(s) != {f.name for f in fields(Settings)}:
            raise CacheFileError(f"settings {str(s)[:80]}")
        try:
            settings = Settings(**s)
        except (DatasetError, TypeError) as exc:
            raise CacheFileError(f"settings: {exc}") from None
        if asdict(settings) != s:
            raise CacheFileError(f"settings {str(s)[:80]}")
        f = cls(settings)
        columns = meta.get("columns")
        if not (isinstance(columns, list) and columns and all(isinstance(c, str)
                                                                for c in columns)):
            raise CacheFileError("no feature columns")
        f.columns = columns
        for name in ("lo", "hi"):
            a = arrays.get(name)
            if a is None or a.dtype != np.float64 or a.shape != (len(columns),):
                raise CacheFileError(f"array {name!r} does not match the columns")
            setattr(f, name, a)
        for name in ("n_train", "n_power"):
            value = meta.get(name)
            if not (isinstance(value, int) and value >= 0):
                raise CacheFileError(f"{name} {value!r}")
            setattr(f, name, value)
        devices = meta.get("devices")
        if not (isinstance(devices, list) and all(isinstance(d, str) for d in devices)):
            raise CacheFileError("devices")
        f.devices = devices
        rows = meta.get("rows")
        if not (isinstance(rows, dict) and all(
                isinstance(d, str) and isinstance(c, dict) and all(
                    isinstance(k, str) and isinstance(n, int) and n > 0 for k, n in c.items())
                for d, c in rows.items())):
            raise CacheFileError(f"rows {str(rows)[:80]}")
        f.rows = rows
        floors = meta.get("floors")
        if not (isinstance(floors, dict) and all(
                isinstance(k, str) and isinstance(v, float) and 0 < v < 3600
                for k, v in floors.items())):
            raise CacheFileError(f"floors {str(floors)[:80]}")
        f.floors = floors
        shots = meta.get("shots")
        if not isinstance(shots, dict):
            raise CacheFileError(f"shots {str(shots)[:80]}")
        try:
            f.shots = {str(d): Shots.from_dict(c) for d, c in shots.items()}
        except DatasetError as exc:
            raise CacheFileError(str(exc)) from None
        parts = meta.get("parts")
        if not isinstance(parts, dict) or not parts or not set(parts) <= {
                *catalogue.FAMILIES, ALL}:
            raise CacheFileError(f"parts {str(parts)[:80]}")
        if ALL not in parts and set(parts) != set(catalogue.FAMILIES):
            raise CacheFileError(f"parts {sorted(parts)}: a family has no forest")
        for name, part_meta in parts.items():
            f.parts[name] = _Part.from_file(name, part_meta, arrays, len(columns))
        return f

    # targets -----------------------------------------------------------------------------
    def _time_target(self, df: Any, est: Any) -> np.ndarray:
        y = np.log(df["time_s"].to_numpy(dtype=float))
        if self.settings.kind == "forest+physics":
            y = y - np.log(est["time_s"].to_numpy(dtype=float))
        return np.asarray(y, dtype=float)

    def _power_target(self, df: Any, est: Any) -> np.ndarray:
        y = df["power_W"].to_numpy(dtype=float)
        if self.settings.kind == "forest+physics":
            y = np.log(y / est["power_W"].to_numpy(dtype=float))
        return np.asarray(y, dtype=float)

    # fit / predict -------------------------------------------------------------------------
    def fit(
        self, df: Any, weights: np.ndarray | None = None, prepared: tuple[Any, Any] | None = None
    ) -> GemmForest:
        """Train on a GEMM-schema frame; ``prepared``: its ``features.build(df)`` if already
        computed (index aligned with ``df``)."""
        X, est = prepared if prepared is not None else feat.build(df)
        if not self.floors:
            self.floors = harness_floors(df)
        fam = families(df)
        X, est = self._floored(df, X, est, fam)
        counts = df["device"].value_counts()
        few = [str(d) for d, n in counts.items() if n < FEW_SHOT_ROWS]
        if few and len(few) < len(counts):
            # GPUs with a few rows: the forest learns from the others and their rows correct it
            # (simgpu.predict.fewshot)
            keep = ~df["device"].isin(few).to_numpy()
            self.fit(df[keep].reset_index(drop=True),
                     None if weights is None else weights[keep],
                     prepared=(X[keep].reset_index(drop=True), est[keep].reset_index(drop=True)))
            for d in few:
                rows = (df["device"] == d).to_numpy()
                pred = self.predict(df[rows].reset_index(drop=True), warn=False, prepared=(
                    X[rows].reset_index(drop=True), est[rows].reset_index(drop=True)))
                self.shots[d] = Shots.fit(pred["time_s"], df["time_s"][rows], fam[rows])
            return self
        unfit = ~np.isfinite(est["time_s"].to_numpy(dtype=float))
        if self.settings.kind == "forest+physics" and unfit.any():
            i = int(np.flatnonzero(unfit)[0])
            raise DatasetError(
                f"{int(unfit.sum())} training row(s) describe kernels that cannot run on their"
                f" device (threads, registers or shared memory per block over the limit), e.g."
                f" row {i}: {df.iloc[i][['device', 'M', 'N', 'K', 'tile_m', 'tile_n']].to_dict()}"
            )
        self.columns = feat.columns(self.settings.kind, X)
        Xv = X[self.columns].to_numpy(dtype=float)
        # the training range predict() warns about
        self.lo, self.hi = Xv.min(axis=0), Xv.max(axis=0)
        yt = self._time_target(df, est)
        has_p = df["power_W"].notna().to_numpy()
        yp = np.full(len(df), np.nan)
        if has_p.any():
            yp[has_p] = self._power_target(df[has_p], est[has_p])
        self.n_train, self.n_power = len(df), int(has_p.sum())
        self.devices = sorted(df["device"].unique())
        self.rows = {str(d): {str(k): int(n) for k, n in g["dataset"].value_counts().items()}
                     for d, g in df.groupby("device", sort=True)}
        names, counts = np.unique(fam, return_counts=True)
        own = [str(n) for n, c in zip(names, counts, strict=True) if c >= FAMILY_MIN_ROWS]
        by_family = self.settings.kind == "forest+physics" and len(names) > 1
        subsets = {n: fam == n for n in own} if by_family else {}
        # the forest over all families: alone, or for the families without a forest of their
        # own (fewer rows, or none: a query may bring a family that training did not have)
        if set(subsets) != set(catalogue.FAMILIES):
            subsets[ALL] = np.ones(len(df), dtype=bool)
        for name, rows in subsets.items():
            w = None if weights is None else weights[rows]
            self.parts[name] = _Part().fit(self.settings, Xv[rows], yt[rows], yp[rows], w)
        return self

    def _floored(self, df: Any, X: Any, est: Any, fam: np.ndarray) -> tuple[Any, Any]:
        """The analytical time of each library call raised to its harness floor
        (:func:`harness_floors`), in the estimate and in the ``log_an_time`` feature."""
        if not self.floors:
            return X, est
        keys = df["device"].astype(str) + "|" + df["dtype"].astype(str)
        # a GPU whose harness the training rows do not show: the median of the others' floors
        # for the dtype (assumption: its calls are timed like the training GPUs')
        other = ("*|" + df["dtype"].astype(str)).map(self._median_floors())
        floor = keys.map(self.floors).fillna(other).astype(float).fillna(0.0).to_numpy()
        floor = np.where(fam == "library", floor, 0.0)
        an = est["time_s"].to_numpy(dtype=float)
        if not (floor > an).any():
            return X, est
        est = est.assign(time_s=np.maximum(an, floor))
        if "log_an_time" in X.columns:
            with np.errstate(divide="ignore"):
                X = X.assign(log_an_time=np.log(est["time_s"].to_numpy(dtype=float)))
        return X, est

    def _median_floors(self) -> dict[str, float]:
        """``"*|<dtype>"``: the median floor of the training GPUs for each dtype."""
        by_dtype: dict[str, list[float]] = {}
        for key, v in self.floors.items():
            by_dtype.setdefault(key.split("|", 1)[1], []).append(v)
        return {f"*|{d}": float(np.median(v)) for d, v in by_dtype.items()}

    def basis(self, device: str) -> str:
        """What a prediction for ``device`` rests on, in words: its own rows in the forest, a
        few rows correcting a forest of other GPUs, or none (zero-shot)."""
        others = sum(sum(c.values()) for d, c in self.rows.items() if d != device)
        n_others = len([d for d in self.rows if d != device])
        if device in self.rows:
            own = self.rows[device]
            sets = ", ".join(f"{n} {k}" for k, n in sorted(own.items()))
            return (f"learned from {sum(own.values())} rows of {device} ({sets})"
                    + (f" and {others} rows of {n_others} other GPU(s)" if n_others else ""))
        if device in self.shots:
            return (f"few-shot: {self.shots[device].rows} rows of {device} correct a forest of"
                    f" {others} rows of {n_others} other GPU(s)")
        return (f"zero-shot: no rows of {device}; from its device file's analytical figures"
                f" and {others} rows of {n_others} other GPU(s)")

    def predict(
        self, df: Any, *, warn: bool = True, prepared: tuple[Any, Any] | None = None
    ) -> Any:
        """``time_s, time_s_spread, power_W, power_W_spread, extrapolated, basis`` per row,
        plus the analytical estimate as ``an_time_s`` and ``an_power_W``. ``basis`` says what
        the row's prediction rests on (:meth:`basis`)."""
        X, est = prepared if prepared is not None else feat.build(df)
        fams = families(df)
        X, est = self._floored(df, X, est, fams)
        # dataset-specific parameters the query lacks take 0 (their "not set" value)
        Xv = X.reindex(columns=self.columns, fill_value=0.0).to_numpy(dtype=float)
        outside = (Xv < self.lo) | (Xv > self.hi)
        bad_rows = outside.any(axis=1)
        if warn and bad_rows.any():
            names = [c for c, o in zip(self.columns, outside.any(axis=0), strict=True) if o]
            warnings.warn(
                f"{int(bad_rows.sum())} of {len(df)} point(s) outside the training range of"
                f" {names}: the forest extrapolates there (it predicts the nearest training"
                " leaves)",
                OutOfRangeWarning,
                stacklevel=2,
            )
        an_t = est["time_s"].to_numpy(dtype=float)
        an_p = est["power_W"].to_numpy(dtype=float)
        physics = self.settings.kind == "forest+physics"
        # every row's part: its family's forest, or the one over all families
        part = np.array([f if f in self.parts else ALL for f in fams], dtype=object)
        n = len(df)
        t_mean, t_sd = np.full(n, np.nan), np.full(n, np.nan)
        p_mean, p_sd = np.full(n, np.nan), np.full(n, np.nan)
        learned_p = np.zeros(n, dtype=bool)
        for name in np.unique(part):
            rows = part == name
            t_tr, p_tr = self.parts[str(name)].trees(Xv[rows])
            if p_tr is None and name != ALL and ALL in self.parts:
                p_tr = self.parts[ALL].trees(Xv[rows])[1]  # power from the family-wide forest
            base_t = an_t[rows] if physics else 1.0
            t_mean[rows] = np.exp(t_tr.mean(axis=0)) * base_t
            t_sd[rows] = (np.exp(t_tr) * base_t).std(axis=0)
            if p_tr is not None:
                p_all = np.exp(p_tr) * an_p[rows] if physics else p_tr
                p_mean[rows] = (np.exp(p_tr.mean(axis=0)) * an_p[rows] if physics
                                else p_tr.mean(axis=0))
                p_sd[rows] = p_all.std(axis=0)
                learned_p[rows] = True
        devs = df["device"].astype(str).to_numpy()
        for d, corr in self.shots.items():
            rows = devs == d
            if rows.any():
                factor = corr.apply(t_mean[rows], fams[rows]) / t_mean[rows]
                t_mean[rows] *= factor
                t_sd[rows] *= factor
        out = pd.DataFrame(index=df.index)
        out["time_s"] = t_mean
        out["time_s_spread"] = t_sd
        out["basis"] = [self.basis(d) for d in devs]
        # without a learned power: the analytical view's own, whose energies per event were
        # fitted to that model's event counts (simgpu.calibrate.fit.fit_gemm_energies)
        out["power_W"] = np.where(learned_p, p_mean, an_p)
        out["power_W_spread"] = p_sd
        out["power_source"] = np.where(
            learned_p, "learned", "analytical (no measured power in the training data)")
        out["energy_J"] = out["power_W"] * out["time_s"]
        out["extrapolated"] = bad_rows
        out["an_time_s"] = an_t
        out["an_power_W"] = an_p
        return out


# cache ------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The predictor's cache folder (:func:`simgpu.predict.cache.cache_dir`)."""
    return cache.cache_dir()


def data_hash(df: Any) -> str:
    """Hash of a training frame: its columns and every value."""
    h = hashlib.sha256()
    h.update(",".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def cache_key(df: Any, settings: Settings) -> str:
    """Hash of everything a trained forest depends on: the training data, the settings, the
    code that computes its features and targets (the analytical model, the predictor, the bank
    rule the analytical model shares with the simulator, the rows' analytical estimate in
    simgpu.calibrate.gemm_rows, the kernel families of the catalogue, and the device files whose
    figures and energies feed them) and the library versions."""
    blob = json.dumps(
        {
            "data": data_hash(df),
            "settings": asdict(settings),
            "model_version": MODEL_VERSION,
            "code": code_fingerprint(gemm_rows.__file__, catalogue.__file__,
                                     packages=("analytical", "arch", "predict"),
                                     models=models_dir()),
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "python": sys.version_info[:2],
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _weights(df: Any) -> np.ndarray:
    """Each dataset weighs the same in training, whatever its row count."""
    counts = df["dataset"].map(df["dataset"].value_counts()).to_numpy(dtype=float)
    w = 1.0 / counts
    return np.asarray(w * len(df) / w.sum(), dtype=float)


def _warn(log: Any, message: str) -> None:
    if log is not None:
        log(f"warning: {message}")
    else:
        warnings.warn(message, CacheWarning, stacklevel=3)


def _load(path: Path, key: str, log: Any) -> GemmForest | None:
    """The cached forest at ``path``, or None (nothing there, or a file that does not load:
    said in one line, and trained again)."""
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        meta, arrays = cache.read(path)
        if meta.get("key") != key:
            raise CacheFileError(f"it holds key {str(meta.get('key'))[:30]!r}")
        model = GemmForest.from_file(meta.get("forest") or {}, arrays)
    except CacheFileError as exc:
        _warn(log, f"predictor cache file {path} is not usable ({exc}); training again")
        return None
    cache.touch(path)
    return model


def _save(path: Path, model: GemmForest, key: str, info: dict[str, Any],
          data: Sequence[str] | None, df: Any, log: Any) -> None:
    forest_meta, arrays = model.to_file()
    meta = {
        "format": cache.FORMAT, "version": cache.FORMAT_VERSION, "key": key,
        "forest": forest_meta,
        "trained_on": {"data": [str(d) for d in data] if data else None, "rows": len(df),
                       "datasets": sorted(map(str, df["dataset"].unique())),
                       "devices": list(model.devices)},
        "train_s": round(float(info["train_s"]), 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    limit = cache.limit_bytes()
    if limit <= 0:
        return
    cache.write(path, meta, arrays)
    size = path.stat().st_size
    if size > limit:
        path.unlink(missing_ok=True)
        _warn(log, f"not cached: the forest takes {size / 1e6:.0f} MB, over the cache's limit of"
                   f" {limit / 1e6:g} MB (${cache.LIMIT_ENV})")
        return
    for e in cache.evict(keep=path, limit=limit):
        if log is not None:
            log(f"cache over {limit / 1e6:g} MB: removed {e.path.name} ({e.bytes / 1e6:.0f} MB,"
                " least recently used)")


def train(
    df: Any, settings: Settings | None = None, *, use_cache: bool = True, log: Any = None,
    data: Sequence[str] | None = None,
) -> tuple[GemmForest, dict[str, Any]]:
    """A trained forest for this data and these settings, from the cache when it is there.

    ``data``: what ``df`` was read from (recorded in the cache file, for ``simgpu predict
    cache``). Returns the model and an info dict (cache key, path, whether it was cached,
    seconds). A cache file that does not load is reported (``log``, else a
    :class:`CacheWarning`) and replaced.
    """
    settings = settings or Settings()
    key = cache_key(df, settings)
    path = cache.cache_dir() / f"{key}{cache.SUFFIX}"
    info: dict[str, Any] = {"cache_key": key, "cache_path": str(path), "cached": False}
    if use_cache:
        cache.usable_dir()  # a clear error now, not after training
        cache.limit_bytes()
        model = _load(path, key, log)
        if model is not None:
            info["cached"] = True
            info["train_s"] = 0.0
            return model, info
    if log is not None:
        log(f"training the {settings.kind} GEMM predictor on {len(df)} rows"
            f" ({', '.join(sorted(df['dataset'].unique()))})"
            + (f"; cached afterwards in {path}" if use_cache else ""))
    t0 = time.perf_counter()
    multi = df["dataset"].nunique() > 1
    model = GemmForest(settings).fit(df, _weights(df) if multi else None)
    info["train_s"] = time.perf_counter() - t0
    if use_cache:
        _save(path, model, key, info, data, df, log)
    return model, info
