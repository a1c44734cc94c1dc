"""Importer of official PyTorch pickles: stylegan2-ada-pytorch and the StyleGAN2 networks of stylegan3 pickles.

File (docs/models.md section 4.3): a pickled dict {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs", ...}
whose networks are `torch_utils.persistence` objects: each pickles as
`_reconstruct_persistent_obj(meta)` with meta = {type: "class", version, module_src, class_name, state}, where
`state` is the module's `__dict__` (`_parameters`, `_buffers`, `_modules` holding child persistent objects,
`_init_args`, `_init_kwargs`, plain attributes). The official loader executes `module_src`; here
`_reconstruct_persistent_obj` is replaced by a function that keeps the class name and state and drops the source,
under a restricted unpickler that allows nothing else but containers, numpy scalars and torch tensor rebuilding.

Mapping onto sgmodels (parameter names are the official ones already, `sgmodels/stylegan2.py`):

* `Generator(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs, synthesis_kwargs)` ->
  `stylegan2.Generator` with the same values. stylegan3's `networks_stylegan2.Generator` takes the synthesis
  arguments as top-level keywords; they are gathered the same way.
* synthesis arguments kept: channel_base, channel_max, architecture, resample_filter, conv_clamp, use_noise;
  dropped because they only choose the arithmetic (sgmodels runs fp32, the official fp16 layers give the same
  image up to fp16 rounding): num_fp16_res, fp16_channels_last, channels_last, fused_modconv_default;
  kernel_size must be 3 and activation 'lrelu' (the only values sgmodels builds).
* mapping arguments (num_layers, embed_features, layer_features, activation, lr_multiplier, w_avg_beta) as given.
* `Discriminator(..., block_kwargs, mapping_kwargs, epilogue_kwargs)` -> `stylegan2.Discriminator`: architecture,
  channel_base, channel_max, conv_clamp, cmap_dim as given; block resample_filter; epilogue mbstd_group_size /
  mbstd_num_channels; activations must be 'lrelu'; num_fp16_res, fp16_channels_last and freeze_layers (training
  only) dropped.
* state: `_parameters` and persistent `_buffers` of every module, flattened with dotted child names (w_avg and
  noise_const included), then checked against the sgmodels network on the meta device.

A StyleGAN3 (alias-free) generator and the augmentation pipeline are reported as unsupported, not built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sgmodels.importers.registry import (
    MAX_NESTING,
    NETWORK_KEYS,
    CheckpointFormatError,
    ImportedCheckpoint,
    ImportedNetwork,
    is_pickle,
    json_ready,
    register_importer,
)
from sgmodels.importers.unpickle import (
    NUMPY_GLOBALS,
    SAFE_CONTAINER_GLOBALS,
    TORCH_TENSOR_GLOBALS,
    restricted_load,
)

FORMAT = "ada-pickle"
_STYLEGAN3_CLASSES = {"SynthesisInput"}  # only the alias-free synthesis network has this child
_GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
_DISCRIMINATOR_ARGS = ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max",
                       "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs")
_SYNTHESIS_KEPT = ("channel_base", "channel_max", "architecture", "resample_filter", "conv_clamp", "use_noise")
_RUNTIME_ONLY = ("num_fp16_res", "fp16_channels_last", "channels_last", "fused_modconv_default", "freeze_layers")
_MAPPING_KEPT = ("num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta")
_FIXED = {"kernel_size": 3, "activation": "lrelu"}  # official arguments sgmodels supports with this value only


class PersistentRecord:
    """What `_reconstruct_persistent_obj` keeps of a persistent object: class name and state, never the source."""

    def __init__(self, class_name: str, state: dict[str, Any], version: Any) -> None:
        self.class_name = class_name
        self.state = state
        self.version = version

    def __setstate__(self, state: Any) -> None:  # a BUILD opcode aimed at a record is not part of the format
        raise ValueError("unexpected state for a persistent object record")

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name})"


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Replacement of `torch_utils.persistence._reconstruct_persistent_obj`: drops `module_src` unexecuted."""
    if not isinstance(meta, Mapping) or meta.get("type") != "class":
        raise ValueError("a persistent object must be described by a dict with type 'class'")
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, Mapping):
        raise ValueError("a persistent object needs a class_name string and a state dict")
    return PersistentRecord(class_name, dict(state), meta.get("version"))


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **SAFE_CONTAINER_GLOBALS,
    **NUMPY_GLOBALS,
    **TORCH_TENSOR_GLOBALS,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
}


# ---------------------------------------------------------------------------------------------------------------------
# Walking the records.


def flat_state(record: PersistentRecord, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a module record and its children, under dotted state-dict names.

    CheckpointFormatError for a module tree deeper than MAX_NESTING (or containing itself)."""
    _check_depth(depth, prefix)
    state = record.state
    skipped = set(state.get("_non_persistent_buffers_set") or ())
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skipped):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointFormatError(f"{prefix}{name} is not a tensor ({type(tensor).__name__})")
            out[prefix + name] = tensor.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise CheckpointFormatError(f"module {prefix}{name} is not a persistent object ({type(child).__name__})")
        out.update(flat_state(child, f"{prefix}{name}.", depth + 1))
    return out


def _check_depth(depth: int, prefix: str) -> None:
    if depth > MAX_NESTING:
        raise CheckpointFormatError(f"module {prefix.rstrip('.') or 'tree'} is nested deeper than {MAX_NESTING} "
                                    "levels (or contains itself); official networks nest about 6")


def _class_names(record: PersistentRecord, depth: int = 0) -> set[str]:
    _check_depth(depth, record.class_name)
    names = {record.class_name}
    for child in (record.state.get("_modules") or {}).values():
        if isinstance(child, PersistentRecord):
            names |= _class_names(child, depth + 1)
    return names


def init_kwargs(record: PersistentRecord, names: tuple[str, ...]) -> dict[str, Any]:
    """Constructor arguments of a record: `_init_kwargs` plus positional `_init_args` named after `names`."""
    args = list(record.state.get("_init_args") or ())
    kwargs = dict(record.state.get("_init_kwargs") or {})
    if len(args) > len(names):
        raise CheckpointFormatError(f"{record.class_name}: {len(args)} positional arguments, expected at most "
                                    f"{len(names)}")
    kwargs.update(zip(names, args, strict=False))
    return json_ready(kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Official constructor arguments -> sgmodels descriptions.


def _translate(kwargs: Mapping[str, Any], kept: tuple[str, ...], what: str,
               dropped: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keep `kept`, drop runtime-only arguments (into `dropped`), check fixed ones; anything else is a clear error."""
    out = {}
    for key, value in kwargs.items():
        if key in kept:
            out[key] = value
        elif key in _FIXED:
            if value != _FIXED[key]:
                raise CheckpointFormatError(f"{what}: {key}={value!r} is not supported (sgmodels builds "
                                            f"{key}={_FIXED[key]!r} only)")
        elif key in _RUNTIME_ONLY:
            if dropped is not None:
                dropped[key] = value
        else:
            raise CheckpointFormatError(f"{what}: unknown official argument {key}={value!r}; sgmodels cannot map it")
    return out


def generator_description(kwargs: Mapping[str, Any], dropped: dict[str, Any] | None = None) -> dict[str, Any]:
    """sgmodels description of an official `Generator(**kwargs)` (ADA layout or stylegan3's flat layout); the
    runtime-only arguments it drops go into `dropped`."""
    rest = dict(kwargs)
    top = {key: rest.pop(key) for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels") if key in rest}
    mapping = _translate(rest.pop("mapping_kwargs", None) or {}, _MAPPING_KEPT, "Generator mapping_kwargs")
    synthesis = {**(rest.pop("synthesis_kwargs", None) or {}), **rest}  # stylegan3: synthesis arguments at top level
    synthesis = _translate(synthesis, _SYNTHESIS_KEPT, "Generator synthesis_kwargs", dropped)
    return {"class": "stylegan2.Generator",
            "init_kwargs": {**top, "synthesis": "stylegan2", "mapping_kwargs": mapping, "synthesis_kwargs": synthesis}}


def discriminator_description(kwargs: Mapping[str, Any], dropped: dict[str, Any] | None = None) -> dict[str, Any]:
    """sgmodels description of an official `Discriminator(**kwargs)`; dropped runtime-only arguments into `dropped`."""
    rest = dict(kwargs)
    block = rest.pop("block_kwargs", None) or {}
    epilogue = rest.pop("epilogue_kwargs", None) or {}
    mapping = _translate(rest.pop("mapping_kwargs", None) or {}, _MAPPING_KEPT, "Discriminator mapping_kwargs")
    top = _translate(rest, ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base",
                            "channel_max", "conv_clamp", "cmap_dim"), "Discriminator", dropped)
    top.update(_translate(block, ("resample_filter",), "Discriminator block_kwargs", dropped))
    top.update(_translate(epilogue, ("mbstd_group_size", "mbstd_num_channels"), "Discriminator epilogue_kwargs"))
    return {"class": "stylegan2.Discriminator", "init_kwargs": {**top, "mapping_kwargs": mapping}}


def _map_network(record: PersistentRecord, dropped: dict[str, Any]) -> ImportedNetwork:
    classes = _class_names(record)
    if classes & _STYLEGAN3_CLASSES:
        raise CheckpointFormatError(f"it is a StyleGAN3 (alias-free) generator ({record.class_name} with "
                                    "SynthesisInput), which sgmodels does not implement; only StyleGAN2 networks of "
                                    "stylegan3 pickles (--cfg=stylegan2) can be imported")
    if record.class_name == "Generator":
        description = generator_description(init_kwargs(record, _GENERATOR_ARGS), dropped)
    elif record.class_name == "Discriminator":
        description = discriminator_description(init_kwargs(record, _DISCRIMINATOR_ARGS), dropped)
    else:
        raise CheckpointFormatError(f"class {record.class_name!r} is not an official Generator or Discriminator")
    return ImportedNetwork(description, flat_state(record), f"{record.class_name} (official PyTorch persistent class)")


# ---------------------------------------------------------------------------------------------------------------------
# Loading.


def load_ada_pickle(path: Path) -> ImportedCheckpoint:
    """Read an official PyTorch pickle through the restricted unpickler and map its networks onto sgmodels."""
    data = restricted_load(path, ALLOWED_GLOBALS)
    if not isinstance(data, Mapping) or not any(key in data for key in NETWORK_KEYS):
        raise CheckpointFormatError(f"{path}: an official PyTorch pickle holds a dict with G, D and G_ema; found "
                                    f"{type(data).__name__}")
    networks: dict[str, ImportedNetwork] = {}
    unsupported: dict[str, str] = {}
    dropped: dict[str, dict[str, Any]] = {}
    for key in NETWORK_KEYS:
        record = data.get(key)
        if record is None:
            continue
        if not isinstance(record, PersistentRecord):
            unsupported[key] = f"not a persistent network object ({type(record).__name__})"
            continue
        try:
            networks[key] = _map_network(record, dropped.setdefault(key, {}))
        except CheckpointFormatError as exc:
            unsupported[key] = str(exc)
        except (TypeError, AttributeError, ValueError) as exc:  # a record state of the wrong structure
            unsupported[key] = f"a malformed persistent record ({type(exc).__name__}: {str(exc)[:200]})"
    try:
        metadata = _metadata(data)
    except CheckpointFormatError as exc:
        raise CheckpointFormatError(f"{path}: {exc}") from None
    if any(dropped.values()):  # e.g. num_fp16_res: sgmodels computes in fp32 (the image differs by fp16 rounding)
        metadata["runtime_arguments_not_kept"] = {key: args for key, args in dropped.items() if args}
    return ImportedCheckpoint(FORMAT, networks, unsupported, metadata)


def _metadata(data: Mapping[str, Any]) -> dict[str, Any]:
    """Training-set settings and the other non-network entries (the augmentation pipeline is named, not kept)."""
    metadata: dict[str, Any] = {"format": FORMAT}
    kwargs = data.get("training_set_kwargs")
    if isinstance(kwargs, Mapping):
        metadata["training_set_kwargs"] = json_ready(dict(kwargs))
        path = kwargs.get("path")
        if isinstance(path, str) and os.path.exists(os.path.expanduser(path)):  # usable as the default reference
            metadata["training_set"] = {"path": path, "xflip": bool(kwargs.get("xflip", False))}
    pipe = data.get("augment_pipe")
    if isinstance(pipe, PersistentRecord):
        metadata["augment_pipe"] = f"{pipe.class_name} (not imported: sgmodels networks only)"
    others = sorted(str(key) for key in data if key not in (*NETWORK_KEYS, "training_set_kwargs", "augment_pipe"))
    if others:
        metadata["other_entries"] = others
    return metadata


def detect_ada_pickle(path: Path, head: bytes) -> bool:
    """A pickle whose first bytes name the official persistent-class reconstructor (never unpickles)."""
    return is_pickle(head) and b"_reconstruct_persistent_obj" in head and b"torch_utils.persistence" in head


register_importer(FORMAT, detect_ada_pickle, load_ada_pickle)
