"""simgpu's systolic compute cycles against SCALE-Sim's (the ``scalesim`` package), within 2%."""

from __future__ import annotations

import pytest

from simgpu.sim.dataflow import fold_plan, scalesim_compute_cycles

pytest.importorskip("scalesim")

#: (rows, cols, M, N, K): square and rectangular arrays, shapes that fold evenly and that leave
#: partial folds, skinny and fat GEMMs.
CASES = [
    (32, 32, 64, 64, 64),
    (32, 32, 100, 37, 70),
    (32, 32, 1, 256, 128),
    (32, 32, 256, 1, 96),
    (32, 32, 128, 128, 8),
    (16, 8, 50, 60, 40),
    (8, 16, 9, 200, 33),
    (32, 32, 200, 96, 160),
    (64, 64, 130, 70, 90),
    (128, 128, 256, 128, 64),
    (128, 128, 32, 300, 128),
]


@pytest.mark.parametrize("df", ["os", "ws", "is"])
@pytest.mark.parametrize("case", CASES)
def test_compute_cycles_match_scalesim(case: tuple[int, int, int, int, int], df: str) -> None:
    R, C, M, N, K = case
    ours = fold_plan(R, C, M, N, K, df).compute_cycles
    theirs = scalesim_compute_cycles(R, C, M, N, K, df)
    assert ours == pytest.approx(theirs, rel=0.02)
