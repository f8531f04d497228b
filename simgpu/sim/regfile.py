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

    __slots__ = (
        "banks",
        "ports",
        "cache_slots",
        "_cw",
        "_cr",
        "conflict_cycles",
        "rfc_hits",
        "reads",
    )

    def __init__(self, banks: int, ports: int, cache_entries: int | None) -> None:
        if banks < 1 or ports < 1:
            raise ValueError(f"banks {banks} and ports {ports} must be >= 1")
        self.banks = banks
        self.ports = ports
        # Operand slots that have an RFC entry in every bank.
        self.cache_slots = 0 if not cache_entries else min(OPERAND_SLOTS, cache_entries // banks)
        # RFC entry (bank b, slot s) sits at index b * cache_slots + s: the warp and register
        # it holds (warp -1: empty).
        n = banks * self.cache_slots
        self._cw: list[int] = [-1] * n
        self._cr: list[int] = [-1] * n
        self.conflict_cycles = 0
        self.rfc_hits = 0
        self.reads = 0

    def invalidate(self, warp: int, regs: Sequence[int]) -> None:
        """Drop RFC entries holding ``regs`` of ``warp`` (they were just written)."""
        cs = self.cache_slots
        if not cs:
            return
        cw = self._cw
        cr = self._cr
        banks = self.banks
        for r in regs:
            k0 = (r % banks) * cs
            for k in range(k0, k0 + cs):
                if cw[k] == warp and cr[k] == r:
                    cw[k] = -1

    def read_cycles(self, warp: int, srcs: Sequence[int]) -> int:
        """Cycles to read the source registers ``srcs`` of one instruction of ``warp`` (>= 1)."""
        if not srcs:
            return 1
        banks = self.banks
        cs = self.cache_slots
        cw = self._cw
        cr = self._cr
        # Distinct registers that need a bank read (at most three operands).
        need: list[int] = []
        slot = 0
        for r in srcs:
            if slot < cs:
                k = (r % banks) * cs + slot
                slot += 1
                if cw[k] == warp and cr[k] == r:
                    self.rfc_hits += 1
                    continue
                cw[k] = warp
                cr[k] = r
            else:
                slot += 1
            if r not in need:
                need.append(r)
        n = len(need)
        if n == 0:
            return 1
        self.reads += n
        if n == 1:
            return 1
        # The bank that must deliver the most registers sets the cycles.
        per_bank = [0] * banks
        for r in need:
            per_bank[r % banks] += 1
        worst = max(per_bank)
        cycles = -(-worst // self.ports)
        if cycles > 1:
            self.conflict_cycles += cycles - 1
            return cycles
        return 1

    def access(self, warp: int, srcs: Sequence[int], dsts: Sequence[int]) -> int:
        """:meth:`read_cycles` for ``srcs``, then :meth:`invalidate` for ``dsts`` (one issue)."""
        rc = self.read_cycles(warp, srcs) if srcs else 1
        if dsts and self.cache_slots:
            self.invalidate(warp, dsts)
        return rc
