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
Input files
    :func:`read_input`, :func:`open_input` and :func:`check_file` read or check a file a user
    named within bounds (a regular file, of at most the reader's limit), raising
    :class:`UnusableFile` with what the file is and what was expected, which each reader turns
    into its own error naming the file; :func:`read_bytes` and :func:`regular_file` do the same
    with a :class:`~simgpu.errors.DatasetError`. :func:`new_file` writes a file that must not
    exist yet.
Tables
    :func:`read_frame` reads a CSV or Parquet file, with a :class:`~simgpu.errors.DatasetError`
    naming the file when it cannot.

Paths from data
    a name read from a file or given as a value (a run id, a device name, a table name) becomes
    part of a path only through :func:`plain_name`, which refuses anything but a plain file
    name; :func:`output_dir` makes (or checks) a folder the user named for output, and every
    problem with an output folder (a file in its place, no permission, a full disk) is an
    :class:`OutputError` that names the path, not a traceback.

Only the standard library (and the empty ``simgpu`` package) is imported here; pandas and
matplotlib only by the functions that need them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import simgpu
from simgpu.errors import DatasetError, OutputError, SimgpuError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "POINTS_FILE",
    "RESULTS_ENV",
    "JsonlAppender",
    "OutputError",
    "UnusableFile",
    "append_jsonl",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_file",
    "check_output_dir",
    "code_fingerprint",
    "config_hash",
    "format_bytes",
    "load_points",
    "new_file",
    "open_input",
    "output_dir",
    "plain",
    "plain_name",
    "point_key",
    "point_record",
    "read_bytes",
    "read_jsonl",
    "read_frame",
    "read_input",
    "regular_file",
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
    """Where results go: ``$SIMGPU_RESULTS`` or ``./results`` (an empty variable counts as
    unset)."""
    return Path(os.environ.get(RESULTS_ENV) or "results")


# --- paths from data ----------------------------------------------------------------------------

#: A plain name: what a name read from data may be when it becomes part of a path.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
#: Longest plain name (file systems allow 255 bytes; a suffix or two is added to some names).
MAX_NAME = 200




def plain_name(value: object, what: str, error: type[SimgpuError] = SimgpuError) -> str:
    """``value`` if it is a plain name (letters, digits, '.', '_' and '-', starting with a letter
    or digit, at most :data:`MAX_NAME` characters), so that it names one file or folder inside
    the folder it is joined to and never a path; else an ``error`` naming ``what``."""
    if isinstance(value, str) and len(value) <= MAX_NAME and _PLAIN_NAME.match(value):
        return value
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise error(
        f"{what}: got {shown}, expected a plain name (letters, digits, '.', '_' or '-', "
        f"starting with a letter or digit, at most {MAX_NAME} characters), not a path"
    )


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Make the folder ``path`` (and its parents) if needed and check that it can be written;
    an :class:`OutputError` naming it (and ``what`` it is) where it cannot."""
    path = _no_nul(Path(path), what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{what} {path}: exists and is not a folder") from None
    except NotADirectoryError:
        raise OutputError(f"{what} {path}: a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot create the folder ({_reason(exc)})") from None
    if not path.is_dir():
        raise OutputError(f"{what} {path}: exists and is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: not writable")
    return path


def _no_nul(path: Path, what: str) -> Path:
    if "\0" in str(path):
        raise OutputError(f"{what} {str(path)!r}: a path cannot hold a NUL character")
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Check, without creating anything, that ``path`` is a folder or could be made one: nothing
    on the way to it is a file, and it is not itself a file."""
    path = _no_nul(Path(path), what)
    probe = path
    while True:
        if probe.exists() or probe.is_symlink():
            if not probe.is_dir():
                where = "exists and is not a folder" if probe == path else (
                    f"{probe} is a file, not a folder")
                raise OutputError(f"{what} {path}: {where}")
            return path
        if probe.parent == probe:
            return path
        probe = probe.parent


# --- whole files --------------------------------------------------------------------------------


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed over ``path`` on success.

    For writers that need a file name (a Parquet writer streaming row groups)::

        with atomic_output(target) as tmp:
            write_somehow(tmp)
    """
    with _atomic(Path(path), overwrite=True) as tmp:
        yield tmp


@contextmanager
def _atomic(path: Path, *, overwrite: bool) -> Iterator[Path]:
    """:func:`atomic_output`; with ``overwrite=False`` an existing ``path`` is an error, checked
    in the same step that puts the new file in place (a hard link, which fails when the target
    exists), so two writers cannot both create it."""
    output_dir(path.parent)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file to write")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise OutputError(f"{path}: already exists; results are never overwritten")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp",
                                    dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {path.parent} ({_reason(exc)})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        try:
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
            tmp.chmod(FILE_MODE)
            if overwrite:
                os.replace(tmp, path)
            else:
                _link_new(tmp, path)
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({_reason(exc)})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.unlink(missing_ok=True)  # still there after a hard link
    _fsync_dir(path.parent)


@contextmanager
def new_file(path: str | Path) -> Iterator[Path]:
    """A temporary path to write the content of a new file ``path`` to: it appears whole when
    the block ends normally, and never over a file that exists, also not one that appears while
    it is written (an :class:`OutputError` then, and nothing is left behind)."""
    with _atomic(Path(path), overwrite=False) as tmp:
        yield tmp


def _link_new(tmp: Path, path: Path) -> None:
    """Put ``tmp`` at ``path`` only if nothing is there (atomically where hard links exist)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(f"{path}: already exists; results are never overwritten") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # a file system without hard links: check, then rename (a narrow race remains)
        if path.exists():
            raise OutputError(f"{path}: already exists; results are never overwritten") from None
        os.replace(tmp, path)


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


def atomic_write_bytes(path: str | Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.
    ``overwrite=False``: an existing ``path`` is an :class:`OutputError` and stays as it was."""
    path = Path(path)
    with _atomic(path, overwrite=overwrite) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({_reason(exc)})") from exc


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = True) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def write_table(df: pd.DataFrame, out_dir: Path, name: str, *, parquet: bool = True,
                overwrite: bool = True) -> list[Path]:
    """Write ``df`` as ``<name>.csv`` (and ``<name>.parquet``) in ``out_dir``, atomically.
    ``name`` must be a plain name (:func:`plain_name`); ``overwrite=False`` refuses to replace
    an existing file."""
    plain_name(name, "table name")
    output_dir(out_dir)
    csv_path = out_dir / f"{name}.csv"
    atomic_write_text(csv_path, df.to_csv(index=False), overwrite=overwrite)
    paths = [csv_path]
    if parquet:
        buffer = BytesIO()
        df.to_parquet(buffer, index=False)
        pq_path = out_dir / f"{name}.parquet"
        atomic_write_bytes(pq_path, buffer.getvalue(), overwrite=overwrite)
        paths.append(pq_path)
    return paths


def save_figure(fig: Any, path: Path, *, dpi: int = 120, overwrite: bool = True) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    # lazy: pyplot costs about 1.3 s to import, and most writers never draw
    import matplotlib.pyplot as plt

    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue(), overwrite=overwrite)
    return path


# --- input files, within bounds ------------------------------------------------------------------
#
# Every reader of a file a user names (device files, Accel-Sim configs and traces, Parquet
# traces, calibration tables and manifests, points files) comes through here, so that a FIFO
# (which blocks the reader until a writer appears), a device node such as /dev/zero (endless), a
# folder, or a file far larger than its kind can be is refused at once with a reason, instead of
# hanging or filling memory. Each reader passes its own limit, a named constant beside it that
# says why. A file is looked at with stat before it is opened (opening some device nodes has
# effects), then opened without blocking and looked at again through the open descriptor, so a
# file swapped between the two looks is refused too; reads stop one byte past the limit, so a
# file that grows while it is read is refused as well.


class UnusableFile(Exception):
    """A file that cannot be read as input: what it is (``got``) and what was ``expected``.

    Readers turn it into their own error (:class:`~simgpu.errors.DeviceFileError`,
    :class:`~simgpu.errors.DatasetError`) naming the file.
    """

    def __init__(self, got: str, expected: str) -> None:
        self.got = got
        self.expected = expected
        super().__init__(f"{got}; expected {expected}")


def format_bytes(n: int) -> str:
    """A byte count for messages: ``512 B``, ``1 MiB``, ``2.5 GiB``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.3g} {unit}"
    return f"{n} B"  # pragma: no cover - the loop always returns


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_stat(st: os.stat_result, limit: int, what: str) -> int:
    mode = st.st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        if stat.S_ISDIR(mode):
            raise UnusableFile(kind, "a file, not a directory")
        raise UnusableFile(kind, f"a regular file ({what})")
    if st.st_size > limit:
        raise UnusableFile(format_bytes(st.st_size), f"at most {format_bytes(limit)} for {what}")
    return int(st.st_size)


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise UnusableFile("nothing there", "an existing file") from None
    except NotADirectoryError:
        raise UnusableFile("a path through a file", "an existing file") from None
    except OSError as exc:
        raise UnusableFile(f"unreadable ({exc.strerror})", "a readable file") from None
    except ValueError as exc:  # an embedded NUL byte in the path
        raise UnusableFile(f"an invalid path ({exc})", "a file path") from None


def check_file(path: str | Path, limit: int, what: str) -> int:
    """The size of ``path`` if it is a regular file of at most ``limit`` bytes; otherwise
    :class:`UnusableFile`. For readers that hand the path to a library (pyarrow)."""
    return _check_stat(_stat(Path(path)), limit, what)


@contextmanager
def open_input(path: str | Path, limit: int, what: str) -> Iterator[BinaryIO]:
    """``path`` opened for binary reading after the checks of :func:`check_file` (made again on
    the open descriptor). The caller reads at most ``limit + 1`` bytes to notice growth."""
    path = Path(path)
    _check_stat(_stat(path), limit, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UnusableFile("nothing there", "an existing file") from None
    except OSError as exc:
        raise UnusableFile(f"unreadable ({exc.strerror})", "a readable file") from None
    try:
        _check_stat(os.fstat(fd), limit, what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_input(path: str | Path, limit: int, what: str) -> bytes:
    """The whole content of ``path``, a regular file of at most ``limit`` bytes."""
    with open_input(path, limit, what) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise UnusableFile(f"unreadable ({exc.strerror})", "a readable file") from None
    if len(data) > limit:
        raise UnusableFile(
            f"more than {format_bytes(limit)} (it grew while read)",
            f"at most {format_bytes(limit)} for {what}",
        )
    return data


#: Largest data file read whole (tables, manifests, points files): far above any simgpu writes.
MAX_READ_BYTES = 1 << 30


def _dataset_error(path: Path, what: str, exc: UnusableFile) -> DatasetError:
    """A reader's :class:`UnusableFile` as the DatasetError of a data file."""
    got = exc.got
    if got == "nothing there":
        return DatasetError(f"{path}: no such {what}")
    if got == "a directory":
        return DatasetError(f"{path}: a folder, expected a {what}")
    if any(got.startswith(k) for _, k in _KINDS) or got == "not a regular file":
        return DatasetError(f"{path}: not a regular file ({got}), expected a {what}")
    if exc.expected.startswith("at most"):
        return DatasetError(f"{path}: {got}, expected {exc.expected}")
    return DatasetError(f"{path}: cannot read ({got})")


def regular_file(path: Path, what: str = "file", limit: int = MAX_READ_BYTES) -> int:
    """The size of ``path`` if it is a regular file (a link to one counts) of at most ``limit``
    bytes; a DatasetError naming it otherwise: a missing file, a folder, or a pipe or device,
    which would block a reader or never end."""
    try:
        return check_file(path, limit, f"a {what}")
    except UnusableFile as exc:
        raise _dataset_error(path, what, exc) from None


def read_bytes(path: Path, what: str = "file", limit: int = MAX_READ_BYTES) -> bytes:
    """The content of the regular file ``path`` (:func:`regular_file`), at most ``limit``
    bytes; a DatasetError naming the file where it cannot be read."""
    try:
        return read_input(path, limit, f"a {what}")
    except UnusableFile as exc:
        raise _dataset_error(path, what, exc) from None


def read_frame(path: Path) -> pd.DataFrame:
    """A CSV file (or ``.parquet``) as a DataFrame; DatasetError naming the file if it cannot
    be read as a table."""
    # lazy: `simgpu` imports this module while it builds its parsers, and pandas would add
    # about 0.5 s to every command's start
    import pandas as pd

    regular_file(path, "file")
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


def read_jsonl(path: Path) -> tuple[list[tuple[int, Any]], list[int], bool]:
    """The lines of an append-only JSON-lines file: ``(records, bad, torn)``.

    ``records``: ``(line number, parsed value)`` of every line that parses; ``bad``: the numbers
    of lines that end with a newline but do not parse (not UTF-8, not JSON); ``torn``: whether
    the file ends with a line left without its newline, which is never a record (a kill in the
    middle of an append leaves one, and even a complete-looking one may be short of its end).
    A missing file has no lines. A path that is not a readable file is a DatasetError."""
    if not path.exists() and not path.is_symlink():
        return [], [], False
    data = read_bytes(path, "JSON-lines file")
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    records: list[tuple[int, Any]] = []
    bad: list[int] = []
    for lineno, raw in enumerate(lines[:-1], 1):
        if not raw.strip():
            continue
        try:
            records.append((lineno, json.loads(raw.decode("utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            bad.append(lineno)
    return records, bad, torn


def point_record(path: Path, lineno: int, record: Any) -> tuple[str, list[dict[str, Any]]]:
    """The key and rows of one parsed line of a points file; a DatasetError naming the file and
    the line where it is not ``{"key": <text>, "rows": [<object>, ...]}``."""
    if isinstance(record, dict) and isinstance(record.get("key"), str):
        rows = record.get("rows")
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            return record["key"], rows
    raise DatasetError(
        f"{path}: line {lineno}: not a point record, expected "
        '{"key": <text>, "rows": [<object>, ...]}'
    )


def load_points(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The finished points of a points file by key (none when it does not exist).

    A line that does not parse is the remains of an interrupted append (the last line, or one
    that a later append ended with a newline): it is skipped, and that point counts as not
    finished. A line that parses but is not a point record is a DatasetError naming the file
    and the line: the file is not a points file."""
    done: dict[str, list[dict[str, Any]]] = {}
    records, _bad, _torn = read_jsonl(path)
    for lineno, record in records:
        key, rows = point_record(path, lineno, record)
        done[key] = rows
    return done


class JsonlAppender:
    """Appends one JSON line per record to ``path``.

    Every line goes to the file in one ``write`` on a descriptor opened for appending, so it is
    in the file (in the operating system) the moment it is appended, whole, after whatever
    another appender wrote: a crash or kill of this process loses nothing written.
    ``fsync`` (which also survives an operating-system crash) runs after every line when
    ``fsync_interval_s`` is 0, else at most that often and when the file is closed: on the
    machines here an fsync costs 2-7 ms, more than a closed-form point, and per point it would
    bound a sweep at a few hundred points per second. A last line left without its newline (a
    kill mid-write) is ended before the first append, so the next record starts clean and the
    torn one stays a line of its own that readers skip (:func:`read_jsonl`).
    ``allow_nan=False`` refuses NaN and infinities (``json.dumps``'s rule) instead of writing
    them as the non-standard ``NaN``. A path that cannot be written is an :class:`OutputError`.
    """

    def __init__(
        self, path: Path, fsync_interval_s: float = 0.0, *, allow_nan: bool = True
    ) -> None:
        self.path = Path(path)
        self.interval = fsync_interval_s
        self.allow_nan = allow_nan
        self.fd: int | None = None
        self.t_sync = time.monotonic()
        self.unsynced = False

    def _open(self) -> int:
        output_dir(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot append ({_reason(exc)})") from None
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                _write_all(fd, b"\n")  # end the torn line
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"{self.path}: cannot append ({_reason(exc)})") from None
        return fd

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one line (numpy scalars and paths made plain)."""
        line = json.dumps(dict(record), default=_json_default, allow_nan=self.allow_nan)
        if self.fd is None:
            self.fd = self._open()
        try:
            _write_all(self.fd, (line + "\n").encode("utf-8"))
            self.unsynced = True
            if time.monotonic() - self.t_sync >= self.interval:
                os.fsync(self.fd)
                self.t_sync = time.monotonic()
                self.unsynced = False
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot append ({_reason(exc)})") from None

    def close(self) -> None:
        """Fsync and close the file (if it was opened)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                if self.unsynced:
                    os.fsync(fd)
                    self.unsynced = False
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot sync ({_reason(exc)})") from None
            finally:
                os.close(fd)

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    """``data`` to ``fd`` (one ``write`` call unless the system takes less)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


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
        # regular files only: a FIFO or /dev/zero named *.toml would block or never end
        files += sorted(f for f in models.glob("*.toml") if f.is_file())
    files += [Path(p) for p in extra]
    h = hashlib.sha256()
    for f in files:
        try:
            data = read_input(f, MAX_READ_BYTES, "a source or device file")
        except UnusableFile:
            continue  # vanished mid-walk, or not a file: nothing a result depends on
        h.update(f.name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:12]
