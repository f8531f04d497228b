"""Hostile calibration runs: values outside each column's range, malformed manifests and tables,
torn append-only files, and bad number options. Each gives a one-line error naming the file,
the line or key, the value and what was expected, or a correct answer; never a traceback."""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
import shutil
import tempfile
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simgpu.calibrate import runner
from simgpu.calibrate.dataset import RunDir, check_row, read_table, rows_to_csv
from simgpu.calibrate.gemm_rows import load_calibration_run
from simgpu.calibrate.runner import measure_tables
from simgpu.calibrate.schema import TABLES
from simgpu.cli import main
from simgpu.errors import DatasetError, GPUUnavailableError, SimgpuError
from simgpu.experiments.runner import run_grid
from simgpu.io import POINTS_FILE, JsonlAppender, append_jsonl, load_points, read_jsonl
from simgpu.sweep.engine import FAILED_FILE, run_points

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "calibration" / "h100-sxm" / "20261122T154219Z"
BIG = REPO / "calibration" / "h100-sxm" / "20261122T154403Z"


def copy_run(dst: Path, tables: tuple[str, ...], src: Path = BUNDLED,
             manifest: dict[str, Any] | None = None) -> Path:
    run = dst / "h100-sxm" / src.name
    run.mkdir(parents=True)
    for name in tables:
        shutil.copy(src / f"{name}.csv", run / f"{name}.csv")
    m = json.loads((src / "manifest.json").read_text())
    m["tables"] = {k: v for k, v in m["tables"].items() if k in tables}
    m.update(manifest or {})
    (run / "manifest.json").write_text(json.dumps(m))
    return run


def set_cell(path: Path, column: str, value: str, line: int = 2) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    rows[line - 1][rows[0].index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue())


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code: int, err: str) -> bool:
    return code == 2 and err.startswith("simgpu: error: ") and err.count("\n") == 1


def reduction_row(n: int = 1024, time_ms: float = 0.01) -> dict[str, Any]:
    return {"n": n, "bytes_moved": 4 * n, "blocks": 1, "time_ms": time_ms,
            "time_ms_p10": time_ms, "time_ms_p90": time_ms, "reps": 5,
            "bandwidth_GBps": 4 * n / (time_ms * 1e6), "rel_err": 0.0, "check_ok": True}


def no_gpu(*_: Any, **__: Any) -> Any:
    raise GPUUnavailableError("calibration needs CuPy and a CUDA GPU (none in this test)")


# --- values outside a column's range ----------------------------------------------------------


@pytest.mark.parametrize("table, column, value, family", [
    ("reduction", "time_ms", "-1", "reduction"),
    ("reduction", "time_ms", "nan", "reduction"),
    ("reduction", "time_ms", "0", "reduction"),
    ("reduction", "n", "0", "reduction"),
    ("stream", "bandwidth_GBps", "-3", "stream"),
    ("stream", "op", "bogus", "stream"),
    ("pchase", "latency_ns", "-2", "pchase"),
    ("pchase", "path", "zz", "pchase"),
    ("gemm", "M", "four thousand", "gemm_time"),
    ("gemm", "M", "-64", "gemm_time"),
    ("gemm", "kernel", "../../x", "gemm_time"),
    ("gemm", "power_W", "-100", "gemm_power"),
    ("pcie", "direction", "sideways", "pcie"),
    ("pcie", "size_B", "0", "pcie"),
])
def test_validate_refuses_values_outside_the_column_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, column: str, value: str,
    family: str,
) -> None:
    run = copy_run(tmp_path, (table,))
    set_cell(run / f"{table}.csv", column, value, line=3)
    code, _, err = cli(["validate", "--device", "h100-sxm", "--run", str(run), "--views",
                        "analytical", "--only", family, "--out", str(tmp_path / "o")], capsys)
    assert one_line_error(code, err), err
    assert f"{table}.csv: line 3:" in err and f"column {column!r}" in err
    assert f"got {value!r}" in err and "expected" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content, message", [
    (lambda h, r: h + "\n", "a header and no rows"),
    (lambda h, r: "", "empty file"),
    (lambda h, r: (h + "\n" + r + "\n").encode() + b"\xff\xfe\n", "line 3: not UTF-8"),
    (lambda h, r: h + ",n\n" + r + ",1\n", "given more than once"),
    (lambda h, r: h + "\n" + r.replace("True", "1" * 200_000) + "\n", "not a CSV table"),
    (lambda h, r: h + "\n" + r + ",extra\n", "line 2: 11 fields, expected 10"),
])
def test_malformed_tables_name_the_file_and_line(tmp_path: Path, content: Any,
                                                 message: str) -> None:
    schema = TABLES["reduction"]
    good = rows_to_csv(schema, [check_row(schema, reduction_row(), "t")]).splitlines()
    path = tmp_path / "reduction.csv"
    data = content(good[0], good[1])
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    with pytest.raises(DatasetError, match=message) as info:
        read_table(path, schema)
    assert "reduction.csv" in str(info.value) and "\n" not in str(info.value)


def test_a_table_that_lost_rows_is_refused(tmp_path: Path) -> None:
    run = copy_run(tmp_path, ("reduction",))
    lines = (run / "reduction.csv").read_text().splitlines()
    (run / "reduction.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetError, match=r"holds 2 rows, the manifest recorded 3"):
        RunDir.open(run).read_table("reduction")


def test_the_writer_keeps_out_of_range_rows_out_of_the_table(tmp_path: Path) -> None:
    """A benchmark row the schema refuses is a failed point; the run goes on."""
    run = RunDir.create(tmp_path, "h100-sxm", "20260101T000000Z", {"gpu": {}})

    class Bench:
        table = "reduction"

        def points(self, ctx: Any) -> list[dict[str, Any]]:
            return [{"n": 1024}, {"n": 2048}, {"n": 4096}]

        def run(self, ctx: Any, point: dict[str, Any]) -> list[dict[str, Any]]:
            return [reduction_row(point["n"], -1.0 if point["n"] == 2048 else 0.01)]

    ctx = types.SimpleNamespace(free=lambda: None)
    assert measure_tables(run, ctx, ["reduction"], level="quick", benchmarks={"reduction": Bench()})
    assert list(run.read_table("reduction")["n"]) == [1024, 4096]
    failed = run.manifest()["failed_points"]
    assert [f["point"] for f in failed] == [{"n": 2048}] and "time_ms" in failed[0]["error"]


def test_a_benchmark_without_rows_writes_no_table(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "h100-sxm", "20260101T000000Z", {"gpu": {}})

    class Empty:
        table = "launch"

        def points(self, ctx: Any) -> list[dict[str, Any]]:
            return [{"what": "idle_power"}]

        def run(self, ctx: Any, point: dict[str, Any]) -> list[dict[str, Any]]:
            return []  # no power meter

    ctx = types.SimpleNamespace(free=lambda: None)
    assert measure_tables(run, ctx, ["launch"], level="quick", benchmarks={"launch": Empty()})
    assert "launch" not in run.finished_tables() and not (run.path / "launch.csv").exists()


# --- manifests --------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, message", [
    ({"status": "bogus"}, "status: got 'bogus', expected one of running, complete, incomplete"),
    ({"run_id": "../../../../escape"}, "run_id: got '../../../../escape', expected a plain name"),
    ({"run_id": 12}, "run_id: got 12, expected a plain name"),
    ({"device": "../x"}, "device: got '../x', expected a plain name"),
    ({"tables": {"../../x": {}}}, "tables: got '../../x', expected table names"),
    ({"tables": {"reduction": {"rows": -1}}}, "tables.reduction.rows: got -1"),
    ({"provenance": "x"}, "'provenance' must be an object"),
])
def test_manifest_values_are_checked(tmp_path: Path, edit: dict[str, Any], message: str) -> None:
    run = copy_run(tmp_path, ("reduction",), manifest=edit)
    with pytest.raises(DatasetError, match="manifest.json: " + message.replace("(", r"\(")
                       .replace(")", r"\)").replace(".", r"\.")):
        RunDir.open(run)


@pytest.mark.parametrize("raw, message", [
    (b'"run_id device provenance tables status"', "got a JSON str, expected an object"),
    (b"[1, 2]", "got a JSON list"),
    (b'{"run_id": "\xff"}', "line 1: not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_manifest_files_that_are_not_manifests(tmp_path: Path, raw: bytes, message: str) -> None:
    run = copy_run(tmp_path, ("reduction",))
    (run / "manifest.json").write_bytes(raw)
    with pytest.raises(DatasetError, match=message):
        RunDir.open(run)


def test_run_paths_that_are_not_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").mkdir()
    for path, message in ((afile, "not a folder"), (tmp_path / "missing", "no such folder"),
                          (tmp_path / "m", "a folder, expected a manifest file")):
        for argv in (["calibration-summary", str(path)],
                     ["calibration-close", str(path), "--reason", "x"],
                     ["fit", str(path)],
                     ["validate", "--device", "h100-sxm", "--run", str(path)]):
            code, _, err = cli(argv, capsys)
            assert one_line_error(code, err) and message in err, (argv, err)


def test_pipes_and_links_are_refused_not_waited_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(tmp_path / "a", ("reduction",))
    (run / "reduction.csv").unlink()
    os.mkfifo(run / "reduction.csv")  # a reader would wait for a writer for ever
    code, _, err = cli(["validate", "--device", "h100-sxm", "--run", str(run), "--views",
                        "analytical", "--out", str(tmp_path / "o")], capsys)
    assert one_line_error(code, err) and "reduction.csv: not a regular file" in err, err
    (run / "reduction.csv").unlink()
    (run / "manifest.json").rename(run / "m.json")
    os.mkfifo(run / "manifest.json")
    code, _, err = cli(["calibration-summary", str(run)], capsys)
    assert one_line_error(code, err) and "manifest.json: not a regular file" in err, err
    # a run whose .partial leads elsewhere: closing it would write and delete there
    other = copy_run(tmp_path / "b", ("launch",), manifest={"status": "running"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "reduction.jsonl").write_text(
        json.dumps({"key": "a", "rows": [reduction_row()]}) + "\n")
    (other / ".partial").symlink_to(elsewhere)
    code, _, err = cli(["calibration-close", str(other), "--reason", "x"], capsys)
    assert one_line_error(code, err) and ".partial: a link" in err, err
    assert (elsewhere / "reduction.jsonl").exists()


# --- fit reads the GEMM table through the schema -----------------------------------------------


@pytest.mark.parametrize("column, value", [("M", "four thousand"), ("time_ms", "nan"),
                                           ("time_ms", "-1"), ("power_W", "0")])
def test_fit_checks_the_gemm_table(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   column: str, value: str) -> None:
    run = copy_run(tmp_path, ("gemm", "launch"))
    set_cell(run / "gemm.csv", column, value, line=4)
    code, _, err = cli(["fit", str(run)], capsys)
    assert one_line_error(code, err), err
    assert "gemm.csv: line 4:" in err and f"column {column!r}: got {value!r}" in err


def test_fit_names_a_table_that_allows_no_fit(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Values within range that no model fits (every copy of one size) fail cleanly."""
    run = copy_run(tmp_path, ("pcie",))
    text = (run / "pcie.csv").read_text().splitlines()
    header = text[0].split(",")
    rows = [r.split(",") for r in text[1:]]
    for r in rows:
        r[header.index("size_B")] = "4096"
    (run / "pcie.csv").write_text("\n".join([text[0], *(",".join(r) for r in rows)]) + "\n")
    code, out, err = cli(["fit", str(run)], capsys)
    assert code == 0 or one_line_error(code, err), err
    assert "Traceback" not in err


# --- torn records: every append-only file simgpu writes -----------------------------------------


HALF = '{"key": "torn", "rows": [{"x": 1, "label": "\u00e9t'  # ends inside a record


def test_points_file_of_a_sweep_survives_a_kill_mid_append(tmp_path: Path) -> None:
    out = tmp_path / "sweep"

    def fn(p: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"x": p["x"], "y": p["x"] ** 2}]

    points = [{"x": i} for i in range(6)]
    run_points(fn, points[:3], out, workers=0, progress=False)
    with (out / POINTS_FILE).open("ab") as fh:  # a kill in the middle of writing point 3
        fh.write(HALF.encode()[:-1])  # also cut inside the two bytes of a UTF-8 character
    rep = run_points(fn, points, out, workers=0, progress=False)
    assert (rep.points_skipped, rep.points_run) == (3, 3)
    done = load_points(out / POINTS_FILE)
    assert {k: v for k, v in done.items()} == {
        json.dumps(p, sort_keys=True): [{"x": p["x"], "y": p["x"] ** 2}] for p in points}
    records, bad, torn = read_jsonl(out / POINTS_FILE)
    assert len(records) == 6 and len(bad) == 1 and not torn  # the torn line, ended, skipped


def test_failed_points_file_survives_a_kill_mid_append(tmp_path: Path) -> None:
    out = tmp_path / "sweep"

    def fn(p: dict[str, Any]) -> list[dict[str, Any]]:
        raise SimgpuError(f"point {p['x']} always fails")

    run_points(fn, [{"x": 1}], out, workers=0, progress=False, max_attempts=1)
    with (out / FAILED_FILE).open("a") as fh:
        fh.write('{"key": "{\\"x\\": 2}", "rea')
    run_points(fn, [{"x": 1}, {"x": 2}, {"x": 3}], out, workers=0, progress=False,
               max_attempts=1)
    records, bad, torn = read_jsonl(out / FAILED_FILE)
    reasons = [r["reason"] for _, r in records]
    assert len(records) == 4 and bad == [2] and not torn
    assert sum("point 2 always fails" in r for r in reasons) == 1


def test_points_file_of_an_experiment_survives_a_kill_mid_append(tmp_path: Path) -> None:
    module = types.SimpleNamespace(NAME="hostile", run_point=lambda p: [{"v": p["a"] * 10}])
    out = tmp_path / "exp"
    run_grid(module, {"a": [1, 2]}, out, progress=False)  # type: ignore[arg-type]
    with (out / POINTS_FILE).open("a") as fh:
        fh.write(HALF)
    df = run_grid(module, {"a": [1, 2, 3, 4]}, out, progress=False)  # type: ignore[arg-type]
    assert list(df["v"]) == [10, 20, 30, 40]
    assert len(load_points(out / POINTS_FILE)) == 4


def test_partial_table_of_a_calibration_run_survives_a_kill_mid_append(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "h100-sxm", "20260101T000000Z", {"gpu": {}})
    run.append_point("reduction", "a", [reduction_row(1024)])
    partial = run.path / ".partial" / "reduction.jsonl"
    with partial.open("a") as fh:  # killed while appending point b
        fh.write(json.dumps({"key": "b", "rows": [reduction_row(2048)]})[:50])
    # the next session appends through the public API straight away
    RunDir.open(run.path).append_point("reduction", "c", [reduction_row(4096)])
    assert list(run.partial_points("reduction")) == ["a", "c"]
    # the predictor's and the fit's reader sees the same points (a torn last line skipped)
    with partial.open("a") as fh:
        fh.write('{"key": "d", "ro')
    run.append_point("gemm", "g", [])  # another table of the same run is unaffected
    assert list(run.partial_points("reduction")) == ["a", "c"]
    assert partial.read_text().endswith("\n")  # the torn tail was cut, not kept
    # closing keeps every finished point
    assert run.close_incomplete("GPU gone") == ["reduction"]
    assert list(run.read_table("reduction")["n"]) == [1024, 4096]


def test_partial_gemm_points_with_a_torn_last_line_are_read(tmp_path: Path) -> None:
    run = tmp_path / "h100-sxm" / "open"
    (run / ".partial").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"device": "h100-sxm", "status": "running"}))
    rows = list(csv.DictReader(io.StringIO((BUNDLED / "gemm.csv").read_text())))[:5]
    lines = [json.dumps({"key": str(i), "rows": [{k: (v or None) for k, v in r.items()}]})
             for i, r in enumerate(rows)]
    (run / ".partial" / "gemm.jsonl").write_text("\n".join(lines) + "\n" + lines[0][:40])
    df = load_calibration_run(run)
    assert len(df) == 5 and df["partial"].all()
    bad = dict(json.loads(lines[1])["rows"][0], time_ms=-1)
    (run / ".partial" / "gemm.jsonl").write_text(
        lines[0] + "\n" + json.dumps({"key": "1", "rows": [bad]}) + "\n")
    with pytest.raises(DatasetError, match=r"gemm\.jsonl: line 2: .*'time_ms': got -1"):
        load_calibration_run(run)


def test_appender_ends_a_line_torn_inside_a_utf8_character(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    append_jsonl(path, {"key": "a", "rows": [{"s": "\u00e9"}]})
    with path.open("ab") as fh:
        fh.write('{"key": "b", "rows": [{"s": "\u00e9'.encode()[:-1])
    with JsonlAppender(path) as app:
        app.append({"key": "c", "rows": [{"s": "\u00e9"}]})
    assert load_points(path) == {"a": [{"s": "\u00e9"}], "c": [{"s": "\u00e9"}]}


def test_a_points_file_that_is_not_one_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"key": "a", "rows": [{"x": 1}]}\n[1, 2]\n')
    with pytest.raises(DatasetError, match=r"p\.jsonl: line 2: not a point record"):
        load_points(path)
    folder = tmp_path / "d.jsonl"
    folder.mkdir()
    with pytest.raises(DatasetError, match="a folder, expected a JSON-lines file"):
        load_points(folder)
    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)  # reading it would block for ever
    with pytest.raises(DatasetError, match="not a regular file"):
        load_points(fifo)


# --- number options and the calibration folder of compare ----------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--max-sim", "-1"], "--max-sim '-1': expected an integer >= 0"),
    (["--max-sim", "2.5"], "--max-sim '2.5': expected an integer"),
    (["--sim-budget", "-5"], "--sim-budget '-5': expected a number >= 0"),
    (["--sim-budget=nan"], "--sim-budget 'nan'"),
    (["--sim-budget=inf"], "(finite)"),
    (["--views", ""], "--views ''"),
    (["--only", ","], "--only ','"),
])
def test_validate_number_options(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 argv: list[str], message: str) -> None:
    run = copy_run(tmp_path, ("reduction",))
    code, _, err = cli(["validate", "--device", "h100-sxm", "--run", str(run), *argv,
                        "--out", str(tmp_path / "o")], capsys)
    assert one_line_error(code, err) and message in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, message", [
    (["--power-seconds", "-1"], "--power-seconds '-1': expected a number > 0"),
    (["--power-seconds=nan"], "(finite)"),
    (["--deadline-s=nan"], "--deadline-s 'nan'"),
    (["--deadline-s", "0"], "--deadline-s '0': expected a number > 0"),
    (["--tag", "../x"], "run tag: got '../x', expected a plain name"),
    (["--device", "a/b"], "device name: got 'a/b'"),
    (["--only", ","], "--only ','"),
])
def test_calibrate_arguments_are_checked_before_the_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    argv: list[str], message: str,
) -> None:
    monkeypatch.setattr(runner, "require_cupy", no_gpu)
    code, _, err = cli(["calibrate", "--out", str(tmp_path / "cal"), *argv], capsys)
    assert one_line_error(code, err) and message in err, err
    assert not (tmp_path / "cal").exists()


def test_resuming_a_run_that_cannot_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(runner, "require_cupy", no_gpu)
    closed = copy_run(tmp_path / "a", ("launch",), manifest={"status": "incomplete"})
    m = json.loads((BUNDLED / "manifest.json").read_text())
    del m["provenance"]["plan"]
    noplan = copy_run(tmp_path / "b", ("launch",),
                      manifest={"provenance": m["provenance"], "status": "running"})
    for run, message in ((closed, "closed and cannot be resumed"),
                         (noplan, "provenance.plan missing")):
        code, _, err = cli(["calibrate", "--resume", str(run)], capsys)
        assert one_line_error(code, err) and message in err, err


def test_compare_with_a_missing_calibration_folder_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["compare", "--m", "1024", "--n", "1024", "--k", "1024", "--view", "measured"]
    for folder, message in ((tmp_path / "nonexistent", "no such folder"),
                            (afile, "not a folder")):
        code, _, err = cli([*base, "--calibration", str(folder)], capsys)
        assert one_line_error(code, err) and message in err, err
    # an existing folder without a run of the device still answers "no run found"
    (tmp_path / "empty").mkdir()
    code, out, err = cli([*base, "--calibration", str(tmp_path / "empty"), "--json"], capsys)
    assert code == 0 and "no calibration run" in json.loads(out)["notes"]["measured"]
    # a run whose matching row is out of range is an error, not a measured answer
    run = copy_run(tmp_path / "cal", ("gemm",), src=BIG)
    set_cell(run / "gemm.csv", "time_ms", "-1")
    code, _, err = cli([*base, "--calibration", str(tmp_path / "cal")], capsys)
    assert one_line_error(code, err) and "'time_ms': got '-1'" in err, err


# --- properties -------------------------------------------------------------------------------

_cells = (st.text(max_size=30) | st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e400",
                                                  "True", "False", "", " 1", "1_000", "0x10"])
          | st.floats().map(repr) | st.integers().map(str))


@settings(max_examples=200, deadline=None)
@given(column=st.sampled_from([c.name for c in TABLES["gemm"].columns if not c.added]),
       value=_cells)
@example(column="device", value="\r0")
@example(column="device", value="\r")
def test_any_gemm_cell_is_read_right_or_refused_with_its_place(column: str, value: str) -> None:
    schema = TABLES["gemm"]
    rows = list(csv.reader(io.StringIO((BUNDLED / "gemm.csv").read_text())))[:3]
    rows[2][rows[0].index(column)] = value
    buf = io.StringIO()
    # "\r\n" line ends: csv quotes a cell holding "\r" or "\n" only when its line end has them,
    # so that the file holds the cell that is meant
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gemm.csv"
        path.write_text(buf.getvalue(), encoding="utf-8", errors="surrogatepass")
        try:
            df = read_table(path, schema)
        except DatasetError as exc:
            msg = str(exc)
            assert "gemm.csv" in msg and "line 3" in msg, msg
            assert repr(column) in msg or "fields, expected" in msg, msg
            return
    col = schema.column(column)
    got = df[column].iloc[1]
    if value == "":
        assert not col.required and (got is None or got != got)
    elif col.type in ("int", "float"):
        assert isinstance(got, numbers.Real) and math.isfinite(got) and col.in_range(float(got))
        assert float(got) == float(value)
    elif col.type == "bool":
        assert got == (value == "True")
    else:
        assert got == value and (not col.choices or value in col.choices)


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=400))
def test_any_bytes_as_a_table_are_read_or_refused(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reduction.csv"
        path.write_bytes(data)
        try:
            read_table(path, TABLES["reduction"])
        except DatasetError as exc:
            assert "reduction.csv" in str(exc)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)
_manifest_keys = st.sampled_from(["run_id", "device", "status", "provenance", "tables"])


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.dictionaries(_manifest_keys, _json | st.sampled_from(
    ["..", "../x", "complete", "running", "reduction"]), max_size=3) | _json.map(
    lambda v: {"__whole__": v}))
def test_any_manifest_is_read_or_refused_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edits: dict[str, Any]
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    run = copy_run(root, ("reduction",))
    m = json.loads((run / "manifest.json").read_text())
    m = edits.get("__whole__", {**m, **edits})
    (run / "manifest.json").write_text(json.dumps(m))
    for argv in (["calibration-summary", str(run)], ["calibration-close", str(run), "--reason",
                                                    "x"]):
        code, _, err = cli(argv, capsys)
        if code != 0:
            assert one_line_error(code, err) and "manifest.json" in err or "reduction" in err, err
    assert {p.name for p in root.rglob("*") if p.is_file()} <= {"manifest.json", "reduction.csv"}


_numbers = (st.floats().map(repr) | st.integers(-10**6, 10**30).map(str) | st.text(max_size=8)
            | st.sampled_from(["nan", "-inf", "1e999", "0", "-0", "1_0", "٣", " 4 "]))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--max-sim", "--sim-budget"]), value=_numbers)
def test_validate_number_options_any_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    option: str, value: str,
) -> None:
    from simgpu.validate import core

    monkeypatch.setattr(core, "plot_families", lambda table, out: [])  # figures cost 0.3 s
    run = tmp_path / "h100-sxm" / BUNDLED.name
    if not run.exists():
        copy_run(tmp_path, ("reduction",))
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "o"
    code, _, err = cli(["validate", "--device", "h100-sxm", "--run", str(run), "--views",
                        "analytical", f"{option}={value}", "--out", str(out)], capsys)
    if code == 0:
        number = float(value)
        assert math.isfinite(number) and number >= 0
        assert (out / "validate.csv").is_file()
    else:
        assert one_line_error(code, err) and option in err, err


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--power-seconds", "--deadline-s"]), value=_numbers)
def test_calibrate_number_options_any_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    option: str, value: str,
) -> None:
    monkeypatch.setattr(runner, "require_cupy", no_gpu)
    code, _, err = cli(["calibrate", f"{option}={value}", "--out", str(tmp_path / "c")], capsys)
    assert one_line_error(code, err), err
    if "CuPy" not in err:  # refused before the GPU was looked for: the option is named
        assert option in err, err
    else:
        assert math.isfinite(float(value)) and float(value) > 0
    assert not (tmp_path / "c").exists()
