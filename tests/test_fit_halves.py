"""`simgpu fit --half` fits on one half of a run's sizes and `simgpu validate --held-out` judges
on the other: the split, and that the fit never reads a held-out row."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simgpu import devices
from simgpu.calibrate.dataset import RunDir
from simgpu.calibrate.fit import HALF_SPLIT, fit_run, size_halves
from simgpu.cli import main
from simgpu.errors import DatasetError

REPO = Path(__file__).resolve().parent.parent
H100_RUN = REPO / "calibration" / "h100-sxm" / "20261122T154403Z"
needs_run = pytest.mark.skipif(not H100_RUN.exists(), reason="committed H100 run not here")


def test_sizes_alternate_within_each_curve_and_repeats_stay_together() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for kernel in ("transpose_naive", "transpose_tiled"):
        for n in (256, 512, 1024, 2048, 4096):
            for _ in range(int(rng.integers(1, 4))):  # repeats of a size
                rows.append({"kernel": kernel, "rows": n, "cols": n})
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # order must not matter
    fit = size_halves("transpose", df)
    for _, g in df.assign(fit=fit).groupby("kernel"):
        by_size = g.groupby("rows")["fit"].agg(["min", "max"])
        assert (by_size["min"] == by_size["max"]).all()  # every repeat on one side
        assert by_size["min"].tolist() == [True, False, True, False, True]  # smallest fitted


def test_shapes_are_ordered_by_their_product_then_by_their_columns() -> None:
    df = pd.DataFrame({"M": [64, 8, 16, 64], "N": [1, 8, 2, 1]})  # sizes 64, 64, 32, 64
    assert size_halves("gemv", df).tolist() == [True, False, True, True]


def test_a_table_without_sizes_is_fitted_whole_and_a_missing_column_is_named() -> None:
    launch = pd.DataFrame({"metric": ["a", "b"], "value": [1.0, 2.0]})
    assert size_halves("launch", launch).all()
    with pytest.raises(DatasetError, match=r"stream table: no column \['array_B'\]"):
        size_halves("stream", pd.DataFrame({"op": ["read"]}))


@needs_run
def test_every_split_table_of_the_run_has_both_halves() -> None:
    run = RunDir.open(H100_RUN)
    for table in sorted(run.finished_tables() & set(HALF_SPLIT)):
        fit = size_halves(table, run.read_table(table))
        assert 0.35 < fit.mean() < 0.65, table


def _spoiled_copy(tmp_path: Path) -> Path:
    """The H100 run with every held-out row's measurements tripled or thirded."""
    dst = tmp_path / H100_RUN.name
    shutil.copytree(H100_RUN, dst)
    run = RunDir.open(dst)
    for table in sorted(run.finished_tables() & set(HALF_SPLIT)):
        path = run.table_path(table)
        held = ~size_halves(table, run.read_table(table))
        df = pd.read_csv(path, dtype=str, keep_default_na=False)  # other cells as written
        for col in df.columns:
            if col.startswith(("time_ms", "latency_", "power_W", "energy_J")):
                factor = 3.0
            elif col in ("bandwidth_GBps", "bytes_per_clk_per_SM", "tflops"):
                factor = 1 / 3.0
            else:
                continue
            df.loc[held, col] = [repr(float(v) * factor) if v else v
                                 for v in df.loc[held, col]]
        df.to_csv(path, index=False)
    return dst


@needs_run
def test_the_half_fit_never_reads_a_held_out_row(tmp_path: Path) -> None:
    base = devices.get("h100-sxm")
    spoiled = _spoiled_copy(tmp_path)
    clean = {f.key or f.name: f.value for f in fit_run(H100_RUN, base, half=True)}
    dirty = {f.key or f.name: f.value for f in fit_run(spoiled, base, half=True)}
    assert dirty == clean
    # and the spoiling is visible to a fit of every row
    whole = {f.key or f.name: f.value for f in fit_run(spoiled, base)}
    moved = [k for k in clean if whole.get(k) != clean[k]]
    assert {"l1.hit_latency_cycles", "compute.simt_issue_overhead",
            "power.energy_pJ.dram_byte"} <= set(moved), moved


@needs_run
def test_validate_held_out_judges_exactly_the_other_half(tmp_path: Path) -> None:
    from simgpu.validate.core import validate_run

    spec = devices.get("h100-sxm")
    every, _ = validate_run(spec, H100_RUN, only=["reduction", "transpose"],
                            views=["analytical"])
    held, _ = validate_run(spec, H100_RUN, only=["reduction", "transpose"],
                           views=["analytical"], held_out=True)
    run = RunDir.open(H100_RUN)
    expect = sum(int((~size_halves(t, run.read_table(t))).sum())
                 for t in ("reduction", "transpose"))
    assert len(held) == expect
    assert 0 < len(held) < len(every)
    assert set(held["params"]) < set(every["params"])


@needs_run
def test_fit_half_writes_its_own_file_that_says_how_it_was_fitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", str(H100_RUN), "--half", "--write", "--models-out", str(tmp_path)]) == 0
    target = tmp_path / "h100-sxm-cal-20261122t154403z-half.toml"
    text = target.read_text()
    assert "simgpu fit --half" in text and "[fit half of the sizes]" in text
    assert devices.loads(text, source=str(target)).name == target.stem
    assert str(target) in capsys.readouterr().out
