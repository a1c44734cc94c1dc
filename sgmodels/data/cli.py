"""`sgmodels dataset create|info`: build StyleGAN2-ADA dataset zips and inspect datasets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from sgmodels.clierrors import cli_errors, parse_label_names
from sgmodels.fileio import check_writable_folder, keeping
from sgmodels.progress import progress_bar

if TYPE_CHECKING:
    from sgmodels.data.dataset import ImageDataset


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def dataset() -> None:
    """Build training datasets (StyleGAN2-ADA zip layout) and inspect them."""


@dataset.command()
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--resolution", type=click.IntRange(min=1), default=None,
              help="Output width = height in pixels (LANCZOS resize). Default: keep the input size (must be common).")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None,
              help="1 = grayscale, 3 = RGB. Default: keep the input channel count (must be common).")
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Keep only the first N images.")
@click.option("--shuffle-seed", type=int, default=None,
              help="Shuffle the order (np.random.RandomState(seed)) before --max-images. Default: sorted order.")
@click.option("--crop", type=click.Choice(["center", "pad", "none"]), default="center", show_default=True,
              help="Non-square images: center-crop, pad with black, or refuse them.")
@click.option("--labels", type=click.Choice(["auto", "none"]), default="auto", show_default=True,
              help="auto: labels from dataset.json, sub-folder names or IDX label files; none: unlabelled.")
@click.option("--label-names", default=None, metavar="A,B,...|@FILE",
              help="Names of the classes (by index) or attributes (by vector entry), comma-separated or one per line "
                   "of FILE; replaces the source's names. Default: dataset.json's class_names / attribute_names "
                   "(or attributes), or the class sub-folder names.")
def create(
    src: Path,
    out: Path,
    resolution: int | None,
    channels: str | None,
    max_images: int | None,
    shuffle_seed: int | None,
    crop: str,
    labels: str,
    label_names: str | None,
) -> None:
    """Convert SRC (image folder, zip, IDX file or folder of IDX files) into the dataset zip OUT.

    \b
    Examples:
      sgmodels dataset create /usr/share/datasets/fashion-mnist fmnist32.zip --resolution 32
      sgmodels dataset create photos/ faces256.zip --resolution 256 --channels 3 --crop center
    """
    from sgmodels.data.dataset_tool import create_dataset

    with cli_errors(), keeping(lambda: f"{out} is unchanged (nothing was written)"):
        check_writable_folder(out.parent)  # before converting every image
        summary = create_dataset(src, out, resolution=resolution, channels=None if channels is None else int(channels),
                                 max_images=max_images, shuffle_seed=shuffle_seed, crop=crop, labels=labels,
                                 label_names=None if label_names is None else parse_label_names(label_names))
    label_text = f"{summary.label_dim}-dim labels" if summary.label_dim else "no labels"
    names = summary.class_names or summary.attribute_names
    click.echo(f"wrote {summary.path}: {summary.num_images} images, {summary.resolution}x{summary.resolution}, "
               f"{summary.channels} channel(s), {label_text}"
               + (f" ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})" if names else ""))


@dataset.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(min=1), default=10000, show_default=True, help="Images to render.")
@click.option("--resolution", type=click.IntRange(min=8), default=32, show_default=True, help="Width = height.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Factors and nuisances.")
def factors(out: Path, count: int, resolution: int, seed: int) -> None:
    """Render a labelled dataset zip OUT with known independent binary factors (shape, colour, position, size,
    background, stripes, a dot; base rates from 50 % down to 4 %): the ground truth for separability and for
    checking a measuring stick on rare attributes. Offline, bit-identical from the seed.

    \b
    Example:
      sgmodels dataset factors factors32.zip --count 10000
    """
    from sgmodels.data.factors import FACTORS, write_factor_dataset

    if out.suffix.lower() != ".zip":
        raise click.BadParameter("the output must be a .zip file", param_hint="OUT")
    with cli_errors(), keeping(lambda: f"{out} is unchanged (nothing was written)"):
        check_writable_folder(out.parent)
        write_factor_dataset(out, count, resolution=resolution, seed=seed)
    click.echo(f"wrote {out}: {count} images, {resolution}x{resolution}, 3 channels, attributes "
               + ", ".join(f"{factor.name} ({factor.base_rate:.0%})" for factor in FACTORS))


@dataset.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--verify", is_flag=True, help="Decode every image and check its shape (slower).")
def info(path: Path, verify: bool) -> None:
    """Print image count, resolution, channels and labels of the dataset zip or folder PATH."""
    from sgmodels.data.dataset import ImageDataset

    with cli_errors(), ImageDataset(path) as data:
        if verify:
            _verify(data)
        for line in describe(data):
            click.echo(line)
        if verify:
            click.echo(f"verified:    all {len(data)} images decode to {data.num_channels} x {data.resolution} x "
                       f"{data.resolution}; every label matches an image")


def describe(data: ImageDataset) -> list[str]:
    """Human-readable lines: count, resolution, channels, label dimension and the class histogram."""
    lines = [
        f"name:        {data.name}",
        f"images:      {len(data)}",
        f"resolution:  {data.resolution}x{data.resolution}",
        f"channels:    {data.num_channels}",
        f"label dim:   {data.label_dim}" + (" (class indices)" if data.has_onehot_labels else ""),
    ]
    classes = data.raw_class_indices()
    if classes is not None:
        names = data.class_names or []
        counts = np.bincount(classes, minlength=data.label_dim)
        lines.append("classes:")
        for index, count in enumerate(counts):
            name = f" {names[index]}" if index < len(names) else ""
            lines.append(f"  {index:>4}{name}: {int(count)}")
    elif data.has_labels:
        positive = np.stack([data.get_label(i) for i in range(len(data))]) > 0  # [N, A]; 0/1 and -1/+1 alike
        names = data.attribute_names or [f"attr{k:02d}" for k in range(positive.shape[1])]
        lines.append("attributes (images where present):")
        for index, (name, count) in enumerate(zip(names, positive.sum(axis=0).tolist(), strict=True)):
            lines.append(f"  {index:>4} {name}: {int(count)} ({count / len(data):.1%})")
    return lines


def _verify(data: ImageDataset) -> None:
    for index in progress_bar(range(len(data)), desc=f"verifying {data.name}", unit="img"):
        data[index]
