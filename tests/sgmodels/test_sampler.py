"""InfiniteSampler: determinism, pass coverage, the re-visit gap, sharding, and exact resume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sgmodels.data.sampler import InfiniteSampler


def take(sampler: InfiniteSampler, count: int) -> list[int]:
    return list(itertools.islice(iter(sampler), count))


def test_deterministic_from_the_seed() -> None:
    assert take(InfiniteSampler(13, seed=5), 60) == take(InfiniteSampler(13, seed=5), 60)
    assert take(InfiniteSampler(13, seed=5), 60) != take(InfiniteSampler(13, seed=6), 60)


@pytest.mark.parametrize("window_size", [0.0, 0.5, 1.0])
def test_every_pass_is_a_permutation_and_revisits_are_spaced(window_size: float) -> None:
    n = 17
    stream = take(InfiniteSampler(n, seed=1, window_size=window_size), n * 40)
    passes = np.array(stream).reshape(40, n)
    for order in passes:
        assert sorted(order) == list(range(n))
    assert (passes[0] != np.arange(n)).any()  # shuffled
    if window_size == 0.0:
        assert (passes == passes[0]).all()  # no re-ordering between passes
    else:
        assert len({tuple(order) for order in passes}) > 30  # passes differ
    # An item moves less than window_size * n places per pass, so it comes back no sooner than (1 - w) * n later.
    last_seen: dict[int, int] = {}
    gaps = []
    for position, index in enumerate(stream):
        if index in last_seen:
            gaps.append(position - last_seen[index])
        last_seen[index] = position
    assert min(gaps) >= int((1 - window_size) * n)


def test_unshuffled_is_sequential() -> None:
    assert take(InfiniteSampler(5, shuffle=False), 12) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]


@pytest.mark.parametrize("num_replicas", [2, 3, 7])
def test_shards_are_disjoint_and_cover_the_stream(num_replicas: int) -> None:
    n, per_rank = 5, 12
    stream = take(InfiniteSampler(n, seed=3), num_replicas * per_rank)
    shards = [take(InfiniteSampler(n, seed=3, rank=r, num_replicas=num_replicas), per_rank)
              for r in range(num_replicas)]
    # Rank r holds global positions r, r + R, r + 2R, ...: interleaving the shards rebuilds the stream.
    interleaved = [shards[k % num_replicas][k // num_replicas] for k in range(num_replicas * per_rank)]
    assert interleaved == stream
    # Within each pass every index goes to exactly one replica.
    for first in range(0, len(stream) - n + 1, n):
        assert sorted(stream[first:first + n]) == list(range(n))


@pytest.mark.parametrize("start_index", [0, 1, 9, 10, 23, 301])
def test_resume_continues_the_same_stream(start_index: int) -> None:
    stream = take(InfiniteSampler(10, seed=4), 400)
    assert take(InfiniteSampler(10, seed=4, start_index=start_index), 50) == stream[start_index:start_index + 50]
    for rank in range(3):  # sharded: each replica resumes at its next global position
        resumed = take(InfiniteSampler(10, seed=4, rank=rank, num_replicas=3, start_index=start_index), 20)
        expected = [stream[g] for g in range(start_index, 400) if g % 3 == rank][:20]
        assert resumed == expected


def test_position_resumes_exactly() -> None:
    replicas = [InfiniteSampler(7, seed=8, rank=r, num_replicas=2, start_index=4) for r in range(2)]
    iterators = [iter(s) for s in replicas]
    consumed = [[next(it) for _ in range(9)] for it in iterators]
    assert [s.num_yielded for s in replicas] == [9, 9]
    saved = replicas[0].position
    assert saved == replicas[1].position == 4 + 9 * 2
    following = [[next(it) for _ in range(15)] for it in iterators]
    resumed = [take(InfiniteSampler(7, seed=8, rank=r, num_replicas=2, start_index=saved), 15) for r in range(2)]
    assert resumed == following
    assert consumed != following


def test_pass_order_is_a_pure_function() -> None:
    sampler = InfiniteSampler(11, seed=2)
    stream = take(sampler, 11 * 6)
    assert list(sampler.pass_order(5)) == stream[55:66]


def test_works_as_a_dataloader_sampler() -> None:
    data = torch.arange(100, 106)
    loader = torch.utils.data.DataLoader(data, batch_size=4, sampler=InfiniteSampler(6, seed=0))
    batches = list(itertools.islice(iter(loader), 3))  # 12 items = 2 passes
    values = torch.cat(batches).tolist()
    assert sorted(values[:6]) == sorted(values[6:]) == list(range(100, 106))


@pytest.mark.parametrize(
    "kwargs",
    [dict(dataset_size=0), dict(rank=2, num_replicas=2), dict(num_replicas=0), dict(window_size=1.5),
     dict(start_index=-1)],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        InfiniteSampler(**{"dataset_size": 4, **kwargs})
