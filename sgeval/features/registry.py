"""Registry of feature extractors: one entry per name; the CLI, `--help` and error messages are derived from it.

An entry names the weights files it accepts (sgeval.weights registry names, in order of preference) and a factory
"module:function" that turns a resolved weights file into a `FeatureExtractor`. Factories are imported only when an
extractor is built, so listing the registry imports neither torch nor torchvision.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from sgeval.weights import WEIGHTS, ResolvedWeights, WeightsSpec, register_weights, resolve_weights

if TYPE_CHECKING:
    from sgeval.features.base import FeatureExtractor

__all__ = ["ExtractorSpec", "build_extractor", "get_extractor_spec", "list_extractors", "register_extractor"]


@dataclasses.dataclass(frozen=True)
class ExtractorSpec:
    """Metadata of one registered feature extractor."""

    name: str  # registry key, e.g. "inception-v3-tf"
    feature_dim: int | None  # D of its features; None: set by the weights file (a trained domain detector)
    weights: tuple[str, ...]  # sgeval.weights names it can load, preferred first
    factory: str  # "module:function" taking a ResolvedWeights and returning a FeatureExtractor
    metrics: tuple[str, ...]  # metrics that use it by default
    description: str  # one line for listings

    def load_factory(self) -> Callable[[ResolvedWeights], FeatureExtractor]:
        """Import and return the factory function."""
        module_name, function = self.factory.split(":")
        return getattr(importlib.import_module(module_name), function)


_EXTRACTORS: dict[str, ExtractorSpec] = {}


def register_extractor(spec: ExtractorSpec) -> ExtractorSpec:
    """Add an extractor; its weights names must be registered in sgeval.weights. Returns the spec."""
    if spec.name in _EXTRACTORS and _EXTRACTORS[spec.name] != spec:
        raise ValueError(f"feature extractor {spec.name!r} is already registered")
    unknown = [name for name in spec.weights if name not in WEIGHTS]
    if unknown or not spec.weights:
        raise ValueError(f"extractor {spec.name!r}: unknown weights {unknown or '(none given)'}")
    if ":" not in spec.factory:
        raise ValueError(f"extractor {spec.name!r}: factory must be 'module:function', got {spec.factory!r}")
    _EXTRACTORS[spec.name] = spec
    return spec


# Each extractor's entry: the weights files it loads (sgeval.weights), then the extractor.

register_weights(WeightsSpec(
    name="inception-tf-port",
    filename="weights-inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth",
    extractor="inception-v3-tf",
    format="state_dict",
    origin="torch-fidelity's PyTorch port of TF inception-2015-12-05 (Apache-2.0); loaded by sgeval's own "
    "Inception re-implementation",
    alt_filenames=("pt_inception-2015-12-05-6726825d.pth",),
))
register_weights(WeightsSpec(
    name="inception-torchscript",
    filename="inception-2015-12-05.pt",
    sha256="f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4",
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    extractor="inception-v3-tf",
    format="torchscript",
    origin="NVIDIA's TorchScript translation of TF inception-2015-12-05 (stylegan2-ada-pytorch, clean-fid)",
))
register_extractor(ExtractorSpec(
    name="inception-v3-tf",
    feature_dim=2048,
    weights=("inception-tf-port", "inception-torchscript"),
    factory="sgeval.features.inception:build_inception_extractor",
    metrics=("fid", "kid"),
    description="TF inception-2015-12-05 pool3 (FID/KID reference network); sgeval port or NVIDIA TorchScript",
))
register_extractor(ExtractorSpec(
    name="inception-v3-tf-logits",
    feature_dim=1008,
    weights=("inception-tf-port", "inception-torchscript"),
    factory="sgeval.features.inception:build_inception_logits_extractor",
    metrics=("is",),
    description="the same TF Inception's 1008 logits without output bias (Inception Score), same weights files",
))
register_weights(WeightsSpec(
    name="vgg16-torchscript",
    filename="vgg16.pt",
    sha256=None,
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt",
    extractor="vgg16-fc2",
    format="torchscript",
    origin="NVIDIA's TorchScript VGG16 used by stylegan2-ada-pytorch precision/recall, PPL and projector",
))
register_weights(WeightsSpec(
    name="vgg16-torchvision",
    filename="vgg16-397923af.pth",
    sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    extractor="vgg16-fc2",
    format="state_dict",
    origin="torchvision VGG16 ImageNet weights (IMAGENET1K_V1)",
))
register_extractor(ExtractorSpec(
    name="vgg16-fc2",
    feature_dim=4096,
    weights=("vgg16-torchscript", "vgg16-torchvision"),
    factory="sgeval.features.vgg16:build_vgg16_extractor",
    metrics=("pr", "prdc"),
    description="VGG16 fc2 after ReLU (precision/recall); NVIDIA TorchScript or torchvision weights",
))
register_weights(WeightsSpec(
    name="domain-detector",
    filename="detector.safetensors",
    sha256=None,
    url="(not downloadable: made by `sgeval detector train --data LABELLED.zip --outdir DIR`)",
    extractor="domain",
    format="state_dict",
    origin="a feature network trained by `sgeval detector train` on a labelled dataset (sgeval.detector); "
    "its sha256 is recorded in the detector.json beside it and checked on loading",
    described_by=".json",
))
register_extractor(ExtractorSpec(
    name="domain",
    feature_dim=None,
    weights=("domain-detector",),
    factory="sgeval.features.domain:build_domain_extractor",
    metrics=("fd", "kd", "pr"),
    description="a detector trained by `sgeval detector train` on a labelled dataset (domain FD, never FID)",
))


def list_extractors() -> list[ExtractorSpec]:
    """All registered extractors, sorted by name."""
    return [_EXTRACTORS[name] for name in sorted(_EXTRACTORS)]


def get_extractor_spec(name: str) -> ExtractorSpec:
    """The entry registered as `name`; ValueError listing the valid names otherwise."""
    if name not in _EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r}; valid: {', '.join(sorted(_EXTRACTORS))}")
    return _EXTRACTORS[name]


def build_extractor(
    name: str,  # registry name
    weights_path: str | os.PathLike[str] | None = None,  # explicit file (--detector-weights); may be foreign
    weights_dir: str | os.PathLike[str] | None = None,  # extra search folder (--weights-dir)
    allow_download: bool = False,  # download the preferred file if none is found (never when SGEVAL_OFFLINE=1)
    device: str = "cpu",  # where the network goes
    precision: str = "fp32",  # arithmetic mode (sgeval.features.inference.PRECISIONS); reduced ones are opt-in
) -> FeatureExtractor:
    """Resolve the weights (sgeval.weights lookup order) and build the extractor on `device` in `precision`.

    Raises:
        WeightsNotFoundError / WeightsChecksumError (ValueErrors) with the file names, checksums and destinations.
    """
    spec = get_extractor_spec(name)
    resolved = resolve_weights(spec.weights, path=weights_path, weights_dir=weights_dir, allow_download=allow_download)
    extractor = spec.load_factory()(resolved)
    if spec.feature_dim is not None and extractor.feature_dim != spec.feature_dim:
        raise ValueError(f"{name}: factory built an extractor with dim {extractor.feature_dim}, "
                         f"registry says {spec.feature_dim}")
    return extractor.to(device).set_precision(precision)
