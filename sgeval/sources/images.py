"""Real-image sources: an image folder (recursive) or a dataset zip, each with optional labels.

The files, the labels and the decoding come from the dataset reader of sgmodels (`sgmodels.data.reader`, reached
through `sgeval.sources.sgmodels_adapter`), the same code that training reads its data with, so a snapshot is
evaluated on exactly the images and labels it was trained on. In short (the reader's docstring has the details):
* items are the image files (extensions PIL reads: png, jpg, jpeg, webp, bmp, tif, ...) in sorted relative path
  order (forward slashes), as in stylegan2-ada-pytorch's `ImageFolderDataset`; other files are ignored, and so are
  hidden entries (a path part starting with ".") and `__MACOSX`; a tree holding a single top folder is read from
  inside it;
* images decode to uint8 [C, H, W], C = 1 (grayscale) or 3 (RGB; palette and CMYK images are converted); alpha,
  16-bit and float images, corrupt and truncated files are errors naming the file; every image must have the shape
  of the first one (same size and channel count);
* labels come from `dataset.json` (`{"labels": [["00000/img00000000.png", 6], ...]}` or `{"labels": null}`), which
  must label every image and name no missing file, else from class sub-folders (every image in one of at least two
  first-level folders); `labels` exposes them in item order (int64 classes or float32 vectors), `label_vectors`
  one-hot.

Options:
* `max_items`: use only the first `max_items` files (in sorted order); labels are still checked for all of them.
* `xflip`: append horizontally mirrored copies of all items after the originals (item n + i is item i flipped),
  as the official `--mirror` dataset option does. The `*_full` protocols use xflip=False.

Fingerprint: sha256 over every image's relative path and content plus dataset.json and the options. A folder hashes
every file's bytes (about 1 GB/s; computed once per source object, only when a cache key is needed); a zip uses
its central directory (name, size, CRC-32 of the uncompressed bytes of every member), which changes with any byte
of any image without reading the images.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sgeval.sources.sgmodels_adapter import open_dataset_reader, read_image

if TYPE_CHECKING:
    from sgeval.sources.sgmodels_adapter import DatasetReader

__all__ = ["ImageFolderSource", "ZipImageSource", "decode_image", "open_image_source"]


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode one image file's bytes to uint8 [C, H, W] (C = 1 or 3); ValueError naming `name` when it cannot.

    The decoding of training (`sgmodels.data.reader.read_image`): CMYK and palette images become RGB.
    """
    return read_image(data, name)


class _ImageFiles:
    """Shared machinery of folder and zip sources (subclasses check the path kind and hash the contents)."""

    kind = "images"
    uses_seed = False

    def __init__(
        self,
        location: Path,  # the folder or zip
        max_items: int | None,  # use only the first max_items images (sorted order)
        xflip: bool,  # append mirrored copies
        num_workers: int | None,  # decoding threads (None: up to 8, bounded by the CPU count)
    ) -> None:
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self.location = location
        self._reader: DatasetReader = open_dataset_reader(location)  # lists images, reads and checks all labels
        self.names = self._reader.image_names[:max_items]
        self.xflip = bool(xflip)
        self.num_items = len(self.names) * (2 if self.xflip else 1)
        self.image_shape = tuple(self._reader.load(0).shape)  # (C, H, W); a bad first image fails here
        self._num_workers = num_workers or min(8, os.cpu_count() or 1)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._fingerprint: str | None = None

    def _content_digest(self) -> str:
        raise NotImplementedError

    # -- ImageSource protocol
    @property
    def channels(self) -> int:
        """Native channel count of the images (1 or 3)."""
        return self.image_shape[0]

    def _raw_indices(self) -> np.ndarray:
        """int64 [num_items]: the file index of every item (mirrored copies repeat the originals)."""
        return np.tile(np.arange(len(self.names), dtype=np.int64), 2 if self.xflip else 1)

    @property
    def labels(self) -> np.ndarray | None:
        """Per-item labels (int64 [num_items] classes or float32 [num_items, L]) from dataset.json or class
        sub-folders, or None."""
        values = self._reader.labels.values
        return None if values is None else values[self._raw_indices()]

    @property
    def label_names(self) -> list[str] | None:
        """Names of the label entries when the dataset records them: class names (dataset.json `class_names` or
        the class sub-folders) for class labels, attribute names (`attribute_names`) for attribute vectors."""
        names = self._reader.labels.names
        return None if names is None else list(names)

    def label_vectors(self) -> np.ndarray | None:
        """Per-item labels as float32 vectors [num_items, c_dim]: classes one-hot, with c_dim the number of classes
        of the whole dataset (as training's `ImageDataset.label_dim`), or None when unlabelled."""
        if self._reader.labels.values is None:
            return None
        return self._reader.label_vectors(self._raw_indices())

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
                "has_labels": self._reader.labels.values is not None}

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
        image = self._reader.load(index % len(self.names), expected_shape=self.image_shape)  # [C, H, W]
        return image[:, :, ::-1] if index >= len(self.names) else image  # mirrored copy: flip W

    def __len__(self) -> int:
        return self.num_items

    def __getstate__(self) -> dict[str, Any]:  # thread pools do not cross process boundaries (the reader re-opens)
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
        super().__init__(root, max_items, xflip, num_workers)

    def _content_digest(self) -> str:
        digest = hashlib.sha256()
        for index, name in enumerate(self.names):
            data = self._reader.read_bytes(index)
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(hashlib.sha256(data).digest())
        digest.update(self._reader.labels_file_bytes())
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
        if not file.is_file():
            raise ValueError(f"{file}: no such zip file")
        super().__init__(file, max_items, xflip, num_workers)

    def _content_digest(self) -> str:
        digest = hashlib.sha256()
        for name in self.names:
            info = self._reader.tree.zip_member(name)  # central directory only: no image is read
            digest.update(f"{name}\0{info.file_size}\0{info.CRC:08x}\0".encode())
        digest.update(self._reader.labels_file_bytes())
        return digest.hexdigest()


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
