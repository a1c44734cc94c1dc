"""Bounded readers of untrusted bytes, shared by every reader of both packages (standard library only).

A file handed to sgmodels or sgeval (a dataset zip, its `dataset.json`, a snapshot's metadata, a detector or
classifier folder, a statistics `.npz`) may be damaged or hostile. Every reader goes through these helpers so that
such a file costs memory bounded by its legitimate size and ends in one `ValueError` that names it, never in a
`MemoryError`, a `RecursionError` or another traceback:

- `load_json`: JSON text of at most `max_bytes` bytes nested at most `max_depth` levels deep (Python's parser
  recurses once per level, so a deeply nested file would otherwise end in a RecursionError, and one of several GiB
  would be read whole);
- `read_zip_member`: a zip member whose declared size is at most a limit; zipfile stops inflating at the declared
  size (and then fails the CRC check), so the declared size bounds the memory even when the data lies about it;
- `read_json_file`: `load_json` of a file, read no further than its size bound;
- `check_zip_inflation`: the declared size of a member against what its compressed bytes can inflate to, so a
  directory entry that lies about the size cannot make a reader allocate for it;
- `check_zip_directory`: the central directory's entries must chain to its end record, so a forged name length
  cannot make members vanish;
- `check_count`: a count from a file or a command line against the largest the reader accepts, and `memory_bytes`,
  the machine's memory such counts are measured against.

The limits are module constants, named in the errors and in the README's section on untrusted files.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from typing import Any

__all__ = ["DEFLATE_MAX_RATIO", "MAX_JSON_DEPTH", "MAX_METADATA_BYTES", "check_count", "check_zip_directory",
           "check_zip_inflation", "load_json", "memory_bytes", "read_json_file", "read_zip_member"]

MAX_JSON_DEPTH = 64  # no metadata file of the project nests deeper than about 6 levels
MAX_METADATA_BYTES = 16 << 20  # a description, sidecar or options file: the project's own are a few KiB
# Deflate emits at least one bit per 258-byte match, so one compressed byte inflates to at most ~1032 bytes; bzip2
# and LZMA members can go further, so they get a looser bound.
DEFLATE_MAX_RATIO = 1032
_OTHER_MAX_RATIO = 1 << 20
_ZIP_HEADER_SLACK = 1 << 10  # a few bytes of stream framing per member

# Strings are stripped before counting brackets, so a "[" inside a file name does not count as nesting.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _json_depth(text: str) -> int:
    """Deepest bracket nesting of JSON text, ignoring brackets inside strings (linear time, no recursion)."""
    depth = deepest = 0
    for match in re.finditer(r"[\[\]{}]", _JSON_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def load_json(
    data: bytes | str,  # the file's bytes (UTF-8) or text
    where: str,  # how to name the file in an error, e.g. "runs/x/detector.json"
    *,
    max_bytes: int | None = None,  # refuse longer input (None: no size limit beyond what the caller read)
    max_depth: int = MAX_JSON_DEPTH,  # refuse deeper nesting
) -> Any:
    """Parse untrusted JSON; ValueError naming `where` when it is too large, too deep, not UTF-8 or not JSON."""
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"{where}: {len(data):,} bytes of JSON, more than the {max_bytes:,} this file may have; "
                         "the file is damaged or not what it claims to be")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not UTF-8 text ({exc})") from None
    depth = _json_depth(text)
    if depth > max_depth:
        raise ValueError(f"{where}: malformed JSON: nested {depth} levels deep (at most {max_depth} are accepted)")
    try:
        return json.loads(text)
    except RecursionError:  # unreachable after the depth check, kept as a safety net
        raise ValueError(f"{where}: malformed JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError
        raise ValueError(f"{where}: not valid JSON ({exc})") from None


def read_json_file(
    path: str | os.PathLike[str],  # the JSON file
    max_bytes: int = MAX_METADATA_BYTES,  # refuse a larger file without reading it whole
    where: str | None = None,  # how to name it in an error (default: its path)
) -> Any:
    """Parse an untrusted JSON file of at most `max_bytes` bytes (see `load_json`).

    ValueError naming the file when it is too large, too deep or not JSON; OSError (a missing or unreadable file)
    is left to the caller, which knows what a missing file means.
    """
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    return load_json(data, where or str(path), max_bytes=max_bytes)


_CENTRAL_ENTRY = b"PK\x01\x02"  # a central-directory entry: 46 bytes, then name, extra field and comment
_DIRECTORY_ENDS = (b"PK\x05\x06", b"PK\x06\x06")  # the end record, or the zip64 end record before it


def check_zip_directory(archive: zipfile.ZipFile, path: str | os.PathLike[str]) -> None:
    """ValueError when the central directory's entries do not chain up to its end record.

    zipfile trusts each entry's name, extra-field and comment lengths: a forged one makes it read the following
    entries (or the end record) as part of that entry, so members would vanish or be renamed without an error.
    Walking the entries by their lengths must land exactly on the end record, having met every entry zipfile lists.
    """
    start = getattr(archive, "start_dir", None)
    if not isinstance(start, int):
        return  # not opened from a file by zipfile's directory reader: nothing to check against
    with open(path, "rb") as handle:
        handle.seek(start)
        directory = handle.read()  # the directory, the end records and the comment: small beside the members
    position = count = 0
    while directory[position:position + 4] == _CENTRAL_ENTRY and position + 46 <= len(directory):
        name, extra, comment = (int.from_bytes(directory[position + offset:position + offset + 2], "little")
                                for offset in (28, 30, 32))
        position += 46 + name + extra + comment
        count += 1
    if directory[position:position + 4] not in _DIRECTORY_ENDS or count != len(archive.infolist()):
        raise ValueError(f"{path}: the zip's central directory is damaged or forged (its entries do not lead to its "
                         f"end record: {count:,} entries walked, {len(archive.infolist()):,} listed)")


def check_zip_inflation(info: zipfile.ZipInfo, where: str, archive: zipfile.ZipFile | None = None) -> None:
    """ValueError when a member's declared size is more than its compressed bytes can inflate to, or (given its
    `archive`) when its compressed bytes would reach past the start of the central directory."""
    start_dir = getattr(archive, "start_dir", None)  # zipfile's offset of the central directory
    # zipfile asks the file for up to 2 GiB at once, bounded only by the declared compressed size: a forged one
    # would allocate for it before any byte is read.
    if start_dir is not None and info.header_offset + info.compress_size > start_dir:
        raise ValueError(f"{where}: the zip directory declares {info.compress_size:,} compressed bytes at offset "
                         f"{info.header_offset:,}, past the end of the member data; the zip is damaged or forged")
    if info.compress_type == zipfile.ZIP_STORED:
        most = info.compress_size
    else:
        ratio = DEFLATE_MAX_RATIO if info.compress_type == zipfile.ZIP_DEFLATED else _OTHER_MAX_RATIO
        most = info.compress_size * ratio + _ZIP_HEADER_SLACK
    if info.file_size > most:
        raise ValueError(f"{where}: the zip directory declares {info.file_size:,} bytes for a member of "
                         f"{info.compress_size:,} compressed bytes, more than they can hold; the zip is damaged or "
                         "forged")


def read_zip_member(
    archive: zipfile.ZipFile,  # an open zip file
    name: str,  # the member's name in the archive
    where: str,  # how to name the member in an error
    max_bytes: int,  # the largest legitimate inflated size of this member
) -> bytes:
    """The bytes of one zip member, refusing a declared size above `max_bytes` before reading anything.

    ValueError naming `where` for an oversized or forged member and for damaged data (bad CRC, truncated stream).
    """
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"{where}: no such member in the zip") from None
    if info.file_size > max_bytes:
        raise ValueError(f"{where}: inflates to {info.file_size:,} bytes, more than the {max_bytes:,} a file of "
                         "this kind may have; refusing to read it (a damaged zip or a decompression bomb)")
    check_zip_inflation(info, where, archive)
    try:
        with archive.open(info) as member:  # inflates at most info.file_size bytes
            return member.read()
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"{where}: cannot read ({exc})") from exc


def memory_bytes(available: bool = False) -> int | None:
    """This machine's RAM, or with `available` what is free now; None where the OS does not say. The yardstick of
    counts whose results must all be held (feature rows, a grid of images)."""
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES" if available else "SC_PHYS_PAGES")
        return int(pages) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def check_count(value: int, limit: int, what: str, why: str) -> int:
    """`value` when 0 <= value <= limit, else ValueError naming `what`, the limit and `why` it is the limit."""
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value:,}")
    if value > limit:
        raise ValueError(f"{what} is {value:,}, more than the {limit:,} accepted ({why})")
    return value
