"""Open the files simgpu reads as input within bounds (regular files only, of a bounded size),
and create new files that never replace an existing one.

Every reader of a file a user names (device TOML files, Accel-Sim configs, ``.traceg`` kernel
traces, ``kernelslist.g``, Parquet traces) comes through here, so that a FIFO (which blocks the
reader until a writer appears), a device node such as ``/dev/zero`` (endless), a folder, or a
file far larger than its kind can be is refused at once with a reason, instead of hanging or
filling memory. Each reader passes its own limit, a named constant beside it that says why.

A file is looked at with ``stat`` before it is opened (opening some device nodes has effects),
then opened without blocking and looked at again through the open descriptor, so a file swapped
between the two looks is refused too. Reads stop one byte past the limit, so a file that grows
while it is read is refused as well.

:func:`new_file` is the other half: a file written once (an imported device file, a trace)
appears whole or not at all (through :func:`simgpu.io.atomic_output`), and never over a file that
exists, also not one that appears while it is being written.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from simgpu.io import atomic_output

__all__ = ["UnusableFile", "format_bytes", "check_file", "open_input", "read_input", "new_file"]


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


@contextmanager
def new_file(path: str | Path) -> Iterator[Path]:
    """A temporary path to write the content of ``path`` to; when the block ends normally the
    content becomes ``path`` in one step that raises :class:`FileExistsError` if ``path`` exists
    by then. On any error nothing is left behind and an existing ``path`` is untouched.

    The content is written through :func:`simgpu.io.atomic_output` to a hidden file beside
    ``path``, which is then hard-linked to ``path`` (a link never replaces a file) and removed.
    Where the file system has no hard links, ``path`` is created exclusively and the content
    copied into it.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise FileExistsError(errno.EEXIST, "exists", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)  # as simgpu.io.atomic_output does
    fd, staging_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)
    staging = Path(staging_name)
    try:
        with atomic_output(staging) as tmp:
            yield tmp
        try:
            os.link(staging, path)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            with staging.open("rb") as source, path.open("xb") as target:
                shutil.copyfileobj(source, target)
    finally:
        staging.unlink(missing_ok=True)
