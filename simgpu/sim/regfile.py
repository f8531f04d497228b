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

__all__ = ["rfc_slots", "OPERAND_SLOTS"]

#: Source operand slots of a SASS instruction (FFMA a, b, c): Huerta et al. 2025.
OPERAND_SLOTS = 3


def rfc_slots(banks: int, ports: int, cache_entries: int | None) -> int:
    """Operand slots that have an RFC entry in every bank (0: no RFC); the cache has ``banks``
    times as many entries, entry (bank ``b``, slot ``s``) at ``b * slots + s``. The read timing
    itself is :func:`simgpu.sim.issue_core.rf_access`, compiled with the issue logic."""
    if banks < 1 or ports < 1:
        raise ValueError(f"banks {banks} and ports {ports} must be >= 1")
    return 0 if not cache_entries else min(OPERAND_SLOTS, cache_entries // banks)
