"""Mixing-FID: generated images that each mix K latents at random crossover layers (StyleGAN Table 2).

Karras et al. 2019 (StyleGAN, section 3.1 and Table 2) stress-test style mixing by measuring FID when every image at
test time mixes 1 to 4 latents at random crossover points; training with mixing regularisation degrades more
gracefully. The official metric code has no such metric, so sgeval defines the sampling exactly:

For item i of a `GeneratorSource` with `mix_latents = K` (the same per-item stream as plain sampling,
`np.random.default_rng([seed, i])`, drawn in this order):

1. z_0: the item's plain latent, then its label (conditional generators only): exactly what plain FID draws, so
   K = 1 is plain FID bit for bit (it takes the plain code path; names and cache entries are the plain ones);
2. z_1 ... z_{K-1}: K - 1 more standard-normal latents (float64 drawn, cast to float32), sharing the item's label;
3. K - 1 crossover layers, each ~ U{1, ..., num_ws - 1} independently, sorted ascending: the distribution of
   `sgmodels.mixing.random_crossovers` and of the training mixing regularisation's cutoff (StyleGAN v1: cutoff ~
   U{1, ..., num_layers - 1}, layers >= cutoff take the next latent). Crossovers may coincide; a latent between two
   equal crossovers then feeds no layer, as in `random_crossovers` (which draws independently and sorts). Layer 0
   always takes z_0's styles and, for K >= 2, the last layer never takes z_0's. Crossovers are drawn per image
   (the paper mixes every image), while training draws one cutoff per minibatch; and always over all num_ws layers
   (training limits them to the layers in use while growing progressively).

Each z_j is mapped by the generator's mapping network (`truncation_psi` of the source, 1 = none, as the official
metrics), the K ws stacks are combined by `sgmodels.mixing.mix_ws` (layer l takes the ws of latent j = the number of
crossovers <= l), and `G.synthesis` renders them with the source's noise mode ("random" for FID), under the same
per-chunk torch seed as plain sampling; images are quantised as usual (`float_to_uint8`). Everything depends on
(seed, item index) only, so results are independent of the batch size and the sharding.

Limits: 1 <= K <= num_ws (K - 1 crossovers among the num_ws - 1 layer boundaries; more latents could not all show).
K >= 2 needs a style-based generator (`mapping`, `synthesis`, `num_ws >= 2`); anything else is a clear error.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from sgeval.sources.interfaces import LatentGenerator, StyleGenerator

__all__ = ["MIX_RECIPE", "MixingDraws", "check_mixing", "mixed_images", "mixing_draws"]

MIX_RECIPE = "item stream: z0, label, z1..zK-1, sorted crossovers U{1..num_ws-1}/v1"  # part of the fingerprint


@dataclasses.dataclass(frozen=True)
class MixingDraws:
    """The random inputs of some mixed items (rows in item order)."""

    z: np.ndarray  # float32 [B, K, z_dim]; z[:, 0] is each item's plain latent
    labels: np.ndarray | None  # float32 [B, c_dim] drawn from the label pool, or None
    crossovers: np.ndarray  # int64 [B, K - 1], sorted per row, values in 1 ... num_ws - 1


def check_mixing(G: LatentGenerator, mix_latents: int, name: str) -> int:
    """Check that `G` can mix `mix_latents` latents per image; returns its num_ws (0 when K = 1 needs none).

    Raises:
        ValueError: K < 1, a generator without a mapping network (or with num_ws < 2) asked for K >= 2, or
            K > num_ws.
    """
    from sgeval.sources.sgmodels_adapter import is_style_generator

    if isinstance(mix_latents, bool) or not isinstance(mix_latents, numbers.Integral) or mix_latents < 1:
        raise ValueError(f"mix_latents must be an integer >= 1, got {mix_latents!r}")
    if mix_latents == 1:
        return 0
    if not is_style_generator(G):
        raise ValueError(f"{name}: mixing {mix_latents} latents per image needs a style-based generator (mapping, "
                         f"synthesis, w_dim, num_ws); {type(G).__name__} has no mapping network")
    num_ws = int(G.num_ws)
    if num_ws < 2:
        raise ValueError(f"{name}: mixing latents needs num_ws >= 2 style inputs, this generator has {num_ws}")
    if mix_latents > num_ws:
        raise ValueError(f"{name}: at most num_ws = {num_ws} latents can be mixed ({num_ws - 1} crossover layers), "
                         f"got mix_latents = {mix_latents}")
    return num_ws


def mixing_draws(seed: int, indices: Sequence[int], z_dim: int, mix_latents: int, num_ws: int,
                 label_pool: np.ndarray | None = None) -> MixingDraws:
    """Latents, labels and crossovers of the given items, each a function of (seed, index) only (module docstring).

    Raises:
        ValueError: seed < 0, mix_latents < 2 or num_ws < mix_latents.
    """
    from sgeval.sources.generator import item_streams

    if mix_latents < 2 or num_ws < mix_latents:
        raise ValueError(f"mixing_draws needs 2 <= mix_latents <= num_ws, got {mix_latents} and {num_ws}")
    z = np.empty((len(indices), mix_latents, z_dim), dtype=np.float32)
    crossovers = np.empty((len(indices), mix_latents - 1), dtype=np.int64)
    labels = None if label_pool is None else np.empty((len(indices), label_pool.shape[1]), dtype=np.float32)
    for row, (rng, z0, label) in enumerate(item_streams(seed, indices, z_dim, label_pool)):
        z[row, 0] = z0
        if labels is not None and label is not None:
            labels[row] = label
        for j in range(1, mix_latents):
            z[row, j] = rng.standard_normal(z_dim)
        crossovers[row] = np.sort(rng.integers(1, num_ws, size=mix_latents - 1))
    return MixingDraws(z, labels, crossovers)


def mixed_images(G: StyleGenerator, draws: MixingDraws, c: torch.Tensor, truncation_psi: float,
                 noise_mode: str) -> torch.Tensor:
    """Render mixed items: float images [B, C, H, W] of `G.synthesis` (on the device of `c`).

    c: labels [B, c_dim] shared by the K latents of an item (c_dim may be 0).
    """
    from sgeval.sources.sgmodels_adapter import mixed_ws

    device = c.device
    zs = [torch.from_numpy(draws.z[:, j]).to(device) for j in range(draws.z.shape[1])]  # K x [B, z_dim]
    crossovers = torch.from_numpy(draws.crossovers).to(device)  # [B, K - 1]
    ws = mixed_ws(G, zs, c, crossovers, truncation_psi)  # [B, num_ws, w_dim]
    return G.synthesis(ws, noise_mode=noise_mode)  # [B, C, H, W]
