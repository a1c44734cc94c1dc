"""`sgmodels mix`: the style-mixing grid of StyleGAN Figure 3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sgmodels.commands import load_cli_generator, network_source_options, pop_preset_options, range_option, user_errors
from sgmodels.commands.generate import generation_options
from sgmodels.fileio import check_writable_folder, keeping
from sgmodels.generate import style_mix
from sgmodels.images import labelled_grid, save_png
from sgmodels.ranges import IntRanges

MAX_GRID_SEEDS = 1024  # rows or columns of one style-mixing grid (all its cells are held in memory)


@click.command()
@range_option("--rows", "row_seeds", required=True, max_count=MAX_GRID_SEEDS,
              help="seeds of the row sources (all layers but --styles)")
@range_option("--cols", "col_seeds", required=True, max_count=MAX_GRID_SEEDS,
              help="seeds of the column sources (the --styles layers)")
@range_option("--styles", default="0-3", show_default=True, max_count=MAX_GRID_SEEDS,
              help="layers taken from the column source (0-3 coarse, 4-7 middle, 8+ fine at 1024)")
@generation_options
@click.option("--cells", is_flag=True, help="also write each cell as seedRRRR-seedCCCC.png")
@network_source_options
def mix(network: str | None, row_seeds: IntRanges, col_seeds: IntRanges, styles: IntRanges, outdir: Path,
        cells: bool, **kwargs: Any) -> None:
    """Style-mixing grid of row and column seeds (StyleGAN Figure 3).

    The top row shows the column sources, the left column the row sources, and cell (r, c) the row source's w with
    the column source's w on the --styles layers.

    Writes OUTDIR/style-mixing.png. Needs a style-based generator (a mapping network and per-layer ws).

    \b
    Examples:
      sgmodels mix run/snapshot-001000.safetensors --rows 0-3 --cols 10-13 --styles 0-3 --outdir out
      sgmodels mix stylegan2-cpu32 --random-init --rows 0-3 --cols 10-13 --styles 4-7 --outdir out
    """
    with user_errors():
        check_writable_folder(outdir)
        arch, config, overrides = pop_preset_options(kwargs)
        G = load_cli_generator(network, kwargs.pop("random_init"), kwargs.pop("init_seed"), kwargs.pop("device"),
                               arch, config, overrides, network_key=kwargs.pop("network_key"))
        result = style_mix(G, row_seeds, col_seeds, styles, **kwargs)
        grid = labelled_grid(None, list(result.col_images), list(result.row_images), result.cells)
        save_png(outdir / "style-mixing.png", grid)
        if cells:
            with keeping(lambda: f"the grid {outdir / 'style-mixing.png'} is complete"):
                for r, row_seed in enumerate(row_seeds):
                    for c, col_seed in enumerate(col_seeds):
                        save_png(outdir / f"seed{row_seed:04d}-seed{col_seed:04d}.png", result.cells[r, c])
    click.echo(f"wrote a {len(row_seeds)}x{len(col_seeds)} style-mixing grid to {outdir / 'style-mixing.png'}")
