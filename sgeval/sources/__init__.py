"""Sources of images for the feature extractors: folders, zips, statistics files and generators.

`open_source(path)` picks the source kind from a path: an image folder, a `.zip` dataset, an `.npz` statistics
file, or an sgmodels `.safetensors` snapshot. Generator objects and callables are wrapped explicitly with
`GeneratorSource(G)` / `CallableSource(fn, z_dim)`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sgeval.sources.protocol import ImageSource
    from sgeval.sources.stats import StatisticsSource

# Exported lazily (PEP 562), as in `sgeval/__init__.py`: importing a light submodule, e.g. the sgmodels adapter that
# `sgeval.atomic` and `sgeval.cli` use, must not import torch nor the sources that themselves import `sgeval.atomic`
# (an import cycle).
_EXPORTS = {
    "CallableSource": "sgeval.sources.generator",
    "GeneratorSource": "sgeval.sources.generator",
    "ImageFolderSource": "sgeval.sources.images",
    "ImageSource": "sgeval.sources.protocol",
    "LatentGenerator": "sgeval.sources.protocol",
    "StatisticsSource": "sgeval.sources.stats",
    "StyleGenerator": "sgeval.sources.protocol",
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


_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt")


def open_source(path: str | os.PathLike[str], **options: Any) -> ImageSource | StatisticsSource:
    """The source for a path: folder / .zip -> images, .npz -> statistics, .safetensors -> sgmodels generator.

    Args:
        path: where the data or network is.
        options: passed to the source (images: max_items, xflip; statistics: num_items; snapshots: device,
            truncation_psi, noise_mode, class_idx, labels, gen_batch).
    """
    from sgeval.sources.images import open_image_source
    from sgeval.sources.sgmodels_adapter import is_sgmodels_snapshot, load_sgmodels_source
    from sgeval.sources.stats import StatisticsSource

    location = Path(path).expanduser()
    if not location.exists():
        raise ValueError(f"{location}: no such file or folder")
    suffix = location.suffix.lower()
    if location.is_dir() or suffix == ".zip":
        return open_image_source(location, **options)
    if suffix == ".npz":
        return StatisticsSource(location, **options)
    if is_sgmodels_snapshot(location):
        return load_sgmodels_source(location, **options)
    if suffix in _PICKLE_SUFFIXES:
        raise ValueError(f"{location}: official/rosinality checkpoints are pickles, which sgeval never loads "
                         "directly; convert it to an sgmodels snapshot first with the sgmodels import command")
    raise ValueError(f"{location}: unsupported source; expected an image folder, a .zip dataset, an .npz "
                     "statistics file or an sgmodels .safetensors snapshot")
