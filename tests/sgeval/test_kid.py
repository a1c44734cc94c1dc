"""KID: brute-force unbiased MMD^2, torch-fidelity's implementation, subset sampling and determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sgeval.metrics.kid import KIDSettings, kernel_inception_distance, kid, unbiased_mmd2
from sgeval.metrics.registry import ComputeOptions, get_metric

# Closed-form cases use a few rows on purpose; the small-subset warning itself is tested in test_reuse_and_names.py.
pytestmark = pytest.mark.filterwarnings("ignore::sgeval.metrics.kid.SmallKIDSubsetWarning")


def _brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 by explicit double loops over pairs (independent of the vectorised code)."""
    dim, m = x.shape[1], x.shape[0]

    def kernel(a: np.ndarray, b: np.ndarray) -> float:
        return (float(np.dot(a, b)) / dim + 1.0) ** 3

    pairs = [(i, j) for i, j in itertools.product(range(m), repeat=2) if i != j]
    within_x = sum(kernel(x[i], x[j]) for i, j in pairs)
    within_y = sum(kernel(y[i], y[j]) for i, j in pairs)
    between = sum(kernel(x[i], y[j]) for i, j in itertools.product(range(m), repeat=2))
    return (within_x + within_y) / (m * (m - 1)) - 2.0 * between / (m * m)


def test_unbiased_mmd_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((25, 7)), rng.standard_normal((25, 7)) + 0.3
    assert unbiased_mmd2(x, y) == pytest.approx(_brute_force_mmd2(x, y), rel=1e-12)


def test_whole_set_subsets_equal_brute_force_with_zero_spread() -> None:
    rng = np.random.default_rng(1)
    gen, real = rng.standard_normal((30, 6)), rng.standard_normal((30, 6)) * 1.5
    result = kernel_inception_distance(gen, real, num_subsets=5, max_subset_size=1000, seed=3)
    # Every subset is a permutation of the whole set and MMD^2 is permutation invariant.
    assert result.subset_size == 30 and result.num_subsets == 5
    assert result.mean == pytest.approx(_brute_force_mmd2(gen, real), rel=1e-10)
    assert result.std == pytest.approx(0.0, abs=1e-12)


def test_matches_torch_fidelity_kid_math() -> None:
    torch = pytest.importorskip("torch")
    metric_kid = pytest.importorskip("torch_fidelity.metric_kid")
    rng = np.random.default_rng(2)
    gen, real = rng.standard_normal((40, 16)), rng.standard_normal((40, 16)) + 0.2
    theirs = metric_kid.kid_features_to_metric(
        torch.from_numpy(gen),
        torch.from_numpy(real),
        kid_subsets=3,
        kid_subset_size=40,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,  # None -> 1 / D, as the official code
        kid_kernel_poly_coef0=1,
        verbose=False,
        rng_seed=2020,
    )
    ours = kernel_inception_distance(gen, real, num_subsets=3, max_subset_size=1000)
    assert ours.mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-9)


def test_identical_distributions_give_about_zero_and_a_shift_does_not() -> None:
    rng = np.random.default_rng(3)
    real = rng.standard_normal((400, 32))
    same = rng.standard_normal((400, 32))
    shifted = rng.standard_normal((400, 32)) + 0.5
    settings = KIDSettings(num_subsets=20, max_subset_size=200)
    near_zero = kid(same, real, settings, ComputeOptions(seed=0))
    far = kid(shifted, real, settings, ComputeOptions(seed=0))
    assert abs(near_zero["kid"]) < 3 * near_zero["kid_std"]
    assert far["kid"] > 20 * abs(near_zero["kid"]) and far["kid"] > 10 * far["kid_std"]


def test_subset_size_is_capped_by_the_smaller_set() -> None:
    rng = np.random.default_rng(4)
    result = kernel_inception_distance(rng.standard_normal((30, 4)), rng.standard_normal((50, 4)), max_subset_size=40)
    assert result.subset_size == 30


def test_seeded_and_deterministic() -> None:
    rng = np.random.default_rng(5)
    gen, real = rng.standard_normal((80, 8)), rng.standard_normal((90, 8))
    first = kernel_inception_distance(gen, real, num_subsets=10, max_subset_size=20, seed=7)
    again = kernel_inception_distance(gen, real, num_subsets=10, max_subset_size=20, seed=7)
    other = kernel_inception_distance(gen, real, num_subsets=10, max_subset_size=20, seed=8)
    assert first == again
    assert first.mean != other.mean


def test_mean_and_std_are_over_subsets_drawn_with_the_documented_rng() -> None:
    # Reproduce the documented sampling: default_rng(seed); per subset, gen rows then real rows, no replacement.
    rng = np.random.default_rng(6)
    gen, real = rng.standard_normal((50, 5)), rng.standard_normal((60, 5))
    draw = np.random.default_rng(11)
    mmds = []
    for _ in range(4):
        gen_rows = draw.choice(50, 10, replace=False)
        real_rows = draw.choice(60, 10, replace=False)
        mmds.append(_brute_force_mmd2(gen[gen_rows], real[real_rows]))
    result = kernel_inception_distance(gen, real, num_subsets=4, max_subset_size=10, seed=11)
    assert result.mean == pytest.approx(np.mean(mmds), rel=1e-10)
    assert result.std == pytest.approx(np.std(mmds), rel=1e-8)


def test_registered_function() -> None:
    spec = get_metric("kid")
    assert spec.value_keys == ("kid", "kid_std") and spec.primary == "kid" and spec.needs == "features"
    rng = np.random.default_rng(7)
    gen, real = rng.standard_normal((20, 3)), rng.standard_normal((20, 3))
    values = spec.fn(gen, real, KIDSettings(num_subsets=2), ComputeOptions(seed=1))
    direct = kernel_inception_distance(gen, real, num_subsets=2, seed=1)
    assert values == {"kid": direct.mean, "kid_std": direct.std}


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="dimension"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="num_subsets"):
        KIDSettings(num_subsets=0)

    class StatisticsOnly:
        features = None

    with pytest.raises(ValueError, match="keeping all features"):
        kid(StatisticsOnly(), np.zeros((5, 3)), KIDSettings())
