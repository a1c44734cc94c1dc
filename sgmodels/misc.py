"""Small helpers shared by the network modules: shape checks at module boundaries."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def assert_shape(tensor: torch.Tensor, expected: Sequence[int | None], name: str = "tensor") -> None:
    """Raise ValueError unless `tensor` has `len(expected)` dims matching `expected` (None = any size).

    Example: `assert_shape(x, [None, 512, 4, 4], "x")` accepts any batch size of 512-channel 4x4 maps.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    wanted = "[" + ", ".join("*" if size is None else str(size) for size in expected) + "]"
    if tensor.ndim != len(expected):
        raise ValueError(f"{name} must have shape {wanted}, got {list(tensor.shape)} ({tensor.ndim} dims)")
    for axis, (size, want) in enumerate(zip(tensor.shape, expected, strict=True)):
        if want is not None and int(size) != int(want):
            raise ValueError(f"{name} must have shape {wanted}, got {list(tensor.shape)} (axis {axis} differs)")
