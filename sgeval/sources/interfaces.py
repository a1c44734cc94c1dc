"""The seam between sgeval and everything that produces images: the image-source and generator interfaces.

An `ImageSource` hands out uint8 image batches [B, C, H, W] by item index (C = 1 or 3, native to the data; the
extraction loop repeats a single channel for 3-channel extractors). Random access by index is what makes results
independent of the batch size and lets `torchrun` shard items across processes: item i is always the same image,
whoever reads it and in whatever batch. Real-image sources ignore the seed; generator sources derive the latent of
item i from (seed, i) alone.

`LatentGenerator` / `StyleGenerator` use the attribute names of NVIDIA's official PyTorch code, so an official
`G_ema`, an sgmodels generator, or any object with the same names fits without a wrapper. A generator without
`mapping` is still valid for FID/KID/precision-recall and PPL in Z; W-space metrics check `isinstance(G,
StyleGenerator)` first and fail with a clear message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

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


class LatentGenerator(Protocol):
    """Enough for FID, KID, precision/recall and Z-space PPL: official attribute names and call signature.

    For type annotations only, like `StyleGenerator`: not runtime-checkable on purpose. From Python 3.12
    `isinstance` against a Protocol looks attributes up statically and cannot see the submodules an nn.Module keeps
    in `_modules` (`mapping`, `synthesis`), so it would call a real generator a non-generator. At run time use
    `sgeval.sources.sgmodels_adapter.is_style_generator`.
    """

    z_dim: int  # latent size
    c_dim: int  # label size, 0 = unconditional
    img_resolution: int  # output height = width in pixels
    img_channels: int  # output channels (1 or 3)

    def __call__(self, z: torch.Tensor, c: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] (kwargs: truncation_psi, noise_mode) -> float images [N, C, H, W] in [-1, 1]."""
        ...


class StyleGenerator(LatentGenerator, Protocol):
    """Adds the mapping / synthesis split needed by W-space PPL, linear separability and projection."""

    w_dim: int  # intermediate latent size
    num_ws: int  # number of per-layer w vectors

    def mapping(self, z: torch.Tensor, c: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] -> ws [N, num_ws, w_dim]."""
        ...

    def synthesis(self, ws: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> float images [N, C, H, W] in [-1, 1]."""
        ...
