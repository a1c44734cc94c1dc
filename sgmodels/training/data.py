"""Real images for training: the dataset with its label table, minibatches from a resumable sampler, and the fixed
image grids written with every snapshot (reals.png, fakes<kimg>.png)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data

from sgmodels.data.dataset import ImageDataset
from sgmodels.data.sampler import InfiniteSampler
from sgmodels.images import image_grid, save_png, to_uint8
from sgmodels.interfaces import LatentGenerator
from sgmodels.training.distributed import DistributedContext


def grid_shape(resolution: int) -> tuple[int, int]:
    """(columns, rows) of the snapshot grids: about 1280 x 720 pixels, 4..16 columns and 4..12 rows."""
    return min(max(1280 // resolution, 4), 16), min(max(720 // resolution, 4), 12)


@dataclass
class TrainingImages:
    """The training set, its labels as a tensor on the training device, and the fixed grid latents."""

    dataset: ImageDataset  # uint8 [C, H, W] items with float32 labels
    description: dict[str, Any]  # JSON: {path, resolution, xflip, use_labels, ...} stored in snapshots
    labels: torch.Tensor  # float32 [len(dataset), c_dim] on the device (c_dim may be 0)
    grid_indices: list[int]  # dataset items shown in reals.png (sorted by class when labelled)
    grid_z: torch.Tensor  # float32 [gw * gh, z_dim] fixed grid latents, drawn on first use (`fakes_latents`)
    grid_cols: int  # columns of the grids
    seed: int  # seed of the grid latents

    @classmethod
    def open(cls, options: Any, seed: int, device: torch.device) -> TrainingImages:
        """Open `options.data` (ValueError naming the problem for missing, empty, corrupt or unlabelled data)."""
        if options.data is None:
            raise ValueError("--data is required: a dataset zip or image folder (see `sgmodels dataset create`)")
        path = Path(options.data)
        if not path.exists():
            raise ValueError(f"--data {path}: no such file or folder")
        dataset = ImageDataset(path, use_labels=bool(options.cond), xflip=bool(options.mirror))
        resolution = dataset.resolution
        if resolution < 4 or resolution & (resolution - 1):
            suggestion = max(4, 1 << resolution.bit_length())
            raise ValueError(f"--data {path}: images are {resolution}x{resolution}, but the networks need a "
                             "power-of-two resolution >= 4; rebuild the dataset with "
                             f"`sgmodels dataset create SRC OUT.zip --resolution {suggestion}`")
        if options.cond and not dataset.has_labels:
            raise ValueError(f"--cond: {path} has no labels (no dataset.json labels or class sub-folders)")
        description = {
            "path": str(path.resolve()),
            "resolution": dataset.resolution,
            "xflip": bool(options.mirror),
            "use_labels": bool(options.cond),
            "num_images": len(dataset),
            "channels": dataset.num_channels,
            "label_dim": dataset.label_dim,
        }
        labels = torch.from_numpy(_label_table(dataset)).to(device)  # [len, c_dim]
        gw, gh = grid_shape(dataset.resolution)
        generator = torch.Generator().manual_seed(seed)
        indices = torch.randint(len(dataset), [gw * gh], generator=generator).tolist()
        if dataset.has_onehot_labels:
            indices.sort(key=lambda idx: (int(labels[idx].argmax()), idx))
        return cls(dataset, description, labels, indices, torch.empty(0), gw, seed)

    def random_labels(self, num: int) -> torch.Tensor:
        """Labels of `num` random training items, float32 [num, c_dim] (the fakes' conditioning, as in ADA)."""
        if self.labels.shape[1] == 0:
            return self.labels.new_zeros([num, 0])
        index = torch.randint(self.labels.shape[0], [num], device=self.labels.device)  # [num]
        return self.labels[index]  # [num, c_dim]

    def save_reals_grid(self, path: Path) -> None:
        """reals.png: the grid items as stored (uint8)."""
        images = torch.stack([torch.from_numpy(self.dataset[idx][0]) for idx in self.grid_indices])  # [n, C, H, W]
        save_png(path, image_grid(images, cols=self.grid_cols))

    def fakes_latents(self, z_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fixed grid latents [n, z_dim] (from `seed`, independent of the training RNG) and labels [n, c_dim]."""
        if self.grid_z.shape != (len(self.grid_indices), z_dim):
            generator = torch.Generator().manual_seed(self.seed)
            self.grid_z = torch.randn([len(self.grid_indices), z_dim], generator=generator)  # [n, z_dim]
        labels = self.labels[self.grid_indices] if self.labels.shape[1] > 0 else None  # [n, c_dim]
        return self.grid_z.to(device), labels

    @torch.no_grad()
    def save_fakes_grid(self, G: LatentGenerator, path: Path, batch: int) -> None:
        """Generate the grid with G (constant noise) and write it as a PNG."""
        device = next(G.parameters()).device
        z, c = self.fakes_latents(G.z_dim, device)
        images = []
        for start in range(0, z.shape[0], batch):
            part = slice(start, start + batch)
            img = G(z[part], None if c is None else c[part], noise_mode="const")  # [b, C, H, W]
            images.append(to_uint8(img).cpu())
        save_png(path, image_grid(torch.cat(images), cols=self.grid_cols))


def _label_table(dataset: ImageDataset) -> np.ndarray:
    """float32 numpy [len, label_dim] of every item's label."""
    table = np.zeros([len(dataset), dataset.label_dim], dtype=np.float32)
    if dataset.label_dim == 0:
        return table
    classes = dataset.raw_class_indices()
    if classes is not None:
        table[np.arange(len(dataset)), classes] = 1.0
        return table
    for idx in range(len(dataset)):
        table[idx] = dataset.get_label(idx)
    return table


class BatchSource:
    """Minibatches of any size from an endless, sharded, resumable stream of dataset items.

    The DataLoader yields chunks of `chunk` items (a divisor of every minibatch size the schedule uses) that are
    concatenated, so the minibatch may change with the level of detail. `start_index` is the global stream position
    (images consumed by all processes together) where a resumed run continues.
    """

    def __init__(
        self,
        dataset: ImageDataset,  # the training set
        ctx: DistributedContext,  # rank / world size / device
        chunk: int,  # items per DataLoader batch
        seed: int,  # seed of the data order
        workers: int | None,  # DataLoader worker processes (None: 3 on CUDA, 0 on CPU)
        start_index: int = 0,  # global stream position to start from
    ) -> None:
        self.device = ctx.device
        self.chunk = chunk
        sampler = InfiniteSampler(len(dataset), rank=ctx.rank, num_replicas=ctx.world_size, seed=seed,
                                  start_index=start_index)
        workers = (3 if ctx.device.type == "cuda" else 0) if workers is None else workers
        loader_kwargs: dict[str, Any] = {"prefetch_factor": 2, "persistent_workers": True} if workers > 0 else {}
        # An own generator: creating the iterator draws a worker base seed, which must not consume the global RNG
        # (a resumed run creates one more iterator than an uninterrupted one).
        generator = torch.Generator().manual_seed(seed * ctx.world_size + ctx.rank)
        self.loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=chunk, num_workers=workers,
                                                  pin_memory=ctx.device.type == "cuda", generator=generator,
                                                  **loader_kwargs)
        self._iterator: Iterator[Any] | None = iter(self.loader)

    def next_batch(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images uint8 [num, C, H, W], labels float32 [num, c_dim]) on the device; num a multiple of chunk."""
        if num % self.chunk:
            raise ValueError(f"minibatch {num} is not a multiple of the loader chunk {self.chunk}")
        if self._iterator is None:
            raise RuntimeError("this batch source is closed")
        parts = [next(self._iterator) for _ in range(num // self.chunk)]
        images = torch.cat([p[0] for p in parts]).to(self.device, non_blocking=True)  # [num, C, H, W]
        labels = torch.cat([p[1] for p in parts]).to(self.device, non_blocking=True)  # [num, c_dim]
        return images, labels

    def close(self) -> None:
        """Stop the worker processes."""
        self._iterator = None
