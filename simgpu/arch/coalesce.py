"""The LD/ST unit's address processing: global coalescing and shared-memory bank conflicts.

Global and local accesses of a warp are merged into one request per line touched, carrying the
bit mask of the sectors it needs (CUDA C++ Best Practices Guide, "Coalesced Access to Global
Memory": a warp's accesses are served by as many 32-byte sectors as they touch). Line and sector
sizes are arguments: the simulator passes the device's ``l1.line_bytes`` and ``l1.sector_bytes``;
the defaults are the 128-byte lines of 32-byte sectors of every GPU in ``models/``.
Shared-memory accesses take one cycle per "wavefront": the largest number of distinct 4-byte
words any one bank must deliver, since lanes reading the same word share it (CUDA C++ Programming
Guide, "Shared Memory" bank rules for compute capability 5.x and later), and never fewer than
the bytes moved over the banks' combined width.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

__all__ = ["coalesce", "coalesce_affine", "shared_wavefronts", "shared_wavefronts_affine"]


def coalesce(
    addrs: Sequence[int], width: int, line_bytes: int = 128, sector_bytes: int = 32
) -> list[tuple[int, int]]:
    """(line address, sector mask) per line touched by lanes reading ``width`` bytes each at
    ``addrs``, in order of first touch."""
    out: dict[int, int] = {}
    lmask = ~(line_bytes - 1)
    n = len(addrs)
    if n > 1 and width <= sector_bytes and sector_bytes % width == 0:
        # Fast path: split the lanes into runs of consecutive, aligned accesses (a row of a
        # tile; lanes reading the same address as the lane before them, a broadcast, extend
        # the run too) and mark each run's sectors at once; same result as the lane-by-lane
        # loop.
        i = 0
        while i < n:
            lo = addrs[i]
            if lo % width:
                break
            j = i + 1
            while j < n and (addrs[j] == addrs[j - 1] + width or addrs[j] == addrs[j - 1]):
                j += 1
            hi = addrs[j - 1] + width - 1
            line = lo & lmask
            while line <= hi:
                s0 = (max(lo, line) - line) // sector_bytes
                s1 = (min(hi, line + line_bytes - 1) - line) // sector_bytes
                out[line] = out.get(line, 0) | (((1 << (s1 + 1)) - 1) ^ ((1 << s0) - 1))
                line += line_bytes
            i = j
        else:
            return list(out.items())
        out.clear()
    for a in addrs:
        end = a + width - 1
        line = a & lmask
        if end & lmask == line:
            s0 = (a - line) // sector_bytes
            s1 = (end - line) // sector_bytes
            bits = ((1 << (s1 + 1)) - 1) ^ ((1 << s0) - 1)
            out[line] = out.get(line, 0) | bits
        else:
            x = a
            while x <= end:
                line = x & lmask
                hi = min(end, line + line_bytes - 1)
                s0 = (x - line) // sector_bytes
                s1 = (hi - line) // sector_bytes
                bits = ((1 << (s1 + 1)) - 1) ^ ((1 << s0) - 1)
                out[line] = out.get(line, 0) | bits
                x = line + line_bytes
    return list(out.items())


def coalesce_affine(
    base: int, stride: int, lanes: int, width: int, line_bytes: int = 128, sector_bytes: int = 32
) -> list[tuple[int, int]]:
    """:func:`coalesce` for lanes at ``base + k * stride``, with a fast path for contiguous
    and broadcast patterns."""
    if lanes <= 0:
        return []
    if stride == 0:
        return coalesce((base,), width, line_bytes, sector_bytes)
    if stride == width and width <= sector_bytes and sector_bytes % width == 0:
        start, end = base, base + lanes * width - 1
        if base % width == 0:
            out = []
            lmask = ~(line_bytes - 1)
            line = start & lmask
            while line <= end:
                lo = max(start, line)
                hi = min(end, line + line_bytes - 1)
                s0 = (lo - line) // sector_bytes
                s1 = (hi - line) // sector_bytes
                out.append((line, ((1 << (s1 + 1)) - 1) ^ ((1 << s0) - 1)))
                line += line_bytes
            return out
    if abs(stride) >= line_bytes:
        # every lane in a line of its own (a column of a row-major array): one request per
        # lane, in lane order, unless a lane's bytes cross a line boundary. The lines and masks
        # relative to the first lane's line depend on its offset within the line only.
        offset = base % line_bytes
        pattern = _column_pattern(offset, stride, lanes, width, line_bytes, sector_bytes)
        if pattern is not None:
            first = base - offset
            return [(first + d, m) for d, m in pattern]
    return coalesce([base + k * stride for k in range(lanes)], width, line_bytes, sector_bytes)


@lru_cache(maxsize=4096)
def _column_pattern(
    offset: int, stride: int, lanes: int, width: int, line_bytes: int, sector_bytes: int
) -> tuple[tuple[int, int], ...] | None:
    """(line address, sector mask) of each lane of a column access (``stride`` of a line or
    more) whose first lane starts ``offset`` bytes into line 0; None where a lane's bytes cross
    a line boundary."""
    out = []
    lmask = ~(line_bytes - 1)
    a = offset
    for _ in range(lanes):
        line = a & lmask
        end = a + width - 1
        if end & lmask != line:
            return None
        s0 = (a - line) // sector_bytes
        s1 = (end - line) // sector_bytes
        out.append((line, ((1 << (s1 + 1)) - 1) ^ ((1 << s0) - 1)))
        a += stride
    return tuple(out)


def shared_wavefronts(
    addrs: Sequence[int], width: int, banks: int = 32, bank_bytes: int = 4
) -> int:
    """Cycles the shared-memory banks need to serve one warp access (>= 1)."""
    if not addrs:
        return 1
    words_per_lane = max(1, -(-width // bank_bytes))
    per_bank: dict[int, set[int]] = {}
    for a in addrs:
        w0 = a // bank_bytes
        for k in range(words_per_lane):
            w = w0 + k
            per_bank.setdefault(w % banks, set()).add(w)
    worst = max(len(s) for s in per_bank.values())
    distinct = sum(len(s) for s in per_bank.values())
    return max(worst, -(-distinct // banks), 1)


def shared_wavefronts_affine(
    base: int, stride: int, lanes: int, width: int, banks: int = 32, bank_bytes: int = 4
) -> int:
    """:func:`shared_wavefronts` for lanes at ``base + k * stride``."""
    if lanes <= 0:
        return 1
    if stride == 0:
        return max(1, -(-width // bank_bytes) // banks or 1)
    return shared_wavefronts([base + k * stride for k in range(lanes)], width, banks, bank_bytes)
