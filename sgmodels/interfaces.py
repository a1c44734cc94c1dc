"""The typed generator interface of sgmodels: what training, generation and mixing may rely on.

The Protocols (`LatentGenerator`, `StyleGenerator`, `MappingFn`, `SynthesisFn`) and the run-time W-space check
`is_style_generator` are defined once, in `sgmodels.generator_interface` (torch-free at run time, so that sgeval's
light adapter re-exports the same definitions), and re-exported here. The names are those of NVIDIA's official
PyTorch code (`z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels`, `G(z, c, truncation_psi=...,
noise_mode=...)`, `G.mapping`, `G.synthesis`); see that module for the two levels.

`GeneratorModule` is the common base class of the sgmodels generators, for code that also needs the rest of the
`torch.nn.Module` API (training); `as_generator` turns a module loaded through the registry into one, or fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sgmodels.generator_interface import (
    W_SPACE_ATTRIBUTES,
    LatentGenerator,
    MappingFn,
    StyleGenerator,
    SynthesisFn,
    is_style_generator,
)

__all__ = ["W_SPACE_ATTRIBUTES", "GeneratorModule", "LatentGenerator", "MappingFn", "StyleGenerator", "SynthesisFn",
           "as_generator", "is_style_generator"]


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
