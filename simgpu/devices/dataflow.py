"""Dataflow accelerators (``kind = "dataflow"``): a systolic array of PEs with SRAM buffers.

``[array]`` is the grid of processing elements (rows x columns, one MAC per PE per cycle) and
its dataflows (output-, weight- or input-stationary); ``[sram]`` the on-chip ifmap, filter and
ofmap buffers (double-buffered: half is filled from the backing store while the array works on
the other half); ``[dram]`` the backing store, the same table as a GPU's device memory;
``[energy]`` the energy of a MAC and of an SRAM/DRAM byte. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from simgpu.devices.spec import (
    Device,
    DramSpec,
    HostLinkSpec,
    Problem,
    Section,
    spec_field,
)

__all__ = ["DATAFLOWS", "ArraySpec", "SramSpec", "DataflowEnergySpec", "DataflowSpec"]

#: Output-, weight- and input-stationary.
DATAFLOWS = ("os", "ws", "is")


@dataclass(frozen=True, kw_only=True)
class ArraySpec(Section):
    """``[array]``: the systolic array."""

    rows: int = spec_field("PE rows", ge=1, le=4096)
    cols: int = spec_field("PE columns", ge=1, le=4096)
    clock_MHz: float = spec_field("array clock, MHz", ge=10, le=10_000)
    dataflow: str = spec_field("default dataflow", choices=DATAFLOWS)
    dtype: str = spec_field("operand type of a MAC", choices=("int8", "fp16", "bf16", "fp32"))
    word_bytes: int = spec_field("bytes per operand word", choices=(1, 2, 4))

    @property
    def pes(self) -> int:
        """Processing elements."""
        return self.rows * self.cols

    @property
    def peak_TFLOPS(self) -> float:
        """Peak rate: one MAC (2 flops) per PE per cycle."""
        return self.pes * 2 * self.clock_MHz / 1e6

    def problems(self) -> Iterator[Problem]:
        expected = {"int8": 1, "fp16": 2, "bf16": 2, "fp32": 4}[self.dtype]
        if self.word_bytes != expected:
            yield ("word_bytes", self.word_bytes, f"{expected} for {self.dtype}")


@dataclass(frozen=True, kw_only=True)
class SramSpec(Section):
    """``[sram]``: on-chip operand buffers."""

    ifmap_KiB: float = spec_field(
        "input feature map (left operand) buffer, KiB", ge=0.0625, le=1_048_576
    )
    filter_KiB: float = spec_field("filter (right operand) buffer, KiB", ge=0.0625, le=1_048_576)
    ofmap_KiB: float = spec_field("output buffer, KiB", ge=0.0625, le=1_048_576)
    double_buffered: bool = spec_field(
        "true: half of each buffer fills while the array uses the other half"
    )

    def working_bytes(self, which: str) -> int:
        """Bytes of one buffer the array can use at a time (half if double-buffered)."""
        size = float(getattr(self, f"{which}_KiB")) * 1024
        return int(size // 2 if self.double_buffered else size)


@dataclass(frozen=True, kw_only=True)
class DataflowEnergySpec(Section):
    """``[energy]``: energy per event and background power."""

    mac_pJ: float = spec_field("one multiply-accumulate in a PE, pJ", ge=0, le=1e4)
    sram_read_pJ_per_byte: float = spec_field("reading one byte of SRAM, pJ", ge=0, le=1e4)
    sram_write_pJ_per_byte: float = spec_field("writing one byte of SRAM, pJ", ge=0, le=1e4)
    dram_pJ_per_byte: float = spec_field(
        "moving one byte between the backing store and SRAM, pJ", ge=0, le=1e5
    )
    static_W: float = spec_field("leakage and clock power while running, W", ge=0, le=1e4)


@dataclass(frozen=True, kw_only=True)
class DataflowSpec(Device):
    """A systolic-array accelerator: ``kind = "dataflow"``."""

    on_package: bool = spec_field(
        "true: shares a package with the host processor (no PCIe crossing)"
    )
    array: ArraySpec = spec_field("the PE array")
    sram: SramSpec = spec_field("operand buffers")
    dram: DramSpec = spec_field("backing store")
    energy: DataflowEnergySpec = spec_field("energy per event")
    host_link: HostLinkSpec | None = spec_field(
        "link to the host when the device is off-package", default=None
    )

    @property
    def clock_MHz(self) -> float:
        """The array clock, MHz."""
        return self.array.clock_MHz

    @property
    def dram_bytes_per_cycle(self) -> float:
        """Backing-store peak bandwidth in bytes per array cycle."""
        return self.dram.peak_bandwidth_GBps * 1e3 / self.array.clock_MHz

    def problems(self) -> Iterator[Problem]:
        if self.kind != "dataflow":
            yield ("kind", self.kind, "'dataflow' for a dataflow device file")
        if not self.on_package and self.host_link is None:
            yield ("host_link", None, "a [host_link] table when on_package = false")
        for which, edge in (("ifmap", self.array.rows), ("filter", self.array.cols)):
            need = edge * self.array.word_bytes
            if self.sram.working_bytes(which) < need:
                yield (
                    f"sram.{which}_KiB",
                    getattr(self.sram, f"{which}_KiB"),
                    f"room for one word per array edge PE ({need} B in the working half)",
                )

    def features(self) -> dict[str, Any]:
        """Key figures; the GPU column names are reused where they mean the same."""
        peak = self.array.peak_TFLOPS
        return {
            "name": self.name,
            "kind": self.kind,
            "architecture": self.architecture,
            "clock_MHz": self.array.clock_MHz,
            "array": f"{self.array.rows}x{self.array.cols}",
            "dataflow": self.array.dataflow,
            "dram_type": self.dram.type,
            "dram_size_GiB": self.dram.size_GiB,
            "dram_bandwidth_GBps": self.dram.peak_bandwidth_GBps,
            "peak_fp16_TFLOPS": peak if self.array.dtype in ("fp16", "bf16") else None,
            "peak_TFLOPS": peak,
        }
