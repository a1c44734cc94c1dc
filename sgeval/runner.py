"""The evaluation runner: protocol names + a generator + real data -> MetricResult records (and JSONL lines).

`evaluate` runs one protocol, `evaluate_many` several, sharing extracted features between protocols that use the same
detector: FID and KID both read Inception features, so each side goes through the extractor once. What is shared:

* the extractor: built once per detector name (weights resolved once, sha256 recorded in every result);
* generated features: one extraction of the largest generated count any protocol of that detector asks for;
  generated item i depends only on (seed, i), so a smaller count is the prefix of the rows;
* real features: one extraction per (detector, x-flip) of the largest real count asked for; the reals are the first
  items in dataset order (metrics_spec.md section 0.3), so a smaller count is again a prefix.

Rows are kept whenever a metric needs them (KID, precision/recall) or counts differ between protocols (prefixes are
cut from rows); otherwise only float64 moments are accumulated (FID alone: O(D^2) memory whatever N is). Every
extraction goes through `sgeval.extract.extract_features` and its content-hashed cache.

Real data: `data` is an image folder, a dataset zip, a statistics `.npz`, or an ImageSource / StatisticsSource. When
`data` is None and the network is an sgmodels snapshot, the training set recorded in the snapshot metadata
(`metadata["training_set"]["path"]`, with its `xflip`) is used. Results of a snapshot written by training (its
metadata records `kimg` or `training_options`) are appended to `<snapshot folder>/metric-<protocol>.jsonl`, the
run directory; `run_dir` names another folder, `run_dir=False` disables writing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sgeval.cache import FeatureCache
from sgeval.featureset import FeatureSet
from sgeval.metrics.registry import ComputeOptions, get_metric
from sgeval.protocols import Protocol, get_protocol
from sgeval.results import MetricResult, append_result

__all__ = ["DataNotGivenError", "evaluate", "evaluate_many", "parse_count", "resolve_protocol"]

PathLike = str | os.PathLike[str]
_DERIVED = re.compile(r"^(?P<base>[A-Za-z0-9_]+)@(?P<parts>(?:gen|real)[0-9a-z]+(?:-(?:gen|real)[0-9a-z]+)?)$")


class DataNotGivenError(ValueError):
    """No real data was given and the network records no training set."""


# ---------------------------------------------------------------------------------------------------------------
# Protocols


def parse_count(label: str) -> int | None:
    """A count as written in derived protocol names and on the command line: "2k" -> 2000, "500" -> 500, "all" -> None.

    Raises ValueError for anything else (or a count below 1).
    """
    text = str(label).strip().lower()
    if text == "all":
        return None
    scale = 1000 if text.endswith("k") else 1
    digits = text[:-1] if scale == 1000 else text
    if not digits.isdigit() or int(digits) < 1:
        raise ValueError(f"not a sample count: {label!r} (expected e.g. 500, 2k or all)")
    return int(digits) * scale


def resolve_protocol(protocol: str | Protocol, num_gen: int | None = None, num_real: int | None = None) -> Protocol:
    """The Protocol for a name (official, or derived like "fid50k_full@gen1k-real2k") with optional count overrides.

    Overrides give the quick variant of `Protocol.with_counts` (its name records them). Unknown names raise
    ValueError listing the valid protocols.
    """
    if isinstance(protocol, Protocol):
        resolved = protocol
    else:
        match = _DERIVED.match(protocol)
        if match is None:
            resolved = get_protocol(protocol)
        else:
            counts: dict[str, int | None] = {}
            for part in match.group("parts").split("-"):
                side = "gen" if part.startswith("gen") else "real"
                counts[f"num_{side}"] = parse_count(part[len(side):])
            resolved = get_protocol(match.group("base")).with_counts(**counts)
    if num_gen is not None or num_real is not None:
        resolved = resolved.with_counts(num_gen=num_gen, num_real=num_real)
    if resolved.kind != "feature" or resolved.detector is None:
        raise ValueError(f"protocol {resolved.name!r} is a generator-space metric ({resolved.metric}); the feature "
                         "runner evaluates only FID, KID and precision/recall protocols")
    return resolved


# ---------------------------------------------------------------------------------------------------------------
# Sources


@dataclasses.dataclass
class _Network:
    """The generated side: its source and what results say about it."""

    source: Any  # ImageSource
    snapshot: Path | None  # the sgmodels snapshot file, when the source is one
    metadata: dict[str, Any]  # snapshot metadata ({} otherwise)
    labels: dict[str, Any] | None = None  # how a conditional generator's labels were chosen (recorded in results)


def _snapshot_path(network: Any) -> Path | None:
    """The sgmodels snapshot file when `network` names one, else None (statistics files are refused here)."""
    from sgeval.sources.sgmodels_adapter import is_sgmodels_snapshot

    if not isinstance(network, (str, os.PathLike)):
        return None
    path = Path(network).expanduser()
    if path.suffix.lower() == ".npz":
        raise ValueError(f"{path}: statistics files can only be the reference (--data), not the evaluated source")
    return path if is_sgmodels_snapshot(path) else None


def _open_network(network: Any, device: str, snapshot: Path | None, metadata: dict[str, Any],
                  reals: _RealSides) -> _Network:
    """A generated-image source for a snapshot path, an image folder / zip, a generator object or an ImageSource.

    A conditional generator (c_dim > 0: read from the snapshot header before loading, or the object's attribute)
    gets the labels of the reference dataset as its label pool, as the official metrics do.
    """
    from sgeval.sources import GeneratorSource, ImageSource, StatisticsSource, open_source
    from sgeval.sources.sgmodels_adapter import load_sgmodels_source, snapshot_c_dim

    if snapshot is not None:
        pool, record = _reference_labels(reals, snapshot_c_dim(snapshot), f"snapshot {snapshot}")
        source = load_sgmodels_source(snapshot, device=device, labels=pool)
        return _Network(source, snapshot, metadata, record)
    if isinstance(network, (str, os.PathLike)):
        return _Network(open_source(Path(network).expanduser()), None, {})
    if isinstance(network, StatisticsSource):
        raise TypeError("statistics can only be the reference side (data), not the evaluated source")
    if isinstance(network, GeneratorSource):  # labels (or class) chosen by the caller when it was built
        given = None if network.c_dim == 0 else {"sampled_from": "caller", **network.sampling_args()}
        return _Network(network, None, {}, given)
    if isinstance(network, ImageSource):
        return _Network(network, None, {})
    c_dim = getattr(network, "c_dim", 0)
    c_dim = int(c_dim) if isinstance(c_dim, (int, float)) else 0  # a non-generator fails in GeneratorSource below
    pool, record = _reference_labels(reals, c_dim, type(network).__name__)
    return _Network(GeneratorSource(network, labels=pool), None, {}, record)  # TypeError when not a generator


def _reference_labels(reals: _RealSides, c_dim: int, what: str) -> tuple[Any, dict[str, Any] | None]:
    """(label pool, record) for a generator with `c_dim` labels: the reference dataset's labels; (None, None) when
    unconditional. The pool is every item's label (not only the first num_real), unmirrored when the runner opens
    the data itself; mirroring duplicates labels, so the sampled distribution is the same either way.

    Raises:
        ValueError: the generator is conditional but the reference has no labels (statistics file, no dataset.json,
            or "labels": null); labels that do not fit c_dim are refused by GeneratorSource.
    """
    if c_dim <= 0:
        return None, None
    reference = reals.get(False)
    where = reference.describe().get("path", type(reference).__name__)
    hint = ("pass the labelled training set (an image folder or dataset .zip with dataset.json labels) as the "
            "reference (--data): each generated image is conditioned on the label of a random real item")
    if getattr(reference, "kind", None) == "statistics":
        raise ValueError(f"{what} is class-conditional (c_dim = {c_dim}) but the reference {where} is a statistics "
                         f"file, which holds no labels; {hint}")
    labels = getattr(reference, "labels", None)
    if labels is None:
        raise ValueError(f"{what} is class-conditional (c_dim = {c_dim}) but the reference {where} has no labels "
                         f"(no dataset.json, or its labels are null); {hint}")
    record = {"sampled_from": "reference", "reference": str(where), "num_labels": int(labels.shape[0]),
              "c_dim": int(c_dim)}
    return labels, record


def _recorded_training_set(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot's `training_set` metadata as a dict ({} when absent; a bare path becomes {"path": ...})."""
    recorded = metadata.get("training_set")
    if isinstance(recorded, (str, os.PathLike)):
        return {"path": str(recorded)}
    return dict(recorded) if isinstance(recorded, Mapping) else {}


def _data_location(data: Any, snapshot: Path | None, metadata: Mapping[str, Any]) -> Any:
    """The reference: `data` when given, else the training set recorded in the snapshot (DataNotGivenError if none)."""
    if data is not None:
        return data
    recorded = _recorded_training_set(metadata).get("path")
    if recorded:
        return recorded
    what = f"snapshot {snapshot}" if snapshot else "the evaluated source"
    raise DataNotGivenError(f"no real data: {what} records no training set; pass the reference images or statistics "
                            "with --data (an image folder, a dataset .zip or a statistics .npz)")


def _snapshot_metadata(snapshot: Path) -> dict[str, Any]:
    from sgeval.sources.sgmodels_adapter import snapshot_metadata

    return snapshot_metadata(snapshot)


class _RealSides:
    """Real-image sources opened on demand, one per x-flip setting (sources cache their fingerprints)."""

    def __init__(self, location: Any) -> None:
        self.location = location
        self._opened: dict[bool, Any] = {}

    def get(self, xflip: bool) -> Any:
        from sgeval.sources import ImageSource, StatisticsSource, open_source

        if not isinstance(self.location, (str, os.PathLike)):
            if not isinstance(self.location, (ImageSource, StatisticsSource)):
                raise TypeError(f"data must be a path, an ImageSource or a StatisticsSource, got "
                                f"{type(self.location).__name__}")
            return self.location  # a given source is used as it is (its own x-flip setting)
        if xflip not in self._opened:
            path = Path(self.location).expanduser()
            is_images = path.is_dir() or path.suffix.lower() == ".zip"
            self._opened[xflip] = open_source(path, xflip=xflip) if is_images else open_source(path)
        return self._opened[xflip]


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


@dataclasses.dataclass
class _Request:
    """What one side of one detector must extract for a group of protocols."""

    counts: set[int | None] = dataclasses.field(default_factory=set)  # per-protocol counts (None: all items)
    need_rows: bool = False  # some metric needs every row

    def capture(self) -> tuple[bool, bool]:
        """(capture_all, capture_mean_cov) for extract_features."""
        rows = self.need_rows or len(self.counts) > 1  # prefixes are cut from rows
        return rows, not rows


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

    capture_all, capture_mean_cov = request.capture()
    counts = [count for count in request.counts if count is not None]
    started = time.perf_counter()
    features = extract_features(source, extractor, num_items=max(counts) if counts else None,
                                batch_size=options.batch_size, device=options.device, seed=options.seed,
                                capture_all=capture_all, capture_mean_cov=capture_mean_cov, cache=options.cache,
                                progress=options.progress)
    return _Extracted(features, time.perf_counter() - started)


@dataclasses.dataclass(frozen=True)
class _RunOptions:
    """Run-time options shared by every protocol of one call."""

    seed: int
    device: str
    batch_size: int
    cache: FeatureCache | None
    progress: bool


def _open_cache(cache: bool | FeatureCache | PathLike | None) -> FeatureCache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return FeatureCache.default()
    if isinstance(cache, FeatureCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return FeatureCache(cache)
    raise TypeError(f"cache must be True, False, a FeatureCache or a folder, got {type(cache).__name__}")


def _detector_weights_for(detector: str, detector_weights: PathLike | Mapping[str, PathLike] | None,
                          detectors: set[str]) -> PathLike | None:
    """The explicit weights file of one detector; a single path is only unambiguous for a single detector."""
    if detector_weights is None:
        return None
    if isinstance(detector_weights, Mapping):
        unknown = set(detector_weights) - detectors
        if unknown:
            raise ValueError(f"detector weights given for {sorted(unknown)}, but these protocols use "
                             f"{sorted(detectors)}")
        return detector_weights.get(detector)
    if len(detectors) > 1:
        raise ValueError(f"one --detector-weights file cannot serve several detectors ({', '.join(sorted(detectors))})"
                         "; evaluate their protocols separately or pass a mapping {detector: path}")
    return detector_weights


# ---------------------------------------------------------------------------------------------------------------
# Public API


def evaluate_many(
    protocols: Sequence[str | Protocol],  # protocol names ("fid50k_full", "fid50k_full@gen1k") or Protocol objects
    network_or_source: Any,  # snapshot path, image folder/zip, generator object, or ImageSource
    data: Any = None,  # reference: folder/zip/.npz path or source; None = the snapshot's training set
    *,
    num_gen: int | None = None,  # override of every protocol's generated count (quick variants)
    num_real: int | None = None,  # override of every protocol's real count
    seed: int = 0,  # latent sampling and metric sampling seed
    device: str = "cpu",  # torch device of generator, extractor and distance blocks
    batch_size: int = 64,  # images per extractor call (does not change results)
    cache: bool | FeatureCache | PathLike | None = True,  # True: project cache; False/None: no caching
    weights_dir: PathLike | None = None,  # extra folder searched for detector weights
    detector_weights: PathLike | Mapping[str, PathLike] | None = None,  # explicit file (or {detector: file})
    allow_download: bool = False,  # download missing detector weights (never when SGEVAL_OFFLINE=1)
    run_dir: PathLike | bool | None = None,  # where to append JSONL; None: the snapshot's run dir; False: nowhere
    data_xflip: bool | None = None,  # mirror reals for protocols that follow the dataset; None: snapshot's setting
    progress: bool = True,  # progress bars on stderr
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
    resolved = [resolve_protocol(name, num_gen, num_real) for name in protocols]
    options = _RunOptions(seed=int(seed), device=str(device), batch_size=int(batch_size), cache=_open_cache(cache),
                          progress=progress)
    snapshot = _snapshot_path(network_or_source)
    metadata = {} if snapshot is None else _snapshot_metadata(snapshot)
    reals = _RealSides(_data_location(data, snapshot, metadata))
    network = _open_network(network_or_source, options.device, snapshot, metadata, reals)
    if data_xflip is None:
        data_xflip = bool(_recorded_training_set(metadata).get("xflip", False))
    # resolve_protocol rejects protocols without a detector; the filter only tells the type checker
    detectors = {protocol.detector for protocol in resolved if protocol.detector is not None}
    results: dict[str, MetricResult] = {}
    for detector in sorted(detectors):
        group = [protocol for protocol in resolved if protocol.detector == detector]
        extractor = _build_extractor(detector, options, weights_dir, allow_download,
                                     _detector_weights_for(detector, detector_weights, detectors))
        for protocol, result in _evaluate_group(group, extractor, network, reals, data_xflip, options):
            results[protocol.name] = result
    ordered = [results[protocol.name] for protocol in resolved]
    target = _run_dir(run_dir, network)
    if target is not None:
        for result in ordered:
            append_result(target, result)
    return ordered


def evaluate(
    protocol: str | Protocol,  # protocol name or object
    network_or_source: Any,  # snapshot path, image folder/zip, generator object, or ImageSource
    data: Any = None,  # reference; None = the snapshot's training set
    **kwargs: Any,  # every keyword option of `evaluate_many`
) -> MetricResult:
    """Evaluate one protocol (see `evaluate_many` for the options, returns and errors)."""
    return evaluate_many([protocol], network_or_source, data, **kwargs)[0]


# ---------------------------------------------------------------------------------------------------------------
# Internals of evaluate_many


def _build_extractor(detector: str, options: _RunOptions, weights_dir: PathLike | None, allow_download: bool,
                     weights_path: PathLike | None) -> Any:
    from sgeval.features.registry import build_extractor

    return build_extractor(detector, weights_path=weights_path, weights_dir=weights_dir,
                           allow_download=allow_download, device=options.device)


def _evaluate_group(group: list[Protocol], extractor: Any, network: _Network, reals: _RealSides, data_xflip: bool,
                    options: _RunOptions) -> list[tuple[Protocol, MetricResult]]:
    """Extract each side once for all protocols of one detector, then run every metric."""
    gen_request = _Request()
    real_requests: dict[bool, _Request] = {}  # by real_xflip
    plan: list[tuple[Protocol, bool, int, int | None]] = []  # protocol, xflip, generated count, real count
    for protocol in group:
        needs_rows = get_metric(protocol.metric).needs == "features"
        xflip = protocol.real_xflip == "dataset" and data_xflip
        real_source = reals.get(xflip)
        gen_count = _side_count(protocol.num_gen, network.source)
        if gen_count is None:  # _open_network rejects a statistics file as the evaluated source
            raise RuntimeError("internal: the evaluated source has no item count")
        real_count = _side_count(protocol.num_real, real_source)
        gen_request.counts.add(gen_count)
        gen_request.need_rows |= needs_rows
        request = real_requests.setdefault(xflip, _Request())
        request.counts.add(real_count)
        request.need_rows |= needs_rows
        plan.append((protocol, xflip, gen_count, real_count))
    generated = _extract(network.source, extractor, gen_request, options)
    real_sets = {xflip: _extract(reals.get(xflip), extractor, request, options)
                 for xflip, request in real_requests.items()}
    out = []
    for protocol, xflip, gen_count, real_count in plan:
        real = real_sets[xflip]
        gen_set = generated.prefix(gen_count)
        real_set = real.features if real_count is None else real.prefix(real_count)
        out.append((protocol, _run_metric(protocol, gen_set, real_set, extractor, network, reals.get(xflip),
                                          (generated, real), options)))
    return out


def _run_metric(protocol: Protocol, gen: FeatureSet, real: FeatureSet, extractor: Any, network: _Network,
                real_source: Any, extractions: tuple[_Extracted, _Extracted], options: _RunOptions) -> MetricResult:
    spec = get_metric(protocol.metric)
    started = time.perf_counter()
    values = spec.fn(gen, real, protocol.settings, ComputeOptions(seed=options.seed, device=options.device))
    metric_seconds = time.perf_counter() - started
    gen_extract, real_extract = extractions
    kimg = network.metadata.get("kimg")
    return MetricResult.from_protocol(
        protocol,
        values,
        num_gen=gen.num_items,
        num_real=real.num_items,
        seed=options.seed,
        network_fingerprint=network.source.fingerprint(),
        data_fingerprint=real_source.fingerprint(),
        detector=extractor.name,
        detector_sha256=extractor.weights_sha256,
        snapshot=None if network.snapshot is None else str(network.snapshot),
        kimg=float(kimg) if isinstance(kimg, (int, float)) else None,
        total_time=gen_extract.seconds + real_extract.seconds + metric_seconds,
        extra={
            "detector": extractor.provenance(),
            "source": network.source.describe(),
            "labels": network.labels,
            "data": real_source.describe(),
            "device": options.device,
            "batch_size": options.batch_size,
            "cache_hit": {"generated": gen_extract.cache_hit, "real": real_extract.cache_hit},
            "timing_s": {"extract_generated": round(gen_extract.seconds, 3),
                         "extract_real": round(real_extract.seconds, 3), "metric": round(metric_seconds, 3)},
        },
    )


def _run_dir(run_dir: PathLike | bool | None, network: _Network) -> Path | None:
    """Where results go: the given folder, the run directory of a training snapshot, or nowhere."""
    if run_dir is False:
        return None
    if run_dir is not None and run_dir is not True:
        target = Path(run_dir).expanduser()
        target.mkdir(parents=True, exist_ok=True)
        return target
    if network.snapshot is not None and ("kimg" in network.metadata or "training_options" in network.metadata):
        return network.snapshot.parent
    if run_dir is True:
        raise ValueError("run_dir=True needs a training snapshot (its folder is the run directory)")
    return None

