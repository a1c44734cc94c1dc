"""Mapping network f: (z, c) -> w, with the running average of w and the truncation trick.

Layout and names match the official PyTorch code (`fc{i}.weight`, `fc{i}.bias`, `embed.*`, buffer `w_avg`), so an
official state dict loads one-to-one. The same class serves the StyleGAN2 discriminator's label embedding
(`z_dim=0`, `num_ws=None`, `w_avg_beta=None`).

Two label embeddings exist in the official code, chosen by `label_embedding`:

* "dense" (stylegan2-ada, PyTorch and TF): an equalized-lr dense layer with bias embeds c; z and the embedding
  are normalised separately and concatenated.
* "concat" (TF StyleGAN v1 and StyleGAN2 `LabelConcat`): a bias-free matrix [embed_features, c_dim] stored
  N(0, 1) and used as is (no equalized-lr scaling) embeds c into z_dim features; [z, y] is concatenated and
  normalised jointly.

Truncation follows the official semantics of each family through `truncation_cutoff_default`: the cutoff used
when a caller passes `truncation_cutoff=None`. StyleGAN2 / ADA truncate every layer (None); TF StyleGAN v1 truncates
the first 8 layers unless told otherwise (its `truncation_cutoff=8`), and a v1 pickle whose `truncation_cutoff` is
None never truncates (default 0).
"""

from __future__ import annotations

import torch

from sgmodels.layers import FullyConnectedLayer, normalize_2nd_moment
from sgmodels.misc import assert_shape

LABEL_EMBEDDINGS = ("dense", "concat")


class LabelConcat(torch.nn.Module):
    """TF StyleGAN `LabelConcat` embedding: y = c @ weight.T with weight [out_features, c_dim] N(0, 1), no bias.

    Unlike every other dense layer of the family it has no equalized-lr scaling: the stored matrix is used as is.
    """

    def __init__(
        self,
        in_features: int,  # Label size c_dim.
        out_features: int,  # Embedding size (TF: the latent size z_dim).
    ) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """c [N, in_features] float -> [N, out_features]."""
        return c.matmul(self.weight.to(c.dtype).t())


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
        label_embedding: str = "dense",  # "dense" (ADA) or "concat" (TF StyleGAN / StyleGAN2 LabelConcat).
        truncation_cutoff_default: int | None = None,  # Cutoff used for truncation_cutoff=None; None = all layers.
    ) -> None:
        super().__init__()
        if min(z_dim, c_dim) < 0 or w_dim < 1 or num_layers < 0:
            raise ValueError("z_dim and c_dim must be >= 0, w_dim >= 1, num_layers >= 0")
        if z_dim == 0 and c_dim == 0:
            raise ValueError("a mapping network needs z_dim > 0 or c_dim > 0")
        if num_ws is not None and num_ws < 1:
            raise ValueError(f"num_ws must be None or >= 1, got {num_ws}")
        if label_embedding not in LABEL_EMBEDDINGS:
            raise ValueError(f"label_embedding must be one of {LABEL_EMBEDDINGS}, got {label_embedding!r}")
        if label_embedding == "concat" and c_dim > 0 and z_dim == 0:
            raise ValueError("label_embedding='concat' concatenates the label embedding with z, so it needs z_dim > 0")
        if truncation_cutoff_default is not None and truncation_cutoff_default < 0:
            raise ValueError(f"truncation_cutoff_default must be None or >= 0, got {truncation_cutoff_default}")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        self.normalize_z = normalize_z
        self.label_embedding = label_embedding
        self.truncation_cutoff_default = truncation_cutoff_default

        if c_dim == 0:
            embed_features = 0
        elif embed_features is None and label_embedding == "concat":
            embed_features = z_dim  # TF LabelConcat embeds into the latent size
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
            self.embed: torch.nn.Module = (LabelConcat(c_dim, embed_features) if label_embedding == "concat"
                                           else FullyConnectedLayer(c_dim, embed_features))
        features = [in_features] + [layer_features] * (num_layers - 1) + [w_dim]
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def _embed_inputs(self, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        """Normalised z and embedded c, concatenated: [N, z_dim + embed_features].

        "dense" normalises z and the embedding separately, "concat" normalises their concatenation (TF).
        """
        parts = []
        if self.z_dim > 0:
            if z is None:
                raise ValueError(f"z is required: expected a float tensor [N, {self.z_dim}]")
            assert_shape(z, [None, self.z_dim], "z")
            parts.append(z.to(torch.float32))  # [N, z_dim]
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional: c must be a float tensor [N, {self.c_dim}]")
            assert_shape(c, [None, self.c_dim], "c")
            parts.append(self.embed(c.to(torch.float32)))  # [N, embed_features]
        if len(parts) == 2 and parts[0].shape[0] != parts[1].shape[0]:
            raise ValueError(f"z and c have different batch sizes: {parts[0].shape[0]} vs {parts[1].shape[0]}")
        if not self.normalize_z:
            return torch.cat(parts, dim=1)
        if self.label_embedding == "concat":
            return normalize_2nd_moment(torch.cat(parts, dim=1))  # [N, z_dim + embed_features]
        return torch.cat([normalize_2nd_moment(part) for part in parts], dim=1)

    def forward(
        self,
        z: torch.Tensor | None,  # Latents [N, z_dim] (None when z_dim == 0).
        c: torch.Tensor | None = None,  # Labels [N, c_dim] (None when c_dim == 0).
        truncation_psi: float = 1.0,  # Truncation strength: 1 = none, 0 = every w becomes w_avg.
        truncation_cutoff: int | None = None,  # Truncate only the first `cutoff` ws; None = truncation_cutoff_default.
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
        """Truncation trick: w' = w_avg + psi * (w - w_avg) on layers < cutoff; ws [N, num_ws, w_dim].

        cutoff None means `truncation_cutoff_default` (itself None = all layers; larger than num_ws = all layers,
        as in TF, e.g. the v1 default 8 on a small network).
        """
        if self.w_avg_beta is None or self.num_ws is None:
            raise ValueError("truncation needs w_avg, but this mapping network was built with "
                             f"w_avg_beta={self.w_avg_beta} and num_ws={self.num_ws} (both must be set)")
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        if cutoff is not None and not 0 <= cutoff <= self.num_ws:
            raise ValueError(f"truncation_cutoff must be None or in [0, {self.num_ws}], got {cutoff}")
        if cutoff is None and self.truncation_cutoff_default is not None:
            cutoff = min(self.truncation_cutoff_default, self.num_ws)
        ws = ws.clone()
        layers = slice(None) if cutoff is None else slice(0, cutoff)
        ws[:, layers] = self.w_avg.lerp(ws[:, layers], psi)
        return ws

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
