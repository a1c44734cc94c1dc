"""Reader for the IDX format of MNIST and Fashion-MNIST (`train-images-idx3-ubyte.gz` and friends).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), then one big-endian
uint32 per dimension, then the array in C order, big-endian. Files may be gzip-compressed; compression is detected
from the content (the gzip magic bytes), not from the file name.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

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
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (the magic number must start with two zero bytes)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, expected {header_size})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        kind = "truncated" if found < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {kind}: header {shape} needs {expected} data bytes, found {found}")
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    """The decompressed content of `path`; a damaged gzip stream is a ValueError naming the file."""
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: damaged gzip stream ({exc})") from exc


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
