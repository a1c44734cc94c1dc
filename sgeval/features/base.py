"""The feature-extractor contract: uint8 images [N, 3, H, W] in, float32 features [N, D] out.

Every extractor validates its input at the door (`check_image_batch`): a uint8 torch tensor, 4-D, with exactly
`input_channels` channels (3 for Inception and VGG16). Grayscale [N, 1, H, W] is refused here, not silently
repeated: sources report their native channel count, and the one batch loop (`sgeval.extract`) repeats a single
channel to three before calling a 3-channel extractor, as the official metric code does. That keeps the conversion
in one visible place and lets a future 1-channel extractor (a Fashion-MNIST feature net) see the true data.

An extractor also states what makes its features what they are (`identity`): its name, feature dimension, the
sha256 of its weights file, and its resize policy version. That identity is part of every cache key.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any, TypeVar

import torch

from sgeval.features.inference import EXACT, autocast, check_precision
from sgeval.imageops import TORCHSCRIPT_INTERNAL
from sgeval.weights import ResolvedWeights, WeightsError
from sgmodels.untrusted import check_zip_directory, check_zip_inflation

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)  # load_state_dict_file returns the module type it was given

__all__ = ["FeatureExtractor", "TorchScriptExtractor", "check_image_batch", "load_state_dict_file", "load_torchscript",
           "module_device"]


def check_image_batch(images: Any, channels: int = 3, what: str = "images") -> None:
    """Raise TypeError/ValueError unless `images` is a uint8 torch tensor [N, channels, H, W] with N, H, W >= 1."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"{what}: expected dtype torch.uint8 (pixel values 0..255), got {images.dtype}; convert "
                        "generator output with sgeval.sources.float_to_uint8 (official (x*127.5+128) formula)")
    if images.ndim != 4:
        raise ValueError(f"{what}: expected a 4-D batch [N, C, H, W], got shape {tuple(images.shape)}")
    if images.shape[1] != channels:
        hint = " (grayscale: repeat the channel to 3 first; sgeval.extract does this)" if images.shape[1] == 1 else ""
        raise ValueError(f"{what}: expected {channels} channels in NCHW layout, got shape {tuple(images.shape)}{hint}")
    if min(images.shape[0], images.shape[2], images.shape[3]) < 1:
        raise ValueError(f"{what}: empty batch or image, shape {tuple(images.shape)}")


class FeatureExtractor(torch.nn.Module):
    """Base class: `extractor(images uint8 [N, C, H, W]) -> float32 [N, feature_dim]` (no gradients needed).

    Subclasses implement `extract` (input already validated and on the extractor's device). `precision` is the
    arithmetic mode (sgeval.features.inference): "fp32" (exact, the default) or an opt-in reduced precision set with
    `set_precision`, which then enters the identity.
    """

    supports_reduced_precision = True  # False where the network cannot run under autocast (TorchScript archives)

    def __init__(
        self,
        name: str,  # registry name, e.g. "inception-v3-tf"
        feature_dim: int,  # D of the output
        weights: ResolvedWeights | None,  # the weights file loaded (None: random weights built in code)
        resize_policy: str,  # sgeval.imageops policy version string
        backend: str,  # how the network is run ("sgeval-port", "torchscript", "torchvision")
        input_channels: int = 3,  # channels the network expects
    ) -> None:
        super().__init__()
        self.name = name
        self.feature_dim = int(feature_dim)
        self.weights = weights
        self.resize_policy = resize_policy
        self.backend = backend
        self.input_channels = int(input_channels)
        self.precision = EXACT

    def set_precision(self, precision: str) -> FeatureExtractor:
        """Choose the arithmetic mode ("fp32", "bf16", "fp16"); ValueError if this network or device cannot. Returns
        self."""
        check_precision(precision, self.device)
        if precision != EXACT and not self.supports_reduced_precision:
            raise ValueError(f"{self.name} ({self.backend}) runs in fp32 only; reduced precision needs the sgeval "
                             "port of the network (a state dict weights file)")
        self.precision = precision
        return self

    @property
    def weights_sha256(self) -> str | None:
        """sha256 of the loaded weights file (None for weights built in code)."""
        return None if self.weights is None else self.weights.sha256

    @property
    def device(self) -> torch.device:
        """Device of the network's first parameter or buffer (CPU if it has none)."""
        return module_device(self)

    def identity(self) -> dict[str, Any]:
        """Everything that determines the features (enters cache keys): name, dim, weights sha256, resize, backend."""
        identity = {"name": self.name, "feature_dim": self.feature_dim, "weights_sha256": self.weights_sha256,
                    "resize_policy": self.resize_policy, "backend": self.backend}
        if self.precision != EXACT:  # absent in exact mode, so exact-mode cache keys stay what they were
            identity["precision"] = self.precision
        return identity

    def caveats(self) -> list[str]:
        """Warnings every result measured with this extractor must carry (e.g. a domain detector that failed its
        self-check); none by default."""
        return []

    def provenance(self) -> dict[str, Any]:
        """`identity()` plus the weights file record, for result lines."""
        record = {"extractor": self.name, **self.identity()}
        if self.weights is not None:
            record.update(self.weights.provenance())
        return record

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, C, H, W] on `self.device` -> features [N, feature_dim] (any float dtype)."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Validate the uint8 NCHW contract, run the network, and check the output.

        Args:
            images: uint8 tensor [N, input_channels, H, W], pixel values 0..255, any device.
        Returns:
            float32 tensor [N, feature_dim] on the extractor's device.
        """
        check_image_batch(images, self.input_channels)
        device = self.device
        with autocast(self.precision, device):
            features = self.extract(images.to(device))  # [N, D]
        if features.ndim != 2 or features.shape != (images.shape[0], self.feature_dim):
            raise ValueError(f"{self.name}: the network returned shape {tuple(features.shape)}, expected "
                             f"[{images.shape[0]}, {self.feature_dim}]; wrong weights file for this extractor?")
        return features.float()


def module_device(module: torch.nn.Module) -> torch.device:
    """Device of a module's first parameter or buffer (CPU if it has none)."""
    for tensor in module.parameters():
        return tensor.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")


def load_state_dict_file(
    network: ModuleT,  # architecture to fill (may live on the meta device when assign=True)
    weights: ResolvedWeights,  # a torch.save'd state dict
    what: str,  # name of the expected layout, for the error message
    assign: bool = False,  # replace the parameters instead of copying into them (meta-device construction)
) -> ModuleT:
    """Load a state dict file strictly into `network`; returns it in eval mode without gradients.

    Read with `torch.load(weights_only=True)` (tensors only: no code runs). Floating tensors become float32, the
    dtype the extractors compute in, whatever precision the file was saved with. WeightsError for an unreadable
    file or a layout that does not match the architecture.
    """
    try:
        state = torch.load(weights.path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types (pickle.UnpicklingError, RuntimeError) for bad files
        raise WeightsError(f"{weights.path}: not a loadable PyTorch state dict ({type(error).__name__}: "
                           f"{error})") from error
    if not isinstance(state, dict):
        raise WeightsError(f"{weights.path}: expected a state dict (a mapping of tensors), got {type(state).__name__}")
    _check_tensor_values(state, weights, what)
    state = {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
    mismatch = _layout_mismatch(network.state_dict(), state)
    if mismatch:
        raise WeightsError(f"{weights.path}: not {what}.\n{_describe_state(state)}\n{mismatch}")
    network.load_state_dict(state, strict=True, assign=assign)
    return network.eval().requires_grad_(False)


_EXAMPLES = 3  # keys named per kind of problem: a few lines, never a dump of hundreds of names


def _check_tensor_values(state: dict[Any, Any], weights: ResolvedWeights, what: str) -> None:
    """A checkpoint wrapper ({"state_dict": {...}, "epoch": 3}) or other non-tensor values: say what is there."""
    odd = [f"{key!r} ({type(value).__name__})" for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not odd:
        return
    nested = [key for key, value in state.items() if isinstance(value, dict)]
    hint = (f" It looks like a training checkpoint: save the state dict under {nested[0]!r} alone "
            f"(torch.save(checkpoint[{nested[0]!r}], path))." if nested else "")
    raise WeightsError(f"{weights.path}: expected {what}, a mapping of names to tensors, but {len(odd)} of its "
                       f"{len(state)} values are not tensors: {', '.join(odd[:_EXAMPLES])}.{hint}")


def _describe_state(state: dict[str, torch.Tensor]) -> str:
    """One line on what a state dict holds: tensor count, parameters and its top-level groups."""
    groups: dict[str, int] = {}
    for key in state:
        group = str(key).split(".")[0]
        groups[group] = groups.get(group, 0) + 1
    listed = ", ".join(f"{name} ({count})" for name, count in list(groups.items())[:6])
    more = f", ... ({len(groups)} groups)" if len(groups) > 6 else ""
    elements = sum(value.numel() for value in state.values())
    return f"The file holds {len(state)} tensors ({elements:,} values) in the groups {listed}{more}."


def _layout_mismatch(expected: dict[str, torch.Tensor], stored: dict[str, torch.Tensor]) -> str:
    """A few lines naming missing, unexpected and differently shaped tensors ('' when the layouts agree)."""
    missing = [key for key in expected if key not in stored]
    unexpected = [key for key in stored if key not in expected]
    reshaped = [f"{key} {tuple(stored[key].shape)} vs {tuple(expected[key].shape)}" for key in expected
                if key in stored and stored[key].shape != expected[key].shape]
    if not (missing or unexpected or reshaped):
        return ""
    lines = [f"The architecture expects {len(expected)} tensors:"]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape (file vs expected)",
                                                                          reshaped)):
        if keys:
            lines.append(f"  {len(keys)} {label}, e.g. {', '.join(keys[:_EXAMPLES])}")
    return "\n".join(lines)


def _check_archive_sizes(path: Path) -> None:
    """WeightsError when a record of a zip archive declares more bytes than it holds: torch.jit.load allocates a
    record's declared size before reading it, so a forged directory would be a MemoryError."""
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_directory(archive, path)
            for info in archive.infolist():
                check_zip_inflation(info, f"{path}:{info.filename}", archive)
    except ValueError as error:
        raise WeightsError(str(error) if str(path) in str(error) else f"{path}: {error}") from None
    except (OSError, zipfile.BadZipFile, NotImplementedError) as error:
        raise WeightsError(f"{path}: not a loadable TorchScript archive ({error})") from None


def load_torchscript(weights: ResolvedWeights) -> torch.jit.ScriptModule:
    """Load a TorchScript archive on the CPU in eval mode; WeightsError when the file is not one.

    TorchScript archives hold TorchScript code, which runs in torch's restricted interpreter (no arbitrary Python,
    unlike a pickle); only load archives whose checksum you trust.
    """
    _check_archive_sizes(weights.path)
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript; the official detectors exist only in it
            warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated", category=FutureWarning)
            module = torch.jit.load(str(weights.path), map_location="cpu")
    except (RuntimeError, ValueError) as error:
        raise WeightsError(f"{weights.path}: not a loadable TorchScript archive ({error})") from error
    return module.eval()


class TorchScriptExtractor(FeatureExtractor):
    """An official NVIDIA TorchScript detector, called as the official metric code calls it.

    The archive takes uint8 [N, 3, H, W] of any size, resizes internally, and returns features when called as
    `module(images, return_features=True)` (stylegan2-ada-pytorch `metrics/metric_utils.py`). Its graph is run as
    shipped, in fp32 (reduced precision and the inference rewrites need the sgeval port).
    """

    supports_reduced_precision = False

    def __init__(
        self,
        name: str,  # registry name
        feature_dim: int,  # D of the output
        weights: ResolvedWeights,  # the .pt archive
    ) -> None:
        super().__init__(name, feature_dim, weights, resize_policy=TORCHSCRIPT_INTERNAL, backend="torchscript")
        self.module = load_torchscript(weights)
        self.requires_grad_(False)

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images, return_features=True)  # [N, D]
