"""Time of FID from precomputed statistics: sgeval's eigh route vs the scipy.linalg.sqrtm route and torch-fidelity.

The statistics are the float64 mean and covariance (N - 1 divisor) of two sets of synthetic "pool3-like" features:
non-negative, correlated through a low-rank mixing with a decaying spectrum plus independent noise, so that the
covariances are full rank (N > D) with a realistic spread of eigenvalues. Only the distance is timed, not the
statistics; there is no warm-up call (pure LAPACK work has no first-call cost, and one 2048-d scipy sqrtm takes
minutes on a busy 2-core machine). Tools, all on the same float64 arrays:

* sgeval `frechet_distance`: trace of the matrix square root from two symmetric eigendecompositions;
* clean-fid `frechet_distance`: `scipy.linalg.sqrtm(sigma1 @ sigma2)` (Schur), the pytorch-fid / NVIDIA route;
* torch-fidelity `fid_statistics_to_metric`: `np.linalg.eigvals(sigma1 @ sigma2)` (non-symmetric eigenvalues).

Run from the repository root: `python -m benchmarks.bench_fid [--quick|--full] [--dim D] [--num N]`.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.common import add_common_arguments, print_table, ratio, setup_threads, time_call, write_results
from sgeval.metrics.fid import feature_statistics, frechet_distance

__all__ = ["main", "synthetic_features"]

SIZES = {"quick": (1000, 256), "default": (5000, 2048), "full": (20000, 2048)}  # (N, D)


def synthetic_features(num: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative correlated features float32 [num, dim], roughly like Inception pool3 activations.

    softplus(Z A + b + shift) + noise, with Z [num, rank] standard normal and A's rows scaled by 1/(i + 1) so that
    the covariance spectrum decays; the independent noise keeps the covariance full rank. The mixing is shared by all
    seeds; `shift` moves the second set's distribution (a different mean and covariance).
    """
    shared = np.random.default_rng(0)  # one mixing and bias for every seed: two seeds sample one distribution
    rank = min(dim, 256)
    mixing = shared.standard_normal((rank, dim)) / (np.arange(rank)[:, None] + 1.0)  # [rank, D]
    bias = shared.standard_normal(dim) * 0.5  # [D]
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((num, rank))  # [N, rank]
    pre = latent @ mixing + bias + shift  # [N, D]
    features = np.logaddexp(0.0, pre) + 0.05 * rng.random((num, dim))  # softplus keeps it >= 0
    return features.astype(np.float32)


def _peer_routes() -> list[tuple[str, str, Callable[..., float]]]:
    """(tool, route, fn(mu1, sigma1, mu2, sigma2) -> FID) of the installed peers."""
    routes = []
    try:
        from cleanfid.fid import frechet_distance as cleanfid_distance

        routes.append(("clean-fid", "scipy.linalg.sqrtm(S1 S2)", lambda *stats: float(cleanfid_distance(*stats))))
    except ImportError:
        pass
    try:
        from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

        def torch_fidelity_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
            stats = [{"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}]
            return float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])

        routes.append(("torch-fidelity", "np.linalg.eigvals(S1 S2)", torch_fidelity_distance))
    except ImportError:
        pass
    return routes


def run(num: int, dim: int, repeat: int) -> list[dict[str, Any]]:
    """Time every route on the same statistics; rows with seconds, FID, |FID - sgeval| and the sgeval speedup."""
    gen_mu, gen_sigma = feature_statistics(synthetic_features(num, dim, seed=1, shift=0.2), ddof=1)
    real_mu, real_sigma = feature_statistics(synthetic_features(num, dim, seed=2), ddof=1)
    stats = (gen_mu, gen_sigma, real_mu, real_sigma)
    ours_s, ours = time_call(lambda: frechet_distance(*stats), repeat, warmup=False)
    rows = [{"tool": "sgeval", "route": "eigh(sqrt(S1) S2 sqrt(S1))", "N": num, "D": dim, "seconds": ours_s,
             "FID": ours, "|FID - sgeval|": 0.0, "sgeval speedup (x)": 1.0}]
    for tool, route, distance in _peer_routes():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's deprecated sqrtm(disp=False) flag used by clean-fid
            seconds, value = time_call(lambda distance=distance: distance(*stats), repeat, warmup=False)
        rows.append({"tool": tool, "route": route, "N": num, "D": dim, "seconds": seconds, "FID": value,
                     "|FID - sgeval|": abs(value - ours), "sgeval speedup (x)": ratio(seconds, ours_s)})
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Parse the arguments, run, print the table and write `<out>/bench_fid.json`; returns the rows."""
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--num", type=int, help="feature rows per set (N)")
    parser.add_argument("--dim", type=int, help="feature dimension (D); 2048 for Inception pool3")
    args = parser.parse_args(argv)
    setup_threads(args.threads)
    preset = SIZES["quick" if args.quick else "full" if args.full else "default"]
    num, dim = args.num or preset[0], args.dim or preset[1]
    if num < 2 or dim < 1:
        parser.error(f"need --num >= 2 and --dim >= 1, got {num} and {dim}")
    rows = run(num, dim, args.repeat)
    print_table(f"FID from {dim}-d statistics (N = {num} per set, median of {args.repeat}, float64)", rows)
    write_results(args.out, "bench_fid", {"num": num, "dim": dim, "repeat": args.repeat}, rows, args.threads,
                  notes=["times exclude computing the statistics; speedup = peer seconds / sgeval seconds"])
    return rows


if __name__ == "__main__":
    main()
