"""2D convolution with optional FIR up/downsampling fused in (pure PyTorch), as StyleGAN2's `conv2d_resample`.

The result equals the explicit composition, with p' = `padding` plus the padding that centres the resampling
filter (see `_resample_padding`):
* up == 1: `conv2d(upfirdn2d(x, f, padding=p'), w, stride=down)` (filter, then strided conv);
* down == 1: `conv2d(upfirdn2d(x, f, up=up, padding=p', gain=up**2), w)` (FIR upsample, then conv);
but the common cases take cheaper routes:
* up=2 with a 3x3 kernel: transposed convolution (stride 2) then the FIR filter with padding (1, 1);
* down=2 with a 3x3 kernel: the FIR filter with padding (2, 2) then a stride-2 convolution;
* 1x1 kernels: the conv runs at the lower resolution (it commutes with the per-channel filter).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sgmodels.ops import upfirdn2d as fir


def _resample_padding(
    padding: int | Sequence[int], f: torch.Tensor | None, up: int, down: int
) -> tuple[int, int, int, int]:
    """Padding of the composed op: the user's conv padding plus the centring padding of the FIR filter."""
    px0, px1, py0, py1 = fir.parse_padding(padding)
    fw, fh = fir.filter_size(f)
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    return px0, px1, py0, py1


def _conv(
    x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int | Sequence[int] = 0, groups: int = 1,
    transpose: bool = False, flip_weight: bool = True,
) -> torch.Tensor:
    """conv2d / conv_transpose2d where flip_weight=True means correlation with w (conv2d's own semantics)."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def _transpose_weight(w: torch.Tensor, groups: int) -> torch.Tensor:
    """[out, in/groups, kh, kw] conv weight -> [in, out/groups, kh, kw] weight for conv_transpose2d."""
    out_channels, in_per_group, kh, kw = w.shape
    if groups == 1:
        return w.transpose(0, 1)
    w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
    return w.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw)


def conv2d_resample(
    x: torch.Tensor,  # Input [N, C_in, H, W], float.
    w: torch.Tensor,  # Weight [C_out, C_in / groups, kh, kw], same dtype as x.
    f: torch.Tensor | None = None,  # FIR resampling filter from setup_filter; None = box/nearest of size 1.
    up: int = 1,  # Integer upsampling factor.
    down: int = 1,  # Integer downsampling factor.
    padding: int | Sequence[int] = 0,  # Conv padding (int, (x, y) or (x0, x1, y0, y1)) at the upsampled scale.
    groups: int = 1,  # Grouped convolution (the modulated conv runs one group per sample).
    flip_weight: bool = True,  # True = correlation (torch conv2d), False = true convolution.
    flip_filter: bool = False,  # False = FIR convolution, True = FIR correlation.
) -> torch.Tensor:
    """Convolve with optional up/downsampling; returns [N, C_out, H', W'] (H' = H * up / down for 'same' padding)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a 4D tensor [N, C, H, W], got {getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(w, torch.Tensor) or w.ndim != 4:
        raise ValueError(f"w must be a 4D tensor [C_out, C_in/groups, kh, kw], got {getattr(w, 'shape', w)}")
    if not (isinstance(up, int) and isinstance(down, int) and up >= 1 and down >= 1):
        raise ValueError(f"up and down must be positive ints, got up={up!r}, down={down!r}")
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(f"x has {x.shape[1]} channels but w expects {w.shape[1]} x {groups} groups")
    out_channels, _, kh, kw = w.shape
    px0, px1, py0, py1 = _resample_padding(padding, f, up, down)

    # 1x1 kernel: resample on whichever side is cheaper; the conv commutes with the per-channel filter.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = fir.upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return fir.upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)

    # Downsampling only: filter, then a strided conv picks every down-th output.
    if down > 1 and up == 1:
        x = fir.upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: a strided transposed conv does the zero insertion and the conv at once, then the FIR filter.
    if up > 1:
        # conv_transpose2d convolves (flips) by construction, so flip the opposite way to keep the semantics.
        wt = _transpose_weight(w, groups)  # [C_in, C_out / groups, kh, kw]
        px0, px1 = px0 - (kw - 1), px1 - (kw - up)
        py0, py1 = py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = _conv(x, wt, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = fir.upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2,
                          flip_filter=flip_filter)
        return x if down == 1 else fir.upfirdn2d(x, f, down=down, flip_filter=flip_filter)

    # No resampling: a plain conv when the padding is symmetric and non-negative.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case (asymmetric or negative padding).
    x = fir.upfirdn2d(x, None if up == 1 else f, up=up, padding=[px0, px1, py0, py1], gain=up**2,
                      flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = fir.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x
