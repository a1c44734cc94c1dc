"""Options of a training run, its run directory, resuming and the metric-hook lookup.

A run lives in `<outdir>/<id:05d>-<dataset>-<arch>-<config>[-<override><value>...][-cond][-mirror]`. It holds
`training_options.json`, `stats.jsonl`, `network-snapshot-<kimg>.safetensors` files and image grids. Resuming
continues in the run directory of the snapshot, with the options stored there.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

# Re-exported (redundant alias): the training loop imports write_json_atomic from here.
from sgmodels.fileio import write_json_atomic as write_json_atomic
from sgmodels.untrusted import read_json_file

OPTIONS_FILE = "training_options.json"
SNAPSHOT_PREFIX = "network-snapshot-"
SNAPSHOT_SUFFIX = ".safetensors"
METRIC_HOOK_GROUP = "sgmodels.metric_hooks"
_RUN_DIR = re.compile(r"^(\d{5})-")
# Options that define the experiment: a resumed run must keep them (None in the new options = keep silently).
FIXED_ON_RESUME = ("data", "arch", "config", "seed", "mirror", "cond", "overrides")
# Run-time options that a resumed run keeps unless they are given again.
KEPT_ON_RESUME = ("kimg", "snap", "tick_kimg", "batch_gpu", "metrics", "metric_hook", "workers")
DEFAULT_SNAP = 50
DEFAULT_TICK_KIMG = 4.0


@dataclass
class TrainOptions:
    """What `sgmodels train` was asked to do; JSON-serialisable (stored as `training_options.json`)."""

    data: str | None = None  # dataset zip or folder (sgmodels.data.ImageDataset)
    outdir: str = "training-runs"  # parent directory of the run directories
    arch: str | None = None  # preset family: stylegan2, stylegan or traditional (default stylegan2)
    config: str | None = None  # preset config: a..f, cpu16, cpu32, cpu64
    kimg: float | None = None  # training length in thousands of real images (default: the preset's total_kimg)
    seed: int | None = None  # seed of weights, latents, data order and grids (default 0)
    mirror: bool | None = None  # x-flip augmentation (dataset doubled with mirrored copies)
    cond: bool | None = None  # condition G and D on the dataset labels
    overrides: dict[str, Any] = field(default_factory=dict)  # preset overrides (sgmodels.presets.OVERRIDES names)
    batch_gpu: int | None = None  # samples per process and forward pass (gradient accumulation when smaller)
    snap: int | None = None  # ticks between snapshots and metric evaluations (default DEFAULT_SNAP)
    tick_kimg: float | None = None  # kimg between progress reports and stats lines (default DEFAULT_TICK_KIMG)
    resume: str | None = None  # "latest", a snapshot file or a run directory
    metrics: list[str] = field(default_factory=list)  # metrics evaluated after each snapshot (via the hook)
    metric_hook: str | None = None  # "module:function" evaluating metrics; default: the entry point group
    device: str | None = None  # cpu, cuda, cuda:N; default cuda when available
    workers: int | None = None  # DataLoader worker processes (default 3 on CUDA, 0 on CPU)
    progress: bool = True  # print progress lines
    threads: str | None = None  # CPU threads: None leaves torch's count, "auto" follows the free cores
    # (sgmodels.cpu.ThreadGovernor), or a number

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainOptions:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    def validate(self) -> None:
        """Raise ValueError for options that can never work (checked before touching data or networks)."""
        if self.kimg is not None and self.kimg <= 0:
            raise ValueError(f"--kimg must be > 0, got {self.kimg}")
        if self.snap is not None and self.snap < 1:
            raise ValueError(f"--snap must be >= 1 tick, got {self.snap}")
        if self.tick_kimg is not None and self.tick_kimg <= 0:
            raise ValueError(f"--tick-kimg must be > 0, got {self.tick_kimg}")
        if self.batch_gpu is not None and self.batch_gpu < 1:
            raise ValueError(f"--batch-gpu must be >= 1, got {self.batch_gpu}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")
        if self.resume is None and (self.data is None or self.config is None):
            raise ValueError("a new training run needs --data and --config (or --resume to continue a run)")


def run_description(options: TrainOptions) -> str:
    """The part of the run directory name after the id: dataset, arch, config and the non-default choices."""
    data_name = Path(options.data or "data").name
    for suffix in (".zip",):
        data_name = data_name.removesuffix(suffix)
    parts = [data_name, options.arch or "stylegan2", str(options.config)]
    for key in sorted(options.overrides):
        parts.append(f"{key.replace('_', '')}{options.overrides[key]}")
    parts += ["cond"] if options.cond else []
    parts += ["mirror"] if options.mirror else []
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", "-".join(parts))


def new_run_dir(outdir: Path, description: str) -> Path:
    """Create `<outdir>/<next id:05d>-<description>` (id = one more than the largest present)."""
    outdir.mkdir(parents=True, exist_ok=True)
    ids = [int(m.group(1)) for entry in outdir.iterdir() if (m := _RUN_DIR.match(entry.name)) and entry.is_dir()]
    run_id = max(ids, default=-1) + 1
    while True:  # another process may take the same id at the same moment
        path = outdir / f"{run_id:05d}-{description}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            run_id += 1


def snapshot_name(
    cur_nimg: int,
    tick_kimg: float = 1.0,
    prefix: str = SNAPSHOT_PREFIX,
    suffix: str = SNAPSHOT_SUFFIX,
) -> str:
    """`network-snapshot-001000.safetensors`: kimg rounded down, as the official code names them.

    Snapshots are at least one tick apart, so whole kimg are unique when ticks span >= 1 kimg; shorter ticks (tiny
    test runs) get three decimals: `network-snapshot-000000.032.safetensors`.
    """
    if tick_kimg >= 1.0 or cur_nimg % 1000 == 0:
        return f"{prefix}{cur_nimg // 1000:06d}{suffix}"
    return f"{prefix}{cur_nimg / 1000:010.3f}{suffix}"


def snapshot_kimg(path: Path) -> float | None:
    """The kimg in a snapshot file name, or None when the name does not follow `snapshot_name`."""
    name = path.name
    if not (name.startswith(SNAPSHOT_PREFIX) and name.endswith(SNAPSHOT_SUFFIX)):
        return None
    try:
        return float(name[len(SNAPSHOT_PREFIX):-len(SNAPSHOT_SUFFIX)])
    except ValueError:
        return None


def latest_snapshot(run_dir: Path) -> Path | None:
    """The snapshot with the largest kimg in `run_dir` (temporary files of an interrupted write are ignored)."""
    found = [(kimg, path) for path in run_dir.glob(f"{SNAPSHOT_PREFIX}*{SNAPSHOT_SUFFIX}")
             if (kimg := snapshot_kimg(path)) is not None]
    return max(found)[1] if found else None


def read_options(run_dir: Path) -> TrainOptions:
    """The options stored in `<run_dir>/training_options.json`."""
    path = run_dir / OPTIONS_FILE
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a training run directory (no {OPTIONS_FILE}); --resume needs a "
                         "snapshot inside a run directory")
    record = read_json_file(path)
    stored = record.get("options") if isinstance(record, dict) else None
    if not isinstance(stored, dict):
        raise ValueError(f"{path}: no 'options' object; the file is damaged or not written by sgmodels train")
    try:
        options = TrainOptions.from_json(stored)
    except TypeError as exc:
        raise ValueError(f"{path}: unreadable options ({exc})") from None
    return options


def _conflicts(given: TrainOptions, stored: TrainOptions) -> list[str]:
    conflicts = []
    for name in FIXED_ON_RESUME:
        value = getattr(given, name)
        if value in (None, {}) or value == getattr(stored, name):
            continue
        if name == "data" and Path(value).resolve() == Path(str(stored.data)).resolve():
            continue
        conflicts.append(f"--{name} {value!r} (run: {getattr(stored, name)!r})")
    return conflicts


def merge_resumed_options(given: TrainOptions, stored: TrainOptions) -> TrainOptions:
    """Options of a resumed run: the stored experiment definition plus the given run-time choices.

    Raises ValueError when a given experiment option (FIXED_ON_RESUME) differs from the stored one.
    """
    conflicts = _conflicts(given, stored)
    if conflicts:
        raise ValueError("resuming keeps the options of the run; these differ: " + "; ".join(conflicts)
                         + ". Start a new run (without --resume) to change them")
    merged = dataclasses.replace(given, **{name: getattr(stored, name) for name in FIXED_ON_RESUME})
    for name in KEPT_ON_RESUME:
        if getattr(merged, name) in (None, []):
            setattr(merged, name, getattr(stored, name))
    return merged


def with_defaults(options: TrainOptions) -> TrainOptions:
    """Fill the run-time options left open (None) with their defaults."""
    return dataclasses.replace(
        options,
        seed=0 if options.seed is None else options.seed,
        snap=DEFAULT_SNAP if options.snap is None else options.snap,
        tick_kimg=DEFAULT_TICK_KIMG if options.tick_kimg is None else options.tick_kimg,
    )


@dataclass(frozen=True)
class RunPlan:
    """Where a run writes and what it resumes from."""

    run_dir: Path | None  # run directory of a resumed run; None = a fresh run (created once setup succeeded)
    snapshot: Path | None  # snapshot to resume from; None = a fresh run
    options: TrainOptions  # effective options


def plan_run(options: TrainOptions) -> RunPlan:
    """Resolve --resume into a run directory, a snapshot and the effective options (call on rank 0 only).

    `--resume latest` picks the newest run in --outdir whose stored options agree with the given ones and which has
    a snapshot; when there is none it starts a new run. A snapshot path resumes in the snapshot's directory; a run
    directory resumes from its newest snapshot. Nothing is created here.
    """
    plan = _plan_run(options)
    return dataclasses.replace(plan, options=with_defaults(plan.options))


def _plan_run(options: TrainOptions) -> RunPlan:
    outdir = Path(options.outdir)
    if options.resume is None:
        return RunPlan(None, None, options)
    if options.resume == "latest":
        for run_dir in _runs_newest_first(outdir):
            snapshot = latest_snapshot(run_dir)
            if snapshot is None or not (run_dir / OPTIONS_FILE).is_file():
                continue
            stored = read_options(run_dir)
            if not _conflicts(options, stored):
                return RunPlan(run_dir, snapshot, merge_resumed_options(options, stored))
        if options.data is None or options.config is None:
            raise ValueError(f"--resume latest: no run with a snapshot in {outdir} matches; give --data and --config "
                             "to start a new one")
        return RunPlan(None, None, options)
    target = Path(options.resume)
    if target.is_dir():
        snapshot = latest_snapshot(target)
        if snapshot is None:
            raise ValueError(f"--resume {target}: no {SNAPSHOT_PREFIX}*{SNAPSHOT_SUFFIX} in this directory")
    elif target.is_file():
        snapshot = target
    else:
        raise ValueError(f"--resume {target}: no such snapshot file or run directory")
    run_dir = snapshot.parent
    return RunPlan(run_dir, snapshot, merge_resumed_options(options, read_options(run_dir)))


def _runs_newest_first(outdir: Path) -> list[Path]:
    if not outdir.is_dir():
        return []
    runs = [(int(m.group(1)), entry) for entry in outdir.iterdir() if (m := _RUN_DIR.match(entry.name))]
    return [path for _id, path in sorted(runs, reverse=True) if path.is_dir()]


# ----------------------------------------------------------------------------------------------------------------
# Metric hook.

MetricHook = Callable[..., Any]


def resolve_metric_hook(metrics: list[str], spec: str | None) -> MetricHook | None:
    """The function that evaluates `metrics` on each snapshot, or None when no metrics are asked for.

    `spec` "package.module:function" names it directly; otherwise the single entry point of group
    `sgmodels.metric_hooks` is used (sgeval registers one). Hook signature:
    `hook(run_dir: Path, snapshot_path: Path, metrics: list[str], training_set: dict, device: torch.device)`;
    it appends its results to `<run_dir>/metric-<name>.jsonl`. If the hook has a `validate_metrics(metrics)`
    attribute it is called now, so unknown metric names fail before training starts.
    """
    if not metrics:
        return None
    if spec is not None:
        hook = _import_hook(spec)
    else:
        entry_points = list(importlib_metadata.entry_points(group=METRIC_HOOK_GROUP))
        if not entry_points:
            raise ValueError(
                f"--metrics {','.join(metrics)} needs a metric hook, and none is installed: install sgeval (it "
                f"registers the entry point group {METRIC_HOOK_GROUP!r}) or pass --metric-hook module:function"
            )
        if len(entry_points) > 1:
            names = ", ".join(sorted(f"{ep.name} = {ep.value}" for ep in entry_points))
            raise ValueError(f"several metric hooks are installed ({names}); choose one with --metric-hook")
        hook = entry_points[0].load()
    if not callable(hook):
        raise ValueError(f"metric hook {spec or METRIC_HOOK_GROUP} is not callable")
    validate = getattr(hook, "validate_metrics", None)
    if callable(validate):
        validate(list(metrics))
    return hook


def _import_hook(spec: str) -> MetricHook:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--metric-hook must look like 'package.module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--metric-hook {spec}: cannot import {module_name!r} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"--metric-hook {spec}: module {module_name!r} has no attribute {attr!r}") from None
