"""Crash-safe file replacement shared by every writer of sgmodels (snapshots, dataset zips, run files).

Recipe: create a temporary file in the SAME directory as the target (`os.replace` is only atomic within one file
system), let the caller fill it, flush and fsync it, `os.replace` it over the target, then fsync the directory so
the rename itself survives a power loss. A reader, or a crash at any moment, sees either the complete old file or
the complete new one; on an error the temporary file is removed and the old file is left untouched.

Permissions: the temporary file is created with `os.open(..., 0o666)`, so the kernel applies the process umask and
the result gets the bits a plain `open(path, "w")` would give (typically 0o644, or 0o664 under umask 002), not the
0o600 of `tempfile.mkstemp`: snapshots and datasets are often shared between users of a cluster. The umask is
never changed or queried here (querying it means setting it, which races with other threads creating files).

Failures are reported for people: an OSError inside an atomic write (a full disk, a read-only or missing folder)
becomes a `WriteError` naming the target (never the hidden temp file) with the system's reason; callers add what was
kept (`keeping`), long commands check their output folders first (`check_writable_folder`), and a result whose
final write fails is kept in a fresh temporary folder instead (`write_or_keep`). Both CLIs print a WriteError as
`could not write PATH (reason); what was kept` (`sgmodels.clierrors`).

This module has no dependency beyond the standard library; sgeval's `sgeval.atomic` builds on it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

__all__ = ["WriteError", "atomic_temp_path", "atomic_write_bytes", "check_free_space", "check_writable_folder",
           "keeping", "os_error_message", "stale_temp_files", "sweep_stale_temp_files", "write_json_atomic",
           "write_or_keep", "write_text_atomic"]

_T = TypeVar("_T")

_NEW_FILE_MODE = 0o666  # before the umask, as open() uses
_CREATE_ATTEMPTS = 16  # name collisions of 64 random bits are practically impossible; this bounds the loop


# `.<target name>.<pid>.<16 hex digits>.tmp`: the writer's pid tells whether a leftover is stale (see below).
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{16}\.tmp$")
# `.tmpXXXXXX`: the temp files of Rust's tempfile crate, which safetensors' save_file (>= 0.5) put beside a snapshot
# before sgmodels serialised snapshots itself; no writer pid, so only the idle time tells they are stale.
_FOREIGN_TEMP_NAME = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")
# A temp file whose writer is not running on this machine is stale once it has not changed for this long; the
# grace period protects writers on other hosts of a shared file system (their pids mean nothing here).
STALE_AFTER_S = 60
# Any temp file untouched for a day is stale: no atomic write takes that long.
ABANDONED_AFTER_S = 24 * 3600


class WriteError(OSError):
    """A failed write, described for people: `could not write PATH (reason)[; what was kept]`.

    `errno` and `strerror` are those of the underlying OSError (ENOSPC, EROFS, ...), `filename` is the file or
    folder the caller asked for (not a temp file), and `kept` says what survived (set by `keeping` or
    `write_or_keep`, or None).
    """

    def __init__(self, path: str | os.PathLike[str], reason: OSError, kept: str | None = None) -> None:
        super().__init__(reason.errno, reason.strerror or str(reason), os.fspath(path))
        self.kept = kept

    def __str__(self) -> str:
        return f"could not write {self.filename} ({self.strerror})" + (f"; {self.kept}" if self.kept else "")


def os_error_message(error: OSError) -> str:
    """One line for a CLI: a WriteError as it reads, else `PATH: reason` (or the error's own text)."""
    if isinstance(error, WriteError) or not (error.filename and error.strerror):
        return str(error)
    return f"{error.filename}: {error.strerror}"


def _is_failure_of(error: OSError, temp: Path) -> bool:
    """Whether an OSError inside an atomic write is the write failing: a system error (errno set) about the temp
    file or about no file at all (a full disk fails in write() without one), not a source the body was reading."""
    return error.errno is not None and error.filename in (None, str(temp), os.fspath(temp))


def _as_write_error(error: OSError, path: str | os.PathLike[str]) -> WriteError:
    return error if isinstance(error, WriteError) else WriteError(path, error)


@contextlib.contextmanager
def keeping(kept: Callable[[], str]) -> Iterator[None]:
    """Add what survived to a write failure raised inside: a WriteError (or a bare OSError, named by its own path)
    leaves with `kept()` as its `kept`, unless an inner `keeping` already said it."""
    try:
        yield
    except OSError as error:
        if not isinstance(error, WriteError) and not error.filename:
            raise
        failure = _as_write_error(error, error.filename)
        if failure.kept is None:
            failure.kept = kept()
        if failure is error:
            raise
        raise failure from error


def check_writable_folder(folder: str | os.PathLike[str]) -> Path:
    """Prove that files can be written, synced and removed in `folder` (created for the test if missing).

    Long commands call it before they start, so a read-only, missing or full output folder is found in a second
    rather than after hours of work. The probe is a small hidden temp file (swept as any other if a crash leaves it);
    folders created for the probe are removed again, so a command that fails later leaves no empty folder behind.

    Raises:
        WriteError: naming `folder` and the reason; `kept` says that nothing was started.
    """
    target = Path(folder).expanduser()
    created = [parent for parent in [target, *target.parents] if not parent.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = _create_temp(target / ".write-check")
        try:
            with open(probe, "wb") as stream:
                stream.write(b"\0" * 4096)  # a few blocks: creating an empty file can succeed on a full disk
                stream.flush()
                os.fsync(stream.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as error:
        raise WriteError(target, error, kept="nothing was started: choose a writable folder") from error
    finally:
        for parent in created:  # innermost first; best effort (another process may have used it meanwhile)
            with contextlib.suppress(OSError):
                parent.rmdir()
    return target


def check_free_space(folder: str | os.PathLike[str], need_bytes: float, what: str) -> None:
    """Refuse, before writing, `what` needing `need_bytes` in `folder` when its file system has less free.

    Raises:
        WriteError: ENOSPC naming `folder`, with both sizes and that nothing was written.
    """
    target = Path(folder)
    existing = next((path for path in [target, *target.parents] if path.exists()), target)  # created later
    try:
        free = shutil.disk_usage(existing).free
    except OSError:  # cannot tell: the writes themselves will report a full disk
        return
    if need_bytes > free:
        raise WriteError(target, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
                         kept=f"{what} need about {_size(need_bytes)} and {_size(free)} are free: nothing was written")


def _size(num_bytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if num_bytes < 1024:
            return f"{num_bytes:.0f} {unit}" if unit == "bytes" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} TiB"


def write_or_keep(folder: str | os.PathLike[str], write: Callable[[Path], _T], what: str) -> _T:
    """`write(folder)`; when that fails with an OSError, `write(rescue)` into a fresh temporary folder, then raise.

    For the final write of a long computation (a trained network, a snapshot): the result is never discarded
    because its folder filled up or turned read-only.

    Raises:
        WriteError: the original failure, whose `kept` names the rescue folder of `what` (or says that it could
            not be kept there either).
    """
    target = Path(folder)
    try:
        return write(target)
    except OSError as error:
        failure = _as_write_error(error, error.filename or target)
    try:
        rescue = Path(tempfile.mkdtemp(prefix=f"kept-{_slug(what)}-"))
        write(rescue)
    except OSError as error:
        failure.kept = f"{what} could not be kept elsewhere either ({error.strerror or error})"
        raise failure from error
    failure.kept = f"{what} was kept in {rescue}: move its files to {target}"
    raise failure


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "result"


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
        WriteError: an OSError of the body or of the write itself, naming `path` (errno and reason kept).
        Whatever else the `with` body raises; the temporary file is then removed and `path` keeps its old content.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = _create_temp(target)
    except OSError as error:
        raise _as_write_error(error, target) from error
    created_mode = stat.S_IMODE(temp.stat().st_mode)  # 0o666 minus the umask, applied by the kernel
    try:
        yield temp
        _restore_mode(temp, created_mode)
        _fsync_file(temp)  # the data must be on disk before the rename makes it visible
        os.replace(temp, target)
    except OSError as error:
        temp.unlink(missing_ok=True)
        if not _is_failure_of(error, temp):
            raise
        raise _as_write_error(error, target) from error
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
    running writer are never listed. A `.tmpXXXXXX` left by an older safetensors writer (no pid) is stale after
    `STALE_AFTER_S` without change. Returns [] for a missing directory.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    stale = []
    for path in folder.iterdir():
        match = _TEMP_NAME.match(path.name)
        if (match is None and not _FOREIGN_TEMP_NAME.match(path.name)) or not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):  # its writer may finish (rename it) while we look
            idle = now - path.stat().st_mtime
            writer_gone = match is None or not _process_running(int(match.group("pid")))
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
