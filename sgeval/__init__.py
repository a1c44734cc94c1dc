"""Metrics for StyleGAN-family generators: FID, KID, precision/recall, PPL, separability, projection.

The public API is exported lazily (importing `sgeval` imports neither torch nor the networks):

    import sgeval
    value = sgeval.fid("generated/", "ffhq.zip")       # one number (also kid, precision_recall, inception_score)
    result = sgeval.evaluate("fid50k_full", "runs/00000/network-snapshot-000500.safetensors", num_gen=5000)
    results = sgeval.evaluate(["fid50k_full", "kid50k_full"], "generated/", "ffhq.zip")  # features shared
    quick = sgeval.EvaluationOptions(num_gen=1000, device="cuda")                   # one options object
    results = sgeval.evaluate_many(["fid50k_full", "pr50k3_full"], "G.safetensors", None, quick, seed=1)
    table = sgeval.load_results("runs/00000")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "fid": "sgeval.api",
    "kid": "sgeval.api",
    "inception_score": "sgeval.api",
    "precision_recall": "sgeval.api",
    "evaluate": "sgeval.runner",
    "evaluate_many": "sgeval.runner",
    "resolve_protocol": "sgeval.runner",
    "EvaluationOptions": "sgeval.options",
    "MetricResult": "sgeval.results",
    "read_results": "sgeval.results",
    "load_results": "sgeval.report",
    "Protocol": "sgeval.protocols",
    "get_protocol": "sgeval.protocols",
    "list_protocols": "sgeval.protocols",
    "FeatureCache": "sgeval.cache",
    "FeatureSet": "sgeval.featureset",
    "extract_features": "sgeval.extract",
    "build_extractor": "sgeval.features.registry",
    "open_source": "sgeval.sources",
    "GeneratorSource": "sgeval.sources",
    "CallableSource": "sgeval.sources",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sgeval' has no attribute {name!r}")
