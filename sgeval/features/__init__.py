"""Feature extractors (uint8 images [N, 3, H, W] -> float32 features [N, D]) and their registry.

The registry imports without torch (fast CLI listings); the torch-based classes load on first use.
"""

from __future__ import annotations

from typing import Any

from sgeval.features.registry import (
    ExtractorSpec,
    build_extractor,
    get_extractor_spec,
    list_extractors,
    register_extractor,
)

__all__ = [
    "ExtractorSpec",
    "FeatureExtractor",
    "TorchScriptExtractor",
    "build_extractor",
    "check_image_batch",
    "get_extractor_spec",
    "list_extractors",
    "register_extractor",
]

_LAZY = {"FeatureExtractor", "TorchScriptExtractor", "check_image_batch"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from sgeval.features import base

        return getattr(base, name)
    raise AttributeError(f"module 'sgeval.features' has no attribute {name!r}")
