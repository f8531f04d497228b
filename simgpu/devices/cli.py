"""``simgpu devices list | show NAME | validate FILE... | diff A B``.

Tables are plain text. With ``--json`` each command prints exactly one JSON document on stdout
and nothing else there (problems go to stderr). Device arguments are names in the models folder
(``--models DIR``, else ``$SIMGPU_MODELS``, else the bundled ``models/``) or paths to ``.toml``
files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simgpu.devices.accelsim import add_import_command
from simgpu.devices.load import load_device, to_dict
from simgpu.devices.registry import Registry
from simgpu.devices.spec import Device
from simgpu.errors import DeviceFileError, SimgpuError

__all__ = ["register", "main"]

#: Columns of ``devices list``: (feature key, header, formatter).
_LIST_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("name", "NAME", str),
    ("kind", "KIND", str),
    ("architecture", "ARCH", str),
    ("sm_count", "SMS", str),
    ("clock_MHz", "CLOCK_MHz", lambda v: f"{v:g}"),
    ("l2_size_MiB", "L2_MiB", lambda v: f"{v:g}"),
    ("dram_type", "DRAM", str),
    ("dram_size_GiB", "DRAM_GiB", lambda v: f"{v:g}"),
    ("dram_bandwidth_GBps", "DRAM_GBps", lambda v: f"{v:g}"),
    ("peak_fp16_TFLOPS", "FP16_TFLOPS", lambda v: f"{v:g}"),
    ("tdp_W", "TDP_W", lambda v: f"{v:g}"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``devices`` command and its sub-commands."""
    devices = subparsers.add_parser(
        "devices",
        help="list, show, validate and compare device models",
        description="Device models: one TOML file per device in the models folder.",
    )
    sub = devices.add_subparsers(dest="devices_command", metavar="SUBCOMMAND")
    sub.required = True

    p_list = sub.add_parser("list", help="one line per device in the models folder")
    p_list.add_argument("--json", action="store_true", help="print a JSON list instead")
    p_list.set_defaults(handler=cmd_list)

    p_show = sub.add_parser("show", help="every field of one device")
    p_show.add_argument("device", metavar="NAME", help="device name or path to a .toml file")
    p_show.add_argument("--json", action="store_true", help="print the spec as JSON")
    p_show.set_defaults(handler=cmd_show)

    p_validate = sub.add_parser("validate", help="check device files against the schema")
    p_validate.add_argument("files", metavar="FILE", nargs="+", help="device TOML file(s)")
    p_validate.add_argument("--json", action="store_true", help="print results as JSON")
    p_validate.set_defaults(handler=cmd_validate)

    p_diff = sub.add_parser("diff", help="the fields where two devices differ")
    p_diff.add_argument("a", metavar="A", help="device name or path to a .toml file")
    p_diff.add_argument("b", metavar="B", help="device name or path to a .toml file")
    p_diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    p_diff.set_defaults(handler=cmd_diff)

    add_import_command(sub)


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(getattr(args, "models", None))


def _resolve(args: argparse.Namespace, ref: str) -> Device:
    """A device from a name in the models folder, or from a file path."""
    path = Path(ref)
    if ref.endswith(".toml") or path.is_file():
        return load_device(path)
    return _registry(args).get_device(ref)


def _emit(text: str) -> None:
    """Write text to stdout; a reader that went away (``| head``) is not an error."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _print_json(document: object) -> None:
    _emit(json.dumps(document, indent=2))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per device; broken files are reported on stderr."""
    devices, errors = _registry(args).load_all()
    for error in errors:
        print(f"simgpu: error: {error}", file=sys.stderr)
    features = [device.features() for device in devices]
    if args.json:
        _print_json(features)
    else:
        rows = [
            [fmt(f[key]) if f.get(key) is not None else "-" for key, _, fmt in _LIST_COLUMNS]
            for f in features
        ]
        _emit(_table([header for _, header, _ in _LIST_COLUMNS], rows))
    return 1 if errors else 0


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


def cmd_show(args: argparse.Namespace) -> int:
    """Print every field of one device, grouped by table."""
    device = _resolve(args, args.device)
    data = to_dict(device)
    if args.json:
        _print_json(data)
        return 0
    flat = _flatten(data)
    width = max(len(k) for k in flat)
    lines = [f"{device.name} ({device.kind}): {getattr(device, 'full_name', device.name)}"]
    section = None
    for key, value in flat.items():
        head = key.rsplit(".", 1)[0] if "." in key else ""
        if head != section:
            section = head
            if head:
                lines.append(f"[{head}]")
        lines.append(f"  {key.ljust(width)}  {_cell(value)}")
    _emit("\n".join(lines))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Check each file; print OK or the error (JSON: a list, one object per file).

    Exit 1 if any file is invalid.
    """
    results = []
    for file in args.files:
        try:
            device = load_device(file)
        except DeviceFileError as exc:
            results.append(
                {
                    "file": file,
                    "ok": False,
                    "error": str(exc),
                    "key": exc.key,
                    "expected": exc.expected,
                }
            )
            if not args.json:
                print(f"simgpu: error: {exc}", file=sys.stderr)
        else:
            results.append({"file": file, "ok": True, "name": device.name, "kind": device.kind})
            if not args.json:
                print(f"OK {file} ({device.name}, {device.kind})")
    if args.json:
        _print_json(results)
    return 0 if all(r["ok"] for r in results) else 1


def cmd_diff(args: argparse.Namespace) -> int:
    """Print the key paths whose values differ between two devices."""
    a = _resolve(args, args.a)
    b = _resolve(args, args.b)
    flat_a, flat_b = _flatten(to_dict(a)), _flatten(to_dict(b))
    keys = list(flat_a) + [k for k in flat_b if k not in flat_a]
    differences = [
        {"key": k, "a": flat_a.get(k), "b": flat_b.get(k)}
        for k in keys
        if flat_a.get(k) != flat_b.get(k)
    ]
    if args.json:
        _print_json({"a": a.name, "b": b.name, "differences": differences})
        return 0
    if not differences:
        print(f"{a.name} and {b.name} are identical")
        return 0
    rows = [[str(d["key"]), _cell(d["a"]), _cell(d["b"])] for d in differences]
    _emit(_table(["KEY", a.name.upper(), b.name.upper()], rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``devices`` on its own (``python -m simgpu.devices.cli list``), for tests and scripts."""
    parser = argparse.ArgumentParser(prog="simgpu")
    parser.add_argument("--models", metavar="DIR", default=None)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    register(subparsers)
    rest = list(argv if argv is not None else sys.argv[1:])
    head: list[str] = []  # a leading --models DIR belongs before the "devices" command
    while rest and rest[0].startswith("--models"):
        take = 2 if rest[0] == "--models" else 1
        head, rest = head + rest[:take], rest[take:]
    args = parser.parse_args([*head, "devices", *rest])
    try:
        return int(args.handler(args))
    except SimgpuError as exc:
        print(f"simgpu: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
