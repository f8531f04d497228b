"""Calibration run folders without a GPU: atomic writes, resume, schema errors, closing early."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simgpu.calibrate import dataset as ds
from simgpu.calibrate.dataset import RunDir, check_row, read_table
from simgpu.calibrate.runner import measure_tables
from simgpu.calibrate.schema import TABLES, markdown_tables
from simgpu.cli import main
from simgpu.errors import DatasetError

REPO = Path(__file__).resolve().parent.parent


def _reduction_row(n: int, time_ms: float = 0.01) -> dict[str, Any]:
    return {
        "n": n,
        "bytes_moved": 4 * n,
        "blocks": max(1, n // 1024),
        "time_ms": time_ms,
        "time_ms_p10": time_ms * 0.9,
        "time_ms_p90": time_ms * 1.1,
        "reps": 50,
        "bandwidth_GBps": 4 * n / (time_ms * 1e6),
        "rel_err": 1e-7,
        "check_ok": True,
    }


def _make_run(tmp_path: Path, run_id: str = "20260101T000000Z") -> RunDir:
    return RunDir.create(tmp_path, "h100-sxm", run_id, {"gpu": {"uuid_sha256_16": "abc"}})


def test_reduction_row_matches_schema() -> None:
    # the helper above must stay a valid row, or the other tests test nothing
    assert set(_reduction_row(1)) == set(TABLES["reduction"].names)


def test_points_finish_into_a_table_that_reads_back(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    sizes = [1 << 10, 1 << 20, 3 << 20]
    for n in sizes:
        run.append_point("reduction", json.dumps({"n": n}), [_reduction_row(n)])
    path = run.finish_table("reduction", {"level": "quick"})
    df = run.read_table("reduction")
    assert list(df["n"]) == sizes
    assert df["check_ok"].tolist() == [True, True, True]
    assert run.manifest()["tables"]["reduction"]["points"] == 3
    assert not (run.path / ds.PARTIAL_DIR / "reduction.jsonl").exists()
    # a finished table is never rewritten, and no more points are accepted
    with pytest.raises(DatasetError, match="never rewritten"):
        run.finish_table("reduction")
    with pytest.raises(DatasetError, match="already finished"):
        run.append_point("reduction", "x", [_reduction_row(5)])
    assert path.read_text().count("\n") == 4


def test_run_folder_is_never_reused(tmp_path: Path) -> None:
    _make_run(tmp_path)
    with pytest.raises(DatasetError, match="never overwritten"):
        _make_run(tmp_path)


@pytest.mark.parametrize("bad_id", ["", "../escape", "a b", "-lead"])
def test_bad_run_ids_are_refused(tmp_path: Path, bad_id: str) -> None:
    with pytest.raises(DatasetError, match="run id"):
        RunDir.create(tmp_path, "h100-sxm", bad_id, {})


def test_torn_last_line_is_dropped_and_appending_goes_on(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    run.append_point("reduction", "a", [_reduction_row(1024)])
    partial = run.path / ds.PARTIAL_DIR / "reduction.jsonl"
    with partial.open("a") as fh:  # an interruption in the middle of a write
        fh.write('{"key": "b", "rows": [{"n": 20')
    points = run.partial_points("reduction")
    assert list(points) == ["a"]
    run.append_point("reduction", "b", [_reduction_row(2048)])
    assert list(run.partial_points("reduction")) == ["a", "b"]


def test_corrupt_middle_line_names_file_and_line(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    run.append_point("reduction", "a", [_reduction_row(1024)])
    partial = run.path / ds.PARTIAL_DIR / "reduction.jsonl"
    text = partial.read_text()
    partial.write_text("garbage\n" + text)
    with pytest.raises(DatasetError, match=r"reduction\.jsonl: line 1"):
        run.partial_points("reduction")


def test_rows_are_checked_before_they_reach_disk(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    bad = _reduction_row(1024)
    bad["n"] = "many"
    with pytest.raises(DatasetError, match=r"column 'n': got 'many', expected an integer"):
        run.append_point("reduction", "a", [bad])
    extra = dict(_reduction_row(1024), colour="red")
    with pytest.raises(DatasetError, match="unknown column"):
        run.append_point("reduction", "a", [extra])
    missing = _reduction_row(1024)
    del missing["time_ms"]
    with pytest.raises(DatasetError, match="'time_ms' is missing"):
        run.append_point("reduction", "a", [missing])
    assert run.partial_points("reduction") == {}


def test_unknown_table_is_an_error(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    with pytest.raises(DatasetError, match="unknown table 'nope'"):
        run.append_point("nope", "a", [{}])


def test_read_table_errors_name_file_line_and_column(tmp_path: Path) -> None:
    schema = TABLES["reduction"]
    good = tmp_path / "good.csv"
    good.write_text(ds.rows_to_csv(schema, [check_row(schema, _reduction_row(8), "t")]))
    assert len(read_table(good, schema)) == 1

    lines = good.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("reps")] = "fifty"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], lines[1], ",".join(row)]) + "\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: line 3: .*'reps': got 'fifty'"):
        read_table(bad, schema)

    short = tmp_path / "short.csv"
    short.write_text(lines[0] + "\n1,2\n")
    with pytest.raises(DatasetError, match=r"short\.csv: line 2: 2 fields"):
        read_table(short, schema)

    wrong_header = tmp_path / "header.csv"
    wrong_header.write_text(lines[0].replace("reps", "repetitions") + "\n")
    with pytest.raises(DatasetError, match=r"missing columns \['reps'\].*\['repetitions'\]"):
        read_table(wrong_header, schema)

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match="empty file"):
        read_table(empty, schema)


def test_manifest_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no manifest"):
        RunDir.open(tmp_path)
    run = _make_run(tmp_path)
    run.manifest_path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"manifest\.json: line 1"):
        run.manifest()


class _FakeBench:
    """A benchmark that yields reduction rows and can be told to stop after some points."""

    table = "reduction"

    def __init__(self, sizes: list[int], stop_after: int | None = None, fail: int | None = None):
        self.sizes = sizes
        self.stop_after = stop_after
        self.fail = fail
        self.ran: list[int] = []

    def points(self, ctx: Any) -> list[dict[str, Any]]:
        return [{"n": n} for n in self.sizes]

    def run(self, ctx: Any, point: dict[str, Any]) -> list[dict[str, Any]]:
        if self.stop_after is not None and len(self.ran) == self.stop_after:
            raise KeyboardInterrupt  # the session ends here
        if point["n"] == self.fail:
            raise RuntimeError("kernel failed")
        self.ran.append(point["n"])
        return [_reduction_row(point["n"])]


class _FakeCtx:
    def free(self) -> None:
        pass


def test_interrupted_measurement_resumes_without_repeating_points(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    sizes = [1 << k for k in range(10, 16)]
    first = _FakeBench(sizes, stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        measure_tables(run, _FakeCtx(), ["reduction"], level="quick",
                       benchmarks={"reduction": first})
    assert first.ran == sizes[:4]
    assert "reduction" not in run.finished_tables()

    second = _FakeBench(sizes)
    measure_tables(RunDir.open(run.path), _FakeCtx(), ["reduction"], level="quick",
                   benchmarks={"reduction": second})
    assert second.ran == sizes[4:]
    assert list(run.read_table("reduction")["n"]) == sizes


def test_a_deadline_stops_between_points_and_the_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from simgpu.calibrate import runner

    run = _make_run(tmp_path)
    sizes = [1 << k for k in range(10, 16)]
    first = _FakeBench(sizes)
    # a clock that advances one second per measured point
    clock = types.SimpleNamespace(monotonic=lambda: float(len(first.ran)),
                                  perf_counter=runner.time.perf_counter)
    monkeypatch.setattr(runner, "time", clock)
    done = measure_tables(run, _FakeCtx(), ["reduction"], level="quick",
                          benchmarks={"reduction": first}, deadline=2.0)
    assert done is False and first.ran == sizes[:2]
    assert "reduction" not in run.finished_tables()
    monkeypatch.undo()
    second = _FakeBench(sizes)
    assert measure_tables(RunDir.open(run.path), _FakeCtx(), ["reduction"], level="quick",
                          benchmarks={"reduction": second})
    assert second.ran == sizes[2:]
    assert list(run.read_table("reduction")["n"]) == sizes


def test_a_failing_point_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    sizes = [1024, 2048, 4096]
    bench = _FakeBench(sizes, fail=2048)
    measure_tables(run, _FakeCtx(), ["reduction"], level="quick", benchmarks={"reduction": bench})
    assert list(run.read_table("reduction")["n"]) == [1024, 4096]
    failed = run.manifest()["failed_points"]
    assert [f["point"] for f in failed] == [{"n": 2048}]
    assert "kernel failed" in failed[0]["error"]


def test_close_incomplete_keeps_points_and_marks_the_run(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    run.append_point("reduction", "a", [_reduction_row(1024)])
    with pytest.raises(DatasetError, match="reason"):
        run.close_incomplete("  ")
    assert run.close_incomplete("GPU handed back") == ["reduction"]
    m = run.manifest()
    assert m["status"] == "incomplete"
    assert m["tables"]["reduction"]["complete"] is False
    assert m["closed_reason"] == "GPU handed back"
    assert len(run.read_table("reduction")) == 1
    with pytest.raises(DatasetError, match="only a running run"):
        run.close_incomplete("again")


def test_calibrate_without_cupy_stops_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - only on GPU machines
        pytest.skip("CuPy is installed here")
    code = main(["calibrate", "--quick", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "calibration needs CuPy and a CUDA GPU" in err
    assert "cupy-cuda12x or cupy-cuda13x" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_schema_doc_lists_every_table_and_column() -> None:
    text = (REPO / "calibration" / "SCHEMA.md").read_text()
    assert markdown_tables() in text


@pytest.mark.parametrize(
    "run_dir", sorted(p.parent for p in (REPO / "calibration").glob("*/*/manifest.json"))
)
def test_committed_runs_read_back_against_the_schema(run_dir: Path) -> None:
    run = RunDir.open(run_dir)
    manifest = run.manifest()
    assert manifest["status"] in ("complete", "incomplete")
    for name in manifest["tables"]:
        df = run.read_table(name)
        assert len(df) == manifest["tables"][name]["rows"]


def test_headline_reports_cache_bandwidth(tmp_path: Path) -> None:
    from simgpu.calibrate.summary import headline

    run = _make_run(tmp_path)
    for level, bw in (("L1", 30000.0), ("L2", 9000.0)):
        row: dict[str, Any] = {"level": level, "footprint_B": 1 << 20, "per_block_B": 0,
                               "passes": 8, "blocks": 264, "threads_per_block": 256,
                               "bytes_moved": 8 << 20, "time_ms": 0.01, "time_ms_p10": 0.01,
                               "time_ms_p90": 0.01, "reps": 10, "bandwidth_GBps": bw,
                               "bytes_per_clk_per_SM": bw / 132 / 1.98}
        run.append_point("cachebw", level, [row])
    run.finish_table("cachebw")
    figures = {name: value for name, value, _ in headline(run)}
    assert figures["L2 read bandwidth [GB/s]"] == "9000"
    assert figures["L1 read bandwidth [GB/s]"] == "30000"
