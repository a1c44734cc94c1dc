"""Registry of network classes that can be rebuilt from a JSON description.

Every top-level network (generators, discriminators) is decorated with `@register_network("name")`. The decorator
records the constructor arguments of each instance in `module.init_kwargs` (they must be JSON-serialisable), so a
snapshot can store `{"class": name, "init_kwargs": {...}}` next to the tensors and rebuild the exact network
without pickling or executing any code. `build_network(description)` is the inverse.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from typing import Any, TypeVar

import torch

T = TypeVar("T", bound=type)

# name -> module that defines it; lets `build_network` import lazily (only what a snapshot needs).
_NETWORK_MODULES: dict[str, str] = {
    "stylegan2.Generator": "sgmodels.generator",
    "stylegan2.Discriminator": "sgmodels.stylegan2",
    "stylegan.Discriminator": "sgmodels.stylegan1",
    "traditional.Generator": "sgmodels.traditional",
}
_NETWORK_CLASSES: dict[str, type] = {}


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


def network_class(name: str) -> type:
    """Return the class registered as `name`, importing its module on first use."""
    if name not in _NETWORK_CLASSES and name in _NETWORK_MODULES:
        importlib.import_module(_NETWORK_MODULES[name])
    if name not in _NETWORK_CLASSES:
        known = ", ".join(sorted(set(_NETWORK_MODULES) | set(_NETWORK_CLASSES)))
        raise ValueError(f"unknown network class {name!r}; known: {known}")
    return _NETWORK_CLASSES[name]


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
    return sorted(set(_NETWORK_MODULES) | set(_NETWORK_CLASSES))
