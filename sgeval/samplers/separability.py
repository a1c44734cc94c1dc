"""The linear separability sampler: latents, last-layer w and classifier logits of generated images.

Follows NVIDIA's TF `metrics/linear_separability.py` (docs/metrics.md section 10, sampling): z ~ N(0, I) raw (not
normalised), w = mapping(z) without truncation, images = synthesis(ws) with per-image random noise, kept float
(no uint8 quantisation), box-downsampled by the classifiers to their input resolution (256 for the official
CelebA-HQ ones), one logit per attribute. It stores z as drawn and w of the last layer (identical across layers).

Randomness depends on (seed, item index) only: item i's latent (and pool label of a conditional generator) is that
of sgeval's generator sources (`latents_for_items`, so item i has the same z as in FID), and the generator runs on
aligned chunks of `CHUNK` items with torch's RNG seeded from (seed, chunk) for their noise. So the arrays do not
depend on `--batch`; the chunk size is part of the sampler (changing it means a new version).

A generator without a mapping network (a "traditional" one) has no W: the sampler calls G(z, c) and returns w with
0 columns; the reduction reports `ls_w` as NaN and `ls_z` as usual (the paper scores such generators in z).

The classifiers' attribute names travel with the arrays as `attribute_names` (a numpy unicode array, so the cached
`.npz` loads without pickle), and the reduction keys its per-attribute values by them. Version 2 added them: an
entry cached by version 1 (no names) misses and is sampled again.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import torch

from sgeval.samplers import SamplerContext, register_sampler
from sgeval.sources.generator import latents_for_items

if TYPE_CHECKING:
    from sgeval.sources.interfaces import LatentGenerator, StyleGenerator

__all__ = ["CHUNK", "sample_ls"]

CHUNK = 16  # items per generator call, each chunk with its own noise seed (part of the sampler's version)
_NOISE_STREAM = 2  # third word of the chunk's seed sequence (GeneratorSource uses 1), so the streams differ


def _has_mapping(G: LatentGenerator) -> TypeGuard[StyleGenerator]:
    """Whether G has mapping and synthesis networks (all that the sampler uses of a style generator)."""
    return getattr(G, "mapping", None) is not None and getattr(G, "synthesis", None) is not None


def _chunk_arrays(ctx: SamplerContext, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z float32 [CHUNK, z_dim], w float32 [CHUNK, w_dim or 0] and logits float32 [CHUNK, A] of one chunk."""
    G, device = ctx.G, ctx.device
    z_np, labels = latents_for_items(ctx.seed, range(chunk * CHUNK, (chunk + 1) * CHUNK), int(G.z_dim), ctx.labels)
    z = torch.from_numpy(z_np).to(device)  # [CHUNK, z_dim]
    c = torch.zeros(CHUNK, int(G.c_dim), device=device) if labels is None else torch.from_numpy(labels).to(device)
    noise_seed = int(np.random.SeedSequence([ctx.seed, chunk, _NOISE_STREAM]).generate_state(1)[0])
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(noise_seed)  # per-image random noise of this chunk, independent of batching
        if _has_mapping(G):
            ws = G.mapping(z, c, truncation_psi=1)  # [CHUNK, num_ws, w_dim]
            images = G.synthesis(ws, noise_mode="random")  # [CHUNK, C, H, W] float
            w = ws[:, -1].float().cpu().numpy()  # [CHUNK, w_dim] the last layer's w
        else:
            images = G(z, c, truncation_psi=1, noise_mode="random")  # [CHUNK, C, H, W] float
            w = np.zeros((CHUNK, 0), dtype=np.float32)
    logits = ctx.networks["classifiers"](images.float())  # [CHUNK, A]
    return z_np, w, logits.float().cpu().numpy()


@register_sampler("ls", version=2, networks=("classifiers",))  # 2: attribute_names
@torch.no_grad()
def sample_ls(ctx: SamplerContext) -> dict[str, np.ndarray]:
    """{"z": float32 [N, z_dim], "w": float32 [N, w_dim] (0 columns without a mapping network), "logits": float32
    [N, A], "attribute_names": unicode [A]} of `ctx.num_samples` generated images (the names only when the
    classifiers name one attribute per logit).

    Raises:
        ClassifierError (ValueError): the classifiers take another channel count or a resolution that does not
            divide the generator's.
    """
    G = ctx.G
    ctx.networks["classifiers"].to(ctx.device).input_factor(int(G.img_resolution), int(G.img_channels))
    parts = [_chunk_arrays(ctx, chunk) for chunk in _progress(range(math.ceil(ctx.num_samples / CHUNK)), ctx.progress)]
    z, w, logits = (np.concatenate([part[i] for part in parts])[: ctx.num_samples] for i in range(3))
    arrays = {"z": z, "w": w, "logits": logits}
    names = _attribute_names(ctx.networks["classifiers"])
    if names is not None and len(names) == logits.shape[1]:
        arrays["attribute_names"] = np.array(names, dtype=str)  # '<U..', cached without pickle (not an object array)
    return arrays


def _attribute_names(classifiers: Any) -> list[str] | None:
    """The classifier set's attribute names (`attributes`, else those of its identity), None when it has none."""
    names = getattr(classifiers, "attributes", None)
    if names is None:
        names = classifiers.identity().get("attributes")
    return [str(name) for name in names] if isinstance(names, (list, tuple)) and names else None


def _progress(items: range, enabled: bool) -> Any:
    from sgmodels.progress import progress_bar

    return progress_bar(items, desc="ls", unit="chunk", leave=False, enabled=enabled)
