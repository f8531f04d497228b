"""``python -m simgpu.calibrate``: the calibration commands alone, for a bare GPU machine.

Same options as ``simgpu calibrate``; ``python -m simgpu.calibrate summary RUN`` prints a run's
headline figures.
"""

from __future__ import annotations

import argparse
import sys

from simgpu.calibrate import cli
from simgpu.errors import SimgpuError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simgpu.calibrate")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    cli.register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "summary":
        argv[0] = "calibration-summary"
    elif not argv or argv[0].startswith("-"):
        argv.insert(0, "calibrate")
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SimgpuError as exc:
        print(f"simgpu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the run stays resumable: every finished point is on disk
        print("simgpu: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
