"""`nox -s gpu-check`: everything GPU-specific checked in one run, one table, a non-zero exit status on a mismatch.

Offline and with random weights only (a seeded He-initialised Inception file, `save_random_inception`; downloads
raise), on two small synthetic datasets made here with the project's dataset tool (coloured disks, the training
set, and coloured squares). Each check adds rows (value, threshold, PASS / FAIL / SKIP / INFO) to the table and to
`<out>/gpu_check.json`, written again after every check so a run cut short still leaves its data (the checks
run shortest first: 2, 3, 4 for extraction, then 1 with the training img/s).

1. Training, fp16 blocks against fp32 (`sgmodels train` in a subprocess, `--fp16-res 4` against `--fp16-res 0`,
   same seed, data order and latents): the loss curves side by side and the difference of their final-window means
   (last third of the ticks, G and D losses); the FD of each G_ema against the data (sgeval, random Inception),
   relative to each other and to an untrained generator.
2. Extraction precision (`sgeval.fid`, the same images): fp16 mode and TF32 against exact fp32 (TF32 through the
   extractor called directly under `allow_tf32`, because sgeval's batch loop switches TF32 off, which a third row
   checks: `sgeval.fid` with TF32 enabled globally equals exact mode); exact fp32 features on CUDA against the CPU.
3. A two-process `torch.distributed.run` training step equal to one process: N steps of one process with global
   batch B against two processes with B/2 each, from sgmodels' own pieces (`init_distributed`, `GANLoss`,
   `make_phases`, `average_gradients`, `average_running_buffers`, `broadcast_module`). The real loop cannot be
   compared, since it draws latents per process (seed * world + rank); here every rank takes its round-robin share
   of one globally seeded batch, as `BatchSource` deals the reals, which also keeps the minibatch-stddev groups of
   4 (B = 8). Noise inputs, style mixing and path-length regularisation are off (they draw random numbers per
   process); R1 runs at step 0. Backend: NCCL with two GPUs; with one, gloo on CUDA tensors
   (SGMODELS_DIST_BACKEND=gloo: NCCL refuses two ranks on one device); gloo on the CPU.
4. Throughput: training img/s (fp32 and fp16 blocks, median tick after the first) and Inception extraction img/s
   (network call on a fixed uint8 batch: fp32, TF32, fp16).

Tolerances (and why):

* losses: final-window means within LOSS_TOLERANCE (0.25 absolute; the logistic losses are ~1). fp16 blocks with
  conv clamping change the trajectory by rounding only, so the curves drift apart like two close seeds: in the
  window (steps 200-300) a DEFAULT fp32 run on the CPU had tick means G 1.12 +- 0.06, D 1.08 +- 0.05 and drifted
  by 0.06, so 0.25 is about 5 tick spreads; a broken fp16 path (overflow, NaN gradients zeroed by
  `average_gradients`, a stalled G) moves D or G loss by O(1) or to NaN. "fp32" is float32 blocks with torch's
  default cuDNN TF32 convolutions, as users train.
* FD: fp16 at most FD_RATIO_LIMIT times the fp32 FD (one-sided: better is fine), and each trained FD below
  FD_PROGRESS_LIMIT times the untrained generator's, so the comparison is between generators that learned.
* extraction: fp16 and TF32 keep 10 mantissa bits, 8x finer than bf16's 7, whose FID deviation measured 0.8-5 % on
  these random weights (benchmarks/results/bench/summary.md), so EXTRACT_REDUCED_LIMIT (2 %) bounds them; sgeval
  under global TF32 must equal exact mode within TF32_GUARD_LIMIT (its exact-mode promise, 1e-6); CUDA against CPU
  fp32 features differ by summation order only (~1e-6 of the mean feature), CUDA_CPU_LIMIT (1e-3) catches any real
  difference (layout, resize, weights) with room for cuDNN's algorithms.
* distributed: both ranks bit-identical; Adam moments within DIST_MOMENTS_LIMIT (relative L2: gradients differ by
  the reduction order, ~1e-7); weights within DIST_WEIGHTS_LIMIT of the size of the update (Adam's first steps are
  nearly lr * sign(g), so a gradient that is rounding noise can flip one element's step).

Run on a GPU machine from the repository root (no install needed): `PYTHONPATH=. python3 -m benchmarks.gpu_check
--out DIR`; without CUDA, `python -m benchmarks.gpu_check --device cpu --quick` runs the same code paths at tiny
sizes (CUDA-only rows SKIP) in about a minute on 2 idle cores (mostly process starts and the 2048-d linear algebra
of five FIDs; several times that on a loaded machine).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch

from benchmarks.bench_extract import _isolated_environment, save_random_inception
from benchmarks.common import print_table, time_call, write_results

if TYPE_CHECKING:
    from sgmodels.interfaces import GeneratorModule

__all__ = ["Row", "judge", "main", "relative_difference", "relative_l2", "window_mean_difference"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("out") / "gpu-check"
# Tolerances (the module docstring says why each is what it is).
LOSS_TOLERANCE = 0.25  # |final-window mean loss fp16 - fp32|, G and D
FD_RATIO_LIMIT = 1.5  # FD fp16 / FD fp32
FD_PROGRESS_LIMIT = 0.9  # FD trained / FD untrained, the worse of the two runs
LEARNING_STEPS = 100  # fewer training steps (the quick sizes) cannot be expected to beat the untrained FD
EXTRACT_REDUCED_LIMIT = 0.02  # |FID fp16 or TF32 - FID fp32| / FID fp32
TF32_GUARD_LIMIT = 1e-6  # |FID sgeval under global TF32 - FID exact| / FID exact
CUDA_CPU_LIMIT = 1e-3  # max |f_cuda - f_cpu| / mean |f_cpu|, exact fp32
DIST_MOMENTS_LIMIT = 1e-4  # ||Adam moments 2 procs - 1 proc|| / ||1 proc||
DIST_WEIGHTS_LIMIT = 1e-3  # ||weights 2 procs - 1 proc|| / ||weights 1 proc - initial||
LOSS_KEYS = {"G": "Loss/G/loss", "D": "Loss/D/loss"}
TRAIN_TIMEOUT_S, DIST_TIMEOUT_S = 300, 150  # a hung subprocess fails its check instead of eating the GPU time
_STARTED = time.perf_counter()


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big every check is (DEFAULT: under 4 minutes on one H200; QUICK: the CPU test path)."""

    config: str  # stylegan2 preset of the training runs (its resolution is the data's)
    resolution: int  # image size of the synthetic datasets
    images: int  # images per synthetic dataset (and per side of the extraction FIDs)
    batch: int  # training minibatch
    steps: int  # training steps per precision
    tick_steps: int  # steps per stats.jsonl tick: one point of the loss curves
    fd_images: int  # generated and real images of each training FD
    dist_steps: int  # steps of the distributed comparison
    dist_batch: int  # its global minibatch: 2 ranks x the minibatch-stddev group of 4
    cpu_images: int  # images of the CUDA-against-CPU feature comparison
    bench_batch: int  # images per timed extractor call
    bench_calls: int  # timed extractor calls (median)
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # preset overrides of G and D (smaller nets)

    def override_flags(self) -> list[str]:
        """The overrides as `sgmodels train` options (`--channel-max 32 ...`)."""
        return [part for key, value in self.overrides.items() for part in (f"--{key.replace('_', '-')}", str(value))]


DEFAULT = Sizes(config="cpu32", resolution=32, images=4096, batch=32, steps=300, tick_steps=10, fd_images=2048,
                dist_steps=4, dist_batch=8, cpu_images=16, bench_batch=256, bench_calls=5)
QUICK = Sizes(config="cpu16", resolution=16, images=6, batch=8, steps=4, tick_steps=2, fd_images=4, dist_steps=2,
              dist_batch=8, cpu_images=2, bench_batch=2, bench_calls=1,
              overrides={"channel_max": 32, "z_dim": 32, "w_dim": 32})


@dataclasses.dataclass
class Row:
    """One line of the final table."""

    check: str  # what is compared
    value: float | None  # the measured deviation (or img/s for INFO rows)
    threshold: str  # e.g. "<= 0.02"
    status: str  # PASS, FAIL, SKIP or INFO
    detail: str = ""  # the numbers behind the value, the backend, the reason of a SKIP


@dataclasses.dataclass
class Context:
    """What the checks share: device, sizes, files made once, measurements for the JSON."""

    device: torch.device  # where the checks run
    sizes: Sizes
    root: Path  # temporary folder of this run
    data: Path  # training set zip (disks)
    other: Path  # second dataset zip (squares), the reference side of the extraction FIDs
    weights: Path  # random Inception state dict
    cache: Any  # sgeval FeatureCache in `root` (the reals of the training FDs are extracted once)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)  # curves, raw values

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


# ----------------------------------------------------------------------------------------------------------------
# Comparisons (pure functions: tests/test_gpu_check.py feeds them mismatches).


def judge(check: str, value: float | None, limit: float, detail: str = "", skip: str | None = None) -> Row:
    """PASS when `value` is finite and <= `limit`, else FAIL; SKIP (value kept) when `skip` says why the comparison
    means nothing on this machine."""
    threshold = f"<= {limit:g}"
    if skip is not None:
        return Row(check, value, threshold, "SKIP", f"{skip}; {detail}" if detail else skip)
    ok = value is not None and math.isfinite(value) and value <= limit
    return Row(check, value, threshold, "PASS" if ok else "FAIL", detail)


def skipped(check: str, reason: str) -> Row:
    """A row that could not run here."""
    return Row(check, None, "-", "SKIP", reason)


def info(check: str, value: float | None, detail: str = "") -> Row:
    """A measurement without a threshold (throughput)."""
    return Row(check, value, "-", "INFO", detail)


def relative_difference(value: float, reference: float) -> float:
    """|value - reference| / |reference| (inf for a zero reference, NaN when either is NaN)."""
    if math.isnan(value) or math.isnan(reference):
        return math.nan
    return abs(value - reference) / abs(reference) if reference != 0 else math.inf


def relative_l2(value: torch.Tensor, reference: torch.Tensor, scale: torch.Tensor | None = None) -> float:
    """||value - reference|| / ||scale|| in float64 (scale defaults to the reference)."""
    scale = reference if scale is None else scale
    return float((value.double() - reference.double()).norm() / scale.double().norm())


def window_mean_difference(first: Sequence[float], second: Sequence[float], fraction: float = 1 / 3) -> float:
    """|mean(first window) - mean(second window)| over the last `fraction` of the points (at least one)."""
    if not first or len(first) != len(second):
        raise ValueError(f"curves of {len(first)} and {len(second)} points cannot be compared")
    window = max(int(round(len(first) * fraction)), 1)
    return abs(float(np.mean(first[-window:])) - float(np.mean(second[-window:])))


# ----------------------------------------------------------------------------------------------------------------
# Output.


def log(message: str) -> None:
    """A progress line with the seconds since the start (flushed: the output is piped)."""
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {message}", flush=True)


class Report:
    """The rows so far, written to <out>/gpu_check.json after every check."""

    def __init__(self, out: Path, settings: dict[str, Any], ctx: Context | None = None) -> None:
        self.out = out
        self.settings = settings
        self.ctx = ctx
        self.rows: list[Row] = []

    def add(self, rows: Sequence[Row]) -> None:
        for row in rows:
            value = "-" if row.value is None else f"{row.value:.4g}"
            log(f"{row.status:4s} {row.check}: {value} ({row.threshold}) {row.detail}")
        self.rows += rows
        self.write()

    def write(self) -> None:
        details = self.ctx.details if self.ctx is not None else {}
        write_results(self.out, "gpu_check", {**self.settings, "details": details},
                      [dataclasses.asdict(row) for row in self.rows], torch.get_num_threads(),
                      notes=["random weights everywhere: FD / FID values mean nothing in absolute terms",
                             "status FAIL on any row makes the exit status 1"])

    @property
    def failed(self) -> bool:
        return any(row.status == "FAIL" for row in self.rows)


def run_check(name: str, check: Callable[[Context], list[Row]], ctx: Context) -> list[Row]:
    """Run one check; an exception becomes a FAIL row naming it (the other checks still run)."""
    log(f"--- {name}")
    started = time.perf_counter()
    try:
        rows = check(ctx)
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others' results
        traceback.print_exc()
        rows = [Row(f"{name}: crashed", None, "-", "FAIL", f"{type(exc).__name__}: {exc}"[:300])]
    log(f"--- {name} done in {time.perf_counter() - started:.1f} s")
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Data and shared helpers.


def synthetic_images(count: int, resolution: int, seed: int, shape: str = "disk") -> np.ndarray:
    """uint8 [count, R, R, 3]: one coloured disk (or square) on a vertical colour gradient, random sizes/places."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:resolution, 0:resolution].astype(np.float32) + 0.5) / resolution  # [R, R] each
    background = rng.uniform(0, 1, (count, 1, 1, 3)) * (0.4 + 0.6 * yy[None, :, :, None])  # [N, R, R, 3]
    centre = rng.uniform(0.3, 0.7, (count, 2, 1, 1))
    radius = rng.uniform(0.12, 0.3, (count, 1, 1))
    dx, dy = xx[None] - centre[:, 0], yy[None] - centre[:, 1]  # [N, R, R]
    inside = np.maximum(abs(dx), abs(dy)) < radius if shape == "square" else dx**2 + dy**2 < radius**2
    colour = rng.uniform(0, 1, (count, 1, 1, 3))
    images = np.where(inside[..., None], colour, background)  # [N, R, R, 3]
    return np.round(images * 255).astype(np.uint8)


def make_dataset(root: Path, name: str, count: int, resolution: int, seed: int, shape: str) -> Path:
    """A dataset zip made from a PNG folder with the project's dataset tool (`sgmodels dataset create`)."""
    from sgmodels.data.dataset_tool import create_dataset

    folder = root / f"{name}-png"
    folder.mkdir()
    for index, pixels in enumerate(synthetic_images(count, resolution, seed, shape)):
        PIL.Image.fromarray(pixels).save(folder / f"{index:05d}.png", compress_level=1)
    return create_dataset(folder, root / f"{name}.zip", progress=False).path


def subprocess_env(**extra: str) -> dict[str, str]:
    """This environment with the repository on PYTHONPATH (the project need not be installed) and `extra`."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_logged(command: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start `command` in the repository root with stdout and stderr going to `log_path`."""
    with open(log_path, "wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ok(process: subprocess.Popen[bytes], log_path: Path, what: str, timeout: float) -> None:
    """Wait for `process`; RuntimeError with the end of its log when it fails or runs longer than `timeout` s."""
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        code = -9
    if code != 0:
        tail = log_path.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{what} exited with {code}:\n{tail}")


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 matmuls and cuDNN convolutions on or off inside the block (restored after)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so wall-clock timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fid(ctx: Context, source: Any, reference: Path, count: int, precision: str = "fp32", cache: bool = True) -> float:
    """sgeval.fid (fid50k_full on `count` images per side) with the random Inception, offline."""
    import sgeval

    return sgeval.fid(source, reference, num_gen=count, num_real=count, device=str(ctx.device),
                      detector_weights=ctx.weights, cache=ctx.cache if cache else False, run_dir=False,
                      progress=False, precision=precision, batch_size=min(count, 256))


# ----------------------------------------------------------------------------------------------------------------
# 1. Training: fp16 blocks against fp32.


def train_run(ctx: Context, name: str, fp16_res: int) -> Path:
    """`python -m sgmodels train` for sizes.steps steps; returns the run directory."""
    sizes = ctx.sizes
    outdir = ctx.root / f"runs-{name}"
    kimg, tick = sizes.steps * sizes.batch / 1000, sizes.tick_steps * sizes.batch / 1000
    command = [sys.executable, "-m", "sgmodels", "train", "--data", str(ctx.data), "--outdir", str(outdir),
               "--arch", "stylegan2", "--config", sizes.config, "--batch", str(sizes.batch), "--kimg", f"{kimg:g}",
               "--tick-kimg", f"{tick:g}", "--snap", "1000000", "--seed", "0", "--fp16-res", str(fp16_res),
               "--device", str(ctx.device), *sizes.override_flags()]
    log(f"training {name} (--fp16-res {fp16_res}): {sizes.steps} steps of {sizes.batch} on {ctx.device}")
    log_path, started = ctx.root / f"train-{name}.log", time.perf_counter()
    wait_ok(run_logged(command, log_path, subprocess_env()), log_path, f"training {name}", TRAIN_TIMEOUT_S)
    log(f"training {name} done in {time.perf_counter() - started:.1f} s (process start included)")
    (run_dir,) = [path for path in outdir.iterdir() if path.is_dir()]
    return run_dir


def read_curves(run_dir: Path) -> dict[str, list[float]]:
    """Per-tick kimg, G and D loss means and sec/kimg of a run's stats.jsonl."""
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines() if line.strip()]
    curves = {"kimg": [float(r["kimg"]) for r in records], "sec_per_kimg": [float(r["sec_per_kimg"]) for r in records]}
    for short, key in LOSS_KEYS.items():
        curves[short] = [float(r[key]["mean"]) if key in r else math.nan for r in records]
    return curves


def training_images_per_second(curves: dict[str, list[float]]) -> float:
    """1000 / median sec/kimg over the ticks after the first (which holds the warm-up)."""
    times = curves["sec_per_kimg"][1:] or curves["sec_per_kimg"]
    return 1000.0 / float(np.median(times))


def print_curves(curves: dict[str, dict[str, list[float]]], points: int = 8) -> None:
    """The loss curves of both runs side by side at `points` ticks."""
    ticks = len(curves["fp32"]["kimg"])
    picks = sorted({int(round(i)) for i in np.linspace(0, ticks - 1, min(points, ticks))})
    rows = [{"kimg": curves["fp32"]["kimg"][i], **{f"{loss} {name}": curves[name][loss][i]
                                                    for loss in LOSS_KEYS for name in ("fp32", "fp16")}}
            for i in picks]
    print_table("training loss curves, fp32 against fp16 blocks (tick means)", rows)


def check_training(ctx: Context) -> list[Row]:
    """Check 1: loss curves and FD of fp16-block training against fp32 from the same seed."""
    runs = {name: train_run(ctx, name, fp16_res) for name, fp16_res in (("fp32", 0), ("fp16", 4))}
    curves = {name: read_curves(run_dir) for name, run_dir in runs.items()}
    ctx.details["loss_curves"] = curves
    print_curves(curves)
    skip = None if ctx.cuda else "fp16 blocks compute in float32 off CUDA (FP16_DEVICE_TYPES): both runs are fp32"
    differences = {loss: window_mean_difference(curves["fp32"][loss], curves["fp16"][loss]) for loss in LOSS_KEYS}
    loss_detail = ", ".join(f"{loss} {np.mean(curves['fp32'][loss][-max(len(curves['fp32'][loss]) // 3, 1):]):.3f} "
                            f"vs {np.mean(curves['fp16'][loss][-max(len(curves['fp16'][loss]) // 3, 1):]):.3f}"
                            for loss in LOSS_KEYS)
    rows = [judge("train: final-window loss diff fp16 vs fp32", max(differences.values()), LOSS_TOLERANCE,
                  f"last third of {len(curves['fp32']['kimg'])} ticks: {loss_detail}", skip)]
    rows += training_fd_rows(ctx, runs, skip)
    for name in runs:
        rows.append(info(f"throughput: training {name} img/s", training_images_per_second(curves[name]),
                         f"stylegan2-{ctx.sizes.config}, batch {ctx.sizes.batch}, {ctx.device}"))
    return rows


def untrained_generator(sizes: Sizes) -> torch.nn.Module:
    """The generator the training runs start from (seed 0, the same preset and overrides), in eval mode."""
    from sgmodels.presets import build_networks

    torch.manual_seed(0)
    G, _D, _training = build_networks("stylegan2", sizes.config, **sizes.overrides)
    return G.eval().requires_grad_(False)


def training_fd_rows(ctx: Context, runs: dict[str, Path], skip: str | None) -> list[Row]:
    """FD of each run's final G_ema and of an untrained generator against the training data."""
    from sgmodels.training.options import latest_snapshot

    count = ctx.sizes.fd_images
    fds = {"untrained": fid(ctx, untrained_generator(ctx.sizes), ctx.data, count)}
    for name, run_dir in runs.items():
        snapshot = latest_snapshot(run_dir)
        if snapshot is None:
            raise RuntimeError(f"training {name} wrote no snapshot in {run_dir}")
        fds[name] = fid(ctx, snapshot, ctx.data, count)
    ctx.details["training_fd"] = fds
    detail = f"FD ({count} images) untrained {fds['untrained']:.4g}, fp32 {fds['fp32']:.4g}, fp16 {fds['fp16']:.4g}"
    progress = max(fds["fp32"], fds["fp16"]) / fds["untrained"]
    short = f"{ctx.sizes.steps} steps are too few to learn" if ctx.sizes.steps < LEARNING_STEPS else None
    return [judge("train: FD fp16 / FD fp32", fds["fp16"] / fds["fp32"], FD_RATIO_LIMIT, detail, skip),
            judge("train: FD trained / FD untrained (worse run)", progress, FD_PROGRESS_LIMIT, detail, short)]


# ----------------------------------------------------------------------------------------------------------------
# 2. Extraction precision.


def direct_features(ctx: Context, path: Path, device: torch.device, count: int, use_tf32: bool) -> np.ndarray:
    """float64 [count, 2048] Inception features of a dataset's first `count` images, from the exact-mode extractor
    called directly (sgeval's batch loop would switch TF32 off), with TF32 as asked."""
    from sgeval.features.registry import build_extractor
    from sgeval.sources import ImageSource, open_source

    extractor = build_extractor("inception-v3-tf", weights_path=ctx.weights, device=str(device))
    source = open_source(path)
    if not isinstance(source, ImageSource):
        raise TypeError(f"{path} is not an image dataset")
    source.prepare(device)
    batch, rows = min(count, 256), []
    with tf32(use_tf32), torch.no_grad():
        for start in range(0, count, batch):
            images = source.read(range(start, min(start + batch, count)), seed=0, device=device)  # [B, 3, H, W]
            rows.append(extractor(images).double().cpu())
    return torch.cat(rows).numpy()


def fid_of_features(first: np.ndarray, second: np.ndarray) -> float:
    """FID between two feature sets with biased covariances (/ N), as fid50k_full computes it."""
    from sgeval.metrics.fid import frechet_distance

    return frechet_distance(first.mean(axis=0), np.cov(first, rowvar=False, bias=True),
                            second.mean(axis=0), np.cov(second, rowvar=False, bias=True))


def direct_fid(ctx: Context, use_tf32: bool) -> float:
    """FID of the two synthetic datasets through `direct_features`."""
    count = ctx.sizes.images
    return fid_of_features(direct_features(ctx, ctx.data, ctx.device, count, use_tf32),
                           direct_features(ctx, ctx.other, ctx.device, count, use_tf32))


def check_extraction(ctx: Context) -> list[Row]:
    """Check 2: FID deviation of fp16 and TF32 from exact fp32, sgeval's TF32 guard, CUDA against CPU features."""
    count = ctx.sizes.images
    exact = fid(ctx, ctx.data, ctx.other, count, cache=False)
    ctx.details["extraction_fid"] = {"fp32": exact}
    base = f"disks vs squares, {count} images each, exact FID {exact:.5g}"
    rows = []
    if ctx.cuda:
        reduced = fid(ctx, ctx.data, ctx.other, count, precision="fp16", cache=False)
        ctx.details["extraction_fid"]["fp16"] = reduced
        rows.append(judge("extract: FID fp16 vs fp32 (rel.)", relative_difference(reduced, exact),
                          EXTRACT_REDUCED_LIMIT, f"{base}, fp16 {reduced:.5g}"))
    else:
        rows.append(skipped("extract: FID fp16 vs fp32 (rel.)", "sgeval's fp16 mode needs CUDA"))
    plain = direct_fid(ctx, use_tf32=False)
    with_tf32 = direct_fid(ctx, use_tf32=True) if ctx.cuda else plain  # the flags do nothing on a CPU
    ctx.details["extraction_fid"].update(direct_fp32=plain, direct_tf32=with_tf32)
    detail = (f"{base}, TF32 {with_tf32:.5g} (direct fp32 {plain:.5g}: {relative_difference(plain, exact):.1e} "
              "from sgeval.fid)")
    rows.append(judge("extract: FID TF32 vs fp32 (rel.)", relative_difference(with_tf32, plain), EXTRACT_REDUCED_LIMIT,
                      detail, None if ctx.cuda else "TF32 exists on CUDA only (the fp32 path ran)"))
    if not ctx.cuda:
        return [*rows, skipped("extract: sgeval under global TF32 = exact", "TF32 exists on CUDA only"),
                skipped("extract: CUDA vs CPU exact features", "no CUDA device")]
    with tf32(True):
        guarded = fid(ctx, ctx.data, ctx.other, count, cache=False)
    rows.append(judge("extract: sgeval under global TF32 = exact", relative_difference(guarded, exact),
                      TF32_GUARD_LIMIT, f"allow_tf32 on around sgeval.fid: {guarded:.8g} vs {exact:.8g}"))
    return [*rows, cuda_vs_cpu_row(ctx)]


def cuda_vs_cpu_row(ctx: Context) -> Row:
    """Exact fp32 features of a small batch on CUDA against the CPU: max |delta| / mean |f|."""
    count = ctx.sizes.cpu_images
    on_cuda = direct_features(ctx, ctx.data, ctx.device, count, use_tf32=False)
    on_cpu = direct_features(ctx, ctx.data, torch.device("cpu"), count, use_tf32=False)
    value = float(np.abs(on_cuda - on_cpu).max() / np.abs(on_cpu).mean())
    return judge("extract: CUDA vs CPU exact features", value, CUDA_CPU_LIMIT,
                 f"{count} images, max |delta| / mean |f|")


# ----------------------------------------------------------------------------------------------------------------
# 3. Two processes against one.


def distributed_setup(device: torch.device) -> tuple[str, str, str]:
    """(backend, --device of every rank, why) for the two-process check on this machine."""
    if device.type != "cuda":
        return "gloo", "cpu", "CPU: gloo"
    if torch.cuda.device_count() >= 2:
        return "nccl", "cuda", "2+ GPUs: NCCL, one rank per GPU"
    return "gloo", "cuda:0", "1 GPU: NCCL refuses two ranks on one device, so gloo on CUDA tensors"


def check_distributed(ctx: Context) -> list[Row]:
    """Check 3: torch.distributed.run with two processes against one process, same global batches."""
    backend, device, why = distributed_setup(ctx.device)
    sizes = ctx.sizes
    spec = {"data": str(ctx.data), "device": device, "config": sizes.config, "overrides": sizes.overrides,
            "steps": sizes.dist_steps,
            "batch": sizes.dist_batch, "seed": 0, "out": str(ctx.root / "dist")}
    (ctx.root / "dist").mkdir()
    spec_path = ctx.root / "dist-spec.json"
    spec_path.write_text(json.dumps(spec))
    worker = ["-m", "benchmarks.gpu_check", "--dist-worker", str(spec_path)]
    env = subprocess_env(SGMODELS_DIST_BACKEND=backend, OMP_NUM_THREADS="1")
    log(f"distributed: {sizes.dist_steps} steps of batch {sizes.dist_batch}, 1 process and 2 ({backend}, {device})")
    launches = {"1 process": [sys.executable, *worker],
                "torch.distributed.run, 2 processes": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                       "--nproc_per_node=2", *worker]}
    processes = {name: (run_logged(cmd, ctx.root / f"dist-{i}.log", env), ctx.root / f"dist-{i}.log")
                 for i, (name, cmd) in enumerate(launches.items())}  # both at once: they are tiny
    for name, (process, log_path) in processes.items():
        wait_ok(process, log_path, name, DIST_TIMEOUT_S)
    results = {key: torch.load(ctx.root / "dist" / f"{key}.pt") for key in ("world1-rank0", "world2-rank0",
                                                                            "world2-rank1")}
    return distributed_rows(results, f"{backend} ({why}); {sizes.dist_steps} steps, batch {sizes.dist_batch} "
                                     f"= 2 x {sizes.dist_batch // 2}")


def distributed_rows(results: dict[str, dict[str, torch.Tensor]], detail: str) -> list[Row]:
    """Rows comparing the saved states: ranks identical, Adam moments and weights against one process."""
    one, rank0, rank1 = results["world1-rank0"], results["world2-rank0"], results["world2-rank1"]
    ranks = max(float((rank0[key] - rank1[key]).abs().max()) for key in ("weights", "exp_avg", "exp_avg_sq"))
    moments = max(relative_l2(rank0[key], one[key]) for key in ("exp_avg", "exp_avg_sq"))
    update = one["weights"] - one["initial"]
    weights = relative_l2(rank0["weights"], one["weights"], scale=update)
    return [judge("dist: 2 ranks identical (max abs diff)", ranks, 0.0, detail),
            judge("dist: Adam moments, 2 procs vs 1 (rel. L2)", moments, DIST_MOMENTS_LIMIT, detail),
            judge("dist: weights, 2 procs vs 1 (rel. to update)", weights, DIST_WEIGHTS_LIMIT,
                  f"update norm {float(update.norm()):.3g}; {detail}")]


def distributed_worker(spec_path: Path) -> None:
    """One rank (or the single process) of check 3: train `steps` steps and save weights and Adam moments."""
    from sgmodels.data.dataset import ImageDataset
    from sgmodels.training.distributed import init_distributed, shutdown_distributed

    spec = json.loads(spec_path.read_text())
    # no TF32 (cuDNN allows it by default): the only difference left is the order of the reductions
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    ctx = init_distributed(spec["device"])
    try:
        G, D, loss, phases, optimizers = _distributed_networks(spec, ctx.device)
        initial = _flat_weights(G, D)
        dataset = ImageDataset(Path(spec["data"]))
        for step in range(spec["steps"]):
            _distributed_step(spec, step, dataset, G, loss, phases, ctx.rank, ctx.world_size, ctx.device)
        torch.save({"weights": _flat_weights(G, D), "initial": initial, **_flat_moments(optimizers.values())},
                   Path(spec["out"]) / f"world{ctx.world_size}-rank{ctx.rank}.pt")
    finally:
        shutdown_distributed()


def _distributed_networks(spec: dict[str, Any], device: torch.device) -> tuple[Any, Any, Any, Any, Any]:
    """G, D, GANLoss, phases and optimizers of the preset without per-process randomness, identical on every
    rank."""
    from sgmodels.presets import build_networks
    from sgmodels.training.distributed import broadcast_module, mean_across_processes
    from sgmodels.training.losses import GANLoss
    from sgmodels.training.setup import loss_config_from, make_phases

    torch.manual_seed(spec["seed"])
    G, D, training = build_networks("stylegan2", spec["config"], **spec["overrides"], noise="none", mixing=0.0,
                                    pl_weight=0.0, fp16_res=0)
    for module in (G, D):
        module.to(device).train().requires_grad_(False)  # in place, as the training loop builds them
        broadcast_module(module)
    loss = GANLoss(G, D, loss_config_from(training), reduce_mean=mean_across_processes)
    phases, optimizers = make_phases(G, D, training)
    return G, D, loss, phases, optimizers


def _distributed_step(spec: dict[str, Any], step: int, dataset: Any, G: GeneratorModule, loss: Any, phases: Any,
                      rank: int, world: int, device: torch.device) -> None:
    """One minibatch as the training loop runs it (every due phase, gradient average, Adam, w_avg average), on
    this rank's round-robin share of a global batch seeded by (seed, step, phase)."""
    from sgmodels.training.distributed import average_gradients, average_running_buffers

    batch = spec["batch"]
    indices = [(step * batch + j) % len(dataset) for j in range(batch)][rank::world]
    reals = torch.from_numpy(np.stack([dataset[i][0] for i in indices])).to(device).float() / 127.5 - 1
    labels = torch.zeros([len(indices), 0], device=device)
    for number, phase in enumerate(phases):
        if step % phase.interval:
            continue
        generator = torch.Generator().manual_seed(spec["seed"] * 100_000 + step * 100 + number)
        z = torch.randn([batch, G.z_dim], generator=generator)[rank::world].to(device)  # [batch / world, z_dim]
        phase.module.requires_grad_(True)
        phase.optimizer.zero_grad(set_to_none=True)
        loss.accumulate_gradients(phase.name, reals, labels, z, labels, gain=phase.gain)
        phase.module.requires_grad_(False)
        average_gradients(phase.module)
        phase.optimizer.step()
    average_running_buffers(G)


def _flat_moments(optimizers: Any) -> dict[str, torch.Tensor]:
    """Adam's exp_avg and exp_avg_sq of every parameter that has them, each flattened into one CPU vector."""
    states = [optimizer.state[param] for optimizer in optimizers for group in optimizer.param_groups
              for param in group["params"] if param in optimizer.state]  # parameter order: the same on every run
    return {key: torch.cat([state[key].flatten().cpu() for state in states]) for key in ("exp_avg", "exp_avg_sq")}


def _flat_weights(*modules: torch.nn.Module) -> torch.Tensor:
    """Every parameter and floating-point buffer (w_avg) of `modules`, flattened into one CPU vector."""
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    return torch.cat([t.detach().flatten().cpu() for t in tensors])


# ----------------------------------------------------------------------------------------------------------------
# 4. Extraction throughput.


def extraction_images_per_second(ctx: Context, precision: str, use_tf32: bool) -> float:
    """img/s of the Inception extractor on a fixed uint8 batch at the data's resolution (median of timed calls)."""
    from sgeval.features.registry import build_extractor

    sizes = ctx.sizes
    extractor = build_extractor("inception-v3-tf", weights_path=ctx.weights, device=str(ctx.device),
                                precision=precision)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (sizes.bench_batch, 3, sizes.resolution, sizes.resolution), generator=generator,
                           dtype=torch.uint8).to(ctx.device)

    def call() -> None:
        extractor(images)
        synchronize(ctx.device)

    with tf32(use_tf32), torch.no_grad():
        seconds, _ = time_call(call, repeat=sizes.bench_calls)
    return sizes.bench_batch / seconds


def check_throughput(ctx: Context) -> list[Row]:
    """Check 4 (extraction part; training img/s come from check 1): Inception img/s in fp32, TF32 and fp16."""
    detail = f"batch {ctx.sizes.bench_batch} of {ctx.sizes.resolution}x{ctx.sizes.resolution}, {ctx.device}"
    rows = [info("throughput: extraction fp32 img/s", extraction_images_per_second(ctx, "fp32", False), detail)]
    if not ctx.cuda:
        return [*rows, skipped("throughput: extraction TF32 img/s", "TF32 exists on CUDA only"),
                skipped("throughput: extraction fp16 img/s", "sgeval's fp16 mode needs CUDA")]
    return [*rows, info("throughput: extraction TF32 img/s", extraction_images_per_second(ctx, "fp32", True), detail),
            info("throughput: extraction fp16 img/s", extraction_images_per_second(ctx, "fp16", False), detail)]


# ----------------------------------------------------------------------------------------------------------------
# Entry point.

# The short checks first: a run stopped by a time limit keeps as many rows as possible.
CHECKS: dict[str, Callable[[Context], list[Row]]] = {
    "extraction precision (2)": check_extraction,
    "two processes vs one (3)": check_distributed,
    "extraction throughput (4)": check_throughput,
    "training fp16 vs fp32 (1, 4)": check_training,
}


def choose_device(asked: str | None) -> torch.device:
    """The device of the checks: the one asked for, or CUDA when available; CUDA asked without CUDA -> the CPU
    (said loudly: the CUDA rows then SKIP)."""
    device = torch.device(asked or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        log(f"--device {asked}: CUDA is not available here; running on the CPU, CUDA-only rows SKIP")
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device()) if device == torch.device("cuda") else device


def describe_device(device: torch.device) -> str:
    """A GPU's name and count, or "CPU (N threads)"."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({torch.cuda.device_count()} GPU(s)), torch {torch.__version__}"
    return f"CPU ({torch.get_num_threads()} threads), torch {torch.__version__}"


def prepare(root: Path, device: torch.device, sizes: Sizes) -> Context:
    """Datasets, random Inception weights and feature cache in `root`."""
    from sgeval.cache import FeatureCache

    started = time.perf_counter()
    data = make_dataset(root, "disks", sizes.images, sizes.resolution, seed=0, shape="disk")
    other = make_dataset(root, "squares", sizes.images, sizes.resolution, seed=1, shape="square")
    weights = save_random_inception(root / "random-inception.pth", seed=0)
    log(f"datasets ({sizes.images} images of {sizes.resolution}x{sizes.resolution} each) and random Inception "
        f"weights in {time.perf_counter() - started:.1f} s")
    return Context(device=device, sizes=sizes, root=root, data=data, other=other, weights=weights,
                   cache=FeatureCache(root / "features"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder of gpu_check.json ({DEFAULT_OUT})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the CPU test path)")
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu [cuda when available]")
    parser.add_argument("--dist-worker", type=Path, default=None, help=argparse.SUPPRESS)  # check 3's processes
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every check, print the table, write <out>/gpu_check.json; 1 when a row FAILs, else 0."""
    args = parse_args(argv)
    if args.dist_worker is not None:
        distributed_worker(args.dist_worker)
        return 0
    device = choose_device(args.device)
    sizes = QUICK if args.quick else DEFAULT
    log(f"gpu-check on {describe_device(device)}, sizes {'quick' if args.quick else 'default'}")
    settings = {"device": describe_device(device), "sizes": dataclasses.asdict(sizes),
                "tolerances": {name: value for name, value in globals().items()
                               if name.endswith(("_LIMIT", "_TOLERANCE"))}}
    report = Report(args.out, settings)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as temp, _isolated_environment(Path(temp)):
        report.ctx = prepare(Path(temp), device, sizes)
        for name, check in CHECKS.items():
            report.add(run_check(name, check, report.ctx))
    print_table(f"gpu-check on {describe_device(device)} ({time.perf_counter() - _STARTED:.0f} s)",
                [dataclasses.asdict(row) for row in report.rows])
    failed = [row.check for row in report.rows if row.status == "FAIL"]
    log(f"{len(failed)} FAIL: {', '.join(failed)}" if failed else "no FAIL")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
