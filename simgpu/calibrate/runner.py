"""Run the calibration benchmarks on the local GPU and write one run folder.

``run_calibration`` is what ``simgpu calibrate`` calls. It needs CuPy and a CUDA GPU, and imports
neither the simulator nor SimPy, so it runs on a machine where only CuPy, NumPy and pandas exist
(``PYTHONPATH=. python -m simgpu calibrate --quick`` from a checkout).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import simgpu
from simgpu.calibrate.bench_compute import Gemm, Gemv, Reduction, Transpose
from simgpu.calibrate.bench_memory import (
    CacheBandwidth,
    LaunchAndIdle,
    PCIeCopies,
    PointerChase,
    SharedBanks,
    Stream,
)
from simgpu.calibrate.context import LEVELS, Benchmark, Context
from simgpu.calibrate.dataset import RunDir, new_run_id
from simgpu.calibrate.gpu import (
    device_name_for,
    device_properties,
    git_commit,
    hash_uuid,
    kernels_dir,
    require_cupy,
)
from simgpu.calibrate.power import PowerMeter
from simgpu.errors import GPUUnavailableError, SimgpuError
from simgpu.io import MAX_NAME, check_output_dir, plain_name

#: Every benchmark, in the order a run measures them (cheap and fundamental first).
BENCHMARKS: dict[str, Benchmark] = {
    b.table: b
    for b in (
        LaunchAndIdle(),
        PointerChase(),
        Stream(),
        CacheBandwidth(),
        SharedBanks(),
        PCIeCopies(),
        Transpose(),
        Reduction(),
        Gemv(),
        Gemm(),
    )
}


def _progress(total: int, desc: str) -> Any:
    try:  # a dependency, but a bare GPU machine may lack it: plain progress lines then
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="pt", file=sys.stderr, mininterval=2.0)
    except ImportError:  # pragma: no cover - tqdm is a dependency, but the GPU box may lack it
        class _Plain:
            def __init__(self) -> None:
                self.n = 0

            def update(self, k: int = 1) -> None:
                self.n += k
                print(f"{desc}: {self.n}/{total}", file=sys.stderr, flush=True)

            def close(self) -> None:
                pass

        return _Plain()


def _kernel_hashes() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted(kernels_dir().glob("*.cu"))
    }


def provenance(level: str, only: Sequence[str], power_info: dict[str, Any]) -> dict[str, Any]:
    props = device_properties()
    uuid = power_info.pop("uuid", None)
    return {
        "gpu": {**props, "uuid_sha256_16": hash_uuid(uuid) if uuid else None, **power_info},
        "software": {
            "simgpu_version": simgpu.__version__,
            "git_commit": git_commit(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
            "kernel_sources_sha256_16": _kernel_hashes(),
        },
        "plan": {"level": level, "benchmarks": list(only)},
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


#: Longest power window a benchmark may ask for (a day: far beyond any use).
MAX_POWER_SECONDS = 86400.0


def check_arguments(
    *,
    level: str = "quick",
    only: Sequence[str] | None = None,
    out_root: Path = Path("calibration"),
    resume: Path | None = None,
    device: str | None = None,
    power_seconds: float = 1.0,
    run_tag: str = "",
    deadline_s: float | None = None,
) -> list[str]:
    """The benchmarks a run of these arguments measures, or a SimgpuError naming the first
    argument that is not usable: a level, benchmarks, power window and deadline out of range,
    a device name or tag that is not a plain name (they name the run's folder), an output
    folder that is a file, a run to resume that is not a resumable run."""
    if level not in LEVELS:
        raise SimgpuError(f"unknown level {level!r}; expected one of {LEVELS}")
    if deadline_s is not None and not (math.isfinite(deadline_s) and deadline_s > 0):
        raise SimgpuError(f"deadline_s = {deadline_s}, expected > 0 seconds (finite)")
    if not (math.isfinite(power_seconds) and 0 < power_seconds <= MAX_POWER_SECONDS):
        raise SimgpuError(f"power_seconds = {power_seconds}, expected > 0 and <= "
                          f"{MAX_POWER_SECONDS:g} seconds")
    if device is not None:
        plain_name(device, "device name")
    if run_tag:
        plain_name(run_tag, "run tag")
        if len(new_run_id(tag=run_tag)) > MAX_NAME:
            raise SimgpuError(f"run tag {run_tag[:20]!r}...: too long for a run id (at most "
                              f"{MAX_NAME} characters with the time)")
    check_output_dir(out_root, "calibration folder")
    if resume is not None:
        run = RunDir.open(resume)
        if run.manifest()["status"] == "incomplete":
            raise SimgpuError(f"{run.manifest_path}: status is 'incomplete': the run was closed "
                              "and cannot be resumed; start a new run")
        plan_level, plan_names = run.plan()
        if plan_level != level:
            raise SimgpuError(f"{resume}: run was started at level {plan_level!r}, not "
                              f"{level!r}")
    if only:
        names = list(only)
    elif resume is not None:  # a resumed run keeps the plan it was started with
        names = plan_names
    else:
        names = list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SimgpuError(f"unknown benchmark(s) {unknown}; available: {list(BENCHMARKS)}")
    return names


def run_calibration(
    *,
    level: str = "quick",
    only: Sequence[str] | None = None,
    out_root: Path = Path("calibration"),
    resume: Path | None = None,
    device: str | None = None,
    power_seconds: float = 1.0,
    run_tag: str = "",
    deadline_s: float | None = None,
) -> RunDir:
    """Measure the selected benchmarks and return the run folder: finished, or, where
    ``deadline_s`` seconds ran out first, stopped between two points and resumable (its
    manifest's status stays "running" and says where and why it stopped).

    Every argument is checked before the GPU is touched (:func:`check_arguments`)."""
    names = check_arguments(level=level, only=only, out_root=out_root, resume=resume,
                            device=device, power_seconds=power_seconds, run_tag=run_tag,
                            deadline_s=deadline_s)
    deadline = None if deadline_s is None else time.monotonic() + deadline_s
    cp = require_cupy()
    try:
        meter: PowerMeter | None = PowerMeter()
    except GPUUnavailableError as exc:
        print(f"simgpu: warning: no power readings: {exc}", file=sys.stderr)
        meter = None
    power_info = meter.describe() if meter else {}
    props = device_properties()
    gpu_name = str(props["gpu_name"])
    dev_name = device or device_name_for(gpu_name)

    if resume is not None:
        run = RunDir.open(resume)
        m = run.manifest()
        gpu = m["provenance"].get("gpu")
        was = gpu.get("uuid_sha256_16") if isinstance(gpu, dict) else None
        now = hash_uuid(power_info["uuid"]) if power_info.get("uuid") else None
        if was and now and was != now:
            raise SimgpuError(f"{resume}: run was measured on another GPU; start a new run")
        sessions = m.get("sessions", [])
        sessions = list(sessions) if isinstance(sessions, list) else []
        sessions.append({"resumed_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                         "git_commit": git_commit()})
        run.update_manifest(sessions=sessions, status="running")
    else:
        prov = provenance(level, names, dict(power_info))
        run = RunDir.create(out_root, dev_name, new_run_id(tag=run_tag), prov)
    print(f"simgpu: calibration run {run.path} ({gpu_name}, level {level})", file=sys.stderr)

    ctx = Context(cp=cp, device=dev_name, gpu_name=gpu_name, props=props, level=level,
                  power=meter, power_seconds=power_seconds)
    if not measure_tables(run, ctx, names, level=level, deadline=deadline):
        run.update_manifest(stopped_utc=datetime.now(UTC).isoformat(timespec="seconds"),
                            stopped_reason=f"deadline of {deadline_s:g} s reached")
        print(f"simgpu: stopped at the {deadline_s:g} s deadline; continue on this GPU with "
              f"'simgpu calibrate --resume {run.path}', or keep what was measured with "
              f"'simgpu calibration-close {run.path} --reason ...'", file=sys.stderr)
        return run
    run.update_manifest(status="complete",
                        finished_utc=datetime.now(UTC).isoformat(timespec="seconds"))
    return run


def measure_tables(
    run: RunDir,
    ctx: Any,
    names: Sequence[str],
    *,
    level: str,
    benchmarks: Mapping[str, Any] | None = None,
    deadline: float | None = None,
) -> bool:
    """Measure every unfinished table of ``names`` into ``run``, skipping points already there;
    False if it stopped because ``time.monotonic()`` reached ``deadline`` (checked before each
    point; the table being measured stays unfinished, to be resumed), True when all are done.

    Each point is appended durably before the next starts; a point that raises, or whose rows
    the table's schema refuses (a value out of its column's range), is recorded in the
    manifest's ``failed_points`` and the run goes on. A table none of whose points gave a row is
    left unwritten (a table always has a row). ``ctx`` is the :class:`Context` (anything
    with ``free()`` that the benchmarks accept); ``benchmarks`` defaults to :data:`BENCHMARKS`.
    """
    table = BENCHMARKS if benchmarks is None else benchmarks
    earlier = run.manifest().get("failed_points", [])
    failures: list[dict[str, Any]] = list(earlier) if isinstance(earlier, list) else []
    for name in names:
        if name in run.finished_tables():
            continue
        bench = table[name]
        done = run.partial_points(name)
        points = bench.points(ctx)
        bar = _progress(len(points), name)
        t0 = time.perf_counter()
        for point in points:
            key = json.dumps(point, sort_keys=True)
            if key in done:
                bar.update(1)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                bar.close()
                ctx.free()
                return False
            try:
                rows = bench.run(ctx, point)
                run.append_point(name, key, rows)
            except Exception as exc:  # one bad point must not lose the run
                if exc.__class__.__name__ == "OutOfMemoryError":
                    ctx.free()
                failures.append({"table": name, "point": point, "error": repr(exc),
                                 "trace": traceback.format_exc(limit=3)})
                print(f"\nsimgpu: {name} {point}: {exc!r}", file=sys.stderr)
                run.update_manifest(failed_points=failures)
                bar.update(1)
                continue
            bar.update(1)
        bar.close()
        ctx.free()
        if not any(run.partial_points(name).values()):
            print(f"simgpu: {name}: no point gave a row; no table written", file=sys.stderr)
            continue
        run.finish_table(name, {"level": level, "seconds": round(time.perf_counter() - t0, 1)})
    return True
