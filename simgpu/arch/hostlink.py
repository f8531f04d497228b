"""The host link's closed forms: what a copy between host and device memory costs.

The figures of a device file's ``[host_link]`` (:class:`LinkParams`, defaults filled in) and the
time of one copy alone on the link (:func:`copy_seconds`) or of two copies in opposite directions
issued one after the other (:func:`bidir_seconds`). The analytical view answers with these; the
simulated view (:class:`simgpu.sim.pcie.HostLink`, whose docstring describes the model) equals
them where its copies run alone, and tests hold the two together. Nothing here imports a view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simgpu.errors import SimgpuError

if TYPE_CHECKING:
    from simgpu.devices.spec import HostLinkSpec

__all__ = [
    "LinkParams",
    "DIRECTIONS",
    "TLP_EFFICIENCY",
    "STAGING_CHUNK_BYTES",
    "link_bandwidth_GBps",
    "pipeline_seconds",
    "copy_seconds",
    "bidir_seconds",
]

DIRECTIONS = ("h2d", "d2h")
#: assumption: 256-byte maximum payload per TLP and 24 bytes of per-TLP overhead (16-byte 4-DW
#: header, 4-byte LCRC, 2-byte sequence number, 2 bytes of framing; PCI Express Base
#: Specification, transaction and data link layers): 256 / 280 of the line-coded rate.
TLP_EFFICIENCY = 256 / 280
#: assumption, where the device file sets no ``staging_chunk_KiB``: the driver stages pageable
#: copies through pinned buffers of 2 MiB (the CUDA driver's staging size is not documented;
#: 2 MiB is one large page).
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
class LinkParams:
    """The host link's figures in seconds and bytes/s, with the device file's defaults filled in
    (see the module docstring)."""

    bandwidth: dict[str, float]  # pinned DMA rate per direction, B/s
    latency: dict[str, float]  # fixed cost of a pinned copy per direction, s
    pageable_latency: float  # extra fixed cost of a pageable copy, s
    staging: dict[str, float]  # host staging copy rate per direction, B/s
    staging_uncached: dict[str, float]  # the same for buffers above host_cache, B/s
    host_cache: float  # bytes; math.inf where the device file sets none
    chunk: int  # staging chunk, bytes
    buffers: int  # staging buffers
    duplex_fraction: float
    issue_gap: float  # host time to issue one asynchronous copy, s

    @classmethod
    def from_spec(
        cls,
        spec: HostLinkSpec,
        *,
        host_copy_GBps: float | None = None,
        staging_chunk_bytes: int | None = None,
    ) -> LinkParams:
        """The figures of ``spec``; ``host_copy_GBps`` and ``staging_chunk_bytes`` override the
        device file's staging rate (both directions, cached or not) and chunk."""
        if staging_chunk_bytes is not None and staging_chunk_bytes <= 0:
            raise SimgpuError(
                f"host link: staging_chunk_bytes = {staging_chunk_bytes}, expected > 0"
            )
        if host_copy_GBps is not None and not host_copy_GBps > 0:
            raise SimgpuError(f"host link: host_copy_GBps = {host_copy_GBps}, expected > 0")
        bw = {d: link_bandwidth_GBps(spec, d) * 1e9 for d in DIRECTIONS}
        lat = spec.latency_us * 1e-6
        staging: dict[str, float] = {}
        uncached: dict[str, float] = {}
        for d in DIRECTIONS:
            rate = getattr(spec, f"staging_{d}_GBps")
            staging[d] = (host_copy_GBps or rate) * 1e9 if (host_copy_GBps or rate) else bw[d]
            slow = getattr(spec, f"staging_uncached_{d}_GBps")
            uncached[d] = slow * 1e9 if slow and host_copy_GBps is None else staging[d]
        if staging_chunk_bytes is None:
            kib = spec.staging_chunk_KiB
            staging_chunk_bytes = round(kib * 1024) if kib is not None else STAGING_CHUNK_BYTES
        cache = spec.host_cache_MiB
        return cls(
            bandwidth=bw,
            latency={"h2d": lat, "d2h": (spec.d2h_latency_us or spec.latency_us) * 1e-6},
            pageable_latency=(spec.pageable_latency_us or 0.0) * 1e-6,
            staging=staging,
            staging_uncached=uncached,
            host_cache=cache * 2**20 if cache is not None else math.inf,
            chunk=int(staging_chunk_bytes),
            buffers=spec.staging_buffers or 1,
            duplex_fraction=spec.duplex_fraction if spec.duplex_fraction is not None else 1.0,
            issue_gap=(spec.copy_issue_us or 0.0) * 1e-6,
        )

    def staging_rate(self, nbytes: int, direction: str) -> float:
        """The host's staging copy rate for a pageable buffer of ``nbytes``, B/s."""
        if nbytes > self.host_cache:
            return self.staging_uncached[direction]
        return self.staging[direction]


def pipeline_seconds(n: float, chunk: float, buffers: int, first: float, second: float) -> float:
    """Two stages over ``n`` bytes in chunks (rates ``first`` then ``second``, B/s) with
    ``buffers`` buffers between them: in series with one buffer; with two or more, the longest
    path of a two-stage flow shop, ``max_j (first stage of chunks 1..j + second stage of chunks
    j..k)`` (the faster stage never waits for a buffer long enough to idle the slower one)."""
    if buffers <= 1:
        return n / first + n / second
    full, rest = divmod(int(n), int(chunk))
    sizes = np.full(full, float(chunk))
    if rest:
        sizes = np.append(sizes, float(rest))
    path = np.cumsum(sizes / first) + np.cumsum((sizes / second)[::-1])[::-1]
    return float(path.max())


def copy_seconds(
    params: LinkParams, nbytes: float, direction: str, pinned: bool = True
) -> float:
    """Closed form: seconds of one copy alone on the link (no copy in the other direction)."""
    if direction not in DIRECTIONS:
        raise SimgpuError(f"copy: direction {direction!r}, expected one of {DIRECTIONS}")
    bw = params.bandwidth[direction]
    if pinned:
        return params.latency[direction] + nbytes / bw
    host = params.staging_rate(int(nbytes), direction)
    fixed = params.latency[direction] + params.pageable_latency
    if direction == "h2d":
        return fixed + pipeline_seconds(nbytes, params.chunk, params.buffers, host, bw)
    return fixed + pipeline_seconds(nbytes, params.chunk, params.buffers, bw, host)


def _two_flows(starts: tuple[float, float], nbytes: float, solo: tuple[float, float],
               share: float) -> tuple[float, float]:
    """End times of two transfers of ``nbytes`` each that start at ``starts`` and move at
    ``solo`` B/s alone and at ``share`` of that while both are in flight."""
    a, b = (0, 1) if starts[0] <= starts[1] else (1, 0)  # a starts first
    end = [0.0, 0.0]
    # a alone until b starts (or a is done)
    if starts[a] + nbytes / solo[a] <= starts[b]:
        end[a] = starts[a] + nbytes / solo[a]
        end[b] = starts[b] + nbytes / solo[b]
        return end[0], end[1]
    left = [0.0, 0.0]
    left[a] = nbytes - (starts[b] - starts[a]) * solo[a]
    left[b] = float(nbytes)
    # both at their shares until the first is done, then the other alone
    need = [left[i] / (solo[i] * share) for i in (0, 1)]
    first = 0 if need[0] <= need[1] else 1
    other = 1 - first
    t = starts[b] + need[first]
    end[first] = t
    end[other] = t + (left[other] - need[first] * solo[other] * share) / solo[other]
    return end[0], end[1]


def bidir_seconds(params: LinkParams, nbytes: float, pinned: bool = True) -> float:
    """Closed form of ``simgpu calibrate``'s bidirectional copy: ``nbytes`` host to device, then,
    ``issue_gap`` later, ``nbytes`` device to host; seconds until both are done. Pinned copies
    move at ``duplex_fraction`` of their rates while both are in flight (the simulation changes
    the rate at its DMA segments, this form at the exact instant). Pageable copies are taken as
    independent (their staging, not the link, sets their pace)."""
    if not pinned:
        return max(copy_seconds(params, nbytes, "h2d", False),
                   params.issue_gap + copy_seconds(params, nbytes, "d2h", False))
    starts = (params.latency["h2d"], params.issue_gap + params.latency["d2h"])
    solo = (params.bandwidth["h2d"], params.bandwidth["d2h"])
    return max(_two_flows(starts, nbytes, solo, params.duplex_fraction))
