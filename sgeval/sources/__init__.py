"""Sources of images for the feature extractors: folders, zips, statistics files and generators.

`open_source(path)` picks the source kind from a path: an image folder, a `.zip` dataset, an `.npz` statistics
file, or a network file (an sgmodels `.safetensors` snapshot, or an official / rosinality `.pkl` / `.pt` checkpoint
that sgmodels imports through a restricted unpickler, never executing it). Generator objects and callables are
wrapped explicitly with `GeneratorSource(G)` / `CallableSource(fn, z_dim)`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sgeval.sources.interfaces import ImageSource
    from sgeval.sources.stats import StatisticsSource

# Exported lazily (PEP 562), as in `sgeval/__init__.py`: importing a light submodule, e.g. the sgmodels adapter that
# `sgeval.atomic` and `sgeval.cli` use, must not import torch nor the sources that themselves import `sgeval.atomic`
# (an import cycle).
_EXPORTS = {
    "CallableSource": "sgeval.sources.generator",
    "GeneratorSource": "sgeval.sources.generator",
    "ImageFolderSource": "sgeval.sources.images",
    "ImageSource": "sgeval.sources.interfaces",
    "LatentGenerator": "sgeval.sources.interfaces",
    "StatisticsSource": "sgeval.sources.stats",
    "StyleGenerator": "sgeval.sources.interfaces",
    "ZipImageSource": "sgeval.sources.images",
    "decode_image": "sgeval.sources.images",
    "float_to_uint8": "sgeval.sources.generator",
    "module_fingerprint": "sgeval.sources.generator",
}

__all__ = [
    "CallableSource",
    "GeneratorSource",
    "ImageFolderSource",
    "ImageSource",
    "LatentGenerator",
    "StatisticsSource",
    "StyleGenerator",
    "ZipImageSource",
    "decode_image",
    "float_to_uint8",
    "module_fingerprint",
    "open_source",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sgeval.sources' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def open_source(path: str | os.PathLike[str], **options: Any) -> ImageSource | StatisticsSource:
    """The source for a path: folder / .zip -> images, .npz -> statistics, network file -> its generator.

    Args:
        path: where the data or network is.
        options: passed to the source (images: max_items, xflip; statistics: num_items; snapshots: device,
            truncation_psi, noise_mode, class_idx, labels, gen_batch).
    """
    from sgeval.sources.images import open_image_source
    from sgeval.sources.sgmodels_adapter import is_network_file, load_sgmodels_source
    from sgeval.sources.stats import StatisticsSource

    location = Path(path).expanduser()
    if not location.exists():
        raise ValueError(f"{location}: no such file or folder")
    suffix = location.suffix.lower()
    if location.is_dir() or suffix == ".zip":
        return open_image_source(location, **options)
    if suffix == ".npz":
        return StatisticsSource(location, **options)
    if is_network_file(location):  # snapshots and official checkpoints, read by sgmodels without executing
        return load_sgmodels_source(location, **options)
    raise ValueError(f"{location}: unsupported source; expected an image folder, a .zip dataset, an .npz "
                     "statistics file, an sgmodels .safetensors snapshot or an official / rosinality checkpoint "
                     "(.pkl, .pt)")
