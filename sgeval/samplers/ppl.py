"""The PPL sampler: pairs of images an epsilon apart on a latent path, and their perceptual distance / epsilon^2.

Follows NVIDIA's `perceptual_path_length.py` (TF StyleGAN / StyleGAN2; docs/metrics.md sections 9.1-9.4):

* Z space: z0, z1 ~ N(0, I); the pair is slerp(z0, z1; t) and slerp(z0, z1; t + eps) on unit-normalised
  latents, both mapped (no truncation). W space: w0 = f(z0), w1 = f(z1), the pair is lerp(w0, w1; t) and
  lerp(w0, w1; t + eps) of the broadcast per-layer ws (TF's `a + (b - a) t`, or `torch.lerp` in the `_ada`
  variants, as their code). t ~ U(0, 1) ("full") or t = 0 exactly ("end").
* Noise: one realisation per group of `pairs_per_noise` pairs, shared by both images of every pair of the group
  (the official code re-initialises its noise variables before each minibatch and synthesises with constant
  noise), drawn from N(0, 1) in the shape of the generator's `noise_const` buffers; on accelerators several groups
  are synthesised in one batch, each with its own realisation (`GENERATOR_GROUPS`), and the buffers are put back.
* Images stay float32 (no quantisation, no clamping). Optional face crop (rows [3c, 7c), columns [2c, 6c),
  c = H // 8), then box downsampling to 256 by an integer factor: of the cropped size (TF) or of
  `G.img_resolution` (ADA, which shrinks cropped images to 128 at 1024^2: a named protocol variant).
* distance(image at t, image at t + eps) / eps^2 with the registered image distance (sgeval.distances).

Randomness depends on (seed, group index) only: latents and t from `np.random.default_rng([seed, group])`, noise
from a torch generator seeded from the same pair, labels of a conditional generator from the label pool with the
same stream. So the result does not depend on the batch size, and the cache key holds `pairs_per_noise`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeGuard, cast

import numpy as np
import torch

from sgeval.imageops import box_downsample, face_crop
from sgeval.metrics.ppl import PPLSettings
from sgeval.samplers import SamplerContext, register_sampler

if TYPE_CHECKING:
    from sgeval.sources.interfaces import LatentGenerator, StyleGenerator

__all__ = ["lerp", "ppl_images", "sample_ppl", "slerp"]

BOX_TARGET = 256  # the distance network's working resolution in the reference code


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of unit-normalised rows, as the official PPL code: normalise a and b, rotate a
    towards b by t times their angle, normalise. a, b [N, D]; t [N] -> [N, D] on the unit sphere."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)  # [N, 1] cosine of the angle
    p = t.unsqueeze(-1) * torch.acos(d.clamp(-1, 1))  # [N, 1] rotated angle
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)  # [N, D] unit direction orthogonal to a, towards b
    d = a * torch.cos(p) + c * torch.sin(p)
    return d / d.norm(dim=-1, keepdim=True)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, formula: str = "tf") -> torch.Tensor:
    """Linear interpolation of a, b [N, ...] at t [N] (broadcast over the trailing dimensions).

    formula "tf": `a + (b - a) * t`, as TF StyleGAN / StyleGAN2; "torch": `torch.lerp(a, b, t)`, as
    stylegan2-ada-pytorch (it rounds differently for t >= 0.5). Equal up to float rounding.
    """
    weight = t.reshape(-1, *([1] * (a.ndim - 1))).to(a.dtype)
    if formula == "torch":
        return torch.lerp(a, b, weight)
    if formula != "tf":
        raise ValueError(f"lerp formula must be 'tf' or 'torch', got {formula!r}")
    return a + (b - a) * weight


def ppl_images(images: torch.Tensor, settings: PPLSettings, img_resolution: int) -> torch.Tensor:
    """Crop and box-downsample generator images [N, C, H, W] (float, ~[-1, 1]) as the protocol says."""
    if settings.crop:
        if images.shape[2] < 8 or images.shape[2] % 8 or images.shape[2] != images.shape[3]:
            raise ValueError(f"the PPL face crop needs square images whose size is a multiple of 8, got "
                             f"{tuple(images.shape[2:])}; use a protocol without the crop (ppl2_wend)")
        images = face_crop(images)
    base = images.shape[2] if settings.downsample == "tf" else img_resolution
    return box_downsample(images, base // BOX_TARGET)


def _noise_modules(G: LatentGenerator) -> list[torch.nn.Module]:
    """The layers of G that hold a `noise_const` buffer, in `named_buffers` order."""
    modules = cast("torch.nn.Module", G).modules()
    return [module for module in modules if module._buffers.get("noise_const") is not None]


def _group_noise(modules: list[torch.nn.Module], noise_seed: int) -> list[torch.Tensor]:
    """One group's realisation: per noise layer, N(0, 1) of the buffer's shape [H, W] from the group's seed, drawn
    layer after layer from one CPU generator (as version 2 drew it into the buffers)."""
    generator = torch.Generator(device="cpu").manual_seed(noise_seed)
    return [torch.randn(_noise_buffer(module).shape, generator=generator) for module in modules]


def _noise_buffer(module: torch.nn.Module) -> torch.Tensor:
    return cast(torch.Tensor, module._buffers["noise_const"])  # _noise_modules keeps only layers that have one


@contextlib.contextmanager
def _per_sample_noise(modules: list[torch.nn.Module], realisations: list[list[torch.Tensor]],
                      images_per_group: int) -> Iterator[None]:
    """Synthesise several groups in one batch, each with its own noise: every `noise_const` buffer [H, W] becomes
    [groups x images_per_group, 1, H, W] (group k's realisation on its rows; the layers broadcast it over channels
    as they do the [H, W] buffer), and the original buffers are put back when the block ends."""
    saved = [_noise_buffer(module) for module in modules]
    try:
        for index, (module, original) in enumerate(zip(modules, saved, strict=True)):
            rows = torch.stack([group[index] for group in realisations])  # [K, H, W]
            rows = rows.repeat_interleave(images_per_group, dim=0).unsqueeze(1)  # [K * 2P, 1, H, W]
            module._buffers["noise_const"] = rows.to(device=original.device, dtype=original.dtype)
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module._buffers["noise_const"] = original


def _has_mapping(G: LatentGenerator) -> TypeGuard[StyleGenerator]:
    """Whether G has a mapping network (Z-space PPL maps z through it when it does)."""
    return getattr(G, "mapping", None) is not None


def _require_mapping(G: LatentGenerator, settings: PPLSettings) -> None:
    if settings.space == "w" and (getattr(G, "mapping", None) is None or getattr(G, "synthesis", None) is None):
        raise ValueError(f"PPL in W needs a generator with a mapping network (G.mapping, G.synthesis); this "
                         f"{type(G).__name__} has none. Use the Z-space protocols (ppl_zfull, ppl_zend) for it.")


def _group_inputs(ctx: SamplerContext, group: int, pairs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                         torch.Tensor | None, int]:
    """z0, z1 [P, z_dim], t [P], labels [P, c_dim] or None, and the torch noise seed of one group."""
    rng = np.random.default_rng([ctx.seed, group])
    z = rng.standard_normal((pairs * 2, int(ctx.G.z_dim)))  # interleaved endpoints, as the official lat[0::2]
    settings: PPLSettings = ctx.settings
    t = rng.uniform(size=pairs) if settings.sampling == "full" else np.zeros(pairs)
    labels = None
    if ctx.labels is not None:  # both ends of a pair share the label, drawn like the official dataset labels
        picks = rng.integers(len(ctx.labels), size=pairs)
        labels = torch.from_numpy(np.asarray(ctx.labels)[picks]).float().to(ctx.device)
    noise_seed = int(rng.integers(2**62))
    as_tensor = lambda array: torch.from_numpy(array).float().to(ctx.device)  # noqa: E731
    return as_tensor(z[0::2]), as_tensor(z[1::2]), as_tensor(t), labels, noise_seed


def _pair_images(ctx: SamplerContext, z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor,
                 labels: torch.Tensor | None) -> torch.Tensor:
    """Images of both ends of every pair, interleaved [2P, C, H, W] float32 (even: at t, odd: at t + eps)."""
    G, settings = ctx.G, ctx.settings
    c = torch.zeros(z0.shape[0], int(G.c_dim), device=ctx.device) if labels is None else labels
    c2 = c.repeat_interleave(2, dim=0)  # [2P, c_dim]
    ends = (t, t + settings.epsilon)
    if settings.space == "z":
        z = torch.stack([slerp(z0, z1, end) for end in ends], dim=1).flatten(0, 1)  # [2P, z_dim]
        if not _has_mapping(G):  # no W space (traditional generator): Z goes straight in
            return G(z, c2, truncation_psi=1, noise_mode="const").float()
        style: StyleGenerator = G
        ws = style.mapping(z, c2, truncation_psi=1)  # [2P, num_ws, w_dim]
    else:
        style = cast("StyleGenerator", G)  # W-space PPL: sample_ppl's _require_mapping refused G without mapping
        w0, w1 = style.mapping(torch.cat([z0, z1]), torch.cat([c, c]), truncation_psi=1).chunk(2)  # [P, num_ws, w_dim]
        ws = torch.stack([lerp(w0, w1, end, settings.interpolation) for end in ends], dim=1)  # [P, 2, num_ws, w_dim]
        ws = ws.flatten(0, 1)  # [2P, num_ws, w_dim]
    return style.synthesis(ws, noise_mode="const").float()  # [2P, C, H, W]


# Groups whose pairs go through one distance call: the distance network (VGG16 for LPIPS) runs ~1.6x faster on 16
# pairs than on one group's 4 (measured at 32x32 on 2 CPU cores). A constant, not the caller's batch size: a
# network's rounding can depend on the batch, and the result must not (the sampler version is in the cache key).
DISTANCE_GROUPS = 4
# Groups per generator call, each with its own noise (`_per_sample_noise`). On a CPU a larger generator batch is not
# faster (StyleGAN2 cpu32: 1.2-1.4 ms/img at 8 images, 1.3-1.8 at 32; cpu64: 3.3-3.9 against 5.5-6.2), so CPUs keep
# one group per call; accelerators, which a batch of 8 leaves idle, take the distance call's groups at once.
GENERATOR_GROUPS = {"cpu": 1}
DEFAULT_GENERATOR_GROUPS = DISTANCE_GROUPS


def generator_groups(device: torch.device) -> int:
    """Groups synthesised in one generator call on `device` (see GENERATOR_GROUPS)."""
    return GENERATOR_GROUPS.get(device.type, DEFAULT_GENERATOR_GROUPS)


def _chunk_images(ctx: SamplerContext, inputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                             torch.Tensor | None, int]],
                  modules: list[torch.nn.Module]) -> torch.Tensor:
    """PPL images [2 K P, C, H, W] of K groups' inputs in one generator call, pairs interleaved (even: t, odd:
    t + eps), each group with its own noise."""
    settings: PPLSettings = ctx.settings
    z0 = torch.cat([group_z0 for group_z0, _z1, _t, _c, _seed in inputs])  # [K P, z_dim]
    z1 = torch.cat([group_z1 for _z0, group_z1, _t, _c, _seed in inputs])  # [K P, z_dim]
    t = torch.cat([group_t for _z0, _z1, group_t, _c, _seed in inputs])  # [K P]
    group_labels = [group_c for _z0, _z1, _t, group_c, _seed in inputs]
    labels = None if any(c is None for c in group_labels) else torch.cat(cast("list[torch.Tensor]", group_labels))
    noise = [_group_noise(modules, seed) for _z0, _z1, _t, _c, seed in inputs]
    with _per_sample_noise(modules, noise, 2 * settings.pairs_per_noise):
        return ppl_images(_pair_images(ctx, z0, z1, t, labels), settings, int(ctx.G.img_resolution))


@register_sampler("ppl", version=3, networks=("distance",))
@torch.no_grad()
def sample_ppl(ctx: SamplerContext) -> dict[str, np.ndarray]:
    """Distances / eps^2 of `ctx.num_samples` pairs: {"distances": float64 [N], "t": float64 [N]}."""
    settings: PPLSettings = ctx.settings
    _require_mapping(ctx.G, settings)
    distance = ctx.networks["distance"]
    pairs = settings.pairs_per_noise
    groups = math.ceil(ctx.num_samples / pairs)
    modules = _noise_modules(ctx.G)
    per_call = generator_groups(ctx.device)
    distances, ts = [], []
    for first in _progress(range(0, groups, DISTANCE_GROUPS), ctx.progress):
        inputs = [_group_inputs(ctx, group, pairs) for group in range(first, min(groups, first + DISTANCE_GROUPS))]
        images = torch.cat([_chunk_images(ctx, inputs[start : start + per_call], modules)
                            for start in range(0, len(inputs), per_call)])  # [2 K P, C, H, W]
        distances.append((distance(images[0::2], images[1::2]).double() / settings.epsilon**2).cpu().numpy())
        ts.append(torch.cat([group_t for _z0, _z1, group_t, _c, _seed in inputs]).double().cpu().numpy())
    return {"distances": np.concatenate(distances)[: ctx.num_samples], "t": np.concatenate(ts)[: ctx.num_samples]}


def _progress(items: range, enabled: bool) -> Any:
    from sgmodels.progress import progress_bar

    return progress_bar(items, desc="ppl", unit="batch", leave=False, enabled=enabled)
