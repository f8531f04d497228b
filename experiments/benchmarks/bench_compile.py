"""First-run compile time of the simulator's compiled core, and what numba compiled more than once.

The compiled modules (``simgpu/sim/issue_core.py``, ``load_core.py``, ``cache_core.py``,
``hbm_core.py``) keep their machine code on disk (``cache=True``), so only the first run after
installing or changing them compiles. This benchmark measures that first run: it runs the
cases below in a child process whose numba cache is an empty temporary folder (the project's
own cache is not touched), then runs them again in a second child with that cache warm, and
times both. In the first child numba's compile events (``numba.core.event``, event
``numba:compile``) give each function's compile time, and afterwards every compiled function
of the four modules says how many versions (argument-type signatures) it was compiled for: a
function compiled for more than one, with the arguments that differ, is listed (numba compiles
a version per constant value a compiled caller passes, see docs/performance.md, "Compiling").

Cases (h100-sxm, ``simgpu simulate``): a tiled SGEMM 256^3 unsampled (issue logic, loads, L2,
DRAM), a stream copy of 4 MiB unsampled (stores, write-backs) and an fp16 cuBLAS-like GEMM
512^3 (copy groups, tensor cores).

Usage: ``python experiments/benchmarks/bench_compile.py``. Prints two tables (the compile time
of each function called from Python, the functions it calls included; the functions compiled
more than once) and the totals, and writes them to ``results/bench_compile/<UTC time>/`` (never
overwriting). Takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from simgpu.io import results_root, write_table

CASES = [
    ["--workload", "gemm", "--m", "256", "--n", "256", "--k", "256", "--no-sample"],
    ["--workload", "stream", "--op", "copy", "--elements", "1048576", "--no-sample"],
    ["--workload", "gemm", "--m", "512", "--n", "512", "--k", "512", "--dtype", "fp16"],
]

MODULES = ("issue_core", "load_core", "cache_core", "hbm_core")

#: run in the child: the cases, then the compile records and the signatures as JSON
CHILD = r"""
import contextlib, io, json, sys, time
from numba.core import event
from numba.core.registry import CPUDispatcher

class Recorder(event.Listener):
    def __init__(self):
        self.open, self.done = [], []
    def on_start(self, ev):
        f = ev.data["dispatcher"].py_func
        self.open.append((f.__module__.rsplit(".", 1)[-1] + "." + f.__qualname__,
                          time.perf_counter()))
    def on_end(self, ev):
        name, t0 = self.open.pop()
        self.done.append((name, time.perf_counter() - t0, len(self.open)))

rec = Recorder()
event.register("numba:compile", rec)
from simgpu.cli import main
cases, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
t0 = time.perf_counter()
for args in cases:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["simulate", "--device", "h100-sxm", "--json", *args])
    if code:
        raise SystemExit(f"simulate {args} failed ({code})")
wall = time.perf_counter() - t0
import importlib
sigs = {}
for m in modules:
    mod = importlib.import_module("simgpu.sim." + m)
    for name, obj in vars(mod).items():
        if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == mod.__name__:
            sigs[m + "." + name] = [[str(a) for a in s] for s in obj.signatures]
print(json.dumps({"wall_s": wall, "compiles": rec.done, "signatures": sigs}))
"""


def child(cache_dir: str) -> dict[str, Any]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(CASES), json.dumps(MODULES)],
                       env=env, capture_output=True, text=True, check=False)
    if p.returncode:
        raise SystemExit(f"child process failed:\n{p.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


def tables(cold: dict[str, Any], warm: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                  dict[str, float]]:
    top = [(n, d) for n, d, level in cold["compiles"] if level == 0]
    by_fn = pd.DataFrame(top, columns=["function", "compile_s"])
    by_fn = by_fn.groupby("function", as_index=False)["compile_s"].sum()
    by_fn = by_fn.sort_values("compile_s", ascending=False)
    multi = []
    for name, sigs in cold["signatures"].items():
        if len(sigs) > 1:
            differ = sorted({i for s in sigs for i, a in enumerate(s)
                             if any(len(t) <= i or t[i] != a for t in sigs)})
            multi.append({"function": name, "versions": len(sigs),
                          "arguments_that_differ": " ".join(str(i) for i in differ)})
    totals = {
        "cold_process_s": cold["process_s"], "warm_process_s": warm["process_s"],
        "cold_cases_s": cold["wall_s"], "warm_cases_s": warm["wall_s"],
        "compile_s (cold - warm)": cold["wall_s"] - warm["wall_s"],
        "functions called from Python": float(len(by_fn)),
        "versions compiled (all functions)": float(sum(len(s) for s in
                                                       cold["signatures"].values())),
        "functions compiled more than once": float(len(multi)),
    }
    return by_fn, pd.DataFrame(multi, columns=["function", "versions", "arguments_that_differ"]), \
        totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="simgpu-numba-") as cache:
        cold = child(cache)
        warm = child(cache)
    by_fn, multi, totals = tables(cold, warm)
    print(by_fn.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print()
    print(multi.to_string(index=False) if len(multi) else "no function compiled more than once")
    print()
    for k, v in totals.items():
        print(f"{k}: {v:.1f}" if not float(v).is_integer() else f"{k}: {int(v)}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = results_root() / "bench_compile" / stamp
    if out.exists():
        raise SystemExit(f"{out} exists; not overwriting")
    write_table(by_fn, out, "compile_by_function", parquet=False)
    write_table(multi, out, "compiled_more_than_once", parquet=False)
    write_table(pd.DataFrame([totals]), out, "totals", parquet=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
