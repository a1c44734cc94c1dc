"""Image helpers shared by the generation commands: float -> uint8 conversion, PNG files and image grids.

uint8 NCHW is the only image currency between stages (docs/architecture.md); generators output float NCHW in about
[-1, 1].
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch

from sgmodels.fileio import atomic_write_bytes

_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Quantise generator output exactly as the official code does (docs/metrics.md section 1.1).

    Args:
        images: float tensor [N, C, H, W] in about [-1, 1].
    Returns:
        uint8 tensor [N, C, H, W] = floor(clip(127.5 * x + 128, 0, 255)), on the same device.
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"expected float images [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    return (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # [N, C, H, W]; truncation = floor here


def png_bytes(image: torch.Tensor) -> bytes:
    """The PNG file of one uint8 image [C, H, W] (C = 1, 3 or 4); the same pixels give the same bytes."""
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ValueError(f"expected a uint8 image [C, H, W], got {image.dtype} {tuple(image.shape)}")
    channels = image.shape[0]
    if channels not in _PIL_MODES:
        raise ValueError(f"cannot write a PNG with {channels} channels; supported: 1 (grey), 3 (RGB), 4 (RGBA)")
    array = image.permute(1, 2, 0).cpu().numpy()  # [H, W, C]
    if channels == 1:
        array = array[:, :, 0]  # [H, W]
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.ascontiguousarray(array), _PIL_MODES[channels]).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(path: str | os.PathLike[str], image: torch.Tensor) -> None:
    """Write one uint8 image [C, H, W] as a PNG file, atomically: a failed write (a full disk) leaves no partial
    file, and raises `sgmodels.fileio.WriteError` naming `path`."""
    data = png_bytes(image)
    with atomic_write_bytes(path) as stream:
        stream.write(data)


def tile_images(cells: torch.Tensor) -> torch.Tensor:
    """Lay a 2-D arrangement of equally sized images out as one image.

    Args:
        cells: uint8 tensor [R, K, C, H, W]: R rows of K images each.
    Returns:
        uint8 tensor [C, R * H, K * W]; cell (r, k) occupies rows r*H..(r+1)*H and columns k*W..(k+1)*W.
    """
    if cells.ndim != 5:
        raise ValueError(f"expected cells [rows, cols, C, H, W], got shape {tuple(cells.shape)}")
    rows, cols, channels, height, width = cells.shape
    return cells.permute(2, 0, 3, 1, 4).reshape(channels, rows * height, cols * width)  # [C, R*H, K*W]


def image_grid(images: torch.Tensor, cols: int | None = None, fill: int = 0) -> torch.Tensor:
    """Arrange a batch of images row by row into a grid.

    Args:
        images: uint8 tensor [N, C, H, W].
        cols: images per row; default ceil(sqrt(N)) so the grid is about square.
        fill: uint8 value of the empty cells at the end of the last row.
    Returns:
        uint8 tensor [C, rows * H, cols * W] with rows = ceil(N / cols).
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch [N, C, H, W], got shape {tuple(images.shape)}")
    num = images.shape[0]
    cols = int(np.ceil(np.sqrt(num))) if cols is None else cols
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    rows = -(-num // cols)
    padding = images.new_full((rows * cols - num, *images.shape[1:]), fill)  # [P, C, H, W]
    cells = torch.cat([images, padding]).reshape(rows, cols, *images.shape[1:])  # [R, K, C, H, W]
    return tile_images(cells)


def labelled_grid(corner: torch.Tensor | None, top: Sequence[torch.Tensor], left: Sequence[torch.Tensor],
                  cells: torch.Tensor) -> torch.Tensor:
    """Grid with a header row and a header column, as in StyleGAN Figure 3 (style mixing).

    Args:
        corner: uint8 image [C, H, W] for the top-left cell, or None for black.
        top: K uint8 images [C, H, W] heading the columns.
        left: R uint8 images [C, H, W] heading the rows.
        cells: uint8 tensor [R, K, C, H, W], the body of the grid.
    Returns:
        uint8 tensor [C, (R + 1) * H, (K + 1) * W].
    """
    rows, cols = cells.shape[:2]
    if len(top) != cols or len(left) != rows:
        raise ValueError(f"need {cols} column headers and {rows} row headers, got {len(top)} and {len(left)}")
    corner = torch.zeros_like(cells[0, 0]) if corner is None else corner  # [C, H, W]
    header = torch.stack([corner, *top])[None]  # [1, K+1, C, H, W]
    body = torch.cat([torch.stack(list(left))[:, None], cells], dim=1)  # [R, K+1, C, H, W]
    return tile_images(torch.cat([header, body]))
