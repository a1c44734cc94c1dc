"""The evaluation runner: protocol names + a generator + real data -> MetricResult records (and JSONL lines).

`evaluate` runs one protocol, `evaluate_many` several, sharing extracted features between protocols that use the same
detector: FID and KID both read Inception features, so each side goes through the extractor once. What is shared:

* the extractor: built once per detector name (weights resolved once, sha256 recorded in every result);
* generated features: one extraction of the largest generated count any protocol of that detector asks for;
  generated item i depends only on (seed, i), so a smaller count is the prefix of the rows (one extraction per
  mixing of the generated images: `fid50k_full@mix2` mixes 2 latents per image, sgeval.sources.mixing);
* real features: one extraction per (detector, x-flip) of the largest real count asked for; the reals are the first
  items in dataset order (docs/metrics.md section 1.3), so a smaller count is again a prefix.

Rows are kept whenever a metric needs them (KID, precision/recall) or counts differ between protocols (prefixes are
cut from rows); otherwise only float64 moments are accumulated (FID alone: O(D^2) memory whatever N is). Every
extraction goes through `sgeval.extract.extract_features` and its content-hashed cache.

Re-use across calls: with a cache, every extraction keeps both the rows and the moments when the rows fit in
`CACHE_ROWS_MAX_BYTES`, so a later call over the same source and detector hits the same entry whatever its metric
needs (`sgeval fid X` then `sgeval kid X`, or `sgeval.fid` then `sgeval.kid`, extract once). A moments-only entry
(FID on more rows than the budget) cannot serve a metric that needs rows; that one extracts again.

Honest names: when the evaluated source has fewer items than a protocol asks (a folder of 200 images for a 50k
protocol), the result is named after the count actually used (`Protocol.with_counts`, e.g. `fid50k_full@gen200`)
and records the requested protocol in `extra["requested_protocol"]`. Real counts are caps ("at most"), so fewer
reals keep the name; `num_real` of every record is the count used.

Real data: `data` is an image folder, a dataset zip, a statistics `.npz`, or an ImageSource / StatisticsSource. When
`data` is None and the network is an sgmodels snapshot, the training set recorded in the snapshot metadata
(`metadata["training_set"]["path"]`, with its `xflip`) is used. Metrics of the generated side only (the Inception
Score, `is50k`) read no reals, so they need no reference. Results of a snapshot written by training (its
metadata records `kimg` or `training_options`) are appended to `<snapshot folder>/metric-<protocol>.jsonl`, the
run directory; `run_dir` names another folder, `run_dir=False` disables writing.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any, overload

from sgeval import helper_networks
from sgeval.cache import FeatureCache
from sgeval.featureset import FeatureSet
from sgeval.metrics.registry import DEFAULT_MEMORY_MIB, ComputeOptions, get_metric
from sgeval.options import EvaluationOptions
from sgeval.protocols import Protocol, resolve_protocol
from sgeval.results import MetricResult, record_results
from sgeval.sources.sides import (
    DataNotGivenError,
    EvaluatedNetwork,
    RealSides,
    mixed_network,
    network_file_of,
    open_evaluated_network,
    open_network_file,
    open_reals,
    recorded_training_set,
    snapshot_metadata_of,
)
from sgmodels.untrusted import memory_bytes

__all__ = ["DataNotGivenError", "capture_for_cache", "evaluate", "evaluate_many", "open_cache"]

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------------------------------------------
# Feature extraction shared between protocols


@dataclasses.dataclass
class _Extracted:
    """One extraction: the FeatureSet and how it was obtained."""

    features: FeatureSet
    seconds: float  # wall-clock time of the extraction call (near 0 on a cache hit)

    @property
    def cache_hit(self) -> bool | None:
        cache = self.features.meta.get("cache")
        return bool(cache.get("hit")) if isinstance(cache, dict) else None

    def prefix(self, count: int) -> FeatureSet:
        """The first `count` items (the whole set when it has exactly that many)."""
        if count == self.features.num_items:
            return self.features
        if self.features.features is None or self.features.num_items is None or count > self.features.num_items:
            raise RuntimeError(f"internal: cannot cut {count} items from {self.features!r}")  # guarded by _plan
        return FeatureSet.from_features(self.features.features[:count], meta=self.features.meta)


CACHE_ROWS_MAX_BYTES = 2**31  # with a cache, rows up to this size (float32) are kept for later calls' metrics


@dataclasses.dataclass
class _Request:
    """What one side of one detector must extract for a group of protocols."""

    counts: set[int | None] = dataclasses.field(default_factory=set)  # per-protocol counts (None: all items)
    need_rows: bool = False  # some metric needs every row

    def capture(self, cached: bool, rows_bytes: int | None) -> tuple[bool, bool]:
        """(capture_all, capture_mean_cov) for extract_features (see `capture_for_cache`)."""
        return capture_for_cache(self.need_rows or len(self.counts) > 1, cached, rows_bytes)  # prefixes need rows


def capture_for_cache(need_rows: bool, cached: bool, rows_bytes: int | None) -> tuple[bool, bool]:
    """(capture_all, capture_mean_cov) for `extract_features` of a call that needs rows or not.

    The float64 raw moments are always accumulated (they cost a [D, D] matrix), so FID comes from the same moments
    whatever else is computed and whether a cache is used: one route, one number (rows-only features would give the
    two-pass covariance, 2e-8 relative apart). Rows are kept when this call needs them and, with a cache, while
    `rows_bytes` (their float32 size) is within CACHE_ROWS_MAX_BYTES, so that the cache entry serves any later metric
    over the same source and detector with the same numbers.
    """
    if not cached:
        return need_rows, True
    fits = rows_bytes is not None and rows_bytes <= CACHE_ROWS_MAX_BYTES
    return need_rows or fits, True


def _check_rows_fit(request: _Request, feature_dim: int, group: list[Protocol]) -> None:
    """ValueError, before any extraction, when a metric needs every feature row and they cannot fit in memory."""
    counts = [count for count in request.counts if count is not None]
    if not (request.need_rows or len(request.counts) > 1) or not counts:
        return
    rows_bytes, memory = 4 * max(counts) * feature_dim, memory_bytes()
    if memory is not None and rows_bytes > memory:
        names = ", ".join(protocol.name for protocol in group)
        fitting = memory // (4 * feature_dim)
        raise ValueError(f"{names}: {max(counts):,} items x {feature_dim} float32 features are "
                         f"{rows_bytes / 2**30:,.1f} GiB of rows, which KID and precision/recall keep whole, more "
                         "than this machine's "
                         f"{memory / 2**30:,.1f} GiB of memory; use at most about {fitting:,} items (--num-gen, "
                         "--num-real)")


def _side_count(count: int | None, source: Any) -> int | None:
    """Items to use from a source: the protocol count capped by a finite source (None for statistics files)."""
    available = getattr(source, "num_items", None)
    if getattr(source, "kind", None) == "statistics":
        return None
    if available is None:
        if count is None:
            raise ValueError("a generator has no 'all items': give the number of generated images")
        return count
    return available if count is None else min(count, available)


def _extract(source: Any, extractor: Any, request: _Request, options: _RunOptions) -> _Extracted:
    from sgeval.extract import extract_features

    counts = [count for count in request.counts if count is not None]
    num_items = max(counts) if counts else getattr(source, "num_items", None)
    rows_bytes = None if num_items is None else 4 * int(num_items) * int(extractor.feature_dim)  # float32 rows
    cached = options.cache is not None and getattr(source, "kind", None) != "statistics"  # files hold what they hold
    capture_all, capture_mean_cov = request.capture(cached, rows_bytes)
    started = time.perf_counter()
    features = extract_features(source, extractor, num_items=max(counts) if counts else None,
                                batch_size=options.batch_size, device=options.device, seed=options.seed,
                                capture_all=capture_all, capture_mean_cov=capture_mean_cov, cache=options.cache,
                                progress=options.progress)
    return _Extracted(features, time.perf_counter() - started)


@dataclasses.dataclass(frozen=True)
class _RunOptions:
    """The run-time state every protocol of one call shares: the `EvaluationOptions` that reach the metric code,
    with the cache opened."""

    seed: int
    device: str
    batch_size: int
    cache: FeatureCache | None
    progress: bool
    classifiers: PathLike | None = None  # attribute classifier folder for linear separability
    precision: str = "fp32"  # feature-network arithmetic (sgeval.features.inference); reduced modes are opt-in
    memory_mib: float = DEFAULT_MEMORY_MIB  # working-memory budget of blocked pairwise distances (P&R, D&C)

    @classmethod
    def of(cls, options: EvaluationOptions) -> _RunOptions:
        return cls(seed=int(options.seed), device=str(options.device), batch_size=options.batch_size,
                   cache=open_cache(options.cache), progress=options.progress, classifiers=options.classifiers,
                   precision=options.precision, memory_mib=float(options.memory_mib))

    def compute_options(self) -> ComputeOptions:
        """The options a metric function gets (none of them changes a value beyond float round-off)."""
        return ComputeOptions(seed=self.seed, device=self.device, memory_mib=self.memory_mib)


def open_cache(cache: bool | FeatureCache | PathLike | None) -> FeatureCache | None:
    """The feature cache for a `cache` option: True = the project cache, False/None = none, or a folder."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return FeatureCache.default()
    if isinstance(cache, FeatureCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return FeatureCache(cache)
    raise TypeError(f"cache must be True, False, a FeatureCache or a folder, got {type(cache).__name__}")


# ---------------------------------------------------------------------------------------------------------------
# Public API


def evaluate_many(
    protocols: Sequence[str | Protocol],  # protocol names ("fid50k_full", "fid50k_full@gen1k") or Protocol objects
    network_or_source: Any,  # snapshot path, image folder/zip, generator object, or ImageSource
    data: Any = None,  # reference: folder/zip/.npz path or source; None = the snapshot's training set
    options: EvaluationOptions | None = None,  # counts, seed, device, cache, weights, ... (sgeval.options)
    **overrides: Any,  # fields of EvaluationOptions to replace, e.g. num_gen=1000, device="cuda"
) -> list[MetricResult]:
    """Evaluate several feature protocols on one network against one reference, sharing features per detector.

    Returns one MetricResult per protocol, in the given order, with values, counts actually used, seed,
    fingerprints, detector name and weights sha256, timing and versions (see the module docstring for data and
    run-directory rules).

    Raises:
        ValueError (incl. WeightsError, SnapshotError, DataNotGivenError): unknown protocol, missing or corrupt
            weights, unreadable data, no reference data, a statistics file as the evaluated source.
        TypeError: an object that is neither a source nor a generator.
    """
    if not protocols:
        raise ValueError("no protocols to evaluate")
    asked = (options or EvaluationOptions()).replaced(**overrides)
    resolved = [resolve_protocol(name, asked.num_gen, asked.num_real, asked.mix_latents) for name in protocols]
    run = _RunOptions.of(asked)
    snapshot = network_file_of(network_or_source)
    opened = None if snapshot is None else open_network_file(snapshot)  # described and loaded from one read
    metadata = {} if opened is None else snapshot_metadata_of(opened)
    reals = open_reals(data, snapshot, metadata, resolved)
    network = open_evaluated_network(network_or_source, run.device, snapshot, metadata, reals, asked.network_key,
                                     opened)
    data_xflip = asked.data_xflip
    if data_xflip is None:
        data_xflip = bool(recorded_training_set(metadata).get("xflip", False))
    # resolve_protocol rejects feature protocols without an extractor; the filter only tells the type checker
    detectors = {protocol.extractor for protocol in resolved if protocol.extractor is not None}
    # Every helper network is built (its file found, checked and loaded) before the first metric is computed, so a
    # missing or broken file for the last metric is an error at once, not after the first metrics' minutes of work.
    built = helper_networks.build_helper_networks(resolved, asked.detector_weights, run, asked.weights_dir,
                                                  asked.allow_download)
    extractors, helpers = built.extractors, built.sampler_networks
    results: dict[int, MetricResult] = {}  # by position in `resolved` (honest names may differ from the asked ones)
    try:
        for index, protocol in enumerate(resolved):
            if protocol.kind == "generator":
                results[index] = _evaluate_generator_metric(protocol, network, run, helpers[protocol.name])
        for detector in sorted(detectors):
            group = [(index, protocol) for index, protocol in enumerate(resolved)
                     if protocol.extractor == detector]
            group_results = _evaluate_group([protocol for _index, protocol in group], extractors[detector], network,
                                            reals, data_xflip, run)
            results.update(zip([index for index, _protocol in group], group_results, strict=True))
    except BaseException:  # a later metric failed (or Ctrl-C): the finished ones are still recorded
        record_results(asked.run_dir, network.snapshot, network.metadata,
                       [results[index] for index in sorted(results)])
        raise
    ordered = [results[index] for index in range(len(resolved))]
    record_results(asked.run_dir, network.snapshot, network.metadata, ordered)
    return ordered


@overload
def evaluate(protocol: str | Protocol, network_or_source: Any, data: Any = None, **kwargs: Any) -> MetricResult: ...


@overload
def evaluate(protocol: Sequence[str | Protocol], network_or_source: Any, data: Any = None,
             **kwargs: Any) -> list[MetricResult]: ...


def evaluate(
    protocol: str | Protocol | Sequence[str | Protocol],  # protocol name or object, or a list of them
    network_or_source: Any,  # snapshot path, image folder/zip, generator object, or ImageSource
    data: Any = None,  # reference; None = the snapshot's training set
    **kwargs: Any,  # every keyword option of `evaluate_many`
) -> MetricResult | list[MetricResult]:
    """Evaluate one protocol (a MetricResult), or a list of them (a list, sharing features as `evaluate_many`).

    See `evaluate_many` for the options, returns and errors.
    """
    if isinstance(protocol, (str, Protocol)):
        return evaluate_many([protocol], network_or_source, data, **kwargs)[0]
    return evaluate_many(list(protocol), network_or_source, data, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Internals of evaluate_many


def _evaluate_group(group: list[Protocol], extractor: Any, network: EvaluatedNetwork, reals: RealSides,
                    data_xflip: bool, options: _RunOptions) -> list[MetricResult]:
    """Extract each side once for all protocols of one detector, then run every metric (results in group order).

    Each mixing of the generated images (`Protocol.mix_latents`) is its own generated source; the reals are shared.
    """
    gen_requests: dict[int, _Request] = {}  # by mix_latents
    real_requests: dict[bool, _Request] = {}  # by real_xflip
    # protocol, real x-flip (None: the metric reads no reals), generated count, real count
    plan: list[tuple[Protocol, bool | None, int, int | None]] = []
    for protocol in group:
        spec = get_metric(protocol.metric)
        gen_count = _side_count(protocol.num_gen, network.source)
        if gen_count is None:  # _open_network rejects a statistics file as the evaluated source
            raise RuntimeError("internal: the evaluated source has no item count")
        gen_request = gen_requests.setdefault(protocol.mix_latents, _Request())
        gen_request.counts.add(gen_count)
        gen_request.need_rows |= spec.needs == "features"
        if not spec.uses_reals:
            plan.append((protocol, None, gen_count, None))
            continue
        xflip = protocol.real_xflip == "dataset" and data_xflip
        real_count = _side_count(protocol.num_real, reals.get(xflip))
        request = real_requests.setdefault(xflip, _Request())
        request.counts.add(real_count)
        request.need_rows |= spec.needs == "features"
        plan.append((protocol, xflip, gen_count, real_count))
    for request in [*gen_requests.values(), *real_requests.values()]:  # errors before any extraction
        _check_rows_fit(request, int(extractor.feature_dim), group)
    networks = {mix: mixed_network(network, mix) for mix in gen_requests}
    generated = {mix: _extract(networks[mix].source, extractor, request, options)
                 for mix, request in gen_requests.items()}
    real_sets = {xflip: _extract(reals.get(xflip), extractor, request, options)
                 for xflip, request in real_requests.items()}
    out = []
    for protocol, flip, gen_count, real_count in plan:
        real = None if flip is None else real_sets[flip]
        real_set = None
        if real is not None:
            real_set = real.features if real_count is None else real.prefix(real_count)
        mixed = generated[protocol.mix_latents]
        out.append(_run_metric(protocol, mixed.prefix(gen_count), real_set, extractor, networks[protocol.mix_latents],
                               None if flip is None else reals.get(flip), (mixed, real), options))
    return out


def _honest_protocol(protocol: Protocol, num_gen: int | None) -> Protocol:
    """`protocol`, or its variant named after the generated count actually used when the evaluated source had fewer
    items than the protocol asks (a 50k protocol over a folder of 200 images is `fid50k_full@gen200`).

    Only the generated count is exact in a protocol; its real count is a cap ("at most", in dataset order, as the
    official `max_real`), so fewer reals keep the official name and the record's `num_real` says how many were used.
    """
    if num_gen is None or num_gen >= protocol.num_gen:
        return protocol
    return protocol.with_counts(num_gen=num_gen, num_real=protocol.num_real)


def _with_precision(protocol: Protocol, precision: str) -> Protocol:
    """`protocol`, or for reduced-precision features an unofficial variant named `<name>+<precision>`, so that its
    numbers get their own results file and report column (`fid50k_full+bf16`)."""
    if precision == "fp32":
        return protocol
    return dataclasses.replace(protocol, name=f"{protocol.name}+{precision}", base=protocol.base_name, official=False)


def _run_metric(protocol: Protocol, gen: FeatureSet, real: FeatureSet | None, extractor: Any, network: EvaluatedNetwork,
                real_source: Any, extractions: tuple[_Extracted, _Extracted | None],
                options: _RunOptions) -> MetricResult:
    """One metric on extracted features -> its MetricResult (`real` None for metrics of the generated side only)."""
    spec = get_metric(protocol.metric)
    started = time.perf_counter()
    values = spec.fn(gen, real, protocol.settings, options.compute_options())
    metric_seconds = time.perf_counter() - started
    gen_extract, real_extract = extractions
    real_seconds = 0.0 if real_extract is None else real_extract.seconds
    kimg = network.metadata.get("kimg")
    honest = _with_precision(_honest_protocol(protocol, gen.num_items), extractor.precision)
    asked = {} if honest is protocol else {"requested_protocol": protocol.name}
    return MetricResult.from_protocol(
        honest,
        values,
        num_gen=gen.num_items,
        num_real=None if real is None else real.num_items,
        seed=options.seed,
        network_fingerprint=network.source.fingerprint(),
        data_fingerprint=None if real_source is None else real_source.fingerprint(),
        detector=extractor.name,
        detector_sha256=extractor.weights_sha256,
        snapshot=None if network.snapshot is None else str(network.snapshot),
        kimg=float(kimg) if isinstance(kimg, (int, float)) else None,
        total_time=gen_extract.seconds + real_seconds + metric_seconds,
        extra={
            **asked,
            **_caveats([extractor]),
            "detector": extractor.provenance(),
            "source": network.source.describe(),
            "labels": network.labels,
            "data": None if real_source is None else real_source.describe(),
            "device": options.device,
            "batch_size": options.batch_size,
            "cache_hit": {"generated": gen_extract.cache_hit,
                          "real": None if real_extract is None else real_extract.cache_hit},
            "timing_s": {"extract_generated": round(gen_extract.seconds, 3), "extract_real": round(real_seconds, 3),
                         "metric": round(metric_seconds, 3)},
        },
    )


def _evaluate_generator_metric(protocol: Protocol, network: EvaluatedNetwork, options: _RunOptions,
                               helpers: dict[str, Any]) -> MetricResult:
    """A generator-space protocol: the sampler stage (cached like features), then the metric's pure reduction, with
    the helper networks of `helper_networks.build_sampler_networks`."""
    from sgeval.samplers import SamplerContext, get_sampler, sample_arrays

    source = network.source
    G = getattr(source, "G", None)
    if G is None:
        raise ValueError(f"{protocol.name} is a generator-space metric: it needs the generator itself (a snapshot or "
                         f"a generator object), not {source.describe().get('path', type(source).__name__)}")
    spec = get_sampler(protocol.metric)
    source.prepare(_torch_device(options.device))  # refuses NaN weights, moves G
    context = SamplerContext(G=G, settings=protocol.settings, num_samples=protocol.num_gen, seed=options.seed,
                             batch_size=options.batch_size, device=_torch_device(options.device), networks=helpers,
                             labels=getattr(source, "label_pool", None), progress=options.progress)
    started = time.perf_counter()
    arrays, cache_info = sample_arrays(spec, context, source.fingerprint(), options.cache)
    sampled = time.perf_counter() - started
    values = get_metric(protocol.metric).fn(arrays, protocol.settings, options.compute_options())
    identities = {name: helper.identity() for name, helper in helpers.items()}  # the sampler's one helper network
    identity = next(iter(identities.values()), None)
    kimg = network.metadata.get("kimg")
    return MetricResult.from_protocol(
        protocol, values, num_gen=protocol.num_gen, num_real=None, seed=options.seed,
        network_fingerprint=source.fingerprint(), data_fingerprint=None,
        detector=protocol.detector, detector_sha256=None if identity is None else identity.get("weights_sha256"),
        snapshot=None if network.snapshot is None else str(network.snapshot),
        kimg=float(kimg) if isinstance(kimg, (int, float)) else None,
        total_time=time.perf_counter() - started,
        extra={"distance": None, **identities, **_caveats(helpers.values()), "source": source.describe(),
               "labels": network.labels, "device": options.device, "cache_hit": {"samples": cache_info["hit"]},
               "timing_s": {"sample": round(sampled, 3), "metric": round(time.perf_counter() - started - sampled, 3)}},
    )


def _caveats(measuring: Iterable[Any]) -> dict[str, list[str]]:
    """{"caveats": [...]} from the extractors, distances and classifiers a result was measured with, or {} when
    none has one (a record names what may make its number untrustworthy, e.g. a detector that failed its check)."""
    found = [caveat for thing in measuring for caveat in getattr(thing, "caveats", list)()]
    return {"caveats": found} if found else {}


def _torch_device(device: str) -> Any:
    import torch

    return torch.device(device)
