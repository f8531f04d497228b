"""Global options reach every command: ``simgpu --models DIR`` is the models folder of compare,
predict, sweep and the rest, and an unusable folder fails clearly."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from simgpu.cli import main
from simgpu.devices.registry import ENV_VAR, bundled_models_dir

GEMM = ["--device", "h100-sxm", "--m", "4096", "--n", "4096", "--k", "4096", "--dtype", "fp16"]


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", *GEMM, "--view", "analytical"],
        ["predict", "gemm", *GEMM],
        ["simulate", "--device", "h100-sxm", "--workload", "reduction", "--elements", "4096"],
        ["devices", "show", "h100-sxm"],
    ],
)
def test_an_empty_models_folder_is_a_clear_error(tmp_path, capsys, argv):
    assert main(["--models", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'h100-sxm'" in err and str(tmp_path) in err


def test_sweep_workers_use_the_models_folder(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["--models", str(tmp_path), "sweep", "--workload", "gemm", "--set", "M=64",
                 "--workers", "1", "--out", str(out)]) != 0
    failed = (out / ".failed.jsonl").read_text() if (out / ".failed.jsonl").exists() else ""
    assert "unknown device 'h100-sxm'" in failed + capsys.readouterr().err


def test_a_missing_models_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["--models", str(tmp_path / "nowhere"), "devices", "list"]) == 2
    assert "not a folder" in capsys.readouterr().err


def _slower_h100(folder: Path) -> None:
    text = (bundled_models_dir() / "h100-sxm.toml").read_text()
    # half the L2 bandwidth: the roof that binds a 4096^3 fp16 GEMM on the published file
    assert "\nbandwidth_GBps = 9318.0" in text
    (folder / "h100-sxm.toml").write_text(
        text.replace("\nbandwidth_GBps = 9318.0", "\nbandwidth_GBps = 4659.0", 1))


def test_compare_and_sweep_answer_from_the_models_folder(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(bundled_models_dir() / "h100-sxm.toml", models)
    argv = ["compare", *GEMM, "--view", "analytical", "--json"]
    assert main(["--models", str(models), *argv]) == 0
    same = json.loads(capsys.readouterr().out)["analytical"]["time_s"]
    _slower_h100(models)
    assert main(["--models", str(models), *argv]) == 0
    slow = json.loads(capsys.readouterr().out)["analytical"]["time_s"]
    assert main(argv) == 0
    bundled = json.loads(capsys.readouterr().out)["analytical"]["time_s"]
    assert same == bundled and slow > 1.3 * bundled
    out = tmp_path / "sweep"
    assert main(["--models", str(models), "sweep", "--workload", "gemm", "--set", "M=4096",
                 "--set", "N=4096", "--set", "K=4096", "--workers", "1", "--out", str(out)]) == 0
    table = pd.read_csv(out / "sweep.csv")
    assert table["time_s"].iloc[0] == pytest.approx(slow)


def test_the_option_does_not_outlive_the_command(tmp_path):
    before = os.environ.get(ENV_VAR)
    main(["--models", str(tmp_path), "devices", "list"])
    assert os.environ.get(ENV_VAR) == before
