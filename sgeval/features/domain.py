"""The "domain" feature extractor: a detector trained by `sgeval detector train` (sgeval.detector), as a
FeatureExtractor, so that FD/KD/precision-recall run through the same runner, batch loop and cache as FID.

uint8 [N, C, kR, kR] -> x / 127.5 - 1 -> box-downsampled by k to the detector's training resolution R -> the dense
layer before its head, float32 [N, D]. Its file is found like any weights file (`domain-detector` in
sgeval.weights: an explicit path or the detector's folder, `--weights-dir`, `$SGEVAL_WEIGHTS_DIR`, the project
cache), and the description beside it (`detector.json`) must record the file's sha256. The identity (cache keys,
statistics files) holds that sha256 and the input policy with R, so another detector never reuses these features.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from sgeval.detector import RESIZE_POLICY, DomainDetector, load_detector
from sgeval.features.base import FeatureExtractor
from sgeval.weights import ResolvedWeights

__all__ = ["DomainExtractor", "build_domain_extractor"]

NAME = "domain"


class DomainExtractor(FeatureExtractor):
    """"domain": uint8 [N, C, kR, kR] -> float32 [N, D] features of a trained domain detector."""

    def __init__(
        self,
        detector: DomainDetector,  # the loaded, checked detector
        weights: ResolvedWeights,  # the tensor file it came from (sha256 checked against its description)
    ) -> None:
        super().__init__(NAME, detector.feature_dim, weights,
                         resize_policy=f"{RESIZE_POLICY}:{detector.resolution}x{detector.resolution}",
                         backend="sgeval-detector", input_channels=detector.channels)
        self.detector = detector

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        return self.detector.features(images.float() / 127.5 - 1)  # [N, D]

    def caveats(self) -> list[str]:
        """The detector's failed self-check, when it failed (`sgeval.detector.sanity_caveat`)."""
        return self.detector.caveats()

    def provenance(self) -> dict[str, Any]:
        """The usual record plus the detector's summary (names, input, held-out accuracy, dataset fingerprint)."""
        return super().provenance() | {"domain_detector": self.detector.summary()}


def build_domain_extractor(weights: ResolvedWeights) -> FeatureExtractor:
    """The "domain" extractor from a resolved `detector.safetensors` (its description is read beside it)."""
    detector = load_detector(weights.path)
    # The file's sha256 equals the one its description records: verified, although no registry checksum exists.
    return DomainExtractor(detector, dataclasses.replace(weights, verified=True))
