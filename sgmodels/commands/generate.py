"""`sgmodels generate`: images from seeds, one PNG per seed or one grid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import torch

from sgmodels.commands import load_cli_generator, network_source_options, pop_preset_options, range_option, user_errors
from sgmodels.fileio import atomic_write_bytes, check_free_space, check_writable_folder, keeping
from sgmodels.generate import NOISE_MODES, check_seeds, iter_image_batches
from sgmodels.images import image_grid, png_bytes, save_png
from sgmodels.progress import progress_bar
from sgmodels.ranges import IntRanges
from sgmodels.untrusted import memory_bytes

Batches = Iterator[tuple[list[int], torch.Tensor]]


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
@range_option("--seeds", required=True, help="seeds, e.g. 0-15,42 (in [0, 2**32))")
@generation_options
@click.option("--grid", is_flag=True, help="write one grid image (grid.png) instead of one PNG per seed")
@click.option("--grid-cols", type=click.IntRange(min=1), default=None, help="grid columns [default: about square]")
@network_source_options
def generate(network: str | None, seeds: IntRanges, outdir: Path, grid: bool, grid_cols: int | None,
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
        check_seeds(seeds)
        check_writable_folder(outdir)  # before loading the network: an unwritable OUTDIR fails at once
        arch, config, overrides = pop_preset_options(kwargs)
        G = load_cli_generator(network, kwargs.pop("random_init"), kwargs.pop("init_seed"), kwargs.pop("device"),
                               arch, config, overrides, network_key=kwargs.pop("network_key"))
        batches = iter_image_batches(G, seeds, **kwargs)  # lazy: one batch in memory at a time
        if grid:
            _write_grid(batches, seeds.size, outdir / "grid.png", grid_cols)
            click.echo(f"wrote a grid of {seeds.size} images to {outdir / 'grid.png'}")
            return
        _write_pngs(batches, seeds.size, outdir)
    click.echo(f"wrote {seeds.size} images to {outdir}")


def _write_pngs(batches: Batches, count: int, outdir: Path) -> None:
    """One PNG per seed, each written atomically; the first batch's PNG sizes check that all `count` fit."""
    written: list[str] = []
    with keeping(lambda: _kept(written, outdir)), progress_bar(total=count, desc="generate", unit="img") as bar:
        for batch_seeds, images in batches:
            files = [(f"seed{seed:04d}.png", png_bytes(image)) for seed, image in zip(batch_seeds, images, strict=True)]
            if not written:
                check_free_space(outdir, count * sum(len(data) for _name, data in files) / len(files),
                                 f"{count} PNG images")
            for name, data in files:
                with atomic_write_bytes(outdir / name) as stream:
                    stream.write(data)
                written.append(name)
            bar.update(len(files))


def _kept(written: list[str], outdir: Path) -> str:
    if not written:
        return "no image was written"
    names = written[0] if len(written) == 1 else f"{written[0]} ... {written[-1]}"
    return f"the {len(written)} images written before it are complete in {outdir} ({names})"


def _write_grid(batches: Batches, count: int, path: Path, cols: int | None) -> None:
    """All images in one grid: held in memory, so the count must fit there (checked on the first batch)."""
    parts: list[torch.Tensor] = []
    for _batch_seeds, images in batches:
        if not parts:
            _check_grid_memory(count, images[0].numel())
            check_free_space(path.parent, count * len(png_bytes(images[0])), f"a grid of {count} images")
        parts.append(images.cpu())
    save_png(path, image_grid(torch.cat(parts), cols=cols))


def _check_grid_memory(count: int, bytes_each: int) -> None:
    """Refuse a grid whose images (held twice: the batch list and the grid) cannot fit in the available memory."""
    available = memory_bytes(available=True)
    if available is None:  # not a POSIX system that tells
        return
    need = 2 * count * bytes_each
    if need > available:
        raise ValueError(f"a grid of {count} images needs about {need / 2**30:.1f} GiB of memory, and "
                         f"{available / 2**30:.1f} GiB are available: give fewer --seeds, or drop --grid to write "
                         "one PNG per seed")
