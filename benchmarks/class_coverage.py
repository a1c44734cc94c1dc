"""Cheap mode-collapse check for a generator trained on a labelled dataset (used by `nox -s demo`).

Class labels (one-hot, dataset.json class indices or class sub-folders): every fake gets the label of its nearest
real image, compared on 8x8 box-downsampled pixels, and the class histogram of the fakes is summarised by its
entropy normalised to [0, 1] (1 = every class equally often). It needs no feature network, so it runs in seconds on
a CPU. With trained classifiers (`--classifiers DIR`, as `sgeval classifiers train` writes; one-vs-rest logits for
class labels) it also prints the classifier-predicted class histogram (argmax of the logits) of the reals and of
the fakes.

Attribute labels (0/1 or -1/+1 vectors) need the classifiers: the frequency of each attribute among the fakes (the
classifiers' decisions, logit >= 0) against its frequency among the reals, both as the classifiers decide it (the
like-for-like comparison: the classifiers' own bias cancels) and as the labels say (the true base rate). The
summary: the mean absolute difference of the fake and the real frequencies (decisions on both sides; and against
the base rates), the attributes the generator never produces (frequency 0 among the fakes although the classifiers
find them on some reals) or always produces (1 among the fakes although not on every real), and the attributes the
classifiers find on no real image (their rows say nothing about the generator).

Either way it says whether the samples cover the labels, not how good they are (use `sgeval fid` / `sgeval pr`).
Fakes: seeded z, constant noise; the classifiers see them clamped to [-1, 1], as saved images would be.

    python -m benchmarks.class_coverage out/demo/fmnist32.zip RUN/network-snapshot-000120.safetensors [...]
    python -m benchmarks.class_coverage faces.zip RUN/network-snapshot-000024.safetensors --classifiers classifiers/
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from sgmodels.data.dataset import ImageDataset
from sgmodels.interfaces import LatentGenerator, as_generator
from sgmodels.snapshot import load_snapshot

__all__ = ["AttributeFrequencies", "LabelledReals", "attribute_frequencies", "check_classifiers", "class_histogram",
           "classifier_logits", "fake_batches", "load_labelled", "load_reals", "main", "nearest_real_inputs",
           "normalised_entropy", "predicted_class_histogram", "real_batches", "real_frequencies"]

COMPARE_RESOLUTION = 8  # coarse enough to ignore texture, fine enough to tell a shoe from a shirt
BATCH = 250  # fakes per generator call (fixed: the z of each batch come from one seeded stream)


def _downsampled(images: torch.Tensor) -> torch.Tensor:
    """float [N, C, R, R] in [-1, 1] -> [N, C * 8 * 8] box-downsampled pixels."""
    return F.adaptive_avg_pool2d(images.float(), COMPARE_RESOLUTION).flatten(1)


def nearest_real_inputs(images: np.ndarray) -> torch.Tensor:
    """uint8 reals [N, C, R, R] -> the [N, C*64] pixels the nearest-real check compares."""
    return _downsampled(torch.from_numpy(images).float() / 127.5 - 1)


def load_reals(data: str, num: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """A seeded subset of `num` labelled reals: (pixels [num, C*64], class indices [num])."""
    with ImageDataset(data, max_size=num, seed=seed) as dataset:
        if not dataset.has_onehot_labels:
            raise SystemExit(f"{data}: the nearest-real check needs one-hot class labels (dataset.json class "
                             "indices or class folders); for attribute labels give trained classifiers "
                             "(--classifiers DIR, `sgeval classifiers train`)")
        images = np.stack([dataset[i][0] for i in range(len(dataset))])  # [N, C, R, R] uint8
        labels = np.array([int(np.argmax(dataset.get_label(i))) for i in range(len(dataset))])
    return nearest_real_inputs(images), labels


def fake_batches(G: LatentGenerator, num: int, seed: int) -> Iterator[torch.Tensor]:
    """`num` fakes float [B, C, H, W] in batches of BATCH: z from torch.Generator(seed), constant noise, unclamped."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for start in range(0, num, BATCH):
            z = torch.randn([min(BATCH, num - start), G.z_dim], generator=generator)
            yield G(z, None, noise_mode="const").float()


def class_histogram(G: LatentGenerator, reals: torch.Tensor, labels: np.ndarray, num: int, seed: int) -> np.ndarray:
    """Fraction of `num` fakes (seeded z, constant noise) whose nearest real has each class."""
    nearest = [torch.cdist(_downsampled(fakes), reals).argmin(dim=1) for fakes in fake_batches(G, num, seed)]
    counts = np.bincount(labels[torch.cat(nearest).numpy()], minlength=int(labels.max()) + 1)
    return counts / counts.sum()


def normalised_entropy(hist: np.ndarray) -> float:
    """Entropy of a histogram divided by log(number of classes): 1 = uniform, 0 = one class."""
    p = hist[hist > 0]
    return float(-(p * np.log(p)).sum() / np.log(len(hist)))


# ---------------------------------------------------------------------------------------------------------------
# With classifiers: attribute frequencies, classifier-predicted classes


@dataclasses.dataclass(frozen=True)
class LabelledReals:
    """A seeded subset of labelled reals at full resolution."""

    images: np.ndarray  # uint8 [N, C, H, W]
    targets: np.ndarray  # bool [N, A]: the labels (one-vs-rest "is class k" for class labels)
    kind: str  # "classes" or "attributes"
    names: list[str]  # the dataset's label names when it records them, else class00.. / attr00..


def load_labelled(data: str, num: int, seed: int) -> LabelledReals:
    """A seeded subset of `num` reals with their labels as binary targets (sgeval.classifiers.attribute_targets)."""
    from sgeval.classifiers import attribute_targets

    with ImageDataset(data, max_size=num, seed=seed) as dataset:
        if not dataset.has_labels:
            raise SystemExit(f"{data}: unlabelled (no dataset.json labels, no class folders); a coverage check needs "
                             "class or attribute labels")
        images = np.stack([dataset[i][0] for i in range(len(dataset))])  # [N, C, H, W] uint8
        vectors = np.stack([dataset.get_label(i) for i in range(len(dataset))])  # [N, label_dim] float32
        names = getattr(dataset, "label_names", None) or dataset.class_names
        onehot = dataset.has_onehot_labels
    labels = vectors.argmax(axis=1) if onehot else vectors
    try:
        targets, chosen, kind = attribute_targets(labels, vectors.shape[1], names)
    except ValueError as error:
        raise SystemExit(f"{data}: {error}") from None
    return LabelledReals(images, targets, kind, chosen)


def real_batches(images: np.ndarray, batch: int = BATCH) -> Iterator[torch.Tensor]:
    """uint8 images [N, C, H, W] as float [B, C, H, W] in [-1, 1], in batches."""
    for start in range(0, len(images), batch):
        yield torch.from_numpy(images[start:start + batch]).float() / 127.5 - 1


def classifier_logits(classifiers: Any, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """float32 logits [N, A] of a classifier set (`sgeval.classifiers.load_classifiers`) on float image batches,
    each clamped to [-1, 1] first (the range of the images they were trained on)."""
    with torch.no_grad():
        parts = [classifiers(images.clamp(-1, 1)).float().cpu().numpy() for images in batches]
    return np.concatenate(parts) if parts else np.zeros((0, len(classifiers.attributes)), dtype=np.float32)


def predicted_class_histogram(logits: np.ndarray) -> np.ndarray:
    """Fraction of images whose largest one-vs-rest logit is each class (logits [N, K] -> [K])."""
    counts = np.bincount(logits.argmax(axis=1), minlength=logits.shape[1])
    return counts / max(1, counts.sum())


@dataclasses.dataclass(frozen=True)
class AttributeFrequencies:
    """Per attribute: how often it is present among the reals (labels; classifier decisions) and among the fakes."""

    names: list[str]  # the classifiers' attribute names
    base_rate: np.ndarray  # float [A] fraction of the reals whose label has the attribute
    real: np.ndarray  # float [A] fraction of the reals the classifiers decide positive (logit >= 0)
    fake: np.ndarray  # float [A] fraction of the fakes the classifiers decide positive

    def summary(self) -> dict[str, Any]:
        """Mean absolute frequency differences and the attributes the generator never / always produces."""
        names = np.array(self.names, dtype=str)
        return {
            "mean_abs_difference": float(np.abs(self.fake - self.real).mean()),  # decisions on both sides
            "mean_abs_difference_base_rate": float(np.abs(self.fake - self.base_rate).mean()),
            "never": names[(self.fake == 0) & (self.real > 0)].tolist(),
            "always": names[(self.fake == 1) & (self.real < 1)].tolist(),
            "unseen_on_reals": names[self.real == 0].tolist(),  # the classifiers never find it on a real
        }

    def rows(self) -> list[list[Any]]:
        """[name, base rate, reals (classifiers), fakes, fakes - reals] per attribute."""
        return [[name, float(base), float(real), float(fake), float(fake - real)]
                for name, base, real, fake in zip(self.names, self.base_rate, self.real, self.fake, strict=True)]


def check_classifiers(classifiers: Any, reals: LabelledReals) -> None:
    """SystemExit unless the classifiers score one attribute (or class) per label entry of the reals."""
    count = reals.targets.shape[1]
    if len(classifiers.attributes) != count:
        raise SystemExit(f"the classifiers score {len(classifiers.attributes)} attributes "
                         f"({', '.join(classifiers.attributes[:6])}...), the dataset's labels have {count}: train "
                         "them on this dataset (`sgeval classifiers train --data DATA`)")


def real_frequencies(classifiers: Any, reals: LabelledReals) -> tuple[np.ndarray, np.ndarray]:
    """(base rates [A] of the labels, classifier decision frequencies [A] on the reals)."""
    check_classifiers(classifiers, reals)
    decided = classifier_logits(classifiers, real_batches(reals.images)) >= 0  # [N, A]
    return reals.targets.mean(axis=0), decided.mean(axis=0)


def attribute_frequencies(G: LatentGenerator, classifiers: Any, reals: LabelledReals, num_gen: int, seed: int,
                          real: tuple[np.ndarray, np.ndarray] | None = None) -> AttributeFrequencies:
    """Attribute frequencies among `num_gen` fakes of G (`fake_batches`) against the reals; `real`: the
    `real_frequencies` computed once for several generators."""
    base_rate, on_reals = real if real is not None else real_frequencies(classifiers, reals)
    decided = classifier_logits(classifiers, fake_batches(G, num_gen, seed)) >= 0  # [num_gen, A]
    return AttributeFrequencies(list(classifiers.attributes), base_rate, on_reals, decided.mean(axis=0))


# ---------------------------------------------------------------------------------------------------------------
# Command line


def _print_attributes(path: str, frequencies: AttributeFrequencies) -> None:
    from tabulate import tabulate

    print(path)
    print(tabulate(frequencies.rows(), headers=["attribute", "base rate", "reals (classifiers)", "fakes",
                                                "fakes - reals"], floatfmt=".3f"))
    summary = frequencies.summary()
    print(f"mean |fakes - reals| {summary['mean_abs_difference']:.3f} (against the base rates "
          f"{summary['mean_abs_difference_base_rate']:.3f}); never produced: {', '.join(summary['never']) or '-'}; "
          f"always produced: {', '.join(summary['always']) or '-'}")
    if summary["unseen_on_reals"]:
        print(f"the classifiers find {', '.join(summary['unseen_on_reals'])} on no real image: those rows say "
              "nothing about the generator")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="labelled dataset zip or folder (the training data)")
    parser.add_argument("snapshots", nargs="+", help="snapshot files to check")
    parser.add_argument("--classifiers", type=Path, default=None, metavar="DIR",
                        help="classifiers trained on the data (`sgeval classifiers train`): needed for attribute "
                             "labels; for class labels they add the classifier-predicted class histogram")
    parser.add_argument("--num-real", type=int, default=10000)
    parser.add_argument("--num-gen", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    classifiers = None
    if args.classifiers is not None:
        from sgeval.classifiers import load_classifiers

        classifiers = load_classifiers(args.classifiers)
    labelled = load_labelled(args.data, args.num_real, args.seed)
    if labelled.kind == "attributes":
        if classifiers is None:
            raise SystemExit(f"{args.data}: attribute labels: give classifiers trained on it (--classifiers DIR, "
                             "`sgeval classifiers train --data DATA --outdir DIR`)")
        real = real_frequencies(classifiers, labelled)
        for path in args.snapshots:
            G = as_generator(load_snapshot(path).generator)
            _print_attributes(path, attribute_frequencies(G, classifiers, labelled, args.num_gen, args.seed, real))
        return
    reals, labels = nearest_real_inputs(labelled.images), labelled.targets.argmax(axis=1)
    data_hist = np.bincount(labels) / len(labels)
    print(f"data   classes {np.round(data_hist, 2)}  entropy {normalised_entropy(data_hist):.3f}")
    if classifiers is not None:
        check_classifiers(classifiers, labelled)
        predicted = predicted_class_histogram(classifier_logits(classifiers, real_batches(labelled.images)))
        print(f"       classifiers {np.round(predicted, 2)}  entropy {normalised_entropy(predicted):.3f}")
    for path in args.snapshots:
        G = as_generator(load_snapshot(path).generator)
        hist = class_histogram(G, reals, labels, args.num_gen, args.seed)
        print(f"{path}\n       classes {np.round(hist, 2)}  entropy {normalised_entropy(hist):.3f}")
        if classifiers is not None:
            fakes = predicted_class_histogram(classifier_logits(classifiers, fake_batches(G, args.num_gen, args.seed)))
            print(f"       classifiers {np.round(fakes, 2)}  entropy {normalised_entropy(fakes):.3f}")


if __name__ == "__main__":
    main()
