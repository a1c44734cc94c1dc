"""The one batch loop of sgeval: source -> uint8 batches -> feature extractor -> FeatureSet (cached by content).

Every metric that needs features goes through `extract_features`. What it guarantees:

* batch-size independence: item i is the same image whatever the batch size (sources are indexed; generators
  derive item i from (seed, i) and run in fixed aligned chunks, see sgeval.sources.generator), features are computed
  per item, and TF32 / cuDNN autotuning are switched off during extraction;
* grayscale sources ([N, 1, H, W]) are repeated to 3 channels here, before a 3-channel extractor, as the official
  metric code does; the extractors themselves refuse 1-channel input;
* float64 running moments (sum x, sum x x^T, count) on the extractor's device (CPU when it is not CUDA), and/or all
  rows in float32, in item order;
* multi-GPU under `torchrun`: when torch.distributed is initialised, batches are dealt round-robin to the ranks
  (batch k -> rank k mod world), and the results are combined with collectives (moments summed, rows gathered and
  put back in item order), so every rank returns the same FeatureSet as a single process would. Call it on all
  ranks (it is a collective); only rank 0 shows progress, reads the cache to decide hit or miss for everyone
  (broadcast) and writes it; the cache folder must be shared by the ranks;
* a content-hashed cache (sgeval.cache): the key covers the source fingerprint, the extractor identity (name, weights
  sha256, resize policy), the number of items, the seed (for sources that use one) and caller options.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np
import torch

from sgeval.cache import FeatureCache, cache_key
from sgeval.features.base import FeatureExtractor
from sgeval.featureset import FeatureSet
from sgeval.sources.interfaces import ImageSource
from sgeval.sources.stats import StatisticsSource
from sgmodels.progress import progress_bar

__all__ = ["background_decoding_pays", "default_device", "distributed_info", "extract_features",
           "init_distributed_from_env", "match_channels"]


def distributed_info() -> tuple[int, int]:
    """(rank, world size) of the initialised torch.distributed group, (0, 1) when it is not initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed_from_env() -> tuple[int, int]:
    """Initialise torch.distributed from torchrun's variables (WORLD_SIZE > 1) unless done; returns (rank, world).

    Backend: NCCL when CUDA is available, else gloo. Each rank uses cuda:LOCAL_RANK (see `default_device`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend=backend)
    return distributed_info()


def default_device() -> torch.device:
    """cuda:LOCAL_RANK when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


@contextlib.contextmanager
def _exact_math() -> Iterator[None]:
    """Disable TF32 and cuDNN autotuning (both change results with the batch size), restoring the settings after."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Repeat a grayscale batch [B, 1, H, W] to [B, channels, H, W]; other mismatches are a ValueError."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1:
        return images.repeat(1, channels, 1, 1)  # [B, channels, H, W]
    raise ValueError(f"the source gives {images.shape[1]}-channel images but the extractor needs {channels}")


class _Accumulator:
    """Rows and/or float64 moments of the features seen by this process."""

    def __init__(self, dim: int, capture_all: bool, capture_mean_cov: bool, device: torch.device) -> None:
        stats_device = device if device.type == "cuda" else torch.device("cpu")
        self.dim = dim
        self.rows: list[tuple[int, torch.Tensor]] | None = [] if capture_all else None  # (first item, [B, D] CPU)
        self.count = 0
        self.sum = torch.zeros(dim, dtype=torch.float64, device=stats_device) if capture_mean_cov else None
        self.outer = torch.zeros(dim, dim, dtype=torch.float64, device=stats_device) if capture_mean_cov else None

    def add(self, start: int, features: torch.Tensor) -> None:
        self.count += features.shape[0]
        if self.rows is not None:
            self.rows.append((start, features.to("cpu", torch.float32)))
        if self.sum is not None and self.outer is not None:  # both or neither (capture_mean_cov)
            as64 = features.to(self.sum.device, torch.float64)  # [B, D]
            self.sum += as64.sum(dim=0)
            self.outer += as64.T @ as64  # [D, D]

    def local_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(item indices [n] int64, rows [n, D] float32) of this process."""
        if not self.rows:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0, self.dim)
        indices = torch.cat([torch.arange(start, start + rows.shape[0]) for start, rows in self.rows])
        return indices, torch.cat([rows for _start, rows in self.rows])


def _gather(acc: _Accumulator, num_items: int) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Combine the accumulators of all ranks: (rows [N, D] in item order, sum [D], outer [D, D]) as numpy."""
    world = distributed_info()[1]
    rows = total = outer = None
    if acc.sum is not None and acc.outer is not None:  # both or neither (capture_mean_cov)
        summed = [acc.sum, acc.outer]
        if world > 1:
            summed = [tensor.to(_comm_device()) for tensor in summed]
            for tensor in summed:
                torch.distributed.all_reduce(tensor)  # moments of disjoint item sets add up
        total, outer = summed[0].cpu().numpy(), summed[1].cpu().numpy()
    if acc.rows is not None:
        indices, local = acc.local_rows()
        if world > 1:
            indices, local = _all_gather_rows(indices, local, acc.dim)
        rows = np.empty((num_items, acc.dim), dtype=np.float32)
        rows[indices.numpy()] = local.numpy()  # back into item order
    return rows, total, outer


def _all_gather_rows(indices: torch.Tensor, rows: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (item indices [n_r], rows [n_r, D]) concatenated, on the CPU (shards padded to equal length)."""
    comm, world = _comm_device(), distributed_info()[1]
    size = torch.tensor([indices.shape[0]], device=comm)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    torch.distributed.all_gather(sizes, size)
    longest = int(max(item.item() for item in sizes))
    padded_idx = torch.full((longest,), -1, dtype=torch.int64, device=comm)  # -1 marks padding
    padded_idx[: indices.shape[0]] = indices.to(comm)
    padded_rows = torch.zeros(longest, dim, device=comm)  # [longest, D]
    padded_rows[: rows.shape[0]] = rows.to(comm)
    all_idx = [torch.empty_like(padded_idx) for _ in range(world)]
    all_rows = [torch.empty_like(padded_rows) for _ in range(world)]
    torch.distributed.all_gather(all_idx, padded_idx)
    torch.distributed.all_gather(all_rows, padded_rows)
    flat_idx, flat_rows = torch.cat(all_idx).cpu(), torch.cat(all_rows).cpu()
    keep = flat_idx >= 0
    return flat_idx[keep], flat_rows[keep]


def _comm_device() -> torch.device:
    """Where collective tensors must live: this rank's GPU for NCCL, the CPU for gloo."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _from_rank_zero(values: list[int]) -> list[int]:
    """Rank 0's `values` on every rank (a broadcast), so that all ranks take the same branch of a collective."""
    if distributed_info()[1] == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.int64, device=_comm_device())
    torch.distributed.broadcast(tensor, src=0)
    return [int(value) for value in tensor.tolist()]


def _cache_lookup(cache: FeatureCache, key: str, capture_all: bool,
                  capture_mean_cov: bool) -> tuple[FeatureSet | None, bool]:
    """(the cached FeatureSet if it serves the request, else None; capture_mean_cov for a recomputation).

    Rank 0 reads the cache and decides for all ranks (the others read only after its decision, so an entry that
    rank 0 has just written is complete). An entry without rows that is asked for rows is recomputed with rows,
    keeping the statistics it had.
    """
    cached = cache.load(key) if distributed_info()[0] == 0 else None
    usable = cached is not None and (cached.has_features or not capture_all)
    keep_stats = cached is not None and cached.has_statistics
    usable_all, keep_stats_all = _from_rank_zero([int(usable), int(keep_stats)])
    if not usable_all:
        return None, capture_mean_cov or bool(keep_stats_all)
    cached = cached or cache.load(key)
    if cached is None:
        raise RuntimeError(f"rank {distributed_info()[0]} cannot read cache entry {key} that rank 0 found; is the "
                           "cache folder shared by all processes?")
    cached.meta["cache"] = {"hit": True, "key": key}
    return cached, capture_mean_cov


class _RankBatches(Sequence[tuple[int, int]]):
    """The [start, stop) item ranges this process handles (batch k goes to rank k mod world), computed on demand so
    that a huge count costs no memory before its first batch."""

    def __init__(self, num_items: int, batch_size: int, rank: int, world: int) -> None:
        self.num_items, self.batch_size = num_items, batch_size
        self.batch_ids = range(rank, -(-num_items // batch_size), world)  # ceil division

    def __len__(self) -> int:
        return len(self.batch_ids)

    @overload
    def __getitem__(self, index: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[int, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, int] | Sequence[tuple[int, int]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        start = self.batch_ids[index] * self.batch_size
        return start, min(start + self.batch_size, self.num_items)

    def num_rank_items(self) -> int:
        """Items in this process's batches (arithmetic: only the last batch of all can be short)."""
        if not self.batch_ids:
            return 0
        return len(self.batch_ids) * self.batch_size - (self.batch_size - (self[-1][1] - self[-1][0]))


def _batches_of_rank(num_items: int, batch_size: int) -> _RankBatches:
    """[start, stop) item ranges this process handles (batch k goes to rank k mod world)."""
    rank, world = distributed_info()
    return _RankBatches(num_items, batch_size, rank, world)


def background_decoding_pays(device: torch.device) -> bool:
    """Whether decoding the next batch of files in a background thread, while the network runs, saves time.

    It does when the decoding has a core of its own: the network runs on a GPU, or the process may use more CPU
    cores than torch's intra-op threads. Otherwise the decoding thread preempts one of torch's OpenMP threads and
    every parallel region waits for that straggler; decoding in the foreground instead (the source's decoder threads
    then have all the cores) was 9 % faster at 1024x1024 on 2 cores with 2 torch threads (24.3 vs 22.3 images/s)
    and equal at 32x32 and 256x256, where decoding is cheap.
    """
    if device.type != "cpu":
        return True
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores > torch.get_num_threads()


def _run_loop(source: ImageSource, extractor: FeatureExtractor, num_items: int, batch_size: int,
              device: torch.device, seed: int, acc: _Accumulator, progress: bool) -> None:
    """Read, convert and extract every batch of this process into `acc`."""
    batches = _batches_of_rank(num_items, batch_size)
    rank = distributed_info()[0]
    total = batches.num_rank_items()
    bar = progress_bar(total=total, unit="img", desc=f"{extractor.name} features", enabled=progress and rank == 0)
    # Files are decoded in a background thread while the network runs when that pays (a spare core or a GPU);
    # generators stay on this thread (their seeded RNG state is process-global and must not interleave).
    overlap = source.kind == "images" and background_decoding_pays(device)
    prefetch = concurrent.futures.ThreadPoolExecutor(1) if overlap else None

    def read(item_range: tuple[int, int]) -> torch.Tensor:
        return source.read(range(*item_range), seed=seed, device=device)

    try:
        pending = prefetch.submit(read, batches[0]) if prefetch and batches else None
        for position, (start, stop) in enumerate(batches):
            if prefetch is not None:
                assert pending is not None  # submitted before the loop and after every batch but the last
                images = pending.result()
                if position + 1 < len(batches):
                    pending = prefetch.submit(read, batches[position + 1])
            else:
                images = read((start, stop))
            images = match_channels(images, extractor.input_channels)  # [B, 3, H, W] uint8
            features = extractor(images)  # [B, D] float32
            if not bool(torch.isfinite(features).all()):
                raise ValueError(f"{extractor.name} produced NaN or infinite features for items {start}..{stop - 1}")
            acc.add(start, features)
            bar.update(stop - start)
    finally:
        bar.close()
        if prefetch is not None:
            prefetch.shutdown(wait=True, cancel_futures=True)


def _resolve(source: Any, extractor: FeatureExtractor | str, num_items: int | None, batch_size: int,
             capture_all: bool, capture_mean_cov: bool, device: torch.device) -> tuple[FeatureExtractor, int | None]:
    """Validate the arguments; build a named extractor; the number of items to extract."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not (capture_all or capture_mean_cov):
        raise ValueError("nothing to capture: set capture_all (rows) and/or capture_mean_cov (statistics)")
    if isinstance(extractor, str):
        from sgeval.features.registry import build_extractor

        extractor = build_extractor(extractor, device=str(device))
    if not isinstance(extractor, FeatureExtractor):
        raise TypeError(f"extractor must be a FeatureExtractor or a registry name, got {type(extractor).__name__}")
    if isinstance(source, StatisticsSource):
        return extractor, None
    if not isinstance(source, ImageSource):
        raise TypeError(f"{type(source).__name__} is not an image source (see sgeval.sources: folders, zips, "
                        "GeneratorSource, CallableSource, StatisticsSource)")
    if num_items is None:
        if source.num_items is None:
            raise ValueError("num_items is required for a generator source (e.g. 50000 for fid50k)")
        num_items = source.num_items
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, got {num_items}")
    if source.num_items is not None and num_items > source.num_items:
        raise ValueError(f"asked for {num_items} items but the source has {source.num_items}")
    return extractor, num_items


def extract_features(
    source: ImageSource | StatisticsSource,  # images, generator, or precomputed statistics
    extractor: FeatureExtractor | str,  # an extractor, or a registry name (built with default weights lookup)
    num_items: int | None = None,  # items 0..num_items-1; default: all of a finite source; required for generators
    batch_size: int = 64,  # items per extractor call (does not change the result)
    device: str | torch.device | None = None,  # default: cuda:LOCAL_RANK if available, else CPU
    seed: int = 0,  # generator sampling seed (ignored by real-image sources)
    capture_all: bool = False,  # keep every feature row (KID, precision/recall)
    capture_mean_cov: bool = True,  # accumulate float64 raw moments (FID)
    cache: FeatureCache | None = None,  # content-hashed cache; None = no caching
    progress: bool = True,  # progress on stderr (rank 0) with rate and ETA: a bar, or lines on a pipe
    options: Mapping[str, Any] | None = None,  # extra JSON-able key fields that change the features
) -> FeatureSet:
    """Features of the first `num_items` items of `source` (see the module docstring for the guarantees).

    Returns:
        FeatureSet with `features` float32 [N, D] (if capture_all) and float64 moments (if capture_mean_cov); its
        `meta` records the source, extractor (with weights sha256), counts, seed and timing. For a
        StatisticsSource, the file's FeatureSet after checking it fits the extractor.
    """
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda" and device.index is None and distributed_info()[1] > 1:
        device = torch.device("cuda", torch.cuda.current_device())  # "cuda" under torchrun: this rank's GPU
    extractor, num_items = _resolve(source, extractor, num_items, batch_size, capture_all, capture_mean_cov, device)
    if isinstance(source, StatisticsSource):
        return source.check_compatible(extractor.identity(), need_features=capture_all)
    assert num_items is not None  # _resolve returns None only for a StatisticsSource
    fingerprint = source.fingerprint() if cache is not None else None
    fields = {"source": fingerprint, "extractor": extractor.identity(), "num_items": num_items,
              "seed": seed if source.uses_seed else None, "options": dict(options or {})}
    key = cache_key(fields) if fingerprint is not None else None
    if key is not None and cache is not None:  # key is None whenever cache is
        cached, capture_mean_cov = _cache_lookup(cache, key, capture_all, capture_mean_cov)
        if cached is not None:
            return cached
    started = time.perf_counter()
    extractor.to(device).eval()
    source.prepare(device)
    acc = _Accumulator(extractor.feature_dim, capture_all, capture_mean_cov, device)
    with _exact_math(), torch.no_grad():
        _run_loop(source, extractor, num_items, batch_size, device, seed, acc, progress)
    rows, total, outer = _gather(acc, num_items)
    meta = {"source": source.describe(), "source_fingerprint": fingerprint, "extractor": extractor.provenance(),
            "num_items": num_items, "seed": seed if source.uses_seed else None, "batch_size": batch_size,
            "world_size": distributed_info()[1], "seconds": round(time.perf_counter() - started, 3),
            "options": dict(options or {})}
    if total is None or outer is None:  # _gather returns both moments or neither
        result = FeatureSet(dim=extractor.feature_dim, num_items=num_items, features=rows, meta=meta)
    else:
        result = FeatureSet.from_moments(num_items, total, outer, features=rows, meta=meta)
    if key is not None and cache is not None and distributed_info()[0] == 0:
        cache.store(key, result, fields)
        result.meta["cache"] = {"hit": False, "key": key}
    return result
