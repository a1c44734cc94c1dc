"""The helper networks of one evaluation: the feature extractors, image distances and classifier sets that its
protocols need, each built once (its weights file found, checked and loaded) before any metric is computed.

`build_helper_networks` is what the runner calls; `weights_file_for` maps the `detector_weights` option (one path,
or {network name: path}) onto the networks, and one file serves every network that loads the same registry file
(NVIDIA's Inception archive is both `inception-v3-tf` and its `-logits` head). The three `build_*` functions are the
seams tests replace with fakes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any
from typing import Protocol as TypingProtocol

from sgeval.protocols import Protocol

__all__ = ["HelperNetworks", "build_classifier_set", "build_feature_extractor", "build_helper_networks",
           "build_image_distance", "build_sampler_networks", "single_file_weights", "weighted_networks",
           "weights_file_for"]

PathLike = str | os.PathLike[str]


class NetworkOptions(TypingProtocol):
    """The run options a helper network is built with (the runner's options object)."""

    @property
    def device(self) -> str:
        """Torch device of the networks."""

    @property
    def precision(self) -> str:
        """Feature-network arithmetic ("fp32", "bf16", "fp16")."""

    @property
    def classifiers(self) -> PathLike | None:
        """Attribute classifier folder (linear separability), or None."""


@dataclasses.dataclass(frozen=True)
class HelperNetworks:
    """Every helper network of one evaluation."""

    extractors: dict[str, Any]  # feature extractor name -> FeatureExtractor
    sampler_networks: dict[str, dict[str, Any]]  # generator protocol name -> {"distance"/"classifiers": network}


def build_helper_networks(protocols: list[Protocol], detector_weights: PathLike | Mapping[str, PathLike] | None,
                          options: NetworkOptions, weights_dir: PathLike | None,
                          allow_download: bool) -> HelperNetworks:
    """Build the extractors of the feature protocols and the distances / classifiers of the generator protocols.

    Raises:
        ValueError (WeightsError, ClassifierError): a missing, wrong or unreadable file, or an ambiguous
            `detector_weights`; before any metric is computed.
    """
    weighted = weighted_networks(protocols)  # feature detectors and image distances: their files come from the
    weights_of = {name: weights_file_for(name, detector_weights, weighted) for name in weighted}  # registry
    detectors = sorted({p.extractor for p in protocols if p.extractor is not None})
    extractors = {name: build_feature_extractor(name, options, weights_dir, allow_download, weights_of[name])
                  for name in detectors}
    samplers = build_sampler_networks([p for p in protocols if p.kind == "generator"], options, weights_dir,
                                      allow_download, weights_of)
    return HelperNetworks(extractors, samplers)


def weights_file_for(detector: str, detector_weights: PathLike | Mapping[str, PathLike] | None,
                          detectors: set[str]) -> PathLike | None:
    """The explicit weights file of one detector; a single path is only unambiguous for a single detector, or for
    detectors that all load the same registry file (fid50k_full and is50k both read NVIDIA's Inception archive).

    A mapping names registered detectors ({"inception-v3-tf": path, "vgg16-fc2": path}); entries for detectors that
    these protocols do not use are ignored, so one set of files serves every command.
    """
    if detector_weights is None:
        return None
    if isinstance(detector_weights, Mapping):
        from sgeval.distances import list_distances
        from sgeval.features.registry import list_extractors

        known = [spec.name for spec in list_extractors()] + [spec.name for spec in list_distances()]
        unknown = sorted(set(detector_weights) - set(known))
        if unknown:
            raise ValueError(f"detector weights given for unknown detector(s) {', '.join(unknown)}; detector names: "
                             f"{', '.join(known)}")
        if detector in detector_weights:
            return detector_weights[detector]
        # One file serves every network that loads the same registry file (NVIDIA's Inception archive is both
        # inception-v3-tf and its -logits head; its vgg16.pt both vgg16-fc2 and lpips-vgg16-nvidia): name it once.
        accepted = single_file_weights(detector)
        shared = [path for name, path in sorted(detector_weights.items()) if accepted & single_file_weights(name)]
        return shared[0] if shared else None
    if len(detectors) > 1 and not set.intersection(*(single_file_weights(name) for name in detectors)):
        raise ValueError(f"one --detector-weights file cannot serve several detectors ({', '.join(sorted(detectors))})"
                         "; evaluate their protocols separately or pass a mapping {detector: path}")
    return detector_weights


def single_file_weights(name: str) -> set[str]:
    """Registry weights names a detector or single-file distance accepts (empty for multi-file distances, whose
    files are not interchangeable with a detector's)."""
    from sgeval.distances import get_distance_spec, list_distances
    from sgeval.features.registry import get_extractor_spec, list_extractors

    if name in {spec.name for spec in list_extractors()}:
        return set(get_extractor_spec(name).weights)
    if name in {spec.name for spec in list_distances()}:
        files = get_distance_spec(name).files
        return set(files[0].weights) if len(files) == 1 else set()
    return set()


def build_feature_extractor(detector: str, options: NetworkOptions, weights_dir: PathLike | None,
                            allow_download: bool, weights_path: PathLike | None) -> Any:
    """The registered feature extractor `detector` on the options' device and precision."""
    from sgeval.features.registry import build_extractor

    return build_extractor(detector, weights_path=weights_path, weights_dir=weights_dir,
                           allow_download=allow_download, device=options.device, precision=options.precision)


def weighted_networks(protocols: list[Protocol]) -> set[str]:
    """Names of the networks whose weights files `detector_weights` may give: feature extractors and distances."""
    return {name for protocol in protocols for name in (protocol.extractor, protocol.distance) if name is not None}


def build_image_distance(name: str, options: NetworkOptions, weights_dir: PathLike | None, allow_download: bool,
                         weights_path: PathLike | None) -> Any:
    """The registered image distance `name` on the options' device."""
    from sgeval.distances import build_distance

    return build_distance(name, weights_path=weights_path, weights_dir=weights_dir, allow_download=allow_download,
                          device=options.device)


def build_classifier_set(folder: PathLike | None, options: NetworkOptions) -> Any:
    """The attribute classifiers in `folder` (ClassifierError naming how to train some when none is given)."""
    from sgeval.classifiers import TRAIN_HINT, ClassifierError, load_classifiers

    if folder is None:
        raise ClassifierError(f"linear separability needs attribute classifiers: give classifiers=DIR (`sgeval ls "
                              f"--classifiers DIR`); {TRAIN_HINT}")
    return load_classifiers(folder, device=options.device)


def build_sampler_networks(protocols: list[Protocol], options: NetworkOptions, weights_dir: PathLike | None,
                           allow_download: bool,
                           weights_of: Mapping[str, PathLike | None]) -> dict[str, dict[str, Any]]:
    """{protocol name: {"distance" / "classifiers": network}} for generator-space protocols; each distance and the
    classifiers are built once and shared between the protocols that use them."""
    from sgeval.samplers import get_sampler

    distances: dict[str, Any] = {}
    classifiers: list[Any] = []  # built at most once
    out: dict[str, dict[str, Any]] = {}
    for protocol in protocols:
        helpers: dict[str, Any] = {}
        if "distance" in get_sampler(protocol.metric).networks:
            name = protocol.distance
            if name is None:
                raise ValueError(f"protocol {protocol.name!r} names no image distance")
            if name not in distances:
                distances[name] = build_image_distance(name, options, weights_dir, allow_download,
                                                       weights_of.get(name))
            helpers["distance"] = distances[name]
        if protocol.uses_classifiers:
            classifiers = classifiers or [build_classifier_set(options.classifiers, options)]
            helpers["classifiers"] = classifiers[0]
        out[protocol.name] = helpers
    return out
