"""Sweep engine on a Dask LocalCluster: 200+ points, and a worker killed mid-run loses no
finished point (its own point is rescheduled)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from simgpu.io import POINTS_FILE, point_key
from simgpu.sweep import ModulePoint, run_points

pytest.importorskip("distributed")

POINT_MODULE = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    def run_point(params):
        marker = params.get("kill_once")
        if marker and not Path(marker).exists():
            Path(marker).write_text("killed")
            time.sleep(0.2)  # let the other worker finish points meanwhile
            os._exit(9)  # the worker process dies mid-run; its nanny starts a new one
        time.sleep(0.002)
        return [{"x": params["x"], "y": 3 * params["x"] + 1, "pid": os.getpid()}]
    """
)


@pytest.fixture()
def point_fn(tmp_path: Path) -> ModulePoint:
    path = tmp_path / "dask_points.py"
    path.write_text(POINT_MODULE)
    return ModulePoint(str(path))


def test_dask_local_cluster_survives_a_killed_worker(tmp_path, point_fn):
    marker = tmp_path / "killed"
    points = [{"x": i} for i in range(220)]
    points.insert(60, {"x": -1, "kill_once": str(marker)})
    out = tmp_path / "out"
    rep = run_points(point_fn, points, out, dask_local=True, workers=2, progress=False)
    assert marker.exists(), "the killing point never ran"
    assert rep.executor == "dask" and rep.workers == 2
    assert rep.points_failed == 0 and rep.points_run == len(points)
    recs = [json.loads(line) for line in (out / POINTS_FILE).read_text().splitlines()]
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)) == len(points)  # none lost, none written twice
    assert set(keys) == {point_key(p) for p in points}
    for r in recs:
        row = r["rows"][0]
        assert row["y"] == 3 * row["x"] + 1
    # the point that killed its worker was finished by a later worker process
    killer = next(r for r in recs if r["rows"][0]["x"] == -1)
    assert len({r["rows"][0]["pid"] for r in recs}) >= 2
    assert killer["rows"][0]["pid"] > 0
    # a rerun finds everything done
    again = run_points(point_fn, points, out, dask_local=True, workers=1, progress=False)
    assert again.points_skipped == len(points) and again.points_run == 0
