"""Files that simgpu writes (atomically, append-only, or keyed by a fingerprint) and tables it
reads.

Every writer of the package goes through this module, so one rule holds everywhere: a reader
sees the old file or the new one, never half of one, and a point recorded as finished survives
the process that recorded it.

Whole files
    :func:`atomic_output` gives a temporary path beside the target; when the block ends
    normally the file is fsynced, made readable (mode 0644, as the shell's default umask
    gives), renamed over the target in one step and the folder fsynced; on any error the
    temporary file is removed and the target is untouched. :func:`atomic_write_bytes`,
    :func:`atomic_write_text`, :func:`write_table` (CSV and Parquet) and :func:`save_figure`
    (PNG) are built on it.
Finished points
    a results folder holds :data:`POINTS_FILE`, one JSON line ``{"key": ..., "rows": [...]}``
    per finished point, appended by :class:`JsonlAppender` (or :func:`append_jsonl` for one
    record) and read back by :func:`load_points`; :func:`point_key` is the key of a point's
    parameters. A line torn by a kill is skipped when read (that point runs again) and ended
    before the next append.
Fingerprints
    :func:`config_hash` names a results folder after its configuration, and
    :func:`code_fingerprint` hashes the sources and device files a result depends on.
Tables
    :func:`read_frame` reads a CSV or Parquet file, with a :class:`~simgpu.errors.DatasetError`
    naming the file when it cannot.

Only the standard library (and the empty ``simgpu`` package) is imported here; pandas and
matplotlib only by the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import simgpu
from simgpu.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "POINTS_FILE",
    "RESULTS_ENV",
    "JsonlAppender",
    "append_jsonl",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "code_fingerprint",
    "config_hash",
    "load_points",
    "plain",
    "point_key",
    "read_frame",
    "results_root",
    "save_figure",
    "write_table",
]

#: The append-only file of finished points in a results folder.
POINTS_FILE = ".points.jsonl"
#: Environment variable naming the root folder of results.
RESULTS_ENV = "SIMGPU_RESULTS"
#: Mode of every file written here: what ``open()`` gives under the usual umask 022 (a
#: temporary file is created 0600).
FILE_MODE = 0o644


def results_root() -> Path:
    """Where results go: ``$SIMGPU_RESULTS`` or ``./results``."""
    return Path(os.environ.get(RESULTS_ENV, "results"))


# --- whole files --------------------------------------------------------------------------------


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed over ``path`` on success.

    For writers that need a file name (a Parquet writer streaming row groups)::

        with atomic_output(target) as tmp:
            write_somehow(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: fsync the folder that holds it (where the platform allows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_table(df: pd.DataFrame, out_dir: Path, name: str, *, parquet: bool = True) -> list[Path]:
    """Write ``df`` as ``<name>.csv`` (and ``<name>.parquet``) in ``out_dir``, atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{name}.csv"
    atomic_write_text(csv_path, df.to_csv(index=False))
    paths = [csv_path]
    if parquet:
        buffer = BytesIO()
        df.to_parquet(buffer, index=False)
        pq_path = out_dir / f"{name}.parquet"
        atomic_write_bytes(pq_path, buffer.getvalue())
        paths.append(pq_path)
    return paths


def save_figure(fig: Any, path: Path, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    # lazy: pyplot costs about 1.3 s to import, and most writers never draw
    import matplotlib.pyplot as plt

    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_frame(path: Path) -> pd.DataFrame:
    """A CSV file (or ``.parquet``) as a DataFrame; DatasetError naming the file if it cannot
    be read as a table."""
    # lazy: `simgpu` imports this module while it builds its parsers, and pandas would add
    # about 0.5 s to every command's start
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise DatasetError(f"{path}: cannot read as a table: {exc}") from None


# --- finished points ----------------------------------------------------------------------------


def point_key(params: Mapping[str, Any]) -> str:
    """A stable text key for one grid point (JSON with sorted keys)."""
    return json.dumps(dict(params), sort_keys=True, default=str)


def plain(value: Any) -> Any:
    """``value`` as a JSON-ready Python value where it is a numpy scalar or a Path; else itself."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, TypeError):
            return value
    if isinstance(value, Path):
        return str(value)
    return value


def _json_default(value: Any) -> Any:
    converted = plain(value)
    if converted is value:
        raise TypeError(f"not JSON serialisable: {value!r}")
    return converted


def load_points(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The finished points of a points file by key (none when it does not exist). A line that
    does not parse (torn by an interruption) is skipped: that point counts as not finished."""
    done: dict[str, list[dict[str, Any]]] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[record["key"]] = record["rows"]
    return done


class JsonlAppender:
    """Appends one JSON line per record to ``path``.

    Every line is written and flushed at once, so it is in the file (in the operating system)
    the moment it is appended: a crash or kill of this process loses nothing written.
    ``fsync`` (which also survives an operating-system crash) runs after every line when
    ``fsync_interval_s`` is 0, else at most that often and when the file is closed: on the
    machines here an fsync costs 2-7 ms, more than a closed-form point, and per point it would
    bound a sweep at a few hundred points per second. A last line left without its newline (a
    kill mid-write) is ended before the first append, so the next record starts clean.
    ``allow_nan=False`` refuses NaN and infinities (``json.dumps``'s rule) instead of writing
    them as the non-standard ``NaN``.
    """

    def __init__(
        self, path: Path, fsync_interval_s: float = 0.0, *, allow_nan: bool = True
    ) -> None:
        self.path = Path(path)
        self.interval = fsync_interval_s
        self.allow_nan = allow_nan
        self.fh: Any = None
        self.t_sync = time.monotonic()
        self.unsynced = False

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one line (numpy scalars and paths made plain)."""
        if self.fh is None:
            torn = False
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open("rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    torn = fh.read(1) != b"\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = self.path.open("a", encoding="utf-8")
            if torn:
                self.fh.write("\n")
        line = json.dumps(dict(record), default=_json_default, allow_nan=self.allow_nan)
        self.fh.write(line + "\n")
        self.fh.flush()
        self.unsynced = True
        if time.monotonic() - self.t_sync >= self.interval:
            os.fsync(self.fh.fileno())
            self.t_sync = time.monotonic()
            self.unsynced = False

    def close(self) -> None:
        """Flush, fsync and close the file (if it was opened)."""
        if self.fh is not None:
            self.fh.flush()
            if self.unsynced:
                os.fsync(self.fh.fileno())
                self.unsynced = False
            self.fh.close()
            self.fh = None

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_jsonl(path: Path, record: Mapping[str, Any], *, allow_nan: bool = True) -> None:
    """Append one record to ``path`` durably (written, flushed and fsynced) before returning."""
    with JsonlAppender(path, allow_nan=allow_nan) as appender:
        appender.append(record)


# --- fingerprints -------------------------------------------------------------------------------


def config_hash(config: Mapping[str, Any]) -> str:
    """Short hash of a resolved configuration: equal configs share a results folder."""
    text = json.dumps(dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def code_fingerprint(
    *extra: str | Path, models: Path | None, packages: tuple[str, ...] = ()
) -> str:
    """Short hash of what a result depends on besides its grid: the simgpu package's sources
    (only those of the sub-packages ``packages`` names, e.g. ``("analytical",)``, if given),
    the device files in ``models`` (the models folder in use,
    :func:`simgpu.devices.models_dir`; None: no device files), and ``extra`` files (an
    experiment's own).

    Part of every run's configuration, so a changed model or simulator gets a new results
    folder instead of reusing points computed by the old code (and config.json records it).
    """
    pkg = Path(simgpu.__file__).resolve().parent
    roots = [pkg / name for name in packages] if packages else [pkg]
    files = sorted(f for root in roots for f in root.rglob("*.py"))
    if models is not None and models.is_dir():
        files += sorted(models.glob("*.toml"))
    files += [Path(p) for p in extra]
    h = hashlib.sha256()
    for f in files:
        try:
            data = f.read_bytes()
        except OSError:
            continue  # a file that vanished mid-walk changes nothing we can read
        h.update(f.name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:12]
