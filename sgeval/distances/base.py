"""The image-distance contract: two float image batches [N, C, H, W] in about [-1, 1] in, float32 distances [N] out.

Used by perceptual path length (distance between images an epsilon apart, divided by epsilon^2) and by the LPIPS
projector (backpropagated to the synthesised image). So, unlike the feature extractors (uint8 in, no gradients):

* images are float and are NOT quantised or clamped: PPL measures differences far below one uint8 level, and a
  generator's output may overshoot [-1, 1] slightly; each distance maps the range as its reference does;
* the result is differentiable with respect to both inputs (the network's own parameters are frozen);
* grey images [N, 1, H, W] are replicated to RGB for a 3-channel network, as the official metric code does;
* nothing is resized here: a caller that needs the reference resolution (PPL's box filter to 256, the projector's
  area downsampling) does it before the call, exactly as the reference code does.

A distance states what makes its values what they are (`identity`): its name, the sha256 of every weights file,
and how images are fed. That identity enters the sampler cache keys and the result records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from sgeval.weights import ResolvedWeights, WeightsError, WeightsFormat

__all__ = ["MIN_SIZE", "ImageDistance", "check_image_pair", "require_format"]

MIN_SIZE = 16  # smallest H and W: VGG16's four max-pools before its last LPIPS layer leave 1x1 features at 16


def check_image_pair(img0: Any, img1: Any, min_size: int = MIN_SIZE) -> None:
    """Raise TypeError/ValueError unless both are float tensors of one shape [N, C, H, W], C in {1, 3}, H, W >= min."""
    for what, images in (("img0", img0), ("img1", img1)):
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"{what}: expected a torch.Tensor, got {type(images).__name__}")
        if not images.is_floating_point():
            raise TypeError(f"{what}: expected float images in about [-1, 1] (generator output, not quantised), got "
                            f"dtype {images.dtype}")
    if img0.shape != img1.shape:
        raise ValueError(f"img0 and img1 must have the same shape, got {tuple(img0.shape)} and {tuple(img1.shape)}")
    if img0.ndim != 4 or img0.shape[1] not in (1, 3):
        raise ValueError(f"expected image batches [N, C, H, W] with C = 1 or 3, got shape {tuple(img0.shape)}")
    if img0.shape[0] < 1 or min(img0.shape[2], img0.shape[3]) < min_size:
        raise ValueError(f"expected a non-empty batch of images at least {min_size}x{min_size}, got shape "
                         f"{tuple(img0.shape)}")


def require_format(weights: ResolvedWeights, expected: WeightsFormat, distance: str, hint: str) -> None:
    """WeightsError when a file is not of the format a distance loads (e.g. a TorchScript archive for a state dict)."""
    if weights.format != expected:
        raise WeightsError(f"{weights.path}: image distance {distance!r} loads a {expected} file, but this is a "
                           f"{weights.format} file. {hint}")


class ImageDistance(torch.nn.Module):
    """Base class: `distance(img0, img1) -> float32 [N]`, differentiable w.r.t. both image batches.

    Subclasses implement `distance` (inputs already validated, RGB, float32, on the network's device).
    """

    input_channels = 3  # channels the network takes; a 1-channel batch is replicated when this is 3

    def __init__(
        self,
        name: str,  # registry name, e.g. "lpips-vgg"
        weights: Mapping[str, ResolvedWeights],  # the files loaded, by role ("backbone", "linear", "network")
        input_policy: str,  # how images reach the network, e.g. "float [-1, 1] -> (x + 1) * 127.5; no resize"
        backend: str,  # how the network runs ("sgeval-port", "torchscript")
    ) -> None:
        super().__init__()
        self.name = name
        self.weights = dict(weights)
        self.input_policy = input_policy
        self.backend = backend

    @property
    def device(self) -> torch.device:
        """Device of the network's first parameter or buffer (CPU if it has none)."""
        from sgeval.features.base import module_device

        return module_device(self)

    def identity(self) -> dict[str, Any]:
        """Everything that determines the values (enters cache keys), JSON-able.

        {"name", "weights_sha256": {role: sha256 of that file}, "input": how images are fed, "backend"}.
        """
        return {"name": self.name, "weights_sha256": {role: resolved.sha256 for role, resolved in self.weights.items()},
                "input": self.input_policy, "backend": self.backend}

    def caveats(self) -> list[str]:
        """Warnings every result measured with this distance must carry; none by default."""
        return []

    def provenance(self) -> dict[str, Any]:
        """`identity()` plus each weights file's record (file name, registry name, verified flag), for results."""
        return {"distance": self.name, **self.identity(),
                "weights": {role: resolved.provenance() for role, resolved in self.weights.items()}}

    def distance(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        """float32 [N, input_channels, H, W] pairs on `self.device` -> distances [N] (differentiable)."""
        raise NotImplementedError

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        """The distance between corresponding images of two batches.

        Args:
            img0, img1: float tensors [N, C, H, W] of the same shape, values in about [-1, 1] (not clamped), C = 1
                (replicated to RGB) or 3, H and W >= 16, any device; computed in float32 on the network's device.
        Returns:
            float32 [N] in the reference implementation's unit (for LPIPS a squared distance, as PPL expects),
            differentiable with respect to both inputs.
        """
        check_image_pair(img0, img1)
        x0, x1 = (self._prepare(images) for images in (img0, img1))  # [N, C, H, W] float32 on the device
        result = self.distance(x0, x1)  # [N]
        if result.shape != (img0.shape[0],):
            raise ValueError(f"{self.name}: the network gave distances of shape {tuple(result.shape)}, expected "
                             f"[{img0.shape[0]}]; wrong weights file for this distance?")
        return result.float()

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """float32 on the network's device with `input_channels` channels (differentiable: `to` and `expand`)."""
        x = images.to(device=self.device, dtype=torch.float32)
        if x.shape[1] == self.input_channels:
            return x
        if x.shape[1] == 1:
            return x.expand(-1, self.input_channels, -1, -1)  # grey -> RGB, as the official metric code repeats it
        raise ValueError(f"{self.name}: takes {self.input_channels}-channel images, got shape {tuple(images.shape)}")
