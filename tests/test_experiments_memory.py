"""The memory experiments: their interface (CSV columns, --device/--out) and a few figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from simgpu import devices
from simgpu.experiments.runner import run_experiment

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_latency_ladder_writes_the_agreed_columns(tmp_path):
    ll = load("latency_ladder")
    out = tmp_path / "ll"
    run_experiment(ll, ["--device", "h100-pcie", "--out", str(out), "--no-progress",
                        "--set", "footprint_bytes=4096,4194304"])
    df = pd.read_csv(out / "latency_ladder.csv")
    assert {"device", "footprint_bytes", "latency_cycles", "latency_ns"} <= set(df.columns)
    spec = devices.get("h100-pcie")
    by = df.set_index("footprint_bytes")
    assert by.loc[4096, "latency_cycles"] == pytest.approx(spec.l1.hit_latency_cycles)
    assert by.loc[4194304, "latency_cycles"] == pytest.approx(spec.l2.near_hit_latency_cycles)
    assert by.loc[4096, "latency_ns"] == pytest.approx(
        spec.l1.hit_latency_cycles * 1000 / spec.clock_MHz)
    # published curve alongside (where the shared data is present), and a figure
    if ll.PUBLISHED.exists():
        assert by.loc[4194304, "reference_latency_cycles"] == pytest.approx(265.5, rel=0.02)
    assert (out / "latency_ladder_h100-pcie.png").stat().st_size > 0


def test_plateau_table_compares_levels_and_steps():
    ll = load("latency_ladder")
    ref = ll.reference_curve("h100-pcie")
    if ref is None:
        pytest.skip("published latency curves not present next to the repository")
    # the published curve against itself: zero error on every plateau and step
    df = pd.DataFrame({
        "device": "h100-pcie",
        "footprint_bytes": [kb * 1000 for kb, _ in ref[1]],
        "latency_ns": [lat for _, lat in ref[1]],
    })
    table = ll.plateau_table(df)
    assert set(table["what"]) >= {"plateau L1", "plateau L2near", "plateau L2far",
                                  "plateau DRAM", "step L1->L2near"}
    assert table["error_pct"].abs().max() < 1e-6


def test_bandwidth_latency_writes_the_agreed_columns(tmp_path):
    bl = load("bandwidth_latency")
    out = tmp_path / "bl"
    run_experiment(bl, ["--device", "h100-pcie", "--out", str(out), "--no-progress",
                        "--set", "read_fraction=1.0,0.5", "--set", "occupancy=1,64"])
    df = pd.read_csv(out / "bandwidth_latency.csv")
    assert {"device", "read_fraction", "bandwidth_GBps", "latency_ns"} <= set(df.columns)
    spec = devices.get("h100-pcie")
    light = df[df["occupancy"] == 1].set_index("read_fraction")
    heavy = df[df["occupancy"] == 64].set_index("read_fraction")
    # one line per SM in flight: an idle memory, the unloaded latency, and Little's law
    # (bandwidth = SMs x 128 B / latency) for the reads
    row = light.loc[1.0]
    assert spec.dram.unloaded_latency_ns * 0.97 <= row["latency_ns"]
    assert row["latency_ns"] <= spec.dram.unloaded_latency_ns * 1.1
    assert row["bandwidth_GBps"] == pytest.approx(
        spec.compute.sm_count * 128 / row["latency_ns"], rel=0.05)
    # loaded: more bandwidth at a higher latency, below the peak
    for rf in (1.0, 0.5):
        assert heavy.loc[rf, "bandwidth_GBps"] > 5 * light.loc[rf, "bandwidth_GBps"]
        assert heavy.loc[rf, "latency_ns"] > light.loc[rf, "latency_ns"]
        assert heavy.loc[rf, "bandwidth_GBps"] < spec.dram.peak_bandwidth_GBps
    assert heavy.loc[0.5, "dram_writes"] > 0


def test_pcie_copy_approaches_the_link_rate(tmp_path):
    pc = load("pcie_copy")
    rows = pc.run_point({"device": "h100-sxm", "direction": "h2d", "pinned": True,
                         "size_bytes": 1 << 30})
    spec = devices.get("h100-sxm")
    assert rows[0]["bandwidth_GBps"] < spec.host_link.bandwidth_per_direction_GBps
    assert rows[0]["bandwidth_GBps"] > 0.85 * spec.host_link.bandwidth_per_direction_GBps
    small = pc.run_point({"device": "h100-sxm", "direction": "h2d", "pinned": True,
                          "size_bytes": 4096})
    assert small[0]["bandwidth_GBps"] < 0.05 * rows[0]["bandwidth_GBps"]  # latency-bound
    # our own measurement is attached where the calibration has that size
    assert "measured_bandwidth_GBps" in rows[0]
