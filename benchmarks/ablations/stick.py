"""The measuring stick of a scale: which sgeval protocols measure the suites, and with which networks.

* "official" (paper scale): FID `fid50k` (the TF code behind the paper's tables), StyleGAN v1's PPL protocols
  (`ppl_*_v1`: 100k pairs, face crop, NVIDIA's LPIPS VGG16) and separability `ls` with the CelebA-HQ attribute
  classifiers (loading those official TF pickles needs the interop issue's TF importer).
* "domain" (offline, CPU): the project's own detector trained on the dataset's labels. Its Fréchet distance is a
  *domain FD* (`fd_domain`), never called FID; PPL uses the LPIPS-style distance over the same network's activations
  without the face crop (Fashion-MNIST has no faces); separability uses classifiers trained on the same labels
  (`sgeval classifiers train`). Absolute values are not comparable with the paper's; trends are.

Both networks of the domain stick are trained once per output folder and reused (resumable like the runs).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.ablations.config import Row, Scale, Suite

__all__ = ["DOMAIN_DETECTOR", "DOMAIN_DISTANCE", "DOMAIN_FD", "SUITE_METRICS", "MeasuringStick", "prepare_stick"]

DOMAIN_DETECTOR = "domain"  # sgeval feature extractor name of a trained domain detector
DOMAIN_FD = "fd_domain"  # its Fréchet-distance protocol
DOMAIN_DISTANCE = "lpips-domain"  # its LPIPS-style image distance


@dataclasses.dataclass(frozen=True)
class MeasuringStick:
    """Protocol names and evaluation options for one scale (see the module docstring)."""

    kind: str  # "domain" or "official"
    fd_protocol: str  # Fréchet-distance protocol: "fd_domain" or "fid50k"
    ppl_options: str  # appended to PPL protocol names: "+nocrop+lpips-domain", or "_v1" for the paper's
    network_weights: Mapping[str, Path]  # detector_weights of sgeval (feature detectors and distances)
    classifiers: Path | None  # attribute classifiers for separability; None: `ls` is not measured

    def _name(self, base: str, num_gen: int, mix_latents: int | None = None) -> str:
        from sgeval.protocols import resolve_protocol

        return resolve_protocol(base, num_gen=num_gen, mix_latents=mix_latents).name

    def fd(self, scale: Scale, mix_latents: int | None = None) -> str:
        return self._name(self.fd_protocol, scale.num_gen, mix_latents)

    def ppl(self, row: Row, sampling: str, scale: Scale) -> str:
        """PPL in the row's space ("full" or "end" sampling)."""
        return self._name(f"ppl_{row.space}{sampling}{self.ppl_options}", scale.num_gen)

    def ls(self, scale: Scale) -> str:
        return self._name("ls", scale.num_ls)

    def protocols_for(self, row: Row, suites: Sequence[Suite], scale: Scale) -> list[str]:
        """Every protocol the given suites measure on `row` (each name once)."""
        names: list[str] = []
        for suite in suites:
            for metric in suite.metrics:
                if metric not in SUITE_METRICS:
                    raise ValueError(f"suite {suite.name!r} measures unknown metric {metric!r}; known: "
                                     f"{', '.join(sorted(SUITE_METRICS))}")
                names += SUITE_METRICS[metric](self, row, scale)
        return list(dict.fromkeys(names))

    def evaluate_kwargs(self, row: Row) -> dict[str, Any]:
        """Keyword options of `sgeval.runner.evaluate_many` for the runs of `row`."""
        kwargs: dict[str, Any] = {"detector_weights": dict(self.network_weights) or None}
        if self.classifiers is not None:
            kwargs["classifiers"] = self.classifiers
        return kwargs


# A suite's metric name -> the protocols that measure it on one row (the one dispatch of suite metrics; `ls` is
# measured only where the stick has classifiers).
SUITE_METRICS: dict[str, Callable[[MeasuringStick, Row, Scale], list[str]]] = {
    "fd": lambda stick, row, scale: [stick.fd(scale)],
    "fd_mix": lambda stick, row, scale: [stick.fd(scale, k if k > 1 else None) for k in scale.mixed_latents],
    "ppl_full": lambda stick, row, scale: [stick.ppl(row, "full", scale)],
    "ppl_end": lambda stick, row, scale: [stick.ppl(row, "end", scale)],
    "ls": lambda stick, row, scale: [stick.ls(scale)] if stick.classifiers is not None else [],
}


def _sgeval(*args: str) -> None:
    """Run an sgeval command of this interpreter's installation (its own errors end the suite with its message)."""
    command = [sys.executable, "-m", "sgeval", *args]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise SystemExit(f"`sgeval {' '.join(args)}` failed (exit {result.returncode}); see its message above")


def prepare_stick(scale: Scale, data: Path, out: Path, seed: int = 0,
                  official_weights: Mapping[str, Path] | None = None,
                  official_classifiers: Path | None = None) -> MeasuringStick:
    """The stick of `scale`; for the domain stick, train the detector and the classifiers once (skipped if done)."""
    if scale.stick == "official":
        return MeasuringStick("official", "fid50k", "_v1", dict(official_weights or {}), official_classifiers)
    detector = out / "stick" / "detector"
    if not (detector / "detector.json").is_file():
        _sgeval("detector", "train", "--data", str(data), "--outdir", str(detector), "--seed", str(seed),
                *scale.detector_options)
    classifiers = out / "stick" / "classifiers"
    if not (classifiers / "classifiers.json").is_file():
        _sgeval("classifiers", "train", "--data", str(data), "--outdir", str(classifiers), "--seed", str(seed),
                *scale.classifier_options)
    weights = {DOMAIN_DETECTOR: detector, DOMAIN_DISTANCE: detector}
    return MeasuringStick("domain", DOMAIN_FD, f"+nocrop+{DOMAIN_DISTANCE}", weights, classifiers)
