"""Processing-in-memory devices (``kind = "pim"``): DRAM with compute units in or beside the banks.

Two styles share one schema:

* ``hbm-pim`` (Samsung HBM-PIM / Aquabolt-XL): one SIMD unit per two banks, FP16 lanes, a small
  register file (GRF_A for the input vector, GRF_B for partial sums) and a command register file;
  single-bank, all-bank and PIM modes.
* ``aim`` (SK hynix Accelerator-in-Memory on GDDR6): one MAC unit per bank, a per-channel global
  buffer that holds the input vector, and all-bank MAC commands (MAC16).

The memory itself is the ``[dram]`` table of a GPU file (:class:`~simgpu.devices.spec.DramSpec`):
channels, banks, rows and JEDEC timing. ``[pim]`` adds the compute units, the PIM command timing
and the energy of each command. Standard library only.
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

__all__ = ["PIM_STYLES", "PimUnitSpec", "PimEnergySpec", "PimSpec"]

#: The PIM styles the simulator knows.
PIM_STYLES = ("hbm-pim", "aim")


@dataclass(frozen=True, kw_only=True)
class PimUnitSpec(Section):
    """``[pim]``: the compute units beside the banks and the timing of PIM commands."""

    style: str = spec_field("PIM style", choices=PIM_STYLES)
    banks_per_unit: int = spec_field("banks sharing one compute unit", ge=1, le=64)
    lanes: int = spec_field("SIMD lanes (MACs) per unit per command", ge=1, le=4096)
    dtype: str = spec_field("element type of the lanes", choices=("fp16", "bf16"))
    element_bytes: int = spec_field("bytes per element", choices=(1, 2, 4))
    column_bytes: int = spec_field(
        "bytes one column access delivers to a unit (one MAC command's operand)", ge=2, le=4096
    )
    input_buffer_bytes: int = spec_field(
        "input-vector storage a MAC command can read (GRF_A of a unit, or AiM's global buffer)",
        ge=2,
        le=16_777_216,
    )
    input_buffer_shared_per_channel: bool = spec_field(
        "true: one input buffer per (pseudo-)channel (AiM); false: one per unit (HBM-PIM GRF_A)"
    )
    accumulator_registers: int = spec_field(
        "output registers per unit that hold partial sums (GRF_B / MAC result registers)",
        ge=1,
        le=4096,
    )
    adder_tree: bool = spec_field(
        "true: the lanes are reduced to one value per command in the unit (AiM); false: each "
        "lane keeps its own partial sum and the host reduces them at read-out (HBM-PIM)"
    )
    command_register_entries: int | None = spec_field(
        "entries of the command register file (HBM-PIM CRF); absent if commands come from the "
        "host one by one",
        ge=1,
        le=4096,
        default=None,
    )
    mac_interval_tCK: int = spec_field(
        "spacing of consecutive all-bank MAC commands on one channel, tCK", ge=1, le=1000
    )
    input_write_interval_tCK: int = spec_field(
        "spacing of consecutive writes into the input buffer (broadcast), tCK", ge=1, le=1000
    )
    readout_interval_tCK: int = spec_field(
        "spacing of consecutive result read-out commands on one channel, tCK", ge=1, le=1000
    )
    readout_bytes: int = spec_field("bytes one read-out command returns to the host", ge=1, le=4096)
    mode_switch_tCK: int = spec_field(
        "entering plus leaving all-bank/PIM mode once per kernel, tCK", ge=0, le=100_000
    )
    pim_channel_fraction: float = spec_field(
        "fraction of the (pseudo-)channels whose banks carry compute units", ge=1e-3, le=1
    )

    @property
    def elements_per_command(self) -> int:
        """Matrix elements one unit consumes per MAC command."""
        return self.column_bytes // self.element_bytes

    def problems(self) -> Iterator[Problem]:
        if self.column_bytes % self.element_bytes:
            yield ("column_bytes", self.column_bytes, "a multiple of element_bytes")
        elif self.elements_per_command != self.lanes:
            yield (
                "lanes",
                self.lanes,
                f"column_bytes / element_bytes = {self.elements_per_command} (one element per "
                "lane per command)",
            )
        if self.input_buffer_bytes % self.column_bytes:
            yield ("input_buffer_bytes", self.input_buffer_bytes, "a multiple of column_bytes")
        expected_dtype_bytes = {"fp16": 2, "bf16": 2}[self.dtype]
        if self.element_bytes != expected_dtype_bytes:
            yield ("element_bytes", self.element_bytes, f"{expected_dtype_bytes} for {self.dtype}")


@dataclass(frozen=True, kw_only=True)
class PimEnergySpec(Section):
    """``[energy]``: energy per command and background power."""

    act_per_bank_pJ: float = spec_field(
        "activating (and later precharging) one row in one bank, pJ", ge=0, le=1e5
    )
    column_read_internal_pJ_per_bit: float = spec_field(
        "moving one bit from the cell array to a unit beside the bank (no I/O), pJ/bit",
        ge=0,
        le=100,
    )
    io_pJ_per_bit: float = spec_field(
        "moving one bit across the device interface to the host (TSV/PHY or pins), pJ/bit",
        ge=0,
        le=100,
    )
    mac_pJ: float = spec_field("one multiply-accumulate in a unit, pJ", ge=0, le=1e4)
    register_access_pJ: float = spec_field(
        "one read or write of a unit register / input buffer entry, pJ", ge=0, le=1e4
    )
    background_W: float = spec_field(
        "power of the device while busy apart from the events above (refresh, clocks), W",
        ge=0,
        le=1e4,
    )


@dataclass(frozen=True, kw_only=True)
class PimSpec(Device):
    """A PIM device: ``kind = "pim"``, a ``[dram]`` table, ``[pim]`` and ``[energy]``."""

    on_package: bool = spec_field(
        "true: the device is the host processor's own memory (same package, no PCIe crossing)"
    )
    dram: DramSpec = spec_field("the memory: organisation and JEDEC timing")
    pim: PimUnitSpec = spec_field("compute units and PIM command timing")
    energy: PimEnergySpec = spec_field("energy per command")
    host_link: HostLinkSpec | None = spec_field(
        "link to the host when the device is off-package", default=None
    )

    @property
    def clock_MHz(self) -> float:
        """The DRAM command clock, MHz (the PIM units step with it)."""
        return 1e6 / self.dram.timing.tCK_ps

    @property
    def banks_per_channel(self) -> int:
        """Banks per (pseudo-)channel."""
        return self.dram.bank_groups * self.dram.banks_per_group

    @property
    def pim_channels(self) -> int:
        """(Pseudo-)channels that carry compute units."""
        total = self.dram.channels * self.dram.pseudo_channels_per_channel
        return max(1, round(total * self.pim.pim_channel_fraction))

    @property
    def units_per_channel(self) -> int:
        """Compute units per (pseudo-)channel."""
        return self.banks_per_channel // self.pim.banks_per_unit

    @property
    def units(self) -> int:
        """Compute units in the whole device."""
        return self.pim_channels * self.units_per_channel

    @property
    def peak_TFLOPS(self) -> float:
        """Peak MAC rate of all units (2 flops per MAC, one command per mac_interval_tCK)."""
        per_s = self.clock_MHz * 1e6 / self.pim.mac_interval_tCK
        return self.units * self.pim.lanes * 2 * per_s / 1e12

    @property
    def internal_bandwidth_GBps(self) -> float:
        """Bytes per second all units read from their banks during all-bank MAC commands."""
        per_s = self.clock_MHz * 1e6 / self.pim.mac_interval_tCK
        return self.units * self.pim.column_bytes * per_s / 1e9

    def problems(self) -> Iterator[Problem]:
        if self.kind != "pim":
            yield ("kind", self.kind, "'pim' for a PIM device file")
        if self.banks_per_channel % self.pim.banks_per_unit:
            yield (
                "pim.banks_per_unit",
                self.pim.banks_per_unit,
                f"a divisor of the banks per channel ({self.banks_per_channel})",
            )
        if self.dram.row_bytes % self.pim.column_bytes:
            yield (
                "pim.column_bytes",
                self.pim.column_bytes,
                f"a divisor of dram.row_bytes ({self.dram.row_bytes})",
            )
        if not self.on_package and self.host_link is None:
            yield ("host_link", None, "a [host_link] table when on_package = false")

    def features(self) -> dict[str, Any]:
        """Key figures; the GPU column names are reused where they mean the same."""
        return {
            "name": self.name,
            "kind": self.kind,
            "architecture": self.architecture,
            "clock_MHz": round(self.clock_MHz, 3),
            "dram_type": self.dram.type,
            "dram_size_GiB": self.dram.size_GiB,
            "dram_bandwidth_GBps": self.dram.peak_bandwidth_GBps,
            "pim_style": self.pim.style,
            "pim_units": self.units,
            "internal_bandwidth_GBps": round(self.internal_bandwidth_GBps, 1),
            "peak_fp16_TFLOPS": round(self.peak_TFLOPS, 3),
        }
