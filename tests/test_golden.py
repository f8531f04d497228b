"""The golden statistics (``tests/data/golden.json``) still come out of the models.

A refactor must not move them; a change that does on purpose regenerates the file with
``python tests/golden_cases.py --write`` and says why in its commit message.
"""

from __future__ import annotations

import golden_cases as golden
import pytest


@pytest.mark.parametrize("name", list(golden.CASES))
def test_golden_statistics_unchanged(name: str) -> None:
    if not golden.available(name):
        pytest.skip("shared Accel-Sim traces not present")
    expected = golden.load()
    assert name in expected, f"{name}: no golden values; run python tests/golden_cases.py --write"
    diff = golden.differences(expected[name], golden.run_case(name))
    assert not diff, f"{name}: " + "; ".join(diff)


def test_differences_sees_a_moved_value() -> None:
    assert golden.differences({"a": 1.0, "b": 2}, {"a": 1.0, "b": 2}) == []
    assert golden.differences({"a": 1.0}, {"a": 1.0 + 1e-6}) == ["a: expected 1.0, got 1.000001"]
    assert golden.differences({"a": 1.0}, {}) == ["a: missing (expected 1.0)"]
    assert golden.differences({"b": 2}, {"b": 3}) == ["b: expected 2, got 3"]
    assert golden.differences({"h": None}, {"h": 0.5}) == ["h: expected None, got 0.5"]
