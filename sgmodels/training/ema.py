"""Exponential moving average of the generator weights (G_ema), the network that is evaluated and published.

Matches the ADA training loop: parameters are averaged with beta = 0.5 ** (batch / ema_nimg) (see
`schedule.ema_beta`), buffers (w_avg, noise constants, the progressive `lod`) are copied as they are.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch

M = TypeVar("M", bound=torch.nn.Module)


def make_ema_copy(G: M) -> M:
    """Deep copy of `G` for averaging: evaluation mode, no gradients."""
    G_ema = copy.deepcopy(G).eval()
    G_ema.requires_grad_(False)
    return G_ema


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    """In place: p_ema <- beta * p_ema + (1 - beta) * p for every parameter; buffers copied from G.

    Args:
        G_ema: the averaged copy (same architecture and parameter order as G).
        G: the generator being trained.
        beta: decay in [0, 1]; 0 copies G, 1 freezes G_ema.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"EMA beta must lie in [0, 1], got {beta}")
    ema_params = dict(G_ema.named_parameters())
    for name, param in G.named_parameters():
        ema = ema_params[name]
        ema.copy_(param.detach().lerp(ema, beta))
    ema_buffers = dict(G_ema.named_buffers())
    for name, buffer in G.named_buffers():
        ema_buffers[name].copy_(buffer)
