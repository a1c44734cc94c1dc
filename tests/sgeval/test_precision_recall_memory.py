"""Working memory of the blocked k-NN metrics: the plan fits the budget (50k x 50k x 4096 well under 4 GiB with its
inputs), the computation allocates what the plan says and no more, and neither the plan nor the memory layout
changes a result."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import sgeval.metrics.precision_recall as pr_module
from sgeval.metrics.precision_recall import (
    DEFAULT_BLOCK_MEMORY_MIB,
    density_coverage,
    knn_radii,
    plan_blocks,
    precision_recall,
)
from sgeval.metrics.registry import ComputeOptions

GIB = 2**30


def _sets(seed: int, num_gen: int = 130, num_real: int = 150, dim: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gen = np.maximum(rng.standard_normal((num_gen, dim)) + 0.3, 0.0).astype(np.float32)
    real = np.maximum(rng.standard_normal((num_real, dim)), 0.0).astype(np.float32)
    return gen, real


def test_plan_for_50k_vgg_features_is_well_under_4_gib() -> None:
    plan = plan_blocks(50_000, 50_000, 4096)
    assert plan.block_rows == ComputeOptions().block_size == 10_000  # the default tiling is kept
    assert plan.held_rows == 0 and plan.chunk_rows < plan.block_rows
    inputs = 2 * 50_000 * 4096 * 4  # two float32 [50k, 4096] arrays, 0.8 GB each
    assert plan.working_bytes <= DEFAULT_BLOCK_MEMORY_MIB * 2**20 < 1.01 * GIB
    assert plan.working_bytes + inputs < 2.5 * GIB  # the target is 4 GiB
    # The parts: one [B, B] float32 distance block, a row and a column block [B, D], small temporaries.
    assert plan.distance_bytes == 10_000**2 * 4 and plan.feature_bytes == 2 * 10_000 * 4096 * 4
    assert plan.temporary_bytes + plan.vector_bytes < 0.15 * GIB and plan.setup_bytes < plan.pass_bytes
    wide = plan_blocks(50_000, 50_000, 4096, "float64")
    assert wide.block_rows < 10_000 and wide.working_bytes <= DEFAULT_BLOCK_MEMORY_MIB * 2**20


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("dim", [64, 512, 4096])
@pytest.mark.parametrize("num", [1_000, 50_000, 200_000])
def test_plan_stays_within_the_budget(dtype: str, dim: int, num: int) -> None:
    previous = 0
    for memory_mib in (256, 1024, 4096):
        plan = plan_blocks(num, num, dim, dtype, ComputeOptions(block_size=1_000_000), memory_mib)
        assert plan.working_bytes <= memory_mib * 2**20
        assert 1 <= plan.chunk_rows <= plan.block_rows <= num
        assert plan.block_rows >= previous  # more memory never gives smaller blocks
        previous = plan.block_rows
    assert plan_blocks(num, num, dim, dtype, ComputeOptions(block_size=300)).block_rows == min(300, num)
    on_gpu = plan_blocks(num, num, dim, dtype, ComputeOptions(device="cuda"))  # a plan only: no device needed
    assert on_gpu.held_rows == 2 * num and on_gpu.block_rows == plan_blocks(num, num, dim, dtype).block_rows


def test_the_budget_comes_from_the_compute_options() -> None:
    small = ComputeOptions(memory_mib=256)
    assert ComputeOptions().memory_mib == DEFAULT_BLOCK_MEMORY_MIB == 1024
    assert plan_blocks(50_000, 50_000, 4096, options=small) == plan_blocks(50_000, 50_000, 4096, memory_mib=256)
    assert plan_blocks(50_000, 50_000, 4096, options=small).block_rows < 10_000
    # an explicit argument wins over the options
    assert plan_blocks(50_000, 50_000, 4096, options=small, memory_mib=1024) == plan_blocks(50_000, 50_000, 4096)


def test_bad_budget() -> None:
    with pytest.raises(ValueError, match="memory_mib"):
        plan_blocks(10, 10, 4, memory_mib=0)
    with pytest.raises(ValueError, match="memory_mib"):
        ComputeOptions(memory_mib=-1)
    with pytest.raises(ValueError, match="distance_dtype"):
        plan_blocks(10, 10, 4, "float16")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("memory_mib", [0.05, 0.2, 3.0])
def test_the_budget_never_changes_results(dtype: str, memory_mib: float) -> None:
    gen, real = _sets(1)
    assert plan_blocks(130, 150, 24, dtype, None, 0.05).block_rows < 130  # the small budgets really tile
    assert precision_recall(gen, real, distance_dtype=dtype, memory_mib=memory_mib) == precision_recall(
        gen, real, distance_dtype=dtype
    )
    assert density_coverage(gen, real, distance_dtype=dtype, memory_mib=memory_mib) == density_coverage(
        gen, real, distance_dtype=dtype
    )
    # Radii themselves may move by an ulp with the tiling (matmul and row-norm summation order), as with block_size.
    np.testing.assert_allclose(
        knn_radii(real, 3, dtype, memory_mib=memory_mib), knn_radii(real, 3, dtype), rtol=1e-6 if dtype == "float32"
        else 1e-13
    )


def test_computation_allocates_what_the_plan_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every distance block, top-k input and ball test is bounded by the plan; the reused buffers are its sizes."""
    gen, real = _sets(2, num_gen=230, num_real=250, dim=40)
    options, memory_mib = ComputeOptions(block_size=64), 0.3
    plan = plan_blocks(230, 250, 40, "float32", options, memory_mib)
    assert 1 < plan.chunk_rows < plan.block_rows == 64  # several blocks per pass, several chunks per block
    seen: dict[str, list[Any]] = {"matmul": [], "topk": [], "nonzero": [], "buffers": []}
    matmul, topk, nonzero = torch.matmul, torch.topk, torch.nonzero

    def record(name: str, function: Any) -> Any:
        def wrapped(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            result = function(tensor, *args, **kwargs)
            seen[name].append(result.shape if name == "matmul" else tensor.shape)
            return result

        return wrapped

    monkeypatch.setattr(torch, "matmul", record("matmul", matmul))
    monkeypatch.setattr(torch, "topk", record("topk", topk))
    monkeypatch.setattr(torch, "nonzero", record("nonzero", nonzero))
    original_init = pr_module._Workspace.__init__

    def init(self: Any, *args: Any) -> None:
        original_init(self, *args)
        seen["buffers"].append(self._buffers)

    monkeypatch.setattr(pr_module._Workspace, "__init__", init)
    result = density_coverage(gen, real, options=options, memory_mib=memory_mib)
    monkeypatch.undo()
    assert result == density_coverage(gen, real)  # and the same values as one big block

    block = plan.block_rows
    assert seen["matmul"] and all(r <= block and c <= block for r, c in seen["matmul"])
    assert all(shape.numel() <= block * block for shape in seen["topk"])
    assert seen["nonzero"] and all(shape.numel() <= plan.chunk_rows * block for shape in seen["nonzero"])
    (buffers,) = seen["buffers"]
    assert sorted(buffers) == ["columns", "distances", "rows"]
    assert sum(buffer.numel() * buffer.element_size() for buffer in buffers.values()) == (
        plan.distance_bytes + plan.feature_bytes
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_held_features_equal_blocks(dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU layout (both sets translated whole on the device), run on the CPU, gives the same results."""
    gen, real = _sets(3)
    gen[:5] = real[:5]  # cross-set duplicates too
    options = ComputeOptions(block_size=40)
    expected = precision_recall(gen, real, 3, dtype, options), density_coverage(gen, real, 5, dtype, options)

    def held_plan(*args: Any, **kwargs: Any) -> pr_module.BlockPlan:
        plan = plan_blocks(*args, **kwargs)
        return dataclasses.replace(plan, held_rows=plan.total_rows)

    monkeypatch.setattr(pr_module, "plan_blocks", held_plan)
    assert (precision_recall(gen, real, 3, dtype, options), density_coverage(gen, real, 5, dtype, options)) == expected


def test_translation_in_the_distance_dtype_is_bit_identical() -> None:
    """float32 rows minus a float32-exact origin in float32 == the float64 difference rounded to float32."""
    rng = np.random.default_rng(4)
    rows = (rng.standard_normal((300, 64)) * np.exp(rng.uniform(-40, 40, (300, 64)))).astype(np.float32)
    rows[::7] = 0.0
    rows[1::7] = -rows[2::7]
    cpu = torch.device("cpu")
    for origin_row in (0, 5, 33):
        for dtype, array in (("float32", rows), ("float64", rows.astype(np.float64)), ("float64", rows),
                             ("float32", rows * np.float32(1.1))):
            values = rows[origin_row].astype(np.float64)
            origin = pr_module._make_origin(values, dtype, cpu)
            assert origin.exact is not None  # a float32 row is exact in both dtypes
            out = torch.empty(array.shape, dtype=getattr(torch, dtype))
            pr_module._translate_into(out, array, origin)
            np.testing.assert_array_equal(out.numpy(), (array.astype(np.float64) - values).astype(dtype))
    inexact = pr_module._make_origin(rows[3].astype(np.float64) + 1e-12, "float32", cpu)  # general route
    assert inexact.exact is None
    out = torch.empty(rows.shape)
    expected = (rows.astype(np.float64) - inexact.values).astype(np.float32)
    np.testing.assert_array_equal(pr_module._translate_into(out, rows, inexact).numpy(), expected)


def test_read_only_and_non_contiguous_inputs() -> None:
    gen, real = _sets(5)
    expected = density_coverage(gen, real, options=ComputeOptions(block_size=50))
    gen_ro, real_f = gen.copy(), np.asfortranarray(real)
    gen_ro.flags.writeable = False  # as a memory-mapped feature cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert density_coverage(gen_ro, real_f, options=ComputeOptions(block_size=50)) == expected
