"""The demo's resumable steps: train (or resume, or skip), measure every snapshot, check class coverage.

Rerunning the demo continues where it stopped: a run whose newest snapshot has reached the budget is not trained
again and an unfinished one resumes (`sgmodels train --resume latest`, bit-exact); a (snapshot, protocol) pair
already recorded in the run directory's `metric-<protocol>.jsonl` is not measured again (benchmarks/ablations/run.py
`evaluate_run`); the measuring stick is trained once (benchmarks/ablations/stick.py `prepare_stick`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.ablations.config import Row
from benchmarks.ablations.stick import MeasuringStick
from benchmarks.demo.budget import Budget

if TYPE_CHECKING:
    from sgmodels.training.options import TrainOptions

__all__ = ["CONFIG", "Coverage", "Timings", "coverage_of", "measure_snapshots", "snapshots_of", "train_demo",
           "train_options", "training_speed"]

CONFIG = "cpu32"  # sgmodels preset config of both architectures
# StyleGAN v1's cpu presets grow from 8x8 with 20 kimg of training and 20 of fade-in per resolution: 32x32 from 80 kimg
V1_FULL_RESOLUTION_KIMG = 80.0


def log(message: str) -> None:
    """A progress line on stderr (the training's own lines go to stdout)."""
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Timings:
    """Wall time of each step in this invocation; a step that found its work done earlier is marked so."""

    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    skipped: set[str] = dataclasses.field(default_factory=set)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        log(f"{name} ...")
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        log(f"{name}: {self.seconds[name]:.0f} s")

    def mark_done_earlier(self, name: str) -> None:
        self.skipped.add(name)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def train_options(data: Path, runs: Path, arch: str, budget: Budget, seed: int) -> TrainOptions:
    """The options of `sgmodels train --resume latest` for the demo run.

    A StyleGAN v1 budget too short for the preset's progressive growing to reach 32x32 would end below it: such
    runs train at full resolution from the start, like the ablation suites' short runs.
    """
    from sgmodels.training.options import TrainOptions

    overrides = dict(budget.train_overrides)
    if arch == "stylegan" and budget.kimg < V1_FULL_RESOLUTION_KIMG:
        overrides.setdefault("progressive", False)
    return TrainOptions(data=str(data), outdir=str(runs), arch=arch, config=CONFIG, kimg=budget.kimg, seed=seed,
                        overrides=overrides, resume="latest", tick_kimg=budget.tick_kimg, snap=budget.snap)


def train_command(options: TrainOptions) -> str:
    """The `sgmodels train` command line equivalent to `options` (for the report)."""
    parts = ["sgmodels train", f"--arch {options.arch}", f"--config {options.config}", f"--data {options.data}",
             f"--outdir {options.outdir}", f"--kimg {options.kimg:g}", f"--tick-kimg {options.tick_kimg:g}",
             f"--snap {options.snap}", f"--seed {options.seed}"]
    parts += [f"--{key.replace('_', '-')} {value}" if not isinstance(value, bool) else
              f"--{'' if value else 'no-'}{key.replace('_', '-')}" for key, value in options.overrides.items()]
    return " ".join(parts + ["--resume latest"])


def train_demo(options: TrainOptions, kimg: float) -> tuple[Path, bool]:
    """Train, resume or skip the demo run; returns (its run directory, whether this call trained)."""
    from sgmodels.training.loop import train
    from sgmodels.training.options import plan_run, snapshot_kimg

    plan = plan_run(options)
    reached = None if plan.snapshot is None else snapshot_kimg(plan.snapshot)
    if plan.run_dir is not None and reached is not None and reached >= kimg - 1e-9:
        log(f"training: done earlier ({plan.snapshot})")
        return plan.run_dir, False
    if plan.snapshot is not None:
        log(f"training: resuming from {plan.snapshot}")
    return train(options), True


def snapshots_of(run_dir: Path) -> list[Path]:
    """The run's snapshots in kimg order."""
    from sgmodels.training.options import snapshot_kimg

    found = [(kimg, path) for path in run_dir.glob("network-snapshot-*.safetensors")
             if (kimg := snapshot_kimg(path)) is not None]
    return [path for _kimg, path in sorted(found)]


def measure_snapshots(snapshots: list[Path], protocols: list[str], final_only: list[str], stick: MeasuringStick,
                      data: Path, arch: str) -> float:
    """Evaluate the protocols missing for each snapshot (and `final_only` on the last one); returns seconds spent."""
    from benchmarks.ablations.run import evaluate_run

    row = Row("demo", "demo", arch, {}, "w")  # evaluate_run takes the stick's options for a row
    spent = 0.0
    for index, snapshot in enumerate(snapshots, start=1):
        wanted = protocols + (final_only if index == len(snapshots) else [])
        seconds = evaluate_run(row, snapshot, wanted, stick, data, progress=False)
        spent += seconds
        done = "recorded earlier" if seconds == 0 else f"{seconds:.0f} s"
        log(f"metrics {index}/{len(snapshots)} {snapshot.name}: {done}")
    return spent


@dataclasses.dataclass(frozen=True)
class Coverage:
    """Class or attribute coverage of a labelled dataset and of each snapshot (benchmarks/class_coverage.py).

    Class labels: nearest-real class fractions and their normalised entropy. Attribute labels (they need the
    classifiers): attribute frequencies as the classifiers decide them, on the reals and on the fakes; `entropy` is
    NaN there (a set of attribute frequencies is no histogram) and `summaries` holds the frequency comparison.
    """

    data_histogram: np.ndarray  # class fractions of the reals compared with; attributes: classifier frequencies
    histograms: dict[str, np.ndarray]  # snapshot file name -> class fractions (attribute frequencies) of its fakes
    entropy: dict[str, float]  # "data" and snapshot file name -> normalised entropy (1 = all classes equally)
    kind: str = "classes"  # the dataset's labels: "classes" or "attributes"
    names: list[str] | None = None  # class or attribute names (the classifiers' when given)
    base_rate: np.ndarray | None = None  # attributes: fraction of the reals whose label has each
    summaries: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # attributes: snapshot -> summary
    predicted: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # classes with classifiers: "data"
    # and snapshot file name -> classifier-predicted class fractions (argmax of the one-vs-rest logits)


def coverage_of(data: Path, snapshots: list[Path], num_gen: int, seed: int = 0,
                classifiers: Path | None = None) -> Coverage:
    """Coverage of `num_gen` fakes per snapshot (seconds per snapshot on a CPU): the nearest-real class histogram
    for class labels (and, with `classifiers`, the classifier-predicted one); attribute frequencies against the
    reals for attribute labels, which need `classifiers` (a folder of `sgeval classifiers train`)."""
    from benchmarks import class_coverage as cc
    from sgmodels.interfaces import as_generator
    from sgmodels.snapshot import load_generator

    labelled = cc.load_labelled(str(data), 10_000, seed)
    loaded = None
    if classifiers is not None:
        from sgeval.classifiers import load_classifiers

        loaded = load_classifiers(classifiers)
    if labelled.kind == "attributes":
        if loaded is None:
            raise ValueError(f"{data} has attribute labels: its coverage check needs the classifiers trained on it")
        real = cc.real_frequencies(loaded, labelled)
        found = {path.name: cc.attribute_frequencies(as_generator(load_generator(path)), loaded, labelled, num_gen,
                                                     seed, real)
                 for path in snapshots}
        return Coverage(real[1], {name: freq.fake for name, freq in found.items()},
                        {"data": math.nan} | {name: math.nan for name in found}, kind="attributes",
                        names=list(loaded.attributes), base_rate=real[0],
                        summaries={name: freq.summary() for name, freq in found.items()})
    reals, labels = cc.nearest_real_inputs(labelled.images), labelled.targets.argmax(axis=1)
    data_histogram = np.bincount(labels) / len(labels)
    generators = {path.name: as_generator(load_generator(path)) for path in snapshots}
    histograms = {name: cc.class_histogram(G, reals, labels, num_gen, seed) for name, G in generators.items()}
    entropy = {"data": cc.normalised_entropy(data_histogram)}
    entropy.update({name: cc.normalised_entropy(hist) for name, hist in histograms.items()})
    predicted: dict[str, np.ndarray] = {}
    if loaded is not None:
        cc.check_classifiers(loaded, labelled)
        predicted["data"] = cc.predicted_class_histogram(cc.classifier_logits(loaded, cc.real_batches(labelled.images)))
        predicted.update({name: cc.predicted_class_histogram(cc.classifier_logits(loaded, cc.fake_batches(
            G, num_gen, seed))) for name, G in generators.items()})
    return Coverage(data_histogram, histograms, entropy, names=labelled.names if loaded is None
                    else list(loaded.attributes), predicted=predicted)


def training_speed(run_dir: Path) -> tuple[float | None, float | None]:
    """(median sec/kimg over the ticks, training seconds summed over the ticks of every session) from the run's
    stats.jsonl; None when it holds no tick."""
    path = run_dir / "stats.jsonl"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    speeds = [float(line["sec_per_kimg"]) for line in lines if isinstance(line.get("sec_per_kimg"), (int, float))]
    ticks = [float(line["sec_per_tick"]) for line in lines if isinstance(line.get("sec_per_tick"), (int, float))]
    return (float(np.median(speeds)) if speeds else None), (sum(ticks) if ticks else None)
