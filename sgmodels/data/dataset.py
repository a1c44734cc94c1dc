"""Image datasets in the StyleGAN2-ADA layout (a zip or a folder of images plus an optional `dataset.json`).

The layout (which files are images, labels from dataset.json or class sub-folders, decoding and its errors) is read
by `sgmodels.data.reader.DatasetReader`, the one reader that sgeval uses too, so a snapshot is evaluated on exactly
the data it was trained on. On top of it, training adds: square images of one resolution, x-flip and the seeded
`max_size` subset.

`ImageDataset` returns `(image, label)`: image uint8 numpy [C, H, W] in [0, 255], label float32 [label_dim]
(one-hot for class indices, the vector for multi-attribute labels, empty when unlabelled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.utils.data

# The layout helpers besides DatasetReader are re-exported: `sgmodels.data.dataset_tool` imports them from here.
from sgmodels.data.reader import (
    LABELS_FILE,
    DatasetReader,
    FileTree,
    LabelTable,
    convert_image,
    decode_image,
    label_dim_of,
    read_labels,
)

__all__ = [
    "LABELS_FILE",
    "FileTree",
    "ImageDataset",
    "LabelTable",
    "convert_image",
    "decode_image",
    "label_dim_of",
    "read_labels",
]


# ---------------------------------------------------------------------------------------------------------------
# The dataset.


class ImageDataset(torch.utils.data.Dataset):
    """uint8 images [C, H, W] with labels, from a StyleGAN2-ADA style zip or a plain image folder.

    Items are `(image, label)`: image uint8 numpy [C, H, W] in [0, 255] (C = 1 or 3, H = W), label float32 numpy
    [label_dim]. Images are decoded on demand; each one's shape is checked against the first image when read.
    `xflip` appends a mirrored copy of every item (len doubles: items N..2N-1 mirror 0..N-1); `max_size` keeps a
    random subset of max_size raw images chosen by `seed`, in sorted order (as StyleGAN2-ADA does). Picklable, so it
    works with `torch.utils.data.DataLoader(num_workers > 0)`.
    """

    def __init__(
        self,
        path: str | Path,  # zip file or folder
        resolution: int | None = None,  # expected image width = height in pixels; None = take the first image's
        use_labels: bool = True,  # False: labels are empty float32 [0] vectors
        xflip: bool = False,  # append horizontally mirrored copies (doubles the length)
        max_size: int | None = None,  # keep at most this many raw images (seeded random subset)
        seed: int = 0,  # seed of the max_size subset
    ) -> None:
        if max_size is not None and (not isinstance(max_size, (int, np.integer)) or max_size < 1):
            raise ValueError(f"max_size must be a positive int or None, got {max_size!r}")
        self._reader = DatasetReader(path)
        self._use_labels = use_labels
        self._class_names = self._reader.labels.class_names
        self._raw_labels = self._reader.labels.values
        self._label_dim = self._reader.label_dim if use_labels else 0
        self._image_shape = self._first_image_shape(resolution)
        self._raw_idx, self._xflip = _select_items(len(self._reader), max_size, seed, xflip)

    def _first_image_shape(self, resolution: int | None) -> tuple[int, int, int]:
        """[C, H, W] of the first image, which must be square (and of `resolution` when given)."""
        shape = self._reader.load(0).shape  # [C, H, W]
        first = self._reader.describe(0)
        if shape[1] != shape[2]:
            raise ValueError(f"{first}: image is {shape[2]}x{shape[1]}, not square; rebuild with `--crop center|pad`")
        if resolution is not None and shape[1] != resolution:
            raise ValueError(
                f"{first}: images are {shape[1]}x{shape[2]} but resolution={resolution} was requested; "
                f"rebuild with `sgmodels dataset create --resolution {resolution}`"
            )
        return shape

    def __len__(self) -> int:
        return int(self._raw_idx.size)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8 [C, H, W], label float32 [label_dim]) of item `idx` (0 <= idx < len).

        Raises ValueError naming the file when it cannot be decoded or its shape differs from the first image's.
        """
        image = self._reader.load(int(self._raw_idx[idx]), expected_shape=self._image_shape)  # [C, H, W]
        if self._xflip[idx]:
            image = image[:, :, ::-1].copy()  # [C, H, W] mirrored left-right (copied: torch needs positive strides)
        elif not image.flags.writeable:  # a view of a read-only buffer (IDX files): torch warns on such arrays
            image = image.copy()
        return image, self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        """float32 [label_dim] label of item `idx`: one-hot for class indices, the attribute vector, or []."""
        if self._label_dim == 0:
            return np.zeros(0, dtype=np.float32)
        return self._reader.label_vectors([int(self._raw_idx[idx])])[0]

    def image_name(self, idx: int) -> str:
        """Relative path of the file behind item `idx` (mirrored items name their source image)."""
        return self._reader.image_names[int(self._raw_idx[idx])]

    @property
    def name(self) -> str:
        """Dataset name: the file or folder name without extension."""
        tree = self._reader.tree
        return tree.path.stem if tree.is_zip else tree.path.name

    @property
    def image_shape(self) -> list[int]:
        """[C, H, W] of every image."""
        return list(self._image_shape)

    @property
    def num_channels(self) -> int:
        return self._image_shape[0]

    @property
    def resolution(self) -> int:
        """Image width = height in pixels."""
        return self._image_shape[1]

    @property
    def label_shape(self) -> list[int]:
        return [self._label_dim]

    @property
    def label_dim(self) -> int:
        return self._label_dim

    @property
    def has_labels(self) -> bool:
        return self._label_dim > 0

    @property
    def has_onehot_labels(self) -> bool:
        """Whether labels are class indices (one-hot vectors) rather than attribute vectors."""
        return self.has_labels and self._raw_labels is not None and self._raw_labels.ndim == 1

    @property
    def class_names(self) -> list[str] | None:
        """Names of the class indices when the dataset records them."""
        return list(self._class_names) if self._class_names and self.has_onehot_labels else None

    @property
    def attribute_names(self) -> list[str] | None:
        """Names of the attribute vector entries when the dataset records them (`attribute_names` in dataset.json)."""
        names = self._reader.labels.attribute_names
        return list(names) if names and self.has_labels and not self.has_onehot_labels else None

    @property
    def label_names(self) -> list[str] | None:
        """The names of the label entries: class names for class labels, attribute names for attribute vectors."""
        return self.class_names if self.has_onehot_labels else self.attribute_names

    def raw_class_indices(self) -> np.ndarray | None:
        """int64 [len] class index of every item (mirrored copies included), or None without class labels."""
        if self._raw_labels is None or not self.has_onehot_labels:
            return None
        return self._raw_labels[self._raw_idx]

    def close(self) -> None:
        """Close the zip handle (it re-opens on the next read)."""
        self._reader.close()

    def __enter__(self) -> ImageDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _select_items(num_raw: int, max_size: int | None, seed: int, xflip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Raw index int64 [len] and mirror flag uint8 [len] of every item, as StyleGAN2-ADA orders them: a
    RandomState(seed) shuffle truncated to max_size and re-sorted, then the mirrored copies appended."""
    raw_idx = np.arange(num_raw, dtype=np.int64)
    if max_size is not None and num_raw > max_size:
        np.random.RandomState(seed).shuffle(raw_idx)
        raw_idx = np.sort(raw_idx[:max_size])
    flags = np.zeros(raw_idx.size, dtype=np.uint8)
    if xflip:
        raw_idx = np.tile(raw_idx, 2)
        flags = np.concatenate([flags, np.ones_like(flags)])
    return raw_idx, flags
