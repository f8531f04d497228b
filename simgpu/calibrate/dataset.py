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
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simgpu.calibrate.schema import TABLES, TableSchema
from simgpu.errors import DatasetError
from simgpu.io import append_jsonl, atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.json"
PARTIAL_DIR = ".partial"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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
                    f"expected a {col.type}"
                )
            out[col.name] = None
            continue
        out[col.name] = _coerce(schema, col.name, col.type, value, where)
    return out


def _coerce(schema: TableSchema, name: str, type_: str, value: Any, where: str) -> Any:
    def bad(expected: str) -> DatasetError:
        return DatasetError(
            f"{where}: table {schema.name!r}: column {name!r}: got {value!r}, expected {expected}"
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
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad("an integer") from None
        raise bad("an integer")
    if type_ == "float":
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, int | float):
            f = float(value)
        elif isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                raise bad("a number") from None
        else:
            raise bad("a number")
        if math.isinf(f):
            raise bad("a finite number")
        return f
    if not isinstance(value, str):
        raise bad("text")
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
        if not _RUN_ID.match(device):
            raise DatasetError(f"device name {device!r} is not usable as a folder name")
        if not _RUN_ID.match(run_id):
            raise DatasetError(f"run id {run_id!r}: expected letters, digits, '.', '_' or '-'")
        path = Path(root) / device / run_id
        if path.exists():
            raise DatasetError(f"{path}: run folder already exists; a run is never overwritten")
        path.mkdir(parents=True)
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
        run = cls(Path(path))
        run.manifest()  # validates
        return run

    # -- manifest ------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any]:
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DatasetError(
                f"{self.manifest_path}: no manifest; not a calibration run"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{self.manifest_path}: line {exc.lineno}: not valid JSON ({exc.msg})"
            ) from None
        for key in ("run_id", "device", "provenance", "tables", "status"):
            if key not in data:
                raise DatasetError(f"{self.manifest_path}: key {key!r} missing")
        if not isinstance(data["tables"], dict):
            raise DatasetError(f"{self.manifest_path}: 'tables' must be an object")
        return dict(data)

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
        return self.path / PARTIAL_DIR / f"{name}.jsonl"

    def partial_points(self, name: str) -> dict[str, list[dict[str, Any]]]:
        """Points already measured for an unfinished table, by key (a torn last line is dropped)."""
        schema = _schema(name)
        path = self._partial_path(name)
        if not path.exists():
            return {}
        points: dict[str, list[dict[str, Any]]] = {}
        good_lines: list[str] = []
        torn = False
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = rec["key"]
                rows = [check_row(schema, r, f"{path}:{lineno}") for r in rec["rows"]]
            except (json.JSONDecodeError, KeyError, TypeError):
                if lineno >= len(lines) - 1:  # the last line was cut short by an interruption
                    torn = True
                    break
                raise DatasetError(f"{path}: line {lineno}: not a partial-table record") from None
            points[str(key)] = rows
            good_lines.append(line)
        if torn:  # drop the torn tail so appends start on a clean line
            atomic_write_text(path, "".join(f"{ln}\n" for ln in good_lines))
        return points

    def append_point(self, name: str, key: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Record one measured point (its rows) durably before moving on."""
        schema = _schema(name)
        if name in self.finished_tables():
            raise DatasetError(f"{self.table_path(name)}: table already finished")
        checked = [check_row(schema, r, f"{name} point {key!r}") for r in rows]
        append_jsonl(self._partial_path(name), {"key": key, "rows": checked}, allow_nan=False)

    def finish_table(self, name: str, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the table from its points, atomically, and record it in the manifest."""
        schema = _schema(name)
        target = self.table_path(name)
        if target.exists() or name in self.finished_tables():
            raise DatasetError(
                f"{target}: table already exists; finished tables are never rewritten"
            )
        points = self.partial_points(name)
        rows = [r for pts in points.values() for r in pts]
        atomic_write_text(target, rows_to_csv(schema, rows))
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
        return read_table(self.table_path(name), _schema(name))

    def unfinished_tables(self) -> list[str]:
        """Tables with measured points in ``.partial/`` but no finished file."""
        folder = self.path / PARTIAL_DIR
        if not folder.is_dir():
            return []
        done = self.finished_tables()
        return sorted(p.stem for p in folder.glob("*.jsonl") if p.stem not in done)

    def close_incomplete(self, reason: str) -> list[str]:
        """Give up on resuming: finish every partial table as it stands, marked incomplete.

        For a run whose GPU is gone (a lent machine handed back mid-sweep). The points measured
        so far become the table; the manifest records ``"complete": false`` for each such table,
        the reason, and the run's status ``"incomplete"``. Returns the tables closed.
        """
        if not reason.strip():
            raise DatasetError(f"{self.path}: closing a run needs a reason")
        status = self.manifest()["status"]
        if status != "running":
            raise DatasetError(f"{self.manifest_path}: status is {status!r}; only a running run "
                               "can be closed as incomplete")
        closed = []
        for name in self.unfinished_tables():
            self.finish_table(name, {"complete": False})
            closed.append(name)
        self.update_manifest(
            status="incomplete",
            closed_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            closed_reason=reason,
        )
        return closed


def _write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _schema(name: str) -> TableSchema:
    try:
        return TABLES[name]
    except KeyError:
        raise DatasetError(f"unknown table {name!r}; known tables: {sorted(TABLES)}") from None


def read_table(path: Path, schema: TableSchema) -> pd.DataFrame:
    """Read and validate one table file; errors name the file, the line and the column."""
    # here, not at the top: `simgpu` imports this module while it builds its parsers (through
    # simgpu.calibrate.cli), and pandas would add about 0.5 s to every command's start
    import pandas as pd

    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path}: empty file, expected a header {list(schema.names)}")
            missing = [c.name for c in schema.columns if c.name not in header and not c.added]
            unknown = [n for n in header if n not in schema.names]
            if missing or unknown:
                raise DatasetError(
                    f"{path}: header: missing columns {missing}, unknown columns {unknown}"
                )
            records = []
            for lineno, raw in enumerate(reader, 2):
                if len(raw) != len(header):
                    raise DatasetError(
                        f"{path}: line {lineno}: {len(raw)} fields, expected {len(header)}"
                    )
                row = {h: (v if v != "" else None) for h, v in zip(header, raw, strict=True)}
                records.append(check_row(schema, row, f"{path}: line {lineno}"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such table") from None
    df = pd.DataFrame.from_records(records, columns=list(schema.names))
    return df
