"""One workload, four views, one table: ``simgpu compare``.

For a GEMM on a device, :func:`compare_gemm` gathers

``measured``
    the matching row of a calibration run in ``calibration/<device>/`` (same M, N, K, dtype and
    kernel, and tile when one is given; rows whose result check failed are skipped), or a live
    measurement with ``measure=True`` (CuPy + NVML on the local GPU; the row is written as a new
    calibration run first, so it is never lost); ``None`` when neither exists;
``simulated``
    :meth:`simgpu.workloads.TiledGemm.simulate` (and the naive and register-blocked kernels of
    ``kernels/sgemm.cu``): fp32 SIMT kernels only, since the simulator has no tensor-core model;
``analytical``
    :func:`simgpu.analytical.gemm`;
``learned``
    :func:`simgpu.predict.predict_gemm` (a random forest trained once and cached on disk),

each as time, TFLOP/s, power, energy and bound, with its error against the measured view. A view
that cannot answer is ``None`` and its note says why.

``error_vs_measured`` is the signed time error in percent, ``100 (view - measured) /
measured``; ``power_error_vs_measured`` the same for power.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simgpu.errors import SimgpuError

VIEWS = ("measured", "simulated", "analytical", "learned")
KERNELS = ("cublas", "sgemm_naive", "sgemm_tiled", "sgemm_regblock")
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8")
#: kernels/sgemm.cu variants by (kernel, tile): tile_m of the block tile (the calibration table's
#: tile_m column); 0 picks the first (the calibration runner's default order).
OWN_TILES = {"sgemm_naive": (16,), "sgemm_tiled": (16, 8, 32), "sgemm_regblock": (64, 128)}

Log = Callable[[str], None]


@dataclass(frozen=True)
class GemmQuery:
    """The GEMM asked about."""

    device: str
    M: int
    N: int
    K: int
    dtype: str = "fp16"
    kernel: str = "cublas"
    tile: int = 0

    def __post_init__(self) -> None:
        for name in ("M", "N", "K"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise SimgpuError(f"compare: {name} = {v!r}, expected a positive integer")
        if self.dtype not in DTYPES:
            raise SimgpuError(f"compare: dtype {self.dtype!r}, expected one of {DTYPES}")
        if self.kernel not in KERNELS:
            raise SimgpuError(f"compare: kernel {self.kernel!r}, expected one of {KERNELS}")
        if self.kernel != "cublas":
            if self.dtype != "fp32":
                raise SimgpuError(
                    f"compare: kernel {self.kernel} (kernels/sgemm.cu) is fp32 only, not"
                    f" {self.dtype}"
                )
            if self.tile and self.tile not in OWN_TILES[self.kernel]:
                raise SimgpuError(
                    f"compare: tile {self.tile} for {self.kernel}, expected one of"
                    f" {OWN_TILES[self.kernel]} (kernels/sgemm.cu variants)"
                )
        elif self.tile:
            raise SimgpuError("compare: --tile applies to the kernels/sgemm.cu kernels, not cublas")

    @property
    def flops(self) -> float:
        return 2.0 * self.M * self.N * self.K

    @property
    def block_tile(self) -> int:
        """tile_m of the kernel that runs (0 for cuBLAS: the library chooses)."""
        if self.kernel == "cublas":
            return 0
        return self.tile or OWN_TILES[self.kernel][0]

    def analytical_kwargs(self) -> dict[str, Any]:
        """Tile arguments of :func:`simgpu.analytical.gemm` for this kernel."""
        t = self.block_tile
        if self.kernel == "sgemm_tiled":
            return {"tile_m": t, "tile_n": t, "tile_k": t, "thread_tile_m": 1,
                    "thread_tile_n": 1, "threads_per_block": t * t}
        if self.kernel == "sgemm_naive":
            return {"tile_m": 16, "tile_n": 16, "tile_k": 1, "thread_tile_m": 1,
                    "thread_tile_n": 1, "threads_per_block": 256}
        if self.kernel == "sgemm_regblock":
            # kernels/sgemm.cu: reg64 = 64x64x16 with 4x4 per thread, reg128 = 128x128x8 with 8x8
            bk, tt = (16, 4) if t == 64 else (8, 8)
            return {"tile_m": t, "tile_n": t, "tile_k": bk, "thread_tile_m": tt,
                    "thread_tile_n": tt, "threads_per_block": 256}
        return {}


# --- measured -----------------------------------------------------------------------------------


def calibration_root() -> Path:
    """``./calibration`` when it exists, else the one beside the package (a source checkout)."""
    here = Path("calibration")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "calibration"


def _runs(root: Path, device: str) -> list[Any]:
    """The device's runs with a finished gemm table: complete runs first, newest first."""
    from simgpu.calibrate.dataset import RunDir

    runs = []
    folder = root / device
    if not folder.is_dir():
        return []
    for path in sorted(folder.iterdir(), reverse=True):
        if not (path / "manifest.json").is_file():
            continue
        run = RunDir.open(path)
        if "gemm" in run.finished_tables():
            runs.append(run)
    runs.sort(key=lambda r: r.manifest().get("status") != "complete")  # stable: newest kept
    return runs


def find_measured(
    q: GemmQuery, root: Path | None = None
) -> tuple[dict[str, Any] | None, str]:
    """The calibration row that measured exactly ``q``, and a note naming run and row.

    When no run has it, ``None`` and a note naming the nearest measured shape of the same
    kernel and dtype (not used as the measured view: only an exact match counts).
    """
    import numpy as np

    root = root or calibration_root()
    runs = _runs(root, q.device)
    if not runs:
        return None, f"no calibration run with a gemm table under {root / q.device}"
    nearest: tuple[float, str] | None = None
    for run in runs:
        df = run.read_table("gemm")
        same = (df["kernel"] == q.kernel) & (df["dtype"] == q.dtype) & df["check_ok"].astype(bool)
        if q.kernel != "cublas":
            same &= df["tile_m"] == q.block_tile
        exact = same & (df["M"] == q.M) & (df["N"] == q.N) & (df["K"] == q.K)
        if exact.any():
            i = int(np.flatnonzero(exact.to_numpy())[0])
            row = df.iloc[i].to_dict()
            status = run.manifest().get("status", "?")
            src = {
                "run": run.run_id,
                "run_status": status,
                "table": str(run.table_path("gemm")),
                "row": i,
                "csv_line": i + 2,
            }
            row["_source"] = src
            return row, (
                f"calibration run {run.run_id} ({status}), gemm.csv row {i} (line {i + 2})"
            )
        cand = df[same]
        if len(cand):
            d = (np.log(cand["M"] / q.M) ** 2 + np.log(cand["N"] / q.N) ** 2
                 + np.log(cand["K"] / q.K) ** 2).to_numpy()
            j = int(np.argmin(d))
            if nearest is None or d[j] < nearest[0]:
                r = cand.iloc[j]
                nearest = (float(d[j]), f"{int(r['M'])}x{int(r['N'])}x{int(r['K'])} in run"
                           f" {run.run_id} row {int(cand.index[j])}")
    hint = f"; nearest measured {q.kernel} {q.dtype}: {nearest[1]}" if nearest else ""
    return None, f"no calibration run measured this exact point{hint}"


def measure_live(q: GemmQuery, root: Path | None = None, log: Log | None = None) -> Path:
    """Measure ``q`` on the local GPU into a new calibration run (one gemm row); its path."""
    from simgpu.calibrate.bench_compute import TILED_VARIANTS, Gemm
    from simgpu.calibrate.context import Context
    from simgpu.calibrate.dataset import RunDir, new_run_id
    from simgpu.calibrate.gpu import device_name_for, device_properties, require_cupy
    from simgpu.calibrate.runner import measure_tables, provenance
    from simgpu.errors import GPUUnavailableError

    cp = require_cupy()
    try:
        from simgpu.calibrate.power import PowerMeter

        meter: PowerMeter | None = PowerMeter()
    except GPUUnavailableError as exc:
        if log:
            log(f"no power readings: {exc}")
        meter = None
    props = device_properties()
    gpu_name = str(props["gpu_name"])
    if device_name_for(gpu_name) != q.device:
        raise SimgpuError(f"--measure: this GPU is {gpu_name!r}"
                          f" ({device_name_for(gpu_name)}), not {q.device}")
    if q.kernel == "cublas":
        point: dict[str, Any] = {"kernel": "cublas", "variant": "cublas", "dtype": q.dtype,
                                 "M": q.M, "N": q.N, "K": q.K}
    else:
        variant = next(v[0] for v in TILED_VARIANTS if v[1] == q.kernel and v[3][0] == q.block_tile)
        point = {"kernel": "own", "variant": variant, "dtype": "fp32", "M": q.M, "N": q.N,
                 "K": q.K}

    class OnePoint(Gemm):
        def points(self, ctx: Any) -> list[dict[str, Any]]:
            return [point]

    info = dict(meter.describe()) if meter else {}
    root = root or calibration_root()
    run = RunDir.create(root, q.device, new_run_id(tag="compare"),
                        provenance("compare", ["gemm"], info))
    ctx = Context(cp=cp, device=q.device, gpu_name=gpu_name, props=props, level="quick",
                  power=meter)
    measure_tables(run, ctx, ["gemm"], level="compare", benchmarks={"gemm": OnePoint()})
    run.update_manifest(status="complete")
    if log:
        log(f"measured into {run.path}")
    return run.path


# --- the views ----------------------------------------------------------------------------------


def _f(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _view(q: GemmQuery, time_s: Any, power_W: Any, bound: Any, **extra: Any) -> dict[str, Any]:
    t, p = _f(time_s), _f(power_W)
    return {
        "time_s": t,
        "tflops": q.flops / t / 1e12 if t else None,
        "power_W": p,
        "energy_J": t * p if t is not None and p is not None else None,
        "bound": None if bound is None else str(bound),
        **extra,
    }


def _measured_view(q: GemmQuery, row: dict[str, Any]) -> dict[str, Any]:
    return _view(
        q, row["time_ms"] * 1e-3, row.get("power_W"), None,
        time_s_p10=_f(row.get("time_ms_p10")) and row["time_ms_p10"] * 1e-3,
        time_s_p90=_f(row.get("time_ms_p90")) and row["time_ms_p90"] * 1e-3,
        power_source=row.get("power_source"),
        source=row.get("_source"),
    )


#: Events kept in a ``--timeline`` trace (about 200 bytes each in the JSON file).
TIMELINE_MAX_EVENTS = 500_000


def _timeline_factory(holder: dict[str, Any]) -> Callable[[Any, Any], Any]:
    """A ``system_factory`` for :func:`simgpu.sim.replay.simulate_trace` that records the
    requests and DRAM commands of the memory system it builds (the last one built is kept)."""

    def factory(env: Any, spec: Any) -> Any:
        from simgpu.sim import build_system
        from simgpu.sim.hbm import HBMConfig
        from simgpu.sim.timeline import Timeline, trace_requests

        timeline = Timeline(max_events=TIMELINE_MAX_EVENTS)
        system = build_system(env, spec, hbm_config=HBMConfig(log=True))
        trace_requests(system, timeline)
        holder.update(timeline=timeline, system=system)
        return system

    return factory


def _simulated_view(
    q: GemmQuery, spec: Any, log: Log | None = None, timeline: Path | None = None
) -> tuple[dict[str, Any] | None, str]:
    if q.kernel == "cublas":
        return None, ("the simulator replays the kernels/sgemm.cu fp32 kernels only (no tensor-core"
                      " or cuBLAS trace); try --kernel sgemm_tiled --dtype fp32")
    try:
        from simgpu import workloads
    except ImportError as exc:
        return None, f"simgpu.workloads unavailable: {exc}"
    t = q.block_tile
    try:
        if q.kernel == "sgemm_tiled":
            wl: Any = workloads.TiledGemm(q.M, q.N, q.K, tile=t)
        elif q.kernel == "sgemm_naive":
            wl = workloads.NaiveGemm(q.M, q.N, q.K)
        else:
            kw = q.analytical_kwargs()
            wl = workloads.RegBlockGemm(q.M, q.N, q.K, BM=t, BN=t, BK=kw["tile_k"],
                                        TM=kw["thread_tile_m"], TN=kw["thread_tile_n"])
        if log:
            log(f"simulated: replaying {type(wl).__name__} {q.M}x{q.N}x{q.K} on {spec.name}"
                " (sampled; a 1024^3 GEMM takes a minute or two; --view to skip)")
        holder: dict[str, Any] = {}
        kwargs = {"system_factory": _timeline_factory(holder)} if timeline else {}
        t0 = time.perf_counter()
        res = wl.simulate(spec, **kwargs)
        wall = time.perf_counter() - t0
    except (AttributeError, ImportError, NotImplementedError, TypeError) as exc:
        return None, f"simulator not usable yet: {type(exc).__name__}: {exc}"
    power = getattr(res, "power_W", None)
    note = (f"{type(wl).__name__}.simulate(): {res.blocks_simulated} of {res.blocks_total} blocks"
            f" replayed{' (sampled, extrapolated)' if res.sampled else ''} in {wall:.1f} s")
    if power is None:
        note += "; no power model in the simulator"
    if timeline and "timeline" in holder:
        from simgpu.sim.timeline import add_hbm_commands

        tl = holder["timeline"]
        add_hbm_commands(tl, holder["system"].hbm)
        tl.write(timeline, spec.compute.boost_clock_MHz)
        note += (f"; timeline of its last replay ({len(tl)} events"
                 f"{f', {tl.dropped} dropped' if tl.dropped else ''}) in {timeline}")
    return _view(q, res.time_s, power, getattr(res, "bound", None),
                 time_s_spread=_f(res.time_s_spread), seconds=wall), note


def _analytical_view(q: GemmQuery, spec: Any) -> tuple[dict[str, Any], str]:
    from simgpu import analytical

    t0 = time.perf_counter()
    est = analytical.gemm(spec, q.M, q.N, q.K, q.dtype, kernel=q.kernel,
                          **q.analytical_kwargs()).iloc[0]
    wall = time.perf_counter() - t0
    tile = f"{int(est['tile_m'])}x{int(est['tile_n'])}x{int(est['tile_k'])}"
    return _view(q, est["time_s"], est["power_W"], est["bound"], waves=_f(est["waves"]),
                 seconds=wall), (
        f"analytical.gemm(): tile {tile}, {float(est['waves']):.2f} waves,"
        f" power model {est['power_model']}"
    )


def _learned_view(q: GemmQuery, spec: Any, log: Log | None) -> tuple[dict[str, Any] | None, str]:
    import warnings

    try:
        from simgpu import predict
    except ImportError as exc:
        return None, f"simgpu.predict unavailable: {exc}"
    t0 = time.perf_counter()
    _, info = predict.default_model(log=log)
    if log:
        state = "loaded from cache" if info.get("cached") else f"trained in {info['train_s']:.0f} s"
        log(f"learned: random forest {state} ({info['cache_path']}); it is trained once per"
            " training data and settings, later runs load it")
    params = {"M": q.M, "N": q.N, "K": q.K, "dtype": q.dtype, "kernel": q.kernel,
              **q.analytical_kwargs()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = predict.predict_gemm(spec, params).iloc[0]
    wall = time.perf_counter() - t0
    note = (f"predict_gemm(): forest on {info.get('rows', '?')} rows of"
            f" {', '.join(info.get('data', []))}, power {est['power_source']}")
    if "calibration" in info.get("data", []):
        note += "; the calibration runs are in its training data (not a held-out prediction)"
    for w in caught:
        note += f"; warning: {w.message}"
    return _view(q, est["time_s"], est["power_W"], None, time_s_spread=_f(est["time_s_spread"]),
                 power_W_spread=_f(est["power_W_spread"]),
                 extrapolated=bool(est["extrapolated"]), seconds=wall), note


def _pct(view: float | None, ref: float | None) -> float | None:
    if view is None or ref is None or ref == 0:
        return None
    return 100.0 * (view - ref) / ref


def compare_gemm(
    q: GemmQuery,
    *,
    measure: bool = False,
    views: tuple[str, ...] = VIEWS,
    calibration: Path | None = None,
    log: Log | None = None,
    timeline: Path | None = None,
) -> dict[str, Any]:
    """The four views of ``q`` as one JSON-ready document (see the module docstring).

    ``timeline``: write the simulated view's last replay as a Chrome/Perfetto trace there
    (:mod:`simgpu.timeline`: every memory request on its SM's track, DRAM commands per
    pseudo-channel)."""
    from simgpu import devices

    spec = devices.get(q.device)
    notes: dict[str, str] = {}
    out: dict[str, Any] = {"device": q.device, "workload": {"kind": "gemm", **asdict(q),
                                                             "flops": q.flops}}
    measured = None
    if "measured" in views:
        root = calibration or calibration_root()
        if measure:
            measure_live(q, root, log)
        row, notes["measured"] = find_measured(q, root)
        measured = _measured_view(q, row) if row is not None else None
    else:
        notes["measured"] = "not requested"
    out["measured"] = measured
    makers: dict[str, Callable[[], tuple[dict[str, Any] | None, str]]] = {
        "simulated": lambda: _simulated_view(q, spec, log, timeline),
        "analytical": lambda: _analytical_view(q, spec),
        "learned": lambda: _learned_view(q, spec, log),
    }
    for name, make in makers.items():
        if name not in views:
            out[name], notes[name] = None, "not requested"
            continue
        try:
            out[name], notes[name] = make()
        except SimgpuError as exc:
            out[name], notes[name] = None, f"failed: {exc}"
    ref = measured or {}
    for name in VIEWS:
        v = out[name]
        if v is None:
            continue
        v["error_vs_measured"] = _pct(v["time_s"], ref.get("time_s"))
        v["power_error_vs_measured"] = _pct(v["power_W"], ref.get("power_W"))
    out["notes"] = notes
    return out


# --- output -------------------------------------------------------------------------------------


def to_frame(doc: dict[str, Any]) -> Any:
    """The comparison as a DataFrame, one row per view."""
    import pandas as pd

    rows = []
    for name in VIEWS:
        v = doc[name] or {}
        rows.append({"view": name, **{k: v.get(k) for k in (
            "time_s", "tflops", "power_W", "energy_J", "bound", "error_vs_measured",
            "power_error_vs_measured")}, "note": doc["notes"].get(name, "")})
    return pd.DataFrame(rows)


def format_table(doc: dict[str, Any]) -> str:
    w = doc["workload"]
    kern = w["kernel"] + (f" tile {w['tile']}" if w["tile"] else "")
    lines = [f"GEMM {w['M']} x {w['N']} x {w['K']} {w['dtype']} ({kern}) on {doc['device']}",
             f"{'view':<11}{'time':>12}{'TFLOP/s':>9}{'power':>8}{'energy':>11}  {'bound':<9}"
             f"{'err time':>9}{'err power':>10}"]

    def num(x: float | None, fmt: str, unit: str = "") -> str:
        return "-" if x is None else f"{x:{fmt}}{unit}"

    for name in VIEWS:
        v = doc[name]
        if v is None:
            lines.append(f"{name:<11}{'-':>12}{'-':>9}{'-':>8}{'-':>11}  {'-':<9}{'-':>9}{'-':>10}")
            continue
        t = v["time_s"]
        e = v["energy_J"]
        lines.append(
            f"{name:<11}{num(t and t * 1e3, '.4f', ' ms'):>12}{num(v['tflops'], '.1f'):>9}"
            f"{num(v['power_W'], '.0f', ' W'):>8}{num(e and e * 1e3, '.2f', ' mJ'):>11}"
            f"  {v['bound'] or '-':<9}{num(v.get('error_vs_measured'), '+.1f', '%'):>9}"
            f"{num(v.get('power_error_vs_measured'), '+.1f', '%'):>10}"
        )
    lines.append("")
    for name in VIEWS:
        lines.append(f"{name}: {doc['notes'].get(name, '')}")
    return "\n".join(lines)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# --- CLI ----------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "compare",
        help="one workload, four views (measured, simulated, analytical, learned), one table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", default="h100-sxm", help="device name (default h100-sxm)")
    p.add_argument("--workload", default="gemm", choices=["gemm"], help="workload (gemm)")
    p.add_argument("--m", type=int, required=True, help="rows of A and C")
    p.add_argument("--n", type=int, required=True, help="columns of B and C")
    p.add_argument("--k", type=int, required=True, help="inner dimension")
    p.add_argument("--dtype", default="fp16", choices=DTYPES, help="data type (default fp16)")
    p.add_argument("--kernel", default="cublas", choices=KERNELS,
                   help="cublas (default) or a kernels/sgemm.cu kernel (fp32)")
    p.add_argument("--tile", type=int, default=0,
                   help="block tile of the sgemm kernel (tiled 8/16/32, regblock 64/128)")
    p.add_argument("--view", action="append", choices=VIEWS,
                   help="only these views (repeatable; default all four)")
    p.add_argument("--measure", action="store_true",
                   help="measure on the local GPU now (CuPy + NVML), saved as a calibration run")
    p.add_argument("--calibration", type=Path, default=None,
                   help="calibration folder (default ./calibration or the checkout's)")
    p.add_argument("--timeline", type=Path, metavar="PATH.json",
                   help="write the simulated replay as a Chrome/Perfetto trace (sgemm kernels)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    q = GemmQuery(args.device, args.m, args.n, args.k, args.dtype, args.kernel, args.tile)

    def log(msg: str) -> None:
        print(f"compare: {msg}", file=sys.stderr)

    if args.timeline and args.timeline.exists():
        raise SimgpuError(f"--timeline {args.timeline}: file exists; results are never"
                          " overwritten")
    doc = compare_gemm(q, measure=args.measure, views=tuple(args.view or VIEWS),
                       calibration=args.calibration, log=log, timeline=args.timeline)
    if args.json:
        print(json.dumps(_jsonable(doc), indent=1))
    else:
        print(format_table(doc))
    return 0
