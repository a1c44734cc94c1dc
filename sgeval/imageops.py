"""Image operations of sgeval, in one place: the resize policies of the feature extractors (each with a version
string that enters cache keys), the official face crop and box downsampling (PPL, the domain detector and the
separability classifiers).

`tf1_bilinear_resize` reproduces TensorFlow 1.x `tf.image.resize_bilinear(align_corners=False)` without half-pixel
centres (the resize inside the FID Inception graph `inception-2015-12-05`): output pixel i samples the input at
x = i * (in / out), computed in float32; the two neighbours are floor(x) and min(floor(x) + 1, in - 1); no
antialiasing, so a large downscale (1024 -> 299) samples sparsely, which is what the reference numbers were made
with (clean-fid's criticism of it is about that aliasing). torch's `F.interpolate(align_corners=False)` differs:
it uses half-pixel centres, (i + 0.5) * scale - 0.5.

The arithmetic order is kept the same as TF (and as torch-fidelity's `interpolate_bilinear_2d_like_tensorflow1x`,
which the tests compare against bit for bit): horizontal lerps first, `a + (b - a) * t`, then the vertical lerp.
"""

from __future__ import annotations

import torch

__all__ = ["RESIZE_POLICIES", "TF1_BILINEAR", "TORCHSCRIPT_INTERNAL", "box_downsample", "face_crop",
           "tf1_bilinear_resize"]

TF1_BILINEAR = "tf1-bilinear/v1"  # tf1_bilinear_resize below
TORCHSCRIPT_INTERNAL = "torchscript-internal/v1"  # the official TorchScript detector resizes inside its graph

RESIZE_POLICIES: dict[str, str] = {
    TF1_BILINEAR: "TF1 resize_bilinear, align_corners=False, no half-pixel centres, no antialias (float32 coords)",
    TORCHSCRIPT_INTERNAL: "whatever the official TorchScript detector does internally to uint8 input of any size",
}


def _source_positions(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Lower/upper source indices [out] (int64) and the fraction between them [out] (float32) along one axis."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)  # TF computes the scale in float
    position = torch.arange(out_size, dtype=torch.float32, device=device) * scale.to(device)  # [out]
    lower = position.long()  # floor, positions are >= 0
    upper = (lower + 1).clamp_max(in_size - 1)
    return lower, upper, position - lower.float()


def tf1_bilinear_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize like TF1 `resize_bilinear(align_corners=False, half_pixel_centers=False)`.

    Args:
        images: tensor [N, C, H, W], float (any range) or uint8 (pixel values, read as float32).
        size: output (height, width) in pixels.

    Returns:
        Tensor [N, C, height, width], float32 for uint8 input, else the input's dtype, in channels-last memory
        format (the layout oneDNN convolutions run fastest on; the values do not depend on it). The same values
        as the input when the size is unchanged.

    Speed without changing a bit: the work runs on an NHWC view (contiguous pixels for the gathers and the
    channels-last network after), only the sampled pixels are converted to float, when downsampling in height the
    rows are picked from the input's own layout before the view (whole-row copies; picking them through the NHWC
    view of an NCHW batch gathered every byte with a stride and took 2.3x as long at 1024 -> 299), and when
    upsampling in height the horizontal lerps run on the input rows before the rows are picked (each output value
    still comes from the same operations on the same operands).
    """
    if images.ndim != 4 or not (images.is_floating_point() or images.dtype == torch.uint8):
        raise ValueError(f"expected float or uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    out_h, out_w = int(size[0]), int(size[1])
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be positive, got {size}")
    dtype = images.dtype if images.is_floating_point() else torch.float32
    in_h, in_w = images.shape[-2:]
    y_lo, y_hi, y_t = _source_positions(in_h, out_h, images.device)
    x_lo, x_hi, x_t = _source_positions(in_w, out_w, images.device)
    y_t = y_t.to(dtype).view(1, out_h, 1, 1)  # [1, out_h, 1, 1]
    x_t = x_t.to(dtype).view(1, 1, out_w, 1)  # [1, 1, out_w, 1]

    def horizontal(rows: torch.Tensor) -> torch.Tensor:  # [N, C, R, W] -> lerp along x, NHWC [N, R, out_w, C]
        pixels = rows.permute(0, 2, 3, 1)  # NHWC view [N, R, W, C]
        left = pixels.index_select(2, x_lo).to(dtype)
        right = pixels.index_select(2, x_hi).to(dtype)
        return left + (right - left) * x_t

    if in_h < out_h:  # fewer input rows than output rows: interpolate each input row once, then pick rows
        rows = horizontal(images)  # [N, in_h, out_w, C]
        upper_row, lower_row = rows.index_select(1, y_lo), rows.index_select(1, y_hi)  # [N, out_h, out_w, C]
    else:
        upper_row = horizontal(images.index_select(2, y_lo))  # [N, out_h, out_w, C]
        lower_row = horizontal(images.index_select(2, y_hi))
    resized = upper_row + (lower_row - upper_row) * y_t  # [N, out_h, out_w, C]
    return resized.permute(0, 3, 1, 2)  # [N, C, out_h, out_w], channels-last strides


def face_crop(images: torch.Tensor) -> torch.Tensor:
    """The official face crop: c = H // 8, rows [3c, 7c), columns [2c, 6c) of [N, C, H, W] (1024 -> 512x512)."""
    c = images.shape[2] // 8
    return images[:, :, c * 3 : c * 7, c * 2 : c * 6]


def box_downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean over factor x factor blocks of [N, C, H, W] (H, W divisible by factor); factor <= 1 returns the input.

    The official box filter of the PPL code (and of sgeval's own detector and classifiers, which read images the
    same way)."""
    if factor <= 1:
        return images
    n, channels, height, width = images.shape
    blocks = images.reshape(n, channels, height // factor, factor, width // factor, factor)
    return blocks.mean(dim=(3, 5))  # [N, C, H / f, W / f]
