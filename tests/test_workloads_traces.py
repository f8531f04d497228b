"""Workload traces match their CUDA kernels: instruction counts, addresses, FLOPs, bytes."""

from __future__ import annotations

import pytest

from simgpu.arch.coalesce import coalesce, coalesce_affine
from simgpu.errors import SimgpuError
from simgpu.workloads import (
    Gemv,
    NaiveGemm,
    PointerChase,
    Reduction,
    RegBlockGemm,
    Stream,
    TiledGemm,
    Transpose,
)
from simgpu.workloads.base import Asm


def _insts(trace):
    return [i for _, ws in trace.blocks() for w in ws for i in w]


def _sectors(i):
    if i.addrs is None:
        reqs = coalesce_affine(i.base, i.stride, i.mask.bit_count(), i.width)
    else:
        reqs = coalesce(i.addrs, i.width)
    return sum(m.bit_count() for _, m in reqs)


@pytest.mark.parametrize("tile", [8, 16, 32])
def test_tiled_gemm_structure(tile):
    M = N = K = 64
    w = TiledGemm(M, N, K, tile=tile)
    t = w.trace()
    assert t.launch.block == (tile, tile, 1)
    assert t.launch.grid == (N // tile, M // tile, 1)
    assert t.launch.shared_bytes == 2 * tile * tile * 4
    insts = _insts(t)
    ffma = [i for i in insts if i.opcode == "FFMA"]
    # one FFMA per thread per k: M*N*K / 32 lanes, all lanes active
    assert len(ffma) == M * N * K // 32
    assert sum(2 * i.mask.bit_count() for i in ffma) == w.flops
    # global loads read every A and B element once per block that needs it:
    # A: M*K * (N / tile) floats, B: K*N * (M / tile)
    ldg_bytes = sum(4 * i.mask.bit_count() for i in insts if i.opcode.startswith("LDG"))
    assert ldg_bytes == 4 * (M * K * (N // tile) + K * N * (M // tile))
    # two barriers per trip per warp, every LDS.128 row read is a broadcast within its row
    assert (
        sum(i.op == "bar" for i in insts)
        == 2 * (K // tile) * t.num_blocks * t.launch.warps_per_block()
    )
    stg = [i for i in insts if i.opcode.startswith("STG")]
    assert sum(i.mask.bit_count() for i in stg) == M * N


def test_tiled_gemm_addresses_are_row_major():
    w = TiledGemm(64, 64, 64, tile=32)
    warp0 = w.trace().block(w.launch().block_index(1, 0, 0))[0]
    ldg = [i for i in warp0 if i.opcode.startswith("LDG")]
    a0, b0 = ldg[0], ldg[1]
    # block (1, 0), thread row 0: A[0][0..31], B[0][32..63], both one 128-B line
    assert a0.lane_addresses()[0] == w._A and a0.stride == 4
    assert b0.lane_addresses()[0] == w._B + 32 * 4
    assert _sectors(a0) == 4 and _sectors(b0) == 4


def test_gemm_edges_are_masked():
    w = TiledGemm(40, 36, 20, tile=16)
    insts = _insts(w.trace())
    stg = [i for i in insts if i.opcode.startswith("STG")]
    assert sum(i.mask.bit_count() for i in stg) == 40 * 36
    ffma = [i for i in insts if i.opcode == "FFMA"]
    assert len(ffma) == 3 * 3 * 8 * 2 * 16  # blocks x warps x trips x tile


@pytest.mark.parametrize("m,n,k,tile", [(40, 36, 20, 16), (64, 96, 64, 32), (48, 16, 40, 8)])
def test_tiled_gemm_loads_follow_the_kernel_in_and_off_the_edges(m, n, k, tile):
    """Every A and B load of every trip: the lanes inside the matrices, at the addresses the
    kernel computes (thread (tx, ty) of block (bx, by) loads A[by*t + ty][k0 + tx] and
    B[k0 + ty][bx*t + tx]), whether its tile lies inside (a trip's addresses moved along k)
    or on an edge."""
    w = TiledGemm(m, n, k, tile=tile)
    tr = w.trace()
    launch = w.launch()
    for b in range(launch.num_blocks):
        bx, by, _ = launch.block_coords(b)
        for wi, warp in enumerate(tr.block(b)):
            ldg = [i for i in warp if i.opcode.startswith("LDG")]
            want = []
            for trip in range(-(-k // tile)):
                k0 = trip * tile
                lanes = [((32 * wi + ln) % tile, (32 * wi + ln) // tile) for ln in range(32)]
                for is_a in (True, False):
                    act = [(ln, tx, ty) for ln, (tx, ty) in enumerate(lanes)
                           if (by * tile + ty < m and k0 + tx < k if is_a
                               else k0 + ty < k and bx * tile + tx < n)]
                    if act:
                        want.append((sum(1 << ln for ln, _, _ in act), tuple(
                            w._A + ((by * tile + ty) * k + k0 + tx) * 4 if is_a
                            else w._B + ((k0 + ty) * n + bx * tile + tx) * 4
                            for _, tx, ty in act)))
            assert [(i.mask, tuple(i.lane_addresses())) for i in ldg] == want


def test_naive_and_regblock_flops():
    for w in (NaiveGemm(48, 32, 16), RegBlockGemm(128, 128, 32)):
        insts = _insts(w.trace())
        fl = sum(2 * i.mask.bit_count() for i in insts if i.opcode == "FFMA")
        assert fl == w.flops
        assert w.compulsory_bytes == 4 * (w.M * w.K + w.K * w.N + w.M * w.N)


def test_warps_that_make_the_same_listed_access_share_one_instruction():
    """The naive SGEMM's lanes read two rows of A (a list, not base + stride); every block of a
    grid row makes the same loads, and shares them, so a one-wave full replay does not hold a
    copy of every list per warp."""
    w = NaiveGemm(64, 64, 16)  # a grid of 4 x 4 blocks
    first, second = w.make_block(0), w.make_block(1)  # neighbours in a row: the same rows of A
    a_loads = [(x, y) for x, y in zip(first[0], second[0], strict=True)
               if x.op == "ld" and x.addrs is not None and x.addrs == y.addrs]
    assert a_loads and all(x is y for x, y in a_loads)
    # an access of its own is an instruction of its own: block 5 reads other rows of A and
    # other columns of B
    other = w.make_block(5)[0]
    listed = [(x, y) for x, y in zip(first[0], other, strict=True)
              if x.op == "ld" and x.addrs is not None]
    assert listed and all(x is not y and x.addrs != y.addrs for x, y in listed)
    # the shared lists are bounded: past the bound they start afresh, with the same answers
    asm = Asm()
    asm.MAX_SHARED_LISTS = 2
    lists = [[0x1000, 0x1004, 0x2000 + 64 * k] for k in range(3)]  # not base + stride
    made = [asm.mem("LDG.E", "global", 4, a, dst=(1,), mask=0b111) for a in lists]
    assert len(asm._lists) == 1 and made[2].addrs == tuple(lists[2])
    assert asm.mem("LDG.E", "global", 4, lists[2], dst=(1,), mask=0b111) is made[2]
    again = asm.mem("LDG.E", "global", 4, lists[0], dst=(1,), mask=0b111)
    assert again is not made[0] and again == made[0]


def test_regblock_sts_bank_conflict_is_in_the_trace():
    from simgpu.arch.coalesce import shared_wavefronts

    w = RegBlockGemm(64, 64, 16)
    body = w._loop_body(0)
    sts_a = [i for i in body if i.opcode == "STS"][0]
    # As[k][m] with k fastest across lanes: lanes 64 words apart land in one bank (16-way)
    assert shared_wavefronts(sts_a.lane_addresses(), 4) == 16


@pytest.mark.parametrize("op", ["read", "write", "copy", "scale", "triad"])
def test_stream_moves_its_bytes(op):
    w = Stream(op, 1 << 14, blocks=4)
    insts = _insts(w.trace())
    moved = sum(16 * i.mask.bit_count() for i in insts if i.op in ("ld", "st"))
    assert moved == w.compulsory_bytes
    # float4 per lane, 32 lanes: 512 B = 16 sectors per access
    assert all(_sectors(i) == 16 for i in insts if i.op in ("ld", "st"))


def test_transpose_naive_writes_one_sector_per_element():
    w = Transpose(64, 64, "naive")
    insts = _insts(w.trace())
    stg = [i for i in insts if i.op == "st"]
    ldg = [i for i in insts if i.op == "ld"]
    assert all(_sectors(i) == 32 for i in stg)
    assert all(_sectors(i) == 4 for i in ldg)
    tiled = _insts(Transpose(64, 64, "tiled").trace())
    assert all(_sectors(i) == 4 for i in tiled if i.op == "st" and i.space == "global")


def test_reduction_and_gemv_counts():
    r = Reduction(1 << 16, blocks=8)
    insts = _insts(r.trace())
    assert sum(16 * i.mask.bit_count() for i in insts if i.opcode.startswith("LDG")) == 4 << 16
    assert sum(i.op == "atom" for i in insts) == 8
    g = Gemv(100, 96)
    insts = _insts(g.trace())
    assert sum(2 * i.mask.bit_count() for i in insts if i.opcode == "FFMA") == g.flops


@pytest.mark.parametrize("n", [96, 128, 224, 4096])
def test_gemv_loop_is_unrolled_as_nvcc_compiles_it(n):
    """trips % 4 single trips, then steps of four: eight loads (A and x of each trip, each to
    its own register) before the four FFMAs, so a warp has eight loads in flight; every
    element of A and x is loaded once per row."""
    (warp, *_) = Gemv(8, n).trace().block(0)
    body = [i for i in warp if i.opcode in ("LDG.E", "FFMA")]
    trips = -(-n // 32)
    assert sum(i.opcode == "LDG.E" for i in body) == 2 * trips
    a_loads = sorted(i.base for i in body if i.opcode == "LDG.E" and i.dst[0] % 2 == 0)
    assert a_loads == [a_loads[0] + 4 * k for k in range(0, n, 32)]
    pos = 0
    for _ in range(trips % 4):
        assert [i.opcode for i in body[pos:pos + 3]] == ["LDG.E", "LDG.E", "FFMA"]
        pos += 3
    while pos < len(body):
        group = body[pos:pos + 12]
        assert [i.opcode for i in group] == ["LDG.E"] * 8 + ["FFMA"] * 4
        assert len({i.dst for i in group[:8]}) == 8
        pos += 12


def test_pointer_chase_visits_a_cycle():
    p = PointerChase(4096, 128, steps=64)
    (warp,) = p.trace().block(0)
    loads = [i for i in warp if i.opcode.startswith("LDG")]
    assert len(loads) == 64
    lines = {i.base // 128 for i in loads}
    assert len(lines) == 32  # 4096 / 128 slots, each visited once per lap
    assert all(i.mask == 1 and i.src == (4, 5) and i.dst == (2,) for i in loads)


def test_bad_parameters():
    with pytest.raises(SimgpuError, match="tile"):
        TiledGemm(64, 64, 64, tile=12)
    with pytest.raises(SimgpuError, match="op"):
        Stream("add", 1024)
    with pytest.raises(SimgpuError, match="positive"):
        Gemv(0, 10)


@pytest.mark.parametrize("tile", [8, 16, 32])
def test_tiled_gemm_registers_avoid_bank_conflicts_like_nvcc(tile):
    """nvcc's sm_61 build of this kernel (Accel-Sim matrixmul32 trace) has no FFMA with two
    sources in one bank mod 4; the generated trace allocates the same way, and its rotating
    accumulator ends each trip where the epilogue stores it from."""
    warp = TiledGemm(64, 64, 64, tile=tile).trace().block(0)[0]
    ffma = [i for i in warp if i.opcode == "FFMA"]
    assert len(ffma) == 64  # K FFMAs per thread
    for i in ffma:
        assert len({r % 4 for r in i.src}) == 3
    # the chain: each FFMA accumulates the previous one's result
    for a, b in zip(ffma, ffma[1:], strict=False):
        assert b.src[2] == a.dst[0]
    store = [i for i in warp if i.opcode.startswith("STG")][0]
    assert ffma[-1].dst[0] in store.src
    mov = [i for i in warp if i.opcode == "MOV"][0]
    assert ffma[0].src[2] in mov.dst
