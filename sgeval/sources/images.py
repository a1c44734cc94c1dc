"""Real-image sources: an image folder (recursive) or a dataset zip, each with an optional `dataset.json`.

Item order is the sorted relative path (forward slashes), as in stylegan2-ada-pytorch's `ImageFolderDataset`. Files
with the extensions png, jpg, jpeg, webp, bmp (any case) are images; `dataset.json` at the top and hidden entries
(a path part starting with "." and `__MACOSX`) are ignored; any other file is an error naming it, so that a stray
file never silently changes the data. Every image must have the shape of the first one (same size and channel
count, 1 = grayscale or 3 = RGB); palette and 1-bit images are converted to RGB / grayscale, other modes (RGBA,
16-bit, CMYK) are refused with the file name.

Options:
* `max_items`: use only the first `max_items` files (in sorted order).
* `xflip`: append horizontally mirrored copies of all items after the originals (item n + i is item i flipped),
  as the official `--mirror` dataset option does. The `*_full` protocols use xflip=False.

`dataset.json` (`{"labels": [["00000/img00000000.png", 6], ...]}` or `{"labels": null}`) gives per-image labels:
an integer class or a float vector, exposed by `labels` (and one-hot by `label_vectors`) in item order.

Fingerprint: sha256 over every image's relative path and content plus dataset.json and the options. A folder hashes
every file's bytes (about 1 GB/s; computed once per source object, only when a cache key is needed); a zip uses
its central directory (name, size, CRC-32 of the uncompressed bytes of every member), which changes with any byte
of any image without reading the images.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import threading
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import PIL.Image
import torch

__all__ = ["SUPPORTED_EXTENSIONS", "ImageFolderSource", "ZipImageSource", "decode_image", "open_image_source"]

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_CONVERSIONS = {"P": "RGB", "1": "L"}  # lossless, unambiguous mode conversions
_CHANNELS = {"L": 1, "RGB": 3}


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode one image file's bytes to uint8 [C, H, W] (C = 1 or 3); ValueError naming `name` when it cannot."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            image.load()  # decode now: truncated files fail here, not later
            original_mode, mode = image.mode, _CONVERSIONS.get(image.mode, image.mode)
            array = None
            if mode in _CHANNELS:
                array = np.asarray(image.convert(mode) if mode != image.mode else image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError, zlib.error) as error:
        raise ValueError(f"{name}: corrupt, truncated or unreadable image ({type(error).__name__}: {error})") from error
    if array is None:
        raise ValueError(f"{name}: unsupported image mode {original_mode!r}; convert it to RGB or grayscale "
                         "(alpha, 16-bit and CMYK images are not evaluated)")
    if array.ndim == 2:
        array = array[:, :, None]  # [H, W, 1]
    return np.ascontiguousarray(array.transpose(2, 0, 1))  # [C, H, W]


def _is_hidden(relative: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(relative).parts)


def _select_images(names: Sequence[str], where: str) -> list[str]:
    """Sorted image names among `names` (relative, forward slashes); ValueError for unsupported files or none."""
    images = []
    for name in names:
        if name == "dataset.json" or _is_hidden(name):
            continue
        if PurePosixPath(name).suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise ValueError(f"{where}: unsupported file {name!r}; image files must end with "
                             f"{', '.join(SUPPORTED_EXTENSIONS)} (remove other files, or move them elsewhere)")
        images.append(name)
    if not images:
        raise ValueError(f"{where}: no images found (looked for {', '.join(SUPPORTED_EXTENSIONS)}, recursively)")
    return sorted(images)


def _parse_labels(raw: bytes | None, names: Sequence[str], where: str) -> np.ndarray | None:
    """Labels from dataset.json in the order of `names`: int64 [N] classes or float32 [N, L] vectors, or None."""
    if raw is None:
        return None
    try:
        labels = json.loads(raw.decode("utf-8")).get("labels")
    except (UnicodeDecodeError, ValueError, AttributeError) as error:
        raise ValueError(f"{where}/dataset.json: not a JSON object with a 'labels' entry ({error})") from error
    if labels is None:
        return None
    try:
        table = {str(name).replace("\\", "/"): value for name, value in labels}
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}/dataset.json: 'labels' must be a list of [file name, label] pairs") from error
    missing = [name for name in names if name not in table]
    if missing:
        raise ValueError(f"{where}/dataset.json: no label for {missing[0]!r} ({len(missing)} images lack one)")
    values = np.asarray([table[name] for name in names])
    if values.ndim == 1 and np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    if values.ndim == 2 and np.issubdtype(values.dtype, np.number):
        return values.astype(np.float32)
    raise ValueError(f"{where}/dataset.json: labels must all be integers or all equal-length number vectors")


class _ImageFiles:
    """Shared machinery of folder and zip sources (subclasses list names and read bytes)."""

    kind = "images"
    uses_seed = False

    def __init__(
        self,
        location: Path,  # the folder or zip
        names: list[str],  # all file names, relative, forward slashes
        max_items: int | None,  # use only the first max_items images (sorted order)
        xflip: bool,  # append mirrored copies
        num_workers: int | None,  # decoding threads (None: up to 8, bounded by the CPU count)
    ) -> None:
        self.location = location
        where = str(location)
        names = _select_images(names, where)
        if max_items is not None:
            if max_items < 1:
                raise ValueError(f"max_items must be >= 1, got {max_items}")
            names = names[:max_items]
        self.names = names
        self.xflip = bool(xflip)
        self.num_items = len(names) * (2 if self.xflip else 1)
        self.image_shape = tuple(decode_image(self._read_bytes(names[0]), self._display(names[0])).shape)  # (C, H, W)
        self._labels = _parse_labels(self._dataset_json(), names, where)
        self._num_workers = num_workers or min(8, os.cpu_count() or 1)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._fingerprint: str | None = None

    # -- subclass hooks
    def _read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def _dataset_json(self) -> bytes | None:
        raise NotImplementedError

    def _content_digest(self) -> str:
        raise NotImplementedError

    def _display(self, name: str) -> str:
        return f"{self.location}/{name}"

    # -- ImageSource protocol
    @property
    def channels(self) -> int:
        """Native channel count of the images (1 or 3)."""
        return self.image_shape[0]

    @property
    def labels(self) -> np.ndarray | None:
        """Per-item labels (int64 [num_items] or float32 [num_items, L]) from dataset.json, or None."""
        if self._labels is None:
            return None
        return np.concatenate([self._labels, self._labels]) if self.xflip else self._labels

    def label_vectors(self) -> np.ndarray | None:
        """Per-item labels as float32 vectors [num_items, c_dim]: integer classes one-hot (c_dim = max + 1)."""
        labels = self.labels
        if labels is None or labels.ndim == 2:
            return labels
        onehot = np.zeros((labels.shape[0], int(labels.max()) + 1), dtype=np.float32)
        onehot[np.arange(labels.shape[0]), labels] = 1
        return onehot

    def fingerprint(self) -> str:
        """sha256 of the image contents, names, dataset.json and options (computed once per object)."""
        if self._fingerprint is None:
            options = json.dumps({"kind": type(self).__name__, "max_items": len(self.names), "xflip": self.xflip})
            digest = hashlib.sha256(options.encode("utf-8"))
            digest.update(self._content_digest().encode("ascii"))
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        """Path, counts, options and image shape (JSON-able)."""
        return {"kind": "images", "path": str(self.location), "num_files": len(self.names),
                "num_items": self.num_items, "xflip": self.xflip, "image_shape": list(self.image_shape),
                "has_labels": self._labels is not None}

    def prepare(self, device: torch.device) -> None:
        """Nothing to move; decoding threads start on first read."""

    def read(self, indices: Sequence[int], *, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 [len(indices), C, H, W] on `device` (the seed is unused: real images are fixed)."""
        for index in indices:
            if not 0 <= index < self.num_items:
                raise IndexError(f"item {index} out of range [0, {self.num_items}) for {self.location}")
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self._num_workers, thread_name_prefix="sgeval-decode")
        images = list(self._pool.map(self._load_item, indices))  # PIL decoding releases the GIL
        return torch.from_numpy(np.stack(images)).to(device)  # [B, C, H, W] uint8

    def _load_item(self, index: int) -> np.ndarray:
        name = self.names[index % len(self.names)]
        image = decode_image(self._read_bytes(name), self._display(name))  # [C, H, W]
        if image.shape != self.image_shape:
            raise ValueError(f"{self._display(name)}: image is {image.shape[0]}x{image.shape[1]}x{image.shape[2]} "
                             f"(C x H x W) but {self._display(self.names[0])} is "
                             f"{'x'.join(map(str, self.image_shape))}; all images must share size and channels")
        return image[:, :, ::-1] if index >= len(self.names) else image  # mirrored copy: flip W

    def __len__(self) -> int:
        return self.num_items

    def __getstate__(self) -> dict[str, Any]:  # thread pools and open files do not cross process boundaries
        state = self.__dict__.copy()
        state["_pool"] = None
        return state


class ImageFolderSource(_ImageFiles):
    """Images under a folder, recursively (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],  # the folder
        max_items: int | None = None,  # use only the first max_items images
        xflip: bool = False,  # append mirrored copies
        num_workers: int | None = None,  # decoding threads
    ) -> None:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder")
        names = [path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()]
        super().__init__(root, names, max_items, xflip, num_workers)

    def _read_bytes(self, name: str) -> bytes:
        return (self.location / name).read_bytes()

    def _dataset_json(self) -> bytes | None:
        meta = self.location / "dataset.json"
        return meta.read_bytes() if meta.is_file() else None

    def _content_digest(self) -> str:
        digest = hashlib.sha256()
        for name in self.names:
            data = self._read_bytes(name)
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(hashlib.sha256(data).digest())
        digest.update(self._dataset_json() or b"")
        return digest.hexdigest()


class ZipImageSource(_ImageFiles):
    """Images inside a zip file (the official dataset format), see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],  # the .zip file
        max_items: int | None = None,  # use only the first max_items images
        xflip: bool = False,  # append mirrored copies
        num_workers: int | None = None,  # decoding threads
    ) -> None:
        file = Path(path).expanduser()
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1
        self._lock = threading.Lock()
        self._path = file
        if not file.is_file():
            raise ValueError(f"{file}: no such zip file")
        names = [info.filename for info in self._archive().infolist() if not info.is_dir()]
        super().__init__(file, names, max_items, xflip, num_workers)

    def _archive(self) -> zipfile.ZipFile:
        """The open archive of this process (re-opened after a fork, as handles must not be shared)."""
        with self._lock:
            if self._zip is None or self._zip_pid != os.getpid():
                try:
                    self._zip = zipfile.ZipFile(self._path)
                except (zipfile.BadZipFile, OSError) as error:
                    raise ValueError(f"{self._path}: not a readable zip file ({error})") from error
                self._zip_pid = os.getpid()
            return self._zip

    def _read_bytes(self, name: str) -> bytes:
        try:
            return self._archive().read(name)
        except (zipfile.BadZipFile, zlib.error, OSError) as error:
            raise ValueError(f"{self._display(name)}: damaged zip member ({error})") from error

    def _dataset_json(self) -> bytes | None:
        archive = self._archive()
        return archive.read("dataset.json") if "dataset.json" in archive.namelist() else None

    def _content_digest(self) -> str:
        digest = hashlib.sha256()
        infos = {info.filename: info for info in self._archive().infolist()}
        for name in self.names:
            info = infos[name]
            digest.update(f"{name}\0{info.file_size}\0{info.CRC:08x}\0".encode())
        digest.update(self._dataset_json() or b"")
        return digest.hexdigest()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_zip"], state["_zip_pid"], state["_lock"] = None, -1, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def open_image_source(
    path: str | os.PathLike[str],  # folder or .zip
    max_items: int | None = None,  # use only the first max_items images
    xflip: bool = False,  # append mirrored copies
) -> ImageFolderSource | ZipImageSource:
    """A folder or zip source for `path`; ValueError when it is neither."""
    location = Path(path).expanduser()
    if location.is_dir():
        return ImageFolderSource(location, max_items=max_items, xflip=xflip)
    if location.suffix.lower() == ".zip":
        return ZipImageSource(location, max_items=max_items, xflip=xflip)
    raise ValueError(f"{location}: expected an image folder or a .zip dataset")
