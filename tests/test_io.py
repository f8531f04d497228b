"""simgpu.io: atomic writes, the append-only points file, fingerprints, table reading."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from simgpu.errors import DatasetError
from simgpu.io import (
    JsonlAppender,
    append_jsonl,
    atomic_output,
    atomic_write_bytes,
    atomic_write_text,
    code_fingerprint,
    config_hash,
    load_points,
    point_key,
    read_frame,
    write_table,
)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "table.csv"
    atomic_write_text(target, "old\n")

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left


def test_atomic_output_leaves_nothing_when_the_writer_raises(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "trace.parquet"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # readable, not mkstemp's 0600


def test_atomic_write_bytes_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"1")
    atomic_write_bytes(target, b"22")
    assert target.read_bytes() == b"22"


def test_appender_ends_a_torn_line_and_loader_skips_it(tmp_path: Path) -> None:
    path = tmp_path / ".points.jsonl"
    path.write_text(json.dumps({"key": "a", "rows": [{"x": 1}]}) + "\n" + '{"key": "b", "ro')
    assert list(load_points(path)) == ["a"]
    with JsonlAppender(path, fsync_interval_s=0.5) as app:
        app.append({"key": "c", "rows": [{"x": np.int64(3), "p": Path("q")}]})
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["rows"] == [{"x": 3, "p": "q"}]
    assert load_points(path) == {"a": [{"x": 1}], "c": [{"x": 3, "p": "q"}]}


def test_append_jsonl_can_refuse_nan(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    append_jsonl(path, {"key": "k", "rows": [{"v": 1.5}]})
    with pytest.raises(ValueError):
        append_jsonl(path, {"key": "k2", "rows": [{"v": float("nan")}]}, allow_nan=False)
    assert load_points(path) == {"k": [{"v": 1.5}]}
    assert load_points(tmp_path / "missing.jsonl") == {}


def test_keys_and_hashes_are_stable() -> None:
    assert point_key({"b": 1, "a": 2}) == point_key({"a": 2, "b": 1})
    assert config_hash({"grid": {"x": [1]}}) == config_hash({"grid": {"x": [1]}})
    assert config_hash({"grid": {"x": [1]}}) != config_hash({"grid": {"x": [2]}})


def test_code_fingerprint_covers_the_device_files(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "a.toml").write_text("x = 1\n")
    first = code_fingerprint(models=models)
    assert code_fingerprint(models=models) == first
    (models / "a.toml").write_text("x = 2\n")
    assert code_fingerprint(models=models) != first
    assert code_fingerprint(models=None) == code_fingerprint(models=tmp_path / "none")


def test_write_table_and_read_frame(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1, 2], "y": [0.5, 1.5]})
    paths = write_table(df, tmp_path / "out", "t")
    assert [p.name for p in paths] == ["t.csv", "t.parquet"]
    pd.testing.assert_frame_equal(read_frame(paths[0]), df)
    pd.testing.assert_frame_equal(read_frame(paths[1]), df)
    with pytest.raises(DatasetError, match="no such file"):
        read_frame(tmp_path / "nope.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DatasetError, match="cannot read as a table"):
        read_frame(bad)
