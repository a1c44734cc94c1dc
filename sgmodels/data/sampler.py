"""An endless, seeded, shardable and resumable stream of dataset indices for training.

The stream is a sequence of passes over the dataset. Every pass visits each index exactly once. Pass 0 is a seeded
random permutation (or 0..N-1 without shuffling). Each later pass re-orders the previous one locally: every item's
sort key is its old position plus a uniform offset in [0, window_size * N), so an item moves by less than
window_size * N places per pass and, as in StyleGAN2-ADA's sampler, an index never comes back sooner than about
(1 - window_size) * N positions later. Pass p's offsets come from a generator seeded with (seed, p), so the stream
is a pure function of (dataset_size, shuffle, seed, window_size): the state at any position can be rebuilt from
scratch, which is what makes resuming exact.

Sharding: the global stream is dealt round-robin; replica `rank` of `num_replicas` takes global positions
`g >= start_index` with `g % num_replicas == rank`, so the replicas see disjoint parts that together cover it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch.utils.data


class InfiniteSampler(torch.utils.data.Sampler[int]):
    """Endless index stream for one replica (see the module docstring for the order).

    Resume: after every replica has consumed k indices from an iterator started at `start_index`, the global
    stream position is `start_index + k * num_replicas` (the `position` property when k = `num_yielded`); a new
    sampler with that `start_index` continues the same stream exactly. A DataLoader fetches indices ahead of the
    training loop, so save the position of what training actually consumed (e.g. the number of images seen across
    all replicas), not `position` read while a DataLoader is prefetching.
    """

    def __init__(
        self,
        dataset_size: int,  # number of items N (> 0)
        rank: int = 0,  # this replica, 0 <= rank < num_replicas
        num_replicas: int = 1,  # processes sharing the stream
        shuffle: bool = True,  # False: 0, 1, ..., N-1 repeated
        seed: int = 0,  # seed of the whole stream (must agree across replicas)
        window_size: float = 0.5,  # 0..1: how far (as a fraction of N) items may move between passes
        start_index: int = 0,  # global stream position to start at (resume point)
    ) -> None:
        _check_args(dataset_size, rank, num_replicas, window_size, start_index)
        super().__init__()
        self.dataset_size = int(dataset_size)
        self.rank = int(rank)
        self.num_replicas = int(num_replicas)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.window_size = float(window_size)
        self.start_index = int(start_index)
        self.num_yielded = 0  # indices yielded by the latest iterator of this object

    @property
    def position(self) -> int:
        """Global stream position reached once every replica has yielded `num_yielded` indices."""
        return self.start_index + self.num_yielded * self.num_replicas

    def __iter__(self) -> Iterator[int]:
        """Yield this replica's indices from `start_index` on, forever; counts them in `num_yielded`."""
        self.num_yielded = 0
        global_pos = self.start_index + (self.rank - self.start_index) % self.num_replicas
        pass_index = global_pos // self.dataset_size
        order = self.pass_order(pass_index)
        while True:
            target_pass, offset = divmod(global_pos, self.dataset_size)
            while pass_index < target_pass:  # more replicas than items can skip passes
                pass_index += 1
                order = self._next_pass(order, pass_index)
            index = int(order[offset])
            self.num_yielded += 1
            yield index
            global_pos += self.num_replicas

    def pass_order(self, pass_index: int) -> np.ndarray:
        """int64 [N] order of pass `pass_index` of the global stream (a permutation of 0..N-1)."""
        if pass_index < 0:
            raise ValueError(f"pass_index must be >= 0, got {pass_index}")
        order = np.arange(self.dataset_size, dtype=np.int64)
        if self.shuffle:
            order = np.random.default_rng([self.seed, 0]).permutation(order)
        for p in range(1, pass_index + 1):
            order = self._next_pass(order, p)
        return order

    def _next_pass(self, order: np.ndarray, pass_index: int) -> np.ndarray:
        """Order of pass `pass_index` from that of the pass before: keys = position + U[0, window)."""
        window = self.window_size * self.dataset_size
        if not self.shuffle or window <= 0:
            return order
        rng = np.random.default_rng([self.seed, pass_index])
        keys = np.arange(self.dataset_size) + rng.uniform(0.0, window, size=self.dataset_size)  # [N]
        return order[np.argsort(keys, kind="stable")]


def _check_args(dataset_size: int, rank: int, num_replicas: int, window_size: float, start_index: int) -> None:
    if dataset_size < 1:
        raise ValueError(f"dataset_size must be >= 1, got {dataset_size}")
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
    if not 0.0 <= window_size <= 1.0:
        raise ValueError(f"window_size must be in [0, 1], got {window_size}")
    if start_index < 0:
        raise ValueError(f"start_index must be >= 0, got {start_index}")
