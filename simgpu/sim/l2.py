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

from simgpu.errors import SimgpuError
from simgpu.sim.cache import SectorCache

if TYPE_CHECKING:
    from simgpu.devices.spec import L2Spec

__all__ = ["L2"]


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
        # g % slices, so a line's slice and set come from one hash
        self.sets_per_slice = spec.sets_per_slice
        self.parts: list[SectorCache] = [
            SectorCache(
                name=f"L2-p{p}",
                size_bytes=spec.slice_bytes * self.slices_per_partition,
                ways=spec.ways,
                line_bytes=spec.line_bytes,
                sector_bytes=spec.sector_bytes,
                policy=policy,
                hashed=True,
                rng=rng,
            )
            for p in range(self.partitions)
        ]
        self._far_parts = [
            [(p + k) % self.partitions for k in range(1, self.partitions)]
            for p in range(self.partitions)
        ]
        self.writebacks: list[tuple[int, int]] = []  # (line, dirty mask) leaving the L2
        self.demotions = 0
        self.invalidations = 0

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

        ``set_idx`` may pass the line's set (the same in every partition) when known.
        """
        tags = self.parts[partition]
        if set_idx < 0:
            set_idx = tags.set_index(line_addr)
        self._cascade(partition, tags.fill(line_addr, sectors, dirty, set_idx), set_idx)

    def _cascade(
        self, partition: int, victim: tuple[int, int, int] | None, set_idx: int = -1
    ) -> None:
        """Move a line evicted from ``partition`` on to the next partition, or write it back.

        A victim comes from the same set, so ``set_idx`` (when given) is its set everywhere.
        """
        p = partition
        hops = 1
        while victim is not None:
            v_line, v_valid, v_dirty = victim
            if hops >= self.partitions:
                if v_dirty:
                    self.writebacks.append((v_line, v_dirty))
                return
            p = (p + 1) % self.partitions
            hops += 1
            tags = self.parts[p]
            if set_idx < 0:
                set_idx = tags.set_index(v_line)
            if tags.probe(v_line, set_idx):
                if v_dirty:  # merge the dirty sectors into the copy that stays
                    tags.fill(v_line, v_valid, v_dirty, set_idx)
                    tags.fills -= 1
                return
            self.demotions += 1
            victim = tags.fill(v_line, v_valid, v_dirty, set_idx)
            tags.fills -= 1  # a demotion is not a fill from memory

    def write(self, partition: int, line_addr: int, sectors: int, set_idx: int = -1) -> bool:
        """A store of ``sectors`` into ``partition`` (write-back, write-allocate per sector).

        ``set_idx`` may pass the line's set (the same in every partition) when known.
        """
        if set_idx < 0:
            set_idx = self.parts[partition].set_index(line_addr)
        merged_valid = 0
        merged_dirty = 0
        for p in self._far_parts[partition]:
            old = self.parts[p].remove(line_addr, set_idx)
            if old is not None:
                self.invalidations += 1
                merged_valid |= old[0]
                merged_dirty |= old[1]
        tags = self.parts[partition]
        hit, victim = tags.write(line_addr, sectors, allocate=True, set_idx=set_idx)
        self._cascade(partition, victim, set_idx)
        if merged_valid:
            tags.fill(line_addr, merged_valid, merged_dirty, set_idx)
            tags.fills -= 1
        return hit

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
