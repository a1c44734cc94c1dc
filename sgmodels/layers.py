"""Building blocks shared by the StyleGAN (v1), StyleGAN2 and traditional networks.

Equalized learning rate (Karras et al. 2018): weights are stored as N(0, 1) / lr_multiplier and scaled at run time
by lr_multiplier / sqrt(fan_in), biases by lr_multiplier. Every parameter then sees updates of the same relative
size under Adam, and lr_multiplier < 1 slows a layer down (the mapping network uses 0.01). The activation gain
(sqrt(2) for leaky relu) is applied after the activation, as in StyleGAN2; parameter names follow the official
PyTorch code (`weight`, `bias`, `resample_filter`) so its state dicts load one-to-one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from sgmodels.misc import assert_shape
from sgmodels.ops import bias_act, conv2d_resample, upfirdn2d

NOISE_MODES = ("random", "const", "none")


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale x to unit mean square along `dim`: x * rsqrt(mean(x**2) + eps). Shape and dtype unchanged."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class PixelNorm(torch.nn.Module):
    """Pixelwise feature normalisation (ProGAN / StyleGAN v1): unit mean square over the channel axis (dim 1)."""

    def __init__(
        self,
        eps: float = 1e-8,  # Added to the mean square before the reciprocal square root.
    ) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, ...] -> same shape, each position normalised across C."""
        return normalize_2nd_moment(x, dim=1, eps=self.eps)


def check_noise_mode(noise_mode: str) -> None:
    """Raise ValueError unless noise_mode is one of NOISE_MODES."""
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}; got {noise_mode!r}")


def noise_input(x: torch.Tensor, noise_mode: str, noise_const: torch.Tensor | None) -> torch.Tensor | None:
    """Per-pixel noise for the feature maps x [N, C, H, W]: [N, 1, H, W] ('random'), [H, W] ('const') or None.

    'random' draws fresh N(0, 1) values on every call, 'const' returns the fixed buffer `noise_const` [H, W] (the
    same for every sample, so batch composition never changes an image), 'none' disables noise. The caller
    multiplies by its learned strength (a scalar in StyleGAN2, per channel in StyleGAN v1) and adds the result.
    """
    check_noise_mode(noise_mode)
    if noise_mode == "random":
        return torch.randn([x.shape[0], 1, x.shape[2], x.shape[3]], device=x.device, dtype=x.dtype)
    if noise_mode == "const" and noise_const is not None:
        return noise_const.to(x.dtype)
    return None


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate, bias and activation: [N, in_features] -> [N, out_features]."""

    def __init__(
        self,
        in_features: int,  # Input width.
        out_features: int,  # Output width.
        bias: bool = True,  # Add a learned bias before the activation?
        activation: str = "linear",  # Activation name (see ops.bias_act.ACTIVATIONS).
        lr_multiplier: float = 1,  # Learning-rate multiplier: stored weights are N(0, 1) / lr_multiplier.
        bias_init: float = 0,  # Initial value of the effective bias (stored as bias_init, scaled by lr_multiplier).
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features}, {out_features}")
        if lr_multiplier <= 0:
            raise ValueError(f"lr_multiplier must be > 0, got {lr_multiplier}")
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        bias_act.activation_spec(activation)  # fail early on an unknown name
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, in_features] float -> [N, out_features] of the same dtype."""
        assert_shape(x, [None, self.in_features], "FullyConnectedLayer input")
        w = self.weight.to(x.dtype) * self.weight_gain  # [out, in]
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain  # [out]
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())  # [N, out]
        return bias_act.bias_act(x.matmul(w.t()), b, act=self.activation)  # [N, out]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalized learning rate, optional FIR up/downsampling, bias, activation and clamp.

    [N, in_channels, H, W] -> [N, out_channels, H * up / down, W * up / down] ('same' padding kernel_size // 2).
    """

    resample_filter: torch.Tensor  # buffer: FIR filter [taps, taps] float32 from upfirdn2d.setup_filter

    def __init__(
        self,
        in_channels: int,  # Input channels.
        out_channels: int,  # Output channels.
        kernel_size: int,  # Square kernel width (odd for 'same' output size).
        bias: bool = True,  # Add a learned bias before the activation?
        activation: str = "linear",  # Activation name (see ops.bias_act.ACTIVATIONS).
        up: int = 1,  # Upsampling factor (transposed conv + FIR filter).
        down: int = 1,  # Downsampling factor (FIR filter + strided conv).
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR taps for resampling (outer product, normalised).
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp (scaled by the forward gain); None = off.
        lr_multiplier: float = 1,  # Learning-rate multiplier, as in FullyConnectedLayer.
    ) -> None:
        super().__init__()
        if min(in_channels, out_channels, kernel_size, up, down) < 1:
            raise ValueError("in_channels, out_channels, kernel_size, up and down must all be >= 1")
        if lr_multiplier <= 0:
            raise ValueError(f"lr_multiplier must be > 0, got {lr_multiplier}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = lr_multiplier / math.sqrt(in_channels * kernel_size**2)
        self.bias_gain = lr_multiplier
        self.act_gain = bias_act.activation_spec(activation).def_gain
        shape = [out_channels, in_channels, kernel_size, kernel_size]
        self.weight = torch.nn.Parameter(torch.randn(shape) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        """x: [N, in_channels, H, W] -> [N, out_channels, H', W']; `gain` scales the output (and the clamp)."""
        assert_shape(x, [None, self.in_channels, None, None], "Conv2dLayer input")
        w = self.weight.to(x.dtype) * self.weight_gain  # [out, in, k, k]
        # Upsampling layers run the transposed conv as a true convolution (flip_weight=False), as the official
        # code does; official weights are stored for exactly that orientation.
        x = conv2d_resample.conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down,
                                            padding=self.padding, flip_weight=(self.up == 1))  # [N, out, H', W']
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act.bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, "
                f"up={self.up}, down={self.down}")


class MinibatchStdLayer(torch.nn.Module):
    """Minibatch standard deviation (ProGAN): appends `num_channels` maps holding the within-group feature stddev.

    Samples n and n + k * (N / G) form a group (G = min(group_size, N)); for each group the stddev of every feature
    over the G members is averaged over the channels of each of the `num_channels` channel slices and all pixels.
    """

    def __init__(
        self,
        group_size: int | None,  # Samples per group; clamped to the batch size; None or 0 = the whole batch.
        num_channels: int = 1,  # Number of stddev maps appended (the channels are split into this many slices).
    ) -> None:
        super().__init__()
        if group_size is not None and group_size < 0:
            raise ValueError(f"group_size must be >= 0 or None, got {group_size}")
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C + num_channels, H, W]."""
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size else N
        F = self.num_channels
        if N % G != 0:
            raise ValueError(f"minibatch stddev: batch size {N} must be divisible by the group size {G}")
        if C % F != 0:
            raise ValueError(f"minibatch stddev: {C} channels cannot be split into {F} slices")
        y = x.reshape(G, -1, F, C // F, H, W)  # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)  # deviation from the group mean
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [n, F, c, H, W] stddev over the group
        y = y.mean(dim=[2, 3, 4])  # [n, F]
        y = y.reshape(-1, F, 1, 1).repeat(G, 1, H, W)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)  # [N, C + F, H, W]

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
