"""Resumable execution of the ablation suites: train every (row, seed) run, evaluate its final snapshot.

Every step can be interrupted (`kill -9` included) and re-run with the same command:

* a run whose newest snapshot has reached the scale's kimg is not trained again; a run with an older snapshot
  resumes from it (`sgmodels train --resume latest`, bit-exact), one without a snapshot starts afresh;
* a protocol whose result line for the final snapshot is already in the run directory's
  `metric-<protocol>.jsonl` is not evaluated again; sgeval appends results atomically, so a killed evaluation
  leaves no half line, and sampled features / distances come back from the cache.

Run directories: `<out>/runs/<row>-seed<k>/<sgmodels run>/`, one sgmodels run each, so rows shared by several suites
(config E is in Tables 2 and 3) are trained once, and so are rows that train the same configuration at a scale
(`config.run_key`: Table 4's 2-layer row is config F at the CPU scale).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.ablations.config import SUITES, Row, Scale, run_key, suite_rows, training_preset
from benchmarks.ablations.stick import MeasuringStick

__all__ = ["RunRecord", "evaluate_run", "final_snapshot", "finished_records", "run_folder", "run_suites", "train_run"]


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One trained (row, seed) run and the protocols evaluated on its final snapshot."""

    row: Row
    seed: int
    run_dir: Path  # the sgmodels run directory
    snapshot: Path  # its final snapshot
    train_seconds: float  # wall time this invocation spent training it (0 when it was already done)
    eval_seconds: float  # wall time this invocation spent evaluating it


def _log(message: str) -> None:
    print(f"[ablations {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def final_snapshot(outdir: Path, kimg: float) -> Path | None:
    """The snapshot of the run in `outdir` that has reached `kimg`, or None (no run, or not finished)."""
    from sgmodels.training.options import latest_snapshot, snapshot_kimg

    for run_dir in sorted(outdir.glob("0*")):
        snapshot = latest_snapshot(run_dir)
        reached = None if snapshot is None else snapshot_kimg(snapshot)
        if reached is not None and reached >= kimg - 1e-9:
            return snapshot
    return None


def train_run(row: Row, seed: int, scale: Scale, data: Path, outdir: Path) -> tuple[Path, float]:
    """Train (or resume, or skip) one run; returns (final snapshot, seconds spent here)."""
    from sgmodels.training.loop import train
    from sgmodels.training.options import TrainOptions

    done = final_snapshot(outdir, scale.kimg)
    if done is not None:
        return done, 0.0
    overrides = {**scale.overrides, **row.overrides}
    if scale.batch is not None:
        overrides["batch"] = scale.batch
    arch, config = training_preset(row, scale)
    options = TrainOptions(data=str(data), outdir=str(outdir), arch=arch, config=config,
                           kimg=scale.kimg, seed=seed, overrides=overrides, resume="latest",
                           tick_kimg=scale.tick_kimg, snap=1, progress=False)
    started = time.perf_counter()
    train(options)
    snapshot = final_snapshot(outdir, scale.kimg)
    if snapshot is None:
        raise RuntimeError(f"{outdir}: training ended without a snapshot at {scale.kimg} kimg")
    return snapshot, time.perf_counter() - started


def _evaluated(snapshot: Path, protocol: str) -> bool:
    """True when the run directory already holds a result line of `protocol` for `snapshot`."""
    path = snapshot.parent / f"metric-{protocol}.jsonl"
    if not path.is_file():
        return False
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line of another tool that crashed mid-write: not ours, skip it
            continue
        if Path(str(record.get("snapshot_pkl", ""))).name == snapshot.name:
            return True
    return False


def evaluate_run(row: Row, snapshot: Path, protocols: Sequence[str], stick: MeasuringStick, data: Path,
                 progress: bool) -> float:
    """Evaluate the protocols not yet recorded for `snapshot` (one sgeval call); returns the seconds spent."""
    from sgeval.runner import evaluate_many

    missing = [protocol for protocol in protocols if not _evaluated(snapshot, protocol)]
    if not missing:
        return 0.0
    started = time.perf_counter()
    evaluate_many(missing, snapshot, data, progress=progress, **stick.evaluate_kwargs(row))
    return time.perf_counter() - started


def run_folder(out: Path, row: Row, seed: int, scale: Scale) -> Path:
    """`<out>/runs/<key>-seed<k>`, where key is the first row that trains the same configuration (`run_key`)."""
    return out / "runs" / f"{run_key(row, scale)}-seed{seed}"


def finished_records(suites: Sequence[str], scale: Scale, out: Path) -> list[RunRecord]:
    """The runs of the suites that have reached the scale's kimg, without training or evaluating anything (for a
    report of a suite that is still running, or was interrupted: missing runs are simply absent)."""
    records = []
    for row in suite_rows(list(suites)):
        for seed in range(scale.seeds):
            snapshot = final_snapshot(run_folder(out, row, seed, scale), scale.kimg)
            if snapshot is not None:
                records.append(RunRecord(row, seed, snapshot.parent, snapshot, 0.0, 0.0))
    return records


def run_suites(suites: Sequence[str], scale: Scale, data: Path, out: Path, stick: MeasuringStick,
               progress: bool = False, on_run: Callable[[RunRecord], Any] | None = None) -> list[RunRecord]:
    """Train and evaluate every run the suites need (resumable, see the module docstring)."""
    records = []
    rows = suite_rows(list(suites))
    total = len(rows) * scale.seeds
    for index, (row, seed) in enumerate(((row, seed) for row in rows for seed in range(scale.seeds)), start=1):
        outdir, key = run_folder(out, row, seed, scale), run_key(row, scale)
        shared = "" if key == row.key else f" (the runs of {key})"
        _log(f"{index}/{total} {row.key} seed {seed}: {row.describe()}{shared}")
        snapshot, trained = train_run(row, seed, scale, data, outdir)
        protocols = stick.protocols_for(row, [SUITES[name] for name in suites if row.key in SUITES[name].rows],
                                        scale)
        evaluated = evaluate_run(row, snapshot, protocols, stick, data, progress)
        _log(f"{row.key} seed {seed}: trained {trained:.0f} s, evaluated {len(protocols)} protocols in "
             f"{evaluated:.0f} s")
        record = RunRecord(row, seed, snapshot.parent, snapshot, trained, evaluated)
        records.append(record)
        if on_run is not None:
            on_run(record)
    return records
