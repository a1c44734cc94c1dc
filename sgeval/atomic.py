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
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import sgmodels.fileio as fileio  # the one implementation of temporary files, shared with sgmodels (its bottom layer)

try:  # POSIX only; used to serialise concurrent appenders.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["append_line", "atomic_open", "atomic_write_bytes", "atomic_write_text", "stale_temp_files",
           "sweep_stale_temp_files"]


def stale_temp_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Temporary files that interrupted writes left in `directory` (see `sgmodels.fileio.stale_temp_files`)."""
    found: list[Path] = fileio.stale_temp_files(directory)
    return found


def sweep_stale_temp_files(directory: str | os.PathLike[str]) -> int:
    """Remove `stale_temp_files(directory)` (best effort); returns how many were removed."""
    removed: int = fileio.sweep_stale_temp_files(directory)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on a clean exit it atomically replaces `path`.

    The temporary file, its fsync, the rename, the directory fsync and the umask-honouring permissions come from
    `sgmodels.fileio.atomic_temp_path` (one implementation for both packages).

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
    text_encoding = (encoding or "utf-8") if mode == "w" else None
    with fileio.atomic_temp_path(path) as temp, open(temp, mode, encoding=text_encoding) as handle:
        yield handle
        handle.flush()  # atomic_temp_path fsyncs the closed file before the rename


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
