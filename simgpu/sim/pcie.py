"""The host link: PCIe copies between host and device memory, pinned or pageable.

* Each direction (``"h2d"``, ``"d2h"``) is a full-duplex lane set with its own bandwidth: a
  "next free cycle" counter, so copies in the same direction share it and copies in opposite
  directions overlap.
* A copy needs a DMA **copy engine** for its whole duration (``host_link.copy_engines``, a
  :class:`simpy.Resource`): with one engine, H2D and D2H copies serialise; with two or more they
  overlap, as on real GPUs.
* Every copy pays ``host_link.latency_us`` once (driver, doorbell, first TLP round trip).
* **Pinned** host memory is read/written by DMA directly. **Pageable** memory is staged by the
  driver through a pinned bounce buffer in chunks: the CPU copies a chunk into the buffer, then
  the DMA moves it, one chunk after the other (published/dram_timings.md, host links: "Pageable
  copies go through a staging buffer and reach roughly 40-60% of pinned").

Bandwidth: the measured pinned figure of the device file when it has one
(``measured_h2d_GBps``/``measured_d2h_GBps``), else the line-coded link rate times the TLP
payload efficiency :data:`TLP_EFFICIENCY`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy

from simgpu.errors import SimgpuError

if TYPE_CHECKING:
    from simgpu.devices.spec import HostLinkSpec

__all__ = [
    "HostLink",
    "CopyResult",
    "DIRECTIONS",
    "TLP_EFFICIENCY",
    "STAGING_CHUNK_BYTES",
    "link_bandwidth_GBps",
]

DIRECTIONS = ("h2d", "d2h")
#: assumption: 256-byte maximum payload per TLP and 24 bytes of per-TLP overhead (16-byte 4-DW
#: header, 4-byte LCRC, 2-byte sequence number, 2 bytes of framing; PCI Express Base
#: Specification, transaction and data link layers): 256 / 280 of the line-coded rate.
TLP_EFFICIENCY = 256 / 280
#: assumption: the driver stages pageable copies through pinned buffers of 2 MiB (the CUDA
#: driver's staging size is not documented; 2 MiB is one large page).
STAGING_CHUNK_BYTES = 2 * 1024 * 1024


def link_bandwidth_GBps(spec: HostLinkSpec, direction: str) -> float:
    """Pinned copy bandwidth of one direction, GB/s (measured if known, else modelled)."""
    if direction not in DIRECTIONS:
        raise SimgpuError(f"host link: direction {direction!r}, expected one of {DIRECTIONS}")
    measured = spec.measured_h2d_GBps if direction == "h2d" else spec.measured_d2h_GBps
    if measured is not None:
        return measured
    return spec.bandwidth_per_direction_GBps * TLP_EFFICIENCY


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

    ``host_copy_GBps`` is the CPU's memcpy rate into the staging buffer for pageable copies.
    assumption (default): equal to the link's pinned rate of that direction, i.e. a single
    host thread copies about as fast as one PCIe direction moves data (the published
    pageable-to-pinned ratios of 40-60% are what equal rates give with staging and DMA in
    series).
    """

    def __init__(
        self,
        env: simpy.Environment,
        host_link_spec: HostLinkSpec,
        clock_MHz: float,
        *,
        host_copy_GBps: float | None = None,
        staging_chunk_bytes: int = STAGING_CHUNK_BYTES,
    ) -> None:
        if clock_MHz <= 0:
            raise SimgpuError(f"host link: clock_MHz = {clock_MHz}, expected > 0")
        if staging_chunk_bytes <= 0:
            raise SimgpuError(
                f"host link: staging_chunk_bytes = {staging_chunk_bytes}, expected > 0"
            )
        if host_copy_GBps is not None and host_copy_GBps <= 0:
            raise SimgpuError(f"host link: host_copy_GBps = {host_copy_GBps}, expected > 0")
        self.env = env
        self.spec = host_link_spec
        self.clock_MHz = clock_MHz
        self._cyc_per_s = clock_MHz * 1e6
        self.bandwidth_GBps = {d: link_bandwidth_GBps(host_link_spec, d) for d in DIRECTIONS}
        self.host_copy_GBps = host_copy_GBps
        self.chunk = staging_chunk_bytes
        self.latency_cycles = host_link_spec.latency_us * 1e-6 * self._cyc_per_s
        self.engines = simpy.Resource(env, capacity=max(1, host_link_spec.copy_engines))
        self._next_free = {d: 0.0 for d in DIRECTIONS}
        self.bytes = {d: 0 for d in DIRECTIONS}
        self.copies: list[CopyResult] = []

    def _bytes_per_cycle(self, gbps: float) -> float:
        return gbps * 1e9 / self._cyc_per_s

    def _dma(self, nbytes: int, direction: str) -> float:
        """Book the direction's lanes for ``nbytes`` from now; return the end cycle."""
        now = self.env.now
        start = max(now, self._next_free[direction])
        end = start + nbytes / self._bytes_per_cycle(self.bandwidth_GBps[direction])
        self._next_free[direction] = end
        self.bytes[direction] += nbytes
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
        t0 = env.now
        with self.engines.request() as engine:
            yield engine
            yield env.timeout(self.latency_cycles)
            if pinned:
                end = self._dma(nbytes, direction)
                yield env.timeout(end - env.now)
            else:
                host = self.host_copy_GBps or self.bandwidth_GBps[direction]
                host_bpc = self._bytes_per_cycle(host)
                left = nbytes
                while left > 0:
                    chunk = min(self.chunk, left)
                    if direction == "h2d":  # CPU fills the bounce buffer, then DMA
                        yield env.timeout(chunk / host_bpc)
                        end = self._dma(chunk, direction)
                        yield env.timeout(end - env.now)
                    else:  # DMA into the bounce buffer, then the CPU copies it out
                        end = self._dma(chunk, direction)
                        yield env.timeout(end - env.now)
                        yield env.timeout(chunk / host_bpc)
                    left -= chunk
        result = CopyResult(nbytes, direction, pinned, t0, env.now, self.clock_MHz)
        self.copies.append(result)
        return result

    def stats(self) -> dict[str, float]:
        """Bytes moved per direction and copies done."""
        return {
            "copies": float(len(self.copies)),
            "h2d_bytes": float(self.bytes["h2d"]),
            "d2h_bytes": float(self.bytes["d2h"]),
        }
