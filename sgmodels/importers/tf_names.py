"""Name tables of the official TensorFlow networks: sgmodels state-dict key -> (TF variable, array transform).

TF variable names are those a pickle stores, with the component key of each sub-network as prefix (`mapping/`,
`synthesis/`), as collected from `Network.variables` and `Network.components` (docs/models.md section 4.2):

| TF build function | sgmodels network | table |
|---|---|---|
| v1 `G_style` (`G_mapping` + `G_synthesis`) | Generator, synthesis "stylegan" | `v1_generator_layout` |
| v2 `G_main` (`G_synthesis_stylegan2`, `_revised`, ADA-TF) | synthesis "stylegan2" | `v2_generator_layout` |
| v1 `D_basic` | `stylegan.Discriminator` | `v1_discriminator_layout` |
| v2 `D_stylegan2`, `D_stylegan`, ADA-TF `D_main` | `stylegan2.Discriminator` | `v2_discriminator_layout` |

Array transforms (TF -> sgmodels; `TRANSFORMS` also holds the inverse, used to write TF-layout fixtures):

* "copy"; "dense": [in, out] -> [out, in]; "conv": [kh, kw, in, out] -> [out, in, kh, kw];
* "conv_flip": spatial flip, then "conv": StyleGAN2 upsampling convolutions (`Conv0_up`, `Skip`), which TF runs as
  a transposed convolution of the flipped kernel, while sgmodels runs the stored kernel as a true convolution;
* "const": [1, C, 4, 4] -> [C, 4, 4]; "noise": [1, 1, H, W] -> [H, W];
* "mod_bias": + 1 (TF adds the 1 of the StyleGAN2 styles at run time, sgmodels stores it in the affine bias);
* "v1_mapping_bias": / sqrt(2). TF v1 multiplies the mapping weights by the gain sqrt(2) and adds the bias before an
  un-gained leaky ReLU; sgmodels applies the gain after the activation, and lrelu(sqrt(2) a) = sqrt(2) lrelu(a),
  so only the bias needs rescaling.

The StyleGAN v1 synthesis network and discriminator name their own tensors (`tf_layout` in `sgmodels.stylegan1`,
which reproduces the v1 fused upsampling exactly, so no flip is needed there).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sgmodels.generator import Generator
from sgmodels.mapping import MappingNetwork
from sgmodels.stylegan1 import Discriminator as DiscriminatorV1
from sgmodels.stylegan1 import SynthesisNetwork as SynthesisV1
from sgmodels.stylegan2 import Discriminator as DiscriminatorV2
from sgmodels.stylegan2 import SynthesisBlock as SynthesisBlockV2
from sgmodels.stylegan2 import SynthesisNetwork as SynthesisV2

__all__ = [
    "TRANSFORMS",
    "Layout",
    "from_tf",
    "mapping_layout",
    "to_tf",
    "v1_discriminator_layout",
    "v1_generator_layout",
    "v2_discriminator_layout",
    "v2_generator_layout",
    "v2_synthesis_layout",
]

Layout = dict[str, tuple[str, str]]  # sgmodels key -> (TF variable name, transform name)
_SQRT2 = math.sqrt(2.0)


def _conv_to_tf(t: np.ndarray) -> np.ndarray:
    return t.transpose(2, 3, 1, 0)


# name -> (TF array -> sgmodels array, sgmodels array -> TF array)
TRANSFORMS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "copy": (lambda a: a, lambda t: t),
    "dense": (lambda a: a.T, lambda t: t.T),
    "conv": (lambda a: a.transpose(3, 2, 0, 1), _conv_to_tf),
    "conv_flip": (lambda a: a[::-1, ::-1].transpose(3, 2, 0, 1), lambda t: _conv_to_tf(t)[::-1, ::-1]),
    "const": (lambda a: a[0], lambda t: t[None]),
    "noise": (lambda a: a[0, 0], lambda t: t[None, None]),
    "mod_bias": (lambda a: a + 1, lambda t: t - 1),
    "v1_mapping_bias": (lambda a: a / _SQRT2, lambda t: t * _SQRT2),
}


def from_tf(array: np.ndarray, transform: str) -> torch.Tensor:
    """A TF variable as the sgmodels tensor (float32, contiguous, owning its memory)."""
    converted = TRANSFORMS[transform][0](np.asarray(array, dtype=np.float32))
    return torch.from_numpy(np.array(converted, dtype=np.float32, order="C"))  # a copy; keeps 0-d arrays 0-d


def to_tf(tensor: torch.Tensor, transform: str) -> np.ndarray:
    """An sgmodels tensor in the TF layout (float32 numpy), the inverse of `from_tf`."""
    return np.array(TRANSFORMS[transform][1](tensor.detach().cpu().float().numpy()), dtype=np.float32, order="C")


def _expect(module: object, cls: type, what: str) -> None:
    if not isinstance(module, cls):
        raise TypeError(f"{what} must be a {cls.__module__}.{cls.__name__}, got {type(module).__name__}")


def _parts(G: torch.nn.Module, synthesis_cls: type) -> tuple[MappingNetwork, torch.nn.Module]:
    """(mapping, synthesis) of a generator, checked to be an sgmodels Generator with the expected synthesis."""
    _expect(G, Generator, "the generator")
    mapping, synthesis = G.get_submodule("mapping"), G.get_submodule("synthesis")
    _expect(mapping, MappingNetwork, "the mapping network")
    _expect(synthesis, synthesis_cls, "the synthesis network")
    assert isinstance(mapping, MappingNetwork)  # for the type checker
    return mapping, synthesis


def _generator_lod(layout: Layout) -> Layout:
    """G_style / G_main assign their own `lod` to the synthesis network before every run, so the synthesis lod is
    read from G's variable (the synthesis network's stored copy is only the value of its last run)."""
    if "synthesis.lod" in layout:
        layout["synthesis.lod"] = ("lod", "copy")
    return layout


def _prefixed(prefix: str, layout: Layout, tf_prefix: str = "") -> Layout:
    return {f"{prefix}.{key}": (f"{tf_prefix}{name}", transform) for key, (name, transform) in layout.items()}


# ---------------------------------------------------------------------------------------------------------------------
# Mapping networks.


def mapping_layout(mapping: MappingNetwork, version: int) -> Layout:
    """`G_mapping` (component "mapping") and `dlatent_avg` (G_style / G_main) for a StyleGAN v1 or v2 mapping."""
    layout: Layout = {}
    if mapping.num_ws is not None and mapping.w_avg_beta is not None:
        layout["w_avg"] = ("dlatent_avg", "copy")
    if mapping.c_dim > 0:
        if mapping.label_embedding == "concat":
            layout["embed.weight"] = ("mapping/LabelConcat/weight", "dense")
        else:  # stylegan2-ada TF
            layout["embed.weight"] = ("mapping/LabelEmbed/weight", "dense")
            layout["embed.bias"] = ("mapping/LabelEmbed/bias", "copy")
    bias = "v1_mapping_bias" if version == 1 else "copy"
    for idx in range(mapping.num_layers):
        layout[f"fc{idx}.weight"] = (f"mapping/Dense{idx}/weight", "dense")
        layout[f"fc{idx}.bias"] = (f"mapping/Dense{idx}/bias", bias)
    return layout


# ---------------------------------------------------------------------------------------------------------------------
# Generators.


def v1_generator_layout(G: torch.nn.Module) -> Layout:
    """TF StyleGAN v1 `G_style` names of every tensor of an sgmodels generator with the "stylegan" synthesis."""
    mapping, synthesis = _parts(G, SynthesisV1)
    assert isinstance(synthesis, SynthesisV1)
    layout = _prefixed("mapping", mapping_layout(mapping, version=1))
    layout.update(_prefixed("synthesis", synthesis.tf_layout(), "synthesis/"))
    return _generator_lod(layout)


def _modulated_layer_layout(scope: str, noise_index: int | None, flip: bool) -> Layout:
    layout: Layout = {
        "weight": (f"{scope}/weight", "conv_flip" if flip else "conv"),
        "bias": (f"{scope}/bias", "copy"),
        "affine.weight": (f"{scope}/mod_weight", "dense"),
        "affine.bias": (f"{scope}/mod_bias", "mod_bias"),
    }
    if noise_index is not None:
        layout["noise_strength"] = (f"{scope}/noise_strength", "copy")
        layout["noise_const"] = (f"noise{noise_index}", "noise")
    return layout


def _v2_block_layout(block: SynthesisBlockV2, img_log2: int, progressive: bool) -> Layout:
    res = block.resolution
    log2 = int(math.log2(res))
    scope = f"{res}x{res}"
    noise = bool(block.conv1.use_noise)
    layout: Layout = {}
    if res == 4:
        layout["const"] = ("4x4/Const/const", "const")
        layout.update(_prefixed("conv1", _modulated_layer_layout("4x4/Conv", 0 if noise else None, flip=False)))
    else:
        layout.update(_prefixed("conv0", _modulated_layer_layout(f"{scope}/Conv0_up", 2 * log2 - 5 if noise else None,
                                                                 flip=True)))
        layout.update(_prefixed("conv1", _modulated_layer_layout(f"{scope}/Conv1", 2 * log2 - 4 if noise else None,
                                                                 flip=False)))
    if hasattr(block, "skip"):
        layout["skip.weight"] = (f"{scope}/Skip/weight", "conv_flip")
    if hasattr(block, "torgb"):
        torgb = f"ToRGB_lod{img_log2 - log2}" if progressive else f"{scope}/ToRGB"
        layout.update({
            "torgb.weight": (f"{torgb}/weight", "conv"),
            "torgb.bias": (f"{torgb}/bias", "copy"),
            "torgb.affine.weight": (f"{torgb}/mod_weight", "dense"),
            "torgb.affine.bias": (f"{torgb}/mod_bias", "mod_bias"),
        })
    return layout


def v2_synthesis_layout(synthesis: SynthesisV2) -> Layout:
    """`G_synthesis_stylegan2` / `G_synthesis_stylegan_revised` (progressive) / ADA-TF `G_synthesis` names, relative
    to the synthesis network. Noise i belongs to layer i: 4x4/Conv is 0, Conv0_up / Conv1 of r are 2 log2 r - 5 / - 4.
    """
    progressive = synthesis.progressive
    layout: Layout = {"lod": ("lod", "copy")} if progressive else {}
    for res in synthesis.block_resolutions:
        block = synthesis.get_submodule(f"b{res}")
        assert isinstance(block, SynthesisBlockV2)
        layout.update(_prefixed(f"b{res}", _v2_block_layout(block, synthesis.img_resolution_log2, progressive)))
    return layout


def v2_generator_layout(G: torch.nn.Module) -> Layout:
    """TF StyleGAN2 `G_main` names of every stored tensor of an sgmodels generator with the "stylegan2" synthesis
    (the FIR `resample_filter` buffers are not TF variables; they follow from `resample_kernel`)."""
    mapping, synthesis = _parts(G, SynthesisV2)
    assert isinstance(synthesis, SynthesisV2)
    layout = _prefixed("mapping", mapping_layout(mapping, version=2))
    layout.update(_prefixed("synthesis", v2_synthesis_layout(synthesis), "synthesis/"))
    return _generator_lod(layout)


# ---------------------------------------------------------------------------------------------------------------------
# Discriminators.


def v1_discriminator_layout(D: torch.nn.Module) -> Layout:
    """TF StyleGAN v1 `D_basic` names (from `sgmodels.stylegan1.Discriminator.tf_layout`)."""
    _expect(D, DiscriminatorV1, "the discriminator")
    assert isinstance(D, DiscriminatorV1)
    return dict(D.tf_layout())


def _conv_layout(scope: str, has_bias: bool = True) -> Layout:
    layout: Layout = {"weight": (f"{scope}/weight", "conv")}
    if has_bias:
        layout["bias"] = (f"{scope}/bias", "copy")
    return layout


def _dense_layout(scope: str) -> Layout:
    return {"weight": (f"{scope}/weight", "dense"), "bias": (f"{scope}/bias", "copy")}


def v2_discriminator_layout(D: torch.nn.Module) -> Layout:
    """TF StyleGAN2 `D_stylegan2` / `D_stylegan` (progressive) / ADA-TF `D_main` names of an unconditional sgmodels
    StyleGAN2 discriminator. Downsampling convolutions need no flip (TF and sgmodels both correlate)."""
    _expect(D, DiscriminatorV2, "the discriminator")
    assert isinstance(D, DiscriminatorV2)
    if D.c_dim > 0:
        raise ValueError("conditional StyleGAN2 discriminators have no TF name table (TF uses a label switch, "
                         "sgmodels the stylegan2-ada projection)")
    log2 = D.img_resolution_log2
    layout: Layout = {"lod": ("lod", "copy")} if D.progressive else {}
    for res in [*D.block_resolutions, 4]:
        block = D.get_submodule(f"b{res}")
        scope = f"{res}x{res}"
        fromrgb = f"FromRGB_lod{log2 - int(math.log2(res))}" if D.progressive else f"{scope}/FromRGB"
        parts: dict[str, Layout] = {}
        if hasattr(block, "fromrgb"):
            parts["fromrgb"] = _conv_layout(fromrgb)
        if res > 4:
            parts["conv0"] = _conv_layout(f"{scope}/Conv0")
            parts["conv1"] = _conv_layout(f"{scope}/Conv1_down")
            if hasattr(block, "skip"):
                parts["skip"] = _conv_layout(f"{scope}/Skip", has_bias=False)
        else:
            parts.update(conv=_conv_layout("4x4/Conv"), fc=_dense_layout("4x4/Dense0"), out=_dense_layout("Output"))
        for name, part in parts.items():
            layout.update(_prefixed(f"b{res}.{name}", part))
    return layout
