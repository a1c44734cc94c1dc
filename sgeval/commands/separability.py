"""`sgeval ls` (linear separability of a snapshot) and `sgeval classifiers train|info` (the attribute classifiers it
needs); thin layers over sgeval.runner and sgeval.classifiers.

`sgeval ls` prints one row per attribute (its name, the kept samples on each side, H(Y|X) in bits in z and in w, and
a flag when the kept samples all share one decision), the totals `ls_z`, `ls_w` and the values without the constant
attributes `ls_z_measured`, `ls_w_measured` (docs/metrics.md section 10); `--json` prints the result records instead
(the per-attribute values are `ls_z_h.<name>`, `ls_w_h.<name>`, `ls_pos.<name>`, `ls_neg.<name>`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from sgeval.commands.metrics import _count, _networks, _print, _run_one, evaluation_options_except
from sgmodels.clierrors import cli_errors

__all__ = ["classifiers_group", "ls_command"]


@click.command("ls")
@click.argument("source", type=click.Path(exists=True))
@click.option("--classifiers", "classifiers", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Attribute classifiers: a folder written by `sgeval classifiers train`, or one holding NVIDIA's "
                   "celebahq-classifier-XX-<name>.pkl files (any subset, read without executing them); their input "
                   "resolution must divide the generator's.")
@click.option("--num-samples", callback=_count, default=None, metavar="N",
              help="Generated images instead of the official 200k; recorded as a quick variant (ls@genN).")
@evaluation_options_except("num_gen", "num_real", "mix_latents", "weights_dir", "detector_weights", "allow_download")
def ls_command(source: str, classifiers: Path, num_samples: int | None, data: Path | None, **options: Any) -> None:
    """Linear separability of SOURCE (a snapshot or a training run directory) in Z and W.

    Generates images (float, random noise, no truncation), labels them with the classifiers, keeps the most
    confident half per attribute, fits a linear SVM on z and on w, and reports 2^(sum of H(Y|X) in bits) (lower is
    better; 1 = every attribute linearly separable). A generator without a mapping network has no W: ls_w is NaN.

    \b
    Examples:
      sgeval classifiers train --data celeba-attributes.zip --outdir classifiers/
      sgeval ls runs/00000-.../network-snapshot-000500.safetensors --classifiers classifiers/ --device cuda
      sgeval ls G.safetensors --classifiers classifiers/ --num-samples 20k --json
      sgeval ls ffhq.pkl --classifiers celebahq-classifiers/ --device cuda   # NVIDIA's 40 classifier pickles
    """
    as_json = options.pop("as_json")
    networks = _networks(source, options.pop("all_snapshots"))
    results = []
    for network in networks:
        if len(networks) > 1 or network != source:
            click.echo(f"evaluating {network}", err=True)
        results += _run_one(["ls"], network, data, num_gen=num_samples, num_real=None, classifiers=classifiers,
                            weights_dir=None, detector_weights=None, allow_download=False, **options)
    if as_json:
        _print(results, True, single=len(results) == 1)
        return
    for result in results:
        _print_table(result)


CONSTANT_FLAG = "constant: counted as 0 bits"


def _print_table(result: Any) -> None:
    """Per-attribute kept counts and conditional entropies, then the totals and what LS measured, of one LS result."""
    from tabulate import tabulate

    values = result.values
    names = [key.removeprefix("z_h.") for key in values if key.startswith("z_h.")]
    rows = []
    for name in names:
        positive, negative = values.get(f"pos.{name}", math.nan), values.get(f"neg.{name}", math.nan)
        constant = positive == 0 or negative == 0
        rows.append([name, _count_text(positive), _count_text(negative), values[f"z_h.{name}"],
                     values.get(f"w_h.{name}", math.nan), CONSTANT_FLAG if constant else ""])
    if result.snapshot:
        click.echo(f"{result.snapshot}")
    click.echo(tabulate(rows, headers=["attribute", "kept positive", "kept negative", "H(Y|X) z [bits]",
                                       "H(Y|X) w [bits]", ""], floatfmt=".4f"))
    click.echo()
    totals = [[result.official_key(space), f"{values[space]:.6g}", result.num_gen,
               f"{result.total_time:.1f}" if result.total_time is not None else ""] for space in ("z", "w")]
    click.echo(tabulate(totals, headers=["metric", "value", "gen", "seconds"]))
    measured = int(values["num_measured"])
    constant = len(names) - measured
    click.echo(f"LS measured {measured} of {len(names)} attributes; {constant} "
               f"{'was' if constant == 1 else 'were'} constant among the kept samples (counted as 0 bits, official)")
    click.echo("without the constant attributes, 2^(attributes x mean bits of the measured ones): "
               + ", ".join(f"{result.official_key(key)} {values.get(key, math.nan):.6g}"
                           for key in ("z_measured", "w_measured")))
    if math.isnan(values["w"]):
        click.echo("note: the generator has no mapping network, so W (and ls_w) does not exist; the StyleGAN paper "
                   "scores such generators in Z.")


def _count_text(count: float) -> str:
    return "" if math.isnan(count) else f"{int(count)}"


# ---------------------------------------------------------------------------------------------------------------
# sgeval classifiers train | info


@click.group("classifiers")
def classifiers_group() -> None:
    """Attribute classifiers for linear separability (`sgeval ls --classifiers DIR`)."""


@classifiers_group.command("train")
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path),
              help="Labelled dataset (folder or .zip): dataset.json class indices (one-vs-rest) or 0/1 attribute "
                   "vectors, or class sub-folders.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write classifiers.safetensors and classifiers.json into.")
@click.option("--names", default=None, metavar="A,B,...|@FILE",
              help="Attribute names, comma-separated or one per line of FILE [default: the dataset's class or "
                   "attribute names, else class00... / attr00...].")
@click.option("--resolution", type=click.IntRange(min=4), default=None,
              help="Input resolution (power of two dividing the dataset's) [default: the dataset's].")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--held-out", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Fraction of images kept out of training to measure accuracy.")
@click.option("--channel-base", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Width at resolution R: min(channel_base / R, channel_max).")
@click.option("--channel-max", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--balance", type=click.Choice(["none", "sqrt", "full"]), default="sqrt", show_default=True,
              help="Loss weight of rare attributes: none, the square root of the inverse frequency, or the full "
                   "inverse frequency.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Held-out split, initialisation and batch order.")
@click.option("--max-items", type=click.IntRange(min=2), default=None,
              help="Train and hold out within a seeded random subset of N images (quicker) [all].")
@click.option("--device", default="cpu", show_default=True, help="Torch device, e.g. cuda.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def train_command(data: Path, outdir: Path, names: str | None, device: str, no_progress: bool, as_json: bool,
                  max_items: int | None, **options: Any) -> None:
    """Train one binary classifier per attribute (a shared discriminator-like trunk, one logit each) on DATA.

    \b
    Examples:
      sgeval classifiers train --data celeba-attributes.zip --outdir classifiers/ --resolution 256 --device cuda
      sgeval classifiers train --data mnist-classes/ --outdir mnist-classifiers/ --epochs 3
    """
    from sgeval.classifiers import TrainOptions, train_classifiers
    from sgmodels.clierrors import parse_label_names

    with cli_errors(TypeError):
        description = train_classifiers(data, outdir, TrainOptions(**options), device=device, progress=not no_progress,
                                        names=None if names is None else parse_label_names(names),
                                        max_items=max_items)
    _show(description, as_json, f"wrote {outdir}")


@classifiers_group.command("info")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info_command(folder: Path, as_json: bool) -> None:
    """Check a classifier FOLDER (sha256, tensor shapes) and show its attributes and held-out accuracy."""
    from sgeval.classifiers import load_classifiers

    with cli_errors():
        description = load_classifiers(folder).description
    _show(description, as_json, f"{folder}: verified")


def _show(description: dict[str, Any], as_json: bool, headline: str) -> None:
    from sgeval.classifiers import accuracy_rows
    from sgeval.label_quality import quality_table

    if as_json:
        click.echo(json.dumps(description, indent=1))
        return
    arch = description["architecture"]
    click.echo(f"{headline}: {len(description['attributes'])} attributes ({description.get('label_kind', '?')}), "
               f"{arch['resolution']}x{arch['resolution']}x{arch['channels']} input, weights sha256 "
               f"{description['weights_sha256'][:16]}...")
    click.echo(quality_table(accuracy_rows(description), first_column="held out"))
