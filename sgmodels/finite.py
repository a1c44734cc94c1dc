"""The one finiteness check of both packages: NaN or infinite weights and images are refused, never quantised.

A diverged or damaged generator produces NaN images; `to_uint8` would clamp them to black (or the float -> uint8
cast would make them arbitrary), so every metric and every PNG would silently describe garbage. Generation
(`sgmodels generate` / `mix`) and evaluation (sgeval, through its sgmodels adapter) call these functions and stop
with a message that names the snapshot and the first offending tensors or images.
"""

from __future__ import annotations

import torch

__all__ = ["NonFiniteError", "check_finite_images", "check_finite_weights", "nonfinite_tensors"]

_NAMED = 3  # tensors or rows named in a message; the count tells the rest


class NonFiniteError(ValueError):
    """Weights or generated images contain NaN or infinite values."""


def nonfinite_tensors(module: torch.nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers of `module` that hold a NaN or an infinite value."""
    state = module.state_dict(keep_vars=True)
    return [name for name, tensor in state.items()
            if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all())]


def check_finite_weights(module: torch.nn.Module, where: str) -> None:
    """Raise NonFiniteError naming `where` (e.g. the snapshot path) if any weight of `module` is NaN or infinite."""
    bad = nonfinite_tensors(module)
    if bad:
        more = f" and {len(bad) - _NAMED} more" if len(bad) > _NAMED else ""
        raise NonFiniteError(
            f"{where}: the network has NaN or infinite weights ({', '.join(bad[:_NAMED])}{more}); the training "
            f"run diverged or the file is damaged. Use an earlier snapshot; nothing was generated from this one."
        )


def check_finite_images(images: torch.Tensor, where: str, first_item: int = 0) -> None:
    """Raise NonFiniteError naming `where` and the items if float images [N, C, H, W] hold NaN or infinite values.

    `first_item` is the index of row 0 in the caller's numbering (seed list, metric items), so the message points
    at the items the user asked for.
    """
    if not images.is_floating_point():
        return
    finite = torch.isfinite(images).flatten(1).all(dim=1)  # [N]
    if bool(finite.all()):
        return
    rows = torch.nonzero(~finite).flatten().tolist()
    items = [first_item + row for row in rows]
    more = f" and {len(items) - _NAMED} more" if len(items) > _NAMED else ""
    raise NonFiniteError(
        f"{where}: the generator output contains NaN or infinite values (items {items[:_NAMED]}{more}); the network "
        f"diverged or its weights are damaged"
    )
