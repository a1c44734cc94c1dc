"""Importer of rosinality stylegan2-pytorch checkpoints (`torch.save` zip files, docs/models.md section 4.4).

File: a dict with "g_ema" (always), "g", "d" (training checkpoints), "args" (an `argparse.Namespace`), "latent_avg"
(converted official networks), optimizer states and "ada_aug_p". It is read with torch's own restricted unpickler,
`torch.load(weights_only=True)`, with `argparse.Namespace` allowed inside a `torch.serialization.safe_globals`
context only (never globally). Networks map onto "G_ema", "G" and "D".

Architecture arguments: `size`, `latent` (style_dim), `n_mlp` and `channel_multiplier` from "args" when present,
else inferred from the tensor shapes. His widths (512 up to 32x32, then 256 * channel_multiplier at 64, halving)
are sgmodels' min(channel_base // r, 512) with channel_base = 16384 * channel_multiplier; his generator is the
'skip' architecture, his discriminator 'resnet' with minibatch-stddev group 4, one feature, and lr_mlp 0.01.

Generator tensors (his name -> sgmodels name; r = resolution, j = 0, 1, ... for r = 8, 16, ...):

| rosinality | sgmodels | transform |
|---|---|---|
| style.{i+1}.weight / .bias (style.0 is PixelNorm) | mapping.fc{i}.weight / .bias | - |
| latent_avg | mapping.w_avg | - (absent: mean w of 4096 z under seed 0, as his generate.py estimates it) |
| input.input [1, C, 4, 4] | synthesis.b4.const | drop the batch dim |
| conv1.conv.weight [1, out, in, 3, 3] | synthesis.b4.conv1.weight | drop the batch dim |
| conv1.conv.modulation.weight / .bias | synthesis.b4.conv1.affine.weight / .bias | - |
| conv1.noise.weight [1] | synthesis.b4.conv1.noise_strength [] | reshape |
| conv1.activate.bias (FusedLeakyReLU) | synthesis.b4.conv1.bias | - (both: conv, noise, bias, lrelu * sqrt 2) |
| convs.{2j} / convs.{2j+1} | synthesis.b{r}.conv0 / .conv1 | as conv1 (his up-conv is the same transposed conv) |
| to_rgb1 / to_rgbs.{j} .conv.weight [1, 3, C, 1, 1] | synthesis.b4 / b{r} .torgb.weight | drop the batch dim |
| to_rgb*.conv.modulation.* | synthesis.b*.torgb.affine.* | - |
| to_rgb*.bias [1, 3, 1, 1] | synthesis.b*.torgb.bias [3] | reshape |
| noises.noise_{i} [1, 1, r, r] | noise_const [r, r] of layer i (see below) | [0, 0] |
| *.blur.kernel, *.upsample.kernel | (resample_filter, rebuilt from [1, 3, 3, 1]) | dropped |

Noise layer i: 0 is b4.conv1; 2k - 1 and 2k are conv0 and conv1 of b(2^(k+2)) (his `noises.noise_{i}` order).

Discriminator (his block i >= 1 works at r = size / 2^(i-1)):

| rosinality | sgmodels |
|---|---|
| convs.0.0.weight, convs.0.1.bias | b{size}.fromrgb.weight / .bias |
| convs.{i}.conv1.0.weight, conv1.1.bias | b{r}.conv0.weight / .bias |
| convs.{i}.conv2.1.weight, conv2.2.bias | b{r}.conv1.weight / .bias |
| convs.{i}.skip.1.weight | b{r}.skip.weight |
| final_conv.0.weight, final_conv.1.bias | b4.conv.weight / .bias |
| final_linear.0.*, final_linear.1.* | b4.fc.*, b4.out.* |

His StyleGAN v1 checkpoints (style-based-gan-pytorch: "generator", "g_running", "discriminator") are recognised and
refused with a clear error: that layout is not mapped.
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sgmodels.importers.registry import (
    CheckpointFormatError,
    ImportedCheckpoint,
    ImportedNetwork,
    json_ready,
    register_importer,
    zip_pickle_strings,
)
from sgmodels.importers.unpickle import UnsafePickleError, torch_refusal

FORMAT = "rosinality"
SOURCE_CLASSES = {"G_ema": "rosinality model.Generator", "G": "rosinality model.Generator",
                  "D": "rosinality model.Discriminator"}
_KEYS = {"g_ema": "G_ema", "g": "G", "d": "D"}
W_AVG_SAMPLES = 4096  # latents averaged for w_avg when a checkpoint has no latent_avg (as his generate.py)


def _load(path: Path) -> Mapping[str, Any]:
    """torch's weights-only unpickler, with argparse.Namespace allowed in this call only."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(_refused_global(str(exc)), str(path),
                                f"torch's weights-only unpickler refused it: {torch_refusal(exc)}") from None
    # torch's weights-only unpickler lets IndexError / struct.error / KeyError out of a truncated data.pkl
    except (RuntimeError, OSError, EOFError, IndexError, KeyError, TypeError, ValueError, struct.error) as exc:
        raise CheckpointFormatError(f"{path}: cannot read this torch checkpoint: {type(exc).__name__}: {exc}") \
            from None
    if not isinstance(data, Mapping):
        raise CheckpointFormatError(f"{path}: a rosinality checkpoint is a dict, found {type(data).__name__}")
    return data


def _refused_global(message: str) -> str:
    """The global torch names in its refusal ("Unsupported global: GLOBAL os.system ..."), else a generic name."""
    match = re.search(r"GLOBAL ([\w.]+)", message)
    return match.group(1) if match else "a global outside torch's weights-only allow-list"


# ---------------------------------------------------------------------------------------------------------------------
# Architecture arguments.


def _arguments(data: Mapping[str, Any], generator: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """size, style_dim, n_mlp, channel_multiplier: from "args" when present, else from the generator's shapes."""
    args = data.get("args")
    given = vars(args) if isinstance(args, argparse.Namespace) else {}
    n_mlp = sum(1 for key in generator if re.fullmatch(r"style\.\d+\.weight", key))
    size = 2 ** (sum(1 for key in generator if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", key)) + 2)
    if "style.1.weight" not in generator:
        raise CheckpointFormatError("the generator has no style.1.weight: not a rosinality StyleGAN2 generator")
    style, conv = generator["style.1.weight"], generator.get("convs.6.conv.weight")
    if not isinstance(style, torch.Tensor) or style.ndim != 2:
        raise CheckpointFormatError("style.1.weight is not a matrix")
    style_dim = int(style.shape[1])
    multiplier = 2
    if size >= 64 and conv is not None:  # the first 64x64 conv: 256 * channel_multiplier
        if not isinstance(conv, torch.Tensor) or conv.ndim < 2:
            raise CheckpointFormatError("convs.6.conv.weight is not a convolution weight")
        multiplier = int(conv.shape[1]) // 256 or 1
    arguments = {"size": given.get("size", size), "style_dim": given.get("latent", style_dim),
                 "n_mlp": given.get("n_mlp", n_mlp), "channel_multiplier": given.get("channel_multiplier", multiplier)}
    # Untrusted: the name tables are built from these before any network is checked, so bound them first.
    for key, value in arguments.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _ARGUMENT_LIMITS[key]:
            raise CheckpointFormatError(f"{key} must be an integer in [1, {_ARGUMENT_LIMITS[key]}], got "
                                        f"{str(value)[:60]}")
    if arguments["size"] < 4 or arguments["size"] & (arguments["size"] - 1):
        raise CheckpointFormatError(f"size must be a power of two >= 4, got {arguments['size']}")
    return arguments


_ARGUMENT_LIMITS = {"size": 8192, "style_dim": 1 << 20, "n_mlp": 64, "channel_multiplier": 64}  # snapshot.py limits


def generator_description(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """sgmodels description of his `Generator(size, style_dim, n_mlp, channel_multiplier)`."""
    style_dim = arguments["style_dim"]
    return {"class": "stylegan2.Generator", "init_kwargs": {
        "z_dim": style_dim, "c_dim": 0, "w_dim": style_dim, "img_resolution": arguments["size"], "img_channels": 3,
        "synthesis": "stylegan2",
        "mapping_kwargs": {"num_layers": arguments["n_mlp"], "lr_multiplier": 0.01},
        "synthesis_kwargs": {"channel_base": 16384 * arguments["channel_multiplier"], "channel_max": 512,
                             "architecture": "skip"}}}


def discriminator_description(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """sgmodels description of his `Discriminator(size, channel_multiplier)`."""
    return {"class": "stylegan2.Discriminator", "init_kwargs": {
        "c_dim": 0, "img_resolution": arguments["size"], "img_channels": 3, "architecture": "resnet",
        "channel_base": 16384 * arguments["channel_multiplier"], "channel_max": 512, "mbstd_group_size": 4,
        "mbstd_num_channels": 1}}


# ---------------------------------------------------------------------------------------------------------------------
# Tensor names.


def _layer_name(index: int) -> str:
    """sgmodels synthesis layer of his conv index (0: conv1 of b4; then convs.{index - 1})."""
    if index == 0:
        return "synthesis.b4.conv1"
    res = 2 ** ((index + 1) // 2 + 2)
    return f"synthesis.b{res}.conv{(index + 1) % 2}"


def _styled_conv(source: str, target: str) -> dict[str, tuple[str, Any]]:
    squeeze0 = lambda t: t[0]  # noqa: E731 - drop his leading batch dim
    return {f"{source}.conv.weight": (f"{target}.weight", squeeze0),
            f"{source}.conv.modulation.weight": (f"{target}.affine.weight", None),
            f"{source}.conv.modulation.bias": (f"{target}.affine.bias", None),
            f"{source}.noise.weight": (f"{target}.noise_strength", lambda t: t.reshape([])),
            f"{source}.activate.bias": (f"{target}.bias", None)}


def _to_rgb(source: str, target: str) -> dict[str, tuple[str, Any]]:
    return {f"{source}.conv.weight": (f"{target}.weight", lambda t: t[0]),
            f"{source}.conv.modulation.weight": (f"{target}.affine.weight", None),
            f"{source}.conv.modulation.bias": (f"{target}.affine.bias", None),
            f"{source}.bias": (f"{target}.bias", lambda t: t.reshape(-1))}


def generator_names(size: int, n_mlp: int) -> dict[str, tuple[str, Any]]:
    """His generator key -> (sgmodels key, transform or None)."""
    names: dict[str, tuple[str, Any]] = {}
    for i in range(n_mlp):
        names[f"style.{i + 1}.weight"] = (f"mapping.fc{i}.weight", None)
        names[f"style.{i + 1}.bias"] = (f"mapping.fc{i}.bias", None)
    names["input.input"] = ("synthesis.b4.const", lambda t: t[0])
    names.update(_styled_conv("conv1", "synthesis.b4.conv1"))
    names.update(_to_rgb("to_rgb1", "synthesis.b4.torgb"))
    num_layers = 2 * (int(math.log2(size)) - 2) + 1
    for index in range(1, num_layers):
        names.update(_styled_conv(f"convs.{index - 1}", _layer_name(index)))
    for j in range(int(math.log2(size)) - 2):
        names.update(_to_rgb(f"to_rgbs.{j}", f"synthesis.b{2 ** (j + 3)}.torgb"))
    for index in range(num_layers):
        names[f"noises.noise_{index}"] = (f"{_layer_name(index)}.noise_const", lambda t: t[0, 0])
    return names


def discriminator_names(size: int) -> dict[str, tuple[str, Any]]:
    """His discriminator key -> (sgmodels key, transform or None)."""
    names: dict[str, tuple[str, Any]] = {"convs.0.0.weight": (f"b{size}.fromrgb.weight", None),
                                         "convs.0.1.bias": (f"b{size}.fromrgb.bias", None)}
    for i in range(1, int(math.log2(size)) - 1):
        res = size // 2 ** (i - 1)
        for his, ours in (("conv1.0.weight", "conv0.weight"), ("conv1.1.bias", "conv0.bias"),
                          ("conv2.1.weight", "conv1.weight"), ("conv2.2.bias", "conv1.bias"),
                          ("skip.1.weight", "skip.weight")):
            names[f"convs.{i}.{his}"] = (f"b{res}.{ours}", None)
    for his, ours in (("final_conv.0.weight", "b4.conv.weight"), ("final_conv.1.bias", "b4.conv.bias"),
                      ("final_linear.0.weight", "b4.fc.weight"), ("final_linear.0.bias", "b4.fc.bias"),
                      ("final_linear.1.weight", "b4.out.weight"), ("final_linear.1.bias", "b4.out.bias")):
        names[his] = (ours, None)
    return names


def rename(state: Mapping[str, Any], names: Mapping[str, tuple[str, Any]], what: str) -> dict[str, torch.Tensor]:
    """Apply a name table; his resampling kernels are dropped, any other unknown key is an error."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state.items():
        if key in names:
            target, transform = names[key]
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointFormatError(f"{what}: {key} is not a tensor")
            try:
                out[target] = (transform(tensor) if transform else tensor).detach().contiguous()
            except (IndexError, RuntimeError):  # a tensor of another rank than his layout's
                raise CheckpointFormatError(f"{what}: {key} has an unexpected shape {list(tensor.shape)}") from None
        elif not key.endswith(".kernel"):  # blur / upsample FIR buffers: sgmodels rebuilds them
            unknown.append(key)
    if unknown:
        raise CheckpointFormatError(f"{what}: {len(unknown)} tensors that his architecture does not have "
                                    f"(e.g. {unknown[:3]})")
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Loading.


def estimated_w_avg(description: dict[str, Any], state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean w of W_AVG_SAMPLES latents drawn under seed 0, for checkpoints without latent_avg (truncation)."""
    from sgmodels.mapping import MappingNetwork

    kwargs = description["init_kwargs"]
    mapping = MappingNetwork(z_dim=kwargs["z_dim"], c_dim=0, w_dim=kwargs["w_dim"], num_ws=None, w_avg_beta=None,
                             **kwargs["mapping_kwargs"])
    mapping.load_state_dict({key[len("mapping."):]: value for key, value in state.items()
                             if key.startswith("mapping.") and key != "mapping.w_avg"})
    z = torch.randn([W_AVG_SAMPLES, kwargs["z_dim"]], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return mapping(z).mean(dim=0)  # [w_dim]


def load_rosinality(path: Path) -> ImportedCheckpoint:
    """Read a rosinality checkpoint with torch's weights-only unpickler and map its networks onto sgmodels."""
    data = _load(path)
    if "g_running" in data or "generator" in data:
        raise CheckpointFormatError(f"{path}: this is a rosinality style-based-gan-pytorch (StyleGAN v1) checkpoint; "
                                    "its layout is not mapped onto sgmodels (only his stylegan2-pytorch is)")
    generator = data.get("g_ema", data.get("g"))
    if not isinstance(generator, Mapping):
        raise CheckpointFormatError(f"{path}: no g_ema / g state dict in this checkpoint")
    try:
        arguments = _arguments(data, generator)
    except CheckpointFormatError as exc:
        raise CheckpointFormatError(f"{path}: {exc}") from None
    networks: dict[str, ImportedNetwork] = {}
    metadata: dict[str, Any] = {"format": FORMAT, "arguments": arguments}
    if isinstance(data.get("args"), argparse.Namespace):
        metadata["args"] = json_ready(vars(data["args"]))
    for his_key, key in _KEYS.items():
        state = data.get(his_key)
        if not isinstance(state, Mapping):
            continue
        if key == "D":
            networks[key] = ImportedNetwork(discriminator_description(arguments),
                                            rename(state, discriminator_names(arguments["size"]), f"{path} d"),
                                            SOURCE_CLASSES[key])
            continue
        description = generator_description(arguments)
        mapped = rename(state, generator_names(arguments["size"], arguments["n_mlp"]), f"{path} {his_key}")
        mapped["mapping.w_avg"] = _w_avg(data, description, mapped, metadata, key, f"{path}: network {key!r}")
        networks[key] = ImportedNetwork(description, mapped, SOURCE_CLASSES[key])
    return ImportedCheckpoint(FORMAT, networks, {}, metadata)


def _w_avg(data: Mapping[str, Any], description: dict[str, Any], mapped: Mapping[str, torch.Tensor],
           metadata: dict[str, Any], key: str, where: str) -> torch.Tensor:
    latent_avg = data.get("latent_avg")
    if key == "G_ema" and isinstance(latent_avg, torch.Tensor):
        metadata.setdefault("w_avg", {})[key] = "latent_avg of the checkpoint"
        return latent_avg.detach().reshape(-1).to(torch.float32)
    metadata.setdefault("w_avg", {})[key] = (f"estimated: mean w of {W_AVG_SAMPLES} latents under seed 0 (no "
                                             "latent_avg for this network)")
    _check_before_estimating(description, mapped, where)
    return estimated_w_avg(description, mapped)


def _check_before_estimating(description: dict[str, Any], mapped: Mapping[str, torch.Tensor], where: str) -> None:
    """Estimating w_avg runs the mapping network: validate the (untrusted) arguments and shapes on meta first."""
    from sgmodels.importers import DERIVED_BUFFERS
    from sgmodels.snapshot import check_stored_tensors

    specs = {key: (tuple(tensor.shape), tensor.dtype) for key, tensor in mapped.items()}
    specs["mapping.w_avg"] = ((int(description["init_kwargs"]["w_dim"]),), torch.float32)
    check_stored_tensors(description, specs, where, optional=DERIVED_BUFFERS)


def detect_rosinality(path: Path, head: bytes) -> bool:
    """A torch zip checkpoint whose pickle names rosinality's generator keys (g_ema / g with style.1.weight)."""
    if head[:4] != b"PK\x03\x04":
        return False
    strings = zip_pickle_strings(path)
    stylegan2 = b"style.1.weight" in strings and b"input.input" in strings
    return stylegan2 or b"g_running" in strings  # g_running: his StyleGAN v1 layout (refused with a clear error)


register_importer(FORMAT, detect_rosinality, load_rosinality)
