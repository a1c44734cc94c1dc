"""Registry of network classes that can be rebuilt from a JSON description.

Every top-level network (generators, discriminators) is decorated with `@register_network("name")`. The decorator
records the constructor arguments of each instance in `module.init_kwargs` (they must be JSON-serialisable), so a
snapshot can store `{"class": name, "init_kwargs": {...}}` next to the tensors and rebuild the exact network
without pickling or executing any code. `build_network(description)` is the inverse. The synthesis networks a
`stylegan2.Generator` can hold are registered the same way, by name, with `@register_synthesis("name")`.

Where each class lives is written down once, in the architecture table of `sgmodels.presets` (`GENERATORS`,
`DISCRIMINATORS`: each family names its modules). A name that is not registered yet makes the registry import the
modules of that table, so reading a snapshot imports only what is needed on a warm process and never needs a
second list here. Adding an architecture: its module (classes decorated here) and its entry and presets in
`sgmodels/presets.py` -- two files.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from typing import Any, TypeVar

import torch

T = TypeVar("T", bound=type)

_NETWORK_CLASSES: dict[str, type] = {}
_SYNTHESIS_CLASSES: dict[str, type] = {}


def _import_architectures() -> None:
    """Import every module named in the presets' architecture table (each registers its classes on import)."""
    presets = importlib.import_module("sgmodels.presets")  # above this module: imported only on a miss
    presets.import_architectures()


def register_network(name: str):
    """Class decorator: register `cls` under `name` and record constructor kwargs in `self.init_kwargs`."""

    def decorate(cls: T) -> T:
        if name in _NETWORK_CLASSES and _NETWORK_CLASSES[name] is not cls:
            raise ValueError(f"network name {name!r} registered twice")
        target: Any = cls  # typed Any: mypy cannot follow reading and replacing a class's __init__
        original_init = target.__init__
        signature = inspect.signature(original_init)

        @functools.wraps(original_init)
        def recording_init(self, *args: Any, **kwargs: Any) -> None:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            recorded = {k: v for k, v in bound.arguments.items() if k != "self"}
            for key, value in list(recorded.items()):
                if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                    recorded.pop(key)
                    recorded.update(value)
            _check_json(name, recorded)
            original_init(self, *args, **kwargs)
            if type(self) is target:  # a subclass records its own arguments
                self.init_kwargs = recorded
                self.network_name = name

        target.__init__ = recording_init
        _NETWORK_CLASSES[name] = cls
        return cls

    return decorate


def _check_json(name: str, kwargs: dict[str, Any]) -> None:
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise TypeError(f"constructor arguments of network {name!r} must be JSON-serialisable: {exc}") from None


def register_synthesis(name: str):
    """Class decorator: register a synthesis network class under `name` (`Generator(synthesis=name)`)."""

    def decorate(cls: T) -> T:
        if name in _SYNTHESIS_CLASSES and _SYNTHESIS_CLASSES[name] is not cls:
            raise ValueError(f"synthesis network {name!r} registered twice")
        _SYNTHESIS_CLASSES[name] = cls
        return cls

    return decorate


def _lookup(table: dict[str, type], name: str, what: str) -> type:
    if name not in table:
        _import_architectures()
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def network_class(name: str) -> type:
    """Return the class registered as `name`, importing the architecture modules on first use."""
    return _lookup(_NETWORK_CLASSES, name, "network class")


def synthesis_class(name: str) -> type:
    """Return the synthesis network class registered as `name`, importing the architecture modules on first use."""
    return _lookup(_SYNTHESIS_CLASSES, name, "synthesis network")


def describe_network(module: torch.nn.Module) -> dict[str, Any]:
    """JSON description `{"class": name, "init_kwargs": {...}}` of a registered network instance."""
    if not hasattr(module, "network_name"):
        raise TypeError(f"{type(module).__name__} is not a registered network (use @register_network)")
    return {"class": module.network_name, "init_kwargs": json.loads(json.dumps(module.init_kwargs))}


def build_network(description: dict[str, Any]) -> torch.nn.Module:
    """Rebuild a freshly initialised network from `describe_network` output."""
    if not isinstance(description, dict) or "class" not in description:
        raise ValueError(f"not a network description: {description!r:.200}")
    cls = network_class(description["class"])
    return cls(**description.get("init_kwargs", {}))


def registered_networks() -> list[str]:
    """Names of every network class (all architecture modules imported)."""
    _import_architectures()
    return sorted(_NETWORK_CLASSES)


def registered_synthesis_networks() -> list[str]:
    """Names of every synthesis network (all architecture modules imported)."""
    _import_architectures()
    return sorted(_SYNTHESIS_CLASSES)
