"""The GEMM predictor: schema errors, adapters, determinism, range warnings, cache, splits, CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simgpu import devices
from simgpu.cli import main
from simgpu.errors import DatasetError
from simgpu.predict import datasets, evaluate, model, predict_gemm, splits, tuning

ROOT = Path(__file__).resolve().parents[1]
SMALL = model.Settings(n_estimators=20, seed=3)
pytestmark = pytest.mark.usefixtures("predict_cache")


def _published(name: str) -> Path:
    path = datasets._resolve(name)
    if not path.exists():
        pytest.skip(f"published dataset {name} not present at {path}")
    return path


# --- schema and errors ------------------------------------------------------------------------


def test_empty_file_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "empty.csv"
    f.write_text("device,dtype,M,N,K,time_s\n")
    with pytest.raises(DatasetError, match=r"empty\.csv.*empty dataset"):
        datasets.load(f)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    f = tmp_path / "nok.csv"
    f.write_text("device,dtype,M,N,time_s\nh100-sxm,fp16,64,64,1e-5\n")
    with pytest.raises(DatasetError, match=r"nok\.csv.*missing column.*'K'"):
        datasets.load(f)


def test_bad_value_names_column_row_and_expectation(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("device,dtype,M,N,K,time_s\nh100-sxm,fp16,64,64,64,1e-5\n"
                 "h100-sxm,fp16,-5,64,64,1e-5\n")
    where = r"bad\.csv: column 'M', row 1 \(line 3 of a CSV\)"
    with pytest.raises(DatasetError,
                       match=where + r": got -5, expected an integer from 1 to 2147483647"):
        datasets.load(f)
    f.write_text("device,dtype,M,N,K,time_s\nh100-sxm,int3,64,64,64,1e-5\n")
    with pytest.raises(DatasetError, match=r"'dtype', row 0 \(line 2 of a CSV\): got 'int3'"):
        datasets.load(f)
    f.write_text("device,dtype,M,N,K,time_s\nh100-sxm,fp16,64,64,64,0\n")
    with pytest.raises(DatasetError, match=r"column 'time_s', row 0 \(line 2 of a CSV\): got 0,"):
        datasets.load(f)


def test_unknown_device_without_figures(tmp_path: Path) -> None:
    f = tmp_path / "gpu.csv"
    f.write_text("device,dtype,M,N,K,time_s\nmystery-gpu,fp32,64,64,64,1e-5\n")
    with pytest.raises(DatasetError, match=r"gpu\.csv: device 'mystery-gpu' is not in models/"
                                           r".*dev_sm_count"):
        datasets.load(f)
    df = datasets.validate(pd.read_csv(f), "query")
    with pytest.raises(DatasetError, match=r"mystery-gpu.*not in models/.*dev_sm_count"):
        datasets.device_params(df)


def test_unreadable_and_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        datasets.load(tmp_path / "nothing.csv")
    f = tmp_path / "bin.parquet"
    f.write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match=r"bin\.parquet: cannot read"):
        datasets.load(f)


# --- adapters -------------------------------------------------------------------------------


def test_calibration_runs_in_schema(calib: pd.DataFrame) -> None:
    assert set(calib["device"]) == {"h100-sxm"}
    assert calib["power_W"].notna().all()
    assert set(calib["dtype"]) == {"fp32", "tf32", "fp16", "bf16"}
    # the run closed as incomplete is marked partial
    assert calib.groupby("run_id")["partial"].first().any()


def test_open_run_reads_its_partial_points(tmp_path: Path) -> None:
    """A run still open keeps its points in .partial/gemm.jsonl (one point record a line)."""
    table = pd.read_csv(ROOT / "calibration" / "h100-sxm" / "20261122T154403Z" / "gemm.csv")
    run = tmp_path / "h100-sxm" / "open-run"
    (run / ".partial").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"device": "h100-sxm", "status": "running"}))
    lines = [json.dumps({"key": str(i), "rows": [row]})
             for i, row in enumerate(table.head(30).to_dict("records"))]
    (run / ".partial" / "gemm.jsonl").write_text("\n".join(lines) + "\n")
    df = datasets.load(run)
    assert df["partial"].all() and len(df) == int(table.head(30)["check_ok"].sum())
    assert np.allclose(df["time_s"], table.head(30)["time_ms"][table.head(30)["check_ok"]] / 1e3)
    (run / ".partial" / "gemm.jsonl").write_text(lines[0] + "\n{broken\n")
    with pytest.raises(DatasetError, match=r"gemm\.jsonl: line 2: not a point record"):
        datasets.load(run)


def test_gpperf_drops_its_power_column() -> None:
    df = datasets.load(_published("gpperf"))
    assert len(df) == 16128
    assert df["power_W"].isna().all()
    assert (df["tile_m"] == 128).all() and (df["device"] == "rtx-4070").all()


def test_neusight_tiles_cover_the_grid() -> None:
    df = datasets.load(_published("neusight"))
    assert df["device"].nunique() == 5
    raw = pd.concat(pd.read_csv(p) for p in sorted(_published("neusight").glob("*.csv")))
    # grid x times the kernel's tile_m covers our M (NeuSight's K column): the mapping is right
    assert np.all(raw["Grid x"].to_numpy() * df["tile_m"].to_numpy() >= df["M"].to_numpy())
    assert np.all(raw["Grid y"].to_numpy() * df["tile_n"].to_numpy() >= df["N"].to_numpy())


def test_neusight_p4_has_gp104s_sms(monkeypatch: pytest.MonkeyPatch) -> None:
    df = datasets.load(_published("neusight"))
    p4 = df[df["device"] == "Tesla P4"].iloc[0]
    assert (p4["dev_sm_count"], p4["dev_fp32_lanes_per_sm"]) == (20, 128)
    monkeypatch.setitem(datasets._NEUSIGHT_SM_FIX, "Tesla P4", (20, 64))
    with pytest.raises(DatasetError, match=r"Tesla P4.*20 SMs x 64 lanes differs.*40 x 64"):
        datasets.load(_published("neusight"))


def test_neusight_clocks_agree_with_their_configs_fp32_peak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    df = datasets.load(_published("neusight"))
    p100 = df[df["device"] == "Tesla P100-PCIE-16GB"].iloc[0]
    assert p100["dev_clock_MHz"] == 1328.0  # its config says 1380, its own peak says 1328
    monkeypatch.delitem(datasets._NEUSIGHT_CLOCK_FIX, "Tesla P100-PCIE-16GB")
    with pytest.raises(DatasetError, match=r"P100.*1380 MHz = 9892 GFLOP/s.*SingleFLOPs is 9519"):
        datasets.load(_published("neusight"))


def test_uci_sample_is_seeded() -> None:
    a = datasets.load(_published("uci-sgemm"), sample=500, seed=1)
    b = datasets.load(_published("uci-sgemm"), sample=500, seed=1)
    assert len(a) == 500 and a.equals(b)
    assert (a["M"] == 2048).all()


# --- model ----------------------------------------------------------------------------------


def test_training_is_deterministic_with_a_seed(calib: pd.DataFrame) -> None:
    one = model.GemmForest(SMALL).fit(calib).predict(calib, warn=False)
    two = model.GemmForest(SMALL).fit(calib).predict(calib, warn=False)
    pd.testing.assert_frame_equal(one, two)
    other = model.GemmForest(model.Settings(n_estimators=20, seed=4)).fit(calib)
    assert not np.allclose(other.predict(calib, warn=False)["time_s"], one["time_s"])


def test_warns_outside_training_range(calib: pd.DataFrame) -> None:
    forest = model.GemmForest(SMALL).fit(calib)
    inside = calib.iloc[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forest.predict(inside)
    far = inside.assign(M=65536, N=65536, K=65536)
    with pytest.warns(model.OutOfRangeWarning, match="log2_M"):
        out = forest.predict(far)
    assert out["extrapolated"].all()


def test_spread_and_outputs(calib: pd.DataFrame) -> None:
    out = model.GemmForest(SMALL).fit(calib).predict(calib, warn=False)
    assert (out["time_s"] > 0).all() and (out["time_s_spread"] >= 0).all()
    assert (out["power_W"] > 0).all() and (out["power_W_spread"] >= 0).all()
    assert out["power_source"].eq("learned").all()
    # in-sample the physics forest fits the measured runtime closely
    assert np.median(np.abs(out["time_s"] / calib["time_s"] - 1)) < 0.1


def test_each_kernel_family_learns_from_its_own_rows(calib: pd.DataFrame) -> None:
    fam = model.families(calib)
    lib = fam == "library"
    # the library calls three times slower: the SIMT kernels' forests never see those rows
    slower = calib.assign(time_s=np.where(lib, 3.0 * calib["time_s"], calib["time_s"]))
    one, two = model.GemmForest(SMALL), model.GemmForest(SMALL)
    # no harness floors here (a key no row has): three times the calls is three times the floor,
    # which would move which calls sit on it (test_harness_floor_* test the floors)
    one.floors = two.floors = {"none|none": 1.0}
    one.fit(calib)
    two.fit(slower)
    # every family has rows enough here, so no forest over all of them is needed
    assert pd.Series(fam).value_counts().min() >= model.FAMILY_MIN_ROWS
    assert set(one.parts) == set(fam) == {"library", "regblock", "tiled", "naive"}
    simt = calib[~lib]
    pd.testing.assert_series_equal(one.predict(simt, warn=False)["time_s"],
                                   two.predict(simt, warn=False)["time_s"])
    # the library's own forest learns the slower calls (the standardised targets are the
    # same up to rounding, which can flip a near-tie between two splits here and there: a few
    # rows land in a neighbouring leaf)
    ratio = two.predict(calib[lib], warn=False)["time_s"] / one.predict(calib[lib], warn=False)[
        "time_s"]
    off = np.abs(ratio / 3.0 - 1.0)
    assert np.median(ratio) == pytest.approx(3.0)
    assert (off < 0.05).mean() >= 0.9 and off.max() < 0.15
    # a family with too few rows, or none, is predicted by the forest over all families
    naive = fam == "naive"
    few_naive = naive & (np.cumsum(naive) < model.FAMILY_MIN_ROWS)
    part = model.GemmForest(SMALL).fit(calib[lib | (fam == "regblock") | few_naive])
    assert set(part.parts) == {"library", "regblock", model.ALL}
    out = part.predict(calib[(fam == "tiled") | (fam == "naive")], warn=False)
    assert np.isfinite(out["time_s"]).all() and (out["time_s"] > 0).all()


def test_cache_hit_and_retrain_on_new_data(calib: pd.DataFrame) -> None:
    _, first = model.train(calib, SMALL)
    _, again = model.train(calib, SMALL)
    assert not first["cached"] and again["cached"]
    assert first["cache_key"] == again["cache_key"]
    _, changed = model.train(calib.iloc[:-1], SMALL)
    assert changed["cache_key"] != first["cache_key"] and not changed["cached"]
    _, other = model.train(calib, model.Settings(n_estimators=21, seed=3))
    assert other["cache_key"] != first["cache_key"]


def test_predict_gemm_interface() -> None:
    spec = devices.get("h100-sxm")
    out = predict_gemm(spec, {"M": [1024, 4096], "N": [1024, 4096], "K": [1024, 4096],
                              "dtype": ["fp16", "fp32"]}, data=["calibration"],
                       settings=SMALL)
    for col in ("time_s", "time_s_spread", "power_W", "power_W_spread"):
        assert col in out.columns and out[col].notna().all()
    assert out["time_s"].iloc[1] > out["time_s"].iloc[0]


# --- evaluation -------------------------------------------------------------------------------


def test_metrics_closed_form() -> None:
    m = evaluate.metrics(np.array([1.0, 2.0, 4.0]), np.array([1.1, 1.8, 4.0]))
    assert m["mape_pct"] == pytest.approx((10 + 10 + 0) / 3)
    assert m["median_ape_pct"] == pytest.approx(10)
    assert m["r2"] == pytest.approx(1 - (0.01 + 0.04) / np.var([1, 2, 4]) / 3)
    # ratios 1.1, 0.9, 1.0: median 1.0, so the level-free error equals the plain one
    assert m["level_free_mape_pct"] == pytest.approx(m["mape_pct"])
    # a prediction off by one common factor has no level-free error
    scaled = evaluate.metrics(np.array([1.0, 2.0, 4.0]), np.array([1.3, 2.6, 5.2]))
    assert scaled["mape_pct"] == pytest.approx(30)
    assert scaled["level_free_mape_pct"] == pytest.approx(0, abs=1e-9)


def test_splits_hold_out_whole_groups(calib: pd.DataFrame) -> None:
    found = dict(splits.splits(calib, seed=0))
    assert {"random", "sizes", "tiles", "largest"} <= set(found)
    size = list(zip(calib["M"], calib["N"], calib["K"], strict=True))
    test = found["sizes"]
    assert not {s for s, t in zip(size, test, strict=True) if t} & {
        s for s, t in zip(size, test, strict=True) if not t}
    tiles = calib[list(splits.TILE_KEY)].astype(str).agg("/".join, axis=1)
    assert not set(tiles[found["tiles"]]) & set(tiles[~found["tiles"]])
    flops = calib["M"] * calib["N"] * calib["K"]
    assert flops[found["largest"]].min() > flops[~found["largest"]].max()


def test_evaluate_table(calib: pd.DataFrame) -> None:
    table = evaluate.evaluate(calib, "calibration", SMALL)
    assert set(table["model"]) == set(evaluate.MODELS)
    assert set(table["target"]) == {"time", "power"}
    assert table["mape_pct"].notna().all()


# --- CLI --------------------------------------------------------------------------------------


def test_cli_gemm_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predict", "gemm", "--device", "h100-sxm", "--m", "2048", "--n", "2048",
               "--k", "2048", "--dtype", "fp16", "--data", "calibration", "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    for entry in ("analytical", "learned"):
        assert doc[entry]["time_s"] > 0 and doc[entry]["power_W"] > 0
    assert doc["learned"]["time_s_spread"] >= 0
    # the clock the analytical model runs the GEMM at: at most the boost clock (1980 MHz)
    assert 0 < doc["analytical"]["clock_MHz"] <= 1980.0
    assert "training" in captured.err  # first use trains, and says so on stderr


def test_cli_evaluate_json_saves_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predict", "evaluate", "--data", str(ROOT / "calibration"), "--trees", "10",
               "--no-tune",
               "--out", str(tmp_path), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    saved = Path(doc["saved"])
    assert (saved / "evaluation.csv").exists()
    table = pd.read_csv(saved / "evaluation.csv")
    assert len(table) == len(doc["evaluation"])


def test_repeated_draws_average_the_group_splits(calib: pd.DataFrame) -> None:
    once = [evaluate.evaluate(calib, "calibration", SMALL, seed=s) for s in (0, 1)]
    both = evaluate.evaluate(calib, "calibration", SMALL, seed=0, repeats=2)
    row = both[(both["split"] == "sizes") & (both["model"] == "forest+physics")
               & (both["target"] == "time")].iloc[0]
    singles = [t[(t["split"] == "sizes") & (t["model"] == "forest+physics")
                 & (t["target"] == "time")]["mape_pct"].iloc[0] for t in once]
    assert row["repeats"] == 2
    assert row["mape_pct"] == pytest.approx(np.mean(singles))
    largest = both[both["split"] == "largest"]
    assert (largest["repeats"] == 1).all()  # the seed does not change this split


# --- hyper-parameters by inner cross-validation -------------------------------------------------


def test_inner_folds_stay_inside_the_training_rows(calib: pd.DataFrame) -> None:
    test = dict(splits.splits(calib, seed=0))["sizes"]
    train = calib[~test].reset_index(drop=True)
    folds = tuning.inner_folds(train, "sizes", seed=0)
    assert 1 <= len(folds) <= tuning.INNER_FOLDS
    size = list(zip(train["M"], train["N"], train["K"], strict=True))
    for m in folds:
        assert len(m) == len(train)  # masks over the training rows only
        held = {s for s, t in zip(size, m, strict=True) if t}
        kept = {s for s, t in zip(size, m, strict=True) if not t}
        assert held and not held & kept  # whole sizes held out inside the training rows


def test_inner_folds_for_a_held_out_gpu_hold_out_each_training_gpu() -> None:
    rows = []
    for dev in ("h100-sxm", "a100-pcie-40gb", "h100-pcie"):
        for m in (256, 512, 1024, 2048):
            rows.append({"device": dev, "dtype": "fp16", "M": m, "N": m, "K": m,
                         "time_s": 1e-5 * (m / 256) ** 3})
    df = datasets.validate(pd.DataFrame(rows), "synthetic")
    train = df[df["device"] != "h100-pcie"].reset_index(drop=True)
    folds = tuning.inner_folds(train, "gpu:h100-pcie", seed=0)
    assert sorted(set(train["device"][m].unique()[0] for m in folds)) == ["a100-pcie-40gb",
                                                                          "h100-sxm"]
    for m in folds:
        assert train["device"][m].nunique() == 1


def test_choose_is_deterministic_and_picks_from_the_grid(calib: pd.DataFrame) -> None:
    grid = ((1, 0.5), (8, 0.25))
    base = model.Settings(n_estimators=10, seed=1)
    a, info = tuning.choose(calib, "sizes", base, grid=grid, seed=2)
    b, _ = tuning.choose(calib, "sizes", base, grid=grid, seed=2)
    assert a == b
    assert (a.min_samples_leaf, a.max_features) in grid
    assert a.n_estimators == base.n_estimators  # the final forest keeps its tree count
    assert len(info["scores"]) == len(grid) and info["folds"] >= 1
    best = min(info["scores"].values())
    assert info["scores"][f"leaf={a.min_samples_leaf},max_features={a.max_features}"] == best


def test_evaluate_with_tuning_records_the_choice(calib: pd.DataFrame,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "GRID", ((1, 0.5), (8, 0.25)))
    monkeypatch.setattr(tuning, "INNER_FOLDS", 2)
    table = evaluate.evaluate(calib, "calibration", SMALL, tune=True)
    forests = table[table["model"] != "analytical"]
    assert forests["min_samples_leaf"].isin([1, 8]).all()
    assert forests["max_features"].isin([0.5, 0.25]).all()


def test_harness_floor_is_the_shortest_small_library_call(calib: pd.DataFrame) -> None:
    floors = model.harness_floors(calib)
    lib = calib[model.families(calib) == "library"]
    for (dev, dtype), g in lib.groupby(["device", "dtype"]):
        i = g["time_s"].idxmin()
        small = 2.0 * g.at[i, "M"] * g.at[i, "N"] * g.at[i, "K"] <= 2.0**30
        assert (f"{dev}|{dtype}" in floors) == small
        if small:
            assert floors[f"{dev}|{dtype}"] == g.at[i, "time_s"]


def test_harness_floor_paces_the_smallest_library_calls(calib: pd.DataFrame) -> None:
    f = model.GemmForest(SMALL).fit(calib)
    floor = f.floors["h100-sxm|fp32"]
    tiny = {"M": [64, 8192], "N": [64, 8192], "K": [64, 8192], "dtype": "fp32"}
    q = datasets.validate(pd.DataFrame({**tiny, "device": "h100-sxm", "time_s": 1.0,
                                        "dataset": "query"}), "query")
    out = f.predict(q, warn=False)
    # a 64^3 call is all harness: predicted at the floor's level, not at its 2 us of work
    assert out["an_time_s"][0] == pytest.approx(floor) and out["time_s"][0] > 0.75 * floor
    assert out["an_time_s"][1] > floor  # a long call is the GPU's
    # a GPU the training rows do not show takes the median floor of those that are
    other = f.predict(q.assign(device="h100-pcie"), warn=False)
    median = float(np.median([v for k, v in f.floors.items() if k.endswith("|fp32")]))
    assert other["an_time_s"][0] == pytest.approx(median)
