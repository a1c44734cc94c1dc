from __future__ import annotations

import pytest
import torch

from sgmodels.describe import count_params
from sgmodels.presets import PRESETS, TRAINING_DEFAULTS, build_networks, configs_of, get_preset, network_descriptions
from sgmodels.training.schedule import ProgressiveSchedule

# Shrinks every paper preset to a 16x16 network with 16 channels that runs in milliseconds.
TINY = dict(resolution=16, channel_max=16, z_dim=16, w_dim=16)


def _family(G: torch.nn.Module) -> str:
    if G.network_name == "traditional.Generator":
        return "traditional"
    return G.init_kwargs["synthesis"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_and_runs_at_tiny_size(name: str) -> None:
    preset = PRESETS[name]
    torch.manual_seed(0)
    G, D, training = build_networks(preset.arch, preset.config, **TINY)
    z = torch.randn(2, G.z_dim)
    img = G(z, None, noise_mode="const")
    assert img.shape == (2, 3, 16, 16) and img.dtype == torch.float32 and torch.isfinite(img).all()
    logits = D(img, None)
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()
    assert set(training) == set(TRAINING_DEFAULTS)


@pytest.mark.parametrize(
    ("name", "family", "d_class", "channel_base"),
    [
        ("stylegan-a", "traditional", "stylegan.Discriminator", 16384),
        ("stylegan-b", "traditional", "stylegan.Discriminator", 16384),
        ("stylegan-c", "stylegan", "stylegan.Discriminator", 16384),
        ("stylegan-f", "stylegan", "stylegan.Discriminator", 16384),
        ("stylegan2-a", "stylegan", "stylegan.Discriminator", 16384),
        ("stylegan2-b", "stylegan2", "stylegan2.Discriminator", 16384),
        ("stylegan2-e", "stylegan2", "stylegan2.Discriminator", 16384),
        ("stylegan2-f", "stylegan2", "stylegan2.Discriminator", 32768),
    ],
)
def test_paper_presets_use_the_paper_networks(name: str, family: str, d_class: str, channel_base: int) -> None:
    arch, config = name.split("-")
    G, D, _ = build_networks(arch, config, device="meta")
    assert _family(G) == family
    assert D.network_name == d_class
    assert D.init_kwargs["channel_base"] == channel_base


def test_stylegan_table1_switches() -> None:
    """StyleGAN Table 1: which row adds what (docs/models.md section 2.1)."""
    def g_kwargs(config: str) -> dict:
        g, _, _ = network_descriptions("stylegan", config)
        return g["init_kwargs"]

    a, b = g_kwargs("a"), g_kwargs("b")
    assert a["blur_filter"] is None and b["blur_filter"] == [1, 2, 1]
    assert a["map_layers"] == 0 and b["map_layers"] == 0
    c, d, e = (g_kwargs(x)["synthesis_kwargs"] for x in "cde")
    assert (c["const_input"], c["use_noise"], c["use_styles"]) == (False, "none", True)
    assert (d["const_input"], d["use_noise"]) == (True, "none")
    assert e["use_noise"] == "all"
    assert g_kwargs("c")["mapping_kwargs"]["num_layers"] == 8
    mixing = {config: network_descriptions("stylegan", config)[2]["style_mixing_prob"] for config in "abcdef"}
    assert mixing == {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0, "e": 0.0, "f": 0.9}
    assert network_descriptions("stylegan", "a")[2]["loss"] == "wgan_gp"
    assert network_descriptions("stylegan", "b")[2]["loss"] == "logistic_ns_r1"


def test_stylegan2_table1_training_switches() -> None:
    """StyleGAN2 Table 1 / run_training.py configs (docs/models.md section 2.2)."""
    training = {config: network_descriptions("stylegan2", config)[2] for config in "abcdef"}
    lazy = {config: (t["g_reg_interval"], t["d_reg_interval"]) for config, t in training.items()}
    assert lazy == {"a": (None, None), "b": (None, None), "c": (4, 16), "d": (4, 16), "e": (4, 16), "f": (4, 16)}
    assert [training[c]["pl_weight"] for c in "abcdef"] == [0, 0, 0, 2, 2, 2]
    assert [training[c]["r1_gamma"] for c in "abcdef"] == [10, 10, 10, 10, 100, 10]
    assert [training[c]["progressive"] is not None for c in "abcdef"] == [True] * 4 + [False] * 2
    assert training["f"]["lr"] == 0.002 and training["f"]["batch"] == 32
    g_b, d_b, _ = network_descriptions("stylegan2", "b")
    assert g_b["init_kwargs"]["synthesis_kwargs"]["progressive"] is True
    assert g_b["init_kwargs"]["synthesis_kwargs"]["architecture"] == "orig"
    assert d_b["init_kwargs"]["progressive"] is True and d_b["init_kwargs"]["architecture"] == "orig"
    g_e, d_e, _ = network_descriptions("stylegan2", "e")
    assert g_e["init_kwargs"]["synthesis_kwargs"]["architecture"] == "skip"
    assert d_e["init_kwargs"]["architecture"] == "resnet"


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_cpu_presets_training_values(resolution: int) -> None:
    """StyleGAN2 CPU presets: ADA 'auto' R1 gamma; v1 and traditional: lr 0.001 and a strong R1 (gamma 3 for v1,
    chosen on Fashion-MNIST; 10 for traditional as config B), not 'auto', which let the v1 discriminator win."""
    config = f"cpu{resolution}"
    v2 = network_descriptions("stylegan2", config)[2]
    assert v2["r1_gamma"] == pytest.approx(0.0002 * resolution**2 / 32) and v2["progressive"] is None
    for arch, gamma in (("stylegan", 3.0), ("traditional", 10.0)):
        training = network_descriptions(arch, config)[2]
        assert training["r1_gamma"] == gamma and training["d_reg_interval"] is None
        assert training["lr"] == 0.001 and training["progressive"]["lr_base"] == 0.001
        assert (training["progressive"]["training_kimg"], training["progressive"]["transition_kimg"]) == (20, 20)


@pytest.mark.parametrize("name", list(PRESETS))
def test_progressive_training_defaults_fit_the_schedule(name: str) -> None:
    preset = PRESETS[name]
    _, _, training = network_descriptions(preset.arch, preset.config)
    if training["progressive"] is not None:
        schedule = ProgressiveSchedule(img_resolution=preset.network.resolution, **training["progressive"])
        assert schedule.at(0).resolution == schedule.initial_resolution


def test_noise_switch_adds_exactly_the_v1_per_channel_strengths() -> None:
    """Config E = D + noise: one learned strength per channel of each of the 2 layers per resolution."""
    overrides = dict(resolution=32, channel_base=512, channel_max=32)
    g_d, _, _ = build_networks("stylegan", "d", device="meta", **overrides)
    g_e, _, _ = build_networks("stylegan", "e", device="meta", **overrides)
    expected = sum(2 * min(512 // res, 32) for res in (4, 8, 16, 32))
    assert count_params(g_e) - count_params(g_d) == expected


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan", "traditional"])
@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_cpu_presets_are_small(arch: str, resolution: int) -> None:
    G, D, _ = build_networks(arch, f"cpu{resolution}", device="meta")
    assert G.img_resolution == resolution == D.img_resolution
    assert 64 <= G.z_dim <= 128
    channels = [min(_channel_base(G) // res, 64) for res in (4, resolution)]
    assert min(channels) >= 32 and max(channels) <= 64
    assert count_params(G) < 600_000 and count_params(D) < 600_000


def _channel_base(G: torch.nn.Module) -> int:
    kwargs = G.init_kwargs
    return kwargs.get("channel_base") or kwargs["synthesis_kwargs"]["channel_base"]


def test_overrides_reach_networks_and_training() -> None:
    G, D, training = build_networks("stylegan2", "cpu16", resolution=32, map_layers=3, c_dim=5, architecture="resnet",
                                    mixing=0.5, gamma=2.0)
    assert (G.img_resolution, D.img_resolution, G.c_dim, D.c_dim) == (32, 32, 5, 5)
    assert G.mapping.num_layers == 3
    assert G.init_kwargs["synthesis_kwargs"]["architecture"] == "resnet"
    assert training["style_mixing_prob"] == 0.5 and training["r1_gamma"] == 2.0
    training["progressive"] = "changed"
    assert build_networks("stylegan2", "cpu16", device="meta")[2]["progressive"] is None  # fresh copy each time
    assert get_preset("stylegan2", "cpu16").network.resolution == 16  # the registry is not modified


def test_overrides_given_as_strings_are_coerced() -> None:
    G, _, _ = build_networks("stylegan", "cpu16", device="meta", resolution="32", const_input="false")
    assert G.img_resolution == 32 and G.init_kwargs["synthesis_kwargs"]["const_input"] is False


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a, _, _ = build_networks("stylegan2", "cpu16")
    torch.manual_seed(3)
    b, _, _ = build_networks("stylegan2", "cpu16")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize(
    ("arch", "config", "overrides", "message"),
    [
        ("stylegan3", "f", {}, r"unknown arch 'stylegan3'; valid: stylegan2, stylegan, traditional"),
        ("stylegan2", "g", {}, r"unknown config 'g' for arch 'stylegan2'; valid: a, b, c, d, e, f, cpu16"),
        ("traditional", "f", {}, r"valid: cpu16, cpu32, cpu64"),
        ("stylegan2", "f", {"resolutoin": 256}, r"unknown override\(s\) \['resolutoin'\]; valid: resolution"),
        ("stylegan2", "f", {"resolution": 48}, r"power of two"),
        ("stylegan2", "f", {"map_layers": 9}, r"map_layers must lie in 0..8"),
        ("stylegan2", "f", {"architecture": "unet"}, r"architecture must be one of orig, skip, resnet"),
        ("stylegan2", "f", {"noise": "coarse"}, r"only available with the StyleGAN v1 synthesis"),
        ("stylegan2", "f", {"const_input": False}, r"\['const_input'\] have no effect on a stylegan2 generator"),
        ("traditional", "cpu16", {"pixel_norm": False}, r"have no effect on a traditional generator"),
        ("stylegan", "cpu16", {"map_layers": 0, "z_dim": 32}, r"z_dim \(32\) must equal w_dim \(64\)"),
        ("stylegan2", "f", {"resolution": "big"}, r"resolution must be a number"),
        ("stylegan2", "f", {"map_layers": 2.5}, r"must be an integer"),
        ("stylegan2", "f", {"progressive": "maybe"}, r"must be true or false"),
    ],
)
def test_bad_presets_and_overrides_are_clear_errors(arch: str, config: str, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_networks(arch, config, device="meta", **overrides)


def test_config_listing() -> None:
    assert configs_of("stylegan2") == ["a", "b", "c", "d", "e", "f", "cpu16", "cpu32", "cpu64"]
    assert configs_of("traditional") == ["cpu16", "cpu32", "cpu64"]
    assert get_preset("stylegan2", "F").name == "stylegan2-f"


@pytest.mark.parametrize("config, clamp, fp16", [("f", 256.0, 4), ("e", 256.0, 4), ("cpu32", 256.0, 4),
                                                 ("b", None, 0), ("d", None, 0)])
def test_stylegan2_presets_record_the_ada_clamp_and_fp16_blocks(config: str, clamp: float | None, fp16: int) -> None:
    """stylegan2-ada-pytorch runs every config with conv_clamp 256 and 4 fp16 blocks; TF configs B-D had neither."""
    g, d, _ = network_descriptions("stylegan2", config)
    for kwargs in (g["init_kwargs"]["synthesis_kwargs"], d["init_kwargs"]):
        assert kwargs["conv_clamp"] == clamp and kwargs["num_fp16_res"] == fp16
    g, d, _ = network_descriptions("stylegan2", "f", conv_clamp=0, fp16_res=0)
    assert g["init_kwargs"]["synthesis_kwargs"]["conv_clamp"] is None and d["init_kwargs"]["num_fp16_res"] == 0
    with pytest.raises(ValueError, match="fp16_res needs progressive growing off"):
        network_descriptions("stylegan2", "f", progressive=True, architecture="orig", d_architecture="orig")


def test_stylegan_v1_presets_follow_the_tf_mapping_conventions() -> None:
    """Labels through LabelConcat (no bias, joint pixel norm with z); truncation cutoff 8 unless told otherwise."""
    G, _, _ = build_networks("stylegan", "cpu64", c_dim=3)
    mapping = G.mapping
    assert mapping.label_embedding == "concat" and set(dict(mapping.embed.named_parameters())) == {"weight"}
    z, c = torch.randn(4, G.z_dim), torch.eye(3)[[0, 1, 2, 0]]
    x = torch.cat([z, c @ mapping.embed.weight.t()], dim=1)
    x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    for idx in range(mapping.num_layers):
        x = getattr(mapping, f"fc{idx}")(x)
    with torch.no_grad():
        torch.testing.assert_close(mapping(z, c)[:, 0], x.detach())
        ws = mapping(z, c)
        truncated = mapping(z, c, truncation_psi=0.5)
    assert G.num_ws == 10
    changed = (ws - truncated).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [True] * 8 + [False] * 2
    with torch.no_grad():
        assert ((ws - mapping(z, c, truncation_psi=0.5, truncation_cutoff=10)).abs().amax(dim=(0, 2)) > 0).all()
