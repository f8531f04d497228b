"""Hostile trace files: every bad input is one clean DatasetError naming the file and the line
(Accel-Sim) or record (Parquet), never a traceback, a hang or a silent wrong answer; both readers
apply the same validation of an instruction's fields."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simgpu.errors import DatasetError
from simgpu.trace import accelsim, load_traces, parquet
from simgpu.trace.accelsim import read_kernelslist, read_traceg
from simgpu.trace.parquet import read_parquet, write_parquet
from simgpu.trace.schema import Instruction, KernelLaunch, ListTrace

SAMPLE = Path(__file__).resolve().parent.parent / "traces" / "sample_tiled_sgemm16_64.parquet"


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging: a blocking open or read is interrupted."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_all(path: Path) -> int:
    """What a replay does with a trace: open it and decode every block."""
    return sum(t.warp_instruction_count() for t in load_traces(path))


# --- Accel-Sim files -----------------------------------------------------------------------------

HEADER = """-kernel name = k
-kernel id = 1
-grid dim = (1,1,1)
-block dim = (32,1,1)
-shmem = 0
-nregs = 8
-binary version = 61
-cuda stream id = 0
-shmem base_addr = 0x00007f0000000000
-local mem base_addr = 0x00007f0001000000
-nvbit version = 1.5.5
-accelsim tracer version = 4

#traces format = PC mask dest_num [reg_dests] opcode src_num [reg_srcs] mem_width ...

"""
GOOD = "0000 ffffffff 1 R1 LDG.E 1 R2 4 1 0x7f0000000000 4"


def body(inst: str = GOOD) -> str:
    return (
        "#BEGIN_TB\nthread block = 0,0,0\nwarp = 0\ninsts = 2\n"
        f"{inst}\n0010 ffffffff 0 EXIT 0 0\n#END_TB\n"
    )


def traceg(tmp_path: Path, text: str | bytes, name: str = "kernel-1.traceg") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_a_good_line_reads(tmp_path: Path) -> None:
    (k,) = accelsim.load_accelsim(traceg(tmp_path, HEADER + body()))
    ld, ex = k.trace.block(0)[0]
    assert (ld.op, ld.space, ld.width, ld.lane_addresses()[:2]) == (
        "ld",
        "global",
        4,
        [0x7F0000000000, 0x7F0000000004],
    )
    assert ex.op == "exit"


@pytest.mark.parametrize(
    ("label", "inst", "message"),
    [
        ("width -4", GOOD.replace(" 4 1 0x", " -4 1 0x"), "memory width -4 bytes per lane"),
        ("width 4096", GOOD.replace(" 4 1 0x", " 4096 1 0x"), "memory width 4096 bytes per lane"),
        ("width 3", GOOD.replace(" 4 1 0x", " 3 1 0x"), "memory width 3 bytes per lane"),
        ("R999", GOOD.replace("1 R1 LDG", "1 R999 LDG"), "dst register R999, expected R0..R254"),
        ("src R300", GOOD.replace("1 R2 4", "1 R300 4"), "src register R300"),
        ("80-bit address", GOOD.replace("0x7f0000000000", "0x" + "f" * 20), "64-bit address"),
        (
            "80-bit address, mode 0",
            "0000 00000003 1 R1 LDG.E 1 R2 4 0 0x1000 0x" + "f" * 20,
            "64-bit address",
        ),
        ("delta below 0", "0000 00000003 1 R1 LDG.E 1 R2 4 2 0x10 -100", "64-bit address"),
        (
            "stride leaves 2^64",
            "0000 ffffffff 1 R1 LDG.E 1 R2 4 1 0xfffffffffffffff0 4096",
            "leaves the 64-bit address space",
        ),
        ("mask of 33 bits", GOOD.replace("0000 ffffffff", "0000 1ffffffff"), "32-lane mask"),
        ("pc 2^40", GOOD.replace("0000 ffffffff", "10000000000 ffffffff"), "pc 0x10000000000"),
        ("opcode 123", "0000 ffffffff 0 123 0 0", "expected a SASS opcode"),
        ("opcode LD$G", "0000 ffffffff 0 LD$G 0 0", "expected a SASS opcode"),
        ("register token", GOOD.replace("1 R1 LDG", "1 foo LDG"), "register 'foo'"),
        ("mode 1 gaps", "0000 00000005 1 R1 LDG.E 1 R2 4 1 0x1000 4", "not one run"),
        ("mode 7", GOOD.replace(" 4 1 0x", " 4 7 0x"), "address mode 7"),
        ("no address mode", "0000 ffffffff 1 R1 LDG.E 1 R2 4", "ends before its address mode"),
        ("too few addresses", "0000 00000007 1 R1 LDG.E 1 R2 4 0 0x10 0x20", "3 addresses"),
        ("1000 destinations", GOOD.replace("ffffffff 1 R1", "ffffffff 1000 R1"), "count 1000"),
        ("mask not hex", GOOD.replace("0000 ffffffff", "0000 zz"), "mask 'zz' is not a hex"),
    ],
)
def test_bad_instruction_lines_name_file_and_line(
    tmp_path: Path, label: str, inst: str, message: str
) -> None:
    path = traceg(tmp_path, HEADER + body(inst))
    line = (HEADER + body(inst)).splitlines().index(inst) + 1
    with pytest.raises(DatasetError) as info:
        read_all(path)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text, text


FULL = HEADER + body()


@pytest.mark.parametrize(
    ("label", "text", "message"),
    [
        ("empty file", "", "empty trace"),
        ("header, no instructions", HEADER, "a header but no thread blocks"),
        (
            "empty thread block",
            HEADER + "#BEGIN_TB\nthread block = 0,0,0\n#END_TB\n",
            "holds no instructions",
        ),
        (
            "empty kernel",
            HEADER + "#BEGIN_TB\nthread block = 0,0,0\nwarp = 0\ninsts = 0\n#END_TB\n",
            "holds no instructions",
        ),
        ("truncated mid-line", FULL[: FULL.index(GOOD) + 20], "ends before its"),
        ("truncated after a line", FULL[: FULL.index("#END_TB")], "truncated"),
        ("truncated in the header", FULL[:60], "header"),
        ("nregs abc", FULL.replace("-nregs = 8", "-nregs = abc"), "-nregs = 'abc'"),
        ("shmem 1 GB", FULL.replace("-shmem = 0", "-shmem = 1000000000"), "-shmem"),
        ("grid (0,1,1)", FULL.replace("(1,1,1)", "(0,1,1)"), "expected sizes >= 1"),
        ("block 2048", FULL.replace("(32,1,1)", "(2048,1,1)"), "CUDA's limits"),
        ("version x", FULL.replace("version = 4", "version = x"), "tracer version = 'x'"),
        ("lineinfo 2", FULL.replace("version = 4", "version = 4\n-enable lineinfo = 2"), "0 or 1"),
        ("base_addr zz", FULL.replace("0x00007f0000000000", "zz"), "64-bit hex address"),
        ("warp = x", FULL.replace("warp = 0", "warp = x"), "warp = 'x'"),
        ("insts = x", FULL.replace("insts = 2", "insts = x"), "insts = 'x'"),
        ("insts = 5", FULL.replace("insts = 2", "insts = 5"), "declares insts = 5 but has 2"),
        ("block 1,2", FULL.replace("block = 0,0,0", "block = 1,2"), "expected x,y,z"),
        ("block outside", FULL.replace("block = 0,0,0", "block = 5,0,0"), "outside grid"),
        ("warp 99", FULL.replace("warp = 0", "warp = 99"), "warp 99 outside"),
        ("block twice", HEADER + body() + body(), "traced twice"),
        (
            "warp twice",
            FULL.replace("#END_TB", "warp = 0\ninsts = 0\n#END_TB"),
            "warp 0 listed twice",
        ),
        (
            "insts before warp",
            HEADER + "#BEGIN_TB\nthread block = 0,0,0\ninsts = 1\n",
            "'insts =' before 'warp ='",
        ),
        ("outside a block", HEADER + "0010 ffffffff 0 EXIT 0 0\n", "outside #BEGIN_TB"),
        (
            "endless header",
            "".join(f"-key{i} = {i}\n" for i in range(2000)) + FULL,
            "more than 1000 header lines",
        ),
        (
            "old format, block outside",
            FULL.replace("version = 4", "version = 2").replace(
                body(), "#BEGIN_TB\n7 0 0 0 0010 ffffffff 0 EXIT 0 0\n#END_TB\n"
            ),
            "outside grid",
        ),
    ],
)
def test_bad_trace_files_are_one_clean_error(
    tmp_path: Path, label: str, text: str, message: str
) -> None:
    path = traceg(tmp_path, text)
    with pytest.raises(DatasetError) as info:
        read_traceg(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value), str(info.value)


def test_non_utf8_and_binary_traces_name_the_line(tmp_path: Path) -> None:
    bad = traceg(tmp_path, FULL.encode().replace(b"EXIT", b"EX\xffT"))
    line = FULL.splitlines().index("0010 ffffffff 0 EXIT 0 0") + 1
    with pytest.raises(DatasetError, match=rf"kernel-1.traceg:{line}: not UTF-8"):
        read_traceg(bad)
    for junk in (os.urandom(4096), b"\x00" * 4096, b"\n" * 10):
        with pytest.raises(DatasetError, match="kernel-1.traceg"):
            read_traceg(traceg(tmp_path, junk))


def test_kernelslist_names_only_files_beside_it(tmp_path: Path) -> None:
    (tmp_path / "kernel-1.traceg").write_text(FULL)
    outside = tmp_path.parent / "outside.traceg"
    outside.write_text(FULL)
    for entry in ("../outside.traceg", str(outside), "/etc/passwd", "sub/kernel-1.traceg"):
        (tmp_path / "kernelslist.g").write_text(entry + "\n")
        with pytest.raises(DatasetError, match=r"kernelslist.g:1: kernel trace .*no path"):
            read_kernelslist(tmp_path)
    for entry, message in [
        ("MemcpyHtoD,zz,4", "64-bit address"),
        ("MemcpyHtoD,0x" + "f" * 20 + ",4", "64-bit address"),
        ("MemcpyHtoD,0x10,-4", "byte count"),
    ]:
        (tmp_path / "kernelslist.g").write_text(entry + "\nkernel-1.traceg\n")
        with pytest.raises(DatasetError, match=message):
            read_kernelslist(tmp_path)
    (tmp_path / "kernelslist.g").write_text("")
    with pytest.raises(DatasetError, match="lists no kernel traces"):
        read_all(tmp_path)


# --- one validation, both readers ----------------------------------------------------------------

LAUNCH = KernelLaunch("k", (1, 1, 1), (32, 1, 1), 8)


def parquet_with(tmp_path: Path, **fields: object) -> Path:
    """A one-row simgpu trace of a load whose fields are changed (bypassing the writer's
    typed columns where a value would not fit them)."""
    inst = Instruction(
        pc=0,
        opcode="LDG.E",
        op="ld",
        dst=(1,),
        src=(2,),
        space="global",
        width=4,
        base=0x7F0000000000,
        stride=4,
    )
    good = write_parquet(ListTrace(LAUNCH, {0: [[inst]]}), tmp_path / "good.parquet")
    table = pq.read_table(good)
    for name, value in fields.items():
        field = table.schema.field(name)
        if pa.types.is_dictionary(field.type):
            column = pa.array([value]).dictionary_encode()
        else:
            column = pa.array([value], field.type)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    path = tmp_path / "bad.parquet"
    path.unlink(missing_ok=True)
    pq.write_table(table.replace_schema_metadata(pq.read_schema(good).metadata), path)
    return path


# (label, Accel-Sim line, Parquet fields, words both errors use)
SHARED = [
    ("width 4096", GOOD.replace(" 4 1 0x", " 4096 1 0x"), {"width": 4096}, "memory width 4096"),
    ("width -4", GOOD.replace(" 4 1 0x", " -4 1 0x"), {"width": -4}, "memory width -4"),
    ("register R999", GOOD.replace("1 R1 LDG", "1 R999 LDG"), {"dst": [999]}, "register R999"),
    ("register R255 (RZ) as a source", None, {"src": [255]}, "register R255"),
    (
        "stride leaves 2^64",
        "0000 ffffffff 1 R1 LDG.E 1 R2 4 1 0xfffffffffffffff0 4096",
        {"base": 0xFFFFFFFFFFFFFFF0, "stride": 4096},
        "leaves the 64-bit address space",
    ),
    ("pc 2^40", GOOD.replace("0000 ffffffff", "10000000000 ffffffff"), {"pc": 1 << 40}, "pc"),
    ("opcode garbage", GOOD.replace("LDG.E", "LD$G"), {"opcode": "LD$G"}, "SASS opcode"),
    (
        "opcode FFMA with an access",
        GOOD.replace("LDG.E", "FFMA"),
        {"opcode": "FFMA", "op": "fp32"},
        "fp32 instruction FFMA has a memory access",
    ),
    ("opcode FFMA as a load", None, {"opcode": "FFMA"}, "op 'ld' for opcode 'FFMA'"),
    ("shared opcode, global space", None, {"opcode": "LDS"}, "in space 'global'"),
    ("op fp32 for a load", None, {"op": "fp32"}, "op 'fp32' for opcode 'LDG.E'"),
    ("8 addresses, 4 lanes", None, {"mask": 0xF, "addrs": [64] * 8}, "8 addresses for 4 active"),
]


@pytest.mark.parametrize(("label", "line", "fields", "words"), SHARED, ids=[s[0] for s in SHARED])
def test_both_readers_apply_one_validation(
    tmp_path: Path, label: str, line: str | None, fields: dict[str, object], words: str
) -> None:
    with pytest.raises(DatasetError) as info:
        read_all(parquet_with(tmp_path, **fields))
    assert "bad.parquet: record 0: " in str(info.value) and words in str(info.value), info.value
    if line is not None:
        path = traceg(tmp_path, HEADER + body(line))
        with pytest.raises(DatasetError) as info:
            read_all(path)
        assert f"{path}:" in str(info.value) and words in str(info.value), info.value


# --- Parquet files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> pa.Table:
    return pq.read_table(SAMPLE)


def rewrite(
    tmp_path: Path, table: pa.Table, meta: dict[bytes, bytes] | None = None, groups: int = 1
) -> Path:
    path = tmp_path / "t.parquet"
    path.unlink(missing_ok=True)
    schema = table.schema.with_metadata(meta if meta is not None else table.schema.metadata)
    with pq.ParquetWriter(path, schema) as writer:
        step = -(-table.num_rows // groups) if table.num_rows else 0
        for start in range(0, max(table.num_rows, 1), max(step, 1)):
            writer.write_table(table.slice(start, step).cast(schema))
    return path


def column(table: pa.Table, name: str, values: list[object], typ: pa.DataType | None = None):
    index = table.schema.get_field_index(name)
    return table.set_column(index, name, pa.array(values, typ))


PARQUET_CASES = [
    ("zero rows", lambda t: t.slice(0, 0), "no rows"),
    (
        "string widths",
        lambda t: column(t, "width", [str(v) for v in t["width"].to_pylist()]),
        "column 'width' holds string, expected integer",
    ),
    (
        "float warp ids",
        lambda t: column(t, "warp", [v + 0.5 for v in t["warp"].to_pylist()]),
        "column 'warp' holds double, expected integer",
    ),
    ("missing column", lambda t: t.drop(["pc"]), "missing columns ['pc']"),
    (
        "string registers",
        lambda t: column(t, "dst", [["a"]] * t.num_rows),
        "column 'dst' holds list<",
    ),
    ("null pc", lambda t: column(t, "pc", [None] * t.num_rows, pa.int64()), "record 0: pc is null"),
    (
        "null op",
        lambda t: column(t, "op", [None] * t.num_rows, pa.string()),
        "record 0: op is null",
    ),
    (
        "100k-character opcode",
        lambda t: column(t.slice(0, 8), "opcode", ["F" * 100_000] * 8),
        "a string of 100000 characters",
    ),
    (
        "blocks out of order",
        lambda t: column(t, "block", t["block"].to_pylist()[::-1]),
        "not ordered",
    ),
    ("space nowhere", lambda t: column(t, "space", ["nowhere"] * t.num_rows), "space 'nowhere'"),
]


@pytest.mark.parametrize(
    ("label", "edit", "message"), PARQUET_CASES, ids=[c[0] for c in PARQUET_CASES]
)
def test_bad_parquet_tables_are_one_clean_error(
    tmp_path: Path, sample: pa.Table, label: str, edit, message: str
) -> None:
    path = rewrite(tmp_path, edit(sample), sample.schema.metadata)
    with pytest.raises(DatasetError) as info:
        read_all(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value), info.value


@pytest.mark.parametrize(
    ("label", "kernel", "message"),
    [
        ("deep JSON", b"[" * 100_000, "not JSON"),
        ("not UTF-8", b"\xff\xfe", "not JSON"),
        ("a list", b"[1, 2]", "expected a table"),
        ("float grid", {"grid": [1.5, 1, 1]}, "grid [1.5, 1, 1], expected 3 integers"),
        ("two-dimensional grid", {"grid": [4, 4]}, "expected 3 integers"),
        ("2048-thread block", {"block": [2048, 1, 1]}, "CUDA's limits"),
        ("regs as text", {"regs_per_thread": "8"}, "regs_per_thread '8'"),
        ("9999 registers", {"regs_per_thread": 9999}, "expected 0 to 255"),
        ("1 TB of shared memory", {"shared_bytes": 10**12}, "shared_bytes"),
        ("escape codes in the name", {"name": "\x1b[2J"}, "printable"),
    ],
)
def test_bad_launch_records(
    tmp_path: Path, sample: pa.Table, label: str, kernel: object, message: str
) -> None:
    meta = dict(sample.schema.metadata)
    if isinstance(kernel, dict):
        record = json.loads(meta[b"simgpu.kernel"])
        record.update(kernel)
        meta[b"simgpu.kernel"] = json.dumps(record).encode()
    else:
        assert isinstance(kernel, bytes)
        meta[b"simgpu.kernel"] = kernel
    with pytest.raises(DatasetError, match="t.parquet") as info:
        read_all(rewrite(tmp_path, sample, meta))
    assert message in str(info.value), info.value
    meta = dict(sample.schema.metadata)
    meta[b"simgpu.trace_version"] = b"x"
    with pytest.raises(DatasetError, match="trace format version 'x'"):
        read_all(rewrite(tmp_path, sample, meta))


def test_a_block_sits_in_one_row_group(tmp_path: Path, sample: pa.Table) -> None:
    path = tmp_path / "split.parquet"
    with pq.ParquetWriter(path, sample.schema) as writer:
        writer.write_table(sample.slice(0, 100))
        writer.write_table(sample.slice(100))
    with pytest.raises(DatasetError, match="a block must sit in one row group"):
        read_parquet(path).block(0)
    with pytest.raises(DatasetError, match="a block must sit in one row group"):
        read_all(path)


def test_row_group_limits_are_checked_before_decoding(
    tmp_path: Path, sample: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = rewrite(tmp_path, sample)
    monkeypatch.setattr(parquet, "MAX_ROWS_PER_GROUP", 1000)
    with pytest.raises(DatasetError, match=r"row group 0 has 25984 rows, expected at most 1000"):
        read_parquet(path)
    monkeypatch.setattr(parquet, "MAX_ROWS_PER_GROUP", 1 << 23)
    monkeypatch.setattr(parquet, "MAX_GROUP_BYTES", 1000)
    with pytest.raises(DatasetError, match=r"row group 0 decodes to .* at most 1000 B"):
        read_parquet(path)


# --- bounded reads: FIFOs, devices, oversize files -----------------------------------------------


def test_fifos_and_device_nodes_are_refused_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "fifo"
    folder.mkdir()
    os.mkfifo(folder / "kernel-1.traceg")
    (folder / "kernelslist.g").write_text("kernel-1.traceg\n")
    os.mkfifo(tmp_path / "t.parquet")
    os.mkfifo(tmp_path / "k.traceg")
    listed = tmp_path / "list"
    listed.mkdir()
    os.mkfifo(listed / "kernelslist.g")
    os.symlink("/dev/zero", tmp_path / "zero.traceg")
    os.symlink("/dev/zero", tmp_path / "zero.parquet")
    for path, words in [
        (folder, "a FIFO"),
        (tmp_path / "t.parquet", "a FIFO"),
        (tmp_path / "k.traceg", "a FIFO"),
        (listed, "a FIFO"),
        (tmp_path / "zero.traceg", "a character device"),
        (tmp_path / "zero.parquet", "a character device"),
    ]:
        with deadline(10), pytest.raises(DatasetError, match=words):
            read_all(path)


def test_oversize_files_are_refused_before_reading(tmp_path: Path) -> None:
    """Sparse files: their size is what the limits see, no disk or time is spent on them."""
    cases = [
        (tmp_path / "big.traceg", accelsim.MAX_TRACEG_BYTES, "512 MiB for one .traceg"),
        (tmp_path / "big.parquet", parquet.MAX_PARQUET_BYTES, "16 GiB for a Parquet trace"),
    ]
    listed = tmp_path / "list"
    listed.mkdir()
    cases.append((listed / "kernelslist.g", accelsim.MAX_KERNELSLIST_BYTES, "16 MiB"))
    for path, limit, words in cases:
        with path.open("wb") as handle:
            handle.truncate(limit + 1)
        target = listed if path.name == "kernelslist.g" else path
        with deadline(10), pytest.raises(DatasetError, match=words):
            read_all(target)


def test_long_lines_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accelsim, "MAX_LINE_BYTES", 4096)
    path = traceg(tmp_path, HEADER + "0" * 10_000 + "\n" + body())
    with deadline(10), pytest.raises(DatasetError, match="line longer than 4 KiB"):
        read_traceg(path)


def test_writer_never_replaces_a_file(tmp_path: Path) -> None:
    inst = Instruction(pc=0, opcode="EXIT", op="exit")
    trace = ListTrace(LAUNCH, {0: [[inst]]})
    target = tmp_path / "t.parquet"
    target.write_text("keep me")
    with pytest.raises(DatasetError, match="never overwritten"):
        write_parquet(trace, target)
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.parquet")
    with pytest.raises(DatasetError, match="never overwritten"):
        write_parquet(trace, tmp_path / "dangling.parquet")
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.parquet", "t.parquet"]
