"""Traditional (ProGAN-style) baseline generator of the StyleGAN paper (Table 1 configs A and B, Table 4).

In a traditional generator the latent feeds the first layer directly: a dense layer maps it to the 4x4 feature
maps (gain sqrt(2)/4, as in ProGAN), there are no styles, no instance norm, and pixel norm follows every
activation. It is the StyleGAN v1 synthesis network (`sgmodels.stylegan1.SynthesisNetwork`) with
`const_input=False, use_styles=False, use_pixel_norm=True, use_instance_norm=False`, so the TF v1 configs map onto
it exactly:

* config A (ProGAN baseline): `blur_filter=None` (plain nearest-neighbour upsampling in G and box downsampling in
  D, no blur). The paper trained config A with the separate ProGAN code (`networks_progan`, WGAN-GP loss); this
  class rebuilds that architecture inside the v1 code (TF config B without blur), not ProGAN's training setup;
* config B (tuned baseline): `blur_filter=[1, 2, 1]` (bilinear-like resampling), the StyleGAN training setup;
* Table 4 "traditional-0 / traditional-8": `map_layers=0` or `8` (a mapping network in front of the same input).

With `map_layers == 0` the input is the normalised z (and embedded label): there is no W space, so the generator
has no `mapping`, `synthesis`, `w_dim` or `num_ws` attributes (W-space metrics must refuse it), and truncation is
impossible. With `map_layers > 0` it exposes `mapping` (`sgmodels.mapping.MappingNetwork`, lr multiplier 0.01) and
`synthesis` with `num_ws == 1` (one w, read by the dense input layer), like the style-based generators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sgmodels.interfaces import W_SPACE_ATTRIBUTES, GeneratorModule
from sgmodels.mapping import MappingNetwork
from sgmodels.registry import register_network
from sgmodels.stylegan1 import SynthesisNetwork


def traditional_synthesis_kwargs(
    use_noise: str | bool,
    blur_filter: Sequence[float] | None,
    progressive: bool,
    channel_base: int,
    channel_max: int,
) -> dict[str, Any]:
    """Keyword arguments that turn the v1 synthesis network into the traditional (TF config B) generator body."""
    return dict(
        channel_base=channel_base,
        channel_max=channel_max,
        use_noise=use_noise,
        const_input=False,
        use_styles=False,
        use_pixel_norm=True,
        use_instance_norm=False,
        blur_filter=None if blur_filter is None else list(blur_filter),
        progressive=progressive,
    )


def _check_latent_width(z_dim: int, c_dim: int, w_dim: int, map_layers: int) -> None:
    """Without a mapping network the dense input reads [normalised z, embedded c] directly: check its width."""
    if map_layers > 0:
        return
    if c_dim == 0 and w_dim != z_dim:
        raise ValueError(f"with map_layers=0 the normalised z feeds the first layer, so w_dim must equal z_dim "
                         f"({z_dim}), got w_dim={w_dim}")
    if c_dim > 0 and w_dim <= z_dim:
        raise ValueError(f"with map_layers=0 and labels the first layer reads [normalised z, embedded c], so w_dim "
                         f"must be z_dim + the label embedding size (> {z_dim}), got w_dim={w_dim}")


@register_network("traditional.Generator")
class Generator(GeneratorModule):
    """Traditional generator: z [N, z_dim] (+ c [N, c_dim]) -> img [N, img_channels, R, R] float32 in about [-1, 1].

    Config A of the StyleGAN paper (ProGAN baseline) is `blur_filter=None` (no blur: nearest upsampling only);
    config B is the default `blur_filter=[1, 2, 1]`. `map_layers > 0` adds a mapping network and a W space
    (attributes `mapping`, `synthesis`, `w_dim`, `num_ws`); with `map_layers == 0` those attributes do not exist
    and `w_dim` must equal `z_dim` (or `z_dim` + label embedding size when `c_dim > 0`).
    """

    def __init__(
        self,
        z_dim: int = 512,  # Input latent (Z) dimensionality.
        c_dim: int = 0,  # Conditioning label dimensionality, 0 = unconditional.
        w_dim: int = 512,  # Width of the latent that enters the dense input layer (W when map_layers > 0).
        img_resolution: int = 1024,  # Output resolution R (power of two >= 4).
        img_channels: int = 3,  # Output colour channels.
        map_layers: int = 0,  # Mapping-network depth; 0 = the normalised z feeds the first layer directly.
        channel_base: int = 16384,  # Feature maps at resolution r: min(channel_base // r, channel_max).
        channel_max: int = 512,  # Maximum feature maps of any layer.
        use_noise: str | bool = "none",  # Noise inputs as in the v1 synthesis network ("none" in configs A/B).
        blur_filter: Sequence[float] | None = (1, 2, 1),  # Blur after upsampling; None = config A (ProGAN).
        progressive: bool = True,  # Progressive growing (a float `lod` buffer in the synthesis network).
    ) -> None:
        super().__init__()
        if isinstance(map_layers, bool) or not isinstance(map_layers, int) or map_layers < 0:
            raise ValueError(f"map_layers must be an int >= 0, got {map_layers!r}")
        _check_latent_width(z_dim, c_dim, w_dim, map_layers)
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.map_layers = map_layers
        body = SynthesisNetwork(
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            **traditional_synthesis_kwargs(use_noise, blur_filter, progressive, channel_base, channel_max),
        )
        if map_layers > 0:
            self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=body.num_ws, num_layers=map_layers)
            self.synthesis = body
            self.w_dim, self.num_ws = w_dim, body.num_ws
        else:
            # Normalises z and embeds c exactly like a mapping network without layers, but is no W space.
            self.latent_input = MappingNetwork(z_dim, c_dim, w_dim, num_ws=None, num_layers=0, w_avg_beta=None)
            self.body = body

    @property
    def has_w_space(self) -> bool:
        """True when the generator has a mapping network (and so `mapping`, `synthesis`, `w_dim`, `num_ws`)."""
        return self.map_layers > 0

    def forward(
        self,
        z: torch.Tensor,  # Latents [N, z_dim], float.
        c: torch.Tensor | None = None,  # Labels [N, c_dim] (required iff c_dim > 0).
        truncation_psi: float = 1.0,  # Truncation strength; anything but 1 needs a mapping network.
        truncation_cutoff: int | None = None,  # Truncate only the first `cutoff` ws (None = all).
        noise_mode: str = "random",  # "random", "const" or "none" (only matters with use_noise).
        update_emas: bool = False,  # Update the mapping network's w_avg (training only).
    ) -> torch.Tensor:
        """Return img [N, img_channels, R, R] float32, about [-1, 1]."""
        if self.c_dim == 0:
            if c is not None and c.numel() > 0:
                raise ValueError(f"this generator is unconditional (c_dim=0); pass c=None, got shape {list(c.shape)}")
            c = None
        if self.has_w_space:
            ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                              update_emas=update_emas)  # [N, 1, w_dim]
            return self.synthesis(ws, noise_mode=noise_mode)
        if truncation_psi != 1:
            raise ValueError(f"truncation_psi={truncation_psi} needs a mapping network (w_avg in W space), but this "
                             "traditional generator has map_layers=0: its latent feeds the first layer directly. "
                             "Use truncation_psi=1, or build it with map_layers > 0")
        x = self.latent_input(z, c)  # [N, w_dim]
        return self.body(x[:, None], noise_mode=noise_mode)  # [N, C, R, R]

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in W_SPACE_ATTRIBUTES:
                raise AttributeError(
                    f"this traditional generator has no {name!r}: it was built with map_layers=0, so z feeds the "
                    "first layer directly and there is no W space. Use Z-space metrics, or build it with "
                    "map_layers > 0"
                ) from None
            raise

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, img_resolution={self.img_resolution}, "
                f"map_layers={self.map_layers}")
