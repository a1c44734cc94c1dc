"""The "lpips-domain" image distance: the LPIPS recipe over a trained domain detector (sgeval.detector).

Not LPIPS (no network trained on human similarity judgements, no learned lin layers), hence its own name:

1. float images [N, C, H, W] in [-1, 1] (not clamped), the detector's own input scaling; integer multiples of its
   training resolution R are box-downsampled to R, other sizes of at least 16x16 run as they are;
2. the activations that end each stage of the detector (4 at R = 32: 32x32, 16x16, 8x8, 4x4 maps);
3. each unit-normalised along channels, as lpips does (`sgeval.distances.lpips_vgg.unit_normalize`);
4. squared difference summed over channels, averaged over H and W, summed over the stages with uniform weights 1
   (the lin layers of LPIPS are learned on human data, which a domain detector does not have).

A squared distance, like lpips-vgg, so PPL divides it by epsilon^2 as is. Differentiable with respect to both
images (the detector's parameters are frozen); zero for identical images. Its file is `domain-detector`, given as
for the feature extractor (`--detector-weights lpips-domain=DIR`, `--distance-weights DIR/detector.safetensors`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from sgeval.detector import DomainDetector, load_detector
from sgeval.distances.base import ImageDistance
from sgeval.distances.lpips_vgg import unit_normalize
from sgeval.weights import ResolvedWeights

__all__ = ["DomainLPIPS", "build_domain_lpips"]

NAME = "lpips-domain"
_INPUT_POLICY = ("float [-1, 1] (not clamped); k x R box-downsampled to the detector's R, other sizes as they are; "
                 "unit-normalised stage activations, uniform layer weights")


class DomainLPIPS(ImageDistance):
    """"lpips-domain": float [N, C, H, W] pairs in [-1, 1] -> float32 [N] (recipe in the module docstring)."""

    def __init__(
        self,
        detector: DomainDetector,  # the loaded, checked detector
        weights: ResolvedWeights,  # its tensor file
    ) -> None:
        super().__init__(NAME, {"network": weights}, input_policy=_INPUT_POLICY, backend="sgeval-detector")
        self.input_channels = detector.channels  # a 1-channel detector refuses RGB; grey goes to a 3-channel one
        self.detector = detector

    def caveats(self) -> list[str]:
        """The detector's failed self-check, when it failed (`sgeval.detector.sanity_caveat`)."""
        return self.detector.caveats()

    def provenance(self) -> dict[str, Any]:
        """The usual record plus the detector's summary (names, held-out accuracy, self-check verdict)."""
        return super().provenance() | {"domain_detector": self.detector.summary()}

    def distance(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(img0.shape[0], device=img0.device)  # [N]
        for f0, f1 in zip(self.detector.stage_maps(img0), self.detector.stage_maps(img1), strict=True):
            total = total + (unit_normalize(f0) - unit_normalize(f1)).square().sum(dim=1).mean(dim=(1, 2))  # [N]
        return total


def build_domain_lpips(weights: Mapping[str, ResolvedWeights]) -> ImageDistance:
    """The "lpips-domain" distance from the resolved {"network": detector.safetensors} (description beside it)."""
    detector = load_detector(weights["network"].path)
    return DomainLPIPS(detector, dataclasses.replace(weights["network"], verified=True))
