"""`sgmodels dataset create`: convert an image folder, a zip or IDX files into a StyleGAN2-ADA dataset zip.

Output layout (readable by the official StyleGAN2-ADA / StyleGAN3 code and by `ImageDataset`): uncompressed PNGs
`00000/img00000000.png`, `00000/img00000001.png`, ... (1000 per folder) stored without zip compression, plus
`dataset.json` = {"labels": [["00000/img00000000.png", label], ...] or null, "class_names": [...] or
"attribute_names": [...] (when known, or given with `--label-names`)}.
The zip is written to a temporary file beside OUT and renamed only when every image has been converted, so a failed
or interrupted run never leaves OUT behind. Member timestamps are fixed, so the same input gives the same bytes.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from sgmodels.data.dataset import (
    LABELS_FILE,
    FileTree,
    LabelTable,
    convert_image,
    decode_image,
    label_dim_of,
    read_labels,
)
from sgmodels.data.idx import find_idx_images, labels_path_for, read_idx
from sgmodels.data.reader import check_label_names
from sgmodels.fileio import atomic_write_bytes
from sgmodels.progress import progress_bar

CROP_POLICIES = ("center", "pad", "none")
LABEL_POLICIES = ("auto", "none")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps -> reproducible zips

Label = int | list[float] | None


@dataclass(frozen=True)
class SourceRecord:
    """One input image: `name` identifies it in errors (a path, `zip:member` or `file.gz[index]`), `load` decodes
    it (any PIL mode), `label` is a class index, an attribute vector or None."""

    name: str
    load: Callable[[], PIL.Image.Image]
    label: Label


@dataclass(frozen=True)
class Source:
    """All images of an input, in their natural (sorted) order, and the names of the labels when known."""

    records: list[SourceRecord]
    class_names: list[str] | None
    attribute_names: list[str] | None = None


@dataclass(frozen=True)
class DatasetSummary:
    """What `create_dataset` wrote."""

    path: Path
    num_images: int
    resolution: int  # width = height in pixels
    channels: int  # 1 or 3
    label_dim: int  # classes, attributes, or 0 when unlabelled
    class_names: list[str] | None
    attribute_names: list[str] | None = None


# ---------------------------------------------------------------------------------------------------------------
# Sources.


def open_source(src: str | Path) -> Source:
    """Read the list of images of `src`: an image folder, a zip, an IDX images file, or a folder of IDX files.

    Raises ValueError naming the source when it holds no images or its labels do not match its images.
    """
    src = Path(src)
    if src.is_dir():
        idx_files = find_idx_images(src)
        tree = FileTree(src)
        if idx_files and not tree.image_names():
            return _idx_source(idx_files)
        return _tree_source(tree)
    if not src.is_file():
        raise ValueError(f"{src}: no such file or folder")
    if zipfile.is_zipfile(src):
        return _tree_source(FileTree(src))
    return _idx_source([src])


def _tree_source(tree: FileTree) -> Source:
    """Images of a folder or zip with labels from dataset.json or sub-folder names."""
    names = tree.image_names()
    if not names:
        raise ValueError(f"{tree.path}: no image files found")
    table = read_labels(tree, names)
    records = [
        SourceRecord(name=tree.describe(name), load=functools.partial(_load_tree_image, tree, name), label=label)
        for name, label in zip(names, _python_labels(table.values, len(names)), strict=True)
    ]
    return Source(records=records, class_names=table.class_names, attribute_names=table.attribute_names)


def _load_tree_image(tree: FileTree, name: str) -> PIL.Image.Image:
    return decode_image(tree.read(name), tree.describe(name))


def _python_labels(values: np.ndarray | None, count: int) -> list[Label]:
    """int64 [N] -> ints, float32 [N, D] -> lists of floats, None -> Nones (JSON-ready)."""
    if values is None:
        return [None] * count
    if values.ndim == 1:
        return [int(v) for v in values]
    return [[float(x) for x in row] for row in values]


def _idx_source(images_files: list[Path]) -> Source:
    """Images of IDX files with labels from the matching `*-labels-idx1-ubyte[.gz]` files."""
    label_files = [labels_path_for(path) for path in images_files]
    if any(label_files) and not all(label_files):
        missing = images_files[label_files.index(None)]
        raise ValueError(f"{missing}: no matching labels file (expected *-labels-idx1-ubyte[.gz] beside it)")
    records: list[SourceRecord] = []
    for images_path, labels_path in zip(images_files, label_files, strict=True):
        images = _read_idx_images(images_path)  # [N, H, W] or [N, H, W, C]
        labels = _read_idx_labels(labels_path, len(images)) if labels_path else [None] * len(images)
        records += [
            SourceRecord(name=f"{images_path}[{i}]", load=functools.partial(_array_image, images, i), label=label)
            for i, label in enumerate(labels)
        ]
    if not records:
        raise ValueError(f"{images_files[0]}: IDX file holds no images")
    return Source(records=records, class_names=None)


def _read_idx_images(path: Path) -> np.ndarray:
    images = read_idx(path)
    grayscale = images.ndim == 3
    colour = images.ndim == 4 and images.shape[3] in (1, 3)
    if images.dtype != np.uint8 or not (grayscale or colour):
        raise ValueError(
            f"{path}: expected uint8 images [N, H, W] or [N, H, W, 1|3], got {images.dtype} {list(images.shape)}"
        )
    return images


def _read_idx_labels(path: Path, count: int) -> list[Label]:
    labels = read_idx(path)
    if labels.ndim not in (1, 2) or labels.shape[0] != count:
        raise ValueError(f"{path}: expected {count} labels to match the images file, got shape {list(labels.shape)}")
    if labels.ndim == 1 and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: class labels must be integers, got {labels.dtype}")
    if labels.ndim == 1 and labels.size and labels.min() < 0:
        raise ValueError(f"{path}: class labels must be >= 0, found {int(labels.min())}")
    return _python_labels(labels.astype(np.int64 if labels.ndim == 1 else np.float32), count)


def _array_image(images: np.ndarray, index: int) -> PIL.Image.Image:
    image = images[index]  # [H, W] or [H, W, C]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]  # [H, W]
    return PIL.Image.fromarray(np.ascontiguousarray(image))


# ---------------------------------------------------------------------------------------------------------------
# Conversion.


def fit_image(image: PIL.Image.Image, name: str, resolution: int | None, crop: str) -> PIL.Image.Image:
    """Make `image` square by `crop` ("center": crop the longer side; "pad": pad the shorter one with black;
    "none": refuse non-square images), then resize it to resolution x resolution with LANCZOS when needed."""
    width, height = image.size
    if width != height:
        if crop == "none":
            raise ValueError(f"{name}: image is {width}x{height}, not square; use --crop center or --crop pad")
        image = _center_crop(image) if crop == "center" else _pad_square(image)
    if resolution is not None and image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), PIL.Image.Resampling.LANCZOS)
    return image


def _center_crop(image: PIL.Image.Image) -> PIL.Image.Image:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _pad_square(image: PIL.Image.Image) -> PIL.Image.Image:
    width, height = image.size
    side = max(width, height)
    canvas = PIL.Image.new(image.mode, (side, side), 0)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def _png_bytes(image: PIL.Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="png", compress_level=0, optimize=False)
    return buffer.getvalue()


def _archive_name(index: int) -> str:
    return f"{index // 1000:05d}/img{index:08d}.png"


def _write_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_STORED
    archive.writestr(info, data)


class _ShapeGuard:
    """Remembers the first image's mode and size; refuses later images that differ, naming both files."""

    def __init__(self) -> None:
        self.first: tuple[str, tuple[int, int], str] | None = None  # (mode, size, name)

    def check(self, image: PIL.Image.Image, name: str) -> None:
        if self.first is None:
            self.first = (image.mode, image.size, name)
            return
        mode, size, first_name = self.first
        if image.mode != mode:
            raise ValueError(
                f"{name}: {len(image.getbands())} channel(s) but {first_name} has {len(mode)}; "
                "choose one with --channels 1|3"
            )
        if image.size != size:
            raise ValueError(
                f"{name}: size {image.size[0]}x{image.size[1]} but {first_name} is {size[0]}x{size[1]}; "
                "choose one with --resolution R"
            )


# ---------------------------------------------------------------------------------------------------------------
# The command's work.


def create_dataset(
    src: str | Path,  # image folder, zip, IDX images file or folder of IDX files
    out: str | Path,  # output .zip path
    resolution: int | None = None,  # output width = height in pixels; None keeps the (common) input size
    channels: int | None = None,  # 1 (grayscale) or 3 (RGB); None keeps the (common) input channel count
    max_images: int | None = None,  # keep only the first N images (after shuffling)
    shuffle_seed: int | None = None,  # shuffle the image order with np.random.RandomState(seed); None keeps it
    crop: str = "center",  # non-square images: "center" crop, "pad" with black, or "none" (refuse them)
    labels: str = "auto",  # "auto": labels of the source when it has them; "none": write an unlabelled dataset
    label_names: Sequence[str] | None = None,  # class or attribute names, replacing the source's (one per entry)
    progress: bool = True,  # a bar on a terminal, plain lines on a pipe (sgmodels.progress)
) -> DatasetSummary:
    """Convert `src` into a StyleGAN2-ADA dataset zip at `out` (see the module docstring for the layout).

    Raises ValueError with the offending file's name for unreadable, truncated or inconsistent inputs; `out` is
    then left untouched (an existing file is replaced only on success).
    """
    out = Path(out)
    _check_options(src, out, resolution, channels, max_images, crop, labels)
    source = open_source(src)
    records = _select_records(source.records, max_images, shuffle_seed)
    if labels == "none":
        records = [SourceRecord(name=r.name, load=r.load, label=None) for r in records]
    table = _named_labels(source, records, label_names if labels == "auto" else None, src)
    return _write_dataset(out, records, resolution, channels, crop, table, progress)


def create_records_dataset(records: list[SourceRecord], out: Path, *, attribute_names: Sequence[str] | None = None,
                           progress: bool = True) -> DatasetSummary:
    """Write images made by code (e.g. `sgmodels.data.factors`) as a dataset zip at `out`, atomically: the records'
    images as they are (one size and mode), their labels and the attribute (or class) names."""
    source = Source(records=records, class_names=None, attribute_names=None)
    return _write_dataset(out, records, None, None, "none", _named_labels(source, records, attribute_names, out),
                          progress)


def _write_dataset(out: Path, records: list[SourceRecord], resolution: int | None, channels: int | None, crop: str,
                   table: LabelTable, progress: bool) -> DatasetSummary:
    mode, size = _write_zip(out, records, resolution, channels, crop, table, progress)
    label_dim = label_dim_of(table)
    return DatasetSummary(
        path=out,
        num_images=len(records),
        resolution=size,
        channels=len(mode),
        label_dim=label_dim,
        class_names=table.class_names if label_dim else None,
        attribute_names=table.attribute_names if label_dim else None,
    )


def _named_labels(source: Source, records: list[SourceRecord], label_names: Sequence[str] | None,
                  src: str | Path) -> LabelTable:
    """The labels of the kept records with their names (the source's, or `label_names` instead), checked: one
    distinct name per class or attribute entry."""
    labels = [r.label for r in records]
    if not labels or labels[0] is None:
        if label_names:
            raise ValueError(f"{src}: label names were given but the images are unlabelled")
        return LabelTable(values=None, class_names=None, source="records")
    is_vector = isinstance(labels[0], list)
    values = np.array(labels, dtype=np.float32 if is_vector else np.int64)
    names = list(label_names) if label_names else None
    class_names = None if is_vector else (names or source.class_names)
    attribute_names = (names or source.attribute_names) if is_vector else None
    if not is_vector and names is not None and len(names) < label_dim_of(LabelTable(values, None, "records")):
        raise ValueError(f"{len(names)} label names for {label_dim_of(LabelTable(values, None, 'records'))} classes; "
                         "give one name per class")
    table = LabelTable(values=values, class_names=class_names, source="records", attribute_names=attribute_names)
    check_label_names(table, "label names" if names else str(src))
    return table


def _check_options(
    src: str | Path, out: Path, resolution: int | None, channels: int | None, max_images: int | None, crop: str,
    labels: str,
) -> None:
    if out.suffix.lower() != ".zip":
        raise ValueError(f"{out}: the output must be a .zip file")
    if out.resolve() == Path(src).resolve():
        raise ValueError(f"{out}: the output would overwrite the source")
    if resolution is not None and resolution < 1:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    if crop not in CROP_POLICIES:
        raise ValueError(f"crop must be one of {CROP_POLICIES}, got {crop!r}")
    if labels not in LABEL_POLICIES:
        raise ValueError(f"labels must be one of {LABEL_POLICIES}, got {labels!r}")


def _select_records(
    records: list[SourceRecord], max_images: int | None, shuffle_seed: int | None
) -> list[SourceRecord]:
    """Optionally permute with RandomState(shuffle_seed), then keep the first max_images."""
    if shuffle_seed is not None:
        order = np.random.RandomState(shuffle_seed).permutation(len(records))
        records = [records[i] for i in order]
    return records[:max_images] if max_images is not None else records


def _write_zip(
    out: Path, records: list[SourceRecord], resolution: int | None, channels: int | None, crop: str,
    table: LabelTable, progress: bool,
) -> tuple[str, int]:
    """Write the zip atomically; returns (PIL mode, side in pixels) of the images written."""
    guard = _ShapeGuard()
    with atomic_write_bytes(out) as file, zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        entries = []
        for index, record in enumerate(progress_bar(records, desc=f"writing {out.name}", unit="img",
                                                    enabled=progress)):
            image = fit_image(convert_image(record.load(), record.name, channels), record.name, resolution, crop)
            guard.check(image, record.name)
            _write_member(archive, _archive_name(index), _png_bytes(image))
            entries.append([_archive_name(index), record.label])
        _write_member(archive, LABELS_FILE, _labels_json(entries, table))
        if guard.first is None:  # callers reject empty sources first; never leave an empty zip behind
            raise ValueError(f"{out}: no images to write")
    mode, size, _name = guard.first
    return mode, size[0]


def _labels_json(entries: list[list[Any]], table: LabelTable) -> bytes:
    """dataset.json bytes: labels null when the images are unlabelled; the names of classes or attributes."""
    labelled = bool(entries) and entries[0][1] is not None
    meta: dict[str, Any] = {"labels": entries if labelled else None}
    if labelled and table.class_names:
        meta["class_names"] = table.class_names
    if labelled and table.attribute_names:
        meta["attribute_names"] = table.attribute_names
    return json.dumps(meta).encode("utf-8")
