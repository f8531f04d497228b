"""Tensor-core instructions and the data movement of tensor-core kernels, on hand-built traces:
each timing against the published figure the device file cites (Luo et al., arXiv:2402.13499,
Tables VII, VIII and X), cp.async and TMA copy groups, ldmatrix wavefronts."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from sim_stub import StubRequest, stub_factory

from simgpu import devices
from simgpu.devices.load import loads_device
from simgpu.errors import DeviceFileError
from simgpu.sim.replay import simulate_trace
from simgpu.sim.sm import mma_flops, tensor_key
from simgpu.trace.schema import Instruction, KernelLaunch, ListTrace

MODELS = Path(__file__).resolve().parents[1] / "models"


def one_sm(spec):
    return dataclasses.replace(spec, compute=dataclasses.replace(spec.compute, sm_count=1))


def run(spec, warps, latency=100.0):
    launch = KernelLaunch("k", (1, 1, 1), (32 * len(warps), 1, 1), 32)
    factory = stub_factory(latency)
    res = simulate_trace(
        ListTrace(launch, {0: warps}), one_sm(spec), system_factory=factory,
        request_cls=StubRequest,
    )
    return res, factory.holder["system"]


def op(opcode, dst=(), src=()):
    from simgpu.trace.schema import classify_opcode

    return Instruction(pc=0, opcode=opcode, op=classify_opcode(opcode), dst=tuple(dst),
                       src=tuple(src))


EXIT = op("EXIT")

#: (device, opcode, published TFLOP/s, the paper's peak for it, the device file's peak key):
#: the device's rate per SM per clock is the published fraction of the paper's peak times its
#: own peak per SM per clock, capped at the peak (the RTX 4090 ran above its listed clock).
PUBLISHED = [
    # Luo et al. Table VII, mma.sync, H800 PCIe (GH100)
    ("h100-sxm", "HMMA.16816.F32.F16", 490.7, 756.5, "peak_fp16_tensor_TFLOPS"),
    ("h100-sxm", "HMMA.1688.F32.TF32", 246.4, 378.0, "peak_tf32_tensor_TFLOPS"),
    # Table VIII / X, wgmma (SS, zero-init), H800 PCIe
    ("h100-sxm", "HGMMA.64x256x16.F32.F16", 728.5, 756.5, "peak_fp16_tensor_TFLOPS"),
    ("h100-sxm", "HGMMA.64x128x16.F32.F16", 728.5, 756.5, "peak_fp16_tensor_TFLOPS"),
    ("h100-sxm", "HGMMA.64x64x16.F32.F16", 719.6, 756.5, "peak_fp16_tensor_TFLOPS"),
    ("h100-sxm", "HGMMA.64x256x8.F32.TF32", 364.4, 373.0, "peak_tf32_tensor_TFLOPS"),
    ("h100-sxm", "QGMMA.64x256x32.F32.E4M3.E4M3", 1447.5, 1513.0, "peak_fp8_tensor_TFLOPS"),
    ("h200", "HGMMA.64x256x16.F32.F16", 728.5, 756.5, "peak_fp16_tensor_TFLOPS"),
    # Table VII, A100 PCIe and RTX 4090
    ("a100-sxm-80gb", "HMMA.16816.F32.F16", 303.4, 312.0, "peak_fp16_tensor_TFLOPS"),
    ("a100-sxm-80gb", "HMMA.1688.F32.TF32", 151.5, 156.0, "peak_tf32_tensor_TFLOPS"),
    ("rtx-4090", "HMMA.16816.F32.F16", 178.9, 165.2, "peak_fp16_tensor_TFLOPS"),
    ("rtx-4090", "HMMA.1688.F32.TF32", 89.0, 82.6, "peak_tf32_tensor_TFLOPS"),
]

#: (device, opcode, published latency in cycles): Luo et al. Tables VII, VIII, X.
LATENCIES = [
    ("h100-sxm", "HMMA.16816.F32.F16", 24.1),
    ("h100-sxm", "HMMA.1688.F32.TF32", 24.5),
    ("h100-sxm", "HGMMA.64x256x16.F32.F16", 128.0),
    ("h100-sxm", "HGMMA.64x128x16.F32.F16", 64.0),
    ("h100-sxm", "QGMMA.64x256x32.F32.E4M3.E4M3", 128.0),
    ("a100-sxm-80gb", "HMMA.16816.F32.F16", 26.0),
    ("a100-sxm-80gb", "HMMA.1688.F32.TF32", 26.3),
    ("rtx-4090", "HMMA.16816.F32.F16", 33.0),
    ("rtx-4090", "HMMA.1688.F32.TF32", 33.4),
]


def _independent_stream(opcode, n):
    """n tensor instructions over 8 accumulators (independent enough to fill the pipe)."""
    return [op(opcode, dst=(40 + 4 * (i % 8),), src=(8, 10, 40 + 4 * (i % 8))) for i in range(n)]


@pytest.mark.parametrize(("device", "opcode", "tflops", "peak", "peak_key"), PUBLISHED)
def test_tensor_throughput_matches_published_figure(device, opcode, tflops, peak, peak_key):
    spec = devices.get(device)
    c = spec.compute
    cycles = {}
    for n in (32, 64):
        res, _ = run(spec, [_independent_stream(opcode, n) + [EXIT] for _ in range(4)])
        cycles[n] = res.cycles
    per_sm_clk = 4 * 32 * mma_flops(opcode) / (cycles[64] - cycles[32])  # 4 sub-cores
    device_peak = getattr(c, peak_key) * 1e12 / (c.sm_count * c.clock_hz)
    expected = min(1.0, tflops / peak) * device_peak
    assert per_sm_clk == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(("device", "opcode", "latency"), LATENCIES)
def test_tensor_latency_matches_published_figure(device, opcode, latency):
    spec = devices.get(device)
    use = op("FFMA", dst=(60,), src=(40, 41, 42))
    base, _ = run(spec, [[use, EXIT]])
    timed, _ = run(spec, [[op(opcode, dst=(40,), src=(8, 10)), use, EXIT]])
    # the FFMA issues the latency (issue to dependent issue) after the tensor instruction
    assert timed.cycles - base.cycles == pytest.approx(latency, abs=0.5)


def test_mma_flops_from_the_opcode_shape():
    assert mma_flops("HMMA.16816.F32.BF16") == 2 * 16 * 8 * 16
    assert mma_flops("HMMA.1688.F32.TF32") == 2 * 16 * 8 * 8
    assert mma_flops("HMMA.884.F16.F16") == 2 * 8 * 8 * 4
    assert mma_flops("HGMMA.64x256x16.F32.F16") == 2 * 16 * 256 * 16  # one warp's quarter
    assert mma_flops("FFMA") == 0
    assert tensor_key("HGMMA.64x256x16.F32.BF16") == "hgmma_64x256x16_f32_bf16"


def _ldgsts(addr):
    return Instruction(pc=0, opcode="LDGSTS.E.BYPASS.128", op="ld", src=(2,), space="global",
                       width=16, base=addr, stride=16)


def test_cp_async_wait_group_waits_for_the_older_groups_only():
    spec = devices.get("a100-sxm-80gb")
    pad = [op("IMAD", dst=(20 + i,), src=(3,)) for i in range(40)]

    def kernel(newest):
        return [_ldgsts(0x10000), op("LDGDEPBAR"), *pad, _ldgsts(0x20000), op("LDGDEPBAR"),
                op(f"DEPBAR.LE.SB0.{newest}"), op("MOV", dst=(30,), src=(20,)), EXIT]

    one, mem = run(spec, [kernel(1)], latency=300.0)
    both, _ = run(spec, [kernel(0)], latency=300.0)
    t_first = min(r.t_issue for r in mem.requests)
    t_second = max(r.t_issue for r in mem.requests)
    assert t_second - t_first >= 40  # the padding's issue cycles (two cycles each, INT lanes)
    # waiting for the older group ends when its lines land; waiting for both, when the later do
    # (the block's end; the kernel's lasts until every copy has landed either way)
    (end_one,) = one.block_end_cycles
    (end_both,) = both.block_end_cycles
    assert end_one == pytest.approx(t_first + 300.0, abs=8)
    assert end_both - end_one == pytest.approx(t_second - t_first, abs=2)
    # the sub-core idles from the wait to the older group's landing: a copy stall
    assert one.stalls["async_copy"] == pytest.approx(t_first + 300.0 - t_second, abs=8)
    # the lines bypass the L1 (cp.async.cg) and write no register
    assert all(r.cache_op == "cg" for r in mem.requests)


def test_tma_bulk_copy_moves_whole_lines_outside_the_lsu():
    spec = devices.get("h100-sxm")
    lines = tuple(0x40000 + 128 * i for i in range(32))
    tma = Instruction(pc=0, opcode="UTMALDG.2D", op="ld", space="global", width=16,
                      addrs=lines, src=(2,))
    res, mem = run(spec, [[tma, op("LDGDEPBAR"), op("DEPBAR.LE.SB0.0"), EXIT]], latency=200.0)
    assert len(mem.requests) == 32
    assert {r.line_addr for r in mem.requests} == set(lines)
    assert all(r.sectors == 0b1111 for r in mem.requests)
    assert res.bytes["l1"]["read"] == 32 * 128
    assert res.cycles == pytest.approx(200.0, abs=8)


def test_ldmatrix_x4_is_four_wavefronts_when_conflict_free():
    spec = devices.get("h100-sxm")
    ldsm = Instruction(pc=0, opcode="LDSM.16.M88.4", op="ld", dst=(8, 9, 10, 11), src=(4,),
                       space="shared", width=16, base=0, stride=16)
    use = op("HMMA.16816.F32.F16", dst=(40,), src=(8, 10, 40))
    res, _ = run(spec, [[ldsm, use, EXIT]])
    lat = spec.l1.shared_latency_cycles
    assert res.op_counts["ld"] == 1
    # the HMMA issues when the fragment is there: the last of four wavefronts (three cycles
    # after the first) plus the shared-memory latency; the EXIT one cycle later
    assert res.cycles == pytest.approx(3 + lat + 1, abs=0.5)


def test_device_file_refuses_unpaired_or_misspelled_tensor_timings():
    text = (MODELS / "a100-sxm-80gb.toml").read_text(encoding="utf-8")
    unpaired = re.sub(r"(\[compute\.tensor_interval_cycles\]\n)hmma_16816_f32_f16 = [^\n]*\n",
                      r"\1", text)
    with pytest.raises(DeviceFileError, match="tensor_interval_cycles.hmma_16816_f32_f16"):
        loads_device(unpaired)
    misspelled = text.replace("hmma_1688_f32_tf32 = 26.3", "hmma-1688 = 26.3")
    with pytest.raises(DeviceFileError, match="tensor_latency_cycles"):
        loads_device(misspelled)
