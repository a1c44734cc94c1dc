"""Traditional (ProGAN-style) generator: Z-only and mapped variants, architecture switches, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sgmodels.progressive import set_lod, upscale2d
from sgmodels.registry import build_network, describe_network
from sgmodels.stylegan1 import SynthesisNetwork
from sgmodels.traditional import W_SPACE_ATTRIBUTES, Generator

Z_DIM = 16
SMALL = dict(z_dim=Z_DIM, w_dim=Z_DIM, img_resolution=16, channel_base=128, channel_max=32)


def make_generator(seed: int = 0, **kwargs) -> Generator:
    torch.manual_seed(seed)
    G = Generator(**{**SMALL, **kwargs})
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                param.normal_(0, 0.3)
    return G.eval()


def body(G: Generator) -> SynthesisNetwork:
    return G.synthesis if G.has_w_space else G.body


def test_z_only_generator_has_no_w_space_attributes() -> None:
    G = make_generator()
    for name in W_SPACE_ATTRIBUTES:
        assert not hasattr(G, name), name
    for name in ("z_dim", "c_dim", "img_resolution", "img_channels"):
        assert hasattr(G, name), name
    with pytest.raises(AttributeError, match="map_layers=0.*no W space"):
        G.mapping(torch.randn(2, Z_DIM), None)
    with pytest.raises(AttributeError, match="has no 'num_ws'"):
        _ = G.num_ws
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        _ = G.nonsense


def test_mapped_generator_exposes_mapping_and_synthesis() -> None:
    G = make_generator(map_layers=2)
    assert (G.w_dim, G.num_ws, G.mapping.num_layers) == (Z_DIM, 1, 2)
    assert isinstance(G.synthesis, SynthesisNetwork)
    z = torch.randn(3, Z_DIM)
    with torch.no_grad():
        ws = G.mapping(z, None)
        assert ws.shape == (3, 1, Z_DIM)
        torch.testing.assert_close(G(z), G.synthesis(ws))
        torch.testing.assert_close(G(z, truncation_psi=1), G(z))
        G.mapping.w_avg.normal_()
        flat = G(z, truncation_psi=0)  # every w replaced by w_avg
        torch.testing.assert_close(flat, flat[:1].expand_as(flat))


def test_z_only_generator_is_the_normalised_latent_through_the_traditional_body() -> None:
    G = make_generator()
    z = torch.randn(3, Z_DIM) * 7
    with torch.no_grad():
        normalised = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        torch.testing.assert_close(G(z), G.body(normalised[:, None]))
        torch.testing.assert_close(G(z), G(z / 7))  # scale of z is normalised away
    with pytest.raises(ValueError, match="map_layers=0"):
        G(z, truncation_psi=0.7)


def test_traditional_architecture_has_no_styles_and_pixel_norm_after_each_activation() -> None:
    G = make_generator()
    names = [name for name, _ in G.named_parameters()]
    assert not any("affine" in name or "noise_strength" in name or name.endswith("const") for name in names)
    captured = {}
    G.body.b8.conv1.register_forward_hook(lambda module, args, out: captured.setdefault("x", out))
    with torch.no_grad():
        G(torch.randn(2, Z_DIM))
    mean_square = captured["x"].square().mean(dim=1)  # [N, H, W]: pixel norm gives 1 everywhere
    torch.testing.assert_close(mean_square, torch.ones_like(mean_square), atol=1e-4, rtol=0)
    first = G.body.b4.conv0
    assert first.kind == "dense" and first.weight.shape == (32 * 16, Z_DIM)
    assert first.weight_gain == pytest.approx(math.sqrt(2) / 4 / math.sqrt(Z_DIM))


def test_config_a_has_no_blur_and_differs_from_config_b_only_there() -> None:
    config_a = make_generator(blur_filter=None)
    config_b = make_generator()
    assert all(block.conv0.blur_filter is None for block in config_a.body.blocks())
    assert config_b.body.b8.conv0.blur_filter is not None
    config_b.load_state_dict(config_a.state_dict())  # identical parameters
    z = torch.randn(2, Z_DIM)
    with torch.no_grad():
        assert not torch.allclose(config_a(z), config_b(z))
        # The 4x4 features agree; B's upsampling conv output is A's blurred with [1, 2, 1] x [1, 2, 1] / 16.
        features = config_a.body.b4(None, z[:, None], "none")  # [N, 32, 4, 4]
        torch.testing.assert_close(config_b.body.b4(None, z[:, None], "none"), features)
        x_a = config_a.body.b8.conv0._input_op(features, z)  # [N, 16, 8, 8]
        kernel = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
        blurred = F.conv2d(F.pad(x_a, [1, 1, 1, 1]), kernel.expand(16, 1, 3, 3), groups=16)
        torch.testing.assert_close(config_b.body.b8.conv0._input_op(features, z), blurred)


@pytest.mark.parametrize("map_layers", [0, 2])
def test_progressive_lod_shapes_and_fade_in(map_layers: int) -> None:
    G = make_generator(map_layers=map_layers)
    z = torch.randn(2, Z_DIM)
    assert set_lod(G, 0.0) == 1
    with torch.no_grad():
        outputs = {}
        for lod in (0.0, 0.5, 1.0, 1.5, 2.0):
            set_lod(G, lod)
            img = G(z)
            assert img.shape == (2, 3, 16, 16) and img.dtype == torch.float32
            outputs[lod] = img
    torch.testing.assert_close(outputs[0.5], (outputs[0.0] + outputs[1.0]) / 2)
    torch.testing.assert_close(outputs[2.0], upscale2d(outputs[2.0][:, :, ::4, ::4], 4))


def test_noise_inputs_can_be_enabled() -> None:
    G = make_generator(use_noise="all")
    z = torch.randn(2, Z_DIM)
    with torch.no_grad():
        torch.testing.assert_close(G(z, noise_mode="const"), G(z, noise_mode="const"))
        assert not torch.allclose(G(z, noise_mode="const"), G(z, noise_mode="none"))


@pytest.mark.parametrize("map_layers", [0, 2])
def test_batch_size_independence_and_same_seed_same_image(map_layers: int) -> None:
    G = make_generator(map_layers=map_layers)
    z = torch.randn(4, Z_DIM)
    with torch.no_grad():
        torch.testing.assert_close(G(z), torch.cat([G(z[i : i + 1]) for i in range(4)]), atol=1e-5, rtol=1e-5)
        assert torch.equal(make_generator(seed=3, map_layers=map_layers)(z),
                           make_generator(seed=3, map_layers=map_layers)(z))


@pytest.mark.parametrize("map_layers", [0, 2])
def test_registry_round_trip(map_layers: int) -> None:
    G = make_generator(map_layers=map_layers, blur_filter=None)
    description = describe_network(G)
    assert description["class"] == "traditional.Generator"
    assert description["init_kwargs"]["map_layers"] == map_layers
    rebuilt = build_network(description)
    assert isinstance(rebuilt, Generator) and rebuilt.has_w_space == (map_layers > 0)
    rebuilt.load_state_dict(G.state_dict())
    z = torch.randn(2, Z_DIM)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(z), G(z))


def test_conditional_z_only_generator_embeds_the_label() -> None:
    G = make_generator(c_dim=3, w_dim=2 * Z_DIM)  # w = [normalised z, normalised embedded c]
    z = torch.randn(2, Z_DIM)
    eye = torch.eye(3)
    with torch.no_grad():
        assert not torch.allclose(G(z, eye[:2]), G(z, eye[1:]))
    with pytest.raises(ValueError, match="conditional"):
        G(z)
    with pytest.raises(ValueError, match=r"w_dim must be z_dim \+ the label embedding size"):
        Generator(**{**SMALL, "c_dim": 3})
    with pytest.raises(ValueError, match="w_dim must equal z_dim"):
        Generator(**{**SMALL, "w_dim": 8})
    assert make_generator(w_dim=8, map_layers=1).mapping(z, None).shape == (2, 1, 8)


def test_bad_inputs_are_clear_errors() -> None:
    G = make_generator()
    with pytest.raises(ValueError, match=r"z must have shape \[\*, 16\]"):
        G(torch.randn(2, 8))
    with pytest.raises(ValueError, match="unconditional"):
        G(torch.randn(2, Z_DIM), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        G(torch.randn(2, Z_DIM), noise_mode="fixed")
    with pytest.raises(ValueError, match="map_layers must be an int >= 0"):
        Generator(**SMALL, map_layers=-1)
    with pytest.raises(ValueError, match="power of two"):
        Generator(**{**SMALL, "img_resolution": 48})
