"""Import official TensorFlow pickles of StyleGAN v1, StyleGAN2 and StyleGAN2-ADA-TF without TensorFlow.

A TF release file is a pickle of `(G, D, Gs)`, three `dnnlib.tflib.network.Network` objects whose state is a dict
(docs/models.md section 4.2): `version` (3 for StyleGAN v1, 4 for StyleGAN2), `name`, `static_kwargs` (the
constructor arguments), `build_func_name`, `build_module_src` (the Python source of the network module),
`variables` (a list of `(name, numpy array)`) and `components` (the nested mapping / synthesis networks).

Unpickling goes through `restricted_load` with a table of only the numpy array globals and a stub for `Network`
that keeps the state dict: the embedded source code is never executed (not even read). The networks are rebuilt as
sgmodels networks from `static_kwargs` (with the TF defaults of each build function), their tensors are mapped by
the tables of `sgmodels.importers.tf_names`, and every TF variable must be used and every sgmodels tensor found,
so a pickle of another architecture is a clear error instead of a silently wrong network.

Supported (G and Gs always; D where sgmodels has the same discriminator):

| TF build function | sgmodels |
|---|---|
| `G_style` (v1; conditional, traditional input, fused or not, any lod) | Generator, synthesis "stylegan" |
| `G_main` with `G_synthesis_stylegan2` (configs E, F) | Generator, synthesis "stylegan2" |
| `G_main` with `G_synthesis_stylegan_revised` (configs B-D) | the same, progressive "orig" |
| `G_main` with ADA-TF `G_synthesis` (conv_clamp, num_fp16_res, LabelEmbed) | the same |
| `D_basic` (v1, incl. the conditional label switch) | stylegan.Discriminator |
| `D_stylegan2`, `D_stylegan` (progressive), ADA-TF `D_main`; unconditional only | stylegan2.Discriminator |

A file holding one discriminator-type network, such as the official metrics' CelebA-HQ attribute classifiers
(`celebahq-classifier-XX-<name>.pkl`, one logit each), is read by `import_tf_discriminator`.

Conventions carried over so the imported network computes what the TF one computes:

* StyleGAN v1 mapping biases are divided by sqrt(2) (gain placement, see `tf_names`); labels use the TF
  `LabelConcat` embedding (normalised jointly with z); truncation without an explicit cutoff touches the first
  `truncation_cutoff` layers of the pickle (TF default 8; a pickle with `truncation_cutoff=None` never truncates).
* StyleGAN2 upsampling kernels are flipped, `mod_bias` gets its +1, `dlatent_avg` becomes `mapping.w_avg`, the
  `noise{i}` variables become the `noise_const` buffers (used with `noise_mode="const"`).
* TF defaults: truncation psi 0.7 (v1) / 0.5 (v2) applied by `Gs.run` are not carried over: sgmodels truncates only
  when asked (`truncation_psi=1` by default), which is what metrics need.
* fp16 of ADA-TF (`num_fp16_res`) is recorded in the description; it only has an effect on CUDA devices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgmodels.importers import tf_names
from sgmodels.importers.registry import (
    CheckpointFormatError,
    ImportedCheckpoint,
    ImportedNetwork,
    is_pickle,
    register_importer,
)
from sgmodels.importers.unpickle import NUMPY_GLOBALS, SAFE_CONTAINER_GLOBALS, restricted_load
from sgmodels.snapshot import SnapshotError, _check_state_dict, build_network_on_meta

__all__ = ["DISCRIMINATOR_BUILD_FUNCTIONS", "FORMAT_NAME", "TF_NETWORK_GLOBAL", "TFNetwork", "TFNetworkStub",
           "import_tf_discriminator", "import_tf_pickle", "read_tf_pickle"]

FORMAT_NAME = "tf-pickle"
TF_NETWORK_GLOBAL = ("dnnlib.tflib.network", "Network")
SUPPORTED_VERSIONS = (2, 3, 4)  # dnnlib Network state versions (v1 writes 3, StyleGAN2 / ADA-TF 4)
_MAX_COMPONENT_DEPTH = 2  # G -> mapping / synthesis; deeper nesting is no official network


class TFNetworkStub:
    """Stand-in for `dnnlib.tflib.network.Network`: pickle's BUILD step hands it the state dict, which it keeps.

    Nothing else happens: no TF graph, no `exec` of `build_module_src`.
    """

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


TF_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    **SAFE_CONTAINER_GLOBALS,
    **NUMPY_GLOBALS,
    TF_NETWORK_GLOBAL: TFNetworkStub,
}


@dataclass
class TFNetwork:
    """The parts of a TF `Network` state the importer uses (build_module_src is dropped unread)."""

    name: str  # "G", "D", "Gs", "G_mapping", "G_synthesis"
    version: int  # dnnlib state version
    build_func_name: str  # "G_style", "G_main", "D_basic", ...
    static_kwargs: dict[str, Any]  # constructor arguments
    variables: dict[str, np.ndarray]  # own variables, name -> float array
    components: dict[str, TFNetwork] = field(default_factory=dict)  # "mapping" / "synthesis" -> sub-network

    def flat_variables(self) -> dict[str, np.ndarray]:
        """Own variables plus those of the components under `<component key>/` (e.g. "mapping/Dense0/weight")."""
        flat = dict(self.variables)
        for key, component in self.components.items():
            flat.update({f"{key}/{name}": value for name, value in component.flat_variables().items()})
        return flat

    def merged_kwargs(self) -> dict[str, Any]:
        """static_kwargs of the components and of the network itself (the network's own win)."""
        merged: dict[str, Any] = {}
        for component in self.components.values():
            merged.update(component.merged_kwargs())
        merged.update(self.static_kwargs)
        return merged


# ---------------------------------------------------------------------------------------------------------------------
# Reading the pickle.


def read_tf_pickle(path: str | Path) -> dict[str, TFNetwork]:
    """Unpickle a TF network pickle safely: {"G", "D", "Gs"} for a release tuple, {"Gs"} or {"D"} for one network.

    Raises:
        UnsafePickleError: the pickle names a global other than numpy arrays and the dnnlib Network.
        CheckpointFormatError: the pickle holds something else than TF networks, or a malformed network state.
    """
    path = Path(path)
    obj = restricted_load(path, TF_PICKLE_GLOBALS)
    if isinstance(obj, TFNetworkStub):
        net = _parse_network(obj, str(path), depth=0)
        return {"D" if net.build_func_name.startswith("D") else "Gs": net}
    if isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(item, TFNetworkStub) for item in obj):
        keys = ("G", "D", "Gs")
        return {key: _parse_network(item, f"{path} ({key})", depth=0) for key, item in zip(keys, obj, strict=True)}
    raise CheckpointFormatError(f"{path}: a TF pickle holds a (G, D, Gs) tuple of dnnlib networks or one network; "
                                f"this one holds {type(obj).__name__}")


def _parse_network(stub: TFNetworkStub, where: str, depth: int) -> TFNetwork:
    state = stub.state
    if not isinstance(state, dict):
        raise CheckpointFormatError(f"{where}: the network state is {type(state).__name__}, not a dict")
    version = state.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise CheckpointFormatError(f"{where}: dnnlib network state version {version!r} (supported: "
                                    f"{', '.join(map(str, SUPPORTED_VERSIONS))})")
    name, func = state.get("name"), state.get("build_func_name")
    kwargs = state.get("static_kwargs", {})
    if not isinstance(name, str) or not isinstance(func, str) or not isinstance(kwargs, dict):
        raise CheckpointFormatError(f"{where}: malformed network state (name, build_func_name, static_kwargs)")
    if not all(isinstance(key, str) for key in kwargs):
        raise CheckpointFormatError(f"{where}: static_kwargs keys must be strings")
    return TFNetwork(name=name, version=version, build_func_name=func, static_kwargs=dict(kwargs),
                     variables=_parse_variables(state.get("variables"), where),
                     components=_parse_components(state.get("components", {}), where, depth))


def _parse_variables(variables: Any, where: str) -> dict[str, np.ndarray]:
    if not isinstance(variables, (list, tuple)):
        raise CheckpointFormatError(f"{where}: 'variables' must be a list of (name, array) pairs")
    parsed: dict[str, np.ndarray] = {}
    for item in variables:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise CheckpointFormatError(f"{where}: 'variables' must be a list of (name, array) pairs")
        name, value = item
        if not isinstance(value, (np.ndarray, np.generic)) or value.dtype.kind not in "fiub":
            raise CheckpointFormatError(f"{where}: variable {name!r} is not a numeric numpy array")
        parsed[name] = np.asarray(value)
    return parsed


def _parse_components(components: Any, where: str, depth: int) -> dict[str, TFNetwork]:
    if not isinstance(components, dict):
        raise CheckpointFormatError(f"{where}: 'components' must be a dict")
    if components and depth >= _MAX_COMPONENT_DEPTH:
        raise CheckpointFormatError(f"{where}: networks nested deeper than {_MAX_COMPONENT_DEPTH} levels")
    parsed = {}
    for key, value in components.items():
        if not isinstance(key, str) or not isinstance(value, TFNetworkStub):
            raise CheckpointFormatError(f"{where}: component {key!r} is not a dnnlib network")
        parsed[key] = _parse_network(value, f"{where} / {key}", depth + 1)
    return parsed


# ---------------------------------------------------------------------------------------------------------------------
# static_kwargs -> sgmodels constructor arguments.


class _Kwargs:
    """Reads static_kwargs with the TF defaults of a build function and names any argument it does not know."""

    def __init__(self, kwargs: Mapping[str, Any], where: str, ignored: tuple[str, ...]) -> None:
        self._kwargs = dict(kwargs)
        self._where = where
        self._used = set(ignored)

    def get(self, key: str, default: Any) -> Any:
        self._used.add(key)
        return self._kwargs.get(key, default)

    def require(self, key: str, default: Any, allowed: tuple[Any, ...]) -> Any:
        """A kwarg whose every other value sgmodels cannot reproduce."""
        value = self.get(key, default)
        if value not in allowed:
            raise CheckpointFormatError(f"{self._where}: {key}={value!r} is not supported (sgmodels reproduces "
                                        f"{', '.join(map(repr, allowed))})")
        return value

    def check_unknown(self) -> None:
        unknown = sorted(set(self._kwargs) - self._used)
        if unknown:
            raise CheckpointFormatError(f"{self._where}: unknown TF network arguments {unknown}; this network "
                                        "differs from the official architectures sgmodels imports")


# Arguments that change nothing in the computed function (evaluation switches, graph structure, dtype of the
# template graph) or are read elsewhere (mapping_func / synthesis_func: the components' build_func_name).
_RUNTIME_KWARGS = ("truncation_psi", "truncation_psi_val", "truncation_cutoff_val", "style_mixing_prob", "structure",
                   "randomize_noise", "is_template_graph", "force_clean_graph", "dlatent_broadcast", "is_training",
                   "is_validation", "return_dlatents", "fused_modconv", "mapping_func", "synthesis_func", "dtype")
# ADA-TF D_main: settings of training only (accepted), and comparison methods that change the network (refused
# unless off). The label mapping arguments only matter for conditional networks, which are refused anyway.
_ADA_TF_D_TRAINING_KWARGS = ("augment_strength", "freeze_layers", "score_size", "pagan_num", "pagan_fade",
                             "mapping_layers", "mapping_fmaps", "mapping_lrmul")
_ADA_TF_D_COMPARISONS = {"use_pagan": False, "score_max": 1, "use_spectral_norm": False, "adaptive_dropout": 0}
_V1_SYNTHESIS = "G_synthesis"
_V2_SYNTHESES = ("G_synthesis_stylegan2", "G_synthesis_stylegan_revised", "G_synthesis")


def _channel_kwargs(kw: _Kwargs, fmap_base_default: int) -> dict[str, Any]:
    """TF nf(stage) = clip(fmap_base / 2**stage, fmap_min, fmap_max) with stage = log2(res) - 1, which is sgmodels'
    min(channel_base // res, channel_max) with channel_base = 2 * fmap_base (for fmap_decay 1, fmap_min 1)."""
    kw.require("fmap_decay", 1.0, (1, 1.0))
    kw.require("fmap_min", 1, (1,))
    fmap_base = int(kw.get("fmap_base", fmap_base_default))
    return {"channel_base": 2 * fmap_base, "channel_max": int(kw.get("fmap_max", 512))}


def _image_kwargs(kw: _Kwargs, with_latents: bool) -> dict[str, Any]:
    kwargs = {"img_resolution": int(kw.get("resolution", 1024)), "img_channels": int(kw.get("num_channels", 3))}
    if with_latents:
        kwargs.update(z_dim=int(kw.get("latent_size", 512)), c_dim=int(kw.get("label_size", 0)),
                      w_dim=int(kw.get("dlatent_size", 512)))
    return kwargs


def _w_avg_beta(kw: _Kwargs) -> float:
    beta = kw.get("dlatent_avg_beta", 0.995)
    return 1.0 if beta is None else float(beta)  # None: TF keeps dlatent_avg but never updates it


def _v1_truncation_cutoff(kw: _Kwargs) -> int:
    """G_style truncates only when both psi and cutoff are set; cutoff None or <= 0 turns truncation off."""
    cutoff = kw.get("truncation_cutoff", 8)
    return 0 if cutoff is None or cutoff <= 0 else int(cutoff)


def _v1_generator_description(net: TFNetwork, where: str) -> dict[str, Any]:
    _check_components(net, where, "G_mapping", (_V1_SYNTHESIS,))
    kw = _Kwargs(net.merged_kwargs(), where, _RUNTIME_KWARGS)
    kw.require("use_wscale", True, (True,))
    kw.require("nonlinearity", "lrelu", ("lrelu",))
    mapping = {
        "num_layers": int(kw.get("mapping_layers", 8)),
        "layer_features": int(kw.get("mapping_fmaps", 512)),
        "activation": kw.require("mapping_nonlinearity", "lrelu", ("lrelu", "relu")),
        "lr_multiplier": float(kw.get("mapping_lrmul", 0.01)),
        "w_avg_beta": _w_avg_beta(kw),
        "normalize_z": bool(kw.get("normalize_latents", True)),
        "label_embedding": "concat",
        "truncation_cutoff_default": _v1_truncation_cutoff(kw),
    }
    blur = kw.get("blur_filter", [1, 2, 1])
    synthesis = {
        **_channel_kwargs(kw, 8192),
        "use_noise": bool(kw.get("use_noise", True)),
        "const_input": bool(kw.get("const_input_layer", True)),
        "use_styles": bool(kw.get("use_styles", True)),
        "use_pixel_norm": bool(kw.get("use_pixel_norm", False)),
        "use_instance_norm": bool(kw.get("use_instance_norm", True)),
        "blur_filter": None if not blur else [float(tap) for tap in blur],
        "fused_scale": kw.require("fused_scale", "auto", ("auto", True, False)),
        "progressive": "ToRGB_lod1" in _scopes(net.components["synthesis"]),
    }
    description = _generator(_image_kwargs(kw, with_latents=True), "stylegan", mapping, synthesis)
    kw.check_unknown()
    return description


def _v2_generator_description(net: TFNetwork, where: str) -> dict[str, Any]:
    synthesis_net = _check_components(net, where, "G_mapping", _V2_SYNTHESES)
    kw = _Kwargs(net.merged_kwargs(), where, _RUNTIME_KWARGS)
    kw.require("nonlinearity", "lrelu", ("lrelu",))
    kw.require("fmap_const", None, (None,))
    latents = _image_kwargs(kw, with_latents=True)
    ada_tf = synthesis_net.build_func_name == "G_synthesis"
    label_fmaps = kw.get("label_fmaps", None)
    mapping = {
        "num_layers": int(kw.get("mapping_layers", 8)),
        "layer_features": int(kw.get("mapping_fmaps", None if ada_tf else 512) or latents["w_dim"]),
        "activation": kw.require("mapping_nonlinearity", "lrelu", ("lrelu", "relu", "linear")),
        "lr_multiplier": float(kw.get("mapping_lrmul", 0.01)),
        "w_avg_beta": _w_avg_beta(kw),
        "normalize_z": bool(kw.get("normalize_latents", True)),
        # TF StyleGAN2 concatenates raw label embeddings (LabelConcat); ADA-TF embeds them like ADA PyTorch.
        "label_embedding": "dense" if ada_tf else "concat",
        "embed_features": int(label_fmaps) if label_fmaps is not None else latents["z_dim"],
        "truncation_cutoff_default": _optional_int(kw.get("truncation_cutoff", None)),
    }
    conv_clamp = kw.get("conv_clamp", None)
    synthesis = {
        **_channel_kwargs(kw, 16384),
        "architecture": kw.require("architecture", "skip", ("orig", "skip", "resnet")),
        "use_noise": bool(kw.get("use_noise", True)),
        "resample_filter": [float(tap) for tap in (kw.get("resample_kernel", [1, 3, 3, 1]) or [1, 1])],
        "conv_clamp": None if conv_clamp is None else float(conv_clamp),
        "num_fp16_res": int(kw.get("num_fp16_res", 0)),
        "progressive": synthesis_net.build_func_name == "G_synthesis_stylegan_revised",
    }
    if synthesis["progressive"]:
        synthesis["architecture"] = "orig"  # the revised synthesis of configs B-D has one ToRGB per level
    description = _generator(latents, "stylegan2", mapping, synthesis)
    kw.check_unknown()
    return description


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _generator(latents: dict[str, Any], synthesis: str, mapping: dict[str, Any],
               synthesis_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"class": "stylegan2.Generator", "init_kwargs": {**latents, "synthesis": synthesis,
                                                            "mapping_kwargs": mapping,
                                                            "synthesis_kwargs": synthesis_kwargs}}


def _v1_discriminator_description(net: TFNetwork, where: str) -> dict[str, Any]:
    kw = _Kwargs(net.static_kwargs, where, _RUNTIME_KWARGS)
    kw.require("use_wscale", True, (True,))
    kw.require("nonlinearity", "lrelu", ("lrelu",))
    blur = kw.get("blur_filter", [1, 2, 1])
    init_kwargs = {
        "c_dim": int(kw.get("label_size", 0)),
        **_image_kwargs(kw, with_latents=False),
        **_channel_kwargs(kw, 8192),
        "mbstd_group_size": int(kw.get("mbstd_group_size", 4)),
        "mbstd_num_channels": int(kw.get("mbstd_num_features", 1)),
        "blur_filter": None if not blur else [float(tap) for tap in blur],
        "fused_scale": kw.require("fused_scale", "auto", ("auto", True, False)),
    }
    kw.check_unknown()
    return {"class": "stylegan.Discriminator", "init_kwargs": init_kwargs}


def _v2_discriminator_description(net: TFNetwork, where: str) -> dict[str, Any]:
    ada_tf = net.build_func_name == "D_main"
    kw = _Kwargs(net.static_kwargs, where, _RUNTIME_KWARGS + _ADA_TF_D_TRAINING_KWARGS)
    kw.require("nonlinearity", "lrelu", ("lrelu",))
    kw.require("label_size", 0, (0,))  # TF uses a label switch, sgmodels the ADA projection: no common network
    for key, default in _ADA_TF_D_COMPARISONS.items():  # ADA paper comparison methods: other networks
        kw.require(key, default, (default,))
    progressive = net.build_func_name == "D_stylegan"
    group = kw.get("mbstd_group_size", None if ada_tf else 4)  # ADA-TF: None = the whole minibatch
    features = int(kw.get("mbstd_num_features", 1))
    enabled = features > 0 and (group is None or group > 1)  # TF: group 0 / 1 (v2) or 0 features (ADA-TF) = off
    conv_clamp = kw.get("conv_clamp", None)
    init_kwargs = {
        "c_dim": 0,
        **_image_kwargs(kw, with_latents=False),
        **_channel_kwargs(kw, 16384),
        "architecture": "orig" if progressive else kw.require("architecture", "resnet", ("orig", "skip", "resnet")),
        "mbstd_group_size": None if group is None else int(group),
        "mbstd_num_channels": features if enabled else 0,
        "resample_filter": [float(tap) for tap in (kw.get("resample_kernel", [1, 3, 3, 1]) or [1, 1])],
        "conv_clamp": None if conv_clamp is None else float(conv_clamp),
        "num_fp16_res": int(kw.get("num_fp16_res", 0)),
        "progressive": progressive,
    }
    kw.check_unknown()
    return {"class": "stylegan2.Discriminator", "init_kwargs": init_kwargs}


def _check_components(net: TFNetwork, where: str, mapping_func: str, synthesis_funcs: tuple[str, ...]) -> TFNetwork:
    """The generator's mapping and synthesis components, checked to be the expected build functions."""
    mapping, synthesis = net.components.get("mapping"), net.components.get("synthesis")
    if mapping is None or synthesis is None:
        raise CheckpointFormatError(f"{where}: a {net.build_func_name} network needs 'mapping' and 'synthesis' "
                                    f"components, found {sorted(net.components)}")
    if mapping.build_func_name != mapping_func or synthesis.build_func_name not in synthesis_funcs:
        raise CheckpointFormatError(f"{where}: unsupported components {mapping.build_func_name} / "
                                    f"{synthesis.build_func_name} (expected {mapping_func} / "
                                    f"{' or '.join(synthesis_funcs)})")
    return synthesis


def _scopes(net: TFNetwork) -> set[str]:
    return {name.split("/")[0] for name in net.variables}


# ---------------------------------------------------------------------------------------------------------------------
# Mapping variables onto the rebuilt network.

_Describe = Callable[[TFNetwork, str], dict[str, Any]]
_LayoutOf = Callable[[torch.nn.Module], tf_names.Layout]

# build_func_name -> (description builder, name table)
_FAMILIES: dict[str, tuple[_Describe, _LayoutOf]] = {
    "G_style": (_v1_generator_description, tf_names.v1_generator_layout),
    "G_main": (_v2_generator_description, tf_names.v2_generator_layout),
    "D_basic": (_v1_discriminator_description, tf_names.v1_discriminator_layout),
    "D_stylegan2": (_v2_discriminator_description, tf_names.v2_discriminator_layout),
    "D_stylegan": (_v2_discriminator_description, tf_names.v2_discriminator_layout),
    "D_main": (_v2_discriminator_description, tf_names.v2_discriminator_layout),
}
DISCRIMINATOR_BUILD_FUNCTIONS = tuple(name for name in _FAMILIES if name.startswith("D"))
# TF variables with no sgmodels counterpart: the synthesis network's stored `lod` (G's own `lod` is the one TF uses,
# see tf_names) and G's `lod` when the sgmodels synthesis network is not progressive.
_UNUSED_VARIABLES = ("lod", "synthesis/lod")
_UNSTORED_BUFFERS = ("resample_filter",)  # sgmodels buffers computed from the arguments, not TF variables


def map_tf_network(net: TFNetwork, where: str) -> ImportedNetwork:
    """Describe `net` as an sgmodels network and map its variables onto that network's state-dict keys.

    The network is built on the meta device only (shapes, no memory) to read its name table and expected shapes.

    Raises:
        CheckpointFormatError: an unsupported build function or argument, a variable without an sgmodels tensor, a
            missing variable, or a shape that does not match the architecture described by static_kwargs.
    """
    if net.build_func_name not in _FAMILIES:
        raise CheckpointFormatError(f"{where}: TF networks built by {net.build_func_name!r} are not supported "
                                    f"(supported: {', '.join(_FAMILIES)})")
    describe, layout_of = _FAMILIES[net.build_func_name]
    try:
        description = describe(net, where)
        skeleton = build_network_on_meta(description, where)
        layout = layout_of(skeleton)
    except CheckpointFormatError:
        raise
    except (TypeError, ValueError) as exc:  # SnapshotError too; arguments of the wrong type or out of range
        message = str(exc) if str(exc).startswith(where) else f"{where}: {type(exc).__name__}: {exc}"
        raise CheckpointFormatError(message) from None
    variables = net.flat_variables()
    _check_names(layout, variables, skeleton, where)
    state = {key: tf_names.from_tf(variables[name], transform) for key, (name, transform) in layout.items()}
    expected = {key: (tuple(t.shape), t.dtype) for key, t in skeleton.state_dict().items() if key in layout}
    try:
        _check_state_dict(expected, {key: (tuple(t.shape), t.dtype) for key, t in state.items()}, where)
    except SnapshotError as exc:
        raise CheckpointFormatError(str(exc)) from None
    return ImportedNetwork(description=description, state=state,
                           source_class=f"dnnlib.tflib.network.Network ({net.build_func_name}, version {net.version})")


def _check_names(layout: tf_names.Layout, variables: Mapping[str, np.ndarray], skeleton: torch.nn.Module,
                 where: str) -> None:
    """Every TF variable is used, every needed one exists, every stored sgmodels tensor has a TF variable."""
    needed = {name for name, _ in layout.values()}
    missing = sorted(needed - set(variables))
    unused = sorted(set(variables) - needed - set(_UNUSED_VARIABLES))
    unnamed = sorted(key for key in skeleton.state_dict()
                     if key not in layout and key.rsplit(".", 1)[-1] not in _UNSTORED_BUFFERS)
    problems = []
    if missing:
        problems.append(f"{len(missing)} TF variables missing (e.g. {missing[:3]})")
    if unused:
        problems.append(f"{len(unused)} TF variables without an sgmodels tensor (e.g. {unused[:3]})")
    if unnamed:
        problems.append(f"{len(unnamed)} sgmodels tensors without a TF variable (e.g. {unnamed[:3]})")
    if problems:
        raise CheckpointFormatError(f"{where}: the variables do not match the architecture of static_kwargs: "
                                    + "; ".join(problems))


# ---------------------------------------------------------------------------------------------------------------------
# Importer entry points.

_NETWORK_KEYS = {"G": "G", "D": "D", "Gs": "G_ema"}  # TF tuple position name -> sgmodels snapshot name


def import_tf_pickle(path: str | Path) -> ImportedCheckpoint:
    """Read a TF pickle and map every network sgmodels supports ("G", "D", "G_ema" = TF "Gs").

    A network sgmodels cannot represent (e.g. a conditional StyleGAN2 D) is listed in `unsupported` with the reason;
    a file whose generators cannot be imported is an error.
    """
    path = Path(path)
    networks, unsupported = {}, {}
    tf_networks = read_tf_pickle(path)
    for tf_key, net in tf_networks.items():
        key = _NETWORK_KEYS[tf_key]
        try:
            networks[key] = map_tf_network(net, f"{path} ({tf_key}, {net.build_func_name})")
        except CheckpointFormatError as exc:
            if not net.build_func_name.startswith("D"):
                raise
            unsupported[key] = str(exc)
    versions = sorted({net.version for net in tf_networks.values()})
    return ImportedCheckpoint(format=FORMAT_NAME, networks=networks, unsupported=unsupported,
                              metadata={"tf_network_versions": versions,
                                        "tf_build_functions": {_NETWORK_KEYS[k]: n.build_func_name
                                                               for k, n in tf_networks.items()}})


def import_tf_discriminator(path: str | Path) -> ImportedNetwork:
    """Map a file holding one pickled discriminator-type TF `Network` (not a (G, D, Gs) tuple) onto sgmodels.

    The official metrics pickle their helper networks one per file; the CelebA-HQ attribute classifiers of linear
    separability are discriminators (`D_basic`, one logit per image). Only the state's build function name,
    static_kwargs and variables are read, as for release pickles.

    Raises:
        UnsafePickleError: the pickle names a global other than numpy arrays and the dnnlib Network.
        CheckpointFormatError: a release tuple, a network that is not a supported discriminator (naming its build
            function and the supported ones), unknown arguments, or variables that do not fit them.
    """
    path = Path(path)
    networks = read_tf_pickle(path)
    if len(networks) != 1:
        raise CheckpointFormatError(f"{path}: holds a (G, D, Gs) tuple of TF networks; one pickled discriminator-type "
                                    "network was expected")
    net = next(iter(networks.values()))
    where = f"{path} ({net.name}, {net.build_func_name})"
    if net.build_func_name not in DISCRIMINATOR_BUILD_FUNCTIONS:
        supported = ", ".join(DISCRIMINATOR_BUILD_FUNCTIONS)
        raise CheckpointFormatError(f"{where}: a TF network built by {net.build_func_name!r}, which sgmodels cannot "
                                    f"import as a discriminator (supported: {supported})")
    return map_tf_network(net, where)


def detect_tf_pickle(path: Path, head: bytes) -> bool:
    """A pickle (any protocol) whose first bytes name the dnnlib Network class (never unpickles)."""
    return is_pickle(head) and b"dnnlib.tflib.network" in head


register_importer(FORMAT_NAME, detect_tf_pickle, import_tf_pickle)

