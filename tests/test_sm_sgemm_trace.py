"""The SGEMM traces the SM model replays, against nvcc's code for the same loops (the sm_61 NVBit
trace of the textbook tiled kernel in shared/data/accelsim/traces/matrixmul32) and against the
SM model's latencies on a fixed-latency memory."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import pytest
from sim_stub import StubRequest, stub_factory

from simgpu import devices
from simgpu.sim.replay import simulate_trace
from simgpu.trace import load_traces
from simgpu.workloads import RegBlockGemm, TiledGemm

MATRIXMUL32 = Path(__file__).resolve().parents[2] / "shared" / "data" / "accelsim" / "traces" / (
    "matrixmul32")


def load_use_distances(insts):
    """For every FFMA source written by a 32-bit shared load: instructions since that load."""
    last: dict[int, int] = {}
    out = []
    for i, ins in enumerate(insts):
        if ins.opcode == "FFMA":
            out += [i - last[s] for s in ins.src
                    if s in last and insts[last[s]].opcode == "LDS.U.32"]
        for d in ins.dst:
            last[d] = i
    return out


@pytest.mark.skipif(not MATRIXMUL32.is_dir(), reason="shared Accel-Sim traces not present")
def test_tiled_shared_loads_run_as_far_ahead_as_nvcc_schedules_them():
    real = load_use_distances(load_traces(MATRIXMUL32)[0].block(0)[0])
    ours = load_use_distances(TiledGemm(64, 64, 64, tile=32)._loop_body(0))
    assert len(ours) == 32  # one B operand per FFMA
    # nvcc's median distance is 7 instructions (about four FFMA/LDS pairs), ours 8
    assert statistics.median(ours) == pytest.approx(statistics.median(real), abs=1)
    assert min(ours) >= 3


@pytest.mark.skipif(not MATRIXMUL32.is_dir(), reason="shared Accel-Sim traces not present")
@pytest.mark.parametrize("tile", [8, 16, 32])
def test_tiled_ffma_reads_no_three_sources_from_one_bank(tile):
    # nvcc's allocator: in the matrixmul32 trace no FFMA has all three sources in one bank mod 2
    def same_bank(insts):
        return sum(1 for i in insts if i.opcode == "FFMA" and len(set(i.src)) == 3
                   and len({r % 2 for r in i.src}) == 1)

    assert same_bank(load_traces(MATRIXMUL32)[0].block(0)[0]) == 0
    assert same_bank(TiledGemm(64, 64, 64, tile=tile)._loop_body(0)) == 0


def test_regblock_trip_loads_are_in_flight_together():
    # each global load of a trip stages into its own register, so a trip waits one memory
    # latency, not one per load (4 A and 4 B loads per thread for 64 x 64 x 16 tiles)
    w = RegBlockGemm(64, 64, 64).with_trips(2)
    warp0 = w.trace().block(0)[0]
    ldg = [i for i in warp0 if i.opcode.startswith("LDG")]
    assert len(ldg) == 2 * 8
    assert len({i.dst for i in ldg[:8]}) == 8
    spec = devices.get("h100-sxm")
    spec = dataclasses.replace(spec, compute=dataclasses.replace(spec.compute, sm_count=1))
    cycles = {}
    for lat in (100.0, 1100.0):
        cycles[lat] = simulate_trace(w.trace(), spec, system_factory=stub_factory(lat),
                                     request_cls=StubRequest, max_blocks=1).cycles
    # two trips' loads and the drain of the C stores: three latencies more (when the eight
    # loads of a trip went to one register each waited for the one before)
    assert cycles[1100.0] - cycles[100.0] == pytest.approx(3 * 1000.0, rel=0.05)
