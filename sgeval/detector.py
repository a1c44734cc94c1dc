"""The domain detector: a compact CNN the project trains on a labelled dataset, the offline measuring stick.

Inception and VGG16 are large downloads trained on ImageNet; on a small domain (Fashion-MNIST, 32x32 greyscale) a
network trained on the dataset's own labels is a cheaper and more relevant feature space. Results computed with it
are *domain* distances: `fd_domain` (the FID formula), `kd_domain`, `pr_domain`, and the `lpips-domain` image
distance; never FID or LPIPS, and comparable only between results that record the same detector sha256.

Network: the attribute classifier's trunk (`sgeval.classifiers.AttributeClassifier`, one module for both), with
detector defaults channel_base 1024, channel_max 256: at 32x32 the widths are 32, 64, 128, 256 over four stages
(two 3x3 convs and a 2x2 average pooling each, then a 3x3 conv at 4x4), a dense layer of D = min(channel_base / 4,
channel_max) = 256 units (the features) and a linear head with one logit per class or attribute. Its dense layer
follows a 4x4 flatten rather than a global average pooling: features are defined at the training resolution only.

Training (`train_detector`): class labels (dataset.json integers or class folders) with cross-entropy, attribute
vectors (0/1 or -1/+1) with binary cross-entropy; Adam; a held-out split, initialisation and batch order all from
the seed, with torch's deterministic algorithms on; a tqdm bar. The held-out accuracy (overall and per class or
attribute) goes into the description.

Files (`<outdir>/detector.safetensors` + `<outdir>/detector.json`, both atomic, tensors first): the state dict as
safetensors (no pickle) and a JSON description (format, architecture kwargs, class/attribute names, label kind,
input resolution and channels, feature dimension, held-out accuracy, dataset fingerprint, training settings, the
tensor file's sha256). A renamed pair works as long as the stems agree (`fm32.safetensors` + `fm32.json`).

Loading (`load_detector`) treats both files as untrusted: the JSON is type- and range-checked before anything is
allocated, the tensor file must have the recorded sha256, and every tensor name, shape and dtype must match the
described architecture (and be finite) before the network is built.

Input policy (features and distance alike):
* channels: a 1-channel detector takes greyscale only (RGB is refused, never converted to grey); a 3-channel detector
  gets greyscale repeated to RGB (by `sgeval.extract` for features, by `ImageDistance` for the distance);
* scaling: uint8 x -> x / 127.5 - 1 (the dataset scaling of training); float images for the distance are in [-1, 1];
* size: square images of the training resolution R, or of an integer multiple k R, which are box-downsampled by k
  (the official box filter); any other size is refused for features. The distance, fully convolutional, runs other
  sizes (at least 16x16, e.g. PPL's face crop) as they are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgeval.classifiers import (
    AttributeClassifier,
    ClassifierError,
    DecodedImages,
    LossFn,
    TrainOptions,
    attribute_targets,
    attribute_weights,
    channels_at_resolution,
    checked_architecture,
    class_weights,
    fit_logits,
    input_geometry,
    label_names_of,
    load_checked_tensors,
    predict_logits,
    save_described_tensors,
    split_items,
    weighted_attribute_loss,
    weighted_class_loss,
)
from sgeval.imageops import box_downsample  # the official box filter (mean over f x f blocks)
from sgeval.label_quality import accuracy_rows, attribute_quality, class_quality
from sgeval.stick_checks import sanity_verdict
from sgeval.weights import WeightsError
from sgmodels.untrusted import read_json_file

__all__ = ["DEFAULT_OPTIONS", "DESCRIPTION_FILE", "FORMAT", "RESIZE_POLICY", "WEIGHTS_FILE", "DetectorError",
           "DetectorSanityWarning", "DomainDetector", "accuracy_table", "detector_files", "feature_dim",
           "load_detector", "read_detector_description", "sanity_caveat", "sanity_status", "train_detector"]

PathLike = str | os.PathLike[str]
FORMAT = "sgeval-domain-detector/v1"
WEIGHTS_FILE = "detector.safetensors"
DESCRIPTION_FILE = "detector.json"
RESIZE_POLICY = "box-integer/v1"  # the training resolution, or an integer multiple box-downsampled to it
TRAIN_HINT = "train one with `sgeval detector train --data LABELLED.zip --outdir DIR`"
# D = 256; minutes on a CPU at 32x32. lr below the classifiers' 2e-3: at 256 channels that rate diverges.
DEFAULT_OPTIONS = TrainOptions(epochs=3, lr=5e-4, channel_base=1024, channel_max=256)
SANITY_MAX_IMAGES = 2000  # held-out images of the self-check (FD of 7 conditions: seconds on a CPU)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DetectorError(WeightsError):
    """A detector folder or file is missing, damaged, or does not fit the images (a click error in the CLI)."""


# ---------------------------------------------------------------------------------------------------------------
# The loaded detector


class DomainDetector(torch.nn.Module):
    """A trained detector: features [N, D] and stage activations of images; frozen, in eval mode."""

    def __init__(
        self,
        model: AttributeClassifier,  # the trained network
        description: dict[str, Any],  # its checked detector.json
        weights_path: Path,  # the tensor file it was loaded from
    ) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.description = description
        self.weights_path = weights_path
        self.weights_sha256: str = description["weights_sha256"]
        architecture = description["architecture"]
        self.resolution = int(architecture["resolution"])  # R
        self.channels = int(architecture["channels"])  # 1 or 3
        self.feature_dim = feature_dim(architecture)  # D
        self.names: list[str] = list(description["names"])

    def input_factor(self, height: int, width: int) -> int:
        """Box-downsampling factor k for images [.., height, width] = k R; ValueError for any other size."""
        if height != width or height < self.resolution or height % self.resolution:
            raise ValueError(f"domain detector {self.weights_path} takes square {self.resolution}x{self.resolution} "
                             f"images or integer multiples of that size (box-downsampled); got {height}x{width}. "
                             f"{TRAIN_HINT.capitalize()} at the resolution of these images")
        return height // self.resolution

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """float [N, C, kR, kR] in [-1, 1] -> features float32 [N, D] (the dense layer before the head)."""
        x = box_downsample(images, self.input_factor(int(images.shape[2]), int(images.shape[3])))  # [N, C, R, R]
        return self.model.embedding(x)

    def stage_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """float [N, C, H, W] in [-1, 1] -> the activations that end each stage [N, C_s, H_s, W_s] (differentiable).

        Integer multiples of R are box-downsampled to R first; other sizes run as they are (fully convolutional).
        """
        height, width = int(images.shape[2]), int(images.shape[3])
        factor = height // self.resolution if height == width and height % self.resolution == 0 else 1
        return self.model.stage_maps(box_downsample(images, factor))

    def caveats(self) -> list[str]:
        """[the warning of a failed self-check] or [] (passed, or trained before the check existed)."""
        caveat = sanity_caveat(self.description, self.weights_path)
        return [caveat] if caveat else []

    def summary(self) -> dict[str, Any]:
        """JSON-able record for results: format, sha256, names, input, held-out accuracy (with base rate and
        balanced accuracy), flagged names, the self-check's verdict (with a "caveat" when it failed), dataset
        fingerprint."""
        dataset = self.description.get("dataset")
        overall = accuracy_table(self.description)[0]
        state, failed = sanity_status(self.description)
        recorded = self.description.get("held_out_accuracy")
        flagged = recorded.get("flagged") if isinstance(recorded, dict) else None
        summary = {"format": FORMAT, "weights_sha256": self.weights_sha256,
                   "label_kind": self.description["label_kind"], "names": self.names, "resolution": self.resolution,
                   "channels": self.channels, "feature_dim": self.feature_dim,
                   **{f"held_out_{key}": None if math.isnan(overall[key]) else overall[key]  # JSON: null
                      for key in ("accuracy", "base_rate", "balanced_accuracy")},
                   "flagged": flagged if isinstance(flagged, dict) else {},
                   "sanity": {"state": state, "failed": failed},
                   "dataset_fingerprint": dataset.get("fingerprint") if isinstance(dataset, dict) else None}
        caveat = sanity_caveat(self.description, self.weights_path)
        return summary | ({"caveat": caveat} if caveat else {})


def feature_dim(architecture: dict[str, int]) -> int:
    """D of a detector architecture: the width of its dense layer, min(channel_base / 4, channel_max)."""
    return channels_at_resolution(4, architecture["channel_base"], architecture["channel_max"])


# ---------------------------------------------------------------------------------------------------------------
# Training


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """torch's deterministic algorithms (warn where an op has none), restoring the caller's setting after."""
    saved = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


def _loss(classes: np.ndarray | None, targets: np.ndarray, options: TrainOptions) -> LossFn:
    """The training loss with the rare-label weights of `options.balance` from the training split: cross-entropy
    for class indices [N_train], binary cross-entropy for attribute targets bool [N_train, A]."""
    if classes is not None:
        return weighted_class_loss(torch.from_numpy(class_weights(classes, targets.shape[1], options.balance)))
    return weighted_attribute_loss(torch.from_numpy(attribute_weights(targets, options.balance)))


def _held_out_quality(logits: np.ndarray, classes: np.ndarray | None, targets: np.ndarray,
                      names: list[str]) -> dict[str, Any]:
    """Accuracy, base rate and balanced accuracy (overall and per name, `sgeval.label_quality`) of held-out logits
    [M, A]: top-1 against class indices [M], or decisions (logit >= 0) against attribute targets bool [M, A]."""
    if classes is not None:
        return class_quality(logits, classes, names)
    return attribute_quality(logits, targets, names)


def _sanity(model: AttributeClassifier, images: DecodedImages, held: np.ndarray, factor: int, quality: dict[str, Any],
            options: TrainOptions, device: torch.device) -> dict[str, Any]:
    """`sgeval.stick_checks.sanity_verdict` on (at most SANITY_MAX_IMAGES of) the held-out images."""
    chosen = held[:SANITY_MAX_IMAGES]
    raw = images.uint8(chosen)  # [n, C, kR, kR] as stored: degraded at the resolution that is evaluated

    @torch.no_grad()
    def features(batch: torch.Tensor) -> np.ndarray:
        rows = [model.embedding(box_downsample(part.to(device).float() / 127.5 - 1, factor)).cpu()
                for part in batch.split(options.batch_size)]
        return torch.cat(rows).numpy().astype(np.float64)

    return sanity_verdict(raw, features, quality["overall"]["balanced_accuracy"], options.seed)


def train_detector(
    data: PathLike,  # labelled image folder or dataset zip (dataset.json labels or class folders)
    outdir: PathLike,  # where detector.safetensors and detector.json go
    options: TrainOptions = DEFAULT_OPTIONS,  # epochs, batch, lr, held-out fraction, seed, resolution, widths
    *,
    max_items: int | None = None,  # train and hold out within a seeded random subset of this many items
    device: str = "cpu",  # torch device of training
    progress: bool = True,  # tqdm bar on stderr
    names: Sequence[str] | None = None,  # class or attribute names instead of the dataset's
) -> dict[str, Any]:
    """Train a domain detector on the labels of `data`; returns the description written to outdir/detector.json.

    Deterministic from `options.seed` on a given machine and torch build (same split, initialisation, batch order
    and deterministic kernels): two runs give the same tensor file, hence the same sha256.

    Raises:
        ValueError: unlabelled data, non-binary attribute vectors, fewer than 2 items, a resolution that is not a
            power of two dividing the dataset's square images.
        WriteError: `outdir` is not writable (found before training), or the final write failed (the detector was
            then kept in a temporary folder that the message names).
    """
    from sgeval.sources.images import open_image_source
    from sgmodels.fileio import check_writable_folder

    check_writable_folder(Path(outdir).expanduser())  # before minutes of training
    source = open_image_source(data)
    labels = source.labels  # int64 [N] classes, float [N, A] attributes, or None (refused by attribute_targets)
    vectors = source.label_vectors()  # [N, classes or attributes], None when unlabelled
    targets, names, kind = attribute_targets(labels, 0 if vectors is None else vectors.shape[1], label_names_of(source),
                                             names)
    channels, native, resolution = input_geometry(source.image_shape, options.resolution)
    architecture = checked_architecture({"resolution": resolution, "channels": channels,
                                          "num_attributes": len(names), "channel_base": options.channel_base,
                                          "channel_max": options.channel_max}, "options")
    train, held = split_items(int(source.num_items), max_items, options.held_out, options.seed)
    classes = labels.astype(np.int64) if kind == "classes" and labels is not None else None  # [N]
    fit_targets = torch.from_numpy(classes) if classes is not None else torch.from_numpy(targets).float()
    torch_device = torch.device(device)
    images = DecodedImages(source)
    factor = native // resolution
    with _deterministic():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            model = AttributeClassifier(**architecture).to(torch_device)
        loss = _loss(None if classes is None else classes[train], targets[train], options)
        fit_logits(model, images, fit_targets, train, factor, options, torch_device, progress, loss_fn=loss,
                   desc="detector")
        logits = predict_logits(model, images, held, factor, options.batch_size, torch_device)
        quality = _held_out_quality(logits, None if classes is None else classes[held], targets[held], names)
        sanity = _sanity(model, images, held, factor, quality, options, torch_device)
    description = {
        "format": FORMAT, "architecture": architecture, "names": names, "label_kind": kind,
        "loss": "cross_entropy" if classes is not None else "binary_cross_entropy",
        "input": {"resolution": resolution, "channels": channels, "scaling": "x / 127.5 - 1",
                  "resize": RESIZE_POLICY},
        "feature_dim": feature_dim(architecture), "feature_layer": "dense layer before the head (leaky ReLU 0.2)",
        "held_out_accuracy": quality, "sanity": sanity, "num_train": int(train.size), "num_held_out": int(held.size),
        "dataset": {"path": str(Path(data).expanduser()), "fingerprint": source.fingerprint(),
                    "num_items": int(source.num_items), "image_shape": list(source.image_shape)},
        "training": dataclasses.asdict(options) | {"max_items": max_items, "device": device,
                                                   "torch": torch.__version__},
    }
    target = Path(outdir).expanduser()
    return save_described_tensors(model.cpu(), description, target / WEIGHTS_FILE, target / DESCRIPTION_FILE)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def detector_files(path: PathLike) -> tuple[Path, Path]:
    """(tensor file, description file) of a detector given as its folder or its tensor file."""
    location = Path(path).expanduser()
    if location.is_dir():
        return location / WEIGHTS_FILE, location / DESCRIPTION_FILE
    return location, location.with_suffix(".json")


def _require(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise DetectorError(f"{path}: {message}; not a valid sgeval domain detector description")


def read_detector_description(path: PathLike) -> dict[str, Any]:
    """The checked description of a detector (folder or tensor file); no tensor is read.

    Raises:
        DetectorError: missing file, invalid JSON, another format, out-of-range architecture, wrong name count.
    """

    weights, described = detector_files(path)
    if not described.is_file():
        raise DetectorError(f"no detector description {described} (for {weights}); {TRAIN_HINT}")
    try:
        description = read_json_file(described)
    except ValueError as error:
        raise DetectorError(str(error)) from None
    except OSError as error:
        raise DetectorError(f"{described}: cannot read ({error})") from None
    _require(isinstance(description, dict) and description.get("format") == FORMAT, described,
             f"format {FORMAT!r} expected")
    try:
        architecture = checked_architecture(description.get("architecture"), str(described))
    except ClassifierError as error:
        raise DetectorError(str(error)) from None
    names = description.get("names")
    _require(isinstance(names, list) and all(isinstance(name, str) for name in names)
             and len(names) == architecture["num_attributes"] and len(set(names)) == len(names), described,
             f"'names' must list {architecture['num_attributes']} distinct names")
    _require(description.get("label_kind") in ("classes", "attributes"), described,
             "'label_kind' must be 'classes' or 'attributes'")
    _require(isinstance(description.get("weights_sha256"), str) and bool(_SHA256.match(description["weights_sha256"])),
             described, "'weights_sha256' must be a sha256 hex digest")
    return description


def load_detector(path: PathLike, device: str | torch.device = "cpu") -> DomainDetector:
    """Load a detector written by `train_detector` from its folder or tensor file (the .json beside it).

    Raises:
        DetectorError: a missing or invalid description (see `read_detector_description`), a missing tensor file,
            a tensor file whose sha256 is not the recorded one, or tensors that do not fit the architecture.
    """
    description = read_detector_description(path)
    weights, described = detector_files(path)
    if not weights.is_file():
        raise DetectorError(f"{weights} is missing (its description {described} is there); {TRAIN_HINT}")
    with torch.device("meta"):  # shapes only: the description may ask for GiBs the tensor file does not hold
        model = AttributeClassifier(**description["architecture"])
    try:
        load_checked_tensors(model, weights, description["weights_sha256"], described.name,
                             "train the detector again")
    except ClassifierError as error:
        raise DetectorError(str(error)) from None
    caveat = sanity_caveat(description, weights)
    if caveat:
        warnings.warn(caveat, DetectorSanityWarning, stacklevel=2)
    return DomainDetector(model, description, weights).to(device)


def accuracy_table(description: dict[str, Any]) -> list[dict[str, Any]]:
    """Held-out rows of a checked description (`sgeval.label_quality.accuracy_rows`: name, accuracy, base rate,
    balanced accuracy, positives, flag), the overall row first; NaN where nothing was measured (or the untrusted
    file holds something else than a number there)."""
    return accuracy_rows(description.get("held_out_accuracy"), description["names"])


def sanity_status(description: dict[str, Any]) -> tuple[str, list[str]]:
    """("passed" | "failed" | "unchecked", the names of the failed checks) of a description's recorded self-check
    (`sgeval.stick_checks`); detectors trained before the check existed are "unchecked"."""
    sanity = description.get("sanity")
    if not isinstance(sanity, dict) or not isinstance(sanity.get("passed"), bool):
        return "unchecked", []
    failed = sanity.get("failed")
    names = [str(name) for name in failed] if isinstance(failed, list) else []
    return ("passed" if sanity["passed"] else "failed"), names


class DetectorSanityWarning(UserWarning):
    """The domain detector failed its own self-check: numbers measured with it may not mean what they say."""


def sanity_caveat(description: dict[str, Any], where: Path | str) -> str | None:
    """The warning text for a detector that failed its self-check (None when it passed or was never checked)."""
    state, failed = sanity_status(description)
    if state != "failed":
        return None
    return (f"domain detector {where} failed its self-check ({'; '.join(failed) or 'see detector.json'}): domain "
            "FD/KD/PR and lpips-domain PPL measured with it may not track image quality; train a better one "
            "(more epochs or data, `sgeval detector train`) and check it with `sgeval detector info`")
