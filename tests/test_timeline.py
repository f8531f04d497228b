"""Timeline writer: Chrome/Perfetto trace events, times converted from cycles, atomic files."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from simgpu.sim.timeline import Timeline, TimelineError


def test_complete_events_convert_cycles_to_microseconds(tmp_path):
    tl = Timeline()
    tl.add("SM/0", "warp 3 LDG", 1980.0, 990.0, addr=128)
    tl.add("DRAM/ch5", "RD", 3960.0, 19.8)
    path = tl.write(tmp_path / "trace.json", clock_MHz=1980.0)
    doc = json.loads(path.read_text())
    events = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(events) == 2
    ldg = next(e for e in events if e["name"] == "warp 3 LDG")
    # 1980 cycles at 1980 MHz is exactly 1 us; 990 cycles 0.5 us
    assert ldg["ts"] == pytest.approx(1.0)
    assert ldg["dur"] == pytest.approx(0.5)
    assert ldg["args"]["addr"] == 128
    assert ldg["args"]["start_cycles"] == 1980.0
    rd = next(e for e in events if e["name"] == "RD")
    assert rd["ts"] == pytest.approx(2.0)
    assert rd["dur"] == pytest.approx(0.01)
    assert doc["otherData"]["clock_MHz"] == 1980.0


def test_tracks_group_into_processes_and_threads():
    tl = Timeline()
    for track in ("SM/0", "SM/1", "L2/slice3", "SM/2", "PCIe"):
        tl.add(track, "busy", 0.0, 1.0)
    doc = tl.to_trace(1000.0)
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    procs = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert procs == {1: "SM", 2: "L2", 3: "PCIe"}
    assert names == {(1, 1): "0", (1, 2): "1", (1, 3): "2", (2, 1): "slice3", (3, 1): "PCIe"}
    assert tl.tracks == ["SM/0", "SM/1", "L2/slice3", "SM/2", "PCIe"]


def test_counters_instants_busy_and_span():
    tl = Timeline()
    tl.add("SM/0", "a", 10.0, 5.0)
    tl.add("SM/0", "b", 20.0, 7.0)
    tl.counter("L2", "hit rate", 30.0, hit=0.9, miss=0.1)
    tl.instant("SM/0", "barrier", 25.0)
    assert tl.busy_cycles()["SM/0"] == 12.0
    assert tl.span_cycles() == (10.0, 30.0)
    doc = tl.to_trace(500.0)
    c = next(e for e in doc["traceEvents"] if e["ph"] == "C")
    assert c["args"] == {"hit": 0.9, "miss": 0.1}
    assert c["ts"] == pytest.approx(30.0 / 500.0)
    i = next(e for e in doc["traceEvents"] if e["ph"] == "i")
    assert i["s"] == "t" and i["ts"] == pytest.approx(0.05)


@pytest.mark.parametrize("start,dur", [(-1.0, 1.0), (0.0, -2.0), (math.nan, 1.0), (0.0, math.inf)])
def test_bad_times_raise(start, dur):
    with pytest.raises(TimelineError, match="cycles"):
        Timeline().add("SM/0", "x", start, dur)


@pytest.mark.parametrize("clock", [0.0, -5.0, math.nan])
def test_bad_clock_raises(clock, tmp_path):
    tl = Timeline()
    tl.add("SM/0", "x", 0.0, 1.0)
    with pytest.raises(TimelineError, match="clock_MHz"):
        tl.write(tmp_path / "t.json", clock)
    assert not (tmp_path / "t.json").exists()


def test_max_events_counts_what_it_drops(tmp_path):
    tl = Timeline(max_events=3)
    for k in range(10):
        tl.add("SM/0", f"e{k}", float(k), 1.0)
    assert len(tl) == 3 and tl.dropped == 7
    doc = json.loads(gzip.decompress(tl.write(tmp_path / "t.json.gz", 1000.0).read_bytes()))
    assert doc["otherData"]["dropped_events"] == 7
    assert sum(1 for e in doc["traceEvents"] if e["ph"] == "X") == 3


def test_trace_requests_of_a_simulated_memory_system(tmp_path):
    simpy = pytest.importorskip("simpy")
    from simgpu import devices
    from simgpu.sim import build_system
    from simgpu.sim.sources import PointerChase
    from simgpu.sim.timeline import trace_requests

    spec = devices.get("h100-sxm")
    env = simpy.Environment()
    system = build_system(env, spec)
    tl = Timeline()
    trace_requests(system, tl)
    src = PointerChase(env, system, footprint_bytes=8 << 10, n_loads=50, cache_op="ca",
                       warm_loads=64).start()
    env.run()
    doc = json.loads(tl.write(tmp_path / "t.json", spec.compute.boost_clock_MHz).read_text())
    begins = [e for e in doc["traceEvents"] if e["ph"] == "b"]
    ends = {e["id"]: e for e in doc["traceEvents"] if e["ph"] == "e"}
    assert len(begins) == 50 == len(ends)
    # a dependent chase over 8 KiB hits L1: each interval lasts the L1 hit latency
    for b in begins:
        assert b["name"] == "LD L1"
        assert b["args"]["dur_cycles"] == pytest.approx(spec.l1.hit_latency_cycles)
        assert ends[b["id"]]["ts"] - b["ts"] == pytest.approx(
            spec.l1.hit_latency_cycles / spec.compute.boost_clock_MHz)
    counts = [e["args"]["requests"] for e in doc["traceEvents"] if e["ph"] == "C"]
    assert max(counts) == 1 and counts[-1] == 0  # one load in flight at a time
    assert src.result().requests == 50


def test_hbm_command_log_becomes_dram_tracks(tmp_path):
    simpy = pytest.importorskip("simpy")
    from simgpu import devices
    from simgpu.sim import build_system
    from simgpu.sim.hbm import HBMConfig
    from simgpu.sim.sources import Stream
    from simgpu.sim.timeline import add_hbm_commands

    spec = devices.get("h100-sxm")
    env = simpy.Environment()
    system = build_system(env, spec, hbm_config=HBMConfig(log=True))
    Stream(env, system, n_lines=256, occupancy=4, sms=[0, 1]).start()
    env.run()
    tl = Timeline()
    n = add_hbm_commands(tl, system.hbm)
    assert n == len(system.hbm.log) > 0
    doc = tl.to_trace(spec.compute.boost_clock_MHz)
    reads = [e for e in doc["traceEvents"] if e["ph"] == "b" and e["name"] == "RD"]
    # 256 lines of 128 B, each read as bursts of the pseudo-channel's burst size
    assert len(reads) * system.hbm.burst_bytes == 256 * 128
    cpt = system.hbm.cycles_per_tck
    assert all(e["args"]["dur_cycles"] == pytest.approx(spec.dram.timing.tBL * cpt)
               for e in reads)
    assert all(t.startswith("DRAM/pc") for t in tl.tracks)


def test_a_recorded_replay_answers_as_the_plain_one() -> None:
    # Recording every request (simgpu compare --timeline) must not change the replay: a load
    # the memory system decides as it is issued still writes its registers' ready time at once
    # (simgpu.sim.sm), so the naive SGEMM's cycles are the same with the recording and without.
    from simgpu.devices import get_device
    from simgpu.sim.replay import simulate_trace
    from simgpu.sim.system import build_system
    from simgpu.sim.timeline import trace_requests
    from simgpu.workloads.gemm import GemmBase

    spec = get_device("h100-sxm")
    timeline = Timeline()

    def recorded(env, spec):
        return trace_requests(build_system(env, spec), timeline)

    trace = GemmBase.of_kernel("sgemm_naive", 64, 64, 64).trace()
    plain = simulate_trace(trace, spec, sample=False)
    rec = simulate_trace(trace, spec, sample=False, system_factory=recorded)
    assert rec.cycles == plain.cycles
    assert rec.bytes == plain.bytes
    assert "SM/0" in timeline.tracks
