"""`sgmodels generate`: images from seeds, one PNG per seed or one grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sgmodels.commands import load_cli_generator, network_source_options, pop_preset_options, range_option, user_errors
from sgmodels.generate import NOISE_MODES, generate_images
from sgmodels.images import image_grid, save_png


def generation_options(func):
    """Options shared by generate and mix: truncation, noise, class, batch, outdir."""
    func = click.option("--batch", "batch_size", type=click.IntRange(min=1), default=16, show_default=True,
                        help="images per forward pass")(func)
    func = click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
                        help="class index of a conditional generator")(func)
    func = click.option("--noise-mode", type=click.Choice(NOISE_MODES), default="const", show_default=True,
                        help="noise inputs: the stored constant maps, fresh random maps, or none")(func)
    func = click.option("--trunc-cutoff", "truncation_cutoff", type=click.IntRange(min=0), default=None,
                        help="truncate only the first N layers [default: the network's own: all layers for "
                             "StyleGAN2, the first 8 for StyleGAN v1 as in the official code]")(func)
    func = click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True,
                        help="truncation psi (1 = none)")(func)
    return click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), required=True,
                        help="output directory (created)")(func)


@click.command()
@range_option("--seeds", required=True, help="seeds, e.g. 0-15,42")
@generation_options
@click.option("--grid", is_flag=True, help="write one grid image (grid.png) instead of one PNG per seed")
@click.option("--grid-cols", type=click.IntRange(min=1), default=None, help="grid columns [default: about square]")
@network_source_options
def generate(network: str | None, seeds: list[int], outdir: Path, grid: bool, grid_cols: int | None,
             **kwargs: Any) -> None:
    """Generate images from seeds with a network file or a randomly initialised preset.

    NETWORK is an sgmodels snapshot or an official checkpoint (stylegan2-ada-pytorch / stylegan3 .pkl, StyleGAN
    TensorFlow .pkl, rosinality .pt), read without executing anything it carries.

    The latent of seed s is np.random.RandomState(s).randn(z_dim), as in the official gen_images.py, so seeds name
    the same latents as there. Writes OUTDIR/seed0000.png, ... (or OUTDIR/grid.png with --grid).

    \b
    Examples:
      sgmodels generate run/snapshot-001000.safetensors --seeds 0-15,42 --trunc 0.7 --outdir out
      sgmodels generate stylegan2-ffhq-config-f.pkl --seeds 0-7 --outdir out
      sgmodels generate stylegan2-cpu32 --random-init --seeds 0-15 --grid --outdir out
      sgmodels generate --random-init --arch stylegan2 --config f --resolution 256 --seeds 0 --outdir out
    """
    with user_errors():
        arch, config, overrides = pop_preset_options(kwargs)
        G = load_cli_generator(network, kwargs.pop("random_init"), kwargs.pop("init_seed"), kwargs.pop("device"),
                               arch, config, overrides, network_key=kwargs.pop("network_key"))
        images = generate_images(G, seeds, **kwargs)  # [N, C, H, W] uint8
    outdir.mkdir(parents=True, exist_ok=True)
    if grid:
        save_png(outdir / "grid.png", image_grid(images, cols=grid_cols))
        click.echo(f"wrote a grid of {len(seeds)} images to {outdir / 'grid.png'}")
        return
    for seed, image in zip(seeds, images, strict=True):
        save_png(outdir / f"seed{seed:04d}.png", image)
    click.echo(f"wrote {len(seeds)} images to {outdir}")
