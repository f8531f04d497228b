"""Parse and format physical quantities, keeping decimal and binary prefixes apart.

A quantity is a number, an optional space and a unit: ``"3.35 TB/s"``, ``"50 MiB"``,
``"1.98 GHz"``, ``"700 W"``, ``"1.5 ns"``. Decimal prefixes (``k M G T P``, and ``m u n p`` below
one for seconds, watts, joules and hertz) are powers of 1000; binary prefixes (``Ki Mi Gi Ti Pi``)
are powers of 1024 and are accepted only for bytes and bytes per second. ``MB`` is 10**6 bytes
and ``MiB`` is 2**20 bytes, always; ``KB`` (capital K) is rejected as ambiguous.

Values are held in base units: bytes, bytes per second, hertz, watts, joules and seconds.

>>> parse("50 MiB")
52428800.0
>>> parse("3.35 TB/s", to="GB/s")
3350.0
>>> format_quantity(52428800, "B", system="binary")
'50 MiB'
>>> cycles_to_seconds(1980, "1.98 GHz")
1e-06
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "FAMILIES",
    "KiB",
    "MiB",
    "GiB",
    "TiB",
    "kB",
    "MB",
    "GB",
    "TB",
    "Quantity",
    "parse",
    "parse_quantity",
    "unit_scale",
    "convert",
    "format_quantity",
    "cycles_to_seconds",
    "seconds_to_cycles",
    "cycles_to_ns",
    "ns_to_cycles",
]

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
kB = 10**3
MB = 10**6
GB = 10**9
TB = 10**12

#: Unit families, by their base symbol.
FAMILIES: tuple[str, ...] = ("B", "B/s", "Hz", "W", "J", "s")

#: Spellings accepted for each family's base unit.
_ALIASES: dict[str, str] = {
    "B": "B",
    "byte": "B",
    "bytes": "B",
    "B/s": "B/s",
    "Bps": "B/s",
    "byte/s": "B/s",
    "bytes/s": "B/s",
    "Hz": "Hz",
    "W": "W",
    "J": "J",
    "s": "s",
    "sec": "s",
}

_DECIMAL_UP: dict[str, int] = {"k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_DECIMAL_DOWN: dict[str, int] = {"m": -1, "u": -2, "µ": -2, "μ": -2, "n": -3, "p": -4}
_BINARY: dict[str, int] = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}

#: Families where a prefix below one (milli, micro, ...) makes sense.
_SUBUNIT_FAMILIES = frozenset({"s", "W", "J", "Hz"})
#: Families where binary prefixes are allowed.
_BINARY_FAMILIES = frozenset({"B", "B/s"})

_NUMBER = r"[+-]?(?:\d+(?:_\d+)*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY_RE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[^\d\s.+_-]\S*)\s*$")

System = Literal["decimal", "binary"]


@dataclass(frozen=True)
class Quantity:
    """A value in base units (bytes, B/s, Hz, W, J or s) and its unit family."""

    value: float
    family: str

    def to(self, unit: str) -> float:
        """The value expressed in ``unit`` (for example ``"MiB"``), which must be of this family."""
        scale, family = unit_scale(unit)
        if family != self.family:
            raise ValueError(f"cannot express a quantity in {self.family!r} as {unit!r}")
        return self.value / scale

    def __str__(self) -> str:
        return format_quantity(self.value, self.family)


def _exact_scale(unit: str) -> tuple[Fraction, str]:
    text = unit.strip()
    if text in _ALIASES:
        return Fraction(1), _ALIASES[text]
    for prefix, power in _BINARY.items():
        if text.startswith(prefix) and text[len(prefix) :] in _ALIASES:
            family = _ALIASES[text[len(prefix) :]]
            if family not in _BINARY_FAMILIES:
                raise ValueError(
                    f"unit {unit!r}: binary prefix {prefix!r} applies only to bytes and bytes/s"
                )
            return Fraction(1024**power), family
    head, rest = text[:1], text[1:]
    if rest in _ALIASES:
        family = _ALIASES[rest]
        if head in _DECIMAL_UP:
            return Fraction(1000 ** _DECIMAL_UP[head]), family
        if head in _DECIMAL_DOWN:
            if family not in _SUBUNIT_FAMILIES:
                raise ValueError(f"unit {unit!r}: prefix {head!r} below one is not allowed here")
            return Fraction(1, 1000 ** -_DECIMAL_DOWN[head]), family
        if head == "K":
            raise ValueError(f"unit {unit!r} is ambiguous: write k{rest} (1000) or Ki{rest} (1024)")
    if text.endswith(("b", "b/s", "bps", "bit", "bit/s")) and not text.endswith(("B", "B/s")):
        raise ValueError(f"unit {unit!r}: bits are not supported; use B for bytes")
    raise ValueError(f"unknown unit {unit!r} (known families: {', '.join(FAMILIES)})")


def unit_scale(unit: str) -> tuple[float, str]:
    """Split a unit such as ``"GiB"`` or ``"ns"`` into (factor to base unit, family).

    Raises ValueError for unknown units, binary prefixes on non-byte units, sub-unit prefixes on
    bytes, and the ambiguous ``K``/``KB`` spelling.

    >>> unit_scale("MiB")
    (1048576.0, 'B')
    """
    scale, family = _exact_scale(unit)
    return float(scale), family


def parse_quantity(text: str) -> Quantity:
    """Parse ``"<number> <unit>"`` into a Quantity in base units. Raises ValueError."""
    number, scale, family = _split(text)
    return Quantity(number * float(scale), family)


def _split(text: str) -> tuple[float, Fraction, str]:
    if not isinstance(text, str):
        raise ValueError(f"expected a quantity string such as '50 MiB', got {text!r}")
    match = _QUANTITY_RE.match(text)
    if match is None:
        raise ValueError(f"cannot parse quantity {text!r}: expected '<number> <unit>'")
    number = float(match.group("num").replace("_", ""))
    if not math.isfinite(number):
        raise ValueError(f"cannot parse quantity {text!r}: the number is not finite")
    try:
        scale, family = _exact_scale(match.group("unit"))
    except ValueError as exc:
        raise ValueError(f"cannot parse quantity {text!r}: {exc}") from None
    return number, scale, family


def parse(text: str, to: str | None = None, *, family: str | None = None) -> float:
    """Parse a quantity string; return it in base units, or in unit ``to`` when given.

    ``family`` (one of FAMILIES) additionally requires the text to be of that family.

    >>> parse("64 KiB")
    65536.0
    >>> parse("1.5 ns", to="ps")
    1500.0
    """
    number, scale, found = _split(text)
    if family is not None and found != family:
        raise ValueError(f"quantity {text!r} is in {found!r}, expected {family!r}")
    if to is None:
        return number * float(scale)
    try:
        to_scale, to_family = _exact_scale(to)
    except ValueError as exc:
        raise ValueError(f"quantity {text!r}: {exc}") from None
    if to_family != found:
        raise ValueError(f"quantity {text!r} is in {found!r}, cannot express it in {to!r}")
    return number * float(scale / to_scale)


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a number between two units of one family: ``convert(50, "MiB", "MB")``."""
    from_scale, from_family = _exact_scale(from_unit)
    to_scale, to_family = _exact_scale(to_unit)
    if from_family != to_family:
        raise ValueError(
            f"cannot convert {from_unit!r} ({from_family}) to {to_unit!r} ({to_family})"
        )
    return value * float(from_scale / to_scale)


def _significant(value: float, digits: int) -> str:
    text = f"{value:.{digits}g}"
    if "e" in text or "E" in text:
        return text
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_quantity(
    value: float,
    unit: str,
    *,
    system: System = "decimal",
    digits: int = 4,
    prefix: str | None = None,
) -> str:
    """Format ``value`` (in base units of ``unit``'s family) with a readable prefix.

    ``system`` picks decimal (k, M, G; 1000) or binary (Ki, Mi, Gi; 1024) prefixes; binary is only
    valid for bytes and bytes/s. ``prefix`` forces one prefix (``"Mi"``, ``"G"``, ``"n"``, ``""``).
    ``digits`` is the number of significant digits kept.

    >>> format_quantity(3.35e12, "B/s")
    '3.35 TB/s'
    >>> format_quantity(1.5e-9, "s")
    '1.5 ns'
    """
    _, family = unit_scale(unit)
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    if not math.isfinite(value):
        raise ValueError(f"cannot format a non-finite value {value!r}")
    if system not in ("decimal", "binary"):
        raise ValueError(f"system must be 'decimal' or 'binary', got {system!r}")
    if system == "binary" and family not in _BINARY_FAMILIES:
        raise ValueError(f"binary prefixes apply only to bytes and bytes/s, not {family!r}")
    if prefix is not None:
        scale, forced_family = unit_scale(prefix + family)
        if forced_family != family:  # pragma: no cover - unit_scale keeps the family
            raise ValueError(f"prefix {prefix!r} does not fit {family!r}")
        return f"{_significant(value / scale, digits)} {prefix}{family}"
    if value == 0:
        return f"0 {family}"
    if system == "binary":
        steps = [("", 1.0)] + [(p, float(1024**n)) for p, n in _BINARY.items()]
        base = 1024.0
    else:
        steps = [("", 1.0)] + [(p, float(1000**n)) for p, n in _DECIMAL_UP.items()]
        if family in _SUBUNIT_FAMILIES:
            downs = [("p", 1e-12), ("n", 1e-9), ("u", 1e-6), ("m", 1e-3)]
            steps = downs + steps
        base = 1000.0
    magnitude = abs(value)
    chosen = steps[0]
    for step in steps:
        if magnitude >= step[1]:
            chosen = step
    index = steps.index(chosen)
    shown = float(_significant(magnitude / chosen[1], digits))
    if shown >= base and index + 1 < len(steps):  # rounding carried into the next prefix
        chosen = steps[index + 1]
    text = _significant(value / chosen[1], digits)
    return f"{text} {chosen[0]}{family}"


def _clock_hz(clock: float | str) -> float:
    hz = parse(clock, family="Hz") if isinstance(clock, str) else float(clock)
    if not (math.isfinite(hz) and hz > 0):
        raise ValueError(f"clock must be a positive frequency, got {clock!r}")
    return hz


def cycles_to_seconds(cycles: float, clock: float | str) -> float:
    """Seconds taken by ``cycles`` at ``clock`` (Hz as a number, or a string like "1.98 GHz")."""
    return cycles / _clock_hz(clock)


def seconds_to_cycles(seconds: float, clock: float | str) -> float:
    """Cycles elapsed in ``seconds`` at ``clock`` (Hz, or a string like "1410 MHz")."""
    return seconds * _clock_hz(clock)


def cycles_to_ns(cycles: float, clock_MHz: float) -> float:
    """Nanoseconds taken by ``cycles`` at ``clock_MHz`` (the unit device files use)."""
    if not (math.isfinite(clock_MHz) and clock_MHz > 0):
        raise ValueError(f"clock_MHz must be positive, got {clock_MHz!r}")
    return cycles * 1000.0 / clock_MHz


def ns_to_cycles(ns: float, clock_MHz: float) -> float:
    """Cycles elapsed in ``ns`` nanoseconds at ``clock_MHz``."""
    if not (math.isfinite(clock_MHz) and clock_MHz > 0):
        raise ValueError(f"clock_MHz must be positive, got {clock_MHz!r}")
    return ns * clock_MHz / 1000.0
