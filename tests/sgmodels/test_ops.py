"""The pure-PyTorch ops against independent references: scipy.signal, plain torch and explicit compositions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from sgmodels.ops import bias_act, conv2d_resample, upfirdn2d


def _scipy_upfirdn_1d(x: np.ndarray, h: np.ndarray, up: int, down: int, pad0: int, pad1: int, axis: int) -> np.ndarray:
    """Reference upfirdn along one axis built on scipy.signal.upfirdn (full convolution of the upsampled signal).

    Output sample i of the padded op is full-convolution sample i + len(h) - 1 - pad0; samples outside the full
    convolution are zero.
    """
    full = scipy.signal.upfirdn(h, x, up=up, down=1, axis=axis)
    n_out = (x.shape[axis] * up + pad0 + pad1 - len(h)) // down + 1
    margin = len(h) + abs(pad0) + abs(pad1) + x.shape[axis] * up
    widths = [(0, 0)] * x.ndim
    widths[axis] = (margin, margin)
    padded = np.pad(full, widths)
    index = np.arange(n_out) * down + len(h) - 1 - pad0 + margin
    return padded.take(index, axis=axis)


def _reference_separable(x: torch.Tensor, taps: list[float], up: int, down: int, pad: tuple[int, int, int, int],
                         gain: float = 1.0) -> torch.Tensor:
    h = np.asarray(taps, dtype=np.float64)
    h = h / h.sum() * math.sqrt(gain)
    out = _scipy_upfirdn_1d(x.numpy(), h, up, down, pad[0], pad[1], axis=3)
    out = _scipy_upfirdn_1d(out, h, up, down, pad[2], pad[3], axis=2)
    return torch.from_numpy(out)


CASES = [
    (1, 1, (0, 0, 0, 0)),
    (2, 1, (2, 1, 2, 1)),
    (1, 2, (1, 1, 1, 1)),
    (2, 2, (3, 1, 2, 0)),
    (3, 2, (-1, 2, 1, -2)),
    (1, 3, (4, -1, 0, 2)),
]


@pytest.mark.parametrize(("up", "down", "pad"), CASES)
@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1], [1, 4, 6, 4, 1, 2, 3, 1]])
def test_upfirdn2d_matches_scipy_upfirdn(up: int, down: int, pad: tuple[int, int, int, int], taps: list[float]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, 10, dtype=torch.float64)
    f = upfirdn2d.setup_filter(taps)  # 2D outer product for short filters, separable 1D for 8 taps
    assert f.ndim == (1 if len(taps) >= 8 else 2)
    got = upfirdn2d.upfirdn2d(x, f.double(), up=up, down=down, padding=pad, gain=2.5)
    want = _reference_separable(x, taps, up, down, pad, gain=2.5)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)  # the taps are float32


def test_upfirdn2d_non_separable_filter_matches_convolve2d() -> None:
    torch.manual_seed(1)
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64)
    kernel = torch.randn(3, 4, dtype=torch.float64)  # asymmetric: catches a missing flip
    got = upfirdn2d.upfirdn2d(x, kernel, padding=(3, 3, 2, 2))  # (x0, x1, y0, y1) = full convolution
    for c in range(2):
        want = scipy.signal.convolve2d(x[0, c].numpy(), kernel.numpy(), mode="full")
        np.testing.assert_allclose(got[0, c].numpy(), want, rtol=1e-12, atol=1e-12)
    flipped = upfirdn2d.upfirdn2d(x, kernel, padding=(3, 3, 2, 2), flip_filter=True)
    want = scipy.signal.correlate2d(x[0, 0].numpy(), kernel.numpy(), mode="full")
    np.testing.assert_allclose(flipped[0, 0].numpy(), want, rtol=1e-12, atol=1e-12)


def test_upsample2d_and_downsample2d_sizes_paddings_and_constant_preservation() -> None:
    torch.manual_seed(2)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    up = upfirdn2d.upsample2d(x, f.double())
    torch.testing.assert_close(up, _reference_separable(x, [1, 3, 3, 1], 2, 1, (2, 1, 2, 1), gain=4.0))
    down = upfirdn2d.downsample2d(x, f.double())
    torch.testing.assert_close(down, _reference_separable(x, [1, 3, 3, 1], 1, 2, (1, 1, 1, 1)))
    assert up.shape == (2, 3, 16, 16) and down.shape == (2, 3, 4, 4)
    # Away from the borders a constant image stays constant (normalised filter, gain up**2 for upsampling).
    ones = torch.ones(1, 1, 8, 8)
    assert torch.allclose(upfirdn2d.upsample2d(ones, f)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    assert torch.allclose(upfirdn2d.downsample2d(ones, f)[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def test_nearest_and_box_defaults_and_filter2d_same_size() -> None:
    x = torch.randn(1, 2, 4, 6)
    torch.testing.assert_close(upfirdn2d.upsample2d(x, None), F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(upfirdn2d.downsample2d(x, None), F.avg_pool2d(x, 2))
    f = upfirdn2d.setup_filter([1, 2, 1])
    y = upfirdn2d.filter2d(x, f)
    assert y.shape == x.shape
    want = F.conv2d(F.pad(x, [1, 1, 1, 1]), f[None, None].expand(2, 1, 3, 3), groups=2)
    torch.testing.assert_close(y, want)


def test_setup_filter_normalisation_gain_and_errors() -> None:
    f = upfirdn2d.setup_filter([1, 3, 3, 1], gain=4)
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert f.sum().item() == pytest.approx(4.0)
    assert upfirdn2d.setup_filter(None).tolist() == [[1.0]]
    with pytest.raises(ValueError, match="1D or 2D"):
        upfirdn2d.setup_filter(torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="sum to 0"):
        upfirdn2d.setup_filter([1, -1])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        upfirdn2d.upfirdn2d(torch.ones(3, 4), f)
    with pytest.raises(ValueError, match="empty"):
        upfirdn2d.upfirdn2d(torch.ones(1, 1, 2, 2), f, padding=-3)


@pytest.mark.parametrize("act", ["linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish"])
def test_bias_act_matches_plain_torch(act: str) -> None:
    torch.manual_seed(3)
    x = torch.randn(4, 5, 3, 3)
    b = torch.randn(5)
    z = x + b[None, :, None, None]
    plain = {
        "linear": z, "relu": F.relu(z) * math.sqrt(2), "lrelu": F.leaky_relu(z, 0.2) * math.sqrt(2),
        "tanh": torch.tanh(z), "sigmoid": torch.sigmoid(z), "elu": F.elu(z), "selu": F.selu(z),
        "softplus": F.softplus(z), "swish": z * torch.sigmoid(z) * math.sqrt(2),
    }[act]
    torch.testing.assert_close(bias_act.bias_act(x, b, act=act), plain)
    torch.testing.assert_close(bias_act.bias_act(x, b, act=act, gain=0.5, clamp=0.3), (plain * 0.5 / (
        bias_act.activation_spec(act).def_gain)).clamp(-0.3, 0.3))


def test_bias_act_other_dim_alpha_and_errors() -> None:
    x = torch.randn(3, 7)
    b = torch.randn(3)
    want = F.leaky_relu(x + b[:, None], 0.1)
    torch.testing.assert_close(bias_act.bias_act(x, b, dim=0, act="lrelu", alpha=0.1, gain=1), want)
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act.bias_act(x, act="gelu-ish")
    with pytest.raises(ValueError, match=r"bias must have shape \[7\]"):
        bias_act.bias_act(x, b, dim=1)


def _explicit_up(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, groups: int, flip_weight: bool) -> torch.Tensor:
    """Zero-insert and FIR-filter with the conv padding folded in ((3, 2) for 3x3 and 4 taps), then a valid conv."""
    p0, p1 = w.shape[-1] // 2 + 2, w.shape[-1] // 2 + 1
    weight = w if flip_weight else w.flip([2, 3])
    return F.conv2d(upfirdn2d.upfirdn2d(x, f, up=2, padding=(p0, p1, p0, p1), gain=4), weight, groups=groups)


def _explicit_down(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, groups: int) -> torch.Tensor:
    """Filter with the padding (k // 2 + 1 each side for a 4-tap filter), then a stride-2 conv."""
    k = w.shape[-1]
    return F.conv2d(upfirdn2d.upfirdn2d(x, f, padding=k // 2 + 1), w, stride=2, groups=groups)


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_up_and_down_match_explicit_composition(kernel: int, groups: int, flip_weight: bool) -> None:
    torch.manual_seed(4)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, kernel, kernel, dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1]).double()
    up = conv2d_resample.conv2d_resample(x, w, f, up=2, padding=kernel // 2, groups=groups, flip_weight=flip_weight)
    assert up.shape == (2, 6, 12, 12)
    torch.testing.assert_close(up, _explicit_up(x, w, f, groups, flip_weight))
    down = conv2d_resample.conv2d_resample(x, w, f, down=2, padding=kernel // 2, groups=groups)
    assert down.shape == (2, 6, 3, 3)
    if kernel == 3:
        torch.testing.assert_close(down, _explicit_down(x, w, f, groups))
    else:  # 1x1: downsample2d then the pointwise conv
        torch.testing.assert_close(down, F.conv2d(upfirdn2d.downsample2d(x, f), w, groups=groups))


def test_conv2d_resample_plain_and_asymmetric_padding() -> None:
    torch.manual_seed(5)
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(conv2d_resample.conv2d_resample(x, w, padding=1), F.conv2d(x, w, padding=1))
    got = conv2d_resample.conv2d_resample(x, w, padding=(2, 0, 1, 1))
    torch.testing.assert_close(got, F.conv2d(F.pad(x, [2, 0, 1, 1]), w))
    torch.testing.assert_close(conv2d_resample.conv2d_resample(x, w, padding=1, flip_weight=False),
                               F.conv2d(x, w.flip([2, 3]), padding=1))
    with pytest.raises(ValueError, match="channels"):
        conv2d_resample.conv2d_resample(x, torch.randn(2, 4, 3, 3, dtype=torch.float64))
