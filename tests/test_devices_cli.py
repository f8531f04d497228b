"""``simgpu devices list | show | validate | diff``: tables, one JSON document, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simgpu.devices import dump, get, to_dict
from simgpu.devices.cli import main

MODELS = Path(__file__).resolve().parent.parent / "models"
NINE = [
    "a100-pcie-40gb",
    "a100-sxm-80gb",
    "h100-pcie",
    "h100-sxm",
    "h200",
    "rtx-4070",
    "rtx-4090",
    "rtx-a6000",
    "v100-sxm2",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_all_nine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "KIND", "ARCH", "SMS"]
    for name in NINE:
        assert any(line.startswith(name + " ") for line in lines), name
    h100 = next(line for line in lines if line.startswith("h100-sxm "))
    for cell in ("132", "1980", "50", "HBM3", "3350"):
        assert cell in h100.split()


def test_list_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list", "--json")
    assert code == 0 and err == ""
    rows = [row for row in json.loads(out) if row["kind"] == "gpu" and "-cal-" not in row["name"]]
    assert [row["name"] for row in rows] == NINE
    for row in rows:
        for key in ("name", "kind", "sm_count", "clock_MHz", "l2_size_MiB", "dram_type"):
            assert key in row
        assert row["kind"] == "gpu"
        assert isinstance(row["dram_bandwidth_GBps"], float)
    h200 = next(row for row in rows if row["name"] == "h200")
    assert h200["dram_bandwidth_GBps"] == 4800.0 and h200["dram_type"] == "HBM3e"


def test_show_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "a100-sxm-80gb")
    assert code == 0
    assert "[dram.timing]" in out and "l2.size_MiB" in out and "NVIDIA A100-SXM4-80GB" in out
    code, out, err = run(capsys, "show", "a100-sxm-80gb", "--json")
    assert code == 0 and err == ""
    assert json.loads(out) == to_dict(get("a100-sxm-80gb"))


def test_show_accepts_a_file_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", str(MODELS / "rtx-4090.toml"), "--json")
    assert code == 0 and json.loads(out)["name"] == "rtx-4090"


def test_show_unknown_device(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", "gtx-480")
    assert code == 2 and out == ""
    assert "gtx-480" in err and "h100-sxm" in err and "Traceback" not in err


def test_validate_good_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = MODELS / "v100-sxm2.toml"
    code, out, _ = run(capsys, "validate", str(good))
    assert code == 0 and out.startswith("OK")

    bad = tmp_path / "v100-sxm2.toml"
    bad.write_text(good.read_text().replace("sm_count = 80", "sm_count = -80"), encoding="utf-8")
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 1 and out == ""
    assert str(bad) in err and "compute.sm_count" in err and "-80" in err
    assert "Traceback" not in err

    code, out, err = run(capsys, "validate", str(good), str(bad), "--json")
    assert code == 1 and err == ""
    results = json.loads(out)
    assert [r["ok"] for r in results] == [True, False]
    assert results[1]["key"] == "compute.sm_count"


def test_validate_malformed_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text('name = "broken"\n[compute\nsm_count = 1\n', encoding="utf-8")
    code, out, err = run(capsys, "validate", str(bad), "--json")
    assert code == 1
    [result] = json.loads(out)
    assert result["ok"] is False and result["key"] == "line 2" and str(bad) in result["error"]


def test_diff(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", "h100-sxm", "h100-pcie")
    assert code == 0
    assert "compute.sm_count" in out and "132" in out and "114" in out
    code, out, _ = run(capsys, "diff", "h100-sxm", "h100-pcie", "--json")
    diff = json.loads(out)
    assert {"key": "compute.sm_count", "a": 132, "b": 114} in diff["differences"]
    assert all(d["key"] != "compute.warp_size" for d in diff["differences"])
    code, out, _ = run(capsys, "diff", "h200", "h200")
    assert code == 0 and "identical" in out


def test_models_flag_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rtx-4070.toml").write_text(dump(get("rtx-4070")), encoding="utf-8")
    code, out, _ = run(capsys, "--models", str(tmp_path), "list", "--json")
    assert [row["name"] for row in json.loads(out)] == ["rtx-4070"]
    monkeypatch.setenv("SIMGPU_MODELS", str(tmp_path))
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0 and [row["name"] for row in json.loads(out)] == ["rtx-4070"]


def test_list_reports_broken_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "h100-sxm.toml").write_text(dump(get("h100-sxm")), encoding="utf-8")
    (tmp_path / "junk.toml").write_text("this is not toml", encoding="utf-8")
    code, out, err = run(capsys, "--models", str(tmp_path), "list", "--json")
    assert code == 1
    assert [row["name"] for row in json.loads(out)] == ["h100-sxm"]
    assert "junk.toml" in err


def test_top_level_command(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("simgpu.calibrate.cli")
    from simgpu.cli import main as simgpu_main

    code = simgpu_main(["devices", "list", "--json"])
    out, _ = capsys.readouterr()
    rows = json.loads(out)
    assert code == 0 and sum(r["kind"] == "gpu" and "-cal-" not in r["name"] for r in rows) == 9
    code = simgpu_main(["--models", str(MODELS), "devices", "show", "nope"])
    _, err = capsys.readouterr()
    assert code == 2 and "nope" in err
