"""Differentiable image distances (float images [N, C, H, W] in [-1, 1] -> float32 [N]) and their registry.

Used by perceptual path length and the LPIPS projector. The registry imports without torch (fast CLI listings); the
torch-based classes load on first use. How to add a distance: see `sgeval.distances.registry`.
"""

from __future__ import annotations

from typing import Any

from sgeval.distances.registry import (
    DistanceFile,
    DistanceSpec,
    build_distance,
    get_distance_spec,
    list_distances,
    register_distance,
)

__all__ = [
    "DistanceFile",
    "DistanceSpec",
    "ImageDistance",
    "build_distance",
    "check_image_pair",
    "get_distance_spec",
    "list_distances",
    "register_distance",
]

_LAZY = {"ImageDistance", "check_image_pair"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from sgeval.distances import base

        return getattr(base, name)
    raise AttributeError(f"module 'sgeval.distances' has no attribute {name!r}")
