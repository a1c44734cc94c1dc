"""Attribute classifiers for linear separability: a discriminator-like CNN trained on a labelled dataset.

The StyleGAN paper labels generated images with 40 binary CelebA-HQ attribute classifiers, each "the same
architecture as the discriminator" (docs/metrics.md section 10), one network per attribute. Here one network has a
shared convolutional trunk and one logit per attribute: the separability metric only reads each attribute's logit,
and on a CPU one shared trunk costs 1/A of A separate networks both to train and to label 200,000 images (A = 40
for CelebA). Each head still gives an independent binary decision (logit >= 0: the attribute is present).

Architecture (`AttributeClassifier`): 1x1 conv from the image channels, then per resolution R down to 8 two 3x3
convs with leaky ReLU(0.2) and a 2x2 average pooling, then at 4x4 a 3x3 conv, a dense layer and the linear head
[A]. Widths min(channel_base / R, channel_max). No minibatch-stddev layer (a discriminator's): a logit must depend
on its own image only, whatever the batch. The same trunk is the domain detector of `sgeval.detector` (wider, trained
with cross-entropy on class labels), which reads its dense layer and stage activations.

Labels come from the dataset through sgeval's image sources (dataset.json or class sub-folders, read by the one
shared reader): class labels become one-vs-rest attributes ("is class k"), multi-attribute vectors stay attributes
(0/1 or -1/+1 values). Training: Adam, binary cross-entropy summed over attributes, a held-out split drawn from
the seed; everything (split, initialisation, batch order) derives from the seed. Output: `classifiers.safetensors`
(tensors only, no pickle) and `classifiers.json` (architecture, attribute names, input resolution and channels,
held-out accuracy per attribute, dataset fingerprint, sha256 of the tensor file), both written atomically.

Loading (`load_classifiers`) treats the folder as untrusted: the JSON is type- and range-checked, the tensor file
must have the recorded sha256, and every tensor name and shape is compared with the architecture before building.
Applied to generator images of a higher resolution, images are box-downsampled by the integer factor, as the
official code box-downsamples to 256x256 (a non-integer factor or a smaller generator image is refused).

A folder without `classifiers.json` that holds NVIDIA's `celebahq-classifier-XX-<name>.pkl` files is loaded as the
official classifiers instead (`sgeval.official_classifiers`: one imported TF discriminator per attribute, through
sgmodels' restricted TF-pickle reader); both sets share `BaseClassifierSet` (`sgeval.classifier_set`), the interface
the sampler calls.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgeval.atomic import atomic_write_bytes, atomic_write_text
from sgeval.classifier_set import OFFICIAL_PATTERN, TRAIN_HINT, BaseClassifierSet, ClassifierError
from sgeval.imageops import box_downsample  # the official box filter (mean over f x f blocks)
from sgeval.label_quality import accuracy_rows as quality_rows
from sgeval.label_quality import attribute_quality
from sgmodels.untrusted import read_json_file

__all__ = ["BALANCE_MODES", "AttributeClassifier", "BaseClassifierSet", "ClassifierError", "ClassifierSet",
           "DecodedImages", "LossFn", "TrainOptions", "accuracy_rows", "attribute_loss", "attribute_targets",
           "attribute_weights", "channels_at_resolution", "checked_architecture", "class_weights", "fit_logits",
           "input_geometry", "label_names_of", "load_checked_tensors", "load_classifiers", "predict_logits",
           "read_description", "save_classifiers", "save_described_tensors", "split_items", "train_classifiers",
           "weighted_attribute_loss", "weighted_class_loss"]

PathLike = str | os.PathLike[str]
FORMAT = "sgeval-classifiers/v1"
WEIGHTS_FILE = "classifiers.safetensors"
DESCRIPTION_FILE = "classifiers.json"
_PRELOAD_BYTES = 2 << 30  # datasets up to this many uint8 bytes are decoded once, not once per epoch


# ---------------------------------------------------------------------------------------------------------------
# Architecture


def channels_at_resolution(resolution: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_base // resolution, channel_max))


class AttributeClassifier(torch.nn.Module):
    """Discriminator-like CNN: images float [N, channels, resolution, resolution] in [-1, 1] -> logits [N, A]."""

    def __init__(
        self,
        resolution: int,  # input size, a power of two >= 4
        channels: int,  # image channels, 1 or 3
        num_attributes: int,  # A: one logit per attribute (>= 0: present)
        channel_base: int = 2048,  # width at resolution R is min(channel_base / R, channel_max)
        channel_max: int = 128,  # widest layer
    ) -> None:
        super().__init__()
        self.kwargs = {"resolution": resolution, "channels": channels, "num_attributes": num_attributes,
                       "channel_base": channel_base, "channel_max": channel_max}
        width = lambda r: channels_at_resolution(r, channel_base, channel_max)  # noqa: E731
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(channels, width(resolution), 1), torch.nn.LeakyReLU(0.2)]
        r = resolution
        while r > 4:
            layers += [torch.nn.Conv2d(width(r), width(r), 3, padding=1), torch.nn.LeakyReLU(0.2),
                       torch.nn.Conv2d(width(r), width(r // 2), 3, padding=1), torch.nn.LeakyReLU(0.2),
                       torch.nn.AvgPool2d(2)]
            r //= 2
        layers += [torch.nn.Conv2d(width(4), width(4), 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Flatten(),
                   torch.nn.Linear(width(4) * 16, width(4)), torch.nn.LeakyReLU(0.2),
                   torch.nn.Linear(width(4), num_attributes)]
        self.net = torch.nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits float32 [N, A] of images [N, C, R, R] (float, [-1, 1])."""
        return self.net(images)

    def stage_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The convolutional activations [N, C_r, r, r] that end each resolution r (before its pooling, and the
        final 4x4 conv), of float images [N, C, H, W] in [-1, 1]; fully convolutional, so H and W may differ from
        the training resolution (the sgeval domain distance reads these)."""
        maps, x = [], images
        layers = list(self.net)
        for index, layer in enumerate(layers):
            if isinstance(layer, torch.nn.Flatten):
                break
            x = layer(x)
            if isinstance(layers[index + 1], (torch.nn.AvgPool2d, torch.nn.Flatten)):
                maps.append(x)  # [N, C_r, r, r]
        return maps

    def embedding(self, images: torch.Tensor) -> torch.Tensor:
        """The dense layer's activations [N, min(channel_base / 4, channel_max)] before the logits, of float images
        [N, C, R, R] in [-1, 1] at the training resolution (the sgeval domain detector's features)."""
        return self.net[:-1](images)


_ARCH_LIMITS = {"resolution": (4, 1024), "channels": (1, 3), "num_attributes": (1, 4096),
                "channel_base": (1, 1 << 20), "channel_max": (1, 4096)}


def checked_architecture(kwargs: Any, where: str) -> dict[str, int]:
    """Architecture kwargs from an untrusted description, bounded before anything is allocated."""
    if not isinstance(kwargs, dict) or set(kwargs) != set(_ARCH_LIMITS):
        raise ClassifierError(f"{where}: 'architecture' must hold exactly {sorted(_ARCH_LIMITS)}")
    for name, (low, high) in _ARCH_LIMITS.items():
        value = kwargs[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ClassifierError(f"{where}: architecture {name} must be an integer in [{low}, {high}], got {value!r}")
    if kwargs["resolution"] & (kwargs["resolution"] - 1) or kwargs["channels"] == 2:
        raise ClassifierError(f"{where}: resolution must be a power of two and channels 1 or 3, got "
                              f"{kwargs['resolution']} and {kwargs['channels']}")
    return dict(kwargs)


# ---------------------------------------------------------------------------------------------------------------
# The classifier set (what the separability sampler calls)


class ClassifierSet(BaseClassifierSet):
    """Loaded classifiers: `__call__(images) -> logits`, `identity()` for cache keys, attribute names."""

    def __init__(self, model: AttributeClassifier, description: dict[str, Any], location: Path | None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.description = description
        self.location = location
        self.attributes: list[str] = list(description["attributes"])
        self.resolution = int(description["architecture"]["resolution"])
        self.channels = int(description["architecture"]["channels"])
        self.weights_sha256: str = description["weights_sha256"]

    def identity(self) -> dict[str, Any]:
        """JSON-able identity (weights sha256, attributes, input shape): part of the sampler's cache key."""
        return {"name": "classifiers", "format": FORMAT, "weights_sha256": self.weights_sha256,
                "attributes": self.attributes, "resolution": self.resolution, "channels": self.channels}

    def to(self, device: torch.device | str) -> ClassifierSet:
        """Move the network to `device` (in place); returns self."""
        self.model.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits float32 [N, A] (>= 0: attribute present) of images float [N, C, H, W] in [-1, 1] (H = W)."""
        return self.model(self.prepared(images)).float()  # [N, A]


# ---------------------------------------------------------------------------------------------------------------
# Labels


def attribute_targets(labels: np.ndarray | None, num_classes: int, label_names: Sequence[str] | None,
                      names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str], str]:
    """Binary targets bool [N, A], attribute names and the label kind ("classes" or "attributes").

    Args:
        labels: int64 [N] class indices (one-vs-rest: attribute k = "is class k") or float [N, A] attribute
            vectors with 0/1 or -1/+1 entries (present: 1 / +1).
        num_classes: A for class labels (the dataset's class count).
        label_names: the dataset's names of its classes or attributes, when it records them.
        names: names to use instead (length A), e.g. from the command line.
    """
    if labels is None:
        raise ValueError(f"the dataset has no labels (no dataset.json labels, no class sub-folders); {TRAIN_HINT} "
                         "on a labelled dataset")
    if labels.ndim == 1:
        targets = np.eye(num_classes, dtype=bool)[labels.astype(np.int64)]  # [N, A] one-vs-rest
        kind, default = "classes", [f"class{k:02d}" for k in range(num_classes)]
    else:
        values = np.unique(labels)
        if set(values.tolist()) <= {0.0, 1.0}:
            targets = labels > 0.5
        elif set(values.tolist()) <= {-1.0, 1.0}:
            targets = labels > 0
        else:
            raise ValueError(f"attribute labels must be binary (0/1 or -1/+1), found values {values[:6].tolist()}")
        kind, default = "attributes", [f"attr{k:02d}" for k in range(labels.shape[1])]
    recorded = list(label_names)[: targets.shape[1]] if label_names else None  # a subset keeps every class name
    chosen = list(names) if names else (recorded if recorded and len(recorded) == targets.shape[1] else default)
    if len(chosen) != targets.shape[1] or len(set(chosen)) != len(chosen):
        raise ValueError(f"need {targets.shape[1]} distinct {kind[:-1]} names, got {len(chosen)}: {chosen[:8]}")
    return targets, chosen, kind


def label_names_of(source: Any) -> list[str] | None:
    """The names a labelled image source records for its classes or attributes (None when it has none)."""
    names = getattr(source, "label_names", None)
    return list(names) if names else None


# ---------------------------------------------------------------------------------------------------------------
# Training


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How `train_classifiers` (and `sgeval.detector.train_detector`) train (recorded in the description)."""

    epochs: int = 10  # passes over the training split
    batch_size: int = 64  # images per optimiser step
    lr: float = 2e-3  # Adam learning rate, betas (0.9, 0.99)
    held_out: float = 0.1  # fraction of the images kept out of training to measure accuracy
    seed: int = 0  # split, initialisation and batch order
    resolution: int | None = None  # input resolution (dataset images box-downsampled); None: the dataset's
    channel_base: int = 2048  # see AttributeClassifier
    channel_max: int = 128  # see AttributeClassifier
    balance: str = "sqrt"  # loss weights of rare labels (BALANCE_MODES): none, sqrt or full inverse frequency

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not 0 < self.held_out < 1:
            raise ValueError("epochs and batch_size must be >= 1, lr > 0 and held_out in (0, 1)")
        if self.balance not in BALANCE_MODES:
            raise ValueError(f"balance must be one of {', '.join(BALANCE_MODES)}, got {self.balance!r}")


# How rare labels are weighted in the loss: a positive of an attribute with positive share p weighs
# ((1 - p) / p)^power against its negatives (binary cross-entropy), a class with share p_k weighs (1 / (K p_k))^power
# (cross-entropy); power 0 ("none"), 1/2 ("sqrt") or 1 ("full": every label counts as if balanced). The shares come
# from the training split; a label absent from it keeps weight 1. docs/metrics.md gives the measurement behind the
# default.
BALANCE_MODES = ("none", "sqrt", "full")
_BALANCE_POWER = {"none": 0.0, "sqrt": 0.5, "full": 1.0}
MAX_LABEL_WEIGHT = 100.0  # a label seen once in 10^5 images must not dominate every step


def attribute_weights(targets: np.ndarray, balance: str) -> np.ndarray:
    """float32 [A] weights of the positives of bool targets [N, A] (the training split) for `balance`."""
    positives = targets.sum(axis=0).astype(np.float64)  # [A]
    negatives = targets.shape[0] - positives
    ratio = np.divide(negatives, positives, out=np.ones_like(positives), where=(positives > 0) & (negatives > 0))
    return np.clip(ratio ** _BALANCE_POWER[balance], 1 / MAX_LABEL_WEIGHT, MAX_LABEL_WEIGHT).astype(np.float32)


def class_weights(classes: np.ndarray, num_classes: int, balance: str) -> np.ndarray:
    """float32 [K] cross-entropy weights of class indices [N] (the training split) for `balance`."""
    counts = np.bincount(classes, minlength=num_classes).astype(np.float64)  # [K]
    ratio = np.divide(classes.size, num_classes * counts, out=np.ones_like(counts), where=counts > 0)
    return np.clip(ratio ** _BALANCE_POWER[balance], 1 / MAX_LABEL_WEIGHT, MAX_LABEL_WEIGHT).astype(np.float32)


def weighted_attribute_loss(positive_weights: torch.Tensor) -> LossFn:
    """Binary cross-entropy with positives weighted per attribute [A], summed over attributes, mean over B."""

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=positive_weights.to(logits.device), reduction="none").sum(dim=1).mean()

    return loss


def weighted_class_loss(weights: torch.Tensor) -> LossFn:
    """Cross-entropy of logits [B, K] against class indices [B] with per-class weights [K] (weighted mean)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits, targets, weight=weights.to(logits.device))

    return loss


def _split(count: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) item indices, sorted; a seeded permutation, at least one item on each side."""
    if count < 2:
        raise ValueError(f"need at least 2 labelled images to train and measure classifiers, got {count}")
    order = np.random.default_rng([seed, 0]).permutation(count)
    num_held = min(count - 1, max(1, round(count * held_out)))
    return np.sort(order[num_held:]), np.sort(order[:num_held])


def split_items(count: int, max_items: int | None, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) item indices: the seeded split of all items, or of a seeded subset of `max_items` (quicker
    training on a large dataset; the classifiers and the domain detector both use it)."""
    if max_items is not None and max_items < 2:
        raise ValueError(f"max_items must be >= 2 (a training and a held-out image), got {max_items}")
    subset = np.arange(count)
    if max_items is not None and max_items < count:
        subset = np.sort(np.random.default_rng([seed, 2]).permutation(count)[:max_items])
    train, held = _split(subset.size, held_out, seed)
    return subset[train], subset[held]


class DecodedImages:
    """uint8 images of a source by index, decoded once when the dataset is small enough, else per batch."""

    def __init__(self, source: Any) -> None:
        self.source = source
        size = int(source.num_items) * int(np.prod(source.image_shape))
        self.all = source.read(range(source.num_items)) if size <= _PRELOAD_BYTES else None  # [N, C, H, W]

    def uint8(self, indices: np.ndarray) -> torch.Tensor:
        """uint8 images [B, C, H, W] as stored."""
        return self.all[torch.from_numpy(indices)] if self.all is not None else self.source.read(indices.tolist())

    def float(self, indices: np.ndarray, factor: int, device: torch.device) -> torch.Tensor:
        """Float images [B, C, H / f, W / f] in [-1, 1] (x / 127.5 - 1, the official dataset scaling)."""
        batch = self.uint8(indices)
        return box_downsample(batch.to(device).float() / 127.5 - 1, factor)


def input_geometry(image_shape: Sequence[int], resolution: int | None) -> tuple[int, int, int]:
    """(channels, dataset resolution, network resolution) for dataset images (C, H, W) and a wanted network
    resolution (None: the dataset's); ValueError unless the images are square and the network resolution is a
    power of two dividing theirs (images are box-downsampled by the integer factor)."""
    channels, native = int(image_shape[0]), int(image_shape[1])
    chosen = resolution or native
    if image_shape[1] != image_shape[2] or native % chosen or chosen & (chosen - 1):
        raise ValueError(f"network resolution {chosen} must be a power of two dividing the dataset's square "
                         f"{native}x{native} images (got {image_shape[1]}x{image_shape[2]})")
    return channels, native, chosen


def train_classifiers(data: PathLike, outdir: PathLike, options: TrainOptions = TrainOptions(), *,
                      names: Sequence[str] | None = None, device: str = "cpu", max_items: int | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Train one logit per attribute on a labelled dataset (folder or zip); save them to `outdir`.

    Returns the description written to `outdir/classifiers.json` (held-out accuracy per attribute included).

    Raises:
        ValueError: unlabelled data, non-binary attribute vectors, a resolution that does not divide the
            dataset's, fewer than 2 images.
        WriteError: `outdir` is not writable (found before training), or the final write failed (the classifiers
            were then kept in a temporary folder that the message names).
    """
    from sgeval.sources.images import open_image_source
    from sgmodels.fileio import check_writable_folder

    check_writable_folder(Path(outdir).expanduser())  # before minutes of training
    source = open_image_source(data)
    vectors = source.label_vectors()  # [N, classes or attributes], None when unlabelled
    targets, attributes, kind = attribute_targets(source.labels, 0 if vectors is None else vectors.shape[1],
                                                  label_names_of(source), names)
    channels, native, resolution = input_geometry(source.image_shape, options.resolution)
    architecture = checked_architecture({"resolution": resolution, "channels": channels,
                                          "num_attributes": len(attributes), "channel_base": options.channel_base,
                                          "channel_max": options.channel_max}, "options")
    train, held = split_items(int(source.num_items), max_items, options.held_out, options.seed)
    torch_device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = AttributeClassifier(**architecture).to(torch_device)
    images = DecodedImages(source)
    loss = weighted_attribute_loss(torch.from_numpy(attribute_weights(targets[train], options.balance)))
    fit_logits(model, images, torch.from_numpy(targets).float(), train, native // resolution, options, torch_device,
               progress, loss_fn=loss)
    logits = predict_logits(model, images, held, native // resolution, options.batch_size, torch_device)
    description = {
        "format": FORMAT, "architecture": architecture, "attributes": attributes, "label_kind": kind,
        "held_out_accuracy": attribute_quality(logits, targets[held], attributes),
        "num_train": int(train.size), "num_held_out": int(held.size),
        "dataset": {"path": str(Path(data).expanduser()), "fingerprint": source.fingerprint(),
                    "num_items": int(source.num_items), "image_shape": list(source.image_shape)},
        "training": dataclasses.asdict(options) | {"device": device, "torch": torch.__version__},
    }
    return save_classifiers(model, description, Path(outdir).expanduser())


def attribute_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits [B, A] against 0/1 targets [B, A], summed over attributes, mean over B."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(dim=1).mean()


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits [B, A], targets of the batch) -> scalar


def fit_logits(model: AttributeClassifier, images: DecodedImages, targets: torch.Tensor, train: np.ndarray, factor: int,
         options: TrainOptions, device: torch.device, progress: bool, loss_fn: LossFn = attribute_loss,
         desc: str = "classifiers") -> None:
    """Adam on `loss_fn` (default: the summed binary cross-entropy of all attributes); batch order from the seed.

    `targets` is indexed by item ([N, A] 0/1 floats, or [N] class indices for a cross-entropy `loss_fn`)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng([options.seed, 1])
    steps = math.ceil(train.size / options.batch_size)
    model.train()
    with _bar(options.epochs * steps, progress, desc) as bar:
        for _epoch in range(options.epochs):
            order = train[rng.permutation(train.size)]
            for start in range(0, order.size, options.batch_size):
                batch = order[start : start + options.batch_size]
                logits = model(images.float(batch, factor, device))  # [B, A]
                loss = loss_fn(logits, targets[torch.from_numpy(batch)].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                bar.update()
    model.eval()


@torch.no_grad()
def predict_logits(model: AttributeClassifier, images: DecodedImages, items: np.ndarray, factor: int, batch_size: int,
            device: torch.device) -> np.ndarray:
    """Logits float32 [len(items), A] of the given items (model in eval mode)."""
    out = [model(images.float(items[start : start + batch_size], factor, device)).cpu().numpy()
           for start in range(0, items.size, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def _bar(total: int, enabled: bool, desc: str = "classifiers") -> Any:
    from sgmodels.progress import progress_bar

    return progress_bar(total=total, desc=desc, unit="step", enabled=enabled)


def save_classifiers(model: AttributeClassifier, description: dict[str, Any], outdir: Path) -> dict[str, Any]:
    """Write `outdir/classifiers.safetensors`, then `outdir/classifiers.json` = `description` plus the tensor file's
    name and sha256 (both atomic, in that order: a reader never sees a description of other weights).

    Returns the description as written."""
    return save_described_tensors(model, description, outdir / WEIGHTS_FILE, outdir / DESCRIPTION_FILE)


def save_described_tensors(model: torch.nn.Module, description: dict[str, Any], weights_path: Path,
                           description_path: Path) -> dict[str, Any]:
    """The safe format of trained sgeval networks: the state dict as safetensors at `weights_path`, then the JSON
    `description` plus "weights_file" (its name) and "weights_sha256" at `description_path`; both atomic, tensors
    first, in one folder. Returns the description as written.

    Training must not be lost to a full or read-only folder: when the folder cannot take the files, both go to a
    fresh temporary folder and the `WriteError` raised says where (`sgmodels.fileio.write_or_keep`).
    """
    from safetensors.torch import save

    from sgmodels.fileio import write_or_keep

    if weights_path.parent != description_path.parent:
        raise ValueError(f"{weights_path} and {description_path} must lie in one folder")
    payload = save({name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()})
    description = description | {"weights_file": weights_path.name,
                                 "weights_sha256": hashlib.sha256(payload).hexdigest()}

    def write(folder: Path) -> dict[str, Any]:
        atomic_write_bytes(folder / weights_path.name, payload)
        atomic_write_text(folder / description_path.name, json.dumps(description, indent=1) + "\n")
        return description

    return write_or_keep(weights_path.parent, write, f"the trained {weights_path.stem}")


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _missing(what: str) -> ClassifierError:
    return ClassifierError(f"{what}; {TRAIN_HINT}, or put NVIDIA's CelebA-HQ classifier pickles "
                           f"({OFFICIAL_PATTERN}) in the folder")


def read_description(folder: PathLike) -> dict[str, Any]:
    """The checked `classifiers.json` of a classifier folder (no tensors read); ClassifierError naming what is wrong."""
    location = Path(folder).expanduser()
    if not location.is_dir():
        raise _missing(f"classifier folder {location} does not exist" if not location.exists()
                       else f"{location} is not a folder (give the folder holding {DESCRIPTION_FILE})")
    path = location / DESCRIPTION_FILE
    if not path.is_file():
        raise _missing(f"no classifiers in {location} (no {DESCRIPTION_FILE}, no {OFFICIAL_PATTERN})")
    try:
        description = read_json_file(path)
    except (OSError, ValueError) as error:
        raise ClassifierError(str(error) if isinstance(error, ValueError) else f"{path}: cannot read ({error})") \
            from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ClassifierError(f"{path}: not an sgeval classifier description (format {FORMAT!r} expected)")
    architecture = checked_architecture(description.get("architecture"), str(path))
    attributes = description.get("attributes")
    if (not isinstance(attributes, list) or not all(isinstance(name, str) for name in attributes)
            or len(attributes) != architecture["num_attributes"]):
        raise ClassifierError(f"{path}: 'attributes' must list {architecture['num_attributes']} names")
    if description.get("weights_file") != WEIGHTS_FILE or not isinstance(description.get("weights_sha256"), str):
        raise ClassifierError(f"{path}: 'weights_file' must be {WEIGHTS_FILE!r} with its 'weights_sha256'")
    return description


def load_classifiers(folder: PathLike, device: str | torch.device = "cpu") -> BaseClassifierSet:
    """Load a classifier folder written by `train_classifiers` (or `sgeval classifiers train`), or a folder of
    NVIDIA's CelebA-HQ classifier pickles (`celebahq-classifier-XX-<name>.pkl`, any subset, no `classifiers.json`;
    see `sgeval.official_classifiers`).

    Returns:
        a `ClassifierSet` or an `OfficialClassifierSet`: `__call__(images float [N, C, H, H] in [-1, 1]) -> logits
        float32 [N, A]`, `identity()`, `attributes`, `description`, `to(device)`.
    Raises:
        ClassifierError (a ValueError): missing folder or files (naming `sgeval classifiers train`), an invalid
            description, a tensor file whose sha256 differs from the recorded one, tensors that do not fit the
            described architecture; for official pickles: a refused global (naming it), an unsupported build
            function or argument (naming it), or classifiers that disagree on their input size.
    """
    location = Path(folder).expanduser()
    if _holds_official_pickles(location):
        from sgeval.official_classifiers import load_official_classifiers

        return load_official_classifiers(location, device=device)
    description = read_description(folder)
    path = location / WEIGHTS_FILE
    if not path.is_file():
        raise _missing(f"{path} is missing (its description {DESCRIPTION_FILE} is there)")
    with torch.device("meta"):  # shapes only: the description may ask for GiBs the tensor file does not hold
        model = AttributeClassifier(**description["architecture"])
    load_checked_tensors(model, path, description["weights_sha256"], DESCRIPTION_FILE, "train the classifiers again")
    return ClassifierSet(model, description, location).to(device)


def _holds_official_pickles(location: Path) -> bool:
    return location.is_dir() and not (location / DESCRIPTION_FILE).exists() and any(location.glob(OFFICIAL_PATTERN))


def load_checked_tensors(model: torch.nn.Module, path: Path, sha256: str, described_in: str, retrain: str) -> None:
    """Fill `model` from the safetensors file `path` after checking it (untrusted input).

    The file's sha256 must equal `sha256` (recorded in `described_in`), and every tensor name, shape and dtype must
    match the model's state dict, with finite values. ClassifierError otherwise; `retrain` says what to do.
    """
    from safetensors.torch import load

    payload = path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != sha256:
        raise ClassifierError(f"{path}: sha256 differs from the one recorded in {described_in}: the file was "
                              f"changed or damaged after training; {retrain}")
    try:
        tensors = load(payload)
    except Exception as error:  # safetensors raises its own error types for malformed headers
        raise ClassifierError(f"{path}: not a readable safetensors file ({error})") from None
    _check_tensors(tensors, model.state_dict(), path)
    # A model built on the meta device (its size is only checked against the file here) takes the loaded tensors.
    model.load_state_dict(tensors, assign=any(t.is_meta for t in model.state_dict().values()))


def _check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path) -> None:
    if set(tensors) != set(expected):
        unknown, absent = sorted(set(tensors) - set(expected)), sorted(set(expected) - set(tensors))
        raise ClassifierError(f"{path}: tensors do not match the described architecture (unexpected "
                              f"{unknown[:3]}, missing {absent[:3]})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise ClassifierError(f"{path}: tensor {name} is {tensor.dtype} {tuple(tensor.shape)}, the architecture "
                                  f"needs {expected[name].dtype} {tuple(expected[name].shape)}")
        if not torch.isfinite(tensor).all():
            raise ClassifierError(f"{path}: tensor {name} holds NaN or infinite values")


def accuracy_rows(description: dict[str, Any]) -> list[dict[str, Any]]:
    """Held-out rows of a checked description (`sgeval.label_quality.accuracy_rows`: accuracy, base rate, balanced
    accuracy, positives, flag), the overall row first, then one per attribute in order."""
    recorded = description.get("held_out_accuracy")
    if isinstance(recorded, dict) and "per_name" not in recorded:  # written before base rates were recorded
        recorded = {"per_name": recorded}
    return quality_rows(recorded, description["attributes"])
