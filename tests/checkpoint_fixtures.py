"""Checkpoints in the official layouts, built by test code from sgmodels networks (never from official code).

* `write_ada_pickle`: a dict {G, D, G_ema, augment_pipe, training_set_kwargs} whose networks pickle exactly as
  `torch_utils.persistence` objects do (docs/models.md section 4.3): `_reconstruct_persistent_obj(meta)` with meta
  {type, version, module_src, class_name, state}, state = the module's `_parameters`, `_buffers`, `_modules`
  (child records), `_init_args`, `_init_kwargs` (a `dnnlib.util.EasyDict`). The globals are written by stand-in
  modules registered in `sys.modules` only while pickling (`official_module_names`).
* `write_rosinality`: `torch.save` of his key layout (section 7.3), written from an sgmodels generator with his
  names, transposes and extra buffers, independently of the importer's tables.
* Hostile payloads: objects whose `__reduce__` would create a file if anything executed them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pickle
import subprocess
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from sgmodels.generator import Generator
from sgmodels.stylegan2 import Discriminator

PERSISTENCE_VERSION = 6


class EasyDict(dict):
    """Pickled as `dnnlib.util.EasyDict` inside `official_module_names`."""


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> Any:  # pragma: no cover - never called by the importer
    raise AssertionError("the importer must never call the original reconstruct function")


@contextlib.contextmanager
def official_module_names() -> Iterator[None]:
    """Register stand-ins for `torch_utils.persistence` and `dnnlib.util`, so pickle writes the official globals."""
    modules = {name: types.ModuleType(name) for name in ("torch_utils", "torch_utils.persistence", "dnnlib",
                                                          "dnnlib.util", "evil")}
    modules["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    modules["dnnlib.util"].EasyDict = EasyDict  # type: ignore[attr-defined]
    modules["evil"].UnknownThing = UnknownThing  # type: ignore[attr-defined]
    saved = (_reconstruct_persistent_obj.__module__, EasyDict.__module__, UnknownThing.__module__)
    old = {name: sys.modules.get(name) for name in modules}
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__ = "dnnlib.util"
    UnknownThing.__module__ = "evil"
    sys.modules.update(modules)
    try:
        yield
    finally:
        _reconstruct_persistent_obj.__module__, EasyDict.__module__, UnknownThing.__module__ = saved
        for module_name, previous in old.items():
            if previous is None:
                sys.modules.pop(module_name, None)
            else:
                sys.modules[module_name] = previous


class Persistent:
    """Pickles as an official persistent object of class `class_name` with `state`."""

    def __init__(self, class_name: str, state: dict[str, Any], module_src: str = "") -> None:
        self.meta = {"type": "class", "version": PERSISTENCE_VERSION, "class_name": class_name, "state": state,
                     "module_src": module_src}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reconstruct_persistent_obj, (self.meta,), None)


def record_of(module: torch.nn.Module, class_name: str | None = None, init_kwargs: dict[str, Any] | None = None,
              module_src: str = "import os  # never executed") -> Persistent:
    """The persistent record of an sgmodels module tree, with official class names and parameter layout."""
    buffers = OrderedDict((name, value) for name, value in module._buffers.items()
                          if name not in module._non_persistent_buffers_set)
    children = OrderedDict((name, None if child is None else record_of(child, module_src=module_src))
                           for name, child in module._modules.items())
    state = {"training": False, "_parameters": OrderedDict(module._parameters), "_buffers": buffers,
             "_non_persistent_buffers_set": set(), "_modules": children, "_init_args": (),
             "_init_kwargs": EasyDict(init_kwargs or {})}
    return Persistent(class_name or type(module).__name__, state, module_src)


# ---------------------------------------------------------------------------------------------------------------------
# ADA pickles.

G_OFFICIAL_KWARGS = dict(z_dim=16, w_dim=16, c_dim=0, img_resolution=16, img_channels=3)
G_MAPPING = dict(num_layers=2)
G_SYNTHESIS = dict(channel_base=256, channel_max=32, conv_clamp=256)
D_KWARGS = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=32, conv_clamp=256)


def tiny_networks(seed: int = 0) -> dict[str, torch.nn.Module]:
    """G, D, G_ema of the official ADA layout (conv clamp 256, as ADA's mixed precision), with non-trivial weights."""
    torch.manual_seed(seed)
    networks: dict[str, torch.nn.Module] = {}
    for key in ("G", "G_ema"):
        G = Generator(**G_OFFICIAL_KWARGS, mapping_kwargs=dict(G_MAPPING), synthesis_kwargs=dict(G_SYNTHESIS))
        networks[key] = G
    networks["D"] = Discriminator(**D_KWARGS, mbstd_group_size=2)
    with torch.no_grad():
        for network in networks.values():
            for tensor in network.state_dict().values():
                if tensor.is_floating_point() and tensor.ndim <= 1 and tensor.numel() > 0:
                    tensor.add_(torch.randn_like(tensor) * 0.5)  # biases, noise strengths, w_avg away from init
    return {key: network.eval() for key, network in networks.items()}


def ada_records(networks: dict[str, torch.nn.Module]) -> dict[str, Any]:
    """The official pickle dict of sgmodels networks, with official constructor arguments (ADA's nesting)."""
    g_kwargs = {**G_OFFICIAL_KWARGS, "mapping_kwargs": EasyDict(G_MAPPING),
                "synthesis_kwargs": EasyDict(G_SYNTHESIS, num_fp16_res=2)}
    d_kwargs = {**D_KWARGS, "num_fp16_res": 2, "block_kwargs": EasyDict(), "mapping_kwargs": EasyDict(),
                "epilogue_kwargs": EasyDict(mbstd_group_size=2)}
    data: dict[str, Any] = {
        "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": "/nowhere/ffhq16.zip",
                                "use_labels": False, "max_size": 70000, "xflip": True, "resolution": 16},
        "augment_pipe": None,
    }
    for key, network in networks.items():
        kwargs = d_kwargs if key == "D" else g_kwargs
        data[key] = record_of(network, "Discriminator" if key == "D" else "Generator", kwargs)
    return data


def write_pickle(path: Path, data: Any, protocol: int = 3) -> Path:
    """Pickle `data` with the official module names registered (ADA pickles use protocol 3 or 4)."""
    with official_module_names():
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def write_ada_pickle(path: Path, networks: dict[str, torch.nn.Module], protocol: int = 3) -> Path:
    return write_pickle(path, ada_records(networks), protocol)


def stylegan3_generator_record(networks: dict[str, torch.nn.Module]) -> Persistent:
    """A G_ema record shaped like an alias-free generator: its synthesis has a SynthesisInput child."""
    synthesis = Persistent("SynthesisNetwork", {"_parameters": OrderedDict(), "_buffers": OrderedDict(),
                                                "_modules": OrderedDict(input=Persistent("SynthesisInput", {}))})
    mapping = record_of(networks["G_ema"].mapping, "MappingNetwork")
    return Persistent("Generator", {"_parameters": OrderedDict(), "_buffers": OrderedDict(),
                                    "_modules": OrderedDict(mapping=mapping, synthesis=synthesis),
                                    "_init_kwargs": EasyDict(G_OFFICIAL_KWARGS)})


# ---------------------------------------------------------------------------------------------------------------------
# rosinality checkpoints.


def rosinality_generator_state(G: Generator) -> dict[str, torch.Tensor]:
    """His generator keys (model.py Generator) for an sgmodels skip generator with 3 channels."""
    src = G.state_dict()
    out: dict[str, torch.Tensor] = {}
    for i in range(G.mapping.num_layers):
        out[f"style.{i + 1}.weight"] = src[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = src[f"mapping.fc{i}.bias"]
    out["input.input"] = src["synthesis.b4.const"][None]
    layers = [("conv1", "synthesis.b4.conv1")]
    resolutions = G.synthesis.block_resolutions[1:]
    for j, res in enumerate(resolutions):
        layers += [(f"convs.{2 * j}", f"synthesis.b{res}.conv0"), (f"convs.{2 * j + 1}", f"synthesis.b{res}.conv1")]
        out[f"convs.{2 * j}.conv.blur.kernel"] = torch.ones(4, 4)  # his FIR buffers (dropped on import)
        out[f"to_rgbs.{j}.upsample.kernel"] = torch.ones(4, 4)
    for index, (his, ours) in enumerate(layers):
        out[f"{his}.conv.weight"] = src[f"{ours}.weight"][None]
        out[f"{his}.conv.modulation.weight"] = src[f"{ours}.affine.weight"]
        out[f"{his}.conv.modulation.bias"] = src[f"{ours}.affine.bias"]
        out[f"{his}.noise.weight"] = src[f"{ours}.noise_strength"].reshape(1)
        out[f"{his}.activate.bias"] = src[f"{ours}.bias"]
        out[f"noises.noise_{index}"] = src[f"{ours}.noise_const"][None, None]
    for his, res in [("to_rgb1", 4)] + [(f"to_rgbs.{j}", res) for j, res in enumerate(resolutions)]:
        out[f"{his}.conv.weight"] = src[f"synthesis.b{res}.torgb.weight"][None]
        out[f"{his}.conv.modulation.weight"] = src[f"synthesis.b{res}.torgb.affine.weight"]
        out[f"{his}.conv.modulation.bias"] = src[f"synthesis.b{res}.torgb.affine.bias"]
        out[f"{his}.bias"] = src[f"synthesis.b{res}.torgb.bias"].reshape(1, 3, 1, 1)
    return {key: value.clone() for key, value in out.items()}


def rosinality_discriminator_state(D: Discriminator) -> dict[str, torch.Tensor]:
    """His discriminator keys (model.py Discriminator: ConvLayer / ResBlock sequentials) for an sgmodels resnet D."""
    src = D.state_dict()
    size = D.img_resolution
    out = {"convs.0.0.weight": src[f"b{size}.fromrgb.weight"], "convs.0.1.bias": src[f"b{size}.fromrgb.bias"]}
    for i, res in enumerate(D.block_resolutions, start=1):
        out.update({f"convs.{i}.conv1.0.weight": src[f"b{res}.conv0.weight"],
                    f"convs.{i}.conv1.1.bias": src[f"b{res}.conv0.bias"],
                    f"convs.{i}.conv2.0.kernel": torch.ones(4, 4),  # his blur buffer (dropped on import)
                    f"convs.{i}.conv2.1.weight": src[f"b{res}.conv1.weight"],
                    f"convs.{i}.conv2.2.bias": src[f"b{res}.conv1.bias"],
                    f"convs.{i}.skip.0.kernel": torch.ones(4, 4),
                    f"convs.{i}.skip.1.weight": src[f"b{res}.skip.weight"]})
    out.update({"final_conv.0.weight": src["b4.conv.weight"], "final_conv.1.bias": src["b4.conv.bias"],
                "final_linear.0.weight": src["b4.fc.weight"], "final_linear.0.bias": src["b4.fc.bias"],
                "final_linear.1.weight": src["b4.out.weight"], "final_linear.1.bias": src["b4.out.bias"]})
    return {key: value.clone() for key, value in out.items()}


def rosinality_discriminator(size: int = 16, multiplier: int = 2, seed: int = 1) -> Discriminator:
    """An sgmodels discriminator with his layout (resnet, minibatch stddev group 4)."""
    torch.manual_seed(seed)
    D = Discriminator(img_resolution=size, img_channels=3, channel_base=16384 * multiplier, channel_max=512)
    with torch.no_grad():
        for tensor in D.state_dict().values():
            if tensor.ndim == 1:
                tensor.add_(torch.randn_like(tensor) * 0.5)
    return D.eval()


def rosinality_generator(size: int = 16, style_dim: int = 16, n_mlp: int = 2, multiplier: int = 2,
                         seed: int = 0) -> Generator:
    """An sgmodels generator with his widths (512 up to 32x32, 256 * multiplier at 64; here capped small)."""
    torch.manual_seed(seed)
    G = Generator(z_dim=style_dim, w_dim=style_dim, img_resolution=size, img_channels=3,
                  mapping_kwargs={"num_layers": n_mlp},
                  synthesis_kwargs={"channel_base": 16384 * multiplier, "channel_max": 512})
    with torch.no_grad():
        for name, tensor in G.state_dict().items():
            if tensor.ndim <= 1 and name != "mapping.w_avg":
                tensor.add_(torch.randn_like(tensor) * 0.5)
        G.mapping.w_avg.copy_(torch.randn(style_dim))
    return G.eval()


def write_rosinality(path: Path, G: Generator, with_latent_avg: bool = True, extra: dict[str, Any] | None = None,
                     args: bool = False) -> Path:
    """torch.save of {"g_ema", ["latent_avg"], ["args"], ...} in his layout."""
    checkpoint: dict[str, Any] = {"g_ema": rosinality_generator_state(G)}
    if with_latent_avg:
        checkpoint["latent_avg"] = G.mapping.w_avg.clone()
    if args:
        checkpoint["args"] = argparse.Namespace(size=G.img_resolution, latent=G.w_dim, n_mlp=G.mapping.num_layers,
                                                channel_multiplier=2, r1=10.0)
    checkpoint.update(extra or {})
    torch.save(checkpoint, path)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Hostile payloads: each would create `target` if anything executed it.


class UnknownThing:
    """A class outside every allow-list (pickled as `evil.UnknownThing` inside `official_module_names`)."""

    def __init__(self, target: str = "") -> None:
        self.target = target


class OsSystem:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


class BuiltinsEval:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, (f"open({str(self.target)!r}, 'w').close()",))


class SubprocessCall:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (subprocess.call, (["touch", str(self.target)],))


class NestedTorchPayload:
    """A nested torch file (as `torch.storage._load_from_bytes` reads) that itself carries an os.system payload."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        buffer = io.BytesIO()
        torch.save(OsSystem(self.target), buffer, _use_new_zipfile_serialization=False)
        return (torch.storage._load_from_bytes, (buffer.getvalue(),))


PAYLOADS = {"os.system": OsSystem, "builtins.eval": BuiltinsEval, "subprocess.call": SubprocessCall,
            "unknown class": UnknownThing, "nested torch file": NestedTorchPayload}
REFUSED_GLOBAL = {"os.system": "system", "builtins.eval": "builtins.eval", "subprocess.call": "subprocess.call",
                  "unknown class": "evil.UnknownThing", "nested torch file": "_load_from_bytes"}


def write_hostile_ada_pickle(path: Path, payload: str, target: Path) -> Path:
    """An ADA-looking pickle (a real persistent G_ema record first) with the payload as another entry."""
    networks = tiny_networks()
    source = f"open({str(target)!r}, 'w').close()  # the official loader would exec this module source"
    data = {"G_ema": record_of(networks["G_ema"], "Generator", dict(G_OFFICIAL_KWARGS), module_src=source),
            "augment_pipe": PAYLOADS[payload](target)}
    return write_pickle(path, data)


def write_hostile_rosinality(path: Path, target: Path) -> Path:
    """A rosinality-looking torch zip whose "args" entry carries an os.system payload."""
    return write_rosinality(path, rosinality_generator(), extra={"args": OsSystem(target)})
