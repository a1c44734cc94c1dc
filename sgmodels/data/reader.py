"""The one reader of the dataset layouts: sgmodels trains on what it returns and sgeval evaluates what it returns.

sgmodels' `ImageDataset` and `sgmodels dataset create` use it directly; sgeval's image sources reach it only through
`sgeval.sources.sgmodels_adapter`. Keeping one implementation means a conditional run is evaluated against exactly
the images and labels it was trained on.

Layout (a folder or a zip; StyleGAN2-ADA's, plus plain image folders):
- images: every file whose extension PIL registers (.png, .jpg, .jpeg, .webp, .bmp, .tif, ...), anywhere in the
  tree, in sorted relative POSIX path order. Other files (notes, `.csv`, IDX files) are ignored, as StyleGAN2-ADA
  does: only an image file can change the data. Hidden files and `__MACOSX/` are ignored;
- a tree whose only top-level entry is one folder (a zip made from a folder) is read from inside that folder
  (except the official `00000/` folder of a zip with fewer than 1000 images);
- labels, from `dataset.json` at the root when present: `{"labels": [[relative/path.png, label], ...]}` where a label
  is an int class index or a list of numbers (multi-attribute), or `{"labels": null}`; our files may add
  `"class_names"` (one per class index) or `"attribute_names"` (one per vector entry; `"attributes"`, a list of
  strings, is read as the same, the form other tools write). dataset.json must label every image AND every label
  must name an existing image: a label for a missing file is an error naming it (never silently dropped), because
  it means the file list and the labels disagree, e.g. an image lost when the dataset was copied;
- without dataset.json, the first-level sub-folder names (sorted) are class indices when every image lies in a
  sub-folder and there are at least two of them, except for the official `00000/img00000000.png` layout.

Decoding (`read_image`): uint8 [C, H, W] with C = 1 (modes 1, L) or C = 3 (RGB, and palette, CMYK, YCbCr, LAB and
HSV converted to RGB by PIL); images with an alpha or extra channel (RGBA, LA, PA, ...) need an explicit channel
count (`sgmodels dataset create --channels`); 16-bit and float images are refused (PIL would clip them to 8 bits);
corrupt and truncated files are a ValueError naming the file. Every image of a dataset must have the shape of the
first one (`DatasetReader.load` checks it when given the expected shape).
"""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from sgmodels.untrusted import check_count, check_zip_directory, load_json, read_zip_member

LABELS_FILE = "dataset.json"
# Size limits of untrusted files (README, "Untrusted files"): an image file holds at most PIL's pixel budget
# (`PIL.Image.MAX_IMAGE_PIXELS`, its decompression-bomb threshold) of 8-bit RGBA pixels, uncompressed, plus headers;
# dataset.json a fixed allowance plus a generous line per image (a file name and a few hundred attributes).
_IMAGE_HEADER_BYTES = 1 << 20
_LABELS_BASE_BYTES = 1 << 20
_LABELS_BYTES_PER_IMAGE = 4096
# The label dimension (classes or attributes): far above every labelled dataset of the field (ImageNet-21k has
# 21,841 classes), and small enough that a label table or a conditional mapping layer stays a sane size.
MAX_LABEL_DIM = 1 << 15
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

    Picklable and safe to read from several threads: a zip handle is opened lazily (under a lock) and re-opened in
    every process (DataLoader workers, forked or spawned), because a handle shared across processes would interleave
    their seeks.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],  # a folder or a .zip file
    ) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self.is_zip = False
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self.is_zip = True
        elif self.path.exists():
            raise ValueError(f"{self.path}: not a readable zip file, nor a folder")
        else:
            raise ValueError(f"{self.path}: no such file or folder")
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1
        self._lock = threading.Lock()
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
        _warn_escaping(self.path, names)
        return [name for name in names if not _is_junk(name)]

    def _zipfile(self) -> zipfile.ZipFile:
        with self._lock:  # sgeval decodes in a thread pool: open the handle once per process
            if self._zip is None or self._zip_pid != os.getpid():
                try:
                    archive = zipfile.ZipFile(self.path)
                    check_zip_directory(archive, self.path)  # before the handle is kept: it is checked once
                    self._zip = archive
                # zipfile raises NotImplementedError for an unknown version, UnicodeDecodeError for a name
                except (OSError, zipfile.BadZipFile, NotImplementedError, ValueError) as exc:
                    raise ValueError(f"{self.path}: cannot open zip file ({exc})") from exc
                self._zip_pid = os.getpid()
            return self._zip

    def describe(self, name: str) -> str:
        """How to name file `name` in an error message: its path, or `zip path:member`."""
        return f"{self.path}:{self.prefix}{name}" if self.is_zip else str(self.path / self.prefix / name)

    def exists(self, name: str) -> bool:
        """Whether file `name` (relative, below the prefix) is in the tree."""
        return name in self.names

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        """The bytes of file `name`, at most `max_bytes` of them (default: `max_image_file_bytes()`).

        A larger file (a zip member by its declared size, before anything is inflated) and a damaged one are a
        ValueError naming it.
        """
        limit = max_image_file_bytes() if max_bytes is None else max_bytes
        where = self.describe(name)
        if self.is_zip:
            return read_zip_member(self._zipfile(), self.prefix + name, where, limit)
        path = self.path / self.prefix / name
        try:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise ValueError(f"{where}: cannot read ({exc})") from exc
        if len(data) > limit:
            raise ValueError(f"{where}: larger than the {limit:,} bytes a file of this kind may have; refusing to "
                             "read it")
        return data

    def zip_member(self, name: str) -> zipfile.ZipInfo:
        """The central-directory entry of file `name` (size, CRC-32) of a zip tree, without reading the data."""
        if not self.is_zip:
            raise ValueError(f"{self.path}: not a zip file")
        return self._zipfile().getinfo(self.prefix + name)

    def image_names(self) -> list[str]:
        """Sorted relative paths of the image files."""
        extensions = image_extensions()
        return [name for name in self.names if os.path.splitext(name)[1].lower() in extensions]

    def close(self) -> None:
        """Close the zip handle (it re-opens on the next read)."""
        if self._zip is not None:
            self._zip.close()
        self._zip = None

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _zip=None, _zip_pid=-1, _lock=None)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def max_image_file_bytes() -> int:
    """The largest image file read: PIL's pixel budget of uncompressed 8-bit RGBA, plus headers."""
    pixels = PIL.Image.MAX_IMAGE_PIXELS or 1 << 28  # None means "no limit" in PIL: keep one anyway
    return 4 * int(pixels) + _IMAGE_HEADER_BYTES


def max_labels_file_bytes(num_images: int) -> int:
    """The largest dataset.json read for a tree of `num_images` images."""
    return _LABELS_BASE_BYTES + _LABELS_BYTES_PER_IMAGE * num_images


class SkippedMembersWarning(UserWarning):
    """Zip members that are never read because their names climb out of the archive (`../x.png`)."""


def _warn_escaping(path: Path, names: list[str]) -> None:
    """Say which members are skipped for a path outside the archive (they used to vanish without a word)."""
    escaping = [name for name in names if ".." in re.split(r"[/\\]", name)]
    if escaping:
        shown = ", ".join(escaping[:5]) + (f" and {len(escaping) - 5} more" if len(escaping) > 5 else "")
        warnings.warn(f"{path}: skipped {len(escaping)} zip member(s) whose names leave the archive ({shown}); "
                      "rename them inside the zip to use them", SkippedMembersWarning, stacklevel=4)


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
    except (OSError, SyntaxError, ValueError, zlib.error, PIL.Image.DecompressionBombError) as exc:
        raise ValueError(f"{name}: corrupt or unreadable image, e.g. truncated ({exc})") from exc
    return image


def convert_image(image: PIL.Image.Image, name: str, channels: int | None = None) -> PIL.Image.Image:
    """Convert to mode 'L' (1 channel) or 'RGB' (3 channels).

    channels=None keeps the natural channel count (grayscale stays 1; colour, palette and CMYK become 3); images with
    an alpha or extra channel need an explicit choice. 16-bit and float images are refused (PIL would clip them to
    8 bits).
    """
    if image.mode in _HIGH_BIT_MODES:
        raise ValueError(f"{name}: {image.mode!r} images (16-bit or float) are not supported; convert to 8 bits")
    if channels is None:
        if image.mode not in _NATURAL_MODES:
            raise ValueError(
                f"{name}: image mode {image.mode!r} (alpha or extra channel) needs an explicit channel count: "
                "convert the images to RGB or grayscale, e.g. with `sgmodels dataset create --channels 1|3`"
            )
        target = _NATURAL_MODES[image.mode]
    elif channels in _CHANNEL_MODES:
        target = _CHANNEL_MODES[channels]
    else:
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return image if image.mode == target else image.convert(target)


def image_to_array(image: PIL.Image.Image) -> np.ndarray:
    """PIL image in mode 'L' or 'RGB' -> uint8 numpy [C, H, W] (C-contiguous)."""
    array = np.asarray(image, dtype=np.uint8)  # [H, W] or [H, W, C]
    if array.ndim == 2:
        array = array[:, :, np.newaxis]  # [H, W, 1]
    return np.ascontiguousarray(array.transpose(2, 0, 1))  # [C, H, W]


def read_image(data: bytes, name: str) -> np.ndarray:
    """Decode one image file's bytes -> uint8 [C, H, W] in [0, 255], C = 1 or 3 (see the module docstring).

    Raises ValueError naming `name` for corrupt or truncated files and for alpha, 16-bit or float images.
    """
    return image_to_array(convert_image(decode_image(data, name), name))


# ---------------------------------------------------------------------------------------------------------------
# Labels.


@dataclass(frozen=True)
class LabelTable:
    """Labels of the images of a tree, in the order of `image_names`.

    values: None (unlabelled), int64 [N] class indices >= 0, or float32 [N, D] multi-attribute vectors.
    class_names: names of the class indices when known (sub-folder names, or `class_names` in dataset.json).
    source: where the labels came from ("dataset.json", "sub-folders" or "none"), for messages.
    attribute_names: names of the attribute vector entries when known (`attribute_names` in dataset.json).
    """

    values: np.ndarray | None
    class_names: list[str] | None
    source: str
    attribute_names: list[str] | None = None

    @property
    def names(self) -> list[str] | None:
        """The names of the label entries: class names for class indices, attribute names for vectors."""
        if self.values is None:
            return None
        return self.attribute_names if self.values.ndim == 2 else self.class_names


def read_labels(tree: FileTree, image_names: list[str]) -> LabelTable:
    """Labels for `image_names` of `tree`: from dataset.json, else from sub-folder names, else none.

    Raises ValueError naming dataset.json (or the offending image) when the file is malformed, an image has no
    label, a label names no image, or label kinds are mixed.
    """
    if tree.exists(LABELS_FILE):
        return _labels_from_json(tree, image_names)
    classes = _subfolder_classes(image_names, str(tree.path))
    if classes is None:
        return LabelTable(values=None, class_names=None, source="none")
    index = {cls: i for i, cls in enumerate(classes)}
    values = np.array([index[name.split("/", 1)[0]] for name in image_names], dtype=np.int64)
    return LabelTable(values=values, class_names=classes, source="sub-folders")


def _subfolder_classes(image_names: list[str], where: str) -> list[str] | None:
    """Sorted first-level folder names when they can be classes (every image in one, at least two, and not the
    official `00000/img00000000.png` layout), else None."""
    if not image_names or any("/" not in name for name in image_names):
        return None
    if all(_OFFICIAL_NAME.match(name) for name in image_names):
        return None
    classes = sorted({name.split("/", 1)[0] for name in image_names})
    _check_label_dim(len(classes), where, "class sub-folders")
    return classes if len(classes) >= 2 else None


def _labels_from_json(tree: FileTree, image_names: list[str]) -> LabelTable:
    where = tree.describe(LABELS_FILE)
    meta = load_json(tree.read(LABELS_FILE, max_labels_file_bytes(len(image_names))), where)
    if not isinstance(meta, dict) or "labels" not in meta:
        raise ValueError(f'{where}: expected an object with a "labels" key')
    class_names = _json_names(meta.get("class_names"), where, "class_names")
    attribute_names = _json_names(meta.get("attribute_names", _string_list_or_none(meta.get("attributes"))), where,
                                  "attribute_names")
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
        raise ValueError(
            f"{where}: {len(extra)} label(s) name no image file, e.g. {_shown(extra[0])}; "
            "remove those labels or restore the missing images"
        )
    values = _label_array([by_name[name] for name in image_names], where)
    table = LabelTable(values=values, class_names=class_names, source=LABELS_FILE, attribute_names=attribute_names)
    check_label_names(table, where)
    return table


def _string_list_or_none(value: Any) -> list[str] | None:
    """Other tools' `"attributes"` entry when it is a list of names (anything else there is not ours to read)."""
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def _json_names(value: Any, where: str, key: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'{where}: "{key}" must be a list of strings')
    _check_label_dim(len(value), where, key.replace("_", " "))
    return list(value)


def check_label_names(table: LabelTable, where: str) -> None:
    """ValueError naming `where` unless the table's names are distinct, non-empty and one per label entry (class
    names may outnumber the classes present: a subset of a dataset keeps every class's name)."""
    for key, names in (("class_names", table.class_names), ("attribute_names", table.attribute_names)):
        if names is None:
            continue
        if len(set(names)) != len(names) or not all(name.strip() for name in names):
            duplicate = next((name for name in names if names.count(name) > 1), "")
            raise ValueError(f'{where}: "{key}" must be distinct non-empty names'
                             + (f"; {_shown(duplicate)} appears twice" if duplicate else "; found an empty name"))
    values = table.values
    if values is None:
        return
    if values.ndim == 2 and table.attribute_names is not None and len(table.attribute_names) != values.shape[1]:
        raise ValueError(f'{where}: {len(table.attribute_names)} "attribute_names" for {values.shape[1]}-entry '
                         "attribute labels; give one name per entry")
    if values.ndim == 1 and table.class_names is not None and values.size and \
            len(table.class_names) <= int(values.max()):
        raise ValueError(f'{where}: {len(table.class_names)} "class_names" but class index {int(values.max())} is '
                         "used; give one name per class")


def _json_label_map(pairs: Any, where: str) -> dict[str, Any]:
    if not isinstance(pairs, list):
        raise ValueError(f'{where}: "labels" must be null or a list of [file name, label] pairs')
    by_name: dict[str, Any] = {}
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(f"{where}: bad label entry {_shown(pair)}; expected [file name, label]")
        name = pair[0].replace("\\", "/")
        if name in by_name:
            raise ValueError(f"{where}: {_shown(name)} is labelled twice")
        by_name[name] = pair[1]
    return by_name


def _label_array(labels: list[Any], where: str) -> np.ndarray:
    """All-int labels -> int64 [N] (>= 0); all equal-length number lists -> float32 [N, D]; else ValueError."""
    if all(_is_int(v) for v in labels):
        if labels:  # checked on the Python ints: a huge index of either sign must not overflow int64 first
            if min(labels) < 0:
                raise ValueError(f"{where}: class indices must be >= 0, found {_shown(min(labels))}")
            _check_label_dim(max(labels) + 1, where, "classes (the largest class index + 1)")
        return np.array(labels, dtype=np.int64)
    if all(isinstance(v, list) and all(_is_number(x) for x in v) for v in labels):
        lengths = {len(v) for v in labels}
        if len(lengths) != 1:
            raise ValueError(f"{where}: multi-attribute labels have different lengths {sorted(lengths)}")
        length = lengths.pop()
        _check_label_dim(length, where, "attributes per label")
        return np.array(labels, dtype=np.float32).reshape(len(labels), length)
    bad = next(v for v in labels if not _is_int(v))
    raise ValueError(
        f"{where}: labels must be all int class indices or all lists of numbers; found {_shown(bad)} among them"
    )


def _shown(value: Any) -> str:
    """A value of an untrusted file in a message: its repr, cut short (a label may be megabytes long)."""
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:100]}... ({len(text):,} characters)"


def _check_label_dim(dim: int, where: str, what: str) -> None:
    check_count(dim, MAX_LABEL_DIM, f"{where}: the number of {what}",
                "the label dimension of a dataset; labels that large are not a dataset's")


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
# The reader of one dataset.


class DatasetReader:
    """The image files and labels of a dataset folder or zip (layout and decoding: see the module docstring).

    Images are addressed by their index in `image_names` (sorted relative paths) and decoded on demand. Reading
    the labels happens at construction, so a bad dataset.json fails at once. Picklable and thread-safe for reads.

    Attributes:
        tree: the `FileTree` read.
        image_names: sorted relative paths of the images.
        labels: their `LabelTable` (values None, int64 [N] classes or float32 [N, D] attributes).
        label_dim: length of a label vector (`label_dim_of`): classes or attributes, 0 when unlabelled.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],  # a folder or a .zip file
    ) -> None:
        self.tree = FileTree(path)
        self.image_names = self.tree.image_names()
        if not self.image_names:
            raise ValueError(f"{self.tree.path}: no images found (no image files below it: looked recursively for "
                             "the extensions PIL reads, such as .png and .jpg; hidden files are ignored)")
        self.labels = read_labels(self.tree, self.image_names)
        self.label_dim = label_dim_of(self.labels)  # classes or attributes; 0 when unlabelled

    def __len__(self) -> int:
        return len(self.image_names)

    def describe(self, index: int) -> str:
        """Image `index` as named in error messages (its path, or `zip path:member`)."""
        return self.tree.describe(self.image_names[index])

    def read_bytes(self, index: int) -> bytes:
        """The encoded bytes of image `index` (for content hashes)."""
        return self.tree.read(self.image_names[index])

    def labels_file_bytes(self) -> bytes:
        """The raw dataset.json, or b"" when the dataset has none (for content hashes)."""
        if not self.tree.exists(LABELS_FILE):
            return b""
        return self.tree.read(LABELS_FILE, max_labels_file_bytes(len(self.image_names)))

    def load(self, index: int, expected_shape: Sequence[int] | None = None) -> np.ndarray:
        """Image `index` as uint8 [C, H, W] in [0, 255].

        Raises ValueError naming the file when it cannot be decoded, or when `expected_shape` ([C, H, W], normally
        the first image's) is given and differs.
        """
        where = self.describe(index)
        image = read_image(self.read_bytes(index), where)  # [C, H, W]
        if expected_shape is not None and image.shape != tuple(expected_shape):
            raise ValueError(
                f"{where}: image shape [C, H, W] = {list(image.shape)} differs from {list(expected_shape)} of "
                f"{self.describe(0)}; all images must share size and channels (rebuild the dataset with "
                "`sgmodels dataset create --resolution R --channels C`)"
            )
        return image

    def label_vectors(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """float32 [len(indices), label_dim] labels of images `indices`: one-hot rows for class indices, the
        attribute vectors, or [N, 0] when unlabelled."""
        rows = np.asarray(indices, dtype=np.int64)
        vectors = np.zeros((rows.size, self.label_dim), dtype=np.float32)
        values = self.labels.values
        if values is None:
            return vectors
        if values.ndim == 1:
            vectors[np.arange(rows.size), values[rows]] = 1.0
        else:
            vectors[:] = values[rows]
        return vectors

    def close(self) -> None:
        """Close the zip handle (it re-opens on the next read)."""
        self.tree.close()
