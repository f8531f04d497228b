"""TMA rows that are not 128-byte aligned (simgpu.sim.sm, the COPY_BULK path of global_access).

A tensor map needs only 16-byte aligned rows (cuTensorMapEncodeTiled), so a 128-byte TMA row
segment of a matrix whose row pitch is not a multiple of 128 B spans two L2 lines. The TMA unit
fetches the 32-byte sectors the box covers: a row 16 B off the lines reads five sectors for four,
one 32 B off reads the same four (3 + 1). A copy of such rows must cost the L2 slices, and take,
no more than its sectors say: at most 5/4 of the aligned copy, not the two line-sized request
slots a split row took when each of its two requests was charged a whole line.

The copies run on the real memory system with the operands warm in the L2. The crossbar's
slice bandwidth is cut to 4 B/cycle so that the slices, not the latencies, decide the time (the
test checks that the aligned copy's bookings, spread over the 80 slices, are most of its time),
and the time ratio then shows what the slices charge.
"""

from __future__ import annotations

import dataclasses

import pytest

from simgpu import devices
from simgpu.sim.replay import simulate_trace
from simgpu.trace.schema import Instruction, KernelLaunch, ListTrace, classify_opcode
from simgpu.workloads.base import warm_l2_factory

BLOCKS = 132  # one per SM of the h100-sxm
COPIES = 4  # UTMALDG instructions of 32 rows each, per block
ROW = 128  # bytes of a row segment (a K step of the library tiles)
BASE = 1 << 24
ALIGNED_PITCH = 4096


def _op(opcode: str) -> Instruction:
    return Instruction(pc=0, opcode=opcode, op=classify_opcode(opcode))


def _trace(pitch: int) -> ListTrace:
    rows = 32 * COPIES

    def warp(b: int) -> list[Instruction]:
        out = [Instruction(pc=0, opcode="UTMALDG.2D", op="ld", space="global", width=16,
                           addrs=tuple(BASE + (b * rows + 32 * i + lane) * pitch
                                       for lane in range(32)), src=(2,))
               for i in range(COPIES)]
        return out + [_op("LDGDEPBAR"), _op("DEPBAR.LE.SB0.0"), _op("EXIT")]

    launch = KernelLaunch("tma_rows", (BLOCKS, 1, 1), (32, 1, 1), 32)
    return ListTrace(launch, {b: [warp(b)] for b in range(BLOCKS)})


def _copy(spec, pitch: int) -> tuple[float, float, float]:
    """(cycles, booked slice-port cycles, L2 bytes read) of every block's copy."""
    factory = warm_l2_factory([(BASE, BLOCKS * 32 * COPIES * pitch)], every_partition=True)
    held = {}

    def make(env, s):
        held["system"] = factory(env, s)
        return held["system"]

    res = simulate_trace(_trace(pitch), spec, system_factory=make, sm_slice=1)
    return res.cycles, held["system"].xbar.busy_cycles(), res.bytes["l2"]["read"]


def _sectors(offset: int) -> int:
    """32-byte sectors covered by a 128-byte segment starting ``offset`` bytes into a line."""
    return -(-(offset + ROW) // 32) - offset // 32


@pytest.fixture(scope="module")
def slice_bound():
    spec = devices.get("h100-sxm")
    # the slices bind: 4 B/cycle each instead of 64 (the request slot, 128 B, stays)
    return dataclasses.replace(spec, noc=dataclasses.replace(
        spec.noc, bandwidth_bytes_per_cycle_per_slice=4.0))


@pytest.fixture(scope="module")
def aligned(slice_bound):
    return _copy(slice_bound, ALIGNED_PITCH)


@pytest.mark.parametrize("skew", [16, 32])
def test_misaligned_rows_cost_the_sectors_they_cover(slice_bound, aligned, skew):
    t0, busy0, bytes0 = aligned
    t, busy, nbytes = _copy(slice_bound, ALIGNED_PITCH + skew)
    # the sectors the rows cover, from the geometry alone: row r starts r * skew bytes into a
    # line; skew 16: 4, 5, 4, 5, ... (mean 4.5 of 4), skew 32: four sectors at every offset
    rows = BLOCKS * 32 * COPIES
    covered = sum(_sectors(r * skew % 128) for r in range(rows)) / (4 * rows)
    assert covered == pytest.approx(1.125 if skew == 16 else 1.0)
    assert nbytes / bytes0 == pytest.approx(covered, rel=1e-9)
    # the slices are charged those sectors: two line slots per split row (as LD/ST requests
    # are) would make it 1.875 (skew 16) and 1.75 (skew 32)
    assert busy / busy0 == pytest.approx(covered, rel=0.02)
    # the slices bind the time (the aligned copy's slice work spread over 80 slices is most of
    # it), so the copy takes no more than 5/4 of the aligned one's time, plus 3% for the order
    # in which the rows reach their slices (the busiest slice decides, not the mean: the same
    # sectors spread over other slices can even come out a few percent faster, skew 32: 0.95)
    assert busy0 / 80 > 0.8 * t0
    assert 0.9 <= t / t0 <= 1.25 + 0.03
