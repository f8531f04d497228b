"""Coalescing of global accesses into sectors, shared-memory bank wavefronts, occupancy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simgpu import devices
from simgpu.arch.coalesce import (
    coalesce,
    coalesce_affine,
    shared_wavefronts,
    shared_wavefronts_affine,
)
from simgpu.arch.occupancy import occupancy
from simgpu.devices.registry import Registry
from simgpu.errors import SimgpuError


def sectors(reqs):
    return sum(m.bit_count() for _, m in reqs)


@pytest.mark.parametrize(
    ("stride", "width", "lines", "nsect"),
    [
        (4, 4, 1, 4),  # 32 x 4 B contiguous: one line, four sectors
        (8, 4, 2, 8),  # every other word: 256 B span
        (16, 16, 4, 16),  # float4 per lane: 512 B
        (32, 4, 8, 32),  # one word per sector
        (128, 4, 32, 32),  # one word per line: 32 lines of one sector
        (0, 4, 1, 1),  # broadcast
        (4096, 4, 32, 32),  # column walk of a 1024-float row-major matrix
    ],
)
def test_strided_access_sector_counts(stride, width, lines, nsect):
    for fn in (
        lambda: coalesce_affine(0x10000, stride, 32, width),
        lambda: coalesce([0x10000 + k * stride for k in range(32)], width),
    ):
        reqs = fn()
        assert len(reqs) == lines
        assert sectors(reqs) == nsect
        assert all(line % 128 == 0 for line, _ in reqs)


def test_misaligned_contiguous_spans_two_lines():
    reqs = coalesce_affine(0x10004, 4, 32, 4)
    assert [line for line, _ in reqs] == [0x10000, 0x10080]
    assert sectors(reqs) == 5


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=1 << 20), min_size=1, max_size=32),
    st.sampled_from([1, 2, 4, 8, 16]),
)
def test_coalesce_matches_brute_force(addrs, width):
    want = {(b // 32) for a in addrs for b in range(a, a + width)}
    got = {
        (line + 32 * s) // 32 for line, m in coalesce(addrs, width) for s in range(4) if m >> s & 1
    }
    assert got == want


def _lane_by_lane(addrs, width, line=128, sector=32):
    """Requests in order of first touch, one lane at a time (the reference)."""
    out: dict[int, int] = {}
    for a in addrs:
        x, end = a, a + width - 1
        while x <= end:
            base = x - x % line
            hi = min(end, base + line - 1)
            s0, s1 = (x - base) // sector, (hi - base) // sector
            out[base] = out.get(base, 0) | (((1 << (s1 + 1)) - 1) ^ ((1 << s0) - 1))
            x = base + line
    return list(out.items())


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=1 << 16),
    st.sampled_from([1, 2, 4, 8, 16]),
    st.lists(st.tuples(st.integers(min_value=0, max_value=600), st.integers(1, 16),
                       st.sampled_from([0, 1])), min_size=1, max_size=8),
)
def test_runs_and_broadcasts_coalesce_in_lane_order(base, width, runs):
    """Warp-shaped patterns: runs of lanes at consecutive addresses or at one address (a
    broadcast, as the naive SGEMM's A loads), each run somewhere else; the requests and their
    order are those of the lane-by-lane rule."""
    addrs: list[int] = []
    for offset, lanes, step in runs:
        start = (base + offset * 64) // width * width
        addrs += [start + k * step * width for k in range(lanes)]
    addrs = addrs[:32]
    assert coalesce(addrs, width) == _lane_by_lane(addrs, width)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1 << 16, max_value=1 << 24),
    st.integers(min_value=-5000, max_value=5000),
    st.integers(min_value=1, max_value=32),
    st.sampled_from([1, 2, 4, 8, 16]),
)
def test_affine_fast_paths_match_the_lane_list(base, stride, lanes, width):
    # the same requests, in the same order, as the lane-by-lane coalescing of its addresses
    lane_addrs = [base + k * stride for k in range(lanes)]
    assert coalesce_affine(base, stride, lanes, width) == coalesce(lane_addrs, width)


@pytest.mark.parametrize(
    ("stride", "width", "waves"),
    [
        (4, 4, 1),  # conflict-free
        (8, 4, 2),  # two-way conflict
        (128, 4, 32),  # all lanes in bank 0
        (0, 4, 1),  # broadcast
        (33 * 4, 4, 1),  # padded transpose tile column
        (32 * 4, 4, 32),  # unpadded column: 32-way
        (16, 16, 4),  # LDS.128 contiguous: 512 B over 128 B/cycle
    ],
)
def test_shared_bank_wavefronts(stride, width, waves):
    assert shared_wavefronts_affine(0, stride, 32, width) == waves
    assert shared_wavefronts([k * stride for k in range(32)], width) == waves


# -- occupancy: the CUDA occupancy calculator's rules (cuda_occupancy.h) --------------------------
def _expected(spec, threads, regs, smem):
    c, rf = spec.compute, spec.register_file
    wpb = -(-threads // 32)
    by_warps = c.max_warps_per_sm // wpb
    per_warp = -(-regs * 32 // 256) * 256
    by_regs = (rf.registers_per_sm // 4 // per_warp) * 4 // wpb
    major = int(spec.compute_capability.split(".")[0])
    gran = 256 if major == 7 else 128
    need = -(-smem // gran) * gran + (1024 if major >= 8 else 0)
    by_smem = max(spec.l1.shared_carveouts_KiB) * 1024 // need if need else 10**9
    return min(by_warps, by_regs, by_smem, c.max_blocks_per_sm)


@pytest.mark.parametrize("name", Registry().names())
def test_occupancy_rules_each_device(name):
    spec = Registry().get_device(name)
    if spec.kind != "gpu":
        pytest.skip("not a GPU")
    for threads, regs, smem in [
        (32, 16, 0),
        (256, 32, 0),
        (1024, 64, 0),
        (256, 255, 0),
        (128, 32, 16384),
        (256, 40, 48 * 1024),
    ]:
        if smem > spec.compute.max_shared_memory_per_block_KiB * 1024:
            continue
        occ = occupancy(spec, threads, regs, smem)
        assert occ.blocks_per_sm == _expected(spec, threads, regs, smem), (threads, regs, smem)


def test_occupancy_published_cases():
    h100 = devices.get("h100-sxm")
    # 256 threads, 32 registers: 8 blocks of 8 warps fill the 64 warp slots.
    assert occupancy(h100, 256, 32, 0).blocks_per_sm == 8
    assert occupancy(h100, 256, 32, 0).limit == "warps"
    # 1024 threads x 64 registers = 64 Ki registers: one block, register-limited.
    o = occupancy(h100, 1024, 64, 0)
    assert (o.blocks_per_sm, o.limit) == (1, "registers")
    # 16 KiB + 1 KiB reserved per block in a 228 KiB carve-out: 13 blocks.
    o = occupancy(h100, 128, 32, 16 * 1024)
    assert (o.blocks_per_sm, o.limit) == (13, "shared")
    # RTX 4070 (48 warps per SM): 6 blocks of 256 threads.
    assert occupancy(devices.get("rtx-4070"), 256, 32, 0).blocks_per_sm == 6


def test_occupancy_rejects_impossible_launch():
    h100 = devices.get("h100-sxm")
    with pytest.raises(SimgpuError, match="threads per block"):
        occupancy(h100, 2048, 32, 0)
    with pytest.raises(SimgpuError, match="shared memory"):
        occupancy(h100, 128, 32, 300 * 1024)


def test_a_listed_access_is_coalesced_once_per_instruction(monkeypatch):
    """Warps that make the same listed access share one instruction (a naive SGEMM's row of A:
    two half-warps on two addresses); the decoder coalesces it once, as coalesce() does."""
    from simgpu.sim import sm as sm_module
    from simgpu.trace.schema import Instruction

    cfg = sm_module.SMConfig.from_spec(devices.get("h100-sxm"))
    dec = sm_module.Decoder(cfg)
    addrs = tuple([4096] * 16 + [4096 + 2048] * 16)
    inst = Instruction(pc=0, opcode="LDG.E", op="ld", dst=(12,), src=(4, 5), space="global",
                       width=4, addrs=addrs)
    calls = []
    real = sm_module.coalesce
    monkeypatch.setattr(sm_module, "coalesce", lambda *a: calls.append(a) or real(*a))
    first = dec.lines(inst)
    assert first == real(addrs, 4, cfg.line_bytes, cfg.sector_bytes) == [(4096, 1), (6144, 1)]
    assert dec.lines(inst) is first and len(calls) == 1
    # another instruction object with the same addresses is coalesced on its own
    twin = Instruction(pc=0, opcode="LDG.E", op="ld", dst=(12,), src=(4, 5), space="global",
                       width=4, addrs=addrs)
    assert dec.lines(twin) == first and len(calls) == 2
