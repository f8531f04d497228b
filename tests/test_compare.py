"""simgpu compare: the measured row is the exact calibration row (named by run and row), each
view's error is computed against it, and bad input fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from simgpu.cli import main
from simgpu.errors import SimgpuError
from simgpu.views.compare import GemmQuery, compare_gemm, find_measured, to_frame

CAL = Path(__file__).resolve().parents[1] / "calibration"
QUICK = CAL / "h100-sxm" / "20261122T154219Z" / "gemm.csv"


def test_exact_row_named_by_run_and_row():
    row, note = find_measured(GemmQuery("h100-sxm", 4096, 4096, 4096, "fp16"), CAL)
    assert row is not None
    src = row["_source"]
    csv = pd.read_csv(QUICK)
    ref = csv.iloc[src["row"]]
    assert (ref["kernel"], ref["dtype"], ref["M"], ref["N"], ref["K"]) == (
        "cublas", "fp16", 4096, 4096, 4096)
    assert row["time_ms"] == pytest.approx(ref["time_ms"])
    assert src["run"] == "20261122T154219Z" and src["csv_line"] == src["row"] + 2
    assert f"row {src['row']}" in note and "20261122T154219Z" in note


def test_own_kernel_tile_selects_the_row():
    row16, _ = find_measured(GemmQuery("h100-sxm", 1024, 1024, 1024, "fp32", "sgemm_tiled",
                                       16), CAL)
    row32, _ = find_measured(GemmQuery("h100-sxm", 1024, 1024, 1024, "fp32", "sgemm_tiled",
                                       32), CAL)
    assert row16 is not None and row32 is not None
    assert (row16["tile_m"], row32["tile_m"]) == (16, 32)
    assert row16["time_ms"] != row32["time_ms"]


def test_no_exact_match_is_null_with_nearest_named():
    row, note = find_measured(GemmQuery("h100-sxm", 4000, 4096, 4096, "fp16"), CAL)
    assert row is None
    assert "4096x4096x4096" in note and "nearest" in note
    row, note = find_measured(GemmQuery("rtx-4070", 512, 512, 512, "fp16"), CAL)
    assert row is None and "no calibration run" in note


def test_errors_against_measured():
    doc = compare_gemm(GemmQuery("h100-sxm", 4096, 4096, 4096, "bf16"),
                       views=("measured", "analytical"), calibration=CAL)
    m, a = doc["measured"], doc["analytical"]
    assert doc["simulated"] is None and doc["learned"] is None
    assert a["error_vs_measured"] == pytest.approx(100 * (a["time_s"] - m["time_s"])
                                                   / m["time_s"])
    assert a["power_error_vs_measured"] == pytest.approx(100 * (a["power_W"] - m["power_W"])
                                                         / m["power_W"])
    assert a["tflops"] == pytest.approx(2 * 4096**3 / a["time_s"] / 1e12)
    assert m["energy_J"] == pytest.approx(m["time_s"] * m["power_W"])
    frame = to_frame(doc)
    assert list(frame["view"]) == ["measured", "simulated", "analytical", "learned"]


def test_cli_json_has_every_view(capsys):
    rc = main(["compare", "--device", "h100-sxm", "--workload", "gemm", "--m", "2048",
               "--n", "2048", "--k", "2048", "--dtype", "fp16", "--json",
               "--calibration", str(CAL)])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    for view in ("measured", "simulated", "analytical", "learned"):
        assert view in doc
    # cuBLAS fp16: the CUTLASS-like kernel of the library search, at the analytical model's
    # clock: the boost clock, as the published file has no energies per event to throttle with
    assert "1980 MHz (the boost clock" in doc["notes"]["simulated"]
    assert doc["simulated"]["time_s_spread"] >= 0
    for view in ("measured", "simulated", "analytical", "learned"):
        v = doc[view]
        assert v["time_s"] > 0 and v["power_W"] > 0 and "error_vs_measured" in v
    assert doc["measured"]["error_vs_measured"] == 0.0
    assert doc["learned"]["time_s_spread"] >= 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"M": 0, "N": 1, "K": 1}, "M = 0"),
        ({"M": 8, "N": 8, "K": 8, "dtype": "fp16", "kernel": "sgemm_tiled"}, "fp32 only"),
        ({"M": 8, "N": 8, "K": 8, "dtype": "fp32", "kernel": "sgemm_tiled", "tile": 12},
         "tile 12"),
        ({"M": 8, "N": 8, "K": 8, "dtype": "int4"}, "dtype"),
    ],
)
def test_bad_queries(kwargs, match):
    with pytest.raises(SimgpuError, match=match):
        GemmQuery("h100-sxm", **kwargs)


def test_cli_bad_input_exits_2(capsys):
    assert main(["compare", "--m", "64", "--n", "64", "--k", "64", "--dtype", "fp16",
                 "--kernel", "sgemm_naive"]) == 2
    assert "fp32 only" in capsys.readouterr().err


def test_simulated_view_writes_a_timeline(tmp_path, capsys):
    pytest.importorskip("simpy")
    path = tmp_path / "gemm.json"
    rc = main(["compare", "--m", "64", "--n", "64", "--k", "64", "--dtype", "fp32",
               "--kernel", "sgemm_tiled", "--tile", "16", "--view", "simulated", "--json",
               "--timeline", str(path), "--calibration", str(CAL)])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["simulated"]["time_s"] > 0 and str(path) in doc["notes"]["simulated"]
    trace = json.loads(path.read_text())
    names = {e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert {"SM", "DRAM"} <= names  # requests per SM and DRAM commands
    loads = [e for e in trace["traceEvents"] if e["ph"] == "b" and e["name"].startswith("LD")]
    assert loads and all(e["args"]["dur_cycles"] > 0 for e in loads)
    assert main(["compare", "--m", "64", "--n", "64", "--k", "64", "--dtype", "fp32",
                 "--kernel", "sgemm_tiled", "--view", "simulated", "--timeline",
                 str(path)]) == 2  # never overwrites
