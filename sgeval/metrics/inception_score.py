"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs").

IS = exp(E_x KL(p(y|x) || p(y))), where p(y|x) is the softmax of the TF Inception's 1008 logits for a generated
image and p(y) the mean of p(y|x) over the images of a split. The N images are cut into `num_splits` consecutive
splits (split i holds rows i*N//splits to (i+1)*N//splits - 1), the score is computed per split, and the mean and
population std over splits are reported.

Matches stylegan2-ada-pytorch `metrics/inception_score.py` (is50k: 50k generated images, 10 splits, softmax of the
logits WITHOUT the output bias, `no_output_bias=True`, as the original TF code) and torch-fidelity `metric_isc.py`
(its "logits_unbiased" feature, float64 softmax) with its `samples_shuffle=False`; torch-fidelity shuffles the rows
by default, which only changes which images share a split. Deliberate difference from ADA: log-probabilities come
from a float64 log-softmax of the logits (ADA takes `np.log` of float32 probabilities, which is -inf for a
probability that underflows).

The input "features" are the logits of the `inception-v3-tf-logits` extractor [N, 1008] (any per-row additive
constant cancels in the softmax, so log-probabilities work as well).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sgeval.metrics.registry import ComputeOptions, feature_matrix, register_metric

__all__ = ["ISSettings", "inception_score", "inception_score_of_logits"]


@dataclasses.dataclass(frozen=True)
class ISSettings:
    """Protocol settings of the Inception Score."""

    num_splits: int = 10  # consecutive splits of the generated images, one score each

    def __post_init__(self) -> None:
        if self.num_splits < 1:
            raise ValueError(f"num_splits must be >= 1, got {self.num_splits}")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64: [N, C] -> [N, C]."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)  # [N, C], max 0 per row
    log_p: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return log_p


def inception_score_of_logits(logits: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """(mean, population std) over splits of exp(mean_x KL(p(y|x) || p(y))) for logits [N, C].

    Raises ValueError when a split would be empty (fewer rows than splits).
    """
    num = logits.shape[0]
    if num < num_splits:
        raise ValueError(f"Inception Score: {num} images cannot fill {num_splits} splits")
    log_p = _log_softmax(logits)  # [N, C]
    p = np.exp(log_p)  # [N, C]
    scores = np.empty(num_splits, dtype=np.float64)
    for index in range(num_splits):
        rows = slice(index * num // num_splits, (index + 1) * num // num_splits)
        log_marginal = np.log(p[rows].mean(axis=0))  # [C], log p(y) of the split
        kl = (p[rows] * (log_p[rows] - log_marginal)).sum(axis=1)  # [n], KL per image, nats
        scores[index] = np.exp(kl.mean())
    return float(scores.mean()), float(scores.std())


@register_metric(
    "is",
    kind="feature",
    higher_is_better=True,
    needs="features",
    value_keys=("mean", "std"),
    primary="mean",
    settings_type=ISSettings,
    description="Inception Score: exp(mean KL(p(y|x) || p(y))) over splits of generated images (Salimans et al. 2016)",
    uses_reals=False,
)
def inception_score(gen: Any, real: Any, settings: ISSettings,
                    options: ComputeOptions | None = None) -> dict[str, float]:
    """IS of generated logits (array [N, 1008] or an object with `.features`); `real` is ignored (None).

    Returns {"mean": IS, "std": population std over splits}; official result keys `is50k_mean`, `is50k_std`.
    """
    mean, std = inception_score_of_logits(feature_matrix(gen, "generated logits"), settings.num_splits)
    return {"mean": mean, "std": std}
