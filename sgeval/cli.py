"""`sgeval` command line: FID, KID, precision/recall, Inception Score, reference statistics, weights, cache, reports."""

from __future__ import annotations

import click

from sgmodels._lazycli import LazyGroup  # shared with the sgmodels CLI

COMMANDS = {
    # name: "module:click command"
    "cache": "sgeval.cache:cache_command",
    "calc": "sgeval.commands.metrics:calc_command",
    "classifiers": "sgeval.commands.separability:classifiers_group",
    "detector": "sgeval.commands.detector:detector_group",
    "fd": "sgeval.commands.detector:fd_command",
    "fid": "sgeval.commands.metrics:fid_command",
    "is": "sgeval.commands.metrics:is_command",
    "kid": "sgeval.commands.metrics:kid_command",
    "list": "sgeval.commands.metrics:list_command",
    "ls": "sgeval.commands.separability:ls_command",
    "ppl": "sgeval.commands.ppl:ppl_command",
    "pr": "sgeval.commands.metrics:pr_command",
    "project": "sgeval.commands.project:project_command",
    "report": "sgeval.report:report_command",
    "stats": "sgeval.commands.metrics:stats_command",
    "weights": "sgeval.weights:weights_command",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sgeval")
def main() -> None:
    """Evaluate generative image models with the metrics StyleGAN papers report."""


if __name__ == "__main__":
    main()
