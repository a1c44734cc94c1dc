"""Cheap mode-collapse check for a generator trained on a labelled dataset (used by `nox -s demo`).

Every fake gets the label of its nearest real image, compared on 8x8 box-downsampled pixels, and the class histogram
of the fakes is summarised by its entropy normalised to [0, 1] (1 = every class equally often). It needs no feature
network, so it runs in seconds on a CPU; it says whether the samples cover the classes, not how good they are
(use `sgeval fid` / `sgeval pr` for that).

    python -m benchmarks.class_coverage out/demo/fmnist32.zip RUN/network-snapshot-000120.safetensors [...]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from sgmodels.data.dataset import ImageDataset
from sgmodels.snapshot import load_snapshot

COMPARE_RESOLUTION = 8  # coarse enough to ignore texture, fine enough to tell a shoe from a shirt


def _downsampled(images: torch.Tensor) -> torch.Tensor:
    """float [N, C, R, R] in [-1, 1] -> [N, C * 8 * 8] box-downsampled pixels."""
    return F.adaptive_avg_pool2d(images.float(), COMPARE_RESOLUTION).flatten(1)


def load_reals(data: str, num: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """A seeded subset of `num` labelled reals: (pixels [num, C*64], class indices [num])."""
    with ImageDataset(data, max_size=num, seed=seed) as dataset:
        if not dataset.has_onehot_labels:
            raise SystemExit(f"{data}: needs one-hot class labels (dataset.json) for a class-coverage check")
        images = np.stack([dataset[i][0] for i in range(len(dataset))])  # [N, C, R, R] uint8
        labels = np.array([int(np.argmax(dataset.get_label(i))) for i in range(len(dataset))])
    return _downsampled(torch.from_numpy(images).float() / 127.5 - 1), labels


def class_histogram(G: Any, reals: torch.Tensor, labels: np.ndarray, num: int, seed: int) -> np.ndarray:
    """Fraction of `num` fakes (seeded z, random noise) whose nearest real has each class."""
    generator = torch.Generator().manual_seed(seed)
    nearest = []
    with torch.no_grad():
        for start in range(0, num, 250):
            z = torch.randn([min(250, num - start), G.z_dim], generator=generator)
            fakes = _downsampled(G(z, None, noise_mode="const"))
            nearest.append(torch.cdist(fakes, reals).argmin(dim=1))
    counts = np.bincount(labels[torch.cat(nearest).numpy()], minlength=int(labels.max()) + 1)
    return counts / counts.sum()


def normalised_entropy(hist: np.ndarray) -> float:
    """Entropy of a histogram divided by log(number of classes): 1 = uniform, 0 = one class."""
    p = hist[hist > 0]
    return float(-(p * np.log(p)).sum() / np.log(len(hist)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="labelled dataset zip or folder (the training data)")
    parser.add_argument("snapshots", nargs="+", help="snapshot files to check")
    parser.add_argument("--num-real", type=int, default=10000)
    parser.add_argument("--num-gen", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    reals, labels = load_reals(args.data, args.num_real, args.seed)
    data_hist = np.bincount(labels) / len(labels)
    print(f"data   classes {np.round(data_hist, 2)}  entropy {normalised_entropy(data_hist):.3f}")
    for path in args.snapshots:
        hist = class_histogram(load_snapshot(path).generator, reals, labels, args.num_gen, args.seed)
        print(f"{path}\n       classes {np.round(hist, 2)}  entropy {normalised_entropy(hist):.3f}")


if __name__ == "__main__":
    main()
