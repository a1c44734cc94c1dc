"""Named network configurations (presets): the StyleGAN and StyleGAN2 paper configs and small CPU configs.

A preset is `<arch>-<config>`: a `NetworkConfig` (what the generator and discriminator look like) plus training
defaults (a JSON-ready dict for the training loop). `build_networks(arch, config, **overrides)` applies overrides
and returns `(G, D, training_defaults)`; the CLI options, `--help` and error messages are derived from `PRESETS`,
`NETWORK_OVERRIDES` and `TRAINING_OVERRIDES`.

| preset | generator | discriminator | paper row |
|---|---|---|---|
| stylegan-a | traditional, no blur, WGAN-GP | v1 D_basic, no blur | StyleGAN Table 1 A "Baseline Progressive GAN" |
| stylegan-b | traditional (pixel norm, blur) | v1 D_basic | B "+ Tuning (incl. bilinear up/down)" |
| stylegan-c | v1 synthesis: mapping + AdaIN, traditional dense input, no noise | v1 | C "+ Add mapping and styles" |
| stylegan-d | as C with the learned constant input | v1 | D "+ Remove traditional input" |
| stylegan-e | as D with noise inputs | v1 | E "+ Add noise inputs" |
| stylegan-f | as E with mixing regularisation 0.9 | v1 | F "+ Mixing regularization" |
| stylegan2-a | as stylegan-f | v1 | StyleGAN2 Table 1 A "Baseline StyleGAN" |
| stylegan2-b | StyleGAN2 synthesis (demodulation), "orig", progressive | StyleGAN2 "orig", progressive | B |
| stylegan2-c | as B + lazy regularisation | as B | C |
| stylegan2-d | as C + path length regularisation | as B | D |
| stylegan2-e | StyleGAN2 "skip", no growing, R1 gamma 100 | StyleGAN2 "resnet" | E |
| stylegan2-f | as E with channel_base 32768 ("large networks"), gamma 10 | as E | F |
| <arch>-cpu16/32/64 | small networks of each family for CPU runs (arch = stylegan2, stylegan, traditional) | | |

The non-progressive StyleGAN2 presets (E, F and the CPU presets) clamp conv outputs at 256 and compute the 4
highest-resolution blocks in float16 on CUDA, as every stylegan2-ada-pytorch configuration does (`--cfg stylegan2`
is its config F); configs B-D keep the TF settings (no clamp, float32, progressive growing).

Channel widths follow channels(res) = min(channel_base // res, channel_max); channel_base = 2 * fmap_base of the TF
code (configs A-E and StyleGAN v1: 16384; StyleGAN2 F: 32768). Training values follow docs/models.md sections
2.1 and 2.2 (TF train.py / run_training.py); the StyleGAN2 CPU presets use the ADA "auto" heuristics (R1 gamma =
0.0002 * res^2 / batch, EMA half-life batch * 10 / 32 kimg with ramp-up 0.05, two mapping layers); the v1 and
traditional CPU presets use lr 0.001, R1 gamma 3 (v1, chosen on Fashion-MNIST) or 10 (traditional, config B), and
20 kimg growing phases from 8x8.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from sgmodels.interfaces import GeneratorModule, as_generator
from sgmodels.registry import build_network

STYLEGAN2_ARCHITECTURES = ("orig", "skip", "resnet")
NOISE_CHOICES = ("all", "none", "coarse", "fine")


@dataclass(frozen=True)
class NetworkConfig:
    """Everything that decides the shapes and the forward pass of a (G, D) pair; one field per override."""

    generator: str  # Generator family: "stylegan2" / "stylegan" (synthesis networks) or "traditional".
    discriminator: str  # Discriminator family: "stylegan2" or "stylegan" (v1 D_basic).
    resolution: int = 1024  # Output / input image resolution (power of two).
    z_dim: int = 512  # Input latent (Z) dimensionality.
    w_dim: int = 512  # Intermediate latent (W) dimensionality.
    c_dim: int = 0  # Conditioning label dimensionality, 0 = unconditional.
    img_channels: int = 3  # Colour channels (1 = greyscale, 3 = RGB).
    channel_base: int = 32768  # channels(res) = min(channel_base // res, channel_max).
    channel_max: int = 512  # Maximum feature maps of any layer.
    map_layers: int = 8  # Mapping network depth (0 = w is the normalised z).
    architecture: str = "skip"  # StyleGAN2 generator architecture: orig, skip or resnet.
    d_architecture: str = "resnet"  # StyleGAN2 discriminator architecture: orig, skip or resnet.
    progressive: bool = False  # Progressive growing (ToRGB/FromRGB at every level, `lod` buffers).
    noise: str = "all"  # Noise inputs: all, none, or (v1 synthesis only) coarse / fine layers.
    const_input: bool = True  # v1 synthesis: learned 4x4 constant (False = traditional dense input from w).
    use_styles: bool = True  # v1 synthesis: AdaIN styles (False = one w for the whole network).
    pixel_norm: bool = False  # v1 synthesis / traditional: pixel norm after every activation.
    instance_norm: bool = True  # v1 synthesis: instance norm before the styles.
    blur: bool = True  # [1, 2, 1] blur after upsampling (v1 G, traditional) and before downsampling (v1 D).
    mbstd_group_size: int = 4  # Discriminator minibatch-stddev group size (0 = off).
    conv_clamp: float = 0.0  # StyleGAN2 G and D: clamp of every conv output to +-conv_clamp; 0 = off.
    fp16_res: int = 0  # StyleGAN2 G and D: blocks of the N highest resolutions in float16 (CUDA only).


@dataclass(frozen=True)
class Preset:
    """A named network configuration with its training defaults."""

    arch: str  # Family name used on the command line (--arch).
    config: str  # Config name within the family (--config).
    summary: str  # One line for --help and `describe`.
    network: NetworkConfig  # Architecture.
    training: Mapping[str, Any] = field(default_factory=dict)  # Training defaults (see TRAINING_DEFAULTS).

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.config}"


# Keys every preset's training dict has; `build_networks` returns a fresh deep copy.
TRAINING_DEFAULTS: dict[str, Any] = {
    "loss": "logistic_ns_r1",  # "logistic_ns_r1" (non-saturating logistic + R1) or "wgan_gp" (ProGAN).
    "lr": 0.002,  # Adam learning rate (progressive presets: see progressive.lr_base / lr_dict).
    "batch": 32,  # Global minibatch (progressive presets: see progressive.batch_base / batch_dict).
    "adam_betas": [0.0, 0.99],  # Adam beta1, beta2.
    "adam_eps": 1e-8,  # Adam epsilon.
    "r1_gamma": 10.0,  # R1 weight gamma (penalty gamma / 2 * |grad D(x)|^2); WGAN-GP lambda for "wgan_gp".
    "g_reg_interval": 4,  # Lazy path-length regularisation every k minibatches; None = every step (not lazy).
    "d_reg_interval": 16,  # Lazy R1 every k minibatches; None = every step.
    "pl_weight": 2.0,  # Path-length regulariser weight; 0 = off.
    "pl_batch_shrink": 2,  # Path-length minibatch = batch // shrink.
    "pl_decay": 0.01,  # Decay of the running mean path length.
    "style_mixing_prob": 0.9,  # Probability of mixing regularisation; 0 = off.
    "ema_kimg": 10.0,  # Half-life of G_ema in thousands of images.
    "ema_rampup": None,  # ADA ramp-up ratio of the EMA half-life; None = off.
    "total_kimg": 25000,  # Length of training in thousands of real images.
    "minibatch_repeats": 4,  # TF: minibatches between schedule updates; recorded only (sgmodels updates every step).
    "progressive": None,  # None, or kwargs of sgmodels.training.schedule.ProgressiveSchedule (minus img_resolution).
}

# TF v1 train.py progressive schedule (docs/models.md section 2.1), also StyleGAN2 configs A-D.
_V1_PROGRESSIVE: dict[str, Any] = {
    "enabled": True,
    "initial_resolution": 8,
    "training_kimg": 600.0,
    "transition_kimg": 600.0,
    "batch_base": 32,
    "batch_dict": {4: 512, 8: 256, 16: 128, 32: 64, 64: 32},
    "lr_base": 0.001,
    "lr_dict": {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003},
}
_V1_TRAINING = {"lr": 0.001, "g_reg_interval": None, "d_reg_interval": None, "pl_weight": 0.0,
                "progressive": _V1_PROGRESSIVE}
_WGAN_GP = {"loss": "wgan_gp", "r1_gamma": 10.0, "style_mixing_prob": 0.0}  # ProGAN: lambda 10, drift 0.001


def _training(**changes: Any) -> dict[str, Any]:
    unknown = set(changes) - set(TRAINING_DEFAULTS)
    if unknown:
        raise KeyError(f"unknown training keys {sorted(unknown)}")  # a bug in this module, not user input
    return {**copy.deepcopy(TRAINING_DEFAULTS), **copy.deepcopy(changes)}


_V1 = NetworkConfig(generator="stylegan", discriminator="stylegan", channel_base=16384, progressive=True)
_V2_PROGRESSIVE = NetworkConfig(generator="stylegan2", discriminator="stylegan2", channel_base=16384,
                                architecture="orig", d_architecture="orig", progressive=True)
# stylegan2-ada-pytorch runs every configuration (--cfg stylegan2, paper256/512/1024, auto) with conv_clamp 256 and
# fp16 in the 4 highest-resolution blocks; sgmodels records the same so native networks equal imported ADA ones (the
# clamp acts on every device, fp16 only on CUDA). TF StyleGAN2 had neither: a TF import records conv_clamp None.
_V2 = NetworkConfig(generator="stylegan2", discriminator="stylegan2", conv_clamp=256.0, fp16_res=4)
_TRADITIONAL = dataclasses.replace(_V1, generator="traditional", map_layers=0, pixel_norm=True, instance_norm=False,
                                   use_styles=False, const_input=False, noise="none")


def _paper_presets() -> list[Preset]:
    v1 = [
        Preset("stylegan", "a", "StyleGAN Table 1 A: Progressive GAN baseline (traditional G without blur, WGAN-GP)",
               dataclasses.replace(_TRADITIONAL, blur=False), _training(**_V1_TRAINING, **_WGAN_GP)),
        Preset("stylegan", "b", "StyleGAN Table 1 B: tuned traditional baseline (blur, logistic loss + R1)",
               _TRADITIONAL, _training(**_V1_TRAINING, style_mixing_prob=0.0)),
        Preset("stylegan", "c", "StyleGAN Table 1 C: + mapping network and AdaIN styles (traditional input)",
               dataclasses.replace(_V1, const_input=False, noise="none"),
               _training(**_V1_TRAINING, style_mixing_prob=0.0)),
        Preset("stylegan", "d", "StyleGAN Table 1 D: + learned constant input",
               dataclasses.replace(_V1, noise="none"), _training(**_V1_TRAINING, style_mixing_prob=0.0)),
        Preset("stylegan", "e", "StyleGAN Table 1 E: + noise inputs", _V1,
               _training(**_V1_TRAINING, style_mixing_prob=0.0)),
        Preset("stylegan", "f", "StyleGAN Table 1 F: + mixing regularisation (0.9); the StyleGAN default", _V1,
               _training(**_V1_TRAINING)),
    ]
    v2 = [
        Preset("stylegan2", "a", "StyleGAN2 Table 1 A: baseline StyleGAN (v1 networks, R1 every step)", _V1,
               _training(**_V1_TRAINING)),
        Preset("stylegan2", "b", "StyleGAN2 Table 1 B: + weight demodulation (StyleGAN2 layers, progressive)",
               _V2_PROGRESSIVE, _training(**_V1_TRAINING)),
        Preset("stylegan2", "c", "StyleGAN2 Table 1 C: + lazy regularisation (R1 every 16, G every 4)",
               _V2_PROGRESSIVE, _training(**{**_V1_TRAINING, "g_reg_interval": 4, "d_reg_interval": 16})),
        Preset("stylegan2", "d", "StyleGAN2 Table 1 D: + path length regularisation",
               _V2_PROGRESSIVE,
               _training(**{**_V1_TRAINING, "g_reg_interval": 4, "d_reg_interval": 16, "pl_weight": 2.0})),
        Preset("stylegan2", "e", "StyleGAN2 Table 1 E: no growing, G skip / D resnet, R1 gamma 100",
               dataclasses.replace(_V2, channel_base=16384), _training(r1_gamma=100.0)),
        Preset("stylegan2", "f", "StyleGAN2 Table 1 F: large networks (channel_base 32768); the StyleGAN2 default",
               _V2, _training()),
    ]
    return v1 + v2


def _cpu_presets() -> list[Preset]:
    """Small presets: channels 32-64, z/w 64-128, 2-4 mapping layers, for runs and tests on a CPU."""
    presets = []
    sizes = {16: (64, 2), 32: (128, 2), 64: (128, 4)}  # resolution -> (z_dim = w_dim, mapping layers)
    for resolution, (latent, layers) in sizes.items():
        batch = 32
        small: dict[str, Any] = dict(resolution=resolution, z_dim=latent, w_dim=latent, channel_base=32 * resolution,
                     channel_max=64)
        auto = _training(batch=batch, r1_gamma=0.0002 * resolution**2 / batch, ema_kimg=batch * 10 / 32,
                         ema_rampup=0.05, total_kimg=1000)
        progressive = {**_V1_PROGRESSIVE, "training_kimg": 20.0, "transition_kimg": 20.0, "batch_dict": {},
                       "lr_dict": {}}
        # v1 keeps its own lr 0.001 and a far stronger R1 than the StyleGAN2 "auto" value (0.0064 at 32x32, with
        # which the v1 D won on Fashion-MNIST and samples collapsed to tops). Fashion-MNIST 32x32, 120 kimg, one
        # seed each: gamma 1 lost the shoes, 10 covered every class with speckled textures, 3 covered them cleanly.
        v1_auto = {**auto, **_V1_TRAINING, "r1_gamma": 3.0, "progressive": progressive}
        config = f"cpu{resolution}"
        presets += [
            Preset("stylegan2", config, f"StyleGAN2 (config F layout, skip/resnet) at {resolution}x{resolution}",
                   dataclasses.replace(_V2, map_layers=layers, **small), auto),
            Preset("stylegan", config, f"StyleGAN v1 (config F, progressive) at {resolution}x{resolution}",
                   dataclasses.replace(_V1, map_layers=layers, **small), _training(**v1_auto)),
            Preset("traditional", config, f"traditional (ProGAN-style) generator at {resolution}x{resolution}",
                   dataclasses.replace(_TRADITIONAL, **small),
                   _training(**{**v1_auto, "r1_gamma": 10.0, "style_mixing_prob": 0.0})),  # config B's gamma
        ]
    return presets


PRESETS: dict[str, Preset] = {preset.name: preset for preset in _paper_presets() + _cpu_presets()}


# ----------------------------------------------------------------------------------------------------------------
# Overrides


@dataclass(frozen=True)
class Override:
    """One user-settable value: where it goes, its type and its help text (the CLI options derive from these)."""

    target: str  # "network" (a NetworkConfig field) or "training" (a TRAINING_DEFAULTS key).
    key: str  # Field or key name.
    type: type  # int, float, bool or str.
    help: str  # One line for --help.
    choices: tuple[str, ...] | None = None  # Allowed strings, if restricted.


NETWORK_OVERRIDES: dict[str, Override] = {
    "resolution": Override("network", "resolution", int, "image resolution (power of two >= 4)"),
    "z_dim": Override("network", "z_dim", int, "input latent (Z) size"),
    "w_dim": Override("network", "w_dim", int, "intermediate latent (W) size"),
    "c_dim": Override("network", "c_dim", int, "conditioning label size (0 = unconditional)"),
    "img_channels": Override("network", "img_channels", int, "colour channels (1 or 3)"),
    "channel_base": Override("network", "channel_base", int, "channels(res) = min(channel_base // res, channel_max)"),
    "channel_max": Override("network", "channel_max", int, "maximum channels of any layer"),
    "map_layers": Override("network", "map_layers", int, "mapping network depth (0-8)"),
    "architecture": Override("network", "architecture", str, "StyleGAN2 generator architecture",
                             STYLEGAN2_ARCHITECTURES),
    "d_architecture": Override("network", "d_architecture", str, "StyleGAN2 discriminator architecture",
                               STYLEGAN2_ARCHITECTURES),
    "noise": Override("network", "noise", str, "noise inputs (coarse/fine: StyleGAN v1 synthesis only)",
                      NOISE_CHOICES),
    "const_input": Override("network", "const_input", bool, "v1 synthesis: learned constant input"),
    "use_styles": Override("network", "use_styles", bool, "v1 synthesis: AdaIN styles"),
    "pixel_norm": Override("network", "pixel_norm", bool, "v1 synthesis / traditional: pixel norm"),
    "instance_norm": Override("network", "instance_norm", bool, "v1 synthesis: instance norm"),
    "blur": Override("network", "blur", bool, "[1,2,1] blur in the v1 / traditional up- and downsampling"),
    "progressive": Override("network", "progressive", bool, "progressive growing"),
    "mbstd_group_size": Override("network", "mbstd_group_size", int, "minibatch-stddev group size (0 = off)"),
    "conv_clamp": Override("network", "conv_clamp", float, "StyleGAN2: clamp conv outputs to +-value (0 = off)"),
    "fp16_res": Override("network", "fp16_res", int, "StyleGAN2: float16 blocks at the N highest resolutions "
                         "(CUDA only; 0 = off)"),
}
TRAINING_OVERRIDES: dict[str, Override] = {
    "mixing": Override("training", "style_mixing_prob", float, "style-mixing regularisation probability (0 = off)"),
    "gamma": Override("training", "r1_gamma", float, "R1 regularisation weight"),
    "lr": Override("training", "lr", float, "Adam learning rate"),
    "batch": Override("training", "batch", int, "global minibatch size"),
    "pl_weight": Override("training", "pl_weight", float, "path-length regularisation weight (0 = off)"),
    "ema_kimg": Override("training", "ema_kimg", float, "G_ema half-life in thousands of images"),
    "total_kimg": Override("training", "total_kimg", float, "training length in thousands of images"),
}
OVERRIDES: dict[str, Override] = {**NETWORK_OVERRIDES, **TRAINING_OVERRIDES}

_SHARED_FIELDS = frozenset({"resolution", "z_dim", "w_dim", "c_dim", "img_channels", "channel_base", "channel_max"})
def preset_names() -> list[str]:
    """All preset names, `<arch>-<config>`."""
    return list(PRESETS)


def configs_of(arch: str) -> list[str]:
    """Config names available for `arch`."""
    _check_arch(arch)
    return [preset.config for preset in PRESETS.values() if preset.arch == arch]


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")


def get_preset(arch: str, config: str) -> Preset:
    """The preset `<arch>-<config>`; ValueError listing the valid configs of `arch` otherwise."""
    _check_arch(arch)
    name = f"{arch}-{str(config).lower()}"
    if name not in PRESETS:
        raise ValueError(f"unknown config {config!r} for arch {arch!r}; valid: {', '.join(configs_of(arch))}")
    return PRESETS[name]


def apply_overrides(preset: Preset, overrides: Mapping[str, Any]) -> tuple[NetworkConfig, dict[str, Any]]:
    """Network config and training dict of `preset` with `overrides` (names of OVERRIDES; None = keep) applied."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(f"unknown override(s) {unknown}; valid: {', '.join(OVERRIDES)}")
    network_changes: dict[str, Any] = {}
    training = copy.deepcopy(dict(preset.training))
    for name, value in overrides.items():
        if value is None:
            continue
        spec = OVERRIDES[name]
        value = _coerce(name, spec, value)
        if spec.target == "network":
            network_changes[spec.key] = value
        else:
            training[spec.key] = value
    network = dataclasses.replace(preset.network, **network_changes)
    _validate(network, preset.name)  # first: it names an unknown family before the field tables are consulted
    _check_applicable(network, set(network_changes), preset.name)
    return network, training


def _coerce(name: str, spec: Override, value: Any) -> Any:
    if spec.type is bool and isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if spec.type is bool and not isinstance(value, bool):
        raise ValueError(f"override {name} must be true or false, got {value!r}")
    if spec.type in (int, float) and not isinstance(value, bool):
        try:
            coerced = spec.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"override {name} must be a number, got {value!r}") from None
        if spec.type is int and coerced != float(value):
            raise ValueError(f"override {name} must be an integer, got {value!r}")
        return coerced
    if spec.type is str:
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"override {name} must be one of {', '.join(spec.choices)}, got {value!r}")
        return str(value)
    if not isinstance(value, spec.type):
        raise ValueError(f"override {name} must be {spec.type.__name__}, got {value!r}")
    return value


def _check_applicable(network: NetworkConfig, changed: set[str], where: str) -> None:
    used = _SHARED_FIELDS | GENERATORS[network.generator].fields | DISCRIMINATORS[network.discriminator].fields
    ignored = sorted(changed - used)
    if ignored:
        raise ValueError(f"{where}: override(s) {ignored} have no effect on a {network.generator} generator with a "
                         f"{network.discriminator} discriminator; they apply to: {', '.join(sorted(used))}")


def _validate(network: NetworkConfig, where: str) -> None:
    """Catch impossible combinations early, with the override that fixes them."""
    if network.generator not in GENERATORS or network.discriminator not in DISCRIMINATORS:
        raise ValueError(f"{where}: generator {network.generator!r} / discriminator {network.discriminator!r}; "
                         f"families: generators {', '.join(GENERATORS)}, discriminators {', '.join(DISCRIMINATORS)}")
    res = network.resolution
    if isinstance(res, bool) or res < 4 or res & (res - 1):
        raise ValueError(f"{where}: resolution must be a power of two >= 4, got {res}")
    for name in ("z_dim", "w_dim", "img_channels", "channel_base", "channel_max"):
        if getattr(network, name) < 1:
            raise ValueError(f"{where}: {name} must be >= 1, got {getattr(network, name)}")
    if network.c_dim < 0 or network.mbstd_group_size < 0:
        raise ValueError(f"{where}: c_dim and mbstd_group_size must be >= 0")
    if not 0 <= network.map_layers <= 8:
        raise ValueError(f"{where}: map_layers must lie in 0..8, got {network.map_layers}")
    if network.map_layers == 0 and network.z_dim != network.w_dim and network.c_dim == 0:
        raise ValueError(f"{where}: without mapping layers w is the normalised z, so z_dim ({network.z_dim}) must "
                         f"equal w_dim ({network.w_dim})")
    if network.conv_clamp < 0 or network.fp16_res < 0:
        raise ValueError(f"{where}: conv_clamp and fp16_res must be >= 0")
    if network.progressive and network.fp16_res > 0 and "stylegan2" in (network.generator, network.discriminator):
        raise ValueError(f"{where}: fp16_res needs progressive growing off (set fp16_res=0 or progressive=false)")
    if network.generator == "stylegan2" and network.noise not in ("all", "none"):
        raise ValueError(f"{where}: noise={network.noise!r} is only available with the StyleGAN v1 synthesis; "
                         f"StyleGAN2 synthesis takes all or none")


# ----------------------------------------------------------------------------------------------------------------
# Network descriptions (registry format) and building


def _image_kwargs(net: NetworkConfig) -> dict[str, Any]:
    """Constructor arguments every generator shares (label, latent and image sizes)."""
    return {
        "z_dim": net.z_dim,
        "c_dim": net.c_dim,
        "w_dim": net.w_dim,
        "img_resolution": net.resolution,
        "img_channels": net.img_channels,
    }


def _width_kwargs(net: NetworkConfig) -> dict[str, Any]:
    return {"channel_base": net.channel_base, "channel_max": net.channel_max}


def _precision_kwargs(net: NetworkConfig) -> dict[str, Any]:
    """StyleGAN2 conv clamp (None = off) and fp16 blocks."""
    return {"conv_clamp": net.conv_clamp or None, "num_fp16_res": net.fp16_res}


def _blur_filter(net: NetworkConfig) -> list[int] | None:
    return [1, 2, 1] if net.blur else None


def _stylegan2_generator(net: NetworkConfig) -> dict[str, Any]:
    synthesis = {
        **_width_kwargs(net),
        "architecture": net.architecture,
        "use_noise": net.noise == "all",
        "progressive": net.progressive,
        **_precision_kwargs(net),
    }
    return _generator(net, "stylegan2", synthesis)


def _stylegan_generator(net: NetworkConfig) -> dict[str, Any]:
    synthesis = {
        **_width_kwargs(net),
        "use_noise": net.noise,
        "const_input": net.const_input,
        "use_styles": net.use_styles,
        "use_pixel_norm": net.pixel_norm,
        "use_instance_norm": net.instance_norm,
        "blur_filter": _blur_filter(net),
        "progressive": net.progressive,
    }
    return _generator(net, "stylegan", synthesis)


# TF StyleGAN v1 G_mapping / G_style conventions: labels enter through LabelConcat (normalised jointly with z), and
# truncation without an explicit cutoff touches the first 8 layers (G_style truncation_cutoff=8).
_V1_MAPPING: dict[str, Any] = {"label_embedding": "concat", "truncation_cutoff_default": 8}


def _generator(net: NetworkConfig, synthesis: str, synthesis_kwargs: dict[str, Any]) -> dict[str, Any]:
    mapping = {"num_layers": net.map_layers, **(_V1_MAPPING if synthesis == "stylegan" else {})}
    return {"class": "stylegan2.Generator", "init_kwargs": {
        **_image_kwargs(net),
        "synthesis": synthesis,
        "mapping_kwargs": mapping,
        "synthesis_kwargs": synthesis_kwargs,
    }}


def _traditional_generator(net: NetworkConfig) -> dict[str, Any]:
    return {"class": "traditional.Generator", "init_kwargs": {
        **_image_kwargs(net),
        **_width_kwargs(net),
        "map_layers": net.map_layers,
        "use_noise": net.noise,
        "blur_filter": _blur_filter(net),
        "progressive": net.progressive,
    }}


def _discriminator_common(net: NetworkConfig) -> dict[str, Any]:
    return {"c_dim": net.c_dim, "img_resolution": net.resolution, "img_channels": net.img_channels,
            **_width_kwargs(net)}


def _stylegan_discriminator(net: NetworkConfig) -> dict[str, Any]:
    return {"class": "stylegan.Discriminator", "init_kwargs": {
        **_discriminator_common(net),
        "mbstd_group_size": net.mbstd_group_size,  # 0 or 1 = off
        "blur_filter": _blur_filter(net),
    }}


def _stylegan2_discriminator(net: NetworkConfig) -> dict[str, Any]:
    return {"class": "stylegan2.Discriminator", "init_kwargs": {
        **_discriminator_common(net),
        "architecture": net.d_architecture,
        "mbstd_group_size": net.mbstd_group_size if net.mbstd_group_size > 0 else 4,
        "mbstd_num_channels": 1 if net.mbstd_group_size > 0 else 0,  # 0 features = no minibatch-stddev layer
        "progressive": net.progressive,
        **_precision_kwargs(net),
    }}


# ----------------------------------------------------------------------------------------------------------------
# The architecture table: the one registration of a network family


@dataclass(frozen=True)
class Architecture:
    """A generator or discriminator family: where its classes live, what it reads of a NetworkConfig, and how a
    config becomes its registry description.

    Adding a family: write its module (classes decorated with `sgmodels.registry.register_network` /
    `register_synthesis`), then add its entry here and its presets above. Nothing else lists architectures: the CLI
    choices, the override checks and the registry's lazy imports all read these tables.
    """

    modules: tuple[str, ...]  # modules that register its classes; imported on the registry's first miss
    fields: frozenset[str]  # NetworkConfig fields it reads besides _SHARED_FIELDS (overriding another is an error)
    describe: Callable[[NetworkConfig], dict[str, Any]]  # config -> {"class": ..., "init_kwargs": ...}


GENERATORS: dict[str, Architecture] = {
    "stylegan2": Architecture(("sgmodels.generator", "sgmodels.stylegan2"),
                              frozenset({"map_layers", "architecture", "noise", "progressive", "conv_clamp",
                                         "fp16_res"}), _stylegan2_generator),
    "stylegan": Architecture(("sgmodels.generator", "sgmodels.stylegan1"),
                             frozenset({"map_layers", "noise", "const_input", "use_styles", "pixel_norm",
                                        "instance_norm", "blur", "progressive"}), _stylegan_generator),
    "traditional": Architecture(("sgmodels.traditional",), frozenset({"map_layers", "noise", "blur", "progressive"}),
                                _traditional_generator),
}
DISCRIMINATORS: dict[str, Architecture] = {
    "stylegan2": Architecture(("sgmodels.stylegan2",),
                              frozenset({"d_architecture", "mbstd_group_size", "progressive", "conv_clamp",
                                         "fp16_res"}), _stylegan2_discriminator),
    "stylegan": Architecture(("sgmodels.stylegan1",), frozenset({"blur", "mbstd_group_size"}),
                             _stylegan_discriminator),
}
ARCHS = tuple(GENERATORS)  # a preset's architecture is its generator family (`stylegan2-cpu32`, `traditional-cpu16`)


def import_architectures() -> None:
    """Import the module of every family, so that each has registered its classes (`sgmodels.registry` calls this
    when it meets a name it does not know yet)."""
    for family in [*GENERATORS.values(), *DISCRIMINATORS.values()]:
        for module in family.modules:
            importlib.import_module(module)


def network_descriptions(
    arch: str, config: str, **overrides: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Registry descriptions of G and D and the training dict of a preset with overrides (nothing is built)."""
    network, training = apply_overrides(get_preset(arch, config), overrides)
    generator = GENERATORS[network.generator].describe(network)
    discriminator = DISCRIMINATORS[network.discriminator].describe(network)
    return generator, discriminator, training


def build_networks(
    arch: str,
    config: str,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> tuple[GeneratorModule, torch.nn.Module, dict[str, Any]]:
    """Build a preset's generator and discriminator with fresh random weights.

    Args:
        arch: "stylegan2", "stylegan" or "traditional".
        config: "a".."f" (paper configs; stylegan2 and stylegan) or "cpu16", "cpu32", "cpu64".
        device: where to build (e.g. "meta" to count parameters without allocating); default: torch's default.
        **overrides: names of OVERRIDES (resolution=64, channel_base=..., map_layers=..., mixing=0.5, ...);
            None values are ignored.
    Returns:
        (G, D, training_defaults): networks in training mode and a fresh dict with the keys of TRAINING_DEFAULTS.
    Raises:
        ValueError: unknown arch, config or override, or an invalid value (the message lists the valid ones).
    """
    g_description, d_description, training = network_descriptions(arch, config, **overrides)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        G = as_generator(build_network(g_description))
        D = build_network(d_description)
    return G, D, training

