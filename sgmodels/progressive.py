"""Level-of-detail (progressive growing) helpers shared by the progressive networks.

Progressive growing (Karras et al. 2018, "Progressive Growing of GANs", and the StyleGAN v1 training loop) trains a
network from low to high resolution. A float `lod` ("level of detail") says how far along the network is:

* `lod = 0` uses the full network at `img_resolution`;
* `lod = k` (an integer) uses only the layers up to resolution `img_resolution / 2**k`;
* `lod = k + a` with `0 < a < 1` fades between two levels: the output is `lerp(out_k, out_{k+1}, a)`, where
  `out_{k+1}` is the image (generator) or the feature map (discriminator) of the next-coarser level.

These helpers reproduce the "linear" structure of the TF code (`G_synthesis` / `D_basic` in NVlabs/stylegan,
`tflib.lerp_clip`); only the levels whose weight is non-zero are evaluated, which is what the TF "recursive"
structure does too. Generator outputs are always returned at full resolution, coarser levels upsampled by nearest
neighbour (`upscale2d`), and discriminator inputs are downsampled by 2x2 box averaging (`downscale2d`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


def resolution_log2(img_resolution: int) -> int:
    """log2 of a power-of-two resolution >= 4; a clear ValueError for anything else (e.g. 96 or 2)."""
    if isinstance(img_resolution, bool) or not isinstance(img_resolution, int):
        raise TypeError(f"img_resolution must be an int, got {type(img_resolution).__name__}")
    if img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise ValueError(f"img_resolution must be a power of two >= 4 (4, 8, ..., 1024), got {img_resolution}")
    return int(round(math.log2(img_resolution)))


def max_lod(img_resolution: int) -> int:
    """Coarsest level of detail: `log2(img_resolution) - 2` (the 4x4 stage alone)."""
    return resolution_log2(img_resolution) - 2


@dataclass(frozen=True)
class LodLevels:
    """Which resolutions a float `lod` needs.

    `top_log2` is log2 of the finest resolution that is evaluated (`log2(R) - floor(lod)`), `alpha` in [0, 1) is the
    weight of the next-coarser level (`top_log2 - 1`) in the fade-in; `alpha == 0` means no fade.
    `upscale` = `2 ** floor(lod)` is the nearest-neighbour factor from `top_log2` back to the full resolution.
    """

    top_log2: int
    alpha: float
    upscale: int

    @property
    def fading(self) -> bool:
        return self.alpha > 0.0


def lod_levels(lod: float, img_resolution: int) -> LodLevels:
    """Split a float level of detail into the finest evaluated stage and the fade-in weight.

    Raises ValueError if `lod` is not finite or lies outside `[0, log2(img_resolution) - 2]`.
    """
    top = max_lod(img_resolution)
    if not math.isfinite(lod) or lod < 0.0 or lod > top:
        raise ValueError(
            f"lod must lie in [0, {top}] for img_resolution {img_resolution} (0 = full resolution, {top} = 4x4), "
            f"got {lod}"
        )
    whole = min(int(math.floor(lod)), top)
    return LodLevels(top_log2=resolution_log2(img_resolution) - whole, alpha=float(lod - whole), upscale=2**whole)


def register_lod(module: torch.nn.Module) -> None:
    """Give `module` the float32 scalar buffer `lod` (initial value 0 = full resolution), as in the TF networks."""
    module.register_buffer("lod", torch.zeros([]))


def read_lod(module: torch.nn.Module) -> float:
    """Current value of `module.lod` as a Python float (a host sync on GPU, once per forward)."""
    return float(module.get_buffer("lod"))


def set_lod(module: torch.nn.Module, lod: float) -> int:
    """Set every buffer named `lod` inside `module` (generator, discriminator or a whole training state) to `lod`.

    Returns how many buffers were set, so a caller can notice a network that is not progressive (0).
    The value is validated by the networks at their next forward (the range depends on each resolution).
    """
    if not isinstance(lod, (int, float)) or isinstance(lod, bool) or not math.isfinite(lod) or lod < 0:
        raise ValueError(f"lod must be a finite number >= 0, got {lod!r}")
    count = 0
    for name, buffer in module.named_buffers():
        if name == "lod" or name.endswith(".lod"):
            buffer.fill_(float(lod))
            count += 1
    return count


def upscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling of `x` [N, C, H, W] by an integer `factor` -> [N, C, H*factor, W*factor]."""
    if factor == 1:
        return x
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)  # [N, C, H*f, W*f]


def downscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Box (average) downsampling of `x` [N, C, H, W] by an integer `factor` -> [N, C, H/factor, W/factor]."""
    if factor == 1:
        return x
    return F.avg_pool2d(x, kernel_size=factor, stride=factor)  # [N, C, H/f, W/f]


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """`a + (b - a) * t`: `t = 0` gives `a`, `t = 1` gives `b` (the fade-in blend of the TF code)."""
    if t == 0.0:
        return a
    return a + (b - a) * t
