"""Generate images from seeds and style-mixing grids (the library behind `sgmodels generate` and `sgmodels mix`).

Latents follow the official `gen_images.py` / `style_mixing.py` of NVlabs: the latent of seed `s` is
`np.random.RandomState(s).randn(z_dim)` (float64 drawn, then cast to float32), so a seed names the same z as in the
official tools and the same image for the same weights. Images are generated in batches. The same seeds and batch
size give bit-identical images. With the default `noise_mode="const"` another batch size gives the same images up
to float rounding: CPU and GPU kernels block their sums by batch size, so the last bits of the float output differ
and a value on a quantisation boundary can land one uint8 level apart. With `noise_mode="random"` the noise of
each batch is drawn from a torch generator seeded with the batch's first seed.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sgmodels.finite import check_finite_images
from sgmodels.images import to_uint8
from sgmodels.interfaces import LatentGenerator, StyleGenerator, is_style_generator
from sgmodels.mixing import mix_ws
from sgmodels.ranges import IntRanges

NOISE_MODES = ("const", "random", "none")
SEED_LIMIT = 2**32  # np.random.RandomState takes 32-bit seeds: no other latents exist


def check_seeds(seeds: Sequence[int]) -> None:
    """Refuse seeds outside [0, 2**32) before any work, without expanding a lazy `IntRanges`."""
    if isinstance(seeds, IntRanges):
        low, high = min((part.start for part in seeds.parts), default=0), seeds.maximum
    else:
        low, high = min(seeds, default=0), max(seeds, default=None)
    if low < 0 or (high is not None and high >= SEED_LIMIT):
        raise ValueError(f"seeds must lie in [0, 2**32) (the official latents are drawn by a 32-bit seeded "
                         f"RandomState), got seeds up to {high}")


def seed_latents(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """Latents of the given seeds as the official tools draw them.

    Returns:
        float32 tensor [len(seeds), z_dim]; row i = `np.random.RandomState(seeds[i]).randn(z_dim)`.
    """
    if any(int(seed) < 0 or int(seed) >= 2**32 for seed in seeds):
        raise ValueError(f"seeds must lie in [0, 2**32), got {list(seeds)}")
    rows = [np.random.RandomState(int(seed)).randn(z_dim) for seed in seeds]
    return torch.from_numpy(np.stack(rows).astype(np.float32)) if rows else torch.zeros(0, z_dim)  # [N, z_dim]


def class_labels(G: LatentGenerator, class_idx: int | None, num: int, device: torch.device) -> torch.Tensor | None:
    """One-hot labels [num, c_dim] for a conditional generator, None for an unconditional one.

    A conditional generator needs `class_idx`; an unconditional one refuses it (it would be silently ignored).
    """
    c_dim = int(getattr(G, "c_dim", 0))
    if c_dim == 0:
        if class_idx is not None:
            raise ValueError("this generator is unconditional (c_dim = 0); drop the class index")
        return None
    if class_idx is None:
        raise ValueError(f"this generator is conditional (c_dim = {c_dim}); give a class index in [0, {c_dim})")
    if not 0 <= class_idx < c_dim:
        raise ValueError(f"class index {class_idx} out of range [0, {c_dim})")
    labels = torch.zeros(num, c_dim, device=device)  # [N, c_dim]
    labels[:, class_idx] = 1
    return labels


def _check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


def _batches(num: int, batch_size: int) -> Iterator[slice]:
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    for start in range(0, num, batch_size):
        yield slice(start, min(start + batch_size, num))


@contextlib.contextmanager
def _seeded_noise(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG (CPU and `device`) for the noise of one batch, restoring the caller's RNG state after."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _inputs(
    G: LatentGenerator, seeds: Sequence[int], class_idx: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Latents [N, z_dim] and labels [N, c_dim] (or None) of the seeds, on the generator's device."""
    device = _device_of(G)
    return seed_latents(seeds, G.z_dim).to(device), class_labels(G, class_idx, len(seeds), device)


def _device_of(G: LatentGenerator) -> torch.device:
    for tensor in itertools.chain(G.parameters(), G.buffers()):
        return tensor.device
    return torch.device("cpu")


def _check_generation(G: LatentGenerator, truncation_psi: float, noise_mode: str, batch_size: int) -> None:
    _check_noise_mode(noise_mode)
    if truncation_psi != 1 and getattr(G, "mapping", None) is None:
        raise ValueError("truncation needs a generator with a mapping network (w_avg); this one has none")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")


def iter_image_batches(
    G: LatentGenerator,
    seeds: Iterable[int],
    class_idx: int | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """The images of `seeds`, one batch at a time: `(seeds of the batch, uint8 [B, C, H, W])`.

    Lazy: seeds are taken from the iterable as batches are generated, so a huge `IntRanges` costs one batch of
    memory. The arguments are checked at the call (see `generate_images` for their meaning); the images are those
    of `generate_images` with the same seeds and batch size.
    """
    _check_generation(G, truncation_psi, noise_mode, batch_size)
    return _image_batches(G, iter(seeds), class_idx, truncation_psi, truncation_cutoff, noise_mode, batch_size)


@torch.no_grad()
def _image_batches(G: LatentGenerator, seeds: Iterator[int], class_idx: int | None, truncation_psi: float,
                   truncation_cutoff: int | None, noise_mode: str,
                   batch_size: int) -> Iterator[tuple[list[int], torch.Tensor]]:
    while batch := [int(seed) for seed in itertools.islice(seeds, batch_size)]:
        z, c = _inputs(G, batch, class_idx)  # [B, z_dim], [B, c_dim] or None
        with _seeded_noise(batch[0], z.device):
            img = G(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                    noise_mode=noise_mode)  # [B, C, H, W] float
        check_finite_images(img, f"generator output for seeds {batch}")
        yield batch, to_uint8(img)


def generate_images(
    G: LatentGenerator,
    seeds: Sequence[int],
    class_idx: int | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> torch.Tensor:
    """Images of the given seeds, on the generator's device.

    Args:
        G: a generator with the official interface (`z_dim`, `G(z, c, truncation_psi=..., truncation_cutoff=...,
            noise_mode=...)`).
        seeds: one image per seed (see module docstring for the latent of a seed).
        class_idx: class of a conditional generator (one-hot label); None for unconditional ones.
        truncation_psi: w' = w_avg + psi * (w - w_avg); 1 = no truncation.
        truncation_cutoff: truncate only the first layers (None = the network's default: all layers for StyleGAN2,
            the first 8 for StyleGAN v1 presets and TF imports, as in the official code).
        noise_mode: "const", "random" or "none".
        batch_size: images per forward pass.
    Returns:
        uint8 tensor [len(seeds), C, H, W] (see `sgmodels.images.to_uint8`).
    """
    batches = iter_image_batches(G, seeds, class_idx, truncation_psi, truncation_cutoff, noise_mode, batch_size)
    return torch.cat([images for _seeds, images in batches])  # [N, C, H, W] uint8


# ----------------------------------------------------------------------------------------------------------------
# Style mixing (StyleGAN Figure 3)


@dataclass
class StyleMixGrid:
    """The images of a style-mixing grid, all uint8 [.., C, H, W]."""

    row_seeds: list[int]  # sources of the rows (they give every layer not in `styles`)
    col_seeds: list[int]  # sources of the columns (they give the layers in `styles`)
    styles: list[int]  # the layers whose w comes from the column source
    row_images: torch.Tensor  # [R, C, H, W]: each row source on its own
    col_images: torch.Tensor  # [K, C, H, W]: each column source on its own
    cells: torch.Tensor  # [R, K, C, H, W]: row source's w with the column source's w on `styles`


def style_crossovers(styles: Sequence[int], num_ws: int) -> tuple[list[int], torch.Tensor]:
    """Express "these layers come from the second latent" as `mix_ws` inputs.

    The layers alternate between the row latent (index 0) and the column latent (index 1) in runs; each run
    boundary is a crossover. Returns `(sources, crossovers)`: `sources[j]` in {0, 1} is the latent of run j (the
    first run is the row latent, possibly empty) and `crossovers` is int64 [len(sources) - 1], non-decreasing in
    [0, num_ws].
    Example: styles 0-3 of 8 layers -> sources [0, 1, 0], crossovers [0, 4].
    """
    chosen = set(styles)
    bad = sorted(layer for layer in chosen if not 0 <= layer < num_ws)
    if bad:
        raise ValueError(f"style layers {bad} out of range: this generator has {num_ws} layers (0-{num_ws - 1})")
    sources = [0]
    crossovers: list[int] = []
    for layer in range(num_ws):
        source = 1 if layer in chosen else 0
        if source != sources[-1]:
            sources.append(source)
            crossovers.append(layer)
    return sources, torch.tensor(crossovers, dtype=torch.int64)


def _require_style_based(G: LatentGenerator) -> StyleGenerator:
    if not is_style_generator(G):
        raise ValueError(
            f"style mixing needs a generator with a mapping network and a synthesis network that takes per-layer "
            f"ws; this {type(G).__name__} has none (a traditional generator without mapping feeds z to its first "
            f"layer only)"
        )
    if int(getattr(G, "num_ws", 0)) < 2:
        raise ValueError(f"style mixing needs per-layer styles (num_ws >= 2); this generator has num_ws = "
                         f"{getattr(G, 'num_ws', 0)} (the latent enters only its first layer)")
    return G


@torch.no_grad()
def map_seeds(
    G: StyleGenerator,
    seeds: Sequence[int],
    class_idx: int | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """`G.mapping` of the seeds' latents: float tensor [len(seeds), num_ws, w_dim] on the generator's device."""
    z, c = _inputs(G, seeds, class_idx)  # [N, z_dim], [N, c_dim] or None
    return torch.cat([
        G.mapping(z[part], None if c is None else c[part], truncation_psi=truncation_psi,
                  truncation_cutoff=truncation_cutoff)  # [B, num_ws, w_dim]
        for part in _batches(len(seeds), batch_size)
    ])


@torch.no_grad()
def synthesize(G: StyleGenerator, ws: torch.Tensor, noise_mode: str = "const", batch_size: int = 16,
               noise_seed: int = 0) -> torch.Tensor:
    """uint8 images [N, C, H, W] of `G.synthesis` on ws [N, num_ws, w_dim]."""
    _check_noise_mode(noise_mode)
    images = []
    for index, part in enumerate(_batches(ws.shape[0], batch_size)):
        with _seeded_noise(noise_seed + index, ws.device):
            img = G.synthesis(ws[part], noise_mode=noise_mode)  # [B, C, H, W] float
        check_finite_images(img, "synthesis output", first_item=part.start)
        images.append(to_uint8(img))
    return torch.cat(images)


def style_mix(
    G: LatentGenerator,
    row_seeds: Sequence[int],
    col_seeds: Sequence[int],
    styles: Sequence[int],
    class_idx: int | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> StyleMixGrid:
    """Style-mixing grid of StyleGAN Figure 3.

    Cell (r, k) is `G.synthesis` of the row source's ws with the layers in `styles` taken from column source k
    (both mapped with the same truncation). Mixing goes through `sgmodels.mixing.mix_ws`.
    """
    G = _require_style_based(G)
    if not row_seeds or not col_seeds or not styles:
        raise ValueError("style mixing needs at least one row seed, one column seed and one style layer")
    sources, crossovers = style_crossovers(styles, G.num_ws)
    unique = sorted(set(row_seeds) | set(col_seeds))
    ws_all = map_seeds(G, unique, class_idx, truncation_psi, truncation_cutoff, batch_size)  # [U, num_ws, w_dim]
    ws_of = {seed: ws_all[i] for i, seed in enumerate(unique)}
    row_ws = torch.stack([ws_of[seed] for seed in row_seeds])  # [R, num_ws, w_dim]
    col_ws = torch.stack([ws_of[seed] for seed in col_seeds])  # [K, num_ws, w_dim]
    rows, cols = len(row_seeds), len(col_seeds)
    pair_row = row_ws.repeat_interleave(cols, dim=0)  # [R*K, num_ws, w_dim]: row source of each cell
    pair_col = col_ws.repeat(rows, 1, 1)  # [R*K, num_ws, w_dim]: column source of each cell
    candidates = (pair_row, pair_col)
    cell_crossovers = crossovers.to(row_ws.device)[None].expand(rows * cols, -1)  # [R*K, runs - 1]
    cell_ws = mix_ws([candidates[source] for source in sources], cell_crossovers)  # [R*K, num_ws, w_dim]
    cells = synthesize(G, cell_ws, noise_mode, batch_size)  # [R*K, C, H, W]
    return StyleMixGrid(
        row_seeds=list(row_seeds),
        col_seeds=list(col_seeds),
        styles=sorted(set(styles)),
        row_images=synthesize(G, row_ws, noise_mode, batch_size),
        col_images=synthesize(G, col_ws, noise_mode, batch_size),
        cells=cells.reshape(rows, cols, *cells.shape[1:]),
    )
