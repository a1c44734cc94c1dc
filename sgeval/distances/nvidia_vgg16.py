"""LPIPS with NVIDIA's TorchScript VGG16 (`vgg16.pt`), as stylegan2-ada-pytorch's PPL and projector use it.

Registered as "lpips-vgg16-nvidia". Matches stylegan2-ada-pytorch `metrics/perceptual_path_length.py` and
`projector.py` (docs/metrics.md sections 9.5 and 11):

1. images scaled from [-1, 1] to [0, 255] as floats, `(x + 1) * 127.5`: no clamping, no quantisation;
2. `embedding = vgg16(images, resize_images=False, return_lpips=True)` -> [N, D], the archive's LPIPS embedding
   (per third-party ports, inferred: unit-normalised relu1_2 ... relu5_3 features scaled by the lin weights so that
   squared differences reproduce LPIPS; docs/metrics.md section 9.5);
3. distance = squared L2 between the two embeddings, summed over D: a squared distance, like lpips-vgg.

The weights file is `vgg16-torchscript` (the same archive serves precision/recall). Its weights are the original
Oxford VGG16 with the LPIPS lin weights, not torchvision's: values differ from "lpips-vgg" (another network), so
results name the distance and the file's sha256.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sgeval.distances.base import ImageDistance, require_format
from sgeval.features.base import load_torchscript
from sgeval.weights import ResolvedWeights

__all__ = ["NvidiaVGG16LPIPS", "build_nvidia_vgg16_lpips"]

NAME = "lpips-vgg16-nvidia"
_INPUT_POLICY = "float [-1, 1] -> (x + 1) * 127.5 (not clamped); vgg16.pt(resize_images=False, return_lpips=True)"


class NvidiaVGG16LPIPS(ImageDistance):
    """"lpips-vgg16-nvidia": float [N, 3, H, W] pairs in [-1, 1] -> float32 [N] (recipe in the module docstring)."""

    def __init__(
        self,
        weights: ResolvedWeights,  # the TorchScript archive
    ) -> None:
        super().__init__(NAME, {"network": weights}, input_policy=_INPUT_POLICY, backend="torchscript")
        self.module = load_torchscript(weights)
        self.requires_grad_(False)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """float [N, 3, H, W] in [-1, 1] -> LPIPS embedding [N, D] (differentiable)."""
        embedding = self.module((images + 1) * 127.5, resize_images=False, return_lpips=True)
        if not isinstance(embedding, torch.Tensor) or embedding.ndim != 2:
            shape = tuple(embedding.shape) if isinstance(embedding, torch.Tensor) else type(embedding).__name__
            raise ValueError(f"{NAME}: {self.weights['network'].path} returned {shape} in LPIPS mode, expected "
                             "[N, D]; is it NVIDIA's vgg16.pt?")
        return embedding

    def distance(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        return (self.embed(img0) - self.embed(img1)).square().sum(dim=1)  # [N]


def build_nvidia_vgg16_lpips(weights: Mapping[str, ResolvedWeights]) -> ImageDistance:
    """The "lpips-vgg16-nvidia" distance from the resolved {"network": vgg16.pt} archive."""
    require_format(weights["network"], "torchscript", NAME,
                   "lpips-vgg16-nvidia needs NVIDIA's TorchScript vgg16.pt (torchvision's VGG16: use lpips-vgg).")
    return NvidiaVGG16LPIPS(weights["network"])
