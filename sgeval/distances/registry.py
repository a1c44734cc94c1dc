"""Registry of differentiable image distances (PPL, the LPIPS projector); listings and errors are derived from it.

An entry names the weights files the distance loads, each under a role ("backbone", "linear", "network") with the
sgeval.weights registry names acceptable for it (preferred first), and a factory "module:function" that turns
`{role: ResolvedWeights}` into an `ImageDistance`. Factories are imported only when a distance is built, so listing
the registry imports neither torch nor torchvision.

Adding a distance (for instance one on a feature network the project trains itself):

1. register its weights file(s) with `sgeval.weights.register_weights` beside its entry below (file name, sha256,
   origin), so that the usual lookup, `sgeval weights list/verify/import` and the not-found errors cover them;
2. write a module in `sgeval/distances/` with a subclass of `sgeval.distances.base.ImageDistance` (implement
   `distance(img0, img1) -> [N]`; the base class validates, replicates grey and records the identity) and a factory
   taking `{role: ResolvedWeights}`;
3. `register_distance(DistanceSpec(name=..., files=(DistanceFile(role, (weights names...)),), factory="module:fn",
   reference=..., description=...))`, here for a built-in one or from the user's own code for a private one.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import sgeval.features.registry  # noqa: F401  (the files its extractors load: VGG16, the domain detector)
from sgeval.weights import (
    WEIGHTS,
    ResolvedWeights,
    WeightsNotFoundError,
    WeightsSpec,
    register_weights,
    resolve_weights,
)

if TYPE_CHECKING:
    from sgeval.distances.base import ImageDistance

__all__ = ["DistanceFile", "DistanceSpec", "WeightsPathArg", "build_distance", "get_distance_spec", "list_distances",
           "register_distance"]

# One explicit file (for the distance's first role), or {role or weights registry name: file}.
WeightsPathArg = str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None


@dataclasses.dataclass(frozen=True)
class DistanceFile:
    """One weights file a distance loads."""

    role: str  # what the file is to the distance ("backbone", "linear", "network"); key of the factory's mapping
    weights: tuple[str, ...]  # sgeval.weights names acceptable for it, preferred first


@dataclasses.dataclass(frozen=True)
class DistanceSpec:
    """Metadata of one registered image distance."""

    name: str  # registry key, e.g. "lpips-vgg"
    files: tuple[DistanceFile, ...]  # weights files it loads; a bare explicit path is for the first
    factory: str  # "module:function" taking {role: ResolvedWeights} and returning an ImageDistance
    reference: str  # the implementation whose numbers it reproduces
    description: str  # one line for listings

    def load_factory(self) -> Callable[[dict[str, ResolvedWeights]], ImageDistance]:
        """Import and return the factory function."""
        module_name, function = self.factory.split(":")
        factory: Callable[[dict[str, ResolvedWeights]], ImageDistance] = getattr(
            importlib.import_module(module_name), function)
        return factory

    def role_for(self, key: str) -> str:
        """The role a `weights_path` mapping key names: a role itself, or a weights registry name of one role."""
        for file in self.files:
            if key == file.role or key in file.weights:
                return file.role
        valid = sorted({file.role for file in self.files} | {name for file in self.files for name in file.weights})
        raise ValueError(f"image distance {self.name!r} has no weights file {key!r}; valid keys: "
                         f"{', '.join(valid) or '(it loads no file)'}")


_DISTANCES: dict[str, DistanceSpec] = {}


def register_distance(spec: DistanceSpec) -> DistanceSpec:
    """Add a distance; its weights names must be registered in sgeval.weights. Returns the spec."""
    if spec.name in _DISTANCES and _DISTANCES[spec.name] != spec:
        raise ValueError(f"image distance {spec.name!r} is already registered")
    unknown = [name for file in spec.files for name in file.weights if name not in WEIGHTS]
    if unknown or any(not file.weights for file in spec.files):
        raise ValueError(f"image distance {spec.name!r}: unknown weights {unknown or '(a file lists none)'}")
    roles = [file.role for file in spec.files]
    if len(set(roles)) != len(roles):
        raise ValueError(f"image distance {spec.name!r}: roles must be distinct, got {roles}")
    if ":" not in spec.factory:
        raise ValueError(f"image distance {spec.name!r}: factory must be 'module:function', got {spec.factory!r}")
    _DISTANCES[spec.name] = spec
    return spec


register_weights(WeightsSpec(
    name="lpips-vgg-lin-v0.1",
    filename="vgg.pth",
    sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
    extractor="lpips-vgg",
    format="state_dict",
    origin="LPIPS v0.1 linear layers for the VGG16 backbone (Zhang et al. 2018), shipped in the lpips package "
    "(BSD-2-Clause); the backbone itself is vgg16-torchvision",
    packaged="lpips/weights/v0.1/vgg.pth",
))
register_distance(DistanceSpec(
    name="lpips-vgg",
    files=(DistanceFile("backbone", ("vgg16-torchvision",)), DistanceFile("linear", ("lpips-vgg-lin-v0.1",))),
    factory="sgeval.distances.lpips_vgg:build_lpips_vgg",
    reference="lpips package 0.1.4: lpips.LPIPS(net='vgg', version='0.1'), inputs in [-1, 1] (normalize=False)",
    description="LPIPS v0.1 on torchvision's VGG16 (the lpips package's numbers; rosinality's PPL and projector)",
))
register_distance(DistanceSpec(
    name="lpips-vgg16-nvidia",
    files=(DistanceFile("network", ("vgg16-torchscript",)),),
    factory="sgeval.distances.nvidia_vgg16:build_nvidia_vgg16_lpips",
    reference="stylegan2-ada-pytorch metrics/perceptual_path_length.py and projector.py: vgg16.pt in LPIPS mode",
    description="NVIDIA's TorchScript vgg16.pt in LPIPS mode (stylegan2-ada-pytorch PPL and projector)",
))
register_distance(DistanceSpec(
    name="lpips-domain",
    files=(DistanceFile("network", ("domain-detector",)),),
    factory="sgeval.distances.domain:build_domain_lpips",
    reference="sgeval's own: the LPIPS recipe (unit-normalised activations, squared differences, spatial means) "
              "over a `sgeval detector train` network, uniform layer weights (no learned lin layers)",
    description="LPIPS-style distance over a trained domain detector's conv stages (not LPIPS: no human data)",
))


def list_distances() -> list[DistanceSpec]:
    """All registered distances, sorted by name."""
    return [_DISTANCES[name] for name in sorted(_DISTANCES)]


def get_distance_spec(name: str) -> DistanceSpec:
    """The entry registered as `name`; ValueError listing the valid names otherwise."""
    if name not in _DISTANCES:
        raise ValueError(f"unknown image distance {name!r}; valid: {', '.join(sorted(_DISTANCES))}")
    return _DISTANCES[name]


def _explicit_paths(spec: DistanceSpec, weights_path: WeightsPathArg) -> dict[str, str | os.PathLike[str]]:
    """{role: explicit file} from the `weights_path` argument (see `build_distance`)."""
    if weights_path is None:
        return {}
    if not isinstance(weights_path, Mapping):
        if not spec.files:
            raise ValueError(f"image distance {spec.name!r} loads no weights file, but one was given")
        return {spec.files[0].role: weights_path}
    paths: dict[str, str | os.PathLike[str]] = {}
    for key, path in weights_path.items():
        role = spec.role_for(key)
        if role in paths:
            raise ValueError(f"image distance {spec.name!r}: two files given for its {role} weights")
        paths[role] = path
    return paths


def _resolve_file(spec: DistanceSpec, file: DistanceFile, path: str | os.PathLike[str] | None,
                  weights_dir: str | os.PathLike[str] | None, allow_download: bool) -> ResolvedWeights:
    """resolve_weights for one file; a not-found message also says which distance and role needed it."""
    try:
        return resolve_weights(file.weights, path=path, weights_dir=weights_dir, allow_download=allow_download)
    except WeightsNotFoundError as error:
        raise WeightsNotFoundError(f"image distance {spec.name!r} needs its {file.role} weights.\n"
                                   f"{error.message}") from error


def build_distance(
    name: str,  # registry name
    weights_path: WeightsPathArg = None,  # a file for the first role, or {role or weights name: file}; may be foreign
    weights_dir: str | os.PathLike[str] | None = None,  # extra search folder (--weights-dir)
    allow_download: bool = False,  # download missing files (never when SGEVAL_OFFLINE=1)
    device: str = "cpu",  # where the network goes
) -> ImageDistance:
    """Resolve every weights file of `name` (sgeval.weights lookup order) and build the distance on `device`.

    Files not given explicitly are looked up as usual (an explicit path wins and may be a custom file, used with an
    "unverified" warning and its sha256 recorded). Nothing is downloaded unless `allow_download`.

    Raises:
        ValueError: unknown distance or `weights_path` key.
        WeightsNotFoundError / WeightsChecksumError / WeightsError (ValueErrors): a missing, wrong or unreadable
            file, named with its checksum and the places it may be put.
    """
    spec = get_distance_spec(name)
    explicit = _explicit_paths(spec, weights_path)
    resolved = {file.role: _resolve_file(spec, file, explicit.get(file.role), weights_dir, allow_download)
                for file in spec.files}
    distance = spec.load_factory()(resolved)
    if distance.name != spec.name:
        raise ValueError(f"{name}: factory built the distance {distance.name!r}")
    return distance.to(device)
