"""LPIPS projection error (StyleGAN2 paper, Karras et al. 2020, Section 5 and Fig. 10): settings and reductions.

The sampler stage is `sgeval.projector.project` (one target image -> one final distance); this module holds its
frozen settings and the pure reductions of the resulting distances (numbers in, numbers out), so tests feed them
with synthetic arrays:

* `proj_lpips`: the projection error of a set of targets: mean, median and population std of the per-target
  distances (lower = the network reproduces the images better);
* `proj_attribution`: the attribution experiment of Fig. 10: how well the projection error separates the network's
  own generated images (small distances) from real images. ROC AUC is P(d_generated < d_real) (ties count half,
  `sklearn.metrics.roc_auc_score` with the score -d); 1 = perfect attribution, 0.5 = none. The paper gives
  histograms only, no decision threshold; `threshold` / `accuracy` are the distance that maximises balanced
  accuracy (Youden's J) and that accuracy, as an extra summary.

Settings follow StyleGAN2 TF `projector.Projector` and stylegan2-ada-pytorch `projector.project` (docs/metrics.md
section 11); where the two differ, the docstring of `ProjectorSettings` says which one is followed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from sgeval.metrics.registry import ComputeOptions, register_metric

__all__ = ["DEFAULT_HISTOGRAM_BINS", "ProjectorSettings", "attribution", "distance_array", "distance_histogram",
           "proj_attribution", "proj_lpips", "projection_error"]

DEFAULT_HISTOGRAM_BINS = 20  # bins of the recorded histograms


@dataclasses.dataclass(frozen=True)
class ProjectorSettings:
    """Hyper-parameters of the StyleGAN2 projector; the defaults are the official ones (TF-v2 and ADA agree).

    Deliberate choices where the two official implementations differ (docs/metrics.md section 11):
    * targets larger than `max_distance_resolution` are area-downsampled to exactly that size (ADA
      `F.interpolate(mode="area")`; equal to TF's integer box filter whenever the resolution is a multiple of 256,
      e.g. 512 or 1024; TF would leave e.g. a 384 image at 384);
    * Adam is torch's (epsilon added to the bias-corrected sqrt(v), as ADA; TF's epsilon-hat placement differs
      only in the first steps' round-off);
    * the z of the w statistics are `np.random.RandomState(w_avg_seed).randn(w_avg_samples, z_dim)` (both), the
      statistics are reduced in float64 (both official codes use float32).
    """

    num_steps: int = 1000  # optimisation steps
    w_avg_samples: int = 10_000  # z samples for w_avg and sigma_w
    w_avg_seed: int = 123  # RandomState seed of those z samples (official)
    initial_learning_rate: float = 0.1  # peak Adam learning rate
    initial_noise_factor: float = 0.05  # latent noise at step 0, in units of sigma_w
    lr_rampdown_length: float = 0.25  # fraction of the steps of the final cosine ramp-down
    lr_rampup_length: float = 0.05  # fraction of the steps of the initial linear warm-up
    noise_ramp_length: float = 0.75  # fraction of the steps after which the latent noise is 0
    regularize_noise_weight: float = 1e5  # weight of the noise-map autocorrelation penalty
    adam_betas: tuple[float, float] = (0.9, 0.999)  # Adam beta1, beta2 (TF / torch defaults)
    adam_eps: float = 1e-8  # Adam epsilon
    max_distance_resolution: int = 256  # images larger than this are area-downsampled before the distance

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if self.w_avg_samples < 1:
            raise ValueError(f"w_avg_samples must be >= 1, got {self.w_avg_samples}")
        for name in ("lr_rampdown_length", "lr_rampup_length", "noise_ramp_length"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be a fraction of the steps in (0, 1], got {value}")
        if self.initial_learning_rate <= 0 or self.initial_noise_factor < 0 or self.regularize_noise_weight < 0:
            raise ValueError("initial_learning_rate must be > 0, initial_noise_factor and regularize_noise_weight "
                             ">= 0")
        if self.max_distance_resolution < 1:
            raise ValueError(f"max_distance_resolution must be >= 1, got {self.max_distance_resolution}")

    def learning_rate(self, step: int) -> float:
        """Learning rate of step `step` (0-based): linear warm-up, flat, cosine ramp-down (official schedule)."""
        t = step / self.num_steps
        ramp = min(1.0, (1.0 - t) / self.lr_rampdown_length)
        ramp = 0.5 - 0.5 * float(np.cos(ramp * np.pi))
        ramp *= min(1.0, t / self.lr_rampup_length)
        return self.initial_learning_rate * ramp

    def latent_noise_scale(self, step: int, w_std: float) -> float:
        """Std of the Gaussian noise added to w at step `step`: sigma_w * factor * max(0, 1 - t / ramp)^2."""
        t = step / self.num_steps
        return w_std * self.initial_noise_factor * max(0.0, 1.0 - t / self.noise_ramp_length) ** 2


def distance_array(distances: Any, what: str = "distances") -> np.ndarray:
    """Per-target distances as a validated float64 vector [N] (N >= 1, finite)."""
    array = np.asarray(distances, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what}: expected a non-empty 1-D array of per-image distances, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return array


def projection_error(distances: Any) -> dict[str, float]:
    """Mean, median and population std (ddof 0) of per-target projection distances [N] (distance units)."""
    values = distance_array(distances)
    return {"proj_lpips": float(values.mean()), "median": float(np.median(values)), "std": float(values.std())}


def distance_histogram(*sets: Any, bins: int = DEFAULT_HISTOGRAM_BINS) -> tuple[np.ndarray, list[np.ndarray]]:
    """Histograms of one or more distance sets over shared bins.

    Returns:
        edges: float64 [bins + 1], equal-width bins from 0 (or the smallest distance, if negative) to the largest
            distance of all sets;
        counts: one int64 [bins] array per set.
    """
    arrays = [distance_array(values) for values in sets]
    low = min(0.0, min(float(array.min()) for array in arrays))
    high = max(float(array.max()) for array in arrays)
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    return edges, [np.histogram(array, bins=edges)[0].astype(np.int64) for array in arrays]


def attribution(gen_distances: Any, real_distances: Any) -> dict[str, float]:
    """Separation of generated (positive) from real (negative) images by their projection distance.

    Args:
        gen_distances: [N_gen] distances of the network's own generated images.
        real_distances: [N_real] distances of real images.
    Returns:
        auc: ROC AUC of the score -distance = P(d_gen < d_real) + P(tie) / 2;
        threshold, accuracy: the distance threshold (generated iff d <= threshold) maximising balanced accuracy,
            and that balanced accuracy;
        gen_mean, gen_median, real_mean, real_median: summaries of both sets.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    gen = distance_array(gen_distances, "generated distances")
    real = distance_array(real_distances, "real distances")
    labels = np.concatenate([np.ones(gen.size), np.zeros(real.size)])  # 1 = made by this network
    scores = -np.concatenate([gen, real])  # smaller distance = more likely generated
    auc = float(roc_auc_score(labels, scores))
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    threshold = float(-thresholds[best]) if np.isfinite(thresholds[best]) else float("nan")  # nan: no separation
    return {
        "auc": auc,
        "threshold": threshold,
        "accuracy": float((tpr[best] + 1.0 - fpr[best]) / 2.0),
        "gen_mean": float(gen.mean()),
        "gen_median": float(np.median(gen)),
        "real_mean": float(real.mean()),
        "real_median": float(np.median(real)),
    }


@register_metric(
    "proj_lpips",
    kind="generator",
    higher_is_better=False,
    needs="none",
    value_keys=("proj_lpips", "median", "std"),
    primary="proj_lpips",
    settings_type=ProjectorSettings,
    description="StyleGAN2 LPIPS projection error of target images (mean, median, std over targets)",
    uses_reals=True,
)
def proj_lpips(arrays: Mapping[str, Any], settings: ProjectorSettings | None = None,
               options: ComputeOptions | None = None) -> dict[str, float]:
    """Registry entry of `projection_error` in the generator-metric convention fn(arrays, settings, options):
    `arrays["distances"]` float [N], the final distance of every target (settings describe how they were made;
    options are unused)."""
    return projection_error(arrays["distances"])


@register_metric(
    "proj_attribution",
    kind="generator",
    higher_is_better=True,
    needs="none",
    value_keys=("auc", "threshold", "accuracy", "gen_mean", "gen_median", "real_mean", "real_median"),
    primary="auc",
    settings_type=ProjectorSettings,
    description="StyleGAN2 Fig. 10 attribution: ROC AUC of projection distances, generated vs real images",
    uses_reals=True,
)
def proj_attribution(arrays: Mapping[str, Any], settings: ProjectorSettings | None = None,
                     options: ComputeOptions | None = None) -> dict[str, float]:
    """Registry entry of `attribution` in the generator-metric convention fn(arrays, settings, options):
    `arrays["gen_distances"]` float [N_gen] and `arrays["real_distances"]` float [N_real]."""
    return attribution(arrays["gen_distances"], arrays["real_distances"])
