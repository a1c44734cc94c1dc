"""Registry of metric functions: one entry per metric, with the metadata the CLI, reports and runner need.

A *metric* here is the math (`fid`, `kid`, `pr`, `prdc`, `is`); a *protocol* (`sgeval.protocols`) fixes its settings and
sample counts under an official name such as `fid50k_full`. Metrics of kind "feature" are pure functions

    fn(gen, real, settings, options) -> dict[str, float]

of two feature sets (numpy arrays [N, D] or FeatureSet-like objects, see `feature_matrix`), the metric's frozen
settings dataclass, and `ComputeOptions` (seed, device, block size: things that must not change the value beyond
sampling noise). Metrics of kind "generator" (PPL, linear separability, projection) are reductions of arrays
produced by a sampler stage; they register here too, with their own call convention documented by the module that
defines them.

Adding a metric: write `sgeval/metrics/<name>.py` with its pure function under `@register_metric(...)` (found by
`import_submodules`, listed nowhere else), and register its protocols in `sgeval/protocols.py`. A generator-space
metric also needs its sampler module in `sgeval/samplers/` (`@register_sampler`, found the same way).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

__all__ = [
    "DEFAULT_MEMORY_MIB",
    "ComputeOptions",
    "MetricSpec",
    "feature_matrix",
    "get_metric",
    "import_submodules",
    "list_metrics",
    "register_metric",
]

MetricKind = Literal["feature", "generator"]
FeatureNeed = Literal["features", "statistics", "none"]
MetricFn = Callable[..., dict[str, float]]


DEFAULT_MEMORY_MIB = 1024.0  # ComputeOptions.memory_mib: 10,000-row blocks at D = 4096 in float32


@dataclasses.dataclass(frozen=True)
class ComputeOptions:
    """Run-time options of a metric computation; none of them is part of a protocol.

    The seed changes the value only through sampling (KID subsets); device and block size never change it
    beyond float round-off (tests check block-size independence).
    """

    seed: int = 0  # seed of numpy's default_rng for metrics that sample (KID subsets)
    device: str = "cpu"  # torch device for blocked pairwise distances ("cpu", "cuda", "cuda:1")
    block_size: int = 10_000  # rows and columns per pairwise-distance block (P&R, density/coverage), at most
    memory_mib: float = DEFAULT_MEMORY_MIB  # working-memory budget of the blocked distance passes beyond the
    # inputs; caps the block size (sgeval.metrics.precision_recall.plan_blocks)

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be a positive number of rows, got {self.block_size}")
        if not self.memory_mib > 0:
            raise ValueError(f"memory_mib must be a positive number of MiB, got {self.memory_mib}")


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """Metadata of one registered metric."""

    name: str  # registry key, e.g. "fid"
    fn: MetricFn  # the function (call convention in the module docstring)
    kind: MetricKind  # "feature": pure function of two feature sets; "generator": needs a sampler stage
    higher_is_better: bool  # direction of the primary value (or of all values when primary is None)
    needs: FeatureNeed  # "features": all rows [N, D]; "statistics": float64 mean/cov suffice; "none"
    value_keys: tuple[str, ...]  # keys of the dict the function returns, e.g. ("precision", "recall")
    primary: str | None  # the headline value key ("fid"), or None when all values are equally primary
    settings_type: type | None  # frozen dataclass holding the metric's protocol settings
    description: str  # one line for `sgeval list`
    uses_reals: bool = True  # False: a function of the generated side only (IS); it is called with real=None


_METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str,
    *,
    kind: MetricKind,
    higher_is_better: bool,
    needs: FeatureNeed,
    value_keys: tuple[str, ...],
    primary: str | None,
    settings_type: type | None,
    description: str,
    uses_reals: bool = True,
) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering a metric function under `name` (see the module docstring for the signature)."""
    if primary is not None and primary not in value_keys:
        raise ValueError(f"metric {name!r}: primary value {primary!r} is not one of value_keys {value_keys}")
    if settings_type is not None and not dataclasses.is_dataclass(settings_type):
        raise TypeError(f"metric {name!r}: settings_type must be a dataclass, got {settings_type!r}")

    def decorate(fn: MetricFn) -> MetricFn:
        if name in _METRICS and _METRICS[name].fn is not fn:
            raise ValueError(f"metric name {name!r} registered twice ({_METRICS[name].fn} and {fn})")
        _METRICS[name] = MetricSpec(
            name=name,
            fn=fn,
            kind=kind,
            higher_is_better=higher_is_better,
            needs=needs,
            value_keys=tuple(value_keys),
            primary=primary,
            settings_type=settings_type,
            description=description,
            uses_reals=uses_reals,
        )
        return fn

    return decorate


def import_submodules(package: str) -> None:
    """Import every module of `package` (once; Python caches them), so each registers what it defines: a new metric
    or sampler module is found without being listed anywhere."""
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not module.name.startswith("_") and module.name != "registry":
            importlib.import_module(f"{package}.{module.name}")


def _ensure_builtin_metrics() -> None:
    """Import the modules that register the built-in metrics (on first use, so this module imports no torch)."""
    import_submodules("sgeval.metrics")


def list_metrics() -> list[MetricSpec]:
    """All registered metrics, sorted by name."""
    _ensure_builtin_metrics()
    return [_METRICS[name] for name in sorted(_METRICS)]


def get_metric(name: str) -> MetricSpec:
    """The metric registered as `name`; an unknown name raises ValueError listing the valid ones."""
    _ensure_builtin_metrics()
    if name not in _METRICS:
        raise ValueError(f"unknown metric {name!r}; valid metrics: {', '.join(sorted(_METRICS))}")
    return _METRICS[name]


def feature_matrix(features: Any, what: str = "features") -> np.ndarray:
    """All feature rows of a feature set as a 2-D floating array, validated.

    Args:
        features: a numpy array [N, D] (or anything `np.asarray` accepts, e.g. a CPU torch tensor), or an object
            with a `.features` attribute holding one (a FeatureSet kept with all rows).
        what: name used in error messages ("generated features", "real features").

    Returns:
        The array [N, D], float32 or float64 as given (integers are converted to float64). Not copied when
        already floating.
    """
    array = getattr(features, "features", features)
    if array is None:
        raise ValueError(
            f"{what}: this metric needs every feature row, but the feature set holds only mean/covariance; "
            "extract it again keeping all features"
        )
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array [N, D], got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{what}: empty feature array of shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise TypeError(f"{what}: expected real numbers, got dtype {array.dtype}")
        array = array.astype(np.float64)
    # Chunked so that the check of a 200k x 4096 set never allocates a full boolean copy.
    for start in range(0, array.shape[0], 8192):
        if not np.isfinite(array[start : start + 8192]).all():
            raise ValueError(f"{what}: contains NaN or infinite values (rows {start}..{start + 8191})")
    return array


def check_same_dim(gen: np.ndarray, real: np.ndarray) -> None:
    """Raise ValueError unless generated and real features have the same dimension D."""
    if gen.shape[1] != real.shape[1]:
        raise ValueError(
            f"generated and real features differ in dimension ({gen.shape[1]} vs {real.shape[1]}): "
            "were they extracted with the same detector and layer?"
        )
