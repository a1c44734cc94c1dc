"""`sgmodels dataset create|info`: build StyleGAN2-ADA dataset zips and inspect datasets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from sgmodels.clierrors import cli_errors
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
def create(
    src: Path,
    out: Path,
    resolution: int | None,
    channels: str | None,
    max_images: int | None,
    shuffle_seed: int | None,
    crop: str,
    labels: str,
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
                                 max_images=max_images, shuffle_seed=shuffle_seed, crop=crop, labels=labels)
    label_text = f"{summary.label_dim}-dim labels" if summary.label_dim else "no labels"
    click.echo(f"wrote {summary.path}: {summary.num_images} images, {summary.resolution}x{summary.resolution}, "
               f"{summary.channels} channel(s), {label_text}")


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
        mean = np.mean([data.get_label(i) for i in range(len(data))], axis=0)
        lines.append("attribute means: " + " ".join(f"{m:.3f}" for m in mean))
    return lines


def _verify(data: ImageDataset) -> None:
    for index in progress_bar(range(len(data)), desc=f"verifying {data.name}", unit="img"):
        data[index]
