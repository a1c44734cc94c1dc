"""Fréchet Inception Distance (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a
local Nash equilibrium").

    FID = ||mu_g - mu_r||^2 + Tr(S_g) + Tr(S_r) - 2 Tr(sqrt(S_g S_r))

Matches the NVIDIA implementations (stylegan `metrics/frechet_inception_distance.py`, stylegan2-ada-pytorch
`metrics/frechet_inception_distance.py`): float64 statistics, no eps*I regularisation, no check of an imaginary
part; the official code takes `np.real` of the whole expression. Deliberate difference: the trace of the matrix
square root is computed from a symmetric eigendecomposition instead of `scipy.linalg.sqrtm(..., disp=False)`
(whose `disp` flag is deprecated), see `trace_sqrt_product`. That is faster (two `eigh` instead of a Schur
decomposition of a non-symmetric matrix) and has no failure mode on singular covariances.

Covariance normalisation is a protocol setting (`FIDSettings.cov_ddof`): TF-v1/TF-v2 use `np.cov` (divide by
N - 1, ddof=1), stylegan2-ada-pytorch uses raw float64 moments (divide by N, ddof=0).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from sgeval.metrics.registry import ComputeOptions, check_same_dim, feature_matrix, register_metric

__all__ = [
    "FIDSettings",
    "SingularCovarianceWarning",
    "feature_statistics",
    "fid",
    "frechet_distance",
    "statistics_of",
    "trace_sqrt_product",
]


class SingularCovarianceWarning(UserWarning):
    """Fewer samples than feature dimensions: the covariance is singular and FID is strongly biased."""


@dataclasses.dataclass(frozen=True)
class FIDSettings:
    """Protocol settings of FID."""

    cov_ddof: int  # covariance divisor N - cov_ddof: 1 = TF-v1/v2 np.cov, 0 = stylegan2-ada-pytorch raw moments

    def __post_init__(self) -> None:
        if self.cov_ddof not in (0, 1):
            raise ValueError(f"cov_ddof must be 0 (divide by N) or 1 (divide by N - 1), got {self.cov_ddof}")


def feature_statistics(features: np.ndarray, ddof: int, chunk_rows: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of feature rows, accumulated in float64.

    Args:
        features: [N, D] float array (float32 is promoted chunk by chunk, never copied whole).
        ddof: covariance divisor is N - ddof (0 or 1).
        chunk_rows: rows per accumulation chunk; bounds the float64 temporary to chunk_rows x D.

    Returns:
        mu [D] float64 and sigma [D, D] float64 (symmetric). Two passes (mean, then centred products) so that large
        feature means do not cancel catastrophically as in the one-pass raw-moment formula.
    """
    num, dim = features.shape
    if num - ddof < 1:
        raise ValueError(f"need at least {ddof + 1} feature rows for a covariance with ddof={ddof}, got {num}")
    total = np.zeros(dim, dtype=np.float64)
    for start in range(0, num, chunk_rows):
        total += features[start : start + chunk_rows].sum(axis=0, dtype=np.float64)
    mu = total / num  # [D]
    sigma = np.zeros((dim, dim), dtype=np.float64)
    for start in range(0, num, chunk_rows):
        centred = features[start : start + chunk_rows].astype(np.float64) - mu  # [n, D]
        sigma += centred.T @ centred  # [D, D]
    sigma /= num - ddof
    return mu, (sigma + sigma.T) / 2  # exact symmetry; removes matmul round-off asymmetry


def statistics_of(feature_set: Any, ddof: int, what: str = "features") -> tuple[np.ndarray, np.ndarray, int | None]:
    """Float64 (mean, covariance, N) of a feature set, with the covariance normalised by N - ddof.

    Args:
        feature_set: a numpy array [N, D]; or a FeatureSet-like object with `.mean` [D], `.cov` [D, D] and
            `.num_items`, whose covariance divisor is `N - feature_set.cov_ddof` (attribute optional, default 0:
            raw-moment accumulation as in stylegan2-ada-pytorch); or an object whose `.mean`/`.cov` are None and
            whose `.features` holds all rows.
        ddof: the divisor wanted by the protocol (0 or 1).
        what: name used in error messages.

    Returns:
        mu [D] float64, sigma [D, D] float64, N (None for foreign statistics that do not record it; their
        covariance is then used as stored, with a warning if its divisor differs, an O(1/N) difference).
    """
    mean = getattr(feature_set, "mean", None)
    cov = getattr(feature_set, "cov", None)
    if isinstance(feature_set, np.ndarray) or mean is None or cov is None or callable(mean):
        array = feature_matrix(feature_set, what)
        mu, sigma = feature_statistics(array, ddof)
        return mu, sigma, array.shape[0]
    stored_ddof = int(getattr(feature_set, "cov_ddof", 0))
    mu = np.asarray(mean, dtype=np.float64)
    sigma = np.asarray(cov, dtype=np.float64)
    num = getattr(feature_set, "num_items", None)
    if stored_ddof == ddof:
        return mu, sigma, None if num is None else int(num)
    if num is None:
        warnings.warn(
            f"{what}: covariance divided by N - {stored_ddof} but the protocol wants N - {ddof}, and the item count"
            " is unknown, so it is used as stored (an O(1/N) difference)",
            UserWarning,
            stacklevel=3,
        )
        return mu, sigma, None
    num = int(num)
    if num - max(ddof, stored_ddof) < 1:
        raise ValueError(f"{what}: {num} items are too few for a covariance with ddof={ddof}")
    return mu, sigma * ((num - stored_ddof) / (num - ddof)), num  # S / (N - s) -> S / (N - t)


def _check_statistics(mu: np.ndarray, sigma: np.ndarray, what: str) -> None:
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{what}: expected mean [D] and covariance [D, D], got {mu.shape} and {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{what}: mean or covariance contains NaN or infinite values")


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix; round-off negatives clamped to 0."""
    eigenvalues, eigenvectors = np.linalg.eigh(sigma)  # [D], [D, D]
    root = np.sqrt(np.clip(eigenvalues, 0.0, None))  # [D]
    sqrt_sigma: np.ndarray = (eigenvectors * root) @ eigenvectors.T  # [D, D] V diag(root) V^T
    return sqrt_sigma


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrt(sigma1 @ sigma2)) for symmetric positive semi-definite sigma1, sigma2 [D, D] (float64).

    Why this equals the trace of `scipy.linalg.sqrtm(sigma1 @ sigma2)`: with R = sigma1^(1/2) (symmetric PSD),
    M = R sigma2 R is symmetric PSD, and M = R (sigma2 R) has the same eigenvalues as (sigma2 R) R = sigma2 sigma1,
    which has the same eigenvalues as its transpose sigma1 sigma2 (AB and BA share their spectrum). So the
    eigenvalues l_i of sigma1 sigma2 are real and >= 0, the principal square root has eigenvalues sqrt(l_i), and its
    trace is sum_i sqrt(l_i) = sum of the square roots of the eigenvalues of M. Round-off can make tiny l_i
    negative; clamping them to 0 is exactly what `np.real` does to the official `sqrtm` result, since
    sqrt(-e) = i*sqrt(e) has real part 0.
    """
    root1 = _psd_sqrt(sigma1)  # [D, D]
    middle = root1 @ sigma2 @ root1  # [D, D], symmetric up to round-off
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)  # [D]
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    Args:
        mu1, mu2: means [D], float64.
        sigma1, sigma2: covariances [D, D], float64, symmetric positive semi-definite.

    Returns:
        The squared-feature-unit distance >= 0 up to round-off (like the official code it is not clamped, so
        identical statistics can give a value of order -1e-12).
    """
    mu1, mu2 = (np.asarray(m, dtype=np.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (np.asarray(s, dtype=np.float64) for s in (sigma1, sigma2))
    _check_statistics(mu1, sigma1, "first distribution")
    _check_statistics(mu2, sigma2, "second distribution")
    if mu1.shape != mu2.shape:
        raise ValueError(f"the two distributions differ in dimension ({mu1.shape[0]} vs {mu2.shape[0]})")
    mean_term = float(np.square(mu1 - mu2).sum())
    return mean_term + float(np.trace(sigma1) + np.trace(sigma2)) - 2.0 * trace_sqrt_product(sigma1, sigma2)


def _warn_if_singular(num: int | None, dim: int, what: str) -> None:
    # The centred N x D data matrix has rank <= N - 1, so the covariance is singular whenever N <= D.
    if num is not None and num <= dim:
        warnings.warn(
            f"FID: {what} has {num} samples of {dim}-d features, so its covariance is singular (rank <= N - 1 < D);"
            " the value is strongly biased and not comparable with published numbers (those use 50,000 samples)",
            SingularCovarianceWarning,
            stacklevel=3,
        )


@register_metric(
    "fid",
    kind="feature",
    higher_is_better=False,
    needs="statistics",
    value_keys=("fid",),
    primary="fid",
    settings_type=FIDSettings,
    description="Fréchet distance between Gaussian fits of generated and real features (Heusel et al. 2017)",
)
def fid(gen: Any, real: Any, settings: FIDSettings, options: ComputeOptions | None = None) -> dict[str, float]:
    """FID between generated and real feature sets (arrays [N, D] or FeatureSet-like, see `statistics_of`).

    `options` is accepted for the common metric signature; FID uses no randomness and no device.
    Returns {"fid": value}, in squared feature units (Inception pool3 for the official protocols).
    """
    mu_g, sigma_g, num_g = statistics_of(gen, settings.cov_ddof, "generated features")
    mu_r, sigma_r, num_r = statistics_of(real, settings.cov_ddof, "real features")
    check_same_dim(mu_g[None], mu_r[None])
    _warn_if_singular(num_g, mu_g.shape[0], "the generated set")
    _warn_if_singular(num_r, mu_r.shape[0], "the real set")
    return {"fid": frechet_distance(mu_g, sigma_g, mu_r, sigma_r)}


@register_metric(
    "fd",
    kind="feature",
    higher_is_better=False,
    needs="statistics",
    value_keys=("fd",),
    primary="fd",
    settings_type=FIDSettings,
    description="Fréchet distance on a detector other than Inception (domain FD: the FID formula, never called FID)",
)
def fd(gen: Any, real: Any, settings: FIDSettings, options: ComputeOptions | None = None) -> dict[str, float]:
    """The FID formula under its honest name, for features of a domain detector (sgeval.detector).

    Returns {"fd": value} in squared feature units of that detector: not comparable with FID or across detectors.
    """
    return {"fd": fid(gen, real, settings, options)["fid"]}
