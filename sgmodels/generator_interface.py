"""The one definition of the generator interface that sgmodels and sgeval type generators with.

The names are those of NVIDIA's official PyTorch code (`z_dim, c_dim, w_dim, num_ws, img_resolution,
img_channels`, `G(z, c, truncation_psi=..., noise_mode=...)`, `G.mapping`, `G.synthesis`), so an official `G_ema`,
an sgmodels generator, or any object with the same names fits without a wrapper. Two levels:

* `LatentGenerator`: z [N, z_dim] (+ c) -> images; every sgmodels generator, including the traditional one without
  a mapping network: enough for sampling, image grids, FID/KID/precision-recall and Z-space PPL;
* `StyleGenerator`: adds the W space (`w_dim`, `num_ws`, `mapping`, `synthesis`) that style mixing, W-space PPL,
  linear separability and projection need; `is_style_generator` tells the two apart at run time (a traditional
  generator with `map_layers=0` has no W space).

`LatentGenerator` also declares the three `torch.nn.Module` methods that code relies on (`parameters()` and
`buffers()` to find a generator's device, `named_buffers()` to find the `noise_const` noise inputs): official and
sgmodels generators are modules.

For type annotations only: not runtime-checkable on purpose. From Python 3.12 `isinstance` against a Protocol looks
attributes up with `inspect.getattr_static`, which cannot see the submodules a `torch.nn.Module` keeps in `_modules`
(`mapping`, `synthesis`), so it would call a real generator a non-generator; use `is_style_generator`.

torch is imported for annotations only, so this module costs nothing at run time: sgeval's adapter
(`sgeval/sources/sgmodels_adapter.py`, which must stay light) re-exports it, and `sgmodels.interfaces` adds the
module base class of the sgmodels generators.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, TypeGuard

if TYPE_CHECKING:
    import torch

__all__ = ["W_SPACE_ATTRIBUTES", "LatentGenerator", "MappingFn", "StyleGenerator", "SynthesisFn",
           "is_style_generator"]

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

    def named_buffers(self, prefix: str = ..., recurse: bool = ...) -> Iterator[tuple[str, torch.Tensor]]: ...


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
