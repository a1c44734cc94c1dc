"""Metric math: pure functions of feature arrays, registered by name (see `registry`).

Names are exported lazily so that importing the registry (e.g. for `sgeval list` or a report) does not import torch,
which only the blocked k-NN metrics need. The function `precision_recall` lives in
`sgeval.metrics.precision_recall` (the submodule of the same name would shadow a package-level export).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ComputeOptions": "registry",
    "MetricSpec": "registry",
    "get_metric": "registry",
    "list_metrics": "registry",
    "register_metric": "registry",
    "FIDSettings": "fid",
    "FrechetReference": "fid",
    "SingularCovarianceWarning": "fid",
    "frechet_distance": "fid",
    "trace_sqrt_product": "fid",
    "ISSettings": "inception_score",
    "inception_score_of_logits": "inception_score",
    "KIDResult": "kid",
    "KIDSettings": "kid",
    "SmallKIDSubsetWarning": "kid",
    "kernel_inception_distance": "kid",
    "DensityCoverage": "precision_recall",
    "DensityCoverageSettings": "precision_recall",
    "PrecisionRecall": "precision_recall",
    "PrecisionRecallSettings": "precision_recall",
    "density_coverage": "precision_recall",
    "knn_radii": "precision_recall",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"sgeval.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'sgeval.metrics' has no attribute {name!r}")
