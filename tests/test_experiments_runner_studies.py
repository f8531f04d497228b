"""The studies in experiments/, each on a small grid: tables hold what the physics says and
every study writes its PNG."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simgpu import devices
from simgpu.experiments.runner import run

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _run(name: str, tmp_path: Path, *sets: str, device: list[str] | None = None) -> pd.DataFrame:
    out, _ = run(name, devices=device, overrides=list(sets), out_dir=tmp_path / name,
                 progress=False, folder=EXPERIMENTS)
    assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "config.json").exists() and (out / f"{name}.parquet").exists()
    return pd.read_csv(out / f"{name}.csv")


def test_what_if_memory_bounds(tmp_path):
    df = _run("what_if_memory", tmp_path, "workload=decode llama2-7b,gemm 8192,stream triad 4Mi",
              "hbm_bandwidth_GBps=1000,3350", "l2_size_MiB=25,50", "pcie_gen=5")
    dec = df[(df["workload"] == "decode llama2-7b") & (df["l2_size_MiB"] == 50)]
    slow = dec[dec["hbm_bandwidth_GBps"] == 1000].iloc[0]
    # batch-1 decode reads every weight once: at least 13.5 GB / 1000 GB/s, bound by DRAM
    assert slow["bound"] == "dram"
    assert 13.47e9 / 1000e9 <= slow["time_s"] < 1.3 * 13.47e9 / 1000e9
    gemm = df[(df["workload"] == "gemm 8192") & (df["hbm_bandwidth_GBps"] == 3350)]
    # bound on chip (tensor cores, L2 bandwidth or a power cap), not by DRAM: neither the L2's
    # size nor HBM's bandwidth moves it
    assert set(gemm["bound"]) <= {"compute", "l2", "power"}
    assert gemm["time_rel_base"].tolist() == pytest.approx([1.0, 1.0])
    tri = df[(df["workload"] == "stream triad 4Mi") & (df["hbm_bandwidth_GBps"] == 3350)]
    # 48 MiB moved: served by a 50 MiB L2, not by a 25 MiB one
    t25 = tri[tri["l2_size_MiB"] == 25]["time_s"].iloc[0]
    t50 = tri[tri["l2_size_MiB"] == 50]["time_s"].iloc[0]
    assert t25 > t50


def test_long_context_kv_regimes(tmp_path):
    df = _run("long_context_kv", tmp_path, "model=llama3-8b", "context=16,32768,1048576",
              device=["h100-sxm"])
    df = df.sort_values("context")
    assert df["kv_level"].tolist() == ["L2", "DRAM", "DRAM+host"]
    assert df["ms_per_token"].is_monotonic_increasing
    far = df.iloc[-1]
    assert far["bound"] == "pcie"
    link = devices.get("h100-sxm").host_link
    # pinned copies at the line-coded rate less 24 B per 256-B TLP (the published file has no
    # measured rate)
    expect = far["kv_host_GB"] * 1e9 / (link.bandwidth_per_direction_GBps * 256 / 280 * 1e9)
    assert far["t_link_s"] == pytest.approx(expect + link.latency_us * 1e-6, rel=1e-6)
    # 128 KiB of KV per token (32 layers x 8 KV heads x 128 x 2 B x K and V)
    assert far["kv_GB"] == pytest.approx(1048576 * 131072 / 1e9)


def test_hopper_dissect_small(tmp_path):
    df = _run("hopper_dissect", tmp_path, "quantity=L1 latency,shared latency,L1 throughput",
              device=["h100-sxm"]).set_index("quantity")
    spec = devices.get("h100-sxm")
    assert df.loc["L1 latency", "published"] == 40.7  # Luo et al. Table IV, H800-PCIe
    assert df.loc["L1 latency", "simulated"] == pytest.approx(spec.l1.hit_latency_cycles,
                                                              rel=0.01)
    assert df.loc["shared latency", "simulated"] == pytest.approx(
        spec.l1.shared_latency_cycles, rel=0.05)
    # one SM cannot beat its L1 port: at most bandwidth_bytes_per_cycle
    thr = df.loc["L1 throughput", "simulated"]
    assert 0.8 * spec.l1.bandwidth_bytes_per_cycle < thr <= spec.l1.bandwidth_bytes_per_cycle
    assert df.loc["L1 latency", "err_simulated_pct"] == pytest.approx(
        100 * (df.loc["L1 latency", "simulated"] - 40.7) / 40.7)
    # our own calibration runs: the median ld.ca chase latency at footprints <= 16 KiB
    runs = sorted((EXPERIMENTS.parent / "calibration" / "h100-sxm").iterdir(), reverse=True)
    pch = pd.read_csv(runs[0] / "pchase.csv")
    l1 = pch[(pch["path"] == "ca") & (pch["footprint_B"] <= 16 << 10)]["latency_cycles"]
    assert df.loc["L1 latency", "measured"] == pytest.approx(l1.median())
    assert pd.isna(df.loc["L1 throughput", "measured"])  # no L1 bandwidth table in the runs


def test_gemm_tile_study_point(tmp_path):
    df = _run("gemm_tile_study", tmp_path, "size=256", "tile=16", "sim_max_size=0",
              device=["h100-sxm"]).set_index("view")
    assert set(df.index) == {"measured", "simulated", "analytical", "learned"}
    cal = pd.read_csv(EXPERIMENTS.parent / "calibration/h100-sxm/20261122T154403Z/gemm.csv")
    row = cal[(cal["kernel"] == "sgemm_tiled") & (cal["M"] == 256) & (cal["N"] == 256)
              & (cal["K"] == 256) & (cal["tile_m"] == 16)]
    assert df.loc["measured", "time_s"] == pytest.approx(row["time_ms"].iloc[0] * 1e-3)
    assert pd.isna(df.loc["simulated", "time_s"])
    for view in ("analytical", "learned"):
        t = df.loc[view, "time_s"]
        assert t > 0 and df.loc[view, "tflops"] == pytest.approx(2 * 256**3 / t / 1e12)
