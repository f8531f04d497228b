"""The ``simgpu`` command.

Each concern registers its own sub-commands (``register(subparsers)`` in its ``cli`` module), so
this file stays a table of contents. Sub-command modules import their heavy dependencies inside
their handlers: ``simgpu devices list`` must not import SimPy, CuPy or scikit-learn.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from simgpu import __version__
from simgpu.devices.registry import ENV_VAR as MODELS_ENV
from simgpu.errors import SimgpuError

#: Modules that provide ``register(subparsers)``; each adds one top-level command.
COMMAND_MODULES = (
    "simgpu.devices.cli",
    "simgpu.calibrate.cli",
    "simgpu.views.simulate",
    "simgpu.validate.cli",
    "simgpu.predict.cli",
    "simgpu.experiments.cli",
    "simgpu.sweep.cli",
    "simgpu.views.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simgpu",
        description="Model GPU memory systems: simulated, analytical, learned and measured views.",
    )
    parser.add_argument("--version", action="version", version=f"simgpu {__version__}")
    parser.add_argument(
        "--models",
        metavar="DIR",
        default=None,
        help="folder of device TOML files to use instead of the bundled models/ "
        "(also settable with SIMGPU_MODELS)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


@contextmanager
def global_options(args: argparse.Namespace) -> Iterator[None]:
    """The global options, in force for every command: ``--models DIR`` becomes the models
    folder of every device lookup (as ``$SIMGPU_MODELS``, so that worker processes of a sweep or
    an experiment see it too) for the length of the command."""
    models = getattr(args, "models", None)
    if not models:
        yield
        return
    if not os.path.isdir(models):
        raise SimgpuError(f"--models {models}: not a folder of device TOML files")
    before = os.environ.get(MODELS_ENV)
    os.environ[MODELS_ENV] = models
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MODELS_ENV, None)
        else:
            os.environ[MODELS_ENV] = before


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with global_options(args):
            result = args.handler(args)
    except SimgpuError as exc:
        print(f"simgpu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simgpu: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
