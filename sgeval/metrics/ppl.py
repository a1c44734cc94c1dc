"""Perceptual path length: the pure reduction of the PPL distances (the sampler is `sgeval.samplers.ppl`).

Karras et al., "A Style-Based Generator Architecture for GANs" (2019), section 4.2, and the StyleGAN2 paper; the
reference implementations are NVIDIA's TF `metrics/perceptual_path_length.py` (StyleGAN, StyleGAN2) and its
PyTorch port in stylegan2-ada-pytorch (docs/metrics.md section 9). The sampler returns one distance per pair,
already divided by epsilon^2; the value is the mean of the distances between the 1st percentile (numpy
`method="lower"`) and the 99th (`method="higher"`), inclusive, exactly as both reference implementations filter.

sgeval adds a percentile bootstrap confidence interval of that value (the whole estimator, filter included, on
resampled pairs): PPL is a mean over 50,000-100,000 heavy-tailed samples, and published numbers differ by less
than their sampling error more often than one would think.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

import numpy as np

from sgeval.metrics.registry import ComputeOptions, register_metric

__all__ = ["PPLSettings", "bootstrap_interval", "filtered_mean", "percentile_filter", "perceptual_path_length"]

Space = Literal["z", "w"]
Sampling = Literal["full", "end"]
Downsample = Literal["tf", "ada"]
Interpolation = Literal["tf", "torch"]


@dataclasses.dataclass(frozen=True)
class PPLSettings:
    """Settings of one PPL protocol (docs/metrics.md sections 9.1-9.4)."""

    space: Space  # "z": slerp of unit-normalised latents; "w": lerp of the mapped latents (all layers alike)
    sampling: Sampling  # "full": t ~ U(0, 1); "end": t = 0 exactly (as the official code; the paper says t in {0, 1})
    crop: bool  # face crop before the distance: rows [3c, 7c), columns [2c, 6c) with c = H // 8
    downsample: Downsample  # box factor to 256: "tf" from the cropped size; "ada" from G.img_resolution (ADA's bug)
    pairs_per_noise: int  # pairs that share one noise realisation (a minibatch per GPU: TF-v1 16, TF-v2 4, ADA 2)
    # W-space interpolation: "tf" is TF's `a + (b - a) * t` (StyleGAN and StyleGAN2); "torch" is `torch.lerp`, as
    # stylegan2-ada-pytorch, which for t >= 0.5 computes `b - (b - a) * (1 - t)`: the two round differently, and the
    # division by epsilon^2 turns that into up to ~1e-2 per pair.
    interpolation: Interpolation = "tf"
    epsilon: float = 1e-4  # interpolation step; distances are divided by epsilon^2
    confidence: float = 0.95  # level of the bootstrap interval
    bootstrap_resamples: int = 1000  # resamples of the pairs for that interval

    def __post_init__(self) -> None:
        if self.space not in ("z", "w") or self.sampling not in ("full", "end"):
            raise ValueError(f"PPL space must be 'z' or 'w' and sampling 'full' or 'end', got {self.space!r}, "
                             f"{self.sampling!r}")
        if self.downsample not in ("tf", "ada"):
            raise ValueError(f"PPL downsample must be 'tf' or 'ada', got {self.downsample!r}")
        if self.interpolation not in ("tf", "torch"):
            raise ValueError(f"PPL interpolation must be 'tf' or 'torch', got {self.interpolation!r}")
        if not 0 < self.epsilon < 1:
            raise ValueError(f"PPL epsilon must lie in (0, 1), got {self.epsilon}")
        if self.pairs_per_noise < 1 or self.bootstrap_resamples < 0 or not 0 < self.confidence < 1:
            raise ValueError("PPL pairs_per_noise must be >= 1, bootstrap_resamples >= 0 and confidence in (0, 1)")


def percentile_filter(distances: np.ndarray) -> np.ndarray:
    """The distances between the 1st percentile (`lower`) and the 99th (`higher`), both inclusive, in input order."""
    values = np.asarray(distances, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"PPL needs a non-empty 1-D array of distances, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("PPL distances contain NaN or infinite values: the generator or the distance network "
                         "produced non-finite output")
    lo = np.percentile(values, 1, method="lower")
    hi = np.percentile(values, 99, method="higher")
    return values[(values >= lo) & (values <= hi)]


def filtered_mean(distances: np.ndarray) -> float:
    """PPL: the mean of `percentile_filter(distances)`."""
    return float(percentile_filter(distances).mean())


def _filtered_means(samples: np.ndarray) -> np.ndarray:
    """`filtered_mean` of every row of [B, N] (vectorised: the percentiles of sorted rows are order statistics)."""
    ordered = np.sort(samples, axis=1)  # [B, N]
    n = ordered.shape[1]
    lo_index = int(np.floor(0.01 * (n - 1)))  # numpy's "lower" rank of the 1st percentile
    hi_index = int(np.ceil(0.99 * (n - 1)))  # "higher" rank of the 99th
    lo, hi = ordered[:, lo_index : lo_index + 1], ordered[:, hi_index : hi_index + 1]  # [B, 1]
    keep = (ordered >= lo) & (ordered <= hi)  # ties of the bounds are kept, as in percentile_filter
    means: np.ndarray = (ordered * keep).sum(axis=1) / keep.sum(axis=1)
    return means


def bootstrap_interval(distances: np.ndarray, resamples: int, confidence: float, seed: int,
                       chunk: int = 100) -> tuple[float, float]:
    """Percentile bootstrap interval of `filtered_mean` over `resamples` resamplings of the pairs (with replacement).

    Returns (low, high); (nan, nan) when `resamples` is 0. Deterministic for a seed.
    """
    values = np.asarray(distances, dtype=np.float64)
    if resamples == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng([seed, 0x5EED])
    means = []
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        picks = rng.integers(0, values.size, size=(count, values.size))  # [B, N] indices
        means.append(_filtered_means(values[picks]))
    tail = (1 - confidence) / 2
    low, high = np.quantile(np.concatenate(means), [tail, 1 - tail])
    return float(low), float(high)


@register_metric(
    "ppl",
    kind="generator",
    higher_is_better=False,
    needs="none",
    value_keys=("ppl", "ci_low", "ci_high", "num_kept"),
    primary="ppl",
    settings_type=PPLSettings,
    description="Perceptual path length (Karras et al. 2019): filtered mean of LPIPS(step)/eps^2, bootstrap CI",
    uses_reals=False,
)
def perceptual_path_length(arrays: Mapping[str, np.ndarray], settings: PPLSettings,
                           options: ComputeOptions) -> dict[str, float]:
    """PPL and its bootstrap interval from the sampler's `arrays["distances"]` (float [N], already / epsilon^2)."""
    distances = np.asarray(arrays["distances"], dtype=np.float64)
    kept = percentile_filter(distances)
    low, high = bootstrap_interval(distances, settings.bootstrap_resamples, settings.confidence, options.seed)
    return {"ppl": float(kept.mean()), "ci_low": low, "ci_high": high, "num_kept": float(kept.size)}
