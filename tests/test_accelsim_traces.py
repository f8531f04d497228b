"""Accel-Sim/NVBit trace import, on the real traces in shared/data and on hand-written files."""

from __future__ import annotations

from pathlib import Path

import pytest

from simgpu.errors import DatasetError
from simgpu.trace import load_traces
from simgpu.trace.accelsim import load_accelsim, read_kernelslist, read_traceg

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "accelsim" / "traces"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared Accel-Sim traces not present")


def _stats_total(folder: Path) -> int:
    lines = (folder / "stats.csv").read_text().strip().splitlines()
    return int(lines[1].split(",")[-2])


@needs_data
def test_vectoradd_real_trace():
    (k,) = load_accelsim(DATA / "vectoradd")
    t = k.trace
    assert t.warp_instruction_count() == 344  # README: 344 warp instructions
    assert t.launch.block == (1024, 1, 1) and t.launch.regs_per_thread == 8
    assert k.tracer_version == 4 and k.binary_version == 61
    loads = [i for _, ws in t.blocks() for w in ws for i in w if i.op == "ld"]
    assert loads and all(i.space == "global" and i.width == 4 for i in loads)
    # The first load of warp 0: base 0x7f2b2d500000, stride 4 over 32 lanes.
    first = loads[0]
    assert first.lane_addresses()[:2] == [0x7F2B2D500000, 0x7F2B2D500004]
    kl = read_kernelslist(DATA / "vectoradd")
    assert [m.nbytes for m in kl.memcpys] == [400, 400, 400]


@needs_data
def test_matrixmul_matches_tracer_stats():
    folder = DATA / "matrixmul32"
    (t,) = load_traces(folder)
    assert t.warp_instruction_count() == _stats_total(folder) == 4416
    assert t.launch.shared_bytes == 8192 and t.launch.block == (32, 32, 1)
    ops = [i for _, ws in t.blocks() for w in ws for i in w]
    assert sum(i.op == "bar" for i in ops) == 64  # two barriers per trip, 32 warps
    lds128 = [i for i in ops if i.opcode == "LDS.U.128"]
    assert lds128 and all(i.space == "shared" and i.width == 16 for i in lds128)


HEADER = """-kernel name = k
-kernel id = 1
-grid dim = (2,1,1)
-block dim = (64,1,1)
-shmem = 0
-nregs = 16
-binary version = 86
-cuda stream id = 0
-shmem base_addr = 0x00007f0000000000
-local mem base_addr = 0x00007e0000000000
-nvbit version = 1.5.5
-accelsim tracer version = {version}

#traces format = PC mask dest_num [reg_dests] opcode src_num [reg_srcs] mem_width ...
"""


def _write(tmp_path: Path, body: str, version: int = 4, name: str = "kernel-1.traceg") -> Path:
    p = tmp_path / name
    p.write_text(HEADER.format(version=version) + body)
    return p


def test_address_modes(tmp_path: Path):
    body = """
#BEGIN_TB

thread block = 0,0,0

warp = 0
insts = 3
0010 0000000f 1 R2 LDG.E 1 R4 4 0 0x1000 0x1010 0x1020 0x1100
0020 000000f0 1 R3 LDG.E 1 R4 4 1 0x2000 8
0030 00000007 1 R5 LDG.E.64 1 R4 8 2 0x3000 16 -8

warp = 1
insts = 1
0010 ffffffff 0 EXIT 0 0
#END_TB
"""
    k = read_traceg(_write(tmp_path, body))
    w0 = k.trace.block(0)[0]
    assert w0[0].lane_addresses() == [0x1000, 0x1010, 0x1020, 0x1100]
    assert w0[1].lane_addresses() == [0x2000, 0x2008, 0x2010, 0x2018]
    assert w0[2].lane_addresses() == [0x3000, 0x3010, 0x3008]
    assert w0[2].width == 8
    assert [i.op for i in k.trace.block(0)[1]] == ["exit"]


def test_older_tracer_version_with_warp_prefix(tmp_path: Path):
    # Tracer versions < 3 put "tb_x tb_y tb_z warp" before every instruction.
    body = """
#BEGIN_TB
1 0 0 1 0010 ffffffff 1 R2 FFMA 3 R1 R2 R3 0
1 0 0 1 0020 ffffffff 1 R5 LDS 1 R4 4 1 0x7f0000000080 4
1 0 0 0 0030 ffffffff 0 EXIT 0 0
#END_TB
"""
    k = read_traceg(_write(tmp_path, body, version=2))
    t = k.trace
    assert k.tracer_version == 2
    assert [i.opcode for i in t.block(1)[1]] == ["FFMA", "LDS"]
    assert t.block(1)[1][1].space == "shared"
    assert [i.opcode for i in t.block(1)[0]] == ["EXIT"]


def test_generic_ld_in_shared_window(tmp_path: Path):
    body = """
#BEGIN_TB
thread block = 0,0,0
warp = 0
insts = 2
0010 00000001 1 R2 LD.E 1 R4 4 1 0x7f0000000040 0
0020 00000001 1 R3 LD.E 1 R4 4 1 0x7f2000000040 0
#END_TB
"""
    w = read_traceg(_write(tmp_path, body)).trace.block(0)[0]
    assert [i.space for i in w] == ["shared", "global"]


def test_truncated_trace_names_line(tmp_path: Path):
    body = """
#BEGIN_TB
thread block = 0,0,0
warp = 0
insts = 5
0010 ffffffff 1 R2 FFMA 3 R1 R2 R3 0
"""
    with pytest.raises(DatasetError, match=r"kernel-1.traceg:\d+: truncated"):
        read_traceg(_write(tmp_path, body))


def test_count_mismatch_and_bad_mode(tmp_path: Path):
    body = """
#BEGIN_TB
thread block = 0,0,0
warp = 0
insts = 2
0010 ffffffff 1 R2 FFMA 3 R1 R2 R3 0
#END_TB
"""
    with pytest.raises(DatasetError, match="insts = 2 but has 1"):
        read_traceg(_write(tmp_path, body))
    body2 = """
#BEGIN_TB
thread block = 0,0,0
warp = 0
0010 00000003 1 R2 LDG.E 1 R4 4 7 0x1000 4
#END_TB
"""
    with pytest.raises(DatasetError, match=r"kernel-2.traceg:\d+: address mode 7"):
        read_traceg(_write(tmp_path, body2, name="kernel-2.traceg"))


def test_kernelslist_missing_kernel(tmp_path: Path):
    (tmp_path / "kernelslist.g").write_text("MemcpyHtoD,0x1000,64\nkernel-9.traceg\n")
    with pytest.raises(DatasetError, match="kernel-9.traceg"):
        read_kernelslist(tmp_path)


def test_trace_without_version_header_is_old_format(tmp_path: Path):
    text = HEADER.format(version=4).replace("-accelsim tracer version = 4\n", "")
    body = """
#BEGIN_TB
0 0 0 0 0010 ffffffff 1 R2 FFMA 3 R1 R2 R3 0
0 0 0 0 0020 ffffffff 0 EXIT 0 0
#END_TB
"""
    p = tmp_path / "kernel-1.traceg"
    p.write_text(text + body)
    k = read_traceg(p)
    assert k.tracer_version == 0
    assert [i.opcode for i in k.trace.block(0)[0]] == ["FFMA", "EXIT"]


# --- EXIT retires the lanes of its mask ---------------------------------------------------------


@needs_data
def test_vectoradd_replays_every_instruction_and_its_memory():
    """vectorAdd of 100 floats: every warp exits its bounds-check lanes (mask 0) before the
    body; the four warps with elements then load, add and store. Before EXIT kept its mask,
    the first EXIT retired every warp: 288 of 344 instructions, no load or store."""
    from simgpu import devices
    from simgpu.sim.replay import simulate_trace

    (k,) = load_accelsim(DATA / "vectoradd")
    r = simulate_trace(k.trace, devices.get("h100-sxm"))
    assert r.instructions_simulated == k.trace.warp_instruction_count() == 344
    assert r.op_counts["ld"] == 8 and r.op_counts["st"] == 4
    # 100 floats per array: 13 sectors of 32 B read from each input, 13 written
    assert r.bytes["dram"]["read"] == 2 * 13 * 32 and r.bytes["dram"]["write"] == 13 * 32


def _divergent_body(first_exit: str, second_exit: str) -> str:
    return f"""
#BEGIN_TB
thread block = 0,0,0
warp = 0
insts = 5
0010 ffffffff 1 R2 S2R 0 0
0020 0000ffff 0 EXIT 0 0
0030 ffff0000 1 R4 LDG.E 1 R2 4 1 0x10000 4
0040 {first_exit} 0 EXIT 0 0
0050 {second_exit} 1 R5 FADD 2 R4 R4 0
#END_TB
"""


def test_divergent_warp_runs_until_its_last_lane_exits(tmp_path: Path):
    """Lanes 0-15 exit first; lanes 16-31 load and exit; the warp retires at the second EXIT,
    and an instruction after the EXIT of its last lanes is not run."""
    from simgpu import devices
    from simgpu.sim.replay import simulate_trace

    spec = devices.get("h100-sxm")
    k = read_traceg(_write(tmp_path, _divergent_body("ffff0000", "ffff0000")))
    r = simulate_trace(k.trace, spec, max_blocks=1)
    # the first of HEADER's two blocks; its second warp has no stream
    assert r.op_counts.get("ld") == 1 and r.op_counts["exit"] == 2
    assert r.instructions_simulated == 4
    assert r.bytes["l1"]["read"] == 16 * 4  # 16 lanes x 4 B: two sectors of 32 B
    # the same warp whose second EXIT retires only some of the remaining lanes runs on to the
    # end of its stream
    k = read_traceg(_write(tmp_path, _divergent_body("00ff0000", "ff000000"), name="k2.traceg"))
    r = simulate_trace(k.trace, spec, max_blocks=1)
    assert r.instructions_simulated == 5 and r.op_counts["fp32"] == 1
