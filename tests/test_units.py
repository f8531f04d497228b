"""simgpu.units: parsing and formatting quantities, decimal and binary prefixes kept apart."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simgpu import units
from simgpu.units import (
    convert,
    cycles_to_ns,
    cycles_to_seconds,
    format_quantity,
    ns_to_cycles,
    parse,
    parse_quantity,
    seconds_to_cycles,
    unit_scale,
)


@pytest.mark.parametrize(
    ("text", "value", "family"),
    [
        ("3.35 TB/s", 3.35e12, "B/s"),
        ("50 MiB", 50 * 2**20, "B"),
        ("50 MB", 50e6, "B"),
        ("1.98 GHz", 1.98e9, "Hz"),
        ("700 W", 700.0, "W"),
        ("64 KiB", 65536.0, "B"),
        ("64 kB", 64000.0, "B"),
        ("1.5 ns", 1.5e-9, "s"),
        ("2.5 mJ", 2.5e-3, "J"),
        ("12 us", 12e-6, "s"),
        ("12 µs", 12e-6, "s"),
        ("1e3 B", 1000.0, "B"),
        ("1_024 B", 1024.0, "B"),
        ("900 GiB/s", 900 * 2**30, "B/s"),
        ("16 Bps", 16.0, "B/s"),
        ("  7bytes ", 7.0, "B"),
        ("-3 W", -3.0, "W"),
    ],
)
def test_parse_examples(text: str, value: float, family: str) -> None:
    quantity = parse_quantity(text)
    assert quantity.family == family
    assert quantity.value == pytest.approx(value, rel=1e-12)
    assert parse(text) == pytest.approx(value, rel=1e-12)


def test_decimal_and_binary_prefixes_are_distinct() -> None:
    assert parse("1 MB") == 1_000_000
    assert parse("1 MiB") == 1_048_576
    assert parse("1 GB") != parse("1 GiB")
    assert units.MiB == 2**20 and units.MB == 10**6 and units.KiB == 1024 and units.kB == 1000


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10 KB", "ambiguous"),
        ("5 Gb/s", "bits"),
        ("1 KiHz", "binary prefix"),
        ("1 mB", "below one"),
        ("abc", "expected '<number> <unit>'"),
        ("", "expected '<number> <unit>'"),
        ("1.5.2 GB", "expected '<number> <unit>'"),
        ("12", "expected '<number> <unit>'"),
        ("nan GB", "expected '<number> <unit>'"),
        ("3 parsecs", "unknown unit"),
        ("1e999 B", "not finite"),
    ],
)
def test_parse_rejects_bad_text_naming_it(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse(text)
    assert repr(text) in str(info.value)
    assert fragment in str(info.value)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="quantity string"):
        parse(12)  # type: ignore[arg-type]


def test_parse_to_unit_and_family() -> None:
    assert parse("3.35 TB/s", to="GB/s") == pytest.approx(3350.0)
    assert parse("1.5 ns", to="ps") == 1500.0
    assert parse("50 MiB", to="KiB") == 51200.0
    with pytest.raises(ValueError, match="cannot express"):
        parse("50 MiB", to="GHz")
    with pytest.raises(ValueError, match="expected 'Hz'"):
        parse("50 MiB", family="Hz")
    assert parse_quantity("2 GiB").to("MiB") == 2048.0
    with pytest.raises(ValueError):
        parse_quantity("2 GiB").to("W")


def test_convert_and_unit_scale() -> None:
    assert convert(50, "MiB", "MB") == pytest.approx(52.4288)
    assert convert(1, "TB/s", "GB/s") == 1000.0
    assert unit_scale("GiB") == (float(2**30), "B")
    assert unit_scale("ns") == (1e-9, "s")
    with pytest.raises(ValueError, match="cannot convert"):
        convert(1, "MB", "MHz")


@pytest.mark.parametrize(
    ("value", "unit", "kwargs", "text"),
    [
        (3.35e12, "B/s", {}, "3.35 TB/s"),
        (50 * 2**20, "B", {"system": "binary"}, "50 MiB"),
        (50 * 2**20, "B", {}, "52.43 MB"),
        (1.98e9, "Hz", {}, "1.98 GHz"),
        (700.0, "W", {}, "700 W"),
        (1.5e-9, "s", {}, "1.5 ns"),
        (0.0, "J", {}, "0 J"),
        (999.96, "B", {}, "1 kB"),
        (1023.99, "B", {"system": "binary"}, "1 KiB"),
        (-2e6, "W", {}, "-2 MW"),
        (65536, "B", {"prefix": "Ki"}, "64 KiB"),
        (1.5e-9, "s", {"prefix": "p"}, "1500 ps"),
        (3.14159, "W", {"digits": 2}, "3.1 W"),
    ],
)
def test_format_examples(value: float, unit: str, kwargs: dict[str, object], text: str) -> None:
    assert format_quantity(value, unit, **kwargs) == text  # type: ignore[arg-type]


def test_format_rejects_bad_requests() -> None:
    with pytest.raises(ValueError, match="binary prefixes"):
        format_quantity(1e9, "Hz", system="binary")
    with pytest.raises(ValueError, match="non-finite"):
        format_quantity(math.inf, "B")
    with pytest.raises(ValueError, match="digits"):
        format_quantity(1.0, "B", digits=0)
    with pytest.raises(ValueError):
        format_quantity(1.0, "B", prefix="m")


def test_cycles_and_seconds() -> None:
    assert cycles_to_seconds(1980, "1.98 GHz") == pytest.approx(1e-6)
    assert cycles_to_seconds(1410, 1.41e9) == pytest.approx(1e-6)
    assert seconds_to_cycles(1e-6, "1410 MHz") == pytest.approx(1410)
    assert cycles_to_ns(265.5, 1755.0) == pytest.approx(151.28, rel=1e-4)
    assert ns_to_cycles(375.0, 1755.0) == pytest.approx(658.125)
    with pytest.raises(ValueError):
        cycles_to_seconds(1, "1 GB")
    with pytest.raises(ValueError):
        cycles_to_seconds(1, 0.0)
    with pytest.raises(ValueError):
        cycles_to_ns(1, -5.0)


_DECIMAL_FAMILIES = st.sampled_from(["B", "B/s", "Hz", "W", "J", "s"])
_MAGNITUDES = st.floats(min_value=1e-13, max_value=1e22, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    magnitude=_MAGNITUDES,
    negative=st.booleans(),
    family=_DECIMAL_FAMILIES,
    digits=st.integers(min_value=1, max_value=10),
)
def test_decimal_round_trip(magnitude: float, negative: bool, family: str, digits: int) -> None:
    value = -magnitude if negative else magnitude
    text = format_quantity(value, family, digits=digits)
    back = parse(text)
    assert parse_quantity(text).family == family
    assert back == pytest.approx(value, rel=0.51 * 10 ** (1 - digits), abs=1e-300)


@settings(max_examples=200, deadline=None)
@given(
    magnitude=st.floats(min_value=0.0, max_value=1e22, allow_nan=False, allow_infinity=False),
    family=st.sampled_from(["B", "B/s"]),
    digits=st.integers(min_value=1, max_value=10),
)
def test_binary_round_trip(magnitude: float, family: str, digits: int) -> None:
    text = format_quantity(magnitude, family, system="binary", digits=digits)
    assert "i" in text or magnitude < 1024 or "e+" in text
    assert parse(text) == pytest.approx(magnitude, rel=0.51 * 10 ** (1 - digits), abs=1e-300)
