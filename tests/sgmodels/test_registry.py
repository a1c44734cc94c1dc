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
