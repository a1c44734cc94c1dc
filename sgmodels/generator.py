"""The style-based generator G = synthesis(mapping(z, c)), generic over the synthesis network.

One class serves StyleGAN2 (`synthesis="stylegan2"`) and StyleGAN v1 (`synthesis="stylegan"`); the synthesis
class is looked up by name in `sgmodels.registry` (`@register_synthesis`), which imports its module on first use.
Attribute names follow the official PyTorch code (`z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels,
mapping, synthesis`), so evaluation code treats this generator and an official one alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch

from sgmodels.interfaces import GeneratorModule, SynthesisFn
from sgmodels.mapping import MappingNetwork
from sgmodels.misc import assert_shape
from sgmodels.registry import register_network
from sgmodels.registry import synthesis_class as registered_synthesis


def synthesis_class(name: str) -> Callable[..., SynthesisFn]:
    """The synthesis network class (a torch module) registered as `name` (`@register_synthesis`)."""
    return cast("Callable[..., SynthesisFn]", registered_synthesis(name))


@register_network("stylegan2.Generator")
class Generator(GeneratorModule):
    """Style-based generator: z [N, z_dim] (+ c [N, c_dim]) -> images [N, img_channels, R, R] in about [-1, 1]."""

    def __init__(
        self,
        z_dim: int = 512,  # Input latent (Z) size.
        c_dim: int = 0,  # Conditioning label size, 0 = unconditional.
        w_dim: int = 512,  # Intermediate latent (W) size.
        img_resolution: int = 1024,  # Output resolution R.
        img_channels: int = 3,  # Output channels.
        synthesis: str = "stylegan2",  # Synthesis network: a name registered with @register_synthesis.
        mapping_kwargs: dict | None = None,  # Extra MappingNetwork arguments (num_layers, lr_multiplier, ...).
        synthesis_kwargs: dict | None = None,  # Extra synthesis arguments (channel_base, architecture, ...).
    ) -> None:
        super().__init__()
        if z_dim < 1:
            raise ValueError(f"z_dim must be >= 1, got {z_dim}")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = synthesis_class(synthesis)(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **(mapping_kwargs or {}))

    def check_inputs(self, z: torch.Tensor, c: torch.Tensor | None) -> None:
        """Raise ValueError naming the expected shapes when z or c do not fit this generator."""
        assert_shape(z, [None, self.z_dim], "z")
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional: c must be a float tensor [N, {self.c_dim}]")
            assert_shape(c, [z.shape[0], self.c_dim], "c")
        elif c is not None and c.numel() > 0:
            raise ValueError(f"this generator is unconditional (c_dim=0); pass c=None, got shape {list(c.shape)}")

    def forward(
        self,
        z: torch.Tensor,  # Latents [N, z_dim].
        c: torch.Tensor | None = None,  # Labels [N, c_dim]; None (or an empty [N, 0] tensor) when unconditional.
        truncation_psi: float = 1.0,  # Truncation strength: 1 = none.
        truncation_cutoff: int | None = None,  # Truncate the first `cutoff` ws; None = the mapping's default (all
        # layers for StyleGAN2; 8 for StyleGAN v1 presets and TF imports, as in the official v1 code).
        noise_mode: str = "random",  # 'random' | 'const' | 'none'.
        update_emas: bool = False,  # Update the mapping network's w_avg (training)?
    ) -> torch.Tensor:
        """Return images [N, img_channels, img_resolution, img_resolution] float32 in about [-1, 1]."""
        self.check_inputs(z, c)
        if self.c_dim == 0:
            c = None
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)  # [N, num_ws, w_dim]
        return self.synthesis(ws, noise_mode=noise_mode)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"img_resolution={self.img_resolution}, img_channels={self.img_channels}")
