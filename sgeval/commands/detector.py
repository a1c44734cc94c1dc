"""`sgeval detector train|info` (the domain detector, sgeval.detector) and `sgeval fd` (domain FD / KD / P&R).

`sgeval fd SOURCE --detector DIR` runs the domain protocols (`fd_domain`, `kd_domain`, `pr_domain`, with the usual
count overrides) through the same runner and cache as `sgeval fid`; `--detector` is a shorthand for
`--detector-weights domain=DIR`, so `sgeval calc --metrics fd_domain,kd_domain --detector-weights domain=DIR` (or
`--weights-dir DIR`) does the same for several protocols at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sgeval.commands.metrics import _run, evaluation_options_except
from sgmodels.clierrors import cli_errors

__all__ = ["detector_group", "fd_command"]


@click.group("detector")
def detector_group() -> None:
    """Train and inspect a domain detector: the project's own feature network (domain FD, lpips-domain)."""


def _accuracy_lines(description: dict[str, Any]) -> list[str]:
    from tabulate import tabulate

    from sgeval.detector import accuracy_table

    rows = [[name, "-" if value != value else f"{value:.4f}"] for name, value in accuracy_table(description)]
    return tabulate(rows, headers=["held out", "accuracy"], tablefmt="simple").splitlines()


@detector_group.command("train")
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path),
              help="Labelled dataset: a .zip or folder with dataset.json labels (classes or attribute vectors), or "
                   "class sub-folders.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for detector.safetensors and detector.json.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Passes over the training split [3].")
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=None, help="Images per step [64].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate [5e-4].")
@click.option("--held-out", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Fraction of the images kept out of training to measure accuracy [0.1].")
@click.option("--max-items", type=click.IntRange(min=2), default=None,
              help="Train and hold out within a seeded random subset of N images (quicker) [all].")
@click.option("--resolution", type=click.IntRange(min=4), default=None,
              help="Input resolution, a power of two dividing the dataset's (box-downsampled) [the dataset's].")
@click.option("--channel-base", type=click.IntRange(min=1), default=None,
              help="Width at resolution r: min(channel_base / r, channel_max) [1024].")
@click.option("--channel-max", type=click.IntRange(min=1), default=None,
              help="Widest layer; the features have min(channel_base / 4, channel_max) dimensions [256].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Held-out split, initialisation and batch order.")
@click.option("--device", default="cpu", show_default=True, help="Torch device, e.g. cuda.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the written description as JSON.")
def train_command(data: Path, outdir: Path, max_items: int | None, seed: int, device: str, no_progress: bool,
                  as_json: bool, **overrides: Any) -> None:
    """Train a domain detector on the labels of DATA (held-out accuracy printed and recorded).

    \b
    Examples:
      sgeval detector train --data fmnist32.zip --outdir detector/
      sgeval fd runs/00000 --detector detector/ --num-gen 10k
      sgeval ppl G.safetensors --distance lpips-domain --no-crop --detector-weights lpips-domain=detector/
    """
    import dataclasses

    from sgeval.detector import DEFAULT_OPTIONS, train_detector

    with cli_errors():
        options = dataclasses.replace(DEFAULT_OPTIONS, seed=seed,
                                      **{key: value for key, value in overrides.items() if value is not None})
        description = train_detector(data, outdir, options, max_items=max_items, device=device,
                                     progress=not no_progress)
    if as_json:
        click.echo(json.dumps(description, indent=1))
        return
    click.echo("\n".join(_accuracy_lines(description)))
    click.echo(f"wrote {outdir / description['weights_file']} (sha256 {description['weights_sha256']}): "
               f"{description['feature_dim']}-d features of {description['input']['resolution']}x"
               f"{description['input']['resolution']} images, {description['num_train']} trained, "
               f"{description['num_held_out']} held out")


@detector_group.command("info")
@click.argument("detector", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info_command(detector: Path, as_json: bool) -> None:
    """Check a detector (folder or .safetensors: description, sha256, tensor shapes) and describe it."""
    from sgeval.detector import load_detector

    loaded = load_detector(detector)  # a DetectorError is a click error: message, status 1
    if as_json:
        click.echo(json.dumps(loaded.description, indent=1))
        return
    summary = loaded.summary()
    click.echo(f"{loaded.weights_path}: ok (sha256 {loaded.weights_sha256})")
    click.echo(f"  {summary['label_kind']} ({len(loaded.names)}): {', '.join(loaded.names)}")
    click.echo(f"  input {loaded.channels} channel(s) at {loaded.resolution}x{loaded.resolution} (or integer "
               f"multiples, box-downsampled); {loaded.feature_dim}-d features")
    click.echo(f"  trained on {loaded.description.get('dataset', {}).get('path')} "
               f"(fingerprint {summary['dataset_fingerprint']})")
    click.echo("\n".join(_accuracy_lines(loaded.description)))


def _domain_protocol_names() -> list[str]:
    from sgeval.protocols import DOMAIN_DETECTOR, list_protocols

    return [protocol.name for protocol in list_protocols() if protocol.detector == DOMAIN_DETECTOR]


@click.command("fd")
@click.argument("source", type=click.Path(exists=True))
@click.option("--detector", type=click.Path(exists=True, path_type=Path), default=None,
              help="The domain detector: its folder or detector.safetensors [default: the weights lookup, e.g. "
                   "--weights-dir DIR or the project cache].")
@click.option("--protocol", type=click.Choice(_domain_protocol_names()), default="fd_domain",
              show_default=True, help="Domain protocol (fd_domain: FD, kd_domain: KD, pr_domain: precision/recall).")
@evaluation_options_except()
def fd_command(source: str, detector: Path | None, protocol: str, data: Path | None, **options: Any) -> None:
    """Domain Fréchet distance (or KD, precision/recall) of SOURCE with a trained domain detector.

    The FID formula on the detector's features, named fd_domain (never FID); results record the detector's sha256.
    SOURCE and --data are as for `sgeval fid`.

    \b
    Examples:
      sgeval fd runs/00000 --detector detector/ --all-snapshots --num-gen 5k
      sgeval fd generated/ --data fmnist32.zip --detector detector/ --protocol kd_domain
    """
    if detector is not None:
        if options.get("detector_weights"):
            raise click.BadParameter("give --detector or --detector-weights, not both", param_hint="--detector")
        options["detector_weights"] = {"domain": detector}
    _run([protocol], source, data, **options)
