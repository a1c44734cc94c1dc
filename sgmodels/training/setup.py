"""Setup helpers of the training loop: networks from a preset and the dataset, the schedule, the loss settings and
the optimisation phases with their (lazily corrected) Adam optimizers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from sgmodels.data.dataset import ImageDataset
from sgmodels.interfaces import GeneratorModule
from sgmodels.presets import build_networks
from sgmodels.progressive import set_lod
from sgmodels.training.distributed import DistributedContext
from sgmodels.training.losses import LossConfig
from sgmodels.training.options import TrainOptions
from sgmodels.training.schedule import ProgressiveSchedule, lazy_adam_hyperparameters, lazy_regularization_factor

# Preset loss names -> LossConfig kinds.
_LOSS_KINDS = {"logistic_ns_r1": "logistic", "wgan_gp": "wgangp"}


@dataclass
class Phase:
    """One optimisation phase: which network, how often, with which loss gain and lr factor."""

    name: str  # Gmain, Greg, Gboth, Dmain, Dreg or Dboth (sgmodels.training.losses.PHASES)
    module: torch.nn.Module  # the network the phase trains
    optimizer: torch.optim.Optimizer  # shared by the main and regularisation phases of a network
    interval: int  # run on minibatches whose index is a multiple of this
    gain: float  # loss multiplier: the lazy interval for regularisation phases, else 1
    lr_factor: float  # c = k / (k + 1) for lazily regularised networks, else 1


@dataclass
class BuiltTraining:
    """Networks and resolved settings of a run."""

    G: GeneratorModule  # generator (training mode, requires_grad off until its phase)
    D: torch.nn.Module  # discriminator (same)
    training: dict[str, Any]  # preset training dict with overrides (JSON)
    loss_config: LossConfig  # loss hyper-parameters
    schedule: ProgressiveSchedule  # lod / minibatch / lr schedule
    batch_gpu: int  # samples per process and forward pass
    chunk: int  # DataLoader batch size (divides every per-process minibatch)
    total_kimg: float  # training length


def network_overrides(options: TrainOptions, dataset: ImageDataset) -> dict[str, Any]:
    """Preset overrides for this dataset: resolution, channels and label size come from the data."""
    overrides = dict(options.overrides)
    from_data = {"resolution": dataset.resolution, "img_channels": dataset.num_channels,
                 "c_dim": dataset.label_dim if options.cond else 0}
    for key, value in from_data.items():
        if overrides.get(key) is not None and int(overrides[key]) != value:
            raise ValueError(f"--{key.replace('_', '-')} {overrides[key]} contradicts the dataset ({value}); "
                             "rebuild the dataset with `sgmodels dataset create` or drop the option")
        overrides[key] = value
    return overrides


def build_training(options: TrainOptions, dataset: ImageDataset, ctx: DistributedContext) -> BuiltTraining:
    """Build G and D for the dataset and resolve the schedule, loss and minibatch split."""
    G, D, training = build_networks(options.arch or "stylegan2", str(options.config),
                                    **network_overrides(options, dataset))
    G, D = G.to(ctx.device).train().requires_grad_(False), D.to(ctx.device).train().requires_grad_(False)
    set_lod(D, 0.0)
    # The generator decides: the v1 discriminator always has a `lod` buffer, and a non-progressive generator
    # (--no-progressive) must not be trained against a discriminator that sees downscaled images.
    progressive = set_lod(G, 0.0) > 0
    schedule = make_schedule(training, dataset.resolution, options.overrides, progressive)
    per_process = [batch // ctx.world_size for batch in schedule.batch_sizes(ctx.world_size)]
    batch_gpu = options.batch_gpu or max(per_process)
    for size in per_process:
        if size % min(batch_gpu, size):
            raise ValueError(f"per-process minibatch {size} is not a multiple of --batch-gpu {batch_gpu}")
    chunk = math.gcd(*per_process, *[min(batch_gpu, size) for size in per_process])
    total_kimg = float(options.kimg if options.kimg is not None else training["total_kimg"])
    return BuiltTraining(G, D, training, loss_config_from(training), schedule, batch_gpu, chunk, total_kimg)


def make_schedule(
    training: dict[str, Any],
    img_resolution: int,
    overrides: dict[str, Any],
    networks_progressive: bool,
) -> ProgressiveSchedule:
    """The lod / minibatch / lr schedule of a preset's training dict.

    Non-progressive presets (or networks without `lod` buffers) use the constant `batch` and `lr`. For progressive
    presets an explicit --batch (or --lr) replaces the base value and scales the per-resolution dict by the same
    factor, so the ratios between levels stay those of the paper.
    """
    settings = training.get("progressive")
    if not settings or not networks_progressive:
        return ProgressiveSchedule(img_resolution=img_resolution, enabled=False, batch_base=int(training["batch"]),
                                   lr_base=float(training["lr"]))
    settings = dict(settings)
    batch_dict = {int(res): int(b) for res, b in settings.pop("batch_dict", {}).items()}
    lr_dict = {int(res): float(lr) for res, lr in settings.pop("lr_dict", {}).items()}
    if overrides.get("batch") is not None:
        scale = int(training["batch"]) / int(settings["batch_base"])
        batch_dict = {res: max(int(round(b * scale)), 1) for res, b in batch_dict.items()}
        settings["batch_base"] = int(training["batch"])
    if overrides.get("lr") is not None:
        scale = float(training["lr"]) / float(settings["lr_base"])
        lr_dict = {res: lr * scale for res, lr in lr_dict.items()}
        settings["lr_base"] = float(training["lr"])
    initial = min(int(settings.pop("initial_resolution", 8)), img_resolution)
    return ProgressiveSchedule(img_resolution=img_resolution, initial_resolution=initial, batch_dict=batch_dict,
                               lr_dict=lr_dict, **settings)


def loss_config_from(training: dict[str, Any]) -> LossConfig:
    """LossConfig of a preset training dict ("r1_gamma" is the WGAN-GP lambda for the "wgan_gp" loss)."""
    if training["loss"] not in _LOSS_KINDS:
        raise ValueError(f"unknown loss {training['loss']!r}; known: {', '.join(_LOSS_KINDS)}")
    kind = _LOSS_KINDS[training["loss"]]
    common: dict[str, Any] = {"kind": kind, "style_mixing_prob": float(training["style_mixing_prob"])}
    if kind == "wgangp":
        return LossConfig(**common, r1_gamma=0.0, pl_weight=0.0, wgan_lambda=float(training["r1_gamma"]))
    return LossConfig(**common, r1_gamma=float(training["r1_gamma"]), pl_weight=float(training["pl_weight"]),
                      pl_batch_shrink=int(training["pl_batch_shrink"]), pl_decay=float(training["pl_decay"]))


def make_phases(
    G: torch.nn.Module,
    D: torch.nn.Module,
    training: dict[str, Any],
) -> tuple[list[Phase], dict[str, torch.optim.Optimizer]]:
    """Phases and Adam optimizers of G and D.

    Without lazy regularisation (interval None) a network has one phase "<X>both" (main loss + regulariser every
    minibatch). With interval k it has "<X>main" every minibatch and "<X>reg" every k minibatches (gain k), and one
    Adam with lr * c and betas ** c, c = k / (k + 1) (StyleGAN2 appendix B; TF rescales even when the regulariser
    is off, as in config C for G).
    """
    config = loss_config_from(training)
    betas = tuple(float(b) for b in training["adam_betas"])
    phases: list[Phase] = []
    optimizers: dict[str, torch.optim.Optimizer] = {}
    for name, module, interval, has_reg in (("G", G, training["g_reg_interval"], config.has_g_reg),
                                            ("D", D, training["d_reg_interval"], config.has_d_reg)):
        c = lazy_regularization_factor(interval)  # the phases' lr factor; Adam gets lr * c and betas ** c
        lr, lazy_betas = lazy_adam_hyperparameters(float(training["lr"]), (betas[0], betas[1]), interval)
        optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=lazy_betas, eps=float(training["adam_eps"]))
        optimizers[name] = optimizer
        if interval is None:
            phases.append(Phase(f"{name}both", module, optimizer, interval=1, gain=1.0, lr_factor=1.0))
            continue
        phases.append(Phase(f"{name}main", module, optimizer, interval=1, gain=1.0, lr_factor=c))
        if has_reg:
            phases.append(Phase(f"{name}reg", module, optimizer, interval=int(interval), gain=float(interval),
                                lr_factor=c))
    return phases, optimizers
