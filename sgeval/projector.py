"""StyleGAN2 projector: the w (and noise maps) whose image is closest to a target under a differentiable distance.

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", Section 5 and Appendix D; matches
StyleGAN2 TF `projector.Projector` and stylegan2-ada-pytorch `projector.project` (docs/metrics.md section 11):

* one w in W (not W+), initialised at w_avg and broadcast to all `num_ws` layers; sigma_w = sqrt(sum_i ||w_i -
  w_avg||^2 / N) over `w_avg_samples` mapped z (one scalar, not a per-dimension std);
* every synthesis noise map (the `noise_const` buffers of the official PyTorch code and of sgmodels) initialised
  N(0, 1), optimised with the multi-scale autocorrelation regulariser and renormalised to zero mean and unit
  (population) std after every step;
* per step: Gaussian noise of std sigma_w * 0.05 * max(0, 1 - t / 0.75)^2 added to w, learning rate with a 5 %
  linear warm-up and a 25 % cosine ramp-down, one Adam step on [w, noise maps];
* images are compared at <= 256 x 256: both area-downsampled (= TF's box filter for multiples of 256) before the
  distance, which does its own input scaling (e.g. [-1, 1] -> [0, 255] for NVIDIA's vgg16.pt).

Deliberate difference from ADA: the optimised noise maps are kept (returned, and used for the final image and the
final distance). ADA's `project()` works on a deep copy of G and its CLI re-renders with the original noise, which is
not the paper's projection error. G itself is never modified: its noise buffers are swapped for the optimised
tensors during the call and restored afterwards, even on an error (so G must not be used concurrently meanwhile).

The result is a function of (G, target, distance, settings, seed) only: the noise-map initialisation and the latent
noise come from a CPU `torch.Generator` seeded with `seed`, whatever the device.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
import torch.nn.functional as F

from sgeval.metrics.projection import ProjectorSettings
from sgeval.sources.sgmodels_adapter import is_style_generator

if TYPE_CHECKING:
    from sgeval.sources.interfaces import LatentGenerator, StyleGenerator

__all__ = [
    "DEFAULT_SEED",
    "ImageDistanceFn",
    "ProjectionHistory",
    "ProjectionResult",
    "ProjectorSettings",
    "WStatistics",
    "check_projectable",
    "check_target_shape",
    "downsample_for_distance",
    "noise_buffers",
    "noise_regularizer",
    "project",
    "synthesize_with_noise",
    "target_to_float",
    "w_statistics",
]

DEFAULT_SEED = 303  # stylegan2-ada-pytorch projector.py --seed default
NOISE_BUFFER = "noise_const"  # leaf name of the noise buffers (official PyTorch code, sgmodels)

# A differentiable image distance: float [N, C, H, W] in ~[-1, 1] twice (same shape) -> float32 [N]
# (an `sgeval.distances.ImageDistance`, or any callable with that contract).
ImageDistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class WStatistics:
    """Centre and spread of W: where the projection starts and how large its latent noise is."""

    w_avg: torch.Tensor  # float32 [w_dim] on CPU, mean of the mapped samples
    w_std: float  # sigma_w: RMS distance of the samples from w_avg over all w_dim dimensions (one scalar)


@dataclasses.dataclass(frozen=True)
class ProjectionHistory:
    """Per-step traces of the optimisation (index = step)."""

    distance: np.ndarray  # float64 [num_steps]: distance at the step (w with latent noise, before the update)
    noise_regularizer: np.ndarray  # float64 [num_steps]: unweighted noise regulariser at the step
    learning_rate: np.ndarray  # float64 [num_steps]: learning rate of the step


@dataclasses.dataclass(frozen=True)
class ProjectionResult:
    """A projected target."""

    ws: torch.Tensor  # float32 [num_ws, w_dim] on CPU: the optimised w (no latent noise) repeated for every layer
    noise: dict[str, torch.Tensor]  # synthesis buffer name -> optimised noise map float32 [r, r] on CPU
    image: torch.Tensor  # float32 [C, H, W] on CPU, ~[-1, 1]: G.synthesis(ws) with the optimised noise maps
    distance: float  # distance(image, target) at <= max_distance_resolution: the projection error
    history: ProjectionHistory  # per-step traces

    @property
    def w(self) -> torch.Tensor:
        """float32 [w_dim]: the single optimised w."""
        return self.ws[0]


def check_projectable(G: LatentGenerator) -> StyleGenerator:
    """G itself, typed as the style generator it must be: raise ValueError unless G has a W space (mapping,
    synthesis, w_dim, num_ws) and is unconditional."""
    if not is_style_generator(G):
        raise ValueError(f"the projector needs a generator with a mapping network (W space: mapping, synthesis, "
                         f"w_dim, num_ws); this {type(G).__name__} has none (a traditional generator feeds z to its "
                         f"first layer only)")
    if int(getattr(G, "c_dim", 0) or 0) != 0:
        raise ValueError(f"the projector supports unconditional generators only; this one has c_dim = {G.c_dim}")
    return G


def check_target_shape(shape: tuple[int, ...], G: LatentGenerator) -> None:
    """Raise ValueError unless a target shape (C, H, W) is G's output shape (img_channels, res, res)."""
    expected = (int(G.img_channels), int(G.img_resolution), int(G.img_resolution))
    if tuple(shape) != expected:
        raise ValueError(f"target images have shape {tuple(shape)} (C, H, W), but the generator makes {expected} "
                         f"images; crop/resize the targets to {expected[1]}x{expected[2]} with {expected[0]} "
                         f"channel{'s' if expected[0] > 1 else ''} first")


def _device_of(G: LatentGenerator) -> torch.device:
    parameter = next(iter(G.parameters()), None) if isinstance(G, torch.nn.Module) else None
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def w_statistics(G: StyleGenerator, num_samples: int = 10_000, seed: int = 123, batch_size: int = 1000) -> WStatistics:
    """w_avg and sigma_w of `num_samples` mapped latents (official recipe: z = RandomState(seed).randn(N, z_dim)).

    Args:
        G: generator with the official interface (`G.mapping(z, None) -> ws [N, num_ws, w_dim]`).
        num_samples, seed: the z samples (official: 10,000 and 123).
        batch_size: z per mapping call (does not change the result beyond float round-off).
    Returns:
        WStatistics; sums are float64, sigma_w = sqrt(sum_i ||w_i - w_avg||^2 / N).
    """
    check_projectable(G)
    device = _device_of(G)
    z_all = np.random.RandomState(seed).randn(num_samples, int(G.z_dim)).astype(np.float32)  # [N, z_dim]
    ws = []
    for start in range(0, num_samples, batch_size):
        z = torch.from_numpy(z_all[start:start + batch_size]).to(device)  # [B, z_dim]
        ws.append(G.mapping(z, None)[:, 0].double().cpu())  # [B, w_dim]: the layers share one w
    w = torch.cat(ws)  # [N, w_dim] float64
    w_avg = w.mean(dim=0)  # [w_dim]
    w_std = float(((w - w_avg).square().sum() / num_samples).sqrt())
    return WStatistics(w_avg=w_avg.float(), w_std=w_std)


def noise_buffers(G: StyleGenerator) -> dict[str, torch.Tensor]:
    """The synthesis noise buffers of G, by their name under `G.synthesis` (e.g. "b8.conv0.noise_const")."""
    synthesis = G.synthesis
    if not isinstance(synthesis, torch.nn.Module):
        return {}
    return {name: buffer for name, buffer in synthesis.named_buffers() if name.rsplit(".", 1)[-1] == NOISE_BUFFER}


def noise_regularizer(noises: Mapping[str, torch.Tensor] | list[torch.Tensor]) -> torch.Tensor:
    """Multi-scale autocorrelation penalty of noise maps [r, r]: a float32 scalar tensor.

    For each map, at full size and after each 2x2 average-pooling until the size is <= 8: the squared mean of
    v * roll(v, 1) along x plus the same along y (the official regulariser; 0 for white noise on average).
    """
    maps = list(noises.values()) if isinstance(noises, Mapping) else list(noises)
    total = torch.zeros([], device=maps[0].device) if maps else torch.zeros([])
    for noise in maps:
        v = noise[None, None].float()  # [1, 1, r, r]
        while True:
            total = total + (v * torch.roll(v, shifts=1, dims=3)).mean().square()
            total = total + (v * torch.roll(v, shifts=1, dims=2)).mean().square()
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, kernel_size=2)  # [1, 1, r/2, r/2]
    return total


def downsample_for_distance(images: torch.Tensor, max_resolution: int = 256) -> torch.Tensor:
    """float [N, C, H, W] -> [N, C, h, w] with h, w <= max_resolution: area (box) downsampling when larger."""
    if max(images.shape[2], images.shape[3]) <= max_resolution:
        return images
    return F.interpolate(images, size=(max_resolution, max_resolution), mode="area")


def target_to_float(target: torch.Tensor, G: LatentGenerator) -> torch.Tensor:
    """Check a target against G's output and return it as float32 [1, C, H, W] in ~[-1, 1] on G's device.

    Args:
        target: uint8 [C, H, W] (an image file's pixels; x / 127.5 - 1) or float [C, H, W] already in ~[-1, 1]
            (e.g. an unquantised generator output).
    Raises:
        ValueError: not the generator's output shape [img_channels, img_resolution, img_resolution].
    """
    check_target_shape(tuple(target.shape), G)
    device = _device_of(G)
    if target.dtype == torch.uint8:
        return (target.to(device, torch.float32) / 127.5 - 1.0)[None]  # [1, C, H, W]
    if not target.is_floating_point():
        raise ValueError(f"target must be uint8 or float, got {target.dtype}")
    return target.to(device, torch.float32)[None]  # [1, C, H, W]


def _synthesis_module(G: StyleGenerator) -> torch.nn.Module:
    """G.synthesis for `_swapped_buffers`, which needs the nn.Module API (`get_submodule`). Cast, not checked, to keep
    behaviour: `noise_buffers` finds buffers only on a Module, so for any other synthesis the projector swaps
    nothing (and `synthesize_with_noise` fails as before when given noise maps for it)."""
    return cast(torch.nn.Module, G.synthesis)


@contextlib.contextmanager
def _swapped_buffers(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily replace buffers of `module` (by dotted name) with other tensors; restores the originals."""
    originals: dict[str, torch.Tensor] = {}
    try:
        for name, tensor in tensors.items():
            owner_name, _, leaf = name.rpartition(".")
            owner = module.get_submodule(owner_name)
            originals[name] = getattr(owner, leaf)
            setattr(owner, leaf, tensor)  # nn.Module keeps it a buffer (same persistence)
        yield
    finally:
        for name, tensor in originals.items():
            owner_name, _, leaf = name.rpartition(".")
            setattr(module.get_submodule(owner_name), leaf, tensor)


@torch.no_grad()
def synthesize_with_noise(G: StyleGenerator, ws: torch.Tensor, noise: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Re-render projections: G.synthesis(ws, noise_mode="const") with the given noise maps in place of G's.

    Args:
        ws: float [N, num_ws, w_dim] (e.g. `result.ws[None]`).
        noise: synthesis buffer name -> noise map [r, r] (e.g. `result.noise`); G's buffers are restored after.
    Returns:
        float [N, C, H, W] in ~[-1, 1] on G's device.
    """
    device = _device_of(G)
    with _swapped_buffers(_synthesis_module(G), {name: value.to(device) for name, value in noise.items()}):
        images: torch.Tensor = G.synthesis(ws.to(device), noise_mode="const")  # [N, C, H, W]
    return images


def _synthesize(G: StyleGenerator, w: torch.Tensor) -> torch.Tensor:
    """float [1, C, H, W] of a single w [1, 1, w_dim] broadcast to all layers, with the (swapped) constant noise."""
    images: torch.Tensor = G.synthesis(w.repeat(1, int(G.num_ws), 1), noise_mode="const")  # ws [1, num_ws, w_dim]
    return images


def _distance(distance: ImageDistanceFn, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """distance of one image pair, checked: a float tensor [1]."""
    value = distance(images, target)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"the image distance must return one value per image pair ([1] here), got {shape}")
    return value.reshape(1).float()


def _gradients_to(params: list[torch.Tensor], loss: torch.Tensor) -> None:
    """Set `.grad` of the optimised tensors only (G's and the distance's parameters are left untouched)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for param, grad in zip(params, grads, strict=True):
        param.grad = torch.zeros_like(param) if grad is None else grad


@torch.no_grad()
def _renormalize_(noise: Mapping[str, torch.Tensor]) -> None:
    """In place: every noise map back to zero mean and unit population std (after each Adam step)."""
    for buffer in noise.values():
        buffer -= buffer.mean()
        buffer *= buffer.square().mean().rsqrt()


def project(
    G: StyleGenerator,
    target: torch.Tensor,
    distance: ImageDistanceFn,
    *,
    settings: ProjectorSettings | None = None,
    seed: int = DEFAULT_SEED,
    w_stats: WStatistics | None = None,
    progress: Callable[[int], None] | None = None,
) -> ProjectionResult:
    """Project one target image into G's W space (plus noise maps); see the module docstring for the algorithm.

    Args:
        G: unconditional generator with the official interface (mapping, synthesis(ws, noise_mode="const"), z_dim,
            w_dim, num_ws, img_resolution, img_channels); not modified.
        target: uint8 [C, H, W] or float [C, H, W] in ~[-1, 1], at G's channels and resolution.
        distance: differentiable distance, float [N, C, h, w] in ~[-1, 1] twice -> [N] (e.g. LPIPS); called at
            <= settings.max_distance_resolution.
        settings: hyper-parameters (default: the official ones, 1000 steps).
        seed: seed of the noise-map initialisation and of the latent noise.
        w_stats: precomputed `w_statistics(G, settings.w_avg_samples, settings.w_avg_seed)` (computed when None;
            pass it when projecting many targets).
        progress: called with the number of steps done after every step.
    Returns:
        ProjectionResult (CPU tensors).
    Raises:
        ValueError: G without W space or conditional, target of the wrong shape, a bad distance output, or a
            non-finite distance (diverged optimisation).
    """
    settings = settings or ProjectorSettings()
    check_projectable(G)
    target_images = downsample_for_distance(target_to_float(target, G), settings.max_distance_resolution)
    stats = w_stats if w_stats is not None else w_statistics(G, settings.w_avg_samples, settings.w_avg_seed)
    device = _device_of(G)
    generator = torch.Generator().manual_seed(int(seed))  # CPU: the same draws on every device

    w_opt = stats.w_avg.reshape(1, 1, -1).to(device).clone().requires_grad_(True)  # [1, 1, w_dim]
    noise = {name: torch.randn(buffer.shape, generator=generator).to(device).requires_grad_(True)
             for name, buffer in noise_buffers(G).items()}  # [r, r] each
    params = [w_opt, *noise.values()]
    optimizer = torch.optim.Adam(params, lr=settings.initial_learning_rate, betas=settings.adam_betas,
                                 eps=settings.adam_eps)
    traces: list[torch.Tensor] = []  # [2] per step: distance, regulariser (one device sync at the end)
    rates = [settings.learning_rate(step) for step in range(settings.num_steps)]

    with _swapped_buffers(_synthesis_module(G), noise):
        for step in range(settings.num_steps):
            for group in optimizer.param_groups:
                group["lr"] = rates[step]
            w_noise = torch.randn(w_opt.shape, generator=generator).to(device)  # [1, 1, w_dim]
            w_noise = w_noise * settings.latent_noise_scale(step, stats.w_std)
            images = downsample_for_distance(_synthesize(G, w_opt + w_noise), settings.max_distance_resolution)
            dist = _distance(distance, images, target_images)  # [1]
            reg = noise_regularizer(noise) if noise else torch.zeros([], device=device)  # []
            _gradients_to(params, dist.sum() + settings.regularize_noise_weight * reg)
            optimizer.step()
            _renormalize_(noise)
            traces.append(torch.stack([dist.detach()[0], reg.detach()]))
            if progress is not None:
                progress(step + 1)
        with torch.no_grad():
            image = _synthesize(G, w_opt.detach())  # [1, C, H, W], optimised noise still in place
            final = _distance(distance, downsample_for_distance(image, settings.max_distance_resolution),
                              target_images)
    trace = torch.stack(traces).double().cpu().numpy()  # [num_steps, 2]
    if not np.isfinite(trace).all() or not torch.isfinite(final).all():
        raise ValueError("the projection diverged: the distance became NaN or infinite (check the distance's "
                         "weights and the generator)")
    return ProjectionResult(
        ws=w_opt.detach()[0].repeat(int(G.num_ws), 1).cpu(),  # [num_ws, w_dim]
        noise={name: buffer.detach().cpu() for name, buffer in noise.items()},
        image=image[0].detach().float().cpu(),
        distance=float(final[0]),
        history=ProjectionHistory(distance=trace[:, 0], noise_regularizer=trace[:, 1],
                                  learning_rate=np.asarray(rates, dtype=np.float64)),
    )
