"""One occupancy rule: the analytical model and the simulator give the same blocks per SM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simgpu import analytical, devices, workloads
from simgpu.arch.occupancy import occupancy
from simgpu.devices.spec import DeviceSpec
from simgpu.errors import SimgpuError

GPUS = [d.name for d in devices.list_devices() if isinstance(d, DeviceSpec)]
THREADS = [1, 32, 64, 96, 128, 192, 256, 384, 512, 640, 768, 1024, 2048]
REGS = [0, 16, 24, 32, 40, 48, 64, 72, 96, 128, 168, 255, 256]
SMEM = [0, 1, 1000, 4096, 12 * 1024, 32 * 1024, 48 * 1024, 100 * 1024, 160 * 1024, 227 * 1024,
        300 * 1024]


def _simulator_blocks(spec: DeviceSpec, t: int, r: int, s: int) -> int:
    try:
        return occupancy(spec, t, r, s).blocks_per_sm
    except SimgpuError:
        return 0


@pytest.mark.parametrize("name", GPUS)
def test_analytical_and_simulator_agree_on_every_launch(name: str) -> None:
    spec = devices.get(name)
    grid = np.array(list(itertools.product(THREADS, REGS, SMEM)))
    table = analytical.occupancy(spec, grid[:, 0], grid[:, 1], grid[:, 2])
    sim = [_simulator_blocks(spec, int(t), int(r), int(s)) for t, r, s in grid]
    assert table["blocks_per_sm"].tolist() == sim
    assert 0 < sum(x > 0 for x in sim) < len(sim)  # the grid has launches that fit and that do not


@pytest.mark.parametrize(
    ("name", "threads", "regs", "smem", "blocks", "limit"),
    [
        # per-sub-partition registers: 5 warps of 3072 registers in each 16 K quarter, not 21
        ("h100-sxm", 32, 96, 0, 20, "registers"),
        ("h100-sxm", 256, 32, 0, 8, "warps"),
        # (48 KiB + 1 KiB reserved) per block out of the 228 KiB carve-out
        ("h100-sxm", 128, 32, 48 * 1024, 4, "shared"),
        ("a100-sxm-80gb", 1024, 64, 0, 1, "registers"),  # 2 by warps, 1 by 64 K registers
        # cc 7.0: 256-byte units, nothing reserved: 1000 B take 1024 of the 96 KiB carve-out
        ("v100-sxm2", 64, 16, 1000, 32, "warps"),  # ties with the 32-block limit
        ("v100-sxm2", 64, 16, 4000, 24, "shared"),
    ],
)
def test_cuda_occupancy_calculator_figures(name, threads, regs, smem, blocks, limit) -> None:
    spec = devices.get(name)
    occ = occupancy(spec, threads, regs, smem)
    assert (occ.blocks_per_sm, occ.limit) == (blocks, limit)
    row = analytical.occupancy(spec, threads, regs, smem).iloc[0]
    assert (row["blocks_per_sm"], row["limiter"]) == (blocks, limit)


def test_replay_dispatches_the_blocks_the_rule_allows() -> None:
    spec = devices.get("h100-sxm")
    result = workloads.TiledGemm(64, 64, 64, tile=8).simulate(spec, sample=False)
    launch = workloads.TiledGemm(64, 64, 64, tile=8).launch()
    row = analytical.occupancy(spec, launch.threads_per_block, launch.regs_per_thread,
                               launch.shared_bytes).iloc[0]
    assert result.occupancy_blocks_per_sm == row["blocks_per_sm"] > 0


def test_a_launch_that_cannot_run_is_an_error_in_the_simulator_and_zero_analytically() -> None:
    spec = devices.get("h100-sxm")
    with pytest.raises(SimgpuError, match="registers per block|fit 0 blocks"):
        occupancy(spec, 1024, 255, 0)  # 1024 x 256 registers > the 64 K a block may hold
    assert analytical.occupancy(spec, 1024, 255, 0)["blocks_per_sm"].iloc[0] == 0
