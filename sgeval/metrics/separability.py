"""Linear separability: the pure reduction of latents and classifier logits (the sampler is
`sgeval.samplers.separability`).

Karras et al., "A Style-Based Generator Architecture for GANs" (2019), section 4.2; reference implementation
NVIDIA's TF `metrics/linear_separability.py` (StyleGAN and StyleGAN2; stylegan2-ada-pytorch has none), the steps
of docs/metrics.md section 10. Per attribute and per space (z, w):

1. keep the most confident `keep_fraction` of the samples (official: 100k of 200k), confidence = the larger of
   softmax([l, -l]) = sigmoid(2 |l|); a stable sort, so equal confidences keep the lower sample index first, as the
   official Python `sorted` does. Confidences are float64 here; NVIDIA's float32 softmax saturates to 1 for
   |l| above about 8, where it keeps the lower indices among all saturated samples instead (which of those i.i.d.
   samples are kept does not change the expected value);
2. Y = the classifier's decision, l >= 0 (the official argmax of [l, -l] takes the first of two equal values);
3. X = the prediction of `sklearn.svm.LinearSVC` fitted on the kept points and evaluated on the same points (no
   held-out split, as the official code). Library defaults (squared hinge, C = 1, tol 1e-4, max_iter 1000), with
   `dual=True` passed explicitly: the default of scikit-learn at the time of the reference code (<= 1.2), which
   became "auto" (primal for more samples than features) in 1.5. `random_state` is fixed from the seed (liblinear
   shuffles the dual coordinates; the official code left it to numpy's global state). Any exception of the fit
   (e.g. one class only) makes X := Y, as the official code does. Non-convergence only warns;
4. H(Y|X) in bits from the 2x2 joint frequency table, clamped >= 0;
5. score = 2^(sum of the bits over the attributes). The paper writes exp(sum H): the same number only with H in nats.

Values (attribute names from the classifier set, passed by the sampler as `attribute_names`; `attrNN` when the
arrays hold none):

* `z`, `w` (official names `ls_z`, `ls_w`): the official 2^(sum of bits over all scored attributes);
* per attribute, keyed `<stat>.<name>`: `z_h.<name>`, `w_h.<name>` (H(Y|X) in bits), `pos.<name>` and `neg.<name>`
  (kept samples whose decision is positive / negative; the kept set depends on the logits only, so it is the same
  for z and w);
* `num_measured`: the attributes with both decisions among their kept samples. An attribute whose kept samples all
  share one decision (the classifier never, or always, finds it on generated images) is counted as 0 bits, as the
  official code does (the SVM fit fails and X := Y), although nothing was measured;
* `z_measured`, `w_measured` = 2^(A * mean bits over the M measured attributes) = 2^((A / M) * sum of their bits):
  LS with the constant attributes replaced by the average of the measured ones, on the scale of `z` / `w` (equal
  to them when every attribute was measured). Dropping the constant ones from the official sum would change nothing
  (they add exactly 0 bits), so that value would not say anything new. NaN when no attribute was measured.

A generator without a mapping network has no W (the paper uses z for such "traditional" generators): the sampler
then returns w with 0 columns and `w`, `w_measured` and the `w_h.<name>` are NaN.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping

import numpy as np

from sgeval.metrics.registry import ComputeOptions, register_metric

__all__ = ["LSSettings", "attribute_names", "conditional_entropy_bits", "confident_indices", "fit_predict",
           "kept_decisions", "linear_separability", "measured_score", "separability_entropies"]


@dataclasses.dataclass(frozen=True)
class LSSettings:
    """Settings of the linear separability protocol (docs/metrics.md section 10); the sample count is the
    protocol's `num_gen` (official 200,000)."""

    keep_fraction: float = 0.5  # most confident fraction kept per attribute (official: 100k of 200k)
    attributes: tuple[int, ...] | None = None  # classifier attribute indices to score; None: all (official 0..39)

    def __post_init__(self) -> None:
        if not 0 < self.keep_fraction <= 1:
            raise ValueError(f"LS keep_fraction must lie in (0, 1], got {self.keep_fraction}")
        chosen = self.attributes
        if chosen is not None and (not chosen or len(set(chosen)) != len(chosen) or min(chosen) < 0):
            raise ValueError(f"LS attributes must be distinct indices >= 0, got {chosen}")


def confident_indices(logits: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the `keep` most confident samples of one attribute's logits [N] (confidence sigmoid(2|l|)),
    most confident first; equal confidences in increasing index order (stable sort)."""
    confidence = 1.0 / (1.0 + np.exp(-2.0 * np.abs(logits.astype(np.float64))))  # [N] = max softmax([l, -l])
    return np.argsort(-confidence, kind="stable")[:keep]


def conditional_entropy_bits(predictions: np.ndarray, targets: np.ndarray) -> float:
    """H(Y|X) in bits of binary targets Y given binary predictions X (both [N]) from their 2x2 frequency table,
    clamped >= 0 (0 log 0 = 0)."""
    x, y = np.asarray(predictions).astype(bool), np.asarray(targets).astype(bool)
    joint = np.array([[np.mean((x == a) & (y == b)) for b in (False, True)] for a in (False, True)])  # p(x, y)
    marginal = joint.sum(axis=1, keepdims=True)  # p(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint / marginal), 0.0)
    return max(0.0, float(-terms.sum()))


def fit_predict(inputs: np.ndarray, targets: np.ndarray, seed: int) -> np.ndarray:
    """LinearSVC predictions on its own training points (X of the reference); the targets when the fit fails."""
    from sklearn.svm import LinearSVC

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter=1000 convergence warnings are expected (docs/metrics.md 10)
            svm = LinearSVC(dual=True, random_state=seed)
            svm.fit(inputs, targets)
            return np.asarray(svm.predict(inputs))
    except Exception:  # the reference's bare except: e.g. a single class among the kept points
        return targets


def kept_decisions(logits: np.ndarray, keep: int, attributes: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per scored attribute, (kept sample indices [keep], their decisions Y = l >= 0 bool [keep]) of logits [N, A]:
    the same for z and w, since they depend on the logits only."""
    kept = [confident_indices(logits[:, attribute], keep) for attribute in attributes]
    return [(indices, logits[indices, attribute] >= 0) for indices, attribute in zip(kept, attributes, strict=True)]


def separability_entropies(inputs: np.ndarray, decisions: list[tuple[np.ndarray, np.ndarray]],
                           seed: int) -> np.ndarray:
    """H(Y|X) in bits [len(decisions)] of latents `inputs` [N, D] (float), one per (kept indices, targets) pair of
    `kept_decisions`."""
    entropies = []
    for kept, targets in decisions:
        predictions = fit_predict(inputs[kept].astype(np.float64), targets, seed)
        entropies.append(conditional_entropy_bits(predictions, targets))
    return np.asarray(entropies, dtype=np.float64)


def attribute_names(arrays: Mapping[str, np.ndarray], count: int) -> list[str]:
    """The `count` attribute names of the sampler's `attribute_names` array (unicode [A]); `attrNN` when the arrays
    hold none (direct calls on bare arrays). Empty names become `attrNN` and repeated ones get `#NN` appended, so the
    value keys stay distinct."""
    if "attribute_names" not in arrays:
        return [f"attr{index:02d}" for index in range(count)]
    given = np.asarray(arrays["attribute_names"])
    if given.dtype.kind != "U" or given.shape != (count,):
        raise ValueError(f"LS attribute_names must be a unicode array [{count}] (one name per logit), got "
                         f"{given.dtype} {given.shape}")
    names: list[str] = []
    for index, name in enumerate(str(name).strip() for name in given):
        name = name or f"attr{index:02d}"
        names.append(f"{name}#{index:02d}" if name in names else name)
    return names


def measured_score(entropies: np.ndarray, measured: np.ndarray) -> float:
    """2^(A * mean bits over the measured attributes) of entropies [A] and a bool mask [A]; NaN when none is
    measured (or the entropies are NaN: no W space)."""
    if not measured.any():
        return math.nan
    return float(2.0 ** (len(entropies) * entropies[measured].mean()))


def _checked(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, w, logits = (np.asarray(arrays[key]) for key in ("z", "w", "logits"))
    n = logits.shape[0] if logits.ndim == 2 else -1
    if z.ndim != 2 or w.ndim != 2 or n < 1 or z.shape[0] != n or w.shape[0] != n:
        raise ValueError(f"LS needs z [N, z_dim], w [N, w_dim] and logits [N, A] with one N >= 1, got shapes "
                         f"{z.shape}, {w.shape}, {logits.shape}")
    for name, array in (("z", z), ("w", w), ("logits", logits)):
        if not np.isfinite(array).all():
            raise ValueError(f"LS {name} contain NaN or infinite values: the generator or the classifiers produced "
                             "non-finite output")
    return z, w, logits


@register_metric(
    "ls",
    kind="generator",
    higher_is_better=False,
    needs="none",
    value_keys=("z", "w"),  # the headline values; num_measured, z/w_measured and the per-attribute ones: details
    primary=None,
    settings_type=LSSettings,
    description="Linear separability (Karras et al. 2019): 2^(sum of H(Y|X) bits) of linear SVMs on z and on w",
    uses_reals=False,
)
def linear_separability(arrays: Mapping[str, np.ndarray], settings: LSSettings,
                        options: ComputeOptions) -> dict[str, float]:
    """LS in z and w from the sampler's arrays: z [N, z_dim], w [N, w_dim] (0 columns: no W space), logits [N, A],
    optionally attribute_names unicode [A].

    Returns {"z", "w", "num_measured", "z_measured", "w_measured"} and, per scored attribute <name>,
    "z_h.<name>", "w_h.<name>" (bits), "pos.<name>", "neg.<name>" (kept samples per decision); see the module
    docstring.
    """
    z, w, logits = _checked(arrays)
    names = attribute_names(arrays, logits.shape[1])
    attributes = settings.attributes or tuple(range(logits.shape[1]))
    if max(attributes) >= logits.shape[1]:
        raise ValueError(f"LS attributes {attributes} out of range: the classifiers have {logits.shape[1]}")
    keep = max(1, int(logits.shape[0] * settings.keep_fraction))
    decisions = kept_decisions(logits, keep, attributes)
    positives = np.array([int(targets.sum()) for _kept, targets in decisions])  # [len(attributes)]
    negatives = keep - positives
    measured = (positives > 0) & (negatives > 0)  # both decisions among the kept samples
    scored = [names[index] for index in attributes]
    values: dict[str, float] = {}
    per_attribute: dict[str, float] = {}
    for space, inputs in (("z", z), ("w", w)):
        if inputs.shape[1] == 0:  # no mapping network: W does not exist
            entropies = np.full(len(attributes), np.nan)
        else:
            entropies = separability_entropies(inputs, decisions, options.seed)
        values[space] = float(2.0 ** entropies.sum())
        values[f"{space}_measured"] = measured_score(entropies, measured)
        per_attribute |= {f"{space}_h.{name}": float(h) for name, h in zip(scored, entropies, strict=True)}
    values["num_measured"] = float(measured.sum())
    per_attribute |= {f"pos.{name}": float(count) for name, count in zip(scored, positives, strict=True)}
    per_attribute |= {f"neg.{name}": float(count) for name, count in zip(scored, negatives, strict=True)}
    return {key: values[key] for key in ("z", "w", "num_measured", "z_measured", "w_measured")} | per_attribute
