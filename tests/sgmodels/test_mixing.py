"""Style mixing: exact layer assignment, equivalence with hand-built ws, crossover sampling, errors."""

from __future__ import annotations

import pytest
import torch

from sgmodels.generator import Generator
from sgmodels.mixing import mix_ws, mixed_ws, random_crossovers


def _labelled_ws(k: int, N: int = 4, num_ws: int = 6, w_dim: int = 3) -> list[torch.Tensor]:
    """ws_list[j] is filled with the value j, so the mix shows which latent fed which layer."""
    return [torch.full([N, num_ws, w_dim], float(j)) for j in range(k)]


def test_mix_ws_assigns_layers_by_crossovers() -> None:
    crossovers = torch.tensor([[1, 3], [0, 0], [6, 6], [2, 6]])
    mixed = mix_ws(_labelled_ws(3), crossovers)
    want = torch.tensor([
        [0, 1, 1, 2, 2, 2],  # latent 1 from layer 1, latent 2 from layer 3
        [2, 2, 2, 2, 2, 2],  # both crossovers at 0: the last latent everywhere
        [0, 0, 0, 0, 0, 0],  # crossovers at num_ws: no mixing
        [0, 0, 1, 1, 1, 1],  # second crossover never reached
    ], dtype=torch.float32)
    assert mixed.shape == (4, 6, 3)
    assert torch.equal(mixed, want[:, :, None].expand(4, 6, 3))


def test_single_latent_and_two_latent_cases() -> None:
    ws = _labelled_ws(2)
    assert torch.equal(mix_ws(ws[:1], torch.zeros(4, 0, dtype=torch.long)), ws[0])
    mixed = mix_ws(ws, torch.tensor([[3], [3], [1], [5]]))
    assert mixed[0, :, 0].tolist() == [0, 0, 0, 1, 1, 1] and mixed[2, :, 0].tolist() == [0, 1, 1, 1, 1, 1]


def test_mix_ws_rejects_bad_crossovers() -> None:
    ws = _labelled_ws(3)
    with pytest.raises(ValueError, match="non-decreasing"):
        mix_ws(ws, torch.tensor([[3, 1]] * 4))
    with pytest.raises(ValueError, match=r"\[0, 6\]"):
        mix_ws(ws, torch.tensor([[1, 7]] * 4))
    with pytest.raises(TypeError, match="integer"):
        mix_ws(ws, torch.tensor([[1.0, 2.0]] * 4))
    with pytest.raises(ValueError, match=r"crossovers must have shape \[4, 2\]"):
        mix_ws(ws, torch.tensor([[1]] * 4))
    with pytest.raises(ValueError, match=r"ws_list\[1\] must have shape"):
        mix_ws([ws[0], ws[1][:, :5]], torch.tensor([[1]] * 4))


def test_random_crossovers_range_order_uniformity_and_seed() -> None:
    draws = random_crossovers(6000, 2, 6, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (6000, 1) and draws.dtype == torch.int64
    counts = torch.bincount(draws[:, 0], minlength=6)
    assert counts[0] == 0 and (counts[1:] > 1100).all() and (counts[1:] < 1300).all()  # U{1..5}: 1200 each
    many = random_crossovers(500, 4, 10, generator=torch.Generator().manual_seed(1))
    assert (many.diff(dim=1) >= 0).all() and many.min() >= 1 and many.max() <= 9
    again = random_crossovers(500, 4, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(many, again)
    with pytest.raises(ValueError, match="num_ws >= 2"):
        random_crossovers(3, 2, 1)


def test_synthesis_of_mixed_ws_equals_hand_built_ws() -> None:
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=16, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=256, channel_max=16)).eval()
    zs = [torch.randn(3, 16) for _ in range(2)]
    crossovers = torch.tensor([[1], [3], [5]])
    mixed = mixed_ws(G, zs, crossovers=crossovers)
    w0, w1 = (G.mapping(z, None) for z in zs)
    hand = torch.stack([torch.cat([w0[n, :cut], w1[n, cut:]]) for n, cut in enumerate([1, 3, 5])])
    torch.testing.assert_close(mixed, hand)
    torch.testing.assert_close(G.synthesis(mixed, noise_mode="const"), G.synthesis(hand, noise_mode="const"))
    # Random crossovers are reproducible with a generator and always mix something in for k = 2.
    a = mixed_ws(G, zs, generator=torch.Generator().manual_seed(3))
    b = mixed_ws(G, zs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(a[:, 0], w0[:, 0]) and torch.equal(a[:, -1], w1[:, -1])
