"""Load device TOML files into specs, validate every field, and write specs back as TOML.

Loading is strict: wrong types (``true`` is not a number, ``132.0`` is not an integer), values
out of range, missing keys, unknown keys and broken cross-field rules all raise
:class:`~simgpu.errors.DeviceFileError` naming the file, the key path (``l2.size_MiB``), the value
and what was expected. So does a file that is not valid TOML, or not readable at all: no other
exception escapes :func:`load_device` for any content of the file.

:func:`dump` writes a spec as TOML text (a small writer: ``tomllib`` only reads), such that
``loads(dump(spec)) == spec``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simgpu.devices.dataflow import DataflowSpec
from simgpu.devices.pim import PimSpec
from simgpu.devices.spec import INT_CAP, Device, DeviceSpec, FloatTable, Section
from simgpu.errors import DeviceFileError
from simgpu.io import UnusableFile, read_input

__all__ = [
    "register_kind",
    "kinds",
    "load",
    "load_device",
    "loads",
    "loads_device",
    "from_dict",
    "to_dict",
    "dump",
    "toml_dumps",
    "toml_key",
    "toml_value",
    "MAX_DEVICE_FILE_BYTES",
]

_KINDS: dict[str, type[Device]] = {"gpu": DeviceSpec, "pim": PimSpec, "dataflow": DataflowSpec}


def register_kind(kind: str, cls: type[Device]) -> None:
    """Let device files with ``kind = "<kind>"`` load into ``cls`` (a Device dataclass).

    Called by the module that defines the kind (PIM, dataflow), when it is imported.
    """
    if not (isinstance(cls, type) and issubclass(cls, Device) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"register_kind({kind!r}, ...): expected a Device dataclass, got {cls!r}")
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", kind):
        raise ValueError(f"register_kind: bad kind name {kind!r}")
    _KINDS[kind] = cls


def kinds() -> dict[str, type[Device]]:
    """The registered kinds and their spec classes."""
    return dict(_KINDS)


class _Nothing:
    """Stands for a missing value in error messages ("got nothing")."""

    def __repr__(self) -> str:
        return "nothing"


_NOTHING = _Nothing()


def _type_name(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def _describe(hint: Any, meta: Mapping[str, Any]) -> str:
    """What a field expects, in words: 'an integer > 0', "one of 'HBM2', 'HBM3'"."""
    choices = meta.get("choices")
    if choices:
        return "one of " + ", ".join(repr(c) for c in choices)
    hint = _strip_optional(hint)
    if hint is int:
        base = "an integer"
    elif hint is float:
        base = "a number"
    elif hint is bool:
        base = "true or false"
    elif hint is str:
        pattern = meta.get("pattern")
        return f"a string matching {pattern!r}" if pattern else "a string"
    elif typing.get_origin(hint) is tuple:
        base = "an array of integers"
    elif hint is FloatTable:
        base = "a table of name = number"
    elif isinstance(hint, type) and issubclass(hint, Section):
        return "a table"
    else:  # pragma: no cover - every field type is listed above
        base = str(hint)
    bounds = []
    if meta.get("gt") is not None:
        bounds.append(f"> {meta['gt']:g}")
    if meta.get("ge") is not None:
        bounds.append(f">= {meta['ge']:g}")
    if meta.get("le") is not None:
        bounds.append(f"<= {meta['le']:g}")
    return base + (" " + " and ".join(bounds) if bounds else "")


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _in_range(value: float, meta: Mapping[str, Any]) -> bool:
    gt, ge, le = meta.get("gt"), meta.get("ge"), meta.get("le")
    if gt is not None and not value > gt:
        return False
    if ge is not None and not value >= ge:
        return False
    return not (le is not None and not value <= le)


#: Added to the expectation when a value has the right type but lies outside its field's range:
#: the ranges are plausible physical bounds, each explained in models/README.md.
_RANGE_NOTE = " (plausible range: models/README.md says why)"


class _Context:
    """Where errors are reported: the source (file path or '<string>')."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, value: object, expected: str) -> DeviceFileError:
        return DeviceFileError(self.source, key, value, expected)


def _convert(hint: Any, value: Any, key: str, meta: Mapping[str, Any], ctx: _Context) -> Any:
    """Check one TOML value against a field's type and range; return the typed value."""
    hint = _strip_optional(hint)
    expected = _describe(hint, meta)
    if isinstance(hint, type) and issubclass(hint, Section):
        if not isinstance(value, dict):
            raise ctx.error(key, value, f"a table [{key}], not {_type_name(value)}")
        return _build(hint, value, key + ".", ctx)
    if hint is FloatTable:
        if not isinstance(value, dict):
            raise ctx.error(key, value, expected)
        items = {}
        for name, number in value.items():
            items[name] = _number(number, f"{key}.{name}", meta, ctx, _describe(float, meta))
        return FloatTable(items)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ctx.error(key, value, expected)
        out = []
        for index, item in enumerate(value):
            if type(item) is not int:
                raise ctx.error(f"{key}[{index}]", item, "an integer")
            if not _in_range(item, meta):
                raise ctx.error(f"{key}[{index}]", item, expected + _RANGE_NOTE)
            out.append(item)
        return tuple(out)
    if hint is bool:
        if type(value) is not bool:
            raise ctx.error(key, value, expected)
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ctx.error(key, value, expected)
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ctx.error(key, value, expected)
        pattern = meta.get("pattern")
        if pattern and not re.fullmatch(pattern, value):
            raise ctx.error(key, value, expected)
        return value
    if hint is int:
        if type(value) is not int:
            raise ctx.error(key, value, expected)
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ctx.error(key, value, expected)
        if not _in_range(value, meta) or abs(value) > INT_CAP:
            raise ctx.error(key, value, expected + _RANGE_NOTE)
        return value
    if hint is float:
        return _number(value, key, meta, ctx, expected)
    raise ctx.error(key, value, f"a supported value ({hint})")  # pragma: no cover


def _number(value: Any, key: str, meta: Mapping[str, Any], ctx: _Context, expected: str) -> float:
    if type(value) not in (int, float):
        raise ctx.error(key, value, expected)
    try:
        number = float(value)
    except OverflowError:
        raise ctx.error(key, value, expected) from None
    if not math.isfinite(number):
        raise ctx.error(key, value, expected + " (finite)")
    if not _in_range(number, meta):
        raise ctx.error(key, value, expected + _RANGE_NOTE)
    return number


def _build(cls: type[Section], table: Mapping[str, Any], prefix: str, ctx: _Context) -> Any:
    """Build one section from its TOML table, checking each field and then the section's rules."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for name in table:
        if name not in known:
            close = difflib.get_close_matches(str(name), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"[{prefix[:-1]}]" if prefix else "the top level"
            raise ctx.error(
                prefix + str(name),
                table[name],
                f"no such key: not one of the keys of {where}{hint}",
            )
    kwargs: dict[str, Any] = {}
    for name, fld in known.items():
        key = prefix + name
        if name not in table:
            has_default = (
                fld.default is not dataclasses.MISSING
                or fld.default_factory is not dataclasses.MISSING
            )
            if has_default:
                continue
            raise ctx.error(
                key, _NOTHING, _describe(hints[name], fld.metadata) + " (required key is missing)"
            )
        kwargs[name] = _convert(hints[name], table[name], key, fld.metadata, ctx)
    try:
        section = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # pragma: no cover - fields were checked above
        raise ctx.error(prefix[:-1] or "<top>", dict(table), f"a valid table ({exc})") from None
    for key, value, expected in section.problems():
        raise ctx.error(prefix + key, value, expected)
    return section


def from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Device:
    """Build and validate a device of any registered kind from parsed TOML data."""
    ctx = _Context(source)
    if not isinstance(data, Mapping):
        raise ctx.error("<top>", data, "a table of device keys")
    kind = data.get("kind", _NOTHING)
    registered = ", ".join(repr(k) for k in sorted(_KINDS))
    if kind is _NOTHING:
        raise ctx.error("kind", _NOTHING, f"one of {registered} (required key is missing)")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ctx.error("kind", kind, f"one of {registered}")
    device: Device = _build(_KINDS[kind], data, "", ctx)
    return device


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except Exception as exc:  # tomllib raises TOMLDecodeError, but be safe for any input
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        reason = re.sub(r"\s*\(at .*?\)\s*$", "", message) or type(exc).__name__
        if match:
            line_no = int(match.group(1))
            lines = text.splitlines()
            line = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
            raise DeviceFileError(
                source,
                f"line {line_no}",
                line.strip(),
                f"valid TOML ({reason} at column {match.group(2)})",
            ) from None
        raise DeviceFileError(source, "<toml>", text[:40], f"valid TOML ({reason})") from None


def loads_device(text: str, source: str = "<string>") -> Device:
    """Parse and validate TOML text describing a device of any registered kind."""
    return from_dict(_parse_toml(text, source), source)


def loads(text: str, source: str = "<string>") -> DeviceSpec:
    """Parse and validate TOML text describing a GPU."""
    return _require_gpu(loads_device(text, source), source)


def _require_gpu(device: Device, source: str) -> DeviceSpec:
    if not isinstance(device, DeviceSpec):
        raise DeviceFileError(
            source, "kind", device.kind, "'gpu' (use load_device() for other kinds)"
        )
    return device


#: Largest device file read. The bundled files are 10-20 KiB (about 250 keys, each with a
#: comment citing its source); 1 MiB is fifty times that, and still parses in well under a second.
MAX_DEVICE_FILE_BYTES = 1 << 20


def _read(path: Path) -> str:
    source = str(path)
    try:
        data = read_input(path, MAX_DEVICE_FILE_BYTES, "a device file")
    except UnusableFile as exc:
        raise DeviceFileError(source, "<file>", exc.got, exc.expected) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DeviceFileError(
            source,
            f"line {line}",
            data[max(0, exc.start - 10) : exc.end + 10],
            "UTF-8 text",
        ) from None


def load_device(path: str | Path) -> Device:
    """Load and validate a device file of any registered kind.

    Besides the schema, the file's ``name`` must equal its file name without ``.toml``.
    """
    path = Path(path)
    device = loads_device(_read(path), str(path))
    if device.name != path.stem:
        raise DeviceFileError(
            str(path), "name", device.name, f"the file name without .toml ({path.stem!r})"
        )
    return device


def load(path: str | Path) -> DeviceSpec:
    """Load and validate a GPU device file (``kind = "gpu"``)."""
    return _require_gpu(load_device(path), str(path))


# --- writing -----------------------------------------------------------------------------------


def to_dict(section: Section) -> dict[str, Any]:
    """A spec as plain data (nested dicts, lists, str/int/float/bool); absent fields left out."""
    out: dict[str, Any] = {}
    for fld in dataclasses.fields(section):
        value = getattr(section, fld.name)
        if value is None:
            continue
        if isinstance(value, Section):
            out[fld.name] = to_dict(value)
        elif isinstance(value, FloatTable):
            if value:
                out[fld.name] = dict(value)
        elif isinstance(value, tuple):
            out[fld.name] = list(value)
        else:
            out[fld.name] = value
    return out


def dump(device: Device) -> str:
    """The device as TOML text; ``loads_device(dump(d)) == d``."""
    return toml_dumps(to_dict(device))


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(name: str) -> str:
    """``name`` as a TOML key: bare where TOML allows (letters, digits, ``_``, ``-``), else a
    quoted string."""
    return name if _BARE_KEY.fullmatch(name) else _string(name)


def _string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def toml_value(value: Any) -> str:
    """A value as TOML text: booleans, integers, floats (``nan``, ``inf`` and a ``.0`` where
    Python would print none), strings (escaped), arrays and inline tables. TypeError for
    anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + (" " + inner + " " if inner else "") + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def toml_dumps(data: Mapping[str, Any]) -> str:
    """Write a mapping as TOML: scalars and arrays as ``key = value``, sub-mappings as tables."""
    lines: list[str] = []

    def table(mapping: Mapping[str, Any], path: list[str]) -> None:
        scalars = [(k, v) for k, v in mapping.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in mapping.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            if lines:
                lines.append("")
            lines.append("[" + ".".join(toml_key(p) for p in path) + "]")
        for key, value in scalars:
            lines.append(f"{toml_key(str(key))} = {toml_value(value)}")
        for key, value in tables:
            table(value, [*path, str(key)])

    table(data, [])
    return "\n".join(lines) + "\n"
