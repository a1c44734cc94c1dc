"""Generator and mapping network: truncation, w_avg tracking, determinism, batch independence, input checks."""

from __future__ import annotations

import json

import pytest
import torch

from sgmodels.generator import Generator, synthesis_class
from sgmodels.mapping import MappingNetwork
from sgmodels.registry import build_network, describe_network, registered_synthesis_networks
from tests.sgmodels.test_stylegan2 import _set_noise_strength


def _generator(**kwargs: object) -> Generator:
    args = dict(z_dim=16, w_dim=16, img_resolution=16, mapping_kwargs=dict(num_layers=2),
                synthesis_kwargs=dict(channel_base=256, channel_max=16))
    return Generator(**{**args, **kwargs})


def test_generator_attributes_and_output() -> None:
    torch.manual_seed(0)
    G = _generator()
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (16, 0, 16, 6, 16, 3)
    img = G(torch.randn(2, 16))
    assert img.shape == (2, 3, 16, 16) and img.dtype == torch.float32
    ws = G.mapping(torch.randn(2, 16), None)
    assert ws.shape == (2, 6, 16) and torch.equal(ws[:, 0], ws[:, 5])  # broadcast of one w


def test_truncation_identity_full_and_cutoff() -> None:
    torch.manual_seed(1)
    G = _generator()
    G.mapping.w_avg.normal_()
    z = torch.randn(3, 16)
    ws = G.mapping(z, None)
    torch.testing.assert_close(G.mapping(z, None, truncation_psi=1.0), ws)
    torch.testing.assert_close(G.mapping(z, None, truncation_psi=0.0), G.mapping.w_avg.expand(3, 6, 16))
    half = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(half[:, :2], G.mapping.w_avg + 0.5 * (ws[:, :2] - G.mapping.w_avg))
    torch.testing.assert_close(half[:, 2:], ws[:, 2:])
    # The generator passes truncation through.
    G.eval()
    torch.testing.assert_close(G(z, truncation_psi=0.0, noise_mode="const"),
                               G.synthesis(G.mapping.w_avg.expand(3, 6, 16), noise_mode="const"))


def test_w_avg_tracks_the_mean_with_beta_only_when_asked() -> None:
    torch.manual_seed(2)
    mapping = MappingNetwork(8, 0, 8, num_ws=3, num_layers=2, w_avg_beta=0.9)
    z = torch.randn(5, 8)
    mapping(z)
    assert torch.count_nonzero(mapping.w_avg) == 0
    before = torch.randn(8)
    mapping.w_avg.copy_(before)
    ws = mapping(z, update_emas=True)
    torch.testing.assert_close(mapping.w_avg, 0.9 * before + 0.1 * ws[:, 0].mean(dim=0))


def test_mapping_without_layers_normalises_z_and_checks_widths() -> None:
    mapping = MappingNetwork(8, 0, 8, num_ws=2, num_layers=0)
    z = torch.randn(4, 8) * 3
    torch.testing.assert_close(mapping(z)[:, 1], z / z.square().mean(dim=1, keepdim=True).sqrt(), rtol=1e-5,
                               atol=1e-6)
    assert sum(p.numel() for p in mapping.parameters()) == 0
    with pytest.raises(ValueError, match="must equal w_dim"):
        MappingNetwork(8, 0, 16, num_ws=2, num_layers=0)
    conditional = MappingNetwork(8, 4, 16, num_ws=2, num_layers=0)  # embedding fills the rest of w
    assert conditional(z, torch.eye(4)).shape == (4, 2, 16)


def test_same_seed_same_image_and_batch_size_independence() -> None:
    torch.manual_seed(3)
    G = _generator().eval()
    _set_noise_strength(G, 0.5)
    z = torch.randn(4, 16)
    torch.manual_seed(7)
    a = G(z)
    torch.manual_seed(7)
    b = G(z)
    assert torch.equal(a, b)
    batch = G(z, noise_mode="const")
    singles = torch.cat([G(z[i : i + 1], noise_mode="const") for i in range(4)])
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=1e-5)


def test_conditional_generator() -> None:
    torch.manual_seed(4)
    G = _generator(c_dim=3).eval()
    z = torch.randn(3, 16)
    c = torch.eye(3)
    a, b = G(z, c, noise_mode="const"), G(z, c.roll(1, dims=0), noise_mode="const")
    assert a.shape == (3, 3, 16, 16) and not torch.allclose(a, b)
    assert "mapping.embed.weight" in G.state_dict()
    with pytest.raises(ValueError, match=r"c must be a float tensor \[N, 3\]"):
        G(z)
    with pytest.raises(ValueError, match=r"c must have shape \[3, 3\]"):
        G(z, torch.eye(2))


def test_bad_inputs_name_the_expected_shape() -> None:
    G = _generator()
    with pytest.raises(ValueError, match=r"z must have shape \[\*, 16\], got \[2, 15\]"):
        G(torch.randn(2, 15))
    with pytest.raises(ValueError, match=r"ws must have shape \[\*, 6, 16\]"):
        G.synthesis(torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match="unconditional"):
        G(torch.randn(2, 16), torch.ones(2, 3))
    assert G(torch.randn(2, 16), torch.zeros(2, 0)).shape == (2, 3, 16, 16)  # official-style empty labels
    with pytest.raises(ValueError, match="unknown synthesis network 'stylegan3'"):
        _generator(synthesis="stylegan3")


def test_registry_round_trip_and_state_dict_reload() -> None:
    torch.manual_seed(5)
    G = _generator(synthesis_kwargs=dict(channel_base=256, channel_max=16, architecture="resnet"))
    description = describe_network(G)
    assert description["class"] == "stylegan2.Generator"
    json.dumps(description)
    rebuilt = build_network(description)
    rebuilt.load_state_dict(G.state_dict(), strict=True)
    G.eval()
    rebuilt.eval()
    z = torch.randn(2, 16)
    torch.testing.assert_close(rebuilt(z, noise_mode="const"), G(z, noise_mode="const"))
    assert synthesis_class("stylegan2").__name__ == "SynthesisNetwork"
    assert registered_synthesis_networks() == ["stylegan", "stylegan2"]
