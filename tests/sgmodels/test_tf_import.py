"""TF pickle import (StyleGAN v1 / StyleGAN2 / ADA-TF) with self-built fixtures, and the v1 fidelity fixes.

Fixtures: an sgmodels network's tensors are written in the TF layout (names and array layouts of the official TF
networks), wrapped in `dnnlib.tflib.network.Network` states pickled by a shim class that exists only while the
fixture is written, and imported through the real path (`sgmodels.importers.load_network_file`). The round trip
must render the same image as the source network. Names and transforms are also checked against hand-written
expectations and independent re-implementations of the TF formulas (mapping network, upsampling convolution), so a
table that is wrong in both directions cannot pass.
"""

from __future__ import annotations

import math
import pickle
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgmodels.generator import Generator
from sgmodels.importers import (
    CheckpointFormatError,
    UnsafePickleError,
    load_network_file,
    load_network_files,
    load_tf_discriminator,
    tf_names,
)
from sgmodels.importers.registry import detect_checkpoint_format
from sgmodels.importers.tf_pickle import import_tf_pickle
from sgmodels.layers import Conv2dLayer
from sgmodels.stylegan1 import Discriminator as DiscriminatorV1
from sgmodels.stylegan2 import Discriminator as DiscriminatorV2

Z = 16  # z_dim = w_dim of the fixtures


# ---------------------------------------------------------------------------------------------------------------------
# Fixture writer: sgmodels network -> TF Network states -> pickle.

_SHIM = '''
class Network:
    """Test shim of dnnlib.tflib.network.Network: pickles a given state dict (what the real class returns)."""

    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state
'''


@contextmanager
def dnnlib_shim(tmp_path: Path) -> Iterator[type]:
    """A `dnnlib.tflib.network.Network` class importable while the fixture is pickled, removed afterwards."""
    root = Path(tempfile.mkdtemp(dir=tmp_path, prefix="shim"))
    (root / "dnnlib" / "tflib").mkdir(parents=True)
    (root / "dnnlib" / "__init__.py").write_text("")
    (root / "dnnlib" / "tflib" / "__init__.py").write_text("")
    (root / "dnnlib" / "tflib" / "network.py").write_text(_SHIM)
    sys.path.insert(0, str(root))
    try:
        import dnnlib.tflib.network as network  # type: ignore[import-not-found]

        yield network.Network
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == "dnnlib" or name.startswith("dnnlib.")]:
            del sys.modules[name]


def tf_state(name: str, func: str, kwargs: dict[str, Any], variables: dict[str, np.ndarray],
             components: dict[str, Any] | None = None, version: int = 4) -> dict[str, Any]:
    return {"version": version, "name": name, "static_kwargs": dict(kwargs), "components": components or {},
            "build_module_src": "raise RuntimeError('the importer executed build_module_src')\n",
            "build_func_name": func, "variables": list(variables.items())}


def tf_variables(module: torch.nn.Module, layout: tf_names.Layout) -> dict[str, np.ndarray]:
    """The TF variables of `module` (flat names) through the inverse transforms of the name table."""
    state = module.state_dict()
    return {name: tf_names.to_tf(state[key], transform) for key, (name, transform) in layout.items()}


def split_components(flat: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    own: dict[str, np.ndarray] = {}
    parts: dict[str, dict[str, np.ndarray]] = {"mapping": {}, "synthesis": {}}
    for name, value in flat.items():
        head, _, rest = name.partition("/")
        if head in parts:
            parts[head][rest] = value
        else:
            own[name] = value
    return own, parts


def generator_state(G: Generator, kwargs: dict[str, Any], version: int, synthesis_func: str,
                    name: str = "Gs") -> dict[str, Any]:
    """A G_style (version 3) or G_main (version 4) state with its mapping / synthesis components."""
    layout = tf_names.v1_generator_layout(G) if version == 3 else tf_names.v2_generator_layout(G)
    own, parts = split_components(tf_variables(G, layout))
    own.setdefault("lod", np.float32(0))  # G's own lod, copied into the synthesis network at run time in TF
    if version == 3 or G.synthesis.progressive:  # TF v1 G_synthesis always has a lod variable, v2 the revised one
        parts["synthesis"]["lod"] = np.float32(0)  # stale: TF overwrites it with G's lod before every run
    components = {
        "mapping": tf_state("G_mapping", "G_mapping", {**kwargs, "dlatent_broadcast": G.num_ws}, parts["mapping"],
                            version=version),
        "synthesis": tf_state("G_synthesis", synthesis_func, kwargs, parts["synthesis"], version=version),
    }
    func = "G_style" if version == 3 else "G_main"
    return tf_state(name, func, kwargs, own, components, version=version)


def discriminator_state(D: torch.nn.Module, kwargs: dict[str, Any], func: str, version: int) -> dict[str, Any]:
    layout = tf_names.v1_discriminator_layout(D) if func == "D_basic" else tf_names.v2_discriminator_layout(D)
    return tf_state("D", func, kwargs, tf_variables(D, layout), version=version)


def write_tf_pickle(path: Path, tmp_path: Path, states: tuple[dict[str, Any], ...], protocol: int = 4) -> Path:
    """Pickle (G, D, Gs) (or one network) exactly as the TF code does: Network objects whose state is a dict."""
    with dnnlib_shim(tmp_path) as Network:
        def wrap(state: dict[str, Any]) -> Any:
            components = {key: wrap(value) for key, value in state["components"].items()}
            return Network({**state, "components": components})

        objects = tuple(wrap(state) for state in states)
        path.write_bytes(pickle.dumps(objects if len(objects) > 1 else objects[0], protocol=protocol))
    return path


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-zero biases, noise strengths and w_avg (all start at 0), so the round trip sees every tensor."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith(("bias", "noise_strength", "w_avg")):
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.3)
    return module.eval()


def v1_generator(resolution: int = 16, c_dim: int = 0, seed: int = 0, **synthesis: Any) -> Generator:
    torch.manual_seed(seed)
    G = Generator(z_dim=Z, c_dim=c_dim, w_dim=Z, img_resolution=resolution, img_channels=3, synthesis="stylegan",
                  mapping_kwargs={"num_layers": 2, "label_embedding": "concat", "truncation_cutoff_default": 8},
                  synthesis_kwargs={"channel_base": 8 * resolution, "channel_max": 32, **synthesis})
    return randomize(G, seed)


def v1_kwargs(G: Generator, **extra: Any) -> dict[str, Any]:
    synthesis = G.init_kwargs["synthesis_kwargs"]
    return {"num_channels": 3, "resolution": G.img_resolution, "label_size": G.c_dim, "latent_size": Z,
            "dlatent_size": Z, "mapping_layers": 2, "mapping_fmaps": Z, "fmap_base": synthesis["channel_base"] // 2,
            "fmap_max": synthesis["channel_max"], "truncation_psi": 0.7, "style_mixing_prob": 0.9,
            "structure": "linear", **extra}


def v2_generator(resolution: int = 16, c_dim: int = 0, seed: int = 0, label_embedding: str = "concat",
                 **synthesis: Any) -> Generator:
    torch.manual_seed(seed)
    G = Generator(z_dim=Z, c_dim=c_dim, w_dim=Z, img_resolution=resolution, img_channels=3,
                  mapping_kwargs={"num_layers": 2, "label_embedding": label_embedding, "embed_features": Z},
                  synthesis_kwargs={"channel_base": 8 * resolution, "channel_max": 32, **synthesis})
    return randomize(G, seed)


def v2_kwargs(G: Generator, **extra: Any) -> dict[str, Any]:
    synthesis = G.init_kwargs["synthesis_kwargs"]
    kwargs = {"num_channels": 3, "resolution": G.img_resolution, "label_size": G.c_dim, "latent_size": Z,
              "dlatent_size": Z, "mapping_layers": 2, "mapping_fmaps": Z, "fmap_base": synthesis["channel_base"] // 2,
              "fmap_max": synthesis["channel_max"], "truncation_psi": 0.5, "style_mixing_prob": 0.9, **extra}
    if "architecture" in synthesis:
        kwargs["architecture"] = synthesis["architecture"]
    return kwargs


def images(G: torch.nn.Module, seed: int = 1, batch: int = 3, **kwargs: Any) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([batch, G.z_dim], generator=gen)
    c = F.one_hot(torch.randint(G.c_dim, [batch], generator=gen), G.c_dim).float() if G.c_dim else None
    with torch.no_grad():
        return G(z, c, noise_mode="const", **kwargs)


def assert_same_images(a: torch.nn.Module, b: torch.nn.Module, **kwargs: Any) -> None:
    diff = (images(a, **kwargs) - images(b, **kwargs)).abs().max().item()
    assert diff <= 1e-4, diff


# ---------------------------------------------------------------------------------------------------------------------
# Round trips.


@pytest.mark.parametrize("c_dim, synthesis", [
    (0, {}),  # progressive, noise everywhere, unfused (16x16 < 128)
    (3, {}),  # conditional: LabelConcat, joint normalisation, label-switch D
    (0, {"fused_scale": True, "progressive": False}),  # the TF fused transposed upsampling conv, one ToRGB
    (0, {"const_input": False, "use_noise": False}),  # traditional dense input (StyleGAN Table 1 C)
])
def test_stylegan_v1_pickle_round_trip_renders_the_same_images(tmp_path: Path, c_dim: int, synthesis: dict) -> None:
    G = v1_generator(c_dim=c_dim, **synthesis)
    G_ema = v1_generator(c_dim=c_dim, seed=5, **synthesis)
    D = randomize(DiscriminatorV1(c_dim=c_dim, img_resolution=16, channel_base=128, channel_max=32), 7)
    extra = {"use_noise": False, "const_input_layer": False} if "const_input" in synthesis else {}
    extra.update({"fused_scale": True} if synthesis.get("fused_scale") else {})
    kwargs = v1_kwargs(G, **extra)
    d_kwargs = {"num_channels": 3, "resolution": 16, "label_size": c_dim, "fmap_base": 64, "fmap_max": 32}
    path = write_tf_pickle(tmp_path / "karras2019.pkl", tmp_path, (
        generator_state(G, kwargs, 3, "G_synthesis", "G"), discriminator_state(D, d_kwargs, "D_basic", 3),
        generator_state(G_ema, kwargs, 3, "G_synthesis", "Gs")))

    assert detect_checkpoint_format(path) == "tf-pickle"
    networks, info = load_network_files(path, None)
    assert sorted(networks) == ["D", "G", "G_ema"] and info.format == "tf-pickle"
    assert_same_images(networks["G_ema"], G_ema)
    assert_same_images(networks["G"], G)
    assert_same_images(networks["G_ema"], G_ema, truncation_psi=0.7)
    real = torch.randn(4, 3, 16, 16)
    c = F.one_hot(torch.arange(4) % c_dim, c_dim).float() if c_dim else None
    with torch.no_grad():
        torch.testing.assert_close(networks["D"](real, c), D(real, c), atol=1e-5, rtol=0)


@pytest.mark.parametrize("synthesis, func", [
    ({"architecture": "skip"}, "G_synthesis_stylegan2"),  # configs E, F
    ({"architecture": "resnet"}, "G_synthesis_stylegan2"),
    ({"architecture": "orig", "progressive": True}, "G_synthesis_stylegan_revised"),  # configs B-D
])
def test_stylegan2_pickle_round_trip_renders_the_same_images(tmp_path: Path, synthesis: dict, func: str) -> None:
    G = v2_generator(**synthesis)
    D = randomize(DiscriminatorV2(img_resolution=16, channel_base=128, channel_max=32,
                                  architecture=synthesis["architecture"] if func.endswith("2") else "orig",
                                  progressive=not func.endswith("2")), 3)
    kwargs = v2_kwargs(G)
    d_kwargs = {"num_channels": 3, "resolution": 16, "label_size": 0, "fmap_base": 64, "fmap_max": 32}
    if func.endswith("2"):
        d_kwargs["architecture"] = synthesis["architecture"]
    d_func = "D_stylegan2" if func.endswith("2") else "D_stylegan"
    path = write_tf_pickle(tmp_path / "stylegan2.pkl", tmp_path, (
        generator_state(G, kwargs, 4, func, "G"), discriminator_state(D, d_kwargs, d_func, 4),
        generator_state(G, kwargs, 4, func, "Gs")))
    imported, info = load_network_file(path)
    assert info.networks["G_ema"]["init_kwargs"]["synthesis_kwargs"]["conv_clamp"] is None  # TF StyleGAN2: no clamp
    assert_same_images(imported, G)
    assert_same_images(imported, G, truncation_psi=0.5)
    D_imported, _ = load_network_file(path, "D")
    real = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(D_imported(real), D(real), atol=1e-5, rtol=0)


def test_conditional_stylegan2_and_ada_tf_label_embeddings(tmp_path: Path) -> None:
    for label_embedding, func, extra in [("concat", "G_synthesis_stylegan2", {}),
                                         ("dense", "G_synthesis", {"conv_clamp": 256, "num_fp16_res": 2,
                                                                   "label_fmaps": Z, "use_noise": True})]:
        G = v2_generator(c_dim=4, label_embedding=label_embedding,
                         **({"conv_clamp": 256.0, "num_fp16_res": 2} if extra else {}))
        path = write_tf_pickle(tmp_path / f"{label_embedding}.pkl", tmp_path,
                               (generator_state(G, v2_kwargs(G, **extra), 4, func),))
        imported, info = load_network_file(path)
        mapping = info.networks["G_ema"]["init_kwargs"]["mapping_kwargs"]
        assert mapping["label_embedding"] == label_embedding
        assert_same_images(imported, G)
    assert info.networks["G_ema"]["init_kwargs"]["synthesis_kwargs"]["num_fp16_res"] == 2


def test_stylegan2_ada_tf_pickle_with_clamp_fp16_and_whole_batch_minibatch_stddev(tmp_path: Path) -> None:
    precision = {"conv_clamp": 256.0, "num_fp16_res": 2}
    G = v2_generator(**precision)
    D = randomize(DiscriminatorV2(img_resolution=16, channel_base=128, channel_max=32, mbstd_group_size=None,
                                  **precision), 4)
    kwargs = v2_kwargs(G, mapping_fmaps=None, conv_clamp=256, num_fp16_res=2)
    d_kwargs = {"num_channels": 3, "resolution": 16, "label_size": 0, "fmap_base": 64, "fmap_max": 32,
                "conv_clamp": 256, "num_fp16_res": 2, "augment_strength": 0.3, "freeze_layers": 0}
    path = write_tf_pickle(tmp_path / "ada-tf.pkl", tmp_path, (
        generator_state(G, kwargs, 4, "G_synthesis", "G"), discriminator_state(D, d_kwargs, "D_main", 4),
        generator_state(G, kwargs, 4, "G_synthesis", "Gs")))
    networks, info = load_network_files(path, ["G_ema", "D"])
    assert info.networks["D"]["init_kwargs"]["mbstd_group_size"] is None
    assert_same_images(networks["G_ema"], G)
    real = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(networks["D"](real), D(real), atol=1e-5, rtol=0)
    d_kwargs["use_pagan"] = True
    path = write_tf_pickle(tmp_path / "pagan.pkl", tmp_path, (
        generator_state(G, kwargs, 4, "G_synthesis", "G"), discriminator_state(D, d_kwargs, "D_main", 4),
        generator_state(G, kwargs, 4, "G_synthesis", "Gs")))
    checkpoint = import_tf_pickle(path)  # the generators still import; the comparison-method D is reported
    assert sorted(checkpoint.networks) == ["G", "G_ema"] and "use_pagan" in checkpoint.unsupported["D"]


# ---------------------------------------------------------------------------------------------------------------------
# Names and transforms, against hand-written TF names and independent formulas.


def test_stylegan2_name_table_lists_the_tf_variables_of_an_8x8_skip_generator() -> None:
    G = v2_generator(resolution=8, architecture="skip")
    names = {name for name, _ in tf_names.v2_generator_layout(G).values()}
    layer = ("weight", "bias", "mod_weight", "mod_bias", "noise_strength")
    torgb = ("weight", "bias", "mod_weight", "mod_bias")
    expected = {"dlatent_avg", *(f"mapping/Dense{i}/{p}" for i in range(2) for p in ("weight", "bias")),
                "synthesis/4x4/Const/const", *(f"synthesis/4x4/Conv/{p}" for p in layer),
                *(f"synthesis/4x4/ToRGB/{p}" for p in torgb),
                *(f"synthesis/8x8/{scope}/{p}" for scope in ("Conv0_up", "Conv1") for p in layer),
                *(f"synthesis/8x8/ToRGB/{p}" for p in torgb), "synthesis/noise0", "synthesis/noise1",
                "synthesis/noise2"}
    assert names == expected
    layout = tf_names.v2_generator_layout(G)
    assert layout["synthesis.b8.conv0.weight"] == ("synthesis/8x8/Conv0_up/weight", "conv_flip")
    assert layout["synthesis.b8.conv1.weight"] == ("synthesis/8x8/Conv1/weight", "conv")
    assert layout["synthesis.b8.conv0.noise_const"] == ("synthesis/noise1", "noise")
    assert layout["synthesis.b4.conv1.affine.bias"] == ("synthesis/4x4/Conv/mod_bias", "mod_bias")


def test_stylegan_v1_name_table_of_mapping_and_top_level() -> None:
    G = v1_generator(c_dim=3)
    layout = tf_names.v1_generator_layout(G)
    assert layout["mapping.embed.weight"] == ("mapping/LabelConcat/weight", "dense")
    assert layout["mapping.fc1.weight"] == ("mapping/Dense1/weight", "dense")
    assert layout["mapping.fc1.bias"] == ("mapping/Dense1/bias", "v1_mapping_bias")
    assert layout["mapping.w_avg"] == ("dlatent_avg", "copy")
    assert layout["synthesis.b4.const"] == ("synthesis/4x4/Const/const", "const")
    assert layout["synthesis.b8.conv0.weight"] == ("synthesis/8x8/Conv0_up/weight", "conv")  # no flip in v1
    assert layout["synthesis.b16.torgb.weight"] == ("synthesis/ToRGB_lod0/weight", "conv")
    assert layout["synthesis.b4.conv0.noise_const"] == ("synthesis/noise0", "noise")
    assert layout["synthesis.lod"] == ("lod", "copy")  # G_style assigns its own lod to the synthesis network
    assert set(layout) == set(G.state_dict())


def _tf_mapping(variables: dict[str, np.ndarray], z: np.ndarray, c: np.ndarray, layers: int,
                version: int) -> np.ndarray:
    """TF G_mapping re-written from its definition (v1 and StyleGAN2 alike: LabelConcat, one pixel norm of [z, y],
    lrmul 0.01). v1 puts the gain sqrt(2) into the weights before an un-gained leaky ReLU; StyleGAN2's fused_bias_act
    multiplies by sqrt(2) after it."""
    x = np.concatenate([z, c @ variables["mapping/LabelConcat/weight"]], axis=1)
    x = x / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-8)
    weight_gain, act_gain = (math.sqrt(2), 1.0) if version == 1 else (1.0, math.sqrt(2))
    for i in range(layers):
        w = variables[f"mapping/Dense{i}/weight"]
        x = x @ (w * weight_gain / math.sqrt(w.shape[0]) * 0.01) + variables[f"mapping/Dense{i}/bias"] * 0.01
        x = np.maximum(x, 0.2 * x) * act_gain
    return x


@pytest.mark.parametrize("version", [1, 2])
def test_imported_mapping_equals_the_tf_formula(tmp_path: Path, version: int) -> None:
    G = v1_generator(c_dim=3) if version == 1 else v2_generator(c_dim=3)
    state = (generator_state(G, v1_kwargs(G), 3, "G_synthesis") if version == 1
             else generator_state(G, v2_kwargs(G), 4, "G_synthesis_stylegan2"))
    imported, _ = load_network_file(write_tf_pickle(tmp_path / "tf.pkl", tmp_path, (state,)))
    variables = {f"mapping/{name}": value for name, value in state["components"]["mapping"]["variables"]}
    z = np.random.default_rng(0).standard_normal([5, Z]).astype(np.float32)
    c = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]
    expected = _tf_mapping(variables, z, c, layers=2, version=version)
    with torch.no_grad():
        ws = imported.mapping(torch.from_numpy(z), torch.from_numpy(c))
    np.testing.assert_allclose(ws[:, 0].numpy(), expected, atol=1e-5)


def _tf_modulated_conv(x: torch.Tensor, dlatent: torch.Tensor, v: dict[str, np.ndarray], scope: str,
                       demodulate: bool) -> torch.Tensor:
    """TF StyleGAN2 `modulated_conv2d_layer` (no resampling) re-written from its definition: equalized-lr weight
    [k, k, I, O] * 1/sqrt(k k I), styles s = dense(w) + mod_bias + 1, optional demodulation, 'SAME' correlation."""
    weight = torch.from_numpy(v[f"{scope}/weight"])  # [k, k, I, O]
    k, _, fan_in_channels, _ = weight.shape
    weight = weight / math.sqrt(k * k * fan_in_channels)
    mod_weight = torch.from_numpy(v[f"{scope}/mod_weight"])  # [w_dim, I]
    styles = dlatent @ (mod_weight / math.sqrt(mod_weight.shape[0])) + torch.from_numpy(v[f"{scope}/mod_bias"]) + 1
    ww = weight[None] * styles[:, None, None, :, None]  # [B, k, k, I, O]
    if demodulate:
        ww = ww * (ww.square().sum(dim=[1, 2, 3]) + 1e-8).rsqrt()[:, None, None, None, :]
    return torch.cat([F.conv2d(x[b:b + 1], ww[b].permute(3, 2, 0, 1), padding=k // 2) for b in range(x.shape[0])])


def test_imported_modulated_layers_equal_the_tf_formula(tmp_path: Path) -> None:
    """4x4/Conv (modulation with mod_bias + 1, demodulation, const noise * noise_strength, bias, lrelu * sqrt(2))
    and 4x4/ToRGB (no demodulation, linear bias) of an imported network against the TF definitions."""
    G = v2_generator(resolution=8, architecture="skip")
    state = generator_state(G, v2_kwargs(G), 4, "G_synthesis_stylegan2")
    imported, _ = load_network_file(write_tf_pickle(tmp_path / "tf.pkl", tmp_path, (state,)))
    v = dict(state["components"]["synthesis"]["variables"])
    x = torch.from_numpy(v["4x4/Const/const"]).repeat(2, 1, 1, 1)  # [2, C, 4, 4]
    w = torch.randn(2, Z)
    y = _tf_modulated_conv(x, w, v, "4x4/Conv", demodulate=True)
    y = y + torch.from_numpy(v["noise0"]) * float(v["4x4/Conv/noise_strength"])
    y = F.leaky_relu(y + torch.from_numpy(v["4x4/Conv/bias"])[None, :, None, None], 0.2) * math.sqrt(2)
    rgb = _tf_modulated_conv(y, w, v, "4x4/ToRGB", demodulate=False)
    rgb = rgb + torch.from_numpy(v["4x4/ToRGB/bias"])[None, :, None, None]
    block = imported.synthesis.b4
    with torch.no_grad():
        ours = block.conv1(block.const[None].repeat(2, 1, 1, 1), w, noise_mode="const")
        torch.testing.assert_close(ours, y, atol=1e-5, rtol=0)
        torch.testing.assert_close(block.torgb(ours, w), rgb, atol=1e-5, rtol=0)


def test_imported_v1_const_layer_equals_the_tf_epilogue(tmp_path: Path) -> None:
    """4x4/Const of TF v1 G_synthesis: const + noise * per-channel weight, bias, lrelu (no gain), instance norm,
    StyleMod (dense of w with gain 1, x * (s + 1) + b), written from the TF definitions."""
    G = v1_generator()
    state = generator_state(G, v1_kwargs(G), 3, "G_synthesis")
    imported, _ = load_network_file(write_tf_pickle(tmp_path / "v1.pkl", tmp_path, (state,)))
    v = {name: torch.from_numpy(np.asarray(value)) for name, value in state["components"]["synthesis"]["variables"]}
    w = torch.randn(2, Z)
    x = v["4x4/Const/const"].repeat(2, 1, 1, 1) + v["noise0"] * v["4x4/Const/Noise/weight"][None, :, None, None]
    x = F.leaky_relu(x + v["4x4/Const/bias"][None, :, None, None], 0.2)
    x = x - x.mean(dim=[2, 3], keepdim=True)
    x = x * (x.square().mean(dim=[2, 3], keepdim=True) + 1e-8).rsqrt()
    style = w @ (v["4x4/Const/StyleMod/weight"] / math.sqrt(Z)) + v["4x4/Const/StyleMod/bias"]  # [2, 2C]
    C = x.shape[1]
    x = x * (style[:, :C, None, None] + 1) + style[:, C:, None, None]
    block = imported.synthesis.b4
    with torch.no_grad():
        ours = block.conv0(block.const[None].expand(2, -1, -1, -1), w, noise_mode="const")
    torch.testing.assert_close(ours, x, atol=1e-5, rtol=0)


def test_old_numpy_module_names_and_pickle_protocol_2(tmp_path: Path) -> None:
    """Official TF pickles were written with numpy 1.x (`numpy.core.multiarray`); protocol 2 spells globals as text."""
    G = v2_generator()
    path = write_tf_pickle(tmp_path / "p2.pkl", tmp_path, (generator_state(G, v2_kwargs(G), 4,
                                                                            "G_synthesis_stylegan2"),), protocol=2)
    data = path.read_bytes()
    assert b"numpy._core.multiarray" in data
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    imported, _ = load_network_file(path)
    assert_same_images(imported, G)


def _tf_upsample_conv_2d(x: torch.Tensor, w_tf: np.ndarray) -> torch.Tensor:
    """TF StyleGAN2 `upsample_conv_2d` (k = [1, 3, 3, 1]) re-written from its definition: transposed stride-2 conv of
    the spatially flipped kernel, then the FIR filter (gain 4) with pads ((p + 1) // 2 + 1, p // 2 + 1),
    p = (4 - 2) - (kh - 1)."""
    kh = w_tf.shape[0]
    flipped = torch.from_numpy(np.ascontiguousarray(w_tf[::-1, ::-1]))  # [kh, kw, in, out]
    y = F.conv_transpose2d(x, flipped.permute(2, 3, 0, 1), stride=2)  # torch wants [in, out, kh, kw]
    p = 2 - (kh - 1)
    pad0, pad1 = (p + 1) // 2 + 1, p // 2 + 1
    y = F.pad(y, [pad0, pad1, pad0, pad1])
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = (k[:, None] * k[None, :]) / 64 * 4  # normalised outer product times factor^2
    channels = y.shape[1]
    return F.conv2d(y, k.expand(channels, 1, 4, 4), groups=channels)


def test_flipped_upsampling_weights_reproduce_the_tf_transposed_convolution() -> None:
    torch.manual_seed(0)
    w_tf = np.random.default_rng(1).standard_normal([3, 3, 4, 5]).astype(np.float32)
    x = torch.randn(2, 4, 6, 6)
    layer = Conv2dLayer(4, 5, kernel_size=3, bias=False, up=2)
    with torch.no_grad():
        layer.weight.copy_(tf_names.from_tf(w_tf, "conv_flip") * math.sqrt(4 * 9))  # cancel the equalized-lr gain
        ours = layer(x)
        unflipped = layer.weight.copy_(tf_names.from_tf(w_tf, "conv") * math.sqrt(4 * 9))
        assert unflipped is not None
        wrong = layer(x)
    expected = _tf_upsample_conv_2d(x, w_tf)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    assert (wrong - expected).abs().max() > 1e-2  # the flip matters


def test_transforms_invert_each_other() -> None:
    rng = np.random.default_rng(0)
    shapes = {"copy": [3], "dense": [3, 4], "conv": [3, 3, 2, 5], "conv_flip": [3, 3, 2, 5], "const": [1, 4, 4, 4],
              "noise": [1, 1, 8, 8], "mod_bias": [6], "v1_mapping_bias": [6]}
    for name, shape in shapes.items():
        array = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(tf_names.to_tf(tf_names.from_tf(array, name), name), array, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# Truncation semantics of imported v1 networks.


@pytest.mark.parametrize("cutoff, expected_layers", [(8, 8), (None, 0), (4, 4)])
def test_imported_v1_truncation_follows_the_tf_cutoff(tmp_path: Path, cutoff: int | None,
                                                      expected_layers: int) -> None:
    G = v1_generator(resolution=64, use_noise=False)  # 10 layers: the default cutoff 8 leaves two untouched
    state = generator_state(G, v1_kwargs(G, truncation_cutoff=cutoff, use_noise=False), 3, "G_synthesis")
    imported, _ = load_network_file(write_tf_pickle(tmp_path / "v1.pkl", tmp_path, (state,)))
    z = torch.randn(2, Z)
    with torch.no_grad():
        ws = imported.mapping(z, None)
        truncated = imported.mapping(z, None, truncation_psi=0.5)
    changed = [bool((ws[:, i] - truncated[:, i]).abs().max() > 1e-6) for i in range(imported.num_ws)]
    assert changed == [i < expected_layers for i in range(imported.num_ws)]


# ---------------------------------------------------------------------------------------------------------------------
# Refusals.


class _Payload:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_hostile_and_foreign_pickles_are_refused(tmp_path: Path) -> None:
    G = v1_generator()
    state = generator_state(G, v1_kwargs(G), 3, "G_synthesis")
    state["static_kwargs"]["payload"] = _Payload()
    path = write_tf_pickle(tmp_path / "hostile.pkl", tmp_path, (state,))
    with pytest.raises(UnsafePickleError, match="builtins.print"):
        load_network_file(path)


def test_build_module_src_is_never_executed(tmp_path: Path) -> None:
    G = v2_generator()
    marker = tmp_path / "executed"
    state = generator_state(G, v2_kwargs(G), 4, "G_synthesis_stylegan2")
    state["build_module_src"] = f"open({str(marker)!r}, 'w').write('x')\n"
    imported, _ = load_network_file(write_tf_pickle(tmp_path / "src.pkl", tmp_path, (state,)))
    assert not marker.exists()
    assert_same_images(imported, G)


def test_architecture_mismatches_are_clear_errors(tmp_path: Path) -> None:
    G = v2_generator()
    state = generator_state(G, v2_kwargs(G, fmap_max=16), 4, "G_synthesis_stylegan2")  # widths disagree
    with pytest.raises(CheckpointFormatError, match="do not match"):
        import_tf_pickle(write_tf_pickle(tmp_path / "a.pkl", tmp_path, (state,)))
    state = generator_state(G, v2_kwargs(G, fancy_option=3), 4, "G_synthesis_stylegan2")
    with pytest.raises(CheckpointFormatError, match="unknown TF network arguments.*fancy_option"):
        import_tf_pickle(write_tf_pickle(tmp_path / "b.pkl", tmp_path, (state,)))
    state = generator_state(G, v2_kwargs(G), 4, "G_synthesis_stylegan2")
    state["variables"].append(("extra/weight", np.zeros(3, np.float32)))
    with pytest.raises(CheckpointFormatError, match="without an sgmodels tensor.*extra/weight"):
        import_tf_pickle(write_tf_pickle(tmp_path / "c.pkl", tmp_path, (state,)))
    for bad in ({"resolution": "big"}, {"fmap_base": 2**40}, {"fused_modconv": True, "nonlinearity": "elu"}):
        state = generator_state(G, v2_kwargs(G, **bad), 4, "G_synthesis_stylegan2")
        with pytest.raises(CheckpointFormatError):
            import_tf_pickle(write_tf_pickle(tmp_path / "e.pkl", tmp_path, (state,)))
    state = generator_state(G, v2_kwargs(G), 4, "G_synthesis_stylegan2")
    state["version"] = 7
    with pytest.raises(CheckpointFormatError, match="version 7"):
        import_tf_pickle(write_tf_pickle(tmp_path / "d.pkl", tmp_path, (state,)))


def test_the_lod_of_g_drives_the_imported_synthesis_network(tmp_path: Path) -> None:
    """A pickle saved while growing: G's lod (1.5) is what TF feeds the synthesis network, not its stale copy (0)."""
    from sgmodels.progressive import set_lod

    G = v1_generator()
    set_lod(G.synthesis, 1.5)
    state = generator_state(G, v1_kwargs(G), 3, "G_synthesis")
    assert dict(state["components"]["synthesis"]["variables"])["lod"] == 0
    imported, _ = load_network_file(write_tf_pickle(tmp_path / "growing.pkl", tmp_path, (state,)))
    assert float(imported.synthesis.lod) == 1.5
    assert_same_images(imported, G)


def test_a_single_pickled_discriminator_loads_on_its_own(tmp_path: Path) -> None:
    """Metric pickles (e.g. the CelebA-HQ attribute classifiers) hold one discriminator-type network each."""
    D = randomize(DiscriminatorV1(img_resolution=16, channel_base=128, channel_max=32), 7)
    d_kwargs = {"num_channels": 3, "resolution": 16, "label_size": 0, "fmap_base": 64, "fmap_max": 32}
    path = write_tf_pickle(tmp_path / "classifier.pkl", tmp_path, (discriminator_state(D, d_kwargs, "D_basic", 3),))
    imported, info = load_tf_discriminator(path)
    assert info.networks["D"]["class"] == "stylegan.Discriminator" and "D_basic" in info.networks["D"]["source_class"]
    real = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(imported(real), D(real), atol=1e-5, rtol=0)
    G = v1_generator()
    path = write_tf_pickle(tmp_path / "g.pkl", tmp_path, (generator_state(G, v1_kwargs(G), 3, "G_synthesis"),))
    with pytest.raises(CheckpointFormatError, match="'G_style'.*supported: D_basic"):
        load_tf_discriminator(path)
