"""The typed generator interface (sgmodels.interfaces): preset generators fit it; W space is told apart at run time."""

from __future__ import annotations

import inspect
import typing

import pytest
import torch

from sgmodels.interfaces import (
    W_SPACE_ATTRIBUTES,
    GeneratorModule,
    LatentGenerator,
    MappingFn,
    StyleGenerator,
    SynthesisFn,
    as_generator,
    is_style_generator,
)
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


# ------------------------------------------------------------------------------- the Protocols, checked at run time


def _protocol_members(protocol: type) -> dict[str, object]:
    """Name -> declaration (annotation, method or property) of every member `protocol` and its Protocol bases declare.

    Read from the classes themselves, so the checks below follow the interface when it changes.
    """
    members: dict[str, object] = {}
    for klass in reversed(protocol.__mro__):
        if not getattr(klass, "_is_protocol", False) or klass is typing.Protocol:
            continue
        members.update(klass.__dict__.get("__annotations__", {}))
        members.update({name: value for name, value in vars(klass).items()
                        if (callable(value) or isinstance(value, property))
                        and (not name.startswith("_") or name == "__call__")})
    return members


def _keywords(function: typing.Callable[..., object]) -> list[str]:
    """The keyword-only parameters of a Protocol method: the options every implementation must accept by name."""
    return [name for name, parameter in inspect.signature(function).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY]


def _tiny(arch: str, **overrides: int) -> GeneratorModule:
    torch.manual_seed(0)
    G, _D, _ = build_networks(arch, "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, **overrides)
    return G.eval()


TINY_GENERATORS = [("stylegan2", {}), ("stylegan", {}), ("traditional", {}), ("traditional", {"map_layers": 2})]


@pytest.mark.parametrize(("arch", "overrides"), TINY_GENERATORS, ids=lambda value: str(value or ""))
def test_real_generators_satisfy_the_protocols_they_claim(arch: str, overrides: dict[str, int]) -> None:
    """Every member of LatentGenerator (and, with a W space, of StyleGenerator) is there and takes the Protocol's
    keyword options; the traditional generator without a mapping network is a LatentGenerator only."""
    G = _tiny(arch, **overrides)
    styled = arch != "traditional" or bool(overrides)
    assert is_style_generator(G) == styled
    latent = _protocol_members(LatentGenerator)
    assert {"z_dim", "c_dim", "img_resolution", "img_channels", "__call__", "parameters", "buffers",
            "named_buffers"} <= set(latent)
    assert all(hasattr(G, name) for name in latent)
    assert all(isinstance(getattr(G, name), int) for name, kind in latent.items() if kind == "int")
    style_only = set(_protocol_members(StyleGenerator)) - set(latent)
    assert style_only == set(W_SPACE_ATTRIBUTES)
    assert {name for name in style_only if hasattr(G, name)} == (style_only if styled else set())  # all or none

    z = torch.randn(2, G.z_dim)
    options = {"truncation_psi": 1.0, "truncation_cutoff": None, "noise_mode": "const"}
    assert sorted(options) == sorted(_keywords(LatentGenerator.__call__))
    with torch.no_grad():
        images = G(z, None, **options)
    assert images.shape == (2, G.img_channels, G.img_resolution, G.img_resolution) and images.is_floating_point()
    assert all(isinstance(name, str) and isinstance(buffer, torch.Tensor) for name, buffer in G.named_buffers())
    if not styled:
        return
    mapping_options = {"truncation_psi": 1.0, "truncation_cutoff": None, "update_emas": False}
    assert sorted(mapping_options) == sorted(_keywords(MappingFn.__call__))
    assert _keywords(SynthesisFn.__call__) == ["noise_mode"]
    with torch.no_grad():
        ws = G.mapping(z, None, **mapping_options)
        assert ws.shape == (2, G.num_ws, G.w_dim)
        assert G.synthesis.num_ws == G.num_ws
        assert torch.equal(G.synthesis(ws, noise_mode="const"), images)  # G(z, c) = synthesis(mapping(z, c))


def test_sgeval_uses_the_same_protocol_objects() -> None:
    """One definition: sgmodels.interfaces and sgeval (through its adapter) re-export the generator_interface ones."""
    import sgeval.sources
    import sgeval.sources.interfaces
    import sgeval.sources.sgmodels_adapter
    from sgmodels import generator_interface, interfaces

    for name in ("LatentGenerator", "StyleGenerator"):
        defined = getattr(generator_interface, name)
        assert defined.__module__ == "sgmodels.generator_interface"
        for module in (interfaces, sgeval.sources.sgmodels_adapter, sgeval.sources.interfaces, sgeval.sources):
            assert getattr(module, name) is defined, module
    assert sgeval.sources.sgmodels_adapter.is_style_generator is generator_interface.is_style_generator
    assert interfaces.is_style_generator is generator_interface.is_style_generator
