"""Registers and occupancy of tensor-core GEMM blocks: the analytical and simulated views of
the same kernel take the same registers per thread (kernels/mma_gemm.cu: the compiler's counts
in the catalogue; the library's tiles: the accumulator rule of
:func:`simgpu.analytical.gemm.tensor_op_registers`) and so, through the one occupancy rule
(:mod:`simgpu.arch.occupancy`), the same blocks per SM."""

from __future__ import annotations

import pytest

from simgpu import catalogue, devices
from simgpu.analytical.gemm import compiled_registers, launch_registers, tensor_op_registers
from simgpu.arch.occupancy import occupancy
from simgpu.workloads import MmaGemm
from simgpu.workloads.tensor_gemm import WARP_LAYOUTS, TensorGemm, library_kernel

ENTRY = catalogue.get("mma_gemm")
#: every bundled device with mma.sync on fp16 (compute capability 8.0 and later)
TC_DEVICES = [n for n in devices.names()
              if (d := devices.get_device(n)).kind == "gpu"
              and tuple(int(x) for x in d.compute_capability.split(".")) >= (8, 0)]


def _launch_occupancy(spec, kern):
    launch = kern.launch()
    return occupancy(spec, launch.block[0], launch.regs_per_thread, launch.shared_bytes)


def test_mma128x128_on_h100_fits_one_block_per_sm_in_both_views():
    spec = devices.get("h100-sxm")
    kern = MmaGemm(4096, 4096, 4096, dtype="fp16", **ENTRY.variant_named("mma128x128").params)
    row = kern.estimate(spec).iloc[0]
    occ = _launch_occupancy(spec, kern)
    # 168 registers x 32 lanes = 5376 a warp: three warps in each 16 K sub-partition, 12 warps,
    # one block of 8 warps (two would need 128 registers or fewer)
    assert occ.blocks_per_sm == 1 and occ.limit == "registers"
    assert int(row["blocks_per_sm"]) == occ.blocks_per_sm
    assert row["regs_per_thread"] == kern.launch().regs_per_thread == 168
    # the grid of 32 x 32 blocks over 132 SMs, one at a time: 7.76 waves, counted whole
    assert row["waves"] == 8.0


def test_the_replay_of_mma128x128_on_h100_runs_the_analytical_blocks_per_sm():
    """The simulator's own occupancy (the replay's block scheduler) for a small grid."""
    spec = devices.get("h100-sxm")
    kern = MmaGemm(256, 256, 256, dtype="fp16", **ENTRY.variant_named("mma128x128").params)
    res = kern.simulate(spec, sample=False)
    assert res.occupancy_blocks_per_sm == int(kern.estimate(spec).iloc[0]["blocks_per_sm"]) == 1


def _mma_kernels() -> list:
    out = []
    for v in ENTRY.variants:
        for dtype in ENTRY.dtypes:
            out.append(pytest.param(v.params, dtype, id=f"{v.name}-{dtype}"))
    # a tile no variant compiles: both views take the rule
    out.append(pytest.param({"tile_m": 128, "tile_n": 64, "warps_m": 2, "warps_n": 2,
                             "stages": 3}, "fp16", id="mma128x64-uncompiled"))
    return out


@pytest.mark.parametrize("device", TC_DEVICES)
@pytest.mark.parametrize(("params", "dtype"), _mma_kernels())
def test_mma_gemm_views_take_the_same_registers_and_blocks(device, params, dtype):
    spec = devices.get(device)
    kern = MmaGemm(2048, 2048, 2048, dtype=dtype, **params)
    row = kern.estimate(spec).iloc[0]
    launch = kern.launch()
    assert row["regs_per_thread"] == launch.regs_per_thread
    assert int(row["blocks_per_sm"]) == _launch_occupancy(spec, kern).blocks_per_sm


@pytest.mark.parametrize("device", TC_DEVICES)
@pytest.mark.parametrize("tile", sorted(WARP_LAYOUTS), ids=lambda t: "x".join(map(str, t)))
def test_library_tiles_views_take_the_same_registers_and_blocks(device, tile):
    spec = devices.get(device)
    tm, tn, threads = tile
    wm, wn = WARP_LAYOUTS[tile]
    kern = TensorGemm(4096, 4096, 4096, dtype="fp16", tile_m=tm, tile_n=tn, warps_m=wm,
                      warps_n=wn, stages=3)
    row = kern.estimate(spec).iloc[0]
    assert row["regs_per_thread"] == kern.launch().regs_per_thread
    if row["blocks_per_sm"] > 0:
        assert int(row["blocks_per_sm"]) == _launch_occupancy(spec, kern).blocks_per_sm


@pytest.mark.parametrize("device", ["h100-sxm", "a100-sxm-80gb", "rtx-4090"])
@pytest.mark.parametrize("shape", [(4096, 4096, 4096), (512, 512, 8192), (8192, 1024, 2048)])
def test_the_library_searchs_kernel_launches_with_the_searchs_registers(device, shape):
    spec = devices.get(device)
    kern, row = library_kernel(spec, *shape, "fp16")
    assert row["regs_per_thread"] == kern.launch().regs_per_thread
    assert int(row["blocks_per_sm"]) == _launch_occupancy(spec, kern).blocks_per_sm


@pytest.mark.parametrize("variant", ENTRY.variants, ids=lambda v: v.name)
def test_the_accumulator_rule_against_the_compiled_counts(variant):
    """The rule is fitted to the fp16 and bf16 counts (no held-out check): within 10% of them.
    It gives the same blocks per SM as every compiled count on every bundled tensor-core device,
    tf32's included (206 and 158, which it undercounts by 48 and 32: held out of its fit)."""
    tm, tn = variant.tile[:2]
    threads = variant.threads_per_block
    smem = variant.params["stages"] * (tm + tn) * variant.tile[2] * 2
    rule = int(tensor_op_registers(tm, tn, threads))
    for dtype, compiled in variant.regs_per_thread.items():
        assert compiled_registers("mma_gemm", dtype, tm, tn, threads,
                                  variant.params["stages"]) == compiled
        if dtype in ("fp16", "bf16"):
            assert abs(rule - compiled) <= 0.1 * compiled, (rule, compiled)
        for name in TC_DEVICES:
            spec = devices.get(name)
            assert (occupancy(spec, threads, rule, smem).blocks_per_sm
                    == occupancy(spec, threads, compiled, smem).blocks_per_sm), name


def test_the_rule_counts_accumulators_per_thread():
    # a 256 x 128 tile over 256 threads holds twice the accumulators a thread of 128 x 128 does
    big, small = (int(tensor_op_registers(m, 128, 256)) for m in (256, 128))
    assert big - small == 128 * 128 // 256
    # the register file's limit caps it: 256 x 256 over 128 threads would need 512 accumulators
    assert int(tensor_op_registers(256, 256, 128)) == 255
    # no compiled count for the library's tiles: the rule
    assert launch_registers("cublas", "fp16", 128, 128, 256, 4) == small
