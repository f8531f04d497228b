"""Property tests of the trace readers: whatever the input, a clean DatasetError with a message or
a correct answer (a valid instruction reads back as written, in both formats); never another
exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simgpu.errors import DatasetError
from simgpu.trace import load_traces
from simgpu.trace.accelsim import SHARED_WINDOW_BYTES, read_traceg
from simgpu.trace.parquet import COLUMNS, read_parquet, write_parquet
from simgpu.trace.schema import (
    MEMORY_WIDTHS,
    Instruction,
    KernelLaunch,
    ListTrace,
    classify_opcode,
    fixed_space,
)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SHARED_BASE = 0x7F0000000000
HEADER = f"""-kernel name = k
-grid dim = (2,1,1)
-block dim = (64,1,1)
-shmem = 0
-nregs = 32
-binary version = 86
-shmem base_addr = {SHARED_BASE:#018x}
-local mem base_addr = 0x00007e0000000000
-accelsim tracer version = 4

"""
MEMORY_OPCODES = [
    "LDG.E",
    "LDG.E.128",
    "LDG.E.CG",
    "LDS",
    "LDS.U.128",
    "LDL",
    "LD.E",
    "LD.E.64",
    "STG.E",
    "STS",
    "STL.64",
    "ST.E",
    "ATOMG.E.ADD",
    "ATOMS.ADD",
    "RED.E.ADD.F32.FTZ.RN",
    "ATOM.E.ADD",
]
OTHER_OPCODES = [
    "FFMA",
    "IMAD.WIDE",
    "BAR.SYNC",
    "EXIT",
    "BRA",
    "MOV",
    "S2R",
    "HMMA.16816.F32",
    "MUFU.RCP",
    "SHFL.DOWN",
    "ISETP.GE.AND",
    "NOP",
    "XMAD.PSL.CBCC",
    "LDC",
    "DFMA",
]
LIMIT = 1 << 64


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("props")


def expected_space(opcode: str, first: int | None) -> str:
    space = fixed_space(opcode)
    if space is not None:
        return space
    if first is not None and SHARED_BASE <= first < SHARED_BASE + SHARED_WINDOW_BYTES:
        return "shared"
    if first is not None and 0x7E0000000000 <= first < 0x7E0000000000 + SHARED_WINDOW_BYTES:
        return "local"
    return "global"


@st.composite
def valid_line(draw: st.DrawFn) -> tuple[str, Instruction]:
    """An Accel-Sim instruction line and the instruction it must read as."""
    pc = draw(st.integers(0, (1 << 32) - 1))
    regs = st.integers(0, 255)
    dst = draw(st.lists(regs, max_size=1))
    src = draw(st.lists(regs, max_size=5))
    words = [f"{pc:04x}"]
    if draw(st.booleans()):
        opcode = draw(st.sampled_from(MEMORY_OPCODES))
        width = draw(st.sampled_from(MEMORY_WIDTHS))
        mode = draw(st.sampled_from([0, 1, 2]))
        if mode == 1:
            start = draw(st.integers(0, 31))
            count = draw(st.integers(0, 32 - start))
            mask = ((1 << count) - 1) << start
            stride = draw(st.integers(-(1 << 20), 1 << 20))
            low = max(0, -stride * (count - 1))
            high = LIMIT - 1 - max(0, stride * (count - 1))
            base = draw(st.integers(low, high))
            tail = [str(mode), f"{base:x}", str(stride)]
            addrs: tuple[int, ...] | None = None if count else ()
            first = base if count else None
        else:
            mask = draw(st.integers(0, 0xFFFFFFFF))
            count = mask.bit_count()
            explicit = draw(st.lists(st.integers(0, LIMIT - 1), min_size=count, max_size=count))
            if mode == 0:
                tail = [str(mode), *(f"{a:x}" for a in explicit)]
            else:
                deltas = [b - a for a, b in zip(explicit, explicit[1:], strict=False)]
                tail = [str(mode), f"{explicit[0]:x}" if explicit else "0", *map(str, deltas)]
            addrs = tuple(explicit)
            base, stride = 0, 0
            first = explicit[0] if explicit else None
        if not count:
            base, stride, addrs = 0, 0, ()
        inst = Instruction(
            pc=pc,
            opcode=opcode,
            op=classify_opcode(opcode),
            dst=tuple(r for r in dst if r != 255),
            src=tuple(r for r in src if r != 255),
            mask=mask,
            space=expected_space(opcode, first),
            width=width,
            base=base,
            stride=stride,
            addrs=addrs,
        )
    else:
        opcode = draw(st.sampled_from(OTHER_OPCODES))
        mask = draw(st.integers(0, 0xFFFFFFFF))
        width = 0
        tail = []
        inst = Instruction(
            pc=pc,
            opcode=opcode,
            op=classify_opcode(opcode),
            dst=tuple(r for r in dst if r != 255),
            src=tuple(r for r in src if r != 255),
            mask=mask,
        )
    words += [f"{mask:08x}", str(len(dst)), *(f"R{r}" for r in dst), opcode]
    words += [str(len(src)), *(f"R{r}" for r in src), str(width), *tail]
    return " ".join(words), inst


def trace_text(lines: list[str]) -> str:
    return (
        HEADER
        + "#BEGIN_TB\nthread block = 1,0,0\nwarp = 1\n"
        + f"insts = {len(lines)}\n"
        + "".join(line + "\n" for line in lines)
        + "#END_TB\n"
    )


@SETTINGS
@given(cases=st.lists(valid_line(), min_size=1, max_size=6))
def test_valid_accelsim_lines_read_back_as_written(
    folder: Path, cases: list[tuple[str, Instruction]]
) -> None:
    path = folder / "valid.traceg"
    path.write_text(trace_text([line for line, _ in cases]))
    got = read_traceg(path).trace.block(1)[1]
    assert got == [inst for _, inst in cases]


@SETTINGS
@given(cases=st.lists(valid_line(), min_size=1, max_size=6))
def test_valid_instructions_round_trip_through_parquet(
    folder: Path, cases: list[tuple[str, Instruction]]
) -> None:
    launch = KernelLaunch("k", (2, 1, 1), (64, 1, 1), 32)
    insts = [inst for _, inst in cases]
    path = folder / "round.parquet"
    path.unlink(missing_ok=True)
    write_parquet(ListTrace(launch, {1: [[], insts]}), path, blocks=[1])
    back = read_parquet(path).block(1)[1]
    assert len(back) == len(insts)
    for a, b in zip(back, insts, strict=True):
        assert (a.pc, a.opcode, a.op, a.dst, a.src, a.mask, a.space, a.width) == (
            b.pc,
            b.opcode,
            b.op,
            b.dst,
            b.src,
            b.mask,
            b.space,
            b.width,
        )
        assert a.lane_addresses() == b.lane_addresses()


def read_or_clean_error(path: Path) -> None:
    try:
        for trace in load_traces(path):
            for _, warps in trace.blocks():
                for warp in warps:
                    for inst in warp:
                        inst.check("read back")
    except DatasetError as exc:
        assert str(exc).startswith(str(path)), exc


TOKEN = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "-1",
            "4",
            "16",
            "4096",
            "ffffffff",
            "1ffffffff",
            "0x" + "f" * 20,
            "R1",
            "R255",
            "R999",
            "Rx",
            "PT",
            "UR4",
            "LDG.E",
            "FFMA",
            "EXIT",
            "LD$G",
            "nan",
            "",
            "=",
            "#BEGIN_TB",
            "-kernel",
            "1e3",
            "0x7f0000000000",
            "-100",
            "99999999999999999999",
        ]
    ),
    st.text(alphabet="0123456789abcdefxR.-_ #=,()\t\x00é", max_size=8),
    st.integers(-(1 << 70), 1 << 70).map(str),
    st.integers(0, 1 << 70).map(lambda v: f"{v:x}"),
)


@SETTINGS
@given(tokens=st.lists(TOKEN, max_size=16))
def test_arbitrary_accelsim_lines(folder: Path, tokens: list[str]) -> None:
    path = folder / "line.traceg"
    path.write_text(trace_text([" ".join(tokens)]), encoding="utf-8", errors="surrogatepass")
    read_or_clean_error(path)


GOOD_BODY = [
    "0000 ffffffff 1 R1 LDG.E 1 R2 4 1 0x7f0001000000 4",
    "0010 0000ffff 1 R3 LDS.U.128 1 R4 16 2 0x7f0000000100 16 16 16 16 16 16 16 16 16 16 16 16 16"
    " 16 16",
    "0020 ffffffff 1 R5 FFMA 3 R1 R3 R5 0",
    "0030 ffffffff 0 BAR.SYNC 0 0",
    "0040 00000003 0 STG.E 2 R6 R5 4 0 0x1000 0x2000",
    "0050 ffffffff 0 EXIT 0 0",
]


@st.composite
def mangled_file(draw: st.DrawFn) -> str:
    lines = trace_text(GOOD_BODY).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["cut", "insert", "swap", "duplicate", "delete", "truncate"]))
        text = "".join(lines)
        if action in ("cut", "insert", "truncate"):
            at = draw(st.integers(0, len(text)))
            if action == "cut":
                text = text[:at] + text[at + draw(st.integers(1, 30)) :]
            elif action == "insert":
                text = (
                    text[:at]
                    + draw(st.text(alphabet=" \n0123456789abcdefRx=#-,.", max_size=10))
                    + text[at:]
                )
            else:
                text = text[:at]
            lines = text.splitlines(keepends=True)
        elif lines:
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if action == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            elif action == "duplicate":
                lines.insert(j, lines[i])
            else:
                del lines[i]
    return "".join(lines)


@SETTINGS
@given(text=mangled_file())
def test_mangled_accelsim_files(folder: Path, text: str) -> None:
    path = folder / "mangled.traceg"
    path.write_text(text)
    read_or_clean_error(path)


# --- arbitrary Parquet tables --------------------------------------------------------------------

VALUE_TYPES: dict[str, tuple[pa.DataType, Any]] = {
    "int64": (pa.int64(), st.integers(-(1 << 63), (1 << 63) - 1)),
    "int16": (pa.int16(), st.integers(-(1 << 15), (1 << 15) - 1)),
    "uint64": (pa.uint64(), st.integers(0, (1 << 64) - 1)),
    "uint32": (pa.uint32(), st.integers(0, (1 << 32) - 1)),
    "small": (pa.int32(), st.integers(-3, 40)),
    "float": (pa.float64(), st.floats(allow_nan=True)),
    "bool": (pa.bool_(), st.booleans()),
    "string": (pa.string(), st.text(max_size=6)),
    "class": (pa.string(), st.sampled_from(["ld", "st", "fp32", "exit", "none", "global", "x"])),
    "opcode": (pa.string(), st.sampled_from(["LDG.E", "FFMA", "EXIT", "STS", "", "LD$G"])),
    "ints": (pa.list_(pa.int64()), st.lists(st.integers(-5, 300), max_size=4)),
    "uints": (pa.list_(pa.uint64()), st.lists(st.integers(0, (1 << 64) - 1), max_size=4)),
    "strings": (pa.list_(pa.string()), st.lists(st.text(max_size=3), max_size=3)),
}


@st.composite
def arbitrary_table(draw: st.DrawFn) -> tuple[pa.Table, dict[bytes, bytes]]:
    rows = draw(st.integers(0, 4))
    arrays, names = [], []
    for column in COLUMNS:
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing column
        kind = draw(st.sampled_from(sorted(VALUE_TYPES)))
        typ, values = VALUE_TYPES[kind]
        data = draw(st.lists(st.one_of(st.none(), values), min_size=rows, max_size=rows))
        arrays.append(pa.array(data, typ))
        names.append(column)
    launch: Any = {
        "name": draw(st.sampled_from(["k", "", "\x1b", "x" * 40])),
        "grid": draw(st.sampled_from([[1, 1, 1], [2, 1, 1], [0, 1, 1], [1.5, 1, 1], [1, 1]])),
        "block": draw(st.sampled_from([[32, 1, 1], [64, 1, 1], [2048, 1, 1], "32"])),
        "regs_per_thread": draw(st.sampled_from([8, -1, 300, "8", None])),
        "shared_bytes": draw(st.sampled_from([0, -5, 1 << 40])),
    }
    if draw(st.booleans()):
        launch = draw(st.sampled_from([[], "k", 3, {"name": "k"}]))
    meta = {b"simgpu.kernel": json.dumps(launch).encode(), b"simgpu.trace_version": b"1"}
    return pa.Table.from_arrays(arrays, names=names), meta


@SETTINGS
@given(case=arbitrary_table())
def test_arbitrary_parquet_tables(folder: Path, case: tuple[pa.Table, dict[bytes, bytes]]) -> None:
    table, meta = case
    path = folder / "arbitrary.parquet"
    path.unlink(missing_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), path)
    read_or_clean_error(path)
