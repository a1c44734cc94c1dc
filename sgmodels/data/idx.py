"""Reader for the IDX format of MNIST and Fashion-MNIST (`train-images-idx3-ubyte.gz` and friends).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), then one big-endian
uint32 per dimension, then the array in C order, big-endian. Files may be gzip-compressed; compression is detected
from the content (the gzip magic bytes), not from the file name. A gzip stream is inflated only as far as its header
says the array reaches (and at most as far as its compressed bytes can legitimately inflate), so a decompression
bomb costs no more memory than the file's honest content would.
"""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import numpy as np

from sgmodels.untrusted import DEFLATE_MAX_RATIO

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

# "train-images-idx3-ubyte", "t10k-images.idx3-ubyte", ... (optionally with ".gz").
_IMAGES_PATTERN = re.compile(r"images[-._]idx[34][-._]ubyte(\.gz)?$")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip) into a numpy array.

    Returns the array with the shape stored in the header and a native-endian dtype (uint8 for MNIST images
    [N, H, W] and labels [N]). Raises ValueError naming the file when it is not gzip-readable, the header is invalid,
    or the data is shorter or longer than the header promises.
    """
    path = Path(path)
    stream = _Stream(path, path.read_bytes())
    head = stream.take(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise ValueError(f"{path}: not an IDX file (the magic number must start with two zero bytes)")
    type_code, ndim = head[2], head[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    header_size = 4 + 4 * ndim
    dims = stream.take(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({4 + len(dims)} bytes, expected {header_size})")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4", count=ndim))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a forged shape cannot overflow
    if expected > stream.most_bytes():
        raise ValueError(f"{path}: IDX header {shape} needs {expected:,} data bytes, more than the file's "
                         f"{len(stream.raw):,} bytes can hold; the file is damaged or forged")
    body = stream.take(expected)
    if len(body) < expected:
        raise ValueError(f"{path}: IDX file truncated: header {shape} needs {expected} data bytes, found {len(body)}")
    if stream.take(1):
        raise ValueError(f"{path}: IDX file has trailing bytes: header {shape} needs {expected} data bytes")
    stream.check_complete()
    array = np.frombuffer(body, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


class _Stream:
    """The content of an IDX file, raw or gzip, read in order; gzip is inflated only as far as asked."""

    def __init__(self, path: Path, raw: bytes) -> None:
        self.path, self.raw, self.offset = path, raw, 0
        self.inflater = zlib.decompressobj(wbits=31) if raw.startswith(_GZIP_MAGIC) else None  # 31: gzip framing
        self.pending = raw  # compressed bytes not yet given to the inflater

    def most_bytes(self) -> int:
        """An upper bound of the content's length: the file's size, or what its gzip bytes can inflate to."""
        return len(self.raw) if self.inflater is None else DEFLATE_MAX_RATIO * len(self.raw)

    def take(self, count: int) -> bytes:
        """The next `count` bytes of content (fewer at its end); ValueError when the gzip stream is damaged."""
        if self.inflater is None:
            data = self.raw[self.offset:self.offset + count]
            self.offset += len(data)
            return data
        try:
            data = self.inflater.decompress(self.pending, count)
        except zlib.error as exc:
            raise ValueError(f"{self.path}: damaged gzip stream ({exc})") from exc
        self.pending = self.inflater.unconsumed_tail
        return data

    def check_complete(self) -> None:
        """ValueError when a gzip stream ended before its end marker and checksum (a truncated download)."""
        if self.inflater is not None and not self.inflater.eof:
            raise ValueError(f"{self.path}: damaged gzip stream (it ends before its end-of-stream marker and CRC)")


def is_idx_images_name(name: str) -> bool:
    """Whether a file name follows the MNIST naming of an IDX images file (e.g. `train-images-idx3-ubyte.gz`)."""
    return _IMAGES_PATTERN.search(name) is not None


def labels_path_for(images_path: Path) -> Path | None:
    """The labels file that belongs to an IDX images file (`*-images-idx3-ubyte[.gz]` -> `*-labels-idx1-ubyte[.gz]`),
    with or without `.gz`; None when no such file exists."""
    stem = re.sub(r"\.gz$", "", images_path.name)
    labels_stem = re.sub(r"idx[34]", "idx1", stem.replace("images", "labels"))
    if labels_stem == stem:
        return None
    for candidate in (labels_stem, labels_stem + ".gz"):
        if (images_path.parent / candidate).is_file():
            return images_path.parent / candidate
    return None


def find_idx_images(directory: Path) -> list[Path]:
    """The IDX images files directly inside `directory`: `train*` files first, then the others by name, so a
    directory such as Fashion-MNIST's gives the 60k training images before the 10k test images."""
    found = [p for p in directory.iterdir() if p.is_file() and is_idx_images_name(p.name)]
    return sorted(found, key=lambda p: (not p.name.startswith("train"), p.name))
