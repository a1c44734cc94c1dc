"""Image figures of the ablation reports: sample grids, a style-mixing grid and stochastic variation (Fig. 4).

* `sample_grid`: the same latents (seeds 0..N-1, constant noise) through one network, one PNG;
* `stochastic_variation`: one latent rendered with several noise realisations, and the per-pixel standard
  deviation of those renders (StyleGAN Fig. 4: hair, texture and background vary, identity does not);
* `mixing_grid`: the style-mixing grid of StyleGAN Fig. 3 (coarse styles from the column sources).
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["mixing_grid", "sample_grid", "stochastic_variation"]


MIN_FIGURE_SIZE = 512  # small CPU-scale images are enlarged (nearest neighbour) until the figure is this wide


def _save(path: Path, image: torch.Tensor) -> Path:
    """Write a uint8 [C, H, W] figure atomically, enlarged by an integer factor when it is small."""
    from sgmodels.fileio import atomic_temp_path
    from sgmodels.images import save_png

    factor = max(1, -(-MIN_FIGURE_SIZE // image.shape[-1]))  # rounded up: a wide strip of 9 images is enlarged too
    image = image.repeat_interleave(factor, dim=-1).repeat_interleave(factor, dim=-2)  # [C, fH, fW]
    with atomic_temp_path(path) as temp:
        save_png(temp, image)
    return path


def sample_grid(snapshot: Path, path: Path, count: int = 32) -> Path:
    """Images of seeds 0..count-1 (constant noise, no truncation) in one grid PNG."""
    from sgmodels.generate import generate_images
    from sgmodels.images import image_grid
    from sgmodels.interfaces import as_generator
    from sgmodels.snapshot import load_generator

    G = as_generator(load_generator(snapshot))  # an sgmodels generator (z_dim, c_dim, ...; W space when it has one)
    return _save(path, image_grid(generate_images(G, list(range(count)), noise_mode="const")))


@torch.no_grad()
def stochastic_variation(snapshot: Path, path: Path, seed: int = 0, realisations: int = 8) -> Path:
    """One latent with `realisations` noise draws, then the per-pixel std over them (brighter = more variation)."""
    from sgmodels.generate import seed_latents
    from sgmodels.images import image_grid, to_uint8
    from sgmodels.interfaces import as_generator
    from sgmodels.snapshot import load_generator

    G = as_generator(load_generator(snapshot))  # an sgmodels generator (z_dim, c_dim, ...; W space when it has one)
    z = seed_latents([seed], G.z_dim).repeat(realisations, 1)  # [R, z_dim]: one latent, R noise draws
    c = torch.zeros(realisations, G.c_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        images = G(z, c, noise_mode="random")  # [R, C, H, W] float
    spread = images.std(dim=0, keepdim=True).mean(dim=1, keepdim=True)  # [1, 1, H, W]
    spread = (spread / spread.max().clamp_min(1e-8)) * 2 - 1  # scaled to [-1, 1] for display
    spread = spread.expand(1, images.shape[1], -1, -1)
    return _save(path, image_grid(to_uint8(torch.cat([images, spread])), cols=realisations + 1))


def mixing_grid(snapshot: Path, path: Path, rows: int = 4, cols: int = 4) -> Path | None:
    """StyleGAN Fig. 3: the first half of the layers from the column sources; None for a network without W."""
    from sgmodels.generate import style_mix
    from sgmodels.images import labelled_grid
    from sgmodels.interfaces import as_generator, is_style_generator
    from sgmodels.snapshot import load_generator

    G = as_generator(load_generator(snapshot))  # an sgmodels generator (z_dim, c_dim, ...; W space when it has one)
    if not is_style_generator(G) or int(G.num_ws) < 2:
        return None
    styles = list(range(max(1, G.num_ws // 2)))
    grid = style_mix(G, list(range(rows)), list(range(100, 100 + cols)), styles)
    return _save(path, labelled_grid(None, list(grid.col_images), list(grid.row_images), grid.cells))
