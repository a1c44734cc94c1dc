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
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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
    """Class coverage of a labelled dataset and of each snapshot (benchmarks/class_coverage.py)."""

    data_histogram: np.ndarray  # class fractions of the reals compared with
    histograms: dict[str, np.ndarray]  # snapshot file name -> class fractions of its fakes
    entropy: dict[str, float]  # "data" and snapshot file name -> normalised entropy (1 = all classes equally)


def coverage_of(data: Path, snapshots: list[Path], num_gen: int, seed: int = 0) -> Coverage:
    """Nearest-real class histogram of `num_gen` fakes per snapshot (seconds per snapshot on a CPU)."""
    from benchmarks.class_coverage import class_histogram, load_reals, normalised_entropy
    from sgmodels.snapshot import load_generator

    reals, labels = load_reals(str(data), 10_000, seed)
    data_histogram = np.bincount(labels) / len(labels)
    histograms = {path.name: class_histogram(load_generator(path), reals, labels, num_gen, seed) for path in snapshots}
    entropy = {"data": normalised_entropy(data_histogram)}
    entropy.update({name: normalised_entropy(hist) for name, hist in histograms.items()})
    return Coverage(data_histogram, histograms, entropy)


def training_speed(run_dir: Path) -> tuple[float | None, float | None]:
    """(median sec/kimg over the ticks, training seconds summed over the ticks of every session) from the run's
    stats.jsonl; None when it holds no tick."""
    path = run_dir / "stats.jsonl"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    speeds = [float(line["sec_per_kimg"]) for line in lines if isinstance(line.get("sec_per_kimg"), (int, float))]
    ticks = [float(line["sec_per_tick"]) for line in lines if isinstance(line.get("sec_per_tick"), (int, float))]
    return (float(np.median(speeds)) if speeds else None), (sum(ticks) if ticks else None)
