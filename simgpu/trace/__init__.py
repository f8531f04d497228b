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
    "classify_opcode",
    "load_traces",
]


def load_traces(path: str | Path) -> list[KernelTrace]:
    """The kernels in ``path``: a simgpu ``.parquet`` file, a folder of them, an Accel-Sim
    folder (with ``kernelslist.g``), a ``kernelslist.g`` or a ``.traceg`` file."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such trace file or folder")
    if p.is_dir():
        if (p / "kernelslist.g").is_file():
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
