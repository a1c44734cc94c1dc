"""Improved precision/recall and density/coverage against brute-force implementations (full distance matrices)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from sgeval.metrics.precision_recall import (
    DensityCoverageSettings,
    PrecisionRecallSettings,
    density_coverage,
    knn_radii,
    precision_recall,
)
from sgeval.metrics.registry import ComputeOptions, get_metric


def _radii(features: np.ndarray, k: int) -> np.ndarray:
    """k-th neighbour distance excluding self: index k of the sorted full distance row (which holds the 0)."""
    return np.sort(cdist(features, features), axis=1)[:, k]


def _brute_pr(gen: np.ndarray, real: np.ndarray, k: int) -> tuple[float, float]:
    dist = cdist(real, gen)  # [N, M]
    precision = (dist <= _radii(real, k)[:, None]).any(axis=0).mean()
    recall = (dist <= _radii(gen, k)[None, :]).any(axis=1).mean()
    return float(precision), float(recall)


def _brute_prdc(gen: np.ndarray, real: np.ndarray, k: int) -> dict[str, float]:
    """The prdc definitions (Naeem et al. 2020), strict comparisons, from the full distance matrix."""
    dist = cdist(real, gen)  # [N, M]
    real_radii, gen_radii = _radii(real, k), _radii(gen, k)
    inside_real = dist < real_radii[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((dist < gen_radii[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum() / (k * gen.shape[0])),
        "coverage": float((dist.min(axis=1) < real_radii).mean()),
    }


def _gaussian_sets(seed: int, num_gen: int = 45, num_real: int = 60, dim: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((num_gen, dim)) + 0.4, rng.standard_normal((num_real, dim))


def _integer_sets_with_ties(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Small-integer features: many exact duplicates and equal distances, all exact in float32 and float64."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3, size=(70, 3)).astype(np.float32), rng.integers(0, 3, size=(50, 3)).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_recall_equals_brute_force(dtype: str, seed: int) -> None:
    gen, real = _gaussian_sets(seed)
    result = precision_recall(gen, real, k=3, distance_dtype=dtype)
    assert (result.precision, result.recall) == pytest.approx(_brute_pr(gen, real, 3), abs=0)
    assert (result.num_gen, result.num_real, result.k) == (45, 60, 3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_density_coverage_equals_brute_force(dtype: str, seed: int) -> None:
    gen, real = _gaussian_sets(seed)
    result = density_coverage(gen, real, k=5, distance_dtype=dtype)
    expected = _brute_prdc(gen, real, 5)
    observed = {key: getattr(result, key) for key in expected}
    assert observed == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [3, 4])
def test_ties_and_duplicates_follow_the_comparison_rules(dtype: str, seed: int) -> None:
    gen, real = _integer_sets_with_ties(seed)
    options = ComputeOptions(block_size=16)
    pr = precision_recall(gen, real, k=3, distance_dtype=dtype, options=options)
    assert (pr.precision, pr.recall) == _brute_pr(gen, real, 3)
    dc = density_coverage(gen, real, k=5, distance_dtype=dtype, options=options)
    assert {key: getattr(dc, key) for key in ("precision", "recall", "density", "coverage")} == pytest.approx(
        _brute_prdc(gen, real, 5), abs=1e-12
    )
    # The data really exercise the edge cases: duplicates give zero radii, and <= admits more than <.
    assert (_radii(real, 3) == 0).any()
    assert _brute_pr(gen, real, 5) != (dc.precision, dc.recall)


def test_radii_exclude_self_and_match_sklearn() -> None:
    features = np.random.default_rng(5).standard_normal((80, 6))
    for k in (1, 3, 5):
        neighbours = NearestNeighbors(n_neighbors=k + 1).fit(features)
        expected = neighbours.kneighbors(features)[0][:, k]  # column 0 is the point itself
        np.testing.assert_allclose(
            knn_radii(features, k, "float64", ComputeOptions(block_size=9)), expected, rtol=1e-10
        )
    duplicated = np.concatenate([features[:10]] * 4)  # every point has 3 exact copies
    assert (knn_radii(duplicated, 3) == 0).all() and (knn_radii(duplicated, 4) > 0).all()


@pytest.mark.parametrize("block_size", [1, 4, 7, 33, 10_000])
def test_results_do_not_depend_on_the_block_size(block_size: int) -> None:
    gen, real = _gaussian_sets(6, num_gen=40, num_real=33)
    reference_pr = precision_recall(gen, real, options=ComputeOptions(block_size=10_000))
    reference_dc = density_coverage(gen, real, options=ComputeOptions(block_size=10_000))
    assert precision_recall(gen, real, options=ComputeOptions(block_size=block_size)) == reference_pr
    assert density_coverage(gen, real, options=ComputeOptions(block_size=block_size)) == reference_dc


def test_identical_sets_give_perfect_scores() -> None:
    features = np.random.default_rng(7).standard_normal((50, 8))
    pr = precision_recall(features, features)
    assert (pr.precision, pr.recall) == (1.0, 1.0)
    dc = density_coverage(features, features)
    assert (dc.precision, dc.recall, dc.coverage) == (1.0, 1.0, 1.0)


def test_disjoint_sets_give_zero() -> None:
    rng = np.random.default_rng(8)
    gen, real = rng.standard_normal((30, 4)) + 100.0, rng.standard_normal((30, 4))
    assert precision_recall(gen, real) == precision_recall(gen, real).__class__(0.0, 0.0, 3, 30, 30)
    dc = density_coverage(gen, real)
    assert (dc.precision, dc.recall, dc.density, dc.coverage) == (0.0, 0.0, 0.0, 0.0)


def test_prdc_gaussian_sanity_values() -> None:
    # Smaller analogue of the prdc README example (10k x 10k x 1000-d): same distribution, k=5. Values here come
    # from the brute force; the point is that the blocked float32 path agrees at a realistic size and that the
    # numbers have the README's shape (precision/recall well below 1, density ~1, coverage near 1).
    rng = np.random.default_rng(9)
    real, gen = rng.standard_normal((1000, 64)), rng.standard_normal((1000, 64))
    result = density_coverage(gen, real, k=5, options=ComputeOptions(block_size=256))
    expected = _brute_prdc(gen, real, 5)
    assert {key: getattr(result, key) for key in expected} == pytest.approx(expected, abs=2e-3)
    assert 0.2 < result.precision < 0.9 and 0.2 < result.recall < 0.9
    assert 0.8 < result.density < 1.2 and result.coverage > 0.9


def test_registered_functions() -> None:
    gen, real = _gaussian_sets(10)
    pr_spec, prdc_spec = get_metric("pr"), get_metric("prdc")
    assert pr_spec.higher_is_better and pr_spec.needs == "features" and pr_spec.primary is None
    values = pr_spec.fn(gen, real, PrecisionRecallSettings(k=3), ComputeOptions(block_size=8))
    assert tuple(values) == pr_spec.value_keys
    assert (values["precision"], values["recall"]) == _brute_pr(gen, real, 3)
    values = prdc_spec.fn(gen, real, DensityCoverageSettings(k=5), None)
    assert tuple(values) == prdc_spec.value_keys and values == pytest.approx(_brute_prdc(gen, real, 5))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least 4 samples"):
        precision_recall(np.zeros((3, 2)), np.random.default_rng(0).standard_normal((10, 2)))
    with pytest.raises(ValueError, match="dimension"):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="distance_dtype"):
        PrecisionRecallSettings(distance_dtype="float16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        DensityCoverageSettings(k=0)
    with pytest.raises(ValueError, match="block_size"):
        ComputeOptions(block_size=0)


def test_content_ids_match_equal_rows_across_sets_and_dtypes() -> None:
    from sgeval.metrics.precision_recall import _content_ids

    base = np.random.default_rng(11).standard_normal((6, 3)).astype(np.float32)
    gen = np.concatenate([base[:3], base[:1], -np.zeros((1, 3), np.float32)])
    real = np.concatenate([base[2:].astype(np.float64), np.zeros((1, 3))])
    gen_ids, real_ids = _content_ids([gen, real], chunk_rows=2)
    assert gen_ids[0] == gen_ids[3] and gen_ids[2] == real_ids[0]  # duplicate within and across sets
    assert gen_ids[4] == real_ids[-1]  # -0.0 equals 0.0
    assert len(set(gen_ids[:3])) == 3 and len(set(real_ids)) == len(real_ids)


@pytest.mark.gpu
def test_cuda_equals_cpu() -> None:
    gen, real = _gaussian_sets(12, num_gen=300, num_real=400, dim=64)
    for dtype in ("float32", "float64"):
        cpu = density_coverage(gen, real, distance_dtype=dtype, options=ComputeOptions(block_size=128))
        cuda = density_coverage(gen, real, distance_dtype=dtype, options=ComputeOptions(device="cuda", block_size=128))
        assert cuda == cpu
        assert precision_recall(gen, real, distance_dtype=dtype, options=ComputeOptions(device="cuda")) == (
            precision_recall(gen, real, distance_dtype=dtype)
        )
