"""`sgmodels train`: train StyleGAN, StyleGAN2 or the traditional baseline on a dataset zip or image folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from sgmodels.commands import pop_preset_options, preset_options, user_errors


def _metric_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    if not value:
        return []
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give metric names separated by commas, e.g. fid50k_full,kid50k_full")
    return names


def _hide_total_kimg(command: click.Command) -> click.Command:
    """Drop --total-kimg (generated from the preset overrides) from --help: it sets the same training length as
    --kimg, so one is shown; the alias keeps working for old scripts, with a deprecation warning."""
    for param in command.params:
        if isinstance(param, click.Option) and param.name == "total_kimg":
            param.hidden = True
    return command


@_hide_total_kimg
@click.command()
@click.option("--data", type=str, default=None, metavar="PATH",
              help="dataset zip or image folder (see `sgmodels dataset create`) [required for a new run]")
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("training-runs"),
              show_default=True, help="parent directory of the run directories")
@preset_options(training=True)
@click.option("--kimg", type=click.FloatRange(min=0, min_open=True), default=None,
              help="training length: stop after this many thousand real images shown to D, counted from the start "
                   "of the run [preset total_kimg; a resumed run keeps its own unless given]")
@click.option("--batch-gpu", type=click.IntRange(min=1), default=None,
              help="samples per process and forward pass; smaller than the per-process minibatch = gradient "
                   "accumulation [per-process minibatch]")
@click.option("--snap", type=click.IntRange(min=1), default=None,
              help="ticks between snapshots, fakes grids and metric evaluations [50; a resumed run keeps its own]")
@click.option("--tick-kimg", type=click.FloatRange(min=0, min_open=True), default=None,
              help="thousands of images per tick: one stats.jsonl record and progress line each (progress also "
                   "shows after the first step and at least every minute) [4; a resumed run keeps its own]")
@click.option("--seed", type=int, default=None, help="random seed of weights, latents, data order and grids [0]")
@click.option("--mirror/--no-mirror", default=None, help="x-flip augmentation (mirrored copies of every image)")
@click.option("--cond/--no-cond", default=None, help="condition G and D on the dataset labels")
@click.option("--resume", type=str, default=None, metavar="PATH|latest",
              help="continue a run: a snapshot file, a run directory, or `latest` (newest matching run in --outdir)")
@click.option("--metrics", type=str, default=None, callback=_metric_list, metavar="NAME,...",
              help="metrics to evaluate after each snapshot (needs sgeval or --metric-hook), e.g. fid50k_full")
@click.option("--metric-hook", type=str, default=None, metavar="MODULE:FUNCTION",
              help="function evaluating --metrics [the `sgmodels.metric_hooks` entry point]")
@click.option("--device", type=str, default=None, help="cpu, cuda or cuda:N [cuda when available]")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="data loader processes [3 on CUDA, 0 on CPU]")
@click.option("--threads", type=str, default="auto", show_default=True, metavar="auto|N",
              help="CPU threads: auto follows the cores other processes leave free (re-counted every 10 s), N fixes "
                   "them; SGMODELS_NUM_THREADS or OMP_NUM_THREADS set a fixed count too")
@click.option("--quiet", is_flag=True, help="no progress lines")
def train(**kwargs: Any) -> None:
    """Train a GAN and write snapshots, image grids and statistics into a new run directory.

    Each run writes OUTDIR/<id>-<data>-<arch>-<config>[-options]/ with training_options.json, stats.jsonl (one
    line per tick), network-snapshot-<kimg>.safetensors (G, D, G_ema and the full training state) and
    fakes<kimg>.png. Multi-GPU or multi-process: `torchrun --nproc_per_node=N -m sgmodels train ...` (--batch is the
    total over all processes).

    \b
    Examples:
      sgmodels dataset create /usr/share/datasets/fashion-mnist fmnist32.zip --resolution 32
      sgmodels train --arch stylegan2 --config cpu32 --data fmnist32.zip --outdir runs --kimg 200 --tick-kimg 2
      sgmodels train --arch stylegan --config f --data ffhq1024.zip --outdir runs --kimg 25000 --mirror
      sgmodels train --outdir runs --resume latest --kimg 400
    """
    from sgmodels.training.loop import train as run_training
    from sgmodels.training.options import TrainOptions

    with user_errors():
        _refuse_imported_resume(kwargs.get("resume"))
        options = TrainOptions(**_options_from_cli(kwargs))
        run_dir = run_training(options)
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: one message per job
        click.echo(f"finished: {run_dir}")


def _refuse_imported_resume(resume: str | None) -> None:
    """--resume needs an sgmodels training snapshot (networks, optimizer state, counters, run options). An imported
    checkpoint (official pickle, rosinality .pt) holds networks only, so it is refused here, by its magic bytes:
    nothing is unpickled."""
    if resume is None or resume == "latest" or not Path(resume).is_file():
        return
    from sgmodels.importers import detect_checkpoint_format

    found = detect_checkpoint_format(resume)
    if found != "sgmodels":
        what = "not an sgmodels snapshot" if found == "unknown" else f"an imported {found} checkpoint"
        raise ValueError(f"--resume {resume}: {what}, which cannot be resumed: resuming needs an sgmodels training "
                         "snapshot (network-snapshot-*.safetensors with its run directory). Imported networks can be "
                         "generated from, evaluated and converted (`sgmodels convert IN OUT`), not trained further")


def _options_from_cli(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map the click keywords onto TrainOptions fields (the preset overrides go into `overrides`)."""
    arch, config, overrides = pop_preset_options(kwargs, training=True)
    total_kimg = overrides.pop("total_kimg", None)
    kimg = kwargs.pop("kimg")
    if total_kimg is not None:
        click.echo("warning: --total-kimg is a deprecated alias of --kimg (the same training length); use --kimg",
                   err=True)
    if total_kimg is not None and kimg is not None and float(total_kimg) != float(kimg):
        raise ValueError(f"--kimg {kimg} and --total-kimg {total_kimg} disagree; give one of them")
    quiet = kwargs.pop("quiet")
    return {**kwargs, "arch": arch, "config": config, "overrides": overrides,
            "kimg": kimg if kimg is not None else total_kimg, "outdir": str(kwargs["outdir"]), "progress": not quiet}
