"""StyleGAN (v1) synthesis network and discriminator.

Re-implements `G_synthesis` and `D_basic` of NVlabs/stylegan `training/networks_stylegan.py` (Karras et al. 2019,
"A Style-Based Generator Architecture for Generative Adversarial Networks") in PyTorch; the mapping network and the
truncation trick live in `sgmodels.mapping` / `sgmodels.generator`, which plug this synthesis network in under the
name "stylegan". A v1 generator's mapping follows TF `G_mapping` / `G_style` with `label_embedding="concat"` (labels
embedded without bias and pixel-normalised jointly with z) and `truncation_cutoff_default=8` (what the presets and
the TF importer record); its dense layers keep the StyleGAN2 gain placement, so TF v1 mapping biases are divided by
sqrt(2) on import (`sgmodels.importers.tf_names`).

Conventions kept from the TF code so that its weights map one to one (`SynthesisNetwork.tf_layout` and
`Discriminator.tf_layout` name the TF variable and the array transform for every state_dict key):

* Equalized learning rate, v1 flavour: weights are stored N(0, 1) and multiplied at run time by
  `gain / sqrt(fan_in)` with the activation gain `sqrt(2)` *inside* that factor; the bias is added before a leaky
  ReLU (slope 0.2) that has no gain of its own. (StyleGAN2 puts the gain after the activation instead.)
* Synthesis layer epilogue, in this order: noise (N(0, 1) map [N, 1, H, W] times a learned per-channel strength,
  init 0) -> bias -> lrelu -> pixel norm (optional) -> instance norm (eps 1e-8) -> style modulation (AdaIN,
  `x * (y_s + 1) + y_b` with `[y_s, y_b] = dense(w)`, gain 1).
* The upsampling conv of blocks whose output is >= 128 px is the TF "fused" transposed convolution
  (`fused_scale="auto"`); the same stored weight used by nearest-upsample + conv would act spatially flipped, so the
  fused path is reproduced exactly instead of flipping weights on import. The discriminator's fused
  conv + downsample is mathematically identical to conv followed by 2x2 averaging.
* Progressive growing uses the TF "linear" structure with a float `lod` buffer (`sgmodels.progressive`).

Deliberate differences: no `dtype`/fp16 option, and noise can be limited to coarse or fine layers
(`use_noise="coarse" | "fine"`, StyleGAN paper Fig. 5), which the TF code only allowed as all or nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from sgmodels.layers import MinibatchStdLayer, check_noise_mode, noise_input, normalize_2nd_moment
from sgmodels.misc import assert_shape
from sgmodels.ops import upfirdn2d
from sgmodels.progressive import (
    LodLevels,
    downscale2d,
    lerp,
    lod_levels,
    read_lod,
    register_lod,
    resolution_log2,
    upscale2d,
)
from sgmodels.registry import register_network, register_synthesis

LRELU_SLOPE = 0.2  # Leaky ReLU slope of every v1 layer.
ACT_GAIN = math.sqrt(2.0)  # He gain for lrelu, folded into the weights in v1.
NORM_EPS = 1e-8  # Epsilon of pixel norm and instance norm (TF v1).
NOISE_CHOICES = ("all", "none", "coarse", "fine")

# TF variable -> PyTorch tensor conversions named by the `tf_layout` methods:
#   "copy"  - same array;   "dense" - [in, out] -> [out, in] (transpose);
#   "conv"  - [kh, kw, in, out] -> [out, in, kh, kw] (transpose(3, 2, 0, 1));
#   "const" - [1, C, 4, 4] -> [C, 4, 4];   "noise" - [1, 1, H, W] -> [H, W].
TF_TRANSFORMS = ("copy", "dense", "conv", "const", "noise")
TfLayout = dict[str, tuple[str, str]]


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at resolution `res`: `min(channel_base // res, channel_max)` (channel_base = 2 * TF fmap_base)."""
    return max(min(channel_base // res, channel_max), 1)


# ---------------------------------------------------------------------------------------------------------------
# Functional ops (TF v1 semantics).


def make_blur_filter(taps: Sequence[float] | None) -> torch.Tensor | None:
    """2D float32 blur kernel [k, k] (outer product of `taps`, normalised to sum 1), or None for no blur."""
    if taps is None:
        return None
    if isinstance(taps, (str, bytes)) or not isinstance(taps, Sequence) or len(taps) == 0:
        raise TypeError(f"blur_filter must be a non-empty list of numbers or None, got {taps!r}")
    return upfirdn2d.setup_filter(list(taps), separable=False)  # [k, k]


def blur2d(x: torch.Tensor, f: torch.Tensor | None) -> torch.Tensor:
    """Depthwise correlation of `x` [N, C, H, W] with `f` [kh, kw] and TF 'SAME' padding -> [N, C, H, W]."""
    if f is None:
        return x
    kh, kw = f.shape
    padding = [(kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2]  # TF 'SAME': the extra pixel goes after
    return upfirdn2d.upfirdn2d(x, f, padding=padding, flip_filter=True)  # [N, C, H, W]


def _summed_kernel(w: torch.Tensor) -> torch.Tensor:
    """Sum the 4 shifted copies of a [O, I, k, k] kernel -> [O, I, k+1, k+1] (TF v1 fused resampling trick)."""
    w = F.pad(w, [1, 1, 1, 1])  # [O, I, k+2, k+2]
    return w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]


def conv2d_same(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Stride-1 correlation of `x` [N, I, H, W] with an odd kernel `w` [O, I, k, k], 'SAME' padding -> [N, O, H, W]."""
    return F.conv2d(x, w, padding=w.shape[-1] // 2)


def upscale_conv2d(x: torch.Tensor, w: torch.Tensor, fused: bool) -> torch.Tensor:
    """2x upsampling + conv: [N, I, H, W] -> [N, O, 2H, 2W] (TF `upscale2d_conv2d`).

    Unfused: nearest-neighbour upsampling, then `conv2d_same`. Fused: a stride-2 transposed convolution with the
    summed [k+1, k+1] kernel; this equals the unfused op with `w` spatially flipped (as the TF code computes it).
    """
    if not fused:
        return conv2d_same(upscale2d(x, 2), w)
    kernel = _summed_kernel(w).transpose(0, 1)  # [I, O, k+1, k+1]
    return F.conv_transpose2d(x, kernel, stride=2, padding=(w.shape[-1] - 1) // 2)  # [N, O, 2H, 2W]


def conv2d_downscale(x: torch.Tensor, w: torch.Tensor, fused: bool) -> torch.Tensor:
    """Conv + 2x2 average downsampling: [N, I, H, W] -> [N, O, H/2, W/2] (TF `conv2d_downscale2d`).

    Fused: one stride-2 conv with the summed kernel / 4, identical to the unfused op up to float rounding.
    """
    if not fused:
        return downscale2d(conv2d_same(x, w), 2)
    return F.conv2d(x, _summed_kernel(w) * 0.25, stride=2, padding=(w.shape[-1] - 1) // 2)  # [N, O, H/2, W/2]


def instance_norm(x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Per-sample, per-channel normalisation over H, W (mean 0, mean square 1), computed in float32; x [N, C, H, W]."""
    orig_dtype = x.dtype
    x = x.float()
    x = x - x.mean(dim=[2, 3], keepdim=True)  # [N, C, H, W]
    x = x * (x.square().mean(dim=[2, 3], keepdim=True) + eps).rsqrt()  # [N, C, H, W]
    return x.to(orig_dtype)


# ---------------------------------------------------------------------------------------------------------------
# Equalized-lr layers with the v1 convention (gain inside the weight, bias before an un-gained lrelu).


class DenseV1(nn.Module):
    """Fully connected layer `y = act(x @ (weight * gain / sqrt(in) * lrmul).T + bias * lrmul)`; x [N, in] -> [N, out].

    `weight` [out, in] is stored N(0, 1 / lrmul^2) (TF stores the transpose [in, out]); `bias` [out] starts at 0.
    """

    def __init__(
        self,
        in_features: int,  # Input dimensionality.
        out_features: int,  # Output dimensionality.
        bias: bool = True,  # Learn an additive bias?
        gain: float = ACT_GAIN,  # He gain folded into the weight (sqrt(2) before lrelu, 1 for linear outputs).
        activation: str = "linear",  # "linear" or "lrelu" (slope 0.2, no extra gain).
        lr_multiplier: float = 1.0,  # Learning-rate multiplier of this layer's parameters.
    ) -> None:
        super().__init__()
        _check_activation(activation)
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros([out_features])) if bias else None
        self.weight_gain = gain / math.sqrt(in_features) * lr_multiplier
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.matmul((self.weight * self.weight_gain).t())  # [N, out]
        if self.bias is not None:
            x = x + self.bias * self.bias_gain
        return _activate(x, self.activation)

    def tf_layout(self, scope: str) -> TfLayout:
        return _weight_bias_layout(scope, "dense", self.bias is not None)


class Conv2dV1(nn.Module):
    """Conv layer with optional 2x up/downsampling: x [N, in, H, W] -> [N, out, H', W'] (TF `conv2d` + `apply_bias`).

    `weight` [out, in, k, k] is stored N(0, 1) and scaled by `gain / sqrt(in * k * k)` at run time.
    """

    def __init__(
        self,
        in_channels: int,  # Input feature maps.
        out_channels: int,  # Output feature maps.
        kernel_size: int,  # Odd kernel width (1 or 3).
        bias: bool = True,  # Learn an additive bias?
        gain: float = ACT_GAIN,  # He gain folded into the weight.
        activation: str = "linear",  # "linear" or "lrelu".
        up: bool = False,  # Upsample 2x before the conv (TF `upscale2d_conv2d`).
        down: bool = False,  # Downsample 2x after the conv (TF `conv2d_downscale2d`).
        fused: bool = False,  # Use the TF fused (transposed / strided) form of the resampling conv.
    ) -> None:
        super().__init__()
        _check_activation(activation)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        if up and down:
            raise ValueError("a layer cannot both upsample and downsample")
        self.activation = activation
        self.up, self.down, self.fused = up, down, fused
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _resample_conv(x, self.weight * self.weight_gain, self.up, self.down, self.fused)  # [N, out, H', W']
        if self.bias is not None:
            x = x + self.bias.reshape(1, -1, 1, 1)
        return _activate(x, self.activation)

    def tf_layout(self, scope: str) -> TfLayout:
        return _weight_bias_layout(scope, "conv", self.bias is not None)


def _weight_bias_layout(scope: str, weight_transform: str, has_bias: bool) -> TfLayout:
    layout = {"weight": (f"{scope}/weight", weight_transform)}
    if has_bias:
        layout["bias"] = (f"{scope}/bias", "copy")
    return layout


def _resample_conv(x: torch.Tensor, w: torch.Tensor, up: bool, down: bool, fused: bool) -> torch.Tensor:
    if up:
        return upscale_conv2d(x, w, fused)
    if down:
        return conv2d_downscale(x, w, fused)
    return conv2d_same(x, w)


def _check_activation(activation: str) -> None:
    if activation not in ("linear", "lrelu"):
        raise ValueError(f"activation must be 'linear' or 'lrelu', got {activation!r}")


def _activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE) if activation == "lrelu" else x


def _is_fused(fused_scale: bool | str, res: int) -> bool:
    """TF `fused_scale`: True, False or "auto" (fused when the block resolution is >= 128)."""
    if fused_scale == "auto":
        return res >= 128
    if isinstance(fused_scale, bool):
        return fused_scale
    raise ValueError(f"fused_scale must be True, False or 'auto', got {fused_scale!r}")


# ---------------------------------------------------------------------------------------------------------------
# Synthesis network.


class SynthesisLayer(nn.Module):
    """One v1 synthesis layer: an input op followed by the epilogue (noise, bias, lrelu, norms, AdaIN).

    `kind` picks the input op: "const" (none; the block passes its learned constant), "dense" (the traditional
    input: dense from w to [C, 4, 4], gain sqrt(2)/4 as in ProGAN), "conv" (3x3) or "conv_up" (2x upsampling +
    3x3 conv, then the blur filter). forward: x [N, in, H, W] (or None for "dense"), w [N, w_dim] -> [N, C, H', W'].
    """

    noise_const: torch.Tensor  # buffer (use_noise only): fixed noise [r, r] float32
    blur_filter: torch.Tensor | None  # buffer [k, k] float32 for "conv_up" with a blur filter, else None

    def __init__(
        self,
        in_channels: int,  # Input feature maps (ignored for "const" and "dense").
        out_channels: int,  # Output feature maps C.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        resolution: int,  # Output resolution of this layer.
        kind: str,  # "const", "dense", "conv" or "conv_up".
        use_noise: bool,  # Add per-pixel noise with a learned per-channel strength?
        use_pixel_norm: bool,  # Pixel norm after the activation?
        use_instance_norm: bool,  # Instance norm after the activation?
        use_styles: bool,  # Style modulation (AdaIN) from w?
        blur_filter: torch.Tensor | None = None,  # Blur kernel [k, k] after "conv_up"; None = no blur.
        fused: bool = False,  # TF fused transposed conv for "conv_up".
    ) -> None:
        super().__init__()
        if kind not in ("const", "dense", "conv", "conv_up"):
            raise ValueError(f"unknown synthesis layer kind {kind!r}")
        self.kind, self.resolution, self.fused = kind, resolution, fused
        self.out_channels = out_channels
        self.use_pixel_norm, self.use_instance_norm = use_pixel_norm, use_instance_norm
        if kind == "dense":
            self.weight = nn.Parameter(torch.randn([out_channels * resolution * resolution, w_dim]))
            self.weight_gain = ACT_GAIN / 4 / math.sqrt(w_dim)  # "tweak gain to match ProGAN" (TF comment)
        elif kind in ("conv", "conv_up"):
            self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
            self.weight_gain = ACT_GAIN / math.sqrt(in_channels * 9)
        self.noise_strength: nn.Parameter | None = None
        if use_noise:
            self.noise_strength = nn.Parameter(torch.zeros([out_channels]))
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.affine = DenseV1(w_dim, 2 * out_channels, gain=1.0) if use_styles else None
        if blur_filter is not None and kind == "conv_up":
            self.register_buffer("blur_filter", blur_filter, persistent=False)
        else:
            self.blur_filter = None

    def forward(self, x: torch.Tensor | None, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = self._input_op(x, w)  # [N, C, H, W]
        x = self._add_noise(x, noise_mode)
        x = F.leaky_relu(x + self.bias.reshape(1, -1, 1, 1), LRELU_SLOPE)  # [N, C, H, W]
        if self.use_pixel_norm:
            x = normalize_2nd_moment(x, dim=1, eps=NORM_EPS)  # pixel norm
        if self.use_instance_norm:
            x = instance_norm(x)
        if self.affine is not None:
            x = adain(x, self.affine(w))
        return x

    def _input_op(self, x: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
        if self.kind == "dense":
            x = w.matmul((self.weight * self.weight_gain).t())  # [N, C * H * W]
            return x.reshape(-1, self.out_channels, self.resolution, self.resolution)  # [N, C, H, W]
        if x is None:
            raise ValueError(f"a {self.kind!r} synthesis layer needs its input features x")
        if self.kind == "const":
            return x
        x = _resample_conv(x, self.weight * self.weight_gain, self.kind == "conv_up", False, self.fused)
        return blur2d(x, self.blur_filter)  # [N, C, H, W]

    def _add_noise(self, x: torch.Tensor, noise_mode: str) -> torch.Tensor:
        if self.noise_strength is None:
            return x
        noise = noise_input(x, noise_mode, self.noise_const)  # [N, 1, H, W], [H, W] or None
        if noise is None:
            return x
        return x + noise * self.noise_strength.to(x.dtype).reshape(1, -1, 1, 1)  # [N, C, H, W]

    def tf_layout(self, scope: str, noise_index: int) -> TfLayout:
        """Names of this layer's tensors in TF v1 (`scope` e.g. "8x8/Conv0_up", `noise{noise_index}`)."""
        layout: TfLayout = {}
        if self.kind != "const":
            layout["weight"] = (f"{scope}/weight", "dense" if self.kind == "dense" else "conv")
        if self.noise_strength is not None:
            layout["noise_strength"] = (f"{scope}/Noise/weight", "copy")
            layout["noise_const"] = (f"noise{noise_index}", "noise")
        layout["bias"] = (f"{scope}/bias", "copy")
        if self.affine is not None:
            layout.update(_prefixed("affine", self.affine.tf_layout(f"{scope}/StyleMod")))
        return layout


def adain(x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Style modulation `x * (y_s + 1) + y_b`: x [N, C, H, W], style [N, 2C] = [y_s, y_b] -> [N, C, H, W]."""
    C = x.shape[1]
    scale = style[:, :C].reshape(-1, C, 1, 1) + 1  # [N, C, 1, 1]
    shift = style[:, C:].reshape(-1, C, 1, 1)  # [N, C, 1, 1]
    return x * scale.to(x.dtype) + shift.to(x.dtype)


def _prefixed(prefix: str, layout: TfLayout) -> TfLayout:
    return {f"{prefix}.{name}": value for name, value in layout.items()}


class SynthesisBlock(nn.Module):
    """Layers of one resolution `res`: two synthesis layers (+ the learned constant at 4x4) and a ToRGB layer.

    forward(x [N, C_in, res/2, res/2] or None at 4x4, ws [N, num_ws, w_dim]) -> features [N, C, res, res].
    `torgb(x)` maps features to an image [N, img_channels, res, res].
    """

    def __init__(
        self,
        res: int,  # Resolution of this block (4, 8, ...).
        in_channels: int,  # Feature maps entering the block (0 at 4x4).
        out_channels: int,  # Feature maps of both layers.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        img_channels: int,  # Output colour channels of ToRGB.
        layer_kwargs: dict,  # use_pixel_norm / use_instance_norm / use_styles for both layers.
        noise: bool,  # Do this block's layers have noise inputs?
        const_input: bool,  # 4x4 only: learned constant (True) or dense from w (False).
        blur_filter: torch.Tensor | None,  # Blur after the upsampling conv.
        fused: bool,  # TF fused upsampling conv.
        use_styles: bool,  # False = every layer reads ws[:, 0] (the single style of a traditional network).
        has_torgb: bool,  # Build the ToRGB layer (every block when progressive, else the last one only).
    ) -> None:
        super().__init__()
        self.res = res
        self.first_layer_idx = 2 * resolution_log2(res) - 4  # TF layer_idx of conv0; conv1 is the next one
        self.use_styles = use_styles
        common = dict(w_dim=w_dim, resolution=res, use_noise=noise, **layer_kwargs)
        if res == 4:
            if const_input:
                self.const = nn.Parameter(torch.ones([out_channels, 4, 4]))
            kind0 = "const" if const_input else "dense"
            self.conv0 = SynthesisLayer(out_channels, out_channels, kind=kind0, **common)
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, kind="conv_up", blur_filter=blur_filter,
                                        fused=fused, **common)
        self.conv1 = SynthesisLayer(out_channels, out_channels, kind="conv", **common)
        self.torgb = Conv2dV1(out_channels, img_channels, kernel_size=1, gain=1.0) if has_torgb else None

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
        idx0, idx1 = (self.first_layer_idx, self.first_layer_idx + 1) if self.use_styles else (0, 0)
        if self.conv0.kind == "const":
            x = self.const.to(ws.dtype)[None].expand(ws.shape[0], -1, -1, -1)  # [N, C, 4, 4]
        x = self.conv0(x, ws[:, idx0], noise_mode)  # [N, C, res, res]
        return self.conv1(x, ws[:, idx1], noise_mode)  # [N, C, res, res]

    def tf_layout(self, torgb_lod: int) -> TfLayout:
        scope = f"{self.res}x{self.res}"
        first = {"const": "Const", "dense": "Dense", "conv_up": "Conv0_up"}[self.conv0.kind]
        names = (first, "Conv" if self.res == 4 else "Conv1")
        layout: TfLayout = {"const": (f"{scope}/Const/const", "const")} if hasattr(self, "const") else {}
        layout.update(_prefixed("conv0", self.conv0.tf_layout(f"{scope}/{names[0]}", self.first_layer_idx)))
        layout.update(_prefixed("conv1", self.conv1.tf_layout(f"{scope}/{names[1]}", self.first_layer_idx + 1)))
        if self.torgb is not None:
            layout.update(_prefixed("torgb", self.torgb.tf_layout(f"ToRGB_lod{torgb_lod}")))
        return layout


def normalize_noise_choice(use_noise: str | bool) -> str:
    """"all" | "none" | "coarse" | "fine" (True = "all", False = "none", as the TF boolean)."""
    if isinstance(use_noise, bool):
        return "all" if use_noise else "none"
    if use_noise not in NOISE_CHOICES:
        raise ValueError(f"use_noise must be one of {NOISE_CHOICES} (or a bool), got {use_noise!r}")
    return use_noise


def layer_has_noise(use_noise: str, res: int, noise_split_res: int) -> bool:
    """Whether the layers at resolution `res` get noise inputs.

    "coarse" = resolutions 4 .. noise_split_res (inclusive), "fine" = resolutions above noise_split_res; with the
    split 32 these are the StyleGAN paper's Fig. 5 groups (4^2-32^2 and 64^2-1024^2). The synthesis network's default
    split is min(32, R // 2): a fixed 32 would make "coarse" all layers and "fine" none at R <= 32.
    """
    if use_noise == "all":
        return True
    if use_noise == "coarse":
        return res <= noise_split_res
    if use_noise == "fine":
        return res > noise_split_res
    return False


@register_synthesis("stylegan")
class SynthesisNetwork(nn.Module):
    """StyleGAN v1 synthesis network (TF `G_synthesis`): ws [N, num_ws, w_dim] -> img [N, img_channels, R, R].

    The output is float32 (the parameters' dtype), roughly in [-1, 1], always at `img_resolution` R; while
    progressive growing has `lod > 0`, lower-resolution images are upsampled by nearest neighbour and faded in.
    `num_ws = 2 * log2(R) - 2` with styles (one w per layer) and 1 without (`use_styles=False`: only ws[:, 0] is
    read, by the traditional dense input).
    """

    def __init__(
        self,
        w_dim: int,  # Intermediate latent (W) dimensionality.
        img_resolution: int,  # Output resolution R (power of two >= 4).
        img_channels: int,  # Number of output colour channels.
        channel_base: int = 16384,  # Feature maps at resolution r: min(channel_base // r, channel_max).
        channel_max: int = 512,  # Maximum feature maps of any layer.
        use_noise: str | bool = "all",  # Noise inputs: "all", "none", "coarse" (r <= noise_split_res), "fine".
        noise_split_res: int | None = None,  # Highest "coarse" resolution for use_noise; None = min(32, R // 2).
        const_input: bool = True,  # Learned constant 4x4 input (False = traditional dense input from ws[:, 0]).
        use_styles: bool = True,  # AdaIN style modulation in every layer.
        use_pixel_norm: bool = False,  # Pixel norm after every activation (ProGAN).
        use_instance_norm: bool = True,  # Instance norm after every activation.
        blur_filter: Sequence[float] | None = (1, 2, 1),  # Low-pass taps after each upsampling conv; None = none.
        fused_scale: bool | str = "auto",  # TF fused upsampling conv: True, False or "auto" (res >= 128).
        progressive: bool = True,  # ToRGB at every resolution and a float `lod` buffer for progressive growing.
    ) -> None:
        super().__init__()
        log2 = resolution_log2(img_resolution)
        if noise_split_res is None:  # the paper's 32 at 64^2 and above; below, the top resolution alone is "fine"
            noise_split_res = min(32, img_resolution // 2)
        _check_positive(w_dim=w_dim, img_channels=img_channels, channel_base=channel_base, channel_max=channel_max,
                        noise_split_res=noise_split_res)
        if not use_styles and const_input:
            raise ValueError("use_styles=False with const_input=True would ignore the latent entirely; "
                             "set const_input=False (traditional input) or use_styles=True")
        noise = normalize_noise_choice(use_noise)
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws = 2 * log2 - 2 if use_styles else 1
        self.progressive = progressive
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        blur = make_blur_filter(blur_filter)
        layer_kwargs = dict(use_pixel_norm=use_pixel_norm, use_instance_norm=use_instance_norm, use_styles=use_styles)
        for res in self.block_resolutions:
            block = SynthesisBlock(
                res,
                in_channels=channels_at(res // 2, channel_base, channel_max) if res > 4 else 0,
                out_channels=channels_at(res, channel_base, channel_max),
                w_dim=w_dim,
                img_channels=img_channels,
                layer_kwargs=layer_kwargs,
                noise=layer_has_noise(noise, res, noise_split_res),
                const_input=const_input,
                blur_filter=blur,
                fused=_is_fused(fused_scale, res),
                use_styles=use_styles,
                has_torgb=progressive or res == img_resolution,
            )
            setattr(self, f"b{res}", block)
        if progressive:
            register_lod(self)

    def blocks(self) -> list[SynthesisBlock]:
        """The synthesis blocks from 4x4 to img_resolution."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        """ws [N, num_ws, w_dim] float -> img [N, img_channels, R, R] (parameter dtype, about [-1, 1])."""
        check_noise_mode(noise_mode)
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        if not ws.is_floating_point():
            raise TypeError(f"ws must be a float tensor, got {ws.dtype}")
        ws = ws.to(self.blocks()[0].conv1.weight.dtype)
        levels = self.lod_levels()
        x: torch.Tensor | None = None
        coarser_img: torch.Tensor | None = None
        for block in self.blocks()[: levels.top_log2 - 1]:
            if levels.fading and block.res == 2**levels.top_log2:
                assert x is not None  # fading happens above 4x4, so the block below has run
                coarser_img = upscale2d(self._torgb(block.res // 2, x), 2)  # [N, C_img, res, res]
            x = block(x, ws, noise_mode)  # [N, C, res, res]
        assert x is not None  # the 4x4 block always runs
        img = self._torgb(2**levels.top_log2, x)  # [N, C_img, res, res]
        if coarser_img is not None:
            img = lerp(img, coarser_img, levels.alpha)
        return upscale2d(img, levels.upscale)  # [N, C_img, R, R]

    def lod_levels(self) -> LodLevels:
        """Stages needed at the current `lod` (always the full network when not progressive)."""
        if not self.progressive:
            return LodLevels(top_log2=resolution_log2(self.img_resolution), alpha=0.0, upscale=1)
        return lod_levels(read_lod(self), self.img_resolution)

    def _torgb(self, res: int, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, f"b{res}").torgb(x)

    def tf_layout(self) -> TfLayout:
        """Map every state_dict key to `(TF v1 G_synthesis variable name, transform)`; see TF_TRANSFORMS.

        TF names are relative to the synthesis network (prefix "synthesis/" for pickle-stub imports, or
        "G_synthesis/" for live TF variables). `mod_bias`-style +1 offsets are not needed: v1 adds the 1 at run time.
        """
        log2 = resolution_log2(self.img_resolution)
        layout: TfLayout = {"lod": ("lod", "copy")} if self.progressive else {}
        for block in self.blocks():
            lod = log2 - resolution_log2(block.res)
            layout.update(_prefixed(f"b{block.res}", block.tf_layout(lod)))
        return layout


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


# ---------------------------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(nn.Module):
    """D_basic block at resolution `res` >= 8: conv 3x3 -> blur -> conv 3x3 + 2x downsampling, lrelu after each conv.

    Also owns `fromrgb` (1x1 conv + lrelu) used when `res` is the finest active level.
    forward: x [N, C_res, res, res] -> [N, C_{res/2}, res/2, res/2].
    """

    blur_filter: torch.Tensor  # buffer [k, k] float32, non-persistent

    def __init__(
        self,
        res: int,  # Input resolution of the block.
        in_channels: int,  # Feature maps at `res`.
        out_channels: int,  # Feature maps at `res / 2`.
        img_channels: int,  # Colour channels of the input image.
        blur_filter: torch.Tensor | None,  # Blur before the downsampling conv.
        fused: bool,  # TF fused conv + downscale.
    ) -> None:
        super().__init__()
        self.res = res
        self.fromrgb = Conv2dV1(img_channels, in_channels, kernel_size=1, activation="lrelu")
        self.conv0 = Conv2dV1(in_channels, in_channels, kernel_size=3, activation="lrelu")
        self.conv1 = Conv2dV1(in_channels, out_channels, kernel_size=3, activation="lrelu", down=True, fused=fused)
        self.register_buffer("blur_filter", blur_filter, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv0(x)  # [N, C, res, res]
        return self.conv1(blur2d(x, self.blur_filter))  # [N, C', res/2, res/2]

    def tf_layout(self, fromrgb_lod: int) -> TfLayout:
        scope = f"{self.res}x{self.res}"
        layout = _prefixed("fromrgb", self.fromrgb.tf_layout(f"FromRGB_lod{fromrgb_lod}"))
        layout.update(_prefixed("conv0", self.conv0.tf_layout(f"{scope}/Conv0")))
        layout.update(_prefixed("conv1", self.conv1.tf_layout(f"{scope}/Conv1_down")))
        return layout


class DiscriminatorEpilogue(nn.Module):
    """D_basic 4x4 stage: minibatch stddev -> conv 3x3 -> dense -> dense(out); x [N, C, 4, 4] -> [N, out_dim]."""

    def __init__(
        self,
        in_channels: int,  # Feature maps at 4x4.
        hidden_features: int,  # Width of the first dense layer (TF nf(0)).
        out_dim: int,  # Outputs: max(c_dim, 1).
        img_channels: int,  # Colour channels (for the 4x4 fromrgb).
        mbstd_group_size: int,  # Minibatch-stddev group size; 0 or 1 disables the layer.
        mbstd_num_channels: int,  # Stddev feature maps appended.
    ) -> None:
        super().__init__()
        # TF D_basic: a group size of 0 or 1 disables the layer.
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_group_size > 1 else None
        mbstd_channels = mbstd_num_channels if self.mbstd is not None else 0
        self.fromrgb = Conv2dV1(img_channels, in_channels, kernel_size=1, activation="lrelu")
        self.conv = Conv2dV1(in_channels + mbstd_channels, in_channels, kernel_size=3, activation="lrelu")
        self.fc = DenseV1(in_channels * 16, hidden_features, activation="lrelu")
        self.out = DenseV1(hidden_features, out_dim, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)  # [N, C + F, 4, 4]
        x = self.conv(x)  # [N, C, 4, 4]
        x = self.fc(x.flatten(1))  # [N, hidden]
        return self.out(x)  # [N, out_dim]

    def tf_layout(self, fromrgb_lod: int) -> TfLayout:
        layout = _prefixed("fromrgb", self.fromrgb.tf_layout(f"FromRGB_lod{fromrgb_lod}"))
        layout.update(_prefixed("conv", self.conv.tf_layout("4x4/Conv")))
        layout.update(_prefixed("fc", self.fc.tf_layout("4x4/Dense0")))
        layout.update(_prefixed("out", self.out.tf_layout("4x4/Dense1")))
        return layout


@register_network("stylegan.Discriminator")
class Discriminator(nn.Module):
    """StyleGAN v1 discriminator (TF `D_basic`, ProGAN-like), progressive with a float `lod` buffer.

    forward(img [N, img_channels, R, R] float in about [-1, 1], c [N, c_dim] or None) -> logits [N, 1].
    Conditioning (c_dim > 0) follows TF `D_basic`: the last layer outputs one logit per class and the result is
    `sum(logits * c, dim=1)` (the "label switch" of Mescheder et al. 2018), so a one-hot c picks its class's logit.
    At `lod > 0` the image is box-downsampled and enters through the FromRGB of the active level; fractional lods
    blend the features of two levels as in the TF "linear" structure.
    """

    def __init__(
        self,
        c_dim: int = 0,  # Conditioning label dimensionality, 0 = unconditional.
        img_resolution: int = 1024,  # Input resolution R (power of two >= 4).
        img_channels: int = 3,  # Input colour channels.
        channel_base: int = 16384,  # Feature maps at resolution r: min(channel_base // r, channel_max).
        channel_max: int = 512,  # Maximum feature maps of any layer.
        mbstd_group_size: int = 4,  # Minibatch-stddev group size (0 or 1 = off).
        mbstd_num_channels: int = 1,  # Minibatch-stddev features.
        blur_filter: Sequence[float] | None = (1, 2, 1),  # Low-pass taps before each downsampling conv; None = none.
        fused_scale: bool | str = "auto",  # TF fused conv + downscale: True, False or "auto" (res >= 128).
    ) -> None:
        super().__init__()
        log2 = resolution_log2(img_resolution)
        _check_positive(img_channels=img_channels, channel_base=channel_base, channel_max=channel_max)
        if isinstance(c_dim, bool) or not isinstance(c_dim, int) or c_dim < 0:
            raise ValueError(f"c_dim must be an int >= 0, got {c_dim!r}")
        if mbstd_group_size < 0 or mbstd_num_channels < 1:
            raise ValueError("mbstd_group_size must be >= 0 and mbstd_num_channels >= 1, "
                             f"got {mbstd_group_size} and {mbstd_num_channels}")
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        blur = make_blur_filter(blur_filter)
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                res,
                in_channels=channels_at(res, channel_base, channel_max),
                out_channels=channels_at(res // 2, channel_base, channel_max),
                img_channels=img_channels,
                blur_filter=blur,
                fused=_is_fused(fused_scale, res),
            )
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(
            in_channels=channels_at(4, channel_base, channel_max),
            hidden_features=channels_at(2, channel_base, channel_max),
            out_dim=max(c_dim, 1),
            img_channels=img_channels,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
        )
        register_lod(self)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """img [N, C, R, R] float, c [N, c_dim] (required iff c_dim > 0) -> logits [N, 1] (parameter dtype)."""
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        if not img.is_floating_point():
            raise TypeError(f"img must be a float tensor in about [-1, 1], got {img.dtype} (convert uint8 first)")
        c = self._check_labels(c, img.shape[0])
        img = img.to(self.b4.conv.weight.dtype)
        levels = lod_levels(read_lod(self), self.img_resolution)
        res = 2**levels.top_log2
        img = downscale2d(img, levels.upscale)  # [N, C_img, res, res]
        x = self._block(res).fromrgb(img)  # [N, C, res, res]
        if res > 4:
            x = self._block(res)(x)  # [N, C', res/2, res/2]
            if levels.fading:
                x = lerp(x, self._block(res // 2).fromrgb(downscale2d(img, 2)), levels.alpha)
            for lower in self.block_resolutions:
                if lower < res:
                    x = self._block(lower)(x)  # [N, C', lower/2, lower/2]
        x = self.b4(x)  # [N, max(c_dim, 1)]
        if c is not None:  # conditional (c_dim > 0): _check_labels returned the labels
            x = (x * c.to(x.dtype)).sum(dim=1, keepdim=True)  # [N, 1]
        return x

    def _block(self, res: int) -> DiscriminatorBlock | DiscriminatorEpilogue:
        return getattr(self, f"b{res}")

    def _check_labels(self, c: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if self.c_dim == 0:
            if c is not None and c.numel() > 0:
                raise ValueError(f"this discriminator is unconditional (c_dim=0) but got labels of shape "
                                 f"{list(c.shape)}; pass c=None")
            return None
        if c is None:
            raise ValueError(f"this discriminator is conditional (c_dim={self.c_dim}): pass c [N, {self.c_dim}]")
        assert_shape(c, [batch, self.c_dim], "c")
        return c

    def tf_layout(self) -> TfLayout:
        """Map every state_dict key to `(TF v1 D_basic variable name, transform)`; see TF_TRANSFORMS."""
        log2 = resolution_log2(self.img_resolution)
        layout: TfLayout = {"lod": ("lod", "copy")}
        for res in [*self.block_resolutions, 4]:
            layout.update(_prefixed(f"b{res}", self._block(res).tf_layout(log2 - resolution_log2(res))))
        return layout
