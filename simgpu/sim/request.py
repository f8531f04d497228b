"""The memory request that travels from an SM's LD/ST unit down the memory hierarchy.

A request is one coalesced access of a warp to one cache line: ``sectors`` is a bit mask of the
sectors it touches. Line and sector sizes are the device's (``l1.line_bytes``,
``l1.sector_bytes``; the L2 may use another sector size, see :func:`convert_sectors`). It is a
plain object (no SimPy process of its own); components stamp it as it goes: ``t_done`` when its
data is back (or a write is accepted) and ``served_by`` with the level that answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from numba import njit

__all__ = [
    "MemRequest",
    "SPACES",
    "CACHE_OPS",
    "LEVELS",
    "sector_count",
    "full_mask",
    "convert_sectors",
    "FULL_LINE",
]

#: Address spaces a request may target.
SPACES = ("global", "local", "shared")
#: Cache operators: "ca" caches in L1 and L2, "cg" caches in L2 only (PTX ld.ca / ld.cg).
CACHE_OPS = ("ca", "cg")
#: Values of :attr:`MemRequest.served_by`.
LEVELS = ("L1", "L2near", "L2far", "DRAM", "shared")
#: Default sector mask of a :class:`MemRequest`: four sectors, a whole line of the devices in
#: ``models/`` (128-byte lines of 32-byte sectors). A memory system gives the whole-line mask
#: of its own device as ``MemorySystem.full_line`` (:func:`full_mask`), and rejects a mask
#: with sectors beyond its line.
FULL_LINE = 0b1111


def sector_count(mask: int) -> int:
    """Number of sectors set in a sector mask."""
    return mask.bit_count()


def full_mask(line_bytes: int, sector_bytes: int) -> int:
    """The sector mask of a whole line."""
    return (1 << (line_bytes // sector_bytes)) - 1


@njit(cache=True)
def convert_sectors(mask: int, from_bytes: int, to_bytes: int) -> int:
    """A sector mask in sectors of ``from_bytes`` re-expressed in sectors of ``to_bytes``.

    Both sizes are powers of two. To larger sectors, a sector is set when any byte of it was
    (an L2 with 64-byte sectors fetches the whole 64 bytes for a 32-byte request); to smaller
    ones, every sector of a set sector is set. (Compiled: the load path calls it.)
    """
    if from_bytes == to_bytes:
        return mask
    out = 0
    if to_bytes > from_bytes:
        k = to_bytes // from_bytes
        group = (1 << k) - 1
        j = 0
        while mask:
            if mask & group:
                out |= 1 << j
            mask >>= k
            j += 1
        return out
    k = from_bytes // to_bytes
    ones = (1 << k) - 1
    i = 0
    while mask:
        if mask & 1:
            out |= ones << i
        mask >>= 1
        i += k
    return out


@dataclass(slots=True)
class MemRequest:
    """One warp-level access to one cache line.

    ``line_addr`` is the byte address of the line (a multiple of the device's line size);
    ``sectors`` is the mask of sectors touched (bit i = bytes ``i x s`` to ``(i + 1) x s - 1``
    of the line, ``s`` the device's ``l1.sector_bytes``: the SM's coalescer and the traffic
    sources build masks in that unit, and :class:`~simgpu.sim.system.MemorySystem` reads them
    so). ``lane_addrs`` optionally lists the byte addresses of the active threads of a
    shared-memory access, so that bank conflicts can be counted; without it a shared access is
    conflict-free. ``bulk`` marks a TMA copy's read (it occupies an L2 slice for its sectors
    only).
    """

    sm: int
    line_addr: int
    sectors: int = FULL_LINE
    write: bool = False
    space: str = "global"
    cache_op: str = "ca"
    t_issue: float = 0.0
    t_done: float | None = None
    served_by: str | None = None
    lane_addrs: tuple[int, ...] | None = None
    #: A TMA bulk copy's read (``UTMALDG``): it takes only its sectors' bytes of an L2 slice's
    #: bandwidth, not a line-sized request slot (see ``simgpu.sim.sm.SM.global_access``)
    bulk: bool = False

    def nbytes(self, sector_bytes: int) -> int:
        """Bytes moved: ``sector_bytes`` (the mask's sector size) per sector."""
        return sector_bytes * self.sectors.bit_count()

    @property
    def latency(self) -> float:
        """Cycles from issue to completion (raises if not complete)."""
        if self.t_done is None:
            raise ValueError("request has not completed")
        return self.t_done - self.t_issue
