"""Equalized-lr layers, minibatch stddev, normalisation and noise helpers against plain-torch re-computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sgmodels.layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    MinibatchStdLayer,
    PixelNorm,
    noise_input,
    normalize_2nd_moment,
)
from sgmodels.misc import assert_shape
from sgmodels.ops import upfirdn2d


def test_fully_connected_equalized_lr_and_activation() -> None:
    torch.manual_seed(0)
    layer = FullyConnectedLayer(64, 32, activation="lrelu", lr_multiplier=0.01, bias_init=0.5)
    # Stored weights are N(0, 1) / lr_multiplier; the runtime weights have std 1 / sqrt(fan_in).
    assert layer.weight.std().item() == pytest.approx(100.0, rel=0.05)
    effective = layer.weight * 0.01 / math.sqrt(64)
    assert effective.std().item() == pytest.approx(1 / 8, rel=0.05)
    x = torch.randn(5, 64)
    want = F.leaky_relu(x @ effective.t() + 0.5 * 0.01, 0.2) * math.sqrt(2)
    torch.testing.assert_close(layer(x), want)
    linear = FullyConnectedLayer(64, 3, bias_init=1)
    torch.testing.assert_close(linear(x), x @ (linear.weight / 8).t() + 1)
    with pytest.raises(ValueError, match=r"FullyConnectedLayer input must have shape \[\*, 64\]"):
        layer(torch.randn(5, 63))


def test_unit_variance_is_preserved_by_equalized_lrelu_dense() -> None:
    torch.manual_seed(1)
    layer = FullyConnectedLayer(512, 512, activation="lrelu")
    y = layer(torch.randn(4096, 512))
    # lrelu(0.2) of N(0, 1) has second moment (1 + 0.04) / 2; times gain^2 = 2 gives 1.04.
    assert y.square().mean().item() == pytest.approx(1.04, rel=0.05)


@pytest.mark.parametrize("activation", ["linear", "lrelu"])
def test_conv2d_layer_matches_plain_conv(activation: str) -> None:
    torch.manual_seed(2)
    layer = Conv2dLayer(4, 6, 3, activation=activation)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 4, 8, 8)
    y = F.conv2d(x, layer.weight / math.sqrt(4 * 9), layer.bias, padding=1)
    if activation == "lrelu":
        y = F.leaky_relu(y, 0.2) * math.sqrt(2)
    torch.testing.assert_close(layer(x), y)
    torch.testing.assert_close(layer(x, gain=0.5), y * 0.5)


def test_conv2d_layer_resampling_shapes_clamp_and_orientation() -> None:
    torch.manual_seed(3)
    x = torch.randn(2, 4, 8, 8)
    up = Conv2dLayer(4, 5, 3, up=2)
    down = Conv2dLayer(4, 5, 3, down=2, bias=False)
    assert up(x).shape == (2, 5, 16, 16)
    assert down(x).shape == (2, 5, 4, 4)
    assert down.bias is None and down.resample_filter.shape == (4, 4)
    # The upsampling layer convolves (flipped weights) after FIR upsampling, as the official layer does.
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    w = up.weight / math.sqrt(4 * 9)
    want = F.conv2d(upfirdn2d.upfirdn2d(x, f, up=2, padding=(3, 2, 3, 2), gain=4), w.flip([2, 3]))
    torch.testing.assert_close(up(x), want)
    clamped = Conv2dLayer(4, 5, 3, conv_clamp=0.1)
    assert clamped(x).abs().max().item() <= 0.1 + 1e-7
    assert clamped(x, gain=2).abs().max().item() <= 0.2 + 1e-7


def _mbstd_reference(x: torch.Tensor, group_size: int, num_channels: int) -> torch.Tensor:
    """Loop version: sample n belongs to group n % (N / G); stddev over the group, averaged per channel slice."""
    N, C, H, W = x.shape
    G = min(group_size, N)
    num_groups = N // G
    out = torch.empty(N, num_channels, H, W, dtype=x.dtype)
    for n in range(N):
        members = x[n % num_groups :: num_groups]  # [G, C, H, W]
        std = members.std(dim=0, unbiased=False)  # [C, H, W]
        for f in range(num_channels):
            chunk = std[f * C // num_channels : (f + 1) * C // num_channels]
            out[n, f] = chunk.mean()
    return torch.cat([x, out], dim=1)


@pytest.mark.parametrize(("N", "group_size", "num_channels"), [(8, 4, 1), (6, 2, 2), (3, 4, 1), (4, 4, 4)])
def test_minibatch_std_matches_loop_reference(N: int, group_size: int, num_channels: int) -> None:
    torch.manual_seed(4)
    x = torch.randn(N, 4, 3, 3, dtype=torch.float64)
    got = MinibatchStdLayer(group_size, num_channels)(x)
    assert got.shape == (N, 4 + num_channels, 3, 3)
    torch.testing.assert_close(got, _mbstd_reference(x, group_size, num_channels), rtol=1e-6, atol=1e-6)


def test_minibatch_std_rejects_indivisible_batches() -> None:
    with pytest.raises(ValueError, match="divisible by the group size 4"):
        MinibatchStdLayer(4)(torch.randn(6, 2, 4, 4))


def test_normalize_2nd_moment_and_pixel_norm() -> None:
    torch.manual_seed(5)
    x = torch.randn(3, 7, 2, 2) * 5
    y = PixelNorm()(x)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(3, 2, 2))
    z = normalize_2nd_moment(x.flatten(1))
    torch.testing.assert_close(z.square().mean(dim=1), torch.ones(3))
    torch.testing.assert_close(y, x / x.square().mean(dim=1, keepdim=True).sqrt(), rtol=1e-5, atol=1e-6)


def test_noise_input_modes() -> None:
    x = torch.zeros(2, 3, 4, 4)
    const = torch.randn(4, 4)
    assert noise_input(x, "random", const).shape == (2, 1, 4, 4)
    assert not torch.equal(noise_input(x, "random", const), noise_input(x, "random", const))
    assert noise_input(x, "const", const) is not None and torch.equal(noise_input(x, "const", const), const)
    assert noise_input(x, "none", const) is None
    with pytest.raises(ValueError, match="noise_mode must be one of random, const, none"):
        noise_input(x, "fixed", const)


def test_assert_shape_wildcards_and_messages() -> None:
    assert_shape(torch.zeros(2, 3, 4), [None, 3, 4])
    with pytest.raises(ValueError, match=r"ws must have shape \[\*, 3, 4\], got \[2, 3, 5\]"):
        assert_shape(torch.zeros(2, 3, 5), [None, 3, 4], "ws")
    with pytest.raises(ValueError, match="2 dims"):
        assert_shape(torch.zeros(2, 3), [None, 3, 4], "ws")
    with pytest.raises(TypeError, match="torch.Tensor"):
        assert_shape([1, 2], [2], "ws")
