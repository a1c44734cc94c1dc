"""Training schedules: progressive growing (level of detail, per-resolution minibatch and learning rate), the EMA
decay of the generator average and the lazy-regularisation corrections.

Everything here is a pure function of counters (images seen, batch size), so a resumed run recomputes exactly the
values that an uninterrupted run would have used.

References: `training_schedule()` of the StyleGAN (v1) TF `training_loop.py` for the level-of-detail schedule;
StyleGAN2 TF `training_loop.py` / ADA `train.py` for the lazy-regularisation factors and the EMA half-life.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from sgmodels.progressive import downscale2d, upscale2d


def lazy_regularization_factor(interval: int | None) -> float:
    """Ratio c = k / (k + 1) for a regulariser evaluated every k minibatches (1.0 when not lazy).

    A lazily regularised network takes k main steps and one regularisation step per k minibatches, so its Adam
    hyper-parameters are rescaled (lr * c, beta ** c) to keep the effective momentum and step size per minibatch
    (StyleGAN2 paper, appendix B; docs/models.md section 3).
    """
    if interval is None or interval == 0:
        return 1.0
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(f"regularisation interval must be a positive integer or None, got {interval!r}")
    return interval / (interval + 1)


def lazy_adam_hyperparameters(
    lr: float,
    betas: tuple[float, float],
    interval: int | None,
) -> tuple[float, tuple[float, float]]:
    """Adam learning rate and betas for a network regularised every `interval` minibatches.

    Returns `(lr * c, (beta1 ** c, beta2 ** c))` with c = interval / (interval + 1); unchanged when interval is None.
    """
    c = lazy_regularization_factor(interval)
    return lr * c, (betas[0] ** c, betas[1] ** c)


def ema_beta(
    batch_size: int,
    ema_kimg: float,
    cur_nimg: int,
    rampup: float | None = None,
) -> float:
    """Decay of the generator moving average for one step of `batch_size` images.

    The half-life is `ema_kimg` thousand images: beta = 0.5 ** (batch / ema_nimg). With a ramp-up ratio the
    half-life is capped at `cur_nimg * rampup` images, so early averages forget the random initialisation quickly
    (ADA `ema_rampup`). ema_kimg == 0 disables averaging (beta 0: G_ema is a copy of G).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if ema_kimg < 0:
        raise ValueError(f"ema_kimg must be >= 0, got {ema_kimg}")
    ema_nimg = ema_kimg * 1000.0
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


@dataclass(frozen=True)
class TrainingPhase:
    """Schedule values for one minibatch: what the networks see and how fast they learn."""

    kimg: float  # thousands of real images shown so far
    lod: float  # level of detail: 0 = full resolution, fractional while a level fades in
    resolution: int  # resolution of the level being trained (the finer one during a fade-in), pixels
    batch: int  # global minibatch size (all processes together)
    lr: float  # Adam learning rate before the lazy-regularisation correction


@dataclass(frozen=True)
class ProgressiveSchedule:
    """Level-of-detail, minibatch and learning-rate schedule of progressive growing (TF v1 `training_schedule`).

    Each level trains for `training_kimg` at a fixed resolution and then fades in the next, finer level over
    `transition_kimg`. With `enabled=False` (StyleGAN2 configs E/F) lod stays 0 and minibatch and lr are the base.
    """

    img_resolution: int  # final output resolution (power of two)
    enabled: bool = True  # grow progressively; False = always full resolution
    initial_resolution: int = 8  # resolution of the first level (TF `lod_initial_resolution`)
    training_kimg: float = 600.0  # kimg spent stabilising each level
    transition_kimg: float = 600.0  # kimg spent fading in the next level
    batch_base: int = 32  # global minibatch where `batch_dict` has no entry
    batch_dict: Mapping[int, int] = field(default_factory=dict)  # resolution -> global minibatch
    lr_base: float = 0.001  # learning rate where `lr_dict` has no entry
    lr_dict: Mapping[int, float] = field(default_factory=dict)  # resolution -> learning rate

    def __post_init__(self) -> None:
        for name in ("img_resolution", "initial_resolution"):
            value = getattr(self, name)
            if value < 4 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two >= 4, got {value}")
        if self.initial_resolution > self.img_resolution:
            raise ValueError(
                f"initial_resolution {self.initial_resolution} exceeds img_resolution {self.img_resolution}"
            )
        if self.training_kimg < 0 or self.transition_kimg < 0:
            raise ValueError("training_kimg and transition_kimg must be >= 0")
        if self.batch_base < 1 or any(int(b) < 1 for b in self.batch_dict.values()):
            raise ValueError("minibatch sizes must be >= 1")

    @property
    def max_lod(self) -> float:
        """Level of detail of the first level (log2 of final / initial resolution)."""
        return math.log2(self.img_resolution) - math.log2(self.initial_resolution)

    def lod_at(self, cur_nimg: int) -> float:
        """Level of detail after `cur_nimg` real images (0 when growing is disabled)."""
        if not self.enabled:
            return 0.0
        kimg = cur_nimg / 1000.0
        period = self.training_kimg + self.transition_kimg
        level = math.floor(kimg / period) if period > 0 else 0
        lod = self.max_lod - level
        if self.transition_kimg > 0:
            kimg_in_level = kimg - level * period
            lod -= max(kimg_in_level - self.training_kimg, 0.0) / self.transition_kimg
        return max(lod, 0.0)

    def at(self, cur_nimg: int, num_processes: int = 1) -> TrainingPhase:
        """Schedule values after `cur_nimg` images; the minibatch is rounded down to a multiple of the processes."""
        lod = self.lod_at(cur_nimg)
        resolution = self.img_resolution >> int(math.floor(lod))
        batch = int(self.batch_dict.get(resolution, self.batch_base)) if self.enabled else self.batch_base
        batch -= batch % num_processes
        if batch < num_processes:
            raise ValueError(f"minibatch {batch} at resolution {resolution} is smaller than {num_processes} processes")
        lr = float(self.lr_dict.get(resolution, self.lr_base)) if self.enabled else self.lr_base
        return TrainingPhase(kimg=cur_nimg / 1000.0, lod=lod, resolution=resolution, batch=batch, lr=lr)

    def batch_sizes(self, num_processes: int = 1) -> list[int]:
        """Every global minibatch size the schedule can use (one per level), for sizing the data loader."""
        if not self.enabled:
            return [self.at(0, num_processes).batch]
        sizes = set()
        resolution = self.initial_resolution
        while resolution <= self.img_resolution:
            batch = int(self.batch_dict.get(resolution, self.batch_base))
            sizes.add(batch - batch % num_processes)
            resolution *= 2
        return sorted(sizes)


def lod_level_changed(prev_lod: float | None, lod: float) -> bool:
    """True when training enters or leaves a fade-in (floor or ceil of lod changes), or at the very start.

    The TF v1 loop resets the Adam state of both networks at these points, because the new layers' moments would
    otherwise be mixed with those of a different function.
    """
    if prev_lod is None:
        return True
    return math.floor(lod) != math.floor(prev_lod) or math.ceil(lod) != math.ceil(prev_lod)


def mixing_layers(num_ws: int, lod: float) -> int:
    """Number of style layers in use at level of detail `lod` (two per resolution): cur_layers of the TF code."""
    return max(num_ws - 2 * int(math.floor(lod)), 1)


def reals_at_lod(img: torch.Tensor, lod: float) -> torch.Tensor:
    """Show real images at the level of detail the networks currently train at (TF v1 `process_reals`).

    Args:
        img: float [N, C, H, W] at full resolution, any range.
        lod: level of detail >= 0; fractional values cross-fade with the next coarser level.
    Returns:
        float [N, C, H, W], same resolution: box-downsampled by 2 ** floor(lod), blended with a further 2x box
        downsample (nearest-upsampled) by frac(lod), then nearest-upsampled back to H x W. The TF datasets stored
        each level rounded to uint8; this keeps float precision.
    """
    if lod <= 0:
        return img
    level = int(math.floor(lod))
    alpha = lod - level
    factor = 2**level
    if img.shape[-1] % (factor * (2 if alpha > 0 else 1)) or img.shape[-2] % factor:
        raise ValueError(f"image size {tuple(img.shape[-2:])} cannot be reduced to level of detail {lod}")
    x = downscale2d(img, factor)  # [N, C, H/f, W/f]
    if alpha > 0:
        x = torch.lerp(x, upscale2d(downscale2d(x, 2), 2), alpha)  # [N, C, H/f, W/f]
    return upscale2d(x, factor)  # [N, C, H, W]
