"""A slice of a GPU: ``1/k`` of its SMs with the same share of its L2 and DRAM.

Sampling in space, beside the wave and trip sampling of :mod:`simgpu.sim.replay`: a kernel whose
blocks are alike and whose memory traffic is spread evenly over the L2 slices and DRAM channels
(addresses interleave over both) sees, on each SM, about the same memory system whether it runs
on the whole GPU or on ``1/k`` of it with ``1/k`` of the L2 slices, L2 capacity and DRAM
channels. The slice runs one run of at most :data:`CHUNK` consecutive blocks in every ``k``
runs, counted within the grid's rows where they split evenly (:func:`slice_blocks`), so blocks
that share data on the whole GPU still share it in the slice: a GEMM's slice runs the rows of
output tiles a wave of the whole GPU runs, with the same ``1/k`` of the columns in each. It still
reads all of those rows of A for its quarter of B, which a DRAM-bound GEMM wave pays for, so
GEMMs sample on the whole GPU unless asked, or unless A and B start in the L2 and the kernel
makes few L2 requests per FLOP (``GemmBase.simulate``).

Runs of consecutive blocks, not every ``k``-th block: neighbouring blocks read
neighbouring lines, and every ``k``-th block of a GEMM row reads every ``k``-th 64-byte column
strip of B, that is every other line, which the line-interleaved L2 slices and DRAM channels of
the slice serve from half of them (the sampled 4096^3 tiled SGEMM came out 12.8% slower than on
the whole GPU that way, with the same DRAM bytes; 0.4% faster with runs of 8, but 8.4% slower with
runs of 16: its trip extrapolation amplifies small differences, docs/sm-model.md).

What a slice keeps per SM, per L2 slice and per DRAM channel is the device file's own figure
(latencies, ways, line and sector sizes, bank timings, crossbar bytes per cycle); what it
divides are the counts and the totals that are sums over them (SMs, L2 slices and capacity, DRAM
channels, bus width and peak bandwidth, the GPU's peak FLOP/s), so a slice of a valid device
file passes every rule a device file must pass (``tests/test_gpuslice.py`` checks the bundled
ones).

What a slice changes, and ``bench_sampling`` measures against full replays: the L2 capacity
that blocks on other SMs would share (data every block reads, such as a GEMM's rows of A, takes
a larger share of a smaller L2), and the balance of SMs between the two L2 partitions when the
slice's SM count is odd.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING

from simgpu.errors import SimgpuError

if TYPE_CHECKING:
    from simgpu.devices.spec import DeviceSpec

__all__ = ["slice_factors", "slice_spec", "slice_blocks", "default_slice", "MAX_SLICE",
           "MIN_SLICE_SMS", "CHUNK", "SLICE_SPREAD", "slice_spread"]

#: The largest slice factor :func:`default_slice` picks. assumption: a quarter of the GPU keeps
#: enough SMs (33 on an H100, 27 on an A100) for the block scheduler and the L2 partitions to
#: behave as on the whole GPU; the sampling benchmark measures the error at this factor.
MAX_SLICE = 4
#: The fewest SMs :func:`default_slice` leaves a slice. assumption: enough for every L2 partition
#: to have SMs of its own side (a one-SM slice of a 4-SM H100 made its GEMV 10% slower than the
#: 4 SMs: every L2 slice of the other partition was far).
MIN_SLICE_SMS = 16


#: The share of its time a sliced replay adds to its stated spread (``time_s_spread``).
#: assumption: the largest error of the slice alone against full replays of the same kernels,
#: 4.7% (transpose_tiled 2048^2; 12 cases of ``bench_sampling.py --slice 4`` on h100-sxm,
#: docs/sm-model.md), rounded up.
SLICE_SPREAD = 0.05

def slice_spread(k: int, cycles: float) -> float:
    """The spread a replay on ``1/k`` of the GPU adds for the slice itself: :data:`SLICE_SPREAD`
    of its ``cycles`` (0 on the whole GPU)."""
    return SLICE_SPREAD * cycles if k > 1 else 0.0


#: Consecutive blocks a slice takes in each run (:func:`slice_blocks`). assumption: 8 blocks of a
#: GEMM row read 8 tile columns of B, at least 4 lines of 128 bytes at the smallest tile (16
#: floats), enough to spread over the interleaved L2 slices and channels; far fewer than a grid
#: row of the GEMMs that sampling serves (256 blocks at 4096^3 with 16 x 16 tiles).
CHUNK = 8


def slice_blocks(blocks: int, k: int, row: int | None = None) -> list[int]:
    """The blocks of a ``blocks``-block grid a ``1/k`` slice replays, in order (always
    ``ceil(blocks / k)`` of them: a run starts every ``k`` runs): one run of
    consecutive blocks in every ``k`` runs, at most :data:`CHUNK` long. Where the grid's rows
    (``row``: blocks along x) split into ``k`` equal shares, the runs are counted within each
    row and divide its share, so that every row gives the same ``row / k`` columns (a GEMM's
    rows of output tiles then share the same columns of B, as on the whole GPU); otherwise
    they run over the linear block index. The first ``ceil(blocks / k)`` of them, so that the
    slice has its share of the blocks exactly (a grid of one block per SM keeps one block per
    SM of the slice). ``k = 1``: every block."""
    if k == 1:
        return list(range(blocks))
    if row is not None and 1 < row < blocks and row % k == 0:
        share = row // k
        run = max(r for r in range(1, min(CHUNK, share) + 1) if share % r == 0)
        picked = [i for i in range(blocks) if ((i % row) // run) % k == 0]
    else:
        run = CHUNK if row is None else max(1, min(CHUNK, row // k))
        picked = [i for i in range(blocks) if (i // run) % k == 0]
    return picked[: -(-blocks // k)]


def _dram_divisible(spec: DeviceSpec, k: int) -> bool:
    return spec.dram.channels_per_package % k == 0 or spec.dram.packages % k == 0


def slice_factors(spec: DeviceSpec) -> list[int]:
    """Every ``k > 1`` for which ``spec`` splits into ``k`` equal slices: ``k`` divides the SM
    count, the L2 slices into a whole number per partition, and the DRAM packages or the
    channels per package."""
    c, l2 = spec.compute, spec.l2
    return [
        k
        for k in range(2, c.sm_count + 1)
        if c.sm_count % k == 0
        and l2.slices % k == 0
        and (l2.slices // k) % l2.partitions == 0
        and _dram_divisible(spec, k)
    ]


def default_slice(spec: DeviceSpec, blocks: int, limit: int = MAX_SLICE) -> int:
    """The slice factor a sampled replay of ``blocks`` thread blocks uses on ``spec``: the
    largest of :func:`slice_factors` up to ``limit`` that keeps :data:`MIN_SLICE_SMS` SMs or
    more, when the grid has a block for every SM of the whole GPU; else 1 (the whole GPU)."""
    best = 1
    if blocks < spec.compute.sm_count:
        return best
    for k in slice_factors(spec):
        if k <= limit and spec.compute.sm_count // k >= MIN_SLICE_SMS:
            best = k
    return best


def slice_spec(spec: DeviceSpec, k: int, *, whole_l2: bool = False) -> DeviceSpec:
    """``spec`` cut to ``1/k`` of the GPU (see the module docstring); ``k = 1`` returns it.
    ``whole_l2``: the slice's L2 slices share the whole L2's capacity (``k`` times the sets
    per slice), for a replay that starts with the whole grid's inputs in the L2.

    Raises SimgpuError naming the device, ``k`` and the factors it allows when it does not split
    into ``k`` equal slices."""
    if k == 1:
        return spec
    allowed = slice_factors(spec)
    if k not in allowed:
        raise SimgpuError(
            f"device {spec.name!r} does not split into {k} equal slices ({spec.compute.sm_count}"
            f" SMs, {spec.l2.slices} L2 slices in {spec.l2.partitions} partition(s),"
            f" {spec.dram.packages} DRAM packages of {spec.dram.channels_per_package} channels);"
            f" expected one of {allowed[:12] or 'none'}"
        )
    c, l2, dram = spec.compute, spec.l2, spec.dram
    peaks = {
        f.name: getattr(c, f.name) / k
        for f in fields(c)
        if f.name.startswith("peak_") and f.name.endswith("_TFLOPS")
        and getattr(c, f.name) is not None
    }
    by_channel = dram.channels_per_package % k == 0
    measured = dram.measured_bandwidth_GBps
    sliced = replace(
        spec,
        compute=replace(c, sm_count=c.sm_count // k, **peaks),
        l2=replace(l2, slices=l2.slices // k, size_MiB=l2.size_MiB if whole_l2 else l2.size_MiB / k,
                   bandwidth_GBps=l2.bandwidth_GBps / k),
        dram=replace(
            dram,
            channels_per_package=dram.channels_per_package // k if by_channel
            else dram.channels_per_package,
            packages=dram.packages if by_channel else dram.packages // k,
            bus_width_bits=dram.bus_width_bits // k,
            size_GiB=dram.size_GiB / k,
            peak_bandwidth_GBps=dram.peak_bandwidth_GBps / k,
            measured_bandwidth_GBps=None if measured is None else measured / k,
        ),
    )
    return sliced
