"""Calibration run folders: atomic, resumable, never overwritten.

A run lives in ``<root>/<device>/<run-id>/`` and holds ``manifest.json`` (provenance and the list
of finished tables) and one CSV per benchmark table (schemas in :mod:`simgpu.calibrate.schema`).

While a benchmark runs, each finished point is appended (and fsync-ed) as one JSON line to
``.partial/<table>.jsonl``; a run that is interrupted resumes from those lines, skipping the points
already measured. When the benchmark has all its points, the table is written to a temporary file
and renamed into place in one step, so a reader sees the whole table or none of it. A finished
table is never rewritten, and a new run never reuses an existing folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simgpu.calibrate.schema import TABLES, Column, TableSchema
from simgpu.errors import DatasetError
from simgpu.io import (
    append_jsonl,
    atomic_write_text,
    check_output_dir,
    plain_name,
    read_bytes,
    read_jsonl,
)

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.json"
PARTIAL_DIR = ".partial"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: The states of a run (manifest ``status``): being measured (or stopped, resumable), every
#: planned table finished, or closed early with the tables it had.
STATUSES = ("running", "complete", "incomplete")
#: Largest manifest read (the bundled ones are under 4 KiB; failed points add a few hundred
#: bytes each).
MAX_MANIFEST_BYTES = 64 << 20
#: Largest field of a table cell (csv's default limit is 128 KiB; a cell here is a number, a
#: word or one line of text).
MAX_FIELD = 1 << 20


def new_run_id(now: datetime | None = None, tag: str = "") -> str:
    """A sortable run id: UTC time to the second, plus an optional tag (``20261122T140501Z``)."""
    now = now or datetime.now(UTC)
    rid = now.strftime("%Y%m%dT%H%M%SZ")
    return f"{rid}-{tag}" if tag else rid


def check_row(schema: TableSchema, row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate one row against ``schema``; return it with every column present (in order)."""
    unknown = sorted(set(row) - set(schema.names))
    if unknown:
        raise DatasetError(
            f"{where}: table {schema.name!r}: unknown column(s) {unknown}, "
            f"expected only {list(schema.names)}"
        )
    out: dict[str, Any] = {}
    for col in schema.columns:
        value = row.get(col.name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if col.required:
                raise DatasetError(
                    f"{where}: table {schema.name!r}: column {col.name!r} is missing or empty, "
                    f"expected {col.expected()}"
                )
            out[col.name] = None
            continue
        out[col.name] = _checked(schema, col, value, where)
    return out


def _checked(schema: TableSchema, col: Column, value: Any, where: str) -> Any:
    """``value`` of column ``col`` as its type, or a DatasetError if it has another type or
    lies outside the column's range or choices."""
    v = _coerce(schema, col.name, col.type, value, where)
    ok = True
    if col.type in ("int", "float"):
        ok = col.in_range(v)
    elif col.choices:
        ok = v in col.choices
    if not ok:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise DatasetError(
            f"{where}: table {schema.name!r}: column {col.name!r}: got {shown}, expected "
            f"{col.expected()}"
        )
    return v


def _coerce(schema: TableSchema, name: str, type_: str, value: Any, where: str) -> Any:
    def bad(expected: str) -> DatasetError:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return DatasetError(
            f"{where}: table {schema.name!r}: column {name!r}: got {shown}, expected {expected}"
        )

    # numpy scalars become Python scalars
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if type_ == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("True", "False"):
            return value == "True"
        raise bad("True or False")
    if type_ == "int":
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and len(value) <= 40:
            try:
                return int(value)
            except ValueError:
                raise bad("an integer") from None
        raise bad("an integer")
    if type_ == "float":
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, int | float):
            try:
                f = float(value)
            except OverflowError:
                raise bad("a finite number") from None
        elif isinstance(value, str) and len(value) <= 400:
            try:
                f = float(value)
            except ValueError:
                raise bad("a number") from None
        else:
            raise bad("a number")
        if not math.isfinite(f):
            raise bad("a finite number")
        return f
    if not isinstance(value, str):
        raise bad("text")
    if "\r" in value or "\n" in value:
        # a cell is one line (rows_to_csv writes "\n" line ends and would leave a "\r" unquoted)
        raise bad("one line of text")
    return value


def rows_to_csv(schema: TableSchema, rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(schema.names)
    for row in rows:
        writer.writerow(["" if row[n] is None else _fmt(row[n]) for n in schema.names])
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


class RunDir:
    """One calibration run folder. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- creation and reopening ----------------------------------------------------------------
    @classmethod
    def create(
        cls, root: Path, device: str, run_id: str, provenance: Mapping[str, Any]
    ) -> RunDir:
        """Make a new, empty run folder. An existing folder is an error: runs are never reused."""
        plain_name(device, "device name", DatasetError)
        plain_name(run_id, "run id", DatasetError)
        check_output_dir(root, "calibration folder")
        parent = Path(root) / device
        path = parent / run_id
        try:
            parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            raise DatasetError(
                f"{path}: run folder already exists; a run is never overwritten"
            ) from None
        except OSError as exc:
            raise DatasetError(
                f"{path}: cannot create the run folder ({exc.strerror or exc})"
            ) from None
        (path / PARTIAL_DIR).mkdir()
        run = cls(path)
        manifest = {
            "run_id": run_id,
            "device": device,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "status": "running",
            "provenance": dict(provenance),
            "tables": {},
        }
        _write_manifest(run.manifest_path, manifest)
        return run

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """The run in folder ``path``; a DatasetError saying why where it is not one."""
        path = Path(path)
        if not path.exists():
            raise DatasetError(f"{path}: no such folder; expected a calibration run folder")
        if not path.is_dir():
            raise DatasetError(f"{path}: not a folder; expected a calibration run folder")
        run = cls(path)
        run.manifest()  # validates
        return run

    # -- manifest ------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any]:
        """The run's manifest, checked: an object with a plain-name ``run_id`` and ``device``
        (they name folders), a known ``status``, a ``provenance`` object and a ``tables``
        object whose names are known tables. A DatasetError names the file and the key."""
        where = self.manifest_path
        if not self.path.is_dir():
            raise DatasetError(f"{self.path}: not a folder; expected a calibration run folder")
        if not where.exists() and not where.is_symlink():
            raise DatasetError(f"{where}: no manifest; not a calibration run")
        raw = read_bytes(where, "manifest file", MAX_MANIFEST_BYTES)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise DatasetError(f"{where}: line {line}: not UTF-8 text") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{where}: line {exc.lineno}: not valid JSON ({exc.msg})"
            ) from None
        except RecursionError:
            raise DatasetError(f"{where}: nested too deeply; not a manifest") from None
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: got a JSON {type(data).__name__}, expected an object "
                               "with run_id, device, status, provenance and tables")
        for key in ("run_id", "device", "provenance", "tables", "status"):
            if key not in data:
                raise DatasetError(f"{where}: key {key!r} missing")
        plain_name(data["run_id"], f"{where}: run_id", DatasetError)
        plain_name(data["device"], f"{where}: device", DatasetError)
        if data["status"] not in STATUSES:
            raise DatasetError(f"{where}: status: got {_shown(data['status'])}, expected one of "
                               f"{', '.join(STATUSES)}")
        if not isinstance(data["provenance"], dict):
            raise DatasetError(f"{where}: 'provenance' must be an object")
        if not isinstance(data["tables"], dict):
            raise DatasetError(f"{where}: 'tables' must be an object")
        for name, info in data["tables"].items():
            if name not in TABLES:
                raise DatasetError(f"{where}: tables: got {_shown(name)}, expected table names "
                                   f"among {sorted(TABLES)}")
            if not isinstance(info, dict):
                raise DatasetError(f"{where}: tables.{name} must be an object")
            rows = info.get("rows")
            if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int)
                                     or rows < 0):
                raise DatasetError(f"{where}: tables.{name}.rows: got {_shown(rows)}, expected "
                                   "a count >= 0")
        return dict(data)

    def plan(self) -> tuple[str, list[str]]:
        """The level and the benchmarks the run was started with (``provenance.plan``)."""
        where = self.manifest_path
        plan = self.manifest()["provenance"].get("plan")
        if not isinstance(plan, dict):
            raise DatasetError(f"{where}: provenance.plan missing; cannot resume this run")
        level, names = plan.get("level"), plan.get("benchmarks")
        if not isinstance(level, str):
            raise DatasetError(f"{where}: provenance.plan.level: got {_shown(level)}, "
                               "expected a level name")
        if not isinstance(names, list) or not all(n in TABLES for n in names):
            raise DatasetError(f"{where}: provenance.plan.benchmarks: got {_shown(names)}, "
                               f"expected a list of table names among {sorted(TABLES)}")
        return level, list(names)

    def update_manifest(self, **fields: Any) -> None:
        m = self.manifest()
        m.update(fields)
        _write_manifest(self.manifest_path, m)

    @property
    def run_id(self) -> str:
        return str(self.manifest()["run_id"])

    @property
    def device(self) -> str:
        return str(self.manifest()["device"])

    # -- tables --------------------------------------------------------------------------------
    def finished_tables(self) -> set[str]:
        return set(self.manifest()["tables"])

    def table_path(self, name: str) -> Path:
        return self.path / f"{name}.csv"

    def _partial_path(self, name: str) -> Path:
        folder = self.path / PARTIAL_DIR
        if folder.is_symlink():  # it would lead the run's writes (and deletes) elsewhere
            raise DatasetError(f"{folder}: a link; the run's partial tables must be its own")
        return folder / f"{name}.jsonl"

    def partial_points(self, name: str) -> dict[str, list[dict[str, Any]]]:
        """Points already measured for an unfinished table, by key.

        A last line without its newline (an append cut short by a kill) is never a record: it is
        cut off the file, so the next append starts on a clean line. Any other line that is not
        a point record whose rows fit the schema is a DatasetError naming the file and line."""
        schema = _schema(name)
        path = self._partial_path(name)
        records, bad, torn = read_jsonl(path)
        if bad:
            raise DatasetError(f"{path}: line {bad[0]}: not a partial-table record (not UTF-8 "
                               "JSON)")
        points: dict[str, list[dict[str, Any]]] = {}
        for lineno, rec in records:
            if not (isinstance(rec, dict) and isinstance(rec.get("rows"), list)
                    and isinstance(rec.get("key"), str | int)):
                raise DatasetError(f"{path}: line {lineno}: not a partial-table record")
            rows = []
            for r in rec["rows"]:
                if not isinstance(r, dict):
                    raise DatasetError(f"{path}: line {lineno}: not a partial-table record")
                rows.append(check_row(schema, r, f"{path}: line {lineno}"))
            points[str(rec["key"])] = rows
        if torn:
            _drop_torn_tail(path)
        return points

    def append_point(self, name: str, key: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Record one measured point (its rows) durably before moving on. A torn last line left
        by an earlier kill is cut off first, so it never joins this record."""
        schema = _schema(name)
        if name in self.finished_tables():
            raise DatasetError(f"{self.table_path(name)}: table already finished")
        checked = [check_row(schema, r, f"{name} point {key!r}") for r in rows]
        path = self._partial_path(name)
        _drop_torn_tail(path)
        append_jsonl(path, {"key": key, "rows": checked}, allow_nan=False)

    def finish_table(self, name: str, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the table from its points, atomically, and record it in the manifest. A table
        without a measured row is not written (DatasetError): readers refuse header-only
        tables."""
        schema = _schema(name)
        target = self.table_path(name)
        if target.exists() or name in self.finished_tables():
            raise DatasetError(
                f"{target}: table already exists; finished tables are never rewritten"
            )
        points = self.partial_points(name)
        rows = [r for pts in points.values() for r in pts]
        if not rows:
            raise DatasetError(f"{target}: no measured rows ({len(points)} points); a table "
                               "needs at least one")
        atomic_write_text(target, rows_to_csv(schema, rows), overwrite=False)
        m = self.manifest()
        m["tables"][name] = {
            "rows": len(rows),
            "points": len(points),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            **dict(extra or {}),
        }
        _write_manifest(self.manifest_path, m)
        self._partial_path(name).unlink(missing_ok=True)
        return target

    def read_table(self, name: str) -> pd.DataFrame:
        """A finished table, checked against its schema and against the row count the manifest
        recorded when the table was finished."""
        df = read_table(self.table_path(name), _schema(name))
        info = self.manifest()["tables"].get(name, {})
        rows = info.get("rows")
        if rows is not None and rows != len(df):
            raise DatasetError(f"{self.table_path(name)}: holds {len(df)} rows, the manifest "
                               f"recorded {rows} when the table was finished")
        return df

    def unfinished_tables(self) -> list[str]:
        """Tables with measured points in ``.partial/`` but no finished file."""
        folder = self._partial_path("x").parent
        if not folder.exists():
            return []
        if not folder.is_dir():
            raise DatasetError(f"{folder}: not a folder; expected the run's partial tables")
        done = self.finished_tables()
        return sorted(p.stem for p in folder.glob("*.jsonl") if p.stem not in done)

    def close_incomplete(self, reason: str) -> list[str]:
        """Give up on resuming: finish every partial table as it stands, marked incomplete.

        For a run whose GPU is gone (a lent machine handed back mid-sweep). The points measured
        so far become the table; the manifest records ``"complete": false`` for each such table,
        the reason, and the run's status ``"incomplete"``. Returns the tables closed. Every
        partial table is read and checked before the first is written, so a bad one leaves the
        run as it was; one without a measured row is left out (nothing to keep).
        """
        if not reason.strip():
            raise DatasetError(f"{self.path}: closing a run needs a reason")
        status = self.manifest()["status"]
        if status != "running":
            raise DatasetError(f"{self.manifest_path}: status is {status!r}; only a running run "
                               "can be closed as incomplete")
        names = self.unfinished_tables()
        for name in names:
            if name not in TABLES:
                raise DatasetError(f"{self._partial_path(name)}: not a table of the schema; "
                                   f"expected one of {sorted(TABLES)}")
            if self.table_path(name).exists():
                raise DatasetError(f"{self.table_path(name)}: table already exists; finished "
                                   "tables are never rewritten")
        measured = {n: any(self.partial_points(n).values()) for n in names}
        closed = []
        for name in names:
            if measured[name]:
                self.finish_table(name, {"complete": False})
                closed.append(name)
        self.update_manifest(
            status="incomplete",
            closed_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            closed_reason=reason,
        )
        return closed


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left without its newline off ``path`` (if the file exists)."""
    if not path.exists() and not path.is_symlink():
        return
    data = read_bytes(path, "partial table")
    if data and not data.endswith(b"\n"):
        os.truncate(path, data.rfind(b"\n") + 1)


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _schema(name: str) -> TableSchema:
    try:
        return TABLES[name]
    except KeyError:
        raise DatasetError(f"unknown table {name!r}; known tables: {sorted(TABLES)}") from None


def read_table(path: Path, schema: TableSchema) -> pd.DataFrame:
    """Read and validate one table file; errors name the file, the line and the column. A file
    with a header and no rows is an error (a run never writes one)."""
    # here, not at the top: `simgpu` imports this module while it builds its parsers (through
    # simgpu.calibrate.cli), and pandas would add about 0.5 s to every command's start
    import pandas as pd

    path = Path(path)
    data = read_bytes(path, "table")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{path}: line {line}: not UTF-8 text") from None
    records = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path}: empty file, expected a header {list(schema.names)}")
        missing = [c.name for c in schema.columns if c.name not in header and not c.added]
        unknown = [n for n in header if n not in schema.names]
        if missing or unknown:
            raise DatasetError(
                f"{path}: header: missing columns {missing}, unknown columns {unknown}"
            )
        twice = sorted({n for n in header if header.count(n) > 1})
        if twice:
            raise DatasetError(f"{path}: header: column(s) {twice} given more than once")
        lineno = reader.line_num + 1  # where the next record starts (a cell may hold lines)
        for raw in reader:
            start, lineno = lineno, reader.line_num + 1
            if not raw:  # a blank line
                continue
            if len(raw) != len(header):
                raise DatasetError(
                    f"{path}: line {start}: {len(raw)} fields, expected {len(header)}"
                )
            row = {h: (v if v != "" else None) for h, v in zip(header, raw, strict=True)}
            records.append(check_row(schema, row, f"{path}: line {start}"))
    except csv.Error as exc:
        raise DatasetError(f"{path}: line {reader.line_num}: not a CSV table ({exc})") from None
    if not records:
        raise DatasetError(f"{path}: a header and no rows; expected at least one measured row")
    df = pd.DataFrame.from_records(records, columns=list(schema.names))
    return df
