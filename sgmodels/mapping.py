"""Mapping network f: (z, c) -> w, with the running average of w and the truncation trick.

Layout and names match the official PyTorch code (`fc{i}.weight`, `fc{i}.bias`, `embed.*`, buffer `w_avg`), so an
official state dict loads one-to-one. The same class serves the StyleGAN2 discriminator's label embedding
(`z_dim=0`, `num_ws=None`, `w_avg_beta=None`).
"""

from __future__ import annotations

import torch

from sgmodels.layers import FullyConnectedLayer, normalize_2nd_moment
from sgmodels.misc import assert_shape


class MappingNetwork(torch.nn.Module):
    """MLP from a latent z [N, z_dim] (and a label c [N, c_dim]) to w [N, num_ws, w_dim] (or [N, w_dim])."""

    w_avg: torch.Tensor  # buffer (num_ws and w_avg_beta set): running mean of w [w_dim] float32

    def __init__(
        self,
        z_dim: int,  # Input latent (Z) size, 0 = no latent.
        c_dim: int,  # Conditioning label (C) size, 0 = no label.
        w_dim: int,  # Intermediate latent (W) size.
        num_ws: int | None,  # Number of copies of w to output (one per synthesis layer); None = return [N, w_dim].
        num_layers: int = 8,  # Dense layers; 0 = w is the normalised z (and label embedding).
        embed_features: int | None = None,  # Label embedding size; None = w_dim (or w_dim - z_dim without layers).
        layer_features: int | None = None,  # Width of the hidden layers; None = w_dim.
        activation: str = "lrelu",  # Activation of every dense layer.
        lr_multiplier: float = 0.01,  # Learning-rate multiplier of the dense layers.
        w_avg_beta: float | None = 0.995,  # Decay of the running average of w; None = no w_avg (no truncation).
        normalize_z: bool = True,  # Normalise z (and the embedded label) to unit mean square first?
    ) -> None:
        super().__init__()
        if min(z_dim, c_dim) < 0 or w_dim < 1 or num_layers < 0:
            raise ValueError("z_dim and c_dim must be >= 0, w_dim >= 1, num_layers >= 0")
        if z_dim == 0 and c_dim == 0:
            raise ValueError("a mapping network needs z_dim > 0 or c_dim > 0")
        if num_ws is not None and num_ws < 1:
            raise ValueError(f"num_ws must be None or >= 1, got {num_ws}")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        self.normalize_z = normalize_z

        if c_dim == 0:
            embed_features = 0
        elif embed_features is None:
            embed_features = w_dim if num_layers > 0 or z_dim == 0 else w_dim - z_dim
        if layer_features is None:
            layer_features = w_dim
        in_features = z_dim + embed_features
        if num_layers == 0 and in_features != w_dim:
            raise ValueError(f"without dense layers w is the normalised input, so z_dim + embed_features "
                             f"({z_dim} + {embed_features}) must equal w_dim ({w_dim})")
        if c_dim > 0 and embed_features < 1:
            raise ValueError(f"embed_features must be >= 1 for a conditional mapping, got {embed_features}")

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        features = [in_features] + [layer_features] * (num_layers - 1) + [w_dim]
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def _embed_inputs(self, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        """Normalised z and embedded c, concatenated: [N, z_dim + embed_features]."""
        parts = []
        if self.z_dim > 0:
            if z is None:
                raise ValueError(f"z is required: expected a float tensor [N, {self.z_dim}]")
            assert_shape(z, [None, self.z_dim], "z")
            z = z.to(torch.float32)
            parts.append(normalize_2nd_moment(z) if self.normalize_z else z)  # [N, z_dim]
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional: c must be a float tensor [N, {self.c_dim}]")
            assert_shape(c, [None, self.c_dim], "c")
            y = self.embed(c.to(torch.float32))  # [N, embed_features]
            parts.append(normalize_2nd_moment(y) if self.normalize_z else y)
        if len(parts) == 2 and parts[0].shape[0] != parts[1].shape[0]:
            raise ValueError(f"z and c have different batch sizes: {parts[0].shape[0]} vs {parts[1].shape[0]}")
        return torch.cat(parts, dim=1)

    def forward(
        self,
        z: torch.Tensor | None,  # Latents [N, z_dim] (None when z_dim == 0).
        c: torch.Tensor | None = None,  # Labels [N, c_dim] (None when c_dim == 0).
        truncation_psi: float = 1.0,  # Truncation strength: 1 = none, 0 = every w becomes w_avg.
        truncation_cutoff: int | None = None,  # Truncate only the first `cutoff` ws; None = all.
        update_emas: bool = False,  # Update the running average w_avg with this batch (training only)?
    ) -> torch.Tensor:
        """Return ws [N, num_ws, w_dim] float32 (or [N, w_dim] when num_ws is None)."""
        x = self._embed_inputs(z, c)  # [N, in_features]
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)  # [N, features]

        if update_emas and self.num_ws is not None and self.w_avg_beta is not None:
            # w_avg <- beta * w_avg + (1 - beta) * mean(w)
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is None:
            if truncation_psi != 1:
                raise ValueError("truncation needs num_ws and w_avg (this mapping network has neither)")
            return x
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            x = self.truncate(x, truncation_psi, truncation_cutoff)
        return x

    def truncate(self, ws: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        """Truncation trick: w' = w_avg + psi * (w - w_avg) on layers < cutoff (None = all); ws [N, num_ws, w_dim]."""
        if self.w_avg_beta is None or self.num_ws is None:
            raise ValueError("truncation needs w_avg, but this mapping network was built with "
                             f"w_avg_beta={self.w_avg_beta} and num_ws={self.num_ws} (both must be set)")
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        if cutoff is not None and not 0 <= cutoff <= self.num_ws:
            raise ValueError(f"truncation_cutoff must be None or in [0, {self.num_ws}], got {cutoff}")
        ws = ws.clone()
        layers = slice(None) if cutoff is None else slice(0, cutoff)
        ws[:, layers] = self.w_avg.lerp(ws[:, layers], psi)
        return ws

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
