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
from simgpu.io import OutputError, UnusableFile, check_file, format_bytes, new_file
from simgpu.trace.schema import (
    MAX_OPERANDS,
    BlockWarps,
    Instruction,
    KernelLaunch,
    KernelTrace,
    check_launch,
)

__all__ = [
    "write_parquet",
    "read_parquet",
    "ParquetTrace",
    "FORMAT_VERSION",
    "COLUMNS",
    "MAX_PARQUET_BYTES",
    "MAX_ROWS_PER_GROUP",
    "MAX_GROUP_BYTES",
]

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
    fits = -(1 << 63) <= stride < (1 << 63)  # the stride column is int64
    if fits and all(a[i] == a[0] + i * stride for i in range(len(a))):
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

    Never overwrites: raises :class:`DatasetError` if ``path`` exists, also when it appears
    while the trace is written (:func:`simgpu.io.new_file`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.exists() or path.is_symlink():
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

    try:
        with new_file(path) as tmp, pq.ParquetWriter(str(tmp), schema) as writer:
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
    except OutputError as exc:
        raise DatasetError(str(exc)) from None
    return path


#: Largest Parquet trace opened. The reader streams it a row group at a time, so the bound is on
#: what a kernel trace can sensibly be, not on memory: at the 6 bytes per warp instruction of the
#: bundled samples, 16 GiB is some 2.8 billion instructions, more than the simulator replays in
#: a day. Anything larger is not a trace of one kernel.
MAX_PARQUET_BYTES = 16 << 30
#: Most rows one row group may hold. A row group holds whole blocks (the writer flushes at block
#: boundaries after 65,536 rows); one 1024-thread block of a tiled SGEMM has about 84 rows per
#: unit of K (85,472 at K = 1024), so 2^23 rows covers a block with K near 100,000. A group is
#: decoded into Python objects whole (a few hundred bytes a row), so this bounds memory too.
MAX_ROWS_PER_GROUP = 1 << 23
#: Most bytes one row group may take decoded (its uncompressed size in the file's metadata): a
#: file far smaller than this can declare it (compression), and the reader would allocate it.
#: 2^23 rows of about 250 bytes (a full explicit 32-lane address list) is 2 GiB.
MAX_GROUP_BYTES = 2 << 30
#: Longest string in the ``opcode`` column (:data:`~simgpu.trace.schema.OPCODE_PATTERN` allows
#: 32 characters and 12 modifiers), and in ``op`` and ``space``.
_MAX_STRING = {"opcode": 512, "op": 16, "space": 16}
#: What each column must hold: integers, strings, or lists of integers (with the most entries
#: a row may have).
_INTEGER_COLUMNS = ("block", "warp", "pc", "mask", "width", "base", "stride")
_STRING_COLUMNS = ("opcode", "op", "space")
_LIST_COLUMNS = {"dst": MAX_OPERANDS, "src": MAX_OPERANDS, "addrs": 32}


def _column_kind(t: Any) -> str:
    """'integer', 'string', 'integer list' or the type's name."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type):
        return "integer list"
    return str(t)


def _values(column: Any) -> list[Any]:
    """A column's values as Python objects; a dictionary-encoded column decodes its dictionary
    once, so rows share their strings."""
    import pyarrow as pa

    out: list[Any] = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            words = chunk.dictionary.to_pylist()
            out.extend(None if i is None else words[i] for i in chunk.indices.to_pylist())
        else:
            out.extend(chunk.to_pylist())
    return out


class ParquetTrace(KernelTrace):
    """A trace file opened for reading. Blocks are read a row group at a time.

    :meth:`blocks` streams the whole file in order (memory: one row group). :meth:`block`
    gives random access through an index of which row groups hold which blocks.

    Opening checks the file (a regular file of at most :data:`MAX_PARQUET_BYTES`), the launch
    record (:func:`~simgpu.trace.schema.check_launch`), every column's presence and type, that
    there is at least one row, and each row group's size (:data:`MAX_ROWS_PER_GROUP`,
    :data:`MAX_GROUP_BYTES`, list lengths); decoding checks every row
    (:meth:`~simgpu.trace.schema.Instruction.check`, no nulls, order, ranges). Every problem is a
    :class:`~simgpu.errors.DatasetError` naming the file and the record or row group.
    """

    def __init__(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        try:
            check_file(self.path, MAX_PARQUET_BYTES, "a Parquet trace")
        except UnusableFile as exc:
            raise DatasetError(f"{self.path}: {exc.got}; expected {exc.expected}") from None
        try:
            # String columns stay dictionary-encoded when read (as the writer writes them), so a
            # long string repeated on every row is decoded once, not once per row.
            self._file = pq.ParquetFile(self.path, read_dictionary=list(_STRING_COLUMNS))
            schema = self._file.schema_arrow
            md = self._file.metadata
        except Exception as exc:  # pyarrow raises several types for a corrupt footer
            raise DatasetError(f"{self.path}: not a readable Parquet trace ({exc})") from exc
        meta = schema.metadata or {}
        if META_KEY not in meta:
            raise DatasetError(f"{self.path}: no '{META_KEY.decode()}' launch record in metadata")
        raw_version = meta.get(VERSION_KEY, b"0")
        if raw_version.strip() != str(FORMAT_VERSION).encode():
            shown = raw_version[:20].decode("utf-8", "replace")
            raise DatasetError(
                f"{self.path}: trace format version {shown!r}, expected {FORMAT_VERSION}"
            )
        try:
            launch_data = json.loads(meta[META_KEY])
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, deep nesting
            raise DatasetError(
                f"{self.path}: launch record is not JSON ({type(exc).__name__}: {exc})"[:300]
            ) from None
        where = f"{self.path}: launch record"
        self.launch = KernelLaunch.from_dict(launch_data, where=where)
        check_launch(self.launch, where)
        names = schema.names
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise DatasetError(f"{self.path}: missing columns {missing}; expected {list(COLUMNS)}")
        expected = {
            **dict.fromkeys(_INTEGER_COLUMNS, "integer"),
            **dict.fromkeys(_STRING_COLUMNS, "string"),
            **dict.fromkeys(_LIST_COLUMNS, "integer list"),
        }
        for column, kind in expected.items():
            got = _column_kind(schema.field(column).type)
            if got != kind:
                raise DatasetError(
                    f"{self.path}: column {column!r} holds {got}, expected {kind}"
                    f" ({_schema().field(column).type} as written by write_parquet)"
                )
        if md.num_rows == 0:
            raise DatasetError(f"{self.path}: no rows: the trace holds no instructions")
        for g in range(md.num_row_groups):
            self._check_group_size(g)
        self._group_blocks: list[tuple[int, int] | None] | None = None
        self._cache: dict[int, BlockWarps] = {}
        self._cache_group = -1

    def _check_group_size(self, g: int) -> None:
        """Refuse a row group too large to decode, from its metadata alone."""
        rg = self._file.metadata.row_group(g)
        rows = rg.num_rows
        if rows > MAX_ROWS_PER_GROUP:
            raise DatasetError(
                f"{self.path}: row group {g} has {rows} rows, expected at most"
                f" {MAX_ROWS_PER_GROUP} (MAX_ROWS_PER_GROUP)"
            )
        if rg.total_byte_size > MAX_GROUP_BYTES:
            raise DatasetError(
                f"{self.path}: row group {g} decodes to {format_bytes(rg.total_byte_size)},"
                f" expected at most {format_bytes(MAX_GROUP_BYTES)} (MAX_GROUP_BYTES)"
            )
        for j in range(rg.num_columns):
            chunk = rg.column(j)
            column = chunk.path_in_schema.split(".", 1)[0]
            per_row = _LIST_COLUMNS.get(column)
            if per_row is not None and chunk.num_values > rows * per_row:
                raise DatasetError(
                    f"{self.path}: row group {g}: column {column!r} holds {chunk.num_values}"
                    f" values for {rows} rows, expected at most {per_row} a row"
                )

    # -- streaming -------------------------------------------------------------------------
    def _row_group_offsets(self) -> list[int]:
        md = self._file.metadata
        offsets, total = [], 0
        for g in range(md.num_row_groups):
            offsets.append(total)
            total += md.row_group(g).num_rows
        return offsets

    def _decode_group(self, g: int, first_record: int) -> dict[int, BlockWarps]:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            table = self._file.read_row_group(g, columns=list(COLUMNS))
        except Exception as exc:
            raise DatasetError(
                f"{self.path}: row group {g} (records from {first_record}) unreadable: {exc}"
            ) from exc
        for c in COLUMNS:
            column = table.column(c)
            if c != "addrs" and column.null_count:
                first_null = pc.index(pc.is_null(column), True).as_py()
                raise DatasetError(
                    f"{self.path}: record {first_record + first_null}: {c} is null, expected a"
                    " value"
                )
            limit = _MAX_STRING.get(c)
            if limit is not None:
                for chunk in column.chunks:
                    words = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
                    longest = pc.max(pc.utf8_length(words)).as_py() if len(words) else 0
                    if longest is not None and longest > limit:
                        raise DatasetError(
                            f"{self.path}: row group {g}: column {c!r} holds a string of"
                            f" {longest} characters, expected at most {limit}"
                        )
        cols = {c: _values(table.column(c)) for c in COLUMNS}
        out: dict[int, BlockWarps] = {}
        nblocks = self.launch.num_blocks
        wpb = self.launch.warps_per_block()
        prev_key = (-1, -1)
        for i in range(table.num_rows):
            rec = first_record + i
            where = f"{self.path}: record {rec}"
            b, w = cols["block"][i], cols["warp"][i]
            if not 0 <= b < nblocks or not 0 <= w < wpb:
                raise DatasetError(
                    f"{where}: block {b} / warp {w} outside grid of {nblocks} blocks x {wpb} warps"
                )
            if (b, w) < prev_key:
                raise DatasetError(f"{where}: rows not ordered by block, warp (got {b}, {w})")
            prev_key = (b, w)
            addrs = cols["addrs"][i]
            inst = Instruction(
                pc=cols["pc"][i],
                opcode=cols["opcode"][i],
                op=cols["op"][i],
                dst=tuple(cols["dst"][i]),
                src=tuple(cols["src"][i]),
                mask=cols["mask"][i],
                space=cols["space"][i],
                width=cols["width"][i],
                base=cols["base"][i],
                stride=cols["stride"][i],
                addrs=tuple(addrs) if addrs is not None else None,
            )
            inst.check(where)
            warps = out.setdefault(b, [[] for _ in range(wpb)])
            warps[w].append(inst)
        return out

    def iter_groups(self) -> Iterator[dict[int, BlockWarps]]:
        """Yield the blocks of each row group in turn (a block never spans row groups)."""
        last = -1
        for g, first in enumerate(self._row_group_offsets()):
            group = self._decode_group(g, first)
            if group:
                if min(group) <= last:
                    raise DatasetError(
                        f"{self.path}: row group {g} (records from {first}) holds block"
                        f" {min(group)}, which an earlier row group holds or passed: a block"
                        " must sit in one row group, in block order"
                    )
                last = max(group)
            yield group

    def blocks(self) -> Iterator[tuple[int, BlockWarps]]:
        for group in self.iter_groups():
            yield from sorted(group.items())

    def _index(self) -> list[tuple[int, int] | None]:
        """(first, last) block of each row group (None for an empty one), from the statistics
        where the file has them; the groups' ranges must be disjoint and in order."""
        if self._group_blocks is None:
            md = self._file.metadata
            idx: list[tuple[int, int] | None] = []
            col = self._file.schema_arrow.names.index("block")
            for g in range(md.num_row_groups):
                if md.row_group(g).num_rows == 0:
                    idx.append(None)
                    continue
                st = md.row_group(g).column(col).statistics
                if st is not None and st.has_min_max and type(st.min) is int:
                    idx.append((st.min, st.max))
                    continue
                try:
                    table = self._file.read_row_group(g, columns=["block"])
                except Exception as exc:
                    raise DatasetError(f"{self.path}: row group {g} unreadable: {exc}") from exc
                vals = [v for v in table.column(0).to_pylist() if v is not None]
                idx.append((min(vals), max(vals)) if vals else None)
            last = -1
            for g, span in enumerate(idx):
                if span is None:
                    continue
                if span[0] <= last:
                    raise DatasetError(
                        f"{self.path}: row group {g} holds block {span[0]}, which an earlier"
                        " row group holds or passed: a block must sit in one row group, in"
                        " block order"
                    )
                last = span[1]
            self._group_blocks = idx
        return self._group_blocks

    def block(self, index: int) -> BlockWarps:
        if index in self._cache:
            return self._cache[index]
        offsets = self._row_group_offsets()
        for g, span in enumerate(self._index()):
            if span is not None and span[0] <= index <= span[1]:
                if self._cache_group != g:
                    group = self._decode_group(g, offsets[g])
                    if any(not span[0] <= b <= span[1] for b in group):
                        raise DatasetError(
                            f"{self.path}: row group {g}: its statistics say blocks"
                            f" {span[0]}..{span[1]} but it holds blocks {min(group)}..{max(group)}"
                        )
                    self._cache = group
                    self._cache_group = g
                if index in self._cache:
                    return self._cache[index]
        raise DatasetError(f"{self.path}: no trace for block {index}")

    @property
    def traced_blocks(self) -> list[int]:
        out: list[int] = []
        for g, span in enumerate(self._index()):
            if span is None:
                continue
            table = self._file.read_row_group(g, columns=["block"])
            out.extend(sorted(set(table.column(0).to_pylist())))
        return out

    @property
    def num_records(self) -> int:
        return int(self._file.metadata.num_rows)


def read_parquet(path: str | Path) -> ParquetTrace:
    """Open a simgpu trace file (validated as it is read)."""
    return ParquetTrace(path)
