"""`sgmodels` command line: describe, generate, mix, train, convert, dataset."""

from __future__ import annotations

import click

from sgmodels._lazycli import LazyGroup

COMMANDS = {
    # name: "module:click command"
    "convert": "sgmodels.commands.convert:convert",
    "dataset": "sgmodels.data.cli:dataset",
    "describe": "sgmodels.commands.describe:describe",
    "generate": "sgmodels.commands.generate:generate",
    "mix": "sgmodels.commands.mix:mix",
    "train": "sgmodels.commands.train:train",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sgeval")
def main() -> None:
    """StyleGAN / StyleGAN2 networks: describe, generate, style-mix, train, convert checkpoints, build datasets."""


if __name__ == "__main__":
    main()
