"""What every attribute-classifier set offers linear separability, whatever trained it: the interface the sampler
calls (`BaseClassifierSet`), its error type and the hints its messages give.

Two sets implement it: the project's own classifiers (`sgeval.classifiers`, trained on a labelled dataset) and
NVIDIA's CelebA-HQ attribute classifiers (`sgeval.official_classifiers`, imported TF pickles). Both import this
module and neither imports the other at module level, so loading the official set from `load_classifiers` is no
import cycle.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import torch

from sgeval.imageops import box_downsample  # the official box filter (mean over f x f blocks)

__all__ = ["OFFICIAL_PATTERN", "TRAIN_HINT", "BaseClassifierSet", "ClassifierError"]

OFFICIAL_PATTERN = "celebahq-classifier-*.pkl"
TRAIN_HINT = "train classifiers with `sgeval classifiers train --data LABELLED.zip --outdir DIR`"


class ClassifierError(ValueError):
    """A classifier folder is missing, incomplete, damaged, or does not fit the generator."""


class BaseClassifierSet(abc.ABC):
    """What the separability sampler calls: `__call__(images) -> logits [N, A]`, `identity()` for cache keys,
    `to(device)`; shared here: the input geometry (`resolution`, `channels`) and the check and box downsampling of
    generator images to it (the official code box-downsamples to the classifiers' 256x256)."""

    resolution: int  # input size R of the classifiers
    channels: int  # image channels
    location: Path | None  # the folder they were loaded from
    attributes: list[str]  # one name per logit
    description: dict[str, Any]  # JSON-able: "format", "architecture", "attributes", "weights_sha256", ...

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """JSON-able identity (weights sha256, attributes, input shape): part of the sampler's cache key."""

    @abc.abstractmethod
    def to(self, device: torch.device | str) -> BaseClassifierSet:
        """Move the networks to `device` (in place); returns self."""

    @abc.abstractmethod
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits float32 [N, A] (>= 0: attribute present) of images float [N, C, H, H] in [-1, 1]."""

    def input_factor(self, resolution: int, channels: int) -> int:
        """Box-downsampling factor for images [N, channels, resolution, resolution]; ClassifierError when they do not
        fit (other channel count, smaller, or a non-integer multiple of the classifier's resolution)."""
        where = f"classifiers {self.location or ''}".rstrip()
        if channels != self.channels:
            raise ClassifierError(f"{where} take {self.channels}-channel images, the generator makes "
                                  f"{channels}-channel ones; {TRAIN_HINT} on data like the generator's")
        if resolution < self.resolution or resolution % self.resolution:
            raise ClassifierError(f"{where} take {self.resolution}x{self.resolution} images; {resolution}x{resolution} "
                                  f"images are not an integer multiple of that (box downsampling only shrinks by an "
                                  f"integer factor); {TRAIN_HINT} at a resolution that divides {resolution}")
        return resolution // self.resolution

    def prepared(self, images: torch.Tensor) -> torch.Tensor:
        """Images float [N, C, H, H] in [-1, 1] -> float32 [N, C, R, R], box-downsampled (still in [-1, 1])."""
        if images.ndim != 4 or images.shape[2] != images.shape[3] or not images.is_floating_point():
            raise ValueError(f"classifiers take float images [N, C, H, H], got {images.dtype} {tuple(images.shape)}")
        factor = self.input_factor(int(images.shape[2]), int(images.shape[1]))
        return box_downsample(images.float(), factor)  # [N, C, R, R]
