"""Style mixing: feed different layers of the synthesis network with the ws of different latents.

Used by training (mixing regularisation, Karras et al. 2019 section 3.1: with probability p a second latent takes
over from a random crossover layer, cutoff ~ U{1, ..., num_ws - 1}) and by evaluation (FID with 1-4 mixed latents,
StyleGAN Table 2). A mix of k latents is described per sample by k - 1 sorted crossover layers: layer l of sample
n takes the ws of latent j, where j is the number of crossovers <= l.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sgmodels.interfaces import StyleGenerator
from sgmodels.misc import assert_shape


def mix_ws(ws_list: Sequence[torch.Tensor], crossovers: torch.Tensor) -> torch.Tensor:
    """Mix k stacks of ws [N, num_ws, w_dim] by per-sample crossovers [N, k - 1] -> [N, num_ws, w_dim].

    Crossovers are integers in [0, num_ws], non-decreasing along each row; a crossover of num_ws means "never".
    """
    if len(ws_list) < 1:
        raise ValueError("mix_ws needs at least one ws tensor")
    assert_shape(ws_list[0], [None, None, None], "ws_list[0]")
    N, num_ws, w_dim = ws_list[0].shape
    for idx, ws in enumerate(ws_list):
        assert_shape(ws, [N, num_ws, w_dim], f"ws_list[{idx}]")
    k = len(ws_list)
    assert_shape(crossovers, [N, k - 1], "crossovers")
    if crossovers.dtype.is_floating_point or crossovers.dtype == torch.bool:
        raise TypeError(f"crossovers must be an integer tensor, got {crossovers.dtype}")
    if k == 1:
        return ws_list[0]
    if crossovers.min() < 0 or crossovers.max() > num_ws:
        raise ValueError(f"crossovers must lie in [0, {num_ws}], got values in "
                         f"[{int(crossovers.min())}, {int(crossovers.max())}]")
    if k > 2 and (crossovers.diff(dim=1) < 0).any():
        raise ValueError("crossovers must be non-decreasing along each row")

    layers = torch.arange(num_ws, device=crossovers.device)  # [num_ws]
    # source[n, l] = number of crossovers of sample n at or before layer l.
    source = (crossovers.unsqueeze(1) <= layers[None, :, None]).sum(dim=2)  # [N, num_ws]
    stacked = torch.stack(list(ws_list), dim=0)  # [k, N, num_ws, w_dim]
    index = source.to(stacked.device)[None, :, :, None].expand(1, N, num_ws, w_dim)  # [1, N, num_ws, w_dim]
    return stacked.gather(0, index)[0]  # [N, num_ws, w_dim]


def random_crossovers(
    num: int,  # Number of samples N.
    k: int,  # Number of latents mixed per sample.
    num_ws: int,  # Number of ws of the generator (the crossover range is 1 ... num_ws - 1).
    generator: torch.Generator | None = None,  # RNG for reproducible draws (its device is used).
) -> torch.Tensor:
    """Draw sorted crossovers [num, k - 1] int64, each ~ U{1, ..., num_ws - 1} independently, then sorted per row.

    For k = 2 this is the official mixing regularisation cutoff (drawn per sample here; the official code draws one
    per minibatch, which `random_crossovers(1, 2, num_ws).expand(N, -1)` reproduces).
    """
    if num < 0 or k < 1:
        raise ValueError(f"num must be >= 0 and k >= 1, got num={num}, k={k}")
    if k > 1 and num_ws < 2:
        raise ValueError(f"mixing needs num_ws >= 2, got {num_ws}")
    device = generator.device if generator is not None else "cpu"
    draws = torch.randint(1, max(num_ws, 2), [num, k - 1], generator=generator, device=device)
    return draws.sort(dim=1).values


def mixed_ws(
    G: StyleGenerator,  # Generator with `mapping(z, c, truncation_psi=...)` and num_ws.
    zs: Sequence[torch.Tensor],  # k latents [N, z_dim] each.
    c: torch.Tensor | None = None,  # Labels [N, c_dim] shared by all k latents; None when unconditional.
    crossovers: torch.Tensor | None = None,  # [N, k - 1] ints; None = random_crossovers(N, k, G.num_ws).
    truncation_psi: float = 1,  # Truncation applied to every latent's ws before mixing.
    generator: torch.Generator | None = None,  # RNG for the random crossovers.
) -> torch.Tensor:
    """Map each z and mix the results: returns ws [N, num_ws, w_dim] for `G.synthesis`."""
    if len(zs) < 1:
        raise ValueError("mixed_ws needs at least one latent tensor")
    ws_list = [G.mapping(z, c, truncation_psi=truncation_psi) for z in zs]  # k x [N, num_ws, w_dim]
    if crossovers is None:
        crossovers = random_crossovers(ws_list[0].shape[0], len(zs), G.num_ws, generator=generator)
    return mix_ws(ws_list, crossovers.to(ws_list[0].device))
