"""Bias + activation + gain + clamp in one call (pure PyTorch), as StyleGAN2's `fused_bias_act`.

The output is `clamp(act(x + b) * gain, -clamp, clamp)`. Each activation has a default gain chosen so that a unit
variance input keeps roughly unit variance (He et al.): sqrt(2) for relu and leaky relu, 1 otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ActivationSpec:
    """One activation: its function of (x, alpha), default alpha (None = unused) and default gain."""

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float | None
    def_gain: float


ACTIVATIONS: dict[str, ActivationSpec] = {
    "linear": ActivationSpec(lambda x, _: x, None, 1.0),
    "relu": ActivationSpec(lambda x, _: F.relu(x), None, math.sqrt(2)),
    "lrelu": ActivationSpec(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
    "tanh": ActivationSpec(lambda x, _: torch.tanh(x), None, 1.0),
    "sigmoid": ActivationSpec(lambda x, _: torch.sigmoid(x), None, 1.0),
    "elu": ActivationSpec(lambda x, _: F.elu(x), None, 1.0),
    "selu": ActivationSpec(lambda x, _: F.selu(x), None, 1.0),
    "softplus": ActivationSpec(lambda x, _: F.softplus(x), None, 1.0),
    "swish": ActivationSpec(lambda x, _: x * torch.sigmoid(x), None, math.sqrt(2)),
}


def activation_spec(act: str) -> ActivationSpec:
    """Look up an activation by name; unknown names raise ValueError listing the known ones."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[act]


def bias_act(
    x: torch.Tensor,  # Input of any shape, float.
    b: torch.Tensor | None = None,  # Bias [x.shape[dim]] added along `dim`; None = no bias.
    dim: int = 1,  # Axis of x that the bias runs along (the channel axis).
    act: str = "linear",  # Activation name, see ACTIVATIONS.
    alpha: float | None = None,  # Activation parameter (leaky relu slope); None = the activation's default.
    gain: float | None = None,  # Output scale; None = the activation's default gain.
    clamp: float | None = None,  # Clamp the output to [-clamp, clamp]; None = no clamping.
) -> torch.Tensor:
    """Return `clamp(act(x + b) * gain)`, same shape and dtype as x."""
    spec = activation_spec(act)
    alpha = spec.def_alpha if alpha is None else alpha
    alpha = 0.0 if alpha is None else float(alpha)
    gain = float(spec.def_gain if gain is None else gain)
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be None or >= 0, got {clamp}")
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias must have shape [{x.shape[dim]}] (x.shape[{dim}]), got {list(b.shape)}")
        view = [1] * x.ndim
        view[dim] = -1
        x = x + b.to(x.dtype).reshape(view)
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
