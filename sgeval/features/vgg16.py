"""VGG16 fc2 features (4096-d, after ReLU) for improved precision/recall (Kynkaanniemi et al. 2019).

Registered as "vgg16-fc2", with two weights files:

* NVIDIA's TorchScript `vgg16.pt` (the detector of stylegan2-ada-pytorch `pr50k3`), called as the official code
  does: `module(uint8 images, return_features=True)` -> [N, 4096]; the archive resizes to 224 internally.
* torchvision's ImageNet VGG16 (`vgg16-397923af.pth`), run here as follows, exactly:
  1. uint8 [N, 3, H, W] -> float32 0..255;
  2. TF1 bilinear resize to 224x224 (`tf1_bilinear_resize`: align_corners=False, no half-pixel centres, no
     antialias; identity when the input is already 224x224);
  3. ImageNet normalisation on the 0..255 scale: (x - 255 * mean) / (255 * std), mean (0.485, 0.456, 0.406),
     std (0.229, 0.224, 0.225);
  4. torchvision `vgg16` features, adaptive average pool to 7x7, flatten, fc1, ReLU, fc2, ReLU (dropout is inactive
     in eval mode): the output of `classifier[4]`, "fc2_relu".
  This is the same recipe as torch-fidelity's "vgg16" extractor with feature "fc2_relu" (the tests compare the two
  on the same weights file). It is NOT bit-identical to NVIDIA's TorchScript detector: different code and weights
  file; torch-fidelity's own test suite reports agreement within 1e-4 (max abs) at several resolutions, which was
  not re-checked here (no network access). Protocol results name the weights sha256, so the two never mix silently.
"""

from __future__ import annotations

import torch
import torchvision

from sgeval.features.base import FeatureExtractor, TorchScriptExtractor, load_state_dict_file
from sgeval.imageops import TF1_BILINEAR, tf1_bilinear_resize
from sgeval.weights import ResolvedWeights

__all__ = ["FEATURE_DIM", "INPUT_SIZE", "VGG16TorchvisionExtractor", "build_vgg16_extractor", "load_vgg16_state_dict"]

FEATURE_DIM = 4096
INPUT_SIZE = 224
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def load_vgg16_state_dict(weights: ResolvedWeights) -> torch.nn.Module:
    """torchvision VGG16 with the file's weights (strict; `weights_only=True`), cut after fc2 + ReLU.

    Returns:
        A module mapping normalised float [N, 3, 224, 224] to [N, 4096], in eval mode without gradients.
    """
    with torch.device("meta"):  # skip the random initialisation of 138M parameters; the file replaces them all
        network = torchvision.models.vgg16(weights=None)
    load_state_dict_file(network, weights, "a torchvision VGG16 state dict", assign=True)
    network.classifier = network.classifier[:5]  # fc1, ReLU, Dropout, fc2, ReLU  ("fc2_relu")
    # Channels-last: oneDNN's fastest convolution layout (same values up to float32 rounding, see
    # sgeval.features.inference); the resize below already produces it.
    return network.to(memory_format=torch.channels_last).eval().requires_grad_(False)


class VGG16TorchvisionExtractor(FeatureExtractor):
    """"vgg16-fc2" on torchvision weights: uint8 [N, 3, H, W] -> float32 [N, 4096] (recipe in the module docstring)."""

    mean: torch.Tensor  # buffer [1, 3, 1, 1] float32, ImageNet mean in 0..255 units
    std: torch.Tensor  # buffer [1, 3, 1, 1] float32, ImageNet std in 0..255 units

    def __init__(
        self,
        network: torch.nn.Module,  # from load_vgg16_state_dict
        weights: ResolvedWeights | None,  # the file it was loaded from
    ) -> None:
        super().__init__("vgg16-fc2", FEATURE_DIM, weights, resize_policy=TF1_BILINEAR, backend="torchvision")
        self.network = network
        self.register_buffer("mean", torch.tensor([255 * m for m in _IMAGENET_MEAN]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([255 * s for s in _IMAGENET_STD]).view(1, 3, 1, 1), persistent=False)

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        x = tf1_bilinear_resize(images, (INPUT_SIZE, INPUT_SIZE))  # [N, 3, 224, 224] float32, channels-last
        return self.network((x - self.mean) / self.std)  # [N, 4096]


def build_vgg16_extractor(weights: ResolvedWeights) -> FeatureExtractor:
    """The "vgg16-fc2" extractor for a resolved weights file (official TorchScript or torchvision state dict)."""
    if weights.format == "torchscript":
        return TorchScriptExtractor("vgg16-fc2", FEATURE_DIM, weights)
    return VGG16TorchvisionExtractor(load_vgg16_state_dict(weights), weights)
