"""The ``simgpu compare`` command: one workload, four views, one table.

Registered at ``simgpu`` start-up, so it imports only the catalogue; the views and their
dependencies (pandas, SimPy, scikit-learn) load when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simgpu import catalogue
from simgpu.errors import SimgpuError

__all__ = ["register", "cmd_compare"]

#: the GEMM kernels compare offers: those with a workload class (our own and cuBLAS)
KERNELS = tuple(k.name for k in catalogue.kernels_of_kind("gemm") if k.workload is not None)


def register(subparsers: Any) -> None:
    # the description is the compare module's docstring, without importing the module
    p = subparsers.add_parser(
        "compare",
        help="one workload, four views (measured, simulated, analytical, learned), one table",
        description="One workload, four views, one table: the measured row of a calibration run"
        " (or a live measurement with --measure), the simulator's replay, the analytical model"
        " and the learned predictor, each with its error against the measured view.",
    )
    p.add_argument("--device", default="h100-sxm", help="device name (default h100-sxm)")
    p.add_argument("--workload", default="gemm", choices=["gemm"], help="workload (gemm)")
    p.add_argument("--m", type=int, required=True, help="rows of A and C")
    p.add_argument("--n", type=int, required=True, help="columns of B and C")
    p.add_argument("--k", type=int, required=True, help="inner dimension")
    p.add_argument("--dtype", default="fp16", choices=catalogue.DTYPES,
                   help="data type (default fp16)")
    p.add_argument("--kernel", default="cublas", choices=KERNELS,
                   help="cublas (default) or a kernels/sgemm.cu kernel (fp32)")
    p.add_argument("--tile", type=int, default=0,
                   help="block tile of the sgemm kernel (tiled 8/16/32, regblock 64/128)")
    p.add_argument("--view", action="append", choices=catalogue.VIEWS,
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
    # the views load here, not at `simgpu` start-up (see the module docstring)
    from simgpu.views.compare import GemmQuery, compare_gemm, format_table, jsonable

    q = GemmQuery(args.device, args.m, args.n, args.k, args.dtype, args.kernel, args.tile)

    def log(msg: str) -> None:
        print(f"compare: {msg}", file=sys.stderr)

    if args.timeline and args.timeline.exists():
        raise SimgpuError(f"--timeline {args.timeline}: file exists; results are never"
                          " overwritten")
    doc = compare_gemm(q, measure=args.measure, views=tuple(args.view or catalogue.VIEWS),
                       calibration=args.calibration, log=log, timeline=args.timeline)
    if args.json:
        print(json.dumps(jsonable(doc), indent=1))
    else:
        print(format_table(doc))
    return 0
