"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs").

KID is the unbiased estimate of the squared maximum mean discrepancy between generated and real features under the
cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over random subsets:

    MMD^2_u = [sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i,j} k(x_i, y_j) / m^2

Matches stylegan2-ada-pytorch `metrics/kernel_inception_distance.py` (100 subsets of m = min(n_gen, n_real, 1000)
rows each, drawn without replacement, independently for every subset) and torch-fidelity `metric_kid.py` (mean and
population std over subsets). Deliberate difference: the subsets come from `numpy.random.default_rng(seed)`
(PCG64), drawing the generated subset then the real subset for each subset in turn, with `Generator.choice(n, m,
replace=False)`; the official code uses the legacy global `np.random` state, so individual subsets (not the
estimator) differ. The kernel sums are computed in float64 (the official code uses the float32 features as-is).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from sgeval.metrics.registry import ComputeOptions, check_same_dim, feature_matrix, register_metric

__all__ = ["KIDResult", "KIDSettings", "SmallKIDSubsetWarning", "kernel_inception_distance", "kid",
           "polynomial_kernel", "unbiased_mmd2"]


class SmallKIDSubsetWarning(UserWarning):
    """Fewer generated or real features than the KID subset size: subsets are smaller than the protocol's."""


@dataclasses.dataclass(frozen=True)
class KIDSettings:
    """Protocol settings of KID."""

    num_subsets: int = 100  # number of random subsets averaged
    max_subset_size: int = 1000  # rows per subset, capped by min(n_gen, n_real)

    def __post_init__(self) -> None:
        if self.num_subsets < 1:
            raise ValueError(f"num_subsets must be >= 1, got {self.num_subsets}")
        if self.max_subset_size < 2:
            raise ValueError(f"max_subset_size must be >= 2 (unbiased MMD needs pairs), got {self.max_subset_size}")


@dataclasses.dataclass(frozen=True)
class KIDResult:
    """KID estimate: mean and spread of the per-subset unbiased MMD^2 (squared feature-kernel units, not x1000)."""

    mean: float  # mean over subsets (can be slightly negative: the estimator is unbiased)
    std: float  # population std over subsets (np.std, ddof=0, as torch-fidelity)
    subset_size: int  # m, rows drawn from each set per subset
    num_subsets: int  # number of subsets


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic polynomial kernel (x.y / D + 1)^3 between rows of x [n, D] and y [m, D]; returns [n, m] float64."""
    dim = x.shape[1]
    kernel: np.ndarray = (x.astype(np.float64) @ y.astype(np.float64).T / dim + 1.0) ** 3  # [n, m]
    return kernel


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equally sized samples x [m, D] and y [m, D] under `polynomial_kernel`."""
    m = x.shape[0]
    if m != y.shape[0] or m < 2:
        raise ValueError(f"unbiased MMD^2 needs two samples of the same size >= 2, got {x.shape[0]} and {y.shape[0]}")
    k_xx = polynomial_kernel(x, x)  # [m, m]
    k_yy = polynomial_kernel(y, y)  # [m, m]
    k_xy = polynomial_kernel(x, y)  # [m, m]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    gen: np.ndarray,
    real: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> KIDResult:
    """KID between generated features gen [n_gen, D] and real features real [n_real, D].

    Args:
        gen, real: float feature arrays (any float dtype; computed in float64).
        num_subsets: number of random subsets.
        max_subset_size: cap on rows per subset; m = min(n_gen, n_real, max_subset_size).
        seed: seed of `numpy.random.default_rng` drawing the subsets (see module docstring).

    Returns:
        KIDResult with the mean and population std over subsets.
    """
    check_same_dim(gen, real)
    settings = KIDSettings(num_subsets=num_subsets, max_subset_size=max_subset_size)  # validates
    m = min(gen.shape[0], real.shape[0], settings.max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 generated and 2 real features, got {gen.shape[0]} and {real.shape[0]}")
    if m < settings.max_subset_size:  # the estimator's variance grows as the subsets shrink
        warnings.warn(f"KID: only {gen.shape[0]} generated and {real.shape[0]} real features, fewer than the subset "
                      f"size {settings.max_subset_size}; using subsets of {m}, so the value is noisier and not "
                      "comparable with values computed on full subsets", SmallKIDSubsetWarning, stacklevel=2)
    rng = np.random.default_rng(seed)
    mmds = np.empty(num_subsets, dtype=np.float64)
    for index in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]  # [m, D]
        y = real[rng.choice(real.shape[0], m, replace=False)]  # [m, D]
        mmds[index] = unbiased_mmd2(x, y)
    return KIDResult(mean=float(mmds.mean()), std=float(mmds.std()), subset_size=m, num_subsets=num_subsets)


@register_metric(
    "kid",
    kind="feature",
    higher_is_better=False,
    needs="features",
    value_keys=("kid", "kid_std"),
    primary="kid",
    settings_type=KIDSettings,
    description="Kernel distance: unbiased MMD^2, cubic polynomial kernel, subsets (Bińkowski et al. 2018)",
)
def kid(gen: Any, real: Any, settings: KIDSettings, options: ComputeOptions | None = None) -> dict[str, float]:
    """KID of two feature sets (arrays [N, D] or objects with `.features`); uses `options.seed` for subsets.

    Returns {"kid": mean, "kid_std": std} over subsets, unscaled (multiply by 1e3 for the usual table units).
    """
    options = options or ComputeOptions()
    result = kernel_inception_distance(
        feature_matrix(gen, "generated features"),
        feature_matrix(real, "real features"),
        num_subsets=settings.num_subsets,
        max_subset_size=settings.max_subset_size,
        seed=options.seed,
    )
    return {"kid": result.mean, "kid_std": result.std}


@register_metric(
    "kd",
    kind="feature",
    higher_is_better=False,
    needs="features",
    value_keys=("kd", "kd_std"),
    primary="kd",
    settings_type=KIDSettings,
    description="Kernel distance on a detector other than Inception (domain KD: the KID formula, never called KID)",
)
def kd(gen: Any, real: Any, settings: KIDSettings, options: ComputeOptions | None = None) -> dict[str, float]:
    """The KID formula under its honest name, for features of a domain detector (sgeval.detector).

    Returns {"kd": mean, "kd_std": std} over subsets, unscaled; not comparable with KID or across detectors.
    """
    values = kid(gen, real, settings, options)
    return {"kd": values["kid"], "kd_std": values["kid_std"]}
