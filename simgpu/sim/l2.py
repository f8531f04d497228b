"""The L2: slices behind the crossbar, addresses hashed over slices, near and far partitions.

Every partition is a set of slices, each a :class:`~simgpu.sim.cache.SectorCache`; a line maps
to one slice of each partition and one set of that slice by a bijective hash of its line index
(:func:`~simgpu.sim.cache.mix64`), as GPUs hash addresses over L2 slices.

Near and far (A100/H100-class parts, ``partitions = 2``). The A100 whitepaper says each L2
partition "localizes and caches data for memory accesses from SMs in the GPCs directly connected
to the partition". The model: an SM looks a line up in its own (near) partition first; on a miss
it looks in the other partition(s) (a far hit, which costs ``far_hit_latency_cycles``); the line
is then copied into the near partition. A line evicted from a partition moves to the next
partition when that one does not hold it (and is dropped, with a write-back of dirty sectors,
when it leaves the last one). For one SM chasing pointers this makes the near partition the most
recent half of an LRU stack and the far partition the older half, which is what the published
curves show (published/latency_curves.csv, H100 PCIe and A100: the near plateau ends at half the
L2, the far plateau at the full L2). With ``partitions = 1`` it is a plain sliced L2.

A store makes the storing SM's partition the only holder of the line (copies elsewhere are
invalidated, their dirty sectors merged), so there is one owner of dirty data.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

from simgpu.errors import SimgpuError
from simgpu.sim import cache_core as cc
from simgpu.sim.cache import SectorCache, new_tag_state

if TYPE_CHECKING:
    from simgpu.devices.spec import L2Spec

__all__ = ["L2", "WB_ROOM"]

#: write-backs one compiled call may leave in :attr:`L2.wb` (one per request it serves)
WB_ROOM = 4096


class L2:
    """Tags of all L2 slices, grouped by partition."""

    def __init__(
        self, spec: L2Spec, *, policy: str = "lru", rng: random.Random | None = None
    ) -> None:
        if spec.slices % spec.partitions:
            raise SimgpuError(
                f"l2.slices = {spec.slices}, expected a multiple of partitions ({spec.partitions})"
            )
        self.spec = spec
        self.partitions = spec.partitions
        self.slices_per_partition = spec.slices // spec.partitions
        self.line_bytes = spec.line_bytes
        self._shift = spec.line_bytes.bit_length() - 1
        rng = rng or random.Random(0)
        # one tag array per partition: set g of the array is set g // slices of slice
        # g % slices, so a line's slice and set come from one hash. The partitions' arrays are
        # stacked (tag[partition, set, way]) so that compiled code serves all of them.
        self.sets_per_slice = spec.sets_per_slice
        part_bytes = spec.slice_bytes * self.slices_per_partition
        self.T, self.st = new_tag_state(part_bytes // (spec.ways * spec.line_bytes), spec.ways,
                                        copies=self.partitions)
        self.parts: list[SectorCache] = [
            SectorCache(
                name=f"L2-p{p}",
                size_bytes=part_bytes,
                ways=spec.ways,
                line_bytes=spec.line_bytes,
                sector_bytes=spec.sector_bytes,
                policy=policy,
                hashed=True,
                rng=rng,
                state=(self.T[p], self.st[p]),
            )
            for p in range(self.partitions)
        ]
        self._far_parts = [
            [(p + k) % self.partitions for k in range(1, self.partitions)]
            for p in range(self.partitions)
        ]
        self.writebacks: list[tuple[int, int]] = []  # (line, dirty mask) leaving the L2
        #: where the compiled calls put the lines they write back (line, dirty), drained into
        #: :attr:`writebacks`; one request writes back at most one line
        self.wb = np.zeros((WB_ROOM, 2), np.int64)

    @property
    def demotions(self) -> int:
        """Lines moved on from one partition to the next (victims kept in the L2)."""
        return int(self.st[:, cc.ST_DEMOTIONS].sum())

    @demotions.setter
    def demotions(self, value: int) -> None:
        self.st[:, cc.ST_DEMOTIONS] = 0
        self.st[0, cc.ST_DEMOTIONS] = value

    @property
    def invalidations(self) -> int:
        """Copies dropped because a store made another partition the line's owner."""
        return int(self.st[:, cc.ST_INVALIDATIONS].sum())

    @invalidations.setter
    def invalidations(self, value: int) -> None:
        self.st[:, cc.ST_INVALIDATIONS] = 0
        self.st[0, cc.ST_INVALIDATIONS] = value

    def drain(self, n_wb: int) -> None:
        """Move the first ``n_wb`` write-backs of :attr:`wb` to :attr:`writebacks`."""
        wb = self.wb
        self.writebacks.extend((int(wb[i, 0]), int(wb[i, 1])) for i in range(n_wb))

    def slice_of(self, line_addr: int) -> int:
        """Slice index (within a partition) of a line."""
        return self.parts[0].set_index(line_addr) % self.slices_per_partition

    def tags(self, partition: int, line_addr: int = 0) -> SectorCache:
        """The tag array of ``partition`` (all its slices)."""
        return self.parts[partition]

    def others(self, partition: int) -> list[int]:
        """The far partitions of ``partition``, nearest first."""
        return self._far_parts[partition]

    def fill(
        self, partition: int, line_addr: int, sectors: int, dirty: int = 0, set_idx: int = -1
    ) -> None:
        """Insert into ``partition``; cascade the victim to the next partitions, then memory.

        A line evicted from a partition moves on to the next partition when that one does not
        hold it (a demotion; if it does, the victim's dirty sectors merge into that copy), and
        leaves the L2 from the last one, dirty sectors written back (:attr:`writebacks`).
        ``set_idx`` may pass the line's set (the same in every partition) when known.
        """
        if set_idx < 0:
            set_idx = self.parts[partition].set_index(line_addr)
        n_wb = cc.l2_fill(self.T, self.st, partition, set_idx, line_addr, sectors, dirty, self.wb,
                          0)
        if n_wb:
            self.drain(n_wb)

    def write(self, partition: int, line_addr: int, sectors: int, set_idx: int = -1) -> bool:
        """A store of ``sectors`` into ``partition`` (write-back, write-allocate per sector).

        Copies in other partitions are dropped, their sectors merged into this one.
        ``set_idx`` may pass the line's set (the same in every partition) when known.
        """
        if set_idx < 0:
            set_idx = self.parts[partition].set_index(line_addr)
        hit, n_wb = cc.l2_write(self.T, self.st, partition, set_idx, line_addr, sectors, self.wb,
                                0)
        if n_wb:
            self.drain(n_wb)
        return bool(hit)

    def occupancy(self) -> float:
        """The fraction of the L2's line slots that hold a line (every partition together)."""
        slots = sum(t.n_sets * t.ways for t in self.parts)
        return sum(len(t) for t in self.parts) / slots if slots else 1.0

    def take_writebacks(self) -> list[tuple[int, int]]:
        """Lines written back since the last call (the caller sends them to DRAM)."""
        out, self.writebacks = self.writebacks, []
        return out

    def counters(self) -> list[dict[str, int]]:
        """Summed tag counters per partition."""
        rows = []
        for p, tags in enumerate(self.parts):
            total: dict[str, int] = dict(tags.counters())
            total["partition"] = p
            rows.append(total)
        return rows
