"""The metric hook that sgmodels training calls after each snapshot (entry point group `sgmodels.metric_hooks`).

sgmodels never imports sgeval: it finds this function through the entry point

    [project.entry-points."sgmodels.metric_hooks"]
    sgeval = "sgeval.training_hook:metric_hook"

and calls it on rank 0 as `hook(run_dir=..., snapshot_path=..., metrics=[...], training_set={...}, device=...)`
(sgmodels/training/loop.py `evaluate_snapshot`). Before training starts it calls `metric_hook.validate_metrics(names)`
so that a misspelt protocol fails at once instead of after the first snapshot.

Metric names are protocol names: official ones (`fid50k_full`, `kid50k_full`, `pr50k3_full`) or quick variants
written with their counts (`fid50k_full@gen1k-real2k`), which keep a cheap per-snapshot metric apart from the
official file. Detector weights are looked up as everywhere in sgeval (`SGEVAL_WEIGHTS_DIR`, the project cache, the
torch hub cache, ...); set `SGEVAL_DETECTOR_WEIGHTS` to a file to force one (a test or custom network).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sgeval.results import MetricResult

__all__ = ["metric_hook", "validate_metrics"]

DETECTOR_WEIGHTS_ENV = "SGEVAL_DETECTOR_WEIGHTS"


def validate_metrics(metrics: Sequence[str]) -> None:
    """Check before training starts that every snapshot can be evaluated: known protocols, and the weights of each
    detector they use found and loadable (a missing file is the usual weights error naming file, checksum and
    where to put it), so a run does not train for hours and then fail at every snapshot.

    Raises:
        ValueError: unknown protocol (lists the valid ones), missing, corrupt or wrong-architecture weights.
    """
    from sgeval.features.registry import build_extractor
    from sgeval.protocols import resolve_protocol

    detectors = {resolve_protocol(name).detector for name in metrics}
    explicit = os.environ.get(DETECTOR_WEIGHTS_ENV) or None
    for detector in sorted(name for name in detectors if name is not None):
        build_extractor(detector, weights_path=explicit, device="cpu")  # resolve, verify and load once, then drop


def metric_hook(
    run_dir: str | os.PathLike[str],  # the training run directory; results go to run_dir/metric-<protocol>.jsonl
    snapshot_path: str | os.PathLike[str],  # the snapshot just written (.safetensors)
    metrics: Sequence[str],  # protocol names, e.g. ["fid50k_full"]
    training_set: Mapping[str, Any],  # sgmodels' dataset description: {"path", "xflip", "resolution", ...}
    device: Any = "cpu",  # torch.device or string of the training process
) -> list[MetricResult]:
    """Evaluate each protocol on the snapshot's generator against the training set; append JSONL lines to run_dir.

    Features of one detector are shared between its protocols (FID and KID extract Inception features once per
    side); real features come from the feature cache after the first snapshot. Returns the results.

    Raises:
        ValueError: no training-set path, unknown protocol, missing detector weights, unreadable data.
    """
    from sgeval.runner import evaluate_many

    if not metrics:
        return []
    data = training_set.get("path") if isinstance(training_set, Mapping) else None
    if not data:
        raise ValueError(f"the metric hook needs the training set path, got training_set={dict(training_set or {})}")
    return evaluate_many(
        list(metrics),
        Path(snapshot_path),
        data,
        device=str(device),
        run_dir=Path(run_dir),
        data_xflip=bool(training_set.get("xflip", False)),
        detector_weights=os.environ.get(DETECTOR_WEIGHTS_ENV) or None,
        progress=False,
    )


metric_hook.validate_metrics = validate_metrics  # type: ignore[attr-defined]  # sgmodels calls it before training
