"""The sampling stage of generator-space metrics: a generator in, named numpy arrays out.

Feature metrics (FID, KID, P&R) see a generator only through its images. Generator-space metrics (perceptual path
length, linear separability) need the generator itself: its mapping and synthesis networks, interpolated latents,
its noise inputs. They are split in two (docs/architecture.md):

* a *sampler* (registered here under the metric's name) drives the generator and returns plain arrays, e.g. the
  PPL distances [N] or the separability latents, w and classifier logits;
* a pure *reduction* (registered in `sgeval.metrics.registry` with kind "generator") turns the arrays into numbers;
  tests feed it synthetic arrays.

The runner calls `sample_arrays`, which caches a sampler's output like features: the key holds the generator's
weights fingerprint, the metric settings, the sample count, the seed, the sampler's version and the identity of
every network the sampler uses (the image distance and its weights), so any change of those is a miss.

Samplers reach the generator only through the official interface (`z_dim, c_dim, w_dim, num_ws, img_resolution,
G.mapping(z, c, truncation_psi=...)`, `G.synthesis(ws, noise_mode=...)`, `noise_const` buffers), so an imported
official network is measured by the same code as an sgmodels one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sgeval.cache import FeatureCache, cache_key

if TYPE_CHECKING:
    import torch

    from sgeval.sources.interfaces import LatentGenerator

__all__ = ["SamplerContext", "SamplerSpec", "get_sampler", "register_sampler", "sample_arrays"]


@dataclasses.dataclass(frozen=True)
class SamplerContext:
    """Everything a sampler may use; nothing else changes its output."""

    G: LatentGenerator  # generator with the official interface (an nn.Module in eval mode, on `device`); samplers
    # that need a W space check it at run time
    settings: Any  # the protocol's frozen settings dataclass of this metric
    num_samples: int  # how many samples (PPL: pairs) to draw
    seed: int  # every random draw derives from it (and from the sample's index, never from the batch size)
    batch_size: int  # samples per generator call where the metric allows it (does not change the result)
    device: torch.device  # where the generator and the networks run
    networks: Mapping[str, Any]  # helper networks the sampler asked for, e.g. {"distance": ImageDistance}
    labels: np.ndarray | None = None  # label pool [M, c_dim] of a conditional generator (the reference's labels)
    progress: bool = False  # show a progress bar on stderr


SamplerFn = Callable[[SamplerContext], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    """One registered sampler."""

    metric: str  # the generator metric it feeds (registry name in sgeval.metrics.registry)
    fn: SamplerFn  # the sampler
    version: int  # bump when a change alters its arrays: old cache entries then miss
    networks: tuple[str, ...]  # helper networks it needs from the runner, e.g. ("distance",)


_SAMPLERS: dict[str, SamplerSpec] = {}


def register_sampler(metric: str, *, version: int, networks: tuple[str, ...] = ()) -> Callable[[SamplerFn], SamplerFn]:
    """Decorator registering the sampler of generator metric `metric`."""

    def decorate(fn: SamplerFn) -> SamplerFn:
        if metric in _SAMPLERS and _SAMPLERS[metric].fn is not fn:
            raise ValueError(f"a sampler for metric {metric!r} is already registered")
        _SAMPLERS[metric] = SamplerSpec(metric=metric, fn=fn, version=version, networks=tuple(networks))
        return fn

    return decorate


def _ensure_builtin_samplers() -> None:
    """Import every sampler module of this package (each registers its sampler)."""
    from sgeval.metrics.registry import import_submodules

    import_submodules("sgeval.samplers")


def get_sampler(metric: str) -> SamplerSpec:
    """The sampler of a generator metric; ValueError naming the registered ones otherwise."""
    _ensure_builtin_samplers()
    if metric not in _SAMPLERS:
        raise ValueError(f"no sampler for metric {metric!r}; samplers exist for {', '.join(sorted(_SAMPLERS))}")
    return _SAMPLERS[metric]


def _settings_dict(settings: Any) -> dict[str, Any] | None:
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return dataclasses.asdict(settings)
    return None


def _identity(network: Any) -> Any:
    identity = getattr(network, "identity", None)
    if not callable(identity):
        raise TypeError(f"{type(network).__name__} has no identity() to key the sampler cache with")
    return identity()


def sample_arrays(
    spec: SamplerSpec,
    context: SamplerContext,
    generator_fingerprint: str | None,  # sha256 of the generator weights; None: not cacheable (a bare callable)
    cache: FeatureCache | None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run a sampler, or read its output from the cache; returns (arrays, {"hit": bool | None, "key": str | None})."""
    fields = {
        "sampler": spec.metric,
        "sampler_version": spec.version,
        "generator": generator_fingerprint,
        "settings": _settings_dict(context.settings),
        "num_samples": context.num_samples,
        "seed": context.seed,
        "networks": {name: _identity(network) for name, network in sorted(context.networks.items())},
    }
    if cache is None or generator_fingerprint is None:
        return spec.fn(context), {"hit": None, "key": None}
    key = cache_key(fields)
    cached = cache.load_arrays(key)
    if cached is not None:
        return cached, {"hit": True, "key": key}
    arrays = spec.fn(context)
    cache.store_arrays(key, arrays, fields)
    return arrays, {"hit": False, "key": key}
