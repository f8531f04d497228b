"""`simgpu simulate`: workloads, Accel-Sim and simgpu traces, --json interface, --save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simgpu.cli import main
from simgpu.trace.parquet import write_parquet
from simgpu.workloads import TiledGemm

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "accelsim" / "traces"


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _check_interface(doc):
    for key in ("device", "cycles", "time_s", "clock_MHz", "sampled", "warp_instructions"):
        assert key in doc
    for lvl in ("l1", "l2", "dram"):
        assert set(doc["bytes"][lvl]) == {"read", "write"}
        assert lvl in doc["hit_rate"]
    assert doc["time_s"] == pytest.approx(doc["cycles"] / (doc["clock_MHz"] * 1e6))


def test_simulate_workload_json(capsys):
    doc = _json(
        capsys,
        [
            "simulate",
            "--device",
            "h100-sxm",
            "--workload",
            "gemm",
            "--m",
            "64",
            "--n",
            "64",
            "--k",
            "32",
            "--tile",
            "16",
            "--json",
        ],
    )
    _check_interface(doc)
    assert doc["warp_instructions"] > 0 and doc["flops"] == 2 * 64 * 64 * 32
    # A and B are read by the SMs; C written once
    assert doc["bytes"]["l1"]["write"] == 64 * 64 * 4


@pytest.mark.skipif(not DATA.is_dir(), reason="shared Accel-Sim traces absent")
def test_simulate_accelsim_folder(capsys):
    doc = _json(
        capsys, ["simulate", "--device", "h100-sxm", "--trace", str(DATA / "matrixmul32"), "--json"]
    )
    _check_interface(doc)
    assert doc["warp_instructions"] == 4416


def test_simulate_own_trace_and_save(tmp_path: Path, capsys):
    p = write_parquet(TiledGemm(32, 32, 32, tile=16).trace(), tmp_path / "g.parquet")
    out = tmp_path / "res.csv"
    assert main(["simulate", "--device", "h100-sxm", "--trace", str(p), "--save", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cycles" in text and "issue slots" in text
    assert out.is_file() and "bytes.dram.read" in out.read_text().splitlines()[0]
    # never overwrite
    assert main(["simulate", "--device", "h100-sxm", "--trace", str(p), "--save", str(out)]) == 2


def test_simulate_errors(capsys):
    assert main(["simulate", "--device", "h100-sxm", "--workload", "gemm", "--m", "64"]) == 2
    assert "--n" in capsys.readouterr().err
    assert main(["simulate", "--device", "h100-sxm", "--trace", "no/such/file.parquet"]) == 2


@pytest.mark.parametrize(
    ("device", "argv"),
    [
        ("hbm-pim", ["--workload", "gemv", "--m", "1024", "--n", "1024"]),
        ("systolic-32x32", ["--workload", "gemm", "--m", "64", "--n", "64", "--k", "64"]),
    ],
)
def test_simulate_dispatches_pim_and_dataflow(capsys, device, argv):
    from simgpu.devices.registry import Registry

    if device not in Registry().names():
        pytest.skip(f"{device} not in models/")
    doc = _json(capsys, ["simulate", "--device", device, *argv, "--json"])
    assert doc["device"] == device and doc["cycles"] > 0 and doc["time_s"] > 0
