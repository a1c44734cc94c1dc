"""Image datasets in the StyleGAN2-ADA layout (a zip or a folder of images plus an optional `dataset.json`).

Layout read here (and written by `sgmodels.data.dataset_tool`):
- image files anywhere in the tree, in sorted path order (PNG, JPEG, ... anything PIL reads);
- labels from `dataset.json` at the root, `{"labels": [[relative/path.png, label], ...]}` where a label is an int
  class index or a list of numbers (multi-attribute), or `{"labels": null}`; our files may add `"class_names"`;
- without `dataset.json`, the first-level sub-folder names (sorted) are class indices when every image lies in a
  sub-folder and there are at least two of them, except for the official `00000/img00000000.png` layout;
- a tree whose only entry at the top is one folder (a zip of a folder) is read from inside that folder;
- hidden files and `__MACOSX/` are ignored.

`ImageDataset` returns `(image, label)`: image uint8 numpy [C, H, W] in [0, 255], label float32 [label_dim]
(one-hot for class indices, the vector for multi-attribute labels, empty when unlabelled).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch.utils.data

LABELS_FILE = "dataset.json"
_OFFICIAL_NAME = re.compile(r"^\d{5}/img\d{8}\.png$")
_NATURAL_MODES = {"1": "L", "L": "L", "RGB": "RGB", "P": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB",
                  "HSV": "RGB"}
_CHANNEL_MODES = {1: "L", 3: "RGB"}
_HIGH_BIT_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N"}


def image_extensions() -> set[str]:
    """Lower-case file extensions (with the dot) that PIL can decode."""
    PIL.Image.init()
    return {ext.lower() for ext in PIL.Image.registered_extensions()}


# ---------------------------------------------------------------------------------------------------------------
# File trees: a folder or a zip, addressed by relative POSIX paths.


class FileTree:
    """Read-only view of the files below a folder or inside a zip, by relative POSIX path.

    Picklable: a zip handle is opened lazily and re-opened in every process (DataLoader workers, forked or
    spawned), because a handle shared across processes would interleave their seeks.
    """

    def __init__(
        self,
        path: str | Path,  # a folder or a .zip file
    ) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self.is_zip = False
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self.is_zip = True
        elif self.path.exists():
            raise ValueError(f"{self.path}: neither a folder nor a readable zip file")
        else:
            raise ValueError(f"{self.path}: no such file or folder")
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1
        names = self._list_all()
        self.prefix = _single_top_folder(names)
        self.names = sorted(name[len(self.prefix):] for name in names)

    def _list_all(self) -> list[str]:
        if self.is_zip:
            names = [info.filename for info in self._zipfile().infolist() if not info.is_dir()]
        else:
            names = [
                Path(root, fname).relative_to(self.path).as_posix()
                for root, _dirs, files in os.walk(self.path)
                for fname in files
            ]
        return [name for name in names if not _is_junk(name)]

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (OSError, zipfile.BadZipFile) as exc:
                raise ValueError(f"{self.path}: cannot open zip file ({exc})") from exc
            self._zip_pid = os.getpid()
        return self._zip

    def describe(self, name: str) -> str:
        """How to name file `name` in an error message: its path, or `zip path:member`."""
        return f"{self.path}:{self.prefix}{name}" if self.is_zip else str(self.path / self.prefix / name)

    def exists(self, name: str) -> bool:
        return name in self.names

    def read(self, name: str) -> bytes:
        """The bytes of file `name`; a damaged zip member is a ValueError naming it."""
        try:
            if self.is_zip:
                return self._zipfile().read(self.prefix + name)
            return (self.path / self.prefix / name).read_bytes()
        except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise ValueError(f"{self.describe(name)}: cannot read ({exc})") from exc

    def image_names(self) -> list[str]:
        """Sorted relative paths of the image files."""
        extensions = image_extensions()
        return [name for name in self.names if os.path.splitext(name)[1].lower() in extensions]

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        self._zip = None

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _zip=None, _zip_pid=-1)


def _is_junk(name: str) -> bool:
    """Hidden files, macOS resource forks: never data."""
    return name.startswith("__MACOSX/") or any(part.startswith(".") for part in name.split("/"))


def _single_top_folder(names: list[str]) -> str:
    """'folder/' when every file lies below one top-level folder (a zip made from a folder), else ''."""
    tops = {name.split("/", 1)[0] if "/" in name else None for name in names}
    if len(tops) == 1 and None not in tops:
        top = tops.pop()
        if top is not None and not re.fullmatch(r"\d{5}", top):  # an official zip with < 1000 images has only 00000/
            return f"{top}/"
    return ""


# ---------------------------------------------------------------------------------------------------------------
# Decoding.


def decode_image(data: bytes, name: str) -> PIL.Image.Image:
    """Decode image bytes fully (so truncation is caught here); ValueError naming `name` when PIL cannot."""
    try:
        image = PIL.Image.open(io.BytesIO(data))
        image.load()
    except PIL.UnidentifiedImageError as exc:
        raise ValueError(f"{name}: corrupt or unreadable image (not in any format PIL recognises)") from exc
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as exc:
        raise ValueError(f"{name}: corrupt or unreadable image ({exc})") from exc
    return image


def convert_image(image: PIL.Image.Image, name: str, channels: int | None = None) -> PIL.Image.Image:
    """Convert to mode 'L' (1 channel) or 'RGB' (3 channels).

    channels=None keeps the natural channel count (grayscale stays 1, colour and palette become 3); images with an
    alpha channel need an explicit choice. 16-bit and float images are refused (PIL would clip them to 8 bits).
    """
    if image.mode in _HIGH_BIT_MODES:
        raise ValueError(f"{name}: {image.mode!r} images (16-bit or float) are not supported; convert to 8 bits")
    if channels is None:
        if image.mode not in _NATURAL_MODES:
            raise ValueError(
                f"{name}: image mode {image.mode!r} (alpha channel) needs an explicit channel count: "
                "rebuild with `sgmodels dataset create --channels 1|3`"
            )
        target = _NATURAL_MODES[image.mode]
    elif channels in _CHANNEL_MODES:
        target = _CHANNEL_MODES[channels]
    else:
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return image if image.mode == target else image.convert(target)


def image_to_array(image: PIL.Image.Image) -> np.ndarray:
    """PIL image in mode 'L' or 'RGB' -> uint8 numpy [C, H, W]."""
    array = np.asarray(image, dtype=np.uint8)  # [H, W] or [H, W, C]
    if array.ndim == 2:
        array = array[:, :, np.newaxis]  # [H, W, 1]
    return array.transpose(2, 0, 1)  # [C, H, W]


# ---------------------------------------------------------------------------------------------------------------
# Labels.


@dataclass(frozen=True)
class LabelTable:
    """Labels of the images of a tree, in the order of `image_names`.

    values: None (unlabelled), int64 [N] class indices >= 0, or float32 [N, D] multi-attribute vectors.
    class_names: names of the class indices when known (sub-folder names, or `class_names` in dataset.json).
    source: where the labels came from ("dataset.json", "sub-folders" or "none"), for messages.
    """

    values: np.ndarray | None
    class_names: list[str] | None
    source: str


def read_labels(tree: FileTree, image_names: list[str]) -> LabelTable:
    """Labels for `image_names` of `tree`: from dataset.json, else from sub-folder names, else none.

    Raises ValueError naming dataset.json (or the offending image) when the file is malformed, an image has no
    label, a label names no image, or label kinds are mixed.
    """
    if tree.exists(LABELS_FILE):
        return _labels_from_json(tree, image_names)
    classes = _subfolder_classes(image_names)
    if classes is None:
        return LabelTable(values=None, class_names=None, source="none")
    index = {cls: i for i, cls in enumerate(classes)}
    values = np.array([index[name.split("/", 1)[0]] for name in image_names], dtype=np.int64)
    return LabelTable(values=values, class_names=classes, source="sub-folders")


def _subfolder_classes(image_names: list[str]) -> list[str] | None:
    """Sorted first-level folder names when they can be classes (every image in one, at least two, and not the
    official `00000/img00000000.png` layout), else None."""
    if not image_names or any("/" not in name for name in image_names):
        return None
    if all(_OFFICIAL_NAME.match(name) for name in image_names):
        return None
    classes = sorted({name.split("/", 1)[0] for name in image_names})
    return classes if len(classes) >= 2 else None


def _labels_from_json(tree: FileTree, image_names: list[str]) -> LabelTable:
    where = tree.describe(LABELS_FILE)
    try:
        meta = json.loads(tree.read(LABELS_FILE))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or "labels" not in meta:
        raise ValueError(f'{where}: expected an object with a "labels" key')
    class_names = _json_class_names(meta.get("class_names"), where)
    if meta["labels"] is None:
        return LabelTable(values=None, class_names=None, source=LABELS_FILE)
    by_name = _json_label_map(meta["labels"], where)
    missing = [name for name in image_names if name not in by_name]
    if missing:
        raise ValueError(
            f"{where}: no label for {len(missing)} image(s), e.g. {tree.describe(missing[0])}; "
            "every image must be listed"
        )
    extra = sorted(set(by_name) - set(image_names))
    if extra:
        raise ValueError(f"{where}: {len(extra)} label(s) name no image file, e.g. {extra[0]!r}")
    values = _label_array([by_name[name] for name in image_names], where)
    return LabelTable(values=values, class_names=class_names, source=LABELS_FILE)


def _json_class_names(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'{where}: "class_names" must be a list of strings')
    return list(value)


def _json_label_map(pairs: Any, where: str) -> dict[str, Any]:
    if not isinstance(pairs, list):
        raise ValueError(f'{where}: "labels" must be null or a list of [file name, label] pairs')
    by_name: dict[str, Any] = {}
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(f"{where}: bad label entry {pair!r}; expected [file name, label]")
        name = pair[0].replace("\\", "/")
        if name in by_name:
            raise ValueError(f"{where}: {name!r} is labelled twice")
        by_name[name] = pair[1]
    return by_name


def _label_array(labels: list[Any], where: str) -> np.ndarray:
    """All-int labels -> int64 [N] (>= 0); all equal-length number lists -> float32 [N, D]; else ValueError."""
    if all(_is_int(v) for v in labels):
        values = np.array(labels, dtype=np.int64)
        if values.size and values.min() < 0:
            raise ValueError(f"{where}: class indices must be >= 0, found {int(values.min())}")
        return values
    if all(isinstance(v, list) and all(_is_number(x) for x in v) for v in labels):
        lengths = {len(v) for v in labels}
        if len(lengths) != 1:
            raise ValueError(f"{where}: multi-attribute labels have different lengths {sorted(lengths)}")
        return np.array(labels, dtype=np.float32).reshape(len(labels), lengths.pop())
    bad = next(v for v in labels if not _is_int(v))
    raise ValueError(
        f"{where}: labels must be all int class indices or all lists of numbers; found {bad!r} among them"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def label_dim_of(table: LabelTable) -> int:
    """Length of the label vector: number of classes (max index + 1, or len(class_names) if larger), the
    attribute count, or 0 when unlabelled."""
    if table.values is None:
        return 0
    if table.values.ndim == 2:
        return int(table.values.shape[1])
    num_classes = int(table.values.max()) + 1 if table.values.size else 0
    return max(num_classes, len(table.class_names or []))


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
        self._tree = FileTree(path)
        self._image_names = self._tree.image_names()
        if not self._image_names:
            raise ValueError(f"{path}: no image files found")
        table = read_labels(self._tree, self._image_names)
        self._use_labels = use_labels
        self._class_names = table.class_names
        self._raw_labels = table.values
        self._label_dim = label_dim_of(table) if use_labels else 0
        self._image_shape = self._first_image_shape(resolution)
        self._raw_idx, self._xflip = _select_items(len(self._image_names), max_size, seed, xflip)

    def _first_image_shape(self, resolution: int | None) -> tuple[int, int, int]:
        shape = self._load_raw_image(0, expected=None).shape  # [C, H, W]
        first = self._tree.describe(self._image_names[0])
        if shape[1] != shape[2]:
            raise ValueError(f"{first}: image is {shape[2]}x{shape[1]}, not square; rebuild with `--crop center|pad`")
        if resolution is not None and shape[1] != resolution:
            raise ValueError(
                f"{first}: images are {shape[1]}x{shape[2]} but resolution={resolution} was requested; "
                f"rebuild with `sgmodels dataset create --resolution {resolution}`"
            )
        return shape

    def _load_raw_image(self, raw_index: int, expected: tuple[int, int, int] | None) -> np.ndarray:
        """Decode raw image `raw_index` -> uint8 [C, H, W]; ValueError naming the file if its shape != expected."""
        name = self._image_names[raw_index]
        where = self._tree.describe(name)
        image = image_to_array(convert_image(decode_image(self._tree.read(name), where), where))  # [C, H, W]
        if expected is not None and image.shape != expected:
            first = self._tree.describe(self._image_names[0])
            raise ValueError(
                f"{where}: image shape [C, H, W] = {list(image.shape)} differs from {list(expected)} of {first}; "
                "rebuild the dataset with `sgmodels dataset create --resolution R --channels C`"
            )
        return image

    def __len__(self) -> int:
        return int(self._raw_idx.size)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8 [C, H, W], label float32 [label_dim]) of item `idx` (0 <= idx < len)."""
        image = self._load_raw_image(int(self._raw_idx[idx]), expected=self._image_shape)  # [C, H, W]
        if self._xflip[idx]:
            image = image[:, :, ::-1]  # [C, H, W] mirrored left-right
        return image.copy(), self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        """float32 [label_dim] label of item `idx`: one-hot for class indices, the attribute vector, or []."""
        label = np.zeros(self._label_dim, dtype=np.float32)
        if self._label_dim == 0 or self._raw_labels is None:
            return label
        raw = self._raw_labels[self._raw_idx[idx]]
        if self._raw_labels.ndim == 1:
            label[int(raw)] = 1.0
        else:
            label[:] = raw
        return label

    def image_name(self, idx: int) -> str:
        """Relative path of the file behind item `idx` (mirrored items name their source image)."""
        return self._image_names[int(self._raw_idx[idx])]

    @property
    def name(self) -> str:
        """Dataset name: the file or folder name without extension."""
        return self._tree.path.stem if self._tree.is_zip else self._tree.path.name

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

    def raw_class_indices(self) -> np.ndarray | None:
        """int64 [len] class index of every item (mirrored copies included), or None without class labels."""
        if self._raw_labels is None or not self.has_onehot_labels:
            return None
        return self._raw_labels[self._raw_idx]

    def close(self) -> None:
        """Close the zip handle (it re-opens on the next read)."""
        self._tree.close()

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
