"""The predictor's cache on disk: trained forests as numbers, never as code.

A trained forest (:class:`simgpu.predict.model.GemmForest`) is kept in
``$SIMGPU_CACHE/predict/<key>.npz`` (default ``~/.cache/simgpu/predict``), where the key hashes
everything the forest depends on (:func:`simgpu.predict.model.cache_key`). The file is a zip
holding ``meta.json`` (the settings, the feature columns, what the forest was trained on) and
one ``.npy`` array per member of its trees (:mod:`simgpu.predict.trees`).

Reading a file runs nothing that the file holds: the JSON is parsed as data, every array's
header is checked against the few dtypes a forest uses (numbers only: no object arrays, so no
pickle) and its length against the bytes in the zip, and the trees are checked to point inside
themselves and to end (:meth:`~simgpu.predict.trees.TreeArrays.from_arrays`). A file that fails
any check is a :class:`CacheFileError`; the predictor then says so in one line and trains again.
``np.load(path, allow_pickle=False)`` reads the arrays of such a file too.

The folder is bounded: after each write, the least recently used files go until the folder's
cache files total at most ``$SIMGPU_CACHE_MAX_MB`` megabytes (default
:data:`DEFAULT_LIMIT_MB`; 0 keeps nothing). A hit marks its file as used. Only files this
module names are counted or removed: ``<key>.npz``, the ``<key>.pkl`` pickles of earlier simgpu
versions (never loaded: a pickle can run code when read), and the temporary files of writes that
were interrupted more than an hour ago. ``simgpu predict cache`` lists them; ``--clear`` removes
them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import stat
import time
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simgpu.errors import SimgpuError
from simgpu.io import atomic_output, output_dir

__all__ = [
    "CACHE_ENV",
    "DEFAULT_LIMIT_MB",
    "LIMIT_ENV",
    "CacheFileError",
    "Entry",
    "cache_dir",
    "clear",
    "entries",
    "evict",
    "limit_bytes",
    "read",
    "touch",
    "usable_dir",
    "write",
]

CACHE_ENV = "SIMGPU_CACHE"
LIMIT_ENV = "SIMGPU_CACHE_MAX_MB"
#: Megabytes (10^6 bytes) the cache folder may hold. assumption: room for about 25 forests of
#: the default training data (about 40 MB each in this format).
DEFAULT_LIMIT_MB = 1000.0
#: What ``meta.json`` says the file is.
FORMAT = "simgpu-predict-forest"
FORMAT_VERSION = 1
SUFFIX = ".npz"
#: The dtypes an array of the file may have (numbers only).
DTYPES = frozenset(np.dtype(d) for d in ("<i4", "<i8", "<f4", "<f8", "|b1", "|u1"))
#: The most a file may expand to when read, and the most members it may have. assumption: far
#: above a forest grown here (the default forest: 40 MB in about 60 arrays).
MAX_BYTES = 2 * 2**30
MAX_MEMBERS = 1000
MAX_META_BYTES = 2**20
#: A temporary file of an interrupted write older than this is removed with the cache's files.
STALE_TMP_S = 3600.0

_KEY = r"[0-9a-f]{24}"
_ENTRY = re.compile(rf"({_KEY})\{SUFFIX}\Z")
_OLD = re.compile(rf"({_KEY})\.pkl\Z")
_TMP = re.compile(rf"\.({_KEY})\.(npz|pkl)\..*\.tmp\Z")
_MEMBER = re.compile(r"[A-Za-z0-9_.+-]{1,100}\.npy\Z")


class CacheFileError(Exception):
    """A cache file that cannot be used; the message says why (not a user error: the
    predictor reports it and trains again)."""


def cache_dir() -> Path:
    """The predictor's cache folder: ``$SIMGPU_CACHE/predict`` or ``~/.cache/simgpu/predict``
    (an empty variable counts as unset)."""
    env = os.environ.get(CACHE_ENV)
    base = Path(env) if env else Path.home() / ".cache" / "simgpu"
    return base / "predict"


def _where() -> str:
    return f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else f"the default (set ${CACHE_ENV})"


def usable_dir() -> Path:
    """The cache folder, created if needed; an :class:`~simgpu.io.OutputError` naming it where
    it cannot be (a file in its place, no permission)."""
    return output_dir(cache_dir(), f"predictor cache ({_where()})")


def limit_bytes() -> int:
    """The cache's size limit in bytes (``$SIMGPU_CACHE_MAX_MB``); a :class:`SimgpuError` for a
    value that is not a number of megabytes >= 0."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return int(DEFAULT_LIMIT_MB * 1e6)
    try:
        mb = float(text)
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and 0 <= mb <= 1e9):
        raise SimgpuError(f"${LIMIT_ENV} = {text[:40]!r}: expected a number of megabytes from 0"
                          " to 1e9 (0: cache nothing)")
    return int(mb * 1e6)


# --- one file -------------------------------------------------------------------------------


def write(path: Path, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write a cache file atomically: ``meta`` as ``meta.json``, each array as ``<name>.npy``."""
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED,
                                                     compresslevel=1) as zf:
        zf.writestr("meta.json", json.dumps(dict(meta), sort_keys=True, allow_nan=False))
        for name, arr in arrays.items():
            if not _MEMBER.match(f"{name}.npy"):
                raise ValueError(f"array name {name!r}")
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arr), allow_pickle=False)
            # floats (thresholds, leaf values) barely compress: stored as they are, they read
            # at disk speed; node indices and features shrink to a quarter
            how = zipfile.ZIP_STORED if arr.dtype.kind == "f" else zipfile.ZIP_DEFLATED
            zf.writestr(f"{name}.npy", buffer.getvalue(), compress_type=how)


def _open_regular(path: Path) -> io.BufferedReader:
    """``path`` opened for reading if it is a regular file (not a link, a FIFO, a device)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise CacheFileError(f"cannot open ({exc.strerror or exc})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CacheFileError("not a regular file")
    if st.st_size > MAX_BYTES:
        os.close(fd)
        raise CacheFileError(f"{st.st_size} bytes, more than a forest takes")
    return os.fdopen(fd, "rb")


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise CacheFileError(f"{info.filename}: .npy version {version}")
        if dtype not in DTYPES or fortran:
            raise CacheFileError(f"{info.filename}: dtype {dtype}, expected numbers")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        header = fh.tell()
        if header + nbytes != info.file_size:
            raise CacheFileError(f"{info.filename}: {info.file_size - header} bytes of data"
                                 f" for shape {shape}")
        data = fh.read(nbytes)
    if len(data) != nbytes:
        raise CacheFileError(f"{info.filename}: cut short")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape)


def read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a cache file; a :class:`CacheFileError` saying why where the file
    is not one this module wrote (damaged, cut short, crafted, another format)."""
    try:
        with _open_regular(path) as fh, zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise CacheFileError(f"{len(infos)} members")
            if sum(i.file_size for i in infos) > MAX_BYTES:
                raise CacheFileError("expands to more than a forest takes")
            names = [i.filename for i in infos]
            if "meta.json" not in names or len(set(names)) != len(names):
                raise CacheFileError("no meta.json, or a member twice")
            arrays: dict[str, np.ndarray] = {}
            meta: Any = None
            for info in infos:
                if info.filename == "meta.json":
                    if info.file_size > MAX_META_BYTES:
                        raise CacheFileError("meta.json too large")
                    meta = json.loads(zf.read(info).decode("utf-8"))
                elif _MEMBER.match(info.filename):
                    arrays[info.filename[:-4]] = _read_array(zf, info)
                else:
                    raise CacheFileError(f"unexpected member {info.filename[:60]!r}")
    except CacheFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError,
            NotImplementedError, RuntimeError, RecursionError, MemoryError, OverflowError,
            TypeError) as exc:
        # what zipfile, zlib, json and numpy's header parser raise for bytes that are not a
        # cache file (RuntimeError: an encrypted member; NotImplementedError: a compression
        # method zipfile lacks)
        raise CacheFileError(f"not a cache file ({type(exc).__name__}: {str(exc)[:120]})"
                             ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CacheFileError("not a simgpu predictor cache file")
    if meta.get("version") != FORMAT_VERSION:
        raise CacheFileError(f"format version {meta.get('version')!r}, this simgpu reads"
                             f" {FORMAT_VERSION}")
    return meta, arrays


def touch(path: Path) -> None:
    """Mark a file as just used (eviction removes the least recently used first)."""
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(path)


# --- the folder -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One file of the cache folder."""

    path: Path
    bytes: int
    mtime: float
    #: "forest" (this format), "old pickle" (never loaded), "unfinished write"
    kind: str
    #: for a forest: its meta.json, or None where it does not read
    meta: dict[str, Any] | None = None
    #: why a forest file does not read
    problem: str = ""


def _kind(name: str) -> str | None:
    if _ENTRY.match(name):
        return "forest"
    if _OLD.match(name):
        return "old pickle"
    if _TMP.match(name):
        return "unfinished write"
    return None


def entries(*, read_meta: bool = False, folder: Path | None = None) -> list[Entry]:
    """The cache's files, least recently used first (``read_meta``: with each forest's
    ``meta.json``). Files the cache does not name, links and folders are left out."""
    folder = cache_dir() if folder is None else folder
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise SimgpuError(f"predictor cache {folder}: cannot list ({exc.strerror or exc})"
                          ) from None
    now = time.time()
    out = []
    for name in names:
        kind = _kind(name)
        if kind is None:
            continue
        path = folder / name
        try:
            st = path.lstat()
        except OSError:
            continue  # removed meanwhile
        if not stat.S_ISREG(st.st_mode):
            continue
        if kind == "unfinished write" and now - st.st_mtime < STALE_TMP_S:
            continue  # a write in progress
        meta, problem = None, ""
        if read_meta and kind == "forest":
            try:
                meta = _read_meta(path)
            except CacheFileError as exc:
                problem = str(exc)
        out.append(Entry(path, int(st.st_size), float(st.st_mtime), kind, meta, problem))
    return sorted(out, key=lambda e: (e.mtime, e.path.name))


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        with _open_regular(path) as fh, zipfile.ZipFile(fh) as zf:
            info = zf.getinfo("meta.json")
            if info.file_size > MAX_META_BYTES:
                raise CacheFileError("meta.json too large")
            meta = json.loads(zf.read(info).decode("utf-8"))
    except CacheFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError,
            NotImplementedError, RuntimeError, RecursionError) as exc:
        raise CacheFileError(f"not a cache file ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CacheFileError("not a simgpu predictor cache file")
    return meta


def _remove(entry: Entry) -> bool:
    try:
        entry.path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SimgpuError(f"predictor cache: cannot remove {entry.path}"
                          f" ({exc.strerror or exc})") from None
    return True


def evict(keep: Path | None = None, limit: int | None = None) -> list[Entry]:
    """Remove the least recently used files until the cache's files total at most ``limit``
    bytes (default :func:`limit_bytes`), never ``keep`` (the file just written). Returns what
    was removed."""
    limit = limit_bytes() if limit is None else limit
    files = entries()
    total = sum(e.bytes for e in files)
    removed = []
    for e in files:
        if total <= limit:
            break
        if keep is not None and e.path == keep:
            continue
        if _remove(e):
            removed.append(e)
        total -= e.bytes
    return removed


def clear() -> list[Entry]:
    """Remove every file of the cache (forests, old pickles, stale temporary files)."""
    return [e for e in entries() if _remove(e)]
