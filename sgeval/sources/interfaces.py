"""The seam between sgeval and everything that produces images: the image-source and generator interfaces.

An `ImageSource` hands out uint8 image batches [B, C, H, W] by item index (C = 1 or 3, native to the data; the
extraction loop repeats a single channel for 3-channel extractors). Random access by index is what makes results
independent of the batch size and lets `torchrun` shard items across processes: item i is always the same image,
whoever reads it and in whatever batch. Real-image sources ignore the seed; generator sources derive the latent of
item i from (seed, i) alone.

`LatentGenerator` / `StyleGenerator` are the generator interface, defined once in `sgmodels.generator_interface`
and re-exported here through the adapter (the one module of sgeval that imports sgmodels): the attribute names of
NVIDIA's official PyTorch code, so an official `G_ema`, an sgmodels generator, or any object with the same names fits
without a wrapper. A generator without `mapping` is still valid for FID/KID/precision-recall and PPL in Z; W-space
metrics check `is_style_generator(G)` first and fail with a clear message. Both are for annotations only, not
runtime-checkable (see `sgmodels.generator_interface`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from sgeval.sources.sgmodels_adapter import LatentGenerator, StyleGenerator

__all__ = ["ImageSource", "LatentGenerator", "StyleGenerator"]


@runtime_checkable
class ImageSource(Protocol):
    """Anything that yields uint8 image batches by item index."""

    kind: str  # "images" (files) or "generator"
    uses_seed: bool  # whether `read` depends on the seed (it then enters cache keys)

    @property
    def num_items(self) -> int | None:
        """Number of items; None = unbounded (generators). Read-only here, so a plain `int` attribute conforms."""
        ...

    def fingerprint(self) -> str | None:
        """sha256 hex digest of everything that determines the images (content, weights, sampling arguments);
        None when the content cannot be fingerprinted (a bare callable without a user-given fingerprint): such a
        source is never cached."""
        ...

    def describe(self) -> dict[str, Any]:
        """Short JSON-able description for results and cache listings (path, counts, options)."""
        ...

    def prepare(self, device: torch.device) -> None:
        """Called once before reading: move networks to `device`, open files. May be a no-op."""
        ...

    def read(self, indices: Sequence[int], *, seed: int, device: torch.device) -> torch.Tensor:
        """uint8 tensor [len(indices), C, H, W] on `device`, item i always the same image for a given seed."""
        ...
