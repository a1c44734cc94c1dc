"""The typed generator interface of sgmodels: what training, generation and mixing may rely on.

The names are those of NVIDIA's official PyTorch code (`z_dim, c_dim, w_dim, num_ws, img_resolution,
img_channels`, `G(z, c, truncation_psi=..., noise_mode=...)`, `G.mapping`, `G.synthesis`). Two levels:

* `LatentGenerator`: z [N, z_dim] (+ c) -> images; every sgmodels generator, including the traditional one without
  a mapping network;
* `StyleGenerator`: adds the W space (`w_dim`, `num_ws`, `mapping`, `synthesis`); `is_style_generator` tells them
  apart at run time (a traditional generator with `map_layers=0` has no W space).

Both include `parameters()` / `buffers()` because sgmodels code finds a generator's device through them.
`GeneratorModule` is the common base class of the sgmodels generators, for code that also needs the rest of the
`torch.nn.Module` API (training); `as_generator` turns a module loaded through the registry into one, or fails.
sgeval keeps its own, looser protocols (any callable with these names), since sgmodels never imports sgeval.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, TypeGuard

import torch

__all__ = ["W_SPACE_ATTRIBUTES", "GeneratorModule", "LatentGenerator", "MappingFn", "StyleGenerator", "SynthesisFn",
           "as_generator", "is_style_generator"]

# Attributes that only a generator with a mapping network (a W space) has.
W_SPACE_ATTRIBUTES = ("mapping", "synthesis", "w_dim", "num_ws")


class MappingFn(Protocol):
    """The mapping network: z [N, z_dim], c [N, c_dim] or None -> ws [N, num_ws, w_dim] float."""

    def __call__(self, z: torch.Tensor, c: torch.Tensor | None, *, truncation_psi: float = ...,
                 truncation_cutoff: int | None = ..., update_emas: bool = ...) -> torch.Tensor: ...


class SynthesisFn(Protocol):
    """The synthesis network: ws [N, num_ws, w_dim] -> float images [N, img_channels, R, R] in about [-1, 1]."""

    num_ws: int  # number of per-layer w vectors it reads

    def __call__(self, ws: torch.Tensor, *, noise_mode: str = ...) -> torch.Tensor: ...


class LatentGenerator(Protocol):
    """A generator of images from latents: enough for sampling, image grids and Z-space metrics."""

    z_dim: int  # latent size
    c_dim: int  # label size, 0 = unconditional
    img_resolution: int  # output height = width in pixels
    img_channels: int  # output channels (1 or 3)

    def __call__(self, z: torch.Tensor, c: torch.Tensor | None = ..., *, truncation_psi: float = ...,
                 truncation_cutoff: int | None = ..., noise_mode: str = ...) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] or None -> float images [N, img_channels, R, R] in about [-1, 1]."""
        ...

    def parameters(self, recurse: bool = ...) -> Iterator[torch.nn.Parameter]: ...

    def buffers(self, recurse: bool = ...) -> Iterator[torch.Tensor]: ...


class StyleGenerator(LatentGenerator, Protocol):
    """A generator with a W space: G(z, c) = synthesis(mapping(z, c)), as W-space code and style mixing need."""

    w_dim: int  # intermediate latent size
    num_ws: int  # number of per-layer w vectors

    @property
    def mapping(self) -> MappingFn: ...

    @property
    def synthesis(self) -> SynthesisFn: ...


def is_style_generator(G: LatentGenerator) -> TypeGuard[StyleGenerator]:
    """Whether `G` has a W space (`mapping`, `synthesis`, `w_dim`, `num_ws`).

    Deliberately not `isinstance(G, <runtime_checkable protocol>)`: from Python 3.12 that check looks attributes up
    with `inspect.getattr_static`, which does not see the submodules a `torch.nn.Module` keeps in `_modules`.
    """
    return all(hasattr(G, name) for name in W_SPACE_ATTRIBUTES)


class GeneratorModule(torch.nn.Module):
    """Base class of the sgmodels generators: a `torch.nn.Module` that is a `LatentGenerator`.

    Subclasses set the four attributes in `__init__` and implement `forward`; those with a mapping network also
    set `mapping`, `synthesis`, `w_dim` and `num_ws` (check with `is_style_generator`).
    """

    z_dim: int  # latent size
    c_dim: int  # label size, 0 = unconditional
    img_resolution: int  # output height = width in pixels
    img_channels: int  # output channels (1 or 3)

    if TYPE_CHECKING:  # nn.Module types __call__ as Callable[..., Any]; give callers the generator signature

        def __call__(self, z: torch.Tensor, c: torch.Tensor | None = None, *, truncation_psi: float = 1.0,
                     truncation_cutoff: int | None = None, noise_mode: str = "random",
                     update_emas: bool = False) -> torch.Tensor: ...


def as_generator(module: torch.nn.Module) -> GeneratorModule:
    """`module` typed as a generator; ValueError (bad input such as a snapshot of the wrong network) naming its class
    when it is not an sgmodels generator."""
    if not isinstance(module, GeneratorModule):
        raise ValueError(f"expected an sgmodels generator (a GeneratorModule such as stylegan2.Generator), got "
                         f"{type(module).__module__}.{type(module).__name__}")
    return module
