"""Does a domain detector measure something? The self-checks `sgeval detector train` runs and records.

A detector is a measuring stick only if its Fréchet distance (FD, FID's formula, covariance / N) responds to what
it should and not to what it should not. On held-out real images (never seen in training):

1. "learned its labels": mean balanced accuracy over its labels at least `sgeval.label_quality.CHANCE_MARGIN`
   (a network that learned nothing of its labels has no reason to have useful features);
2. the images are split at random into halves A and B, and B is blurred by a Gaussian of sigma 0.5, 1, 2 pixels
   and given additive Gaussian noise of sigma 8, 16, 32 grey levels (each rounded and clipped to uint8).
   "halves below the strongest blur" and "halves below the strongest noise": FD(A, B), sampling noise only, must
   lie below FD(A, B degraded at the strongest degree);
3. "blur grows", "noise grows": FD at the strongest degree above FD at the mildest.

These are the lenient checks, fit for the few hundred held-out images of a small dataset, where the mildest
degradations hide in the sampling noise. `strict=True` (what `benchmarks/detector_sanity.py` reports on a whole
dataset) asks more: the halves below every degradation and FD strictly growing from degree to degree.

The verdict passes when every check passes; with fewer than `MIN_IMAGES` held-out images the degradation checks
are not run ("untested") and the verdict does not pass. `benchmarks/detector_sanity.py` runs the same checks on any
dataset and adds the ranking of a training run's snapshots.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from sgeval.label_quality import CHANCE_MARGIN

__all__ = ["BLUR_SIGMAS", "MIN_IMAGES", "NOISE_SIGMAS", "add_noise", "degradation_checks", "degradation_rows",
           "gaussian_blur", "sanity_verdict"]

BLUR_SIGMAS = (0.5, 1.0, 2.0)  # pixels
NOISE_SIGMAS = (8.0, 16.0, 32.0)  # grey levels of 0..255
MIN_IMAGES = 20  # two halves of 10: below this an FD comparison says nothing
Features = Callable[[torch.Tensor], np.ndarray]  # uint8 [N, C, H, W] -> float [N, D]


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """uint8 [N, C, H, W] -> blurred uint8 (separable Gaussian, radius ceil(3 sigma), reflected borders)."""
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, int(images.shape[-1]) - 1, int(images.shape[-2]) - 1)  # reflection needs a smaller pad
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()  # [2r + 1]
    channels = images.shape[1]
    x = images.float()  # [N, C, H, W]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1),
                 groups=channels)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1),
                 groups=channels)
    return x.round().clamp(0, 255).to(torch.uint8)


def add_noise(images: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """uint8 [N, C, H, W] plus N(0, sigma^2) grey levels (seeded), rounded and clipped to uint8."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)) * sigma
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


def _fd(a: np.ndarray, b: np.ndarray) -> float:
    from sgeval.metrics.fid import FIDSettings, SingularCovarianceWarning, fd

    with warnings.catch_warnings():  # a few hundred held-out images: biased values, compared only with each other
        warnings.simplefilter("ignore", SingularCovarianceWarning)
        return float(fd(a, b, FIDSettings(cov_ddof=0))["fd"])


def degradation_rows(images: torch.Tensor, features: Features, seed: int) -> list[dict[str, Any]]:
    """[{"condition", "degree", "fd"}] for uint8 images [N, C, H, W]: halves, then blur and noise degrees.

    The halves are a seeded random split; `features` maps uint8 images to features [n, D]."""
    order = torch.from_numpy(np.random.default_rng([seed, 3]).permutation(images.shape[0]))
    half = images.shape[0] // 2
    a_images, b_images = images[order[:half]], images[order[half : 2 * half]]
    reference = features(a_images)
    conditions: list[tuple[str, float, Callable[[torch.Tensor], torch.Tensor]]] = [("halves", 0.0, lambda x: x)]
    conditions += [("blur", sigma, functools.partial(gaussian_blur, sigma=sigma)) for sigma in BLUR_SIGMAS]
    conditions += [("noise", sigma, functools.partial(add_noise, sigma=sigma, seed=seed)) for sigma in NOISE_SIGMAS]
    return [{"condition": name, "degree": degree, "fd": _fd(reference, features(change(b_images)))}
            for name, degree, change in conditions]


def degradation_checks(rows: Sequence[dict[str, Any]], strict: bool = False) -> dict[str, bool]:
    """The checks of the module docstring on `degradation_rows` output: lenient (the default), or strict."""
    halves = rows[0]["fd"]
    series = {name: [row["fd"] for row in rows if row["condition"] == name] for name in ("blur", "noise")}
    if not strict:
        checks = {f"halves below the strongest {name}": values[-1] > halves for name, values in series.items()}
        return checks | {f"{name} grows": values[-1] > values[0] for name, values in series.items()}
    checks = {"halves below every degradation": all(row["fd"] > halves for row in rows[1:])}
    for name, values in series.items():
        pairs = zip(values[:-1], values[1:], strict=True)
        checks[f"{name} monotonic"] = all(later > earlier for earlier, later in pairs)
    return checks


def sanity_verdict(images: torch.Tensor, features: Features, balanced_accuracy: float | None,
                   seed: int) -> dict[str, Any]:
    """The recorded verdict {"passed", "checks", "degradations", "num_images", "failed"} of the module docstring,
    for held-out uint8 images [N, C, H, W] and the held-out mean balanced accuracy (None: not measurable)."""
    checks = {"learned its labels": balanced_accuracy is not None and balanced_accuracy >= CHANCE_MARGIN}
    rows: list[dict[str, Any]] = []
    if images.shape[0] >= MIN_IMAGES:
        rows = degradation_rows(images, features, seed)
        checks |= degradation_checks(rows)
    failed = [name for name, passed in checks.items() if not passed]
    if not rows:
        failed.append(f"degradations untested (fewer than {MIN_IMAGES} held-out images)")
    return {"passed": not failed, "checks": checks, "failed": failed, "degradations": rows,
            "num_images": int(images.shape[0]), "balanced_accuracy": balanced_accuracy}
