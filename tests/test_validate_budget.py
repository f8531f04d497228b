"""simgpu validate's wall budget for the simulated view: compiling the simulator on a first run
is not spent from it (simgpu.sim.compiletime)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from simgpu import analytical, devices
from simgpu.calibrate.dataset import RunDir
from simgpu.sim.compiletime import compile_seconds
from simgpu.validate import families
from simgpu.validate.core import validate_run

pytest.importorskip("simpy")


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


def _small_reductions(tmp_path: Path) -> Path:
    spec = devices.get("h100-sxm")
    sizes = np.array([1 << 16, 1 << 17, 1 << 18])
    est = analytical.reduction(spec, sizes)
    run = RunDir.create(tmp_path, "h100-sxm", "20260101T000000Z", {"gpu": {}})
    for n, t in zip(sizes, est["time_s"].to_numpy(), strict=True):
        ms = float(t) * 1e3
        run.append_point("reduction", str(n), [{
            "n": int(n), "bytes_moved": int(4 * n), "blocks": 264, "time_ms": ms,
            "time_ms_p10": ms, "time_ms_p90": ms, "reps": 10,
            "bandwidth_GBps": 4 * n / (ms * 1e6), "rel_err": 0.0, "check_ok": True,
        }])
    run.finish_table("reduction")
    run.update_manifest(status="complete")
    return run.path


def test_compiling_is_not_spent_from_the_budget(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of a millisecond replays one row (the first is started whatever the budget);
    when all the time went to compiling, as on a first run, every row is replayed."""
    spec = devices.get("h100-sxm")
    run = _small_reductions(tmp_path)
    kw = {"only": ["reduction"], "views": ["simulated"], "sim_budget_s": 1e-3, "workers": 0}
    table, notes = validate_run(spec, run, **kw)
    assert table["simulated"].notna().sum() == 1, notes
    # every second of the replays spent compiling
    monkeypatch.setattr(families, "compile_seconds", time.perf_counter)
    table, notes = validate_run(spec, run, **kw)
    assert table["simulated"].notna().sum() == 3, notes
    assert "of it compiling, outside the budget" in notes[("reduction", "simulated")]
