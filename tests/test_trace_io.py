"""simgpu's Parquet trace format: round trip, streaming, validation errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simgpu.errors import DatasetError
from simgpu.trace import load_traces
from simgpu.trace.parquet import ParquetTrace, read_parquet, write_parquet
from simgpu.trace.schema import Instruction, KernelLaunch, ListTrace, classify_opcode
from simgpu.workloads import TiledGemm, Transpose


def _all(trace):
    return {b: warps for b, warps in trace.blocks()}


def test_round_trip_generated_gemm(tmp_path: Path):
    w = TiledGemm(64, 64, 32, tile=16)
    src = w.trace()
    path = write_parquet(src, tmp_path / "gemm.parquet", rows_per_group=5000)
    back = read_parquet(path)
    assert back.launch == src.launch
    assert _all(back) == _all(src)
    # Several row groups were written and each block is readable on its own.
    assert back._file.metadata.num_row_groups > 1
    assert back.block(7) == src.block(7)
    assert back.warp_instruction_count() == src.warp_instruction_count()


def test_explicit_address_lists_survive(tmp_path: Path):
    w = Transpose(64, 64, "tiled")
    src = w.trace()
    back = read_parquet(write_parquet(src, tmp_path / "t.parquet"))
    for (_, a), (_, b) in zip(src.blocks(), back.blocks(), strict=True):
        for wa, wb in zip(a, b, strict=True):
            assert [i.lane_addresses() for i in wa] == [i.lane_addresses() for i in wb]


def test_never_overwrites(tmp_path: Path):
    src = TiledGemm(16, 16, 16, tile=16).trace()
    p = write_parquet(src, tmp_path / "x.parquet")
    with pytest.raises(DatasetError, match="never overwritten"):
        write_parquet(src, p)


def test_truncated_file_is_reported(tmp_path: Path):
    p = write_parquet(TiledGemm(32, 32, 32, tile=16).trace(), tmp_path / "x.parquet")
    data = p.read_bytes()
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cut.parquet"):
        list(ParquetTrace(bad).blocks())


def test_corrupt_record_names_file_and_record(tmp_path: Path):
    p = write_parquet(TiledGemm(32, 32, 32, tile=16).trace(), tmp_path / "x.parquet")
    table = pq.read_table(p)
    ops = table.column("op").to_pylist()
    ops[17] = "warp-drive"
    table = table.set_column(
        table.schema.get_field_index("op"), "op", pa.array(ops).dictionary_encode()
    )
    bad = tmp_path / "bad.parquet"
    pq.write_table(table, bad)
    with pytest.raises(DatasetError, match=r"bad.parquet: record 17: op 'warp-drive'"):
        list(read_parquet(bad).blocks())


def test_address_count_mismatch_is_caught(tmp_path: Path):
    launch = KernelLaunch("k", (1, 1, 1), (32, 1, 1), 16)
    inst = Instruction(
        pc=0,
        opcode="LDG.E",
        op="ld",
        dst=(2,),
        mask=0xF,
        space="global",
        width=4,
        addrs=(0, 4, 8, 100),
    )
    p = write_parquet(ListTrace(launch, {0: [[inst]]}), tmp_path / "ok.parquet")
    table = pq.read_table(p)
    masks = pa.array([0xFF], type=pa.uint32())
    table = table.set_column(table.schema.get_field_index("mask"), "mask", masks)
    bad = tmp_path / "mask.parquet"
    pq.write_table(table, bad)
    with pytest.raises(DatasetError, match="record 0: 4 addresses for 8 active lanes"):
        list(read_parquet(bad).blocks())


def test_not_a_trace(tmp_path: Path):
    junk = tmp_path / "junk.parquet"
    junk.write_text("hello")
    with pytest.raises(DatasetError, match="junk.parquet"):
        read_parquet(junk)
    with pytest.raises(DatasetError, match="no such"):
        load_traces(tmp_path / "missing.parquet")


@pytest.mark.parametrize(
    ("opcode", "cls"),
    [
        ("LDG.E.128", "ld"),
        ("STS", "st"),
        ("FFMA", "fp32"),
        ("HMMA.16816.F32", "tensor"),
        ("IMAD.WIDE", "int"),
        ("BAR.SYNC", "bar"),
        ("EXIT", "exit"),
        ("MUFU.RCP", "sfu"),
        ("LDSM.16.M88.4", "ld"),
        ("RED.E.ADD", "atom"),
        ("S2R", "misc"),
        ("SHFL.DOWN", "shfl"),
    ],
)
def test_opcode_classes(opcode, cls):
    assert classify_opcode(opcode) == cls
