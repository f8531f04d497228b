"""`simgpu devices import-accelsim`: Accel-Sim gpgpusim.config -> device file."""

from __future__ import annotations

from pathlib import Path

import pytest

from simgpu import devices
from simgpu.cli import main
from simgpu.devices.accelsim import cache_geometry, import_config, parse_config
from simgpu.errors import DeviceFileError

CONFIGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "accelsim" / "configs"
needs_data = pytest.mark.skipif(not CONFIGS.is_dir(), reason="shared Accel-Sim configs absent")


def test_cache_geometry_strings():
    assert cache_geometry("S:256:128:20,L:B:m:L:X,A:384:4,32:0,32") == (True, 256, 128, 20)
    assert cache_geometry("N:64:128:16,L:R:f:N:L,S:2:48,4") == (False, 64, 128, 16)
    with pytest.raises(DeviceFileError, match="cache geometry"):
        cache_geometry("X:1:2")


@needs_data
def test_h100_config_maps_structure_and_incremental_latencies():
    cfg = CONFIGS / "SM90_H100_latest" / "gpgpusim.config"
    # The config's DRAM clock (3106 MHz, two transfers per clock) does not fit HBM3's four bits
    # per pin per tCK: the import is refused, naming the key, and only a draft shows the mapping.
    with pytest.raises(DeviceFileError, match=r"dram.timing.tCK_ps.*nothing was written"):
        import_config(cfg, name="accel-h100", base=devices.get("h100-sxm"))
    res = import_config(cfg, name="accel-h100", base=devices.get("h100-sxm"), check=False)
    assert res.device is None
    text = res.toml
    assert "sm_count = 132" in text
    # 40 channels x 2 sub-partitions x 256 sets x 128 B x 20 ways = 50 MiB of L2
    assert "slices = 80" in text and "size_MiB = 50.0" in text
    # incremental latencies: L2 = L1 41 + ROP 237 L2-clock cycles at 1980/3106
    want_l2 = 41 + 237 * 1980 / 3106
    assert f"near_hit_latency_cycles = {round(want_l2, 1)}" in text
    want_dram_ns = (want_l2 + 194 * 1980 / 3106) * 1000 / 1980
    assert f"unloaded_latency_ns = {round(want_dram_ns, 1)}" in text
    # every option that has no simgpu key is named
    assert "gpgpu_num_reg_banks" in res.unmapped and "ptx_opcode_latency_fp" in res.unmapped
    for opt in res.unmapped:
        if "=" not in opt:
            assert f"#   -{opt}" in text


@needs_data
def test_qv100_multiline_quoted_timing():
    cfg = parse_config(CONFIGS / "SM7_QV100" / "gpgpusim.config")
    timing = cfg.get("gpgpu_dram_timing_opt")
    assert timing is not None and "RCD=12" in timing and "CL=" in timing


@needs_data
def test_cli_writes_file_once(tmp_path: Path, capsys):
    cfg = CONFIGS / "SM86_RTX3070" / "gpgpusim.config"
    out = tmp_path / "rtx3070-accelsim.toml"
    argv = [
        "devices",
        "import-accelsim",
        str(cfg),
        "--name",
        "rtx3070-accelsim",
        "--base",
        "rtx-4070",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "not mapped" in printed.out
    # Accel-Sim's own RTX 3070 timings break tRC >= tRAS + tRP: raised, said, and the file loads
    assert "adjusted: dram.timing.tRC raised from 78 to 79" in printed.out
    assert "raised from 78 to 79" in out.read_text()
    spec = devices.load(out)
    assert spec.name == "rtx3070-accelsim" and spec.dram.packages == 8  # 256 bits / 32 per chip
    before = out.read_bytes()
    assert main(argv) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_bad_config_line(tmp_path: Path):
    p = tmp_path / "gpgpusim.config"
    p.write_text("-gpgpu_n_clusters 4\nnot an option\n")
    with pytest.raises(DeviceFileError, match=r"gpgpusim.config:2"):
        parse_config(p)
