"""``simgpu simulate``: replay a workload or a trace on a device model and print a table.

    simgpu simulate --device h100-sxm --workload gemm --m 2048 --n 2048 --k 2048 --tile 32
    simgpu simulate --device h100-sxm --workload gemm --m 4096 --n 4096 --k 4096 --dtype fp16
    simgpu simulate --device h100-sxm --trace FILE_OR_DIR [--json] [--save OUT.csv]

``--trace`` takes a simgpu ``.parquet`` trace, a folder of them, or an Accel-Sim trace folder
(with ``kernelslist.g``) or ``.traceg`` file. GPU devices replay on the SM + memory model; PIM
and dataflow devices go to ``simgpu.sim.pim`` / ``simgpu.sim.dataflow``. ``--json`` prints one
JSON object (several kernels: a list). ``--save`` writes the table (``.csv``, ``.json`` or
``.parquet``) atomically and refuses to overwrite.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simgpu import catalogue
from simgpu.devices.load import load_device
from simgpu.devices.registry import Registry
from simgpu.errors import SimgpuError
from simgpu.io import atomic_output

if TYPE_CHECKING:
    from simgpu.workloads import Workload

__all__ = ["register", "cmd_simulate", "WORKLOADS", "make_workload"]

#: --workload: the kinds of kernel the catalogue has a simulated view of
WORKLOADS = sorted({k.kind for k in catalogue.KERNELS.values() if "simulated" in k.views
                    and k.kind != "pcie"})
#: the GEMM kernels --kernel picks from (the catalogue's that the simulator replays)
GEMM_KERNELS = [k.name for k in catalogue.kernels_of_kind("gemm") if "simulated" in k.views]
#: workload class (simgpu.workloads) -> its constructor's parameters, each from a flag
FLAGS: dict[str, dict[str, str]] = {
    "TiledGemm": {"M": "m", "N": "n", "K": "k", "tile": "tile"},
    "LibraryGemm": {"M": "m", "N": "n", "K": "k", "dtype": "dtype"},
    "MmaGemm": {"M": "m", "N": "n", "K": "k", "dtype": "dtype"},
    "NaiveGemm": {"M": "m", "N": "n", "K": "k"},
    "RegBlockGemm": {"M": "m", "N": "n", "K": "k", "BM": "bm", "BN": "bn", "BK": "bk",
                     "TM": "tm", "TN": "tn"},
    "PointerChase": {"footprint_B": "footprint", "stride_B": "stride", "steps": "steps",
                     "cache_op": "cache_op"},
    "Stream": {"op": "op", "n_elements": "elements"},
    "Transpose": {"rows": "rows", "cols": "cols", "variant": "variant"},
    "Reduction": {"n": "elements"},
    "Gemv": {"m": "m", "n": "n"},
}
#: values of the flags a workload takes when they are not given (the classes' own defaults
#: where they have one; the sizes those of a kernel that runs in seconds)
DEFAULTS: dict[str, Any] = {"tile": 16, "bm": 64, "bn": 64, "bk": 16, "tm": 4, "tn": 4,
                            "footprint": 1 << 20, "stride": 128, "steps": 1024, "cache_op": "ca",
                            "op": "copy", "elements": 1 << 24, "rows": 4096, "cols": 4096,
                            "variant": "tiled"}
#: --workload gemm without --kernel (the kernel of the tiled-SGEMM studies)
DEFAULT_GEMM_KERNEL = "sgemm_tiled"
#: --workload gemm with a tensor-core --dtype and no --kernel: the library's GEMM, simulated as
#: the CUTLASS-like kernel of the analytical model's library search
TENSOR_GEMM_KERNEL = "cublas"
#: PIM and dataflow devices: --workload -> the flags their simulate_workload takes
PIM_FLAGS = {"gemm": ("m", "n", "k"), "gemv": ("m", "n")}


def register(subparsers: Any) -> None:
    """Add the ``simulate`` command."""
    p = subparsers.add_parser(
        "simulate",
        help="replay a workload or a kernel trace on a device model",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--device", required=True, metavar="NAME", help="device name or .toml path")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workload", choices=WORKLOADS, help="a built-in workload")
    src.add_argument("--trace", metavar="PATH", help="trace file or folder (simgpu or Accel-Sim)")
    g = p.add_argument_group("workload parameters")
    for name in ("m", "n", "k"):
        g.add_argument(f"--{name}", type=int, help=f"GEMM/GEMV dimension {name.upper()}")
    g.add_argument("--kernel", default=None, choices=GEMM_KERNELS,
                   help=f"GEMM kernel (default {DEFAULT_GEMM_KERNEL} for fp32,"
                   f" {TENSOR_GEMM_KERNEL} for a tensor-core --dtype)")
    g.add_argument("--dtype", default=None, choices=catalogue.DTYPES,
                   help="GEMM input type (default fp32); tf32, fp16, bf16 and fp8 run the"
                   " library's tensor-core GEMM at the clock the power cap allows")
    g.add_argument("--dataflow", choices=("os", "ws", "is"), help="systolic dataflow")
    g.add_argument("--tile", type=int, help="tiled GEMM tile (8, 16 or 32; default 16)")
    for name in ("bm", "bn", "bk", "tm", "tn"):
        g.add_argument(f"--{name}", type=int,
                       help=f"register-blocked GEMM {name.upper()} (default {DEFAULTS[name]})")
    g.add_argument("--footprint", type=int, help="pointer chase bytes (default 1 MiB)")
    g.add_argument("--stride", type=int, help="pointer chase stride, bytes (default 128)")
    g.add_argument("--steps", type=int, help="pointer chase dependent loads (default 1024)")
    g.add_argument("--cache-op", dest="cache_op", choices=("ca", "cg"),
                   help="pointer chase loads: ca (L1-cached, default) or cg")
    g.add_argument("--op", help="stream kernel: read, write, copy (default), scale, triad")
    g.add_argument("--elements", type=int, help="stream/reduction floats (default 2^24)")
    g.add_argument("--rows", type=int, help="transpose rows (default 4096)")
    g.add_argument("--cols", type=int, help="transpose columns (default 4096)")
    g.add_argument("--variant", choices=("naive", "tiled"), help="transpose (default tiled)")
    p.add_argument(
        "--no-sample",
        dest="sample",
        action="store_false",
        help="simulate every block on the whole GPU (default: sample large kernels: a quarter"
             " of the GPU, waves, GEMM K-loop trips)",
    )
    p.add_argument("--slice", dest="sm_slice", type=int, metavar="K",
                   help="replay on 1/K of the GPU's SMs, L2 and DRAM channels (1: the whole GPU;"
                        " default: sampling's choice, see docs/sm-model.md)")
    p.add_argument("--scheduler", default="gto", choices=("gto", "lrr"), help="warp scheduler")
    p.add_argument("--seed", type=int, default=0, help="seed of the memory system's randomness")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--save", metavar="FILE", help="also write the table (.csv, .json, .parquet)")
    p.set_defaults(handler=cmd_simulate)


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n}" for n in names if getattr(args, n) is None]
    if missing:
        raise SimgpuError(f"--workload {args.workload} needs {', '.join(missing)}")


def make_workload(args: argparse.Namespace) -> Workload:
    """The workload object the flags describe: the catalogue's workload class for the kind
    (for ``gemm``, the ``--kernel``'s), its parameters from the flags of :data:`FLAGS` (or
    :data:`DEFAULTS`). A parameter flag the workload does not take is an error, not ignored."""
    # the workloads (numpy, pandas, the analytical model) load when a command needs them, not
    # at `simgpu` start-up (see simgpu.cli)
    from simgpu import workloads

    if args.workload == "gemm":
        dtype = getattr(args, "dtype", None)
        kernel = args.kernel or (TENSOR_GEMM_KERNEL if dtype not in (None, "fp32")
                                 else DEFAULT_GEMM_KERNEL)
        args.kernel = kernel
        entry = catalogue.get(kernel)
        if dtype is not None:
            entry.check_dtype(dtype)
        cls_name = entry.workload
    else:
        if args.kernel is not None:
            raise SimgpuError(f"--kernel picks a GEMM kernel; --workload {args.workload} has"
                              " one kernel per --op/--variant/--cache-op")
        (cls_name,) = {k.workload for k in catalogue.kernels_of_kind(args.workload)
                       if "simulated" in k.views}
    assert cls_name is not None
    fields = FLAGS[cls_name]
    _need(args, *[f for f in fields.values() if f in ("m", "n", "k")])
    taken = set(fields.values())
    stray = [f"--{f.replace('_', '-')}"
             for f in sorted(set(DEFAULTS) | {"m", "n", "k", "dataflow", "dtype"})
             if getattr(args, f, None) is not None and f not in taken
             and not (f == "dtype" and args.workload == "gemm")]  # checked above
    if stray:
        what = args.kernel or DEFAULT_GEMM_KERNEL if args.workload == "gemm" else args.workload
        raise SimgpuError(
            f"{', '.join(stray)}: not a parameter of {what} (it takes"
            f" {', '.join('--' + f.replace('_', '-') for f in fields.values())})"
        )
    values = {name: getattr(args, flag) for name, flag in fields.items()}
    values = {name: DEFAULTS[fields[name]] if v is None else v for name, v in values.items()
              if v is not None or fields[name] in DEFAULTS}  # else the class's default
    cls = getattr(workloads, cls_name)
    made: Workload = cls(**values)
    return made


def _device(args: argparse.Namespace) -> Any:
    ref = args.device
    if ref.endswith(".toml") or Path(ref).is_file():
        return load_device(ref)
    return Registry(getattr(args, "models", None)).get_device(ref)


def result_record(res: Any) -> dict[str, Any]:
    """The JSON object of one GPU replay (the interface other tools rely on)."""
    d: dict[str, Any] = res.to_dict()
    total_stall = sum(res.stalls.values()) or 1.0
    d["stall_fraction"] = {k: v / total_stall for k, v in res.stalls.items()}
    breakdown = getattr(res, "stall_breakdown", None)
    if breakdown is not None:
        d["tensor_stalls"] = breakdown()
    return d


def _pim_or_dataflow(spec: Any, args: argparse.Namespace) -> dict[str, Any]:
    if args.trace:
        raise SimgpuError(f"{spec.name} is a {spec.kind} device: --trace replays need a GPU")
    module = "simgpu.sim.pim" if spec.kind == "pim" else "simgpu.sim.dataflow"
    mod = importlib.import_module(module)
    if args.workload not in PIM_FLAGS:
        raise SimgpuError(f"{spec.name} is a {spec.kind} device: --workload {args.workload} is"
                          f" not one it runs (expected one of {', '.join(PIM_FLAGS)})")
    params = {
        k: getattr(args, k)
        for k in PIM_FLAGS[args.workload]
        if getattr(args, k, None) is not None
    }
    workload = args.workload
    if getattr(args, "dataflow", None):
        params["dataflow"] = args.dataflow
    if workload == "gemv" and "k" not in params and args.n is not None:
        params["k"] = args.n  # GEMV here is m x n; the PIM/dataflow models call the inner size k
    out: dict[str, Any] = mod.simulate_workload(spec, workload, params)
    return {"device": spec.name, "kind": spec.kind, "workload": args.workload, **out}


def _format_table(records: list[dict[str, Any]]) -> str:
    lines = []
    for r in records:
        lines.append(f"{r.get('kernel', r.get('workload', ''))} on {r['device']}")
        rows: list[tuple[str, str]] = []
        for key in (
            "cycles",
            "time_s",
            "time_s_spread",
            "clock_MHz",
            "sampled",
            "sm_slice",
            "blocks_total",
            "blocks_simulated",
            "waves",
            "occupancy_blocks_per_sm",
            "occupancy_limit",
            "warp_instructions",
            "flops",
            "flops_per_s",
            "power_W",
            "tensor_busy",
            "wall_s",
            "note",
        ):
            if key in r:
                v = r[key]
                rows.append((key, f"{v:.6g}" if isinstance(v, float) else str(v)))
        if "bytes" in r:
            for lvl, b in r["bytes"].items():
                bw = r.get("bandwidth_GBps", {}).get(lvl, 0.0)
                hit = r.get("hit_rate", {}).get(lvl)
                hit_s = "-" if hit is None else f"{hit:.3f}"
                rows.append(
                    (
                        f"{lvl}",
                        f"read {b['read']:.4g} B  write {b['write']:.4g} B  "
                        f"{bw:.4g} GB/s  hit rate {hit_s}",
                    )
                )
        if "stall_fraction" in r:
            parts = [f"{k} {v:.1%}" for k, v in r["stall_fraction"].items() if v > 0]
            rows.append(("issue slots", ", ".join(parts)))
        if "tensor_stalls" in r:
            rows.append(("tensor GEMM cycles", ", ".join(
                f"{k} {v:.1%}" for k, v in r["tensor_stalls"].items())))
        if "bytes" not in r:
            rows += [(k, str(v)) for k, v in r.items() if k not in ("device", "workload")]
        width = max(len(k) for k, _ in rows)
        lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def save_records(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Write the records to ``path`` (.csv, .json or .parquet) atomically; never overwrites."""
    import pandas as pd  # not at `simgpu` start-up (see simgpu.cli)

    path = Path(path)
    if path.exists():
        raise SimgpuError(f"{path}: exists; simgpu never overwrites results (choose a new name)")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".parquet"):
        raise SimgpuError(f"{path}: expected a .csv, .json or .parquet file name")
    with atomic_output(path) as tmp:
        if suffix == ".json":
            tmp.write_text(json.dumps(records, indent=2, default=str) + "\n")
        else:
            frame = pd.DataFrame([_flat(r) for r in records])
            if suffix == ".csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
    return path


def _progress(what: str) -> Callable[[int, int], None]:
    """A progress report on stderr for a replay that runs for a while (stdout stays the
    table or the JSON document)."""
    t0 = time.perf_counter()

    def report(done: int, total: int) -> None:
        print(f"simulate: {what}: {done} of {total} blocks replayed"
              f" ({time.perf_counter() - t0:.0f} s; sampling may stop early)", file=sys.stderr)

    return report


def cmd_simulate(args: argparse.Namespace) -> int:
    """Handler of ``simgpu simulate``."""
    spec = _device(args)
    if args.workload == "gemv" and args.n is None and args.k is not None:
        args.n, args.k = args.k, None  # the interface's GEMV is --m M --k K (x has K elements)
    records: list[dict[str, Any]]
    if spec.kind != "gpu" and args.sm_slice is not None:
        raise SimgpuError(f"--slice {args.sm_slice}: {spec.name} is a {spec.kind} device; a slice"
                          " of the SMs, L2 and DRAM channels is for GPU replays")
    if spec.kind in ("pim", "dataflow"):
        records = [_pim_or_dataflow(spec, args)]
    elif spec.kind != "gpu":
        raise SimgpuError(f"{spec.name}: kind {spec.kind!r} cannot be simulated")
    elif args.trace:
        # SimPy and the trace readers load when a replay runs, not at `simgpu` start-up
        from simgpu.sim.replay import simulate_trace
        from simgpu.trace import load_traces

        traces = load_traces(args.trace)
        records = [
            result_record(
                simulate_trace(
                    t, spec, sample=args.sample, scheduler=args.scheduler, seed=args.seed,
                    progress=_progress(t.launch.name), sm_slice=args.sm_slice,
                )
            )
            for t in traces
        ]
    else:
        w = make_workload(args)
        w.check_fits(spec)
        res = w.simulate(spec, sample=args.sample, scheduler=args.scheduler, seed=args.seed,
                         progress=_progress(w.kernel), sm_slice=args.sm_slice)
        rec = result_record(res)
        rec["workload"] = args.workload
        records = [rec]
    if args.save:
        save_records(records, args.save)
    if args.json:
        doc: Any = records[0] if len(records) == 1 else records
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(_format_table(records) + "\n")
        if args.save:
            sys.stdout.write(f"saved {args.save}\n")
    return 0
