"""StyleGAN2 synthesis network and discriminator (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), re-implemented in PyTorch.

Parameter and buffer names follow the official PyTorch code (stylegan2-ada-pytorch `training/networks.py`), so its
state dicts, and TF checkpoints converted the official way, load one-to-one:
`synthesis.b4.const`, `synthesis.b{r}.conv0|conv1|torgb.{weight,bias,affine.*,noise_strength,noise_const}`,
`synthesis.b{r}.skip.weight` (resnet), discriminator `b{r}.fromrgb|conv0|conv1|skip`, `b4.conv|fc|out`, `mapping.*`.

Mixed precision follows stylegan2-ada: `num_fp16_res` blocks of the highest resolutions (never 4x4) compute in
float16 with `conv_clamp` keeping activations in range, but only on the devices of `FP16_DEVICE_TYPES` (CUDA); on a
CPU every block runs in float32, so the same network gives float32 results there.

Beyond the official PyTorch code, `progressive=True` builds the progressive-growing "revised" networks of configs
B-D (TF `G_synthesis_stylegan_revised` / `D_stylegan`): architecture 'orig' with a ToRGB / FromRGB at every
resolution and a `lod` buffer that fades resolutions in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sgmodels.layers import Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer, noise_input
from sgmodels.mapping import MappingNetwork
from sgmodels.misc import assert_shape
from sgmodels.ops import bias_act, conv2d_resample, upfirdn2d
from sgmodels.registry import register_network, register_synthesis

ARCHITECTURES = ("orig", "skip", "resnet")
SQRT_HALF = math.sqrt(0.5)
FP16_DEVICE_TYPES = ("cuda",)  # devices on which fp16 blocks compute in float16 (float32 everywhere else)


def fp16_resolution(img_resolution_log2: int, num_fp16_res: int) -> int:
    """Lowest resolution of the `num_fp16_res` highest-resolution blocks, never below 8 (ADA convention)."""
    if num_fp16_res < 0:
        raise ValueError(f"num_fp16_res must be >= 0, got {num_fp16_res}")
    return max(2 ** (img_resolution_log2 + 1 - num_fp16_res), 8)


def block_dtype(use_fp16: bool, device: torch.device) -> torch.dtype:
    """float16 for an fp16 block on a device of FP16_DEVICE_TYPES, else float32."""
    return torch.float16 if use_fp16 and device.type in FP16_DEVICE_TYPES else torch.float32


def _check_fp16(num_fp16_res: int, progressive: bool) -> None:
    if num_fp16_res and progressive:
        raise ValueError("num_fp16_res needs progressive=False (the fade-in mixes levels of different precision)")


def _check_architecture(architecture: str, progressive: bool) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
    if progressive and architecture != "orig":
        raise ValueError(f"progressive growing works with architecture='orig' only (got {architecture!r})")


def _resolution_log2(img_resolution: int) -> int:
    log2 = int(round(math.log2(img_resolution))) if img_resolution > 0 else 0
    if img_resolution < 4 or 2**log2 != img_resolution:
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
    return log2


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at resolution `res`: min(channel_base // res, channel_max) (the ADA convention)."""
    return min(channel_base // res, channel_max)


def _channels_by_resolution(img_resolution: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """{4: c4, 8: c8, ..., R: cR}; raises ValueError when R is no power of two >= 4 or a width would be 0."""
    log2 = _resolution_log2(img_resolution)
    channels = {2**i: channels_at(2**i, channel_base, channel_max) for i in range(2, log2 + 1)}
    if min(channels.values()) < 1:
        raise ValueError(f"channel_base {channel_base} is too small for resolution {img_resolution}")
    return channels


def _current_lod(lod: torch.Tensor, img_resolution_log2: int) -> float:
    """The level of detail as a float, checked to lie in [0, log2(R) - 2]."""
    value = float(lod)
    if not 0 <= value <= img_resolution_log2 - 2:
        raise ValueError(f"lod must be in [0, {img_resolution_log2 - 2}], got {value}")
    return value


def modulated_conv2d(
    x: torch.Tensor,  # Input [N, C_in, H, W].
    weight: torch.Tensor,  # Shared weight [C_out, C_in, kh, kw].
    styles: torch.Tensor,  # Per-sample input-channel scales [N, C_in].
    up: int = 1,  # Upsampling factor.
    down: int = 1,  # Downsampling factor.
    padding: int = 0,  # Conv padding.
    resample_filter: torch.Tensor | None = None,  # FIR filter for resampling.
    demodulate: bool = True,  # Scale each output channel so that unit-variance input gives unit-variance output.
    flip_weight: bool = True,  # False = true convolution (used by the official code for upsampling layers).
    fused_modconv: bool = True,  # One grouped conv with per-sample weights, or modulate the activations instead.
) -> torch.Tensor:
    """StyleGAN2 modulated convolution: per sample n, w'[o, i] = w[o, i] * s[n, i], then optionally
    w'' = w' / sqrt(sum_{i,kh,kw} w'^2 + 1e-8) (demodulation). Returns [N, C_out, H * up / down, W * up / down]."""
    N = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert_shape(x, [None, in_channels, None, None], "modulated_conv2d input")
    assert_shape(styles, [N, in_channels], "styles")

    if x.dtype == torch.float16 and demodulate:
        # Keep float16 activations in range: scale each output channel's weights and each sample's styles to a
        # maximum of 1 (and the weights by 1 / sqrt(fan_in)); demodulation cancels both scalings.
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)) / weight.abs().amax(dim=[1, 2, 3], keepdim=True)
        styles = styles / styles.abs().amax(dim=1, keepdim=True)
    w = weight.unsqueeze(0) * styles.reshape(N, 1, -1, 1, 1)  # [N, C_out, C_in, kh, kw]
    dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt() if demodulate else None  # [N, C_out]

    if not fused_modconv:
        # Scale activations instead of weights: one shared conv for the whole batch (faster to train).
        x = x * styles.to(x.dtype).reshape(N, -1, 1, 1)  # [N, C_in, H, W]
        x = conv2d_resample.conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down,
                                            padding=padding, flip_weight=flip_weight)  # [N, C_out, H', W']
        return x if dcoefs is None else x * dcoefs.to(x.dtype).reshape(N, -1, 1, 1)

    if dcoefs is not None:
        w = w * dcoefs.reshape(N, -1, 1, 1, 1)
    # Fold the batch into the channels: sample n is group n of a grouped conv.
    x = x.reshape(1, -1, *x.shape[2:])  # [1, N * C_in, H, W]
    w = w.reshape(-1, in_channels, kh, kw).to(x.dtype)  # [N * C_out, C_in, kh, kw]
    x = conv2d_resample.conv2d_resample(x, w, f=resample_filter, up=up, down=down, padding=padding, groups=N,
                                        flip_weight=flip_weight)  # [1, N * C_out, H', W']
    return x.reshape(N, -1, *x.shape[2:])  # [N, C_out, H', W']


# ---------------------------------------------------------------------------------------------------------------------
# Synthesis network.


class SynthesisLayer(torch.nn.Module):
    """Modulated conv (optionally 2x upsampling) -> noise -> bias -> activation.

    [N, C_in, r / up, r / up] -> [N, C_out, r, r].
    """

    resample_filter: torch.Tensor  # buffer: FIR filter [taps, taps] float32 from upfirdn2d.setup_filter
    noise_const: torch.Tensor  # buffer (use_noise only): fixed noise [r, r] float32

    def __init__(
        self,
        in_channels: int,  # Input channels.
        out_channels: int,  # Output channels.
        w_dim: int,  # Size of w.
        resolution: int,  # Output resolution r.
        kernel_size: int = 3,  # Conv kernel width.
        up: int = 1,  # Upsampling factor.
        use_noise: bool = True,  # Per-pixel noise input (scalar strength noise_strength, init 0)?
        activation: str = "lrelu",  # Activation after the bias.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR taps for upsampling.
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp; None = off.
        demodulate: bool = True,  # Weight demodulation (config B onwards)?
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.demodulate = demodulate
        self.padding = kernel_size // 2
        self.act_gain = bias_act.activation_spec(activation).def_gain
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)  # styles start at 1
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True, gain: float = 1
    ) -> torch.Tensor:
        """x [N, C_in, H, W], w [N, w_dim] -> [N, C_out, resolution, resolution]."""
        assert_shape(x, [None, self.in_channels, self.resolution // self.up, self.resolution // self.up], "x")
        styles = self.affine(w)  # [N, C_in]
        x = modulated_conv2d(x, self.weight, styles, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, demodulate=self.demodulate,
                             flip_weight=(self.up == 1), fused_modconv=fused_modconv)  # [N, C_out, r, r]
        noise = noise_input(x, noise_mode, self.noise_const) if self.use_noise else None
        if noise is not None:
            x = x + noise * self.noise_strength  # [N, 1, r, r] or [r, r] broadcast over channels
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain,
                                 clamp=clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, resolution={self.resolution}, "
                f"up={self.up}, demodulate={self.demodulate}")


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias: [N, C_in, r, r] -> [N, img_channels, r, r]."""

    def __init__(
        self,
        in_channels: int,  # Input channels.
        out_channels: int,  # Image channels.
        w_dim: int,  # Size of w.
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp; None = off.
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)  # no demodulation, so equalized lr goes into the styles

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        """x [N, C_in, r, r], w [N, w_dim] -> [N, img_channels, r, r]."""
        styles = self.affine(w) * self.weight_gain  # [N, C_in]
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (const | conv0 up) -> conv1 -> (torgb), with skip / resnet paths."""

    resample_filter: torch.Tensor  # buffer: FIR filter [taps, taps] float32 from upfirdn2d.setup_filter

    def __init__(
        self,
        in_channels: int,  # Input channels, 0 = the 4x4 block that starts from the learned constant.
        out_channels: int,  # Output channels.
        w_dim: int,  # Size of w.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Image channels.
        has_torgb: bool,  # Does this block output an image (always for skip, last block or progressive)?
        architecture: str = "skip",  # 'orig', 'skip' or 'resnet'.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR taps for upsampling.
        conv_clamp: float | None = None,  # Clamp of every conv output; None = off.
        use_noise: bool = True,  # Noise inputs?
        demodulate: bool = True,  # Weight demodulation?
        use_fp16: bool = False,  # Compute in float16 on CUDA devices?
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)))
        layer_kwargs: dict[str, Any] = dict(w_dim=w_dim, resolution=resolution, use_noise=use_noise,
                                            resample_filter=resample_filter, conv_clamp=conv_clamp,
                                            demodulate=demodulate)
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))  # N(0, 1) as in SG2
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kwargs)
        self.num_conv += 1
        if has_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(
        self,
        x: torch.Tensor | None,  # Features [N, C_in, r/2, r/2] (None for the 4x4 block).
        img: torch.Tensor | None,  # Running image [N, img_channels, r/2, r/2] of the skip architecture, else None.
        ws: torch.Tensor,  # [N, num_conv + num_torgb, w_dim].
        noise_mode: str = "random",
        fused_modconv: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (features [N, C_out, r, r], image [N, img_channels, r, r] or None)."""
        w_iter = iter(ws.unbind(dim=1))
        dtype = block_dtype(self.use_fp16, ws.device)
        if self.in_channels != 0:
            if x is None:
                raise ValueError(f"synthesis block {self.resolution}x{self.resolution} needs the features x")
            x = x.to(dtype)  # [N, C_in, r/2, r/2]
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])  # [N, C, 4, 4]
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=SQRT_HALF)  # [N, C_out, r, r]
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv, gain=SQRT_HALF)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)

        if self.architecture == "skip" and img is not None:
            img = upfirdn2d.upsample2d(img, self.resample_filter)  # [N, img_channels, r, r]
        else:
            img = None  # 'orig' / 'resnet' / progressive: only this block's ToRGB counts
        if self.num_torgb:
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).float()  # [N, img_channels, r, r]
            img = y if img is None else img + y
        return x, img


@register_synthesis("stylegan2")
class SynthesisNetwork(torch.nn.Module):
    """StyleGAN2 synthesis network g: ws [N, num_ws, w_dim] -> images [N, img_channels, R, R] in about [-1, 1]."""

    lod: torch.Tensor  # buffer (progressive only): scalar level of detail, float32

    def __init__(
        self,
        w_dim: int,  # Size of w.
        img_resolution: int,  # Output resolution R (power of two >= 4).
        img_channels: int,  # Output channels.
        channel_base: int = 32768,  # Channels at resolution r: min(channel_base // r, channel_max).
        channel_max: int = 512,  # Maximum channels of any layer.
        architecture: str = "skip",  # 'orig', 'skip' (config E/F default) or 'resnet'.
        use_noise: bool = True,  # Noise inputs?
        demodulate: bool = True,  # Weight demodulation?
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR taps for up/downsampling.
        conv_clamp: float | None = None,  # Clamp of every conv output (256 in ADA's mixed precision); None = off.
        progressive: bool = False,  # Progressive growing (configs B-D): 'orig' with a ToRGB per resolution + lod.
        num_fp16_res: int = 0,  # Blocks of the N highest resolutions compute in float16 on CUDA (ADA: 4).
    ) -> None:
        super().__init__()
        _check_architecture(architecture, progressive)
        _check_fp16(num_fp16_res, progressive)
        channels = _channels_by_resolution(img_resolution, channel_base, channel_max)
        if img_channels < 1 or w_dim < 1:
            raise ValueError(f"img_channels and w_dim must be >= 1, got {img_channels}, {w_dim}")
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.architecture = architecture
        self.progressive = progressive
        self.block_resolutions = sorted(channels)  # 4, 8, ..., R
        fp16_res = fp16_resolution(self.img_resolution_log2, num_fp16_res)

        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == img_resolution
            has_torgb = is_last or architecture == "skip" or progressive
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, has_torgb=has_torgb,
                                   architecture=architecture, resample_filter=resample_filter, conv_clamp=conv_clamp,
                                   use_noise=use_noise, demodulate=demodulate, use_fp16=res >= fp16_res)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb  # earlier ToRGBs share the w of the next block's first conv
            setattr(self, f"b{res}", block)
        if progressive:
            self.register_buffer("lod", torch.zeros([]))

    def _block_ws(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """Split ws [N, num_ws, w_dim] into the per-block slices (a ToRGB reads the w after its block's convs)."""
        out, w_idx = [], 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            out.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv
        return out

    def forward(
        self,
        ws: torch.Tensor,  # [N, num_ws, w_dim] float.
        noise_mode: str = "random",  # 'random' | 'const' | 'none'.
        fused_modconv: bool | None = None,  # None = fused (grouped conv) in eval mode, unfused in training.
    ) -> torch.Tensor:
        """Return images [N, img_channels, img_resolution, img_resolution] float32."""
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ws = ws.to(torch.float32)
        if fused_modconv is None:
            fused_modconv = not self.training
        if self.progressive:
            return self._forward_progressive(ws, noise_mode, fused_modconv)
        x = img = None
        for res, block_ws in zip(self.block_resolutions, self._block_ws(ws), strict=True):
            x, img = getattr(self, f"b{res}")(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
        assert img is not None  # the last block always has a ToRGB
        return img

    def _forward_progressive(self, ws: torch.Tensor, noise_mode: str, fused_modconv: bool) -> torch.Tensor:
        """Progressive growing (TF `G_synthesis_stylegan_revised`, 'linear' structure, evaluated lazily).

        Level k (resolution 2**(log2 R - k)) is faded in while lod runs from k + 1 down to k: its image is
        lerp(torgb, nearest-upsampled image of the level below, lod - k) (clipped to [0, 1]). Blocks whose
        image is entirely replaced by the level below are not run. The result is nearest-upsampled to R.
        """
        lod = _current_lod(self.lod, self.img_resolution_log2)
        x = img = None
        for res, block_ws in zip(self.block_resolutions, self._block_ws(ws), strict=True):
            block_lod = self.img_resolution_log2 - int(math.log2(res))
            if img is not None and lod >= block_lod + 1:
                break  # this and every finer level is still hidden
            x, rgb = getattr(self, f"b{res}")(x, None, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
            if img is None:
                img = rgb
            else:
                t = min(max(lod - block_lod, 0.0), 1.0)
                img = torch.lerp(rgb, F.interpolate(img, scale_factor=2, mode="nearest"), t)
        assert img is not None  # the 4x4 block always runs
        factor = self.img_resolution // img.shape[-1]
        return img if factor == 1 else F.interpolate(img, scale_factor=factor, mode="nearest")

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, architecture={self.architecture}, progressive={self.progressive}")


# ---------------------------------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of D: (fromrgb) -> conv0 3x3 -> conv1 3x3 down, with skip / resnet paths: r -> r / 2."""

    resample_filter: torch.Tensor  # buffer: FIR filter [taps, taps] float32 from upfirdn2d.setup_filter

    def __init__(
        self,
        in_channels: int,  # Input feature channels, 0 = first block (starts from the image).
        tmp_channels: int,  # Channels at this resolution.
        out_channels: int,  # Channels at the next (halved) resolution.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Image channels.
        has_fromrgb: bool,  # Does this block read the image (first block, skip architecture, progressive)?
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet'.
        activation: str = "lrelu",  # Activation of every conv.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR taps for downsampling.
        conv_clamp: float | None = None,  # Clamp of every conv output; None = off.
        use_fp16: bool = False,  # Compute in float16 on CUDA devices?
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)))
        if has_fromrgb:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    resample_filter=resample_filter)

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [N, C_in, r, r] or None, img [N, img_channels, r, r] or None -> (x [N, C_out, r/2, r/2], img or None)."""
        anchor = img if x is None else x
        dtype = block_dtype(self.use_fp16, anchor.device) if anchor is not None else torch.float32
        x = None if x is None else x.to(dtype)
        if x is None or self.architecture == "skip":
            if img is None:
                raise ValueError(f"discriminator block {self.resolution}x{self.resolution} reads the image: pass img")
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution], "img")
            y = self.fromrgb(img.to(dtype))  # [N, C_tmp, r, r]
            x = y if x is None else x + y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=SQRT_HALF)  # [N, C_out, r/2, r/2]
            x = self.conv0(x)
            x = self.conv1(x, gain=SQRT_HALF)
            x = y + x
        else:
            x = self.conv1(self.conv0(x))  # [N, C_out, r/2, r/2]
        return x, img


class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 tail of D: (fromrgb) -> minibatch stddev -> conv 3x3 -> fc -> out (1 logit or a cmap projection)."""

    def __init__(
        self,
        in_channels: int,  # Channels at 4x4.
        cmap_dim: int,  # Size of the label projection, 0 = unconditional (one logit).
        resolution: int,  # Resolution of the epilogue (4).
        img_channels: int,  # Image channels.
        has_fromrgb: bool,  # Read the image here (skip architecture, progressive)?
        mbstd_group_size: int | None = 4,  # Minibatch stddev group size; None = whole batch.
        mbstd_num_channels: int = 1,  # Minibatch stddev features, 0 = no minibatch stddev layer.
        activation: str = "lrelu",  # Activation of conv and fc.
        conv_clamp: float | None = None,  # Clamp of the conv output; None = off.
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        if has_fromrgb:
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        """x [N, C, 4, 4] (None when starting from img), img [N, img_channels, 4, 4], cmap [N, cmap_dim] -> [N, 1]."""
        if img is not None and hasattr(self, "fromrgb"):
            y = self.fromrgb(img)  # [N, C, 4, 4]
            x = y if x is None else x + y
        if x is None:
            raise ValueError("the discriminator epilogue needs features x or an image img (with fromrgb)")
        x = x.to(torch.float32)  # the epilogue always computes in float32 (fp16 blocks hand over float16)
        assert_shape(x, [None, self.in_channels, self.resolution, self.resolution], "epilogue input")
        if self.mbstd is not None:
            x = self.mbstd(x)  # [N, C + mbstd_num_channels, 4, 4]
        x = self.conv(x)  # [N, C, 4, 4]
        x = self.fc(x.flatten(1))  # [N, C]
        x = self.out(x)  # [N, 1] or [N, cmap_dim]
        if self.cmap_dim > 0:
            if cmap is None:
                raise ValueError(f"this discriminator epilogue is conditional: pass cmap [N, {self.cmap_dim}]")
            # Projection discriminator (Miyato & Koyama 2018): inner product with the embedded label.
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))  # [N, 1]
        return x


@register_network("stylegan2.Discriminator")
class Discriminator(torch.nn.Module):
    """StyleGAN2 discriminator: images [N, img_channels, R, R] (and labels [N, c_dim]) -> logits [N, 1]."""

    lod: torch.Tensor  # buffer (progressive only): scalar level of detail, float32

    def __init__(
        self,
        c_dim: int = 0,  # Conditioning label size, 0 = unconditional.
        img_resolution: int = 1024,  # Input resolution R.
        img_channels: int = 3,  # Input channels.
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet' (config E/F default).
        channel_base: int = 32768,  # Channels at resolution r: min(channel_base // r, channel_max).
        channel_max: int = 512,  # Maximum channels of any layer.
        mbstd_group_size: int | None = 4,  # Minibatch stddev group size (clamped to the batch size).
        mbstd_num_channels: int = 1,  # Minibatch stddev features, 0 = off.
        cmap_dim: int | None = None,  # Label projection size; None = channels at 4x4 (ignored when c_dim == 0).
        mapping_kwargs: dict | None = None,  # Extra MappingNetwork arguments for the label embedding.
        progressive: bool = False,  # Progressive growing (configs B-D, TF D_stylegan): 'orig' + FromRGB per res.
        conv_clamp: float | None = None,  # Clamp of every conv output; None = off.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR taps for downsampling.
        num_fp16_res: int = 0,  # Blocks of the N highest resolutions compute in float16 on CUDA (ADA: 4).
    ) -> None:
        super().__init__()
        _check_architecture(architecture, progressive)
        _check_fp16(num_fp16_res, progressive)
        channels = _channels_by_resolution(img_resolution, channel_base, channel_max)
        if c_dim < 0 or img_channels < 1:
            raise ValueError(f"c_dim must be >= 0 and img_channels >= 1, got {c_dim}, {img_channels}")
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.architecture = architecture
        self.progressive = progressive
        self.block_resolutions = sorted(channels, reverse=True)[:-1]  # R, R/2, ..., 8 (4 is the epilogue)
        if c_dim == 0:
            cmap_dim = 0
        elif cmap_dim is None:
            cmap_dim = channels[4]
        self.cmap_dim = cmap_dim

        common: dict[str, Any] = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        fp16_res = fp16_resolution(self.img_resolution_log2, num_fp16_res)
        for res in self.block_resolutions:
            first = res == img_resolution
            block = DiscriminatorBlock(0 if first else channels[res], channels[res], channels[res // 2], resolution=res,
                                       has_fromrgb=first or architecture == "skip" or progressive,
                                       resample_filter=resample_filter, use_fp16=res >= fp16_res, **common)
            setattr(self, f"b{res}", block)
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, img_channels=img_channels,
                                        has_fromrgb=architecture == "skip" or progressive or img_resolution == 4,
                                        mbstd_group_size=mbstd_group_size, mbstd_num_channels=mbstd_num_channels,
                                        conv_clamp=conv_clamp)
        if progressive:
            self.register_buffer("lod", torch.zeros([]))

    def _cmap(self, c: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if self.c_dim == 0:
            return None
        if c is None:
            raise ValueError(f"this discriminator is conditional: c must be a float tensor [N, {self.c_dim}]")
        assert_shape(c, [batch, self.c_dim], "c")
        return self.mapping(None, c)  # [N, cmap_dim]

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """img [N, img_channels, R, R] float (about [-1, 1]), c [N, c_dim] -> logits [N, 1] float32."""
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        img = img.to(torch.float32)
        cmap = self._cmap(c, img.shape[0])
        if self.progressive:
            return self._forward_progressive(img, cmap)
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
        return self.b4(x, img, cmap)

    def _forward_progressive(self, img: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        """Progressive growing (TF `D_stylegan`, 'linear' structure, evaluated lazily).

        The image is box-downsampled level by level. The first active block starts from its FromRGB; after the
        block of level k the features are lerp(block output, FromRGB of the next level's image, lod - k) (clipped
        to [0, 1]), which fades level k in as lod decreases from k + 1 to k.
        """
        lod = _current_lod(self.lod, self.img_resolution_log2)
        x = None
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_lod = self.img_resolution_log2 - int(math.log2(res))
            if x is None and lod >= block_lod + 1:
                img = upfirdn2d.downsample2d(img, None)  # this level is not shown yet
                continue
            x, _ = block(x, img)  # [N, C, r/2, r/2]; starts from fromrgb(img) when x is None
            img = upfirdn2d.downsample2d(img, None)  # [N, img_channels, r/2, r/2]
            t = min(max(lod - block_lod, 0.0), 1.0)
            if t > 0:
                next_rgb = getattr(self, f"b{res // 2}").fromrgb if res > 8 else self.b4.fromrgb
                x = torch.lerp(x, next_rgb(img), t)
        return self.b4(x, img if x is None else None, cmap)

    def extra_repr(self) -> str:
        return (f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}, "
                f"architecture={self.architecture}, progressive={self.progressive}")
