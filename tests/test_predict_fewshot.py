"""Few-shot adaptation of the learned view (simgpu.predict.fewshot) and what a prediction says
it rests on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simgpu.cli import main
from simgpu.errors import DatasetError
from simgpu.predict import datasets, evaluate, fewshot, model
from simgpu.predict.fewshot import Correction, Shots

SMALL = model.Settings(n_estimators=20, seed=3)
pytestmark = pytest.mark.usefixtures("predict_cache")


def _other_gpu(calib: pd.DataFrame, rows: int, factor: float) -> pd.DataFrame:
    """``rows`` rows of the H100 run as if measured on an H100 PCIe ``factor`` times slower."""
    part = calib.iloc[np.random.default_rng(1).permutation(len(calib))[:rows]]
    return part.assign(device="h100-pcie", time_s=part["time_s"] * factor, power_W=np.nan)


def test_correction_recovers_a_level_and_a_drift() -> None:
    rng = np.random.default_rng(0)
    pred = np.exp(rng.uniform(np.log(1e-5), np.log(1e-1), 40))
    center = float(np.mean(np.log(pred)))
    meas = pred * np.exp(0.3 + 0.2 * (np.log(pred) - center) + rng.normal(0, 0.01, 40))
    c = Correction.fit(pred, meas)
    assert c.rows == 40 and c.level == pytest.approx(0.3, abs=0.02)
    assert c.slope == pytest.approx(0.2, abs=0.02)
    assert np.allclose(c.apply(pred) / meas, 1.0, atol=0.05)
    # too few shots for a slope: the median ratio alone
    few = Correction.fit(pred[:fewshot.SLOPE_MIN_ROWS - 1], meas[:fewshot.SLOPE_MIN_ROWS - 1])
    assert few.slope == 0.0
    assert few.level == pytest.approx(
        np.median(np.log(meas / pred)[:fewshot.SLOPE_MIN_ROWS - 1]))
    # a steep line through the shots is held to the limit
    steep = Correction.fit(pred, pred * np.exp(2.0 * (np.log(pred) - center)))
    assert steep.slope == fewshot.SLOPE_LIMIT


def test_correction_refuses_unusable_rows_and_files() -> None:
    with pytest.raises(DatasetError, match="usable"):
        Correction.fit([0.0, -1.0], [1e-3, 1e-3])
    c = Correction(0.1, -0.2, -7.0, 16)
    assert Correction.from_dict(c.to_dict()) == c
    for bad in ({**c.to_dict(), "slope": 3.0}, {**c.to_dict(), "rows": 0},
                {"level": 0.1}, {**c.to_dict(), "level": float("nan")}):
        with pytest.raises(DatasetError, match="few-shot correction"):
            Correction.from_dict(bad)


def test_a_gpu_with_few_rows_corrects_a_forest_of_the_others(calib: pd.DataFrame) -> None:
    shots = _other_gpu(calib, 20, 2.0)
    both = datasets.validate(pd.concat([calib, shots], ignore_index=True), "two GPUs")
    f = model.GemmForest(SMALL).fit(both)
    alone = model.GemmForest(SMALL)
    alone.floors = dict(f.floors)  # the harness floors of both GPUs' rows, as f has them
    alone.fit(calib)
    # the forest learned from the H100 SXM rows only; the 20 rows fit the correction
    assert f.rows == {"h100-sxm": {"calibration": len(calib)}}
    assert set(f.shots) == {"h100-pcie"} and f.shots["h100-pcie"].rows == 20
    zero = alone.predict(shots, warn=False)["time_s"]
    got = f.predict(shots, warn=False)
    assert np.allclose(got["time_s"], f.shots["h100-pcie"].apply(zero, model.families(shots)),
                       rtol=1e-9)
    # the 2x slower GPU: the correction moves the level by about 2
    assert np.median(got["time_s"] / zero) > 1.5
    sxm = f.predict(calib.head(3), warn=False)
    pd.testing.assert_series_equal(sxm["time_s"], alone.predict(calib.head(3),
                                                                 warn=False)["time_s"])
    assert got["basis"].str.startswith("few-shot: 20 rows of h100-pcie").all()
    assert sxm["basis"].str.startswith(f"learned from {len(calib)} rows of h100-sxm").all()
    assert f.basis("rtx-4090").startswith("zero-shot: no rows of rtx-4090")


def test_cached_forest_keeps_its_rows_and_shots(calib: pd.DataFrame) -> None:
    both = datasets.validate(pd.concat([calib, _other_gpu(calib, 12, 1.5)],
                                       ignore_index=True), "two GPUs")
    first, info = model.train(both, SMALL)
    again, info2 = model.train(both, SMALL)
    assert not info["cached"] and info2["cached"]
    assert again.rows == first.rows and again.shots == first.shots
    q = both.tail(5)
    pd.testing.assert_frame_equal(first.predict(q, warn=False), again.predict(q, warn=False))


def test_few_shot_rows_share_the_test_rows_across_shots() -> None:
    rng = np.random.default_rng(2)
    pred = np.exp(rng.uniform(-12, -3, 200))
    y = 2.0 * pred  # a level error only
    rows = evaluate.few_shot_rows(y, pred, "d", "gpu:x", "m", seed=0, n_model=500)
    assert [r["shots"] for r in rows] == list(fewshot.FEW_SHOT_K)
    assert all(r["split"] == "fewshot:x" and r["n_test"] == 200 - max(fewshot.FEW_SHOT_K)
               for r in rows)
    assert [r["n_train"] for r in rows] == [500 + k for k in fewshot.FEW_SHOT_K]
    assert rows[0]["mape_pct"] == pytest.approx(50.0)
    assert all(r["mape_pct"] < 1e-6 for r in rows[1:])
    # a GPU with too few rows for a pool of shots and a test set has no curve
    small = max(fewshot.FEW_SHOT_K) + evaluate.MIN_ROWS - 1
    assert evaluate.few_shot_rows(y[:small], pred[:small], "d", "gpu:x", "m", seed=0) == []


def test_evaluate_gpu_splits_bring_their_curve(calib: pd.DataFrame) -> None:
    other = _other_gpu(calib, len(calib), 2.0)
    both = datasets.validate(pd.concat([calib, other], ignore_index=True), "two GPUs")
    t = evaluate.evaluate(both, "two", SMALL, kinds={"gpu"})
    assert set(t["split"]) == {"gpu:h100-pcie", "gpu:h100-sxm", "fewshot:h100-pcie",
                               "fewshot:h100-sxm"}
    curve = t[(t["split"] == "fewshot:h100-pcie") & (t["model"] == "forest+physics")]
    err = curve.set_index("shots")["mape_pct"]
    assert list(err.index) == list(fewshot.FEW_SHOT_K)
    # trained on a GPU twice as fast, the forest is about 50% off; 16 shots fix the level
    assert err[0] > 30.0 and err[16] < err[0] / 2


def test_evaluate_refuses_unknown_split_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "evaluate", "--data", "calibration", "--splits", "gpu,bogus"]) == 2
    err = capsys.readouterr().err
    assert "--splits" in err and "bogus" in err and "random, sizes" in err


def test_each_family_with_shots_enough_gets_its_own_level() -> None:
    rng = np.random.default_rng(3)
    pred = np.exp(rng.uniform(-12, -3, 30))
    fam = np.array(["library"] * 20 + ["tiled"] * 6 + ["naive"] * 4, dtype=object)
    factor = np.where(fam == "library", 2.0, np.where(fam == "tiled", 0.5, 1.0))
    s = Shots.fit(pred, pred * factor, fam)
    assert set(s.by_family) == {"library", "tiled", "naive"} and s.rows == 30
    assert np.allclose(s.apply(pred, fam), pred * factor)
    # a family with fewer shots than FAMILY_SHOTS, or none, takes the correction over all
    few = Shots.fit(pred[:23], (pred * factor)[:23], fam[:23])
    assert set(few.by_family) == {"library"}
    assert np.allclose(few.apply(pred[-4:], fam[-4:]), few.all.apply(pred[-4:]))
    assert Shots.from_dict(s.to_dict()) == s
    with pytest.raises(DatasetError, match="few-shot corrections"):
        Shots.from_dict({"all": s.all.to_dict()})
