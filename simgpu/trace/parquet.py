"""simgpu's own trace files: one kernel per Parquet file, one row per warp instruction.

Columns (see ``traces/README.md``): ``block`` (linear block index), ``warp`` (warp in block),
``pc``, ``opcode``, ``op`` (class), ``dst``/``src`` (register lists), ``mask``, ``space``,
``width``, ``base``, ``stride`` and ``addrs`` (null unless the lane addresses are not
``base + rank * stride``). Rows are ordered by block, then warp, then program order. The launch
is JSON in the file's key-value metadata under ``simgpu.kernel``. Files are written in row groups
of whole blocks and read back a row group at a time, so traces larger than memory stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simgpu.errors import DatasetError
from simgpu.io import atomic_output
from simgpu.trace.schema import (
    OP_CLASSES,
    SPACES,
    BlockWarps,
    Instruction,
    KernelLaunch,
    KernelTrace,
    popcount,
)

__all__ = ["write_parquet", "read_parquet", "ParquetTrace", "FORMAT_VERSION", "COLUMNS"]

FORMAT_VERSION = 1
META_KEY = b"simgpu.kernel"
VERSION_KEY = b"simgpu.trace_version"
COLUMNS = (
    "block",
    "warp",
    "pc",
    "opcode",
    "op",
    "dst",
    "src",
    "mask",
    "space",
    "width",
    "base",
    "stride",
    "addrs",
)


# pyarrow is imported by the functions that use it: it costs about 0.25 s, and the simulator and
# every workload import simgpu.trace (for its schema) without reading or writing Parquet.


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("block", pa.int64()),
            ("warp", pa.int32()),
            ("pc", pa.int64()),
            ("opcode", pa.dictionary(pa.int32(), pa.string())),
            ("op", pa.dictionary(pa.int8(), pa.string())),
            ("dst", pa.list_(pa.int16())),
            ("src", pa.list_(pa.int16())),
            ("mask", pa.uint32()),
            ("space", pa.dictionary(pa.int8(), pa.string())),
            ("width", pa.int16()),
            ("base", pa.uint64()),
            ("stride", pa.int64()),
            ("addrs", pa.list_(pa.uint64())),
        ]
    )


def _compress(inst: Instruction) -> tuple[int, int, list[int] | None]:
    """(base, stride, explicit list or None) for the active lanes' addresses."""
    if not inst.is_memory:
        return 0, 0, None
    if inst.addrs is None:
        return inst.base, inst.stride, None
    a = inst.addrs
    if not a:
        return 0, 0, None
    stride = a[1] - a[0] if len(a) > 1 else 0
    if all(a[i] == a[0] + i * stride for i in range(len(a))):
        return a[0], stride, None
    return a[0], 0, list(a)


def write_parquet(
    trace: KernelTrace,
    path: str | Path,
    *,
    blocks: list[int] | None = None,
    rows_per_group: int = 65536,
) -> Path:
    """Write ``trace`` (or only ``blocks`` of it) to ``path`` atomically; returns the path.

    Never overwrites: raises :class:`DatasetError` if ``path`` exists.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.exists():
        raise DatasetError(f"{path}: exists; trace files are never overwritten")
    schema = _schema().with_metadata(
        {
            META_KEY: json.dumps(trace.launch.to_dict()).encode(),
            VERSION_KEY: str(FORMAT_VERSION).encode(),
        }
    )
    indices = range(trace.num_blocks) if blocks is None else blocks
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}

    def flush(writer: Any) -> None:
        if not cols["block"]:
            return
        table = pa.Table.from_pydict(cols, schema=schema)
        writer.write_table(table, row_group_size=max(len(cols["block"]), 1))
        for v in cols.values():
            v.clear()

    with atomic_output(path) as tmp, pq.ParquetWriter(str(tmp), schema) as writer:
        for b in indices:
            for w, insts in enumerate(trace.block(b)):
                for inst in insts:
                    base, stride, addrs = _compress(inst)
                    cols["block"].append(b)
                    cols["warp"].append(w)
                    cols["pc"].append(inst.pc)
                    cols["opcode"].append(inst.opcode)
                    cols["op"].append(inst.op)
                    cols["dst"].append(list(inst.dst))
                    cols["src"].append(list(inst.src))
                    cols["mask"].append(inst.mask)
                    cols["space"].append(inst.space)
                    cols["width"].append(inst.width)
                    cols["base"].append(base)
                    cols["stride"].append(stride)
                    cols["addrs"].append(addrs)
            if len(cols["block"]) >= rows_per_group:
                flush(writer)
        flush(writer)
    return path


class ParquetTrace(KernelTrace):
    """A trace file opened for reading. Blocks are read a row group at a time.

    :meth:`blocks` streams the whole file in order (memory: one row group). :meth:`block`
    gives random access through an index of which row groups hold which blocks.
    """

    def __init__(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: no such trace file")
        try:
            self._file = pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises several types for a corrupt footer
            raise DatasetError(f"{self.path}: not a readable Parquet trace ({exc})") from exc
        meta = self._file.schema_arrow.metadata or {}
        if META_KEY not in meta:
            raise DatasetError(f"{self.path}: no '{META_KEY.decode()}' launch record in metadata")
        version = int(meta.get(VERSION_KEY, b"0"))
        if version != FORMAT_VERSION:
            raise DatasetError(
                f"{self.path}: trace format version {version}, expected {FORMAT_VERSION}"
            )
        try:
            launch_data = json.loads(meta[META_KEY])
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{self.path}: launch record is not JSON ({exc})") from exc
        self.launch = KernelLaunch.from_dict(launch_data, where=str(self.path))
        names = set(self._file.schema_arrow.names)
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise DatasetError(f"{self.path}: missing columns {missing}; expected {list(COLUMNS)}")
        self._group_blocks: list[tuple[int, int]] | None = None
        self._cache: dict[int, BlockWarps] = {}
        self._cache_group = -1

    # -- streaming -------------------------------------------------------------------------
    def _row_group_offsets(self) -> list[int]:
        md = self._file.metadata
        offsets, total = [], 0
        for g in range(md.num_row_groups):
            offsets.append(total)
            total += md.row_group(g).num_rows
        return offsets

    def _decode_group(self, g: int, first_record: int) -> dict[int, BlockWarps]:
        try:
            table = self._file.read_row_group(g)
        except Exception as exc:
            raise DatasetError(
                f"{self.path}: row group {g} (records from {first_record}) unreadable: {exc}"
            ) from exc
        cols = {c: table.column(c).to_pylist() for c in COLUMNS}
        out: dict[int, BlockWarps] = {}
        nblocks = self.launch.num_blocks
        wpb = self.launch.warps_per_block()
        prev_key = (-1, -1)
        for i in range(table.num_rows):
            rec = first_record + i
            where = f"{self.path}: record {rec}"
            b, w = cols["block"][i], cols["warp"][i]
            if b is None or w is None or not 0 <= b < nblocks or not 0 <= w < wpb:
                raise DatasetError(
                    f"{where}: block {b} / warp {w} outside grid of {nblocks} blocks x {wpb} warps"
                )
            if (b, w) < prev_key:
                raise DatasetError(f"{where}: rows not ordered by block, warp (got {b}, {w})")
            prev_key = (b, w)
            op, space = cols["op"][i], cols["space"][i]
            if op not in OP_CLASSES:
                raise DatasetError(f"{where}: op {op!r}, expected one of {OP_CLASSES}")
            if space not in SPACES:
                raise DatasetError(f"{where}: space {space!r}, expected one of {SPACES}")
            mask = cols["mask"][i]
            addrs = cols["addrs"][i]
            if mask is None:
                raise DatasetError(f"{where}: mask is null")
            if addrs is not None and len(addrs) != popcount(mask):
                raise DatasetError(
                    f"{where}: {len(addrs)} addresses for {popcount(mask)} active lanes"
                )
            inst = Instruction(
                pc=cols["pc"][i] or 0,
                opcode=cols["opcode"][i] or "",
                op=op,
                dst=tuple(cols["dst"][i] or ()),
                src=tuple(cols["src"][i] or ()),
                mask=mask,
                space=space,
                width=cols["width"][i] or 0,
                base=cols["base"][i] or 0,
                stride=cols["stride"][i] or 0,
                addrs=tuple(addrs) if addrs is not None else None,
            )
            inst.check(where)
            warps = out.setdefault(b, [[] for _ in range(wpb)])
            warps[w].append(inst)
        return out

    def iter_groups(self) -> Iterator[dict[int, BlockWarps]]:
        """Yield the blocks of each row group in turn (a block never spans row groups)."""
        for g, first in enumerate(self._row_group_offsets()):
            yield self._decode_group(g, first)

    def blocks(self) -> Iterator[tuple[int, BlockWarps]]:
        for group in self.iter_groups():
            yield from sorted(group.items())

    def _index(self) -> list[tuple[int, int]]:
        if self._group_blocks is None:
            md = self._file.metadata
            idx = []
            col = self._file.schema_arrow.names.index("block")
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(col).statistics
                if st is None or not st.has_min_max:
                    table = self._file.read_row_group(g, columns=["block"])
                    vals = table.column(0).to_pylist()
                    idx.append((min(vals), max(vals)))
                else:
                    idx.append((st.min, st.max))
            self._group_blocks = idx
        return self._group_blocks

    def block(self, index: int) -> BlockWarps:
        if index in self._cache:
            return self._cache[index]
        offsets = self._row_group_offsets()
        for g, (lo, hi) in enumerate(self._index()):
            if lo <= index <= hi:
                if self._cache_group != g:
                    self._cache = self._decode_group(g, offsets[g])
                    self._cache_group = g
                if index in self._cache:
                    return self._cache[index]
        raise DatasetError(f"{self.path}: no trace for block {index}")

    @property
    def traced_blocks(self) -> list[int]:
        out: list[int] = []
        for g, _ in enumerate(self._index()):
            table = self._file.read_row_group(g, columns=["block"])
            out.extend(sorted(set(table.column(0).to_pylist())))
        return out

    @property
    def num_records(self) -> int:
        return int(self._file.metadata.num_rows)


def read_parquet(path: str | Path) -> ParquetTrace:
    """Open a simgpu trace file (validated as it is read)."""
    return ParquetTrace(path)
