from __future__ import annotations

import pytest
import torch

from sgmodels.registry import build_network, describe_network, register_network


@register_network("test.Tiny")
class Tiny(torch.nn.Module):
    def __init__(self, width: int, depth: int = 2, **extra: float) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(depth)])
        self.extra = extra


def test_description_round_trip_rebuilds_same_architecture() -> None:
    net = Tiny(4, scale=0.5)
    description = describe_network(net)
    assert description == {"class": "test.Tiny", "init_kwargs": {"width": 4, "depth": 2, "scale": 0.5}}
    rebuilt = build_network(description)
    assert isinstance(rebuilt, Tiny)
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in net.parameters()]


def test_unknown_class_and_unserialisable_args_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown network class 'nope'"):
        build_network({"class": "nope"})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        Tiny(4, scale=object())


def test_a_fresh_process_finds_every_architecture_through_the_presets_table() -> None:
    """The registry keeps no list of modules: a name it has not seen makes it import the architecture table's
    modules, so a snapshot is rebuilt in a process that imported nothing but the registry."""
    import subprocess
    import sys

    script = (
        "from sgmodels.registry import network_class, registered_networks, synthesis_class\n"
        "import sys\n"
        "assert 'sgmodels.stylegan1' not in sys.modules\n"
        "print(network_class('stylegan.Discriminator').__module__, synthesis_class('stylegan').__module__)\n"
        "print(','.join(registered_networks()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["sgmodels.stylegan1", "sgmodels.stylegan1"]
    assert {"stylegan2.Generator", "stylegan2.Discriminator", "stylegan.Discriminator",
            "traditional.Generator"} <= set(out[2].split(","))


def test_every_family_describes_a_class_its_modules_register() -> None:
    from sgmodels.presets import DISCRIMINATORS, GENERATORS, NetworkConfig
    from sgmodels.registry import network_class

    for name, family in GENERATORS.items():
        description = family.describe(NetworkConfig(generator=name, discriminator="stylegan2"))
        assert network_class(description["class"]).__module__ in family.modules
    for name, family in DISCRIMINATORS.items():
        description = family.describe(NetworkConfig(generator="stylegan2", discriminator=name))
        assert network_class(description["class"]).__module__ in family.modules
