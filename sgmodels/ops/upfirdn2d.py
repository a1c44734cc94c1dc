"""Upsample, pad, FIR-filter and downsample 2D images in one op (pure PyTorch, any device).

`upfirdn2d` follows the semantics of the StyleGAN2 op of the same name (and of `scipy.signal.upfirdn` applied along
both axes): insert `up - 1` zeros after every input pixel, pad (negative padding crops), convolve with the FIR
filter `f` (a true convolution unless `flip_filter=True`), then keep every `down`-th pixel. For an input of size
H the output size is `(H * up + pad0 + pad1 - filter_size) // down + 1`.

Filters are 1D (separable, applied along both axes) or 2D tensors of float32 made by `setup_filter`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

FilterLike = torch.Tensor | Sequence[float] | Sequence[Sequence[float]] | float | None
Padding = int | Sequence[int]


def setup_filter(
    f: FilterLike,  # Filter taps: 1D list (outer product unless separable), 2D list, scalar or None (= [1]).
    normalize: bool = True,  # Scale so that the taps sum to 1 (then the filter keeps a constant image constant).
    flip_filter: bool = False,  # Flip the taps (turns a convolution into a correlation).
    gain: float = 1,  # Overall gain: multiplies the 2D response, i.e. 1D taps by sqrt(gain).
    separable: bool | None = None,  # Keep a 1D filter 1D? None = only for long (>= 8 taps) 1D filters.
    device: torch.device | str | None = None,  # Device of the returned tensor.
) -> torch.Tensor:
    """Return a float32 FIR filter tensor: [taps] (separable) or [taps_y, taps_x] (2D)."""
    if f is None:
        f = 1
    taps = torch.as_tensor(f, dtype=torch.float32, device="cpu")  # validated on the CPU, then moved
    if taps.ndim == 0:
        taps = taps[None]
    if taps.ndim not in (1, 2) or taps.numel() == 0:
        raise ValueError(f"a FIR filter must be a non-empty 1D or 2D array, got shape {list(taps.shape)}")
    if not torch.isfinite(taps).all():
        raise ValueError("a FIR filter must contain only finite values")
    if separable is None:
        separable = taps.ndim == 1 and taps.numel() >= 8
    if taps.ndim == 1 and not separable:
        taps = torch.outer(taps, taps)  # [taps, taps]
    if separable and taps.ndim != 1:
        raise ValueError("separable=True needs a 1D filter")
    if normalize:
        total = taps.sum()
        if total == 0:
            raise ValueError("cannot normalise a FIR filter whose taps sum to 0; pass normalize=False")
        taps = taps / total
    if flip_filter:
        taps = taps.flip(list(range(taps.ndim)))
    taps = taps * (gain ** (taps.ndim / 2))
    return taps.to(device=device)


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    """(x, y) from an int or a pair, checking that both are positive integers."""
    if isinstance(value, int):
        value = (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{what} must be a positive int or an (x, y) pair of positive ints, got {value!r}")
    return pair


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """(pad_x0, pad_x1, pad_y0, pad_y1) from an int, an (x, y) pair or a 4-sequence; negative values crop."""
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    if len(padding) != 4:
        raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1), got {padding!r}")
    return padding[0], padding[1], padding[2], padding[3]


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) in taps of a filter made by `setup_filter` (None = a 1x1 identity)."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"a FIR filter must be 1D or 2D, got shape {list(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def _check_image(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a 4D tensor [N, C, H, W], got {shape}")


def _upsample_zeros(x: torch.Tensor, upx: int, upy: int) -> torch.Tensor:
    """Insert up - 1 zeros after every pixel: [N, C, H, W] -> [N, C, H * upy, W * upx]."""
    if upx == 1 and upy == 1:
        return x
    N, C, H, W = x.shape
    x = x.reshape(N, C, H, 1, W, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])  # [N, C, H, upy, W, upx]
    return x.reshape(N, C, H * upy, W * upx)


def _pad_or_crop(x: torch.Tensor, px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    """Zero-pad positive amounts and crop negative amounts on each side of [N, C, H, W]."""
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    H, W = x.shape[2], x.shape[3]
    return x[:, :, max(-py0, 0) : H - max(-py1, 0), max(-px0, 0) : W - max(-px1, 0)]


def _depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of [N, C, H, W] with the same 2D kernel [kh, kw] (valid padding)."""
    C = x.shape[1]
    weight = kernel[None, None].expand(C, 1, *kernel.shape)  # [C, 1, kh, kw]
    return F.conv2d(x, weight, groups=C)


def upfirdn2d(
    x: torch.Tensor,  # Images [N, C, H, W], any float dtype.
    f: torch.Tensor | None,  # Filter from setup_filter: [taps] or [taps_y, taps_x]; None = identity.
    up: int | Sequence[int] = 1,  # Upsampling factor, int or (x, y).
    down: int | Sequence[int] = 1,  # Downsampling factor, int or (x, y).
    padding: Padding = 0,  # Padding after upsampling: int, (x, y) or (x0, x1, y0, y1); negative crops.
    flip_filter: bool = False,  # False = convolution (as scipy.signal), True = correlation.
    gain: float = 1,  # Overall gain of the filter response.
) -> torch.Tensor:
    """Upsample, pad, filter and downsample a batch of images; returns [N, C, H', W'] of x's dtype."""
    _check_image(x)
    upx, upy = _pair(up, "up")
    downx, downy = _pair(down, "down")
    px0, px1, py0, py1 = parse_padding(padding)
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    fw, fh = filter_size(f)
    out_h = (x.shape[2] * upy + py0 + py1 - fh) // downy + 1
    out_w = (x.shape[3] * upx + px0 + px1 - fw) // downx + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"upfirdn2d output would be empty for input {list(x.shape)}, filter {list(f.shape)}, "
                         f"up {up}, down {down}, padding {padding}")

    x = _upsample_zeros(x, upx, upy)  # [N, C, H * upy, W * upx]
    x = _pad_or_crop(x, px0, px1, py0, py1)
    # conv2d correlates; flipping the taps turns that into the convolution that the op promises.
    f = (f * (gain ** (f.ndim / 2))).to(device=x.device, dtype=x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = _depthwise(x, f)
    else:
        x = _depthwise(x, f[None, :])  # along W
        x = _depthwise(x, f[:, None])  # along H
    return x[:, :, ::downy, ::downx]  # [N, C, out_h, out_w]


def filter2d(
    x: torch.Tensor,  # Images [N, C, H, W].
    f: torch.Tensor | None,  # Filter from setup_filter.
    padding: Padding = 0,  # Extra padding beyond the size-preserving padding.
    flip_filter: bool = False,  # False = convolution, True = correlation.
    gain: float = 1,  # Overall gain.
) -> torch.Tensor:
    """Filter without resampling; with padding=0 the output has the input size: [N, C, H, W]."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pad = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain)


def upsample2d(
    x: torch.Tensor,  # Images [N, C, H, W].
    f: torch.Tensor | None,  # Interpolation filter from setup_filter (e.g. [1, 3, 3, 1]); None = nearest.
    up: int | Sequence[int] = 2,  # Factor, int or (x, y).
    padding: Padding = 0,  # Extra padding beyond the size-multiplying padding.
    flip_filter: bool = False,  # False = convolution, True = correlation.
    gain: float = 1,  # Overall gain (the up**2 that keeps the mean is applied on top).
) -> torch.Tensor:
    """Upsample with an FIR filter: [N, C, H, W] -> [N, C, H * up, W * up] (with padding=0).

    With a 4-tap filter and factor 2 the padding is (2, 1) on each axis, as in StyleGAN2's `upsample_2d`.
    """
    upx, upy = _pair(up, "up")
    px0, px1, py0, py1 = parse_padding(padding)
    if f is None:
        # A box of the factor's size: with the up**2 gain below every output pixel copies one input pixel.
        f = torch.full([upy, upx], 1.0 / (upx * upy), dtype=torch.float32, device=x.device)
    fw, fh = filter_size(f)
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=pad, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(
    x: torch.Tensor,  # Images [N, C, H, W].
    f: torch.Tensor | None,  # Anti-aliasing filter from setup_filter; None = box filter of the factor's size.
    down: int | Sequence[int] = 2,  # Factor, int or (x, y).
    padding: Padding = 0,  # Extra padding beyond the size-dividing padding.
    flip_filter: bool = False,  # False = convolution, True = correlation.
    gain: float = 1,  # Overall gain.
) -> torch.Tensor:
    """Filter and downsample: [N, C, H, W] -> [N, C, H // down, W // down] (with padding=0, even sizes).

    With a 4-tap filter and factor 2 the padding is (1, 1) on each axis, as in StyleGAN2's `downsample_2d`.
    """
    downx, downy = _pair(down, "down")
    px0, px1, py0, py1 = parse_padding(padding)
    if f is None:
        f = torch.full([downy, downx], 1.0 / (downx * downy), dtype=torch.float32, device=x.device)  # box average
    fw, fh = filter_size(f)
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=pad, flip_filter=flip_filter, gain=gain)
