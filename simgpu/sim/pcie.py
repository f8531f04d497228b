"""The host link: PCIe copies between host and device memory, pinned or pageable.

What one measured copy contains (``simgpu calibrate``'s ``pcie`` table times it with CUDA events
around ``cudaMemcpyAsync``/``cudaMemcpy``):

* **A fixed cost per copy** (``host_link.latency_us``; ``d2h_latency_us`` where device-to-host
  differs): driver, doorbell, DMA descriptor fetch and, for a host-to-device copy, the first read
  round trip. It dominates copies of a few KiB.
* **The transfer.** Each direction (``"h2d"``, ``"d2h"``) is a full-duplex lane set with its own
  bandwidth: a "next free cycle" counter, so copies in the same direction share it and copies in
  opposite directions overlap. The DMA books the link in segments of at most
  :data:`DMA_SEGMENT_BYTES`, so a direction's rate follows the other direction: while a copy is
  in flight the other way, each segment moves at ``host_link.duplex_fraction`` of the one-way
  rate (the link also carries the other direction's read requests, completions' flow control and
  acknowledgements; the host's root complex and memory serve both).
* A copy needs a DMA **copy engine** for its whole duration (``host_link.copy_engines``, a
  :class:`simpy.Resource`): with one engine, H2D and D2H copies serialise; with two or more they
  overlap, as on real GPUs.
* **Pageable** memory is not reachable by the DMA: the driver stages it through pinned bounce
  buffers (``staging_buffers`` of ``staging_chunk_KiB`` each). For a host-to-device copy the CPU
  copies a chunk into a free buffer (``staging_h2d_GBps``), then the DMA moves it; device to host,
  the DMA fills a buffer and the CPU copies it out (``staging_d2h_GBps``). With one buffer the two
  run in series; with two or more they pipeline, so a large copy runs at the slower of the two
  rates. A pageable buffer larger than ``host_cache_MiB`` is staged at the ``staging_uncached_*``
  rate (the CPU's copy then streams from or to host DRAM). A pageable copy also pays
  ``pageable_latency_us`` once (the synchronous call and the staging set-up).

Where a device file leaves the pageable and duplex fields out: staging at the link's pinned rate
through one 2 MiB buffer (staging and DMA in series, the published 40-60% of pinned;
published/dram_timings.md, host links), no pageable surcharge, no duplex share.

Bandwidth: the measured pinned figure of the device file when it has one
(``measured_h2d_GBps``/``measured_d2h_GBps``), else the line-coded link rate times the TLP
payload efficiency :data:`TLP_EFFICIENCY`.

:func:`simgpu.arch.hostlink.copy_seconds` is the closed form of one copy alone on the link, and
:func:`~simgpu.arch.hostlink.bidir_seconds` of the bidirectional copy; the analytical view answers
with them, and the simulation equals them within its DMA segments (tests hold them together).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy

from simgpu.arch.hostlink import (
    DIRECTIONS,
    STAGING_CHUNK_BYTES,
    TLP_EFFICIENCY,
    LinkParams,
    copy_seconds,
    link_bandwidth_GBps,
)
from simgpu.errors import SimgpuError

if TYPE_CHECKING:
    from simgpu.devices.spec import HostLinkSpec

__all__ = [
    "HostLink",
    "CopyResult",
    "LinkParams",
    "DIRECTIONS",
    "TLP_EFFICIENCY",
    "STAGING_CHUNK_BYTES",
    "DMA_SEGMENT_BYTES",
    "link_bandwidth_GBps",
    "copy_seconds",
]

#: The DMA books the link in segments of at most this many bytes, so that a copy's rate follows
#: copies starting and ending in the other direction (a granularity of the model, not of the
#: hardware: a 1 GiB copy costs 1,024 events).
DMA_SEGMENT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CopyResult:
    """One finished copy: size, direction, memory kind and its start/end (SM cycles)."""

    nbytes: int
    direction: str
    pinned: bool
    t_start: float
    t_end: float
    clock_MHz: float

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return (self.t_end - self.t_start) / (self.clock_MHz * 1e6)

    @property
    def bandwidth_GBps(self) -> float:
        """nbytes / duration, GB/s."""
        return self.nbytes / self.seconds / 1e9 if self.seconds > 0 else float("nan")


class HostLink:
    """PCIe between the host and one GPU; ``env`` counts SM cycles at ``clock_MHz``.

    ``host_copy_GBps`` overrides the device file's host staging rate for pageable copies (both
    directions, any buffer size) and ``staging_chunk_bytes`` its staging chunk; left out, the
    device file's figures (or the defaults the module docstring gives) apply.
    """

    def __init__(
        self,
        env: simpy.Environment,
        host_link_spec: HostLinkSpec,
        clock_MHz: float,
        *,
        host_copy_GBps: float | None = None,
        staging_chunk_bytes: int | None = None,
    ) -> None:
        if not clock_MHz > 0:
            raise SimgpuError(f"host link: clock_MHz = {clock_MHz}, expected > 0")
        self.env = env
        self.spec = host_link_spec
        self.clock_MHz = clock_MHz
        self._cyc_per_s = clock_MHz * 1e6
        self.params = LinkParams.from_spec(
            host_link_spec, host_copy_GBps=host_copy_GBps, staging_chunk_bytes=staging_chunk_bytes
        )
        self.bandwidth_GBps = {d: self.params.bandwidth[d] / 1e9 for d in DIRECTIONS}
        self.chunk = self.params.chunk
        self.latency_cycles = self.params.latency["h2d"] * self._cyc_per_s
        self.engines = simpy.Resource(env, capacity=max(1, host_link_spec.copy_engines))
        self._next_free = {d: 0.0 for d in DIRECTIONS}
        self._active = {d: 0 for d in DIRECTIONS}
        self.bytes = {d: 0 for d in DIRECTIONS}
        self.copies: list[CopyResult] = []

    def _cycles(self, seconds: float) -> float:
        return seconds * self._cyc_per_s

    def _dma(self, nbytes: int, direction: str) -> Generator[Any, Any, float]:
        """Move ``nbytes`` over the direction's lanes, segment by segment, from now; each segment
        at the duplex share of the rate while a copy is in flight the other way. Returns (as
        the generator's value) the end cycle."""
        other = "d2h" if direction == "h2d" else "h2d"
        left = nbytes
        end = self.env.now
        while left > 0:
            seg = min(DMA_SEGMENT_BYTES, left)
            rate = self.params.bandwidth[direction]
            if self._active[other]:
                rate *= self.params.duplex_fraction
            start = max(self.env.now, self._next_free[direction])
            end = start + self._cycles(seg / rate)
            self._next_free[direction] = end
            self.bytes[direction] += seg
            left -= seg
            yield self.env.timeout(end - self.env.now)
        return end

    def copy(self, nbytes: int, direction: str, pinned: bool = True) -> simpy.Process:
        """Start a copy; the returned process event fires with its :class:`CopyResult`."""
        if direction not in DIRECTIONS:
            raise SimgpuError(f"copy: direction {direction!r}, expected one of {DIRECTIONS}")
        if nbytes <= 0:
            raise SimgpuError(f"copy: nbytes = {nbytes}, expected > 0")
        return self.env.process(self._copy(int(nbytes), direction, bool(pinned)))

    def _copy(self, nbytes: int, direction: str, pinned: bool) -> Generator[Any, Any, CopyResult]:
        env = self.env
        p = self.params
        t0 = env.now
        with self.engines.request() as engine:
            yield engine
            fixed = p.latency[direction] + (0.0 if pinned else p.pageable_latency)
            yield env.timeout(self._cycles(fixed))
            self._active[direction] += 1
            try:
                if pinned:
                    yield from self._dma(nbytes, direction)
                else:
                    yield from self._staged(nbytes, direction)
            finally:
                self._active[direction] -= 1
        result = CopyResult(nbytes, direction, pinned, t0, env.now, self.clock_MHz)
        self.copies.append(result)
        return result

    def _chunks(self, nbytes: int) -> list[int]:
        chunk = self.params.chunk
        full, rest = divmod(nbytes, chunk)
        return [chunk] * full + ([rest] if rest else [])

    def _staged(self, nbytes: int, direction: str) -> Generator[Any, Any, None]:
        """A pageable copy through the staging buffers: two processes, the CPU's copy and the
        DMA, hand chunks over through ``staging_buffers`` buffers (a buffer is taken by the
        first stage of a chunk and given back when the second stage is done with it). Host to
        device the CPU stages a chunk first; device to host the DMA fills a buffer first."""
        env = self.env
        host_bps = self.params.staging_rate(nbytes, direction)
        chunks = self._chunks(nbytes)
        free: simpy.Store = simpy.Store(env)
        full: simpy.Store = simpy.Store(env)
        for b in range(self.params.buffers):
            free.items.append(b)

        def host_copy(c: int) -> Generator[Any, Any, Any]:
            yield env.timeout(self._cycles(c / host_bps))

        def dma(c: int) -> Generator[Any, Any, Any]:
            return self._dma(c, direction)

        stages = (host_copy, dma) if direction == "h2d" else (dma, host_copy)

        def first() -> Generator[Any, Any, None]:
            for c in chunks:
                buf = yield free.get()
                yield from stages[0](c)
                yield full.put((buf, c))

        def second() -> Generator[Any, Any, None]:
            for _ in chunks:
                buf, c = yield full.get()
                yield from stages[1](c)
                yield free.put(buf)

        env.process(first())
        yield env.process(second())

    def stats(self) -> dict[str, float]:
        """Bytes moved per direction and copies done."""
        return {
            "copies": float(len(self.copies)),
            "h2d_bytes": float(self.bytes["h2d"]),
            "d2h_bytes": float(self.bytes["d2h"]),
        }
