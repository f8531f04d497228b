"""Kernel traces: the in-memory form (:mod:`.schema`), simgpu's Parquet files (:mod:`.parquet`)
and the Accel-Sim/NVBit importer (:mod:`.accelsim`). Format documentation: ``traces/README.md``.
"""

from __future__ import annotations

from pathlib import Path

from simgpu.errors import DatasetError
from simgpu.trace.accelsim import load_accelsim
from simgpu.trace.parquet import read_parquet
from simgpu.trace.schema import (
    MEMORY_CLASSES,
    OP_CLASSES,
    SPACES,
    GeneratedTrace,
    Instruction,
    KernelLaunch,
    KernelTrace,
    ListTrace,
    check_launch,
    classify_opcode,
)

__all__ = [
    "MEMORY_CLASSES",
    "OP_CLASSES",
    "SPACES",
    "GeneratedTrace",
    "Instruction",
    "KernelLaunch",
    "KernelTrace",
    "ListTrace",
    "check_launch",
    "classify_opcode",
    "load_traces",
]


def load_traces(path: str | Path) -> list[KernelTrace]:
    """The kernels in ``path``: a simgpu ``.parquet`` file, a folder of them, an Accel-Sim
    folder (with ``kernelslist.g``), a ``kernelslist.g`` or a ``.traceg`` file.

    Every reader checks what it reads (:meth:`Instruction.check`, :func:`check_launch`, bounded
    reads of regular files); any problem is a :class:`~simgpu.errors.DatasetError` naming the
    file and the record or line."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such trace file or folder")
    if p.is_dir():
        if (p / "kernelslist.g").exists():
            return [k.trace for k in load_accelsim(p)]
        files = sorted(p.glob("*.parquet"))
        if not files:
            raise DatasetError(f"{p}: folder holds neither kernelslist.g nor *.parquet traces")
        return [read_parquet(f) for f in files]
    if p.suffix == ".parquet":
        return [read_parquet(p)]
    if p.suffix == ".traceg" or p.name == "kernelslist.g":
        return [k.trace for k in load_accelsim(p)]
    raise DatasetError(f"{p}: unknown trace type; expected .parquet, .traceg or kernelslist.g")
