"""LPIPS v0.1 on VGG16 (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

Registered as "lpips-vgg". Matches the `lpips` package (richzhang/PerceptualSimilarity, 0.1.4),
`lpips.LPIPS(net="vgg", version="0.1")` called with its default `normalize=False`, i.e. images in [-1, 1]; the tests
compare the two on identical weights. Re-implemented here (the package is only a test dependency) so that both
weights files go through sgeval's own offline lookup and torchvision is never asked to download anything:

1. scaling layer: (x - shift) / scale per RGB channel, shift (-0.030, -0.088, -0.188), scale (0.458, 0.448, 0.450)
   (ImageNet normalisation expressed for inputs in [-1, 1]); no clamping, no resizing;
2. torchvision's VGG16 `features` up to relu5_3, cut after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3;
3. each of the 5 feature maps unit-normalised along channels: f / (||f||_2 + 1e-10);
4. squared difference of the two images' normalised features, a 1x1 convolution without bias to one channel
   (the "lin" layers, learned on human judgements), mean over H and W;
5. sum over the 5 layers: already a squared distance (PPL divides it by epsilon^2 as is).

Weights: `vgg16-torchvision` (torchvision's ImageNet VGG16 state dict, classifier unused) and `lpips-vgg-lin-v0.1`
(`weights/v0.1/vgg.pth`, shipped inside the lpips package, found there by the weights registry).

One deliberate difference, in the gradient only: where all channels of a feature map are zero at a pixel, lpips's
norm has an infinite derivative and the input gradient becomes NaN; here the squared norm is floored at the
smallest normal float32, which leaves every forward value bit-identical (that floor's square root is far below
1e-10's rounding) and makes the gradient there finite.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sgeval.distances.base import ImageDistance, require_format
from sgeval.features.base import load_state_dict_file
from sgeval.features.vgg16 import load_vgg16_state_dict
from sgeval.weights import ResolvedWeights

__all__ = ["CHANNELS", "LPIPSLinearLayers", "LPIPSVGG", "build_lpips_vgg", "unit_normalize"]

NAME = "lpips-vgg"
CHANNELS = (64, 128, 256, 512, 512)  # channels of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_SLICE_ENDS = (4, 9, 16, 23, 30)  # torchvision vgg16().features index just after each of those ReLUs
_SHIFT = (-0.030, -0.088, -0.188)  # lpips v0.1 scaling layer, per RGB channel
_SCALE = (0.458, 0.448, 0.450)
_NORM_EPS = 1e-10  # added to the channel norm (lpips's value)
_SQUARED_NORM_FLOOR = torch.finfo(torch.float32).tiny  # gradient guard only, see the module docstring
_INPUT_POLICY = "float [-1, 1] (not clamped) -> lpips v0.1 scaling layer; no resize"


def unit_normalize(features: torch.Tensor) -> torch.Tensor:
    """Features [N, C, H, W] divided by their L2 norm over C plus 1e-10 (lpips `normalize_tensor`), float32."""
    squared = features.square().sum(dim=1, keepdim=True).clamp_min(_SQUARED_NORM_FLOOR)  # [N, 1, H, W]
    return features / (squared.sqrt() + _NORM_EPS)


class LPIPSLinearLayers(torch.nn.Module):
    """The five 1x1 "lin" convolutions (C_k -> 1, no bias).

    Laid out as the lpips weights file stores them, `lin{k}.model.1.weight` [1, C_k, 1, 1] (index 0 was a dropout,
    inactive at evaluation), so that the file loads strictly, with the usual layout errors for a wrong file.
    """

    def __init__(self) -> None:
        super().__init__()
        for k, channels in enumerate(CHANNELS):
            conv = torch.nn.Conv2d(channels, 1, kernel_size=1, bias=False)
            self.add_module(f"lin{k}", torch.nn.ModuleDict({"model": torch.nn.Sequential(torch.nn.Identity(), conv)}))

    def layers(self) -> list[torch.nn.Module]:
        """The five convolutions, in layer order."""
        return [self.get_submodule(f"lin{k}.model.1") for k in range(len(CHANNELS))]


class LPIPSVGG(ImageDistance):
    """"lpips-vgg": float [N, 3, H, W] pairs in [-1, 1] -> LPIPS distances float32 [N] (recipe in the docstring)."""

    shift: torch.Tensor  # buffer [1, 3, 1, 1] float32
    scale: torch.Tensor  # buffer [1, 3, 1, 1] float32

    def __init__(
        self,
        backbone: torch.nn.Sequential,  # torchvision vgg16().features, at least up to relu5_3
        linear: LPIPSLinearLayers,  # the lin layers with their weights
        weights: Mapping[str, ResolvedWeights],  # {"backbone": ..., "linear": ...}: the files they came from
    ) -> None:
        super().__init__(NAME, weights, input_policy=_INPUT_POLICY, backend="sgeval-port")
        starts = (0, *_SLICE_ENDS[:-1])
        self.slices = torch.nn.ModuleList(backbone[start:end] for start, end in zip(starts, _SLICE_ENDS, strict=True))
        self.linear = linear
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """float [N, 3, H, W] in [-1, 1] -> the 5 unit-normalised feature maps [N, C_k, H / 2^k, W / 2^k]."""
        # Channels-last like the backbone (load_vgg16_state_dict): 1.7x faster at 256x256 than NCHW on oneDNN, equal
        # at 32x32; a mixed layout would reorder at every layer.
        x = ((images - self.shift) / self.scale).contiguous(memory_format=torch.channels_last)  # [N, 3, H, W]
        maps = []
        for block in self.slices:
            x = block(x)  # [N, C_k, H_k, W_k]: ends with a ReLU; the next slice starts with a max-pool (not in place)
            maps.append(unit_normalize(x))
        return maps

    def distance(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        # The two batches run separately, as lpips runs them: one 2N batch could pick other conv kernels.
        total = torch.zeros(img0.shape[0], device=img0.device)  # [N]
        for f0, f1, lin in zip(self.features(img0), self.features(img1), self.linear.layers(), strict=True):
            total = total + lin((f0 - f1).square()).mean(dim=(2, 3))[:, 0]  # [N]: layers added in lpips's order
        return total


def build_lpips_vgg(weights: Mapping[str, ResolvedWeights]) -> ImageDistance:
    """The "lpips-vgg" distance from resolved files {"backbone": torchvision VGG16, "linear": lpips vgg.pth}."""
    hint = ("lpips-vgg needs torchvision's VGG16 and the lpips package's vgg.pth "
            "(for NVIDIA's vgg16.pt use lpips-vgg16-nvidia).")
    for role in ("backbone", "linear"):
        require_format(weights[role], "state_dict", NAME, hint)
    linear = load_state_dict_file(LPIPSLinearLayers(), weights["linear"],  # the small file first: fails fast
                                  "the LPIPS v0.1 VGG linear layers (lpips weights/v0.1/vgg.pth)")
    backbone = load_vgg16_state_dict(weights["backbone"]).features
    if not isinstance(backbone, torch.nn.Sequential):  # torchvision's layout, which the slicing relies on
        raise TypeError(f"torchvision's vgg16().features is a {type(backbone).__name__}, expected a Sequential")
    return LPIPSVGG(backbone, linear, weights)
