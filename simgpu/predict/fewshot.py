"""Few-shot adaptation: a handful of measured rows of a GPU correct the predictions of a model
that never saw that GPU.

A forest trained on other GPUs predicts a new GPU through the analytical features of its device
file (zero-shot). Its errors there are mostly a level (the GPU runs its library's kernels at a
steadier or lower clock, or its host paces the short calls) and a drift with the length of the
call (a power- or heat-limited card slows under long GEMMs). K measured rows of the new GPU fit
both: the log of measured / predicted time as a line in the log of the predicted time, a robust
(Huber) fit from :data:`SLOPE_MIN_ROWS` rows, the median alone below. The shots never enter the
forest: there, a few rows among tens of thousands teach it little (NeuSight's P100, one draw: 16
shots weighted as a quarter of one GPU's rows took the error from 22.3% to 20.5%, where this
correction gives 14.9%).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simgpu.errors import DatasetError

__all__ = ["FAMILY_SHOTS", "FEW_SHOT_K", "FEW_SHOT_ROWS", "SLOPE_LIMIT", "SLOPE_MIN_ROWS",
           "Correction", "Shots"]

#: The shot counts ``simgpu predict evaluate`` reports (0: zero-shot).
FEW_SHOT_K = (0, 4, 16, 64)
#: A GPU with fewer training rows than this is adapted by a :class:`Correction` of a forest
#: trained on the other GPUs instead of entering the forest. assumption: the largest shot count
#: evaluated; our H100 run's forest learns its held-out sizes from 183 rows.
FEW_SHOT_ROWS = 64
#: Fewest shots for which the correction has a slope; fewer give the median ratio only.
#: assumption: with 4 shots the slope is noise (NeuSight, 5 draws: level 21.1%, line 21.1%).
SLOPE_MIN_ROWS = 8
#: Largest |slope| of the correction: a line through a few short calls must not extrapolate to
#: a factor of ten at the longest. assumption: 0.5 (the P4, the most drifting NeuSight GPU, has
#: a median ratio rising by about 0.4 in log over four decades of time).
SLOPE_LIMIT = 0.5


@dataclass(frozen=True)
class Correction:
    """``measured = predicted * exp(level + slope * (log(predicted) - center))``, fitted on
    ``rows`` shots."""

    level: float
    slope: float
    center: float
    rows: int

    @classmethod
    def fit(cls, predicted: Any, measured: Any) -> Correction:
        """The correction of ``predicted`` that best matches ``measured`` (seconds, > 0)."""
        p = np.asarray(predicted, dtype=float)
        y = np.asarray(measured, dtype=float)
        ok = np.isfinite(p) & np.isfinite(y) & (p > 0) & (y > 0)
        if p.shape != y.shape or not ok.any():
            raise DatasetError(f"few-shot correction: {int(ok.sum())} usable row(s) of"
                               f" {p.size}; expected predicted and measured times > 0")
        x, r = np.log(p[ok]), np.log(y[ok] / p[ok])
        center = float(np.mean(x))
        if r.size < SLOPE_MIN_ROWS or np.ptp(x) == 0:
            return cls(float(np.median(r)), 0.0, center, int(r.size))
        # lazy: scikit-learn loads only when a correction has a slope to fit
        from sklearn.linear_model import HuberRegressor

        h = HuberRegressor(alpha=1e-3).fit((x - center)[:, None], r)
        slope = float(np.clip(h.coef_[0], -SLOPE_LIMIT, SLOPE_LIMIT))
        level = float(np.median(r - slope * (x - center)))
        return cls(level, slope, center, int(r.size))

    def apply(self, predicted: Any) -> np.ndarray:
        p = np.asarray(predicted, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(
                p * np.exp(self.level + self.slope * (np.log(p) - self.center)), dtype=float)

    def to_dict(self) -> dict[str, float | int]:
        return {"level": self.level, "slope": self.slope, "center": self.center,
                "rows": self.rows}

    @classmethod
    def from_dict(cls, d: Any) -> Correction:
        """The correction :meth:`to_dict` wrote; a DatasetError where it is not one."""
        keys = {"level", "slope", "center", "rows"}
        if not (isinstance(d, dict) and set(d) == keys and all(
                isinstance(d[k], (int, float)) and not isinstance(d[k], bool)
                and np.isfinite(d[k]) for k in keys) and d["rows"] >= 1
                and abs(d["slope"]) <= SLOPE_LIMIT):
            raise DatasetError(f"few-shot correction {str(d)[:80]}: expected level, slope (at"
                               f" most {SLOPE_LIMIT} in size), center and rows >= 1")
        return cls(float(d["level"]), float(d["slope"]), float(d["center"]), int(d["rows"]))


#: Fewest shots of one kernel family for the family to get a correction of its own; the other
#: families take the GPU's correction over all its shots. assumption: 4, the fewest for which
#: the median ratio alone is no worse than none on NeuSight's GPUs (21.1% with 4 shots against
#: 21.7% zero-shot, 5 draws).
FAMILY_SHOTS = 4


@dataclass(frozen=True)
class Shots:
    """The corrections of one GPU: one over all its shots, and one per kernel family with at
    least :data:`FAMILY_SHOTS` shots (what the analytical model misses differs between a
    library's calls and hand-written kernels)."""

    all: Correction
    by_family: dict[str, Correction]

    @property
    def rows(self) -> int:
        return self.all.rows

    @classmethod
    def fit(cls, predicted: Any, measured: Any, family: Any) -> Shots:
        fam = np.asarray(family, dtype=object)
        p = np.asarray(predicted, dtype=float)
        y = np.asarray(measured, dtype=float)
        by = {}
        for f in sorted(set(fam.tolist())):
            rows = fam == f
            if rows.sum() >= FAMILY_SHOTS and rows.sum() < len(fam):
                by[str(f)] = Correction.fit(p[rows], y[rows])
        return cls(Correction.fit(p, y), by)

    def apply(self, predicted: Any, family: Any) -> np.ndarray:
        p = np.asarray(predicted, dtype=float)
        fam = np.asarray(family, dtype=object)
        out = self.all.apply(p)
        for f, c in self.by_family.items():
            rows = fam == f
            out[rows] = c.apply(p[rows])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"all": self.all.to_dict(),
                "by_family": {f: c.to_dict() for f, c in self.by_family.items()}}

    @classmethod
    def from_dict(cls, d: Any) -> Shots:
        """The corrections :meth:`to_dict` wrote; a DatasetError where they are not."""
        if not (isinstance(d, dict) and set(d) == {"all", "by_family"}
                and isinstance(d["by_family"], dict)):
            raise DatasetError(f"few-shot corrections {str(d)[:80]}: expected all and by_family")
        return cls(Correction.from_dict(d["all"]),
                   {str(f): Correction.from_dict(c) for f, c in d["by_family"].items()})
