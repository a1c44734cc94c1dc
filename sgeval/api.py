"""One call per metric for the common case: `sgeval.fid(source, reference)` and friends.

These are thin wrappers of `sgeval.runner.evaluate` that return the numbers instead of the full record (use
`sgeval.evaluate` for the `MetricResult`, with counts, fingerprints, detector checksum and timing):

    import sgeval
    fid = sgeval.fid("generated/", "ffhq.zip", num_gen=10_000)      # float
    kid = sgeval.kid("generated/", "ffhq.zip")                       # {"kid": ..., "kid_std": ...}
    pr = sgeval.precision_recall("G.safetensors", "ffhq.zip")        # {"precision": ..., "recall": ...}
    score = sgeval.inception_score("generated/")                      # {"mean": ..., "std": ...}

Sources and references are what the CLI accepts: an sgmodels snapshot, an image folder, a dataset zip, a generator
object with the official interface (`G(z, c)`), an `ImageSource`; the reference may also be a statistics `.npz`.
Features go through the project's feature cache, so a second metric over the same source and detector (`fid` then
`kid`) extracts nothing again.
"""

from __future__ import annotations

from typing import Any

from sgeval.protocols import Protocol
from sgeval.results import MetricResult

__all__ = ["fid", "inception_score", "kid", "precision_recall"]


def _evaluate_family(metrics: tuple[str, ...], protocol: str | Protocol, source: Any, reference: Any,
                     options: dict[str, Any]) -> MetricResult:
    """Evaluate one protocol after checking that it computes one of `metrics` (e.g. FID for `sgeval.fid`)."""
    from sgeval.protocols import resolve_protocol
    from sgeval.runner import evaluate

    resolved = resolve_protocol(protocol)
    if resolved.metric not in metrics:
        raise ValueError(f"protocol {resolved.name!r} computes {resolved.metric}, not {' or '.join(metrics)}")
    return evaluate(resolved, source, reference, **options)


def fid(
    source: Any,  # generated side: snapshot path, image folder/zip, generator object or ImageSource
    reference: Any = None,  # reals: image folder/zip, statistics .npz or source; None = the snapshot's training set
    *,
    protocol: str | Protocol = "fid50k_full",  # fid50k_full (covariance / N) or fid50k (/ N-1, the TF papers)
    num_gen: int | None = None,  # generated images instead of the protocol's 50k (a recorded quick variant)
    num_real: int | None = None,  # at most this many reals instead of the protocol's
    **options: Any,  # seed, device, batch_size, cache, weights_dir, detector_weights, allow_download, run_dir,
    # mix_latents (K latents mixed per generated image, StyleGAN Table 2: protocol fid50k_full@mix<K>), ...
) -> float:
    """Fréchet Inception Distance between `source` and `reference` (pool3 features of the TF Inception).

    Returns:
        FID, a float >= 0 in squared feature units (lower is better).

    Raises:
        ValueError: unknown or non-FID protocol, missing weights, unreadable data (see `sgeval.evaluate_many`).
    """
    result = _evaluate_family(("fid",), protocol, source, reference,
                              {"num_gen": num_gen, "num_real": num_real, **options})
    return result.values["fid"]


def kid(
    source: Any,  # generated side (see `fid`)
    reference: Any = None,  # reals; statistics files need stored feature rows for KID
    *,
    protocol: str | Protocol = "kid50k_full",  # kid50k_full or kid50k
    num_gen: int | None = None,  # generated images instead of 50k
    num_real: int | None = None,  # at most this many reals
    **options: Any,  # as `fid`; `seed` also seeds the subsets
) -> dict[str, float]:
    """Kernel Inception Distance: unbiased MMD^2 under the cubic kernel, over 100 random subsets of 1000.

    Returns:
        {"kid": mean, "kid_std": population std over subsets}, unscaled (multiply by 1e3 for the usual tables).
        Fewer than 1000 images on a side warns (`SmallKIDSubsetWarning`): the subsets shrink.
    """
    result = _evaluate_family(("kid",), protocol, source, reference,
                              {"num_gen": num_gen, "num_real": num_real, **options})
    return dict(result.values)


def precision_recall(
    source: Any,  # generated side (see `fid`)
    reference: Any = None,  # reals (image folder/zip or source)
    *,
    protocol: str | Protocol = "pr50k3_full",  # pr50k3_full, pr50k3, or prdc50k5 (adds density and coverage)
    num_gen: int | None = None,  # generated images instead of 50k
    num_real: int | None = None,  # at most this many reals
    **options: Any,  # as `fid`
) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) on VGG16 fc2 features, k = 3.

    Returns:
        {"precision": p, "recall": r}, fractions in [0, 1] (higher is better); prdc50k5 adds density and coverage.
    """
    result = _evaluate_family(("pr", "prdc"), protocol, source, reference,
                              {"num_gen": num_gen, "num_real": num_real, **options})
    return dict(result.values)


def inception_score(
    source: Any,  # generated side (see `fid`); no reference is needed
    *,
    protocol: str | Protocol = "is50k",  # 50k generated images, 10 splits
    num_gen: int | None = None,  # generated images instead of 50k
    **options: Any,  # as `fid`; `data` gives the label pool of a class-conditional generator
) -> dict[str, float]:
    """Inception Score: exp(mean KL(p(y|x) || p(y))) of the TF Inception's softmax (1008 classes, no output bias),
    over 10 consecutive splits of the generated images.

    Returns:
        {"mean": IS, "std": population std over splits}; IS lies in [1, 1008] (higher is better).
    """
    data = options.pop("data", None)
    result = _evaluate_family(("is",), protocol, source, data, {"num_gen": num_gen, **options})
    return dict(result.values)
