"""NVIDIA's CelebA-HQ attribute classifiers for linear separability, read from their TF pickles without TensorFlow.

The official metric (docs/metrics.md section 10) labels generated images with 40 separate binary classifiers,
`celebahq-classifier-00-male.pkl` ... `celebahq-classifier-39-wearing-necktie.pkl`, each one pickled TF `Network`
with one logit per image. A folder holding any subset of these files (and no `classifiers.json`) is loaded here as
a classifier set ordered by the files' index: attribute k of the logits is the k-th file present.

Reading: each file goes through sgmodels' TF-pickle importer (`sgeval.sources.sgmodels_adapter.load_tf_classifier`),
whose restricted unpickler allows only numpy arrays and a stub of the dnnlib `Network`; the pickled
`build_module_src` is never executed. The build function (StyleGAN's `D_basic`, or another discriminator sgmodels
reproduces) and its static_kwargs decide the rebuilt sgmodels discriminator; anything else is an error naming what
was found. A classifier with labels (label_size > 0) is refused: the official code passes no labels.

Calling, as the official code does: generator images (float, [-1, 1], NCHW) are box-downsampled by the integer factor
to the classifiers' resolution (256 for the official files), kept float, and each classifier is run on minibatches
of `OFFICIAL_MINIBATCH` = 4 consecutive images (the official `minibatch_per_gpu`) with no labels. The minibatch size
matters only for a classifier with a minibatch-stddev layer (D_basic's default), whose logits depend on the other
images of the group; classifiers without one run on the whole batch. The logits are what the reduction reads as
softmax([l, -l]) (class 0 iff l > 0, confidence sigmoid(2|l|)).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import torch

from sgeval.classifier_set import OFFICIAL_PATTERN, TRAIN_HINT, BaseClassifierSet, ClassifierError

__all__ = ["OFFICIAL_FORMAT", "OFFICIAL_MINIBATCH", "OfficialClassifierSet", "OfficialFile",
           "load_official_classifiers", "official_files"]

OFFICIAL_FORMAT = "nvidia-celebahq-classifiers"
OFFICIAL_MINIBATCH = 4  # images per classifier call in the official metric (minibatch_per_gpu)
_FILE_NAME = re.compile(r"celebahq-classifier-(\d{2})-([A-Za-z0-9-]+)\.pkl")


@dataclasses.dataclass(frozen=True)
class OfficialFile:
    """One official classifier file: its index in the official list, the attribute named by the file, its sha256."""

    index: int  # 0..39, the XX of the file name
    attribute: str  # e.g. "male", "wearing-necktie"
    path: Path
    sha256: str  # of the whole file


def official_files(folder: Path) -> list[OfficialFile]:
    """The `celebahq-classifier-XX-<name>.pkl` files of `folder`, ordered by XX, each hashed.

    Raises:
        ClassifierError: a file matching the pattern loosely but not `celebahq-classifier-XX-<name>.pkl`, or two
            files with the same index.
    """
    found: dict[int, OfficialFile] = {}
    for path in sorted(folder.glob(OFFICIAL_PATTERN)):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise ClassifierError(f"{path}: not named like an official classifier (celebahq-classifier-XX-<name>.pkl, "
                                  "XX = two digits)")
        index = int(match.group(1))
        if index in found:
            raise ClassifierError(f"{folder}: two classifiers with index {index:02d} ({found[index].path.name}, "
                                  f"{path.name}); keep one")
        found[index] = OfficialFile(index, match.group(2), path, hashlib.sha256(path.read_bytes()).hexdigest())
    return [found[index] for index in sorted(found)]


class OfficialClassifierSet(BaseClassifierSet):
    """Official classifiers, one network per attribute: images float [N, C, H, H] in [-1, 1] -> logits [N, A]."""

    def __init__(self, networks: list[torch.nn.Module], files: list[OfficialFile], facts: list[dict[str, Any]],
                 location: Path) -> None:
        self.networks = [network.eval().requires_grad_(False) for network in networks]
        self.files = files
        self.location = location
        self.grouped = [bool(fact["minibatch_dependent"]) for fact in facts]  # run on official minibatches of 4
        self.resolution, self.channels = int(facts[0]["resolution"]), int(facts[0]["channels"])
        self.attributes = [file.attribute for file in files]
        self.weights_sha256 = _combined_sha256(files)
        self.description = {
            "format": OFFICIAL_FORMAT, "attributes": self.attributes, "label_kind": "attributes",
            "architecture": {"resolution": self.resolution, "channels": self.channels,
                             "num_attributes": len(files)},
            "official_indices": [file.index for file in files],
            "files": {file.path.name: file.sha256 for file in files},
            "networks": {file.path.name: fact["source"] for file, fact in zip(files, facts, strict=True)},
            "weights_sha256": self.weights_sha256,
        }

    def identity(self) -> dict[str, Any]:
        """JSON-able identity: the sha256 of every pickle (and their combination), attributes, input shape."""
        return {"name": "classifiers", "format": OFFICIAL_FORMAT, "weights_sha256": self.weights_sha256,
                "files": self.description["files"], "official_indices": self.description["official_indices"],
                "attributes": self.attributes, "resolution": self.resolution, "channels": self.channels,
                "minibatch": OFFICIAL_MINIBATCH}

    def to(self, device: torch.device | str) -> OfficialClassifierSet:
        """Move every network to `device` (in place); returns self."""
        for network in self.networks:
            network.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits float32 [N, A] (>= 0: attribute present) of images float [N, C, H, H] in [-1, 1]."""
        x = self.prepared(images)  # [N, C, R, R]
        logits = [_run(network, x, grouped) for network, grouped in zip(self.networks, self.grouped, strict=True)]
        return torch.cat(logits, dim=1)  # [N, A]


def _run(network: torch.nn.Module, x: torch.Tensor, grouped: bool) -> torch.Tensor:
    """One classifier's logits [N, 1], without labels; on minibatches of 4 when its logits depend on the batch."""
    batches = x.split(OFFICIAL_MINIBATCH) if grouped else (x,)
    return torch.cat([network(batch, None).float() for batch in batches])  # [N, 1]


def _combined_sha256(files: list[OfficialFile]) -> str:
    """One digest of the whole set: sha256 of the lines '<file name> <sha256>' in index order."""
    lines = "".join(f"{file.path.name} {file.sha256}\n" for file in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def load_official_classifiers(folder: Path, device: str | torch.device = "cpu") -> OfficialClassifierSet:
    """The official classifier pickles of `folder` (any subset of the 40, ordered by index) as one set.

    Raises:
        ClassifierError (a ValueError): a refused pickle (the message names the global; nothing from the file ran),
            a build function or argument sgmodels cannot import (named), a classifier with labels or more than one
            logit, classifiers that disagree on their input size, or badly named files.
    """
    from sgeval.sources.sgmodels_adapter import load_tf_classifier

    files = official_files(folder)
    if not files:
        raise ClassifierError(f"no official classifier pickles ({OFFICIAL_PATTERN}) in {folder}; {TRAIN_HINT}")
    networks: list[torch.nn.Module] = []
    facts: list[dict[str, Any]] = []
    for file in files:
        try:
            network, fact = load_tf_classifier(file.path, device=device)
        except (ValueError, OSError) as error:
            raise ClassifierError(f"{error} (reading the official classifier {file.path.name}; to use classifiers "
                                  f"of your own, {TRAIN_HINT})") from error
        _check_fact(file, fact, facts[0] if facts else None)
        networks.append(network)
        facts.append(fact)
    return OfficialClassifierSet(networks, files, facts, folder)


def _check_fact(file: OfficialFile, fact: dict[str, Any], first: dict[str, Any] | None) -> None:
    """One unconditional logit per image, and the same input geometry as the first classifier of the set."""
    if fact["c_dim"]:
        raise ClassifierError(f"{file.path}: a classifier with {fact['c_dim']} labels (label_size); the official "
                              "attribute classifiers take none, and linear separability passes none")
    if first is not None and (fact["resolution"], fact["channels"]) != (first["resolution"], first["channels"]):
        raise ClassifierError(f"{file.path}: takes {fact['resolution']}x{fact['resolution']}x{fact['channels']} "
                              f"images, the other classifiers {first['resolution']}x{first['resolution']}x"
                              f"{first['channels']}; one set needs one input size")
