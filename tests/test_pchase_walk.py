"""The pointer chase's walk: one pseudo-random cycle (simgpu.sim.sources.cyclic_order) for the
memory-system source and the replayed kernel, walked both ways, and the warm-up it implies."""

from __future__ import annotations

from itertools import islice

import pytest

from simgpu import devices
from simgpu.sim.sources import WARM_FACTOR, cyclic_order
from simgpu.workloads import PointerChase


@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 1000, 4097])
@pytest.mark.parametrize("seed", [0, 7])
def test_backward_walk_is_the_forward_lap_reversed(n, seed):
    lap = list(islice(cyclic_order(n, seed, start=3), n))
    assert sorted(lap) == list(range(n))  # every slot once per lap
    back = list(islice(cyclic_order(n, seed, start=lap[-1], backward=True), n))
    assert back == lap[::-1]


def test_warm_up_is_the_end_of_the_lap_before_the_chase():
    spec = devices.get("h100-sxm")
    w = PointerChase(1 << 20, 128, steps=300)  # 8192 slots, fewer than the caches hold
    lines = w.warm_lines(spec, 256 << 10, 128)
    lap = w.order(w.slots)
    # a whole lap, ending just before the chase's first slot: on a cycle of n slots, the n
    # before the start are the chase's own lap, in the order the chase visits them
    assert len(lines) == w.slots
    base = lines[0] - lap[0] * 128  # the array's address
    assert [(x - base) // 128 for x in lines] == lap


def test_a_chase_that_reaches_no_warmed_line_skips_the_warm_up():
    spec = devices.get("h100-sxm")
    cached = int(WARM_FACTOR * (spec.l2.size_bytes + (256 << 10)) // 128)
    far = PointerChase(128 * (cached + 300), 128, steps=300)
    assert far.warm_lines(spec, 256 << 10, 128) == []
    near = PointerChase(128 * (cached + 299), 128, steps=300)
    assert len(near.warm_lines(spec, 256 << 10, 128)) == cached
