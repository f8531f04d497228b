"""Sweep engine on local processes: every finished point on disk, reruns skip them, a dead
worker loses only its point; device knobs and the ``simgpu sweep`` command."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from simgpu import devices
from simgpu.errors import SimgpuError
from simgpu.io import POINTS_FILE, point_key
from simgpu.sweep import FAILED_FILE, ModulePoint, run_points
from simgpu.sweep.model import PCIE_GEN, device_with, evaluate

#: A point module for the workers: squares x; ``die`` kills the worker process (once when a
#: marker file is given, every time otherwise); ``boom`` raises.
POINT_MODULE = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    def run_point(params):
        if params.get("die"):
            marker = params.get("marker")
            if not marker or not Path(marker).exists():
                if marker:
                    Path(marker).write_text("died once")
                os._exit(3)
        if params.get("boom"):
            raise ValueError("boom at %s" % params["x"])
        time.sleep(params.get("sleep", 0.0))
        return [{"x": params["x"], "y": params["x"] ** 2, "pid": os.getpid()}]
    """
)


@pytest.fixture()
def point_fn(tmp_path: Path) -> ModulePoint:
    path = tmp_path / "points_mod.py"
    path.write_text(POINT_MODULE)
    return ModulePoint(str(path))


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / POINTS_FILE).read_text().splitlines()]


def test_serial_run_writes_each_point_and_rerun_skips(tmp_path, point_fn):
    points = [{"x": i} for i in range(12)]
    rep = run_points(point_fn, points, tmp_path / "out", workers=0, progress=False)
    assert (rep.points_run, rep.points_skipped, rep.points_failed) == (12, 0, 0)
    recs = _lines(tmp_path / "out")
    assert sorted(r["rows"][0]["y"] for r in recs) == [i * i for i in range(12)]
    assert {r["key"] for r in recs} == {point_key(p) for p in points}
    again = run_points(point_fn, points + [{"x": 12}], tmp_path / "out", workers=0,
                       progress=False)
    assert (again.points_run, again.points_skipped) == (1, 12)
    assert len(_lines(tmp_path / "out")) == 13


def test_process_pool_uses_workers_and_records_failures(tmp_path, point_fn):
    points = [{"x": i, "sleep": 0.05} for i in range(16)] + [{"x": 99, "boom": True}]
    rep = run_points(point_fn, points, tmp_path / "out", workers=2, progress=False)
    assert rep.executor == "processes" and rep.workers == 2
    assert rep.points_run == 16 and rep.points_failed == 1
    recs = _lines(tmp_path / "out")
    assert len({r["rows"][0]["pid"] for r in recs}) == 2  # both processes did work
    failed = [json.loads(s) for s in (tmp_path / "out" / FAILED_FILE).read_text().splitlines()]
    assert failed[0]["key"] == point_key({"x": 99, "boom": True})
    assert "boom at 99" in failed[0]["reason"]


def test_dead_worker_loses_only_its_point(tmp_path, point_fn):
    marker = tmp_path / "marker"
    points = [{"x": i, "sleep": 0.02} for i in range(20)]
    points.insert(7, {"x": 100, "die": True, "marker": str(marker)})  # dies once, then works
    points.insert(13, {"x": 200, "die": True})  # dies every time
    rep = run_points(point_fn, points, tmp_path / "out", workers=2, max_attempts=2,
                     progress=False)
    assert marker.exists()
    assert rep.points_failed == 1 and rep.points_run == 21
    keys = [r["key"] for r in _lines(tmp_path / "out")]
    assert len(keys) == len(set(keys)) == 21  # every other point once, none lost or doubled
    assert point_key(points[13]) not in keys
    assert "died 2 times" in rep.failures[0]["reason"]


def test_knobs_change_the_device_consistently():
    base = devices.get("h100-sxm")
    fast = device_with("h100-sxm", {"hbm_bandwidth_GBps": 6700.0, "l2_size_MiB": 100.0})
    assert fast.dram.peak_bandwidth_GBps == 6700.0
    # pin rate and clock period scale together: bus_width x rate / 8 stays the peak
    assert fast.dram.bus_width_bits * fast.dram.data_rate_Gbps / 8 == pytest.approx(6700.0)
    assert fast.dram.timing.tCK_ps == pytest.approx(base.dram.timing.tCK_ps / 2, rel=1e-3)
    assert fast.l2.size_MiB == 100.0
    for gen, (gts, code) in PCIE_GEN.items():
        link = device_with("h100-sxm", {"pcie_gen": gen}).host_link
        assert link.bandwidth_per_direction_GBps == pytest.approx(gts * 16 * code / 8)
    # PCIe 3.0 x16: 15.75 GB/s per direction (8 GT/s, 128b/130b)
    assert device_with("h100-sxm", {"pcie_gen": 3}).host_link.bandwidth_per_direction_GBps == (
        pytest.approx(15.754, abs=1e-3))


def test_bad_overrides_name_the_field():
    with pytest.raises(SimgpuError, match="no field 'size_MB'"):
        device_with("h100-sxm", {"l2.size_MB": 10})
    with pytest.raises(SimgpuError, match="peak_bandwidth_GBps"):
        device_with("h100-sxm", {"dram.peak_bandwidth_GBps": 100.0})  # inconsistent with rate
    with pytest.raises(SimgpuError, match="pcie_gen"):
        device_with("h100-sxm", {"pcie_gen": 9})
    with pytest.raises(SimgpuError, match="not one of workload 'gemm'"):
        evaluate({"workload": "gemm", "op": "triad"})


def test_stream_bandwidth_follows_the_hbm_knob():
    rows = [evaluate({"workload": "stream", "n_elements": 1 << 26, "hbm_bandwidth_GBps": bw})[0]
            for bw in (1000.0, 2000.0, 4000.0)]
    for r in rows:
        assert r["level"] == "DRAM" and r["bound"] == "dram"
        assert r["bandwidth_GBps"] <= r["hbm_bandwidth_GBps"]
        assert r["bandwidth_GBps"] > 0.9 * r["hbm_bandwidth_GBps"]  # 768 MiB: overhead small


def test_sweep_cli_writes_table(tmp_path, capsys):
    from simgpu.cli import main

    out = tmp_path / "sw"
    rc = main(["sweep", "--workload", "pcie_copy", "--set", "pcie_gen=3,4,5",
               "--set", "n_bytes=1000000000", "--workers", "0", "--out", str(out),
               "--no-progress", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["points_run"] == 3
    import pandas as pd

    df = pd.read_csv(out / "sweep.csv").sort_values("pcie_gen")
    # each generation doubles the line rate: 1 GB copies take about half as long
    t = df["time_s"].to_numpy()
    assert t[0] / t[1] == pytest.approx(2.0, rel=0.02)
    assert t[1] / t[2] == pytest.approx(2.0, rel=0.02)
    assert json.loads((out / "config.json").read_text())["rows"] == 3
    assert main(["sweep", "--workload", "gemm", "--set", "nonsense=1", "--out",
                 str(tmp_path / "x")]) == 2


def test_a_torn_last_line_costs_only_its_point(tmp_path, point_fn):
    out = tmp_path / "out"
    points = [{"x": i} for i in range(5)]
    run_points(point_fn, points[:3], out, workers=0, progress=False)
    with (out / POINTS_FILE).open("a") as fh:  # a kill in the middle of writing point 3
        fh.write('{"key": "{\\"x\\": 3}", "rows": [{"x": 3')
    rep = run_points(point_fn, points, out, workers=0, progress=False)
    assert (rep.points_skipped, rep.points_run) == (3, 2)
    keys = [r["key"] for r in [json.loads(s) for s in
                                (out / POINTS_FILE).read_text().splitlines()[:3]]]
    assert keys == [point_key(p) for p in points[:3]]
    from simgpu.sweep import load_table

    assert sorted(load_table(out, points)["x"]) == [0, 1, 2, 3, 4]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (an exited process its parent has not reaped yet, a zombie,
    does not)."""
    import os

    if Path("/proc/self").exists():
        try:
            return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="a Windows process keeps its parent's pid")
def test_worker_processes_end_with_a_parent_killed_by_a_signal(tmp_path: Path) -> None:
    # a sweep or validate killed by SIGTERM cannot shut its pool down: its workers must not run
    # on with their tasks (here a 60 s one) beside whatever runs next
    import subprocess
    import time

    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""\
        import os, sys, time
        from simgpu.sweep.engine import worker_pool
        if __name__ == "__main__":
            pool = worker_pool(1)
            pid = pool.submit(os.getpid).result()
            pool.submit(time.sleep, 60)
            print(pid, flush=True)
            time.sleep(60)
        """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        parent.terminate()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        parent.kill()
