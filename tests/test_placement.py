"""Placement of GEMV/GEMM/decode steps on the GPU, PIM and dataflow devices."""

from __future__ import annotations

import pytest

from simgpu import devices
from simgpu.devices.pim import PimSpec
from simgpu.errors import SimgpuError
from simgpu.experiments.placement import (
    GPT2_MODELS,
    Op,
    compare,
    cost,
    decode_step,
    gemm_op,
    gemv_op,
    pcie_time_s,
)


@pytest.fixture(scope="module")
def host():
    return devices.get("h100-sxm")


@pytest.fixture(scope="module")
def targets():
    return [devices.get_device(n) for n in ("hbm-pim", "aim", "systolic-128x128")]


def test_gpt2_parameter_counts_match_the_published_sizes() -> None:
    # Radford et al. 2019: 117M (later quoted as 124M) ... 1542M
    assert GPT2_MODELS["gpt2-125m"].parameters == pytest.approx(124e6, rel=0.01)
    assert GPT2_MODELS["gpt2-1.5b"].parameters == pytest.approx(1.55e9, rel=0.01)
    model = GPT2_MODELS["gpt2-350m"]
    ops = decode_step(model, 128)
    weights = sum(
        op.M * op.K * op.count
        for op in ops
        if op.name not in ("attn_score", "attn_value") and op.kind == "gemv"
    )
    assert weights == model.parameters


def test_gpu_gemv_is_the_dram_roofline(host) -> None:
    from simgpu.analytical.params import DeviceParams

    p = DeviceParams.from_spec(host)
    M, K = 8192, 8192
    c = cost(host, gemv_op(M, K))
    nbytes = 2 * (M * K + M + K)
    expected = (
        p.launch_overhead_s + p.dram_latency_ns * 1e-9 + nbytes / (p.dram_bandwidth_GBps * 1e9)
    )
    assert c.time_s == pytest.approx(expected)
    assert c.device_bytes == nbytes and c.pcie_bytes == 0


def test_pim_placement_wraps_the_pim_simulation(host) -> None:
    from simgpu.analytical.params import DeviceParams
    from simgpu.sim.pim import simulate_gemv

    pim = devices.get_device("hbm-pim")
    assert isinstance(pim, PimSpec)
    c = cost(host, gemv_op(4096, 2048, count=3), pim)
    r = simulate_gemv(pim, 4096, 2048)
    launch = DeviceParams.from_spec(host).launch_overhead_s
    assert c.time_s == pytest.approx(3 * (launch + r.time_s))
    assert c.pcie_bytes == 0  # on the host's package
    assert c.energy_J == pytest.approx(3 * (r.energy_J + host.power.idle_W * (launch + r.time_s)))


def test_off_package_devices_cross_pcie(host, targets) -> None:
    from simgpu.sim.pcie import link_bandwidth_GBps

    aim = targets[1]
    M, K = 4096, 1024
    c = cost(host, gemv_op(M, K), aim)
    assert c.pcie_bytes == 2 * (M + K)
    link = aim.host_link
    expected = sum(
        link.latency_us * 1e-6 + n / (link_bandwidth_GBps(link, d) * 1e9)
        for n, d in ((2 * K, "h2d"), (2 * M, "d2h"))
    )
    assert c.pcie_s == pytest.approx(expected)
    assert pcie_time_s(link, 2 * K, "h2d") + pcie_time_s(link, 2 * M, "d2h") == pytest.approx(
        c.pcie_s
    )
    assert pcie_time_s(link, 0) == 0.0


def test_compare_table(host, targets) -> None:
    ops = decode_step(GPT2_MODELS["gpt2-125m"], 256)
    table = compare(ops, host, targets)
    assert list(table["placement"]) == ["gpu", "pim", "pim", "dataflow"]
    assert table.loc[0, "speedup_vs_gpu"] == 1.0 and table.loc[0, "energy_ratio_vs_gpu"] == 1.0
    for col in ("time_s", "energy_J", "device_bytes", "pcie_bytes"):
        assert col in table
    # every placement does the same useful work
    assert table["flops"].nunique() == 1
    # the element-wise kernels stay on the host: launches are the same everywhere
    assert table["launch_s"].nunique() == 1


def test_gemm_favours_the_gpu_and_the_array_over_pim(host, targets) -> None:
    table = compare([gemm_op(2048, 2048, 2048)], host, targets)
    t = dict(zip(table["target"], table["time_s"], strict=True))
    assert t["h100-sxm"] < t["systolic-128x128"] < t["hbm-pim"]


def test_bad_ops_are_rejected(host) -> None:
    with pytest.raises(SimgpuError, match="kind"):
        Op(name="x", kind="conv")
    with pytest.raises(SimgpuError, match="N = 4"):
        Op(name="x", kind="gemv", M=2, N=4, K=2)
    with pytest.raises(SimgpuError, match="K = 0"):
        gemv_op(4, 0)
    with pytest.raises(SimgpuError, match="GPU"):
        cost(devices.get_device("hbm-pim"), gemv_op(4, 4))  # type: ignore[arg-type]


def test_capacity_is_checked(host) -> None:
    small = devices.get_device("systolic-32x32")  # 1 GiB of GDDR6
    ops = decode_step(GPT2_MODELS["gpt2-1.5b"], 64)
    table = compare(ops, host, [small, devices.get_device("hbm-pim")])
    fit = dict(zip(table["target"], table["weights_fit"], strict=True))
    assert fit == {"h100-sxm": True, "systolic-32x32": False, "hbm-pim": True}
    row = table.set_index("target").loc["systolic-32x32"]
    assert row["weight_bytes"] > row["capacity_bytes"] == 2**30


def test_gpu_gemv_against_the_h100_calibration(host) -> None:
    """The GPU side of a placement against measured H100 GEMVs (fp32, calibration run): the
    roofline is 5-12% optimistic where the kernel reads rows (M >= N); a wide matrix (N much
    larger than M) runs at half the roofline on that kernel, so it is left out."""
    import csv
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "calibration" / "h100-sxm"
    files = sorted(root.glob("*/gemv.csv"))
    if not files:
        pytest.skip("no H100 GEMV calibration in this checkout")
    checked = 0
    for path in files:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                M, N = int(row["M"]), int(row["N"])
                if N > M or row.get("check_ok") != "True":
                    continue
                measured = float(row["time_ms"]) * 1e-3
                modelled = cost(host, gemv_op(M, N), elem_bytes=4).time_s
                assert modelled == pytest.approx(measured, rel=0.15), (M, N)
                checked += 1
    assert checked >= 5
