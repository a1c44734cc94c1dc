"""Crash-safe file replacement shared by every writer of sgmodels (snapshots, dataset zips, run files).

Recipe: create a temporary file in the SAME directory as the target (`os.replace` is only atomic within one file
system), let the caller fill it, flush and fsync it, `os.replace` it over the target, then fsync the directory so
the rename itself survives a power loss. A reader, or a crash at any moment, sees either the complete old file or
the complete new one; on an error the temporary file is removed and the old file is left untouched.

Permissions: the temporary file is created with `os.open(..., 0o666)`, so the kernel applies the process umask and
the result gets the bits a plain `open(path, "w")` would give (typically 0o644, or 0o664 under umask 002), not the
0o600 of `tempfile.mkstemp`: snapshots and datasets are often shared between users of a cluster. The umask is
never changed or queried here (querying it means setting it, which races with other threads creating files).

This module has no dependency beyond the standard library; sgeval's `sgeval.atomic` builds on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_temp_path", "atomic_write_bytes", "stale_temp_files", "sweep_stale_temp_files", "write_json_atomic",
           "write_text_atomic"]

_NEW_FILE_MODE = 0o666  # before the umask, as open() uses
_CREATE_ATTEMPTS = 16  # name collisions of 64 random bits are practically impossible; this bounds the loop


# `.<target name>.<pid>.<16 hex digits>.tmp`: the writer's pid tells whether a leftover is stale (see below).
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{16}\.tmp$")
# A temp file whose writer is not running on this machine is stale once it has not changed for this long; the
# grace period protects writers on other hosts of a shared file system (their pids mean nothing here).
STALE_AFTER_S = 60
# Any temp file untouched for a day is stale: no atomic write takes that long.
ABANDONED_AFTER_S = 24 * 3600


def _create_temp(target: Path) -> Path:
    """Create (exclusively, empty) a hidden temporary file beside `target`, honouring the umask."""
    for _ in range(_CREATE_ATTEMPTS):
        temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), _NEW_FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return temp
    raise FileExistsError(f"could not create a temporary file beside {target} after {_CREATE_ATTEMPTS} attempts")


def _restore_mode(path: Path, mode: int) -> None:
    """Undo a writer that re-created the file privately (safetensors' save_file leaves 0o600, for one)."""
    if stat.S_IMODE(path.stat().st_mode) != mode:
        os.chmod(path, mode)


def _fsync_file(path: Path) -> None:
    """Flush a closed file's data to disk (written by someone else, e.g. a library that takes a file name)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Persist a rename inside `directory`; impossible (and unnecessary) on some platforms and file systems."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_temp_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield the path of an empty temporary file beside `path`; on a clean exit it atomically replaces `path`.

    For writers that take a file name (e.g. `safetensors.torch.save_file`). The caller may overwrite, truncate or
    re-create the yielded file (its umask-derived permissions are restored before the rename) but must leave a file
    there. Parent directories of `path` are created.

    Raises:
        Whatever the `with` body raises; the temporary file is then removed and `path` keeps its old content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _create_temp(target)
    created_mode = stat.S_IMODE(temp.stat().st_mode)  # 0o666 minus the umask, applied by the kernel
    try:
        yield temp
        _restore_mode(temp, created_mode)
        _fsync_file(temp)  # the data must be on disk before the rename makes it visible
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


@contextlib.contextmanager
def atomic_write_bytes(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary file open on a temporary file beside `path`; on a clean exit it atomically replaces `path`.

    Example::

        with atomic_write_bytes(out) as stream:
            with zipfile.ZipFile(stream, "w") as archive: ...

    Raises:
        Whatever the `with` body raises; the temporary file is then removed and `path` keeps its old content.
    """
    with atomic_temp_path(path) as temp, open(temp, "wb") as stream:
        yield stream
        stream.flush()  # atomic_temp_path fsyncs after the close


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` atomically (see `atomic_write_bytes`)."""
    with atomic_write_bytes(path) as stream:
        stream.write(text.encode(encoding))


def write_json_atomic(path: str | os.PathLike[str], data: Any, indent: int | None = 2) -> None:
    """Replace `path` with `data` as UTF-8 JSON (indented, ending in a newline) atomically.

    Raises:
        TypeError / ValueError: `data` is not JSON-serialisable (nothing is written then).
    """
    write_text_atomic(path, json.dumps(data, indent=indent) + "\n")


def _process_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but belongs to someone else, or the platform cannot tell
        return True
    return True


def stale_temp_files(directory: str | os.PathLike[str], now: float | None = None) -> list[Path]:
    """Temporary files that interrupted atomic writes (a `kill -9`, a power loss) left in `directory`.

    A temp file is stale when its writer (the pid in its name) no longer runs on this machine and the file has not
    changed for `STALE_AFTER_S`, or when it has not changed for `ABANDONED_AFTER_S` whoever wrote it. Files of a
    running writer are never listed. Returns [] for a missing directory.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    stale = []
    for path in folder.iterdir():
        match = _TEMP_NAME.match(path.name)
        if match is None or not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):  # its writer may finish (rename it) while we look
            idle = now - path.stat().st_mtime
            writer_gone = not _process_running(int(match.group("pid")))
            if idle > ABANDONED_AFTER_S or (writer_gone and idle > STALE_AFTER_S):
                stale.append(path)
    return sorted(stale)


def sweep_stale_temp_files(directory: str | os.PathLike[str]) -> int:
    """Remove `stale_temp_files(directory)`; best effort (a read-only folder keeps them). Returns how many went."""
    removed = 0
    for path in stale_temp_files(directory):
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed
