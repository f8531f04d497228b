"""Frozen, typed descriptions of devices: one nested dataclass per TOML table.

A device file is data (see ``models/README.md``). Every field here carries its unit in its name
(``size_MiB``, ``hit_latency_cycles``, ``bandwidth_GBps``) and, in its metadata, a one-line
meaning and the range the loader enforces. Rules that tie several fields together live in each
section's :meth:`Section.problems`, so the loader (:mod:`simgpu.devices.load`) can report them
with the file and key path.

``Device`` holds what every kind of device shares (name, kind, vendor, ...). ``DeviceSpec`` is
the GPU (``kind = "gpu"``). Other kinds (PIM, dataflow) subclass ``Device`` in their own modules
and register with :func:`simgpu.devices.load.register_kind`; nothing here changes when they do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any

__all__ = [
    "Problem",
    "spec_field",
    "FloatTable",
    "Section",
    "ComputeSpec",
    "RegisterFileSpec",
    "L1Spec",
    "L2Spec",
    "NocSpec",
    "DramTimingSpec",
    "DramSpec",
    "HostLinkSpec",
    "PowerSpec",
    "Device",
    "DeviceSpec",
    "DRAM_TYPES",
    "PEAK_TOLERANCE",
    "BANDWIDTH_TOLERANCE",
    "features",
    "NAME_PATTERN",
    "TENSOR_INSTRUCTION_PATTERN",
]

#: A broken rule: (key path relative to the section, offending value, what was expected).
Problem = tuple[str, object, str]

#: Allowed relative gap between a vendor's rounded peak rate and lanes x 2 x clock. Vendors round
#: their TFLOP/s to two or three digits (H100 SXM: 66.9 computed, 67 listed), so 5% is loose
#: enough for rounding and tight enough to catch a wrong SM count or clock.
PEAK_TOLERANCE = 0.05
#: Allowed relative gap between a listed peak bandwidth and bus width x data rate / 8 (vendors
#: round the data rate: 3.35 TB/s over 5120 bits is 5.234 Gb/s, listed as "5.2").
BANDWIDTH_TOLERANCE = 0.03

#: DRAM technologies the schema knows.
DRAM_TYPES = ("HBM2", "HBM2e", "HBM3", "HBM3e", "GDDR5", "GDDR5X", "GDDR6", "GDDR6X", "GDDR7")

#: Data bits per pin per command clock (tCK) for the HBM generations: HBM2/2e transfer twice per
#: clock (2.0 Gb/s at tCK 1000 ps, dram_timings.md HBM2_2000); HBM3 four times (6.4 Gb/s at
#: tCK 625 ps, dram_timings.md HBM3_6400). GDDR parts are not checked (their CK/WCK ratios vary).
_BITS_PER_TCK = {"HBM2": 2.0, "HBM2e": 2.0, "HBM3": 4.0, "HBM3e": 4.0}

#: PCIe per-lane, per-direction bandwidth in GB/s after line coding (gen 1-2: 8b/10b; 3-5:
#: 128b/130b): 2.5, 5, 8, 16, 32 GT/s.
_PCIE_LANE_GBPS = {
    1: 0.25,
    2: 0.5,
    3: 8 * 128 / 130 / 8,
    4: 16 * 128 / 130 / 8,
    5: 32 * 128 / 130 / 8,
}

#: A tensor-core instruction's key in ``compute.tensor_latency_cycles`` and
#: ``compute.tensor_interval_cycles``: its SASS opcode lower-cased, '.' written '_', e.g.
#: ``hmma_16816_f32_bf16`` (mma.sync m16n8k16, fp32 accumulate, bf16 inputs) or
#: ``hgmma_64x256x16_f32_f16`` (wgmma m64n256k16).
TENSOR_INSTRUCTION_PATTERN = r"(hmma|imma|hgmma|qgmma|igmma)_[0-9x]+(_[a-z0-9]+){1,4}"

#: Largest integer accepted anywhere, so derived arithmetic never overflows a float.
INT_CAP = 2**53


def spec_field(
    doc: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    choices: tuple[object, ...] | None = None,
    pattern: str | None = None,
    default: Any = MISSING,
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field with its meaning and the range the loader enforces.

    ``gt``/``ge``/``le`` bound numbers (element-wise for lists); ``choices`` lists allowed
    values; ``pattern`` is a regular expression a string must match in full.
    """
    meta = {"doc": doc, "gt": gt, "ge": ge, "le": le, "choices": choices, "pattern": pattern}
    if default is not MISSING:
        return field(default=default, metadata=meta)
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(metadata=meta)


class FloatTable(Mapping[str, float]):
    """An immutable, hashable str -> float mapping (used for free-form coefficient tables)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, float] | Iterable[tuple[str, float]] = ()) -> None:
        self._items: dict[str, float] = dict(items)

    def __getitem__(self, key: str) -> float:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FloatTable({self._items!r})"


def _off(value: float, reference: float, tolerance: float) -> bool:
    """True when value differs from reference by more than the relative tolerance."""
    return abs(value - reference) > tolerance * abs(reference)


@dataclass(frozen=True, kw_only=True)
class Section:
    """Base of every table. Subclasses override :meth:`problems` with cross-field rules."""

    def problems(self) -> Iterator[Problem]:
        """Yield every broken cross-field rule; the fields themselves are already valid."""
        return iter(())


@dataclass(frozen=True, kw_only=True)
class ComputeSpec(Section):
    """``[compute]``: streaming multiprocessors, clocks, occupancy limits and peak rates."""

    sm_count: int = spec_field("streaming multiprocessors enabled", ge=1, le=1024)
    boost_clock_MHz: float = spec_field("maximum (boost) SM clock, MHz", ge=100, le=10_000)
    base_clock_MHz: float = spec_field("base SM clock, MHz", ge=100, le=10_000)
    warp_size: int = spec_field("threads per warp", ge=8, le=64)
    max_warps_per_sm: int = spec_field("resident warps per SM", ge=1, le=256)
    max_threads_per_sm: int = spec_field("resident threads per SM", ge=8, le=16_384)
    max_blocks_per_sm: int = spec_field("resident thread blocks per SM", ge=1, le=256)
    max_threads_per_block: int = spec_field("threads per block", ge=1, le=4096)
    warp_schedulers_per_sm: int = spec_field("warp schedulers (sub-cores) per SM", ge=1, le=16)
    fp32_lanes_per_sm: int = spec_field("FP32 FMA lanes per SM", ge=1, le=1024)
    fp64_lanes_per_sm: int = spec_field("FP64 FMA lanes per SM", ge=0, le=1024)
    tensor_cores_per_sm: int = spec_field("tensor cores per SM", ge=0, le=64)
    peak_fp32_TFLOPS: float = spec_field("peak FP32 (non-tensor) TFLOP/s at boost", ge=1e-4, le=1e5)
    peak_fp64_TFLOPS: float = spec_field("peak FP64 (non-tensor) TFLOP/s at boost", ge=1e-4, le=1e5)
    peak_tf32_tensor_TFLOPS: float | None = spec_field(
        "peak dense TF32 tensor TFLOP/s (absent: no TF32 tensor path)",
        ge=1e-3,
        le=1e5,
        default=None,
    )
    peak_fp16_tensor_TFLOPS: float | None = spec_field(
        "peak dense FP16 tensor TFLOP/s with FP32 accumulate", ge=1e-3, le=1e5, default=None
    )
    peak_bf16_tensor_TFLOPS: float | None = spec_field(
        "peak dense BF16 tensor TFLOP/s with FP32 accumulate", ge=1e-3, le=1e5, default=None
    )
    peak_fp8_tensor_TFLOPS: float | None = spec_field(
        "peak dense FP8 tensor TFLOP/s with FP32 accumulate", ge=1e-3, le=1e5, default=None
    )
    peak_fp64_tensor_TFLOPS: float | None = spec_field(
        "peak dense FP64 tensor TFLOP/s", ge=1e-3, le=1e5, default=None
    )
    max_shared_memory_per_block_KiB: float = spec_field(
        "largest shared memory one block may use (opt-in), KiB", ge=0.5, le=4096
    )
    tensor_latency_cycles: FloatTable = spec_field(
        "tensor-core warp instructions: latency, issue to dependent issue, SM cycles; keys are"
        " SASS opcodes lower-cased with '_' for '.' (hmma_16816_f32_f16, hgmma_64x256x16_f32_f16)",
        ge=1.0, le=10_000, default_factory=FloatTable,
    )
    tensor_interval_cycles: FloatTable = spec_field(
        "tensor-core warp instructions: cycles one holds its sub-core's tensor core (initiation"
        " interval), same keys as tensor_latency_cycles",
        ge=0.25, le=10_000, default_factory=FloatTable,
    )
    simt_issue_overhead: float = spec_field(
        "issue slots a library SIMT GEMM loses per FFMA beyond the instructions it counts"
        " (register-bank conflicts, dependency gaps; fitted by simgpu fit, 0 = none)",
        ge=0.0, le=4.0, default=0.0,
    )

    @property
    def clock_hz(self) -> float:
        """Boost clock in Hz."""
        return self.boost_clock_MHz * 1e6

    def problems(self) -> Iterator[Problem]:
        if self.base_clock_MHz > self.boost_clock_MHz:
            yield (
                "base_clock_MHz",
                self.base_clock_MHz,
                f"<= boost_clock_MHz ({self.boost_clock_MHz})",
            )
        warps_x_size = self.max_warps_per_sm * self.warp_size
        if self.max_threads_per_sm != warps_x_size:
            yield (
                "max_threads_per_sm",
                self.max_threads_per_sm,
                f"max_warps_per_sm x warp_size = {warps_x_size}",
            )
        if self.max_threads_per_block > self.max_threads_per_sm:
            yield (
                "max_threads_per_block",
                self.max_threads_per_block,
                f"<= max_threads_per_sm ({self.max_threads_per_sm})",
            )
        if self.max_threads_per_block % self.warp_size:
            yield ("max_threads_per_block", self.max_threads_per_block, "a multiple of warp_size")
        fp32 = self.sm_count * self.fp32_lanes_per_sm * 2 * self.boost_clock_MHz / 1e6
        if _off(self.peak_fp32_TFLOPS, fp32, PEAK_TOLERANCE):
            yield (
                "peak_fp32_TFLOPS",
                self.peak_fp32_TFLOPS,
                f"within {PEAK_TOLERANCE:.0%} of sm_count x fp32_lanes_per_sm x 2 x boost clock"
                f" = {fp32:.4g}",
            )
        if self.fp64_lanes_per_sm:
            fp64 = self.sm_count * self.fp64_lanes_per_sm * 2 * self.boost_clock_MHz / 1e6
            if _off(self.peak_fp64_TFLOPS, fp64, PEAK_TOLERANCE):
                yield (
                    "peak_fp64_TFLOPS",
                    self.peak_fp64_TFLOPS,
                    f"within {PEAK_TOLERANCE:.0%} of sm_count x fp64_lanes_per_sm x 2 x boost"
                    f" clock = {fp64:.4g}",
                )
        tensor_peaks = (
            "peak_tf32_tensor_TFLOPS",
            "peak_fp16_tensor_TFLOPS",
            "peak_bf16_tensor_TFLOPS",
            "peak_fp8_tensor_TFLOPS",
            "peak_fp64_tensor_TFLOPS",
        )
        if self.tensor_cores_per_sm == 0:
            for name in tensor_peaks:
                if getattr(self, name) is not None:
                    yield (name, getattr(self, name), "absent when tensor_cores_per_sm = 0")
        elif self.peak_fp16_tensor_TFLOPS is None:
            yield ("peak_fp16_tensor_TFLOPS", None, "a number when tensor_cores_per_sm > 0")
        for name in ("tensor_latency_cycles", "tensor_interval_cycles"):
            table = getattr(self, name)
            if table and self.tensor_cores_per_sm == 0:
                yield (name, dict(table), "absent when tensor_cores_per_sm = 0")
            for key in table:
                if not re.fullmatch(TENSOR_INSTRUCTION_PATTERN, key):
                    yield (
                        f"{name}.{key}",
                        table[key],
                        f"a key matching {TENSOR_INSTRUCTION_PATTERN!r}"
                        " (hmma_16816_f32_f16, hgmma_64x256x16_f32_bf16, qgmma_..., imma_...)",
                    )
        lat, ii = set(self.tensor_latency_cycles), set(self.tensor_interval_cycles)
        for key in sorted(lat ^ ii):
            have, other = (
                ("tensor_latency_cycles", "tensor_interval_cycles")
                if key in lat
                else ("tensor_interval_cycles", "tensor_latency_cycles")
            )
            yield (f"{other}.{key}", None, f"a number, as {have}.{key} is set")


@dataclass(frozen=True, kw_only=True)
class RegisterFileSpec(Section):
    """``[register_file]``: capacity and banking of the per-SM register file."""

    size_per_sm_KiB: int = spec_field("register file per SM, KiB", ge=16, le=4096)
    max_registers_per_thread: int = spec_field("32-bit registers per thread", ge=16, le=1024)
    max_registers_per_block: int = spec_field("32-bit registers per block", ge=256, le=1_048_576)
    banks_per_sub_core: int = spec_field("register file banks per sub-core", ge=1, le=64)
    read_ports_per_bank: int = spec_field("read ports per bank", ge=1, le=16)
    cache_present: bool = spec_field("a register-file cache (operand reuse cache) exists")
    cache_entries_per_sub_core: int | None = spec_field(
        "register-file cache entries per sub-core (absent when there is none)",
        ge=1,
        le=1024,
        default=None,
    )

    @property
    def registers_per_sm(self) -> int:
        """32-bit registers per SM."""
        return self.size_per_sm_KiB * 1024 // 4

    def problems(self) -> Iterator[Problem]:
        if self.max_registers_per_block > self.registers_per_sm:
            yield (
                "max_registers_per_block",
                self.max_registers_per_block,
                f"<= size_per_sm_KiB x 256 = {self.registers_per_sm} registers",
            )
        if self.cache_present and self.cache_entries_per_sub_core is None:
            yield ("cache_entries_per_sub_core", None, "a number when cache_present = true")
        if not self.cache_present and self.cache_entries_per_sub_core is not None:
            yield (
                "cache_entries_per_sub_core",
                self.cache_entries_per_sub_core,
                "absent when cache_present = false",
            )


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@dataclass(frozen=True, kw_only=True)
class L1Spec(Section):
    """``[l1]``: the unified L1 data cache / shared memory of one SM."""

    size_per_sm_KiB: int = spec_field("unified L1 + shared memory per SM, KiB", ge=4, le=4096)
    shared_carveouts_KiB: tuple[int, ...] = spec_field(
        "shared-memory sizes the driver can carve out of the unified array, KiB", ge=0, le=4096
    )
    line_bytes: int = spec_field("cache line (tag) size, bytes", ge=16, le=1024)
    sector_bytes: int = spec_field("sector (fill granule) size, bytes", ge=8, le=1024)
    ways: int = spec_field("associativity with no shared carve-out", ge=1, le=65_536)
    hit_latency_cycles: float = spec_field(
        "load-to-use latency of an L1 hit, SM cycles", ge=1, le=1000
    )
    shared_latency_cycles: float = spec_field(
        "load-to-use latency of a shared-memory load, SM cycles", ge=1, le=1000
    )
    shared_banks: int = spec_field("shared-memory banks", ge=1, le=256)
    shared_bank_width_bytes: int = spec_field("bytes per bank per cycle", ge=1, le=64)
    bandwidth_bytes_per_cycle: float = spec_field(
        "L1 load bandwidth per SM, bytes/cycle", ge=1, le=16_384
    )

    @property
    def size_bytes(self) -> int:
        """Unified array per SM, bytes."""
        return self.size_per_sm_KiB * 1024

    def problems(self) -> Iterator[Problem]:
        for name in ("line_bytes", "sector_bytes"):
            if not _power_of_two(getattr(self, name)):
                yield (name, getattr(self, name), "a power of two")
        if self.line_bytes % self.sector_bytes:
            yield (
                "line_bytes",
                self.line_bytes,
                f"a multiple of sector_bytes ({self.sector_bytes})",
            )
        if not self.shared_carveouts_KiB:
            yield ("shared_carveouts_KiB", [], "a non-empty list")
        pairs = zip(self.shared_carveouts_KiB, self.shared_carveouts_KiB[1:], strict=False)
        if any(a >= b for a, b in pairs):
            yield (
                "shared_carveouts_KiB",
                list(self.shared_carveouts_KiB),
                "a strictly increasing list",
            )
        if self.shared_carveouts_KiB and self.shared_carveouts_KiB[-1] > self.size_per_sm_KiB:
            yield (
                "shared_carveouts_KiB",
                list(self.shared_carveouts_KiB),
                f"sizes <= size_per_sm_KiB ({self.size_per_sm_KiB})",
            )
        if self.size_bytes % (self.ways * self.line_bytes):
            yield (
                "ways",
                self.ways,
                "a value with size_per_sm_KiB x 1024 divisible by ways x line_bytes",
            )
        peak = self.shared_banks * self.shared_bank_width_bytes
        if self.bandwidth_bytes_per_cycle > peak:
            yield (
                "bandwidth_bytes_per_cycle",
                self.bandwidth_bytes_per_cycle,
                f"<= shared_banks x shared_bank_width_bytes = {peak}",
            )


@dataclass(frozen=True, kw_only=True)
class L2Spec(Section):
    """``[l2]``: the shared last-level cache, split into slices and (near/far) partitions."""

    size_MiB: float = spec_field("total L2 capacity, MiB (2**20 bytes)", ge=0.0625, le=4096)
    slices: int = spec_field("L2 slices (banks), each with its own tags", ge=1, le=4096)
    ways: int = spec_field("associativity of one slice", ge=1, le=1024)
    line_bytes: int = spec_field("cache line (tag) size, bytes", ge=16, le=1024)
    sector_bytes: int = spec_field("sector size, bytes", ge=8, le=1024)
    partitions: int = spec_field("L2 partitions: 1, or 2 for near/far halves", ge=1, le=16)
    near_hit_latency_cycles: float = spec_field(
        "load-to-use latency of a hit in the near partition, SM cycles", ge=1, le=10_000
    )
    far_hit_latency_cycles: float | None = spec_field(
        "load-to-use latency of a hit in the far partition (partitions > 1), SM cycles",
        ge=1,
        le=10_000,
        default=None,
    )
    bandwidth_GBps: float = spec_field(
        "sustained L2 read bandwidth, all SMs, GB/s (1e9 bytes/s)", ge=1, le=1e6
    )

    @property
    def size_bytes(self) -> int:
        """Total capacity, bytes."""
        return round(self.size_MiB * 2**20)

    @property
    def slice_bytes(self) -> int:
        """Capacity of one slice, bytes."""
        return self.size_bytes // self.slices

    @property
    def sets_per_slice(self) -> int:
        """Sets in one slice."""
        return self.slice_bytes // (self.ways * self.line_bytes)

    def problems(self) -> Iterator[Problem]:
        for name in ("line_bytes", "sector_bytes"):
            if not _power_of_two(getattr(self, name)):
                yield (name, getattr(self, name), "a power of two")
        if self.line_bytes % self.sector_bytes:
            yield (
                "line_bytes",
                self.line_bytes,
                f"a multiple of sector_bytes ({self.sector_bytes})",
            )
        size = self.size_MiB * 2**20
        granule = self.slices * self.ways * self.line_bytes
        if not size.is_integer() or int(size) % granule:
            yield (
                "size_MiB",
                self.size_MiB,
                f"a whole number of sets: size in bytes divisible by slices x ways x line_bytes"
                f" = {granule}",
            )
        if self.slices % self.partitions:
            yield ("slices", self.slices, f"a multiple of partitions ({self.partitions})")
        if self.partitions > 1 and self.far_hit_latency_cycles is None:
            yield ("far_hit_latency_cycles", None, "a number when partitions > 1")
        if self.partitions == 1 and self.far_hit_latency_cycles is not None:
            yield (
                "far_hit_latency_cycles",
                self.far_hit_latency_cycles,
                "absent when partitions = 1",
            )
        far = self.far_hit_latency_cycles
        if far is not None and far < self.near_hit_latency_cycles:
            yield (
                "far_hit_latency_cycles",
                far,
                f">= near_hit_latency_cycles ({self.near_hit_latency_cycles})",
            )


@dataclass(frozen=True, kw_only=True)
class NocSpec(Section):
    """``[noc]``: the crossbar between SMs and L2 slices."""

    topology: str = spec_field("interconnect topology", choices=("crossbar",))
    latency_cycles: float = spec_field("one-way SM-to-L2-slice traversal, SM cycles", ge=1, le=5000)
    bandwidth_bytes_per_cycle_per_slice: float = spec_field(
        "bytes per SM cycle one L2 slice can return", ge=1, le=4096
    )
    slice_request_bytes: int | None = spec_field(
        "bytes of its slice's bandwidth one request occupies at least, whatever its sectors"
        " (unset: a request occupies its own bytes)",
        ge=1, le=4096, default=None,
    )


@dataclass(frozen=True, kw_only=True)
class DramTimingSpec(Section):
    """``[dram.timing]``: JEDEC-style timing constraints, in command clocks (tCK)."""

    tCK_ps: float = spec_field("command clock period, picoseconds", ge=50, le=10_000)
    tBL: int = spec_field("data burst on the bus, tCK", ge=1, le=64)
    tCL: int = spec_field("read (CAS) latency, tCK", ge=1, le=1000)
    tCWL: int = spec_field("write latency, tCK", ge=1, le=1000)
    tRCD: int = spec_field("activate to read, tCK", ge=1, le=1000)
    tRP: int = spec_field("precharge to activate, tCK", ge=1, le=1000)
    tRAS: int = spec_field("activate to precharge, tCK", ge=1, le=10_000)
    tRC: int = spec_field("activate to activate, same bank, tCK", ge=1, le=10_000)
    tCCD_S: int = spec_field("column to column, different bank group, tCK", ge=1, le=256)
    tCCD_L: int = spec_field("column to column, same bank group, tCK", ge=1, le=256)
    tRRD_S: int = spec_field("activate to activate, different bank group, tCK", ge=1, le=256)
    tRRD_L: int = spec_field("activate to activate, same bank group, tCK", ge=1, le=256)
    tFAW: int = spec_field("four-activate window, tCK", ge=1, le=4096)
    tWR: int = spec_field("write recovery, tCK", ge=1, le=1000)
    tWTR_S: int = spec_field("write to read, different bank group, tCK", ge=1, le=1000)
    tWTR_L: int = spec_field("write to read, same bank group, tCK", ge=1, le=1000)
    tRTP: int = spec_field("read to precharge, tCK", ge=1, le=1000)
    tRFC: int = spec_field("all-bank refresh cycle, tCK", ge=1, le=100_000)
    tREFI: int = spec_field("refresh interval, tCK", ge=1, le=1_000_000)
    refresh: str = spec_field(
        "refresh mode: all_bank (REFab every tREFI, tRFC long) or per_bank (REFpb to one bank"
        " at a time in turn, every bank once per tREFI, tRFCpb long)",
        choices=("all_bank", "per_bank"),
        default="all_bank",
    )
    tRFCpb: int | None = spec_field(
        "per-bank refresh cycle (refresh = per_bank), tCK", ge=1, le=100_000, default=None
    )
    tRREFD: int | None = spec_field(
        "per-bank refresh to per-bank refresh of another bank (refresh = per_bank), tCK",
        ge=1, le=10_000, default=None,
    )

    @property
    def tCK_ns(self) -> float:
        """Command clock period, ns."""
        return self.tCK_ps / 1000.0

    def ns(self, name: str) -> float:
        """A timing parameter (``"tRCD"``) in nanoseconds."""
        value = getattr(self, name)
        if not isinstance(value, int) or name == "tCK_ps":
            raise ValueError(f"{name!r} is not a timing parameter in tCK")
        return value * self.tCK_ns

    def problems(self) -> Iterator[Problem]:
        if self.tRC < self.tRAS + self.tRP:
            yield ("tRC", self.tRC, f">= tRAS + tRP = {self.tRAS + self.tRP}")
        if self.tRAS < self.tRCD:
            yield ("tRAS", self.tRAS, f">= tRCD ({self.tRCD})")
        if self.tCCD_L < self.tCCD_S:
            yield ("tCCD_L", self.tCCD_L, f">= tCCD_S ({self.tCCD_S})")
        if self.tCCD_S < self.tBL:
            yield ("tCCD_S", self.tCCD_S, f">= tBL ({self.tBL})")
        if self.tRRD_L < self.tRRD_S:
            yield ("tRRD_L", self.tRRD_L, f">= tRRD_S ({self.tRRD_S})")
        if self.tWTR_L < self.tWTR_S:
            yield ("tWTR_L", self.tWTR_L, f">= tWTR_S ({self.tWTR_S})")
        if self.tREFI <= self.tRFC:
            yield ("tREFI", self.tREFI, f"> tRFC ({self.tRFC})")
        if self.refresh == "per_bank":
            for name in ("tRFCpb", "tRREFD"):
                if getattr(self, name) is None:
                    yield (name, None, "a number of tCK when refresh = 'per_bank'")
            if self.tRFCpb is not None and self.tRFCpb >= self.tRFC:
                yield ("tRFCpb", self.tRFCpb, f"< tRFC ({self.tRFC}): one bank refreshes faster")


@dataclass(frozen=True, kw_only=True)
class DramSpec(Section):
    """``[dram]``: device memory organisation, bandwidth and unloaded latency."""

    type: str = spec_field("memory technology", choices=DRAM_TYPES)
    size_GiB: float = spec_field("capacity, GiB", ge=0.0625, le=16_384)
    bus_width_bits: int = spec_field("total data bus width, bits", ge=8, le=65_536)
    data_rate_Gbps: float = spec_field("data rate per pin, Gb/s", ge=0.1, le=100)
    peak_bandwidth_GBps: float = spec_field(
        "theoretical peak bandwidth, GB/s (1e9 B/s)", ge=0.1, le=1e6
    )
    measured_bandwidth_GBps: float | None = spec_field(
        "sustained read bandwidth of a STREAM-style kernel on arrays far larger than L2, GB/s",
        ge=0.1,
        le=1e6,
        default=None,
    )
    packages: int = spec_field("DRAM packages: HBM stacks or GDDR chips", ge=1, le=256)
    channels_per_package: int = spec_field("independent channels per package", ge=1, le=128)
    channel_width_bits: int = spec_field("data width of one channel, bits", ge=4, le=1024)
    pseudo_channels_per_channel: int = spec_field(
        "pseudo-channels per channel (1 if none)", ge=1, le=8
    )
    bank_groups: int = spec_field("bank groups per (pseudo-)channel", ge=1, le=64)
    banks_per_group: int = spec_field("banks per bank group", ge=1, le=64)
    row_bytes: int = spec_field("row (page) size per (pseudo-)channel, bytes", ge=128, le=65_536)
    unloaded_latency_ns: float = spec_field(
        "load-to-use latency of a DRAM access from an idle GPU (L1 and L2 miss, TLB hit), ns",
        ge=5,
        le=5000,
    )
    timing: DramTimingSpec = spec_field("timing constraints")

    @property
    def peak_bandwidth_Bps(self) -> float:
        """Theoretical peak bandwidth, bytes/s."""
        return self.peak_bandwidth_GBps * 1e9

    @property
    def channels(self) -> int:
        """Independent channels in the whole memory system."""
        return self.packages * self.channels_per_package

    def problems(self) -> Iterator[Problem]:
        measured = self.measured_bandwidth_GBps
        if measured is not None and measured > self.peak_bandwidth_GBps:
            yield (
                "measured_bandwidth_GBps",
                measured,
                f"<= peak_bandwidth_GBps ({self.peak_bandwidth_GBps})",
            )
        total = self.packages * self.channels_per_package * self.channel_width_bits
        if total != self.bus_width_bits:
            yield (
                "bus_width_bits",
                self.bus_width_bits,
                f"packages x channels_per_package x channel_width_bits = {total}",
            )
        if self.channel_width_bits % self.pseudo_channels_per_channel:
            yield (
                "pseudo_channels_per_channel",
                self.pseudo_channels_per_channel,
                f"a divisor of channel_width_bits ({self.channel_width_bits})",
            )
        computed = self.bus_width_bits * self.data_rate_Gbps / 8
        if _off(self.peak_bandwidth_GBps, computed, BANDWIDTH_TOLERANCE):
            yield (
                "peak_bandwidth_GBps",
                self.peak_bandwidth_GBps,
                f"within {BANDWIDTH_TOLERANCE:.0%} of bus_width_bits x data_rate_Gbps / 8"
                f" = {computed:.5g}",
            )
        bits = _BITS_PER_TCK.get(self.type)
        if bits is not None:
            rate = bits / self.timing.tCK_ns
            if _off(self.data_rate_Gbps, rate, BANDWIDTH_TOLERANCE):
                yield (
                    "timing.tCK_ps",
                    self.timing.tCK_ps,
                    f"a clock giving data_rate_Gbps ({self.data_rate_Gbps}) at {bits:g} bits per"
                    f" pin per tCK for {self.type}: about {bits / self.data_rate_Gbps * 1000:.0f}",
                )


#: The GEMM dtypes a library call floor may be given for (simgpu.analytical.params.DTYPE_BYTES).
LIBRARY_FLOOR_DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8")
#: the kinds of simgpu's own kernels (kernels/*.cu) a harness call floor can be given for: the
#: calibration tables of one CUDA-event-timed launch each, and the analytical closed forms
KERNEL_FLOOR_KINDS = ("stream", "reduction", "transpose", "gemv")


@dataclass(frozen=True, kw_only=True)
class HostLinkSpec(Section):
    """``[host_link]``: the link to the host (PCIe for every GPU here)."""

    interface: str = spec_field("link type", choices=("pcie",))
    pcie_gen: int = spec_field("PCIe generation", ge=1, le=7)
    lanes: int = spec_field("PCIe lanes", choices=(1, 2, 4, 8, 16, 32))
    bandwidth_per_direction_GBps: float = spec_field(
        "theoretical bandwidth per direction after line coding, GB/s", ge=0.1, le=1000
    )
    measured_h2d_GBps: float | None = spec_field(
        "measured host-to-device copy bandwidth (pinned memory), GB/s",
        ge=0.01,
        le=1000,
        default=None,
    )
    measured_d2h_GBps: float | None = spec_field(
        "measured device-to-host copy bandwidth (pinned memory), GB/s",
        ge=0.01,
        le=1000,
        default=None,
    )
    latency_us: float = spec_field(
        "fixed cost of one pinned copy (driver, doorbell, DMA setup), microseconds",
        ge=0.1,
        le=1000,
    )
    copy_engines: int = spec_field("DMA copy engines (asyncEngineCount)", ge=0, le=64)
    d2h_latency_us: float | None = spec_field(
        "fixed cost of one pinned device-to-host copy when it differs from latency_us (a"
        " posted write waits for no read round trip), microseconds",
        ge=0.1,
        le=1000,
        default=None,
    )
    pageable_latency_us: float | None = spec_field(
        "extra fixed cost of a pageable copy (synchronous call, staging set-up), microseconds",
        ge=0,
        le=10_000,
        default=None,
    )
    staging_h2d_GBps: float | None = spec_field(
        "host memcpy rate from pageable memory into the pinned staging buffer, GB/s",
        ge=0.01,
        le=1000,
        default=None,
    )
    staging_d2h_GBps: float | None = spec_field(
        "host memcpy rate from the pinned staging buffer into pageable memory, GB/s",
        ge=0.01,
        le=1000,
        default=None,
    )
    staging_uncached_h2d_GBps: float | None = spec_field(
        "staging_h2d_GBps for a pageable buffer larger than host_cache_MiB, GB/s",
        ge=0.01,
        le=1000,
        default=None,
    )
    staging_uncached_d2h_GBps: float | None = spec_field(
        "staging_d2h_GBps for a pageable buffer larger than host_cache_MiB, GB/s",
        ge=0.01,
        le=1000,
        default=None,
    )
    host_cache_MiB: float | None = spec_field(
        "largest pageable buffer the host stages at the cached rate, MiB", ge=0.01,
        le=1_000_000, default=None,
    )
    staging_chunk_KiB: float | None = spec_field(
        "bytes the driver stages per step of a pageable copy, KiB", ge=1, le=1_048_576,
        default=None,
    )
    staging_buffers: int | None = spec_field(
        "pinned staging buffers a pageable copy cycles through (1: staging and DMA in"
        " series, 2 or more: pipelined)",
        ge=1,
        le=64,
        default=None,
    )
    duplex_fraction: float | None = spec_field(
        "share of its one-way rate a direction keeps while the other direction also copies",
        ge=0.05,
        le=1,
        default=None,
    )
    copy_issue_us: float | None = spec_field(
        "host time to issue one asynchronous copy: a copy issued right after another starts"
        " this much later, microseconds",
        ge=0,
        le=10_000,
        default=None,
    )
    library_call_floor_us: FloatTable = spec_field(
        "shortest time the host's harness measures one library GEMM call in, per GEMM dtype"
        " (fp32, tf32, fp16, bf16, fp8), microseconds (fitted by simgpu fit; empty = none)",
        ge=0,
        le=100_000,
        default_factory=FloatTable,
    )

    kernel_call_floor_us: FloatTable = spec_field(
        "shortest time the host's harness measures one call of simgpu's own kernels in, per"
        " kernel kind (stream, reduction, transpose, gemv), microseconds (fitted by simgpu fit;"
        " empty = none)",
        ge=0,
        le=100_000,
        default_factory=FloatTable,
    )

    def problems(self) -> Iterator[Problem]:
        for key in self.library_call_floor_us:
            if key not in LIBRARY_FLOOR_DTYPES:
                yield (f"library_call_floor_us.{key}", self.library_call_floor_us[key],
                       f"a key among {', '.join(LIBRARY_FLOOR_DTYPES)}")
        for key in self.kernel_call_floor_us:
            if key not in KERNEL_FLOOR_KINDS:
                yield (f"kernel_call_floor_us.{key}", self.kernel_call_floor_us[key],
                       f"a key among {', '.join(KERNEL_FLOOR_KINDS)}")
        lane = _PCIE_LANE_GBPS.get(self.pcie_gen)
        if lane is not None:
            expected = lane * self.lanes
            if _off(self.bandwidth_per_direction_GBps, expected, BANDWIDTH_TOLERANCE):
                yield (
                    "bandwidth_per_direction_GBps",
                    self.bandwidth_per_direction_GBps,
                    f"within {BANDWIDTH_TOLERANCE:.0%} of PCIe gen {self.pcie_gen} x{self.lanes}"
                    f" = {expected:.4g}",
                )
        for name in ("measured_h2d_GBps", "measured_d2h_GBps"):
            measured = getattr(self, name)
            if measured is not None and measured > self.bandwidth_per_direction_GBps:
                yield (
                    name,
                    measured,
                    f"<= bandwidth_per_direction_GBps ({self.bandwidth_per_direction_GBps})",
                )
        for d in ("h2d", "d2h"):
            cached = getattr(self, f"staging_{d}_GBps")
            uncached = getattr(self, f"staging_uncached_{d}_GBps")
            if uncached is None:
                continue
            if self.host_cache_MiB is None:
                yield (
                    f"staging_uncached_{d}_GBps",
                    uncached,
                    "host_cache_MiB set too (the buffer size above which this rate applies)",
                )
            if cached is None:
                yield (f"staging_uncached_{d}_GBps", uncached, f"staging_{d}_GBps set too")


@dataclass(frozen=True, kw_only=True)
class PowerSpec(Section):
    """``[power]``: the power envelope, and optional per-event energies for a power model."""

    tdp_W: float = spec_field("board power limit (TDP/TGP), W", ge=1, le=10_000)
    idle_W: float = spec_field("power at idle clocks with nothing running, W", ge=0, le=10_000)
    static_W: float = spec_field(
        "power at operating clocks with nothing executing (leakage + clock tree), W",
        ge=0,
        le=10_000,
    )
    energy_pJ: FloatTable = spec_field(
        "energy per event, pJ (free-form keys, for an AccelWattch-style model)",
        ge=0,
        le=1e6,
        default_factory=FloatTable,
    )

    def problems(self) -> Iterator[Problem]:
        if self.idle_W > self.tdp_W:
            yield ("idle_W", self.idle_W, f"<= tdp_W ({self.tdp_W})")
        if self.static_W > self.tdp_W:
            yield ("static_W", self.static_W, f"<= tdp_W ({self.tdp_W})")


#: A device name: a plain file stem (the file is ``<name>.toml``), never a path. Lower-case
#: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit; at most 128
#: characters, so that ``<name>.toml`` and derived names (``<name>-cal-<run>.toml``) stay within
#: the 255 bytes a file name may have.
NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,127}"


@dataclass(frozen=True, kw_only=True)
class Device(Section):
    """What every device file has, whatever its kind."""

    name: str = spec_field("identifier; equals the file name without .toml", pattern=NAME_PATTERN)
    kind: str = spec_field("device kind: gpu (also pim, dataflow when registered)")
    vendor: str = spec_field("manufacturer", pattern=r".*\S.*")
    architecture: str = spec_field("microarchitecture name", pattern=r".*\S.*")
    full_name: str = spec_field("product name as the vendor writes it", pattern=r".*\S.*")
    base_model: str | None = spec_field(
        "the model this file was derived from (calibrated files)",
        pattern=NAME_PATTERN,
        default=None,
    )
    calibration_run: str | None = spec_field(
        "the calibration run that produced this file", pattern=r".*\S.*", default=None
    )

    def features(self) -> dict[str, Any]:
        """A flat dict of the device's key figures (for tables and predictors)."""
        return {"name": self.name, "kind": self.kind, "architecture": self.architecture}


@dataclass(frozen=True, kw_only=True)
class DeviceSpec(Device):
    """A GPU: ``kind = "gpu"`` and every table below."""

    compute_capability: str = spec_field(
        "CUDA compute capability, major.minor", pattern=r"\d+\.\d+"
    )
    compute: ComputeSpec = spec_field("SMs, clocks, occupancy and peak rates")
    register_file: RegisterFileSpec = spec_field("per-SM register file")
    l1: L1Spec = spec_field("per-SM unified L1 / shared memory")
    l2: L2Spec = spec_field("shared L2 cache")
    noc: NocSpec = spec_field("SM-to-L2 interconnect")
    dram: DramSpec = spec_field("device memory")
    host_link: HostLinkSpec = spec_field("link to the host")
    power: PowerSpec = spec_field("power envelope")

    @property
    def clock_MHz(self) -> float:
        """The boost SM clock, MHz."""
        return self.compute.boost_clock_MHz

    def problems(self) -> Iterator[Problem]:
        if self.kind != "gpu":
            yield ("kind", self.kind, "'gpu' for a GPU device file")
        largest = max(self.l1.shared_carveouts_KiB, default=0)
        if self.compute.max_shared_memory_per_block_KiB > largest:
            yield (
                "compute.max_shared_memory_per_block_KiB",
                self.compute.max_shared_memory_per_block_KiB,
                f"<= the largest l1.shared_carveouts_KiB ({largest})",
            )
        if self.l1.line_bytes != self.l2.line_bytes:
            yield ("l2.line_bytes", self.l2.line_bytes, f"= l1.line_bytes ({self.l1.line_bytes})")
        slot = self.noc.slice_request_bytes
        if slot is not None and slot > self.l2.line_bytes:
            yield ("noc.slice_request_bytes", slot,
                   f"<= l2.line_bytes ({self.l2.line_bytes}): a request carries at most a line")
        l1_plus_noc = self.l1.hit_latency_cycles + 2 * self.noc.latency_cycles
        if l1_plus_noc >= self.l2.near_hit_latency_cycles:
            yield (
                "noc.latency_cycles",
                self.noc.latency_cycles,
                f"small enough that l1.hit_latency_cycles + 2 x noc.latency_cycles"
                f" < l2.near_hit_latency_cycles ({self.l2.near_hit_latency_cycles})",
            )
        fabric = (
            self.l2.slices * self.noc.bandwidth_bytes_per_cycle_per_slice * self.clock_MHz / 1000
        )
        if self.l2.bandwidth_GBps > fabric * (1 + BANDWIDTH_TOLERANCE):
            yield (
                "l2.bandwidth_GBps",
                self.l2.bandwidth_GBps,
                f"<= l2.slices x noc.bandwidth_bytes_per_cycle_per_slice x boost clock"
                f" = {fabric:.5g}",
            )
        slowest_l2 = self.l2.far_hit_latency_cycles or self.l2.near_hit_latency_cycles
        l2_ns = slowest_l2 * 1000 / self.clock_MHz
        if self.dram.unloaded_latency_ns <= l2_ns:
            yield (
                "dram.unloaded_latency_ns",
                self.dram.unloaded_latency_ns,
                f"> the slowest L2 hit at boost clock ({l2_ns:.4g} ns)",
            )

    def features(self) -> dict[str, Any]:
        """Key figures as a flat dict: identity, SMs, clock, caches, DRAM, peaks, power."""
        c = self.compute
        return {
            "name": self.name,
            "kind": self.kind,
            "architecture": self.architecture,
            "compute_capability": self.compute_capability,
            "sm_count": c.sm_count,
            "clock_MHz": c.boost_clock_MHz,
            "l1_size_per_sm_KiB": self.l1.size_per_sm_KiB,
            "l2_size_MiB": self.l2.size_MiB,
            "l2_bandwidth_GBps": self.l2.bandwidth_GBps,
            "dram_type": self.dram.type,
            "dram_size_GiB": self.dram.size_GiB,
            "dram_bandwidth_GBps": self.dram.peak_bandwidth_GBps,
            "peak_fp32_TFLOPS": c.peak_fp32_TFLOPS,
            "peak_fp16_TFLOPS": c.peak_fp16_tensor_TFLOPS,
            "tdp_W": self.power.tdp_W,
        }


def features(device: Device) -> dict[str, Any]:
    """Flat dict of a device's key figures (see :meth:`DeviceSpec.features`)."""
    return device.features()
