"""`sgmodels describe`: architecture table and parameter counts of a preset or a snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from sgmodels.commands import pop_preset_options, preset_options, user_errors
from sgmodels.describe import checkpoint_report, format_report, preset_report
from sgmodels.presets import PRESETS


def _preset_list() -> str:
    rows = [[preset.arch, preset.config, preset.summary] for preset in PRESETS.values()]
    return tabulate(rows, headers=["arch", "config", "description"])


@click.command()
@click.argument("snapshot", required=False, type=click.Path(dir_okay=False, path_type=Path))
@preset_options()
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--list", "list_presets", is_flag=True, help="list the presets and exit")
def describe(snapshot: Path | None, as_json: bool, list_presets: bool, **kwargs: Any) -> None:
    """Architecture and parameter counts of a preset, a snapshot or an imported checkpoint.

    Prints per block the resolution, channels and parameters, then the counts of the mapping and synthesis
    networks, the generator and the discriminator, for a preset (--arch/--config and overrides) or a SNAPSHOT file.
    SNAPSHOT may also be an official checkpoint (stylegan2-ada-pytorch / stylegan3 or TensorFlow .pkl, rosinality
    .pt), read without executing it: the report then names its format, the networks found (G / D / G_ema, with their
    original classes), the parts that cannot be imported and the training-set settings it records.

    \b
    Examples:
      sgmodels describe --arch stylegan2 --config f --resolution 1024
      sgmodels describe --arch stylegan --config cpu32 --json
      sgmodels describe run/snapshot-001000.safetensors
      sgmodels describe stylegan2-ffhq-config-f.pkl
      sgmodels describe --list
    """
    if list_presets:
        click.echo(_preset_list())
        return
    with user_errors():
        arch, config, overrides = pop_preset_options(kwargs)
        if snapshot is not None:
            if config is not None or arch is not None or overrides:
                raise ValueError("give either a SNAPSHOT or preset options (--arch/--config/...), not both")
            report = checkpoint_report(snapshot)
        else:
            if config is None:
                raise ValueError("give a SNAPSHOT file or a preset: --arch stylegan2 --config f (see --list)")
            report = preset_report(arch or "stylegan2", config, overrides)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
