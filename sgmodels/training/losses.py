"""GAN losses and regularisers of StyleGAN, StyleGAN2 and the ProGAN-style baseline.

- Non-saturating logistic loss for G, logistic loss for D (Goodfellow et al. 2014; StyleGAN `G_logistic_ns`,
  `D_logistic`).
- R1 penalty gamma/2 * ||grad_x D(x)||^2 on reals (Mescheder et al. 2018; StyleGAN `D_logistic_simplegp`), every
  step or lazily every k steps (StyleGAN2) with the regulariser multiplied by k (the `gain` of a phase).
- Path-length regularisation (StyleGAN2 `G_logistic_ns_pathreg`, ADA `StyleGAN2Loss`).
- WGAN-GP with the epsilon drift term (Gulrajani et al. 2017; ProGAN `D_wgan_gp`, `G_wgan`).
- Style-mixing regularisation (StyleGAN section 3.1): with probability p per generator call, the layers from a
  random cutoff on use the styles of a second latent. As in the official code the decision and the cutoff are drawn
  once per call (one per minibatch and process), not per sample.

`GANLoss.accumulate_gradients` runs one training phase (ADA's phase names: Gmain, Greg, Gboth, Dmain, Dreg, Dboth)
and calls backward(); the training loop owns the optimizers and the gradient reduction across processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sgmodels.interfaces import LatentGenerator, is_style_generator
from sgmodels.mixing import mix_ws, random_crossovers

LOSS_KINDS = ("logistic", "wgangp")
PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


# ----------------------------------------------------------------------------------------------------------------
# Pure loss terms: per-sample values, no reduction.


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """softplus(-D(G(z))): float [N, 1] logits -> float [N, 1] losses (>= 0)."""
    return F.softplus(-fake_logits)


def d_logistic_fake_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """softplus(D(G(z))), the fakes' half of D's logistic loss: float [N, 1] logits -> float [N, 1] losses (>= 0)."""
    return F.softplus(fake_logits)


def d_logistic_real_loss(real_logits: torch.Tensor) -> torch.Tensor:
    """softplus(-D(x)), the reals' half of D's logistic loss: float [N, 1] logits -> float [N, 1] losses (>= 0)."""
    return F.softplus(-real_logits)


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """softplus(D(G(z))) + softplus(-D(x)): two float [N, 1] logits -> float [N, 1] losses (>= 0). Training applies
    the two halves in separate passes (`d_logistic_fake_loss`, `d_logistic_real_loss`), as the official loop."""
    return d_logistic_fake_loss(fake_logits) + d_logistic_real_loss(real_logits)


def r1_penalty(real_img: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """Squared gradient norm ||grad_x D(x)||^2 per real image (multiply by gamma / 2 for the R1 loss).

    Args:
        real_img: float [N, C, H, W] with requires_grad=True, the input that produced `real_logits`.
        real_logits: float [N, 1] = D(real_img).
    Returns:
        float [N], differentiable (create_graph=True) so the penalty itself can be back-propagated.
    """
    (grads,) = torch.autograd.grad(outputs=real_logits.sum(), inputs=real_img, create_graph=True)  # [N, C, H, W]
    return grads.square().sum(dim=[1, 2, 3])


def path_lengths(img: torch.Tensor, ws: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Jacobian-vector lengths of StyleGAN2 path-length regularisation.

    a = sqrt(mean over layers of sum over w_dim of J^2), where J = d(sum(img * noise)) / d ws.

    Args:
        img: float [N, C, H, W] = synthesis(ws).
        ws: float [N, num_ws, w_dim] with a graph to `img`.
        noise: float [N, C, H, W], N(0, 1) / sqrt(H * W) (see `path_length_noise`).
    Returns:
        float [N], differentiable.
    """
    (grads,) = torch.autograd.grad(outputs=(img * noise).sum(), inputs=ws, create_graph=True)  # [N, num_ws, w_dim]
    return grads.square().sum(dim=2).mean(dim=1).sqrt()


def path_length_noise(img: torch.Tensor) -> torch.Tensor:
    """Random image-space direction y ~ N(0, I) / sqrt(H * W), float [N, C, H, W] like `img` (global torch RNG)."""
    return torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])


def wgan_gradient_penalty(
    D: Callable[..., torch.Tensor],
    real_img: torch.Tensor,
    fake_img: torch.Tensor,
    c: torch.Tensor | None,
    target: float = 1.0,
) -> torch.Tensor:
    """(||grad D(x_hat)|| - target)^2 at x_hat = lerp(real, fake, u), u ~ U(0, 1) per sample (WGAN-GP).

    Args:
        D: discriminator, `D(img, c) -> [N, 1]`.
        real_img, fake_img: float [N, C, H, W] (fakes detached).
        c: labels [N, c_dim] or None.
        target: the gradient norm the penalty pulls towards (ProGAN `wgan_target`).
    Returns:
        float [N], differentiable (multiply by lambda / target^2 for the loss).
    """
    u = torch.rand([real_img.shape[0], 1, 1, 1], device=real_img.device, dtype=real_img.dtype)  # [N, 1, 1, 1]
    mixed = torch.lerp(real_img.detach(), fake_img.detach(), u).requires_grad_(True)  # [N, C, H, W]
    (grads,) = torch.autograd.grad(outputs=D(mixed, c).sum(), inputs=mixed, create_graph=True)  # [N, C, H, W]
    return (grads.flatten(1).norm(dim=1) - target).square()


def draw_mixing_cutoff(
    prob: float,
    num_layers: int,
    generator: torch.Generator | None = None,
) -> int | None:
    """One style-mixing decision: None (no mixing, probability 1 - prob) or a cutoff ~ U{1, ..., num_layers - 1}.

    Layers >= cutoff take the second latent's styles. `num_layers` is the number of style layers in use (fewer
    while growing progressively, `schedule.mixing_layers`); with fewer than 2 layers there is nothing to mix.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"style mixing probability must lie in [0, 1], got {prob}")
    if prob == 0.0 or num_layers < 2:
        return None
    if torch.rand([], generator=generator).item() >= prob:
        return None
    return int(random_crossovers(1, 2, num_layers, generator=generator)[0, 0])


# ----------------------------------------------------------------------------------------------------------------
# The loss object used by the training loop.


@dataclass(frozen=True)
class LossConfig:
    """Loss hyper-parameters (defaults: StyleGAN2 config F; StyleGAN v1 uses pl_weight 0, same R1)."""

    kind: str = "logistic"  # "logistic" (non-saturating G, logistic D + R1) or "wgangp" (ProGAN)
    r1_gamma: float = 10.0  # R1 weight gamma (penalty gamma / 2 * ||grad||^2); 0 disables
    pl_weight: float = 0.0  # path-length regulariser weight (StyleGAN2: 2); 0 disables
    pl_batch_shrink: int = 2  # the path-length pass uses batch // shrink samples
    pl_decay: float = 0.01  # decay of the running mean path length a_mean
    style_mixing_prob: float = 0.0  # probability of mixing two latents per generator call (StyleGAN: 0.9)
    wgan_lambda: float = 10.0  # WGAN-GP gradient penalty weight
    wgan_target: float = 1.0  # WGAN-GP target gradient norm
    wgan_epsilon: float = 0.001  # WGAN-GP drift penalty epsilon * D(x)^2

    def __post_init__(self) -> None:
        if self.kind not in LOSS_KINDS:
            raise ValueError(f"loss kind must be one of {LOSS_KINDS}, got {self.kind!r}")
        if self.r1_gamma < 0 or self.pl_weight < 0 or self.wgan_lambda < 0 or self.wgan_epsilon < 0:
            raise ValueError("loss weights (r1_gamma, pl_weight, wgan_lambda, wgan_epsilon) must be >= 0")
        if not 0.0 <= self.style_mixing_prob <= 1.0:
            raise ValueError(f"style_mixing_prob must lie in [0, 1], got {self.style_mixing_prob}")
        if self.pl_batch_shrink < 1:
            raise ValueError(f"pl_batch_shrink must be >= 1, got {self.pl_batch_shrink}")

    @property
    def has_g_reg(self) -> bool:
        """Whether G has a regulariser (path length) to run in a Greg / Gboth phase."""
        return self.kind == "logistic" and self.pl_weight > 0

    @property
    def has_d_reg(self) -> bool:
        """Whether D has a separate regulariser (R1) to run in a Dreg / Dboth phase (WGAN-GP lives in Dmain)."""
        return self.kind == "logistic" and self.r1_gamma > 0


class GANLoss:
    """Computes the phase losses of G and D and back-propagates them (gradients accumulate in .grad).

    `pl_mean` (float32 scalar tensor) is the running mean path length, part of the training state.
    `reduce_mean` averages a detached scalar over training processes (identity for one process), so every process
    keeps the same pl_mean.
    """

    def __init__(
        self,
        G: LatentGenerator,  # generator being trained: mapping + synthesis, or any G(z, c) for WGAN/no-mixing
        D: torch.nn.Module,  # discriminator D(img, c) -> [N, 1]
        config: LossConfig,  # hyper-parameters
        reduce_mean: Callable[[torch.Tensor], torch.Tensor] | None = None,  # cross-process mean of a scalar
    ) -> None:
        self.G = G
        self.D = D
        self.config = config
        self.reduce_mean = reduce_mean or (lambda value: value)
        self.is_style_based = is_style_generator(G)
        if not self.is_style_based and (config.pl_weight > 0 or config.style_mixing_prob > 0):
            raise ValueError(
                f"{type(G).__name__} has no mapping/synthesis networks: path-length regularisation and style "
                "mixing need a style-based generator (use pl_weight=0 and mixing 0)"
            )
        device = next(G.parameters()).device
        self.pl_mean = torch.zeros([], device=device)

    def run_G(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        num_layers: int | None = None,
        update_emas: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Generate training fakes, with style mixing. Returns (img [N, C, H, W], ws [N, num_ws, w_dim] or None).

        num_layers: style layers in use (progressive growing); default all of G.num_ws.
        update_emas: let the mapping network update its w_avg tracker with the first latents' w (before mixing).
            As in the official code (TF G_style / G_main with is_training, stylegan2-ada-pytorch), every training
            generator pass updates it: G main, G path-length and D fake passes; the mixing latents never do.
        """
        labels = c if c.shape[1] > 0 else None
        G = self.G
        if not is_style_generator(G):
            return G(z, labels), None
        ws = G.mapping(z, labels, update_emas=update_emas)  # [N, num_ws, w_dim]
        cutoff = draw_mixing_cutoff(self.config.style_mixing_prob, num_layers or ws.shape[1])
        if cutoff is not None:
            ws2 = G.mapping(torch.randn_like(z), labels, update_emas=False)  # [N, num_ws, w_dim]
            crossovers = torch.full([ws.shape[0], 1], cutoff, dtype=torch.int64, device=ws.device)  # [N, 1]
            ws = mix_ws([ws, ws2], crossovers)  # [N, num_ws, w_dim]
        return G.synthesis(ws), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """D logits float [N, 1] for images [N, C, H, W] and labels [N, c_dim] (c_dim may be 0)."""
        return self.D(img, c if c.shape[1] > 0 else None)

    def accumulate_gradients(
        self,
        phase: str,
        real_img: torch.Tensor,
        real_c: torch.Tensor,
        gen_z: torch.Tensor,
        gen_c: torch.Tensor,
        gain: float,
        num_layers: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute the losses of `phase`, call backward() with loss.mean() * gain, return detached statistics.

        Args:
            phase: one of PHASES ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth").
            real_img: float [N, C, H, W] in [-1, 1] (already shown at the current level of detail).
            real_c: float [N, c_dim] labels of the reals.
            gen_z: float [N, z_dim] latents; gen_c: float [N, c_dim] labels of the fakes.
            gain: multiplier of the mean loss: the lazy-regularisation interval for Greg/Dreg, divided by the number
                of gradient-accumulation rounds.
            num_layers: style layers in use (progressive growing), for the mixing cutoff.
        Returns:
            name -> detached float tensor of per-sample values, for the training statistics.
        """
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
        stats: dict[str, torch.Tensor] = {}
        if phase in ("Gmain", "Gboth"):
            self._g_main(gen_z, gen_c, gain, num_layers, stats)
        if phase in ("Greg", "Gboth") and self.config.has_g_reg:
            self._g_path_length(gen_z, gen_c, gain, num_layers, stats)
        if phase in ("Dmain", "Dboth"):
            self._d_fake(gen_z, gen_c, real_img, real_c, gain, num_layers, stats)
        if phase in ("Dmain", "Dreg", "Dboth"):
            self._d_real(phase, real_img, real_c, gain, stats)
        return stats

    def _g_main(self, z: torch.Tensor, c: torch.Tensor, gain: float, num_layers: int | None,
                stats: dict[str, torch.Tensor]) -> None:
        gen_img, _ws = self.run_G(z, c, num_layers)
        fake_logits = self.run_D(gen_img, c)  # [N, 1]
        wgan = self.config.kind == "wgangp"
        loss = -fake_logits if wgan else g_nonsaturating_loss(fake_logits)  # [N, 1]
        stats["Loss/scores/fake"] = fake_logits.detach()
        stats["Loss/G/loss"] = loss.detach()
        loss.mean().mul(gain).backward()

    def _g_path_length(self, z: torch.Tensor, c: torch.Tensor, gain: float, num_layers: int | None,
                       stats: dict[str, torch.Tensor]) -> None:
        batch = max(z.shape[0] // self.config.pl_batch_shrink, 1)
        gen_img, ws = self.run_G(z[:batch], c[:batch], num_layers)
        if ws is None:
            raise ValueError("path-length regularisation needs a style-based generator (w); set pl_weight=0")
        lengths = path_lengths(gen_img, ws, path_length_noise(gen_img))  # [n]
        local_mean = lengths.mean()
        # Value: the running mean updated with the batch mean of all processes (identical everywhere); gradient:
        # through this process's mean, as in the official code (where a_mean is a differentiable lerp).
        global_mean = self.reduce_mean(local_mean.detach())
        new_mean = self.pl_mean + self.config.pl_decay * (global_mean - self.pl_mean)
        pl_mean = new_mean + self.config.pl_decay * (local_mean - local_mean.detach())
        self.pl_mean.copy_(new_mean.detach())
        penalty = (lengths - pl_mean).square()  # [n]
        loss = penalty * self.config.pl_weight  # [n]
        stats["Loss/pl_penalty"] = penalty.detach()
        stats["Loss/G/reg"] = loss.detach()
        (gen_img[:, 0, 0, 0] * 0 + loss).mean().mul(gain).backward()

    def _d_fake(self, z: torch.Tensor, c: torch.Tensor, real_img: torch.Tensor, real_c: torch.Tensor, gain: float,
                num_layers: int | None, stats: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            gen_img, _ws = self.run_G(z, c, num_layers)  # [N, C, H, W]
        fake_logits = self.run_D(gen_img, c)  # [N, 1]
        if self.config.kind == "wgangp":
            # ProGAN generates fakes with the reals' labels; here fakes have their own, so the interpolated images
            # are judged with the real labels.
            penalty = wgan_gradient_penalty(self.run_D, real_img, gen_img, real_c, self.config.wgan_target)  # [N]
            weight = self.config.wgan_lambda / self.config.wgan_target**2
            loss = fake_logits + (penalty * weight)[:, None]  # [N, 1]
            stats["Loss/wgan/gradient_penalty"] = penalty.detach()
        else:
            loss = d_logistic_fake_loss(fake_logits)  # [N, 1]
        stats["Loss/scores/fake"] = fake_logits.detach()
        stats["Loss/D/loss_fake"] = loss.detach()
        loss.mean().mul(gain).backward()

    def _d_real(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gain: float,
                stats: dict[str, torch.Tensor]) -> None:
        do_main = phase in ("Dmain", "Dboth")
        do_r1 = phase in ("Dreg", "Dboth") and self.config.has_d_reg
        if not (do_main or do_r1):
            return
        real = real_img.detach().requires_grad_(do_r1)  # [N, C, H, W]
        real_logits = self.run_D(real, real_c)  # [N, 1]
        loss = torch.zeros_like(real_logits)  # [N, 1]
        if do_main:
            if self.config.kind == "wgangp":
                loss = -real_logits + self.config.wgan_epsilon * real_logits.square()  # [N, 1]
            else:
                loss = d_logistic_real_loss(real_logits)  # [N, 1]
            stats["Loss/scores/real"] = real_logits.detach()
            stats["Loss/D/loss"] = stats["Loss/D/loss_fake"] + loss.detach()
        if do_r1:
            penalty = r1_penalty(real, real_logits)  # [N]
            reg = penalty[:, None] * (self.config.r1_gamma / 2)  # [N, 1]
            stats["Loss/r1_penalty"] = penalty.detach()
            stats["Loss/D/reg"] = reg.detach()
            loss = loss + reg
        (real_logits * 0 + loss).mean().mul(gain).backward()
