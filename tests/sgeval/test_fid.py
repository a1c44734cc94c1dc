"""FID: closed-form cases, the Gaussian-sample expectation, a scipy sqrtm reference, covariance normalisation."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from sgeval.metrics.fid import (
    FIDSettings,
    SingularCovarianceWarning,
    feature_statistics,
    fid,
    frechet_distance,
    statistics_of,
    trace_sqrt_product,
)
from sgeval.metrics.registry import ComputeOptions, get_metric

from .conftest import random_spd, sqrtm_fid


@dataclasses.dataclass
class _Stats:
    """A FeatureSet-like object holding only running statistics (covariance divided by N - cov_ddof)."""

    mean: np.ndarray
    cov: np.ndarray
    num_items: int
    cov_ddof: int = 0


def test_identical_statistics_give_zero() -> None:
    rng = np.random.default_rng(0)
    sigma = random_spd(rng, 64, 500)
    mu = rng.standard_normal(64)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)


def test_identical_feature_sets_give_zero() -> None:
    features = np.random.default_rng(1).standard_normal((300, 16)).astype(np.float32)
    value = fid(features, features, FIDSettings(cov_ddof=1))["fid"]
    assert abs(value) < 1e-10


def test_equal_covariances_give_squared_mean_distance() -> None:
    rng = np.random.default_rng(2)
    sigma = random_spd(rng, 32, 400)
    mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
    expected = float(np.square(mu1 - mu2).sum())
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_mean_shift_adds_squared_norm() -> None:
    rng = np.random.default_rng(3)
    sigma1, sigma2 = random_spd(rng, 24, 300), random_spd(rng, 24, 300)
    mu = rng.standard_normal(24)
    shift = rng.standard_normal(24)
    base = frechet_distance(mu, sigma1, mu, sigma2)
    shifted = frechet_distance(mu + shift, sigma1, mu, sigma2)
    assert shifted - base == pytest.approx(float(shift @ shift), rel=1e-9)


@pytest.mark.parametrize(("dim", "num", "seeds"), [(20, 2000, 8), (100, 5000, 2)])
def test_two_gaussian_samples_match_the_analytic_expectation(dim: int, num: int, seeds: int) -> None:
    # docs/metrics.md section 3: two N-sample sets of N(mu, I_d) give FID ~ d^2 / (2N) + 2d / N.
    expected = dim**2 / (2 * num) + 2 * dim / num
    values = []
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        gen, real = rng.standard_normal((num, dim)) + 0.5, rng.standard_normal((num, dim)) + 0.5
        values.append(fid(gen, real, FIDSettings(cov_ddof=1))["fid"])
    assert np.mean(values) == pytest.approx(expected, rel=0.08)


@pytest.mark.parametrize("dim", [2, 16, 128])
def test_agrees_with_scipysqrtm_fid(dim: int) -> None:
    rng = np.random.default_rng(dim)
    for _ in range(3):
        mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
        sigma1, sigma2 = random_spd(rng, dim, 4 * dim), random_spd(rng, dim, 4 * dim)
        ours = frechet_distance(mu1, sigma1, mu2, sigma2)
        assert ours == pytest.approx(sqrtm_fid(mu1, sigma1, mu2, sigma2), rel=1e-8)


def test_trace_sqrt_product_of_commuting_diagonal_matrices() -> None:
    a, b = np.array([1.0, 4.0, 9.0, 0.0]), np.array([4.0, 1.0, 0.25, 7.0])
    assert trace_sqrt_product(np.diag(a), np.diag(b)) == pytest.approx(float(np.sqrt(a * b).sum()), rel=1e-12)


def test_singular_covariance_warns_and_stays_finite() -> None:
    rng = np.random.default_rng(4)
    gen, real = rng.standard_normal((10, 32)), rng.standard_normal((200, 32))
    with pytest.warns(SingularCovarianceWarning, match="10 samples of 32-d"):
        value = fid(gen, real, FIDSettings(cov_ddof=1))["fid"]
    assert np.isfinite(value)
    scipy_value = sqrtm_fid(*feature_statistics(gen, 1), *feature_statistics(real, 1))
    assert value == pytest.approx(scipy_value, rel=1e-6)


def test_no_warning_with_enough_samples() -> None:
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularCovarianceWarning)
        fid(rng.standard_normal((40, 8)), rng.standard_normal((40, 8)), FIDSettings(cov_ddof=0))


@pytest.mark.parametrize("ddof", [0, 1])
def test_feature_statistics_match_numpy_and_ignore_chunking(ddof: int) -> None:
    features = np.random.default_rng(6).standard_normal((101, 9)).astype(np.float32) * 5 + 1000
    mu, sigma = feature_statistics(features, ddof, chunk_rows=7)
    np.testing.assert_allclose(mu, features.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False, ddof=ddof), rtol=1e-10)
    assert mu.dtype == sigma.dtype == np.float64


@pytest.mark.parametrize("settings_ddof", [0, 1])
@pytest.mark.parametrize("stored_ddof", [0, 1])
def test_statistics_objects_are_renormalised_to_the_protocol(settings_ddof: int, stored_ddof: int) -> None:
    rng = np.random.default_rng(7)
    gen, real = rng.standard_normal((60, 6)), rng.standard_normal((80, 6)) * 1.3
    from_arrays = fid(gen, real, FIDSettings(cov_ddof=settings_ddof))["fid"]
    as_stats = [
        _Stats(x.mean(axis=0), np.cov(x, rowvar=False, ddof=stored_ddof), len(x), stored_ddof) for x in (gen, real)
    ]
    assert fid(*as_stats, FIDSettings(cov_ddof=settings_ddof))["fid"] == pytest.approx(from_arrays, rel=1e-12)
    _, sigma, num = statistics_of(as_stats[0], settings_ddof)
    assert num == 60
    np.testing.assert_allclose(sigma, np.cov(gen, rowvar=False, ddof=settings_ddof), rtol=1e-12)


def test_covariance_normalisation_changes_the_value_by_order_one_over_n() -> None:
    rng = np.random.default_rng(8)
    gen, real = rng.standard_normal((500, 4)), rng.standard_normal((500, 4)) * 2.0
    by_n = fid(gen, real, FIDSettings(cov_ddof=0))["fid"]
    by_n_minus_1 = fid(gen, real, FIDSettings(cov_ddof=1))["fid"]
    assert by_n != by_n_minus_1
    assert abs(by_n - by_n_minus_1) < 5.0 / 500 * by_n


def test_registered_function_matches_direct_call() -> None:
    rng = np.random.default_rng(9)
    gen, real = rng.standard_normal((50, 5)), rng.standard_normal((70, 5))
    spec = get_metric("fid")
    assert spec.higher_is_better is False and spec.needs == "statistics" and spec.value_keys == ("fid",)
    value = spec.fn(gen, real, FIDSettings(cov_ddof=1), ComputeOptions())["fid"]
    assert value == frechet_distance(*feature_statistics(gen, 1), *feature_statistics(real, 1))


@pytest.mark.parametrize(
    ("gen", "real", "message"),
    [
        (np.zeros((10, 3)), np.zeros((10, 4)), "differ in dimension"),
        (np.zeros(10), np.zeros((10, 4)), "2-D array"),
        (np.full((10, 3), np.nan), np.zeros((10, 3)), "NaN"),
        (np.zeros((1, 3)), np.zeros((10, 3)), "at least 2 feature rows"),
    ],
)
def test_bad_inputs_raise_clear_errors(gen: np.ndarray, real: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fid(gen, real, FIDSettings(cov_ddof=1))


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="cov_ddof"):
        FIDSettings(cov_ddof=2)


def test_foreign_statistics_without_count_are_used_as_stored() -> None:
    rng = np.random.default_rng(10)
    gen, real = rng.standard_normal((90, 5)), rng.standard_normal((70, 5))
    stats = _Stats(real.mean(axis=0), np.cov(real, rowvar=False, ddof=1), None, 1)  # type: ignore[arg-type]
    assert fid(gen, stats, FIDSettings(cov_ddof=1))["fid"] == pytest.approx(
        fid(gen, real, FIDSettings(cov_ddof=1))["fid"], rel=1e-12
    )
    with pytest.warns(UserWarning, match="used as stored"):
        fid(gen, stats, FIDSettings(cov_ddof=0))


def test_accepts_the_project_featureset() -> None:
    import sgeval.featureset as featureset  # an import error of our own is a failure, never a skip
    rng = np.random.default_rng(11)
    gen, real = rng.standard_normal((120, 6)) + 0.5, rng.standard_normal((150, 6)) * 0.8
    for ddof in (0, 1):
        expected = fid(gen, real, FIDSettings(cov_ddof=ddof))["fid"]
        from_moments = [featureset.FeatureSet.from_features(x, keep_features=False) for x in (gen, real)]
        assert fid(*from_moments, FIDSettings(cov_ddof=ddof))["fid"] == pytest.approx(expected, rel=1e-6)
        rows_only = [featureset.FeatureSet.from_features(x, keep_moments=False) for x in (gen, real)]
        assert fid(*rows_only, FIDSettings(cov_ddof=ddof))["fid"] == pytest.approx(expected, rel=1e-6)
