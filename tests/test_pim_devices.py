"""PIM and dataflow device files: bundled models, figures, validation errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simgpu import devices
from simgpu.devices import dump, load_device, loads_device
from simgpu.devices.dataflow import DataflowSpec
from simgpu.devices.pim import PimSpec
from simgpu.errors import DeviceFileError

MODELS = devices.bundled_models_dir()
NEW = ["hbm-pim", "aim", "systolic-32x32", "systolic-128x128"]


@pytest.mark.parametrize("name", NEW)
def test_models_load_round_trip_and_cite(name: str) -> None:
    device = devices.get_device(name)
    assert device.kind in ("pim", "dataflow")
    assert loads_device(dump(device)) == device
    for number, line in enumerate((MODELS / f"{name}.toml").read_text().splitlines(), 1):
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            assert "#" in line and line.split("#", 1)[1].strip(), f"{name}.toml:{number}"
    features = device.features()
    assert features["name"] == name and isinstance(features["dram_bandwidth_GBps"], float)


def test_hbm_pim_matches_published_organisation() -> None:
    spec = devices.get_device("hbm-pim")
    assert isinstance(spec, PimSpec)
    # published/dram_timings.md: one 16-lane FP16 unit per 2 banks; 16 pseudo-channels x 16
    # banks -> 128 units, the count behind the 1.2 TFLOPS of Kwon et al. (at 300 MHz)
    assert spec.units == 128
    assert spec.internal_bandwidth_GBps == pytest.approx(4 * spec.dram.peak_bandwidth_GBps)


def test_systolic_peaks() -> None:
    big = devices.get_device("systolic-128x128")
    assert isinstance(big, DataflowSpec)
    # TPUv2: 2 cores x 128 x 128 x 2 x 700 MHz = 45.9 TFLOPS per chip
    assert 2 * big.array.peak_TFLOPS == pytest.approx(45.9, rel=0.01)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "old", "new", "key"),
    [
        ("hbm-pim", "banks_per_unit = 2", "banks_per_unit = 3", "pim.banks_per_unit"),
        ("hbm-pim", "lanes = 16", "lanes = 8", "pim.lanes"),
        ("hbm-pim", 'style = "hbm-pim"', 'style = "upmem"', "pim.style"),
        ("aim", "\n[host_link]", "\n[unused]", "unused"),
        ("systolic-32x32", "ifmap_KiB = 256.0", "ifmap_KiB = 0.01", "sram.ifmap_KiB"),
        ("systolic-32x32", 'dataflow = "os"', 'dataflow = "rs"', "array.dataflow"),
        ("systolic-128x128", "word_bytes = 2", "word_bytes = 1", "array.word_bytes"),
    ],
)
def test_bad_values_name_file_key_and_expectation(
    tmp_path: Path, name: str, old: str, new: str, key: str
) -> None:
    text = (MODELS / f"{name}.toml").read_text(encoding="utf-8")
    assert old in text
    path = _write(tmp_path, name, text.replace(old, new, 1))
    with pytest.raises(DeviceFileError) as info:
        load_device(path)
    assert info.value.key == key
    assert name in str(info.value)


def test_off_package_device_needs_a_host_link(tmp_path: Path) -> None:
    text = (MODELS / "aim.toml").read_text(encoding="utf-8")
    cut = text[: text.index("\n[host_link]")] + "\n"
    with pytest.raises(DeviceFileError) as info:
        load_device(_write(tmp_path, "aim", cut))
    assert info.value.key == "host_link"


def test_devices_cli_lists_and_shows_the_new_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    from simgpu.devices.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in NEW:
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert main(["show", "hbm-pim"]) == 0
    assert "[pim]" in capsys.readouterr().out
    assert main(["diff", "hbm-pim", "aim"]) == 0
    assert "pim.style" in capsys.readouterr().out
    assert main(["validate", str(MODELS / "systolic-32x32.toml")]) == 0


def test_devices_list_imports_no_simulator() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from simgpu.devices.cli import main; main(['list']); "
        "bad = [m for m in ('simpy', 'pandas', 'numpy', 'simgpu.sim.pim', 'simgpu.sim.dataflow')"
        " if m in sys.modules]; sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
