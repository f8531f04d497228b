"""Run many independent points, each ``fn(params) -> list[dict]``, and keep every finished one.

Executors:

``serial``
    in this process, one point after another (``workers=0``);
``processes``
    a local :class:`concurrent.futures.ProcessPoolExecutor` (the default);
``dask``
    a Dask ``distributed`` cluster: an existing scheduler (``scheduler="tcp://host:port"``) or a
    ``LocalCluster`` started here (``dask_local=True``).

Whatever the executor, the driver (this process) appends each point to ``<out>/.points.jsonl``
the moment its result arrives, one JSON line ``{"key": ..., "rows": [...]}`` written and flushed
(:data:`simgpu.io.POINTS_FILE`; fsynced at most every half second and at the end, see
:class:`simgpu.io.JsonlAppender`), so finished points are in the file before the next one is
awaited, and a rerun skips them. A worker that dies takes only the point it was computing: a
broken process pool is rebuilt and the unfinished points resubmitted; Dask reschedules the task
on another worker by itself. A point that kills its worker ``max_attempts`` times, or raises, is
recorded in ``<out>/.failed.jsonl`` with the reason and left out of the table.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import multiprocessing as mp
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from simgpu.errors import SimgpuError
from simgpu.io import (
    POINTS_FILE,
    JsonlAppender,
    append_jsonl,
    check_output_dir,
    load_points,
    plain,
    point_key,
)

FAILED_FILE = ".failed.jsonl"

PointFn = Callable[[dict[str, Any]], list[dict[str, Any]]]


class SweepError(SimgpuError):
    """A sweep could not run (bad executor settings, a scheduler that cannot be reached)."""


#: The most points a grid may have unless the caller raises the limit (``--max-points``): about
#: a day of analytical points at the 10-20 points/s a sweep worker manages, and the point
#: records of a list this long already take hundreds of MB.
MAX_POINTS = 1_000_000


def parse_sets(items: Sequence[str], convert: Callable[[str, str], Any]) -> dict[str, list[Any]]:
    """``["KEY=V1,V2", ...]`` (the ``--set`` options) as grid axes, each value through
    ``convert(key, text)``. A key given twice is an error (one axis per key), as are an empty
    key and a key without values."""
    grid: dict[str, list[Any]] = {}
    given: dict[str, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        texts = [v.strip() for v in text.split(",") if v.strip()]
        if not sep or not key or not texts:
            raise SimgpuError(f"--set {item!r}: expected KEY=V1,V2,... with at least one value")
        if key in grid:
            raise SimgpuError(
                f"--set {given[key]!r} and --set {item!r}: {key} given twice; give one axis per"
                f" key (--set {key}=V1,V2,...)"
            )
        grid[key] = [convert(key, t) for t in texts]
        given[key] = item
    return grid


def grid_size(grid: Mapping[str, Sequence[Any]]) -> int:
    """The number of points of a grid."""
    return math.prod(len(v) for v in grid.values())


def check_grid_size(grid: Mapping[str, Sequence[Any]], limit: int = MAX_POINTS) -> int:
    """The grid's number of points; a clear error above ``limit`` (before any is built)."""
    n = grid_size(grid)
    if n > limit:
        axes = " x ".join(f"{len(v)} {k}" for k, v in grid.items() if len(v) > 1)
        raise SimgpuError(f"the grid has {n:,} points ({axes}), more than {limit:,}; narrow it"
                          " or raise the limit (--max-points)")
    return n


def grid_points(grid: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of the grid's values, in declaration order (the last axis fastest)."""
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


@dataclass
class SweepReport:
    """What a sweep did: counts, wall time, the executor and the failures."""

    out_dir: Path
    executor: str
    workers: int
    points_total: int
    points_skipped: int
    points_run: int
    points_failed: int
    wall_s: float
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def points_per_s(self) -> float:
        return self.points_run / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "executor": self.executor,
            "workers": self.workers,
            "points_total": self.points_total,
            "points_skipped": self.points_skipped,
            "points_run": self.points_run,
            "points_failed": self.points_failed,
            "wall_s": self.wall_s,
            "points_per_s": self.points_per_s,
            "failures": self.failures,
        }


# --- picklable point functions ------------------------------------------------------------------

_MODULES: dict[str, ModuleType] = {}


def load_module_file(path: str | Path, name: str | None = None) -> ModuleType:
    """Import a Python file as a module (cached per process), e.g. ``experiments/foo.py``."""
    path = Path(path).resolve()
    key = str(path)
    if key in _MODULES:
        return _MODULES[key]
    if not path.is_file():
        raise SweepError(f"{path}: no such experiment file")
    mod_name = name or f"simgpu_experiment_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise SweepError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(mod_name, None)
        raise
    _MODULES[key] = module
    return module


@dataclass(frozen=True)
class ModulePoint:
    """``run_point`` of the module in a file, as a picklable callable (workers import the file).

    Workers must see the same file system path (true for local processes and a LocalCluster;
    on a remote cluster, the same checkout at the same path).
    """

    path: str
    function: str = "run_point"

    def __call__(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        module = load_module_file(self.path)
        return [dict(row) for row in getattr(module, self.function)(dict(params))]


def _call(fn: PointFn, params: dict[str, Any]) -> list[dict[str, Any]]:
    """What a worker runs: the point, its rows made plain (JSON-ready)."""
    rows = fn(dict(params))
    return [{k: plain(v) for k, v in dict(r).items()} for r in rows]


# --- the driver ---------------------------------------------------------------------------------


class _Progress:
    """tqdm bar (with ETA) on stderr, or nothing."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar: Any = None
        if enabled and total:
            # here, not at the top: worker processes import this module to run points, and
            # tqdm would add about 0.08 s to each one's start
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="pt", smoothing=0.1, file=sys.stderr)

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_workers(workers: int | None) -> None:
    """A worker count: None (the CPU count), 0 (this process) or more."""
    if workers is not None and workers < 0:
        raise SweepError(f"workers = {workers}: expected 0 (this process) or more")


#: How often (seconds) a worker process of :func:`worker_pool` checks that its parent lives.
PARENT_CHECK_S = 0.5


def worker_pool(n_workers: int) -> ProcessPoolExecutor:
    """A pool of ``n_workers`` spawned processes (workers free of this process's threads and
    state: fork is unsafe with threads) that end with this process. A parent killed by a signal
    (SIGTERM, SIGKILL) cannot shut its pool down, and its workers would run on, unseen, until
    their tasks end: minutes of a sweep point or of a ``validate`` family, spent beside whatever
    runs next (and from its wall-time budgets). Each worker watches its parent and exits when it
    is gone."""
    return ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))


def _exit_with_parent(parent: int) -> None:
    """(In a worker of :func:`worker_pool`.) Exit once the process ``parent`` is gone: on Unix
    the worker is then another process's child (the init process's, or a subreaper's); a
    Windows process keeps its parent's id (``os.getppid``), so there it runs on as before."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="simgpu-parent-watch", daemon=True).start()


def run_points(
    fn: PointFn,
    points: Iterable[dict[str, Any]],
    out_dir: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: bool = False,
    max_attempts: int = 3,
    progress: bool = True,
    desc: str = "sweep",
    log: Callable[[str], None] | None = None,
) -> SweepReport:
    """Evaluate every point not yet in ``out_dir`` and append each result there as it arrives.

    ``workers``: processes (default: CPU count); 0 runs in this process. With ``scheduler`` or
    ``dask_local`` the points go to Dask instead (``workers`` then sizes the LocalCluster).
    ``fn`` must be picklable for the parallel executors (a module-level function or
    :class:`ModulePoint`).
    """
    check_workers(workers)
    out_dir = check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    points_path = out_dir / POINTS_FILE
    failed_path = out_dir / FAILED_FILE
    all_points = list(points)
    done = load_points(points_path)
    todo: dict[str, dict[str, Any]] = {}
    for p in all_points:
        k = point_key(p)
        if k not in done:
            todo[k] = p
    skipped = len(all_points) - len(todo)
    if log and skipped:
        log(f"{skipped} of {len(all_points)} points already done in {out_dir}")
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    bar = _Progress(len(todo), desc, progress)
    failures: list[dict[str, Any]] = []

    appender = JsonlAppender(points_path, fsync_interval_s=0.5)

    def record(key: str, rows: list[dict[str, Any]]) -> None:
        appender.append({"key": key, "rows": rows})
        bar.update()

    def fail(key: str, reason: str) -> None:
        append_jsonl(failed_path, {"key": key, "reason": reason})
        failures.append({"key": key, "reason": reason})
        if log:
            log(f"point {key} failed: {reason}")
        bar.update()

    t0 = time.perf_counter()
    try:
        if not todo:  # nothing to run: start no pool or cluster
            executor = "dask" if scheduler or dask_local else (
                "serial" if n_workers == 0 else "processes")
        elif scheduler or dask_local:
            executor = "dask"
            n_workers = _run_dask(fn, todo, record, fail, scheduler, n_workers or 1, log)
        elif n_workers == 0:
            executor = "serial"
            for k, p in todo.items():
                try:
                    record(k, _call(fn, p))
                except SimgpuError as exc:
                    fail(k, f"{type(exc).__name__}: {exc}")
        else:
            executor = "processes"
            _run_pool(fn, todo, record, fail, n_workers, max_attempts, log)
    finally:
        appender.close()
        bar.close()
    wall = time.perf_counter() - t0
    return SweepReport(
        out_dir=out_dir,
        executor=executor,
        workers=n_workers,
        points_total=len(all_points),
        points_skipped=skipped,
        points_run=len(todo) - len(failures),
        points_failed=len(failures),
        wall_s=wall,
        failures=failures,
    )


def _run_pool(
    fn: PointFn,
    todo: dict[str, dict[str, Any]],
    record: Callable[[str, list[dict[str, Any]]], None],
    fail: Callable[[str, str], None],
    n_workers: int,
    max_attempts: int,
    log: Callable[[str], None] | None,
) -> None:
    """Local processes. When a worker dies the pool breaks and every point in flight fails with
    it; those points are then rerun one at a time, each in a fresh one-process pool, so only
    the point that kills its process is retried (up to ``max_attempts``) and then given up."""
    pending = dict(todo)
    attempts: dict[str, int] = {k: 0 for k in pending}
    suspects: list[str] = []

    def settle(k: str, fut: Any) -> bool:
        """Record or fail a finished future; False when its pool broke under it."""
        try:
            rows = fut.result()
        except BrokenProcessPool:
            return False
        except Exception as exc:  # the point itself raised: record why, go on
            pending.pop(k)
            fail(k, f"{type(exc).__name__}: {exc}")
            return True
        pending.pop(k)
        record(k, rows)
        return True

    while pending:
        if suspects:
            k = suspects.pop(0)
            solo = worker_pool(1)
            try:
                ok = settle(k, solo.submit(_call, fn, pending[k]))
            finally:
                solo.shutdown(wait=True, cancel_futures=True)
            if not ok:
                attempts[k] += 1
                if attempts[k] >= max_attempts:
                    pending.pop(k)
                    fail(k, f"its worker process died {attempts[k]} times")
                else:
                    suspects.append(k)
            continue
        pool = worker_pool(n_workers)
        futures: dict[Any, str] = {}
        broken = False
        try:
            # At most 2 points per worker in flight: a dead worker costs a rerun of those only.
            queue = list(pending)
            while (queue or futures) and not broken:
                while queue and len(futures) < 2 * n_workers:
                    try:
                        fut = pool.submit(_call, fn, pending[queue[0]])
                    except BrokenProcessPool:  # broke since the last wait: that point waits
                        broken = True
                        break
                    futures[fut] = queue.pop(0)
                if not futures:
                    break
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in finished:
                    k = futures.pop(fut)
                    if not settle(k, fut):
                        broken = True
                        suspects.append(k)
            if broken:
                for fut, k in futures.items():
                    if not (fut.done() and settle(k, fut)):
                        suspects.append(k)
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)
        if broken and log:
            log(f"a worker process died; rerunning the {len(suspects)} point(s) it had in"
                " flight one at a time")


def _run_dask(
    fn: PointFn,
    todo: dict[str, dict[str, Any]],
    record: Callable[[str, list[dict[str, Any]]], None],
    fail: Callable[[str, str], None],
    scheduler: str | None,
    n_workers: int,
    log: Callable[[str], None] | None,
) -> int:
    try:  # an optional dependency, so imported where it is used
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise SweepError(
            f"Dask is not installed ({exc}); install it with: pip install 'dask[distributed]'"
        ) from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler {scheduler!r}: {exc}") from None
    else:
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        workers = len(client.scheduler_info().get("workers", {})) or n_workers
        if log:
            log(f"dask: {scheduler or 'LocalCluster'} with {workers} worker(s)")
        futures = {}
        for k, p in todo.items():
            # pure=False: a rerun of a point after a worker death is a new computation
            futures[client.submit(_call, fn, p, pure=False)] = k
        for fut in as_completed(list(futures)):
            k = futures[fut]
            try:
                record(k, fut.result())
            except Exception as exc:  # KilledWorker after allowed-failures, or the point raised
                fail(k, f"{type(exc).__name__}: {exc}")
            fut.release()
        return workers
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def load_table(out_dir: Path, points: Sequence[dict[str, Any]] | None = None) -> Any:
    """The finished rows in ``out_dir`` as a DataFrame (in ``points`` order when given)."""
    # here, not at the top: worker processes import this module to run points, and pandas
    # would add about 0.5 s to each one's start
    import pandas as pd

    done = load_points(Path(out_dir) / POINTS_FILE)
    if points is None:
        return pd.DataFrame([r for rows in done.values() for r in rows])
    return pd.DataFrame([r for p in points for r in done.get(point_key(p), [])])
