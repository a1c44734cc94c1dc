"""Losses and regularisers of sgmodels.training.losses against closed forms and independent computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgmodels.training.losses import (
    GANLoss,
    LossConfig,
    d_logistic_loss,
    draw_mixing_cutoff,
    g_nonsaturating_loss,
    path_lengths,
    r1_penalty,
    wgan_gradient_penalty,
)
from sgmodels.training.schedule import mixing_layers

# ----------------------------------------------------------------------------------------------------------------
# Tiny stand-in networks with known gradients.


class QuadraticD(nn.Module):
    """D(x) = sum(w * x^2) per sample: grad_x D = 2 w x in closed form."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape))

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return (self.w * img.square()).sum(dim=[1, 2, 3])[:, None]  # [N, 1]


class LinearD(nn.Module):
    """D(x) = <w, x>: the gradient is w everywhere."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape))

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return (self.w * img).sum(dim=[1, 2, 3])[:, None]  # [N, 1]


class ConvD(nn.Module):
    """A small nonlinear discriminator (no cross-sample terms)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 1)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(F.leaky_relu(self.conv(img), 0.2).flatten(1))  # [N, 1]


class ToyMapping(nn.Module):
    """ws = broadcast of a linear map of z; counts its calls."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int) -> None:
        super().__init__()
        self.fc = nn.Linear(z_dim, w_dim)
        self.num_ws = num_ws
        self.calls = 0

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, update_emas: bool = False) -> torch.Tensor:
        self.calls += 1
        return self.fc(z)[:, None, :].repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]


class LinearSynthesis(nn.Module):
    """img = reshape(flatten(ws) @ A): d sum(img * y) / d ws = A y in closed form; records its last input."""

    def __init__(self, num_ws: int, w_dim: int, res: int) -> None:
        super().__init__()
        self.res = res
        self.A = nn.Parameter(torch.randn(num_ws * w_dim, 3 * res * res) * 0.1)
        self.last_ws: torch.Tensor | None = None

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        self.last_ws = ws.detach().clone()
        return (ws.flatten(1) @ self.A).reshape(-1, 3, self.res, self.res)  # [N, 3, R, R]


class ToyG(nn.Module):
    def __init__(self, z_dim: int = 6, w_dim: int = 5, num_ws: int = 6, res: int = 8) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.mapping = ToyMapping(z_dim, w_dim, num_ws)
        self.synthesis = LinearSynthesis(num_ws, w_dim, res)


def _no_labels(n: int) -> torch.Tensor:
    return torch.zeros([n, 0])


# ----------------------------------------------------------------------------------------------------------------
# Logistic losses.


def test_logistic_losses_closed_form() -> None:
    fake = torch.tensor([[-2.0], [0.0], [3.0]])
    real = torch.tensor([[1.0], [-1.0], [0.5]])
    expected_g = torch.log1p(torch.exp(-fake))
    expected_d = torch.log1p(torch.exp(fake)) + torch.log1p(torch.exp(-real))
    torch.testing.assert_close(g_nonsaturating_loss(fake), expected_g)
    torch.testing.assert_close(d_logistic_loss(real, fake), expected_d)
    assert g_nonsaturating_loss(torch.tensor([[0.0]])).item() == pytest.approx(math.log(2))


# ----------------------------------------------------------------------------------------------------------------
# R1.


def test_r1_matches_closed_form_gradient() -> None:
    torch.manual_seed(0)
    D = QuadraticD((3, 4, 4))
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    penalty = r1_penalty(x, D(x))
    expected = (2 * D.w * x).square().sum(dim=[1, 2, 3])
    torch.testing.assert_close(penalty, expected.detach())


def test_r1_matches_per_sample_jacobian() -> None:
    """Independent path: torch.func.jacrev of each sample's logit, versus one autograd.grad of the sum."""
    torch.manual_seed(1)
    D = ConvD()
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    penalty = r1_penalty(x, D(x))
    for n in range(x.shape[0]):
        grad = torch.func.jacrev(lambda xi: D(xi[None])[0, 0])(x[n].detach())  # [3, 8, 8]
        assert penalty[n].item() == pytest.approx(grad.square().sum().item(), rel=1e-5)


def test_r1_penalty_is_differentiable_and_lazy_gain_scales_gradients() -> None:
    """Dreg backpropagates gamma/2 * ||grad||^2 * gain; a gain of 16 gives exactly 16x the gradient of gain 1."""
    torch.manual_seed(2)
    G = ToyG(res=4)
    D = QuadraticD((3, 4, 4))
    loss = GANLoss(G, D, LossConfig(r1_gamma=10.0))
    real = torch.randn(6, 3, 4, 4)
    args = (real, _no_labels(6), torch.randn(6, G.z_dim), _no_labels(6))
    loss.accumulate_gradients("Dreg", *args, gain=1.0)
    grad_1 = D.w.grad.clone()
    D.w.grad = None
    loss.accumulate_gradients("Dreg", *args, gain=16.0)
    torch.testing.assert_close(D.w.grad, 16 * grad_1)
    # closed form: mean_n gamma/2 * sum (2 w x)^2 -> d/dw = mean_n gamma/2 * 8 w x^2
    expected = (10.0 / 2 * 8 * D.w * real.square()).mean(dim=0)
    torch.testing.assert_close(grad_1, expected.detach(), rtol=1e-5, atol=1e-6)
    assert G.synthesis.A.grad is None  # D phases never touch G


def test_dmain_gradient_matches_manual_logistic_loss() -> None:
    torch.manual_seed(3)
    G = ToyG(res=8)
    D = ConvD()
    loss = GANLoss(G, D, LossConfig())
    real, z = torch.randn(4, 3, 8, 8), torch.randn(4, G.z_dim)
    torch.manual_seed(10)
    stats = loss.accumulate_gradients("Dmain", real, _no_labels(4), z, _no_labels(4), gain=1.0)
    got = [p.grad.clone() for p in D.parameters()]
    D.zero_grad(set_to_none=True)
    with torch.no_grad():
        fake = G.synthesis(G.mapping(z))
    manual = (F.softplus(D(fake)) + F.softplus(-D(real))).mean()
    manual.backward()
    for grad, param in zip(got, D.parameters(), strict=True):
        torch.testing.assert_close(grad, param.grad)
    assert stats["Loss/D/loss"].mean().item() == pytest.approx(manual.item(), rel=1e-5)
    assert "Loss/r1_penalty" not in stats  # Dmain has no regulariser


# ----------------------------------------------------------------------------------------------------------------
# Path-length regularisation.


def test_path_lengths_against_closed_form() -> None:
    torch.manual_seed(4)
    num_ws, w_dim, res = 3, 5, 4
    synth = LinearSynthesis(num_ws, w_dim, res)
    ws = torch.randn(6, num_ws, w_dim, requires_grad=True)
    img = synth(ws)
    y = torch.randn_like(img) / math.sqrt(res * res)
    got = path_lengths(img, ws, y)
    jvp = (y.flatten(1) @ synth.A.detach().T).reshape(6, num_ws, w_dim)  # A y per sample
    expected = jvp.square().sum(dim=2).mean(dim=1).sqrt()
    torch.testing.assert_close(got.detach(), expected, rtol=1e-5, atol=1e-6)


def test_path_length_regulariser_updates_running_mean_and_shrinks_batch() -> None:
    """pl_mean <- pl_mean + decay * (mean(a) - pl_mean) over batch // shrink samples; loss = weight*(a - mean)^2."""
    torch.manual_seed(5)
    G = ToyG(res=4)
    D = LinearD((3, 4, 4))
    config = LossConfig(pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2)
    loss = GANLoss(G, D, config)
    loss.pl_mean.fill_(0.3)
    z = torch.randn(8, G.z_dim)
    torch.manual_seed(11)
    stats = loss.accumulate_gradients("Greg", torch.zeros(8, 3, 4, 4), _no_labels(8), z, _no_labels(8), gain=4.0)
    assert stats["Loss/pl_penalty"].shape == (4,)  # 8 // shrink 2
    # Recompute independently with the same noise draw.
    torch.manual_seed(11)
    ws = G.mapping(z[:4]).detach().requires_grad_(True)
    img = G.synthesis(ws)
    y = torch.randn_like(img) / 4.0
    a = ((y.flatten(1) @ G.synthesis.A.detach().T).reshape(4, G.num_ws, G.w_dim)).square().sum(2).mean(1).sqrt()
    new_mean = 0.3 + 0.01 * (a.mean() - 0.3)
    assert loss.pl_mean.item() == pytest.approx(new_mean.item(), rel=1e-5)
    torch.testing.assert_close(stats["Loss/pl_penalty"], (a - new_mean).square().detach(), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(stats["Loss/G/reg"], 2.0 * (a - new_mean).square().detach(), rtol=1e-4, atol=1e-7)


def test_path_length_needs_style_based_generator() -> None:
    class PlainG(nn.Module):
        z_dim = 4

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 48)

        def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
            return self.fc(z).reshape(-1, 3, 4, 4)

    with pytest.raises(ValueError, match="style-based generator"):
        GANLoss(PlainG(), LinearD((3, 4, 4)), LossConfig(pl_weight=2.0))


# ----------------------------------------------------------------------------------------------------------------
# WGAN-GP.


def test_wgan_gradient_penalty_of_a_linear_critic() -> None:
    """A linear critic has gradient w everywhere: penalty = (||w|| - target)^2 for every interpolate."""
    torch.manual_seed(6)
    D = LinearD((3, 4, 4))
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    penalty = wgan_gradient_penalty(D, real, fake, None, target=1.0)
    expected = (D.w.detach().norm() - 1.0).square()
    torch.testing.assert_close(penalty.detach(), expected.expand(5))


def test_wgan_losses_include_drift_and_penalty() -> None:
    torch.manual_seed(7)
    G = ToyG(res=4)
    D = LinearD((3, 4, 4))
    loss = GANLoss(G, D, LossConfig(kind="wgangp", r1_gamma=0.0, wgan_lambda=10.0, wgan_epsilon=0.001))
    real, z = torch.randn(4, 3, 4, 4), torch.randn(4, G.z_dim)
    stats = loss.accumulate_gradients("Dboth", real, _no_labels(4), z, _no_labels(4), gain=1.0)
    real_scores = (D.w * real).sum(dim=[1, 2, 3]).detach()
    fake_scores = stats["Loss/scores/fake"][:, 0]
    gp = (D.w.detach().norm() - 1).square()
    expected = fake_scores - real_scores + 10.0 * gp + 0.001 * real_scores.square()
    torch.testing.assert_close(stats["Loss/D/loss"][:, 0], expected, rtol=1e-4, atol=1e-4)
    g_stats = loss.accumulate_gradients("Gmain", real, _no_labels(4), z, _no_labels(4), gain=1.0)
    torch.testing.assert_close(g_stats["Loss/G/loss"], -g_stats["Loss/scores/fake"])


# ----------------------------------------------------------------------------------------------------------------
# Style mixing.


@pytest.mark.parametrize("prob", [0.0, 0.5, 0.9, 1.0])
def test_mixing_probability_is_respected(prob: float) -> None:
    generator = torch.Generator().manual_seed(123)
    draws = [draw_mixing_cutoff(prob, 6, generator=generator) for _ in range(3000)]
    mixed = [d for d in draws if d is not None]
    sigma = math.sqrt(3000 * prob * (1 - prob))
    assert abs(len(mixed) - 3000 * prob) <= 5 * sigma + 1e-9
    if mixed:
        assert set(mixed) == {1, 2, 3, 4, 5}  # cutoff ~ U{1, ..., num_layers - 1}
        for value in range(1, 6):
            share = mixed.count(value) / len(mixed)
            assert abs(share - 0.2) < 0.05


def test_mixing_layers_shrink_with_lod() -> None:
    assert mixing_layers(10, 0.0) == 10
    assert mixing_layers(10, 1.5) == 8  # two layers per resolution; the fading level counts
    assert mixing_layers(10, 3.0) == 4
    assert draw_mixing_cutoff(1.0, 1) is None  # nothing to mix with one layer


def test_run_g_mixes_layers_from_the_cutoff_on() -> None:
    torch.manual_seed(8)
    G = ToyG(num_ws=6)
    loss = GANLoss(G, LinearD((3, 8, 8)), LossConfig(style_mixing_prob=1.0))
    z = torch.randn(3, G.z_dim)
    loss.run_G(z, _no_labels(3))
    ws = G.synthesis.last_ws  # [3, 6, w_dim]
    own = G.mapping(z).detach()
    first_other = next(layer for layer in range(6) if not torch.equal(ws[:, layer], own[:, layer]))
    assert 1 <= first_other <= 5
    torch.testing.assert_close(ws[:, :first_other], own[:, :first_other])
    for layer in range(first_other, 6):  # one other latent for all later layers, same cutoff for the batch
        torch.testing.assert_close(ws[:, layer], ws[:, first_other])


def test_run_g_mixing_rate_with_global_rng() -> None:
    torch.manual_seed(9)
    G = ToyG(num_ws=4)
    loss = GANLoss(G, LinearD((3, 8, 8)), LossConfig(style_mixing_prob=0.5))
    z = torch.randn(2, G.z_dim)
    calls = 400
    for _ in range(calls):
        loss.run_G(z, _no_labels(2))
    second_mappings = G.mapping.calls - calls
    assert abs(second_mappings - 200) <= 5 * math.sqrt(100)


# ----------------------------------------------------------------------------------------------------------------
# Validation.


@pytest.mark.parametrize("kwargs", [{"kind": "hinge"}, {"r1_gamma": -1.0}, {"style_mixing_prob": 1.5},
                                    {"pl_batch_shrink": 0}])
def test_loss_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        LossConfig(**kwargs)


def test_unknown_phase_is_an_error() -> None:
    loss = GANLoss(ToyG(), LinearD((3, 8, 8)), LossConfig())
    with pytest.raises(ValueError, match="unknown phase"):
        loss.accumulate_gradients("Gfoo", torch.zeros(1, 3, 8, 8), _no_labels(1), torch.zeros(1, 6), _no_labels(1),
                                  gain=1.0)


class RecordingMapping(ToyMapping):
    """ToyMapping that records the update_emas flag of every call."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int) -> None:
        super().__init__(z_dim, w_dim, num_ws)
        self.updates: list[bool] = []

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, update_emas: bool = False) -> torch.Tensor:
        self.updates.append(update_emas)
        return super().forward(z, c)


def test_every_training_generator_pass_updates_w_avg_but_never_the_mixing_latents() -> None:
    """As TF G_style / G_main (is_training) and stylegan2-ada-pytorch: the G main, G path-length and D fake passes
    each update w_avg with their own latents' w; the second (mixing) latents never do."""
    torch.manual_seed(3)
    G = ToyG(res=4)
    G.mapping = RecordingMapping(G.z_dim, G.w_dim, G.num_ws)
    loss = GANLoss(G, LinearD((3, 4, 4)), LossConfig(pl_weight=2.0, style_mixing_prob=1.0))
    z, c = torch.randn(4, G.z_dim), _no_labels(4)
    for phase in ("Gmain", "Greg", "Dmain"):
        G.mapping.updates.clear()
        loss.accumulate_gradients(phase, torch.zeros(4, 3, 4, 4), c, z, c, gain=1.0)
        assert G.mapping.updates == [True, False], phase


def test_w_avg_follows_every_training_pass_of_a_real_mapping_network() -> None:
    from sgmodels.generator import Generator

    torch.manual_seed(4)
    G = Generator(z_dim=8, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs={"num_layers": 2},
                  synthesis_kwargs={"channel_base": 64, "channel_max": 8})
    loss = GANLoss(G, LinearD((3, 8, 8)), LossConfig(pl_weight=2.0))
    z, c = torch.randn(4, 8), _no_labels(4)
    expected = G.mapping.w_avg.clone()
    for phase in ("Gmain", "Greg", "Dmain"):
        batch = z if phase != "Greg" else z[:2]  # the path-length pass uses batch // pl_batch_shrink samples
        with torch.no_grad():
            w = G.mapping(batch, None)[:, 0]
        expected = w.mean(dim=0).lerp(expected, 0.995)
        loss.accumulate_gradients(phase, torch.zeros(4, 3, 8, 8), c, z, c, gain=1.0)
        torch.testing.assert_close(G.mapping.w_avg, expected)
