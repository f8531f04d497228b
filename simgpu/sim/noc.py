"""The crossbar between the SMs and the L2 slices.

A crossbar has no shared internal links worth modelling at transaction level: each L2 slice has
its own input port, and what limits throughput is how many bytes per cycle a slice can return
(``noc.bandwidth_bytes_per_cycle_per_slice``). The crossbar is therefore one fixed one-way
latency plus one :class:`~simgpu.sim.cache.WindowPort` per slice (per partition), eventless.
Slice ports take bookings out of time order (a far hit books the far slice for when it gets
there), hence a windowed port rather than a plain next-free counter.

Requests, not bytes. Where the device file sets ``noc.slice_request_bytes``, a request occupies
its slice for at least that many bytes of the slice's bandwidth, however few sectors it carries:
a slice looks up one tag and accesses one line-wide data slot per request, so a warp's 32
scattered 4-byte stores (32 one-sector requests) cost 32 slots, not 32 x 32 bytes. Unset, a
request occupies its own bytes (the model before that field).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simgpu.sim.cache import WindowBank, WindowPort

if TYPE_CHECKING:
    from simgpu.devices.spec import NocSpec

__all__ = ["Crossbar"]


class Crossbar:
    """SM-to-slice network: ``latency`` cycles one way, one bandwidth port per slice."""

    __slots__ = ("latency", "ports", "bytes_per_cycle", "request_bytes", "bank")

    def __init__(self, noc: NocSpec, partitions: int, slices_per_partition: int) -> None:
        self.latency = noc.latency_cycles
        self.bytes_per_cycle = noc.bandwidth_bytes_per_cycle_per_slice
        #: bytes of slice bandwidth a request occupies at least (0: its own bytes)
        self.request_bytes = float(noc.slice_request_bytes or 0)
        # every slice port's windows in one bank (slice s of partition p is its port
        # p * slices_per_partition + s), so that compiled code books any of them
        self.bank = WindowBank(partitions * slices_per_partition)
        self.ports = [
            [
                WindowPort(f"xbar-p{p}-s{s}", self.bytes_per_cycle, bank=self.bank,
                           index=p * slices_per_partition + s)
                for s in range(slices_per_partition)
            ]
            for p in range(partitions)
        ]

    def port(self, partition: int, slice_index: int) -> WindowPort:
        """The input/return port of one slice."""
        return self.ports[partition][slice_index]

    def use(
        self, partition: int, slice_index: int, now: float, nbytes: float, bulk: bool = False
    ) -> float:
        """Book one request of ``nbytes`` arriving at slice ``slice_index`` of ``partition``
        at ``now`` (at least :attr:`request_bytes` of its bandwidth, unless it is a TMA copy's
        ``bulk`` read, which takes its bytes only); return its start cycle."""
        rb = 0.0 if bulk else self.request_bytes
        return self.ports[partition][slice_index].use(now, nbytes if nbytes > rb else rb)

    def busy_cycles(self) -> float:
        """Cycles booked on all slice ports together."""
        return sum(p.busy for part in self.ports for p in part)
