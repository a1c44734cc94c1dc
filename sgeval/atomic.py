"""Crash-safe file writes: every cache, result and report file of sgeval goes through this module.

Two primitives:

* `atomic_open(path)` / `atomic_write_bytes` / `atomic_write_text`: write into a temporary file in the SAME
  directory, flush and fsync it, then `os.replace` it over the target and fsync the directory. A reader (or a
  crash at any moment) sees either the complete old file or the complete new file, never a partial one.
  Same directory because `os.replace` is only atomic within one file system.
* `append_line(path, line)`: add one text line to a line-oriented file (JSONL). It rewrites the file through
  `atomic_open`, so a crash can never leave half a line. The cost is O(file size) per append, which is the right
  trade for result logs (one line per metric per snapshot, kilobytes); do not use it for multi-gigabyte logs.
  Concurrent appenders on one machine are serialised with an advisory `flock` on the parent directory (POSIX
  only; on other platforms, or file systems without flock, appends are not serialised between processes).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

try:  # POSIX only; used to serialise concurrent appenders.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["append_line", "atomic_open", "atomic_write_bytes", "atomic_write_text"]


def _default_file_mode() -> int:
    """Permission bits a plain `open(path, "w")` would give: 0o666 minus the process umask.

    `tempfile.mkstemp` creates files with 0o600; without this a cache written by one user could not be read by
    the group that shares it. Read once at import (os.umask has no read-only query).
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on a clean exit it atomically replaces `path`.

    Args:
        path: destination file. Its parent directory is created if missing.
        mode: "wb" (bytes) or "w" (text). Appending modes are refused: use `append_line`.
        encoding: text encoding for mode "w" (default utf-8).

    Yields:
        A writable file object. If the `with` body raises, the temporary file is deleted and `path` is untouched.

    Example:
        >>> with atomic_open(tmp / "stats.npz") as f:  # doctest: +SKIP
        ...     np.savez(f, mu=mu, sigma=sigma)
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports mode 'wb' or 'w', got {mode!r}; use append_line() to append")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        text_encoding = (encoding or "utf-8") if mode == "w" else None
        with os.fdopen(fd, mode, encoding=text_encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` atomically (see `atomic_open`)."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` atomically (see `atomic_open`)."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Exclusive advisory lock on `directory` for read-modify-replace cycles; best effort (see module doc)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover
        yield
        return
    try:
        with contextlib.suppress(OSError):  # e.g. a file system without flock: fall back to unserialised
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def append_line(path: str | os.PathLike[str], line: str, encoding: str = "utf-8") -> None:
    """Append one line (a newline is added) to a text file so that no crash can leave a partial line.

    Args:
        path: the file; created (with parent directories) if missing.
        line: text without line breaks, e.g. one JSON object serialised on one line.
        encoding: text encoding of the file.

    If the existing file does not end with a newline (written by another tool that crashed mid-line), a newline
    is inserted first so that the damaged fragment stays on its own line, where readers can skip it.
    """
    if "\n" in line or "\r" in line:
        raise ValueError("append_line() writes exactly one line: remove the line breaks (serialise JSON compactly)")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _directory_lock(target.parent):
        old = target.read_bytes() if target.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        atomic_write_bytes(target, old + line.encode(encoding) + b"\n")
