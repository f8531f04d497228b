"""``simgpu simulate`` on PIM and dataflow devices (the interface other tools rely on)."""

from __future__ import annotations

import json

import pytest

from simgpu.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code = main(["simulate", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    return doc[0] if isinstance(doc, list) else doc


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_systolic_gemm(capsys: pytest.CaptureFixture[str], dataflow: str) -> None:
    from simgpu import devices
    from simgpu.sim.dataflow import simulate_gemm

    doc = run_json(
        capsys,
        "--device",
        "systolic-128x128",
        "--workload",
        "gemm",
        "--m",
        "300",
        "--n",
        "200",
        "--k",
        "100",
        "--dataflow",
        dataflow,
    )
    for key in ("cycles", "time_s", "utilization"):
        assert key in doc
    expected = simulate_gemm(devices.get_device("systolic-128x128"), 300, 200, 100, dataflow)
    assert doc["dataflow"] == dataflow
    assert doc["cycles"] == pytest.approx(expected.cycles)


@pytest.mark.parametrize("device", ["hbm-pim", "aim"])
def test_pim_gemv(capsys: pytest.CaptureFixture[str], device: str) -> None:
    from simgpu import devices
    from simgpu.sim.pim import simulate_gemv

    doc = run_json(capsys, "--device", device, "--workload", "gemv", "--m", "2048", "--k", "1024")
    for key in ("cycles", "time_s", "utilization"):
        assert key in doc
    assert doc["time_s"] == pytest.approx(
        simulate_gemv(devices.get_device(device), 2048, 1024).time_s
    )
