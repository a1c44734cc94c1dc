"""FID's Cholesky route and FrechetReference: closed forms, the scipy sqrtm route, the previous eigh route, a
high-precision reference on ill-conditioned covariances, singular covariances (N <= D) and reuse of the reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sgeval.metrics import FrechetReference as ExportedReference
from sgeval.metrics.fid import (
    FIDSettings,
    FrechetReference,
    SingularCovarianceWarning,
    feature_statistics,
    fid,
    frechet_distance,
    trace_sqrt_product,
)

from .conftest import random_spd, sqrtm_fid


def _spd_with_condition(rng: np.random.Generator, dim: int, condition: float) -> np.ndarray:
    """Q diag(logspace(0, -log10(condition))) Q^T with a random orthogonal Q."""
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    sigma = (q * np.logspace(0.0, -np.log10(condition), dim)) @ q.T
    return (sigma + sigma.T) / 2


def _previous_trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """sgeval's previous route: R = sigma1^(1/2) by eigh, then the eigenvalues of R sigma2 R."""
    eigenvalues, eigenvectors = np.linalg.eigh(sigma1)
    root = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    middle = root @ sigma2 @ root
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum())


def _stats(rng: np.random.Generator, dim: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal(dim), random_spd(rng, dim, samples)


# -- closed forms -------------------------------------------------------------------------------------------------


def test_inverse_covariances_give_the_dimension() -> None:
    sigma = random_spd(np.random.default_rng(0), 40, 200)
    assert trace_sqrt_product(sigma, np.linalg.inv(sigma)) == pytest.approx(40.0, rel=1e-9)


def test_scaled_covariance_has_the_closed_form_distance() -> None:
    # sigma2 = c sigma1 and equal means: FID = Tr(S) + c Tr(S) - 2 sqrt(c) Tr(S) = (1 - sqrt(c))^2 Tr(S).
    rng = np.random.default_rng(1)
    sigma, mu = random_spd(rng, 50, 300), rng.standard_normal(50)
    for scale in (0.25, 1.0, 4.0):
        expected = (1.0 - np.sqrt(scale)) ** 2 * np.trace(sigma)
        assert frechet_distance(mu, sigma, mu, scale * sigma) == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert FrechetReference(mu, scale * sigma).distance(mu, sigma) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_commuting_non_diagonal_covariances() -> None:
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    a, b = rng.uniform(0.1, 5.0, 30), rng.uniform(0.1, 5.0, 30)
    b[:5] = 0.0  # sigma2 singular: the factor of sigma1 is used
    sigma1, sigma2 = (q * a) @ q.T, (q * b) @ q.T
    expected = float(np.sqrt(a * b).sum())
    # The zero eigenvalues of sigma2 are stored as round-off of order 1e-16, and the square roots of those (order
    # 1e-8) enter every route: measured 9e-10 relative here, as for scipy's sqrtm (9e-10) and the eigh route (1e-9).
    assert trace_sqrt_product(sigma1, sigma2) == pytest.approx(expected, rel=1e-8)
    assert trace_sqrt_product(sigma2, sigma1) == pytest.approx(expected, rel=1e-8)
    assert FrechetReference(np.zeros(30), sigma2).trace_sqrt_product(sigma1) == pytest.approx(expected, rel=1e-8)


def test_tiny_dimensions() -> None:
    assert trace_sqrt_product(np.array([[4.0]]), np.array([[9.0]])) == pytest.approx(6.0)
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(
        4.0 + 4.0 + 9.0 - 12.0)
    assert trace_sqrt_product(np.zeros((0, 0)), np.zeros((0, 0))) == 0.0
    assert FrechetReference(np.zeros(0), np.zeros((0, 0))).distance(np.zeros(0), np.zeros((0, 0))) == 0.0


# -- agreement with the scipy sqrtm route and with the previous implementation --------------------------------------


@pytest.mark.parametrize("dim", [64, 128, 256])
def test_equals_the_scipy_sqrtm_route_onrandom_spd(dim: int) -> None:
    rng = np.random.default_rng(10 + dim)
    (mu1, sigma1), (mu2, sigma2) = _stats(rng, dim, 3 * dim), _stats(rng, dim, 3 * dim)
    scipy_value = sqrtm_fid(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(scipy_value, rel=1e-6)
    assert FrechetReference(mu2, sigma2).distance(mu1, sigma1) == pytest.approx(scipy_value, rel=1e-6)


@pytest.mark.parametrize("dim", [16, 100, 256])
def test_equals_the_previous_eigh_route_on_well_conditioned_inputs(dim: int) -> None:
    rng = np.random.default_rng(20 + dim)
    sigma1, sigma2 = random_spd(rng, dim, 4 * dim), random_spd(rng, dim, 4 * dim)
    previous = _previous_trace_sqrt_product(sigma1, sigma2)
    assert trace_sqrt_product(sigma1, sigma2) == pytest.approx(previous, rel=1e-11)
    mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
    previous_fid = float(np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * previous)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(previous_fid, rel=1e-9)


@pytest.mark.parametrize("condition", [1e6, 1e10, 1e14])
def test_accurate_on_ill_conditioned_covariances(condition: float) -> None:
    """Against a 40-digit evaluation of the same float64 matrices: the Cholesky route stays within 1e-11 relative
    (measured: 1e-14 to 3e-13; the sqrtm and eigh routes drift by up to 4e-8 at condition 1e14)."""
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(int(np.log10(condition)))
    dim = 24
    sigma1, sigma2 = _spd_with_condition(rng, dim, condition), _spd_with_condition(rng, dim, condition)
    with mpmath.workdps(40):
        a, b = mpmath.matrix(sigma1.tolist()), mpmath.matrix(sigma2.tolist())
        eigenvalues, eigenvectors = mpmath.eigsy(a)
        root = eigenvectors * mpmath.diag([mpmath.sqrt(value) for value in eigenvalues]) * eigenvectors.T
        middle = root * b * root
        exact = float(sum(mpmath.sqrt(value) for value in mpmath.eigsy((middle + middle.T) / 2, eigvals_only=True)))
    assert trace_sqrt_product(sigma1, sigma2) == pytest.approx(exact, rel=1e-11)
    assert FrechetReference(np.zeros(dim), sigma2).trace_sqrt_product(sigma1) == pytest.approx(exact, rel=1e-11)


def test_argument_order_does_not_matter() -> None:
    rng = np.random.default_rng(3)
    sigma1, sigma2 = random_spd(rng, 80, 300), random_spd(rng, 80, 300)
    assert trace_sqrt_product(sigma1, sigma2) == pytest.approx(trace_sqrt_product(sigma2, sigma1), rel=1e-12)


# -- singular covariances (N <= D) ---------------------------------------------------------------------------------


def test_singular_reference_falls_back_and_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    dim = 48
    mu_real, sigma_real = feature_statistics(rng.standard_normal((20, dim)), ddof=1)  # rank 19 < 48
    reference = FrechetReference(mu_real, sigma_real)
    assert not reference.positive_definite and "singular" in repr(reference)
    for samples in (200, 30):  # a full-rank generated set (its factor is used), then a singular one (eigh route)
        mu_gen, sigma_gen = feature_statistics(rng.standard_normal((samples, dim)) * 1.2 + 0.3, ddof=1)
        value = reference.distance(mu_gen, sigma_gen)
        assert value == frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real)
        assert value == pytest.approx(sqrtm_fid(mu_gen, sigma_gen, mu_real, sigma_real), rel=1e-6)
        assert reference.distance(mu_gen, sigma_gen) == value  # again: nothing stale is kept


def test_both_singular_uses_the_eigh_route_and_stays_close_to_scipy() -> None:
    rng = np.random.default_rng(5)
    stats = [feature_statistics(rng.standard_normal((15, 40)) + shift, ddof=1) for shift in (0.0, 0.5)]
    value = frechet_distance(*stats[0], *stats[1])
    assert np.isfinite(value) and value > 0
    assert value == pytest.approx(sqrtm_fid(*stats[0], *stats[1]), rel=1e-6)
    assert FrechetReference(*stats[1]).distance(*stats[0]) == value


def test_from_features_warns_on_a_singular_real_set() -> None:
    rng = np.random.default_rng(6)
    with pytest.warns(SingularCovarianceWarning, match="the real set"):
        reference = FrechetReference.from_features(rng.standard_normal((10, 32)), FIDSettings(cov_ddof=1))
    assert not reference.positive_definite
    real = rng.standard_normal((100, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularCovarianceWarning)
        reference = FrechetReference.from_features(real, FIDSettings(cov_ddof=0))
    gen = rng.standard_normal((90, 8)) + 0.2
    assert reference.distance(*feature_statistics(gen, 0)) == fid(gen, real, FIDSettings(cov_ddof=0))["fid"]


# -- reuse ------------------------------------------------------------------------------------------------------


def test_a_reused_reference_keeps_no_state_between_snapshots() -> None:
    """One reference against several snapshots, in two orders: each value equals a fresh reference's (nothing of an
    earlier call is kept) and scipy's sqrtm route (frechet_distance is the same code, so it would prove nothing)."""
    rng = np.random.default_rng(7)
    mu_real, sigma_real = _stats(rng, 96, 400)
    reference = FrechetReference(mu_real, sigma_real)
    assert reference.positive_definite and reference.dim == 96 and ExportedReference is FrechetReference
    snapshots = [_stats(rng, 96, 400) for _ in range(4)]
    forward = [reference.distance(mu, sigma) for mu, sigma in snapshots]
    backward = [reference.distance(mu, sigma) for mu, sigma in reversed(snapshots)][::-1]
    assert forward == backward
    for (mu_gen, sigma_gen), value in zip(snapshots, forward, strict=True):
        assert value == FrechetReference(mu_real, sigma_real).distance(mu_gen, sigma_gen)
        assert value == pytest.approx(sqrtm_fid(mu_gen, sigma_gen, mu_real, sigma_real), rel=1e-8)


def test_reference_keeps_its_own_read_only_copy() -> None:
    rng = np.random.default_rng(8)
    (mu_real, sigma_real), (mu_gen, sigma_gen) = _stats(rng, 20, 100), _stats(rng, 20, 100)
    reference = FrechetReference(mu_real, sigma_real)
    before, original_mu = reference.distance(mu_gen, sigma_gen), mu_real.copy()
    mu_real += 1.0
    sigma_real *= 2.0
    assert reference.distance(mu_gen, sigma_gen) == before
    with pytest.raises(ValueError, match="read-only"):
        reference.sigma[0, 0] = 1.0
    np.testing.assert_array_equal(reference.mu, original_mu)


def test_reference_accepts_float32_and_lists() -> None:
    rng = np.random.default_rng(9)
    (mu_real, sigma_real), (mu_gen, sigma_gen) = _stats(rng, 6, 50), _stats(rng, 6, 50)
    reference = FrechetReference(mu_real.tolist(), sigma_real.astype(np.float32))
    expected = frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real.astype(np.float32).astype(np.float64))
    assert reference.distance(mu_gen.astype(np.float32).astype(np.float64), sigma_gen) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("mu", "sigma", "message"),
    [
        (np.zeros(5), np.eye(5), "differ in dimension"),
        (np.zeros(4), np.eye(5), "expected mean"),
        (np.full(4, np.nan), np.eye(4), "NaN"),
    ],
)
def test_reference_rejects_bad_generated_statistics(mu: np.ndarray, sigma: np.ndarray, message: str) -> None:
    reference = FrechetReference(np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match=message):
        reference.distance(mu, sigma)


def test_reference_rejects_bad_statistics() -> None:
    with pytest.raises(ValueError, match="reference"):
        FrechetReference(np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        FrechetReference(np.zeros(2), np.array([[1.0, np.inf], [np.inf, 1.0]]))
    with pytest.raises(ValueError, match="square matrices"):
        trace_sqrt_product(np.eye(3), np.eye(4))
