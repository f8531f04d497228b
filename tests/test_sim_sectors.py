"""Sector and line sizes come from the device file: a device with 64-byte sectors moves the same
DRAM bytes as the 32-byte original, and an L2 whose sectors differ from the L1's fetches and
writes back whole L2 sectors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import simpy

from simgpu import devices, workloads
from simgpu.devices.spec import DeviceSpec
from simgpu.errors import SimgpuError
from simgpu.sim import MemRequest, build_system
from simgpu.sim.hbm import HBMConfig
from simgpu.sim.request import convert_sectors, full_mask
from simgpu.sim.sources import PointerChase, Stream


@pytest.fixture(scope="module")
def h100() -> DeviceSpec:
    return devices.get("h100-sxm")


def with_sectors(spec: DeviceSpec, l1: int, l2: int | None = None) -> DeviceSpec:
    """``spec`` with L1 sectors of ``l1`` bytes and L2 sectors of ``l2`` (default: ``l1``)."""
    return dataclasses.replace(
        spec,
        l1=dataclasses.replace(spec.l1, sector_bytes=l1),
        l2=dataclasses.replace(spec.l2, sector_bytes=l2 or l1),
    )


def sectors_64_file(tmp_path: Path) -> Path:
    """The bundled h100-sxm device file with 64-byte L1 and L2 sectors."""
    text = (devices.bundled_models_dir() / "h100-sxm.toml").read_text()
    text, n = re.subn(r"(?m)^sector_bytes = 32\b", "sector_bytes = 64", text)
    assert n == 2  # [l1] and [l2]
    text, n = re.subn(r'(?m)^name = "h100-sxm"', 'name = "h100-sxm-64b"', text)
    assert n == 1
    path = tmp_path / "h100-sxm-64b.toml"
    path.write_text(text)
    return path


def dram_bytes(spec: DeviceSpec, op: str, n_lines: int) -> dict[str, float]:
    """A closed-loop stream through the memory system: DRAM bytes read and written (plus the
    stores the write-back L2 still owes), and the bytes the source moved."""
    env = simpy.Environment()
    system = build_system(env, spec, hbm_config=HBMConfig(refresh=False))
    src = Stream(env, system, n_lines=n_lines, occupancy=4, op=op).start()
    env.run()
    row = system.stats().set_index("component").loc["DRAM"]
    return {"read": float(row["read_bytes"]),
            "written": float(row["write_bytes"] + row["write_pending_bytes"]
                             + row["l2_dirty_bytes"]),
            "source": float(src.result().bytes)}


def test_a_device_file_with_64_byte_sectors_loads(tmp_path: Path) -> None:
    spec = devices.load(sectors_64_file(tmp_path))
    assert (spec.l1.sector_bytes, spec.l2.sector_bytes) == (64, 64)
    system = build_system(simpy.Environment(), spec)
    assert system.sector_bytes == system.l2_sector_bytes == 64
    assert system.full_line == 0b11


def test_stream_copy_replay_moves_the_same_dram_bytes_with_64_byte_sectors(
    h100: DeviceSpec, tmp_path: Path
) -> None:
    """Fails where the memory system counts 32 bytes per sector whatever the device says (the
    64-byte copy then reported half the DRAM bytes)."""
    n = 1 << 16
    base = workloads.Stream("copy", n).simulate(h100)
    wide = workloads.Stream("copy", n).simulate(devices.load(sectors_64_file(tmp_path)))
    assert base.bytes["dram"]["read"] == pytest.approx(4 * n, rel=1e-12)
    assert base.bytes["dram"]["write"] == pytest.approx(4 * n, rel=1e-12)
    assert wide.bytes == base.bytes


@pytest.mark.parametrize("op", ["read", "write", "copy"])
def test_memory_system_stream_moves_the_same_bytes_with_64_byte_sectors(
    h100: DeviceSpec, op: str
) -> None:
    n_lines = 2000
    base = dram_bytes(h100, op, n_lines)
    wide = dram_bytes(with_sectors(h100, 64), op, n_lines)
    line = h100.l1.line_bytes
    moved = n_lines * line
    assert base["source"] == wide["source"] == moved
    assert wide == base


@pytest.mark.parametrize(("l1", "l2"), [(32, 64), (64, 32), (32, 128)])
def test_stream_bytes_agree_when_l1_and_l2_sectors_differ(
    h100: DeviceSpec, l1: int, l2: int
) -> None:
    """Whole lines move whole lines in any sector size."""
    assert dram_bytes(with_sectors(h100, l1, l2), "copy", 1000) == dram_bytes(h100, "copy", 1000)


def test_an_l2_with_larger_sectors_fetches_and_writes_back_whole_l2_sectors(
    h100: DeviceSpec,
) -> None:
    spec = with_sectors(h100, 32, 64)
    env = simpy.Environment()
    s = build_system(env, spec, hbm_config=HBMConfig(refresh=False))
    a = s.access(MemRequest(0, 0, 0b0001))  # 32 B asked: one 64-byte L2 sector from DRAM
    env.run()
    assert a.value.served_by == "DRAM"
    assert s.hbm.totals()["bytes"] == 64
    b = s.access(MemRequest(1, 0, 0b0010))  # the other half of that L2 sector: an L2 hit
    env.run()
    assert b.value.served_by == "L2near"
    assert s.hbm.totals()["bytes"] == 64
    stats = s.stats().set_index("component")
    assert stats.loc["served:DRAM", "bytes"] == stats.loc["served:L2near", "bytes"] == 32
    st = s.access(MemRequest(0, 4096, 0b0100, write=True))  # a 32-B store dirties 64 B
    env.run()
    assert st.value.served_by == "L2near"
    assert s.stats().set_index("component").loc["DRAM", "l2_dirty_bytes"] == 64


def test_masks_beyond_the_line_are_refused(h100: DeviceSpec) -> None:
    s = build_system(simpy.Environment(), with_sectors(h100, 64))
    with pytest.raises(SimgpuError, match="sectors within a line"):
        s.access(MemRequest(0, 0, 0b1111))  # four 32-byte sectors: not a 64-byte-sector mask


def test_pointer_chase_uses_the_device_sector(h100: DeviceSpec) -> None:
    spec = with_sectors(h100, 64)
    env = simpy.Environment()
    s = build_system(env, spec)
    with pytest.raises(SimgpuError, match="sector_bytes"):
        PointerChase(env, s, footprint_bytes=1 << 20, n_loads=10, stride_bytes=96)
    chase = PointerChase(env, s, footprint_bytes=1 << 20, n_loads=200, stride_bytes=64,
                         warm_loads=0).start()
    env.run()
    r = chase.result()
    assert r.bytes == 200 * 64  # one 64-byte sector per load


def test_convert_sectors() -> None:
    assert convert_sectors(0b0110, 32, 64) == 0b11
    assert convert_sectors(0b1000, 32, 64) == 0b10
    assert convert_sectors(0b10, 64, 32) == 0b1100
    assert convert_sectors(0b1, 128, 32) == 0b1111
    assert convert_sectors(0b1000, 32, 128) == 0b1
    assert convert_sectors(0b1010, 32, 32) == 0b1010
    for line, sector in ((128, 32), (128, 64), (256, 32)):
        full = full_mask(line, sector)
        for other in (16, 32, 64, 128):
            if other <= line:
                assert convert_sectors(full, sector, other) == full_mask(line, other)
