"""The typed generator interface (sgmodels.interfaces): preset generators fit it; W space is told apart at run time."""

from __future__ import annotations

import inspect

import pytest
import torch

from sgmodels.interfaces import GeneratorModule, as_generator, is_style_generator
from sgmodels.presets import ARCHS, build_networks
from sgmodels.traditional import Generator as TraditionalGenerator

LATENT_ATTRIBUTES = ("z_dim", "c_dim", "img_resolution", "img_channels")


@pytest.mark.parametrize("arch", ARCHS)
def test_every_preset_generator_is_a_generator_module(arch: str) -> None:
    G, D, _ = build_networks(arch, "cpu32", device="meta")
    assert isinstance(G, GeneratorModule) and as_generator(G) is G
    assert all(isinstance(getattr(G, name), int) for name in LATENT_ATTRIBUTES)
    assert is_style_generator(G) == (arch != "traditional")  # the traditional preset feeds z to its first layer
    with pytest.raises(ValueError, match="expected an sgmodels generator.*Discriminator"):
        as_generator(D)


def test_traditional_generator_has_a_w_space_only_with_a_mapping_network() -> None:
    small = dict(z_dim=8, w_dim=8, img_resolution=8, channel_base=32, channel_max=8)
    with torch.device("meta"):
        plain, mapped = TraditionalGenerator(**small), TraditionalGenerator(**small, map_layers=2)
    assert not is_style_generator(plain)
    assert is_style_generator(mapped) and mapped.num_ws == 1


def test_style_check_sees_submodules_that_getattr_static_misses() -> None:
    """Why `is_style_generator` is not a runtime_checkable isinstance (Python >= 3.12 uses getattr_static)."""
    G, _, _ = build_networks("stylegan2", "cpu32", device="meta")
    with pytest.raises(AttributeError):
        inspect.getattr_static(G, "mapping")  # kept in G._modules
    assert is_style_generator(G)


def test_any_object_with_the_official_names_counts_as_style_generator() -> None:
    class Official:  # e.g. an official NVIDIA G_ema: no sgmodels base class needed for the W-space check
        z_dim = c_dim = w_dim = num_ws = img_resolution = img_channels = 1
        mapping = synthesis = staticmethod(lambda x, *args: x)

    class ZOnly:
        z_dim = c_dim = img_resolution = img_channels = 1

    assert is_style_generator(Official())
    assert not is_style_generator(ZOnly())
