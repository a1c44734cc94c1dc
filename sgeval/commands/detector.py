"""`sgeval detector train|info` (the domain detector, sgeval.detector) and `sgeval fd` (domain FD / KD / P&R).

`sgeval fd SOURCE --detector DIR` runs the domain protocols (`fd_domain`, `kd_domain`, `pr_domain`, with the usual
count overrides) through the same runner and cache as `sgeval fid`; `--detector` is a shorthand for
`--detector-weights domain=DIR`, so `sgeval calc --metrics fd_domain,kd_domain --detector-weights domain=DIR` (or
`--weights-dir DIR`) does the same for several protocols at once.
"""

from __future__ import annotations

import json
import warnings
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
    from sgeval.detector import accuracy_table
    from sgeval.label_quality import quality_table

    return quality_table(accuracy_table(description)).splitlines()


def _sanity_lines(description: dict[str, Any]) -> list[str]:
    """The self-check's FD table and verdict (`sgeval.stick_checks`), or a line saying it was never run."""
    from tabulate import tabulate

    from sgeval.detector import sanity_status

    state, failed = sanity_status(description)
    if state == "unchecked":
        return ["self-check: not recorded (a detector trained before the check existed; train it again to check it)"]
    sanity = description["sanity"]
    rows = [[row.get("condition"), row.get("degree") or "", f"{row.get('fd', float('nan')):.4g}"]
            for row in sanity.get("degradations", []) if isinstance(row, dict)]
    lines = tabulate(rows, headers=["held-out half B is", "sigma", "FD(A, B)"], tablefmt="simple").splitlines()
    lines += [f"  {'ok  ' if passed else 'FAIL'} {name}" for name, passed in sanity.get("checks", {}).items()]
    verdict = "PASSED" if state == "passed" else f"FAILED ({'; '.join(failed)})"
    return [*lines, f"self-check on {sanity.get('num_images')} held-out images: {verdict}"]


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
@click.option("--balance", type=click.Choice(["none", "sqrt", "full"]), default=None,
              help="Loss weight of rare labels: none, the square root of the inverse frequency, or the full inverse "
                   "frequency [sqrt].")
@click.option("--names", "names", default=None, metavar="A,B,...|@FILE",
              help="Names of the classes or attributes (comma-separated or one per line of FILE) [the dataset's "
                   "recorded names, else class00... / attr00...].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Held-out split, initialisation and batch order.")
@click.option("--device", default="cpu", show_default=True, help="Torch device, e.g. cuda.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the written description as JSON.")
def train_command(data: Path, outdir: Path, max_items: int | None, names: str | None, seed: int, device: str,
                  no_progress: bool, as_json: bool, **overrides: Any) -> None:
    """Train a domain detector on the labels of DATA (held-out accuracy printed and recorded).

    \b
    Examples:
      sgeval detector train --data fmnist32.zip --outdir detector/
      sgeval fd runs/00000 --detector detector/ --num-gen 10k
      sgeval ppl G.safetensors --distance lpips-domain --no-crop --detector-weights lpips-domain=detector/
    """
    import dataclasses

    from sgeval.detector import DEFAULT_OPTIONS, train_detector
    from sgmodels.clierrors import parse_label_names

    with cli_errors():
        options = dataclasses.replace(DEFAULT_OPTIONS, seed=seed,
                                      **{key: value for key, value in overrides.items() if value is not None})
        description = train_detector(data, outdir, options, max_items=max_items, device=device,
                                     progress=not no_progress,
                                     names=None if names is None else parse_label_names(names))
    if as_json:
        click.echo(json.dumps(description, indent=1))
        return
    click.echo("\n".join(_accuracy_lines(description) + [""] + _sanity_lines(description)))
    click.echo(f"wrote {outdir / description['weights_file']} (sha256 {description['weights_sha256']}): "
               f"{description['feature_dim']}-d features of {description['input']['resolution']}x"
               f"{description['input']['resolution']} images, {description['num_train']} trained, "
               f"{description['num_held_out']} held out")


@detector_group.command("info")
@click.argument("detector", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info_command(detector: Path, as_json: bool) -> None:
    """Check a detector (folder or .safetensors: description, sha256, tensor shapes) and describe it."""
    from sgeval.detector import DetectorSanityWarning, load_detector

    with warnings.catch_warnings():  # its verdict is printed below, with the numbers
        warnings.simplefilter("ignore", DetectorSanityWarning)
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
    click.echo("\n".join(_accuracy_lines(loaded.description) + [""] + _sanity_lines(loaded.description)))


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
