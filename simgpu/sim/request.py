"""The memory request that travels from an SM's LD/ST unit down the memory hierarchy.

A request is one coalesced access of a warp to one 128-byte line: ``sectors`` is a bit mask of
the 32-byte sectors it touches. It is a plain object (no SimPy process of its own); components
stamp it as it goes: ``t_done`` when its data is back (or a write is accepted) and ``served_by``
with the level that answered.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MemRequest", "SPACES", "CACHE_OPS", "LEVELS", "sector_count", "FULL_LINE"]

#: Address spaces a request may target.
SPACES = ("global", "local", "shared")
#: Cache operators: "ca" caches in L1 and L2, "cg" caches in L2 only (PTX ld.ca / ld.cg).
CACHE_OPS = ("ca", "cg")
#: Values of :attr:`MemRequest.served_by`.
LEVELS = ("L1", "L2near", "L2far", "DRAM", "shared")
#: Sector mask of a whole 128-byte line of four 32-byte sectors.
FULL_LINE = 0b1111


def sector_count(mask: int) -> int:
    """Number of sectors set in a sector mask."""
    return mask.bit_count()


@dataclass(slots=True)
class MemRequest:
    """One warp-level access to one cache line.

    ``line_addr`` is the byte address of the line (a multiple of the line size, 128 B);
    ``sectors`` is the mask of 32-byte sectors touched (bit i = bytes 32i..32i+31).
    ``lane_addrs`` optionally lists the byte addresses of the active threads of a shared-memory
    access, so that bank conflicts can be counted; without it a shared access is conflict-free.
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

    @property
    def nbytes(self) -> int:
        """Bytes moved: 32 per sector."""
        return 32 * self.sectors.bit_count()

    @property
    def latency(self) -> float:
        """Cycles from issue to completion (raises if not complete)."""
        if self.t_done is None:
            raise ValueError("request has not completed")
        return self.t_done - self.t_issue
