"""The crossbar between the SMs and the L2 slices.

A crossbar has no shared internal links worth modelling at transaction level: each L2 slice has
its own input port, and what limits throughput is how many bytes per cycle a slice can return
(``noc.bandwidth_bytes_per_cycle_per_slice``). The crossbar is therefore one fixed one-way
latency plus one :class:`SlicePort` per slice (per partition), eventless. Slice ports take
bookings out of time order (a far hit books the far slice for when it gets there), hence a
windowed port rather than a plain next-free counter.

Requests, not bytes. Where the device file sets ``noc.slice_request_bytes``, a request occupies
its slice for at least that many bytes of the slice's bandwidth, however few sectors it carries:
a slice looks up one tag and accesses one line-wide data slot per request, so a warp's 32
scattered 4-byte stores (32 one-sector requests) cost 32 slots, not 32 x 32 bytes. Unset, a
request occupies its own bytes (the model before that field).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simgpu.sim.cache import WindowPort

if TYPE_CHECKING:
    from simgpu.devices.spec import NocSpec

__all__ = ["Crossbar", "SlicePort"]


class SlicePort(WindowPort):
    """A :class:`~simgpu.sim.cache.WindowPort` that stays exact under a deep backlog.

    Stores do not wait for their completion, so an SM can book a slice far ahead of the time
    of the booking (thousands of cycles where a kernel stores faster than the slices drain).
    Two things of the plain windowed port then go wrong: each booking walks every full window
    of the backlog (time quadratic in its depth), and windows are forgotten relative to the
    latest *booked* window, so a request arriving now finds its window forgotten and empty and
    passes the whole backlog. Here full windows are skipped through forward links (with path
    compression), and windows are forgotten only when they lie :attr:`KEEP` windows behind the
    earliest arrival booked since the last time windows were forgotten (requests arrive at the
    slice a crossbar traversal after they are made, so later ones never arrive much earlier;
    a far hit's booking, which may lie deep in the future, does not move that mark).
    """

    __slots__ = ("skip", "low", "limit")

    def __init__(self, name: str, bytes_per_cycle: float, window: float = 16.0) -> None:
        super().__init__(name, bytes_per_cycle, window)
        self.skip: dict[int, int] = {}  # full window -> a later window that may have room
        self.low = float("inf")  # the earliest arrival since windows were last forgotten
        self.limit = 2 * self.KEEP  # forget old windows when this many are kept

    def _room(self, k: int) -> int:
        """The first window from ``k`` on that is not full."""
        skip = self.skip
        root = k
        while root in skip:
            root = skip[root]
        while k in skip and skip[k] != root:  # path compression
            skip[k], k = root, skip[k]
        return root

    def book(self, now: float, cycles: float) -> float:
        """Book the port for ``cycles`` from ``now`` on; return the start cycle."""
        w = self.window
        used = self.used
        if now < self.low:
            self.low = now
        k = self._room(int(now // w))
        u = used.get(k, 0.0)
        base = k * w
        start = base + u if base + u > now else now
        total = u + cycles
        while total > w:  # spill what does not fit into the following windows with room
            used[k] = w
            self.skip[k] = k + 1
            k = self._room(k + 1)
            total = used.get(k, 0.0) + total - w
        used[k] = total
        if total >= w:
            self.skip[k] = k + 1
        end = start + cycles
        if end > self.next_free:
            self.next_free = end
        self.busy += cycles
        self.uses += 1
        if len(used) > self.limit:
            floor = int(self.low // w) - self.KEEP
            for key in [key for key in used if key < floor]:
                del used[key]
                self.skip.pop(key, None)
            self.low = float("inf")
            self.limit = len(used) + 2 * self.KEEP
        return start


class Crossbar:
    """SM-to-slice network: ``latency`` cycles one way, one bandwidth port per slice."""

    __slots__ = ("latency", "ports", "bytes_per_cycle", "request_bytes")

    def __init__(self, noc: NocSpec, partitions: int, slices_per_partition: int) -> None:
        self.latency = noc.latency_cycles
        self.bytes_per_cycle = noc.bandwidth_bytes_per_cycle_per_slice
        #: bytes of slice bandwidth a request occupies at least (0: its own bytes)
        self.request_bytes = float(noc.slice_request_bytes or 0)
        self.ports = [
            [
                SlicePort(f"xbar-p{p}-s{s}", self.bytes_per_cycle)
                for s in range(slices_per_partition)
            ]
            for p in range(partitions)
        ]

    def port(self, partition: int, slice_index: int) -> SlicePort:
        """The input/return port of one slice."""
        return self.ports[partition][slice_index]

    def use(self, partition: int, slice_index: int, now: float, nbytes: float) -> float:
        """Book one request of ``nbytes`` arriving at slice ``slice_index`` of ``partition``
        at ``now`` (at least :attr:`request_bytes` of its bandwidth); return its start cycle."""
        rb = self.request_bytes
        return self.ports[partition][slice_index].use(now, nbytes if nbytes > rb else rb)

    def busy_cycles(self) -> float:
        """Cycles booked on all slice ports together."""
        return sum(p.busy for part in self.ports for p in part)
