"""simgpu validate on stored runs: errors computed right, tables and figures saved, JSON shape."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from simgpu import analytical, devices
from simgpu.calibrate.dataset import RunDir
from simgpu.cli import main
from simgpu.errors import SimgpuError
from simgpu.sim.compiletime import compile_seconds
from simgpu.validate import families
from simgpu.validate.core import summary, validate_run

REPO = Path(__file__).resolve().parent.parent
H100_QUICK = REPO / "calibration" / "h100-sxm" / "20261122T154219Z"


def _reduction_run(tmp_path: Path, scale: float,
                   sizes: tuple[int, ...] = (1 << 16, 1 << 20, 1 << 24, 1 << 28)) -> Path:
    """A stored run whose reduction times (of ``sizes`` elements) are the analytical model's,
    times ``scale``."""
    spec = devices.get("h100-sxm")
    sizes = np.array(sizes)
    est = analytical.reduction(spec, sizes)
    run = RunDir.create(tmp_path, "h100-sxm", "20260101T000000Z", {"gpu": {}})
    for n, t in zip(sizes, est["time_s"].to_numpy() * scale, strict=True):
        ms = float(t) * 1e3
        run.append_point("reduction", str(n), [{
            "n": int(n), "bytes_moved": int(4 * n), "blocks": 264, "time_ms": ms,
            "time_ms_p10": ms, "time_ms_p90": ms, "reps": 10,
            "bandwidth_GBps": 4 * n / (ms * 1e6), "rel_err": 0.0, "check_ok": True,
        }])
    run.finish_table("reduction")
    run.update_manifest(status="complete")
    return run.path


@pytest.mark.parametrize("scale", [1.0, 1.25, 0.8])
def test_errors_are_view_minus_measured_over_measured(tmp_path: Path, scale: float) -> None:
    path = _reduction_run(tmp_path, scale)
    table, notes = validate_run(devices.get("h100-sxm"), path, views=["analytical"])
    assert list(table["family"].unique()) == ["reduction"]
    expected = (1 / scale - 1) * 100
    np.testing.assert_allclose(table["err_analytical_pct"], expected, rtol=1e-9, atol=1e-9)
    assert table["simulated"].isna().all() and table["learned"].isna().all()
    assert notes[("reduction", "simulated")] == "not requested"
    s = summary(table)
    assert s.loc[0, "analytical_median_abs_pct"] == pytest.approx(abs(expected), abs=1e-9)
    assert s.loc[0, "simulated_n"] == 0


def test_unknown_family_and_view_are_errors(tmp_path: Path) -> None:
    path = _reduction_run(tmp_path, 1.0)
    spec = devices.get("h100-sxm")
    with pytest.raises(SimgpuError, match="unknown workload family"):
        validate_run(spec, path, only=["nope"])
    with pytest.raises(SimgpuError, match="unknown view"):
        validate_run(spec, path, views=["guessed"])
    with pytest.raises(SimgpuError, match="none of the families"):
        validate_run(spec, path, only=["gemv"])


@pytest.mark.skipif(not H100_QUICK.exists(), reason="committed H100 run not in this checkout")
def test_validate_cli_on_the_stored_h100_run(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["validate", "--device", "h100-sxm", "--run", str(H100_QUICK),
                 "--views", "analytical", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    rows = json.loads(captured.out)  # one JSON document, nothing else on stdout
    for key in ("workload", "params", "measured", "simulated", "analytical", "learned",
                "err_simulated_pct", "err_analytical_pct", "err_learned_pct"):
        assert key in rows[0]
    families = {r["family"] for r in rows}
    assert {"pchase", "stream", "pcie", "gemm_time", "transpose", "reduction", "gemv"} <= families
    # every measured row of the run's stream table (default occupancy) is there
    stream = RunDir.open(H100_QUICK).read_table("stream")
    n_stream = len(stream.groupby(["op", "array_B"]))
    assert sum(r["family"] == "stream" for r in rows) == n_stream
    assert all(r["measured"] > 0 for r in rows)
    assert any(r["err_analytical_pct"] is not None for r in rows)
    for name in ("validate.csv", "validate.parquet", "summary.csv", "notes.json", "stream.png",
                 "gemm_time.png", "pchase.png"):
        assert (out / name).stat().st_size > 0, name


H100_FULL = REPO / "calibration" / "h100-sxm" / "20261122T154403Z"


@pytest.mark.skipif(not H100_FULL.exists(), reason="committed H100 run not in this checkout")
def test_every_stream_row_is_chosen_cheapest_replay_first_unless_max_sim_caps_the_curves() -> None:
    from simgpu.workloads import Stream

    spec = devices.get("h100-sxm")
    fam = families.families()["stream"]
    rows = fam.select(RunDir.open(H100_FULL).read_table("stream"))
    plan = families.replay_plan(spec, fam, rows)
    assert sorted(plan.index) == list(rows.index)  # every row, for the budget to take in turn
    assert list(plan) == sorted(plan)  # cheapest first
    # streams larger than the L2 cost one steady-state window each, whatever their size (32 MiB
    # to 2 GiB arrays), no more than the costliest replay of arrays that fit in it
    windowed = np.array([Stream.from_row(r).windowed(spec) for _, r in rows.iterrows()])
    assert 0 < windowed.sum() < len(rows)
    assert plan[rows.index[windowed]].nunique() == 1
    assert plan[rows.index[windowed]].max() <= plan[rows.index[~windowed]].max()
    capped = families.replay_plan(spec, fam, rows, max_sim=4)
    per_op = rows.loc[capped.index].groupby("op")["array_B"]
    assert (per_op.size() == 4).all()
    # spread over the sizes: each op's smallest and largest array among its four
    assert (per_op.min() == rows["array_B"].min()).all()
    assert (per_op.max() == rows["array_B"].max()).all()
    # the GEMMs keep 4 per kernel and dtype unless told otherwise
    gemm = families.families()["gemm_time"]
    g_rows = gemm.select(RunDir.open(H100_FULL).read_table("gemm"))
    per_curve = g_rows.loc[families.replay_plan(spec, gemm, g_rows).index].groupby(
        ["kernel", "dtype", "tile_m"]).size()
    assert per_curve.max() == 4
    assert len(families.replay_plan(spec, gemm, g_rows, max_sim=100)) == len(g_rows)


@pytest.mark.skipif(not H100_QUICK.exists(), reason="committed H100 run not in this checkout")
def test_simulated_view_of_pcie_copies(tmp_path: Path) -> None:
    pytest.importorskip("simpy")
    spec = devices.get("h100-sxm")
    table, notes = validate_run(spec, H100_QUICK, only=["pcie"], views=["simulated"])
    assert table["simulated"].notna().all()
    per_direction = spec.host_link.bandwidth_per_direction_GBps
    bidir = table["workload"].str.contains("bidir").to_numpy()
    assert (table.loc[~bidir, "simulated"] <= per_direction).all()
    assert (table.loc[bidir, "simulated"] <= 2 * per_direction).all()
    # pinned copies beat pageable ones of the same size and direction, as measured
    piv = table.assign(size=table["x"]).pivot_table(index=["size"], columns="workload",
                                                    values="simulated")
    both = piv[["pcie h2d pinned", "pcie h2d pageable"]].dropna()
    assert (both["pcie h2d pinned"] > both["pcie h2d pageable"]).all()
    np.testing.assert_allclose(
        table["err_simulated_pct"],
        (table["simulated"] - table["measured"]) / table["measured"] * 100,
    )


def test_simulated_library_calls_take_at_least_the_device_files_floor(tmp_path: Path) -> None:
    """A device file with the harness's call floor (simgpu fit): the simulated view of a cuBLAS
    row is no shorter than the floor of its dtype, as the analytical view."""
    import pandas as pd

    spec = devices.get("h100-sxm-cal-20261122t154219z")
    floor = spec.host_link.library_call_floor_us["fp16"] * 1e-6
    # a run of the quick run's cuBLAS fp16 512^3 and 1024^3 calls alone (short replays)
    rows = pd.read_csv(H100_QUICK / "gemm.csv")
    rows = rows[(rows["kernel"] == "cublas") & (rows["dtype"] == "fp16")
                & (rows["M"] * rows["N"] * rows["K"] <= 1024**3)]
    run = RunDir.create(tmp_path, "h100-sxm", "20260101T000000Z", {"gpu": {}})
    for i, r in enumerate(rows.to_dict("records")):
        run.append_point("gemm", str(i), [r])
    run.finish_table("gemm")
    run.update_manifest(status="complete")
    table, notes = validate_run(spec, run.path, only=["gemm_time"], views=["simulated"])
    sim = table[table["simulated"].notna()]
    assert len(sim) == len(rows) == 2, notes
    assert (sim["simulated"] >= floor).all()
    # the 512^3 call: a kernel of a few microseconds, timed at the harness's pace
    assert sim["simulated"].min() == pytest.approx(floor)
    assert "call floor (fp16 13.9 us" in notes[("gemm_time", "simulated")]


@pytest.mark.skipif(not H100_QUICK.exists(), reason="committed H100 run not in this checkout")
def test_families_compared_in_worker_processes_give_the_same_table() -> None:
    """Worker processes (one per table) answer what this process answers, in the order
    asked."""
    spec = devices.get("h100-sxm")
    only = ["pcie", "reduction", "gemv", "transpose"]
    here, notes_here = validate_run(spec, H100_QUICK, only=only, views=["analytical"],
                                    workers=0)
    there, notes_there = validate_run(spec, H100_QUICK, only=only, views=["analytical"],
                                      workers=2)
    assert list(there["family"].unique()) == only
    assert there.equals(here)
    assert notes_there == notes_here
    with pytest.raises(SimgpuError, match="workers = -1"):
        validate_run(spec, H100_QUICK, only=only, workers=-1)


def test_summary_gives_the_90th_percentile_and_a_row_over_all_families() -> None:
    import pandas as pd

    errs = {"a": [1.0, -2.0, 3.0, -4.0, 5.0, 6.0, 7.0, 8.0, 9.0, -10.0], "b": [20.0, -40.0]}
    table = pd.DataFrame([
        {"family": f, "metric": "time_s", "err_simulated_pct": e, "err_analytical_pct": np.nan,
         "err_learned_pct": np.nan} for f, es in errs.items() for e in es])
    s = summary(table).set_index("family")
    assert list(s.index) == ["a", "b", "all"]
    assert s.loc["a", "simulated_p90_abs_pct"] == pytest.approx(np.quantile(range(1, 11), 0.9))
    everything = [abs(e) for es in errs.values() for e in es]
    assert s.loc["all", "rows"] == 12 and s.loc["all", "simulated_n"] == 12
    assert s.loc["all", "simulated_median_abs_pct"] == pytest.approx(np.median(everything))
    assert s.loc["all", "simulated_p90_abs_pct"] == pytest.approx(np.quantile(everything, 0.9))
    assert s.loc["all", "analytical_n"] == 0


def test_compile_seconds_counts_compiles_once_and_not_calls() -> None:
    from numba import njit

    c0 = compile_seconds()

    @njit(cache=False)
    def inner(x: int) -> int:
        return x * x + 1

    @njit(cache=False)
    def outer(n: int) -> int:
        s = 0
        for i in range(n):
            s += inner(i)
        return s

    t0 = time.perf_counter()
    assert outer(10) == sum(i * i + 1 for i in range(10))
    wall = time.perf_counter() - t0
    spent = compile_seconds() - c0
    # inner is compiled inside outer's compile: counted once, within the call's wall time
    assert 0.0 < spent <= wall
    c1 = compile_seconds()
    outer(20)
    assert compile_seconds() == c1  # a call of compiled code is not a compile


def test_compiling_is_not_spent_from_the_budget(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of a millisecond replays one row (the first is started whatever the budget);
    when all the time went to compiling, as on a first run, every row is replayed."""
    pytest.importorskip("simpy")
    spec = devices.get("h100-sxm")
    run = _reduction_run(tmp_path, 1.0, sizes=(1 << 16, 1 << 17, 1 << 18))
    kw = {"only": ["reduction"], "views": ["simulated"], "sim_budget_s": 1e-3, "workers": 0}
    table, notes = validate_run(spec, run, **kw)
    assert table["simulated"].notna().sum() == 1, notes
    # every second of the replays spent compiling (a clock 1000x fast, so that the note's
    # compile time passes its 0.5 s threshold however fast the replays run)
    monkeypatch.setattr(families, "compile_seconds", lambda: 1000 * time.perf_counter())
    table, notes = validate_run(spec, run, **kw)
    assert table["simulated"].notna().sum() == 3, notes
    assert "of it compiling, outside the budget" in notes[("reduction", "simulated")]
