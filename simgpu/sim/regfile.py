"""Register-file read timing of one SM sub-core, after Huerta et al., "Analyzing Modern NVIDIA
GPU cores" (2025): the sub-core's register file has ``banks_per_sub_core`` banks (register
``r`` lives in bank ``r % banks``), each with ``read_ports_per_bank`` read ports, so an
instruction whose source operands need more reads from one bank than it has ports spends extra
cycles collecting them. A small register-file cache (RFC), one entry per (bank, operand slot),
holds the value last read through that slot; a later instruction of the same warp that reads the
same register in the same slot hits in it and needs no bank read. (In hardware the compiler sets
"reuse" bits to fill the RFC; traces carry no reuse bits, so every read is offered to the cache,
which is the compiler's best case.)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["RegisterFile", "OPERAND_SLOTS"]

#: Source operand slots of a SASS instruction (FFMA a, b, c): Huerta et al. 2025.
OPERAND_SLOTS = 3


class RegisterFile:
    """Bank/port/RFC model of one sub-core's register file."""

    __slots__ = ("banks", "ports", "cache_slots", "_cache", "conflict_cycles", "rfc_hits", "reads")

    def __init__(self, banks: int, ports: int, cache_entries: int | None) -> None:
        if banks < 1 or ports < 1:
            raise ValueError(f"banks {banks} and ports {ports} must be >= 1")
        self.banks = banks
        self.ports = ports
        # Operand slots that have an RFC entry in every bank.
        self.cache_slots = 0 if not cache_entries else min(OPERAND_SLOTS, cache_entries // banks)
        self._cache: dict[tuple[int, int], tuple[int, int]] = {}
        self.conflict_cycles = 0
        self.rfc_hits = 0
        self.reads = 0

    def invalidate(self, warp: int, regs: Sequence[int]) -> None:
        """Drop RFC entries holding ``regs`` of ``warp`` (they were just written)."""
        cache = self._cache
        if not cache:
            return
        stale = [key for key, (w, r) in cache.items() if w == warp and r in regs]
        for key in stale:
            del cache[key]

    def read_cycles(self, warp: int, srcs: Sequence[int]) -> int:
        """Cycles to read the source registers ``srcs`` of one instruction of ``warp`` (>= 1)."""
        if not srcs:
            return 1
        banks = self.banks
        cache = self._cache
        cs = self.cache_slots
        # Distinct registers each bank must read (lists: at most three operands).
        need: list[list[int]] = [[] for _ in range(banks)]
        slot = 0
        for r in srcs:
            b = r % banks
            if slot < cs:
                key = (b, slot)
                hit = cache.get(key)
                if hit is not None and hit[0] == warp and hit[1] == r:
                    self.rfc_hits += 1
                    slot += 1
                    continue
                cache[key] = (warp, r)
            slot += 1
            nb = need[b]
            if r not in nb:
                nb.append(r)
        worst = 0
        total = 0
        for nb in need:
            n = len(nb)
            total += n
            if n > worst:
                worst = n
        if worst == 0:
            return 1
        self.reads += total
        cycles = -(-worst // self.ports)
        if cycles > 1:
            self.conflict_cycles += cycles - 1
        return max(cycles, 1)
