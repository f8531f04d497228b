"""The crossbar between the SMs and the L2 slices.

A crossbar has no shared internal links worth modelling at transaction level: each L2 slice has
its own input port, and what limits throughput is how many bytes per cycle a slice can return
(``noc.bandwidth_bytes_per_cycle_per_slice``). The crossbar is therefore one fixed one-way
latency plus one :class:`~simgpu.sim.cache.WindowPort` per slice (per partition), eventless.
Slice ports take bookings out of time order (a far hit books the far slice for when it gets
there), hence the windowed port rather than a plain next-free counter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simgpu.sim.cache import WindowPort

if TYPE_CHECKING:
    from simgpu.devices.spec import NocSpec

__all__ = ["Crossbar"]


class Crossbar:
    """SM-to-slice network: ``latency`` cycles one way, one bandwidth port per slice."""

    __slots__ = ("latency", "ports", "bytes_per_cycle")

    def __init__(self, noc: NocSpec, partitions: int, slices_per_partition: int) -> None:
        self.latency = noc.latency_cycles
        self.bytes_per_cycle = noc.bandwidth_bytes_per_cycle_per_slice
        self.ports = [
            [
                WindowPort(f"xbar-p{p}-s{s}", self.bytes_per_cycle)
                for s in range(slices_per_partition)
            ]
            for p in range(partitions)
        ]

    def port(self, partition: int, slice_index: int) -> WindowPort:
        """The input/return port of one slice."""
        return self.ports[partition][slice_index]

    def busy_cycles(self) -> float:
        """Cycles booked on all slice ports together."""
        return sum(p.busy for part in self.ports for p in part)
