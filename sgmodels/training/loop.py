"""The training loop, split into phases: setup, step, tick report, snapshot and metric evaluation.

One minibatch (`training_step`) runs the phases of the official loop (ADA names): G main / G regularisation
(path length, every 4 minibatches when lazy) and D main / D regularisation (R1, every 16 when lazy), each with a
fresh batch of latents and the same real images; gradients are averaged across processes; then G_ema is updated.
Progressive growing sets the networks' `lod` buffers and shows the reals at that level of detail, and resets the
Adam states whenever a level starts or ends fading in (TF v1). Every `tick_kimg` the statistics go to stats.jsonl
and the progress line (between ticks progress shows right after the first step and then at least every minute, see
`ProgressPrinter`); every `snap` ticks (and at the end) a snapshot with the whole training state is written,
followed by a grid of fakes and the optional metric hook. A resumed run continues bit-exactly on the same hardware.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from sgmodels.cpu import ThreadGovernor, explicit_thread_count
from sgmodels.fileio import check_writable_folder, sweep_stale_temp_files, write_or_keep
from sgmodels.interfaces import GeneratorModule, is_style_generator
from sgmodels.progressive import set_lod
from sgmodels.registry import describe_network
from sgmodels.snapshot import load_snapshot, save_snapshot
from sgmodels.training.data import BatchSource, TrainingImages
from sgmodels.training.distributed import (
    DistributedContext,
    average_gradients,
    average_running_buffers,
    broadcast_module,
    broadcast_object,
    gather_objects,
    init_distributed,
    mean_across_processes,
    shutdown_distributed,
)
from sgmodels.training.ema import make_ema_copy, update_ema
from sgmodels.training.losses import GANLoss
from sgmodels.training.options import (
    OPTIONS_FILE,
    MetricHook,
    RunPlan,
    TrainOptions,
    new_run_dir,
    plan_run,
    resolve_metric_hook,
    run_description,
    snapshot_name,
    write_json_atomic,
)
from sgmodels.training.schedule import (
    ProgressiveSchedule,
    ema_beta,
    lod_level_changed,
    mixing_layers,
    reals_at_lod,
)
from sgmodels.training.setup import Phase, build_training, make_phases
from sgmodels.training.state import (
    TrainingCounters,
    capture_rng,
    pack_training_state,
    restore_rng,
    seed_everything,
    unpack_training_state,
)
from sgmodels.training.stats import (
    ProgressPrinter,
    StatsCollector,
    StatsWriter,
    memory_usage,
    progress_line,
)


@dataclass
class Session:
    """Everything one training process holds while it runs."""

    options: TrainOptions  # effective options
    ctx: DistributedContext  # rank, world size, device
    run_dir: Path  # where rank 0 writes
    images: TrainingImages  # dataset, label table and grid
    G: GeneratorModule  # generator being trained
    D: torch.nn.Module  # discriminator
    G_ema: GeneratorModule  # moving average of G
    loss: GANLoss  # losses and the path-length mean
    phases: list[Phase]  # Gmain/Greg/Gboth/Dmain/Dreg/Dboth with their optimizers
    optimizers: dict[str, torch.optim.Optimizer]  # "G", "D"
    schedule: ProgressiveSchedule  # lod / minibatch / lr
    training: dict[str, Any]  # resolved training hyper-parameters (preset + overrides)
    data: BatchSource | None  # real minibatches (created after a resume restored the sampler position)
    batch_gpu: int  # samples per process and forward pass
    total_nimg: int  # stop after this many images
    seed: int  # options.seed, tick_kimg and snap with plan_run's defaults filled in
    tick_kimg: float
    snap: int
    hook: MetricHook | None  # metric evaluation after each snapshot
    collector: StatsCollector  # per-tick statistics of this process
    printer: ProgressPrinter  # progress lines (silent off rank 0)
    counters: TrainingCounters = field(default_factory=TrainingCounters)
    writer: StatsWriter | None = None  # stats.jsonl (rank 0 only)
    start_time: float = field(default_factory=time.time)
    tick_start_time: float = field(default_factory=time.time)
    maintenance_sec: float = 0.0  # seconds of the last snapshot/evaluation (not counted as training time)
    threads: ThreadGovernor | None = None  # follows the free CPU cores (options.threads == "auto")

    @property
    def batches(self) -> BatchSource:
        """The real-image source (setup_session opens it once the sampler position is known)."""
        if self.data is None:
            raise RuntimeError("the training data is not open yet: build sessions with setup_session()")
        return self.data


_T = TypeVar("_T")


def _filled(value: _T | None, name: str) -> _T:
    """A TrainOptions field that plan_run fills with its default (None here is a bug, not user input)."""
    if value is None:
        raise RuntimeError(f"option {name!r} was not filled in by plan_run")
    return value


# ----------------------------------------------------------------------------------------------------------------
# Entry point.


def train(options: TrainOptions, ctx: DistributedContext | None = None) -> Path:
    """Run (or resume) a training run to `options.kimg`; returns the run directory.

    Call in every process of a torchrun job (or once without torchrun). `ctx` is for callers that already joined a
    process group; otherwise it is read from the environment.
    """
    options.validate()
    owns_group = ctx is None
    ctx = ctx or init_distributed(options.device)
    try:
        session = setup_session(options, ctx)
        run_session(session)
        return session.run_dir
    finally:
        if owns_group:
            shutdown_distributed()


def _plan_on_rank0(options: TrainOptions, ctx: DistributedContext) -> RunPlan:
    """plan_run and the output-folder check on rank 0, shared with every process (an error there is raised
    everywhere, as a ValueError with its message)."""
    result: RunPlan | str
    if ctx.is_main:
        try:
            result = plan_run(options)
            # before the data, the networks and hours of training: an unwritable run folder fails now
            check_writable_folder(result.run_dir or Path(result.options.outdir))
        except (ValueError, OSError) as exc:
            result = str(exc)
    else:
        result = ""
    result = broadcast_object(result)
    if isinstance(result, str):
        raise ValueError(result)
    return result


# ----------------------------------------------------------------------------------------------------------------
# Setup phase.


def setup_session(options: TrainOptions, ctx: DistributedContext) -> Session:
    """Resolve the run, open the data (clear errors before any network exists), build networks, optimizers and
    data pipeline, restore a snapshot when resuming, and create the run directory (rank 0)."""
    plan = _plan_on_rank0(options, ctx)
    options = plan.options
    seed = _filled(options.seed, "seed")
    images = TrainingImages.open(options, seed, ctx.device)
    hook = resolve_metric_hook(options.metrics, options.metric_hook)
    seed_everything(seed)  # identical initial weights in every process (also broadcast below)
    built = build_training(options, images.dataset, ctx)
    for module in (built.G, built.D):
        broadcast_module(module)
    G_ema = make_ema_copy(built.G)
    loss = GANLoss(built.G, built.D, built.loss_config, reduce_mean=mean_across_processes)
    phases, optimizers = make_phases(built.G, built.D, built.training)
    session = Session(
        options=options, ctx=ctx, run_dir=Path(), images=images, G=built.G, D=built.D, G_ema=G_ema, loss=loss,
        phases=phases, optimizers=optimizers, schedule=built.schedule, training=built.training, data=None,
        batch_gpu=built.batch_gpu, total_nimg=int(round(built.total_kimg * 1000)), seed=seed,
        tick_kimg=_filled(options.tick_kimg, "tick_kimg"), snap=_filled(options.snap, "snap"), hook=hook,
        collector=StatsCollector(ctx.device), printer=ProgressPrinter(enabled=options.progress and ctx.is_main),
    )
    if plan.snapshot is not None:
        restore_session(session, plan.snapshot)
    else:
        seed_everything(seed * ctx.world_size + ctx.rank)  # different latents per process from here on
    session.data = BatchSource(images.dataset, ctx, built.chunk, seed, options.workers,
                               start_index=session.counters.sampler_position)
    _open_run_dir(session, plan)
    return session


def _open_run_dir(session: Session, plan: RunPlan) -> None:
    """Create (fresh run) or reuse the run directory on rank 0; write training_options.json and reals.png."""
    ctx = session.ctx
    run_dir = plan.run_dir
    if ctx.is_main and run_dir is None:
        run_dir = new_run_dir(Path(session.options.outdir), run_description(session.options))
    session.run_dir = Path(broadcast_object(str(run_dir)))
    if not ctx.is_main:
        return
    sweep_stale_temp_files(session.run_dir)  # half-written snapshots or logs of a killed earlier process
    session.writer = StatsWriter(session.run_dir / "stats.jsonl")
    session.writer.truncate_after(session.counters.cur_nimg / 1000)
    write_json_atomic(session.run_dir / OPTIONS_FILE, {
        "options": session.options.to_json(),
        "training": session.training,
        "training_set": session.images.description,
        "networks": {"G": describe_network(session.G), "D": describe_network(session.D)},
        "world_size": ctx.world_size,
        "batch_gpu": session.batch_gpu,
    })
    if plan.snapshot is None:
        session.images.save_reals_grid(session.run_dir / "reals.png")
        session.images.save_fakes_grid(session.G_ema, session.run_dir / "fakes_init.png", session.batch_gpu)
    where = f"resuming from {plan.snapshot}" if plan.snapshot else "new run"
    session.printer.print(f"{where}: {session.run_dir}")


def restore_session(session: Session, snapshot_path: Path) -> None:
    """Load networks, optimizer states, pl mean, counters and RNG states from a training snapshot."""
    snapshot = load_snapshot(snapshot_path, device=session.ctx.device)
    for name in ("G", "D", "G_ema"):
        module = getattr(session, name)
        if name not in snapshot.networks:
            raise ValueError(f"{snapshot_path} has no network {name!r}: not a training snapshot")
        stored = snapshot.networks[name]
        if describe_network(stored) != describe_network(module):
            raise ValueError(f"{snapshot_path}: network {name} was built with other arguments than this run's "
                             f"({describe_network(stored)} vs {describe_network(module)})")
        module.load_state_dict(stored.state_dict())
    restored = unpack_training_state(snapshot.extra_tensors, snapshot.metadata.get("training_state"),
                                     session.optimizers, session.ctx.rank, session.ctx.world_size)
    session.counters = restored.counters
    session.counters.world_size = session.ctx.world_size
    session.loss.pl_mean.copy_(restored.pl_mean)
    if restored.rng is not None:
        restore_rng(*restored.rng)
    else:  # a different number of processes: exact continuation is impossible, keep it reproducible
        seed_everything(session.seed * session.ctx.world_size + session.ctx.rank + session.counters.cur_nimg)


# ----------------------------------------------------------------------------------------------------------------
# Step phase.


def configure_threads(session: Session) -> None:
    """Apply `options.threads` on a CPU device: a fixed count (the option's number, or SGMODELS_NUM_THREADS /
    OMP_NUM_THREADS), or "auto": a governor that follows the free cores (`follow_free_cores`)."""
    choice = session.options.threads
    if choice is None or session.ctx.device.type != "cpu":
        return
    fixed = explicit_thread_count() if choice == "auto" else None
    if choice != "auto":
        if not choice.isdigit() or int(choice) < 1:
            raise ValueError(f"threads must be 'auto' or a positive number, got {choice!r}")
        fixed = int(choice)
    if fixed is not None:
        torch.set_num_threads(fixed)
        return
    session.threads = ThreadGovernor()


def follow_free_cores(session: Session) -> None:
    """Switch torch's thread count when the free cores changed (checked at most every 10 s; see sgmodels.cpu)."""
    if session.threads is None:
        return
    wanted = session.threads.update()
    if wanted is not None and wanted != torch.get_num_threads():
        before = torch.get_num_threads()
        torch.set_num_threads(wanted)
        session.printer.print(f"threads: {before} -> {wanted} ({wanted} of the cores free; other processes use the "
                              f"rest)")


def run_session(session: Session) -> None:
    """Train until total_nimg: steps, ticks, snapshots."""
    session.tick_start_time = time.time()
    configure_threads(session)
    while True:
        follow_free_cores(session)
        training_step(session)
        done = session.counters.cur_nimg >= session.total_nimg
        tick_nimg = session.tick_kimg * 1000
        if not done and session.counters.cur_nimg < session.counters.tick_start_nimg + tick_nimg:
            _live_progress(session)
            continue
        end_tick(session)
        if done or session.counters.cur_tick % session.snap == 0:
            maintenance_start = time.time()
            snapshot_and_evaluate(session)
            session.maintenance_sec = time.time() - maintenance_start
        if done:
            break
    session.batches.close()


def training_step(session: Session) -> None:
    """One minibatch: schedule, reals, every due phase (forward, backward, gradient average, Adam), G_ema."""
    counters, ctx = session.counters, session.ctx
    sched = session.schedule.at(counters.cur_nimg, ctx.world_size)
    if session.schedule.enabled and lod_level_changed(counters.prev_lod, sched.lod):
        for optimizer in session.optimizers.values():
            optimizer.state.clear()
    for module in (session.G, session.D):
        set_lod(module, sched.lod)
    local_batch = sched.batch // ctx.world_size
    real_img, real_c = session.batches.next_batch(local_batch)  # [n, C, H, W] uint8, [n, c_dim]
    real_img = reals_at_lod(real_img.to(torch.float32) / 127.5 - 1, sched.lod)  # [n, C, H, W] in [-1, 1]
    G = session.G
    num_layers = mixing_layers(G.num_ws, sched.lod) if is_style_generator(G) else None
    batch_gpu = min(session.batch_gpu, local_batch)
    for phase in session.phases:
        if counters.batch_idx % phase.interval == 0:
            _run_phase(session, phase, real_img, real_c, sched.lr, batch_gpu, num_layers)
    average_running_buffers(session.G)  # w_avg saw only this process's fakes
    beta = ema_beta(sched.batch, session.training["ema_kimg"], counters.cur_nimg, session.training["ema_rampup"])
    update_ema(session.G_ema, session.G, beta)
    counters.cur_nimg += sched.batch
    counters.sampler_position += sched.batch
    counters.batch_idx += 1
    counters.prev_lod = sched.lod


def _run_phase(session: Session, phase: Phase, real_img: torch.Tensor, real_c: torch.Tensor, lr: float,
               batch_gpu: int, num_layers: int | None) -> None:
    """Accumulate one phase's gradients over rounds of `batch_gpu` samples, average them, take an Adam step."""
    n = real_img.shape[0]
    gen_z = torch.randn([n, session.G.z_dim], device=session.ctx.device)  # [n, z_dim]
    gen_c = session.images.random_labels(n)  # [n, c_dim]
    rounds = n // batch_gpu
    for group in phase.optimizer.param_groups:
        group["lr"] = lr * phase.lr_factor
    phase.module.requires_grad_(True)
    phase.optimizer.zero_grad(set_to_none=True)
    for r in range(rounds):
        part = slice(r * batch_gpu, (r + 1) * batch_gpu)
        stats = session.loss.accumulate_gradients(phase.name, real_img[part], real_c[part], gen_z[part],
                                                  gen_c[part], gain=phase.gain / rounds, num_layers=num_layers)
        session.collector.report_all(stats)
    phase.module.requires_grad_(False)
    average_gradients(phase.module)
    phase.optimizer.step()


def _live_progress(session: Session) -> None:
    """Progress between ticks (kimg, rate, ETA, running losses): right after the first step, then as the printer's
    cadence allows (a live line on a terminal, a line at least every minute on a pipe)."""
    if not session.printer.due():
        return
    elapsed = time.time() - session.tick_start_time
    done_kimg = (session.counters.cur_nimg - session.counters.tick_start_nimg) / 1000
    sec_per_kimg = elapsed / done_kimg if done_kimg > 0 else None
    session.printer.update(progress_line(session.counters.cur_nimg / 1000, session.total_nimg / 1000, sec_per_kimg,
                                         session.collector.local_means(), session.counters.prev_lod))


# ----------------------------------------------------------------------------------------------------------------
# Tick / report phase.


def end_tick(session: Session) -> None:
    """Reduce the statistics over processes, append a stats.jsonl line and print the progress line (rank 0)."""
    counters = session.counters
    now = time.time()
    stats = session.collector.reduce()  # collective: every process calls it
    tick_sec = max(now - session.tick_start_time - session.maintenance_sec, 1e-9)
    tick_kimg = (counters.cur_nimg - counters.tick_start_nimg) / 1000
    sec_per_kimg = tick_sec / tick_kimg if tick_kimg > 0 else math.nan
    counters.cur_tick += 1
    if session.writer is not None:  # rank 0
        sched = session.schedule.at(max(counters.cur_nimg - 1, 0), session.ctx.world_size)
        record = {
            "tick": counters.cur_tick, "kimg": counters.cur_nimg / 1000, "lod": counters.prev_lod,
            "resolution": sched.resolution, "batch": sched.batch, "lr": sched.lr, "sec_per_tick": tick_sec,
            "sec_per_kimg": sec_per_kimg, "total_sec": now - session.start_time,
            "maintenance_sec": session.maintenance_sec, "pl_mean": float(session.loss.pl_mean),
            **memory_usage(session.ctx.device), "timestamp": now, **stats,
        }
        session.writer.append(record)
        means = {name: value["mean"] for name, value in stats.items()}
        session.printer.print(progress_line(counters.cur_nimg / 1000, session.total_nimg / 1000, sec_per_kimg, means,
                                            counters.prev_lod, counters.cur_tick))
    counters.tick_start_nimg = counters.cur_nimg
    session.tick_start_time = now
    session.maintenance_sec = 0.0


# ----------------------------------------------------------------------------------------------------------------
# Snapshot and evaluation phases.


def snapshot_and_evaluate(session: Session) -> Path | None:
    """Write the snapshot and the fakes grid, then run the metric hook (rank 0); returns the snapshot path.

    The RNG states are captured before and restored after, so writing snapshots never changes the random stream:
    a run that stops here and resumes is bit-identical to one that goes on.
    """
    rng_state = capture_rng()
    rng_all = gather_objects(rng_state)  # collective
    path = None
    if session.ctx.is_main:
        path = write_snapshot(session, rng_all)
        fakes = session.run_dir / snapshot_name(session.counters.cur_nimg, session.tick_kimg, "fakes", ".png")
        session.images.save_fakes_grid(session.G_ema, fakes, session.batch_gpu)
        evaluate_snapshot(session, path)
    restore_rng(*rng_state)
    return path


def write_snapshot(session: Session, rng_all: list[tuple[dict[str, torch.Tensor], dict[str, Any]]]) -> Path:
    """Atomically write G, D, G_ema and the training state to network-snapshot-<kimg>.safetensors.

    Raises:
        WriteError: the run folder could not take it; the message names where the snapshot was kept instead.
    """
    counters = session.counters
    counters.world_size = session.ctx.world_size
    tensors, state = pack_training_state(counters, session.optimizers, rng_all, session.loss.pl_mean)
    metadata = {
        "kimg": counters.cur_nimg / 1000,
        "cur_nimg": counters.cur_nimg,
        "arch": session.options.arch,
        "config": session.options.config,
        "training_set": session.images.description,
        "training_options": session.options.to_json(),
        "training_state": state,
    }
    name = snapshot_name(counters.cur_nimg, session.tick_kimg)
    networks = {"G": session.G, "D": session.D, "G_ema": session.G_ema}
    # a full or read-only run folder must not discard the training: the snapshot then goes to a temporary folder
    return write_or_keep(session.run_dir, lambda folder: save_snapshot(folder / name, networks, metadata, tensors),
                         "the snapshot")


def evaluate_snapshot(session: Session, path: Path) -> None:
    """Call the metric hook on a snapshot; a failing hook is reported and training goes on (the snapshot is safe)."""
    if session.hook is None:
        return
    try:
        session.hook(run_dir=session.run_dir, snapshot_path=path, metrics=list(session.options.metrics),
                     training_set=dict(session.images.description), device=session.ctx.device)
    except ValueError as exc:  # bad data or weights found at snapshot time: the message says what to fix
        print(f"metric evaluation of {path.name} failed; training continues: {exc}", file=sys.stderr)
    except Exception:  # noqa: BLE001 - a metric failure must not end a long training run
        print(f"metric evaluation of {path.name} failed; training continues:\n{traceback.format_exc()}",
              file=sys.stderr)


__all__ = ["Session", "TrainOptions", "end_tick", "run_session", "setup_session", "snapshot_and_evaluate", "train",
           "training_step"]
